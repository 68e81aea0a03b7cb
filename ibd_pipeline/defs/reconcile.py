"""Double-abstraction reconciliation per center (docs/STUDY_RULES.md#double-abstraction)."""


import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from .. import reconcile as rc
from .. import sqlmodels as sm
from .. import warehouse as wh
from ..status_page import write_status_page
from ..loading import mrn_map
from ..reconcile.sample import ORDER_FIELDS
from ..spreadsheet import neutralise_frame
from .ingest import CRF
from .keys import AGREEMENT, DISCREPANCIES, SAMPLE, reconciled_key, staging_key
from .partitions import center_check_spec, center_partitions
from .resources import StudyResource
from .tables import description, documented_schema, table_metadata

DATA_TABLES = CRF.data_tables
# quarantine rows written by apply_adjudications (not by extraction of the ADJ file)
ADJ_REJECTION_SQL = (
    "field = 'resolved_value' OR rule IN ('no_open_discrepancy', 'record_unavailable') "
    "OR (rule = 'unique_key' AND field = 'field')"
)


# the sampled patients of a center (the only ones round A and B are compared on)
SAMPLED_SQL = "patient_id IN (SELECT patient_id FROM analytics.reabstraction_sample WHERE center = ?)"
# the patients a reviewer's decision can touch: those with a listed discrepancy or an adjudication
TOUCHED_SQL = (
    "coalesce(patient_id IN (SELECT patient_id FROM analytics.discrepancies WHERE center = ? AND patient_id IS NOT NULL "
    "UNION SELECT patient_id FROM staging.adjudications WHERE center = ? AND patient_id IS NOT NULL), false)"
)
ORDER = "_ord"  # a staging row's position (rowid): reconciled rows keep round A's order


def _round_frames(con, center: str, rnd: str, only: str | None = None, only_params=(), order: bool = False) -> dict[str, pd.DataFrame]:
    """A center's staging frames of one round; ``only``: an SQL condition keeping some
    patients' rows (filtered inside DuckDB, the table's row order kept); ``order``: with
    each row's position as ``_ord`` and nullable integer/boolean columns."""
    out = {}
    for t in DATA_TABLES:
        sql = f"SELECT {'CAST(rowid AS DOUBLE) AS _ord, ' if order else ''}* FROM staging.{t} WHERE center = ? AND round = ?"
        params = [center, rnd]
        if only:
            sql += f" AND {only} ORDER BY rowid"
            params += list(only_params)
        df = con.execute(sql, params).df()
        if order:  # a decision may set NULL in a column the subset has none in
            df = df.astype({c: ("Int64" if str(d).startswith("int") else "boolean")
                            for c, d in df.dtypes.items() if c != ORDER and (str(d).startswith("int") or str(d) == "bool")})
        out[t] = df
    return out


