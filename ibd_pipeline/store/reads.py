"""The warehouse reads of the orchestration (loading, files, defs/): each returns frames
or plain values, so no SQL text lives above the storage layer."""

from __future__ import annotations

import duckdb
import pandas as pd

from .warehouse import table_exists

# the sampled patients of a center (the only ones round A and B are compared on)
SAMPLED_SQL = "patient_id IN (SELECT patient_id FROM analytics.reabstraction_sample WHERE center = ?)"
# the patients a reviewer's decision can touch: those with a listed discrepancy or an adjudication
TOUCHED_SQL = (
    "coalesce(patient_id IN (SELECT patient_id FROM analytics.discrepancies WHERE center = ? AND patient_id IS NOT NULL "
    "UNION SELECT patient_id FROM staging.adjudications WHERE center = ? AND patient_id IS NOT NULL), false)"
)
# which patients of a center ``round_frames`` keeps: SQL condition and its parameters
_PATIENTS = {"sampled": (SAMPLED_SQL, 1), "touched": (TOUCHED_SQL, 2)}
ORDER = "_ord"  # a staging row's position (rowid): reconciled rows keep round A's order


def read_table(con: duckdb.DuckDBPyConnection, qualified: str, where: str = "", params: list | None = None) -> pd.DataFrame:
    sql = f"SELECT * FROM {qualified}" + (f" WHERE {where}" if where else "")
    return con.execute(sql, params or []).df()


def center_rows(con: duckdb.DuckDBPyConnection, qualified: str, center: str, missing_ok: bool = False) -> pd.DataFrame | None:
    """One center's rows of a pooled table; ``missing_ok``: None when the table does not exist yet."""
    if missing_ok and not table_exists(con, qualified):
        return None
    return con.execute(f"SELECT * FROM {qualified} WHERE center = ?", [center]).df()


def count_rows(con: duckdb.DuckDBPyConnection, qualified: str, center: str | None = None) -> int:
    """Rows of a table (of one center when given)."""
    if center is None:
        return int(con.execute(f"SELECT count(*) FROM {qualified}").fetchone()[0])
    return int(con.execute(f"SELECT count(*) FROM {qualified} WHERE center = ?", [center]).fetchone()[0])


def round_frames(con: duckdb.DuckDBPyConnection, center: str, rnd: str, tables, patients: str | None = None,
                 order: bool = False) -> dict[str, pd.DataFrame]:
    """A center's staging frames of one round; ``patients``: ``"sampled"`` or ``"touched"``
    keeps only those patients' rows (filtered inside DuckDB, the table's row order kept);
    ``order``: with each row's position as ``_ord`` and nullable integer/boolean columns."""
    out = {}
    for t in tables:
        sql = f"SELECT {'CAST(rowid AS DOUBLE) AS _ord, ' if order else ''}* FROM staging.{t} WHERE center = ? AND round = ?"
        params = [center, rnd]
        if patients:
            cond, n = _PATIENTS[patients]
            sql += f" AND {cond} ORDER BY rowid"
            params += [center] * n
        df = con.execute(sql, params).df()
        if order:  # a decision may set NULL in a column the subset has none in
            df = df.astype({c: ("Int64" if str(d).startswith("int") else "boolean")
                            for c, d in df.dtypes.items() if c != ORDER and (str(d).startswith("int") or str(d) == "bool")})
        out[t] = df
    return out


def round_a_patients(con: duckdb.DuckDBPyConnection, center: str, fields: list[str]) -> pd.DataFrame:
    """``fields`` of a center's round-A patients rows (the sample's draw order is made of them)."""
    cols = ", ".join(fields)
    return con.execute(f"SELECT {cols} FROM staging.patients WHERE center = ? AND round = 'A'", [center]).df()


