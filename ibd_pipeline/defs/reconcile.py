"""Double-abstraction reconciliation per center (docs/STUDY_RULES.md#double-abstraction)."""


import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from .. import reconcile as rc
from .. import sqlmodels as sm
from ..store import reads
from ..store import reconciled as store_rc
from ..status_page import write_status_page
from ..loading import mrn_map
from ..reconcile.sample import ORDER_FIELDS
from ..outbox_lists import write_center_rejected_rows, write_reabstraction_list
from ..spreadsheet import set_outbox_modes
from .ingest import CRF
from .keys import AGREEMENT, DISCREPANCIES, SAMPLE, reconciled_key, staging_key, table_of
from .partitions import center_check_spec, center_partitions
from .resources import StudyResource
from .tables import description, documented_schema, table_metadata

DATA_TABLES = CRF.data_tables


def _replace_center_rows(con, qualified: str, center: str, df: pd.DataFrame) -> None:
    """Replace one center's rows of a pooled analytics table, with its documentation."""
    store_rc.replace_center_rows(con, qualified, center, df)
    sm.document_table(con, *qualified.split("."))


def _doc_meta(schema: str, name: str) -> dict:
    return {"dagster/column_schema": documented_schema(sm.model_by_name(f"{schema}.{name}"))}


@dg.asset(
    key=SAMPLE,
    deps=[staging_key("patients")],
    partitions_def=center_partitions,
    kinds={"duckdb"},
    group_name="reconcile",
    metadata=_doc_meta("analytics", "reabstraction_sample"),
)
def reabstraction_sample(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """The senior reviewer's seeded random 20% of each center's screened patients,
    stratified by diagnosis (at least one per stratum), drawn in an order made of the study
    seed and the records (not of the keyed ids), kept when patients are added.
    Also written to the center's outbox as the reviewer's list (with the center's own
    record numbers, which only the outbox may carry)."""
    center = context.partition_key
    s = study.settings()["reconciliation"]
    paths = study.paths()
    with warehouse.get_connection() as con:
        # the draw order comes from these fields, never from the (keyed) patient_id
        pats = reads.round_a_patients(con, center, list(dict.fromkeys(["center", "patient_id", *ORDER_FIELDS, "source_row"])))
        prev = reads.center_rows(con, table_of(SAMPLE), center, missing_ok=True)
        sample = rc.draw_sample(pats, prev, s["sample_fraction"], s["sample_seed"], s["min_per_stratum"])
        _replace_center_rows(con, table_of(SAMPLE), center, sample)
        table_meta = table_metadata(con, *SAMPLE.path[-2:], rows=len(sample))
        mrns = mrn_map(con, paths, study.profile(center), study.key(), CRF)
    listing = rc.reviewer_list(sample, mrns)
    path = write_reabstraction_list(listing, study.profile(center), paths.outbox(center), CRF)
    by_dx = sample.groupby("diagnosis").size().to_dict() if len(sample) else {}
    return dg.MaterializeResult(
        metadata={
            **table_meta,
            "center": center,
            "screened": len(pats),
            "by_diagnosis": dg.MetadataValue.json({k: int(v) for k, v in by_dx.items()}),
            "reviewer_list": dg.MetadataValue.path(str(path)),
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(AGREEMENT, deps=[SAMPLE] + [staging_key(t) for t in DATA_TABLES], kinds={"duckdb"}, group_name="reconcile",
                     description=description("agreement"), metadata=_doc_meta("analytics", "agreement")),
        dg.AssetSpec(DISCREPANCIES, deps=[SAMPLE, staging_key("adjudications")] + [staging_key(t) for t in DATA_TABLES], kinds={"duckdb"}, group_name="reconcile",
                     description=description("discrepancies"), metadata=_doc_meta("analytics", "discrepancies")),
    ],
    check_specs=[
        center_check_spec("agreement_meets_threshold", asset=AGREEMENT, blocking=True,
                          description="Overall agreement of the center on its sample is at least the study threshold "
                          "(study.yaml reconciliation.agreement_threshold_pct, 95%; docs/STUDY_RULES.md#double-abstraction). "
                          "Below it nothing downstream of this center's data is built."),
        center_check_spec("discrepancies_resolved", asset=DISCREPANCIES, blocking=True,
                          description="Every discrepancy has an adjudicated value; blocks only when the study setting says so "
                          "(reconciliation.unresolved_discrepancies, default: warn)."),
    ],
    partitions_def=center_partitions,
    name="reconciliation",
)
def reconciliation(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Compare round A with round B record by record and field by field for the sampled
    patients, compute the agreement statistics, list every discrepancy (with any
    adjudication already received) and write the reviewer's worklist to the outbox."""
    center = context.partition_key
    s = study.settings()["reconciliation"]
    paths = study.paths()
    profile = study.profile(center)
    with warehouse.get_connection() as con:
        # only the sampled patients' rows are compared (compare_rounds keeps no other)
        a = reads.round_frames(con, center, "A", DATA_TABLES, patients="sampled")
        b = reads.round_frames(con, center, "B", DATA_TABLES, patients="sampled")
        sample = reads.center_rows(con, table_of(SAMPLE), center)
        adj = reads.center_rows(con, "staging.adjudications", center)
        prev = reads.center_rows(con, table_of(DISCREPANCIES), center, missing_ok=True)
        comparison = rc.compare_rounds(a, b, sample, CRF)
        agreement = rc.agreement_table(comparison, CRF)
        disc = rc.discrepancies(comparison, prev, adj, crf=CRF, profiles=study.centers())
        _replace_center_rows(con, table_of(AGREEMENT), center, agreement)
        _replace_center_rows(con, table_of(DISCREPANCIES), center, disc)
        agreement_meta = table_metadata(con, *AGREEMENT.path[-2:], rows=len(agreement))
        discrepancies_meta = table_metadata(con, *DISCREPANCIES.path[-2:], rows=len(disc))
        mrns = mrn_map(con, paths, profile, study.key(), CRF)
    open_disc = disc[disc["status"] == "open"] if len(disc) else disc
    worklist = None
    if len(open_disc):  # in the center's own terms; returned filled in to inbox/<center>/ of the data directory
        worklist = rc.write_worklist(open_disc, center, profile, mrns, paths.outbox(center),
                                     dt.date.today().strftime("%Y%m%d"), crf=CRF)
    with warehouse.get_connection() as con:
        write_status_page(con, paths, profile, CRF)  # the open discrepancies and the worklist to return
    set_outbox_modes(paths.outbox(center))
    passed, message = rc.agreement_gate(agreement, center, s["agreement_threshold_pct"])
    overall = agreement[(agreement["table_name"] == "*") & (agreement["field"] == "*")]
    # figures as a reader wants them: percentages to two decimals (the table keeps full precision)
    pct = round(float(overall["pct_agree"].iloc[0]), 2) if len(overall) else float("nan")
    per_table = agreement[(agreement["field"] == "*") & (agreement["table_name"] != "*")][["table_name", "n_compared", "pct_agree"]]
    per_table = per_table.assign(pct_agree=per_table["pct_agree"].round(2))
    yield dg.MaterializeResult(
        asset_key=AGREEMENT,
        metadata={
            **agreement_meta,
            "center": center,
            "overall_pct_agree": pct,
            "sampled_patients": len(sample),
            "missing_in_round_b": dg.MetadataValue.json(comparison.missing_in_b["patient_id"].tolist() if len(comparison.missing_in_b) else []),
            "per_table": dg.MetadataValue.md(per_table.to_markdown(index=False) if len(per_table) else "no comparisons"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=DISCREPANCIES,
        metadata={
            **discrepancies_meta,
            "center": center,
            "open": int(len(open_disc)),
            "resolved": int(len(disc) - len(open_disc)),
            "worklist": dg.MetadataValue.path(str(worklist)) if worklist else "none",
        },
    )
    yield dg.AssetCheckResult(
        asset_key=AGREEMENT,
        check_name="agreement_meets_threshold",
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=message,
        metadata={"center": center, "overall_pct_agree": pct, "threshold_pct": float(s["agreement_threshold_pct"]), "message": message},
    )
    block = s.get("unresolved_discrepancies", "warn") == "block"
    yield dg.AssetCheckResult(
        asset_key=DISCREPANCIES,
        check_name="discrepancies_resolved",
        passed=len(open_disc) == 0,
        severity=dg.AssetCheckSeverity.ERROR if block else dg.AssetCheckSeverity.WARN,
        metadata={"open": int(len(open_disc)), "policy": "block" if block else "warn"},
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(reconciled_key(t), deps=[AGREEMENT, DISCREPANCIES, staging_key(t), staging_key("adjudications")],
                     kinds={"duckdb"}, group_name="reconcile",
                     description=description(t, "reconciled"), metadata=_doc_meta("reconciled", t))
        for t in DATA_TABLES
    ],
    partitions_def=center_partitions,
    name="reconciled_tables",
)
def reconciled_tables(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Round A with adjudicated values applied, per center (docs/STUDY_RULES.md#double-abstraction:
    the analysis uses round A with the adjudicated values applied). Adjudications that
    name no open discrepancy are quarantined with that reason."""
    center = context.partition_key
    with warehouse.get_connection() as con:
        # Decisions touch only patients with a listed discrepancy or an adjudication: only
        # their rows go through pandas; every other round-A row is copied inside DuckDB,
        # and the table keeps round A's row order (added records last, as before).
        a = reads.round_frames(con, center, "A", DATA_TABLES, patients="touched", order=True)
        adj = reads.center_rows(con, "staging.adjudications", center)
        disc = reads.center_rows(con, table_of(DISCREPANCIES), center)
        b = reads.round_frames(con, center, "B", DATA_TABLES, patients="touched")
        reconciled, rejected, resolved = rc.apply_adjudications(a, adj, disc, CRF, round_b=b, profiles=study.centers())
        store_rc.write_reconciled(con, center, {t: reconciled[t] for t in DATA_TABLES}, rejected, CRF)
        for t in DATA_TABLES:
            sm.document_table(con, "reconciled", t)
        # the rejected adjudications join the center's rejected-rows list
        write_center_rejected_rows(con, study.paths().outbox(center), study.profile(center), CRF)
        meta = {t: table_metadata(con, "reconciled", t, rows=reads.count_rows(con, f"reconciled.{t}", center)) for t in DATA_TABLES}
    set_outbox_modes(study.paths().outbox(center))
    for t in DATA_TABLES:
        yield dg.MaterializeResult(
            asset_key=reconciled_key(t),
            metadata={**meta[t], "center": center, "adjudications_applied": int(len(resolved)), "adjudications_rejected": int(len(rejected))},
        )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(reconciled_key(t), deps=[staging_key(t)], kinds={"duckdb"}, group_name="reconcile",
                     description=description(t, "reconciled"), metadata=_doc_meta("reconciled", t))
        for t in DATA_TABLES
    ],
    partitions_def=center_partitions,
    name="reconciled_tables",
)
def single_abstraction_tables(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Round A as accepted, per center: the study has no double abstraction
    (study.yaml ``reconciliation: null``), so there is no sample, no agreement gate and
    no adjudication; the reconciled tables are the accepted records."""
    center = context.partition_key
    with warehouse.get_connection() as con:
        rows = store_rc.write_round_a(con, center, list(DATA_TABLES), CRF)
        for t in DATA_TABLES:
            sm.document_table(con, "reconciled", t)
        meta = {t: table_metadata(con, "reconciled", t, rows=rows[t]) for t in DATA_TABLES}
    for t in DATA_TABLES:
        yield dg.MaterializeResult(asset_key=reconciled_key(t), metadata={**meta[t], "center": center})


def build_center_assets(settings: dict) -> list:
    """The per-center assets of the study: staging is the ingest's; with double
    abstraction (``reconciliation`` settings) the sample, the reconciliation with its
    blocking agreement gate and the adjudicated tables, without it round A as accepted."""
    if settings.get("reconciliation") is None:
        return [single_abstraction_tables]
    return [reabstraction_sample, reconciliation, reconciled_tables]
