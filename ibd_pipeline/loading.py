"""Loading a center's archived deliveries into staging (STUDY.md Workflow steps 1-2).

Record-level delivery semantics (issue 12): a delivery updates records by their CRF key
(``schemas/crf.yaml`` ``key``), applied in the order received. A record whose new row
fails validation keeps its last accepted version; a record absent from a newer delivery
is kept (both are listed in the delivery's report); a patient leaves the study only
through the center's withdrawal list (profile ``withdrawals``), which removes every row
of that patient and is recorded in ``analytics.withdrawals``. A header-only file, or
one with fewer rows than ``ingestion.hold_below_share`` of the table's current delivery,
is held until the coordinator confirms it (``confirm_delivery``); a file dated older
than the current delivery never replaces it (issue 18). Adjudication deliveries (round
ADJ) accumulate: a later decision on the same discrepancy overrides an earlier one.

Every run replays the whole archive (``rebuild`` is the same code): ``_plan`` decides
what each accepted file does (pure), then the center's staging rows, quarantine rows,
delivery records, notes and withdrawals are rewritten through ``store.staging`` in one
transaction (``store.warehouse.transaction``), so an interrupted run leaves the previous
state. No SQL text lives here. The quarantine holds the
rejected rows of each table's current delivery (and the cross-table rejections of the
record state); every delivery's report is rewritten after the commit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from .config import CenterProfile, Crf, DataPaths
from .intake import Delivery, confirmations_path, read_manifest
from .ingest import (UnreadableFileError, cross_table_checks, iter_extract, parse_delivery_name, read_fields,
                     write_delivery_report)
from .ingest.names import DICTIONARY_ROUND, WITHDRAWAL_ROUND, is_worklist_file
from .ingest.report import STATE_TEXT as _STATE_TEXT
from .ingest.rules import empty_quarantine
from .outbox_lists import write_center_rejected_rows
from .pseudonym import patient_id
from .spreadsheet import set_outbox_modes
from .status_page import write_status_page
from .store import reads
from .store import staging as stg
from .store import warehouse as wh
from .withdrawal import read_withdrawals


@dataclass
class LoadReport:
    center: str
    staged_rows: dict[str, int] = field(default_factory=dict)  # table -> rows in staging (all rounds)
    quarantined_rows: dict[str, int] = field(default_factory=dict)  # table -> quarantine rows of current deliveries
    rows_in: dict[str, int] = field(default_factory=dict)  # table -> delivered rows of current deliveries
    new_deliveries: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unreadable files: "file: problem"
    reports: list[Path] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # "file: why" - waiting for the coordinator's confirmation
    older: list[str] = field(default_factory=list)  # files dated older than the current delivery (not applied)
    kept: int = 0  # records whose new version failed and which kept their accepted version
    absent: int = 0  # records not in their table's latest delivery (kept)
    withdrawn: int = 0  # patients removed by withdrawal lists


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
    all at once, whatever their size. ``rejected_keys``: key columns and source_row of
    the rows that failed."""

    table: str
    round: str
    file_name: str
    sheet: str | None
    rows_in: int
    quarantine: pd.DataFrame
    warnings: list[str]
    parts: list[Path]
    rows_valid: int
    rejected_keys: pd.DataFrame | None = None

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
                  crf: Crf, dictionary: Path | None = None) -> list[SpooledExtract]:
    """``ingest.extract_file`` with the valid rows of every chunk written to ``spool``
    (pickles: the frames come back exactly, dtypes included) instead of concatenated
    in memory. Raises UnreadableFileError like extract_file (its chunks written so far
    are then useless; the caller removes the spool directory)."""
    spool.mkdir(parents=True, exist_ok=True)
    out: list[SpooledExtract] = []
    acc: dict = {}
    n = len(list(spool.iterdir()))
    if is_worklist_file(profile, file_name):  # a returned discrepancy worklist: the reviewer's adjudications
        from .reconcile.worklist import read_returned_worklist

        date = parse_delivery_name(profile, file_name, crf=crf).date
        wl = read_returned_worklist(path, profile, key=key, file_name=file_name, delivery_id=delivery_id, crf=crf,
                                    file_date=date)
        part = spool / f"{n:06d}.pkl"
        wl.valid.to_pickle(part, protocol=5)
        return [SpooledExtract("adjudications", "ADJ", file_name, wl.sheet, wl.rows_in, wl.quarantine, wl.warnings,
                               [part], len(wl.valid))]
    for ch in iter_extract(path, profile, key=key, delivery_id=delivery_id, file_name=file_name, crf=crf,
                           dictionary=dictionary):
        k = (ch.table, ch.sheet)
        a = acc.setdefault(k, {"rows": 0, "valid": 0, "parts": [], "q": [], "rk": []})
        a["rows"] += ch.rows_in
        a["valid"] += len(ch.valid)
        part = spool / f"{n:06d}.pkl"
        n += 1
        ch.valid.to_pickle(part, protocol=5)
        a["parts"].append(part)
        if len(ch.quarantine):
            a["q"].append(ch.quarantine)
        if ch.rejected_keys is not None and len(ch.rejected_keys):
            a["rk"].append(ch.rejected_keys)
        if ch.last:
            q = pd.concat(a["q"], ignore_index=True) if a["q"] else empty_quarantine()
            rk = pd.concat(a["rk"], ignore_index=True) if a["rk"] else None
            out.append(SpooledExtract(ch.table, ch.round, ch.file_name, ch.sheet, a["rows"], q, ch.warnings, a["parts"], a["valid"], rk))
            del acc[k]
    return out


