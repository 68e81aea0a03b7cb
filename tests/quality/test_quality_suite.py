"""The Great Expectations quality suite (Kahn framework) on small hand-made core tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from ibd_pipeline.config import load_crf, load_settings, with_overrides
from ibd_pipeline.quality import (
    CATEGORIES,
    RESULT_COLUMNS,
    SUBCATEGORIES,
    QualityCheck,
    grouped_results,
    quality_checks,
    result_metadata,
    run_quality_suite,
)
from tests.quality.test_quality_cohort import A, B, C, D, cohort, pid


def _row(results: pd.DataFrame, check_id: str) -> pd.Series:
    hit = results[results["check_id"] == check_id]
    assert len(hit) == 1, f"{check_id} not in the results"
    return hit.iloc[0]


def _examples(row) -> list[dict]:
    return json.loads(row["examples"])


def _dirty_tables() -> dict[str, pd.DataFrame]:
    """The clean cohort with one deliberate defect per rule under test."""
    t = {k: v.copy() for k, v in cohort().items()}
    a = t["core.assessments"]
    # a visit before the diagnosis date (A was diagnosed 2010-05-01)
    early = a[a["patient_id"] == A].iloc[[0]].copy()
    early["visit_date"] = pd.Timestamp("2009-06-01")
    early["day"] = (pd.Timestamp("2009-06-01") - pd.Timestamp("2024-01-15")).days
    for col in ("hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications", "hbi_total", "ses_cd"):
        early[col] = pd.NA
    # an HBI item recorded for a UC patient
    a.loc[(a["patient_id"] == D) & (a["day"] == 56), "hbi_pain"] = 2
    t["core.assessments"] = pd.concat([a, early.astype(a.dtypes.to_dict())], ignore_index=True)
    p = t["core.patients"]
    p.loc[p["patient_id"] == B, "sex"] = "X"  # unknown code
    p.loc[p["patient_id"] == C, "uc_extent"] = None  # a UC patient without Montreal extent
    lab = t["core.labs"]
    i = lab.index[(lab["patient_id"] == B) & (lab["test"] == "CRP")][0]
    lab.loc[i, ["value", "unit"]] = [1.25, "mg/dL"]  # not the canonical unit
    j = lab.index[(lab["patient_id"] == C) & (lab["test"] == "HB")][0]
    lab.loc[j, "value"] = 11.8  # a g/dL value in a g/L column
    return t


@pytest.fixture(scope="module")
def clean_results() -> pd.DataFrame:
    return run_quality_suite(cohort(), load_settings(), load_crf())


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    docs = tmp_path_factory.mktemp("quality_docs")
    return run_quality_suite(_dirty_tables(), load_settings(), load_crf(), docs_dir=docs), docs


# ----------------------------------------------------------------------------- the suite
def test_the_suite_is_declared_as_data_with_kahn_categories():
    checks = quality_checks(load_settings(), load_crf())
    assert len({c.check_id for c in checks}) == len(checks)
    assert {c.category for c in checks} == set(CATEGORIES)
    assert {c.subcategory for c in checks} <= set(SUBCATEGORIES)
    by_id = {c.check_id: c for c in checks}
    # thresholds come from checks.yaml: hard rules 0, soft completeness 5 %
    assert by_id["plaus_temporal_assessments_after_diagnosis"].threshold == 0.0
    assert by_id["compl_anthro_patients_height_cm"].threshold == 0.05
    assert by_id["compl_anthro_patients_height_cm"].limit_for_error == pytest.approx(0.10)
    # the expectation is a GX class named as data (GX is not imported to declare the suite)
    assert by_id["plaus_temporal_assessments_after_diagnosis"].gx_expectation == "expect_column_pair_values_a_to_be_greater_than_b"
    assert by_id["conf_code_patients_sex"].kwargs["value_set"] == ["M", "F"]


def test_importing_the_package_does_not_import_great_expectations():
    code = "import sys, ibd_pipeline.quality as q; q.quality_checks; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_settings_override_thresholds_and_reject_unknown_check_ids():
    s = with_overrides(load_settings(), {"quality": {"thresholds": {"compl_anthro_patients_height_cm": {"threshold": 0.02, "error_threshold": 0.5}}}})
    c = {c.check_id: c for c in quality_checks(s, load_crf())}["compl_anthro_patients_height_cm"]
    assert (c.threshold, c.limit_for_error) == (0.02, 0.5)
    with pytest.raises(ValueError, match="unknown checks"):
        quality_checks(with_overrides(load_settings(), {"quality": {"thresholds": {"no_such_check": 0.1}}}), load_crf())


# ----------------------------------------------------------------------------- clean cohort
def test_a_clean_cohort_passes_every_check(clean_results):
    r = clean_results
    assert list(r.columns) == RESULT_COLUMNS
    bad = r[r["severity"] != "ok"]
    assert bad.empty, bad[["check_id", "n_failed", "examples"]].to_string()
    assert r["passed"].all()
    assert not r["description"].str.contains("not run").any()
    # the rules were evaluated on real rows, not vacuously
    for cid in ("plaus_temporal_assessments_after_diagnosis", "conf_unit_labs_unit", "compl_dx_patients_uc_extent",
                "compl_baseline_assessments_score", "conf_computed_patients_age_at_upa_start", "plaus_limits_labs_value_low"):
        assert _row(r, cid)["n_rows"] > 0, cid
    assert _row(r, "compl_baseline_assessments_score")["n_rows"] == 3  # A (CD), C and D (UC) are included


# ----------------------------------------------------------------------------- defects
def test_a_visit_before_the_diagnosis_date_fails_plausibility_and_names_the_row(dirty):
    r, _ = dirty
    row = _row(r, "plaus_temporal_assessments_after_diagnosis")
    assert (row["category"], row["subcategory"]) == ("plausibility", "temporal")
    assert not row["passed"] and row["severity"] == "error"
    assert row["n_failed"] == 1 and row["n_rows"] == 12
    assert row["gx_expectation"] == "expect_column_pair_values_a_to_be_greater_than_b"
    ex = _examples(row)
    assert ex[0]["patient_id"] == A
    assert ex[0]["visit_date"] == "2009-06-01"
    assert ex[0]["diagnosis_date"] == "2010-05-01"
    meta = result_metadata(row)  # what an asset check carries
    assert meta["examples"] == ex and meta["severity"] == "error" and meta["n_failed"] == 1


def test_the_asset_checks_group_expectations_by_table_and_category_with_the_worst_severity(dirty, clean_results):
    r, _ = dirty
    groups = {(g["table_name"], g["category"]): g for g in grouped_results(r)}
    # one group per (table, Kahn category) that has expectations, every expectation in exactly one group
    assert set(groups) == set(zip(r["table_name"], r["category"]))
    assert sum(g["n_expectations"] for g in groups.values()) == len(r)
    g = groups[("core.assessments", "plausibility")]
    assert g["check_name"] == "plausibility_within_thresholds"
    assert not g["passed"] and g["severity"] == "error"
    first = g["expectations"][0]  # failing expectations are listed first, with their rows
    assert first["severity"] == "error"
    failing_ids = {e["check_id"] for e in g["expectations"] if e["severity"] != "ok"}
    assert "plaus_temporal_assessments_after_diagnosis" in failing_ids
    assert g["n_failed_expectations"] == len(failing_ids)
    temporal = next(e for e in g["expectations"] if e["check_id"] == "plaus_temporal_assessments_after_diagnosis")
    assert temporal["examples"][0]["patient_id"] == A
    # a clean cohort: every group passes with severity ok
    assert all(g["passed"] and g["severity"] == "ok" for g in grouped_results(clean_results))


def test_an_unknown_code_fails_conformance(dirty):
    r, _ = dirty
    row = _row(r, "conf_code_patients_sex")
    assert (row["category"], row["subcategory"], row["severity"]) == ("conformance", "value", "error")
    assert _examples(row) == [{"patient_id": B, "sex": "X"}]


def test_a_missing_uc_extent_for_a_uc_patient_fails_completeness(dirty):
    r, _ = dirty
    row = _row(r, "compl_dx_patients_uc_extent")
    assert row["category"] == "completeness"
    assert (row["n_rows"], row["n_failed"], row["threshold"]) == (2, 1, 0.05)
    assert not row["passed"] and row["severity"] == "error"
    assert _examples(row)[0]["patient_id"] == C
    # CD patients are not asked for uc_extent
    assert _row(r, "compl_dx_patients_cd_location")["passed"]


def test_a_lab_in_a_non_canonical_unit_fails_conformance(dirty):
    r, _ = dirty
    row = _row(r, "conf_unit_labs_unit")
    assert (row["category"], row["severity"], row["n_failed"]) == ("conformance", "error", 1)
    ex = _examples(row)[0]
    assert (ex["patient_id"], ex["test"], ex["unit"]) == (B, "CRP", "mg/dL")
    assert ex["sample_date"] == "2024-01-30"


def test_an_unconverted_value_is_outside_the_physiological_limits(dirty):
    r, _ = dirty
    row = _row(r, "plaus_limits_labs_value_low")
    assert not row["passed"]
    ex = _examples(row)[0]
    assert (ex["patient_id"], ex["test"], ex["value"], ex["physiological_low"]) == (C, "HB", 11.8, 20.0)


def test_hbi_items_for_a_uc_patient_are_implausible(dirty):
    r, _ = dirty
    row = _row(r, "plaus_dx_assessments_cd_fields")
    assert not row["passed"]
    ex = _examples(row)[0]
    assert (ex["patient_id"], ex["cd_fields_recorded"], ex["diagnosis"]) == (D, "hbi_pain", "UC")
    assert _row(r, "plaus_dx_assessments_uc_fields")["passed"]


def test_other_checks_are_unaffected_by_the_defects(dirty):
    r, _ = dirty
    failed = set(r.loc[~r["passed"], "check_id"])
    assert failed == {
        "plaus_temporal_assessments_after_diagnosis", "conf_code_patients_sex", "compl_dx_patients_uc_extent",
        "conf_unit_labs_unit", "plaus_limits_labs_value_low", "plaus_dx_assessments_cd_fields",
    }


# ----------------------------------------------------------------------------- thresholds
def _height_cohort(n_missing: int, n: int = 100) -> dict[str, pd.DataFrame]:
    p = cohort()["core.patients"]
    rows = p.iloc[[0] * n].reset_index(drop=True)
    rows["patient_id"] = [pid(f"T{i}") for i in range(n)]
    if n_missing:
        rows.loc[: n_missing - 1, "height_cm"] = float("nan")
    return {"core.patients": rows}


@pytest.mark.parametrize(
    "n_missing, severity",
    [(0, "ok"), (1, "ok"), (5, "ok"), (7, "warn"), (10, "warn"), (11, "error"), (40, "error")],
)
def test_thresholds_decide_the_severity(n_missing, severity):
    check = {c.check_id: c for c in quality_checks(load_settings(), load_crf())}["compl_anthro_patients_height_cm"]
    assert (check.threshold, check.limit_for_error) == (0.05, pytest.approx(0.10))
    r = run_quality_suite(_height_cohort(n_missing), load_settings(), load_crf(), checks=[check]).iloc[0]
    assert (r["n_rows"], r["n_failed"]) == (100, n_missing)
    assert r["failed_share"] == pytest.approx(n_missing / 100)
    assert r["severity"] == severity
    assert r["passed"] == (severity == "ok")


def test_the_error_multiple_and_per_check_thresholds_are_settings():
    s = with_overrides(load_settings(), {"quality": {"error_multiple": 4}})
    check = {c.check_id: c for c in quality_checks(s, load_crf())}["compl_anthro_patients_height_cm"]
    assert run_quality_suite(_height_cohort(15), s, load_crf(), checks=[check]).iloc[0]["severity"] == "warn"
    s = with_overrides(load_settings(), {"quality": {"thresholds": {"compl_anthro_patients_height_cm": 0.0}}})
    check = {c.check_id: c for c in quality_checks(s, load_crf())}["compl_anthro_patients_height_cm"]
    assert run_quality_suite(_height_cohort(1), s, load_crf(), checks=[check]).iloc[0]["severity"] == "error"


def test_severity_rule():
    c = QualityCheck("x_check", "completeness", "value", "core.patients", "height_cm", "d", threshold=0.05, error_threshold=0.1)
    assert [c.severity(s) for s in (0.0, 0.05, 0.0500001, 0.1, 0.11)] == ["ok", "ok", "warn", "warn", "error"]
    hard = QualityCheck("y_check", "plausibility", "temporal", "core.patients", None, "d", threshold=0.0, error_threshold=0.0)
    assert [hard.severity(s) for s in (0.0, 0.001)] == ["ok", "error"]


# ----------------------------------------------------------------------------- inputs, scale
def test_without_eligibility_the_baseline_check_is_reported_as_not_run():
    t = cohort()
    del t["analytics.eligibility"]
    checks = [c for c in quality_checks(load_settings(), load_crf()) if c.frame == "baseline@included"]
    r = run_quality_suite(t, load_settings(), load_crf(), checks=checks).iloc[0]
    assert r["n_rows"] == 0 and r["passed"] and "not run: analytics.eligibility" in r["description"]


def test_a_missing_column_is_a_conformance_error():
    t = cohort()
    t["core.labs"] = t["core.labs"].drop(columns=["unit"])
    checks = [c for c in quality_checks(load_settings(), load_crf()) if c.check_id == "conf_unit_labs_unit"]
    r = run_quality_suite(t, load_settings(), load_crf(), checks=checks).iloc[0]
    assert r["severity"] == "error" and "unit" in _examples(r)[0]["error"]


def test_values_of_the_wrong_type_fail_type_conformance():
    t = cohort()
    t["core.labs"] = t["core.labs"].assign(value=t["core.labs"]["value"].astype(str))  # numbers as text
    t["core.patients"] = t["core.patients"].assign(birth_date=t["core.patients"]["birth_date"].dt.strftime("%d/%m/%Y"))
    checks = [c for c in quality_checks(load_settings(), load_crf()) if c.check_id in ("conf_type_labs_value", "conf_type_patients_birth_date")]
    checks += [c for c in quality_checks(load_settings(), load_crf()) if c.check_id == "plaus_range_labs_value"]
    r = run_quality_suite(t, load_settings(), load_crf(), checks=checks).set_index("check_id")
    assert r.loc["conf_type_labs_value", "n_failed"] == 30 and r.loc["conf_type_labs_value", "severity"] == "error"
    # a range cannot be evaluated on text: the check errs with GX's message
    assert r.loc["plaus_range_labs_value", "severity"] == "error"
    assert "same type" in _examples(r.loc["plaus_range_labs_value"])[0]["error"]
    ex = _examples(r.loc["conf_type_patients_birth_date"])[0]
    assert ex["patient_id"] == A and ex["birth_date"] == "10/03/1985"


def test_a_frame_that_cannot_be_built_fails_its_checks_without_stopping_the_suite():
    t = cohort()
    t["core.patients"] = t["core.patients"].drop(columns=["diagnosis"])
    checks = [c for c in quality_checks(load_settings(), load_crf())
              if c.check_id in ("compl_dx_patients_uc_extent", "compl_required_patients_sex")]
    r = run_quality_suite(t, load_settings(), load_crf(), checks=checks).set_index("check_id")
    assert r.loc["compl_dx_patients_uc_extent", "severity"] == "error"
    assert "diagnosis" in _examples(r.loc["compl_dx_patients_uc_extent"])[0]["error"]
    assert r.loc["compl_required_patients_sex", "passed"]


def test_large_frames_are_validated_whole_and_examples_found_by_slices():
    """Above gx.complete_max_failures failing rows the whole frame is validated with BASIC
    (counts) only and the failing rows are found by re-validating row slices with COMPLETE."""
    t = cohort()
    lab = t["core.labs"]
    big = pd.concat([lab] * 40, ignore_index=True)  # 1200 rows
    big["sample_date"] = big["sample_date"] - pd.to_timedelta(big.index // len(lab), unit="D")
    big.loc[1000, "unit"] = "mg/dL"
    big.loc[1100:1104, "value"] = -1.0
    t["core.labs"] = big
    s = with_overrides(load_settings(), {"quality": {"gx": {"complete_max_failures": 2, "example_slice_rows": {"min": 50, "max": 200}}}})
    ids = ("conf_unit_labs_unit", "plaus_range_labs_value", "plaus_unique_labs_key")
    checks = [c for c in quality_checks(s, load_crf()) if c.check_id in ids]
    r = run_quality_suite(t, s, load_crf(), checks=checks).set_index("check_id")
    # 1 failure (<= 2): COMPLETE on the whole frame
    assert (r.loc["conf_unit_labs_unit", "n_rows"], r.loc["conf_unit_labs_unit", "n_failed"]) == (1200, 1)
    ex = _examples(r.loc["conf_unit_labs_unit"])[0]
    assert ex["unit"] == "mg/dL" and ex["patient_id"] == big.loc[1000, "patient_id"]
    # 5 failures (> 2): BASIC counts, examples from slices
    assert r.loc["plaus_range_labs_value", "n_failed"] == 5
    ex = _examples(r.loc["plaus_range_labs_value"])
    assert len(ex) == 5 and {e["value"] for e in ex} == {-1.0}
    assert [e["sample_date"] for e in ex] == [d.date().isoformat() for d in big.loc[1100:1104, "sample_date"]]
    assert r.loc["plaus_unique_labs_key", "passed"]


# ----------------------------------------------------------------------------- Data Docs
def test_data_docs_are_built_and_name_the_failed_expectation(dirty):
    r, docs = dirty
    index = docs / "index.html"
    assert index.exists()
    html = index.read_text(encoding="utf-8")
    assert "plaus_temporal_assessments_after_diagnosis" in html
    assert "expect_column_pair_values_a_to_be_greater_than_b" in html
    pages = list((docs / "validations" / "plaus_temporal_assessments_after_diagnosis").rglob("*.html"))
    assert pages, "no validation page for the failed check"
    page = pages[0].read_text(encoding="utf-8")
    assert A in page  # the failing row's patient_id (unexpected_index_column_names)
    summary = (docs / "quality_summary.html").read_text(encoding="utf-8")
    assert "plaus_temporal_assessments_after_diagnosis" in summary and "<script" not in summary
