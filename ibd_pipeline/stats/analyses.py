"""The study's pooled analyses as the warehouse publishes them: one function per
statistics asset, taking its input frames and the settings (:class:`StatsParams`,
``study.yaml``) and returning a result object whose fields are the asset's tables (the
Dagster layer in ``defs/`` only reads, calls and publishes; ``tables()`` gives
{warehouse table: frame}).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import pandas as pd

from .biomarkers import biomarker_summary, biomarker_tests
from .meta import center_heterogeneity
from .pk import pk_by_outcome
from .predictors import PredictorDesign, outcome_from_endpoints, predictor_analysis, predictor_design
from .rates import cochran_q, endpoint_rates, uc_vs_cd_tests
from .safety import DECIMALS, ae_tables
from .settings import Outcome, StatsParams
from .survival import cox_models, discontinuation_rate, km_estimates, logrank_tests, with_covariates
from .baseline_table import table1


class _Tables:
    """Result objects whose DataFrame fields are warehouse tables of the same name."""

    def tables(self) -> dict[str, pd.DataFrame]:
        """{table name: frame} of the DataFrame fields, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if isinstance(getattr(self, f.name), pd.DataFrame)}


def outcome_rows(df: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """The rows of a frame at an outcome (its endpoint, time point and analysis: those the
    outcome sets and the frame has as columns).

    Parameters
    ----------
    df : DataFrame
        A frame with some of the columns endpoint, timepoint, analysis.
    outcome : Outcome
        E.g. ``StatsParams.predictor_outcome``; a field that is None selects every value.

    Returns
    -------
    DataFrame

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the primary outcome (``statistics.predictor_outcome``)
    is what the previews and the key numbers show.
    """
    keep = pd.Series(True, index=df.index)
    for col, value in (("endpoint", outcome.endpoint), ("timepoint", outcome.timepoint),
                       ("analysis", outcome.analysis)):
        if value is not None and col in df.columns:
            keep &= df[col] == value
    return df[keep]


def table1_analysis(covariates: pd.DataFrame, params: StatsParams) -> pd.DataFrame:
    """Table 1 of the settings' variables.

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    params : StatsParams

    Returns
    -------
    DataFrame
        :func:`ibd_pipeline.stats.baseline_table.table1`.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (Table 1; ``statistics.table1_variables``,
    ``normal_variables``, ``fisher_expected_below``).
    """
    return table1(covariates, list(params.table1_variables), normal_variables=params.normal_variables,
                  fisher_expected_below=params.fisher_expected_below, seed=params.seed)


@dataclass(frozen=True)
class EndpointRateTables(_Tables):
    """Endpoint rates (:func:`endpoint_rate_tables`).

    Attributes
    ----------
    endpoint_rates : DataFrame
        :func:`ibd_pipeline.stats.rates.endpoint_rates` of the pooled cohort.
    endpoint_rates_by_center : DataFrame
        The same per center (center first) with ``small_cell`` (n_total below
        ``statistics.small_cell_below``).
    """

    endpoint_rates: pd.DataFrame
    endpoint_rates_by_center: pd.DataFrame


def endpoint_rate_tables(endpoints: pd.DataFrame, params: StatsParams) -> EndpointRateTables:
    """Endpoint rates n/N with Wilson CIs, pooled and by center.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    params : StatsParams

    Returns
    -------
    EndpointRateTables

    Notes
    -----
    docs/STUDY_RULES.md#statistics (endpoint rates) and #privacy (per-center cells under
    ``small_cell_below`` flagged).
    """
    kw = {"alpha": params.alpha, "timepoint_order": params.timepoint_order}
    rates = endpoint_rates(endpoints, **kw)
    parts = [endpoint_rates(g, **kw).assign(center=c) for c, g in endpoints.groupby("center", sort=True)]
    if not parts:
        by_center = pd.DataFrame(columns=["center", *rates.columns, "small_cell"])
    else:
        out = pd.concat(parts, ignore_index=True)
        out["small_cell"] = out["n_total"] < params.small_cell_below
        by_center = out[["center", *[c for c in out.columns if c not in ("center", "small_cell")], "small_cell"]]
    return EndpointRateTables(endpoint_rates=rates, endpoint_rates_by_center=by_center)


@dataclass(frozen=True)
class EndpointTests(_Tables):
    """UC vs CD tests and Cochran's Q (:func:`endpoint_tests`).

    Attributes
    ----------
    endpoint_comparisons : DataFrame
        :func:`ibd_pipeline.stats.rates.uc_vs_cd_tests`.
    cochran_q : DataFrame
        :func:`ibd_pipeline.stats.rates.cochran_q` across the clinical time points.
    """

    endpoint_comparisons: pd.DataFrame
    cochran_q: pd.DataFrame


def endpoint_tests(endpoints: pd.DataFrame, params: StatsParams) -> EndpointTests:
    """UC vs CD per time point and endpoint, and Cochran's Q across the clinical time points.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    params : StatsParams

    Returns
    -------
    EndpointTests

    Notes
    -----
    docs/STUDY_RULES.md#statistics (UC vs CD compared; Cochran's Q on patients with all
    ``timepoints.clinical``).
    """
    return EndpointTests(
        endpoint_comparisons=uc_vs_cd_tests(endpoints, params.fisher_expected_below, params.seed,
                                            timepoint_order=params.timepoint_order),
        cochran_q=cochran_q(endpoints, params.clinical_timepoints),
    )


@dataclass(frozen=True)
class BiomarkerStatistics(_Tables):
    """Biomarker summaries and tests (:func:`biomarker_statistics`).

    Attributes
    ----------
    biomarker_summary : DataFrame
    biomarker_tests : DataFrame
    """

    biomarker_summary: pd.DataFrame
    biomarker_tests: pd.DataFrame


def biomarker_statistics(biomarkers: pd.DataFrame, params: StatsParams) -> BiomarkerStatistics:
    """Biomarker summaries per time point; Kruskal-Wallis and signed-rank tests.

    Parameters
    ----------
    biomarkers : DataFrame
        ``analytics.biomarkers`` (patient_id, diagnosis, test, timepoint, value).
    params : StatsParams

    Returns
    -------
    BiomarkerStatistics

    Notes
    -----
    docs/STUDY_RULES.md#statistics (biomarker trajectories), time points in the study's order.
    """
    return BiomarkerStatistics(
        biomarker_summary=biomarker_summary(biomarkers, timepoint_order=params.timepoint_order),
        biomarker_tests=biomarker_tests(biomarkers, timepoint_order=params.timepoint_order),
    )


@dataclass(frozen=True)
class PersistenceTables(_Tables):
    """The persistence analysis (:func:`persistence_analysis`).

    Attributes
    ----------
    km_estimates : DataFrame
        Kaplan-Meier rates per ``persistence.km_groups``.
    logrank_tests : DataFrame
        Log-rank tests of the groupings but overall.
    cox_model : DataFrame
        Univariate and forward-selected multivariable Cox models stratified by center.
    discontinuation_rates : DataFrame
        Discontinuations per 100 patient-years, overall and by diagnosis.
    """

    km_estimates: pd.DataFrame
    logrank_tests: pd.DataFrame
    cox_model: pd.DataFrame
    discontinuation_rates: pd.DataFrame


def model_candidates(covariates: pd.DataFrame, params: StatsParams) -> list[str]:
    """The settings' candidate covariates that the cohort's covariates frame has.

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    params : StatsParams

    Returns
    -------
    list of str
        ``statistics.covariates`` in their order, those that are columns of ``covariates``.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the predictor and Cox models are offered the
    baseline covariates of the settings.
    """
    return [c for c in params.covariates if c in covariates.columns]


def content_hash(*parts) -> str:
    """One SHA-256 of frames and series: a data version of what an analysis reads.

    Parameters
    ----------
    *parts : DataFrame, Series or None
        Hashed in order: column names, dtypes, row count and values row by row (the index
        left out); None stands for itself.

    Returns
    -------
    str
        Hex digest.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (issue 14): an asset whose inputs hash the same is not
    recomputed.
    """
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"none;")
            continue
        frame = part.to_frame() if isinstance(part, pd.Series) else part
        h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode() + f":{len(frame)};".encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def predictor_inputs(covariates: pd.DataFrame, endpoints: pd.DataFrame, params: StatsParams) -> PredictorDesign:
    """What :func:`predictor_tables` fits of these tables.

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    endpoints : DataFrame
        ``analytics.endpoints``.
    params : StatsParams

    Returns
    -------
    PredictorDesign
        :func:`ibd_pipeline.stats.predictors.predictor_design` of the settings' outcome and
        candidates: the candidate covariates, the outcome and the center, in the analysis'
        row order. Its :func:`content_hash` is the analysis' data version.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (issue 14): a correction of a column the models do not
    read (a lab value that changes no baseline flag and no row order) leaves the design
    unchanged, so the models are not refitted.
    """
    po = params.predictor_outcome
    y = outcome_from_endpoints(endpoints, po.endpoint, po.timepoint, po.analysis)
    return predictor_design(covariates, y, candidates=list(params.covariates))


