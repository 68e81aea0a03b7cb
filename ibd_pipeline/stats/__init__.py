"""Pure statistics of the study (STUDY.md "Statistics"): pandas in, tidy pandas out.

No dagster, no DuckDB, no file I/O. Figures live in :mod:`ibd_pipeline.stats.figures`
(imported lazily: it selects matplotlib's Agg backend).

Settings: :func:`params_from_settings` maps ``study.yaml`` onto the keyword arguments
of these functions.
"""

from __future__ import annotations

from .biomarkers import biomarker_summary, biomarker_tests
from .contingency import chi_square_or_fisher, expected_counts, fisher_exact_2xk
from .meta import center_heterogeneity, dersimonian_laird, dl_pool, logit_effects
from .predictors import delong_auc, outcome_from_endpoints, predictor_analysis
from .rates import cochran_q, endpoint_rates, uc_vs_cd_tests, wilson_ci
from .safety import ae_tables
from .survival import (
    cox_models,
    discontinuation_rate,
    km_at,
    km_estimates,
    logrank_tests,
    poisson_exact_ci,
    with_covariates,
)
from .table1 import table1

_FIGURES = ("forest_plot", "km_plot", "roc_plot", "endpoint_plot", "biomarker_trajectory_plot",
            "figure_to_png")


def __getattr__(name):
    if name in _FIGURES:
        from . import figures

        return getattr(figures, name)
    raise AttributeError(name)


def params_from_settings(settings: dict) -> dict:
    """Keyword arguments per function from the study settings (``study.yaml``)."""
    st = settings.get("statistics", {})
    pers = settings.get("persistence", {})
    tps = settings.get("timepoints", {})
    alpha = st.get("alpha", 0.05)
    return {
        "table1": {"normal_variables": st.get("normal_variables", []),
                   "fisher_expected_below": st.get("fisher_expected_below", 5), "seed": st.get("seed")},
        "endpoint_rates": {"alpha": alpha},
        "uc_vs_cd_tests": {"fisher_expected_below": st.get("fisher_expected_below", 5), "seed": st.get("seed")},
        "cochran_q": {"timepoints": tps.get("clinical", ["induction", "month6", "month12"])},
        "predictor_analysis": {"seed": st.get("seed"), "cv_folds": st.get("cv_folds", 10),
                               "bootstrap": st.get("bootstrap_samples", 200),
                               "candidates": st.get("covariates"), "alpha": alpha,
                               "events_per_variable": st.get("events_per_variable", 10)},
        "km_estimates": {"months": pers.get("km_months", [3, 6, 9, 12]),
                         "days_per_month": pers.get("days_per_month", 30.4375), "alpha": alpha},
        "cox_models": {"candidates": st.get("covariates"), "entry_p": st.get("cox_entry_p", 0.05),
                       "alpha": alpha, "events_per_variable": st.get("events_per_variable", 10),
                       "tolerance": st.get("cox_tolerance", 1e-13)},
        "discontinuation_rate": {"alpha": alpha,
                                 "days_per_year": 12 * float(pers.get("days_per_month", 30.4375))},
        "center_heterogeneity": {"small_cell_below": st.get("small_cell_below", 5), "alpha": alpha},
        "ae_tables": {"alpha": alpha},
    }


__all__ = [
    "ae_tables", "biomarker_summary", "biomarker_tests", "center_heterogeneity", "chi_square_or_fisher",
    "cochran_q", "cox_models", "delong_auc", "dersimonian_laird", "discontinuation_rate", "dl_pool",
    "endpoint_rates", "expected_counts", "fisher_exact_2xk", "km_at", "km_estimates", "logit_effects",
    "logrank_tests", "outcome_from_endpoints", "params_from_settings", "poisson_exact_ci",
    "predictor_analysis", "table1", "uc_vs_cd_tests", "wilson_ci", "with_covariates", *_FIGURES,
]
