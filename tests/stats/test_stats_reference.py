"""Correctness of ibd_pipeline.stats against independent implementations and published
reference values (R survival, R stats, metafor).

Reference numbers are hard-coded with their source; tolerances follow the printed
precision of the source.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from ibd_pipeline.stats import (
    chi_square_or_fisher,
    cox_models,
    delong_auc,
    dersimonian_laird,
    dl_pool,
    endpoint_rates,
    fisher_exact_2xk,
    km_at,
    km_estimates,
    logrank_tests,
    poisson_exact_ci,
    table1,
    wilson_ci,
    with_covariates,
)
from tests.support.stats_examples import example_frames


@pytest.fixture(scope="module")
def lung():
    from lifelines.datasets import load_lung

    d = load_lung()  # R survival::lung with status recoded 1 = dead, 0 = censored
    assert len(d) == 228 and int(d["status"].sum()) == 165
    return d


@pytest.fixture(scope="module")
def rossi():
    from lifelines.datasets import load_rossi

    return load_rossi()


# --------------------------------------------------------------- Cox vs PHReg
COX_COVS = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def _lifelines_cox(df, covs, duration, event, strata=None):
    from lifelines import CoxPHFitter

    cols = [duration, event, *covs] + ([strata] if strata else [])
    cph = CoxPHFitter().fit(df[cols], duration, event, strata=[strata] if strata else None)
    return cph.params_[covs].to_numpy(), cph.standard_errors_[covs].to_numpy()


def test_cox_lifelines_equals_statsmodels_phreg_efron(rossi):
    """lifelines (Efron ties) == statsmodels PHReg(ties='efron') to 1e-4 on the Rossi
    recidivism data (many tied event weeks, so the tie method matters)."""
    coef, se = _lifelines_cox(rossi, COX_COVS, "week", "arrest")
    ph = PHReg(rossi["week"].to_numpy(float), rossi[COX_COVS].to_numpy(float),
               status=rossi["arrest"].to_numpy(), ties="efron").fit()
    np.testing.assert_allclose(coef, ph.params, atol=1e-4)
    np.testing.assert_allclose(se, ph.bse, atol=1e-4)
    # sensitivity of the check: Breslow ties give visibly different coefficients
    br = PHReg(rossi["week"].to_numpy(float), rossi[COX_COVS].to_numpy(float),
               status=rossi["arrest"].to_numpy(), ties="breslow").fit()
    assert np.max(np.abs(br.params - coef)) > 1e-4


def test_stratified_cox_equals_phreg_strata(rossi):
    covs = ["fin", "age", "race", "mar", "paro", "prio"]
    coef, se = _lifelines_cox(rossi, covs, "week", "arrest", strata="wexp")
    ph = PHReg(rossi["week"].to_numpy(float), rossi[covs].to_numpy(float), status=rossi["arrest"].to_numpy(),
               strata=rossi["wexp"].to_numpy(), ties="efron").fit()
    np.testing.assert_allclose(coef, ph.params, atol=1e-4)
    np.testing.assert_allclose(se, ph.bse, atol=1e-4)


def test_cox_models_wrapper_equals_phreg_stratified_by_center():
    """The pipeline's cox_models (center strata, forward selection) gives the same
    coefficients as statsmodels PHReg stratified by center on the selected model."""
    f = example_frames(5)
    cands = ["age", "male", "albumin_le_35", "steroid_at_baseline"]
    data = with_covariates(f["persistence"], f["covariates"], cands)
    # entry p 1.0 and no events-per-variable cap: every candidate enters
    out = cox_models(data, cands, strata="center", entry_p=1.0, events_per_variable=1)
    multi = out[out["model"] == "multivariable"]
    assert sorted(multi["variable"]) == sorted(cands)
    order = multi["variable"].tolist()
    ph = PHReg(data["time_days"].to_numpy(float), data[order].to_numpy(float), status=data["event"].to_numpy(),
               strata=data["center"].to_numpy(), ties="efron").fit()
    np.testing.assert_allclose(multi["coef"].to_numpy(), ph.params, atol=1e-4)
    np.testing.assert_allclose(multi["hr"].to_numpy(), np.exp(ph.params), rtol=1e-4)
    for v in cands:
        uni = out[(out["model"] == "univariate") & (out["variable"] == v)].iloc[0]
        p1 = PHReg(data["time_days"].to_numpy(float), data[[v]].to_numpy(float), status=data["event"].to_numpy(),
                   strata=data["center"].to_numpy(), ties="efron").fit()
        assert uni["coef"] == pytest.approx(p1.params[0], abs=1e-4)
        assert uni["p_value"] == pytest.approx(p1.pvalues[0], abs=1e-4)
        assert 0 <= uni["ph_test_p"] <= 1


def test_cox_lung_sex_matches_r_coxph(lung):
    """R: coxph(Surv(time, status) ~ sex, data = lung) prints
    coef -0.5310, exp(coef) 0.5880, se(coef) 0.1672, z -3.176, p 0.00149
    (survival package; Efron ties)."""
    coef, se = _lifelines_cox(lung, ["sex"], "time", "status")
    assert coef[0] == pytest.approx(-0.5310, abs=5e-5)
    assert se[0] == pytest.approx(0.1672, abs=5e-5)
    assert np.exp(coef[0]) == pytest.approx(0.5880, abs=5e-5)


# ------------------------------------------------------- Kaplan-Meier / log-rank
def test_km_lung_matches_r_survfit(lung):
    """R (survival): fit <- survfit(Surv(time, status) ~ 1, data = lung)
    print(fit): n 228, events 165, median 310, 0.95LCL 285, 0.95UCL 363;
    summary(fit, times = 365): n.risk 65, n.event 121, survival 0.409, std.err 0.0358,
    lower 95% CI 0.345, upper 95% CI 0.486 (R's default conf.type = "log")."""
    r = km_at(lung["time"], lung["status"], [365], ci_type="log").iloc[0]
    assert r["survival"] == pytest.approx(0.409, abs=5e-4)
    assert r["ci_low"] == pytest.approx(0.345, abs=5e-4)
    assert r["ci_high"] == pytest.approx(0.486, abs=5e-4)
    assert r["n_at_risk"] == 65
    assert int(((lung["time"] <= 365) & (lung["status"] == 1)).sum()) == 121
    # median and its CI (R: where S and the log CI band cross 0.5)
    times = np.sort(lung["time"].unique())
    k = km_at(lung["time"], lung["status"], times, ci_type="log")
    assert k.loc[k["survival"] <= 0.5, "time"].min() == 310
    assert k.loc[k["ci_low"] <= 0.5, "time"].min() == 285
    assert k.loc[k["ci_high"] <= 0.5, "time"].min() == 363


def test_km_loglog_ci_equals_lifelines(lung):
    """ci_type='log-log' reproduces lifelines' own exponential-Greenwood interval."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(lung["time"], lung["status"])
    ci = kmf.confidence_interval_survival_function_
    times = [t for t in ci.index if 0 < t < 800][::7]
    ours = km_at(lung["time"], lung["status"], times, ci_type="log-log")
    np.testing.assert_allclose(ours["survival"], kmf.survival_function_.loc[times].iloc[:, 0], atol=1e-12)
    np.testing.assert_allclose(ours["ci_low"], ci.loc[times].iloc[:, 0], atol=1e-8)
    np.testing.assert_allclose(ours["ci_high"], ci.loc[times].iloc[:, 1], atol=1e-8)


def test_logrank_lung_sex_matches_r_survdiff(lung):
    """R: survdiff(Surv(time, status) ~ sex, data = lung)
    sex=1: N 138, Observed 112, Expected 91.5817; sex=2: N 90, Observed 53,
    Expected 73.4183; Chisq = 10.3267 on 1 degree of freedom, p = 0.00131116."""
    pers = pd.DataFrame({"patient_id": range(len(lung)), "time_days": lung["time"], "event": lung["status"],
                         "sex": lung["sex"].map({1: "male", 2: "female"})})
    out = logrank_tests(pers, group_vars=["sex"]).iloc[0]
    assert out["test_statistic"] == pytest.approx(10.3267, abs=5e-5)
    assert out["p_value"] == pytest.approx(0.00131116, rel=1e-5)
    assert out["df"] == 1 and out["n"] == 228 and out["events"] == 165


def test_km_estimates_months_and_at_risk(lung):
    pers = pd.DataFrame({"patient_id": range(len(lung)), "time_days": lung["time"], "event": lung["status"],
                         "diagnosis": np.where(lung["sex"] == 1, "CD", "UC")})
    out = km_estimates(pers, group_vars=["overall", "diagnosis"], months=[12], days_per_month=365 / 12,
                       ci_type="log")
    overall = out[out["group_var"] == "overall"].iloc[0]
    assert overall["survival"] == pytest.approx(0.409, abs=5e-4)  # day 365 as above
    assert overall["n_at_risk"] == 65
    assert set(out["group"]) == {"all", "CD", "UC"}


# ------------------------------------------------------------------ Wilson CI
def test_wilson_equals_statsmodels():
    for N in (1, 5, 28, 52, 80):
        for n in range(N + 1):
            lo, hi = wilson_ci(n, N)
            slo, shi = proportion_confint(n, N, alpha=0.05, method="wilson")
            assert lo == pytest.approx(slo, abs=1e-12) and hi == pytest.approx(shi, abs=1e-12)
    lo, hi = wilson_ci(np.array([3, 19]), np.array([10, 28]), alpha=0.1)
    slo, shi = proportion_confint(np.array([3, 19]), np.array([10, 28]), alpha=0.1, method="wilson")
    np.testing.assert_allclose(lo, slo, atol=1e-12)
    np.testing.assert_allclose(hi, shi, atol=1e-12)
    assert all(np.isnan(wilson_ci(0, 0)))


def test_endpoint_rates_ci_equals_statsmodels():
    ep = example_frames(2)["endpoints"]
    rates = endpoint_rates(ep)
    lo, hi = proportion_confint(rates["n"], rates["n_total"], alpha=0.05, method="wilson")
    np.testing.assert_allclose(rates["ci_low"], 100 * lo, atol=1e-9)
    np.testing.assert_allclose(rates["ci_high"], 100 * hi, atol=1e-9)


# ----------------------------------------------------- chi-square vs Fisher rule
def test_rule_chi_square_when_all_expected_at_least_5():
    t = np.array([[10, 20], [30, 40]])
    res = chi_square_or_fisher(t)
    ref = stats.chi2_contingency(t, correction=False)
    assert res.test == "Pearson chi-square"
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    # continuity correction really is off (Yates would differ on a 2x2)
    assert res.statistic != pytest.approx(stats.chi2_contingency(t, correction=True).statistic)
    # boundary: an expected count of exactly 5 is not "below 5"
    assert chi_square_or_fisher([[5, 5], [5, 5]]).test == "Pearson chi-square"
    # r x c chi-square
    t3 = np.array([[12, 15, 9], [20, 11, 14]])
    r3 = chi_square_or_fisher(t3)
    assert r3.test == "Pearson chi-square"
    assert r3.p_value == pytest.approx(stats.chi2_contingency(t3, correction=False).pvalue, rel=1e-12)


def test_rule_fisher_when_an_expected_count_below_5():
    t = np.array([[1, 9], [8, 2]])
    assert stats.contingency.expected_freq(t).min() < 5
    res = chi_square_or_fisher(t)
    assert res.test == "Fisher's exact"
    assert res.p_value == pytest.approx(stats.fisher_exact(t).pvalue, rel=1e-12)
    # the threshold is a setting
    # (min expected count 12)
    assert chi_square_or_fisher([[10, 20], [30, 40]], fisher_expected_below=13).test == "Fisher's exact"
    # R: fisher.test(matrix(c(3, 1, 1, 3), 2)) (tea tasting) two-sided p = 0.4857
    assert chi_square_or_fisher([[3, 1], [1, 3]]).p_value == pytest.approx(0.4857, abs=5e-5)


def _brute_force_fisher(table):
    table = np.asarray(table)
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    dist = stats.multivariate_hypergeom
    p_obs = dist.pmf(table[0], cols, rows[0])
    total = 0.0
    for x in itertools.product(*[range(c + 1) for c in cols]):
        if sum(x) == rows[0]:
            p = dist.pmf(np.array(x), cols, rows[0])
            if p <= p_obs * (1 + 1e-7):
                total += p
    return total


@pytest.mark.parametrize("table", [
    [[3, 1, 4], [1, 5, 2]],
    [[0, 2, 7, 1], [4, 3, 1, 2]],
    [[8, 2], [1, 5]],
    [[2, 0, 1, 3, 1], [1, 4, 0, 2, 6]],
])
def test_freeman_halton_exact_equals_enumeration(table):
    p = fisher_exact_2xk(table)
    assert p == pytest.approx(_brute_force_fisher(table), rel=1e-9)
    assert p == pytest.approx(fisher_exact_2xk(np.asarray(table).T), rel=1e-12)
    if np.asarray(table).shape == (2, 2):
        assert p == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-9)


def test_rule_2xk_uses_exact_freeman_halton_and_rxc_falls_back_to_monte_carlo():
    res = chi_square_or_fisher([[3, 1, 4], [1, 5, 2]])
    assert res.test.startswith("Fisher's exact (Freeman-Halton")
    # R ?fisher.test: Job satisfaction 4 x 4 table, fisher.test(Job) p = 0.7827 (exact);
    # r x c beyond 2 rows uses scipy's seeded Monte Carlo: agreement within MC error
    job = np.array([1, 2, 1, 0, 3, 3, 6, 1, 10, 10, 14, 9, 6, 7, 12, 11]).reshape(4, 4, order="F")
    r = chi_square_or_fisher(job, seed=7, mc_resamples=20_000)
    assert r.test.startswith("Fisher's exact (Monte Carlo")
    assert r.p_value == pytest.approx(0.7827, abs=0.012)
    assert chi_square_or_fisher(job, seed=7, mc_resamples=20_000).p_value == r.p_value  # seeded


# -------------------------------------------------------- DerSimonian-Laird
# metafor dat.bcg (Colditz et al. 1994, JAMA 271:698): tpos, tneg, cpos, cneg
BCG = np.array([
    [4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
    [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
    [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
    [27, 16886, 29, 17825],
])


def _bcg_log_rr():
    a, b, c, d = BCG.T.astype(float)
    y = np.log((a / (a + b)) / (c / (c + d)))  # escalc(measure = "RR")
    v = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return y, v


def test_dl_pool_bcg_matches_metafor():
    """metafor: rma(ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, measure="RR",
    method="DL"): estimate -0.7141, se 0.1787, 95% CI -1.0644 to -0.3638,
    tau^2 0.3088, I^2 92.12%, H^2 12.69, Q(df = 12) = 152.2330.
    With metafor's default method="REML": estimate -0.7145, tau^2 0.3132, I^2 92.22%."""
    y, v = _bcg_log_rr()
    r = dl_pool(y, v)
    assert r.estimate == pytest.approx(-0.7141, abs=5e-5)
    assert r.se == pytest.approx(0.1787, abs=5e-5)
    assert r.ci_low == pytest.approx(-1.0644, abs=5e-5)
    assert r.ci_high == pytest.approx(-0.3638, abs=5e-5)
    assert r.tau2 == pytest.approx(0.3088, abs=5e-5)
    assert r.i2 == pytest.approx(92.12, abs=5e-3)
    assert r.h2 == pytest.approx(12.69, abs=5e-3)
    assert r.q == pytest.approx(152.2330, abs=5e-5)
    assert r.df == 12 and r.p_q < 1e-4
    assert r.weights.sum() == pytest.approx(100.0)
    reml = dl_pool(y, v, method="REML")
    assert reml.estimate == pytest.approx(-0.7145, abs=5e-5)
    assert reml.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert reml.i2 == pytest.approx(92.22, abs=5e-3)
    # independent implementation
    ce = combine_effects(y, v, method_re="dl")
    assert r.estimate == pytest.approx(ce.mean_effect_re, abs=1e-10)
    assert r.tau2 == pytest.approx(ce.tau2, abs=1e-10)


def test_dersimonian_laird_proportions_logit_with_continuity_correction():
    events = np.array([12, 0, 7, 9])
    totals = np.array([20, 6, 10, 9])
    r = dersimonian_laird(events, totals)
    # 0.5 added to both cells of the zero-cell centers only (0/6 and 9/9)
    a = np.array([12, 0.5, 7, 9.5])
    b = np.array([8, 6.5, 3, 0.5])
    y, v = np.log(a / b), 1 / a + 1 / b
    ce = combine_effects(y, v, method_re="dl")
    assert r.pooled_logit == pytest.approx(ce.mean_effect_re, abs=1e-10)
    assert r.tau2 == pytest.approx(ce.tau2, abs=1e-10)
    assert r.pooled == pytest.approx(1 / (1 + np.exp(-ce.mean_effect_re)), abs=1e-10)
    assert r.ci[0] < r.pooled < r.ci[1]
    assert r.i2 == pytest.approx(100 * max(0.0, (r.q - 3) / r.q), abs=1e-9)


# --------------------------------------------------------------- Table 1
def test_table1_hand_made_frame():
    cov = pd.DataFrame({
        "patient_id": [f"p{i}" for i in range(10)],
        "diagnosis": ["UC"] * 4 + ["CD"] * 6,
        "age": [20, 30, 40, 50, 25, 35, 45, 55, 65, 80],
        "bmi": [18.0, 22.0, 20.0, 24.0, 19.0, 21.0, 23.0, 17.0, 25.0, 20.0],
        "male": [1, 1, 0, 0, 1, 0, 0, 0, 0, 0],
    })
    t = table1(cov, [{"name": "age"}, {"name": "bmi"}, {"name": "male"}], normal_variables=["bmi"])
    n_row = t[t["variable"] == "N"].iloc[0]
    assert (n_row["overall"], n_row["UC"], n_row["CD"]) == ("10", "4", "6")
    age = t[t["variable"] == "age"].iloc[0]
    # type-7 quantiles by hand: UC 20,30,40,50 -> 35.0 [27.5-42.5];
    # CD 25,35,45,55,65,80 -> 50.0 [37.5-62.5]; all ten -> 42.5 [31.25-53.75]
    assert age["UC"] == "35.0 [27.5-42.5]"
    assert age["CD"] == "50.0 [37.5-62.5]"
    assert age["overall"] == "42.5 [31.2-53.8]"
    ref = stats.mannwhitneyu([20, 30, 40, 50], [25, 35, 45, 55, 65, 80], alternative="two-sided")
    assert age["test"] == "Wilcoxon rank-sum"
    assert age["statistic"] == 6.0 == ref.statistic  # pairs UC > CD: 0 + 1 + 2 + 3
    assert age["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    bmi = t[t["variable"] == "bmi"].iloc[0]
    uc, cd = np.array([18.0, 22.0, 20.0, 24.0]), np.array([19.0, 21.0, 23.0, 17.0, 25.0, 20.0])
    assert bmi["UC"] == f"{uc.mean():.1f} \u00b1 {uc.std(ddof=1):.1f}" == "21.0 \u00b1 2.6"
    welch = stats.ttest_ind(uc, cd, equal_var=False)
    assert bmi["test"] == "Welch's t"
    assert bmi["p_value"] == pytest.approx(welch.pvalue, rel=1e-12)
    male = t[t["variable"] == "male"]
    assert len(male) == 1 and male.iloc[0]["level"] == "yes"
    assert (male.iloc[0]["overall"], male.iloc[0]["UC"], male.iloc[0]["CD"]) == ("3 (30.0%)", "2 (50.0%)", "1 (16.7%)")
    assert male.iloc[0]["test"] == "Fisher's exact"
    assert male.iloc[0]["p_value"] == pytest.approx(stats.fisher_exact([[2, 2], [1, 5]]).pvalue, rel=1e-12)


def test_table1_categorical_chi_square_and_missing():
    rng = np.random.default_rng(0)
    n = 120
    cov = pd.DataFrame({"patient_id": range(n), "diagnosis": np.repeat(["UC", "CD"], n // 2),
                        "smoking": rng.choice(["never", "former", "current"], n, p=[.5, .3, .2]).astype(object)})
    cov.loc[[0, 1, 70], "smoking"] = None
    t = table1(cov, [{"name": "smoking", "type": "categorical", "levels": ["never", "former", "current"]}])
    rows = t[t["variable"] == "smoking"]
    assert rows["level"].tolist() == ["never", "former", "current", "(missing)"]
    assert rows.iloc[-1]["overall"] == "3" and rows.iloc[-1]["UC"] == "2" and rows.iloc[-1]["CD"] == "1"
    sub = cov.dropna()
    tab = pd.crosstab(sub["diagnosis"], sub["smoking"]).loc[["UC", "CD"], ["never", "former", "current"]]
    ref = stats.chi2_contingency(tab.to_numpy(), correction=False)
    assert rows.iloc[0]["test"] == "Pearson chi-square"
    assert rows.iloc[0]["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    n_never_uc = int(tab.loc["UC", "never"])
    assert rows.iloc[0]["UC"] == f"{n_never_uc} ({100 * n_never_uc / tab.loc['UC'].sum():.1f}%)"
    # restricted to one diagnosis: not tested, other column empty
    cov["cd_location"] = np.where(cov["diagnosis"] == "CD", "L1", None)
    t2 = table1(cov, [{"name": "cd_location", "type": "categorical", "diagnoses": ["CD"]}])
    r2 = t2[t2["variable"] == "cd_location"]
    assert r2["level"].tolist() == ["L1"] and r2.iloc[0]["UC"] == "" and r2.iloc[0]["test"] == "not tested"


# ------------------------------------------------------------ other helpers
def test_poisson_exact_ci_equals_statsmodels_and_table():
    for k in (0, 1, 3, 10, 41):
        lo, hi = poisson_exact_ci(k, 12.5)
        slo, shi = confint_poisson(k, 12.5, method="exact-c")
        assert lo == pytest.approx(slo, abs=1e-10) and hi == pytest.approx(shi, abs=1e-10)
    # classic Garwood table: 0 events -> (0, 3.689); 10 events -> (4.795, 18.39)
    assert poisson_exact_ci(0, 1.0)[1] == pytest.approx(3.689, abs=5e-4)
    assert poisson_exact_ci(10, 1.0) == pytest.approx((4.795, 18.39), abs=5e-3)


def test_delong_equals_brute_force_structural_components():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding creates ties
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    r = delong_auc(y, s)
    from sklearn.metrics import roc_auc_score

    assert r.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r.se == pytest.approx(np.sqrt(var), rel=1e-10)
    assert r.ci_low == pytest.approx(r.auc - stats.norm.ppf(0.975) * np.sqrt(var), rel=1e-10)
