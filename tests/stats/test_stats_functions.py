"""Behaviour of ibd_pipeline.stats on constructed frames: denominators, selection
logic, fall-backs, reproducibility, table shapes, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import cochrans_q as sm_cochrans_q

from dataclasses import replace

from ibd_pipeline.config import load_settings, with_overrides
from ibd_pipeline.stats import (
    Outcome,
    ae_tables,
    biomarker_summary,
    biomarker_tests,
    center_heterogeneity,
    cochran_q,
    cox_models,
    dersimonian_laird,
    discontinuation_rate,
    endpoint_rates,
    km_estimates,
    logrank_tests,
    outcome_from_endpoints,
    params_from_settings,
    predictor_analysis,
    table1,
    uc_vs_cd_tests,
    with_covariates,
)
from ibd_pipeline.study_model import StudySettingsError
from tests.support.stats_examples import example_frames

FAST = dict(cv_folds=5, Cs=6, l1_ratios=(0.5, 0.9), boruta_max_iter=25, bootstrap=8)
# the example frames' study terms (tests/stats_examples.py), as a study.yaml would name them
KM_GROUPS = ("overall", "diagnosis", "albumin_le_35", "bmi_le_18_5")
PRIMARY = ("sf_clinical_remission", "clinical_response", "endoscopic_remission", "endoscopic_response")


@pytest.fixture(scope="module")
def frames():
    return example_frames(11)


def _ep(rows):
    return pd.DataFrame(rows, columns=["patient_id", "center", "diagnosis", "timepoint", "endpoint",
                                       "status", "status_nri"]).assign(value=None, reason=None)


# ------------------------------------------------------------------- rates
def test_endpoint_rates_complete_case_and_nri_denominators():
    ep = _ep([
        ("u1", "a", "UC", "month12", "sf_clinical_remission", "achieved", "achieved"),
        ("u2", "a", "UC", "month12", "sf_clinical_remission", "not_achieved", "not_achieved"),
        ("u3", "b", "UC", "month12", "sf_clinical_remission", "not_evaluable", "not_achieved"),
        ("c1", "b", "CD", "month12", "sf_clinical_remission", "achieved", "achieved"),
        ("c2", "b", "CD", "month12", "sf_clinical_remission", "achieved", "achieved"),
    ])
    r = endpoint_rates(ep).set_index(["diagnosis", "analysis"])
    assert (r.loc[("UC", "complete_case"), "n"], r.loc[("UC", "complete_case"), "n_total"]) == (1, 2)
    assert (r.loc[("UC", "nri"), "n"], r.loc[("UC", "nri"), "n_total"]) == (1, 3)
    assert (r.loc[("overall", "complete_case"), "n"], r.loc[("overall", "complete_case"), "n_total"]) == (3, 4)
    assert (r.loc[("overall", "nri"), "n"], r.loc[("overall", "nri"), "n_total"]) == (3, 5)
    assert r.loc[("UC", "complete_case"), "pct"] == pytest.approx(50.0)
    assert list(endpoint_rates(ep).columns) == ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total",
                                                "pct", "ci_low", "ci_high"]


def test_endpoint_rates_time_order(frames):
    r = endpoint_rates(frames["endpoints"])
    sub = r[(r["diagnosis"] == "UC") & (r["endpoint"] == "crp_normal") & (r["analysis"] == "nri")]
    assert sub["timepoint"].tolist() == ["baseline", "induction", "month6", "month12", "month18"]
    assert set(r["diagnosis"]) == {"UC", "CD", "overall"}


def test_uc_vs_cd_tests_counts_and_rule(frames):
    out = uc_vs_cd_tests(frames["endpoints"])
    row = out[(out["timepoint"] == "month12") & (out["endpoint"] == "clinical_response")
              & (out["analysis"] == "complete_case")].iloc[0]
    ep = frames["endpoints"]
    sub = ep[(ep["timepoint"] == "month12") & (ep["endpoint"] == "clinical_response")
             & ep["status"].isin(["achieved", "not_achieved"])]
    tab = pd.crosstab(sub["diagnosis"], sub["status"]).loc[["UC", "CD"], ["achieved", "not_achieved"]]
    assert (row["n_uc"], row["n_total_uc"]) == (tab.loc["UC", "achieved"], tab.loc["UC"].sum())
    expected_min = stats.contingency.expected_freq(tab.to_numpy()).min()
    if expected_min >= 5:
        assert row["test"] == "Pearson chi-square"
        assert row["p_value"] == pytest.approx(stats.chi2_contingency(tab.to_numpy(), correction=False).pvalue)
    else:
        assert row["test"] == "Fisher's exact"
    # a sparse table goes to Fisher
    ep2 = _ep([(f"u{i}", "a", "UC", "month12", "x", "achieved", "achieved") for i in range(3)]
              + [(f"c{i}", "a", "CD", "month12", "x", "not_achieved" if i < 4 else "achieved",
                  "not_achieved") for i in range(6)])
    t2 = uc_vs_cd_tests(ep2)
    cc = t2[t2["analysis"] == "complete_case"].iloc[0]
    assert cc["test"] == "Fisher's exact"
    assert cc["p_value"] == pytest.approx(stats.fisher_exact([[3, 0], [2, 4]]).pvalue)


def test_cochran_q_hand_value_and_complete_patients():
    # k = 3, column sums 3, 2, 1 (T = 6), row sums 2, 1, 3, 0:
    # Q = (k-1)(k sum C^2 - T^2) / (k T - sum R^2) = 2 (42 - 36) / (18 - 14) = 3.0
    patterns = {"p1": [1, 1, 0], "p2": [1, 0, 0], "p3": [1, 1, 1], "p4": [0, 0, 0]}
    tps = ["induction", "month6", "month12"]
    rows = []
    for pid, pat in patterns.items():
        for tp, y in zip(tps, pat):
            s = "achieved" if y else "not_achieved"
            rows.append((pid, "a", "CD", tp, "clinical_response", s, s))
    # p5 lacks month12 in complete case -> left out of complete_case, kept for nri
    rows += [("p5", "a", "CD", "induction", "clinical_response", "achieved", "achieved"),
             ("p5", "a", "CD", "month6", "clinical_response", "achieved", "achieved"),
             ("p5", "a", "CD", "month12", "clinical_response", "not_evaluable", "not_achieved")]
    out = cochran_q(_ep(rows), timepoints=tps)
    cc = out[(out["diagnosis"] == "CD") & (out["analysis"] == "complete_case")].iloc[0]
    assert cc["n_patients"] == 4 and cc["df"] == 2
    assert cc["q"] == pytest.approx(3.0)
    assert cc["p"] == pytest.approx(stats.chi2.sf(3.0, 2))
    nri = out[(out["diagnosis"] == "CD") & (out["analysis"] == "nri")].iloc[0]
    x = np.array(list(patterns.values()) + [[1, 1, 0]])
    assert nri["n_patients"] == 5 and nri["q"] == pytest.approx(sm_cochrans_q(x).statistic)
    # nobody changes -> undefined, no crash
    flat = _ep([(f"p{i}", "a", "UC", tp, "e", "achieved", "achieved") for i in range(3) for tp in tps])
    f = cochran_q(flat, timepoints=tps)
    assert f["q"].isna().all() and f["note"].str.contains("no patient changes").all()


# -------------------------------------------------------------- biomarkers
def test_biomarker_summary_and_tests_equal_scipy(frames):
    bm = frames["biomarkers"]
    s = biomarker_summary(bm)
    crp = bm[(bm["diagnosis"] == "CD") & (bm["test"] == "CRP")]
    base = crp[crp["timepoint"] == "baseline"]["value"].to_numpy()
    row = s[(s["diagnosis"] == "CD") & (s["test"] == "CRP") & (s["timepoint"] == "baseline")].iloc[0]
    assert row["n"] == base.size
    assert row["median"] == pytest.approx(np.median(base))
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(base, [25, 75])))
    assert row["sd"] == pytest.approx(np.std(base, ddof=1))
    t = biomarker_tests(bm)
    kw = t[(t["diagnosis"] == "CD") & (t["test"] == "CRP") & (t["comparison"] == "across_timepoints")].iloc[0]
    groups = [g["value"].to_numpy() for _, g in crp.groupby("timepoint")]
    assert kw["p_value"] == pytest.approx(stats.kruskal(*groups).pvalue, rel=1e-10)
    assert kw["method"] == "Kruskal-Wallis" and kw["n"] == len(crp)
    sr = t[(t["diagnosis"] == "CD") & (t["test"] == "CRP") & (t["comparison"] == "baseline_vs_month12")].iloc[0]
    wide = crp.pivot(index="patient_id", columns="timepoint", values="value")[["baseline", "month12"]].dropna()
    d = (wide["baseline"] - wide["month12"]).to_numpy()
    exact = len(d) < 50 and (d != 0).all() and len(np.unique(np.abs(d))) == len(d)
    # R's wilcox.test(paired = TRUE) defaults: exact without ties / zeros under 50 pairs,
    # else the normal approximation with continuity correction
    ref = stats.wilcoxon(wide["baseline"], wide["month12"], method="exact" if exact else "asymptotic",
                         correction=not exact)
    assert sr["n"] == len(wide) and sr["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert set(t["diagnosis"]) == {"UC", "CD", "overall"}


# -------------------------------------------------------------- predictors
def test_predictor_analysis_reproducible_and_shaped(frames):
    cands = load_settings()["statistics"]["covariates"]
    a = predictor_analysis(frames["covariates"], frames["outcome"], seed=20250401, candidates=cands, **FAST)
    # in worker processes (the model and its bootstrap while Boruta runs): the same tables
    b = predictor_analysis(frames["covariates"], frames["outcome"], seed=20250401, candidates=cands,
                           **{**FAST, "workers": 2})
    pd.testing.assert_frame_equal(a.logistic_model, b.logistic_model)
    pd.testing.assert_frame_equal(a.selection, b.selection)
    pd.testing.assert_frame_equal(a.auc, b.auc)
    assert list(a.logistic_model.columns[:11]) == [
        "variable", "coef", "odds_ratio", "ci_low", "ci_high", "p_value", "selected_by_enet",
        "boruta_decision", "n", "events", "method"]
    assert set(a.selection["variable"]) == set(cands)
    assert set(a.selection["boruta_decision"]) <= {"confirmed", "tentative", "rejected"}
    m = a.logistic_model
    assert len(m) >= 1 and m["selected_by_enet"].all()
    assert (m["ci_low"] <= m["odds_ratio"]).all() and (m["odds_ratio"] <= m["ci_high"]).all()
    auc = a.auc.iloc[0]
    assert auc["ci_method"] == "DeLong" and auc["ci_low"] <= auc["auc"] <= auc["ci_high"]
    assert auc["bootstrap_used"] == 8 and np.isfinite(auc["auc_optimism_corrected"])
    assert a.roc["fpr"].iloc[-1] == 1.0 and a.roc["tpr"].iloc[-1] == 1.0
    # the elastic net drives age (strong simulated effect) into the model
    assert "age" in set(m["variable"])


def test_predictor_center_separation_switches_to_firth_with_finite_estimates(frames):
    cov = frames["covariates"]
    y = frames["outcome"].copy()
    y[cov.loc[cov["center"] == "hz_c", "patient_id"].to_numpy()] = 1  # all responders in one center
    r = predictor_analysis(cov, y, seed=1, candidates=["age", "prior_anti_integrin", "prior_anti_il12_23_or_il23"], **FAST)
    m = r.logistic_model
    assert m["method"].iloc[0] == "Firth-penalized logit, center fixed effect"
    assert "separation" in m["note"].iloc[0] and "Firth-penalized fit" in m["note"].iloc[0]
    assert m["converged"].all() and m["estimable"].all()
    assert np.isfinite(m[["odds_ratio", "ci_low", "ci_high", "p_value"]].to_numpy(float)).all()
    assert ((m["ci_low"] < m["odds_ratio"]) & (m["odds_ratio"] < m["ci_high"])).all()
    assert (m["ci_high"] < 1e4).all() and (m["ci_low"] > 1e-4).all()


def test_predictor_events_per_variable_caps_the_model():
    rng = np.random.default_rng(7)
    n = 120
    cov = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "center": rng.choice(["a", "b"], n),
                        "diagnosis": "CD", **{f"x{k}": rng.normal(size=n) for k in range(4)}})
    lin = 1.5 * cov["x0"] + 1.2 * cov["x1"] + 1.0 * cov["x2"] + 0.8 * cov["x3"]
    y = pd.Series((lin + rng.logistic(size=n) > 2.2).astype(int).to_numpy(), index=cov["patient_id"])
    events = int(y.sum())
    kw = dict(cv_folds=5, Cs=[10.0], l1_ratios=(0.5,), boruta_max_iter=20, bootstrap=4)
    free = predictor_analysis(cov, y, seed=3, events_per_variable=1, **kw)
    assert len(free.variables) == 4
    capped = predictor_analysis(cov, y, seed=3, events_per_variable=10, **kw)
    limit = min(events, n - events) // 10
    assert 1 <= limit < 4 and len(capped.variables) == limit
    # the largest |elastic-net coefficients| are kept
    sel = free.selection.set_index("variable")["enet_coef"].abs().sort_values(ascending=False)
    assert set(capped.variables) == set(sel.index[:limit])
    assert "events-per-variable limit 10" in capped.note
    none = predictor_analysis(cov, y, seed=3, events_per_variable=100, **kw)
    assert none.variables == () and f"not estimable ({events} events / {n})" in none.note
    assert not none.logistic_model["estimable"].iloc[0]


# logistf's documented example (R package logistf, data sex2: urinary tract infection in
# 239 college women; summary(logistf(case ~ age + oc + vic + vicl + vis + dia, data = sex2))):
# Firth coefficients and profile penalized-likelihood 95% CIs. sex2 as counts per pattern
# (age, oc, vic, vicl, vis, dia, case, n).
SEX2 = [
    (0, 0, 0, 0, 1, 0, 0, 1), (0, 0, 0, 0, 1, 0, 1, 1), (0, 0, 1, 0, 0, 0, 0, 2), (0, 0, 1, 0, 0, 0, 1, 14),
    (0, 0, 1, 0, 1, 0, 0, 1), (0, 0, 1, 0, 1, 0, 1, 3), (0, 0, 1, 1, 0, 0, 0, 8), (0, 0, 1, 1, 0, 0, 1, 10),
    (0, 0, 1, 1, 1, 0, 0, 18), (0, 0, 1, 1, 1, 0, 1, 12), (0, 0, 1, 1, 1, 1, 1, 1), (0, 1, 0, 0, 0, 0, 0, 42),
    (0, 1, 0, 0, 0, 0, 1, 44), (0, 1, 0, 0, 0, 1, 1, 3), (0, 1, 0, 0, 1, 0, 0, 1), (0, 1, 1, 0, 0, 0, 0, 1),
    (0, 1, 1, 0, 0, 0, 1, 15), (0, 1, 1, 0, 0, 1, 1, 1), (0, 1, 1, 0, 1, 0, 1, 2), (0, 1, 1, 1, 0, 0, 0, 5),
    (0, 1, 1, 1, 0, 0, 1, 7), (0, 1, 1, 1, 1, 0, 0, 6), (0, 1, 1, 1, 1, 0, 1, 3), (1, 0, 1, 0, 0, 0, 1, 2),
    (1, 0, 1, 0, 1, 0, 1, 1), (1, 0, 1, 0, 1, 1, 1, 1), (1, 0, 1, 1, 0, 0, 0, 2), (1, 0, 1, 1, 0, 0, 1, 1),
    (1, 0, 1, 1, 1, 0, 0, 4), (1, 0, 1, 1, 1, 1, 1, 1), (1, 1, 0, 0, 0, 0, 0, 14), (1, 1, 0, 0, 0, 0, 1, 5),
    (1, 1, 0, 0, 1, 0, 0, 1), (1, 1, 1, 0, 0, 0, 0, 1), (1, 1, 1, 0, 0, 0, 1, 3), (1, 1, 1, 1, 1, 0, 0, 2),
]
SEX2_LOGISTF = {  # coef, lower 0.95, upper 0.95
    "age": (-1.10598130, -1.97378828, -0.30742505),
    "oc": (-0.06881673, -0.94143585, 0.78920191),
    "vic": (2.26887464, 1.27302094, 3.43543202),
    "vicl": (-2.11140817, -3.26086143, -1.11773440),
    "vis": (-0.78831694, -1.60808772, 0.01518466),
    "dia": (3.09601166, 0.77456811, 8.03029107),
}


def test_firth_fit_reproduces_logistf_sex2_example():
    from ibd_pipeline.stats.predictors import _firth_logit, _separated

    rows = [r[:7] for r in SEX2 for _ in range(r[7])]
    d = pd.DataFrame(rows, columns=["age", "oc", "vic", "vicl", "vis", "dia", "case"])
    assert len(d) == 239 and d["case"].sum() == 130
    X = d.drop(columns="case").astype(float)
    assert _separated(X, d["case"].to_numpy())  # every diaphragm user is a case: ML has no finite estimate
    fit = _firth_logit(d["case"].to_numpy(), X, alpha=0.05)
    assert fit["converged"]
    for v, (b, lo, hi) in SEX2_LOGISTF.items():
        assert fit["params"][v] == pytest.approx(b, abs=2e-6), v
        assert fit["ci"].loc[v, 0] == pytest.approx(lo, abs=1e-4), v
        assert fit["ci"].loc[v, 1] == pytest.approx(hi, abs=1e-4), v


def test_predictor_empty_selection_paths():
    rng = np.random.default_rng(4)
    n = 90
    cov = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "center": rng.choice(["a", "b"], n),
                        "diagnosis": "CD", "noise1": rng.normal(size=n), "noise2": rng.normal(size=n),
                        "strong": rng.normal(size=n)})
    # heavy penalty only (C = 1e-4): the elastic net keeps nothing
    kw = dict(cv_folds=5, Cs=[1e-4], l1_ratios=(0.9,), boruta_max_iter=30, bootstrap=5)
    y = pd.Series((cov["strong"] + 0.3 * rng.normal(size=n) > 0).astype(int).to_numpy(), index=cov["patient_id"])
    r = predictor_analysis(cov, y, seed=3, **kw)
    assert not r.selection["selected_by_enet"].any()
    assert r.variables == ("strong",)  # Boruta-confirmed fallback
    assert "Boruta-confirmed" in r.note
    y0 = pd.Series(rng.integers(0, 2, n), index=cov["patient_id"])
    r0 = predictor_analysis(cov[["patient_id", "center", "diagnosis", "noise1", "noise2"]], y0, seed=3, **kw)
    assert r0.variables == () and "no multivariable model" in r0.note
    assert len(r0.logistic_model) == 1 and pd.isna(r0.logistic_model["variable"].iloc[0])


def test_outcome_from_endpoints(frames):
    y = outcome_from_endpoints(frames["endpoints"], "sf_clinical_remission", "month12")
    ep = frames["endpoints"]
    sub = ep[(ep["endpoint"] == "sf_clinical_remission") & (ep["timepoint"] == "month12")]
    assert len(y) == sub["status"].isin(["achieved", "not_achieved"]).sum()
    assert y.sum() == (sub["status"] == "achieved").sum()


# ------------------------------------------------------------- persistence
def test_km_estimates_shape(frames):
    out = km_estimates(frames["persistence"], frames["covariates"], group_vars=KM_GROUPS, months=(3, 6, 9, 12),
                       days_per_month=30.4375)
    assert list(out.columns) == ["group_var", "group", "month", "survival", "ci_low", "ci_high", "n_at_risk"]
    assert set(out["group_var"]) == {"overall", "diagnosis", "albumin_le_35", "bmi_le_18_5"}
    ov = out[out["group_var"] == "overall"]
    assert ov["month"].tolist() == [3, 6, 9, 12]
    assert (ov["survival"].diff().dropna() <= 1e-12).all()  # non-increasing
    assert ((ov["ci_low"] <= ov["survival"]) & (ov["survival"] <= ov["ci_high"])).all()
    pers = frames["persistence"]
    assert ov["n_at_risk"].iloc[0] == int((pers["time_days"] >= 3 * 30.4375).sum())


def test_logrank_two_groups_equals_lifelines(frames):
    from lifelines.statistics import logrank_test

    pers = frames["persistence"]
    out = logrank_tests(pers, frames["covariates"], group_vars=KM_GROUPS[1:]).set_index("group_var")
    uc, cd = pers[pers["diagnosis"] == "UC"], pers[pers["diagnosis"] == "CD"]
    ref = logrank_test(cd["time_days"], uc["time_days"], cd["event"], uc["event"])
    assert out.loc["diagnosis", "p_value"] == pytest.approx(ref.p_value)
    assert out.loc["diagnosis", "groups"] == "CD|UC"


def test_cox_forward_selection_and_failures(frames):
    cov = frames["covariates"].copy()
    cov["constant"] = 1
    data = with_covariates(frames["persistence"], cov, ["age", "male", "constant"])
    out = cox_models(data, ["age", "male", "constant"], entry_p=1e-9)
    uni = out[out["model"] == "univariate"].set_index("variable")
    assert "no variation" in uni.loc["constant", "note"] and pd.isna(uni.loc["constant", "coef"])
    multi = out[out["model"] == "multivariable"]
    assert len(multi) == 1 and pd.isna(multi["variable"].iloc[0]) and "no candidate entered" in multi["note"].iloc[0]
    # entry p = 1: the candidate with the smaller univariate p enters first
    out2 = cox_models(data, ["age", "male"], entry_p=1.0)
    m2 = out2[out2["model"] == "multivariable"]
    first = uni.loc[["age", "male"], "p_value"].idxmin()
    assert m2.iloc[0]["variable"] == first and m2["step"].tolist() == [1, 2]


def _confounded_persistence(seed: int = 1, n: int = 240) -> pd.DataFrame:
    """Stops driven by ``a`` alone; ``b`` follows ``a`` (85%), so it is significant alone
    and not once ``a`` is in the model."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.4).astype(int)
    b = np.where(rng.random(n) < 0.85, a, 1 - a)
    t = rng.exponential(365 / np.exp(1.2 * a))
    c = rng.uniform(100, 700, n)
    return pd.DataFrame({"time_days": np.minimum(t, c).round(1), "event": (t <= c).astype(int), "a": a, "b": b})