# ------------------------------------------------------------------ confirmation of held files
def read_confirmations(paths: DataPaths, center: str) -> set[str]:
    p = confirmations_path(paths, center)
    out: set[str] = set()
    if p.exists():
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                out.add(json.loads(line)["sha256"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line (power loss) confirms nothing
    return out


def confirm_delivery(paths: DataPaths, center: str, file_name: str, by: str = "") -> Delivery:
    """Confirm a held delivery (header-only or much smaller than the current one) so the
    next run applies it: ``ibd-pipeline confirm <center> <file name>``. Raises ValueError
    when the center's archive holds no accepted file of that name."""
    matches = [d for d in read_manifest(paths, center) if d.status == "accepted" and d.file_name == file_name]
    if not matches:
        raise ValueError(f"center {center} has no accepted delivery named {file_name!r}")
    d = matches[-1]
    p = confirmations_path(paths, center)
    p.parent.mkdir(parents=True, exist_ok=True)
    rec = {"sha256": d.sha256, "file_name": d.file_name, "seq": d.seq, "by": by,
           "confirmed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return d


@dataclass
class LoadContext:
    """One center's load: where it reads and writes, and what it found (the archive's
    manifest, the files the warehouse knew, the spooled extracts, the unreadable files)."""

    con: duckdb.DuckDBPyConnection
    paths: DataPaths
    profile: CenterProfile
    crf: Crf
    key: bytes
    manifest: list[Delivery]
    known: dict[str, str]  # sha256 -> status of the files the warehouse knew before this run
    spool: Path  # the private spool directory of the valid rows
    extracts: dict[int, list[SpooledExtract]] = field(default_factory=dict)  # seq -> the file's tables
    unreadable: dict[int, str] = field(default_factory=dict)  # seq -> why

    @property
    def center(self) -> str:
        return self.profile.id

    @property
    def seq_of(self) -> dict[int, Delivery]:
        return {d.seq: d for d in self.manifest}

    def dictionary_for(self, d: Delivery) -> Path | None:
        """A REDCap records export's data dictionary: the archived file of the profile's
        ``redcap.dictionary_files`` with the same date, the last one accepted (None for
        other centers, or when it was not delivered - the records are then unreadable,
        with that reason)."""
        if self.profile.format != "redcap":
            return None
        from .ingest.redcap import dictionary_name_for

        name = dictionary_name_for(self.profile, d.file_name)
        found = [x for x in self.manifest if x.status == "accepted" and x.file_name == name]
        return found[-1].archive_path(self.paths) if found else None

    def extract(self, d: Delivery) -> list[SpooledExtract] | None:
        """The delivery's tables, extracted once (None when it cannot be read)."""
        if d.seq in self.extracts or d.seq in self.unreadable:
            return self.extracts.get(d.seq)
        spool = self.spool / f"{d.seq:06d}"
        try:
            self.extracts[d.seq] = spool_extract(
                d.archive_path(self.paths), self.profile, spool, key=self.key, delivery_id=d.sha256,
                file_name=d.file_name, crf=self.crf, dictionary=self.dictionary_for(d),
            )
        except UnreadableFileError as exc:
            self.unreadable[d.seq] = exc.problem
            shutil.rmtree(spool, ignore_errors=True)
        return self.extracts.get(d.seq)


def load_center(
    con: duckdb.DuckDBPyConnection,
    paths: DataPaths,
    profile: CenterProfile,
    crf: Crf,
    key: bytes,
    settings: dict,
) -> LoadReport:
    """Rebuild one center's staging tables from its archive (see module docstring)."""
    center = profile.id
    wh.ensure_warehouse(con, crf)
    hold_share = float(settings.get("ingestion", {}).get("hold_below_share", 0.5))
    # valid rows go to a private spool directory beside the warehouse (removed at the end;
    # one left by a killed run is removed here - runs of the warehouse go one at a time)
    for stale in paths.root.glob(f".load-{center}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    spool_root = Path(tempfile.mkdtemp(prefix=f".load-{center}-", dir=paths.root))
    ctx = LoadContext(con, paths, profile, crf, key, read_manifest(paths, center), reads.known_deliveries(con, center),
                      spool_root)
    try:
        plan = _plan(ctx, read_confirmations(paths, center), hold_share)
        staged = _stage(ctx, plan)
        report = _report(ctx, plan, staged)
        _write_feedback(ctx, plan, staged, report)
        return report
    finally:
        shutil.rmtree(spool_root, ignore_errors=True)


@dataclass
class _Plan:
    """Which delivery does what (every accepted file, in the order received)."""

    applied: dict[tuple[str, str], list[tuple[Delivery, list]]] = field(default_factory=dict)  # (round, table) -> in order
    latest: dict[tuple[str, str], Delivery] = field(default_factory=dict)  # the table's current delivery
    status: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)  # (seq, table) -> (status, message)
    adj: list = field(default_factory=list)
    withdrawals: list[pd.DataFrame] = field(default_factory=list)
    withdrawal_files: dict[int, pd.DataFrame] = field(default_factory=dict)
    dates: dict[int, str] = field(default_factory=dict)  # seq -> ISO date of the file name


def _plan(ctx: LoadContext, confirmed: set[str], hold_share: float) -> _Plan:
    """What each accepted file does, in the order received (``confirmed``: the held files
    the coordinator confirmed; ``hold_share``: study.yaml ``ingestion.hold_below_share``)."""
    plan = _Plan()
    cur_rows: dict[tuple[str, str], int] = {}
    profile, paths, unreadable = ctx.profile, ctx.paths, ctx.unreadable
    for d in ctx.manifest:
        if d.status != "accepted":
            continue
        try:
            name = parse_delivery_name(profile, d.file_name, crf=ctx.crf)
        except ValueError as exc:
            unreadable[d.seq] = str(exc)
            continue
        plan.dates[d.seq] = name.date
        if name.round == DICTIONARY_ROUND:  # read with its records export (LoadContext.dictionary_for)
            continue
        if name.round == WITHDRAWAL_ROUND:
            try:
                w = read_withdrawals(d.archive_path(paths), profile, key=ctx.key, file_name=d.file_name)
            except UnreadableFileError as exc:
                unreadable[d.seq] = exc.problem
                continue
            w = w.assign(file_name=d.file_name, sha256=d.sha256, seq=d.seq, received_at=d.received_at)
            plan.withdrawal_files[d.seq] = w
            plan.withdrawals.append(w)
            continue
        tables = ctx.extract(d)
        if tables is None:
            continue
        groups: dict[tuple[str, str], list] = {}
        for te in tables:  # a workbook's continuation sheets join their first sheet
            groups.setdefault((te.round, te.table), []).append(te)
        for k, tes in groups.items():
            if k[0] == "ADJ":  # adjudications accumulate (a later decision overrides an earlier one)
                plan.adj += tes
                plan.status[(d.seq, k[1])] = ("current", "")
                continue
            rows_in = sum(te.rows_in for te in tes)
            valid = sum(te.rows_valid for te in tes)
            cur = plan.latest.get(k)
            if cur is not None and name.date and plan.dates.get(cur.seq, "") > name.date:
                # issue 18: a delivery dated older than the current one never replaces it
                plan.status[(d.seq, k[1])] = (
                    "older_than_current",
                    f"dated {name.date}, older than the current delivery {cur.file_name} ({plan.dates[cur.seq]}): not applied"
                    f" / 文件日期 {name.date} 早于当前交付 {cur.file_name}（{plan.dates[cur.seq]}），未载入",
                )
                continue
            if cur is not None and (rows_in == 0 or rows_in < hold_share * cur_rows[k]) and d.sha256 not in confirmed:
                # issue 18: a header-only or much smaller file waits for the coordinator's confirmation
                plan.status[(d.seq, k[1])] = (
                    "held",
                    f"{rows_in} rows where the current delivery {cur.file_name} has {cur_rows[k]}: held until confirmed"
                    f" (ibd-pipeline confirm {d.center} {d.file_name}) / 本文件 {rows_in} 行，当前交付 {cur.file_name} 有"
                    f" {cur_rows[k]} 行：暂不载入，待协调员确认",
                )
                continue
            plan.applied.setdefault(k, []).append((d, tes))
            if rows_in > 0 and valid == 0:
                # every row failed: each record keeps its accepted version, the file replaces nothing
                plan.status[(d.seq, k[1])] = ("all_rows_rejected", "")
                continue
            plan.latest[k] = d
            cur_rows[k] = rows_in
    return plan


@dataclass
class _Staged:
    """What staging a center's tables found, beside the rows written."""

    withdrawn: pd.DataFrame  # the withdrawn patients (first withdrawal of each)
    quarantine_frames: list[pd.DataFrame] = field(default_factory=list)
    kept_frames: list[pd.DataFrame] = field(default_factory=list)
    absent_frames: list[pd.DataFrame] = field(default_factory=list)
    affected_frames: list[pd.DataFrame] = field(default_factory=list)  # rows removed by a withdrawal, or failing cross-table because of a patients row
    quarantine: pd.DataFrame | None = None
    kept: pd.DataFrame | None = None  # records whose new row failed and which kept their accepted version
    absent: pd.DataFrame | None = None  # records not in their table's latest delivery (kept)
    affected: pd.DataFrame | None = None
    deliveries: pd.DataFrame | None = None

    @property
    def wd_ids(self) -> set:
        return set(self.withdrawn["patient_id"])


def _stage(ctx: LoadContext, plan: _Plan) -> _Staged:
    """Rewrite the center's staging rows, quarantine, delivery records, withdrawals and
    notes in one transaction."""
    staged = _Staged(
        pd.concat(plan.withdrawals, ignore_index=True).drop_duplicates("patient_id", keep="first")
        if plan.withdrawals else pd.DataFrame(columns=["patient_id", "file_name", "seq"])
    )
    with wh.transaction(ctx.con):
        round_patients: pd.DataFrame | None = None
        for table in ctx.crf.tables:
            stg.clear_staging(ctx.con, table, ctx.center)
            if table == "adjudications":
                _stage_adjudications(ctx, plan, staged)
            else:
                round_patients = _stage_table(ctx, plan, staged, table, round_patients)
        _conclude(ctx, plan, staged)
        stg.replace_center_records(ctx.con, ctx.center, staged.quarantine, staged.deliveries,
                                   _withdrawal_audit(ctx.center, staged.withdrawn, staged.affected),
                                   _notes(ctx.center, plan, ctx.seq_of, staged.kept, staged.absent, staged.affected))
    return staged


def _stage_adjudications(ctx: LoadContext, plan: _Plan, staged: _Staged) -> None:
    """Round ADJ accumulates: a later decision on the same discrepancy overrides an earlier one."""
    frames = [f for te in plan.adj for f in te.frames()]
    adj = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    staged.quarantine_frames += [te.quarantine for te in plan.adj]
    if len(adj):
        adj = adj.drop_duplicates(["patient_id", "table_name", "record_key", "field"], keep="last")
        adj = adj[~adj["patient_id"].isin(staged.wd_ids)]
        stg.insert_staging(ctx.con, "adjudications", adj.assign(center=ctx.center), ctx.crf)


def _collect_versions(ctx: LoadContext, plan: _Plan, staged: _Staged, table: str, state: stg.RecordState) -> list[pd.DataFrame]:
    """Every applied delivery's valid rows of ``table`` into the record state, in the
    order received; returns the keys of its rows that failed (with their rules) and
    collects the quarantine of the table's current deliveries."""
    latest_seq = {k: d.seq for k, d in plan.latest.items()}
    rk_parts = []
    for (rnd, t), items in plan.applied.items():
        if t != table:
            continue
        for d, tes in items:
            for te in tes:
                for f in te.frames():
                    state.add(f, ctx.center, d.seq)
                if te.rejected_keys is not None and len(te.rejected_keys):
                    rules = te.quarantine.groupby("row_number")["rule"].agg(lambda s: ", ".join(dict.fromkeys(s)))
                    rk_parts.append(te.rejected_keys.assign(
                        round=rnd, _seq=d.seq, file_name=d.file_name, sheet=te.sheet,
                        rules=te.rejected_keys["source_row"].map(rules),
                    ))
            if latest_seq.get((rnd, t)) == d.seq:
                staged.quarantine_frames += [te.quarantine for te in tes]
    return rk_parts


def _stage_table(ctx: LoadContext, plan: _Plan, staged: _Staged, table: str,
                 round_patients: pd.DataFrame | None) -> pd.DataFrame | None:
    """One data table: the record state (newest accepted version of every key), what
    kept an earlier version, what is absent from the latest delivery, what a withdrawal
    removes; then the rows to staging (the patients table first: the other tables'
    cross-table rules need it). Returns the staged patients (or ``round_patients``)."""
    state = stg.RecordState(ctx.con, table, ctx.crf)
    rk_parts = _collect_versions(ctx, plan, staged, table, state)
    state.settle()
    if rk_parts:
        kept = state.kept(pd.concat(rk_parts, ignore_index=True))
        if len(kept):
            staged.kept_frames.append(kept.assign(table_name=table))
    for (rnd, t), d in plan.latest.items():
        if t != table:
            continue
        ab = state.absent(rnd, d.seq)
        if len(ab):
            staged.absent_frames.append(ab.assign(table_name=table, _seq=d.seq))
    if staged.wd_ids:
        gone = state.withdraw(staged.withdrawn)
        if len(gone):
            staged.affected_frames.append(gone.assign(table_name=table, rule="withdrawn"))
    if table == "patients":
        round_patients = state.rows()
        stg.insert_staging(ctx.con, "patients", round_patients, ctx.crf)
    else:
        _stage_checked(ctx, staged, table, state, round_patients)
    state.close()
    return round_patients


CROSS_TABLE_CHUNK = 200_000  # record-state rows checked at a time


def _stage_checked(ctx: LoadContext, staged: _Staged, table: str, state: stg.RecordState,
                   round_patients: pd.DataFrame | None) -> None:
    """Cross-table rules (patients known, events after birth, scores matching the
    diagnosis) on the record state, one chunk at a time; the rows that pass to staging."""
    n = state.count()
    for lo in range(1, n + 1, CROSS_TABLE_CHUNK):
        chunk = state.rows(lo, lo + CROSS_TABLE_CHUNK)
        tabs = {table: chunk} if round_patients is None or not len(round_patients) else {"patients": round_patients, table: chunk}
        checked, q = cross_table_checks(tabs, crf=ctx.crf)
        if q is not None and len(q):
            staged.quarantine_frames.append(q.assign(_cross_table=True))
        stg.insert_staging(ctx.con, table, checked[table], ctx.crf)


def _conclude(ctx: LoadContext, plan: _Plan, staged: _Staged) -> None:
    """The center's quarantine (every row naming its delivery, withdrawn patients left
    out), the records kept and absent, the rows affected, and the delivery records."""
    wd_ids = staged.wd_ids
    nonempty = [q for q in staged.quarantine_frames if q is not None and len(q)]
    quarantine = (
        pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=[c for c, _ in wh.QUARANTINE_COLUMNS])
    )
    if len(quarantine):
        # every quarantine row names its delivery (file name -> SHA-256 of the file)
        sha_of = {d.file_name: d.sha256 for d in ctx.manifest if d.status == "accepted"}
        ids = quarantine["delivery_id"] if "delivery_id" in quarantine else pd.Series(None, index=quarantine.index)
        quarantine["delivery_id"] = ids.where(ids.notna(), quarantine["file_name"].map(sha_of))
        if wd_ids:  # a withdrawn patient leaves the quarantine too
            quarantine = quarantine[~quarantine["patient_id"].isin(wd_ids)].reset_index(drop=True)
    kept = pd.concat(staged.kept_frames, ignore_index=True) if staged.kept_frames else pd.DataFrame()
    absent = pd.concat(staged.absent_frames, ignore_index=True) if staged.absent_frames else pd.DataFrame()
    if len(absent) and len(kept):
        # a record whose new row failed is "kept", not "absent"
        k2 = set(zip(kept["table_name"], kept["_seq"], kept["kept_file"], kept["kept_row"]))
        absent = absent[[(t, s, f, r) not in k2 for t, s, f, r in
                         zip(absent["table_name"], absent["_seq"], absent["source_file"], absent["source_row"])]]
    if len(absent) and wd_ids:
        absent = absent[~absent["patient_id"].isin(wd_ids)]
    if len(quarantine) and "_cross_table" in quarantine:
        # rows of other tables failing because a patients row of a delivery failed or was not delivered
        cross = quarantine[quarantine["_cross_table"].eq(True) & quarantine["rule"].eq("patient_known")]
        for d, tes in (plan.applied.get(("A", "patients"), []) + plan.applied.get(("B", "patients"), [])):
            bad = set(p for te in tes if len(te.quarantine) for p in te.quarantine["patient_id"].dropna())
            hit = cross[cross["patient_id"].isin(bad)]
            if len(hit):
                staged.affected_frames.append(pd.DataFrame({
                    "_seq": d.seq, "source_file": hit["file_name"].to_numpy(), "source_row": hit["row_number"].to_numpy(),
                    "patient_id": hit["patient_id"].to_numpy(), "table_name": hit["table_name"].to_numpy(), "rule": "patient_known",
                }))
    staged.affected = pd.concat(staged.affected_frames, ignore_index=True) if staged.affected_frames else pd.DataFrame()
    staged.quarantine, staged.kept, staged.absent = quarantine, kept, absent
    staged.deliveries = _delivery_records(ctx, plan, quarantine, kept, absent)


def _report(ctx: LoadContext, plan: _Plan, staged: _Staged) -> LoadReport:
    """The load's counts, from the state just committed."""
    report = LoadReport(ctx.center)
    seq_of = ctx.seq_of
    for t in ctx.crf.tables:
        report.staged_rows[t] = reads.count_rows(ctx.con, f"staging.{t}", ctx.center)
    if len(staged.quarantine):
        report.quarantined_rows = staged.quarantine.groupby("table_name")["row_number"].nunique().astype(int).to_dict()
    for (rnd, t), d in plan.latest.items():
        for dd, tes in plan.applied[(rnd, t)]:
            if dd.seq == d.seq:
                report.rows_in[t] = report.rows_in.get(t, 0) + sum(te.rows_in for te in tes)
    report.kept, report.absent, report.withdrawn = len(staged.kept), len(staged.absent), len(staged.wd_ids)
    for (seq, _t), (st, msg) in sorted(plan.status.items()):
        if st == "held":
            report.held.append(f"{seq_of[seq].file_name}: {msg}")
        elif st == "older_than_current":
            report.older.append(f"{seq_of[seq].file_name}: {msg}")
    return report


def _write_feedback(ctx: LoadContext, plan: _Plan, staged: _Staged, report: LoadReport) -> None:
    """Coordinator feedback: every delivery's report is rewritten from the state just
    committed, so an earlier file's report never contradicts the warehouse; then the
    center's status page and rejected-rows workbook."""
    center, profile, seq_of, quarantine = ctx.center, ctx.profile, ctx.seq_of, staged.quarantine
    by_seq = lambda df: {s: g for s, g in df.groupby("_seq")} if len(df) else {}  # noqa: E731
    kept_by, absent_by, affected_by = by_seq(staged.kept), by_seq(staged.absent), by_seq(staged.affected)
    states = staged.deliveries.groupby("seq")[["table_name", "status", "message"]].apply(
        lambda g: list(g.itertuples(index=False))).to_dict()
    for d in ctx.manifest:
        if d.status != "accepted":
            continue
        if d.sha256 not in ctx.known:
            report.new_deliveries.append(d.file_name)
        sections = _report_sections(profile, d, plan, seq_of, kept_by.get(d.seq), absent_by.get(d.seq), affected_by.get(d.seq))
        state = [_state_line(t, s, m) for t, s, m in states.get(d.seq, [])]
        if d.seq in ctx.unreadable:
            if d.sha256 not in ctx.known:
                report.errors.append(f"{d.file_name}: {ctx.unreadable[d.seq]}")
            report.reports.append(write_delivery_report(
                ctx.paths.outbox(center), center, d.file_name, None, error=ctx.unreadable[d.seq], profile=profile))
        elif d.seq in ctx.extracts or d.seq in plan.withdrawal_files:
            extra = (
                quarantine[(quarantine["delivery_id"] == d.sha256) & quarantine["_cross_table"].eq(True)]
                if len(quarantine) and "_cross_table" in quarantine
                else None
            )
            report.reports.append(write_delivery_report(
                ctx.paths.outbox(center), center, d.file_name, ctx.extracts.get(d.seq, []), profile=profile,
                extra_quarantine=extra, state=state, sections=sections,
            ))
    write_status_page(ctx.con, ctx.paths, profile, ctx.crf)
    write_center_rejected_rows(ctx.con, ctx.paths.outbox(center), profile, ctx.crf)
    set_outbox_modes(ctx.paths.outbox(center))


def _state_line(table, status, message) -> str:
    zh, en = _STATE_TEXT.get(status, (status, status))
    return f"{table or ''}: {zh} / {en}" + (f" - {message}" if message else "")


def _report_sections(profile, d, plan, seq_of, kept, absent, affected) -> list[tuple[str, list[str], list[list]]]:
    """Extra report sections (title, header, rows) for one delivery."""
    out = []
    date_of = lambda s: plan.dates.get(int(s), "")  # noqa: E731
    if kept is not None and len(kept):
        rows = []
        for r in kept.itertuples(index=False):
            now = "" if pd.isna(r.now_file) or r.now_file == r.kept_file else f"; 现为 now {r.now_file}"
            rows.append([r.table_name, "" if pd.isna(r.sheet) else r.sheet, r.row_number, r.patient_id,
                         f"保留 {date_of(r.kept_seq)} 的版本（{r.kept_file} 第 {r.kept_row} 行）：新行未通过 {r.rules} / "
                         f"kept the version of {date_of(r.kept_seq)} ({r.kept_file}, row {r.kept_row}): the new row failed {r.rules}{now}"])
        out.append(("保留已接受版本的记录 Records that kept their accepted version",
                    ["数据表 Table", "工作表 Sheet", "行号 Row", "患者 Patient id", "说明 What happened"], rows))
    if absent is not None and len(absent):
        rows = [[r.table_name, r.source_file, r.source_row, r.patient_id, "不在最新交付中，已保留 / not in the latest delivery, kept"]
                for r in absent.itertuples(index=False)]
        out.append(("不在最新交付中的记录 Records not in the latest delivery (kept; to remove a patient use the withdrawal list)",
                    ["数据表 Table", "来源文件 Source file", "行号 Row", "患者 Patient id", "说明 What happened"], rows))
    if affected is not None and len(affected):
        rows = [[r.table_name, r.source_file, r.source_row, r.patient_id,
                 "因撤回而移除 / removed: the patient was withdrawn" if r.rule == "withdrawn"
                 else "患者行未被接受，此行被拒绝 / rejected: its patient's row was not accepted (patient_known)"]
                for r in affected.itertuples(index=False)]
        out.append(("受影响的其他数据表的行 Affected rows of other tables",
                    ["数据表 Table", "文件 File", "行号 Row", "患者 Patient id", "说明 What happened"], rows))
    w = plan.withdrawal_files.get(d.seq)
    if w is not None:
        rows = [[r.row_number, r.patient_id, r.withdrawn_on or "", r.reason] for r in w.itertuples(index=False)]
        out.append(("撤回的患者 Withdrawn patients", ["行号 Row", "患者 Patient id", "撤回日期 Withdrawn on", "原因 Reason"], rows))
    return out


def _notes(center, plan, seq_of, kept, absent, affected) -> pd.DataFrame:
    """analytics.delivery_notes: the rows of every delivery's report sections."""
    rows = []
    for d in seq_of.values():
        for kind in ("kept", "absent", "affected"):
            sec = {"kept": kept, "absent": absent, "affected": affected}[kind]
            sub = sec[sec["_seq"] == d.seq] if len(sec) else sec
            if not len(sub):
                continue
            args = {k: (sub if k == kind else None) for k in ("kept", "absent", "affected")}
            (_title, _hdr, lines), *_ = _report_sections(None, d, plan, seq_of, args["kept"], args["absent"], args["affected"])
            for r, line in zip(sub.itertuples(index=False), lines):
                src = r.file_name if kind == "kept" else r.source_file
                row = r.row_number if kind == "kept" else r.source_row
                rows.append({"center": center, "file_name": d.file_name, "kind": r.rule if kind == "affected" else kind,
                             "table_name": r.table_name, "source_file": src, "row_number": row,
                             "patient_id": r.patient_id, "note": line[-1]})
    return pd.DataFrame(rows, columns=[c for c, _ in wh.NOTE_COLUMNS])


def _withdrawal_audit(center: str, withdrawn: pd.DataFrame, affected: pd.DataFrame) -> pd.DataFrame:
    """The rows of the audit table ``analytics.withdrawals``: who (which file, recorded
    by), when, why, and how many rows each withdrawal removed."""
    if not len(withdrawn):
        return withdrawn
    removed = (
        affected[affected["rule"] == "withdrawn"].groupby("patient_id").size() if len(affected) else pd.Series(dtype=int)
    )
    return withdrawn.assign(center=center, rows_removed=withdrawn["patient_id"].map(removed).fillna(0).astype(int))


def _delivery_records(ctx: LoadContext, plan: _Plan, quarantine, kept, absent) -> pd.DataFrame:
    """Delivery records: every file of the manifest, with its per-table outcome."""
    rows = []
    q_counts = (
        quarantine.groupby(["delivery_id", "table_name"])["row_number"].nunique().to_dict() if len(quarantine) else {}
    )
    still = set(zip(absent["_ord"], absent["table_name"])) if len(absent) else set()
    still |= set(zip(kept["kept_seq"], kept["table_name"])) if len(kept) else set()
    latest = {(d.seq, t) for (_r, t), d in plan.latest.items()}
    for d in ctx.manifest:
        if d.status != "accepted":
            rows.append(_delivery_row(d, None, None, None, None, None, None, d.status, d.message))
            continue
        if d.seq in ctx.unreadable:
            rows.append(_delivery_row(d, None, None, None, None, 0, 0, "unreadable", ctx.unreadable[d.seq]))
            continue
        if d.seq in plan.withdrawal_files:
            w = plan.withdrawal_files[d.seq]
            rows.append(_delivery_row(d, WITHDRAWAL_ROUND, None, None, len(w), len(w), 0, "withdrawal", ""))
            continue
        for te in ctx.extracts.get(d.seq, []):
            st, msg = plan.status.get((d.seq, te.table), (None, ""))
            if st is None:
                st = "current" if (d.seq, te.table) in latest else ("partly_current" if (d.seq, te.table) in still else "superseded")
            nq = int(q_counts.get((d.sha256, te.table), 0)) if st in ("current", "all_rows_rejected") else te.rows_quarantined
            msg = "; ".join(x for x in [msg, *te.warnings] if x)
            rows.append(_delivery_row(d, te.round, te.table, te.sheet, te.rows_in, te.rows_in - nq, nq, st, msg))
    return pd.DataFrame(rows, columns=[c for c, _ in wh.DELIVERY_COLUMNS])


_MRN_CACHE: dict[tuple, dict[str, str]] = {}  # (center, key digest, current patients files) -> map


def mrn_map(con: duckdb.DuckDBPyConnection, paths: DataPaths, profile: CenterProfile, key: bytes, crf: Crf) -> dict[str, str]:
    """patient_id -> the center's own mrn, for the lists that go back to that center's
    outbox (reviewer list, worklist). Read from the archived current round-A and B
    patients deliveries (``ingest.read_fields``), never from the warehouse (which holds
    no mrn). The map of the same current files is computed once per process (the sample
    and the worklist of a center run both need it)."""
    rows = reads.current_files(con, profile.id, "patients")
    cache_key = (profile.id, hashlib.sha256(key).hexdigest(), tuple(rows))
    if cache_key in _MRN_CACHE:
        return dict(_MRN_CACHE[cache_key])
    by_seq = {d.seq: d for d in read_manifest(paths, profile.id) if d.status == "accepted"}
    out: dict[str, str] = {}
    for seq, _sha, file_name in rows:
        d = by_seq.get(seq)
        if d is None:
            continue
        for chunk in read_fields(d.archive_path(paths), profile, "patients", ["mrn"], crf=crf, file_name=file_name):
            if "mrn" not in chunk:
                continue
            for m in chunk["mrn"].astype(str).str.strip():
                if m and m not in profile.missing_tokens:
                    out[patient_id(key, profile.id, m)] = m
    if len(_MRN_CACHE) > 16:
        _MRN_CACHE.clear()
    _MRN_CACHE[cache_key] = dict(out)
    return out
