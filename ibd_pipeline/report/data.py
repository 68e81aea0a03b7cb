"""Reading the warehouse for the report: every table comes through :class:`Warehouse`,
which turns a missing or empty table into :class:`Unavailable` (the section then says
"not available: <reason>") and normalises column names (DuckDB column names are
case-insensitive, so a frame with both ``n`` and ``N`` is stored as ``n`` and ``N_1``:
every ``N``-style denominator becomes ``n_total``)."""

from __future__ import annotations

import json
import re

import duckdb
import pandas as pd

SCHEMA = "analytics"
_DENOM = re.compile(r"^N((?:_[A-Za-z]+)?)(?:_\d+)?$")


class Unavailable(Exception):
    """A table (or part of one) the report needs is missing, empty or malformed."""


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``N`` / ``N_1`` -> ``n_total``; ``N_uc`` / ``N_uc_1`` -> ``n_total_uc``."""
    ren = {}
    for c in df.columns:
        m = _DENOM.match(str(c))
        if m:
            new = "n_total" + m.group(1).lower()
            if new not in df.columns:
                ren[c] = new
    return df.rename(columns=ren) if ren else df


class Warehouse:
    """Read-only access to ``analytics`` tables with reasons for what is missing."""

    def __init__(self, con: duckdb.DuckDBPyConnection, schema: str = SCHEMA):
        self.con = con
        self.schema = schema
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        self._tables = {(s.lower(), t.lower()): t for s, t in rows}
        self._cache: dict[str, pd.DataFrame] = {}

    def has(self, name: str, schema: str | None = None) -> bool:
        return ((schema or self.schema).lower(), name.lower()) in self._tables

    def get(self, name: str, columns=(), schema: str | None = None, allow_empty: bool = False) -> pd.DataFrame:
        """The table (a copy), or :class:`Unavailable` with the reason."""
        schema = schema or self.schema
        key = f"{schema}.{name}"
        if key not in self._cache:
            if not self.has(name, schema):
                raise Unavailable(f"table {key} not found in the warehouse")
            real = self._tables[(schema.lower(), name.lower())]
            try:
                df = self.con.execute(f'SELECT * FROM "{schema}"."{real}"').df()
            except duckdb.Error as e:  # pragma: no cover - corrupt / locked table
                raise Unavailable(f"table {key} could not be read ({type(e).__name__}: {e})") from e
            self._cache[key] = normalise_columns(df)
        df = self._cache[key]
        if df.empty and not allow_empty:
            raise Unavailable(f"table {key} is empty")
        miss = [c for c in columns if c not in df.columns]
        if miss:
            raise Unavailable(f"table {key} lacks column(s) {', '.join(miss)}")
        return df.copy()

    def try_get(self, name: str, columns=()) -> pd.DataFrame | None:
        try:
            return self.get(name, columns)
        except Unavailable:
            return None

    def settings_from_ref(self) -> dict:
        """The nested settings rebuilt from ``ref.settings`` (key = dotted path, value =
        text or JSON), {} when that table is absent."""
        if not self.has("settings", "ref"):
            return {}
        rows = self.con.execute('SELECT key, value FROM "ref"."settings"').fetchall()
        out: dict = {}
        for key, value in rows:
            try:
                v = json.loads(value)
            except (TypeError, ValueError):
                v = value
            d = out
            parts = str(key).split(".")
            for p in parts[:-1]:
                d = d.setdefault(p, {})
                if not isinstance(d, dict):  # pragma: no cover - inconsistent keys
                    break
            else:
                d[parts[-1]] = v
        return out

    def ref_settings_flat(self) -> dict[str, str] | None:
        if not self.has("settings", "ref"):
            return None
        return {str(k): str(v) for k, v in self.con.execute('SELECT key, value FROM "ref"."settings"').fetchall()}

    def patient_ids(self) -> set[str]:
        """Every pseudonymous id stored in any table with a ``patient_id`` column (the
        report's privacy guard makes sure none of them reaches the HTML)."""
        rows = self.con.execute(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE lower(column_name) = 'patient_id'"
        ).fetchall()
        ids: set[str] = set()
        for s, t in rows:
            try:
                vals = self.con.execute(
                    f'SELECT DISTINCT CAST(patient_id AS VARCHAR) FROM "{s}"."{t}" WHERE patient_id IS NOT NULL'
                ).fetchall()
            except duckdb.Error:  # pragma: no cover - views over missing files etc.
                continue
            ids.update(v for (v,) in vals if v)
        return ids


def flatten_settings(settings: dict, prefix: str = "") -> dict[str, str]:
    """study.yaml flattened like ``ref.settings`` (scalars as text, lists as JSON)."""
    out: dict[str, str] = {}
    for k, v in (settings or {}).items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten_settings(v, key))
        else:
            out[key] = v if isinstance(v, str) else json.dumps(v, default=str)
    return out
