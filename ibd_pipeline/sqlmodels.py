"""The SQL models of the warehouse (``dbt_like_sql/``), dbt-style without dbt.

Each ``<layer>/<name>.sql`` file is one SELECT that becomes table ``<layer>.<name>``.
Its upstream tables are read from the SQL itself (sqlglot), so lineage is declared once.
A ``<name>.yml`` beside it documents the model and its columns (written into DuckDB with
``COMMENT ON``) and lists column tests (``not_null``, ``unique``, ``accepted_values``,
``relationships``) that run as Dagster asset checks. A ``.yml`` without a ``.sql``
documents a table that a Python asset builds (same docs, same tests).

A study folder may hold its own ``dbt_like_sql/<layer>/<name>.yml`` (and ``.sql``): it
replaces the project's file of that name for that study (its tables' documentation and
tests describe its protocol). ``accepted_values`` may take its list from the settings:
``{accepted_values: {values: [...], from_settings: [timepoints.clinical]}}`` (each key a
list of ``ref.settings``, or a mapping: its keys).

Settings reach SQL through ``ref.settings`` (key = dotted path of study.yaml, value =
text) and the CRF through ``ref.drugs``, ``ref.procedures`` and ``ref.lab_tests``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb
import pandas as pd
import sqlglot
from sqlglot import exp

from .config import PROJECT_ROOT, Crf, read_yaml, study_dir

MODELS_DIR = PROJECT_ROOT / "dbt_like_sql"


@dataclass(frozen=True)
class ColumnTest:
    column: str
    kind: str  # not_null | unique | accepted_values | relationships
    arg: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.column}_{self.kind}"


@dataclass(frozen=True)
class Model:
    schema: str
    name: str
    sql: str | None  # None: a table built by a Python asset, documented here
    description: str
    columns: dict[str, str]  # column -> description
    tests: tuple[ColumnTest, ...]
    path: Path

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def upstream(self) -> list[tuple[str, str]]:
        """Tables the model reads, and tables its relationship tests compare against."""
        ups = set(upstream_tables(self.sql)) if self.sql else set()
        for t in self.tests:
            if t.kind == "relationships":
                ups.add(tuple(t.arg["to"].split(".", 1)))
        ups.discard((self.schema, self.name))
        return sorted(ups)


def upstream_tables(sql: str) -> list[tuple[str, str]]:
    """Schema-qualified tables a SELECT reads (CTE names excluded), sorted."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    found = set()
    for t in tree.find_all(exp.Table):
        if not t.db and t.name in ctes:
            continue
        if t.db:
            found.add((t.db, t.name))
    return sorted(found)


def _parse_tests(col: str, tests: list) -> list[ColumnTest]:
    out = []
    for t in tests or []:
        if isinstance(t, str):
            out.append(ColumnTest(col, t))
        elif isinstance(t, dict):
            (kind, arg), = t.items()
            out.append(ColumnTest(col, kind, arg if isinstance(arg, dict) else {"values": arg}))
    return out


def _read_model(yml: Path, sql_path: Path) -> Model:
    doc = read_yaml(yml) or {}
    sql = sql_path.read_text(encoding="utf-8") if sql_path.exists() else None
    cols, tests = {}, []
    for col, spec in (doc.get("columns") or {}).items():
        spec = spec or {}
        if isinstance(spec, str):
            spec = {"description": spec}
        cols[col] = spec.get("description", "")
        tests += _parse_tests(col, spec.get("tests"))
    return Model(yml.parent.name, yml.stem, sql, doc.get("description", ""), cols, tuple(tests), yml)


def study_models_dir() -> Path | None:
    """The study in use's own ``dbt_like_sql/`` (None for the default study or a study
    without one)."""
    d = study_dir() / "dbt_like_sql"
    return d if d.is_dir() and d.resolve() != MODELS_DIR.resolve() else None


