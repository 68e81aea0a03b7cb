"""Extraction and validation per center (docs/STUDY_RULES.md#workflow, steps 1-2)."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import sqlmodels as sm
from ..loading import load_center
from ..store import reads
from .keys import DELIVERIES, QUARANTINE, staging_key
from .partitions import center_partitions
from .partitions import center_check_spec
from .resources import CRF, StudyResource
from .tables import description, documented_schema, table_metadata

TABLES = list(CRF.tables)


_specs = [
    dg.AssetSpec(
        staging_key(t),
        description=(
            f"Validated `{t}` rows of every center's current round A and B deliveries"
            f"{' (and ADJ)' if t == 'adjudications' else ''}: canonical CRF columns, `mrn` replaced "
            "by the pseudonymous `patient_id`, names and phones dropped, units converted."
        ),
        kinds={"duckdb", "pandera"},
        group_name="ingest",
        metadata={"dagster/column_schema": documented_schema(sm.model_by_name(f"staging.{t}"))},
    )
    for t in TABLES
] + [
    dg.AssetSpec(key, description=description(key.path[-1]), kinds={"duckdb"}, group_name="ingest",
                 metadata={"dagster/column_schema": documented_schema(sm.model_by_name(f"analytics.{key.path[-1]}"))})
    for key in (DELIVERIES, QUARANTINE)
]

_checks = [
    center_check_spec(
        "quarantine_share_within_limit",
        asset=staging_key(t),
        description="Rows in and accepted for this center and table; warns or fails when the quarantined share exceeds "
        "the study settings (docs/STUDY_RULES.md#workflow, step 2).",
    )
    for t in TABLES
]


@dg.multi_asset(specs=_specs, check_specs=_checks, partitions_def=center_partitions, name="staging_tables")
def staging_tables(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Read every archived delivery of one center through its export profile, validate
    each row against the CRF (pandera, lazy), and write valid rows to `staging.<table>`,
    failing rows to `analytics.quarantine`, file records to `analytics.deliveries`, and a
    report per delivery to the center's outbox. An unreadable file fails the run with its
    reason and leaves earlier data untouched."""
    center = context.partition_key
    settings = study.settings()["ingestion"]
    with warehouse.get_connection() as con:
        rep = load_center(con, study.paths(), study.profile(center), study.crf(), study.key(), study.settings())
        for t in TABLES:
            sm.document_table(con, "staging", t)
        sm.document_table(con, "analytics", "deliveries")
        sm.document_table(con, "analytics", "quarantine")
        sm.document_table(con, "analytics", "delivery_notes")
        sm.document_table(con, "analytics", "withdrawals")
        meta = {t: table_metadata(con, "staging", t, rows=rep.staged_rows.get(t, 0)) for t in TABLES}
        n_files = reads.count_rows(con, "analytics.deliveries", center)
        by_rule = reads.quarantine_by_rule(con, center)
        deliveries_meta = table_metadata(con, "analytics", "deliveries", rows=n_files)
        quarantine_meta = table_metadata(con, "analytics", "quarantine", rows=int(by_rule["n"].sum()) if len(by_rule) else 0)
    for t in TABLES:
        yield dg.MaterializeResult(
            asset_key=staging_key(t),
            metadata={
                **meta[t],
                "center": center,
                "rows_in_current_deliveries": rep.rows_in.get(t, 0),
                "rows_quarantined": rep.quarantined_rows.get(t, 0),
            },
        )
    yield dg.MaterializeResult(asset_key=DELIVERIES, metadata={**deliveries_meta, "center": center, "new_files": dg.MetadataValue.json(rep.new_deliveries)})
    yield dg.MaterializeResult(asset_key=QUARANTINE, metadata={
        **quarantine_meta, "center": center,
        "rows_quarantined_now": sum(rep.quarantined_rows.values()),
        "by_table_and_rule": dg.MetadataValue.md(by_rule.to_markdown(index=False) if len(by_rule) else "_no rows_"),
    })
    for t in TABLES:
        n_in, n_q = rep.rows_in.get(t, 0), rep.quarantined_rows.get(t, 0)
        share = n_q / n_in if n_in else 0.0
        severity = dg.AssetCheckSeverity.ERROR if share > settings["quarantine_share_error"] else dg.AssetCheckSeverity.WARN
        yield dg.AssetCheckResult(
            asset_key=staging_key(t),
            check_name="quarantine_share_within_limit",
            passed=share <= settings["quarantine_share_warn"],
            severity=severity,
            metadata={"center": center, "rows_in": n_in, "rows_accepted": n_in - n_q, "rows_quarantined": n_q, "quarantine_share": round(share, 4)},
        )
    if rep.errors:
        raise dg.Failure(
            description=f"{center}: {len(rep.errors)} file(s) could not be read; earlier data kept.\n" + "\n".join(rep.errors),
            metadata={"errors": dg.MetadataValue.json(rep.errors)},
        )
