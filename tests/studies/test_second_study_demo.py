"""The second study runs on the same code by configuration alone (issue 15): `ibd-pipeline
--study single_center_cd demo` generates the calibrated REDCap export, runs the single-
center study end to end in its own data directory and reproduces its published figures in
the report's published-vs-derived (every count exactly, Kaplan-Meier within 0.5 points,
20 discontinuations: 17 inefficacy, 3 AEs)."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
import yaml

from tests.support.fullrun import PROJECT, clean_env
from ibd_pipeline.report.comparisons import compare_declared, load_comparisons

STUDY_DIR = PROJECT / "studies" / "single_center_cd"


@pytest.fixture(scope="module")
def second_study(tmp_path_factory):
    data = tmp_path_factory.mktemp("single_center_cd")
    env = clean_env(data, IBD_STUDY="single_center_cd")
    p = subprocess.run([sys.executable, "-m", "ibd_pipeline.cli", "demo"], env=env, cwd=PROJECT,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return data, p.stdout


def test_the_second_study_runs_end_to_end_from_its_redcap_export(second_study):
    data, out = second_study
    assert "intake ahmu/redcap_records_" in out and "intake ahmu/redcap_dictionary_" in out
    assert "center ahmu: ok" in out and "study: ok" in out
    assert (data / "warehouse.duckdb").exists() and (data / "analytics.duckdb").exists()
    html = (data / "reports" / "study_report.html").read_text(encoding="utf-8")
    assert "published figures compared with the pipeline" in html
    assert "Center heterogeneity" not in html  # a section the study's report leaves out
    assert "Clinical response (HBI decrease \u2265 3 points from baseline)" in html  # its rules, from its settings
    assert "CRP remission (\u2264 5 mg/L)" in html
    assert '<section id="pk">' in html  # its PK substudy (statistics.pharmacokinetics) has its section
    cox = html[html.index('<section id="cox">'):]
    cox = cox[:cox.index("</section>")]
    # one center: no strata; its model as printed (statistics.cox_selection: univariate)
    assert "stratified by center" not in cox and "entered together" in cox
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        # one abstraction: no sample, no agreement gate
        tables = {t for (t,) in con.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}
        assert "analytics.reabstraction_sample" not in tables and "analytics.dtt_criteria" not in tables
        assert con.execute("SELECT count(*) FROM analytics.eligibility WHERE included").fetchone()[0] == 108
    finally:
        con.close()


@pytest.fixture(scope="module")
def compared(second_study):
    """(published figures, declared comparisons, their published-vs-derived rows) of the demo's warehouse."""
    data, _ = second_study
    published = yaml.safe_load((STUDY_DIR / "published_figures.yaml").read_text(encoding="utf-8"))
    comparisons = load_comparisons(STUDY_DIR / "comparisons.yaml")
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        out = compare_declared(published, comparisons, lambda sql: con.execute(sql).df())
    finally:
        con.close()
    return published, comparisons, out


def test_the_second_studys_published_counts_and_km_are_reproduced(compared):
    _, comparisons, out = compared
    out = out.copy()
    kinds = {c.figure: c.compare for c in comparisons}
    out["kind"] = [kinds[f"{d}.{q}" if q else d] for d, q in zip(out["domain"], out["quantity"])]
    counts = out[out["kind"] == "count"]
    assert len(counts) == sum(c.compare == "count" for c in comparisons)
    assert counts["match"].all(), counts.loc[counts["match"] != True, ["quantity", "published", "derived"]]  # noqa: E712
    km = out[(out["domain"] == "persistence") & out["quantity"].str.startswith("km_percent.")]
    assert len(km) == 4 and km["match"].all(), km[["quantity", "published", "derived"]]
    rows = out.set_index(["domain", "quantity"])
    for q in ("discontinued", "reasons.inefficacy", "reasons.adverse_event"):
        assert rows.loc[("persistence", q), "match"], q
    # the inconsistent figures say which reading is reproduced
    assert "8/108" in rows.loc[("safety", "ae_leading_to_discontinuation.pct"), "note"]


def test_the_second_studys_model_terms_are_reproduced_in_direction_and_side_of_alpha(compared):
    """Every published week-12 logistic and discontinuation Cox term holds (same side of 1,
    same side of p 0.05), the multivariable Cox BMI term with its p >= 0.05 included: the
    study's Cox model enters the univariate p < 0.05 variables together, so every
    published term can be printed."""
    from ibd_pipeline.synth.sc_calibrate import model_targets
    from ibd_pipeline.synth.single_center import cox_reachable, flat_settings

    published, comparisons, out = compared
    settings = yaml.safe_load((STUDY_DIR / "study.yaml").read_text(encoding="utf-8"))
    out = out.copy()
    out["figure"] = [f"{d}.{q}" if q else d for d, q in zip(out["domain"], out["quantity"])]
    kinds = {c.figure: c.compare for c in comparisons}
    estimates = out[out["figure"].map(kinds) == "estimate"]
    s = flat_settings(settings)
    targets = model_targets(published, s["alpha"])
    unreachable = {t.figure for t in targets if not cox_reachable(t, s)}
    assert set(estimates["figure"]) == {t.figure for t in targets}
    assert unreachable == set()
    assert (estimates["match"] == True).all(), estimates.loc[estimates["match"] != True, ["figure", "published", "derived"]]  # noqa: E712
