"""The analysts' snapshot (``data/analytics.duckdb``): publishing it, redacting it, reading it.

DuckDB names a database after its file, so a file called ``analytics.duckdb`` would make
``analytics.endpoints`` ambiguous (catalog or schema?). Attach it under another name and
make that the default; then ``analytics.<table>`` and ``core.<table>`` read as documented:

    ATTACH 'data/analytics.duckdb' AS study (READ_ONLY); USE study;

Publishing it (:func:`publish_snapshot`) runs :func:`redact_snapshot` on the new file
before it replaces the old one.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from ..config import data_paths
from ..privacy import redact

ALIAS = "study"


def connect_snapshot(path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published snapshot with ``study`` as the default
    database (never the working warehouse)."""
    p = Path(path) if path else data_paths().snapshot
    if not p.exists():
        raise FileNotFoundError(f"no published snapshot at {p}: run the pipeline first (make demo / ibd-pipeline run)")
    con = duckdb.connect()
    con.execute(f"ATTACH '{str(p).replace(chr(39), chr(39) * 2)}' AS {ALIAS} (READ_ONLY)")
    con.execute(f"USE {ALIAS}")
    return con


# keyed hashes the pipeline makes itself (pseudonymous patient ids, SHA-256 of files):
# never delivered text, and a join key the analysts need intact
EXEMPT_COLUMNS = frozenset({"patient_id", "delivery_id"})


def redact_snapshot(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    """The last line of defence of the privacy boundary (STUDY.md "Privacy"), run on the
    new snapshot (attached as ``database``) before it replaces the old one: every value of
    every text column of every table passes the PHI check of :mod:`ibd_pipeline.privacy`;
    a value that fails is replaced by its redaction. Returns ``{schema.table.column:
    rows changed}`` (empty when nothing had to be withheld) for the run to note - the
    values themselves are never returned. Each distinct value is checked once."""
    cols = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = ? AND data_type = 'VARCHAR' ORDER BY schema_name, table_name, column_index",
        [database],
    ).fetchall()
    found: dict[str, int] = {}
    for schema, table, col in cols:
        if col in EXEMPT_COLUMNS:
            continue
        q, c = f'{database}.{schema}."{table}"', '"' + col.replace('"', '""') + '"'
        values = [v for (v,) in con.execute(f"SELECT DISTINCT {c} FROM {q} WHERE {c} IS NOT NULL").fetchall()]
        bad = {v: r for v in values if (r := redact(v)) != v}
        if not bad:
            continue
        con.register("_phi_map", pd.DataFrame({"old": list(bad), "new": list(bad.values())}))
        try:
            n = con.execute(f"SELECT count(*) FROM {q} WHERE {c} IN (SELECT old FROM _phi_map)").fetchone()[0]
            con.execute(f"UPDATE {q} AS t SET {c} = m.new FROM _phi_map AS m WHERE t.{c} = m.old")
        finally:
            con.unregister("_phi_map")
        found[f"{schema}.{table}.{col}"] = int(n)
    return found


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
    the copy and before the rename (e.g. :func:`redact_snapshot`)."""
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


def published_archive_seq(path: str | Path, center: str) -> int:
    """The newest archive position of ``center`` whose delivery the published snapshot
    holds (``analytics.deliveries.seq``): what the pipeline has processed whatever Dagster
    instance ran it. 0 when there is no snapshot or it cannot be read. Read from the
    snapshot, never the working warehouse: a reader there would block the next run."""
    p = Path(path)
    if not p.exists():
        return 0
    try:
        con = connect_snapshot(p)
    except (duckdb.Error, OSError):
        return 0
    try:
        row = con.execute("SELECT max(seq) FROM analytics.deliveries WHERE center = ?", [center]).fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    except duckdb.Error:
        return 0
    finally:
        con.close()