def test_cox_univariate_selection_enters_the_significant_candidates_together_where_forward_stops():
    from lifelines import CoxPHFitter

    data = _confounded_persistence()
    fwd = cox_models(data, ["a", "b"], strata=None, events_per_variable=1)
    uni = fwd[fwd["model"] == "univariate"].set_index("variable")
    assert (uni["p_value"] < 0.05).all()  # each alone is significant
    assert fwd.loc[fwd["model"] == "multivariable", "variable"].tolist() == ["a"]  # b given a is not
    tog = cox_models(data, ["b", "a"], strata=None, events_per_variable=1, selection="univariate")
    multi = tog[tog["model"] == "multivariable"].set_index("variable")
    # both enter, the more significant first, and b keeps its p >= 0.05 given a
    assert multi.index.tolist() == ["a", "b"] and multi["step"].tolist() == [1, 2]
    assert multi.loc["b", "p_value"] >= 0.05
    ref = CoxPHFitter().fit(data[["time_days", "event", "a", "b"]], "time_days", "event")
    assert multi.loc["a", "hr"] == pytest.approx(float(np.exp(ref.params_["a"])), rel=1e-5)
    assert multi.loc["b", "p_value"] == pytest.approx(float(ref.summary.loc["b", "p"]), rel=1e-4)
    # the events-per-variable limit keeps the most significant and says so
    events = int(data["event"].sum())
    capped = cox_models(data, ["a", "b"], strata=None, events_per_variable=events / 1.5, selection="univariate")
    cm = capped[capped["model"] == "multivariable"]
    assert cm["variable"].tolist() == ["a"] and "the most significant entered" in cm["note"].iloc[0]
    with pytest.raises(ValueError, match="cox_selection"):
        cox_models(data, ["a", "b"], strata=None, selection="stepwise")