def load_models(root: str = str(MODELS_DIR), overlay: str | None = None) -> tuple[Model, ...]:
    """Every model under ``dbt_like_sql/<layer>/``, with the study in use's own files in
    place of the project's of the same name (``overlay``: default :func:`study_models_dir`
    when ``root`` is the project's)."""
    if overlay is None and Path(root) == MODELS_DIR:
        d = study_models_dir()
        overlay = str(d) if d else ""
    return _load_models(root, overlay or "")


def clear_model_cache() -> None:
    """Forget the models read (tests that edit model files)."""
    _load_models.cache_clear()


@lru_cache(maxsize=4)
def _load_models(root: str, overlay: str) -> tuple[Model, ...]:
    base = Path(root)
    found: dict[tuple[str, str], tuple[Path, Path]] = {}
    for b in [base] + ([Path(overlay)] if overlay else []):
        for yml in sorted(b.glob("*/*.yml")):
            sql_path = yml.with_suffix(".sql")
            prior = found.get((yml.parent.name, yml.stem))
            if prior is not None and not sql_path.exists():
                sql_path = prior[1]  # a study's documentation of a project SQL model
            found[(yml.parent.name, yml.stem)] = (yml, sql_path)
        for sql_path in sorted(b.glob("*/*.sql")):
            if not sql_path.with_suffix(".yml").exists():
                raise ValueError(f"SQL model {sql_path} has no {sql_path.stem}.yml describing it")
    return tuple(_read_model(yml, sql_path) for yml, sql_path in found.values())


def build_order(models) -> list[Model]:
    """SQL models sorted so that every model comes after the models it reads."""
    by_name = {m.qualified: m for m in models}
    done: list[Model] = []
    seen: set[str] = set()

    def visit(m: Model, stack: tuple = ()):
        if m.qualified in seen:
            return
        if m.qualified in stack:
            raise ValueError(f"cycle in SQL models: {' -> '.join(stack + (m.qualified,))}")
        for s, n in m.upstream:
            up = by_name.get(f"{s}.{n}")
            if up is not None:
                visit(up, stack + (m.qualified,))
        seen.add(m.qualified)
        done.append(m)

    for m in models:
        visit(m)
    return done


def model_by_name(qualified: str) -> Model:
    for m in load_models():
        if m.qualified == qualified:
            return m
    raise KeyError(qualified)


