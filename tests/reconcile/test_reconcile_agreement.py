"""Agreement statistics checked against values worked out by hand with the textbook
formulas (never against the function under test)."""

import math

import numpy as np
import pandas as pd
import pytest

from ibd_pipeline.config import load_crf, load_settings
from ibd_pipeline.reconcile import (
    AGREEMENT_COLUMNS,
    CELL_COLUMNS,
    Comparison,
    agreement_gate,
    agreement_table,
    icc_2_1,
    lowest_fields,
)

CRF = load_crf()
THRESHOLD = load_settings()["reconciliation"]["agreement_threshold_pct"]


def cells(center, table, field, ftype, pairs, start=0):
    """pairs: (value_a, value_b) with None = missing, or the string 'ABSENT_B' for a
    record that only round A has."""
    rows = []
    for i, (va, vb) in enumerate(pairs):
        in_b = vb != "ABSENT_B"
        vb = None if not in_b else vb
        rows.append(dict(center=center, patient_id=f"P{start + i}", table_name=table, record_key=f"k{start + i}",
                         field=field, field_type=ftype, value_a=va, value_b=vb,
                         agree=bool(in_b and va == vb), in_a=True, in_b=in_b))
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def comparison(*parts):
    return Comparison(cells=pd.concat(parts, ignore_index=True), missing_in_b=pd.DataFrame())


def row(agreement, table, field, center="zcmu1"):
    r = agreement[(agreement["center"] == center) & (agreement["table_name"] == table) & (agreement["field"] == field)]
    assert len(r) == 1
    return r.iloc[0]


def test_kappa_two_by_two():
    # rater A x rater B:      B true  B false
    #               A true      20       5
    #               A false     10      15        n = 50
    pairs = [("true", "true")] * 20 + [("true", "false")] * 5 + [("false", "true")] * 10 + [("false", "false")] * 15
    ag = agreement_table(comparison(cells("zcmu1", "adverse_events", "serious", "bool", pairs)), CRF)
    assert list(ag.columns) == AGREEMENT_COLUMNS
    po = (20 + 15) / 50  # 0.70
    pe = (25 / 50) * (30 / 50) + (25 / 50) * (20 / 50)  # 0.30 + 0.20 = 0.50
    r = row(ag, "adverse_events", "serious")
    assert r["kappa"] == pytest.approx((po - pe) / (1 - pe)) == pytest.approx(0.4)
    assert (r["n_compared"], r["n_agree"]) == (50, 35) and r["pct_agree"] == pytest.approx(70.0)
    assert math.isnan(r["icc"])


def test_kappa_counts_a_missing_value_and_an_absent_record_as_categories():
    # a / b: (L1, L1) (L1, L2) (L2, L2) (None, None) (L1, record absent in B)
    pairs = [("L1", "L1"), ("L1", "L2"), ("L2", "L2"), (None, None), ("L1", "ABSENT_B")]
    r = row(agreement_table(comparison(cells("zcmu1", "patients", "cd_location", "code", pairs)), CRF),
            "patients", "cd_location")
    # categories L1, L2, <missing>, <absent>; row margins (A): L1 3, L2 1, missing 1, absent 0
    # column margins (B): L1 1, L2 2, missing 1, absent 1; agreements 3 of 5
    po = 3 / 5
    pe = (3 * 1 + 1 * 2 + 1 * 1 + 0 * 1) / 25  # 6 / 25 = 0.24
    assert r["kappa"] == pytest.approx((po - pe) / (1 - pe))  # 0.36 / 0.76 = 0.4737
    assert r["pct_agree"] == pytest.approx(60.0)


def test_kappa_undefined_is_nan():
    r = row(agreement_table(comparison(cells("zcmu1", "surgeries", "ibd_related", "bool", [("true", "true")] * 4)), CRF),
            "surgeries", "ibd_related")
    assert math.isnan(r["kappa"]) and r["pct_agree"] == 100.0  # pe = 1: kappa is 0/0


def test_icc_shrout_fleiss_1979_table():
    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges
    x = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    n, k = 6, 4
    # their ANOVA (Table 3): BMS = 11.24, JMS = 32.49, EMS = 1.02
    bms, jms, ems = 11.24, 32.49, 1.02
    icc21 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)  # 10.22 / 35.28 = 0.2897
    assert icc21 == pytest.approx(0.29, abs=0.001)
    assert icc_2_1(x) == pytest.approx(icc21, abs=0.001)


def test_icc_two_raters_by_hand_through_the_agreement_table():
    # records present in both rounds with both values: (1,1) (2,3) (3,3) (4,5)
    pairs = [("1", "1"), ("2", "3"), ("3", "3"), ("4", "5"),
             ("9", "ABSENT_B"), (None, "7"), ("6", None)]  # not pairs: excluded from the ICC
    ag = agreement_table(comparison(cells("zcmu1", "assessments", "hbi_pain", "int", pairs)), CRF)
    n, k = 4, 2
    grand = (1 + 1 + 2 + 3 + 3 + 3 + 4 + 5) / 8  # 2.75
    ss_rows = k * ((1 - grand) ** 2 + (2.5 - grand) ** 2 + (3 - grand) ** 2 + (4.5 - grand) ** 2)  # 12.5
    ss_cols = n * ((2.5 - grand) ** 2 + (3 - grand) ** 2)  # 0.5
    ss_total = sum((v - grand) ** 2 for v in (1, 1, 2, 3, 3, 3, 4, 5))  # 13.5
    bms, jms = ss_rows / (n - 1), ss_cols / (k - 1)
    ems = (ss_total - ss_rows - ss_cols) / ((n - 1) * (k - 1))
    expected = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    assert expected == pytest.approx(8 / 9)
    r = row(ag, "assessments", "hbi_pain")
    assert r["icc"] == pytest.approx(expected)
    assert (r["n_compared"], r["n_agree"]) == (7, 2) and math.isnan(r["kappa"])


