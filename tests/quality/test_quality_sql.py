"""The quality suite in the database (quality/sql.py): GX's SQL engine on a DuckDB warehouse
gives the results table the pandas path gives on the same tables, examples included, and
runs on the pipeline's own read-write connection."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from ibd_pipeline.config import load_crf, load_settings
from ibd_pipeline.quality import RESULT_COLUMNS, quality_checks, run_quality_suite, run_quality_suite_sql
from ibd_pipeline.store.reads import read_table
from tests.quality.test_quality_cohort import A, B, C, D, cohort, pid
from tests.quality.test_quality_suite import _dirty_tables

TABLES = ("core.patients", "core.medications", "core.surgeries", "core.assessments", "core.labs",
          "core.adverse_events", "analytics.eligibility")


def _write(con, tables: dict[str, pd.DataFrame]) -> None:
    for name, df in tables.items():
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {name.split('.')[0]}")
        con.register("_frame", df)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _frame")
        con.unregister("_frame")


def _dirtier_tables() -> dict[str, pd.DataFrame]:
    """The dirty cohort of test_quality_suite plus failing rows of every other kind of
    expectation: uniqueness (single and compound key), regex, recomputed columns, a row
    without its patient, a serious-by-definition event not marked serious, a stop without
    a reason, an included patient without a baseline score."""
    t = _dirty_tables()
    crf = load_crf()
    p = t["core.patients"]
    p.loc[p["patient_id"] == A, "bmi"] += 1.0  # bmi not weight / height^2
    p.loc[p["patient_id"] == B, "age_at_upa_start"] = 50  # not the completed years
    p.loc[p["patient_id"] == B, "upa_stop_reason"] = None  # stopped without a reason
    twin = p[p["patient_id"] == D].copy()  # the same patient twice
    stranger = p[p["patient_id"] == C].copy()
    stranger["patient_id"] = "not-a-pseudonym"
    t["core.patients"] = pd.concat([p, twin, stranger], ignore_index=True)
    lab = t["core.labs"]
    orphan = lab.iloc[[0]].copy()
    orphan["patient_id"] = pid("nobody")
    t["core.labs"] = pd.concat([lab, lab.iloc[[3]], orphan], ignore_index=True)  # a duplicated lab row
    ae = t["core.adverse_events"]
    ae.loc[ae["patient_id"] == A, ["term", "serious"]] = [crf.serious_by_definition[0], False]
    a = t["core.assessments"]
    a.loc[(a["patient_id"] == D) & (a["day"] == -1), ["mayo_stool", "adapted_mayo", "partial_mayo"]] = pd.NA
    return t


def _both_paths(tmp_path, tables, docs: bool = False, checks=None):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    _write(con, tables)
    settings, crf = load_settings(), load_crf()
    read = {t: read_table(con, t) for t in tables}  # what the pandas path was given (defs read them so)
    expected = run_quality_suite(read, settings, crf, checks=checks)
    got = run_quality_suite_sql(con, settings, crf, docs_dir=tmp_path / "docs" if docs else None, checks=checks)
    return con, expected, got


def _sorted(r: pd.DataFrame) -> pd.DataFrame:
    return r.sort_values("check_id").reset_index(drop=True)


def _assert_same(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert list(got.columns) == RESULT_COLUMNS
    x, y = _sorted(expected), _sorted(got)
    assert list(x["check_id"]) == list(y["check_id"])
    for col in RESULT_COLUMNS:
        differ = x[col].astype(str) != y[col].astype(str)
        assert not differ.any(), f"{col} differs: " + x.loc[differ, ["check_id"]].assign(pandas=x.loc[differ, col], sql=y.loc[differ, col]).to_string()
    pd.testing.assert_frame_equal(x, y)


def test_the_sql_path_gives_the_pandas_results_on_a_clean_cohort(tmp_path):
    _, expected, got = _both_paths(tmp_path, cohort())
    _assert_same(expected, got)
    assert got["passed"].all()
    by_id = got.set_index("check_id")
    assert by_id.loc["compl_baseline_assessments_score", "n_rows"] == 3  # A (CD), C and D (UC) are included
    assert by_id.loc["plaus_temporal_assessments_after_diagnosis", "n_rows"] == 11


def test_the_sql_path_gives_the_pandas_results_on_the_scale_benchmarks_cohort(tmp_path):
    from tests.quality.test_quality_scale import synthetic_core

    _, expected, got = _both_paths(tmp_path, synthetic_core(60))
    _assert_same(expected, got)
    assert got["passed"].all()
    assert got.set_index("check_id").loc["plaus_unique_labs_key", "n_rows"] == 6_000


def test_the_sql_path_gives_the_pandas_results_with_failing_rows_of_every_kind(tmp_path):
    con, expected, got = _both_paths(tmp_path, _dirtier_tables(), docs=True)
    _assert_same(expected, got)
    r = got.set_index("check_id")
    failing = r[r["n_failed"] > 0]
    # failing rows in every Kahn category and of every kind of expectation but the type checks
    assert set(failing["category"]) == {"conformance", "completeness", "plausibility"}
    kinds = set(failing["gx_expectation"])
    assert {"expect_column_values_to_be_in_set", "expect_column_values_to_match_regex",
            "expect_column_values_to_be_between", "expect_column_values_to_not_be_null",
            "expect_column_values_to_be_null", "expect_column_values_to_be_unique",
            "expect_compound_columns_to_be_unique", "expect_column_pair_values_to_be_equal",
            "expect_column_pair_values_a_to_be_greater_than_b"} <= kinds
    # the examples name the failing rows, in table order, with the values compared
    twin = json.loads(r.loc["plaus_unique_patients_key", "examples"])
    assert [e["patient_id"] for e in twin] == [D, D] and r.loc["plaus_unique_patients_key", "n_failed"] == 2
    dup = json.loads(r.loc["plaus_unique_labs_key", "examples"])
    assert len(dup) == 2 and dup[0] == dup[1] and set(dup[0]) == {"patient_id", "sample_date", "test"}
    orphan = json.loads(r.loc["conf_relational_labs_patient_id", "examples"])
    assert orphan == [{"patient_id": pid("nobody"), "sample_date": orphan[0]["sample_date"], "test": "CRP", "in_core_patients": False}]
    bmi = json.loads(r.loc["conf_computed_patients_bmi", "examples"])
    assert [e["patient_id"] for e in bmi] == [A] and bmi[0]["bmi_abs_diff"] == pytest.approx(1.0)
    age = json.loads(r.loc["conf_computed_patients_age_at_upa_start", "examples"])
    assert age == [{"patient_id": B, "birth_date": "1990-07-01", "upa_start_date": "2024-02-01",
                    "age_at_upa_start": 50.0, "age_at_upa_start_recomputed": 33.0}]
    baseline = json.loads(r.loc["compl_baseline_assessments_score", "examples"])
    assert baseline == [{"patient_id": D, "diagnosis": "UC", "upa_start_date": "2024-04-10", "baseline_score": None}]
    assert r.loc["conf_pattern_patients_patient_id", "n_failed"] == 1
    # the Data Docs: an index, the static summary, a validation page per check
    docs = tmp_path / "docs"
    assert (docs / "index.html").is_file() and (docs / "quality_summary.html").is_file()
    pages = {p.relative_to(docs / "validations").parts[0] for p in (docs / "validations").glob("*/*/*/*.html")}
    assert set(got["check_id"]) <= pages
    # the connection is the caller's, open and unchanged: no view of the suite is left in it
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '_gx_%'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM core.patients").fetchone()[0] == 7


def test_a_type_check_on_a_text_column_is_validated_value_by_value_as_in_pandas(tmp_path):
    t = cohort()
    s = t["core.surgeries"]
    s["surgery_date"] = s["surgery_date"].dt.strftime("%Y-%m-%d")  # dates delivered as text
    checks = [c for c in quality_checks(load_settings(), load_crf())
              if c.check_id in ("conf_type_surgeries_surgery_date", "conf_type_patients_birth_date")]
    _, expected, got = _both_paths(tmp_path, t, checks=checks)
    _assert_same(expected, got)
    r = got.set_index("check_id")
    assert (r.loc["conf_type_surgeries_surgery_date", "n_failed"], r.loc["conf_type_surgeries_surgery_date", "n_rows"]) == (3, 3)
    assert json.loads(r.loc["conf_type_surgeries_surgery_date", "examples"])[0]["surgery_date"] == "2016-03-01"
    assert r.loc["conf_type_patients_birth_date", "passed"]


def test_a_missing_input_table_is_reported_as_not_run_by_both_paths(tmp_path):
    t = cohort()
    del t["analytics.eligibility"]
    _, expected, got = _both_paths(tmp_path, t)
    _assert_same(expected, got)
    row = got.set_index("check_id").loc["compl_baseline_assessments_score"]
    assert "[not run: analytics.eligibility not available]" in row["description"] and row["n_rows"] == 0


def test_the_suite_runs_on_the_pipelines_read_write_connection_without_a_lock_error(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))  # the pipeline's connection: read-write, held for the whole run
    _write(con, cohort())
    # another connection to the file is refused while the pipeline holds it (DuckDB: one
    # read-write process, or many read-only) - why GX must not open the file itself
    with pytest.raises(duckdb.IOException, match="[Ll]ock"):
        _open_elsewhere(path)
    con.execute("CREATE TABLE analytics.written_before AS SELECT 1 AS x")  # the run writes before ...
    setting = "SELECT current_setting('memory_limit')"
    default = con.execute(setting).fetchone()[0]
    results = run_quality_suite_sql(con, load_settings(), load_crf())
    assert con.execute(setting).fetchone()[0] == default  # the suite's limit (checks.yaml) reset after
    con.execute("SET memory_limit = '3GiB'")  # a limit the pipeline sets is its own: kept
    run_quality_suite_sql(con, load_settings(), load_crf(), checks=quality_checks(load_settings(), load_crf())[:3])
    assert con.execute(setting).fetchone()[0] == "3.0 GiB"
    con.execute("CREATE TABLE analytics.written_after AS SELECT 2 AS x")  # ... and after the suite
    assert results["passed"].all() and len(results) == len(quality_checks(load_settings(), load_crf()))
    assert con.execute("SELECT (SELECT x FROM analytics.written_before) + (SELECT x FROM analytics.written_after)").fetchone()[0] == 3


def _open_elsewhere(path) -> None:
    """Open the warehouse read-only from another process (raises what it raised there)."""
    import subprocess
    import sys

    code = f"import duckdb; duckdb.connect({str(path)!r}, read_only=True)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise duckdb.IOException(done.stderr.strip().splitlines()[-1])
