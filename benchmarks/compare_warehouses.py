"""Are two warehouses the same? Every table of the compared schemas, by content.

    .venv/bin/python benchmarks/compare_warehouses.py A.duckdb B.duckdb [--schemas ...] [--ignore COL ...]

For each table of ``staging, reconciled, ref, core, analytics`` (``--schemas``) in either
file: the column names and types, the row count and a hash of the rows sorted by their
text (row order is not compared: two runs may insert in another order), computed inside
DuckDB. Columns that record when something happened rather than what (``received_at``;
``--ignore``) are left out. A table that differs is shown with a few rows found only in
A and only in B. Exit status 0 when every table agrees, 1 otherwise (2: a file is
missing). Both files are opened read-only; nothing is written.

Used to prove that a refactoring kept the outputs (issue 16: the same demo run before
and after, with the same deliveries and pseudonymization key) and by issue 14's
incremental-run checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

SCHEMAS = ("staging", "reconciled", "ref", "core", "analytics")
RUN_TIME_COLUMNS = ("received_at",)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tables(con: duckdb.DuckDBPyConnection, db: str, schemas) -> dict[str, list[tuple[str, str]]]:
    """schema.table -> [(column, type)] of the attached database ``db``."""
    rows = con.execute(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name IN (SELECT unnest(?::VARCHAR[])) ORDER BY schema_name, table_name, column_index",
        [db, list(schemas)],
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for s, t, c, ty in rows:
        out.setdefault(f"{s}.{t}", []).append((c, ty))
    return out


def _rows_sql(db: str, qualified: str, cols: list[str]) -> str:
    schema, name = qualified.split(".", 1)
    if not cols:
        return f"SELECT '' AS r FROM {db}.{_q(schema)}.{_q(name)}"
    return f"SELECT CAST(ROW({', '.join(_q(c) for c in cols)}) AS VARCHAR) AS r FROM {db}.{_q(schema)}.{_q(name)}"


def content_hash(con: duckdb.DuckDBPyConnection, db: str, qualified: str, cols: list[str]) -> tuple[int, str]:
    """(rows, md5 of the rows' text sorted) of ``cols`` of a table."""
    n, h = con.execute(
        f"SELECT count(*), md5(coalesce(string_agg(r, chr(10) ORDER BY r), '')) FROM ({_rows_sql(db, qualified, cols)})"
    ).fetchone()
    return int(n), h


def examples(con, qualified: str, cols: list[str], limit: int) -> tuple[list[str], list[str]]:
    """A few rows (as text) only in A, and only in B (multiset difference)."""
    a_only = [r for (r,) in con.execute(
        f"SELECT r FROM ({_rows_sql('a', qualified, cols)} EXCEPT ALL {_rows_sql('b', qualified, cols)}) ORDER BY r LIMIT {limit}"
    ).fetchall()]
    b_only = [r for (r,) in con.execute(
        f"SELECT r FROM ({_rows_sql('b', qualified, cols)} EXCEPT ALL {_rows_sql('a', qualified, cols)}) ORDER BY r LIMIT {limit}"
    ).fetchall()]
    return a_only, b_only


def compare(a: Path, b: Path, schemas=SCHEMAS, ignore=RUN_TIME_COLUMNS, limit: int = 3) -> tuple[list[str], list[str]]:
    """(one line per table that agrees, one block per difference)."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{str(a).replace(chr(39), chr(39) * 2)}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{str(b).replace(chr(39), chr(39) * 2)}' AS b (READ_ONLY)")
        ta, tb = tables(con, "a", schemas), tables(con, "b", schemas)
        same, diff = [], []
        for t in sorted(set(ta) | set(tb)):
            if t not in tb:
                diff.append(f"{t}: only in A")
                continue
            if t not in ta:
                diff.append(f"{t}: only in B")
                continue
            ca = [(c, ty) for c, ty in ta[t] if c not in ignore]
            cb = [(c, ty) for c, ty in tb[t] if c not in ignore]
            if ca != cb:
                diff.append(f"{t}: columns differ\n  A: {ca}\n  B: {cb}")
                continue
            cols = [c for c, _ in ca]
            (na, ha), (nb, hb) = content_hash(con, "a", t, cols), content_hash(con, "b", t, cols)
            if (na, ha) == (nb, hb):
                same.append(f"{t}: {na} rows, {len(cols)} columns, md5 {ha}")
                continue
            a_only, b_only = examples(con, t, cols, limit)
            diff.append(
                f"{t}: {na} vs {nb} rows, md5 {ha} vs {hb}\n"
                + "".join(f"  only in A: {r}\n" for r in a_only)
                + "".join(f"  only in B: {r}\n" for r in b_only)
            )
        return same, diff
    finally:
        con.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--schemas", nargs="+", default=list(SCHEMAS))
    ap.add_argument("--ignore", nargs="*", default=list(RUN_TIME_COLUMNS), help="columns left out (default: received_at)")
    ap.add_argument("--quiet", action="store_true", help="print the differences only")
    args = ap.parse_args(argv)
    for p in (args.a, args.b):
        if not p.is_file():
            print(f"no warehouse file at {p}", file=sys.stderr)
            return 2
    same, diff = compare(args.a, args.b, args.schemas, tuple(args.ignore))
    if not args.quiet:
        print("\n".join(same))
    print("\n".join(diff))
    print(f"{len(same)} table(s) identical, {len(diff)} differ (schemas {', '.join(args.schemas)}; "
          f"ignored columns: {', '.join(args.ignore) or 'none'})")
    return 0 if not diff else 1


if __name__ == "__main__":
    sys.exit(main())
