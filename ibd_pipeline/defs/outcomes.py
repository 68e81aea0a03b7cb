"""Endpoints, biomarkers, safety and persistence of the included patients
(docs/STUDY_RULES.md#windows, #endpoints, #safety, #persistence; workflow step 6)."""

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import endpoints as ep
from .. import stats
from ..store.reads import core_frames, endpoint_status_counts, included_patients
from .keys import analytics_key, core_key
from .resources import StudyResource
from .tables import BatchWriter, md_table, publish, read, table_checks, table_spec

INPUTS = [analytics_key("eligibility")] + [core_key(t) for t in ("patients", "medications", "surgeries", "assessments", "labs", "adverse_events")]
TABLES = ["endpoints", "biomarkers", "adverse_events", "exposure", "persistence", "baseline_covariates"]
# included patients per batch of outcome_tables (memory: about 40 MB per 1,000 patients)
BATCH_PATIENTS = int(os.environ.get("IBD_OUTCOME_BATCH_PATIENTS", "10000"))
# tables the pure code sorts by patient_id (the others follow the patients' order)
SORTED_BY_PATIENT = {"biomarkers": "patient_id", "adverse_events": "patient_id"}


@dg.multi_asset(
    specs=[table_spec(t, INPUTS, "endpoints") for t in TABLES],
    check_specs=table_checks(TABLES),
    name="outcome_tables",
)
def outcome_tables(study: StudyResource, warehouse: DuckDBResource):
    """For every included patient: every endpoint at every time point (complete-case
    status, non-responder-imputed status, the value and the reason), biomarkers in
    canonical units, treatment-emergent adverse events, exposure, persistence, and the
    baseline covariates of Table 1 and the models."""
    settings, crf = study.settings(), study.crf()
    with warehouse.get_connection() as con:
        pts = included_patients(con)
        # Every output row depends on one patient's data only: the patients are taken in
        # batches (bounded memory at registry size), each with only its own rows and the
        # lab tests the endpoint code reads; the tables are the same as in one go.
        writers = {t: BatchWriter(con, t, sort_by=SORTED_BY_PATIENT.get(t)) for t in TABLES}
        for start in range(0, max(len(pts), 1), BATCH_PATIENTS):
            part = pts.iloc[start:start + BATCH_PATIENTS]
            f = core_frames(con, ("medications", "surgeries", "assessments", "labs", "adverse_events"),
                            lab_tests=ep.lab_tests(settings), included_only=True,
                            patients=None if len(part) == len(pts) else list(part["patient_id"]))
            out = {
                "endpoints": ep.endpoints(part, f["medications"], f["surgeries"], f["assessments"], f["labs"], settings, crf),
                "biomarkers": ep.biomarkers(part, f["labs"], settings, crf),
                "adverse_events": ep.treatment_emergent_aes(part, f["adverse_events"], settings, crf),
                "exposure": ep.exposure(part, settings),
                "persistence": ep.persistence(part),
                "baseline_covariates": ep.baseline_covariates(part, f["medications"], f["surgeries"], f["labs"], f["assessments"], settings, crf),
            }
            del f
            for name, df in out.items():
                writers[name].add(df)
            del out
        results, checks = [], []
        for name, w in writers.items():
            meta = {}
            if name == "endpoints" and w.rows:
                meta["status_counts"] = md_table(endpoint_status_counts(con))
            r, c = w.publish(extra_meta=meta)
            results.append(r)
            checks += c
    yield from results
    yield from checks


RATE_TABLES = ["endpoint_rates", "endpoint_rates_by_center", "ae_summary"]


@dg.multi_asset(
    specs=[
        table_spec("endpoint_rates", [analytics_key("endpoints")], "endpoints"),
        table_spec("endpoint_rates_by_center", [analytics_key("endpoints")], "endpoints"),
        table_spec("ae_summary", [analytics_key("adverse_events"), analytics_key("exposure")], "endpoints"),
    ],
    check_specs=table_checks(RATE_TABLES),
    name="rate_tables",
)
def rate_tables(study: StudyResource, warehouse: DuckDBResource):
    """Endpoint rates n/N with Wilson 95% intervals by UC, CD and overall, complete-case
    and NRI, pooled and by center; adverse events by term and diagnosis with events per
    100 patient-years (docs/STUDY_RULES.md#statistics, #safety: every CRF term listed)."""
    from ..stats import analyses

    params = stats.params_from_settings(study.settings())
    with warehouse.get_connection() as con:
        rates = analyses.endpoint_rate_tables(read(con, "analytics.endpoints"), params)
        summary = analyses.ae_summary(read(con, "analytics.adverse_events"), read(con, "analytics.exposure"),
                                      study.crf().ae_terms, params)
        # previews in the UI: the primary outcome (statistics.predictor_outcome)
        po = params.predictor_outcome
        r1, c1 = publish(con, "endpoint_rates", rates.endpoint_rates,
                         extra_meta={f"{po.timepoint}_{po.analysis}": md_table(analyses.outcome_rows(
                             rates.endpoint_rates, stats.Outcome(None, po.timepoint, po.analysis)))})
        r3, c3 = publish(con, "endpoint_rates_by_center", rates.endpoint_rates_by_center,
                         extra_meta={f"{po.timepoint}_{po.endpoint}": md_table(analyses.outcome_rows(
                             rates.endpoint_rates_by_center, po))})
        r2, c2 = publish(con, "ae_summary", summary, extra_meta={"any_ae": md_table(summary[summary["term"] == "any"])})
    yield r1
    yield r3
    yield r2
    yield from c1 + c3 + c2


outcome_assets = [outcome_tables, rate_tables]
