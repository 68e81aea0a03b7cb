"""The quality suite validates again only the frames whose tables changed
(quality/reuse.py, issue 14): the results are those of a full run, and the Data Docs
still list every check."""

from __future__ import annotations

import re

import duckdb
import pytest

from ibd_pipeline.config import load_crf, load_settings
from ibd_pipeline.quality import SuiteCache, frame_inputs, quality_checks, run_quality_suite_sql
from tests.quality.test_quality_sql import _dirtier_tables, _write


@pytest.fixture()
def warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    _write(con, _dirtier_tables())
    yield con
    con.close()


def _frames_reading(table: str) -> set[str]:
    return {c.frame for c in quality_checks(load_settings(), load_crf()) if table in frame_inputs(c.frame)}


def _pages(docs) -> dict:
    """Every validation page and when it was written."""
    return {p: p.stat().st_mtime_ns for p in (docs / "validations").glob("*/*/*/*.html")}


def _linked_validations(docs) -> set[str]:
    """The checks the Data Docs index links a validation page of (every linked page exists)."""
    links = set(re.findall(r"validations/[^\"]+?\.html", (docs / "index.html").read_text(encoding="utf-8")))
    assert links and all((docs / link).is_file() for link in links)
    return {link.split("/")[1] for link in links}


def test_a_changed_table_revalidates_only_its_frames_and_the_results_equal_a_full_run(warehouse, tmp_path):
    settings, crf = load_settings(), load_crf()
    cache = SuiteCache(tmp_path / "cache", "v1")
    first = run_quality_suite_sql(warehouse, settings, crf, docs_dir=tmp_path / "docs1", cache=cache)
    assert cache.reused == []
    all_frames = {c.frame for c in quality_checks(settings, crf)}

    again = run_quality_suite_sql(warehouse, settings, crf, docs_dir=tmp_path / "docs2", cache=cache)
    assert set(cache.reused) == all_frames  # nothing changed: nothing validated
    assert again.equals(first)
    # the Data Docs of a run that validated nothing still hold every check's page
    assert _linked_validations(tmp_path / "docs2") == set(first["check_id"])

    # one lab value out of its physiological range: the lab frames, and only they, run again
    warehouse.execute("UPDATE core.labs SET value = 99999 WHERE rowid = (SELECT min(rowid) FROM core.labs)")
    # into the Data Docs of the run before: only the lab frames' pages are drawn again
    before = _pages(tmp_path / "docs2")
    changed = run_quality_suite_sql(warehouse, settings, crf, docs_dir=tmp_path / "docs2", cache=cache)
    assert set(cache.reused) == all_frames - _frames_reading("core.labs")
    assert _frames_reading("core.labs") and _frames_reading("core.labs") != all_frames
    full = run_quality_suite_sql(warehouse, settings, crf, docs_dir=tmp_path / "docs4")
    assert changed.equals(full)  # every column, examples included
    assert not changed.equals(first)  # the change is seen
    assert _linked_validations(tmp_path / "docs2") == _linked_validations(tmp_path / "docs4") == set(full["check_id"])
    labs = {c.check_id for c in quality_checks(settings, crf) if c.frame in _frames_reading("core.labs")}
    drawn = {p for p, t in _pages(tmp_path / "docs2").items() if before.get(p) != t}  # new or rewritten
    assert {p.relative_to(tmp_path / "docs2").parts[1] for p in drawn} == labs


def test_a_reordered_table_or_another_code_version_is_validated_again(warehouse, tmp_path):
    """The examples are the first failing rows in the table's order: the same rows in
    another order are another input."""
    settings, crf = load_settings(), load_crf()
    run_quality_suite_sql(warehouse, settings, crf, cache=SuiteCache(tmp_path / "cache", "v1"))
    warehouse.execute("CREATE OR REPLACE TABLE core.labs AS SELECT * FROM core.labs ORDER BY patient_id DESC, test DESC")
    cache = SuiteCache(tmp_path / "cache", "v1")
    run_quality_suite_sql(warehouse, settings, crf, cache=cache)
    labs = _frames_reading("core.labs")
    assert labs and not set(cache.reused) & labs and cache.reused  # the other frames are kept
    # what a run would reuse of the frame of patients: nothing under other settings or
    # code (another version) or under --force (enabled=False)
    checks = [c for c in quality_checks(settings, crf) if c.frame == "core.patients"]
    cur = warehouse.cursor()
    for other, reusable in ((SuiteCache(tmp_path / "cache", "v1"), True), (SuiteCache(tmp_path / "cache", "v2"), False),
                            (SuiteCache(tmp_path / "cache", "v1", enabled=False), False)):
        assert (other.load("core.patients", other.fingerprint(cur, "core.patients", checks), checks) is not None) is reusable


def test_a_frame_that_could_not_be_built_is_not_kept(warehouse, tmp_path):
    settings, crf = load_settings(), load_crf()
    warehouse.execute("DROP TABLE analytics.eligibility")
    cache = SuiteCache(tmp_path / "cache", "v1")
    first = run_quality_suite_sql(warehouse, settings, crf, cache=cache)
    baseline = [c.check_id for c in quality_checks(settings, crf) if c.frame == "baseline@included"]
    descriptions = first.set_index("check_id").loc[baseline, "description"]
    assert baseline and all("[not run: analytics.eligibility not available]" in d for d in descriptions)
    _write(warehouse, {"analytics.eligibility": _dirtier_tables()["analytics.eligibility"]})
    now = run_quality_suite_sql(warehouse, settings, crf, cache=cache)
    assert "baseline@included" not in cache.reused  # validated now that its table is there
    assert not any("not run" in d for d in now.set_index("check_id").loc[baseline, "description"])
