"""The quality suite in the database: Great Expectations' SQL engine on the DuckDB warehouse.

The frames of :mod:`ibd_pipeline.quality.frames` are written here as SQL over the
``core.*`` tables (joins with core.patients, subsets, recomputed columns, the baseline
score) and created as temporary views; every expectation is validated by GX's SQL engine
(SQLAlchemy, the ``duckdb-engine`` dialect) on its view as a table asset, so DuckDB
computes the counts and no table is pulled into pandas. The failing rows reported
(``examples``, up to ``gx.examples``) are fetched with ``ORDER BY`` the row's position in
its core table and ``LIMIT``: the same rows, in the same order, with the same values as the
pandas path (:func:`ibd_pipeline.quality.suite.run_quality_suite`) reports.

Connection: GX works on a cursor of the caller's DuckDB connection (``con.cursor()``:
another connection to the same database instance), through a SQLAlchemy engine built on
it (``creator=``). DuckDB allows one read-write process or many read-only ones, so GX must
not open the warehouse file itself while the pipeline holds it; sharing the instance needs
no lock. GX only reads: the dialect here runs in DuckDB's auto-commit mode (its begin /
commit / rollback are no-ops), so a query's pending result is never dropped by the
rollback SQLAlchemy issues when GX returns its connection to the pool.

DuckDB's memory for the suite's queries is bounded by ``gx.duckdb_memory_limit`` of
checks.yaml (set for the suite when the database runs on DuckDB's default limit, reset to
it after; a limit the caller set is kept): its joins and GROUP BYs spill to disk beyond it,
so the suite's memory does not grow with the rows.

One kind of check is not validated by GX's SQL engine: the CRF column types
(``expect_column_values_to_be_in_type_list``). GX's SQL engine compares SQLAlchemy column
types, and the type names of checks.yaml are the pandas dtypes DuckDB's columns become
(the pandas path's results, failure examples included, name those). Those checks are
validated by GX's pandas engine on a bounded frame: the column as DuckDB hands it to
pandas with ``LIMIT 0`` (the dtype follows from the column's SQL type alone), with the
non-missing count from SQL; only a column pandas holds as Python objects (text) is read,
in slices of ``gx.example_slice_rows.max`` rows, value by value as pandas does.

A difference in one edge case: for a compound key (``expect_compound_columns_to_be_unique``)
GX's SQL engine counts duplicated rows by joining on ``=``, so a row with a missing key
column is never a duplicate, where pandas counts missing values as equal. Key columns are
required CRF fields (a row without one is quarantined at extraction), so core tables hold
no such rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import types
from pathlib import Path

import pandas as pd

from ibd_pipeline.config import Crf

from .checks import PATIENT_COLUMNS, QualityCheck, load_check_config, quality_checks
from .frames import ELIGIBILITY, RECOMPUTE_INPUTS, MissingInput
from .reuse import SuiteCache
from .suite import (
    RESULT_COLUMNS,
    SuiteRun,
    _exception_message,
    _GxSession,
    _row,
    asset_name,
    run_frame_groups,
    write_summary,
)

log = logging.getLogger(__name__)

ROW = "_row"  # the row's position in its core table (rowid): the order of the examples
TYPE_EXPECTATION = "ExpectColumnValuesToBeInTypeList"
_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")


# ------------------------------------------------------------------ SQLAlchemy dialect
def _dialect_class():
    """duckdb-engine's dialect for a shared DuckDB connection (built lazily: sqlalchemy and
    duckdb_engine are imported only when the SQL path runs)."""
    global _DIALECT
    if _DIALECT is not None:
        return _DIALECT
    import duckdb_engine
    from sqlalchemy.dialects import postgresql, registry
    from sqlalchemy.exc import NoSuchTableError

    class SharedDuckDBCompiler(duckdb_engine.Dialect.statement_compiler):
        def visit_custom_op_binary(self, element, operator, **kw):
            # GX writes a regex match as the PostgreSQL operator ``~`` (search); DuckDB's
            # ``~`` is a full match, so it becomes regexp_matches (search, as pandas'
            # str.contains in GX's pandas engine)
            if operator.opstring in ("~", "!~"):
                call = f"regexp_matches({self.process(element.left, **kw)}, {self.process(element.right, **kw)})"
                return call if operator.opstring == "~" else f"(NOT {call})"
            return super().visit_custom_op_binary(element, operator, **kw)

    class SharedDuckDBDialect(duckdb_engine.Dialect):
        """duckdb-engine on a connection the caller owns: auto-commit, never closed here."""

        statement_compiler = SharedDuckDBCompiler
        supports_statement_cache = False

        def do_begin(self, dbapi_connection):
            pass

        def do_commit(self, dbapi_connection):
            pass

        def do_rollback(self, dbapi_connection):
            pass

        def do_close(self, dbapi_connection):
            pass

        # reflection from DuckDB's DESCRIBE: the PostgreSQL catalog queries duckdb-engine
        # inherits fail on SQLAlchemy 2.1 (pg_catalog.pg_collation) and are slow
        def _describe(self, connection, table_name, schema):
            name = f"{_q(schema)}.{_q(table_name)}" if schema else _q(table_name)
            try:
                return connection.exec_driver_sql(f"DESCRIBE {name}").fetchall()
            except Exception as e:
                raise NoSuchTableError(str(table_name)) from e

        def get_columns(self, connection, table_name, schema=None, **kw):
            return [
                {"name": r[0], "type": _sa_type(r[1]), "nullable": r[2] != "NO", "default": None}
                for r in self._describe(connection, table_name, schema)
            ]

        def get_pk_constraint(self, connection, table_name, schema=None, **kw):
            return {"constrained_columns": [], "name": None}

        def has_table(self, connection, table_name, schema=None, **kw):
            try:
                self._describe(connection, table_name, schema)
            except NoSuchTableError:
                return False
            return True

    class RegexAsPostgres(postgresql.dialect):
        """What GX reads as ``dialect.dialect`` to choose its regex SQL: PostgreSQL's ``~``
        (``issubclass(dialect.dialect, postgresql.dialect)``; duckdb-engine derives from
        the psycopg2 dialect, SQLAlchemy 2.1's default is psycopg), compiled as above."""

        name = "duckdb"

    SharedDuckDBDialect.dialect = RegexAsPostgres
    _DIALECT = SharedDuckDBDialect
    # SQLAlchemy's registry takes the ``dialect`` of the object it loads
    globals()["_SQLALCHEMY_ENTRY"] = types.SimpleNamespace(dialect=SharedDuckDBDialect)
    registry.register("duckdb.ibd_shared", __name__, "_SQLALCHEMY_ENTRY")
    return _DIALECT


_DIALECT = None


def __getattr__(name):  # the registry loads the dialect by name from this module
    if name == "_SQLALCHEMY_ENTRY":
        _dialect_class()
        return globals()[name]
    raise AttributeError(name)


def _sa_type(duckdb_type: str):
    """The SQLAlchemy type of a DuckDB column type (for GX's column metadata)."""
    import sqlalchemy as sa

    t = duckdb_type.upper()
    simple = {
        "BOOLEAN": sa.Boolean, "TINYINT": sa.SmallInteger, "SMALLINT": sa.SmallInteger, "INTEGER": sa.Integer,
        "BIGINT": sa.BigInteger, "HUGEINT": sa.BigInteger, "UTINYINT": sa.SmallInteger, "USMALLINT": sa.Integer,
        "UINTEGER": sa.BigInteger, "UBIGINT": sa.BigInteger, "DOUBLE": sa.Float, "FLOAT": sa.Float, "REAL": sa.Float,
        "VARCHAR": sa.String, "DATE": sa.Date, "TIMESTAMP": sa.DateTime, "TIME": sa.Time, "BLOB": sa.LargeBinary,
    }
    if t in simple:
        return simple[t]()
    if t.startswith("DECIMAL"):
        return sa.Numeric()
    if t.startswith("TIMESTAMP"):
        return sa.DateTime()
    return sa.types.NullType()


# ------------------------------------------------------------------ SQL text
def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def literal(v) -> str:
    """A Python value as a DuckDB SQL literal."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "'nan'::DOUBLE"
        if math.isinf(v):
            return "'inf'::DOUBLE" if v > 0 else "'-inf'::DOUBLE"
        return repr(v)
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"


def _in_list(values) -> str:
    vals = list(values)
    return "(" + ", ".join(literal(v) for v in vals) + ")" if vals else "(NULL)"


def _as_double(expr: str) -> str:
    """pandas ``to_numeric(errors='coerce')`` as float: text that is no number -> NULL."""
    return f"TRY_CAST({expr} AS DOUBLE)"


def _as_date(expr: str) -> str:
    return f"TRY_CAST({expr} AS DATE)"


def _value(expr: str, sql_type: str) -> str:
    """A column as pandas holds it: a float NaN is missing."""
    if sql_type.upper() in _FLOAT_TYPES:
        return f"CASE WHEN isnan({expr}) THEN NULL ELSE {expr} END"
    return expr


# ------------------------------------------------------------------ the warehouse
class _Catalog:
    """The columns (name -> SQL type) and kind of the tables the suite reads."""

    def __init__(self, cur):
        self.cur = cur
        self._cache: dict[str, dict[str, str] | None] = {}
        self._kind: dict[str, str] = {}

    def columns(self, qualified: str) -> dict[str, str] | None:
        if qualified not in self._cache:
            schema, name = qualified.split(".", 1)
            kind = self.cur.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchone()
            if kind is None:
                self._cache[qualified] = None
            else:
                self._kind[qualified] = kind[0]
                rows = self.cur.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [schema, name],
                ).fetchall()
                self._cache[qualified] = {c: t for c, t in rows}
        return self._cache[qualified]

    def need(self, qualified: str) -> dict[str, str]:
        cols = self.columns(qualified)
        if cols is None:
            raise MissingInput(qualified)
        return cols

    def row_position(self, qualified: str, alias: str) -> str:
        """The row's position in the table (what ``SELECT *`` returns first comes first)."""
        if self._kind.get(qualified) == "BASE TABLE":
            return f"{alias}.rowid"
        return "row_number() OVER ()"  # a view: its own order


def _table_ref(qualified: str) -> str:
    schema, name = qualified.split(".", 1)
    return f"{_q(schema)}.{_q(name)}"


# ------------------------------------------------------------------ frames as SQL
def frame_sql(name: str, catalog: _Catalog, settings: dict, crf: Crf, cfg: dict, needed) -> str:
    """The SQL of the frame ``name`` (see :mod:`ibd_pipeline.quality.frames`): its rows in
    the order of the pandas frame, with ``_row`` (that order) and at least the ``needed``
    columns it can provide. Raises :class:`MissingInput` when an input table is absent."""
    needed = set(needed)
    base, _, variant = name.partition("@")
    if base == "baseline":
        return _baseline_sql(catalog, settings, cfg)
    table, _, join = base.partition("+")
    src = catalog.need(table)
    tname = table.split(".", 1)[1]
    crf_types = {f: s.type for f, s in crf.tables[tname].fields.items()} if tname in crf.tables else {}

    wanted = set(needed) | {"patient_id"}
    dx_fields: list[str] = []
    if variant.startswith("dx"):
        wanted.add("diagnosis")
        if variant.startswith("dx!="):
            dx_fields = list(((cfg.get("diagnosis_specific_fields") or {}).get(table) or {}).get(variant[4:]) or [])
            wanted |= set(dx_fields)
    elif variant == "stopped":
        wanted.add("upa_stop_date")
    elif variant == "advanced_stopped":
        wanted |= {"drug", "stop_date"}
    elif variant == "serious_terms":
        wanted.add("term")
    elif variant == "recomputed":
        wanted |= set(RECOMPUTE_INPUTS.get(table, []))
    elif variant:
        raise ValueError(f"unknown quality frame variant {variant!r} in {name!r}")
    if table == "core.labs" and needed & {"physiological_low", "physiological_high", "canonical_unit"}:
        wanted |= {"test", "value"}

    # the table's columns (in its order), then the patient's, then the derived ones
    cols: dict[str, tuple[str, str]] = {}  # name -> (expression over alias t / p, SQL type)
    for c, typ in src.items():
        if c in wanted:
            cols[c] = (_value(f"t.{_q(c)}", typ), typ)
    joins = []
    if join:
        pcols = catalog.need("core.patients")
        take = [c for c in PATIENT_COLUMNS if c in wanted and c in pcols and c not in cols]
        inner = ", ".join([_q("patient_id"), *(_q(c) for c in take)])
        pos = catalog.row_position("core.patients", "cp")
        joins.append(
            f"LEFT JOIN (SELECT {inner} FROM {_table_ref('core.patients')} cp "
            f"QUALIFY row_number() OVER (PARTITION BY cp.patient_id ORDER BY {pos}) = 1) p "
            "ON p.patient_id = t.patient_id"
        )
        cols["in_core_patients"] = ("(p.patient_id IS NOT NULL)", "BOOLEAN")
        for c in take:
            cols[c] = (_value(f"p.{_q(c)}", pcols[c]), pcols[c])
    if table == "core.labs" and "canonical_unit" in needed and "test" in cols:
        units = [(t, s["unit"]) for t, s in crf.lab_tests.items()]
        cols["canonical_unit"] = (_lookup(cols["test"][0], units, "VARCHAR"), "VARCHAR")
    if table == "core.labs" and ({"physiological_low", "physiological_high"} & needed) and "test" in cols:
        limits = cfg.get("lab_limits") or {}
        cols["physiological_low"] = (_lookup(cols["test"][0], [(t, v[0]) for t, v in limits.items()], "DOUBLE"), "DOUBLE")
        cols["physiological_high"] = (_lookup(cols["test"][0], [(t, v[1]) for t, v in limits.items()], "DOUBLE"), "DOUBLE")

    where = []
    if variant.startswith("dx!="):
        dx = variant[4:]
        where.append(f"({cols['diagnosis'][0]}) IS NOT NULL AND ({cols['diagnosis'][0]}) <> {literal(dx)}")
        cols[f"{dx.lower()}_fields_recorded"] = (_recorded_sql(cols, dx_fields, crf_types), "VARCHAR")
    elif variant.startswith("dx="):
        where.append(f"({cols['diagnosis'][0]}) = {literal(variant[3:])}")
    elif variant == "stopped":
        where.append(f"({cols['upa_stop_date'][0]}) IS NOT NULL")
    elif variant == "advanced_stopped":
        advanced = [d for d, s in crf.drugs.items() if s.get("advanced")]
        where.append(f"({cols['stop_date'][0]}) IS NOT NULL AND ({cols['drug'][0]}) IN {_in_list(advanced)}")
    elif variant == "serious_terms":
        where.append(f"({cols['term'][0]}) IN {_in_list(crf.serious_by_definition)}")
    elif variant == "recomputed":
        _recomputed_sql(table, cols)

    select = ", ".join([f"{catalog.row_position(table, 't')} AS {ROW}", *(f"{e} AS {_q(c)}" for c, (e, _) in cols.items())])
    sql = f"SELECT {select} FROM {_table_ref(table)} t " + " ".join(joins)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql


def _lookup(key: str, pairs: list[tuple], typ: str) -> str:
    """``key`` mapped through ``pairs`` (pandas ``Series.map(dict)``; unknown -> NULL)."""
    if not pairs:
        return f"CAST(NULL AS {typ})"
    whens = " ".join(f"WHEN {literal(k)} THEN CAST({literal(v)} AS {typ})" for k, v in pairs)
    return f"CASE {key} {whens} ELSE CAST(NULL AS {typ}) END"


def _recorded_sql(cols: dict, fields: list[str], crf_types: dict[str, str]) -> str:
    """The fields recorded on the row, comma-separated, NULL when none is
    (:func:`ibd_pipeline.quality.frames.recorded_fields`)."""
    parts = []
    for f in fields:
        if f not in cols:
            continue
        expr, typ = cols[f]
        if crf_types.get(f) == "bool" and typ.upper() == "BOOLEAN":
            cond = f"coalesce({expr}, FALSE)"
        elif crf_types.get(f) == "bool" and typ.upper() not in ("VARCHAR",):
            cond = f"coalesce(({expr}) <> 0, FALSE)"
        else:
            cond = f"({expr}) IS NOT NULL"
        parts.append(f"CASE WHEN {cond} THEN {literal(f)} END")
    if not parts:
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF(concat_ws(',', {', '.join(parts)}), '')"


def _recomputed_sql(table: str, cols: dict) -> None:
    """The derived columns recomputed (:func:`ibd_pipeline.quality.frames._recomputed`)."""
    have = set(cols)
    if table == "core.patients":
        if {"bmi", "height_cm", "weight_kg"} <= have:
            h, w, bmi = _as_double(cols["height_cm"][0]), _as_double(cols["weight_kg"][0]), _as_double(cols["bmi"][0])
            expected = f"(CASE WHEN {h} > 0 AND {w} > 0 THEN {w} / (({h} / 100.0) * ({h} / 100.0)) END)"
            cols["bmi_abs_diff"] = (
                f"CASE WHEN ({bmi} IS NULL) <> ({expected} IS NULL) THEN 'inf'::DOUBLE ELSE abs({bmi} - {expected}) END",
                "DOUBLE",
            )
        if {"birth_date", "upa_start_date", "age_at_upa_start"} <= have:
            b, s = _as_date(cols["birth_date"][0]), _as_date(cols["upa_start_date"][0])
            before = f"(month({s}) < month({b}) OR (month({s}) = month({b}) AND day({s}) < day({b})))"
            cols["age_at_upa_start_recomputed"] = (
                f"CAST(year({s}) - year({b}) - CASE WHEN {before} THEN 1 ELSE 0 END AS DOUBLE)", "DOUBLE")
            cols["age_at_upa_start"] = (_as_double(cols["age_at_upa_start"][0]), "DOUBLE")
        if {"upa_start_date", "last_followup_date", "exposure_days"} <= have:
            stop = _as_date(cols["upa_stop_date"][0]) if "upa_stop_date" in have else "CAST(NULL AS DATE)"
            end = f"coalesce({stop}, {_as_date(cols['last_followup_date'][0])})"
            cols["exposure_days_recomputed"] = (
                f"CAST(date_diff('day', {_as_date(cols['upa_start_date'][0])}, {end}) AS DOUBLE)", "DOUBLE")
            cols["exposure_days"] = (_as_double(cols["exposure_days"][0]), "DOUBLE")
    elif table == "core.assessments":
        sums = {
            "hbi_total": ["hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications"],
            "adapted_mayo": ["mayo_stool", "mayo_bleeding", "mayo_endo"],
        }
        for total, items in sums.items():
            if total in have and set(items) <= have:
                cols[f"{total}_recomputed"] = (" + ".join(_as_double(cols[i][0]) for i in items), "DOUBLE")
                cols[total] = (_as_double(cols[total][0]), "DOUBLE")


def _baseline_sql(catalog: _Catalog, settings: dict, cfg: dict) -> str:
    """Included CD/UC patients with their baseline activity score
    (:func:`ibd_pipeline.quality.frames._baseline`; checks.yaml baseline_score_diagnoses)."""
    el = catalog.need(ELIGIBILITY)
    catalog.need("core.patients")
    a = catalog.need("core.assessments")
    dxs = [d for d in (cfg.get("baseline_score_diagnoses") or ["CD", "UC"]) if d in ("CD", "UC")]
    tp = settings["timepoints"]
    lo, hi = tp["baseline_window"]
    elo, ehi = tp.get("baseline_endoscopy_window", tp["baseline_window"])
    items = ["hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications"]
    if "hbi_total" in a:
        hbi = _as_double("a.hbi_total")
    elif set(items) <= set(a):
        hbi = " + ".join(_as_double(f"a.{i}") for i in items)
    else:
        hbi = "CAST(NULL AS DOUBLE)"
    mayo = {"mayo_stool", "mayo_bleeding", "mayo_endo"} <= set(a)
    sb = f"{_as_double('a.mayo_stool')} + {_as_double('a.mayo_bleeding')}" if mayo else "CAST(NULL AS DOUBLE)"
    endo = _as_double("a.mayo_endo") if mayo else "CAST(NULL AS DOUBLE)"
    included = "included" if el.get("included", "").upper() == "BOOLEAN" else "TRY_CAST(included AS BOOLEAN)"
    p_pos = catalog.row_position("core.patients", "cp")
    a_pos = catalog.row_position("core.assessments", "a")

    def closest(value: str, low, high) -> str:
        # the visit closest to day 0 in the window, a tie to the earlier day
        return (
            f"(SELECT patient_id, v FROM (SELECT patient_id, {value} AS v, day, abs(day) AS dist, pos FROM aa) "
            f"WHERE v IS NOT NULL AND day BETWEEN {int(low)} AND {int(high)} "
            "QUALIFY row_number() OVER (PARTITION BY patient_id ORDER BY dist, day, pos) = 1)"
        )

    return (
        "WITH p AS (SELECT " + p_pos + " AS pos, cp.patient_id, cp.diagnosis, " + _as_date("cp.upa_start_date") +
        " AS upa_start_date FROM " + _table_ref("core.patients") + " cp "
        "WHERE cp.patient_id IN (SELECT patient_id FROM " + _table_ref(ELIGIBILITY) + f" WHERE coalesce({included}, FALSE)) "
        f"AND cp.diagnosis IN {_in_list(dxs)} "
        "QUALIFY row_number() OVER (PARTITION BY cp.patient_id ORDER BY " + p_pos + ") = 1), "
        "aa AS (SELECT " + a_pos + " AS pos, a.patient_id, date_diff('day', p.upa_start_date, " + _as_date("a.visit_date") +
        f") AS day, {hbi} AS hbi, {sb} AS sb, {endo} AS endo FROM " + _table_ref("core.assessments") + " a "
        "JOIN p ON p.patient_id = a.patient_id) "
        f"SELECT p.pos AS {ROW}, p.patient_id, p.diagnosis, p.upa_start_date, "
        "CASE WHEN p.diagnosis = 'CD' THEN h.v ELSE s.v + e.v END AS baseline_score FROM p "
        f"LEFT JOIN {closest('hbi', lo, hi)} h ON h.patient_id = p.patient_id "
        f"LEFT JOIN {closest('sb', lo, hi)} s ON s.patient_id = p.patient_id "
        f"LEFT JOIN {closest('endo', elo, ehi)} e ON e.patient_id = p.patient_id"
    )


# ------------------------------------------------------------------ failing rows as SQL
def failing_rows_sql(check: QualityCheck, view: str) -> str | None:
    """The condition a row of ``view`` fails ``check`` on, as GX evaluates it (rows the
    expectation ignores - missing values, pairs with a missing side - never fail); None
    for an expectation without a row condition."""
    kw = check.kwargs
    exp = check.expectation
    if exp == "ExpectColumnValuesToNotBeNull":
        return f"{_q(kw['column'])} IS NULL"
    if exp == "ExpectColumnValuesToBeNull":
        return f"{_q(kw['column'])} IS NOT NULL"
    if exp == "ExpectColumnValuesToBeInSet":
        c = _q(kw["column"])
        return f"{c} IS NOT NULL AND {c} NOT IN {_in_list(kw['value_set'])}"
    if exp == "ExpectColumnValuesToBeBetween":
        c = _q(kw["column"])
        ok = []
        if kw.get("min_value") is not None:
            ok.append(f"{c} {'>' if kw.get('strict_min') else '>='} {literal(kw['min_value'])}")
        if kw.get("max_value") is not None:
            ok.append(f"{c} {'<' if kw.get('strict_max') else '<='} {literal(kw['max_value'])}")
        return f"{c} IS NOT NULL AND NOT ({' AND '.join(ok) or 'TRUE'})"
    if exp == "ExpectColumnValuesToMatchRegex":
        c = _q(kw["column"])
        return f"{c} IS NOT NULL AND NOT regexp_matches(CAST({c} AS VARCHAR), {literal(kw['regex'])})"
    if exp in ("ExpectColumnPairValuesToBeEqual", "ExpectColumnPairValuesAToBeGreaterThanB"):
        a, b = _q(kw["column_A"]), _q(kw["column_B"])
        ignore = kw.get("ignore_row_if", "both_values_are_missing")
        if ignore == "either_value_is_missing":
            considered = f"{a} IS NOT NULL AND {b} IS NOT NULL"
        elif ignore == "both_values_are_missing":
            considered = f"NOT ({a} IS NULL AND {b} IS NULL)"
        else:
            considered = "TRUE"
        if exp == "ExpectColumnPairValuesToBeEqual":
            ok = f"{a} = {b}"
        else:
            ok = f"{a} {'>=' if kw.get('or_equal') else '>'} {b}"
        return f"{considered} AND NOT coalesce({ok}, FALSE)"
    if exp == "ExpectColumnValuesToBeUnique":
        c = _q(kw["column"])
        return f"{c} IS NOT NULL AND {c} IN (SELECT {c} FROM {view} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1)"
    if exp == "ExpectCompoundColumnsToBeUnique":
        # as GX's SQL engine counts them: a row with a missing key column is no duplicate
        # (module docstring)
        cs = [_q(c) for c in kw["column_list"]]
        present = " AND ".join(f"{c} IS NOT NULL" for c in cs)
        key = ", ".join(cs)
        return (f"{present} AND ({key}) IN (SELECT ({key}) FROM {view} WHERE {present} "
                f"GROUP BY {key} HAVING count(*) > 1)")
    return None


# ------------------------------------------------------------------ the GX session
class _SqlGxSession(_GxSession):
    """The pandas session's context, Data Docs and settings, plus a SQL data source on a
    cursor of the warehouse connection: one table asset per frame (its temporary view)."""

    def __init__(self, con, docs_dir: Path | None, cfg: dict):
        super().__init__(docs_dir, cfg)
        from sqlalchemy.pool import StaticPool

        _dialect_class()
        import duckdb_engine

        self.cur = con.cursor()
        wrapper = duckdb_engine.ConnectionWrapper(self.cur)
        self.sql_source = self.ctx.data_sources.add_sql(
            "ibd_quality_sql",
            connection_string="duckdb+ibd_shared:///:memory:",
            kwargs={"creator": lambda: wrapper, "poolclass": StaticPool},
        )
        self.catalog = _Catalog(self.cur)
        # DuckDB's memory for the suite's queries (checks.yaml gx.duckdb_memory_limit). The
        # setting belongs to the database instance: it is set only when the instance runs on
        # DuckDB's default (a limit the caller chose is kept) and reset to it at close
        # (DuckDB shows a limit rounded, so only the default can be restored exactly)
        self.reset_memory_limit = False
        limit = (cfg.get("gx") or {}).get("duckdb_memory_limit")
        if limit:
            import duckdb

            query = "SELECT current_setting('memory_limit')"
            with duckdb.connect() as fresh:
                default = fresh.execute(query).fetchone()[0]
            if self.cur.execute(query).fetchone()[0] == default:
                self.cur.execute(f"SET memory_limit = {literal(str(limit))}")
                self.reset_memory_limit = True
        self.views: dict[str, str] = {}
        self.view_columns: dict[str, dict[str, str]] = {}
        self.view_rows: dict[str, int] = {}
        self.sql_batch_defs: dict[str, object] = {}

    def close(self) -> None:
        if self.reset_memory_limit:
            self.cur.execute("RESET memory_limit")
        for view in self.views.values():
            try:
                self.cur.execute(f"DROP VIEW IF EXISTS {view}")
            except Exception:  # pragma: no cover - the cursor goes anyway
                pass
        self.cur.close()

    def create_view(self, frame: str, sql: str) -> str:
        view = "_gx_" + asset_name(frame)
        self.cur.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {sql}")
        self.views[frame] = view
        rows = self.cur.execute(f"DESCRIBE {view}").fetchall()
        self.view_columns[frame] = {r[0]: r[1] for r in rows}
        return view

    def n_rows(self, frame: str) -> int:
        if frame not in self.view_rows:
            self.view_rows[frame] = int(self.cur.execute(f"SELECT count(*) FROM {self.views[frame]}").fetchone()[0])
        return self.view_rows[frame]

    def sql_batch_definition(self, frame: str):
        if frame not in self.sql_batch_defs:
            asset = self.sql_source.add_table_asset(asset_name(frame), table_name=self.views[frame])
            self.sql_batch_defs[frame] = asset.add_batch_definition_whole_table("all_rows")
        return self.sql_batch_defs[frame]

    def _suite(self, check: QualityCheck, bd):
        gx = self.gx
        suite = self.ctx.suites.add(gx.ExpectationSuite(name=check.check_id, meta={"kahn_category": check.category}))
        suite.add_expectation(check.to_gx())
        return self.ctx.validation_definitions.add(gx.ValidationDefinition(name=check.check_id, data=bd, suite=suite))

    def gx_results(self, checks: list[QualityCheck]) -> list:
        """The validation results of ``checks`` stored in this run's context, as
        ``[key tuple, result as JSON]`` (what :meth:`restore` puts back)."""
        ids = {c.check_id for c in checks}
        store = self.ctx.validation_results_store
        return [[list(k.to_tuple()), store.get(k).to_json_dict()] for k in store.list_keys()
                if getattr(getattr(k, "expectation_suite_identifier", None), "name", None) in ids]

    def restore(self, checks: list[QualityCheck], gx_results: list) -> None:
        """The suites of ``checks`` and their saved validation results (:meth:`gx_results`)
        back in this run's context, so the Data Docs list them (quality/reuse.py)."""
        import json

        from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier

        gx = self.gx
        for check in checks:
            suite = self.ctx.suites.add(gx.ExpectationSuite(name=check.check_id, meta={"kahn_category": check.category}))
            suite.add_expectation(check.to_gx())
        store = self.ctx.validation_results_store
        for key, value in gx_results:
            store.set(ValidationResultIdentifier.from_tuple(tuple(key)), store.deserialize(json.dumps(value)))

    def new_pages(self, groups, reused_gx: list) -> list | None:
        """The Data Docs pages to render when frames were reused: those of the checks
        validated in this run, if every reused validation's page is still on disk (the
        same result renders the same page); None = every page."""
        if not reused_gx or self.docs_dir is None:
            return None
        if not all((self.docs_dir / "validations" / Path(*key[:-1]) / f"{key[-1]}.html").is_file() for key, _ in reused_gx):
            return None
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        checks = [c for group in groups for c in group]
        if not checks:  # nothing validated: every page (GX takes an empty list for all of them)
            return None
        keys = [ValidationResultIdentifier.from_tuple(tuple(k)) for k, _ in self.gx_results(checks)]
        return keys + [ExpectationSuiteIdentifier(name=c.check_id) for c in checks]

    def validate_sql(self, check: QualityCheck, frame: str) -> dict:
        """One check on its view; the quality_results row (see :meth:`_GxSession.validate`:
        BASIC, then COMPLETE for the Data Docs when at most gx.complete_max_failures rows
        fail; the examples are the first failing rows of the view, by ``_row``)."""
        view, columns = self.views[frame], self.view_columns[frame]
        missing = [c for c in check.columns if c not in columns]
        if missing:
            n = max(self.n_rows(frame), 1)
            return _row(check, n, n, [{"error": f"column(s) missing from {check.frame}: {', '.join(missing)}"}])
        if check.expectation == TYPE_EXPECTATION:
            return self._validate_type(check, frame)
        keep = list(dict.fromkeys([*check.columns, *(c for c in check.example_columns if c in columns)]))
        vd = self._suite(check, self.sql_batch_definition(frame))
        basic = {"result_format": "BASIC", "partial_unexpected_count": self.n_examples}
        r = vd.run(result_format=basic).results[0]
        error = _exception_message(r.exception_info)
        if error is not None:
            n = max(self.n_rows(frame), 1)
            return _row(check, n, n, [{"error": error}], r.expectation_config.type)
        result = r.result or {}
        n = int(result.get("element_count") or 0) - int(result.get("missing_count") or 0)
        failed = int(result.get("unexpected_count") or 0)
        examples: list[dict] = []
        if failed:
            if failed <= self.complete_max_failures:
                self._forget(check.check_id)
                idx = [c for c in check.example_columns if c in columns]
                rf = {"result_format": "COMPLETE", "partial_unexpected_count": self.n_examples,
                      "return_unexpected_index_query": False}
                if idx:
                    rf["unexpected_index_column_names"] = idx
                vd.run(result_format=rf)  # the Data Docs list the failing rows
            examples = self._sql_examples(check, view, keep, result)
        return _row(check, n, failed, examples, r.expectation_config.type)

    def _sql_examples(self, check: QualityCheck, view: str, keep: list[str], result: dict) -> list[dict]:
        cond = failing_rows_sql(check, view)
        if cond is None:
            return self._examples(check, pd.DataFrame(columns=keep), result, [])
        cols = ", ".join(_q(c) for c in keep)
        df = self.cur.execute(f"SELECT {cols} FROM {view} WHERE {cond} ORDER BY {ROW} LIMIT {int(self.n_examples)}").df()
        # the values as GX's pandas engine reports them (pd.NA of a nullable integer
        # column stays pd.NA; DataFrame.to_dict would make it None)
        rows = [{c: df[c].iloc[i] for c in df.columns} for i in range(len(df))]
        return self._examples(check, df, result, rows)

    def _validate_type(self, check: QualityCheck, frame: str) -> dict:
        """A CRF type check on a bounded pandas frame (module docstring)."""
        view, columns = self.views[frame], self.view_columns[frame]
        col = check.columns[0]
        keep = list(dict.fromkeys([*check.columns, *(c for c in check.example_columns if c in columns)]))
        cols = ", ".join(_q(c) for c in keep)
        vd = self._suite(check, self.batch_definition(check.frame))
        basic = {"result_format": "BASIC", "partial_unexpected_count": self.n_examples}
        probe = self.cur.execute(f"SELECT {cols} FROM {view} LIMIT 0").df()
        if probe[col].dtype != object:
            # the dtype alone decides (GX's aggregate type expectation, as on the whole
            # frame): validated on the empty frame, the values counted in SQL
            r = vd.run(batch_parameters={"dataframe": probe}, result_format=basic).results[0]
            error = _exception_message(r.exception_info)
            n = int(self.cur.execute(f"SELECT count({_q(col)}) FROM {view}").fetchone()[0])
            if error is not None:
                return _row(check, max(n, 1), max(n, 1), [{"error": error}], r.expectation_config.type)
            failed = 0 if r.success else n
            examples = self._examples(check, probe, r.result or {}, []) if failed else []
            return _row(check, n, failed, examples, r.expectation_config.type)
        # values held as Python objects: GX checks each value, slice by slice
        vectors = max(1, int(self.slice_max) // 2048)
        n = failed = 0
        examples: list[dict] = []
        gx_type = None
        res = self.cur.execute(f"SELECT {cols} FROM {view} ORDER BY {ROW}")
        while True:
            part = res.fetch_df_chunk(vectors)
            if part is None or not len(part):
                break
            r = vd.run(batch_parameters={"dataframe": part}, result_format=basic).results[0]
            gx_type = r.expectation_config.type
            error = _exception_message(r.exception_info)
            if error is not None:
                m = max(self.n_rows(frame), 1)
                return _row(check, m, m, [{"error": error}], gx_type)
            result = r.result or {}
            n += int(result.get("element_count") or 0) - int(result.get("missing_count") or 0)
            bad = int(result.get("unexpected_count") or 0)
            failed += bad
            if bad and len(examples) < self.n_examples:
                r2 = vd.run(batch_parameters={"dataframe": part}, result_format=self._rf_complete(check, part)).results[0]
                rows = (r2.result or {}).get("unexpected_index_list") or []
                examples += self._examples(check, part, result, rows)
        return _row(check, n, failed, examples[: self.n_examples], gx_type)


# ------------------------------------------------------------------ entry point
def run_quality_suite_sql(
    con,
    settings: dict,
    crf: Crf,
    docs_dir: Path | str | None = None,
    *,
    checks: list[QualityCheck] | None = None,
    config: dict | None = None,
    cache: SuiteCache | None = None,
) -> pd.DataFrame:
    """:func:`ibd_pipeline.quality.run_quality_suite` in the database: the core tables
    (``core.*``, ``analytics.eligibility``) of the DuckDB connection ``con`` are validated
    where they are (module docstring); the same ``analytics.quality_results`` rows and the
    same Data Docs. ``con`` stays open and unchanged (a cursor of it is used and closed).
    ``cache``: see :func:`run_quality_suite_sql_detailed`."""
    return run_quality_suite_sql_detailed(con, settings, crf, docs_dir, checks=checks, config=config,
                                          cache=cache).results


def run_quality_suite_sql_detailed(
    con,
    settings: dict,
    crf: Crf,
    docs_dir: Path | str | None = None,
    *,
    checks: list[QualityCheck] | None = None,
    config: dict | None = None,
    cache: SuiteCache | None = None,
) -> SuiteRun:
    """:func:`run_quality_suite_sql` with timings and the Data Docs index path.

    ``cache`` (:class:`ibd_pipeline.quality.reuse.SuiteCache`): a frame whose inputs and
    checks are those of a saved run gets its saved rows and validation results back
    instead of being validated again; every frame validated is saved (the names of the
    reused frames end up in ``cache.reused``)."""
    t0 = time.perf_counter()
    cfg = config if config is not None else load_check_config(settings)
    checks = checks if checks is not None else quality_checks(settings, crf, cfg)
    session = _SqlGxSession(con, Path(docs_dir) if docs_dir is not None else None, cfg)
    by_frame: dict[str, list[QualityCheck]] = {}
    for c in checks:
        by_frame.setdefault(c.frame, []).append(c)
    rows: dict[str, dict] = {}
    frame_seconds: dict[str, float] = {}
    check_seconds: dict[str, float] = {}
    try:
        fingerprints: dict[str, str] = {}
        reused_gx: list = []
        if cache is not None:
            cache.reused = []
            for frame, group in list(by_frame.items()):
                fingerprints[frame] = cache.fingerprint(session.cur, frame, group)
                saved = cache.load(frame, fingerprints[frame], group)
                if saved is not None:
                    session.restore(group, saved["gx"])
                    reused_gx += saved["gx"]
                    rows.update({c.check_id: saved["rows"][c.check_id] for c in group})
                    cache.reused.append(frame)
                    del by_frame[frame]
        with session.no_fingerprint():
            def prepare(frame, needed):
                session.create_view(frame, frame_sql(frame, session.catalog, settings, crf, cfg, needed))
                return frame

            run_frame_groups(by_frame, prepare, session.validate_sql, rows, frame_seconds, check_seconds)
        if cache is not None:
            for frame, group in by_frame.items():
                done = {c.check_id: rows[c.check_id] for c in group}
                if frame in session.views and not any('"error":' in r["examples"] for r in done.values()):
                    cache.save(frame, fingerprints[frame], done, session.gx_results(group))
                else:  # not run or not evaluable: validated again next time
                    cache.forget(frame)
        results = pd.DataFrame([rows[c.check_id] for c in checks], columns=RESULT_COLUMNS)
        index = None
        if docs_dir is not None:
            index = session.build_docs(session.new_pages(by_frame.values(), reused_gx))
            write_summary(Path(docs_dir), results)
    finally:
        session.close()
    return SuiteRun(results, time.perf_counter() - t0, index, frame_seconds, check_seconds)


__all__ = ["failing_rows_sql", "frame_sql", "literal", "run_quality_suite_sql", "run_quality_suite_sql_detailed"]
