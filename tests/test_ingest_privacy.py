"""Names, phone numbers and raw medical record numbers never reach any output."""

from __future__ import annotations

import datetime as dt


from test_ingest_support import PATIENT_COLS, centers, extract, one, patient_row, write_csv, write_xlsx
from ibd_pipeline.ingest import write_delivery_report

NAME, PHONE, MRN, MRN2 = "欧阳娜娜", "13812345678", "MRN-778899", "MRN-55555"


def _all_cells(ex) -> list[str]:
    cells = []
    for df in (ex.valid, ex.quarantine):
        cells += [str(c) for c in df.columns]
        for col in df.columns:
            cells += [str(v) for v in df[col].tolist()]
    cells += list(ex.warnings)
    return cells


def _assert_clean(cells):
    for secret in (NAME, PHONE, MRN, MRN2):
        assert not any(secret in c for c in cells), secret


def test_csv_phi_never_in_valid_or_quarantine(tmp_path):
    rows = [
        patient_row(MRN, patient_name=NAME, phone=PHONE),
        patient_row(MRN, patient_name=NAME, phone=PHONE, sex="X"),  # duplicate key + code failure
        patient_row(MRN2, patient_name=NAME, phone=PHONE, birth_date="bad"),
    ]
    ex = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, rows), "zcmu1")
    assert len(ex.valid) == 1 and len(ex.quarantine) == 3
    _assert_clean(_all_cells(ex))
    report = write_delivery_report(tmp_path / "out", "zcmu1", "A_patients_20250401.csv", [ex], profile=centers()["zcmu1"])
    _assert_clean([report.read_text(encoding="utf-8")])


def test_xlsx_phi_never_in_outputs(tmp_path):
    p = centers()["zju2"]
    fields = ["mrn", "patient_name", "phone", "abstractor_id", "sex", "birth_date", "diagnosis", "diagnosis_date",
              "upa_start_date", "last_followup_date"]
    header = [p.header_for("patients", f) for f in fields]
    row = [MRN, NAME, PHONE, "r", "男", dt.date(1990, 1, 1), "克罗恩病", dt.date(2010, 1, 1), dt.date(2024, 1, 1),
           dt.date(2024, 6, 1)]
    bad = [MRN2, NAME, PHONE, "", "男", dt.date(1990, 1, 1), "克罗恩病", dt.date(2010, 1, 1), dt.date(2024, 1, 1),
           dt.date(2023, 6, 1)]
    ex = extract(write_xlsx(tmp_path / "A_20250401.xlsx", {"患者": [header, row, row, bad]}), "zju2")
    (pat,) = ex
    assert len(pat.valid) == 1 and set(pat.quarantine["rule"]) == {"unique_key", "required", "followup_after_start"}
    _assert_clean(_all_cells(pat))
    report = write_delivery_report(tmp_path / "out", "zju2", "A_20250401.xlsx", ex, profile=p)
    _assert_clean([report.read_text(encoding="utf-8")])
