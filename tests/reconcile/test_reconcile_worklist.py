"""The discrepancy worklist as an Excel workbook in each center's own terms (issue 12
item 3): headers, table names, field headers, codes, date format and lab units of the
center; frozen header, fitting widths, drop-downs on coded fields, an instructions
sheet (Chinese, then English), formula injection neutralised, the outbox file mode."""

import re
import stat

import openpyxl
import pandas as pd
import pytest

from ibd_pipeline.config import load_centers, load_crf
from ibd_pipeline.reconcile import DISCREPANCY_COLUMNS, neutralise, read_worklist_cells, write_worklist
from ibd_pipeline.spreadsheet import OUTBOX_FILE_MODE, text_width, unneutralise

CENTERS = load_centers()
CRF = load_crf()


def worklist(center):
    rows = [
        (center, "P1", "patients", "patient", "sex", "M", "F", None, "open"),
        (center, "P1", "medications", "infliximab|2020-01-01", "*", "present", "absent", None, "open"),
        (center, "P2", "labs", "2023-03-01|HDL", "value", "1.00854", "1.03440", None, "open"),
        (center, "P2", "patients", "patient", "pouchitis_chronic_ab_refractory", "true", "false", None, "open"),
        (center, "P2", "patients", "patient", "birth_date", "1990-01-01", "1990-01-02", None, "open"),
        (center, "P2", "patients", "patient", "smoking", "=HYPERLINK(\"http://x\")", "never", None, "open"),
        (center, "P2", "assessments", "2023-03-01", "hbi_pain", None, "2", None, "open"),
        (center, "P2", "patients", "patient", "diagnosis_date", "2015-01-01", "2015-01-02", "2015-01-02", "resolved"),
        ("other", "P9", "patients", "patient", "sex", "M", "F", None, "open"),
    ]
    return pd.DataFrame(rows, columns=DISCREPANCY_COLUMNS)


MRN = {"P1": "00123", "P2": "-45=6", "P9": "999"}
# (mrn, table, record key, field, value_a, value_b, unit) as each center's coordinator reads them
EXPECTED = {
    "zju2": [
        ["00123", "患者", "patient", "性别", "男", "女", ""],
        ["00123", "用药", "英夫利西单抗|2020-01-01", "*", "有", "无", ""],
        ["'-45=6", "检验", "2023-03-01|高密度脂蛋白胆固醇", "结果", "39", "40", "mg/dL"],  # 1.00854 mmol/L = 39 mg/dL
        ["'-45=6", "患者", "patient", "慢性抗生素难治性储袋炎", "是", "否", ""],
        ["'-45=6", "患者", "patient", "出生日期", "1990-01-01", "1990-01-02", ""],
        ["'-45=6", "患者", "patient", "吸烟状态", "'=HYPERLINK(\"http://x\")", "从不吸烟", ""],
        ["'-45=6", "评估", "2023-03-01", "HBI腹痛", "", "2", ""],
    ],
    "hzfph": [
        ["00123", "患者", "patient", "性别", "男", "女", ""],
        ["00123", "用药", "英夫利西单抗|2020/01/01", "*", "有", "无", ""],
        ["'-45=6", "检验", "2023/03/01|高密度脂蛋白胆固醇", "结果", "1.00854", "1.03440", "mmol/L"],
        ["'-45=6", "患者", "patient", "慢性抗生素难治性储袋炎", "是", "否", ""],
        ["'-45=6", "患者", "patient", "出生年月日", "1990/01/01", "1990/01/02", ""],
        ["'-45=6", "患者", "patient", "吸烟状态", "'=HYPERLINK(\"http://x\")", "从不吸烟", ""],
        ["'-45=6", "评估", "2023/03/01", "HBI腹痛", "", "2", ""],
    ],
    "zcmu1": [
        ["00123", "patients", "patient", "sex", "M", "F", ""],
        ["00123", "medications", "infliximab|2020-01-01", "*", "present", "absent", ""],
        ["'-45=6", "labs", "2023-03-01|HDL", "value", "1.00854", "1.03440", "mmol/L"],
        ["'-45=6", "patients", "patient", "pouchitis_chronic_ab_refractory", "true", "false", ""],
        ["'-45=6", "patients", "patient", "birth_date", "1990-01-01", "1990-01-02", ""],
        ["'-45=6", "patients", "patient", "smoking", "'=HYPERLINK(\"http://x\")", "never", ""],
        ["'-45=6", "assessments", "2023-03-01", "hbi_pain", "", "2", ""],
    ],
}
HEADERS = {
    "zju2": ["病案号", "数据表", "记录键", "字段", "第一轮值", "第二轮值", "数值单位", "裁定值", "审核人", "裁定日期"],
    "hzfph": ["住院号", "数据表", "记录键", "字段", "第一轮值", "第二轮值", "数值单位", "裁定值", "审核人", "裁定日期"],
    "zcmu1": ["mrn", "table", "record_key", "field", "value_a (round A)", "value_b (round B)", "unit", "resolved_value",
              "reviewer_id", "decided_on"],
}
SHEET = {"zju2": "裁定", "hzfph": "裁定", "zcmu1": "worklist"}
# drop-down of the 裁定值 cell per row (None: free text)
CHOICES = {
    "zju2": [["男", "女"], ["有", "无"], None, ["是", "否"], None, ["目前吸烟", "既往吸烟", "从不吸烟"], None],
    "zcmu1": [["M", "F"], ["present", "absent"], None, ["true", "false"], None, ["current", "former", "never"], None],
}
CHOICES["hzfph"] = CHOICES["zju2"]


