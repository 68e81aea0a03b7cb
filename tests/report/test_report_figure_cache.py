"""Issue 14: a report whose figures' inputs did not change draws none of them again; the
page is the same; a changed table redraws only the figures drawn from it."""

from __future__ import annotations

import duckdb

from ibd_pipeline.config import load_settings
from ibd_pipeline.report import build_report
from ibd_pipeline.report import figures as FIG
from ibd_pipeline.report.figures import FigureCache
from tests.report import report_fixtures as RF


def _build(db, out, cache, settings):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return build_report(con, out, settings, generated_at="2025-04-01 00:00 UTC", workers=1, figure_cache=cache)
    finally:
        con.close()


def test_unchanged_figures_come_from_the_cache_and_a_changed_table_redraws_only_its_own(tmp_path, report_tables,
                                                                                        monkeypatch):
    settings = load_settings()
    settings.setdefault("report", {})["sections"] = ["persistence", "roc"]  # a few figures: a fast test
    drawn: list[str] = []
    real = FIG.render

    def counting(func, args, kwargs, tight, raw):
        drawn.append(func.__name__)
        return real(func, args, kwargs, tight, raw)

    monkeypatch.setattr(FIG, "render", counting)
    db = RF.write_warehouse(tmp_path / "warehouse.duckdb", report_tables)
    cache = FigureCache(tmp_path / "cache", "code-v1")
    first = _build(db, tmp_path / "first.html", cache, settings)
    n = len(first.figures)
    assert n >= 3 and len(drawn) == n
    assert len(list((tmp_path / "cache").glob("*.png"))) == n

    drawn.clear()
    second = _build(db, tmp_path / "second.html", cache, settings)
    assert drawn == []  # every figure from the cache
    assert second.path.read_text(encoding="utf-8") == first.path.read_text(encoding="utf-8").replace(
        "first.html", "second.html")

    # another code version draws everything again
    drawn.clear()
    _build(db, tmp_path / "other.html", FigureCache(tmp_path / "cache", "code-v2"), settings)
    assert len(drawn) == n

    # one table changed (the ROC curve): only the figure drawn from it
    roc = report_tables["roc_curve"].copy()
    roc.loc[roc.index[1], "tpr"] = roc.loc[roc.index[1], "tpr"] * 0.5
    db2 = RF.write_warehouse(tmp_path / "warehouse2.duckdb", {**report_tables, "roc_curve": roc})
    cache = FigureCache(tmp_path / "cache", "code-v1")
    _build(db, tmp_path / "again.html", cache, settings)  # the v1 cache as it was
    drawn.clear()
    _build(db2, tmp_path / "changed.html", cache, settings)
    assert drawn == ["roc_plot"], drawn
    assert len(drawn) < n