def test_icc_float_field_and_nan_for_text():
    pairs = [("35", "36"), ("40", "40"), ("28.5", "28.5")]
    ag = agreement_table(comparison(cells("zcmu1", "labs", "value", "float", pairs),
                                    cells("zcmu1", "labs", "unit", "string", [("g/L", "g/L")] * 3)), CRF)
    # (35,36) (40,40) (28.5,28.5): grand = 208 / 6; by the same formulas
    x = np.array([[35, 36], [40, 40], [28.5, 28.5]])
    g = 208 / 6
    ssr = 2 * ((35.5 - g) ** 2 + (40 - g) ** 2 + (28.5 - g) ** 2)
    ssc = 3 * (((35 + 40 + 28.5) / 3 - g) ** 2 + ((36 + 40 + 28.5) / 3 - g) ** 2)
    sse = ((x - g) ** 2).sum() - ssr - ssc
    bms, jms, ems = ssr / 2, ssc / 1, sse / 2
    assert row(ag, "labs", "value")["icc"] == pytest.approx((bms - ems) / (bms + ems + 2 * (jms - ems) / 3))
    assert math.isnan(row(ag, "labs", "unit")["icc"]) and math.isnan(row(ag, "labs", "unit")["kappa"])


def test_percent_agreement_per_field_table_and_center():
    comp = comparison(
        cells("zcmu1", "patients", "sex", "code", [("M", "M")] * 9 + [("M", "F")]),  # 9/10
        cells("zcmu1", "patients", "smoking", "code", [("never", "never")] * 3 + [("never", None)], start=20),  # 3/4
        cells("zcmu1", "labs", "value", "float", [("1", "1")] * 6, start=40),  # 6/6
        cells("zju2", "patients", "sex", "code", [("F", "F")] * 2),  # 2/2
    )
    ag = agreement_table(comp, CRF)
    assert row(ag, "patients", "sex")["pct_agree"] == pytest.approx(90.0)
    assert row(ag, "patients", "smoking")["pct_agree"] == pytest.approx(75.0)
    t = row(ag, "patients", "*")
    assert (t["n_compared"], t["n_agree"]) == (14, 12) and t["pct_agree"] == pytest.approx(100 * 12 / 14)
    overall = row(ag, "*", "*")
    assert (overall["n_compared"], overall["n_agree"]) == (20, 18) and overall["pct_agree"] == pytest.approx(90.0)
    assert row(ag, "*", "*", center="zju2")["pct_agree"] == 100.0
    assert ag[ag["field"] == "*"]["kappa"].isna().all()


def test_gate_names_center_overall_and_five_lowest_fields():
    parts = [cells("zcmu1", "patients", "sex", "code", [("M", "M")] * 100)]
    lows = [("smoking", 1), ("diagnosis", 2), ("cd_location", 3), ("uc_extent", 4), ("cd_behavior", 5), ("height_cm", 6)]
    for i, (f, bad) in enumerate(lows):  # field f: `bad` disagreements of 20
        parts.append(cells("zcmu1", "patients", f, "code", [("a", "a")] * (20 - bad) + [("a", "b")] * bad, start=100 * (i + 1)))
    ag = agreement_table(comparison(*parts), CRF)
    low = lowest_fields(ag, "zcmu1")
    assert low["field"].tolist() == ["height_cm", "cd_behavior", "uc_extent", "cd_location", "diagnosis"]
    passed, msg = agreement_gate(ag, "zcmu1", THRESHOLD)
    # 220 compared, 21 disagreements: 199 / 220 = 90.45 %
    assert not passed
    assert "zcmu1" in msg and "90.45%" in msg and "199/220" in msg
    for f, pct in [("height_cm", "70.0%"), ("cd_behavior", "75.0%"), ("uc_extent", "80.0%"),
                   ("cd_location", "85.0%"), ("diagnosis", "90.0%")]:
        assert f"patients.{f} {pct}" in msg
    assert "smoking" not in msg


def test_gate_threshold_is_inclusive_and_configurable():
    comp = comparison(cells("zcmu1", "patients", "sex", "code", [("M", "M")] * 19 + [("M", "F")]))  # 95 %
    ag = agreement_table(comp, CRF)
    assert agreement_gate(ag, "zcmu1", 95.0)[0] is True
    assert agreement_gate(ag, "zcmu1", 96.0)[0] is False
    passed, msg = agreement_gate(ag, "zju2", 95.0)
    assert not passed and "zju2" in msg and "no sampled patient" in msg
