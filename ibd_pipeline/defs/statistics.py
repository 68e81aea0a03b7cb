"""Pooled statistical models (docs/STUDY_RULES.md#statistics): Table 1, endpoint comparisons,
biomarker trajectories, predictors of the settings' primary outcome, persistence
(Kaplan-Meier, Cox), center heterogeneity and safety tables. Each asset reads its tables,
calls one function of ``stats/analyses.py`` with the settings and publishes the result.

Each asset computes only when its inputs changed (``tables.inputs_unchanged``: the
content of the tables it reads - for the predictor and persistence models, of the part
of them the models read -, the settings and the code); otherwise it reports its tables
as they are, with the time of the computation they come from."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import stats
from ..store import warehouse as wh
from ..store.reads import biomarker_rows
from .keys import analytics_key, core_key
from .resources import StudyResource
from .tables import inputs_unchanged, md_table, publish, read, table_checks, table_spec


def _run(names_and_frames: dict, con, extra: dict | None = None, data_version: str | None = None):
    results, checks = [], []
    for name, df in names_and_frames.items():
        r, c = publish(con, name, df, extra_meta=(extra or {}).get(name), data_version=data_version)
        results.append(r)
        checks += c
    return results, checks


def _materialize(context, con, asset: str, inputs: list[str], outputs: list[str], settings: dict, compute,
                 content: str | None = None) -> list:
    """The asset's materializations and checks: its tables as they are when the inputs
    are unchanged (``inputs_unchanged``; ``content``: the hash of what it reads of them,
    else the whole tables), else ``compute()`` -> ({table: frame}, {table: extra
    metadata}) published and the inputs recorded."""
    fp, results = inputs_unchanged(context, con, asset, [f"analytics.{i}" for i in inputs], outputs, settings,
                                   content=content)
    if results is not None:
        return results
    out, extra = compute()
    results, checks = _run(out, con, extra, fp)
    wh.record_inputs(con, asset, fp)
    return results + checks


def _specs(outputs: list[str], inputs: list[str]) -> list[dg.AssetSpec]:
    return [table_spec(n, [analytics_key(i) for i in inputs], "statistics") for n in outputs]


T1, T1_IN = ["table1"], ["baseline_covariates"]


@dg.multi_asset(specs=_specs(T1, T1_IN), check_specs=table_checks(T1), name="table1")
def table1(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Baseline characteristics by diagnosis and overall: median [IQR] with Wilcoxon
    rank-sum (mean +/- SD with Welch's t for variables the settings declare normal);
    n (%) with Pearson chi-square, or Fisher's exact when an expected count is below
    statistics.fisher_expected_below."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            t1 = analyses.table1_analysis(read(con, "analytics.baseline_covariates"), params)
            return {"table1": t1}, {"table1": {"table": md_table(t1, 80)}}

        out = _materialize(context, con, "table1", T1_IN, T1, s, compute)
    yield from out


ENDPOINT_TESTS, ENDPOINT_TESTS_IN = ["endpoint_comparisons", "cochran_q"], ["endpoints"]


@dg.multi_asset(specs=_specs(ENDPOINT_TESTS, ENDPOINT_TESTS_IN), check_specs=table_checks(ENDPOINT_TESTS),
                name="endpoint_tests")
def endpoint_tests(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """UC vs CD per time point and endpoint (chi-square or Fisher by the expected-count
    rule) and Cochran's Q across the clinical time points on patients with all points."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            return analyses.endpoint_tests(read(con, "analytics.endpoints"), params).tables(), None

        out = _materialize(context, con, "endpoint_tests", ENDPOINT_TESTS_IN, ENDPOINT_TESTS, s, compute)
    yield from out


BIOMARKER_TABLES, BIOMARKER_TABLES_IN = ["biomarker_summary", "biomarker_tests"], ["biomarkers"]


@dg.multi_asset(specs=_specs(BIOMARKER_TABLES, BIOMARKER_TABLES_IN), check_specs=table_checks(BIOMARKER_TABLES),
                name="biomarker_statistics")
