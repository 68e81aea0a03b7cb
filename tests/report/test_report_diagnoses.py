"""The report's diagnosis columns and comparison follow the study's ``study.diagnoses``
(labels.diagnosis_columns / comparison_text): a CD-only study's report has a CD column and
no UC column, no "UC vs CD" test; the multicenter study keeps UC, CD, Overall and the
UC vs CD test. Built on the small fixture warehouse (tests/report/report_fixtures.py)."""

from __future__ import annotations

import re

import duckdb
import pytest

from ibd_pipeline.config import load_settings
from ibd_pipeline.report import Warehouse, build_report
from ibd_pipeline.report.context import ReportContext
from ibd_pipeline.report.labels import comparison_text, diagnoses_text, diagnosis_columns, group_labels, study_diagnoses
from ibd_pipeline.report.sections import endpoints, table1
from tests.report import report_fixtures as RF

SECTIONS = ("table1", "endpoints", "biomarkers", "safety")


def _cd_only() -> dict:
    s = load_settings()
    s["study"]["diagnoses"] = ["CD"]
    return s


def _section(html: str, sid: str) -> str:
    m = re.search(r'<section id="%s">(.*?)</section>' % re.escape(sid), html, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


def _text(cell: str) -> str:
    return re.sub(r"<[^>]+>", "", cell).strip()


def _table(html: str, caption: str | None = None, cls: str | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """(header rows, body rows) as cell texts of the table with this caption (or class)."""
    pat = (r"<caption>%s</caption>(.*?)</table>" % re.escape(caption) if caption
           else r'<table class="%s">(.*?)</table>' % re.escape(cls))
    m = re.search(pat, html, re.S)
    assert m, f"table {caption or cls!r} missing"
    head, body = m.group(1).split("</thead>", 1)
    rows = lambda part, tag: [[_text(c) for c in re.findall(r"<%s[^>]*>(.*?)</%s>" % (tag, tag), tr, re.S)]  # noqa: E731
                              for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", part, re.S)]
    return rows(head, "th"), rows(body, "td")


def _build(tmp_path_factory, report_tables, settings, name, **wh) -> str:
    d = tmp_path_factory.mktemp(name)
    db = RF.write_warehouse(d / "warehouse.duckdb", report_tables, **wh)
    con = duckdb.connect(str(db), read_only=True)
    try:
        res = build_report(con, d / "study_report.html", settings, published={}, workers=1)
    finally:
        con.close()
    return res.path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cd_only_html(tmp_path_factory, report_tables):
    s = _cd_only()
    s["report"] = {"sections": list(SECTIONS)}
    return _build(tmp_path_factory, report_tables, s, "report_cd_only")


@pytest.fixture(scope="module")
def multicenter_html(tmp_path_factory, report_tables):
    s = load_settings()
    s["report"] = {"sections": list(SECTIONS)}
    return _build(tmp_path_factory, report_tables, s, "report_multicenter")


def _rate(rates, dx, ep="sf_clinical_remission", tp="month12", analysis="complete_case") -> str:
    x = rates[(rates["diagnosis"] == dx) & (rates["endpoint"] == ep) & (rates["timepoint"] == tp)
              & (rates["analysis"] == analysis)].iloc[0]
    return f"{int(x['n'])}/{int(x['n_total'])} ("


def _row(rows, label, tp):
    """The body row of an endpoint (its label on the first time point's row) at time point ``tp``."""
    cur = None
    for r in rows:
        cur = r[0] or cur
        if cur == label and r[1] == tp:
            return r
    raise AssertionError(f"no row {label} / {tp}")


# ------------------------------------------------------------------ the settings' diagnoses
def test_diagnosis_columns_and_comparison_follow_the_study_diagnoses():
    multi = load_settings()
    assert "diagnoses" not in multi["study"]  # the multicenter study relies on the model's default
    assert study_diagnoses(multi) == ["UC", "CD"]
    assert diagnosis_columns(multi) == ["UC", "CD", "overall"]
    assert diagnosis_columns(multi, overall_first=True) == ["overall", "UC", "CD"]
    assert comparison_text(multi) == "UC vs CD" and diagnoses_text(multi) == "UC and CD"
    assert group_labels("diagnosis", multi) == {"UC": "UC", "CD": "CD"}
    cd = _cd_only()
    assert diagnosis_columns(cd) == diagnosis_columns(cd, overall_first=True) == ["CD"]  # overall = CD: not twice
    assert comparison_text(cd) is None and diagnoses_text(cd) == "CD"
    assert group_labels("diagnosis", cd) == {"CD": "CD"}
    cd_uc = load_settings()
    cd_uc["study"]["diagnoses"] = ["CD", "UC"]  # the settings' order
    assert diagnosis_columns(cd_uc) == ["CD", "UC", "overall"] and comparison_text(cd_uc) == "CD vs UC"


# ------------------------------------------------------------------ a CD-only study's report
def test_a_cd_only_report_has_no_uc_column_and_no_uc_vs_cd_comparison(cd_only_html):
    for sid in SECTIONS:
        sec = _section(cd_only_html, sid)
        assert "UC vs CD" not in sec and "UC and CD" not in sec, sid
        assert not re.search(r"<th[^>]*>UC\b", sec), sid
        assert not re.search(r"<th[^>]*>Overall\b", sec), sid  # the overall rows are the CD patients: not twice
    assert "<h3>Rates over time</h3>" in _section(cd_only_html, "endpoints")
    assert "<h3>Rates</h3>" in _section(cd_only_html, "endpoints")


def test_a_cd_only_report_shows_the_cd_numbers_in_its_one_column(cd_only_html, report_tables):
    sec = _section(cd_only_html, "endpoints")
    head, rows = _table(sec, "Endpoint rates \u2014 Complete case")
    assert head == [["Endpoint", "Time point", "CD"]]
    row = _row(rows, "Steroid-free clinical remission", "Month 12")
    assert len(row) == 3 and row[2].startswith(_rate(report_tables["endpoint_rates"], "CD"))
    head, _ = _table(sec, next(c for c in re.findall(r"<caption>(.*?)</caption>", sec) if "Cochran" in c))
    assert head == [["Endpoint", "Analysis", "CD"]]

    t1 = _section(cd_only_html, "table1")
    head, rows = _table(t1, cls="data table1")
    assert head == [["Characteristic", "Level", "CD (N = 52)"]]  # no p / Test: nothing to compare
    age = report_tables["table1"].set_index("variable").loc["age"]
    assert next(r for r in rows if r[0] == "Age at UPA start, years")[2:] == [age["CD"]]
    assert "Wilcoxon" not in t1

    head, _ = _table(_section(cd_only_html, "biomarkers"), "Biomarkers per time point")
    assert head == [["Test", "Time point", "CD median [IQR] (n)", "p vs baseline"]]

    saf = _section(cd_only_html, "safety")
    head, _ = _table(saf, "Adverse events by term")
    assert head[0] == ["", "CD (N = 52)"]
    _, rows = _table(saf, "Exposure to upadacitinib")
    ex = report_tables["exposure"]
    assert [r[:2] for r in rows] == [["CD", str(int((ex["diagnosis"] == "CD").sum()))]]


def test_a_one_diagnosis_study_reads_its_column_from_the_overall_rows_when_a_table_has_no_others(
        tmp_path, report_tables):
    """A one-diagnosis study's tables may hold its patients only as 'overall': the column
    of the diagnosis shows them."""
    r = report_tables["endpoint_rates"]
    t1 = report_tables["table1"]
    db = RF.write_warehouse(tmp_path / "warehouse.duckdb", report_tables,
                            extra={"endpoint_rates": r[r["diagnosis"] != "CD"],
                                   "table1": t1.drop(columns=["UC", "CD", "p_value", "test"])})
    con = duckdb.connect(str(db), read_only=True)
    try:
        c = ReportContext(Warehouse(con), _cd_only(), {})
        ep_html, t1_html = endpoints.build(c), table1.build(c)
    finally:
        con.close()
    head, rows = _table(ep_html, "Endpoint rates \u2014 Complete case")
    assert head == [["Endpoint", "Time point", "CD"]]
    assert _row(rows, "Steroid-free clinical remission", "Month 12")[2].startswith(_rate(r, "overall"))
    head, _ = _table(t1_html, cls="data table1")
    assert head == [["Characteristic", "Level", "CD (N = 80)"]]  # the fixture's 80 patients, as 'overall'


# ------------------------------------------------------------------ the multicenter study's report
def test_the_multicenter_report_keeps_uc_cd_overall_and_the_uc_vs_cd_test(multicenter_html, report_tables):
    sec = _section(multicenter_html, "endpoints")
    assert "<h3>Rates over time, UC and CD</h3>" in sec and "<h3>Rates and UC vs CD comparisons</h3>" in sec
    head, rows = _table(sec, "Endpoint rates \u2014 Complete case")
    assert head == [["Endpoint", "Time point", "UC", "CD", "Overall", "UC vs CD p", "Test"]]
    row = _row(rows, "Steroid-free clinical remission", "Month 12")
    rates = report_tables["endpoint_rates"]
    assert [row[i].startswith(_rate(rates, dx)) for i, dx in ((2, "UC"), (3, "CD"), (4, "overall"))] == [True] * 3
    assert re.fullmatch(r"&lt;0\.001|0\.\d{3}|1\.000", row[5]), row[5]

    head, _ = _table(_section(multicenter_html, "table1"), cls="data table1")
    assert head == [["Characteristic", "Level", "Overall (N = 80)", "UC (N = 28)", "CD (N = 52)", "p", "Test"]]
    head, _ = _table(_section(multicenter_html, "biomarkers"), "Biomarkers per time point")
    assert head == [["Test", "Time point", "UC median [IQR] (n)", "p vs baseline", "CD median [IQR] (n)",
                     "p vs baseline", "Overall median [IQR] (n)", "p vs baseline"]]
    head, _ = _table(_section(multicenter_html, "safety"), "Adverse events by term")
    assert head[0] == ["", "UC (N = 28)", "CD (N = 52)", "Overall (N = 80)"]


def test_the_flow_note_on_the_published_exclusions_comes_from_the_published_figures():
    from ibd_pipeline.report.sections.flow import _published_flow_note

    counted_reasons = {"flow": {"screened": 122, "included": 80,
                                "excluded": {"not_dtt": 8, "under_18": 1, "insufficient_data": 23,
                                             "concomitant_biologic": 2, "other": 10}}}
    note = _published_flow_note(counted_reasons)
    assert "adds up to 44 exclusions for 42 excluded patients" in note
    assert "its 10 'other' count named reasons, not patients" in note
    # exclusions that add up, or a paper without exclusion counts (the single-center study): no note
    assert _published_flow_note({"flow": {"screened": 10, "included": 7, "excluded": {"not_dtt": 3}}}) is None
    assert _published_flow_note({"flow": {"screened": None, "excluded_by_reason": None, "included": 108}}) is None
    assert _published_flow_note(None) is None


def test_the_page_says_one_center_or_pooled_across_centers():
    from ibd_pipeline.report.build import _scope

    assert _scope({"study": {"diagnoses": ["UC", "CD"]}}, ["hzfph", "zcmu1", "zju2"]) == \
        "Pooled across centers, by UC, CD and overall"
    assert _scope({"study": {"diagnoses": ["CD"]}}, ["ahmu"]) == "One center (ahmu), CD patients"