def test_the_cox_selection_is_a_study_setting_and_a_wrong_value_is_rejected():
    assert params_from_settings(load_settings()).cox_selection == "forward"
    together = with_overrides(load_settings(), {"statistics": {"cox_selection": "univariate"}})
    assert params_from_settings(together).cox_selection == "univariate"
    bad = with_overrides(load_settings(), {"statistics": {"cox_selection": "stepwise"}})
    with pytest.raises(StudySettingsError, match=r"statistics\.cox_selection"):
        params_from_settings(bad)


def test_discontinuation_rate_by_hand():
    pers = pd.DataFrame({"patient_id": list("abcd"), "diagnosis": ["UC", "UC", "CD", "CD"],
                         "time_days": [365.25, 365.25, 730.5, 365.25], "event": [1, 0, 1, 1]})
    out = discontinuation_rate(pers).set_index(["group_var", "group"])
    assert out.loc[("overall", "all"), "patient_years"] == pytest.approx(5.0)
    assert out.loc[("overall", "all"), "rate_per_100py"] == pytest.approx(60.0)
    assert out.loc[("diagnosis", "CD"), "rate_per_100py"] == pytest.approx(200 / 3)
    lo = stats.chi2.ppf(0.025, 6) / 2 / 5 * 100
    assert out.loc[("overall", "all"), "ci_low"] == pytest.approx(lo)