def _rows(ws):
    return [["" if v is None else str(v) for v in r] for r in ws.iter_rows(values_only=True)]


def _dropdowns(wb, ws) -> dict[str, list[str]]:
    """cell -> the listed values of its list validation."""
    out = {}
    for dv in ws.data_validations.dataValidation:
        assert dv.type == "list"
        m = re.fullmatch(r"'?(.+?)'?!\$([A-Z]+)\$(\d+):\$([A-Z]+)\$(\d+)", dv.formula1)
        src = wb[m.group(1)]
        vals = [str(src[f"{m.group(2)}{i}"].value) for i in range(int(m.group(3)), int(m.group(5)) + 1)]
        for rng in dv.sqref.ranges:
            out[rng.coord] = vals
    return out


@pytest.mark.parametrize("center", ["zju2", "hzfph", "zcmu1"])
def test_the_worklist_is_a_workbook_in_the_centers_own_terms(center, tmp_path):
    p = write_worklist(worklist(center), center, CENTERS[center], MRN, tmp_path, "2025-04-01",
                       return_to=f"/data/inbox/{center}", crf=CRF)
    assert p.name == "worklist_20250401.xlsx"
    assert stat.S_IMODE(p.stat().st_mode) == OUTBOX_FILE_MODE == 0o644  # group-readable like the reports
    assert not list(tmp_path.glob(".tmp-*"))
    wb = openpyxl.load_workbook(p)
    ws = wb[SHEET[center]]
    assert wb.sheetnames[0] == SHEET[center] and wb.active.title == SHEET[center]
    rows = _rows(ws)
    assert rows[0] == HEADERS[center]
    body = [r + [""] * (10 - len(r)) for r in rows[1:]]
    assert [r[:7] for r in body] == EXPECTED[center]  # open rows of this center only, in its terms
    assert all(r[7:] == ["", "", ""] for r in body)
    assert ws.freeze_panes == "A2"
    assert_prints_on_one_page_width(ws)
    for j, col in enumerate("ABCDEFGHIJ"):  # every column is as wide as its longest text
        assert ws.column_dimensions[col].width >= max(text_width(r[j]) for r in rows), col
    drops = _dropdowns(wb, ws)
    for i, want in enumerate(CHOICES[center], start=2):
        assert drops.get(f"H{i}") == want, i
    assert wb["lists"].sheet_state == "hidden"
    # instructions: Chinese, then English; what to write in 裁定值; name and folder of the return
    info = _rows(wb["说明 Instructions"])
    text = "\n".join("\t".join(r) for r in info)
    assert info[0][0].startswith("差异工作表") and info[0][2].startswith("Discrepancy worklist")
    assert f"/data/inbox/{center}" in text and "worklist_20250401.xlsx" in text
    header_rows = {r[0]: r for r in info}
    for h in HEADERS[center]:  # every column explained in both languages
        assert re.search(r"[\u4e00-\u9fff]", header_rows[h][1]) and re.search(r"[A-Za-z]{3}", header_rows[h][2]), h
    assert "有" in header_rows[HEADERS[center][7]][1] and "empty" in header_rows[HEADERS[center][7]][2]


