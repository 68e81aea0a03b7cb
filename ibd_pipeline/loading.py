"""Loading a center's archived deliveries into staging (STUDY.md Workflow steps 1-2).

For each CRF table and round the *current* delivery is the newest readable one that
carries it (a newer delivery replaces the older one; every delivery stays archived).
Adjudication deliveries (round ADJ) accumulate: a later decision on the same
discrepancy overrides an earlier one. The center's staging rows, its quarantine rows
and its delivery records are rewritten in one transaction, so an interrupted run leaves
the previous state, and rebuilding from the archive gives the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from . import warehouse as wh
from .config import CenterProfile, Crf, DataPaths
from .intake import Delivery, read_manifest
from .ingest import UnreadableFileError, cross_table_checks, extract_file, parse_delivery_name, write_delivery_report


@dataclass
class LoadReport:
    center: str
    staged_rows: dict[str, int] = field(default_factory=dict)  # table -> rows in staging (all rounds)
    quarantined_rows: dict[str, int] = field(default_factory=dict)  # table -> quarantine rows of current deliveries
    rows_in: dict[str, int] = field(default_factory=dict)  # table -> delivered rows of current deliveries
    new_deliveries: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unreadable files: "file: problem"
    reports: list[Path] = field(default_factory=list)


def _delivery_row(d: Delivery, rnd, table, sheet, rows_in, acc, quar, status, message) -> dict:
    return {
        "center": d.center, "round": rnd, "table_name": table, "file_name": d.file_name, "sheet": sheet,
        "sha256": d.sha256, "seq": d.seq, "received_at": d.received_at, "rows_in": rows_in,
        "rows_accepted": acc, "rows_quarantined": quar, "status": status, "message": message,
    }


def load_center(
    con: duckdb.DuckDBPyConnection,
    paths: DataPaths,
    profile: CenterProfile,
    crf: Crf,
    key: bytes,
) -> LoadReport:
    """Rebuild one center's staging tables from its archive (see module docstring)."""
    center = profile.id
    report = LoadReport(center)
    wh.ensure_warehouse(con, crf)
    manifest = read_manifest(paths, center)
    known = {
        r[0]: r[1]
        for r in con.execute(
            "SELECT sha256, any_value(status) FROM analytics.deliveries WHERE center = ? GROUP BY sha256", [center]
        ).fetchall()
    }
    previous_rows = con.execute("SELECT * FROM analytics.deliveries WHERE center = ?", [center]).df()

    accepted = [d for d in manifest if d.status == "accepted"]
    extracts: dict[int, list] = {}  # seq -> list[TableExtract]
    unreadable: dict[int, str] = {}
    covered: set[tuple[str, str]] = set()  # (round, table) already having a current delivery
    current: dict[tuple[str, str], list[tuple[Delivery, object]]] = {}

    def extract(d: Delivery):
        if d.seq in extracts or d.seq in unreadable:
            return extracts.get(d.seq)
        try:
            extracts[d.seq] = extract_file(
                d.archive_path(paths), profile, key=key, delivery_id=d.sha256, file_name=d.file_name, crf=crf
            )
        except UnreadableFileError as exc:
            unreadable[d.seq] = exc.problem
        return extracts.get(d.seq)

    # Newest first: a delivery is read when it can still be current for some table, or
    # when it has never been processed (its coordinator is owed a report).
    for d in reversed(accepted):
        name = parse_delivery_name(profile, d.file_name)
        is_new = d.sha256 not in known
        might_be_current = name.round == "ADJ" or name.table is None or (name.round, name.table) not in covered
        if not (is_new or might_be_current):
            continue
        if not might_be_current and is_new and name.table is not None:
            continue  # superseded in the same batch: recorded below without reading
        tables = extract(d)
        if tables is None:
            continue
        for te in tables:
            k = (te.round, te.table)
            if te.round == "ADJ":
                current.setdefault(k, []).append((d, te))
            elif k not in covered:
                current[k] = [(d, te)]
                covered.add(k)

    # Cross-table rules within each round (patients known, events after birth, scores
    # matching the diagnosis), then the staging frames.
    quarantine_frames = []
    staging: dict[str, list[pd.DataFrame]] = {t: [] for t in crf.tables}
    by_round: dict[str, dict[str, pd.DataFrame]] = {}
    for (rnd, table), items in current.items():
        if rnd == "ADJ":
            frames = [te.valid for _, te in sorted(items, key=lambda x: x[0].seq)]
            adj = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            if len(adj):
                adj = adj.drop_duplicates(["patient_id", "table_name", "record_key", "field"], keep="last")
            staging[table].append(adj)
            for _, te in items:
                quarantine_frames.append(te.quarantine)
            continue
        (d, te), = items
        by_round.setdefault(rnd, {})[table] = te.valid
        quarantine_frames.append(te.quarantine)
    for rnd, tables in by_round.items():
        checked, extra_q = cross_table_checks(tables, crf=crf)
        if extra_q is not None and len(extra_q):
            quarantine_frames.append(extra_q.assign(_cross_table=True))
        for table, df in checked.items():
            staging[table].append(df)

    nonempty = [q for q in quarantine_frames if q is not None and len(q)]
    quarantine = (
        pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=[c for c, _ in wh.QUARANTINE_COLUMNS])
    )
    if len(quarantine):
        # every quarantine row names its delivery (file name -> SHA-256 of the current file)
        sha_of = {d.file_name: d.sha256 for items in current.values() for d, _ in items}
        ids = quarantine["delivery_id"] if "delivery_id" in quarantine else pd.Series(None, index=quarantine.index)
        quarantine["delivery_id"] = ids.where(ids.notna(), quarantine["file_name"].map(sha_of))

    # Delivery records: every file of the manifest, with its per-table outcome.
    rows = []
    current_ids = {(d.sha256, te.table) for items in current.values() for d, te in items}
    q_counts = (
        quarantine.groupby(["delivery_id", "table_name"])["row_number"].nunique().to_dict() if len(quarantine) else {}
    )
    prev = {(r.sha256, r.table_name): r for r in previous_rows.itertuples()} if len(previous_rows) else {}
    for d in manifest:
        if d.status != "accepted":
            rows.append(_delivery_row(d, None, None, None, None, None, None, d.status, d.message))
            continue
        if d.seq in unreadable:
            rows.append(_delivery_row(d, None, None, None, None, 0, 0, "unreadable", unreadable[d.seq]))
            continue
        if d.seq in extracts:
            for te in extracts[d.seq]:
                nq = int(q_counts.get((d.sha256, te.table), 0))
                if (d.sha256, te.table) in current_ids and te.round != "ADJ":
                    nq = int(
                        quarantine[(quarantine.delivery_id == d.sha256) & (quarantine.table_name == te.table)]["row_number"].nunique()
                    ) if len(quarantine) else 0
                status = "current" if (d.sha256, te.table) in current_ids else "superseded"
                rows.append(
                    _delivery_row(d, te.round, te.table, te.sheet, te.rows_in, te.rows_in - nq, nq, status, "; ".join(te.warnings))
                )
            continue
        # not read this time: keep what an earlier run recorded, now superseded
        old = [r for (sha, _t), r in prev.items() if sha == d.sha256]
        if old:
            for r in old:
                rows.append(
                    _delivery_row(d, r.round, r.table_name, r.sheet, r.rows_in, r.rows_accepted, r.rows_quarantined,
                                  "superseded" if r.status in ("current", "superseded") else r.status, r.message)
                )
        else:
            name = parse_delivery_name(profile, d.file_name)
            rows.append(_delivery_row(d, name.round, name.table, None, None, None, None, "superseded", "replaced by a newer delivery before it was loaded"))
    deliveries = pd.DataFrame(rows, columns=[c for c, _ in wh.DELIVERY_COLUMNS])

    con.execute("BEGIN TRANSACTION")
    try:
        for table, frames in staging.items():
            con.execute(f"DELETE FROM staging.{table} WHERE center = ?", [center])
            for df in frames:
                if df is not None and len(df):
                    df = df.assign(center=center)
                    wh.insert_frame(con, f"staging.{table}", df, wh.staging_columns(table, crf))
        con.execute("DELETE FROM analytics.quarantine WHERE center = ?", [center])
        if len(quarantine):
            wh.insert_frame(con, "analytics.quarantine", quarantine.assign(center=center), wh.QUARANTINE_COLUMNS)
        con.execute("DELETE FROM analytics.deliveries WHERE center = ?", [center])
        wh.insert_frame(con, "analytics.deliveries", deliveries, wh.DELIVERY_COLUMNS)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise

    for t in crf.tables:
        report.staged_rows[t] = con.execute(f"SELECT count(*) FROM staging.{t} WHERE center = ?", [center]).fetchone()[0]
    if len(quarantine):
        report.quarantined_rows = quarantine.groupby("table_name")["row_number"].nunique().astype(int).to_dict()
    for items in current.values():
        for _, te in items:
            report.rows_in[te.table] = report.rows_in.get(te.table, 0) + te.rows_in

    # Coordinator feedback for every delivery processed for the first time.
    for d in accepted:
        if d.sha256 in known:
            continue
        report.new_deliveries.append(d.file_name)
        if d.seq in unreadable:
            msg = f"{d.file_name}: {unreadable[d.seq]}"
            report.errors.append(msg)
            report.reports.append(
                write_delivery_report(paths.outbox(center), center, d.file_name, None, error=unreadable[d.seq], profile=profile)
            )
        elif d.seq in extracts:
            extra = (
                quarantine[(quarantine["delivery_id"] == d.sha256) & quarantine["_cross_table"].eq(True)]
                if len(quarantine) and "_cross_table" in quarantine
                else None
            )
            report.reports.append(
                write_delivery_report(paths.outbox(center), center, d.file_name, extracts[d.seq], profile=profile, extra_quarantine=extra)
            )
    return report