# ------------------------------------------------------------ heterogeneity
def test_center_heterogeneity(frames):
    out = center_heterogeneity(frames["endpoints"], "month12", PRIMARY, small_cell_below=5)
    cols = ["diagnosis", "endpoint", "center", "n", "n_total", "pct", "ci_low", "ci_high", "weight", "pooled_pct",
            "pooled_ci_low", "pooled_ci_high", "tau2", "i2", "q", "p_q", "small_cell"]
    assert list(out.columns) == cols
    g = out[(out["diagnosis"] == "CD") & (out["endpoint"] == "sf_clinical_remission")]
    assert g["weight"].sum() == pytest.approx(100.0)
    ref = dersimonian_laird(g["n"].to_numpy(), g["n_total"].to_numpy())
    assert g["pooled_pct"].iloc[0] == pytest.approx(100 * ref.pooled)
    assert g["i2"].iloc[0] == pytest.approx(ref.i2)
    assert (out["small_cell"] == ((out["n_total"] < 5) | ((out["n"] > 0) & (out["n"] < 5)))).all()
    assert set(out["endpoint"]) == {"sf_clinical_remission", "clinical_response", "endoscopic_remission",
                                    "endoscopic_response"}


# ------------------------------------------------------------------ safety
def test_ae_tables_by_hand():
    cohort = pd.DataFrame({"patient_id": ["u1", "u2", "c1", "c2", "c3"], "diagnosis": ["UC", "UC", "CD", "CD", "CD"]})
    exposure = pd.DataFrame({"patient_id": cohort["patient_id"], "diagnosis": cohort["diagnosis"],
                             "exposure_years": [1.0, 1.0, 0.5, 0.5, 1.0]})
    ae = pd.DataFrame({
        "patient_id": ["u1", "u1", "c1", "c2", "x9"],
        "center": "a", "diagnosis": ["UC", "UC", "CD", "CD", "CD"],
        "term": ["acne", "acne", "infection", "acne", "acne"],
        "serious": [False, False, True, False, False],
        "led_to_discontinuation": [False, False, True, False, False],
        "onset_day": [10, 20, 30, 40, 50],
    })
    t = ae_tables(ae, exposure, cohort)
    bt = t.by_term.set_index(["diagnosis", "term"])
    assert bt.loc[("UC", "acne"), "n_patients"] == 1 and bt.loc[("UC", "acne"), "n_events"] == 2
    assert bt.loc[("UC", "acne"), "pct_patients"] == pytest.approx(50.0)
    assert bt.loc[("UC", "acne"), "rate_per_100py"] == pytest.approx(100.0)
    assert bt.loc[("UC", "infection"), "n_patients"] == 0  # zero rows kept
    assert bt.loc[("overall", "any"), "n_patients"] == 3 and bt.loc[("overall", "any"), "n_included"] == 5
    assert bt.loc[("overall", "any"), "n_events"] == 4  # x9 is not in the cohort
    assert bt.loc[("CD", "acne"), "pct_patients"] == pytest.approx(100 / 3)
    s = t.serious.set_index(["diagnosis", "term"])
    assert s.loc[("CD", "infection"), "n_patients"] == 1 and s.loc[("UC", "any"), "n_patients"] == 0
    assert t.discontinuation.set_index(["diagnosis", "term"]).loc[("overall", "any"), "n_events"] == 1


