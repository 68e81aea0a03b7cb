"""Reading the analysts' snapshot (``data/analytics.duckdb``).

DuckDB names a database after its file, so a file called ``analytics.duckdb`` would make
``analytics.endpoints`` ambiguous (catalog or schema?). Attach it under another name and
make that the default; then ``analytics.<table>`` and ``core.<table>`` read as documented:

    ATTACH 'data/analytics.duckdb' AS study (READ_ONLY); USE study;
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from .config import data_paths

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
