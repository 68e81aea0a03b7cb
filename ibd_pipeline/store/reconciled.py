"""What the double-abstraction reconciliation writes (docs/STUDY_RULES.md#double-abstraction):
a center's rows of the pooled sample, agreement and discrepancy tables, its reconciled
tables (round A with the adjudicated values applied) and the adjudication rejections the
reconciliation owns - each step's writes in one transaction."""

from __future__ import annotations

import duckdb
import pandas as pd

from ..config import Crf
from ..reconcile.decisions import DECISION_REJECTIONS
from .reads import ORDER, TOUCHED_SQL
from .warehouse import (QUARANTINE_COLUMNS, delete_center, frame_for, insert_frame, reconciled_columns, replace_table,
                        table_exists, transaction)


def replace_center_rows(con: duckdb.DuckDBPyConnection, qualified: str, center: str, df: pd.DataFrame) -> None:
    """Replace one center's rows of a pooled analytics table (created on first use)."""
    df = df.assign(center=center) if "center" not in df.columns else df
    if not table_exists(con, qualified):
        replace_table(con, qualified, df)
        return
    with transaction(con):
        delete_center(con, qualified, center)
        cols = [r[0] for r in con.execute(f"DESCRIBE {qualified}").fetchall()]
        con.register("_rows", frame_for(df, [(c, "") for c in cols]))
        try:
            con.execute(f"INSERT INTO {qualified} SELECT * FROM _rows")
        finally:
            con.unregister("_rows")


def decision_rejections_sql() -> tuple[str, list[str]]:
    """The SQL condition (and its parameters) selecting the quarantine rows of the
    decisions' rejections (``reconcile.decisions.DECISION_REJECTIONS``)."""
    parts, params = [], []
    for field, rule in DECISION_REJECTIONS:
        conds = []
        if field is not None:
            conds.append("field = ?")
            params.append(field)
        if rule is not None:
            conds.append("rule = ?")
            params.append(rule)
        parts.append("(" + " AND ".join(conds) + ")")
    return " OR ".join(parts), params


def _insert_reconciled(con, table: str, center: str, changed: pd.DataFrame, crf: Crf) -> None:
    """reconciled.<table> of a center: the untouched patients' round-A rows straight from
    staging, and the touched patients' rows after the decisions (``changed``, with
    ``_ord``; added records have none and go last, in order), in round A's row order."""
    cols = reconciled_columns(table, crf)
    names = ", ".join(f'"{c}"' for c, _ in cols)
    df = changed.assign(center=center)
    ords = pd.to_numeric(df[ORDER], errors="coerce").to_numpy(dtype=float, na_value=float("nan")) if len(df) else []
    if len(df):
        added = pd.isna(ords)
        ords[added] = 2.0**62 + pd.Series(range(int(added.sum()))).to_numpy(dtype=float)
    src = frame_for(df, cols)
    src[ORDER] = ords
    casts = ", ".join(f'CAST("{c}" AS {ty}) AS "{c}"' for c, ty in cols)
    con.register("_touched_rows", src)
    try:
        con.execute(
            f"INSERT INTO reconciled.{table} SELECT {names} FROM ("
            f"SELECT CAST(rowid AS DOUBLE) AS {ORDER}, {names} FROM staging.{table} "
            f"WHERE center = ? AND round = 'A' AND NOT {TOUCHED_SQL} "
            f"UNION ALL SELECT {ORDER}, {casts} FROM _touched_rows) ORDER BY {ORDER}",
            [center, center, center],
        )
    finally:
        con.unregister("_touched_rows")


def write_reconciled(con: duckdb.DuckDBPyConnection, center: str, reconciled: dict[str, pd.DataFrame],
                     rejected: pd.DataFrame, crf: Crf) -> None:
    """One transaction: the center's reconciled tables (``reconciled``: the touched
    patients' rows per data table, see ``_insert_reconciled``) and its adjudication
    rejections (the previous run's are replaced: this step owns them)."""
    cond, params = decision_rejections_sql()
    with transaction(con):
        for t, changed in reconciled.items():
            delete_center(con, f"reconciled.{t}", center)
            _insert_reconciled(con, t, center, changed, crf)
        delete_center(con, "analytics.quarantine", center, f"table_name = 'adjudications' AND ({cond})", params)
        if len(rejected):
            insert_frame(con, "analytics.quarantine", rejected.assign(center=center), QUARANTINE_COLUMNS)


def write_round_a(con: duckdb.DuckDBPyConnection, center: str, tables: list[str], crf: Crf) -> dict[str, int]:
    """One transaction: a single-abstraction study's reconciled tables of a center are its
    round-A staging rows as accepted (no sample, no adjudication), in their row order.
    Returns the rows per table."""
    out = {}
    with transaction(con):
        for t in tables:
            names = ", ".join(f'"{c}"' for c, _ in reconciled_columns(t, crf))
            delete_center(con, f"reconciled.{t}", center)
            con.execute(f"INSERT INTO reconciled.{t} SELECT {names} FROM staging.{t} WHERE center = ? AND round = 'A' "
                        "ORDER BY rowid", [center])
            out[t] = con.execute(f"SELECT count(*) FROM reconciled.{t} WHERE center = ?", [center]).fetchone()[0]
    return out