def predictor_inputs_hash(design: PredictorDesign) -> str:
    """The data version of a predictor design.

    Parameters
    ----------
    design : PredictorDesign
        :func:`predictor_inputs`.

    Returns
    -------
    str
        :func:`content_hash` of its covariates, outcome and centers.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (issue 14).
    """
    return content_hash(design.X, design.y, design.center)


def persistence_inputs(persistence: pd.DataFrame, covariates: pd.DataFrame,
                       params: StatsParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What :func:`persistence_analysis` reads of its tables.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    params : StatsParams

    Returns
    -------
    tuple of DataFrame
        The persistence frame, and of the covariates patient_id and the columns the Cox
        candidates, Kaplan-Meier and log-rank groupings take from there
        (``survival.with_covariates``).

    Notes
    -----
    docs/STUDY_RULES.md#persistence (issue 14): the analysis of these frames is the
    analysis of the whole tables; their :func:`content_hash` is its data version.
    """
    offered = params.cox_covariates if params.cox_covariates is not None else params.covariates
    wanted = [*offered, *params.km_groups, *params.logrank_groups]
    keep = ["patient_id", *dict.fromkeys(c for c in wanted if c in covariates.columns and c != "patient_id")]
    return persistence, covariates[keep]


def persistence_analysis(persistence: pd.DataFrame, covariates: pd.DataFrame, params: StatsParams,
                         workers: int | None = None) -> PersistenceTables:
    """Persistence: Kaplan-Meier, log-rank, Cox models and discontinuation rates.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    params : StatsParams
    workers : int or None, default None
        Processes of the Cox fits (None = ``$IBD_STATS_WORKERS`` or the CPUs).

    Returns
    -------
    PersistenceTables

    Notes
    -----
    docs/STUDY_RULES.md#persistence and #statistics: Kaplan-Meier rates at
    ``persistence.km_months`` and log-rank tests by ``persistence.km_groups``; Cox models
    of the candidate covariates the cohort has (``statistics.cox_covariates``, default
    ``statistics.covariates``), univariate then
    one multivariable model (``statistics.cox_selection`` at ``cox_entry_p``) stratified by center; discontinuations per 100
    patient-years of 12 x ``days_per_month`` days.
    """
    offered = params.cox_covariates if params.cox_covariates is not None else params.covariates
    candidates = [c for c in offered if c in covariates.columns]
    data = with_covariates(persistence, covariates, candidates)
    return PersistenceTables(
        km_estimates=km_estimates(persistence, covariates, group_vars=params.km_groups, months=params.km_months,
                                  days_per_month=params.days_per_month, alpha=params.alpha),
        logrank_tests=logrank_tests(persistence, covariates, group_vars=params.logrank_groups),
        cox_model=cox_models(data, candidates, strata="center", entry_p=params.cox_entry_p, alpha=params.alpha,
                             events_per_variable=params.events_per_variable, tolerance=params.cox_tolerance,
                             selection=params.cox_selection, workers=workers),
        discontinuation_rates=discontinuation_rate(persistence, days_per_year=params.days_per_year,
                                                   alpha=params.alpha),
    )


@dataclass(frozen=True)
class PredictorTables(_Tables):
    """The predictor analysis as published (:func:`predictor_tables`).

    Attributes
    ----------
    predictor_selection, logistic_model, roc_curve, model_auc : DataFrame
        The ``selection``, ``logistic_model``, ``roc`` and ``auc`` tables of
        :class:`ibd_pipeline.stats.predictors.PredictorAnalysis`.
    note : str
        Why variables were dropped, how the model was fitted.
    """

    predictor_selection: pd.DataFrame
    logistic_model: pd.DataFrame
    roc_curve: pd.DataFrame
    model_auc: pd.DataFrame
    note: str


def predictor_tables(covariates: pd.DataFrame, endpoints: pd.DataFrame, params: StatsParams,
                     workers: int | None = None, design: PredictorDesign | None = None) -> PredictorTables:
    """Predictors of the settings' primary outcome.

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    endpoints : DataFrame
        ``analytics.endpoints``.
    params : StatsParams
    workers : int or None, default None
        Processes of the independent fits (None = ``$IBD_STATS_WORKERS`` or the CPUs).
    design : PredictorDesign, optional
        :func:`predictor_inputs` of these tables, when the caller made it already.

    Returns
    -------
    PredictorTables

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the outcome is ``statistics.predictor_outcome``
    (endpoint, time point, analysis); the candidates ``statistics.covariates``; elastic
    net (``cv_folds``), Boruta, the multivariable logistic model (``events_per_variable``)
    and the bootstrap optimism (``bootstrap_samples``), seeded by ``statistics.seed``.
    """
    po = params.predictor_outcome
    y = outcome_from_endpoints(endpoints, po.endpoint, po.timepoint, po.analysis)
    res = predictor_analysis(covariates, y, seed=params.seed, cv_folds=params.cv_folds,
                             bootstrap=params.bootstrap_samples, candidates=list(params.covariates),
                             alpha=params.alpha, events_per_variable=params.events_per_variable, workers=workers,
                             design=design)
    return PredictorTables(predictor_selection=res.selection, logistic_model=res.logistic_model,
                           roc_curve=res.roc, model_auc=res.auc, note=str(res.note or ""))


def logistic_tables(covariates: pd.DataFrame, endpoints: pd.DataFrame, params: StatsParams) -> dict[str, pd.DataFrame]:
    """The univariate-then-multivariable logistic models of the settings' outcome
    (``statistics.predictor_method: logistic``).

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates``.
    endpoints : DataFrame
        ``analytics.endpoints``.
    params : StatsParams

    Returns
    -------
    dict
        ``{"logistic_models": DataFrame}`` (:data:`ibd_pipeline.stats.logistic.LOGISTIC_COLUMNS`).

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the outcome is ``statistics.predictor_outcome``; the
    candidates ``statistics.covariates``; the entry level ``statistics.cox_entry_p``
    (:func:`ibd_pipeline.stats.logistic.logistic_models`).
    """
    from .logistic import logistic_models

    po = params.predictor_outcome
    y = outcome_from_endpoints(endpoints, po.endpoint, po.timepoint, po.analysis)
    res = logistic_models(covariates, y, list(params.covariates), params.cox_entry_p, params.alpha)
    return {"logistic_models": res.table}


def heterogeneity_analysis(endpoints: pd.DataFrame, params: StatsParams) -> pd.DataFrame:
    """Center heterogeneity of the settings' endpoints at the settings' time point.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    params : StatsParams

    Returns
    -------
    DataFrame
        :func:`ibd_pipeline.stats.meta.center_heterogeneity`.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (``statistics.heterogeneity``: time point, endpoints;
    ``small_cell_below``).
    """
    return center_heterogeneity(endpoints, params.heterogeneity_timepoint, params.heterogeneity_endpoints,
                                small_cell_below=params.small_cell_below, alpha=params.alpha)


@dataclass(frozen=True)
class SafetyTables(_Tables):
    """The published safety tables (:func:`safety_tables`).

    Attributes
    ----------
    safety_serious : DataFrame
        Serious adverse events by term and diagnosis.
    safety_discontinuation : DataFrame
        Adverse events leading to discontinuation.
    """

    safety_serious: pd.DataFrame
    safety_discontinuation: pd.DataFrame


def safety_tables(adverse_events: pd.DataFrame, exposure: pd.DataFrame, params: StatsParams) -> SafetyTables:
    """Serious adverse events and those leading to discontinuation.

    Parameters
    ----------
    adverse_events : DataFrame
        ``analytics.adverse_events``.
    exposure : DataFrame
        ``analytics.exposure`` (patient_id, diagnosis, exposure_years): the cohort.
    params : StatsParams

    Returns
    -------
    SafetyTables

    Notes
    -----
    docs/STUDY_RULES.md#safety (:func:`ibd_pipeline.stats.safety.ae_tables`).
    """
    t = ae_tables(adverse_events, exposure, exposure[["patient_id", "diagnosis"]], alpha=params.alpha)
    return SafetyTables(safety_serious=t.serious, safety_discontinuation=t.discontinuation)


AE_SUMMARY_COLUMNS = ["term", "diagnosis", "n_patients", "n_included", "pct_patients", "n_events", "patient_years",
                      "rate_per_100py", "rate_ci_low", "rate_ci_high"]


def ae_summary(adverse_events: pd.DataFrame, exposure: pd.DataFrame, terms, params: StatsParams) -> pd.DataFrame:
    """Adverse events by term and diagnosis, every listed term included, rounded for publication.

    Parameters
    ----------
    adverse_events : DataFrame
        ``analytics.adverse_events``.
    exposure : DataFrame
        ``analytics.exposure``: the cohort and its exposure.
    terms : sequence of str
        The terms always listed, zeros included (the CRF's ``ae_terms``).
    params : StatsParams

    Returns
    -------
    DataFrame
        ``AE_SUMMARY_COLUMNS``, rounded by ``ibd_pipeline.stats.safety.DECIMALS``.

    Notes
    -----
    docs/STUDY_RULES.md#safety: by term, every CRF term listed.
    """
    by_term = ae_tables(adverse_events, exposure, exposure[["patient_id", "diagnosis"]], alpha=params.alpha,
                        terms=terms, decimals=DECIMALS).by_term
    return by_term[AE_SUMMARY_COLUMNS]


__all__ = [
    "AE_SUMMARY_COLUMNS", "BiomarkerStatistics", "Outcome", "EndpointRateTables", "EndpointTests", "PersistenceTables",
    "PredictorTables", "SafetyTables", "ae_summary", "biomarker_statistics", "endpoint_rate_tables",
    "endpoint_tests", "heterogeneity_analysis", "model_candidates", "outcome_rows", "persistence_analysis",
    "predictor_tables", "safety_tables", "table1_analysis",
]


def pk_analysis(pk_samples: pd.DataFrame, endpoints: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The PK substudy table (``analytics.pk_concentrations``): concentration by the
    groups of ``statistics.pharmacokinetics.endpoints`` at its time point, median (IQR)
    and the Wilcoxon rank-sum p (:func:`ibd_pipeline.stats.pk.pk_by_outcome`).

    Parameters
    ----------
    pk_samples : pandas.DataFrame
        ``core.pk_samples``: one row per patient and sample (concentration, time point).
    endpoints : pandas.DataFrame
        ``analytics.endpoints``: the per-patient status of each endpoint and time point.
    settings : dict
        The study settings; ``statistics.pharmacokinetics`` names the endpoints and the
        time point that group the concentrations.

    Returns
    -------
    pandas.DataFrame
        One row per endpoint and group: n, median, quartiles and the rank-sum p.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: only a study with ``statistics.pharmacokinetics``.
    """
    pk = settings["statistics"]["pharmacokinetics"]
    return pk_by_outcome(pk_samples, endpoints, pk["endpoints"], pk["timepoint"])
