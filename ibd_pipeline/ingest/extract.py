"""Extraction of one delivered file: read through the center's profile, normalise,
pseudonymize, validate (STUDY.md Workflow steps 1-2). Pure: no Dagster, no DuckDB."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ibd_pipeline.config import CenterProfile, Crf

from ibd_pipeline.privacy import safe_label

from .errors import UnreadableFileError
from .frames import empty_canonical
from .names import parse_delivery_name
from .normalize import Normaliser
from .readers import DEFAULT_CHUNK_ROWS, RawPart, header_key, read_csv_part, read_table_parts, read_xlsx_parts
from .redcap import read_redcap_parts
from .rules import empty_quarantine
from .schemas import LAB_EXTRA_COLUMNS, column_name, crf_schema, key_columns
from .validate import ChunkContext, KeyTracker, validate_chunk


@dataclass
class TableExtract:
    """What one table (one CSV, or one sheet of a workbook) of a delivery yielded."""

    table: str  # CRF table name
    round: str
    file_name: str  # the file as delivered (not the archive name)
    sheet: str | None  # workbook sheet, None for CSV
    rows_in: int  # data rows read (blank rows not counted)
    valid: pd.DataFrame  # canonical typed frame + center, round, delivery_id, source_file, source_row
    quarantine: pd.DataFrame  # rules.QUARANTINE_COLUMNS, one row per (row, failed rule)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        """Rows with at least one failure."""
        return int(self.quarantine["row_number"].nunique()) if len(self.quarantine) else 0

    @property
    def rows_valid(self) -> int:
        return len(self.valid)


@dataclass
class ExtractChunk:
    """One chunk of a table (``iter_extract``); ``last`` marks a table's final chunk,
    which carries its warnings."""

    table: str
    round: str
    file_name: str
    sheet: str | None
    rows_in: int
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    warnings: list[str]
    last: bool
    # key columns + source_row of the rows that failed (record-level delivery semantics:
    # a failed row whose record was accepted before keeps that version; NaN where a key
    # value itself could not be read)
    rejected_keys: pd.DataFrame | None = None


def source_file_of(file_name: str, sheet: str | None) -> str:
    """``source_file`` of staged rows: the file name, plus ``:<sheet>`` for workbooks."""
    return file_name if sheet is None else f"{file_name}:{sheet}"


def _code_lists(spec, profile: CenterProfile, limit: int = 15) -> dict[str, str]:
    out = {}
    for f, s in spec.fields.items():
        if s.codes is None:
            continue
        cm = profile.code_map(f, "code") if s.type == "code" else {}
        vals = [str(c) for c in s.codes] + [k for k in cm if k not in s.codes]
        txt = ", ".join(vals[:limit]) + (f", ... ({len(vals)} in all)" if len(vals) > limit else "")
        out[f] = txt
    return out


def _columns_found(part: RawPart, profile: CenterProfile, crf: Crf) -> str:
    """What the first line held, without quoting it: a file whose header row is missing
    has a data row there (record number, name, phone). Only headers of this center's
    profile are named; the others are counted (STUDY.md "Privacy")."""
    known = {header_key(profile.header_for(t, f)): profile.header_for(t, f) for t in crf.tables for f in crf.table(t).fields}
    cells = [h for h in part.header if h]
    named = [known[header_key(h)] for h in cells if header_key(h) in known]
    other = len(cells) - len(named)
    first = "the header line" if part.sheet is None else "the sheet's first filled row"
    text = f"Columns found in {first}: " + (", ".join(repr(h) for h in named) if named else "none of this center's headers")
    if other:
        text += f"; {other} other cell(s), not shown here (they may be data: is the header line missing?)"
    return text + "."


def _map_header(part: RawPart, profile: CenterProfile, crf: Crf, file_name: str) -> tuple[dict[str, int], list[str]]:
    """canonical field -> column position; warnings. Raises for missing required columns."""
    spec = crf.table(part.table)
    by_key: dict[str, str] = {}
    for f in spec.fields:
        by_key.setdefault(header_key(profile.header_for(part.table, f)), f)
    where = f"sheet {part.sheet!r}" if part.sheet else "the file"
    pos: dict[str, int] = {}
    warnings: list[str] = []
    unknown = []
    for j, h in enumerate(part.header):
        if h == "":
            continue
        f = by_key.get(header_key(h))
        if f is None:
            unknown.append(f"{safe_label(h)} (column {j + 1})")
            continue
        if f in pos:
            raise UnreadableFileError(
                file_name,
                f"column {profile.header_for(part.table, f)!r} appears twice in {where}; keep one and deliver the file again.",
            )
        pos[f] = j
    if unknown:
        warnings.append(f"{where}: unknown columns ignored: " + ", ".join(unknown))
    missing_req = [f for f, s in spec.fields.items() if s.required and f not in pos]
    if missing_req:
        names = ", ".join(f"{f} ({profile.header_for(part.table, f)})" if profile.header_for(part.table, f) != f else f for f in missing_req)
        hint = ""
        if not pos:
            enc = f" the file's encoding is {profile.encoding}," if profile.encoding else ""
            hint = (
                f" None of the expected columns were found: check that{enc} the file is comma-separated"
                f" and that it holds the {part.table} table."
            )
        raise UnreadableFileError(
            file_name,
            f"required columns missing in {where} ({part.table}): {names}. " + _columns_found(part, profile, crf) + hint,
        )
    # a CRF field the center's export does not have at all (profile ``not_collected``, e.g. the
    # fields another study added) is no omission of this delivery: read as empty, unreported
    not_collected = set((profile.raw.get("not_collected") or {}).get(part.table) or [])
    missing_opt = [f for f, s in spec.fields.items()
                   if not s.required and s.phi != "drop" and f not in pos and f not in not_collected]
    if missing_opt:
        warnings.append(
            f"{where}: optional columns not delivered, read as empty: "
            + ", ".join(
                f"{f} ({profile.header_for(part.table, f)})" if profile.header_for(part.table, f) != f else f
                for f in missing_opt
            )
        )
    return pos, warnings


def iter_extract(
    path: Path,
    profile: CenterProfile,
    *,
    key: bytes,
    delivery_id: str,
    file_name: str | None = None,
    crf: Crf,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    dictionary: Path | None = None,
) -> Iterator[ExtractChunk]:
    """Extract a delivered file chunk by chunk (bounded memory: one chunk of text at a
    time, plus 16 bytes per distinct record key for the uniqueness check).

    A REDCap center's records export (profile ``format: redcap``, ingest/redcap.py) is read
    with its data dictionary: ``dictionary`` (e.g. the archived copy), else the file the
    profile's ``redcap.dictionary_files`` names beside ``path`` (same date).

    Raises UnreadableFileError for a file that cannot be read; for a CSV this is known
    before the first chunk except for a malformed row (too many fields), which is found
    when its chunk is read - callers that stage chunks must stage a file atomically.
    """
    path = Path(path)
    file_name = file_name or path.name
    try:
        name = parse_delivery_name(profile, file_name, crf=crf)
    except ValueError as e:
        raise UnreadableFileError(file_name, str(e)) from None
    if not path.is_file():
        raise UnreadableFileError(file_name, "the file does not exist or is not a regular file.")
    file_warnings: list[str] = []
    if profile.format == "csv":
        parts: Iterator[RawPart] = iter([read_csv_part(path, profile, name.table, file_name, chunk_rows)])
    elif profile.format == "xlsx":
        allowed = {"adjudications"} if name.round == "ADJ" else set(crf.data_tables)
        parts = read_xlsx_parts(path, profile, file_name, name.round, chunk_rows, allowed, file_warnings)
    elif profile.format == "redcap":
        parts = read_redcap_parts(path, profile, file_name, crf, chunk_rows, file_warnings, dictionary)
    else:
        raise UnreadableFileError(file_name, f"profile format {profile.format!r} is not supported (csv, xlsx, redcap).")
    trackers: dict[str, KeyTracker] = {}
    emitted = 0  # file_warnings already handed out
    held: ExtractChunk | None = None  # a table's last chunk, held until later notes are known
    for part in parts:
        spec = crf.table(part.table)
        new_notes, emitted = file_warnings[emitted:], len(file_warnings)
        if held is not None:
            held.warnings += new_notes
            yield held
            held, new_notes = None, []
        pos, warnings = _map_header(part, profile, crf, file_name)
        warnings = new_notes + warnings
        tracker = trackers.setdefault(part.table, KeyTracker())
        norm = Normaliser(part.table, spec, profile, crf, key)
        schema = crf_schema(part.table, crf, unique=False, unit_check=False)
        keys = key_columns(part.table, crf)
        ctx = ChunkContext(
            center=profile.id,
            round=name.round,
            table=part.table,
            file_name=file_name,
            sheet=part.sheet,
            delivery_id=delivery_id,
            spec=spec,
            headers=profile.headers(part.table, list(spec.fields)),
            code_lists=_code_lists(spec, profile),
            delivery_date=name.date,
            plausibility=dict(crf.raw.get("plausibility") or {}),
            no_identifier_fields=tuple(crf.raw.get("no_identifier_fields") or ()),
        )
        src = source_file_of(file_name, part.sheet)
        kept = [f for f in spec.kept_fields if f in pos]
        pending: ExtractChunk | None = None
        for chunk, rows, *given in part.chunks:
            # a reader's own failures (REDCap: a value that is not a choice of its field)
            pre = given[0] if given and given[0] is not None and len(given[0]) else None
            values = chunk.to_numpy(dtype=object)
            del chunk
            nonblank = (values != "").any(axis=1) if values.size else np.zeros(len(rows), dtype=bool)
            if not nonblank.all():
                values, rows = values[nonblank], rows[nonblank]
                if pre is not None:
                    new_pos = np.cumsum(nonblank) - 1
                    pre = pre[nonblank[pre["pos"].to_numpy()]].assign(pos=lambda d: new_pos[d["pos"].to_numpy()])
            n = len(rows)
            raw = {f: values[:, pos[f]] for f in kept}  # phi: drop and unknown columns are never taken
            del values
            frame, fails, texts = norm.normalise(raw, n)
            del raw
            if pre is not None:  # first: its reason is the one kept for the same field and rule
                fails = pd.concat([pre, fails], ignore_index=True) if len(fails) else pre.reset_index(drop=True)
            frame["center"] = profile.id
            frame["round"] = name.round
            frame["delivery_id"] = delivery_id
            frame["source_file"] = src
            frame["source_row"] = rows
            valid, q = validate_chunk(frame, fails, texts, rows, schema, tracker, keys, ctx)
            rejected = None
            if len(q):
                bad = np.flatnonzero(np.isin(np.asarray(rows), q["row_number"].unique()))
                rejected = frame.iloc[bad][[*keys, "source_row"]].reset_index(drop=True)
            del frame
            if pending is not None:
                yield pending
            pending = ExtractChunk(
                part.table, name.round, file_name, part.sheet, n, valid.reset_index(drop=True), q, [], False, rejected
            )
        if pending is None:
            pending = ExtractChunk(
                part.table, name.round, file_name, part.sheet, 0, empty_canonical(part.table, crf), empty_quarantine(), [], False
            )
        pending.last = True
        pending.warnings = warnings + part.warnings
        held = pending
    if held is not None:
        held.warnings += file_warnings[emitted:]
        yield held


def extract_file(
    path: Path,
    profile: CenterProfile,
    *,
    key: bytes,
    delivery_id: str,
    file_name: str | None = None,
    crf: Crf,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    dictionary: Path | None = None,
) -> list[TableExtract]:
    """Extract a delivered file: one TableExtract per table (a CSV), or per sheet (a
    workbook; continuation sheets are separate extracts of the same table, their keys
    checked together). Raises UnreadableFileError when the file cannot be read at all."""
    out: list[TableExtract] = []
    acc: dict = {}
    for ch in iter_extract(
        path, profile, key=key, delivery_id=delivery_id, file_name=file_name, crf=crf, chunk_rows=chunk_rows, dictionary=dictionary
    ):
        k = (ch.table, ch.sheet)
        a = acc.setdefault(k, {"rows": 0, "valid": [], "q": []})
        a["rows"] += ch.rows_in
        a["valid"].append(ch.valid)
        if len(ch.quarantine):
            a["q"].append(ch.quarantine)
        if ch.last:
            valid = pd.concat(a["valid"], ignore_index=True) if len(a["valid"]) > 1 else a["valid"][0]
            q = pd.concat(a["q"], ignore_index=True) if a["q"] else empty_quarantine()
            out.append(TableExtract(ch.table, ch.round, ch.file_name, ch.sheet, a["rows"], valid, q, ch.warnings))
            del acc[k]
    return out


def read_fields(
    path: Path,
    profile: CenterProfile,
    table: str,
    fields: list[str],
    *,
    crf: Crf,
    file_name: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The raw text of some CRF ``fields`` of one ``table`` of a delivered file, as
    delivered (no normalisation, no validation, no pseudonymization), one chunk at a
    time: frames whose columns are those of ``fields`` the file's header maps (through
    the center's profile). The reconciliation reads the archived patients files' ``mrn``
    with it for the lists that go back to the center. Raises UnreadableFileError like
    ``iter_extract`` (unreadable file, duplicate or missing required columns)."""
    path = Path(path)
    file_name = file_name or path.name
    for part in read_table_parts(path, profile, table, file_name, chunk_rows):
        pos, _ = _map_header(part, profile, crf, file_name)
        present = [f for f in fields if f in pos]
        for chunk, _rows in part.chunks:
            out = chunk.iloc[:, [pos[f] for f in present]]
            out.columns = present
            yield out


__all__ = [
    "TableExtract",
    "ExtractChunk",
    "extract_file",
    "iter_extract",
    "read_fields",
    "source_file_of",
    "column_name",
    "LAB_EXTRA_COLUMNS",
]
