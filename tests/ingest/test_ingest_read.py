"""Each center's format is read correctly (STUDY.md Workflow 1; centers/*.yaml)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from tests.ingest.test_ingest_support import (
    LAB_COLS, PATIENT_COLS, centers, extract, one, patient_row, pid, qrows, write_csv, write_xlsx,
)


def _zh(center, table, fields):
    p = centers()[center]
    return [p.header_for(table, f) for f in fields]


def test_zcmu1_csv_with_bom(tmp_path):
    f = write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, [patient_row("M001"), patient_row("M002", sex="F")], bom=True)
    ex = one(f, "zcmu1")
    assert ex.table == "patients" and ex.round == "A" and ex.sheet is None and ex.rows_in == 2
    assert ex.quarantine.empty
    v = ex.valid
    assert v["patient_id"].tolist() == [pid("zcmu1", "M001"), pid("zcmu1", "M002")]
    assert v["sex"].tolist() == ["M", "F"]
    assert v["birth_date"].tolist() == [pd.Timestamp("1990-05-06")] * 2
    assert v["height_cm"].tolist() == [172.5, 172.5]
    assert v["eim_eye"].tolist() == [False, False]
    assert v["source_row"].tolist() == [2, 3]
    assert v["source_file"].tolist() == ["A_patients_20250401.csv"] * 2
    assert set(v["center"]) == {"zcmu1"} and set(v["round"]) == {"A"}
    assert str(v["birth_date"].dtype) == "datetime64[ns]" and str(v["eim_eye"].dtype) == "boolean"
    assert "mrn" not in v and "patient_name" not in v and "phone" not in v


def test_zcmu1_csv_without_bom_same_result(tmp_path):
    a = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, [patient_row()], bom=True), "zcmu1")
    (tmp_path / "b").mkdir()
    b = one(write_csv(tmp_path / "b" / "A_patients_20250401.csv", PATIENT_COLS, [patient_row()], bom=False), "zcmu1")
    pd.testing.assert_frame_equal(a.valid, b.valid)


def test_zcmu1_blank_lines_keep_row_numbers(tmp_path):
    f = tmp_path / "A_labs_20250401.csv"
    f.write_text(
        "mrn,abstractor_id,sample_date,test,value,unit\n"
        "M1,a,2024-03-05,CRP,3.2,mg/L\n"
        "\n"
        ",,,,,\n"
        "M1,a,2024-03-06,CRP,4,mg/L\n",
        encoding="utf-8",
    )
    ex = one(f, "zcmu1")
    assert ex.rows_in == 2
    assert ex.valid["source_row"].tolist() == [2, 5]
    assert ex.valid["value"].tolist() == [3.2, 4.0]


def test_hzfph_gb18030_both_date_styles_codes_and_missing_tokens(tmp_path):
    fields = ["mrn", "patient_name", "abstractor_id", "sex", "birth_date", "diagnosis", "diagnosis_date",
              "cd_upper_gi", "cd_perianal", "smoking", "upa_start_date", "upa_stop_date", "upa_stop_reason",
              "last_followup_date", "height_cm"]
    header = _zh("hzfph", "patients", fields)
    assert header[0] == "住院号" and header[2] == "摘录人" and header[4] == "出生年月日"
    rows = [
        ["H01", "李四", "录入员1", "男", "1988/03/05", "克罗恩病", "2010年3月5日", "是", "无", "从不吸烟",
         "2024/1/9", "2024年12月1日", "不良反应", "2025/02/03", "不详"],
        ["H02", "王五", "录入员1", "女", "1975年11月23日", "溃疡性结肠炎", "2012/11/02", "否", "有", "—",
         "2024年03月05日", "", "", "2024年12月31日", "-"],
    ]
    f = write_csv(tmp_path / "B_patients_20250402.csv", header, rows, encoding="gb18030")
    ex = one(f, "hzfph")
    assert ex.round == "B" and ex.quarantine.empty, ex.quarantine
    v = ex.valid
    assert v["sex"].tolist() == ["M", "F"]
    assert v["diagnosis"].tolist() == ["CD", "UC"]
    assert v["birth_date"].tolist() == [pd.Timestamp("1988-03-05"), pd.Timestamp("1975-11-23")]
    assert v["diagnosis_date"].tolist() == [pd.Timestamp("2010-03-05"), pd.Timestamp("2012-11-02")]
    assert v["upa_start_date"].tolist() == [pd.Timestamp("2024-01-09"), pd.Timestamp("2024-03-05")]
    assert v["upa_stop_date"].iloc[0] == pd.Timestamp("2024-12-01") and pd.isna(v["upa_stop_date"].iloc[1])
    assert v["upa_stop_reason"].tolist() == ["adverse_event", None]
    assert v["cd_upper_gi"].tolist() == [True, False]
    assert v["cd_perianal"].tolist() == [False, True]
    assert v["smoking"].tolist() == ["never", None]  # '—' is a missing token
    assert v["height_cm"].isna().all()  # '不详', '-'


def test_zju2_xlsx_sheets_date_cells_text_dates_and_numbers(tmp_path):
    p_fields = ["mrn", "patient_name", "phone", "abstractor_id", "sex", "birth_date", "diagnosis", "diagnosis_date",
                "upa_start_date", "last_followup_date", "weight_kg", "eim_joint"]
    l_fields = ["mrn", "abstractor_id", "sample_date", "test", "value", "unit"]
    ph = _zh("zju2", "patients", p_fields)
    lh = _zh("zju2", "labs", l_fields)
    assert ph[0] == "病案号" and ph[3] == "录入者"
    wb = write_xlsx(tmp_path / "A_20250401.xlsx", {
        "患者": [ph,
                 [123456, "赵六", "13912345678", "r1", "男", dt.date(1980, 1, 2), "克罗恩氏病", "2010-06-07",
                  dt.date(2024, 2, 1), dt.datetime(2025, 1, 15), 55, "否"],
                 ["Z2", "钱七", "", "r1", "女", "1999-12-31", "溃疡性结肠炎", dt.date(2020, 1, 1),
                  "2024-03-05", "2025-01-01", 48.5, True]],
        "检验": [lh,
                 ["Z2", "r1", dt.date(2024, 3, 5), "血红蛋白", 120, "g/L"],
                 ["Z2", "r1", "2024-03-05", "谷丙转氨酶", 45, "U/L"]],
        "检验_2": [lh,
                   ["Z2", "r1", dt.date(2024, 4, 1), "血沉", 12, "mm/h"]],
        "Sheet1": [],
    })
    ex = extract(wb, "zju2")
    assert [(e.table, e.sheet) for e in ex] == [("patients", "患者"), ("labs", "检验"), ("labs", "检验_2")]
    pat, lab1, lab2 = ex
    assert pat.quarantine.empty, pat.quarantine
    assert pat.valid["patient_id"].tolist() == [pid("zju2", "123456"), pid("zju2", "Z2")]  # 123456, not 123456.0
    assert pat.valid["birth_date"].tolist() == [pd.Timestamp("1980-01-02"), pd.Timestamp("1999-12-31")]
    assert pat.valid["diagnosis_date"].tolist() == [pd.Timestamp("2010-06-07"), pd.Timestamp("2020-01-01")]
    assert pat.valid["last_followup_date"].tolist() == [pd.Timestamp("2025-01-15"), pd.Timestamp("2025-01-01")]
    assert pat.valid["diagnosis"].tolist() == ["CD", "UC"]
    assert pat.valid["weight_kg"].tolist() == [55.0, 48.5]
    assert pat.valid["eim_joint"].tolist() == [False, True]
    assert pat.valid["source_file"].tolist() == ["A_20250401.xlsx:患者"] * 2
    assert pat.valid["source_row"].tolist() == [2, 3]
    assert lab1.valid["test"].tolist() == ["HB", "ALT"]
    assert lab1.valid["value_reported"].tolist() == ["120", "45"]  # no float noise
    assert lab1.valid["sample_date"].tolist() == [pd.Timestamp("2024-03-05")] * 2
    assert lab2.valid["test"].tolist() == ["ESR"] and lab2.valid["source_row"].tolist() == [2]
    assert lab2.valid["source_file"].tolist() == ["A_20250401.xlsx:检验_2"]
    assert any("Sheet1" in w for e in ex for w in e.warnings)


def test_zju2_duplicate_key_across_continuation_sheets(tmp_path):
    lh = _zh("zju2", "labs", LAB_COLS)
    row = ["Z2", "r1", dt.date(2024, 3, 5), "血沉", 12, "mm/h"]
    wb = write_xlsx(tmp_path / "A_20250401.xlsx", {"检验": [lh, row], "检验_2": [lh, row]})
    lab1, lab2 = extract(wb, "zju2")
    assert len(lab1.valid) == 1 and lab1.quarantine.empty
    assert lab2.valid.empty
    assert qrows(lab2) == [(2, "mrn+sample_date+test", "unique_key")]
    assert "row 2 of sheet 检验" in lab2.quarantine["message"].iloc[0]


def test_header_whitespace_fullwidth_brackets_and_unknown_columns(tmp_path):
    header = ["  病案号 ", "录入者", "性别", "出生日期", "诊断", "确诊日期", "乌帕替尼开始日期", "末次随访日期",
              "身高（cm）", "备注"]
    wb = write_xlsx(tmp_path / "A_20250401.xlsx", {"患者": [header, ["Z1", "r", "男", dt.date(1990, 1, 1), "克罗恩病",
                                                               dt.date(2010, 1, 1), dt.date(2024, 1, 1),
                                                               dt.date(2024, 6, 1), 170, "随便"]]})
    ex = one(wb, "zju2")
    assert ex.valid["height_cm"].tolist() == [170.0]
    # named by position; the header text itself only after the PHI check (a header cell may hold a name)
    assert any("column 10" in w and "ignored" in w for w in ex.warnings)


def test_chunked_reading_gives_the_same_result(tmp_path):
    rows = [["M%03d" % (i % 60), "a", f"2024-03-{1 + i // 60:02d}", "CRP", str(i / 10), "mg/L"] for i in range(300)]
    rows[150] = rows[3]  # a duplicate key far from the first (another chunk)
    rows[200][4] = "abc"
    f = write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, rows)
    big = one(f, "zcmu1")
    small = one(f, "zcmu1", chunk_rows=7)
    pd.testing.assert_frame_equal(big.valid, small.valid)
    pd.testing.assert_frame_equal(big.quarantine.reset_index(drop=True), small.quarantine.reset_index(drop=True))
    assert qrows(small) == [(152, "mrn+sample_date+test", "unique_key"), (202, "value", "type")]
    assert "as row 5" in small.quarantine["message"].iloc[0]
    assert small.rows_in == 300 and len(small.valid) == 298


def test_booleans_any_case_and_digits(tmp_path):
    vals = ["TRUE", "False", "1", "0", "true", "是"]
    rows = [patient_row(f"M{i}", eim_eye=v) for i, v in enumerate(vals)]
    ex = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, rows), "zcmu1")
    assert ex.valid["eim_eye"].tolist() == [True, False, True, False, True]
    assert qrows(ex) == [(7, "eim_eye", "type")]  # zcmu1 has no Chinese vocabulary
