"""The report page is rendered from report/templates/report.html.j2 with jinja2 (autoescape
on, the section HTML passed as Markup, report.css inlined) and every section of
SECTION_IDS has its own module in report/sections/ (issue 16). The fixture warehouse of
tests/report/report_fixtures.py is written under tmp_path."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import duckdb
import pytest
from tests.report import report_fixtures as RF

from ibd_pipeline.config import load_settings
from ibd_pipeline.report import SECTION_IDS, Warehouse, build_report
from ibd_pipeline.report import build as B
from ibd_pipeline.report.context import ReportContext
from ibd_pipeline.report.sections import OPTIONAL_SECTIONS, SECTIONS, Section

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ibd_pipeline" / "report" / "templates"
HOSTILE = "<script>alert('x')</script> & \"co\""


@pytest.fixture(scope="module")
def page(tmp_path_factory, report_tables):
    d = tmp_path_factory.mktemp("report_template")
    db = RF.write_warehouse(d / "warehouse.duckdb", report_tables)
    settings = load_settings()
    settings["study"]["title"] = HOSTILE
    sections = [Section(s.id, HOSTILE, s.build) if s.id == "roc" else s for s in SECTIONS]
    con = duckdb.connect(str(db), read_only=True)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(B, "SECTIONS", sections)
            res = build_report(con, d / "study_report.html", settings, published={},
                               generated_at="2025-04-01 00:00 UTC", workers=1)
        table1 = ReportContext(Warehouse(con), settings, {})
        table1.section = "table1"
        table1_html = importlib.import_module("ibd_pipeline.report.sections.table1").build(table1)
    finally:
        con.close()
    return res, res.path.read_text(encoding="utf-8"), table1_html


def test_every_section_id_has_its_module_exposing_build():
    assert SECTION_IDS == [s.id for s in SECTIONS]
    assert len(set(SECTION_IDS)) == len(SECTION_IDS) == 15
    for sid, sec in zip(SECTION_IDS, SECTIONS):
        mod = importlib.import_module(f"ibd_pipeline.report.sections.{sid}")
        assert callable(mod.build), sid
        assert sec.build is mod.build, f"registry entry {sid} is not sections/{sid}.py's build"


def test_a_section_modules_html_appears_once_inside_its_section(page):
    _, html, table1_html = page
    assert "<table" in table1_html
    assert html.count(table1_html) == 1
    start = html.index('<section id="table1">\n<h2>Table 1: baseline characteristics</h2>\n')
    assert html.index(table1_html) > start
    assert html.index(table1_html) < html.index("</section>", start)


def test_the_css_file_is_inlined_into_the_one_page(page):
    _, html, _ = page
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8").strip()
    assert len(css) > 1000 and "@media print" in css
    assert html.count(css) == 1
    assert html.index("<style>") < html.index(css) < html.index("</style>") < html.index("<body>")
    assert "<link" not in html and html.startswith("<!DOCTYPE html>") and html.endswith("</html>")


def test_autoescape_escapes_a_hostile_title_and_section_label(page):
    res, html, _ = page
    assert "<script>" not in html
    esc = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;co&#34;"
    assert f"<title>{esc}</title>" in html and f"<h1>{esc}</h1>" in html
    assert f'<a href="#roc">{esc}</a>' in html and f'<section id="roc">\n<h2>{esc}</h2>' in html
    # section bodies are Markup: their own markup is kept, not escaped twice
    assert "&lt;table" not in html and "&amp;lt;" not in html
    assert res.sections == [s for s in SECTION_IDS if s not in OPTIONAL_SECTIONS]  # no quality_results, no PK table


def test_templates_ship_with_the_package():
    assert (TEMPLATES / B.TEMPLATE).is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ibd_pipeline"]
    assert "**/*.j2" in data and "**/*.css" in data
