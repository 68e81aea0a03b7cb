"""The DuckDB warehouse: connections, schemas, table layouts derived from the CRF,
typed writes, transactions and content fingerprints.

One process writes the working warehouse (``data/warehouse.duckdb``) at a time; the
Dagster instance queues runs one at a time for that reason. Analysts never open it:
they read the published snapshot (``data/analytics.duckdb``, see ``store.snapshot``).
"""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from ..config import Crf

SCHEMAS = ("staging", "reconciled", "ref", "core", "analytics")

DUCK_TYPES = {"string": "VARCHAR", "code": "VARCHAR", "date": "DATE", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN"}

STAGING_META = [("center", "VARCHAR"), ("round", "VARCHAR"), ("delivery_id", "VARCHAR"), ("source_file", "VARCHAR"), ("source_row", "BIGINT")]
LAB_EXTRA = [("qualifier", "VARCHAR"), ("value_reported", "VARCHAR"), ("unit_reported", "VARCHAR")]

QUARANTINE_COLUMNS = [
    ("center", "VARCHAR"), ("round", "VARCHAR"), ("delivery_id", "VARCHAR"), ("table_name", "VARCHAR"),
    ("file_name", "VARCHAR"), ("sheet", "VARCHAR"), ("row_number", "BIGINT"), ("patient_id", "VARCHAR"), ("field", "VARCHAR"),
    ("value", "VARCHAR"), ("rule", "VARCHAR"), ("message", "VARCHAR"),
]
DELIVERY_COLUMNS = [
    ("center", "VARCHAR"), ("round", "VARCHAR"), ("table_name", "VARCHAR"), ("file_name", "VARCHAR"),
    ("sheet", "VARCHAR"), ("sha256", "VARCHAR"), ("seq", "BIGINT"), ("received_at", "VARCHAR"),
    ("rows_in", "BIGINT"), ("rows_accepted", "BIGINT"), ("rows_quarantined", "BIGINT"),
    ("status", "VARCHAR"), ("message", "VARCHAR"),
]

WITHDRAWAL_COLUMNS = [  # the audit of withdrawal lists (record-level delivery semantics)
    ("center", "VARCHAR"), ("patient_id", "VARCHAR"), ("withdrawn_on", "VARCHAR"), ("reason", "VARCHAR"),
    ("recorded_by", "VARCHAR"), ("file_name", "VARCHAR"), ("sha256", "VARCHAR"), ("row_number", "BIGINT"),
    ("received_at", "VARCHAR"), ("rows_removed", "BIGINT"),
]

NOTE_COLUMNS = [  # per delivery: records kept / not in the latest delivery / affected rows of other tables
    ("center", "VARCHAR"), ("file_name", "VARCHAR"), ("kind", "VARCHAR"), ("table_name", "VARCHAR"),
    ("source_file", "VARCHAR"), ("row_number", "BIGINT"), ("patient_id", "VARCHAR"), ("note", "VARCHAR"),
]


def canonical_columns(table: str, crf: Crf) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a CRF table in canonical form: ``mrn`` -> ``patient_id``,
    ``phi: drop`` fields removed, adjudications' ``table`` -> ``table_name``; labs gain
    the qualifier and the delivered text."""
    spec = crf.table(table)
    cols: list[tuple[str, str]] = [("patient_id", "VARCHAR")]
    for f, s in spec.fields.items():
        if s.phi == "drop" or f == "mrn":
            continue
        name = "table_name" if (table == "adjudications" and f == "table") else f
        cols.append((name, DUCK_TYPES[s.type]))
    if table == "labs":
        cols += LAB_EXTRA
    return cols


def staging_columns(table: str, crf: Crf) -> list[tuple[str, str]]:
    return STAGING_META + canonical_columns(table, crf)


def reconciled_columns(table: str, crf: Crf) -> list[tuple[str, str]]:
    return [("center", "VARCHAR")] + canonical_columns(table, crf)


def quoted(c: str) -> str:
    """A column name as an SQL identifier."""
    return '"' + c.replace('"', '""') + '"'


def ddl(qualified: str, cols: list[tuple[str, str]], temp: bool = False) -> str:
    body = ", ".join(f'"{c}" {t}' for c, t in cols)
    return f"CREATE TEMP TABLE {qualified} ({body})" if temp else f"CREATE TABLE IF NOT EXISTS {qualified} ({body})"


def ensure_table(con: duckdb.DuckDBPyConnection, qualified: str, cols: list[tuple[str, str]]) -> None:
    con.execute(ddl(qualified, cols))


def ensure_warehouse(con: duckdb.DuckDBPyConnection, crf: Crf) -> None:
    """Create the schemas and the fixed-layout tables (idempotent)."""
    for s in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
    for t in crf.tables:
        con.execute(ddl(f"staging.{t}", staging_columns(t, crf)))
        if t != "adjudications":
            con.execute(ddl(f"reconciled.{t}", reconciled_columns(t, crf)))
    con.execute(ddl("analytics.quarantine", QUARANTINE_COLUMNS))
    con.execute(ddl("analytics.deliveries", DELIVERY_COLUMNS))
    con.execute(ddl("analytics.withdrawals", WITHDRAWAL_COLUMNS))
    con.execute(ddl("analytics.delivery_notes", NOTE_COLUMNS))


# a machine setting (like IBD_EXECUTOR): DuckDB's memory on every warehouse connection,
# e.g. "2GB"; unset, DuckDB's own default (80% of the RAM). Beyond it DuckDB spills to
# disk: the record state of one center's staging at 10k patients peaked at 1.2 GiB
# unlimited and 0.9 GiB at 150MB, in the same time, with identical tables.
MEMORY_LIMIT_ENV = "IBD_DUCKDB_MEMORY_LIMIT"


def _apply_memory_limit(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if limit:
        con.execute("SET memory_limit = ?", [limit])
    return con


@contextmanager
def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a warehouse file; waits while another process holds the lock.
    ``$IBD_DUCKDB_MEMORY_LIMIT`` (when set) bounds DuckDB's memory on it."""
    deadline = time.time() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.time() > deadline:
                raise
            time.sleep(0.5)
    _apply_memory_limit(con)
    try:
        yield con
    finally:
        con.close()


# what a failed open of the warehouse raises (lock held, damaged file)
DatabaseError = duckdb.Error


def open_read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection at once (no waiting for a lock; raises DatabaseError);
    the caller closes it."""
    return _apply_memory_limit(duckdb.connect(str(path), read_only=True))


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All writes inside commit together or not at all: an exception rolls back and
    propagates, so an interrupted step leaves the state of the previous one."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def frame_for(df: pd.DataFrame, cols: list[tuple[str, str]]) -> pd.DataFrame:
    """``df`` with exactly the columns of a table layout (missing ones as NULL)."""
    out = pd.DataFrame(index=df.index)
    for c, _ in cols:
        out[c] = df[c] if c in df.columns else None
    return out


def insert_frame(con: duckdb.DuckDBPyConnection, qualified: str, df: pd.DataFrame, cols: list[tuple[str, str]]) -> int:
    """Append ``df`` to a table with a known layout, casting each column to its type."""
    if df is None or len(df) == 0:
        return 0
    src = frame_for(df, cols)
    con.register("_ins_src", src)
    try:
        select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in cols)
        con.execute(f"INSERT INTO {qualified} SELECT {select} FROM _ins_src")
    finally:
        con.unregister("_ins_src")
    return len(src)


def text_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding only missing values become text columns (DuckDB would
    otherwise guess INTEGER and reject the text a later run writes into them)."""
    empty = [c for c in df.columns if df[c].dtype == object and df[c].isna().all()]
    return df.astype({c: "string" for c in empty}) if empty else df


def replace_table(con: duckdb.DuckDBPyConnection, qualified: str, df: pd.DataFrame) -> int:
    """Replace a whole table by a DataFrame (idempotent rebuilds of derived tables)."""
    df = text_safe(df)
    con.register("_repl_src", df)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {qualified} AS SELECT * FROM _repl_src")
    finally:
        con.unregister("_repl_src")
    return len(df)


def append_by_name(con: duckdb.DuckDBPyConnection, qualified: str, df: pd.DataFrame) -> int:
    """Append ``df`` to an existing table, matching columns by name."""
    if not len(df):
        return 0
    con.register("_batch_part", text_safe(df))
    try:
        con.execute(f"INSERT INTO {qualified} BY NAME SELECT * FROM _batch_part")
    finally:
        con.unregister("_batch_part")
    return len(df)


def sort_table(con: duckdb.DuckDBPyConnection, qualified: str, column: str) -> None:
    """Rewrite a table ordered by ``column`` (rows with equal values keep their order)."""
    con.execute(f"CREATE OR REPLACE TABLE {qualified} AS SELECT * FROM {qualified} ORDER BY {quoted(column)}, rowid")


def delete_center(con: duckdb.DuckDBPyConnection, qualified: str, center: str, where: str = "", params: list | None = None) -> None:
    """Remove one center's rows of a table (``where``: a further condition)."""
    con.execute(f"DELETE FROM {qualified} WHERE center = ?" + (f" AND ({where})" if where else ""), [center, *(params or [])])


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


# ---------------------------------------------------------- inputs of derived tables
# ``meta.asset_inputs``: the fingerprint of the inputs each derived asset was last computed
# from (issue 14: a step whose inputs are unchanged is not recomputed). Working warehouse
# only; never published; gone with a rebuild (then everything is computed again).
ASSET_INPUTS = "meta.asset_inputs"


def table_fingerprint(con: duckdb.DuckDBPyConnection, qualified: str) -> str:
    """The content of a table, independent of row order: row count and the sum of the
    rows' hashes, computed in the database (no rows leave DuckDB)."""
    if not table_exists(con, qualified):
        return f"{qualified}:absent"
    n, h = con.execute(f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM {qualified} t").fetchone()
    return f"{qualified}:{n}:{h}"


def inputs_fingerprint(con: duckdb.DuckDBPyConnection, tables: list[str], extra: str = "") -> str:
    """One hash of the content of ``tables`` and ``extra`` (settings, code version)."""
    h = hashlib.sha256(extra.encode())
    for t in sorted(tables):
        h.update(table_fingerprint(con, t).encode() + b";")
    return h.hexdigest()


def last_inputs(con: duckdb.DuckDBPyConnection, asset: str) -> tuple[str, str] | None:
    """(fingerprint, computed_at) of the asset's last computation, or None."""
    if not table_exists(con, ASSET_INPUTS):
        return None
    row = con.execute(f"SELECT fingerprint, CAST(computed_at AS VARCHAR) FROM {ASSET_INPUTS} WHERE asset = ?", [asset]).fetchone()
    return (row[0], row[1]) if row else None


def record_inputs(con: duckdb.DuckDBPyConnection, asset: str, fingerprint: str) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(f"CREATE TABLE IF NOT EXISTS {ASSET_INPUTS} (asset VARCHAR PRIMARY KEY, fingerprint VARCHAR, computed_at TIMESTAMP)")
    con.execute(f"INSERT OR REPLACE INTO {ASSET_INPUTS} VALUES (?, ?, now()::TIMESTAMP)", [asset, fingerprint])