# ------------------------------------------------------------------ table 1
def test_table1_on_example_covariates(frames):
    variables = [{"name": "age"}, {"name": "male"}, {"name": "disease_duration_years"},
                 {"name": "montreal_age", "type": "categorical", "levels": ["A1", "A2", "A3"], "diagnoses": ["CD"]},
                 {"name": "uc_extent", "type": "categorical", "diagnoses": ["UC"]},
                 {"name": "smoking", "type": "categorical"}, {"name": "prior_anti_tnf"}]
    t = table1(frames["covariates"], variables, normal_variables=["age"])
    assert list(t.columns) == ["variable", "level", "overall", "UC", "CD", "statistic", "p_value", "test"]
    assert t.loc[t["variable"] == "age", "test"].iloc[0] == "Welch's t"
    assert t.loc[t["variable"] == "montreal_age", "UC"].eq("").all()
    tests = set(t["test"].dropna())
    assert tests <= {"Welch's t", "Wilcoxon rank-sum", "Pearson chi-square", "Fisher's exact",
                     "Fisher's exact (Freeman-Halton, exact enumeration)", "not tested"}


# ------------------------------------------------- nullable pipeline dtypes
def test_nullable_dtypes_from_the_baseline_module(frames):
    """The covariates module delivers boolean flags with <NA>, Float64 numbers: every
    function takes them (missing flag -> left out of that analysis)."""
    cov = frames["covariates"].copy()
    flags = ["male", "bmi_le_18_5", "albumin_le_35", "prior_anti_integrin"]
    for c in flags:
        cov[c] = cov[c].astype(bool).astype("boolean")
    cov.loc[[1, 5, 9], "albumin_le_35"] = pd.NA
    cov["bmi"] = cov["bmi"].astype("Float64")
    cov.loc[3, "bmi"] = pd.NA
    t = table1(cov, [{"name": "bmi"}, {"name": "albumin_le_35"}])
    alb = t[t["variable"] == "albumin_le_35"]
    assert alb["level"].tolist() == ["yes", "(missing)"] and alb.iloc[1]["overall"] == "3"
    assert t[t["variable"] == "bmi"].iloc[1]["overall"] == "1"
    lr = logrank_tests(frames["persistence"], cov, group_vars=KM_GROUPS[1:]).set_index("group_var")
    assert lr.loc["albumin_le_35", "n"] == 77
    data = with_covariates(frames["persistence"], cov, flags)
    cx = cox_models(data, flags, entry_p=1.0)
    assert cx.loc[(cx["model"] == "univariate") & (cx["variable"] == "albumin_le_35"), "n"].iloc[0] == 77
    r = predictor_analysis(cov, frames["outcome"], seed=1, candidates=["age", *flags], cv_folds=5, Cs=4,
                           l1_ratios=(0.5,), boruta_max_iter=15, bootstrap=0)
    assert r.logistic_model["n"].iloc[0] == 77 and "3 patient(s) left out" in r.note
    assert r.auc["bootstrap_used"].iloc[0] == 0


