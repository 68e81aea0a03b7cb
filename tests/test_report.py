"""The study report (ibd_pipeline.report) on a small synthetic warehouse built in
tmp_path (tests/report_fixtures.py): sections, embedded figures, published vs derived,
small cells, privacy, missing tables."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import duckdb
import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml

import report_fixtures as RF
from ibd_pipeline.config import load_settings
from ibd_pipeline.report import SECTION_IDS, Warehouse, build_report, compare_published, load_published
from ibd_pipeline.report import fmt as F
from ibd_pipeline.report.data import Unavailable

PNG_SIG = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([^"]*)"')


def _section(html: str, sid: str) -> str:
    m = re.search(r'<section id="%s">(.*?)</section>' % re.escape(sid), html, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("report_full")
    db = RF.write_warehouse(d / "warehouse.duckdb")
    con = duckdb.connect(str(db), read_only=True)
    try:
        res = build_report(con, d / "reports" / "study_report.html", load_settings(), generated_at="2025-04-01 00:00 UTC")
    finally:
        con.close()
    return res, res.path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def degraded(tmp_path_factory):
    """Tables missing (cox, biomarkers, persistence, KM, deliveries, rates, centers),
    one empty (ae_summary), quality results present, hostile text in the settings."""
    d = tmp_path_factory.mktemp("report_degraded")
    db = RF.write_warehouse(
        d / "warehouse.duckdb",
        drop=("cox_model", "biomarker_summary", "persistence", "km_estimates", "deliveries", "endpoint_rates",
              "center_heterogeneity"),
        empty=("ae_summary",),
        extra={"quality_results": RF.quality_results()},
    )
    settings = load_settings()
    settings["study"]["title"] = "<script>alert('x')</script> UPA & IBD"
    con = duckdb.connect(str(db), read_only=True)
    try:
        res = build_report(con, d / "study_report.html", settings, workers=1)
    finally:
        con.close()
    return res, res.path.read_text(encoding="utf-8")


# ------------------------------------------------------------------ structure and figures
def test_every_section_present(full):
    res, html = full
    assert res.sections == [s for s in SECTION_IDS if s != "quality"]  # no quality_results table here
    for sid in res.sections:
        assert f'<section id="{sid}">' in html
        assert re.search(r'<section id="%s">\s*<h2>[^<]+</h2>' % sid, html), f"{sid} has no heading"
    assert res.unavailable == {}, res.unavailable
    assert "Not available" not in html


def test_self_contained(full):
    _, html = full
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert '<link rel="stylesheet"' not in html


def test_figures_are_embedded_valid_pngs(full):
    res, html = full
    imgs = IMG.findall(html)
    assert len(imgs) == len(res.figures)
    for b64 in imgs:
        data = base64.b64decode(b64, validate=True)
        assert data[:8] == PNG_SIG
        arr = mpimg.imread(io.BytesIO(data), format="png")
        assert arr.shape[0] > 1 and arr.shape[1] > 1
    assert all(v[:8] == PNG_SIG for v in res.figures.values())


def test_expected_figures(full):
    res, _ = full
    t = RF.tables()
    rates = t["endpoint_rates"]
    expected = {"flow_diagram", "cox_forest", "logistic_forest", "roc"}
    for ep in rates["endpoint"].unique():
        expected.add(f"endpoint_{ep}_complete_case")
        e = rates[rates["endpoint"] == ep]
        cc = e[e["analysis"] == "complete_case"].set_index(["diagnosis", "timepoint"])[["n", "n_total"]].sort_index()
        nri = e[e["analysis"] == "nri"].set_index(["diagnosis", "timepoint"])[["n", "n_total"]].sort_index()
        if not cc.equals(nri):
            expected.add(f"endpoint_{ep}_nri")
    expected |= {f"biomarker_{x}" for x in t["biomarker_summary"]["test"].unique()}
    expected |= {f"km_{g}" for g in t["km_estimates"]["group_var"].unique()}
    expected |= {f"center_{ep}_overall" for ep in t["center_heterogeneity"]["endpoint"].unique()}
    assert set(res.figures) == expected
    # the fixture makes lab endpoints fully evaluable: their NRI figure is not repeated
    assert "endpoint_crp_normal_nri" not in res.figures and "endpoint_sf_clinical_remission_nri" in res.figures
    assert res.key_numbers["figures"] == len(expected)


# ------------------------------------------------------------------ content
def test_published_vs_derived_flags_known_mismatch(full):
    res, html = full
    cmp_ = res.published_comparison
    screened = cmp_[(cmp_["domain"] == "flow") & (cmp_["quantity"] == "screened")].iloc[0]
    assert (screened["published"], screened["derived"], screened["match"]) == (122, 97, False)
    sec = _section(html, "published")
    assert re.search(r'<tr class="mismatch-row"><td>screened</td>.*?MISMATCH', sec)
    assert "8+1+23+2+10 = 44" in sec  # the 'other' arithmetic is explained
    assert res.key_numbers["published_mismatches"] >= 1
    assert res.key_numbers["published_compared"] == int(cmp_["match"].notna().sum())


def test_small_cells_flagged(full):
    res, html = full
    flow, prov = _section(html, "flow"), _section(html, "provenance")
    dagger = r'<td class="small-cell">%d<sup class="dagger"'
    assert re.search(dagger % 3, prov), "3 re-abstracted patients at the small center not flagged"
    assert re.search(dagger % 1, flow)
    assert "small cell" in flow and "small cell" in prov
    assert res.key_numbers["small_cells_flagged"] > 0
    # the pooled 'All' column of the flow table is not a per-center cell
    row = re.search(r"<tr[^>]*><td class=\"lbl\">Screened</td><td>(\d+)</td>", flow)
    assert row and row.group(1) == "97"


def test_no_patient_id_in_report(full):
    res, html = full
    ids = RF.all_patient_ids()
    assert len(ids) > 90
    assert not [i for i in ids if i in html]
    assert not re.search(r"\bP[0-9a-f]{20}\b", html)
    assert res.key_numbers["privacy_redactions"] == 0


def test_the_privacy_guard_removes_whole_ids_of_any_shape_and_leaves_longer_tokens():
    from ibd_pipeline.report.build import _privacy_guard

    ids = {f"P{n:020x}" for n in range(20_000)} | {"ABC-12345", "QQQQQQ", "short"}
    text = ("<td>P0000000000000000002a</td> xP0000000000000000002a ABC-12345 ABC-123456 "
            "<b>QQQQQQ</b> QQQQQQQ short")
    out, n = _privacy_guard(text, ids)
    assert n == 3
    assert out == ("<td>[id removed]</td> xP0000000000000000002a [id removed] ABC-123456 "
                   "<b>[id removed]</b> QQQQQQQ short")


def test_numbers_formatted(full):
    res, html = full
    t1 = _section(html, "table1")
    assert "Overall (N = 80)" in t1 and "UC (N = 28)" in t1 and "CD (N = 52)" in t1
    # Table 1 columns in header order: overall, UC, CD
    t = RF.tables()["table1"]
    age = t[t["variable"] == "age"].iloc[0]
    assert f"<td>{age['overall']}</td><td>{age['UC']}</td><td>{age['CD']}</td>" in t1
    assert re.search(r"<td>(&lt;0\.001|0\.\d{3}|1\.000)</td>", t1)
    k = res.key_numbers
    assert k["screened"] == 97 and k["included"] == 80 and (k["included_uc"], k["included_cd"]) == (28, 52)
    for key in ("sf_clinical_remission_month12_uc_pct", "sf_clinical_remission_month12_cd_pct", "auc",
                "km_12m_persistence_pct"):
        assert isinstance(k[key], float)


def test_settings_section_lists_every_rule(full):
    _, html = full
    sec = _section(html, "settings")
    settings = load_settings()
    for group in settings:
        assert f"({group})" in sec
    assert "small_cell_below" in sec and "min_exposure_days.UC" in sec
    assert "ref.settings matches" in sec


# ------------------------------------------------------------------ robustness
def test_missing_and_empty_tables_give_not_available(degraded):
    res, html = degraded
    assert res.sections == SECTION_IDS  # quality_results present -> quality section included
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html
    cox = _section(html, "cox")
    assert "Not available: table analytics.cox_model not found in the warehouse" in cox
    assert "Not available: table analytics.ae_summary is empty" in _section(html, "safety")
    assert "Not available" in _section(html, "persistence")
    assert "Not available" in _section(html, "biomarkers")
    assert "Not available: table analytics.deliveries not found" in _section(html, "provenance")
    assert {"cox", "safety", "persistence", "biomarkers", "provenance", "endpoints", "centers"} <= set(res.unavailable)
    # what is there still renders
    assert "flow_diagram" in res.figures and "roc" in res.figures
    assert len(IMG.findall(html)) == len(res.figures)


def test_quality_section_and_escaping(degraded):
    res, html = degraded
    q = _section(html, "quality")
    assert "labs.value.range" in q and "warn" in q
    assert not [i for i in RF.all_patient_ids() if i in html]  # quality examples carry an id: left out
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; UPA &amp; IBD" in html
    # the settings given differ from ref.settings: the report says so
    assert "differ between the settings given to the report" in _section(html, "settings")


def test_denominator_column_collision_is_normalised(tmp_path):
    """DuckDB stores a frame with both n and N as n, N_1 (case-insensitive names)."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA analytics")
    df = pd.DataFrame({"endpoint": ["x"], "n": [3], "N": [7], "n_uc": [1], "N_uc": [2]})
    con.register("_d", df)
    con.execute("CREATE TABLE analytics.endpoint_rates AS SELECT * FROM _d")
    got = Warehouse(con).get("endpoint_rates")
    assert {"n", "n_total", "n_uc", "n_total_uc"} <= set(got.columns)
    assert (got["n"].iloc[0], got["n_total"].iloc[0], got["n_total_uc"].iloc[0]) == (3, 7, 2)
    with pytest.raises(Unavailable, match="not found"):
        Warehouse(con).get("nope")