# ----------------------------------------------------------------- delivery records
def known_deliveries(con: duckdb.DuckDBPyConnection, center: str) -> dict[str, str]:
    """sha256 -> status of every file of the center the warehouse has a record of."""
    return {
        r[0]: r[1]
        for r in con.execute(
            "SELECT sha256, any_value(status) FROM analytics.deliveries WHERE center = ? GROUP BY sha256", [center]
        ).fetchall()
    }


def loaded_deliveries(con: duckdb.DuckDBPyConnection, center: str) -> set[str]:
    """sha256 of the center's files the warehouse loaded (not rejected or duplicates)."""
    return {r[0] for r in con.execute(
        "SELECT DISTINCT sha256 FROM analytics.deliveries WHERE center = ? AND status NOT IN ('rejected', 'duplicate')",
        [center]).fetchall()}


def current_files(con: duckdb.DuckDBPyConnection, center: str, table: str) -> list[tuple[int, str, str]]:
    """(seq, sha256, file_name) of the deliveries whose rows of ``table`` are in staging
    (current, partly current or all rows rejected), in the order received."""
    return [tuple(r) for r in con.execute(
        "SELECT DISTINCT seq, sha256, file_name FROM analytics.deliveries WHERE center = ? AND table_name = ? "
        "AND status IN ('current', 'partly_current', 'all_rows_rejected') ORDER BY seq",
        [center, table],
    ).fetchall()]


def quarantine_by_rule(con: duckdb.DuckDBPyConnection, center: str) -> pd.DataFrame:
    """table_name, rule, n: the center's quarantine rows per table and rule."""
    return con.execute(
        "SELECT table_name, rule, count(*) AS n FROM analytics.quarantine WHERE center = ? GROUP BY ALL ORDER BY ALL", [center]
    ).df()


def center_quarantine(con: duckdb.DuckDBPyConnection, center: str) -> pd.DataFrame:
    """The center's quarantine rows in the order of its files, sheets and rows."""
    return con.execute(
        "SELECT * FROM analytics.quarantine WHERE center = ? ORDER BY file_name, sheet, row_number", [center]
    ).df()


def staging_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'"
    ).fetchall()]


def staged_delivery_ids(con: duckdb.DuckDBPyConnection, table: str, center: str) -> set:
    """The delivery ids (SHA-256) of a center's rows of ``staging.<table>``."""
    return {r[0] for r in con.execute(f'SELECT DISTINCT delivery_id FROM staging."{table}" WHERE center = ?', [center]).fetchall()}


# ----------------------------------------------------------------- catalog metadata
def column_types(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[tuple[str, str, str | None]]:
    """(column, SQL type, comment) of a table, in column order."""
    return [tuple(r) for r in con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, name],
    ).fetchall()]


def database_file(con: duckdb.DuckDBPyConnection) -> str | None:
    """The file of the connection's database (None in memory)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return row[0] if row and row[0] else None


def table_rows(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> int:
    return int(con.execute(f'SELECT count(*) FROM {schema}."{name}"').fetchone()[0])


# ----------------------------------------------------------------- a center's status page
def center_deliveries(con: duckdb.DuckDBPyConnection, center: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM analytics.deliveries WHERE center = ? ORDER BY seq, table_name, sheet", [center]).df()


def center_notes(con: duckdb.DuckDBPyConnection, center: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM analytics.delivery_notes WHERE center = ? ORDER BY file_name, kind, table_name, row_number",
                       [center]).df()


def center_withdrawals(con: duckdb.DuckDBPyConnection, center: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM analytics.withdrawals WHERE center = ? ORDER BY file_name, row_number", [center]).df()


def open_discrepancies(con: duckdb.DuckDBPyConnection, center: str) -> int:
    """The center's open discrepancies (0 before the first reconciliation)."""
    if not table_exists(con, "analytics.discrepancies"):
        return 0
    return int(con.execute("SELECT count(*) FROM analytics.discrepancies WHERE center = ? AND status = 'open'", [center]).fetchone()[0])


