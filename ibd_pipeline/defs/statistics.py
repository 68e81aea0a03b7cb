"""Pooled statistical models (docs/STUDY_RULES.md#statistics): Table 1, endpoint comparisons,
biomarker trajectories, predictors of month-12 steroid-free remission, persistence
(Kaplan-Meier, Cox), center heterogeneity and safety tables."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import stats
from ..stats import analyses
from .keys import analytics_key
from .resources import StudyResource
from .tables import md_table, publish, read, table_checks, table_spec


def _run(names_and_frames: dict, con, extra: dict | None = None):
    results, checks = [], []
    for name, df in names_and_frames.items():
        r, c = publish(con, name, df, extra_meta=(extra or {}).get(name))
        results.append(r)
        checks += c
    return results, checks


T1 = ["table1"]


@dg.multi_asset(specs=[table_spec("table1", [analytics_key("baseline_covariates")], "statistics")], check_specs=table_checks(T1), name="table1")
def table1(study: StudyResource, warehouse: DuckDBResource):
    """Baseline characteristics by diagnosis and overall: median [IQR] with Wilcoxon
    rank-sum (mean +/- SD with Welch's t for variables the settings declare normal);
    n (%) with Pearson chi-square, or Fisher's exact when an expected count is below 5."""
    s = study.settings()
    params = stats.params_from_settings(s)["table1"]
    with warehouse.get_connection() as con:
        cov = read(con, "analytics.baseline_covariates")
        t1 = stats.table1(cov, s["statistics"]["table1_variables"], **params)
        results, checks = _run({"table1": t1}, con, {"table1": {"table": md_table(t1, 80)}})
    yield from results
    yield from checks


ENDPOINT_TESTS = ["endpoint_comparisons", "cochran_q"]


@dg.multi_asset(
    specs=[table_spec(n, [analytics_key("endpoints")], "statistics") for n in ENDPOINT_TESTS],
    check_specs=table_checks(ENDPOINT_TESTS),
    name="endpoint_tests",
)
def endpoint_tests(study: StudyResource, warehouse: DuckDBResource):
    """UC vs CD per time point and endpoint (chi-square or Fisher by the expected-count
    rule) and Cochran's Q across the clinical time points on patients with all points."""
    params = stats.params_from_settings(study.settings())
    with warehouse.get_connection() as con:
        e = read(con, "analytics.endpoints")
        out = {
            "endpoint_comparisons": stats.uc_vs_cd_tests(e, **params["uc_vs_cd_tests"]),
            "cochran_q": stats.cochran_q(e, **params["cochran_q"]),
        }
        results, checks = _run(out, con)
    yield from results
    yield from checks


BIOMARKER_TABLES = ["biomarker_summary", "biomarker_tests"]


@dg.multi_asset(
    specs=[table_spec(n, [analytics_key("biomarkers")], "statistics") for n in BIOMARKER_TABLES],
    check_specs=table_checks(BIOMARKER_TABLES),
    name="biomarker_statistics",
)
def biomarker_statistics(warehouse: DuckDBResource):
    """Biomarker summaries per time point and diagnosis; Kruskal-Wallis across time
    points and Wilcoxon signed-rank of baseline vs each time point."""
    with warehouse.get_connection() as con:
        b = con.execute(
            "SELECT patient_id, diagnosis, test, timepoint, value FROM analytics.biomarkers ORDER BY rowid"
        ).df()
        out = {"biomarker_summary": stats.biomarker_summary(b), "biomarker_tests": stats.biomarker_tests(b)}
        results, checks = _run(out, con)
    yield from results
    yield from checks


PREDICTOR_TABLES = ["predictor_selection", "logistic_model", "roc_curve", "model_auc"]


@dg.multi_asset(
    specs=[table_spec(n, [analytics_key("baseline_covariates"), analytics_key("endpoints")], "statistics") for n in PREDICTOR_TABLES],
    check_specs=table_checks(PREDICTOR_TABLES),
    name="predictor_models",
)
def predictor_models(study: StudyResource, warehouse: DuckDBResource):
    """Predictors of steroid-free clinical remission at month 12 (pooled): elastic-net
    logistic regression with 10-fold cross-validation for selection, Boruta random-forest
    importance as confirmation, a multivariable logistic model with center as a fixed
    effect (cluster-robust errors when a center separates), ROC/AUC with a DeLong 95% CI
    and the bootstrap optimism-corrected AUC. Seeds fixed in the settings."""
    s = study.settings()
    params = stats.params_from_settings(s)["predictor_analysis"]
    with warehouse.get_connection() as con:
        cov = read(con, "analytics.baseline_covariates")
        e = read(con, "analytics.endpoints")
        # independent fits on every CPU
        out, note = analyses.predictor_tables(cov, e, s["statistics"]["predictor_outcome"], params, workers=None)
        results, checks = _run(out, con, {
            "logistic_model": {"model": md_table(out["logistic_model"]), "note": note},
            "model_auc": {"auc": md_table(out["model_auc"])},
        })
    yield from results
    yield from checks


SURVIVAL_TABLES = ["km_estimates", "logrank_tests", "cox_model", "discontinuation_rates"]


@dg.multi_asset(
    specs=[table_spec(n, [analytics_key("persistence"), analytics_key("baseline_covariates")], "statistics") for n in SURVIVAL_TABLES],
    check_specs=table_checks(SURVIVAL_TABLES),
    name="persistence_models",
)
def persistence_models(study: StudyResource, warehouse: DuckDBResource):
    """Persistence on upadacitinib: Kaplan-Meier rates at 3, 6, 9 and 12 months overall,
    by diagnosis, by baseline albumin <= 35 g/L and BMI <= 18.5, with log-rank tests; Cox
    models univariate then multivariable by forward selection (entry p < 0.05) stratified
    by center with the proportional-hazards test; discontinuations per 100 patient-years."""
    params = stats.params_from_settings(study.settings())
    with warehouse.get_connection() as con:
        pers = read(con, "analytics.persistence")
        cov = read(con, "analytics.baseline_covariates")
        out = analyses.persistence_analysis(pers, cov, params, workers=None)
        results, checks = _run(out, con, {"km_estimates": {"overall": md_table(out["km_estimates"][out["km_estimates"]["group_var"] == "overall"])}})
    yield from results
    yield from checks


@dg.multi_asset(
    specs=[table_spec("center_heterogeneity", [analytics_key("endpoints")], "statistics")],
    check_specs=table_checks(["center_heterogeneity"]),
    name="center_heterogeneity",
)
def center_heterogeneity(study: StudyResource, warehouse: DuckDBResource):
    """Per-center rates of the primary endpoints at month 12, the DerSimonian-Laird
    random-effects pooled estimate on the logit scale, I-squared and Cochran's Q; cells
    under 5 patients flagged."""
    s = study.settings()
    params = stats.params_from_settings(s)["center_heterogeneity"]
    h = s["statistics"]["heterogeneity"]
    with warehouse.get_connection() as con:
        e = read(con, "analytics.endpoints")
        out = {"center_heterogeneity": stats.center_heterogeneity(e, timepoint=h["timepoint"], endpoint_names=h["endpoints"], **params)}
        results, checks = _run(out, con)
    yield from results
    yield from checks


SAFETY_TABLES = ["safety_serious", "safety_discontinuation"]


@dg.multi_asset(
    specs=[table_spec(n, [analytics_key("adverse_events"), analytics_key("exposure")], "statistics") for n in SAFETY_TABLES],
    check_specs=table_checks(SAFETY_TABLES),
    name="safety_tables",
)
def safety_tables(study: StudyResource, warehouse: DuckDBResource):
    """Serious adverse events and adverse events leading to discontinuation, by term and
    diagnosis, with events per 100 patient-years (exact Poisson intervals)."""
    params = stats.params_from_settings(study.settings())["ae_tables"]
    with warehouse.get_connection() as con:
        ae = read(con, "analytics.adverse_events")
        expo = read(con, "analytics.exposure")
        t = stats.ae_tables(ae, expo, expo[["patient_id", "diagnosis"]], **params)
        results, checks = _run({"safety_serious": t["serious"], "safety_discontinuation": t["discontinuation"]}, con)
    yield from results
    yield from checks


statistics_assets = [table1, endpoint_tests, biomarker_statistics, predictor_models, persistence_models, center_heterogeneity, safety_tables]
