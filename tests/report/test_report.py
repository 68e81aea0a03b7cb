"""The study report (ibd_pipeline.report) on a small synthetic warehouse built in
tmp_path (tests/report/report_fixtures.py): sections, embedded figures, published vs derived,
small cells, privacy, missing tables."""

from __future__ import annotations

import base64
import io
import re

import duckdb
import matplotlib.image as mpimg
import pandas as pd
import pytest

from tests.report import report_fixtures as RF
from ibd_pipeline.config import load_settings
from ibd_pipeline.report import SECTION_IDS, Warehouse, build_report, compare_published, load_published
from ibd_pipeline.report import fmt as F
from ibd_pipeline.report.data import Unavailable
from ibd_pipeline.report.sections import OPTIONAL_SECTIONS

PNG_SIG = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([^"]*)"')


def _section(html: str, sid: str) -> str:
    m = re.search(r'<section id="%s">(.*?)</section>' % re.escape(sid), html, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


@pytest.fixture(scope="module")
def full(tmp_path_factory, report_tables):
    d = tmp_path_factory.mktemp("report_full")
    db = RF.write_warehouse(d / "warehouse.duckdb", report_tables)
    con = duckdb.connect(str(db), read_only=True)
    try:
        res = build_report(con, d / "reports" / "study_report.html", load_settings(), generated_at="2025-04-01 00:00 UTC")
    finally:
        con.close()
    return res, res.path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def degraded(tmp_path_factory, report_tables):
    """Tables missing (cox, biomarkers, persistence, KM, deliveries, rates, centers),
    one empty (ae_summary), quality results present, hostile text in the settings."""
    d = tmp_path_factory.mktemp("report_degraded")
    db = RF.write_warehouse(
        d / "warehouse.duckdb", report_tables,
        drop=("cox_model", "biomarker_summary", "persistence", "km_estimates", "deliveries", "endpoint_rates",
              "center_heterogeneity"),
        empty=("ae_summary",),
        extra={"quality_results": RF.quality_results(report_tables)},
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
    # the optional sections (quality, the PK substudy) need tables this warehouse has not got
    assert res.sections == [s for s in SECTION_IDS if s not in OPTIONAL_SECTIONS]
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


def test_expected_figures(full, report_tables):
    res, _ = full
    t = report_tables
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


def test_no_patient_id_in_report(full, report_tables):
    res, html = full
    ids = RF.all_patient_ids(report_tables)
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


def test_numbers_formatted(full, report_tables):
    res, html = full
    t1 = _section(html, "table1")
    assert "Overall (N = 80)" in t1 and "UC (N = 28)" in t1 and "CD (N = 52)" in t1
    # Table 1 columns in header order: overall, UC, CD
    t = report_tables["table1"]
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
    assert res.sections == [s for s in SECTION_IDS if s != "pk"]  # quality_results present -> quality included; no PK table
    assert '<section id="pk">' not in html
    for sid in res.sections:
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


def test_quality_section_and_escaping(degraded, report_tables):
    res, html = degraded
    q = _section(html, "quality")
    assert "labs.value.range" in q and "warn" in q
    assert not [i for i in RF.all_patient_ids(report_tables) if i in html]  # quality examples carry an id: left out
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
def test_other_exclusions_compared_by_named_reasons(report_tables):
    t = report_tables
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


# ------------------------------------------------------------------ issue 13: report defects
def _rows(sec: str, caption: str) -> list[list[str]]:
    """The body rows (cell texts) of the table with this caption in a section."""
    m = re.search(r"<caption>%s</caption>(.*?)</table>" % re.escape(caption), sec, re.S)
    assert m, f"table {caption!r} missing"
    body = m.group(1).split("</thead>", 1)[1]
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_adverse_events_by_term_states_each_diagnosis_denominator(full, report_tables):
    _, html = full
    sec = _section(html, "safety")
    m = re.search(r"<caption>Adverse events by term</caption>(.*?)</thead>", sec, re.S)
    assert "N = \u2014" not in m.group(1)
    assert "UC (N = 28)" in m.group(1) and "CD (N = 52)" in m.group(1) and "Overall (N = 80)" in m.group(1)
    # the three safety tables carry one denominator column name
    for name in ("ae_summary", "safety_serious", "safety_discontinuation"):
        assert "n_included" in report_tables[name].columns and "N" not in report_tables[name].columns


def test_every_crf_adverse_event_term_is_listed_with_zeros(full, report_tables):
    _, html = full
    from ibd_pipeline.config import load_crf

    t = report_tables["ae_summary"]
    terms = list(load_crf().ae_terms)
    assert list(t.loc[t["diagnosis"] == "UC", "term"]) == ["any", *terms]  # the CRF's order, zeros included
    zoster = t[(t["term"] == "herpes_zoster") & (t["diagnosis"] == "overall")].iloc[0]
    assert (zoster["n_patients"], zoster["n_events"], zoster["pct_patients"], zoster["rate_per_100py"]) == (0, 0, 0.0, 0.0)
    assert zoster["rate_ci_high"] > 0  # the exact upper limit of a zero count
    assert (t["pct_patients"].round(1) == t["pct_patients"]).all() and (t["rate_ci_high"].round(2) == t["rate_ci_high"]).all()
    rows = {r[0]: r for r in _rows(_section(html, "safety"), "Adverse events by term")}
    for label in ("Herpes zoster", "Tuberculosis", "Venous thromboembolism (VTE)",
                  "Major adverse cardiovascular event (MACE)", "Malignancy"):
        assert rows[label][1:3] == ["0 (0.0%)", "0"], label


def test_jak_events_of_special_interest_are_shown_even_when_none_occurred(full, report_tables):
    _, html = full
    rows = {r[0]: r[1:] for r in _rows(_section(html, "safety"), "Adverse events of special interest for JAK inhibitors")}
    assert list(rows) == ["Herpes zoster", "Serious infection", "Tuberculosis", "Venous thromboembolism (VTE)",
                          "Major adverse cardiovascular event (MACE)", "Malignancy",
                          "Non-melanoma skin cancer (NMSC)"]
    assert rows["Malignancy"] == ["0 (0.0%)", "0"] * 3
    ser = report_tables["safety_serious"]
    inf = ser[(ser["term"] == "infection") & (ser["diagnosis"] == "overall")]
    n = int(inf.iloc[0]["n_patients"]) if len(inf) else 0
    assert rows["Serious infection"][4].startswith(f"{n} (")


def test_nri_rows_equal_to_complete_case_are_stated_once_not_listed(full, report_tables):
    _, html = full
    sec = _section(html, "endpoints")
    assert "the NRI table below lists them" not in sec
    r = report_tables["endpoint_rates"]
    same = [ep for ep in r["endpoint"].unique()
            if r[(r["endpoint"] == ep) & (r["analysis"] == "complete_case")].set_index(["diagnosis", "timepoint"])[["n", "n_total"]].sort_index()
            .equals(r[(r["endpoint"] == ep) & (r["analysis"] == "nri")].set_index(["diagnosis", "timepoint"])[["n", "n_total"]].sort_index())]
    assert "crp_normal" in same and "sf_clinical_remission" not in same
    nri = [row[0] for row in _rows(sec, "Endpoint rates \u2014 Non-responder imputation (NRI)") if row[0]]
    cc = [row[0] for row in _rows(sec, "Endpoint rates \u2014 Complete case") if row[0]]
    assert "CRP normal (&lt; 8 mg/L)" in cc and "CRP normal (&lt; 8 mg/L)" not in nri
    assert "Steroid-free clinical remission" in nri
    assert "NRI table rows are not repeated" in sec


def test_km_groups_are_named_with_the_study_thresholds(full, tmp_path, report_tables):
    from ibd_pipeline.report.build import _group_labels
    from ibd_pipeline.stats.figures import km_plot

    _, html = full
    sec = _section(html, "persistence")
    assert "albumin_le_35 =" not in sec and "bmi_le_18_5 =" not in sec
    assert "Albumin \u2264 35 g/L" in sec and "Albumin &gt; 35 g/L" in sec and "BMI \u2264 18.5 kg/m\u00b2" in sec
    # labels follow study.yaml, not literals
    s = load_settings()
    s["baseline"]["albumin_low"] = 30
    labels = _group_labels("albumin_le_35", s)
    assert (labels["yes"], labels["no"]) == ("Albumin \u2264 30 g/L", "Albumin > 30 g/L")
    t = report_tables
    fig = km_plot(t["persistence"], t["baseline_covariates"][["patient_id", "albumin_le_35"]], "albumin_le_35",
                  days_per_month=30.4375, months=(0, 6, 12), at_risk=False, group_labels=labels)
    legend = sorted(x.get_text() for x in fig.axes[0].get_legend().get_texts())
    assert legend == ["Albumin > 30 g/L", "Albumin \u2264 30 g/L"]


def test_integer_counts_print_without_decimals(full):
    from ibd_pipeline.stats.baseline_table import fmt_median_iqr

    assert fmt_median_iqr([2, 2, 2, 3, 2]) == "2 [2-2]"
    assert fmt_median_iqr([20, 30, 40, 50]) == "35.0 [27.5-42.5]"  # quartiles between counts keep decimals
    assert fmt_median_iqr([1.5, 2.0, 2.5]) == "2.0 [1.8-2.2]"
    _, html = full
    t1 = _section(html, "table1")
    row = re.search(r"Prior advanced mechanisms, n</td><td></td><td>([^<]*)</td>", t1).group(1)
    assert re.fullmatch(r"\d+ \[\d+-\d+\]", row), row


def test_settings_are_an_appendix_after_every_result(full):
    res, html = full
    assert res.sections[-1] == "settings" and SECTION_IDS[-1] == "settings"
    assert html.index('<section id="settings">') > html.index('<section id="published">')
    first = re.search(r'<section id="([a-z0-9]+)">', html).group(1)
    assert first == "provenance"
    assert re.search(r'<section id="settings">\s*<h2>Appendix: settings', html)


def test_print_stylesheet_keeps_wide_tables_whole(full):
    _, html = full
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    m = re.search(r"@media print\{(.*)\}\s*$", css, re.S)
    assert m, "no print stylesheet"
    pr = m.group(1)
    assert re.search(r"\.table-wrap\{overflow:visible\}", pr)  # no scroll box that clips when printed
    assert re.search(r"table\.data\{[^}]*width:100%[^}]*min-width:0", pr)
    assert re.search(r"table\.data thead\{display:table-header-group\}", pr)  # headers repeat on each page
    assert re.search(r"table\.data tr\{break-inside:avoid\}", pr)
    assert re.search(r"@page\{size:A4 landscape", pr)


def test_published_vs_derived_compares_predictors_by_direction_and_lab_means(full, report_tables):
    res, html = full
    cmp_ = res.published_comparison
    pred = cmp_[cmp_["domain"] == "predictors"].set_index("quantity")
    age = pred.loc["confirmed_age"]
    # fixture model: age OR 0.92 (published 0.87), selected by the elastic net and Boruta
    assert age["derived"].startswith("OR 0.92") and "selected by elastic net and Boruta" in age["derived"]
    assert "published lower odds; derived lower odds: direction agrees" in age["note"]
    il = pred.loc["il12_23_il23"]
    assert "not in the derived model" in il["derived"] and "not selected" in il["derived"]
    assert pred["match"].isna().all()  # shown with direction, never counted as a reproduced count
    labs = cmp_[cmp_["domain"] == "lab means"].set_index("quantity")
    b = report_tables["biomarkers"]
    crp = b[(b["test"] == "CRP") & (b["timepoint"] == "baseline")]["value"].mean()
    assert labs.loc["mean CRP_mg_L", "published"] == 5.3
    assert labs.loc["mean CRP_mg_L", "derived"] == round(crp, 1)
    assert labs.loc["mean CRP_mg_L", "note"].startswith(f"difference {100 * (crp - 5.3) / 5.3:+.0f}%")
    assert labs.loc["mean HB_g_L", "note"] == "HB not derived"  # the fixture keeps CRP and FC only
    sec = _section(html, "published")
    assert "<h3>Lab means</h3>" in sec and "direction agrees" in sec


def test_the_not_estimable_note_appears_only_when_an_estimate_is_highlighted(full, tmp_path, report_tables):
    _, html = full
    assert "Highlighted estimates are not estimable" in _section(html, "cox")  # prior_jak: monotone likelihood
    cox = report_tables["cox_model"]
    cox = cox[cox["variable"] != "prior_jak"]  # every estimate finite
    db = RF.write_warehouse(tmp_path / "warehouse.duckdb", report_tables, extra={"cox_model": cox})
    con = duckdb.connect(str(db), read_only=True)
    try:
        res = build_report(con, tmp_path / "study_report.html", load_settings(), workers=1)
    finally:
        con.close()
    assert "Highlighted estimates are not estimable" not in _section(res.path.read_text(encoding="utf-8"), "cox")


def test_labels_and_orders_come_from_the_study_settings_not_from_code():
    """A second study (weeks, its own endpoint names, an ALB / BMI grouping at its own
    thresholds) is labelled from its settings alone."""
    from ibd_pipeline.report.key_numbers import key_items
    from ibd_pipeline.report.labels import (endpoint_label, endpoint_order, group_labels, km_groups, km_title,
                                            timepoints, tp_key, tp_label, var_label)

    s = load_settings()
    s["timepoints"]["targets"] = {"week4": 28, "week8": 56, "week12": 84, "week24": 168}
    s["endpoints"]["clinical_endpoints"] = {"clinical_remission": {"rule": "remission"},
                                           "clinical_response": {"rule": "response"}}
    s["endpoints"]["biomarker_endpoints"] = {"biomarker_remission": {"rule": "fc_or_crp_normal"}}
    s["endpoints"]["biochemical"] = {"crp_below": 5, "fc_below": 250}
    s["baseline"]["albumin_low"], s["baseline"]["bmi_low"] = 30, 18.5
    s["persistence"]["km_groups"] = ["overall", "albumin_le_35"]
    s["persistence"]["km_months"] = [3, 6]
    s["statistics"]["predictor_outcome"] = {"endpoint": "clinical_remission", "timepoint": "week24",
                                            "analysis": "complete_case"}
    assert timepoints(s) == ["baseline", "week4", "week8", "week12", "week24"]
    assert sorted(["week24", "week4", "baseline", "week12"], key=lambda t: tp_key(t, s)) == [
        "baseline", "week4", "week12", "week24"]
    assert [tp_label(t) for t in ("week4", "week24", "baseline", "month12", "induction")] == [
        "Week 4", "Week 24", "Baseline", "Month 12", "Induction"]
    assert endpoint_order(s) == ["clinical_remission", "clinical_response", "biomarker_remission"]
    assert endpoint_label("clinical_remission", s) == "Clinical remission"
    assert endpoint_label("biomarker_remission", s) == "Biomarker remission (FC < 250 \u00b5g/g or CRP < 5 mg/L)"
    s["endpoints"]["biomarker_endpoints"]["crp_remission"] = {"rule": "crp_normal", "label": "CRP remission"}
    s["endpoints"]["biochemical"] = {"crp_max": 5, "fc_max": 250}  # at most, not below
    assert endpoint_label("crp_remission", s) == "CRP remission (\u2264 5 mg/L)"
    # the flag's column name is the covariate's; its label is the threshold of the settings
    assert var_label("albumin_le_35", s) == "Albumin \u2264 30 g/L"
    assert km_title("albumin_le_35", s) == "By baseline albumin (30 g/L)"
    assert group_labels("albumin_le_35", s)["no"] == "Albumin > 30 g/L"
    assert km_groups(s) == ["overall", "albumin_le_35"]
    items = dict(key_items({"clinical_remission_week24_cd": "10/20", "clinical_remission_week24_cd_pct": 50.0,
                            "km_6m_persistence_pct": 80.0}, s))
    assert items["Clinical remission, week 24, CD"] == "10/20 (50.0%)"
    assert items["On UPA at 6 months (KM)"] == "80.0%"
