"""The discrepancy worklist in each center's own ADJ layout, read back."""

import csv
import io

import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from ibd_pipeline.config import load_centers
from ibd_pipeline.reconcile import DISCREPANCY_COLUMNS, neutralise, write_worklist

CENTERS = load_centers()


def worklist(center):
    rows = [
        (center, "P1", "patients", "patient", "sex", "M", "F", None, "open"),
        (center, "P1", "medications", "infliximab|2020-01-01", "*", "present", "absent", None, "open"),
        (center, "P2", "labs", "2023-03-01|CRP", "value", "-3", "=HYPERLINK(\"http://x\")", None, "open"),
        (center, "P2", "labs", "2023-03-01|CRP", "unit", "@SUM(A1)", "+1+1", None, "open"),
        (center, "P2", "patients", "patient", "smoking", "\tnever", "-never", None, "open"),
        (center, "P2", "assessments", "2023-03-01", "hbi_pain", None, "2", None, "open"),
        (center, "P2", "patients", "patient", "birth_date", "1990-01-01", "1990-01-02", "1990-01-02", "resolved"),
        ("other", "P9", "patients", "patient", "sex", "M", "F", None, "open"),
    ]
    return pd.DataFrame(rows, columns=DISCREPANCY_COLUMNS)


MRN = {"P1": "00123", "P2": "-45=6", "P9": "999"}
EXPECTED_CELLS = [  # mrn, record_key, field, value_a, value_b (table checked per center)
    ["00123", "patient", "sex", "M", "F"],
    ["00123", "infliximab|2020-01-01", "*", "present", "absent"],
    ["'-45=6", "2023-03-01|CRP", "value", "-3", "'=HYPERLINK(\"http://x\")"],
    ["'-45=6", "2023-03-01|CRP", "unit", "'@SUM(A1)", "'+1+1"],
    ["'-45=6", "patient", "smoking", "'\tnever", "'-never"],
    ["'-45=6", "2023-03-01", "hbi_pain", "", "2"],
]
TABLES = ["patients", "medications", "labs", "labs", "patients", "assessments"]
ZH_TABLES = {"patients": "患者", "medications": "用药", "labs": "检验", "assessments": "评估"}


def check(rows, headers, tables):
    assert rows[0] == headers
    body = rows[1:]
    assert len(body) == len(EXPECTED_CELLS)  # open rows of this center only
    for got, exp, table in zip(body, EXPECTED_CELLS, tables):
        rec = dict(zip(headers, got))
        h = dict(zip(["mrn", "table", "record_key", "field", "value_a", "value_b", "resolved_value", "reviewer_id", "decided_on"], headers))
        assert [rec[h["mrn"]], rec[h["record_key"]], rec[h["field"]], rec[h["value_a"]], rec[h["value_b"]]] == exp
        assert rec[h["table"]] == table
        assert rec[h["resolved_value"]] == rec[h["reviewer_id"]] == rec[h["decided_on"]] == ""


def test_zcmu1_csv_utf8_bom_canonical_headers(tmp_path):
    p = write_worklist(worklist("zcmu1"), "zcmu1", CENTERS["zcmu1"], MRN, tmp_path, "20250401")
    assert p.name == "ADJ_adjudications_20250401.csv"
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    headers = ["mrn", "table", "record_key", "field", "value_a (A)", "value_b (B)", "resolved_value", "reviewer_id", "decided_on"]
    check(rows, headers, TABLES)


def test_hzfph_csv_gb18030_chinese_headers_and_table_names(tmp_path):
    p = write_worklist(worklist("hzfph"), "hzfph", CENTERS["hzfph"], MRN, tmp_path, "2025-04-01")
    assert p.name == "ADJ_adjudications_20250401.csv"
    raw = p.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(raw.decode("gb18030"), newline="")))
    headers = ["住院号", "数据表", "记录键", "字段", "第一轮值", "第二轮值", "裁定值", "审核人", "裁定日期"]
    check(rows, headers, [ZH_TABLES[t] for t in TABLES])
    # pandas reads it back as the ingestion would
    df = pd.read_csv(p, encoding="gb18030", dtype=str, keep_default_na=False)
    assert df["住院号"].iloc[0] == "00123"


def test_zju2_xlsx_sheet_and_chinese_headers(tmp_path):
    p = write_worklist(worklist("zju2"), "zju2", CENTERS["zju2"], MRN, tmp_path, "20250401")
    assert p.name == "ADJ_20250401.xlsx"
    wb = CalamineWorkbook.from_path(str(p))
    assert wb.sheet_names == ["裁定"]
    rows = [["" if v is None else v for v in r] for r in wb.get_sheet_by_name("裁定").to_python()]
    headers = ["病案号", "数据表", "记录键", "字段", "第一轮值", "第二轮值", "裁定值", "审核人", "裁定日期"]
    rows = [r + [""] * (len(headers) - len(r)) for r in rows]  # trailing empty cells
    check(rows, headers, [ZH_TABLES[t] for t in TABLES])
    assert not list(tmp_path.glob(".tmp-*"))


def test_empty_worklist_has_the_header_only(tmp_path):
    d = worklist("zcmu1").iloc[0:0]
    p = write_worklist(d, "zcmu1", CENTERS["zcmu1"], {}, tmp_path, "20250401")
    assert len(p.read_text(encoding="utf-8-sig").strip().splitlines()) == 1


def test_unknown_mrn_and_bad_date_are_errors(tmp_path):
    with pytest.raises(KeyError):
        write_worklist(worklist("zcmu1"), "zcmu1", CENTERS["zcmu1"], {"P1": "1"}, tmp_path, "20250401")
    with pytest.raises(ValueError):
        write_worklist(worklist("zcmu1"), "zcmu1", CENTERS["zcmu1"], MRN, tmp_path, "April")


@pytest.mark.parametrize(
    "text, expected",
    [("=1+1", "'=1+1"), ("+41", "+41"), ("-1.5", "-1.5"), ("-1.5e3", "-1.5e3"), ("-", "'-"), ("@x", "'@x"),
     ("\t1", "'\t1"), ("\r=x", "'\r=x"), ("a=b", "a=b"), ("", ""), ("12", "12")],
)
def test_neutralise(text, expected):
    assert neutralise(text) == expected