# ------------------------------------------------------------------ reference tables
def _flatten(prefix: str, obj, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj if isinstance(obj, str) else json.dumps(obj, default=str)


def settings_frame(settings: dict) -> pd.DataFrame:
    """study.yaml flattened to (key, value) rows: scalars as text, lists as JSON."""
    flat: dict[str, str] = {}
    _flatten("", settings, flat)
    return pd.DataFrame({"key": list(flat), "value": [str(v) for v in flat.values()]})


def mechanism_of(drug_class: str, settings: dict) -> str:
    """The mechanism of action of a drug class: its group in the settings' mechanism
    groups (IOIBD criterion 1; anti-IL-12/23 and anti-IL-23 are one by default)."""
    for group, classes in ((settings.get("dtt") or {}).get("mechanism_groups") or {}).items():
        if drug_class in classes:
            return group
    return drug_class


def reference_frames(crf: Crf, settings: dict, centers: dict) -> dict[str, pd.DataFrame]:
    """ref.* tables from the CRF, the study settings and the center profiles."""
    drugs = pd.DataFrame(
        [
            {"drug": d, "drug_class": s["class"], "mechanism": mechanism_of(s["class"], settings), "advanced": bool(s["advanced"])}
            for d, s in crf.drugs.items()
        ]
    )
    procs = pd.DataFrame(
        [
            {"procedure": p, "bowel_resection": bool(s.get("bowel_resection", False)), "total_colectomy": bool(s.get("total_colectomy", False))}
            for p, s in crf.procedures.items()
        ]
    )
    labs = pd.DataFrame(
        [
            {"test": t, "unit": s["unit"], "normal_low": (s.get("normal") or [None, None])[0], "normal_high": (s.get("normal") or [None, None])[1]}
            for t, s in crf.lab_tests.items()
        ]
    ).astype({"normal_low": "float64", "normal_high": "float64"})
    ctr = pd.DataFrame([{"center": c, "name": p.raw.get("name", c), "format": p.format} for c, p in centers.items()])
    return {"drugs": drugs, "procedures": procs, "lab_tests": labs, "settings": settings_frame(settings), "centers": ctr}


# ------------------------------------------------------------------ building
def build_model(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    """(Re)build one SQL model as a table, idempotently, and document it."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
    con.execute(f"CREATE OR REPLACE TABLE {model.qualified} AS {model.sql}")
    document(con, model)
    return con.execute(f"SELECT count(*) FROM {model.qualified}").fetchone()[0]


def _q(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def document(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """Write the model's descriptions into DuckDB (``COMMENT ON TABLE/COLUMN``). A
    description DuckDB already holds is not written again: a table kept across runs
    (staging, reconciled, per-center analytics tables) keeps its comments, and each
    rewrite is a catalog write."""
    row = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
        [model.schema, model.name],
    ).fetchone()
    if row is None or row[0] != model.description.strip():
        con.execute(f"COMMENT ON TABLE {model.qualified} IS {_q(model.description.strip())}")
    existing = dict(con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ?", [model.schema, model.name]
    ).fetchall())
    for col, desc in model.columns.items():
        if col in existing and desc and existing[col] != desc.strip():
            con.execute(f'COMMENT ON COLUMN {model.qualified}."{col}" IS {_q(desc.strip())}')


def document_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """Write the YAML descriptions of a table built outside the SQL models, if it has
    a YAML file; returns whether it did."""
    try:
        model = model_by_name(f"{schema}.{name}")
    except KeyError:
        return False
    document(con, model)
    return True


def undocumented_columns(con: duckdb.DuckDBPyConnection, model: Model) -> list[str]:
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
        [model.schema, model.name],
    ).fetchall()]
    return [c for c in cols if not model.columns.get(c)]


@dataclass(frozen=True)
class TestResult:
    test: ColumnTest
    passed: bool
    failing_rows: int
    examples: list


def run_test(con: duckdb.DuckDBPyConnection, model: Model, test: ColumnTest) -> TestResult:
    """A column test: the query returns the offending values."""
    t, c = model.qualified, f'"{test.column}"'
    if test.kind == "not_null":
        sql = f"SELECT NULL AS v FROM {t} WHERE {c} IS NULL"
    elif test.kind == "unique":
        sql = f"SELECT {c} AS v FROM {t} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1"
    elif test.kind == "accepted_values":
        values = list(test.arg.get("values", []))
        for key in test.arg.get("from_settings", []):  # a list of the study's settings (ref.settings)
            row = con.execute("SELECT value FROM ref.settings WHERE key = ?", [key]).fetchone()
            if row is not None:
                listed = json.loads(row[0])
                values += [str(v) for v in (listed.keys() if isinstance(listed, dict) else listed)]
                continue
            # a mapping is flattened into ref.settings (key.<name>...): its names
            names = [r[0] for r in con.execute(
                "SELECT DISTINCT split_part(substr(key, ?), '.', 1) FROM ref.settings WHERE starts_with(key, ?) ORDER BY 1",
                [len(key) + 2, key + "."]).fetchall()]
            if not names:
                raise ValueError(f"{model.path}: accepted_values from_settings {key!r} is not a setting of the study")
            values += names
        lst = ", ".join(_q(v) for v in values) or "NULL"
        sql = f"SELECT DISTINCT CAST({c} AS VARCHAR) AS v FROM {t} WHERE {c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({lst})"
    elif test.kind == "relationships":
        to, fld = test.arg["to"], test.arg.get("field", test.column)
        sql = f'SELECT DISTINCT s.{c} AS v FROM {t} s WHERE s.{c} IS NOT NULL AND s.{c} NOT IN (SELECT "{fld}" FROM {to})'
    else:
        raise ValueError(f"unknown column test {test.kind!r} in {model.path}")
    rows = con.execute(sql).fetchall()
    return TestResult(test, not rows, len(rows), [r[0] for r in rows[:5]])