# ----------------------------------------------------------------- settings
def test_params_from_settings_reads_every_value_from_the_study_settings():
    p = params_from_settings(load_settings())
    assert (p.seed, p.cv_folds, p.bootstrap_samples, p.alpha) == (20250401, 10, 200, 0.05)
    assert p.km_months == (3, 6, 9, 12) and p.days_per_month == 30.4375 and p.days_per_year == 365.25
    assert p.cox_entry_p == 0.05 and "albumin_le_35" in p.covariates and p.small_cell_below == 5
    assert p.km_groups == ("overall", "diagnosis", "albumin_le_35", "bmi_le_18_5")
    assert p.logrank_groups == ("diagnosis", "albumin_le_35", "bmi_le_18_5")
    assert p.timepoint_order == ("baseline", "induction", "month6", "month12", "month18")
    assert p.predictor_outcome == Outcome("sf_clinical_remission", "month12", "complete_case")
    # another study: its own time points (in its order), groupings and outcome, nothing from code
    base = load_settings()
    base["timepoints"]["targets"] = {"week4": 28, "week8": 56, "week12": 84, "week24": 168}
    other = with_overrides(base, {
        "timepoints": {"clinical": ["week4", "week12", "week24"], "labs": ["baseline", "week24"]},
        "persistence": {"km_groups": ["overall", "albumin_le_35"], "km_months": [1, 3]},
        "statistics": {"predictor_outcome": {"endpoint": "clinical_remission", "timepoint": "week24", "analysis": "nri"},
                       "heterogeneity": {"timepoint": "week24", "endpoints": ["clinical_remission"]}}})
    q = params_from_settings(other)
    assert q.timepoint_order == ("baseline", "week4", "week8", "week12", "week24")
    assert q.clinical_timepoints == ("week4", "week12", "week24") and q.km_months == (1, 3)
    assert q.logrank_groups == ("albumin_le_35",) and q.heterogeneity_endpoints == ("clinical_remission",)
    assert q.predictor_outcome == Outcome("clinical_remission", "week24", "nri")


