"""Loading a center's archived deliveries into staging (STUDY.md Workflow steps 1-2).

For each CRF table and round the *current* delivery is the newest readable one that
carries it (a newer delivery replaces the older one; every delivery stays archived).
Adjudication deliveries (round ADJ) accumulate: a later decision on the same
discrepancy overrides an earlier one. The center's staging rows, its quarantine rows
and its delivery records are rewritten in one transaction, so an interrupted run leaves
the previous state, and rebuilding from the archive gives the same tables.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from . import warehouse as wh
from .config import CenterProfile, Crf, DataPaths
from .intake import Delivery, read_manifest
from .ingest import UnreadableFileError, cross_table_checks, iter_extract, parse_delivery_name, write_delivery_report
from .ingest.rules import empty_quarantine
from .ingest.report import report_name


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


@dataclass
class SpooledExtract:
    """What one table (a CSV, or one sheet of a workbook) of a delivery yielded, like
    ``ingest.TableExtract``, but with its valid rows spooled to disk chunk by chunk
    (``parts``) instead of held in memory: a center's deliveries never sit in memory
    all at once, whatever their size."""

    table: str
    round: str
    file_name: str
    sheet: str | None
    rows_in: int
    quarantine: pd.DataFrame
    warnings: list[str]
    parts: list[Path]
    rows_valid: int

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine["row_number"].nunique()) if len(self.quarantine) else 0

    def frames(self):
        """The valid rows, one extraction chunk at a time (exactly the frames extracted)."""
        for p in self.parts:
            yield pd.read_pickle(p)

    @property
    def valid(self) -> pd.DataFrame:
        frames = list(self.frames())
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def spool_extract(path: Path, profile: CenterProfile, spool: Path, *, key: bytes, delivery_id: str, file_name: str,
                  crf: Crf) -> list[SpooledExtract]:
    """``ingest.extract_file`` with the valid rows of every chunk written to ``spool``
    (pickles: the frames come back exactly, dtypes included) instead of concatenated
    in memory. Raises UnreadableFileError like extract_file (its chunks written so far
    are then useless; the caller removes the spool directory)."""
    spool.mkdir(parents=True, exist_ok=True)
    out: list[SpooledExtract] = []
    acc: dict = {}
    n = len(list(spool.iterdir()))
    for ch in iter_extract(path, profile, key=key, delivery_id=delivery_id, file_name=file_name, crf=crf):
        k = (ch.table, ch.sheet)
        a = acc.setdefault(k, {"rows": 0, "valid": 0, "parts": [], "q": []})
        a["rows"] += ch.rows_in
        a["valid"] += len(ch.valid)
        part = spool / f"{n:06d}.pkl"
        n += 1
        ch.valid.to_pickle(part, protocol=5)
        a["parts"].append(part)
        if len(ch.quarantine):
            a["q"].append(ch.quarantine)
        if ch.last:
            q = pd.concat(a["q"], ignore_index=True) if a["q"] else empty_quarantine()
            out.append(SpooledExtract(ch.table, ch.round, ch.file_name, ch.sheet, a["rows"], q, ch.warnings, a["parts"], a["valid"]))
            del acc[k]
    return out


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

    extracts: dict[int, list] = {}  # seq -> list[SpooledExtract]
    unreadable: dict[int, str] = {}

    # valid rows go to a private spool directory beside the warehouse (removed at the end;
    # one left by a killed run is removed here - runs of the warehouse go one at a time)
    for stale in paths.root.glob(f".load-{center}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    spool_root = Path(tempfile.mkdtemp(prefix=f".load-{center}-", dir=paths.root))

    def extract(d: Delivery):
        if d.seq in extracts or d.seq in unreadable:
            return extracts.get(d.seq)
        spool = spool_root / f"{d.seq:06d}"
        try:
            extracts[d.seq] = spool_extract(
                d.archive_path(paths), profile, spool, key=key, delivery_id=d.sha256, file_name=d.file_name, crf=crf
            )
        except UnreadableFileError as exc:
            unreadable[d.seq] = exc.problem
            shutil.rmtree(spool, ignore_errors=True)
        return extracts.get(d.seq)

    try:
        return _load_center(con, paths, profile, crf, report, manifest, known, previous_rows, extract, extracts, unreadable)
    finally:
        shutil.rmtree(spool_root, ignore_errors=True)


def _load_center(con, paths, profile, crf, report, manifest, known, previous_rows, extract, extracts, unreadable) -> LoadReport:
    center = profile.id
    accepted = [d for d in manifest if d.status == "accepted"]
    covered: dict[tuple[str, str], int] = {}  # (round, table) -> seq of its current delivery
    current: dict[tuple[str, str], list[tuple[Delivery, object]]] = {}
    all_rejected: set[tuple[str, str]] = set()  # (sha256, table): every delivered row failed
    quarantine_frames: list[pd.DataFrame] = []

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
            elif k in covered and covered[k] != d.seq:
                continue  # an older delivery of a table a newer one replaced
            elif k not in covered and te.rows_in > 0 and te.rows_valid == 0:
                # every row was rejected: reported to the coordinator, but the previous
                # delivery of this table stays current (a bad file never costs good data)
                all_rejected.add((d.sha256, te.table))
                quarantine_frames.append(te.quarantine)
            else:  # the current delivery (a workbook's continuation sheets join its first sheet)
                current.setdefault(k, []).append((d, te))
                covered[k] = d.seq

    # The staging rows, per round: the current deliveries' valid rows (a workbook's
    # continuation sheets after its first sheet), ADJ decisions accumulated.
    adj_items: list = []
    by_round: dict[str, dict[str, list]] = {}  # round -> table -> extracts, in discovery order
    for (rnd, table), items in current.items():
        if rnd == "ADJ":
            adj_items += [te for _, te in sorted(items, key=lambda x: x[0].seq)]
            for _, te in items:
                quarantine_frames.append(te.quarantine)
            continue
        by_round.setdefault(rnd, {})[table] = [te for _, te in items]
        quarantine_frames += [te.quarantine for _, te in items]

    con.execute("BEGIN TRANSACTION")
    try:
        # Cross-table rules within each round (patients known, events after birth, scores
        # matching the diagnosis) need a row and its round's patients only: the rows are
        # checked and written one extraction chunk at a time, never a whole table in memory.
        round_patients = {
            rnd: pd.concat([f for te in tables["patients"] for f in te.frames()], ignore_index=True)
            for rnd, tables in by_round.items() if "patients" in tables
        }
        extra_q: dict[tuple[str, str], list[pd.DataFrame]] = {}
        for table in crf.tables:
            con.execute(f"DELETE FROM staging.{table} WHERE center = ?", [center])
            cols = wh.staging_columns(table, crf)
            if table == "adjudications" and adj_items:
                frames = [f for te in adj_items for f in te.frames()]
                adj = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
                if len(adj):
                    adj = adj.drop_duplicates(["patient_id", "table_name", "record_key", "field"], keep="last")
                    wh.insert_frame(con, f"staging.{table}", adj.assign(center=center), cols)
            for rnd, tables in by_round.items():
                if table not in tables:
                    continue
                pats = round_patients.get(rnd)
                for te in tables[table]:
                    for chunk in (te.frames() if table != "patients" else [pats]):
                        if table != "patients":
                            checked, q = cross_table_checks(
                                {"patients": pats, table: chunk} if pats is not None else {table: chunk}, crf=crf
                            )
                            chunk = checked[table]
                            if q is not None and len(q):
                                extra_q.setdefault((rnd, table), []).append(q)
                        if chunk is not None and len(chunk):
                            wh.insert_frame(con, f"staging.{table}", chunk.assign(center=center), cols)
                    if table == "patients":
                        break  # the round's patients frame holds every patients extract
        for rnd, tables in by_round.items():
            qs = [q for table in tables for q in extra_q.get((rnd, table), [])]
            if qs:
                quarantine_frames.append(pd.concat(qs, ignore_index=True).assign(_cross_table=True))

        nonempty = [q for q in quarantine_frames if q is not None and len(q)]
        quarantine = (
            pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=[c for c, _ in wh.QUARANTINE_COLUMNS])
        )
        if len(quarantine):
            # every quarantine row names its delivery (file name -> SHA-256 of the current file)
            sha_of = {d.file_name: d.sha256 for items in current.values() for d, _ in items}
            ids = quarantine["delivery_id"] if "delivery_id" in quarantine else pd.Series(None, index=quarantine.index)
            quarantine["delivery_id"] = ids.where(ids.notna(), quarantine["file_name"].map(sha_of))
        deliveries = _delivery_records(profile, manifest, extracts, unreadable, current, all_rejected, quarantine, previous_rows)

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
    # (also for a delivery whose report is missing: a crash between the commit above and
    # this point must not cost the coordinator the report)
    for d in accepted:
        is_new = d.sha256 not in known
        if not is_new and ((paths.outbox(center) / report_name(d.file_name)).exists() or d.seq not in extracts):
            continue
        if is_new:
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


def _delivery_records(profile, manifest, extracts, unreadable, current, all_rejected, quarantine, previous_rows) -> pd.DataFrame:
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
                if (d.sha256, te.table) in all_rejected:
                    status = "all_rows_rejected"
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
    return pd.DataFrame(rows, columns=[c for c, _ in wh.DELIVERY_COLUMNS])


_MRN_CACHE: dict[tuple, dict[str, str]] = {}  # (center, key digest, current patients files) -> map


def mrn_map(con: duckdb.DuckDBPyConnection, paths: DataPaths, profile: CenterProfile, key: bytes, crf: Crf | None = None) -> dict[str, str]:
    """patient_id -> the center's own mrn, for the lists that go back to that center's
    outbox (reviewer list, worklist). Read from the archived current round-A and B
    patients deliveries, never from the warehouse (which holds no mrn). Of a workbook
    only the patients sheets are read; the map of the same current files is computed
    once per process (the sample and the worklist of a center run both need it)."""
    import hashlib

    from .config import load_crf
    from .ingest.extract import _map_header
    from .ingest.readers import _sheet_matcher, _xlsx_part, open_workbook, read_csv_part
    from .pseudonym import patient_id

    crf = crf or load_crf()
    rows = con.execute(
        "SELECT DISTINCT seq, sha256, file_name FROM analytics.deliveries WHERE center = ? AND table_name = 'patients' "
        "AND status = 'current' ORDER BY seq",
        [profile.id],
    ).fetchall()
    cache_key = (profile.id, hashlib.sha256(key).hexdigest(), tuple(rows))
    if cache_key in _MRN_CACHE:
        return dict(_MRN_CACHE[cache_key])
    by_seq = {d.seq: d for d in read_manifest(paths, profile.id) if d.status == "accepted"}
    out: dict[str, str] = {}
    for seq, _sha, file_name in rows:
        d = by_seq.get(seq)
        if d is None:
            continue
        path = d.archive_path(paths)
        if profile.format == "xlsx":
            # the patients sheet and its continuations only (the other sheets are not loaded)
            wb = open_workbook(path, file_name)
            match = _sheet_matcher(profile)
            sheets = sorted(
                (hit[2], name) for name in wb.sheet_names if (hit := match(name)) is not None and hit[0] == "patients"
            )
            parts = [p for _, name in sheets if (p := _xlsx_part(wb, name, "patients", file_name, 200_000)) is not None]
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
    if len(_MRN_CACHE) > 16:
        _MRN_CACHE.clear()
    _MRN_CACHE[cache_key] = dict(out)
    return out
