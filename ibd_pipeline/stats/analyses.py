"""The study's pooled analyses as the warehouse publishes them: one function per
statistics asset that needs more than one call, returning its tables by name (the
Dagster layer in ``defs/statistics.py`` only reads, calls and publishes).

Parameters come from :func:`ibd_pipeline.stats.params_from_settings` (``study.yaml``).
"""

from __future__ import annotations

import pandas as pd

from .predictors import outcome_from_endpoints, predictor_analysis
from .survival import cox_models, discontinuation_rate, km_estimates, logrank_tests, with_covariates


def persistence_analysis(persistence: pd.DataFrame, covariates: pd.DataFrame, params: dict,
                         workers: int | None = None) -> dict[str, pd.DataFrame]:
    """Persistence (STUDY.md "Statistics", persistence): Kaplan-Meier rates and log-rank
    tests by the settings' groups, Cox models of the settings' candidate covariates that
    the cohort has (univariate, then forward selection, stratified by center), and
    discontinuations per 100 patient-years.

    ``params``: the ``km_estimates``, ``cox_models`` and ``discontinuation_rate`` entries
    of :func:`params_from_settings`."""
    cox = params["cox_models"]
    candidates = [c for c in (cox["candidates"] or []) if c in covariates.columns]
    data = with_covariates(persistence, covariates, candidates)
    return {
        "km_estimates": km_estimates(persistence, covariates, **params["km_estimates"]),
        "logrank_tests": logrank_tests(persistence, covariates),
        "cox_model": cox_models(data, candidates, strata="center", entry_p=cox["entry_p"], alpha=cox["alpha"],
                                events_per_variable=cox["events_per_variable"], tolerance=cox["tolerance"],
                                workers=workers),
        "discontinuation_rates": discontinuation_rate(persistence, **params["discontinuation_rate"]),
    }


def predictor_tables(covariates: pd.DataFrame, endpoints: pd.DataFrame, outcome: dict, params: dict,
                     workers: int | None = None) -> tuple[dict[str, pd.DataFrame], str]:
    """Predictors of the settings' primary outcome (``statistics.predictor_outcome``:
    endpoint, time point, analysis): selection, the multivariable logistic model, the ROC
    curve and the AUC table, plus the model's note (why variables were dropped, how it
    was fitted). ``params``: the ``predictor_analysis`` entry of :func:`params_from_settings`."""
    y = outcome_from_endpoints(endpoints, outcome["endpoint"], outcome["timepoint"], outcome["analysis"])
    res = predictor_analysis(covariates, y, **params, workers=workers)
    tables = {"predictor_selection": res["selection"], "logistic_model": res["logistic_model"],
              "roc_curve": res["roc"], "model_auc": res["auc"]}
    return tables, str(res.get("note") or "")
