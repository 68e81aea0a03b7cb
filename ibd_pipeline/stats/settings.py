"""The statistics' settings: :class:`StatsParams`, read once from the study settings
(``study.yaml``, validated by :mod:`ibd_pipeline.study_model`), and the time-point order.

The settings file is the one place of every value (docs/STUDY_RULES.md#statistics,
#persistence): nothing here has a default of its own. The functions of :mod:`ibd_pipeline.stats`
take these values as arguments; :mod:`ibd_pipeline.stats.analyses` passes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..study_model import COX_SELECTION_DEFAULT, StudySettings

BASELINE = "baseline"  # the time point at day 0 (docs/STUDY_RULES.md#windows); not a target


def timepoint_order(settings: Mapping) -> tuple[str, ...]:
    """The study's time points in their order: baseline, then ``timepoints.targets`` in the
    order the settings list them.

    Parameters
    ----------
    settings : Mapping
        The study settings (``study.yaml``); only ``timepoints.targets`` is read.

    Returns
    -------
    tuple of str
        ``("baseline", <target>, ...)``.

    Notes
    -----
    docs/STUDY_RULES.md#windows: the targets are listed in time order in ``study.yaml``;
    tables and figures sort their time points by this order (unknown ones last).
    """
    targets = (settings.get("timepoints") or {}).get("targets") or {}
    return (BASELINE, *[t for t in targets if t != BASELINE])


@dataclass(frozen=True)
class Outcome:
    """An endpoint at a time point in one analysis (``statistics.predictor_outcome``).

    Attributes
    ----------
    endpoint : str or None
        Endpoint name (a row value of ``analytics.endpoints.endpoint``); None = any
        (a selection, :func:`ibd_pipeline.stats.analyses.outcome_rows`).
    timepoint : str or None
        Time point (one of ``timepoints.clinical``).
    analysis : str or None
        ``"complete_case"`` (not-evaluable patients left out) or ``"nri"``.
    """

    endpoint: str | None
    timepoint: str | None
    analysis: str | None


@dataclass(frozen=True)
class StatsParams:
    """Every setting the pooled statistics read, typed (from ``study.yaml``).

    Attributes
    ----------
    alpha : float
        Two-sided level of every confidence interval (``statistics.alpha``).
    seed : int
        Seed of every stochastic procedure (``statistics.seed``).
    normal_variables : tuple of str
        Table 1 variables reported as mean +/- SD with Welch's t.
    fisher_expected_below : float
        Fisher's exact test when an expected count is below this.
    cv_folds : int
        Folds of the elastic-net cross-validation.
    bootstrap_samples : int
        Resamples of the optimism-corrected AUC.
    covariates : tuple of str
        Candidate covariates of the predictor and Cox models.
    events_per_variable : float
        A multivariable model takes at most floor(events / this) variables.
    cox_entry_p : float
        Entry p of the Cox multivariable model.
    cox_selection : str
        ``forward`` (forward selection at ``cox_entry_p``) or ``univariate`` (the
        candidates of univariate p < ``cox_entry_p`` entered together).
    cox_tolerance : float
        Convergence rule of the Cox fits (R coxph's relative change of the log partial likelihood).
    small_cell_below : int
        Per-center cells under this many patients are flagged.
    table1_variables : tuple of dict
        The Table 1 rows (``{"name": ..., "diagnoses": [...]}``).
    predictor_outcome : Outcome
        The outcome of the predictor models.
    heterogeneity_timepoint : str or None
        Time point of the center-heterogeneity analysis (None: one center, no analysis).
    heterogeneity_endpoints : tuple of str
        Endpoints of the center-heterogeneity analysis.
    clinical_timepoints : tuple of str
        Time points of the clinical endpoints (Cochran's Q runs across them).
    timepoint_order : tuple of str
        Every time point in order (:func:`timepoint_order`).
    km_months : tuple of float
        Months of the Kaplan-Meier rates.
    days_per_month : float
        Days of one month (persistence).
    km_groups : tuple of str
        Kaplan-Meier groupings: ``overall``, ``diagnosis`` or a baseline covariate column.
    predictor_method : str
        ``elastic_net_boruta`` (selection, Boruta, multivariable model, ROC) or
        ``logistic`` (univariate, then the univariate p < ``cox_entry_p`` variables together).
    cox_covariates : tuple of str or None
        The Cox models' candidates (None: ``covariates``).

    Notes
    -----
    docs/STUDY_RULES.md#statistics and #persistence name each setting.
    """

    alpha: float
    seed: int
    normal_variables: tuple[str, ...]
    fisher_expected_below: float
    cv_folds: int
    bootstrap_samples: int
    covariates: tuple[str, ...]
    events_per_variable: float
    cox_entry_p: float
    cox_tolerance: float
    small_cell_below: int
    table1_variables: tuple[dict, ...]
    predictor_outcome: Outcome
    heterogeneity_timepoint: str | None
    heterogeneity_endpoints: tuple[str, ...]
    clinical_timepoints: tuple[str, ...]
    timepoint_order: tuple[str, ...]
    km_months: tuple[float, ...]
    days_per_month: float
    km_groups: tuple[str, ...]
    predictor_method: str = "elastic_net_boruta"
    cox_covariates: tuple[str, ...] | None = None
    cox_selection: str = COX_SELECTION_DEFAULT

    @property
    def days_per_year(self) -> float:
        """Days of one year: 12 months of ``days_per_month`` (patient-years)."""
        return 12 * float(self.days_per_month)

    @property
    def logrank_groups(self) -> tuple[str, ...]:
        """The Kaplan-Meier groupings that compare groups (all but ``overall``)."""
        return tuple(g for g in self.km_groups if g != "overall")


# how ``statistics.cox_selection`` chooses the multivariable Cox model's variables, in words
SELECTION_TEXT = {"forward": "forward selection",
                  "univariate": "the candidates of univariate p below the entry level, entered together"}


def params_from_settings(settings: Mapping) -> StatsParams:
    """The statistics' settings from the study settings.

    Parameters
    ----------
    settings : Mapping
        The study settings (``study.yaml`` as :func:`ibd_pipeline.config.load_settings`
        returns it); validated against :class:`ibd_pipeline.study_model.StudySettings`
        (its defaults apply to keys the file leaves out).

    Returns
    -------
    StatsParams

    Raises
    ------
    ibd_pipeline.study_model.StudySettingsError
        When the settings do not match the study model (every bad key named).

    Notes
    -----
    docs/STUDY_RULES.md#statistics: ``study.yaml`` (and the model's declared defaults) is
    the one place of these values.
    """
    from ..study_model import validate_settings

    m: StudySettings = validate_settings(dict(settings), "study settings")
    # values as the file gives them (3 months stay 3, not 3.0: the tables keep their types);
    # the model's declared default only where the file may leave a key out
    st, pers = settings["statistics"], settings["persistence"]
    po = st["predictor_outcome"]
    return StatsParams(
        alpha=st["alpha"], seed=st["seed"], normal_variables=tuple(m.statistics.normal_variables),
        fisher_expected_below=st["fisher_expected_below"], cv_folds=m.statistics.cv_folds,
        bootstrap_samples=m.statistics.bootstrap_samples, covariates=tuple(st["covariates"]),
        events_per_variable=st["events_per_variable"], cox_entry_p=st["cox_entry_p"],
        cox_tolerance=st["cox_tolerance"], small_cell_below=st["small_cell_below"],
        table1_variables=tuple(dict(v) for v in st["table1_variables"]),
        predictor_outcome=Outcome(po["endpoint"], po["timepoint"], po["analysis"]),
        heterogeneity_timepoint=(st.get("heterogeneity") or {}).get("timepoint"),
        heterogeneity_endpoints=tuple((st.get("heterogeneity") or {}).get("endpoints") or ()),
        clinical_timepoints=tuple(settings["timepoints"]["clinical"]), timepoint_order=timepoint_order(settings),
        km_months=tuple(pers["km_months"]), days_per_month=pers["days_per_month"],
        km_groups=tuple(pers["km_groups"]), predictor_method=m.statistics.predictor_method,
        cox_covariates=tuple(st["cox_covariates"]) if st.get("cox_covariates") is not None else None,
        cox_selection=m.statistics.cox_selection,
    )

__all__ = ["BASELINE", "SELECTION_TEXT", "Outcome", "StatsParams", "params_from_settings", "timepoint_order"]
