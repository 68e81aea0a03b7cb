"""The re-abstraction list and the rejected-rows list as Excel workbooks in the
center's own terms, Chinese first (issue 12 item 3), and one file mode for the outbox."""

import os
import stat

import openpyxl
import pandas as pd

from ibd_pipeline.config import load_centers, load_crf
from ibd_pipeline.outbox_lists import write_reabstraction_list, write_rejected_rows
from ibd_pipeline.spreadsheet import OUTBOX_FILE_MODE, set_outbox_modes, text_width

CENTERS = load_centers()
CRF = load_crf()


def _rows(ws):
    return [["" if v is None else str(v) for v in r] for r in ws.iter_rows(values_only=True)]


def test_the_reabstraction_list_uses_the_centers_record_number_header_and_diagnosis_spellings(tmp_path):
    listing = pd.DataFrame({"center": "hzfph", "mrn": ["2017044553", "=1+1"], "patient_id": ["Pa", "Pb"],
                            "diagnosis": ["CD", "UC"]})
    p = write_reabstraction_list(listing, CENTERS["hzfph"], tmp_path, CRF)
    assert p.name == "reabstraction_sample_hzfph.xlsx"
    assert stat.S_IMODE(p.stat().st_mode) == OUTBOX_FILE_MODE
    wb = openpyxl.load_workbook(p)
    ws = wb.worksheets[0]
    rows = _rows(ws)
    assert rows[0] == ["中心 Center", "住院号 mrn", "诊断 diagnosis", "研究编号 Study id (pseudonymous)"]
    assert rows[1:] == [["hzfph", "2017044553", "克罗恩病", "Pa"], ["hzfph", "'=1+1", "溃疡性结肠炎", "Pb"]]
    assert ws.freeze_panes == "A2"
    assert_prints_on_one_page_width(ws)
    assert all(ws.column_dimensions[c].width >= max(text_width(r[j]) for r in rows) for j, c in enumerate("ABCD"))
    notes = _rows(wb["说明 Instructions"])
    assert notes[0] == ["复核摘录名单", "Re-abstraction list"]
    text = "\n".join("\t".join(r) for r in notes)
    assert "B_patients_20250601.csv" in text and "inbox" in text and "第二轮" in text


def test_the_canonical_center_keeps_canonical_codes(tmp_path):
    listing = pd.DataFrame({"center": "zcmu1", "mrn": ["ZY1"], "patient_id": ["Pa"], "diagnosis": ["IBDU"]})
    rows = _rows(openpyxl.load_workbook(write_reabstraction_list(listing, CENTERS["zcmu1"], tmp_path, CRF)).worksheets[0])
    assert rows == [["中心 Center", "mrn", "diagnosis", "研究编号 Study id (pseudonymous)"], ["zcmu1", "ZY1", "IBDU", "Pa"]]


def quarantine():
    return pd.DataFrame({
        "center": "zju2", "round": "A", "delivery_id": "d1", "table_name": ["patients", "labs", "labs"],
        "file_name": "A_20250401.xlsx", "sheet": ["患者", "检验", "检验"], "row_number": [7, 3, 3],
        "patient_id": ["Pa", "Pb", "Pb"], "field": ["birth_date", "unit", "unit"], "value": ["1991/13/45", "mmol", "mmol"],
        "rule": ["type", "unit", "unit"],
        "message": ["第 7 行 出生日期：不是日期 / row 7, 出生日期 (birth_date): is not a date", "单位 / unit", "单位 / unit"],
    })


def test_the_rejected_rows_list_names_file_row_and_the_centers_field_without_the_value(tmp_path):
    p = write_rejected_rows(quarantine(), CENTERS["zju2"], tmp_path, CRF)
    assert p.name == "rejected_rows_zju2.xlsx" and stat.S_IMODE(p.stat().st_mode) == OUTBOX_FILE_MODE
    wb = openpyxl.load_workbook(p)
    rows = _rows(wb.worksheets[0])
    assert rows[0][:7] == ["文件 File", "工作表 Sheet", "数据表 Table", "行号 Row", "字段 Field", "规则 Rule", "原因 Reason"]
    assert rows[1:] == [  # one row per (file, sheet, row, field, rule), in file order
        ["A_20250401.xlsx", "患者", "患者", "7", "出生日期 (birth_date)", "type",
         "第 7 行 出生日期：不是日期 / row 7, 出生日期 (birth_date): is not a date", "Pa"],
        ["A_20250401.xlsx", "检验", "检验", "3", "单位 (unit)", "unit", "单位 / unit", "Pb"],
    ]
    text = "\n".join("\t".join(r) for ws in wb.worksheets for r in _rows(ws))
    assert "1991/13/45" not in text and "mmol\t" not in text  # the delivered value stays in the center's own file
    assert "inbox" in text


def test_no_rejected_row_removes_the_earlier_list(tmp_path):
    p = write_rejected_rows(quarantine(), CENTERS["zju2"], tmp_path, CRF)
    assert write_rejected_rows(quarantine().iloc[0:0], CENTERS["zju2"], tmp_path, CRF) is None
    assert not p.exists()


def test_every_outbox_file_gets_one_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        (tmp_path / "A_20250401.xlsx.report.html").write_text("report")
        (tmp_path / "index.html").write_text("status")
    finally:
        os.umask(old)
    write_rejected_rows(quarantine(), CENTERS["zju2"], tmp_path, CRF)
    set_outbox_modes(tmp_path)
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o644}


def assert_prints_on_one_page_width(ws) -> None:
    """A4 landscape, one page wide, the header repeated (what LibreOffice prints)."""
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    # fitToWidth 1 is the OOXML default (xlsxwriter leaves it out)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth in (None, 1)
    assert ws.page_setup.fitToHeight == 0 and ws.print_title_rows == "$1:$1"