def discrepancy_counts(con: duckdb.DuckDBPyConnection, center: str) -> tuple[int, int]:
    """(open, resolved) discrepancies of the center."""
    n_open, n_resolved = con.execute(
        "SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'resolved') "
        "FROM analytics.discrepancies WHERE center = ?", [center]).fetchone()
    return int(n_open), int(n_resolved)


def rejected_rows(con: duckdb.DuckDBPyConnection, center: str) -> int:
    """Delivered rows of the center in the quarantine (a row counts once, whatever its reasons)."""
    return int(con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT file_name, sheet, row_number FROM analytics.quarantine WHERE center = ?)",
        [center]).fetchone()[0])


def has_staged_patients(path) -> bool:
    """Whether the warehouse file holds any staged patient (a read-only look; True when
    it cannot be opened - e.g. a run holds it - so the caller does not skip work)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return True
    try:
        return bool(con.execute("SELECT count(*) FROM staging.patients").fetchone()[0])
    except duckdb.Error:
        return False
    finally:
        con.close()


# ------------------------------------------------------------------ the analyses' inputs
CORE_TABLES = ("patients", "medications", "surgeries", "assessments", "labs", "adverse_events")
INCLUDED = "patient_id IN (SELECT patient_id FROM analytics.eligibility WHERE included)"


def core_frames(con: duckdb.DuckDBPyConnection, tables=CORE_TABLES, lab_tests=None, included_only: bool = False, patients=None) -> dict:
    """The core tables as frames, filtered inside DuckDB to what a step reads: the lab
    rows of ``lab_tests`` only, and with ``included_only`` the rows of the included
    patients only (analytics.eligibility). Rows keep the table's order (``rowid``), so
    the pure code sees exactly the rows - in the order - it would pick from the whole
    table. ``patients``: only these patient ids' rows."""
    out = {}
    for t in tables:
        where, params = [], []
        if t == "labs" and lab_tests is not None:
            where.append("test IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(lab_tests))
        if included_only:
            where.append(INCLUDED)
        if patients is not None:
            where.append("patient_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(patients))
        sql = f"SELECT * FROM core.{t}" + (" WHERE " + " AND ".join(where) if where else "")
        out[t] = con.execute(sql + (" ORDER BY rowid" if where else ""), params).df()
    return out


def included_patients(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """core.patients of the included patients (analytics.eligibility.included)."""
    return con.execute(
        "SELECT p.* FROM core.patients p JOIN analytics.eligibility e USING (patient_id) WHERE e.included ORDER BY p.center, p.patient_id"
    ).df()


def endpoint_status_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """analytics.endpoints: patients per time point and status (the asset's metadata)."""
    return con.execute(
        "SELECT timepoint, status, count(*) AS n FROM analytics.endpoints GROUP BY ALL ORDER BY timepoint, status"
    ).df()


def biomarker_rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """analytics.biomarkers' values (patient, diagnosis, test, time point), in table order."""
    return con.execute(
        "SELECT patient_id, diagnosis, test, timepoint, value FROM analytics.biomarkers ORDER BY rowid"
    ).df()


def schema_tables(con: duckdb.DuckDBPyConnection, schemas) -> list[tuple[str, str, str | None]]:
    """(schema, table, comment) of every table of these schemas of the open database, sorted."""
    return con.execute(
        "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name IN (SELECT unnest(?::VARCHAR[])) ORDER BY schema_name, table_name",
        [list(schemas)],
    ).fetchall()


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str, str | None]]:
    """(column, SQL type, comment) of one table, in column order."""
    return con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, table],
    ).fetchall()


def quality_counts(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """analytics.quality_results per table: (expectations, not ok)."""
    return {
        t: (n, failed)
        for t, n, failed in con.execute(
            "SELECT table_name, count(*), count(*) FILTER (WHERE severity <> 'ok') FROM analytics.quality_results GROUP BY ALL"
        ).fetchall()
    }
