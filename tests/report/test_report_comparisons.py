"""Published vs derived by configuration (issue 15 item 4): each entry of a study's
comparisons.yaml derives one published figure with SQL and compares it by its kind; every
figure of the published file must be compared or given a reason."""

from __future__ import annotations

import duckdb
import pytest

from ibd_pipeline.report.comparisons import (
    ComparisonConfigError,
    compare_declared,
    figure_paths,
    load_comparisons,
    uncovered_figures,
)

PUBLISHED = {
    "flow": {"screened": None, "included": 108},
    "endpoints": {"clinical_remission": {"week12": {"n": 54, "N": 98, "pct": 55.1}}},
    "baseline": {"age_years": {"median": 29, "iqr": [23, 34]}},
    "persistence": {"km_percent": {"m3": 87.5, "m6": 83.7}},
    "cox": {"univariate": {"alb_le_35": {"hr": 3.25, "ci": [1.35, 7.82], "p": 0.008},
                           "male": {"hr": 1.44, "ci": [0.52, 3.96], "p": 0.479}}},
}

YAML = """
- {figure: flow.screened, not_derived: the paper reports no screened count}
- {figure: flow.included, compare: value, tolerance: 0, sql: "SELECT count(*) AS value FROM pts"}
- figure: endpoints.clinical_remission.week12
  compare: count
  sql: SELECT 54 AS n, 98 AS n_total
- {figure: baseline.age_years, compare: summary, tolerance: 1, sql: "SELECT 30 AS median, 24 AS q1, 33 AS q3"}
- {figure: persistence.km_percent.m3, compare: value, tolerance: 0.5, sql: "SELECT 87.9 AS value"}
- {figure: persistence.km_percent.m6, compare: value, tolerance: 0.5, sql: "SELECT 84.3 AS value"}
- {figure: cox.univariate.alb_le_35, compare: estimate, sql: "SELECT 2.9 AS estimate, 0.01 AS p", reading: the printed model}
- {figure: cox.univariate.male, compare: estimate, sql: "SELECT 1.3 AS estimate, 0.04 AS p"}
"""


@pytest.fixture
def query(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE pts AS SELECT range AS id FROM range(108)")
    yield lambda sql: con.execute(sql).df()
    con.close()


def test_each_kind_is_compared_by_its_rule(tmp_path, query):
    f = tmp_path / "comparisons.yaml"
    f.write_text(YAML)
    out = compare_declared(PUBLISHED, load_comparisons(f), query).set_index("quantity")
    assert out.loc["screened", "match"] is None and "not derived: the paper" in out.loc["screened", "note"]
    assert out.loc["included", "match"] and out.loc["included", "derived"] == "108"
    assert out.loc["clinical_remission.week12", "match"] and out.loc["clinical_remission.week12", "derived"] == "54/98 (55.1%)"
    assert out.loc["age_years", "match"] and out.loc["age_years", "derived"] == "30 (24-33)"
    assert out.loc["km_percent.m3", "match"] and not out.loc["km_percent.m6", "match"]  # 0.6 points off
    assert out.loc["univariate.alb_le_35", "match"] and "reading reproduced: the printed model" in out.loc["univariate.alb_le_35", "note"]
    assert not out.loc["univariate.male", "match"]  # same direction, but selected at p < 0.05 where the paper's was not


def test_a_missing_table_is_not_available_not_a_crash(tmp_path, query):
    f = tmp_path / "c.yaml"
    f.write_text("- {figure: flow.included, compare: value, tolerance: 0, sql: 'SELECT value FROM analytics.nothing'}\n")
    out = compare_declared(PUBLISHED, load_comparisons(f), query)
    assert out.loc[0, "match"] is None and out.loc[0, "note"].startswith("not available: CatalogException")


@pytest.mark.parametrize("text, message", [
    ("- {figure: flow.included, compare: value, sql: 'SELECT 1 AS value'}", "needs a tolerance"),
    ("- {figure: flow.included, compare: guess, sql: 'SELECT 1'}", "needs compare (one of count, value, summary, estimate, p, text)"),
    ("- {figure: flow.included, compare: value, tolerance: 0, sql: 'SELECT 1', tolerence: 1}", "unknown keys ['tolerence']"),
])
def test_a_broken_entry_names_the_file_entry_and_figure(tmp_path, text, message):
    f = tmp_path / "c.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ComparisonConfigError) as e:
        load_comparisons(f)
    assert str(f) in str(e.value) and "flow.included" in str(e.value) and message in str(e.value)


def test_every_published_figure_must_be_covered(tmp_path):
    assert figure_paths(PUBLISHED) == [
        "flow.screened", "flow.included", "endpoints.clinical_remission.week12", "baseline.age_years",
        "persistence.km_percent.m3", "persistence.km_percent.m6", "cox.univariate.alb_le_35", "cox.univariate.male"]
    f = tmp_path / "c.yaml"
    f.write_text(YAML)
    assert uncovered_figures(PUBLISHED, load_comparisons(f)) == []
    f.write_text("- {figure: persistence, not_derived: whole section left out}\n")
    assert uncovered_figures(PUBLISHED, load_comparisons(f))[0] == "flow.screened"
    assert "persistence.km_percent.m3" not in uncovered_figures(PUBLISHED, load_comparisons(f))
