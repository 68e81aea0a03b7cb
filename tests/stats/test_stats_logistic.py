"""Univariate-then-multivariable logistic regression (the single-center study's week-12
model) agrees with R's glm (Wald CIs, confint.default; Wald p) to 1e-6, enters the
univariate p < 0.05 variables together, handles a categorical covariate as indicators
against its first level, and shows no numbers for a model that did not fit."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from ibd_pipeline.stats.logistic import logistic_models

from tests.stats.test_stats_vs_r import _require_r

TOL = 1e-6


def cohort(n=98, seed=3) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    cov = pd.DataFrame({
        "patient_id": [f"P{i:03d}" for i in range(n)],
        "albumin_le_35": rng.random(n) < 0.25,
        "male": rng.random(n) < 0.65,
        "age": rng.normal(30, 8, n).round(),
        "cd_behavior": rng.choice(["B1", "B2", "B3"], n, p=[0.57, 0.31, 0.12]),
    })
    lin = 0.6 - 1.6 * cov["albumin_le_35"] - 1.1 * (cov["cd_behavior"] != "B1") + 0.01 * (cov["age"] - 30)
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int).to_numpy(), index=cov["patient_id"])
    return cov, y


def test_the_univariate_p_below_entry_variables_enter_one_model_together():
    cov, y = cohort()
    res = logistic_models(cov, y, ["albumin_le_35", "male", "age", "cd_behavior"], entry_p=0.05)
    t = res.table
    uni = t[t["model"] == "univariate"]
    assert list(uni["variable"]) == ["albumin_le_35", "male", "age", "cd_behavior", "cd_behavior"]
    assert list(uni.loc[uni["variable"] == "cd_behavior", "level"]) == ["B2", "B3"]
    assert set(uni.loc[uni["variable"] == "cd_behavior", "reference"]) == {"B1"}
    expected = [v for v in ["albumin_le_35", "male", "age", "cd_behavior"]
                if (uni.loc[uni["variable"] == v, "p_value"] < 0.05).any()]
    assert res.selected == tuple(expected) and "albumin_le_35" in expected
    multi = t[t["model"] == "multivariable"]
    assert sorted(set(multi["variable"])) == sorted(expected)
    assert multi["estimable"].all() and (multi["n"] == 98).all()


def test_separation_is_not_shown_as_a_maximum_likelihood_estimate():
    cov, y = cohort()
    cov = cov.assign(perfect=y.to_numpy().astype(bool))  # predicts the outcome exactly
    res = logistic_models(cov, y, ["perfect"], entry_p=0.05)
    row = res.table.iloc[0]
    assert "Firth" in row["method"] and "separation" in row["note"]
    assert not row["estimable"] or np.isfinite(row["odds_ratio"])  # a Firth estimate, or no number at all


def test_a_constant_covariate_gets_no_model_and_no_numbers():
    cov, y = cohort()
    res = logistic_models(cov.assign(const=True), y, ["const"], entry_p=0.05)
    row = res.table.iloc[0]
    assert not row["estimable"] and np.isnan(row["odds_ratio"]) and "constant" in row["note"]
    assert res.selected == () and "no multivariable model" in res.note


def test_agrees_with_r_glm(tmp_path):
    rscript = _require_r()
    cov, y = cohort()
    cands = ["albumin_le_35", "male", "age", "cd_behavior"]
    res = logistic_models(cov, y, cands, entry_p=0.05)
    df = cov.assign(y=cov["patient_id"].map(y))
    df.to_csv(tmp_path / "d.csv", index=False)
    sel = list(res.selected)
    script = tmp_path / "glm.R"
    script.write_text(f"""
d <- read.csv("{tmp_path / 'd.csv'}", stringsAsFactors = TRUE)
d$albumin_le_35 <- as.numeric(d$albumin_le_35 == "True"); d$male <- as.numeric(d$male == "True")
out <- list()
fit1 <- function(f, model) {{
  m <- glm(f, data = d, family = binomial, control = glm.control(epsilon = 1e-14, maxit = 100))
  co <- summary(m)$coefficients; ci <- confint.default(m)
  for (nm in rownames(co)[-1]) out[[length(out) + 1]] <<- list(model = model, term = nm, or = exp(co[nm, 1]),
      lo = exp(ci[nm, 1]), hi = exp(ci[nm, 2]), p = co[nm, 4])
}}
for (v in c({", ".join(repr(c) for c in cands)})) fit1(as.formula(paste("y ~", v)), "univariate")
fit1(as.formula("y ~ {' + '.join(sel)}"), "multivariable")
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = 15))
""")
    p = subprocess.run([rscript, str(script)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = pd.DataFrame(json.loads(p.stdout))
    t = res.table.assign(term=lambda x: np.where(x["level"].notna(), x["variable"] + x["level"].fillna(""), x["variable"]))
    merged = t.merge(r, on=["model", "term"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"][["model", "term"]]
    for a, b in (("odds_ratio", "or"), ("ci_low", "lo"), ("ci_high", "hi"), ("p_value", "p")):
        assert np.allclose(merged[a], merged[b], rtol=TOL, atol=TOL), a
