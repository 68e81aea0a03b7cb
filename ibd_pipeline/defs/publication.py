"""Publication: the analysts' read-only snapshot of the warehouse."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ..catalog import build_catalog, catalog_path
from ..store.snapshot import publish_snapshot, redact_snapshot
from .resources import StudyResource
from .keys import SNAPSHOT

# Raw delivered values stay in the working warehouse; analysts get the counts and rules.
SNAPSHOT_DROP_COLUMNS = {"analytics.quarantine": ["value"], "analytics.withdrawals": ["reason", "recorded_by"]}


def build_snapshot_asset(upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(key=SNAPSHOT, deps=upstream, kinds={"duckdb"}, group_name="publication")
    def analytics_snapshot(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
        """`data/analytics.duckdb`: a read-only copy of the `core` and `analytics` schemas
        (no staging, no raw quarantined values, no PHI) with their table and column
        descriptions, written to a temporary file and atomically renamed over the old one
        after every asset of the run (and its blocking checks) succeeded. Analysts keep it
        open while the pipeline runs; they never open the working warehouse. Before the
        rename every text column passes the PHI check (`store.snapshot.redact_snapshot`): a value
        that fails is redacted and the run notes where (metadata `privacy_redactions`, a
        warning). Then the warehouse catalog (reports/catalog.html, ibd_pipeline.catalog)
        is rewritten."""
        target = study.paths().snapshot
        catalog = catalog_path(study.paths())
        redacted: dict[str, int] = {}
        with warehouse.get_connection() as con:
            copied = publish_snapshot(con, target, drop_columns=SNAPSHOT_DROP_COLUMNS,
                                      before_publish=lambda c, db: redacted.update(redact_snapshot(c, db)))
            listed = build_catalog(con, catalog)
        if redacted:
            context.log.warning(
                f"privacy check withheld {sum(redacted.values())} value(s) in the snapshot: "
                + ", ".join(f"{k} ({n})" for k, n in redacted.items())
            )
        return dg.MaterializeResult(
            metadata={
                "catalog": dg.MetadataValue.url(catalog.as_uri()),
                "catalog_tables": len(listed),
                "path": dg.MetadataValue.path(str(target)),
                "tables": len(copied),
                "rows": dg.MetadataValue.json(copied),
                "privacy_redactions": dg.MetadataValue.json(redacted),
            }
        )

    return analytics_snapshot
