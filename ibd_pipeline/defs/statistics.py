"""Pooled statistical models (docs/STUDY_RULES.md#statistics): Table 1, endpoint comparisons,
biomarker trajectories, predictors of month-12 steroid-free remission, persistence
(Kaplan-Meier, Cox), center heterogeneity and safety tables.

Each asset computes only when its inputs changed (``tables.inputs_unchanged``: the
content of the tables it reads, the settings and the code); otherwise it reports its
tables as they are, with the time of the computation they come from."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import stats
from ..store import warehouse as wh
from ..stats import analyses
from .keys import analytics_key
from .resources import StudyResource
from .tables import inputs_unchanged, md_table, publish, read, table_checks, table_spec


def _run(names_and_frames: dict, con, extra: dict | None = None, data_version: str | None = None):
    results, checks = [], []
    for name, df in names_and_frames.items():
        r, c = publish(con, name, df, extra_meta=(extra or {}).get(name), data_version=data_version)
        results.append(r)
        checks += c
    return results, checks


def _materialize(context, con, asset: str, inputs: list[str], outputs: list[str], settings: dict, compute) -> list:
    """The asset's materializations and checks: its tables as they are when the inputs
    are unchanged (``inputs_unchanged``), else ``compute()`` -> ({table: frame}, {table:
    extra metadata}) published and the inputs recorded."""
    fp, results = inputs_unchanged(context, con, asset, [f"analytics.{i}" for i in inputs], outputs, settings)
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
    n (%) with Pearson chi-square, or Fisher's exact when an expected count is below 5."""
    s = study.settings()
    params = stats.params_from_settings(s)["table1"]
    with warehouse.get_connection() as con:
        def compute():
            t1 = stats.table1(read(con, "analytics.baseline_covariates"), s["statistics"]["table1_variables"], **params)
            return {"table1": t1}, {"table1": {"table": md_table(t1, 80)}}

        out = _materialize(context, con, "table1", T1_IN, T1, s, compute)
    yield from out


ENDPOINT_TESTS, ENDPOINT_TESTS_IN = ["endpoint_comparisons", "cochran_q"], ["endpoints"]


@dg.multi_asset(specs=_specs(ENDPOINT_TESTS, ENDPOINT_TESTS_IN), check_specs=table_checks(ENDPOINT_TESTS),
                name="endpoint_tests")