@pytest.mark.parametrize("center", ["zju2", "hzfph", "zcmu1"])
def test_the_written_worklist_reads_back_as_written(center, tmp_path):
    p = write_worklist(worklist(center), center, CENTERS[center], MRN, tmp_path, "20250401", crf=CRF)
    cells = read_worklist_cells(p, CENTERS[center])
    # the neutralising quote is dropped again: the coordinator's own values come back
    assert cells["mrn"].tolist() == [unneutralise(r[0]) for r in EXPECTED[center]]
    assert cells["value_a"].iloc[5] == "=HYPERLINK(\"http://x\")"
    assert cells["source_row"].tolist() == list(range(2, 9))


def test_a_new_worklist_replaces_the_older_one_in_the_outbox(tmp_path):
    old = write_worklist(worklist("zju2"), "zju2", CENTERS["zju2"], MRN, tmp_path, "20250401", crf=CRF)
    (tmp_path / "A_20250401.xlsx.report.html").write_text("report")
    new = write_worklist(worklist("zju2").iloc[:2], "zju2", CENTERS["zju2"], MRN, tmp_path, "20250402", crf=CRF)
    assert not old.exists() and new.exists()
    assert (tmp_path / "A_20250401.xlsx.report.html").exists()


def test_empty_worklist_has_the_header_only(tmp_path):
    d = worklist("zcmu1").iloc[0:0]
    p = write_worklist(d, "zcmu1", CENTERS["zcmu1"], {}, tmp_path, "20250401", crf=CRF)
    assert _rows(openpyxl.load_workbook(p)["worklist"]) == [HEADERS["zcmu1"]]


def test_unknown_mrn_and_bad_date_are_errors(tmp_path):
    with pytest.raises(KeyError):
        write_worklist(worklist("zcmu1"), "zcmu1", CENTERS["zcmu1"], {"P1": "1"}, tmp_path, "20250401", crf=CRF)
    with pytest.raises(ValueError):
        write_worklist(worklist("zcmu1"), "zcmu1", CENTERS["zcmu1"], MRN, tmp_path, "April", crf=CRF)


@pytest.mark.parametrize(
    "text, expected",
    [("=1+1", "'=1+1"), ("+41", "+41"), ("-1.5", "-1.5"), ("-1.5e3", "-1.5e3"), ("-", "'-"), ("@x", "'@x"),
     ("\t1", "'\t1"), ("\r=x", "'\r=x"), ("a=b", "a=b"), ("", ""), ("12", "12")],
)
def test_neutralise(text, expected):
    assert neutralise(text) == expected
    assert unneutralise(neutralise(text)) == text


@pytest.mark.parametrize("center", ["zju2", "hzfph", "zcmu1"])
def test_a_returned_worklist_is_named_as_a_round_adj_delivery(center):
    from ibd_pipeline.ingest import DeliveryName, parse_delivery_name

    assert parse_delivery_name(CENTERS[center], "worklist_20250415.xlsx", crf=CRF) == DeliveryName("ADJ", "adjudications", "2025-04-15")
    with pytest.raises(ValueError, match="calendar date"):
        parse_delivery_name(CENTERS[center], "worklist_20251345.xlsx", crf=CRF)


def assert_prints_on_one_page_width(ws) -> None:
    """A4 landscape, one page wide, the header repeated (what LibreOffice prints)."""
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    # fitToWidth 1 is the OOXML default (xlsxwriter leaves it out)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth in (None, 1)
    assert ws.page_setup.fitToHeight == 0 and ws.print_title_rows == "$1:$1"