def biomarker_statistics(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Biomarker summaries per time point and diagnosis; Kruskal-Wallis across time
    points and Wilcoxon signed-rank of baseline vs each time point."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            return analyses.biomarker_statistics(biomarker_rows(con), params).tables(), None

        out = _materialize(context, con, "biomarker_statistics", BIOMARKER_TABLES_IN, BIOMARKER_TABLES, s, compute)
    yield from out


PREDICTOR_TABLES = ["predictor_selection", "logistic_model", "roc_curve", "model_auc"]
PREDICTOR_TABLES_IN = ["baseline_covariates", "endpoints"]


@dg.multi_asset(specs=_specs(PREDICTOR_TABLES, PREDICTOR_TABLES_IN), check_specs=table_checks(PREDICTOR_TABLES),
                name="predictor_models")
def predictor_models(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Predictors of the primary outcome (settings statistics.predictor_outcome; pooled): elastic-net
    logistic regression with 10-fold cross-validation for selection, Boruta random-forest
    importance as confirmation, a multivariable logistic model with center as a fixed
    effect (cluster-robust errors when a center separates), ROC/AUC with a DeLong 95% CI
    and the bootstrap optimism-corrected AUC. Seeds fixed in the settings."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        cov, e = read(con, "analytics.baseline_covariates"), read(con, "analytics.endpoints")
        design = analyses.predictor_inputs(cov, e, params)

        def compute():
            # independent fits on every CPU
            res = analyses.predictor_tables(cov, e, params, workers=None, design=design)
            return res.tables(), {"logistic_model": {"model": md_table(res.logistic_model), "note": res.note},
                                  "model_auc": {"auc": md_table(res.model_auc)}}

        # refitted only when the design it fits changed (the candidates, the outcome, the center)
        out = _materialize(context, con, "predictor_models", PREDICTOR_TABLES_IN, PREDICTOR_TABLES, s, compute,
                           content=analyses.predictor_inputs_hash(design))
    yield from out


LOGISTIC_TABLES = ["logistic_models"]


@dg.multi_asset(specs=_specs(LOGISTIC_TABLES, PREDICTOR_TABLES_IN), check_specs=table_checks(LOGISTIC_TABLES),
                name="logistic_models")
def logistic_models(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Predictors of the primary outcome (settings statistics.predictor_outcome) by plain
    logistic regression (statistics.predictor_method: logistic): each candidate covariate
    on its own, then one model of those with a univariate p below statistics.cox_entry_p;
    separation checked, Firth-penalized fits where maximum likelihood fails, no numbers
    for a term that is not estimable."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            out = analyses.logistic_tables(read(con, "analytics.baseline_covariates"), read(con, "analytics.endpoints"), params)
            return out, {"logistic_models": {"model": md_table(out["logistic_models"])}}

        out = _materialize(context, con, "logistic_models", PREDICTOR_TABLES_IN, LOGISTIC_TABLES, s, compute)
    yield from out


SURVIVAL_TABLES = ["km_estimates", "logrank_tests", "cox_model", "discontinuation_rates"]
SURVIVAL_TABLES_IN = ["persistence", "baseline_covariates"]


@dg.multi_asset(specs=_specs(SURVIVAL_TABLES, SURVIVAL_TABLES_IN), check_specs=table_checks(SURVIVAL_TABLES),
                name="persistence_models")
def persistence_models(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Persistence on upadacitinib: Kaplan-Meier rates at the settings' months
    (persistence.km_months) overall and by the settings' groupings (persistence.km_groups),
    with log-rank tests; Cox models univariate then one multivariable model
    (statistics.cox_selection: forward selection, or the candidates of univariate
    p < statistics.cox_entry_p together) stratified by center with the proportional-hazards
    test; discontinuations per 100 patient-years."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        # what the models read: the persistence table and the covariates they use
        persistence, cov = analyses.persistence_inputs(read(con, "analytics.persistence"),
                                                       read(con, "analytics.baseline_covariates"), params)

        def compute():
            res = analyses.persistence_analysis(persistence, cov, params, workers=None)
            km = res.km_estimates
            return res.tables(), {"km_estimates": {"overall": md_table(km[km["group_var"] == "overall"])}}

        out = _materialize(context, con, "persistence_models", SURVIVAL_TABLES_IN, SURVIVAL_TABLES, s, compute,
                           content=analyses.content_hash(persistence, cov))
    yield from out


HETEROGENEITY, HETEROGENEITY_IN = ["center_heterogeneity"], ["endpoints"]


@dg.multi_asset(specs=_specs(HETEROGENEITY, HETEROGENEITY_IN), check_specs=table_checks(HETEROGENEITY),
                name="center_heterogeneity")
def center_heterogeneity(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Per-center rates of the settings' endpoints at the settings' time point
    (statistics.heterogeneity), the DerSimonian-Laird random-effects pooled estimate on
    the logit scale, I-squared and Cochran's Q; cells under statistics.small_cell_below
    patients flagged."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            return {"center_heterogeneity": analyses.heterogeneity_analysis(read(con, "analytics.endpoints"), params)}, None

        out = _materialize(context, con, "center_heterogeneity", HETEROGENEITY_IN, HETEROGENEITY, s, compute)
    yield from out


SAFETY_TABLES, SAFETY_TABLES_IN = ["safety_serious", "safety_discontinuation"], ["adverse_events", "exposure"]


@dg.multi_asset(specs=_specs(SAFETY_TABLES, SAFETY_TABLES_IN), check_specs=table_checks(SAFETY_TABLES),
                name="safety_tables")
def safety_tables(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Serious adverse events and adverse events leading to discontinuation, by term and
    diagnosis, with events per 100 patient-years (exact Poisson intervals)."""
    from ..stats import analyses

    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            ae, expo = read(con, "analytics.adverse_events"), read(con, "analytics.exposure")
            return analyses.safety_tables(ae, expo, params).tables(), None

        out = _materialize(context, con, "safety_tables", SAFETY_TABLES_IN, SAFETY_TABLES, s, compute)
    yield from out


PK_TABLES = ["pk_concentrations"]


@dg.multi_asset(specs=[table_spec("pk_concentrations", [core_key("pk_samples"), analytics_key("endpoints")], "statistics")],
                check_specs=table_checks(PK_TABLES), name="pk_statistics")
def pk_statistics(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """PK substudy (statistics.pharmacokinetics): plasma upadacitinib concentration by the
    settings' endpoint groups at their time point, median (IQR), Wilcoxon rank-sum test."""
    from ..stats import analyses

    s = study.settings()
    with warehouse.get_connection() as con:
        def compute():
            t = analyses.pk_analysis(read(con, "core.pk_samples"), read(con, "analytics.endpoints"), s)
            return {"pk_concentrations": t}, {"pk_concentrations": {"table": md_table(t)}}

        fp, results = inputs_unchanged(context, con, "pk_statistics", ["core.pk_samples", "analytics.endpoints"],
                                       PK_TABLES, s)
        if results is None:
            out, extra = compute()
            results, checks = _run(out, con, extra, fp)
            wh.record_inputs(con, "pk_statistics", fp)
            results = results + checks
    yield from results


def build_statistics_assets(settings: dict) -> list:
    """The statistics assets of the study: its predictor method's model
    (``statistics.predictor_method``) and the center heterogeneity only when the study
    has a ``statistics.heterogeneity`` analysis (more than one center)."""
    st = settings["statistics"]
    predictors = logistic_models if st.get("predictor_method", "elastic_net_boruta") == "logistic" else predictor_models
    out = [table1, endpoint_tests, biomarker_statistics, predictors, persistence_models]
    if st.get("heterogeneity"):
        out.append(center_heterogeneity)
    if st.get("pharmacokinetics"):  # a PK substudy (core.pk_samples)
        out.append(pk_statistics)
    return out + [safety_tables]