# ------------------------------------------------------------------ published figures
def test_published_copy_matches_reference():
    ref = yaml.safe_load((Path(__file__).parent / "published_figures.yaml").read_text(encoding="utf-8"))
    assert load_published() == ref


def test_other_exclusions_compared_by_named_reasons():
    t = RF.tables()
    flow = t["patient_flow"]
    pub = {"flow": {"excluded": {"other": 10}}}
    get_with = {"patient_flow": flow}
    get_without = {"patient_flow": flow[flow["step"] != "other_reason"]}

    def getter(d):
        def g(name):
            if name not in d:
                raise Unavailable(f"table analytics.{name} not found")
            return d[name]
        return g

    el = t["eligibility"]
    other = el[el["exclusion_reason"].fillna("").str.startswith("other:")]
    n_patients = len(other)
    n_reasons = int(other["all_reasons"].str.split("|").explode().str.startswith("other:").sum())
    assert n_reasons == n_patients + 1  # one 'other' patient has two named other reasons
    row = compare_published(pub, getter(get_without)).iloc[0]
    assert row["derived"] == n_patients and "patients excluded as 'other'" in row["note"]
    if (flow["step"] == "other_reason").any():
        row = compare_published(pub, getter(get_with)).iloc[0]
        assert row["derived"] == n_reasons and "named 'other' reasons" in row["note"]
    assert compare_published(pub, getter({})).iloc[0]["note"].startswith("not available")


def test_format_helpers():
    assert F.fmt_p(0.0004) == "<0.001" and F.fmt_p(0.1234) == "0.123" and F.fmt_p(None) == F.DASH
    assert F.fmt_pct(12.345) == "12.3%" and F.fmt_prop(0.5) == "50.0%"
    assert F.fmt_ratio(9.4e6) == "9.4e+06" and F.fmt_ratio(0.5) == "0.50"
    assert F.fmt_rate_cell(19, 28, 67.857, 49.34, 82.07) == "19/28 (67.9%; 49.3\u201382.1)"
    assert F.small_cell(3, 5) and not F.small_cell(0, 5) and not F.small_cell(5, 5)
    assert F.Cell("<b>", flag=True).html().startswith('<td class="small-cell">&lt;b&gt;<sup')
