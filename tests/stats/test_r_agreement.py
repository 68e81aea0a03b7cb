"""Agreement with R itself (issue 13 item 3): the study's statistics on the same inputs
as R's survival (survfit log-log CI, survdiff, coxph with Efron ties and
strata(center)), wilcox.test (Table 1's default, as gtsummary), metafor::rma (DL) and
pROC (DeLong), compared to 1e-6. Rscript must exist under CI (``CI=true``: the test
fails without it; ``.ci/run`` installs it); locally it is skipped when R is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from ibd_pipeline.stats import cox_models, delong_auc, dl_pool, km_estimates, logrank_tests, with_covariates
from tests.support.stats_examples import example_frames
from ibd_pipeline.stats.baseline_table import rank_sum_test

TOL = 1e-6

R_SCRIPT = r"""
suppressMessages({library(survival); library(metafor); library(pROC); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1])
out <- list()
km <- survfit(Surv(time_days, event) ~ 1, data = d, conf.type = "log-log")
s <- summary(km, times = c(3, 6, 9, 12) * 30.4375, extend = TRUE)
out$km <- list(surv = s$surv, lower = s$lower, upper = s$upper)
lr <- survdiff(Surv(time_days, event) ~ albumin_le_35, data = d)
out$logrank <- list(chisq = lr$chisq)
out$cox <- list()
for (v in c("age", "male", "albumin_le_35")) {
  f <- coxph(as.formula(paste("Surv(time_days, event) ~", v, "+ strata(center)")), data = d, ties = "efron")
  out$cox[[v]] <- list(coef = unname(coef(f)), p = unname(summary(f)$coefficients[1, 5]))
}
w <- wilcox.test(d$bmi[d$diagnosis == "UC"], d$bmi[d$diagnosis == "CD"])
out$wilcox <- list(p = w$p.value, W = unname(w$statistic))
ev <- aggregate(cbind(y = event, n = 1) ~ center, data = d, FUN = sum)
es <- escalc(measure = "PLO", xi = ev$y, ni = ev$n, add = 1/2, to = "only0")
m <- rma(yi, vi, data = es, method = "DL")
out$dl <- list(est = as.numeric(m$b), tau2 = m$tau2, yi = as.numeric(es$yi), vi = as.numeric(es$vi))
r <- roc(d$event, d$albumin, direction = "<", levels = c(0, 1), quiet = TRUE)
ci <- ci.auc(r, method = "delong")
out$delong <- list(auc = as.numeric(r$auc), lo = ci[1], hi = ci[3])
cat(toJSON(out, digits = NA, auto_unbox = TRUE))
"""


@pytest.fixture(scope="module")
def r_and_data(tmp_path_factory):
    if shutil.which("Rscript") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Rscript is missing under CI (.ci/run installs r-base-core r-cran-survival ...)")
        pytest.skip("R is not installed")
    f = example_frames(5)
    data = with_covariates(f["persistence"], f["covariates"], ["age", "male", "albumin_le_35", "bmi", "albumin"])
    for c in ("male", "albumin_le_35"):
        data[c] = data[c].astype("Float64").astype(float)
    data = data.dropna(subset=["time_days", "event", "age", "male", "albumin_le_35", "bmi", "albumin"])
    tmp = tmp_path_factory.mktemp("r")
    csv, script = tmp / "d.csv", tmp / "s.R"
    data.to_csv(csv, index=False)
    script.write_text(R_SCRIPT)
    p = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0 and "jsonlite" in p.stderr and os.environ.get("CI") != "true":
        pytest.skip("R package jsonlite missing")
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout), data


def test_kaplan_meier_and_log_rank_equal_r_survival(r_and_data):
    r, d = r_and_data
    km = km_estimates(d, group_vars=("overall",), months=(3, 6, 9, 12), days_per_month=30.4375, ci_type="log-log")
    np.testing.assert_allclose(km["survival"], r["km"]["surv"], atol=TOL)
    np.testing.assert_allclose(km["ci_low"], r["km"]["lower"], atol=TOL)
    np.testing.assert_allclose(km["ci_high"], r["km"]["upper"], atol=TOL)
    lr = logrank_tests(d, group_vars=("albumin_le_35",)).iloc[0]
    assert lr["test_statistic"] == pytest.approx(r["logrank"]["chisq"], abs=TOL)


def test_stratified_efron_cox_equals_r_coxph_to_1e_6(r_and_data):
    r, d = r_and_data
    out = cox_models(d, ["age", "male", "albumin_le_35"], strata="center", entry_p=0.0)
    for v, ref in r["cox"].items():
        u = out[(out["model"] == "univariate") & (out["variable"] == v)].iloc[0]
        assert u["coef"] == pytest.approx(ref["coef"], abs=TOL, rel=TOL), v
        assert u["p_value"] == pytest.approx(ref["p"], abs=TOL), v


def test_table1_wilcoxon_equals_r_wilcox_test(r_and_data):
    r, d = r_and_data
    w, p = rank_sum_test(d.loc[d["diagnosis"] == "UC", "bmi"], d.loc[d["diagnosis"] == "CD", "bmi"])
    assert p == pytest.approx(r["wilcox"]["p"], abs=TOL) and w == pytest.approx(r["wilcox"]["W"])


def test_dersimonian_laird_and_delong_equal_metafor_and_proc(r_and_data):
    r, d = r_and_data
    pooled = dl_pool(np.asarray(r["dl"]["yi"]), np.asarray(r["dl"]["vi"]))
    assert pooled.estimate == pytest.approx(r["dl"]["est"], abs=TOL)
    assert pooled.tau2 == pytest.approx(r["dl"]["tau2"], abs=TOL)
    a = delong_auc(d["event"].to_numpy(int), d["albumin"].to_numpy(float))
    assert a.auc == pytest.approx(r["delong"]["auc"], abs=TOL)
    assert (a.ci_low, a.ci_high) == pytest.approx((r["delong"]["lo"], r["delong"]["hi"]), abs=TOL)