def mrn_map(con: duckdb.DuckDBPyConnection, paths: DataPaths, profile: CenterProfile, key: bytes, crf: Crf | None = None) -> dict[str, str]:
    """patient_id -> the center's own mrn, for the lists that go back to that center's
    outbox (reviewer list, worklist). Read from the archived current round-A and B
    patients deliveries, never from the warehouse (which holds no mrn)."""
    from .config import load_crf
    from .ingest.extract import _map_header
    from .ingest.readers import read_csv_part, read_xlsx_parts
    from .pseudonym import patient_id

    crf = crf or load_crf()
    rows = con.execute(
        "SELECT DISTINCT seq, sha256, file_name FROM analytics.deliveries WHERE center = ? AND table_name = 'patients' "
        "AND status = 'current' ORDER BY seq",
        [profile.id],
    ).fetchall()
    by_seq = {d.seq: d for d in read_manifest(paths, profile.id) if d.status == "accepted"}
    out: dict[str, str] = {}
    for seq, _sha, file_name in rows:
        d = by_seq.get(seq)
        if d is None:
            continue
        path = d.archive_path(paths)
        name = parse_delivery_name(profile, file_name)
        if profile.format == "xlsx":
            parts = [p for p in read_xlsx_parts(path, profile, file_name, name.round, 200_000, set(crf.data_tables), []) if p.table == "patients"]
        else:
            parts = [read_csv_part(path, profile, "patients", file_name, 200_000)]
        for part in parts:
            pos, _ = _map_header(part, profile, crf, file_name)
            if "mrn" not in pos:
                continue
            for chunk, _rows in part.chunks:
                for m in chunk.iloc[:, pos["mrn"]].astype(str).str.strip():
                    if m and m not in profile.missing_tokens:
                        out[patient_id(key, profile.id, m)] = m
    return out