def _replace_center_rows(con, qualified: str, center: str, df: pd.DataFrame) -> None:
    """Replace one center's rows of a pooled analytics table (created on first use)."""
    df = df.assign(center=center) if "center" not in df.columns else df
    if not wh.table_exists(con, qualified):
        wh.replace_table(con, qualified, df)
        sm.document_table(con, *qualified.split("."))
        return
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {qualified} WHERE center = ?", [center])
        cols = [r[0] for r in con.execute(f"DESCRIBE {qualified}").fetchall()]
        con.register("_rows", wh.frame_for(df, [(c, "") for c in cols]))
        con.execute(f"INSERT INTO {qualified} SELECT * FROM _rows")
        con.unregister("_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    sm.document_table(con, *qualified.split("."))


def _doc_meta(schema: str, name: str) -> dict:
    return {"dagster/column_schema": documented_schema(sm.model_by_name(f"{schema}.{name}"))}


def _center_rows(con, qualified: str, center: str) -> int:
    return con.execute(f"SELECT count(*) FROM {qualified} WHERE center = ?", [center]).fetchone()[0]


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
        fields = ", ".join(dict.fromkeys(["center", "patient_id", *ORDER_FIELDS, "source_row"]))
        pats = con.execute(  # the draw order comes from these fields, never from the (keyed) patient_id
            f"SELECT {fields} FROM staging.patients WHERE center = ? AND round = 'A'", [center]
        ).df()
        prev = (
            con.execute(f"SELECT * FROM {'.'.join(SAMPLE.path)} WHERE center = ?", [center]).df()
            if wh.table_exists(con, ".".join(SAMPLE.path))
            else None
        )
        sample = rc.draw_sample(pats, prev, s["sample_fraction"], s["sample_seed"], s["min_per_stratum"])
        _replace_center_rows(con, ".".join(SAMPLE.path), center, sample)
        table_meta = table_metadata(con, *SAMPLE.path, rows=len(sample))
        mrns = mrn_map(con, paths, study.profile(center), study.key())
    listing = rc.reviewer_list(sample, mrns)
    out = paths.outbox(center)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"reabstraction_sample_{center}.csv"
    neutralise_frame(listing).to_csv(path, index=False, encoding="utf-8-sig")
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
        a = _round_frames(con, center, "A", SAMPLED_SQL, [center])
        b = _round_frames(con, center, "B", SAMPLED_SQL, [center])
        sample = con.execute(f"SELECT * FROM {'.'.join(SAMPLE.path)} WHERE center = ?", [center]).df()
        adj = con.execute("SELECT * FROM staging.adjudications WHERE center = ?", [center]).df()
        prev = (
            con.execute(f"SELECT * FROM {'.'.join(DISCREPANCIES.path)} WHERE center = ?", [center]).df()
            if wh.table_exists(con, ".".join(DISCREPANCIES.path))
            else None
        )
        comparison = rc.compare_rounds(a, b, sample, CRF)
        agreement = rc.agreement_table(comparison, CRF)
        disc = rc.discrepancies(comparison, prev, adj)
        _replace_center_rows(con, ".".join(AGREEMENT.path), center, agreement)
        _replace_center_rows(con, ".".join(DISCREPANCIES.path), center, disc)
        agreement_meta = table_metadata(con, *AGREEMENT.path, rows=len(agreement))
        discrepancies_meta = table_metadata(con, *DISCREPANCIES.path, rows=len(disc))
        mrns = mrn_map(con, paths, profile, study.key())
    open_disc = disc[disc["status"] == "open"] if len(disc) else disc
    worklist = None
    if len(open_disc):
        worklist = rc.write_worklist(open_disc, center, profile, mrns, paths.outbox(center), dt.date.today().strftime("%Y%m%d"))
    with warehouse.get_connection() as con:
        write_status_page(con, paths, profile)  # the open discrepancies and the worklist to return
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


def _insert_reconciled(con, table: str, center: str, changed: pd.DataFrame, touched: list) -> None:
    """reconciled.<table> of a center: the untouched patients' round-A rows straight from
    staging, and the touched patients' rows after the decisions (``changed``, with
    ``_ord``; added records have none and go last, in order), in round A's row order."""
    cols = wh.reconciled_columns(table, CRF)
    names = ", ".join(f'"{c}"' for c, _ in cols)
    df = changed.assign(center=center)
    ords = pd.to_numeric(df[ORDER], errors="coerce").to_numpy(dtype=float, na_value=float("nan")) if len(df) else []
    if len(df):
        added = pd.isna(ords)
        ords[added] = 2.0**62 + pd.Series(range(int(added.sum()))).to_numpy(dtype=float)
    src = wh.frame_for(df, cols)
    src[ORDER] = ords
    casts = ", ".join(f'CAST("{c}" AS {ty}) AS "{c}"' for c, ty in cols)
    con.register("_touched_rows", src)
    try:
        con.execute(
            f"INSERT INTO reconciled.{table} SELECT {names} FROM ("
            f"SELECT CAST(rowid AS DOUBLE) AS {ORDER}, {names} FROM staging.{table} "
            f"WHERE center = ? AND round = 'A' AND NOT {TOUCHED_SQL} "
            f"UNION ALL SELECT {ORDER}, {casts} FROM _touched_rows) ORDER BY {ORDER}",
            [center, *touched],
        )
    finally:
        con.unregister("_touched_rows")


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
        touched = [center, center]
        a = _round_frames(con, center, "A", TOUCHED_SQL, touched, order=True)
        adj = con.execute("SELECT * FROM staging.adjudications WHERE center = ?", [center]).df()
        disc = con.execute(f"SELECT * FROM {'.'.join(DISCREPANCIES.path)} WHERE center = ?", [center]).df()
        b = _round_frames(con, center, "B", TOUCHED_SQL, touched)
        reconciled, rejected, resolved = rc.apply_adjudications(a, adj, disc, CRF, round_b=b)
        con.execute("BEGIN TRANSACTION")
        try:
            for t in DATA_TABLES:
                con.execute(f"DELETE FROM reconciled.{t} WHERE center = ?", [center])
                _insert_reconciled(con, t, center, reconciled[t], touched)
            # the previous run's adjudication rejections (this step owns them)
            con.execute(
                f"DELETE FROM analytics.quarantine WHERE center = ? AND table_name = 'adjudications' AND ({ADJ_REJECTION_SQL})",
                [center],
            )
            if len(rejected):
                wh.insert_frame(con, "analytics.quarantine", rejected.assign(center=center), wh.QUARANTINE_COLUMNS)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        for t in DATA_TABLES:
            sm.document_table(con, "reconciled", t)
        meta = {t: table_metadata(con, "reconciled", t, rows=_center_rows(con, f"reconciled.{t}", center)) for t in DATA_TABLES}
    for t in DATA_TABLES:
        yield dg.MaterializeResult(
            asset_key=reconciled_key(t),
            metadata={**meta[t], "center": center, "adjudications_applied": int(len(resolved)), "adjudications_rejected": int(len(rejected))},
        )