def test_params_from_settings_rejects_settings_the_study_model_rejects():
    bad = with_overrides(load_settings(), {"persistence": {"km_group": ["overall"]}})
    with pytest.raises(StudySettingsError, match=r"persistence\.km_group: unknown key"):
        params_from_settings(bad)


def test_rates_sort_time_points_in_the_studys_order_not_by_name():
    rows = [(f"p{i}", "a", "CD", tp, "clinical_remission", "achieved", "achieved")
            for i, tp in enumerate(["week24", "week4", "week12", "baseline"])]
    order = ("baseline", "week4", "week8", "week12", "week24")
    r = endpoint_rates(_ep(rows), timepoint_order=order)
    cd = r[(r["diagnosis"] == "CD") & (r["analysis"] == "nri")]
    assert cd["timepoint"].tolist() == ["baseline", "week4", "week12", "week24"]
    # without an order: as the time points first appear
    r0 = endpoint_rates(_ep(rows))
    assert r0[(r0["diagnosis"] == "CD") & (r0["analysis"] == "nri")]["timepoint"].tolist() == [
        "week24", "week4", "week12", "baseline"]


# ------------------------------------------------------------------ figures
def test_figures_render_png(frames):
    from matplotlib.figure import Figure

    from ibd_pipeline.stats import figures as F

    rates = endpoint_rates(frames["endpoints"])
    figs = [
        F.forest_plot(["a", "b", "c"], [1.2, 0.8, 2.0], [0.9, 0.5, 1.1], [1.6, 1.3, 3.5], log_scale=True,
                      ref_line=1.0, xlabel="OR"),
        F.forest_plot(["c1", "c2"], [55, 70], [40, 50], [70, 85], weights=[60, 40], pooled=(62, 52, 71),
                      flags=[False, True], ref_line=None),
        F.km_plot(frames["persistence"], frames["covariates"], group_var="diagnosis", days_per_month=30.4375,
                  months=(0, 3, 6, 9, 12)),
        F.km_plot(frames["persistence"], days_per_month=30.4375, months=(0, 6, 12)),
        F.roc_plot(pd.DataFrame({"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1]}),
                   {"auc": 0.75, "ci_low": 0.6, "ci_high": 0.9, "auc_optimism_corrected": 0.71}),
        F.endpoint_plot(rates, "sf_clinical_remission"),
        F.biomarker_trajectory_plot(biomarker_summary(frames["biomarkers"]), "CRP", unit="mg/L"),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        png = F.figure_to_png(fig, dpi=40)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_persistence_analysis_fits_only_the_candidates_the_cohort_has(frames):
    from ibd_pipeline.stats.analyses import PersistenceTables, persistence_analysis

    params = replace(params_from_settings(load_settings()), covariates=("age", "not_a_covariate"))
    out = persistence_analysis(frames["persistence"], frames["covariates"], params)
    assert isinstance(out, PersistenceTables)
    assert list(out.tables()) == ["km_estimates", "logrank_tests", "cox_model", "discontinuation_rates"]
    cox = out.cox_model
    uni = cox[cox["model"] == "univariate"]
    assert list(uni["variable"]) == ["age"] and int(uni["n"].iloc[0]) == len(frames["persistence"])
    assert set(cox.loc[cox["model"] == "multivariable", "variable"].dropna()) <= {"age"}
    assert set(out.km_estimates["group_var"]) == set(params.km_groups)
    assert set(out.logrank_tests["group_var"]) == set(params.logrank_groups)


def test_persistence_analysis_groups_by_the_settings_groupings(frames):
    from ibd_pipeline.stats.analyses import persistence_analysis

    params = replace(params_from_settings(load_settings()), covariates=("age",), km_groups=("overall", "male"),
                     km_months=(2, 4))
    out = persistence_analysis(frames["persistence"], frames["covariates"], params)
    assert set(out.km_estimates["group_var"]) == {"overall", "male"}
    assert sorted(set(out.km_estimates["month"])) == [2, 4]
    assert out.logrank_tests["group_var"].tolist() == ["male"]


def test_predictor_tables_model_the_settings_outcome(frames):
    from ibd_pipeline.stats.analyses import PredictorTables, predictor_tables

    ep = frames["endpoints"]
    params = replace(params_from_settings(load_settings()), covariates=("age", "male"), cv_folds=5,
                     bootstrap_samples=0, predictor_outcome=Outcome("clinical_response", "month6", "nri"))
    out = predictor_tables(frames["covariates"], ep, params, workers=1)
    assert isinstance(out, PredictorTables) and list(out.tables()) == [
        "predictor_selection", "logistic_model", "roc_curve", "model_auc"]
    sub = ep[(ep["endpoint"] == "clinical_response") & (ep["timepoint"] == "month6")]
    m = out.logistic_model
    assert int(m["n"].iloc[0]) == sub["patient_id"].nunique()  # nri: every patient of that point
    assert int(m["events"].iloc[0]) == int((sub["status_nri"] == "achieved").sum())


def test_the_persistence_models_of_what_they_read_equal_those_of_the_whole_tables(frames):
    from ibd_pipeline.stats.analyses import persistence_analysis, persistence_inputs

    params = replace(params_from_settings(load_settings()), covariates=("age", "male", "albumin_le_35"),
                     km_groups=("overall", "diagnosis", "bmi_le_18_5"))
    persistence, cov = persistence_inputs(frames["persistence"], frames["covariates"], params)
    assert list(cov.columns) == ["patient_id", "age", "male", "albumin_le_35", "diagnosis", "bmi_le_18_5"]
    whole = persistence_analysis(frames["persistence"], frames["covariates"], params, workers=1).tables()
    part = persistence_analysis(persistence, cov, params, workers=1).tables()
    for name, table in whole.items():
        pd.testing.assert_frame_equal(part[name], table, obj=name)


def test_the_predictor_data_version_follows_the_design_and_nothing_else(frames):
    from ibd_pipeline.stats.analyses import predictor_inputs, predictor_inputs_hash

    cov, ep = frames["covariates"], frames["endpoints"]
    params = replace(params_from_settings(load_settings()), covariates=("age", "male", "albumin_le_35"),
                     predictor_outcome=Outcome("clinical_response", "month6", "nri"))

    def version(cov, ep, params):
        return predictor_inputs_hash(predictor_inputs(cov, ep, params))

    base = version(cov, ep, params)
    assert version(cov.copy(), ep.copy(), params) == base
    # a column the models do not read (disease duration), changed so the rows keep their order
    from ibd_pipeline.stats.order import stable_order

    unused = cov.assign(disease_duration_years=cov["disease_duration_years"] + 0.01)
    assert stable_order(unused).index.equals(stable_order(cov).index)  # the rows keep their order
    assert version(unused, ep, params) == base
    # a candidate's value, the outcome of one patient, the candidates: a new version
    changed = cov.copy()
    changed.loc[changed.index[0], "male"] = 1 - changed.loc[changed.index[0], "male"]
    assert version(changed, ep, params) != base
    flip = ep.copy()
    i = flip.index[(flip["endpoint"] == "clinical_response") & (flip["timepoint"] == "month6")][0]
    flip.loc[i, "status_nri"] = "not_achieved" if flip.loc[i, "status_nri"] == "achieved" else "achieved"
    assert version(cov, flip, params) != base
    assert version(cov, ep, replace(params, covariates=("age", "male"))) != base


def test_the_predictor_tables_of_a_design_made_beforehand_equal_those_made_inside(frames):
    from ibd_pipeline.stats.analyses import predictor_inputs, predictor_tables

    cov, ep = frames["covariates"], frames["endpoints"]
    params = replace(params_from_settings(load_settings()), covariates=("age", "male", "albumin_le_35"), cv_folds=5,
                     bootstrap_samples=4, predictor_outcome=Outcome("clinical_response", "month6", "nri"))
    inside = predictor_tables(cov, ep, params, workers=1).tables()
    given = predictor_tables(cov, ep, params, workers=1, design=predictor_inputs(cov, ep, params)).tables()
    assert len(inside["predictor_selection"]) == 3
    for name, table in inside.items():
        pd.testing.assert_frame_equal(given[name], table, obj=name)


def test_result_objects_are_frozen():
    from dataclasses import FrozenInstanceError

    r = dersimonian_laird([3, 5], [10, 12])
    with pytest.raises(FrozenInstanceError):
        r.pooled = 0.5


def test_every_public_stats_function_has_a_numpydoc_docstring_citing_the_study_rules():
    import importlib
    import inspect
    import pkgutil

    import ibd_pipeline.stats as S

    missing = []
    for m in pkgutil.iter_modules(S.__path__):
        mod = importlib.import_module(f"ibd_pipeline.stats.{m.name}")
        for name, f in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(f) or f.__module__ != mod.__name__:
                continue
            doc = inspect.getdoc(f) or ""
            need = ["Parameters\n----------", "Returns\n-------", "Notes\n-----", "docs/STUDY_RULES.md#"]
            missing += [f"{mod.__name__}.{name}: {k.splitlines()[0]}" for k in need if k not in doc]
    assert missing == []


def test_the_fast_log_loss_scorer_equals_scikit_learns_value_for_value():
    """predictors.neg_log_loss (the elastic net's CV scorer) gives exactly sklearn's
    "neg_log_loss", extreme probabilities (clipping) included, and refuses a one-class fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import get_scorer

    from ibd_pipeline.stats.predictors import neg_log_loss

    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + rng.normal(size=80) > 0).astype(int)
    ref = get_scorer("neg_log_loss")
    for C in (1e-4, 1.0, 1e6):
        m = LogisticRegression(C=C, max_iter=5000).fit(X * (50 if C == 1e6 else 1), y)
        for Xt, yt in ((X[:40], y[:40]), (X[40:] * 50, y[40:])):
            assert neg_log_loss(m, Xt, yt) == ref(m, Xt, yt)
    with pytest.raises(ValueError):
        neg_log_loss(m, X[y == 1], y[y == 1])
