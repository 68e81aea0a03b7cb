"""Helpers of the ingest tests: write real delivery files (CSV in a center's encoding,
xlsx workbooks with real date cells) and run the extractor on them."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path


from ibd_pipeline.config import load_centers, load_crf
from ibd_pipeline.ingest import extract_file
from ibd_pipeline.pseudonym import patient_id

KEY = b"test-key-0123456789abcdef-0123456789"
DELIVERY = "d" * 64


def centers():
    return load_centers()


def crf():
    return load_crf()


def pid(center: str, mrn: str) -> str:
    return patient_id(KEY, center, mrn)


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8", bom: bool = False) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    data = buf.getvalue().encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    """Each sheet: a list of rows (first = header). datetime/date values become real
    Excel date cells; numbers numeric cells; bool boolean cells; str text cells."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if v is None:
                    continue
                if isinstance(v, (dt.datetime, dt.date)):
                    if not isinstance(v, dt.datetime):
                        v = dt.datetime(v.year, v.month, v.day)
                    ws.write_datetime(i, j, v, datefmt)
                elif isinstance(v, bool):
                    ws.write_boolean(i, j, v)
                elif isinstance(v, (int, float)):
                    ws.write_number(i, j, v)
                else:
                    ws.write_string(i, j, str(v))
    wb.close()
    return path


def extract(path: Path, center: str, **kw):
    kw.setdefault("crf", load_crf())
    return extract_file(path, centers()[center], key=KEY, delivery_id=DELIVERY, **kw)


def one(path: Path, center: str, **kw):
    ex = extract(path, center, **kw)
    assert len(ex) == 1, [(e.table, e.sheet) for e in ex]
    return ex[0]


def qrows(ex) -> list[tuple]:
    """Quarantine as sorted (row_number, field, rule) tuples."""
    q = ex.quarantine
    return sorted(zip(q["row_number"].tolist(), q["field"].tolist(), q["rule"].tolist()))


# --------------------------------------------------------------- canonical rows (zcmu1)
PATIENT_COLS = [
    "mrn", "patient_name", "phone", "abstractor_id", "sex", "birth_date", "diagnosis", "diagnosis_date",
    "cd_location", "smoking", "height_cm", "weight_kg", "eim_eye", "upa_start_date", "upa_stop_date",
    "upa_stop_reason", "last_followup_date",
]


def patient_row(mrn="M001", **over) -> list:
    base = dict(
        mrn=mrn, patient_name="张三", phone="13800138000", abstractor_id="inv1", sex="M",
        birth_date="1990-05-06", diagnosis="CD", diagnosis_date="2015-03-04", cd_location="L3",
        smoking="never", height_cm="172.5", weight_kg="61", eim_eye="false", upa_start_date="2024-01-10",
        upa_stop_date="", upa_stop_reason="", last_followup_date="2024-12-01",
    )
    base.update(over)
    return [base[c] for c in PATIENT_COLS]


LAB_COLS = ["mrn", "abstractor_id", "sample_date", "test", "value", "unit"]
MED_COLS = ["mrn", "abstractor_id", "drug", "start_date", "stop_date", "stop_reason"]
ASSESS_COLS = [
    "mrn", "abstractor_id", "visit_date", "hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass",
    "hbi_complications", "mayo_stool", "mayo_bleeding", "mayo_pga", "mayo_endo", "ses_cd", "rutgeerts", "upa_dose_mg",
]