def endpoint_tests(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """UC vs CD per time point and endpoint (chi-square or Fisher by the expected-count
    rule) and Cochran's Q across the clinical time points on patients with all points."""
    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            e = read(con, "analytics.endpoints")
            return {"endpoint_comparisons": stats.uc_vs_cd_tests(e, **params["uc_vs_cd_tests"]),
                    "cochran_q": stats.cochran_q(e, **params["cochran_q"])}, None

        out = _materialize(context, con, "endpoint_tests", ENDPOINT_TESTS_IN, ENDPOINT_TESTS, s, compute)
    yield from out


BIOMARKER_TABLES, BIOMARKER_TABLES_IN = ["biomarker_summary", "biomarker_tests"], ["biomarkers"]


@dg.multi_asset(specs=_specs(BIOMARKER_TABLES, BIOMARKER_TABLES_IN), check_specs=table_checks(BIOMARKER_TABLES),
                name="biomarker_statistics")
def biomarker_statistics(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Biomarker summaries per time point and diagnosis; Kruskal-Wallis across time
    points and Wilcoxon signed-rank of baseline vs each time point."""
    s = study.settings()
    with warehouse.get_connection() as con:
        def compute():
            b = con.execute(
                "SELECT patient_id, diagnosis, test, timepoint, value FROM analytics.biomarkers ORDER BY rowid"
            ).df()
            return {"biomarker_summary": stats.biomarker_summary(b), "biomarker_tests": stats.biomarker_tests(b)}, None

        out = _materialize(context, con, "biomarker_statistics", BIOMARKER_TABLES_IN, BIOMARKER_TABLES, s, compute)
    yield from out


PREDICTOR_TABLES = ["predictor_selection", "logistic_model", "roc_curve", "model_auc"]
PREDICTOR_TABLES_IN = ["baseline_covariates", "endpoints"]


@dg.multi_asset(specs=_specs(PREDICTOR_TABLES, PREDICTOR_TABLES_IN), check_specs=table_checks(PREDICTOR_TABLES),
                name="predictor_models")
def predictor_models(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Predictors of steroid-free clinical remission at month 12 (pooled): elastic-net
    logistic regression with 10-fold cross-validation for selection, Boruta random-forest
    importance as confirmation, a multivariable logistic model with center as a fixed
    effect (cluster-robust errors when a center separates), ROC/AUC with a DeLong 95% CI
    and the bootstrap optimism-corrected AUC. Seeds fixed in the settings."""
    s = study.settings()
    params = stats.params_from_settings(s)["predictor_analysis"]
    with warehouse.get_connection() as con:
        def compute():
            cov, e = read(con, "analytics.baseline_covariates"), read(con, "analytics.endpoints")
            # independent fits on every CPU
            tables, note = analyses.predictor_tables(cov, e, s["statistics"]["predictor_outcome"], params, workers=None)
            return tables, {"logistic_model": {"model": md_table(tables["logistic_model"]), "note": note},
                            "model_auc": {"auc": md_table(tables["model_auc"])}}

        out = _materialize(context, con, "predictor_models", PREDICTOR_TABLES_IN, PREDICTOR_TABLES, s, compute)
    yield from out


SURVIVAL_TABLES = ["km_estimates", "logrank_tests", "cox_model", "discontinuation_rates"]
SURVIVAL_TABLES_IN = ["persistence", "baseline_covariates"]


@dg.multi_asset(specs=_specs(SURVIVAL_TABLES, SURVIVAL_TABLES_IN), check_specs=table_checks(SURVIVAL_TABLES),
                name="persistence_models")
def persistence_models(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Persistence on upadacitinib: Kaplan-Meier rates at 3, 6, 9 and 12 months overall,
    by diagnosis, by baseline albumin <= 35 g/L and BMI <= 18.5, with log-rank tests; Cox
    models univariate then multivariable by forward selection (entry p < 0.05) stratified
    by center with the proportional-hazards test; discontinuations per 100 patient-years."""
    s = study.settings()
    params = stats.params_from_settings(s)
    with warehouse.get_connection() as con:
        def compute():
            tables = analyses.persistence_analysis(read(con, "analytics.persistence"),
                                                   read(con, "analytics.baseline_covariates"), params, workers=None)
            km = tables["km_estimates"]
            return tables, {"km_estimates": {"overall": md_table(km[km["group_var"] == "overall"])}}

        out = _materialize(context, con, "persistence_models", SURVIVAL_TABLES_IN, SURVIVAL_TABLES, s, compute)
    yield from out


HETEROGENEITY, HETEROGENEITY_IN = ["center_heterogeneity"], ["endpoints"]


@dg.multi_asset(specs=_specs(HETEROGENEITY, HETEROGENEITY_IN), check_specs=table_checks(HETEROGENEITY),
                name="center_heterogeneity")
def center_heterogeneity(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Per-center rates of the primary endpoints at month 12, the DerSimonian-Laird
    random-effects pooled estimate on the logit scale, I-squared and Cochran's Q; cells
    under 5 patients flagged."""
    s = study.settings()
    params = stats.params_from_settings(s)["center_heterogeneity"]
    h = s["statistics"]["heterogeneity"]
    with warehouse.get_connection() as con:
        def compute():
            return {"center_heterogeneity": stats.center_heterogeneity(
                read(con, "analytics.endpoints"), timepoint=h["timepoint"], endpoint_names=h["endpoints"], **params)}, None

        out = _materialize(context, con, "center_heterogeneity", HETEROGENEITY_IN, HETEROGENEITY, s, compute)
    yield from out


SAFETY_TABLES, SAFETY_TABLES_IN = ["safety_serious", "safety_discontinuation"], ["adverse_events", "exposure"]


@dg.multi_asset(specs=_specs(SAFETY_TABLES, SAFETY_TABLES_IN), check_specs=table_checks(SAFETY_TABLES),
                name="safety_tables")
def safety_tables(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Serious adverse events and adverse events leading to discontinuation, by term and
    diagnosis, with events per 100 patient-years (exact Poisson intervals)."""
    s = study.settings()
    params = stats.params_from_settings(s)["ae_tables"]
    with warehouse.get_connection() as con:
        def compute():
            ae, expo = read(con, "analytics.adverse_events"), read(con, "analytics.exposure")
            t = stats.ae_tables(ae, expo, expo[["patient_id", "diagnosis"]], **params)
            return {"safety_serious": t["serious"], "safety_discontinuation": t["discontinuation"]}, None

        out = _materialize(context, con, "safety_tables", SAFETY_TABLES_IN, SAFETY_TABLES, s, compute)
    yield from out


statistics_assets = [table1, endpoint_tests, biomarker_statistics, predictor_models, persistence_models, center_heterogeneity, safety_tables]
