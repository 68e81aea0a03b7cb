"""The DuckDB warehouse: schemas, table layouts derived from the CRF, and writes.

One process writes the working warehouse (``data/warehouse.duckdb``) at a time; the
Dagster instance queues runs one at a time for that reason. Analysts never open it:
they read the published snapshot (``data/analytics.duckdb``, see ``publish_snapshot``).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from .config import Crf, load_crf

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


def canonical_columns(table: str, crf: Crf | None = None) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a CRF table in canonical form: ``mrn`` -> ``patient_id``,
    ``phi: drop`` fields removed, adjudications' ``table`` -> ``table_name``; labs gain
    the qualifier and the delivered text."""
    crf = crf or load_crf()
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


def staging_columns(table: str, crf: Crf | None = None) -> list[tuple[str, str]]:
    return STAGING_META + canonical_columns(table, crf)


def reconciled_columns(table: str, crf: Crf | None = None) -> list[tuple[str, str]]:
    return [("center", "VARCHAR")] + canonical_columns(table, crf)


def _ddl(qualified: str, cols: list[tuple[str, str]]) -> str:
    body = ", ".join(f'"{c}" {t}' for c, t in cols)
    return f"CREATE TABLE IF NOT EXISTS {qualified} ({body})"


def ensure_warehouse(con: duckdb.DuckDBPyConnection, crf: Crf | None = None) -> None:
    """Create the schemas and the fixed-layout tables (idempotent)."""
    crf = crf or load_crf()
    for s in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
    for t in crf.tables:
        con.execute(_ddl(f"staging.{t}", staging_columns(t, crf)))
        if t != "adjudications":
            con.execute(_ddl(f"reconciled.{t}", reconciled_columns(t, crf)))
    con.execute(_ddl("analytics.quarantine", QUARANTINE_COLUMNS))
    con.execute(_ddl("analytics.deliveries", DELIVERY_COLUMNS))
    con.execute(_ddl("analytics.withdrawals", WITHDRAWAL_COLUMNS))
    con.execute(_ddl("analytics.delivery_notes", NOTE_COLUMNS))


@contextmanager
def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a warehouse file; waits while another process holds the lock."""
    deadline = time.time() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.time() > deadline:
                raise
            time.sleep(0.5)
    try:
        yield con
    finally:
        con.close()


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


def read_table(con: duckdb.DuckDBPyConnection, qualified: str, where: str = "", params: list | None = None) -> pd.DataFrame:
    sql = f"SELECT * FROM {qualified}" + (f" WHERE {where}" if where else "")
    return con.execute(sql, params or []).df()


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
    import hashlib

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


def publish_snapshot(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    schemas=("core", "analytics"),
    exclude: tuple[str, ...] = (),
    drop_columns: dict[str, list[str]] | None = None,
    before_publish=None,
) -> dict:
    """Copy ``schemas`` of the working warehouse into a new DuckDB file and atomically
    rename it over ``target``: analysts holding the old snapshot open keep reading it,
    new connections see the new one. Table and column comments are copied; ``exclude``
    leaves tables out and ``drop_columns`` leaves columns out (e.g. raw values).
    ``before_publish(con, "snap")`` runs on the new file (attached as ``snap``) after
    the copy and before the rename (e.g. ``snapshot.redact_snapshot``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for p in (tmp, Path(str(tmp) + ".wal")):
        if p.exists():
            p.unlink()
    con.execute(f"ATTACH '{tmp}' AS snap")
    copied = {}
    try:
        tables = con.execute(
            "SELECT schema_name, table_name, comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name IN (SELECT unnest(?::VARCHAR[]))",
            [list(schemas)],
        ).fetchall()
        for s in schemas:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS snap.{s}")
        for schema, name, comment in tables:
            q = f"{schema}.{name}"
            if q in exclude:
                continue
            dropped = (drop_columns or {}).get(q)
            select = f"* EXCLUDE ({', '.join(dropped)})" if dropped else "*"
            con.execute(f'CREATE TABLE snap.{schema}."{name}" AS SELECT {select} FROM {schema}."{name}"')
            if comment:
                con.execute(f"COMMENT ON TABLE snap.{schema}.\"{name}\" IS '{_esc(comment)}'")
            for col, ccomment in con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? AND comment IS NOT NULL",
                [schema, name],
            ).fetchall():
                if dropped and col in dropped:
                    continue
                con.execute(f"COMMENT ON COLUMN snap.{schema}.\"{name}\".\"{col}\" IS '{_esc(ccomment)}'")
            copied[q] = con.execute(f'SELECT count(*) FROM snap.{schema}."{name}"').fetchone()[0]
        if before_publish is not None:
            before_publish(con, "snap")
    finally:
        con.execute("DETACH snap")
    os.replace(tmp, target)
    return copied


def _esc(s: str) -> str:
    return str(s).replace("'", "''")
