"""Pure statistics of the study (docs/STUDY_RULES.md#statistics): pandas in, tidy pandas out.

No dagster, no DuckDB, no file I/O. Figures live in :mod:`ibd_pipeline.stats.figures`
(imported lazily: it selects matplotlib's Agg backend).

Settings: :func:`params_from_settings` reads ``study.yaml`` into a :class:`StatsParams`
(the one place of every value); :mod:`ibd_pipeline.stats.analyses` applies them, one
function per statistics asset. Results are DataFrames where they are tables and frozen
dataclasses otherwise (:class:`PooledEffect`, :class:`AucResult`, :class:`PredictorAnalysis`,
:class:`AeTables`, ...).
"""

from __future__ import annotations

from .settings import Outcome, StatsParams, params_from_settings, timepoint_order

# every other name is imported from its module on first use (PEP 562; no module is named
# like one of its names: an imported submodule would shadow the name). Importing the
# package - for its settings, as the Dagster definitions and the report do - does not load
# scipy, scikit-learn, lifelines or statsmodels (start-up, issue 14)
_LAZY = {
    "biomarkers": ("biomarker_summary", "biomarker_tests"),
    "contingency": ("ContingencyResult", "chi_square_or_fisher", "expected_counts", "fisher_exact_2xk"),
    "meta": ("PooledEffect", "PooledProportion", "center_heterogeneity", "dersimonian_laird", "dl_pool",
             "logit_effects"),
    "predictors": ("AucResult", "EnetTuning", "PredictorAnalysis", "delong_auc", "outcome_from_endpoints",
                   "predictor_analysis"),
    "rates": ("cochran_q", "endpoint_rates", "sort_timepoints", "uc_vs_cd_tests", "wilson_ci"),
    "safety": ("AeTables", "ae_tables"),
    "baseline_table": ("table1",),
    "survival": ("cox_models", "discontinuation_rate", "km_at", "km_estimates", "logrank_tests",
                 "poisson_exact_ci", "with_covariates"),
    # figures select matplotlib's Agg backend
    "figures": ("forest_plot", "km_plot", "roc_plot", "endpoint_plot", "biomarker_trajectory_plot",
                "figure_to_png"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}
_FIGURES = _LAZY["figures"]


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AeTables", "AucResult", "ContingencyResult", "EnetTuning", "Outcome", "PooledEffect", "PooledProportion",
    "PredictorAnalysis", "StatsParams", "sort_timepoints", "timepoint_order",
    "ae_tables", "biomarker_summary", "biomarker_tests", "center_heterogeneity", "chi_square_or_fisher",
    "cochran_q", "cox_models", "delong_auc", "dersimonian_laird", "discontinuation_rate", "dl_pool",
    "endpoint_rates", "expected_counts", "fisher_exact_2xk", "km_at", "km_estimates", "logit_effects",
    "logrank_tests", "outcome_from_endpoints", "params_from_settings", "poisson_exact_ci",
    "predictor_analysis", "table1", "uc_vs_cd_tests", "wilson_ci", "with_covariates", *_FIGURES,
]
