"""Lab units: zju2 conversions (exact), shared aliases (hzfph), detection-limit qualifiers."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.ingest.test_ingest_support import LAB_COLS, centers, one, qrows, write_csv, write_xlsx


def _zju2_labs(tmp_path, rows):
    p = centers()["zju2"]
    header = [p.header_for("labs", f) for f in LAB_COLS]
    body = [["Z1", "r1", dt.date(2024, 3, 1 + i), test, value, unit] for i, (test, value, unit) in enumerate(rows)]
    return one(write_xlsx(tmp_path / "A_20250401.xlsx", {"检验": [header] + body}), "zju2")


@pytest.mark.parametrize(
    "test,value,unit,expected,canonical",
    [
        ("C反应蛋白", 0.53, "mg/dL", 5.3, "mg/L"),  # 0.53 * 10 is 5.300000000000001 in floats
        ("C反应蛋白", "1.7", "mg/dL", 17.0, "mg/L"),
        ("白蛋白", 3.5, "g/dL", 35.0, "g/L"),
        ("白蛋白", 4.1, "g/dL", 41.0, "g/L"),
        ("血红蛋白", 12.3, "g/dL", 123.0, "g/L"),
        ("25羟维生素D", 20.1, "ng/mL", 50.1696, "nmol/L"),
        ("总胆固醇", 200, "mg/dL", 5.172, "mmol/L"),
        ("高密度脂蛋白胆固醇", 45, "mg/dL", 1.1637, "mmol/L"),
        ("低密度脂蛋白胆固醇", 100.5, "mg/dL", 2.59893, "mmol/L"),
    ],
)
def test_zju2_unit_conversion_is_exact(tmp_path, test, value, unit, expected, canonical):
    ex = _zju2_labs(tmp_path, [(test, value, unit)])
    assert ex.quarantine.empty, ex.quarantine
    row = ex.valid.iloc[0]
    assert row["value"] == expected  # exactly, not approximately
    assert row["unit"] == canonical
    assert row["unit_reported"] == unit
    assert row["value_reported"] == str(value)


def test_zju2_canonical_unit_is_accepted_unchanged_and_case_of_unit_tolerated(tmp_path):
    ex = _zju2_labs(tmp_path, [("C反应蛋白", 4.2, "mg/L"), ("C反应蛋白", 0.42, "MG/DL"), ("CRP", 3, "mg/L")])
    assert ex.quarantine.empty
    assert ex.valid["value"].tolist() == [4.2, 4.2, 3.0]
    assert ex.valid["unit"].tolist() == ["mg/L"] * 3
    assert ex.valid["test"].tolist() == ["CRP"] * 3


def test_zju2_unit_not_accepted(tmp_path):
    ex = _zju2_labs(tmp_path, [("C反应蛋白", 4.2, "mg/L"), ("C反应蛋白", 4.2, "mmol/L"), ("白细胞", 5, "g/dL")])
    assert qrows(ex) == [(3, "unit", "unit"), (4, "unit", "unit")]
    m = ex.quarantine["message"].tolist()
    assert "CRP" in m[0] and "mg/L" in m[0] and "mg/dL" in m[0]
    assert "mmol/L" not in m[0] and "g/dL" not in m[1].replace("mg/dL", "")  # the delivered unit only in `value`
    assert "WBC" in m[1] and "10^9/L" in m[1]
    assert ex.quarantine["value"].tolist() == ["mmol/L", "g/dL"]
    assert len(ex.valid) == 1


def test_hzfph_unit_aliases(tmp_path):
    p = centers()["hzfph"]
    header = [p.header_for("labs", f) for f in LAB_COLS]
    rows = [
        ["H1", "a", "2024/3/1", "粪钙卫蛋白", "120", "mg/kg"],
        ["H1", "a", "2024/3/2", "粪钙卫蛋白", "130", "µg/g"],
        ["H1", "a", "2024/3/3", "粪钙卫蛋白", "140", "μg/g"],
        ["H1", "a", "2024/3/4", "白细胞", "5.6", "10*9/L"],
        ["H1", "a", "2024/3/5", "血小板", "210", "×10^9/L"],
        ["H1", "a", "2024/3/6", "中性粒细胞", "3.1", "10^9/L"],
        ["H1", "a", "2024/3/7", "估算肾小球滤过率", "95", "mL/min/1.73m²"],
    ]
    ex = one(write_csv(tmp_path / "A_labs_20250401.csv", header, rows, encoding="gb18030"), "hzfph")
    assert ex.quarantine.empty, ex.quarantine
    v = ex.valid
    assert v["test"].tolist() == ["FC", "FC", "FC", "WBC", "PLT", "NEUT", "EGFR"]
    assert v["unit"].tolist() == ["ug/g"] * 3 + ["10^9/L"] * 3 + ["mL/min/1.73m2"]
    assert v["value"].tolist() == [120.0, 130.0, 140.0, 5.6, 210.0, 3.1, 95.0]
    assert v["unit_reported"].tolist() == [r[5] for r in rows]


def test_qualifiers_kept_with_number(tmp_path):
    rows = [
        ["M1", "a", "2024-03-01", "CRP", "<0.5", "mg/L"],
        ["M1", "a", "2024-03-02", "FC", ">1800", "ug/g"],
        ["M1", "a", "2024-03-03", "CRP", "< 0.5", "mg/L"],
        ["M1", "a", "2024-03-04", "CRP", "≤5", "mg/L"],
        ["M1", "a", "2024-03-05", "FC", "≥ 30", "ug/g"],
        ["M1", "a", "2024-03-06", "CRP", "7.25", "mg/L"],
        ["M1", "a", "2024-03-07", "CRP", "<", "mg/L"],
        ["M1", "a", "2024-03-08", "CRP", "about 5", "mg/L"],
        ["M1", "a", "2024-03-09", "CRP", "5,5", "mg/L"],
    ]
    ex = one(write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, rows), "zcmu1")
    v = ex.valid
    assert v["value"].tolist() == [0.5, 1800.0, 0.5, 5.0, 30.0, 7.25]
    assert v["qualifier"].tolist() == ["<", ">", "<", "<", ">", None]
    assert v["value_reported"].tolist() == ["<0.5", ">1800", "< 0.5", "≤5", "≥ 30", "7.25"]
    assert qrows(ex) == [(8, "value", "type"), (9, "value", "type"), (10, "value", "type")]
    assert ex.quarantine["value"].tolist() == ["<", "about 5", "5,5"]


def test_qualifier_with_conversion(tmp_path):
    ex = _zju2_labs(tmp_path, [("C反应蛋白", "<0.5", "mg/dL"), ("25羟维生素D", "> 100", "ng/mL")])
    assert ex.valid["value"].tolist() == [5.0, 249.6]
    assert ex.valid["qualifier"].tolist() == ["<", ">"]
    assert ex.valid["value_reported"].tolist() == ["<0.5", "> 100"]


def test_range_checked_after_conversion(tmp_path):
    ex = _zju2_labs(tmp_path, [("C反应蛋白", "-0.2", "mg/dL"), ("C反应蛋白", "0", "mg/dL")])
    assert qrows(ex) == [(2, "value", "range")]
    m = ex.quarantine["message"].iloc[0]
    assert "after conversion to the canonical unit" in m and "换算" in m and "-0.2" not in m and "-2.0" not in m
    assert ex.quarantine["value"].iloc[0] == "-0.2"
    assert ex.valid["value"].tolist() == [0.0]
