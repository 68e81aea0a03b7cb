"""Helpers shared by the Python assets that write analytics tables: reading the
warehouse, writing a table with its YAML documentation (dbt_like_sql/analytics/*.yml),
and turning that YAML's column tests into asset checks."""

import base64
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from .. import sqlmodels as sm
from ..store import reads
from ..store import warehouse as wh
from .keys import table_key


def doc_model(schema: str, name: str) -> sm.Model | None:
    try:
        return sm.model_by_name(f"{schema}.{name}")
    except KeyError:
        return None


def description(name: str, schema: str = "analytics") -> str | None:
    m = doc_model(schema, name)
    return m.description.strip() if m else None


def documented_schema(model: sm.Model) -> dg.TableSchema:
    """The columns the YAML documents (definition metadata, before the first run; the
    materializations carry the typed schema DuckDB holds)."""
    return dg.TableSchema(columns=[dg.TableColumn(c, "", description=d, constraints=_constraints(model, c)) for c, d in model.columns.items()])


def _constraints(model: sm.Model | None, column: str) -> dg.TableColumnConstraints:
    """A column's YAML tests as Dagster column constraints (not_null, unique, others)."""
    tests = [t for t in (model.tests if model else ()) if t.column == column]
    other = []
    for t in tests:
        if t.kind == "accepted_values":
            other.append("accepted values: " + ", ".join(str(v) for v in t.arg.get("values", [])))
        elif t.kind == "relationships":
            other.append(f"references {t.arg['to']}.{t.arg.get('field', column)}")
    return dg.TableColumnConstraints(
        nullable=not any(t.kind == "not_null" for t in tests),
        unique=any(t.kind == "unique" for t in tests),
        other=other,
    )


def typed_column_schema(con, schema: str, name: str) -> dg.TableSchema:
    """The table's columns as DuckDB holds them - name, SQL type, description (its YAML
    doc, else the DuckDB comment) and the YAML column tests as constraints."""
    m = doc_model(schema, name)
    rows = reads.column_types(con, schema, name)
    return dg.TableSchema(columns=[
        dg.TableColumn(c, ty, description=((m.columns.get(c) if m else None) or comment or None), constraints=_constraints(m, c))
        for c, ty, comment in rows
    ])


def catalog_url(con, schema: str, name: str) -> dg.MetadataValue | None:
    """The table's entry in the warehouse catalog next to the report (ibd_pipeline.catalog)
    of the data directory the connection's warehouse file is in (None in memory)."""
    from ..catalog import catalog_path, table_anchor
    from ..config import data_paths

    db = reads.database_file(con)
    if db is None:
        return None
    return dg.MetadataValue.url(catalog_path(data_paths(Path(db).parent)).as_uri() + "#" + table_anchor(schema, name))


def table_metadata(con, schema: str, name: str, rows: int | None = None) -> dict:
    """Materialization metadata of a warehouse table as Dagster users expect it: typed
    column schema, table name, row count (``rows``: e.g. one center's partition; default
    the whole table) and the link to the table in the catalog."""
    if rows is None:
        rows = reads.table_rows(con, schema, name)
    meta = {
        "dagster/column_schema": typed_column_schema(con, schema, name),
        "dagster/table_name": f"warehouse.{schema}.{name}",
        "dagster/row_count": int(rows),
    }
    url = catalog_url(con, schema, name)
    if url is not None:
        meta["catalog"] = url
    return meta


def table_spec(name: str, deps, group: str, schema: str = "analytics", description_text: str | None = None) -> dg.AssetSpec:
    """The spec of a Python-built table: its description comes from its YAML doc."""
    m = doc_model(schema, name)
    meta = {}
    if m is not None:
        meta["dagster/column_schema"] = documented_schema(m)
    return dg.AssetSpec(
        table_key(schema, name),
        deps=list(deps),
        description=description_text or (m.description.strip() if m else None),
        kinds={"duckdb", "python"},
        group_name=group,
        metadata=meta,
    )


COLUMN_TESTS_CHECK = "column_tests_pass"


def column_tests_spec(model: sm.Model) -> list[dg.AssetCheckSpec]:
    """The YAML column tests of a table as one asset check (none if it has no tests)."""
    if not model.tests:
        return []
    listed = "; ".join(f"{t.kind} on {t.column}" for t in model.tests)
    return [dg.AssetCheckSpec(
        COLUMN_TESTS_CHECK, asset=table_key(model.schema, model.name),
        description=f"Every column test of the table's YAML documentation passes ({len(model.tests)}: {listed}).",
    )]


def column_tests_result(con, model: sm.Model) -> list[dg.AssetCheckResult]:
    """Run the table's column tests; one check result listing every test, the failing
    ones first with their offending values (ERROR when any fails)."""
    if not model.tests:
        return []
    results = [(t, sm.run_test(con, model, t)) for t in model.tests]
    failed = [(t, r) for t, r in results if not r.passed]
    lines = ["| test | kind | column | failing rows |", "|---|---|---|---:|"]
    for t, r in failed + [(t, r) for t, r in results if r.passed]:
        lines.append(f"| {t.name} | {t.kind} | {t.column} | {r.failing_rows} |")
    return [dg.AssetCheckResult(
        asset_key=table_key(model.schema, model.name), check_name=COLUMN_TESTS_CHECK,
        passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "tests": len(results),
            "failed_tests": dg.MetadataValue.json([t.name for t, _ in failed]),
            "results": dg.MetadataValue.md("\n".join(lines)),
            "examples": dg.MetadataValue.json({t.name: [str(x) for x in r.examples] for t, r in failed}),
        },
    )]


def table_checks(names: list[str], schema: str = "analytics") -> list[dg.AssetCheckSpec]:
    """The YAML column tests of these tables as asset-check specs (one per table)."""
    specs = []
    for n in names:
        m = doc_model(schema, n)
        if m is not None:
            specs += column_tests_spec(m)
    return specs


def read(con, qualified: str, where: str = "", params=None) -> pd.DataFrame:
    return reads.read_table(con, qualified, where, params)


def _storable(df: pd.DataFrame) -> pd.DataFrame:
    """DuckDB-friendly copy: lists stay lists, sets become sorted lists."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: isinstance(v, (set, frozenset, tuple))).any():
            out[c] = out[c].map(lambda v: sorted(v) if isinstance(v, (set, frozenset)) else (list(v) if isinstance(v, tuple) else v))
    return out


def publish(con, name: str, df: pd.DataFrame, schema: str = "analytics", extra_meta: dict | None = None,
            data_version: str | None = None):
    """Replace the table, write its descriptions, and return (MaterializeResult, checks)."""
    wh.replace_table(con, f"{schema}.{name}", _storable(df))
    return published(con, name, len(df), schema, extra_meta, data_version)


class BatchWriter:
    """A table written in parts (``add`` per batch of patients; the first part creates
    it, the others are appended by column name), then ``published``. ``sort_by``: the
    column the whole table is ordered by at the end (rows with equal values keep their
    order): what a sort of the whole frame would have given."""

    def __init__(self, con, name: str, schema: str = "analytics", sort_by: str | None = None):
        self.con, self.name, self.schema, self.sort_by = con, name, schema, sort_by
        self.rows = 0
        self.parts = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def add(self, df: pd.DataFrame) -> None:
        if self.parts == 0:
            wh.replace_table(self.con, self.qualified, _storable(df))
        else:
            wh.append_by_name(self.con, self.qualified, _storable(df))
        self.parts += 1
        self.rows += len(df)

    def publish(self, extra_meta: dict | None = None):
        if self.sort_by and self.parts > 1:
            wh.sort_table(self.con, self.qualified, self.sort_by)
        return published(self.con, self.name, self.rows, self.schema, extra_meta)


def published(con, name: str, n_rows: int, schema: str = "analytics", extra_meta: dict | None = None,
              data_version: str | None = None):
    """Descriptions and column tests of a table just written: (MaterializeResult, checks)."""
    m = doc_model(schema, name)
    checks = []
    if m is not None:
        sm.document(con, m)
    meta = table_metadata(con, schema, name, rows=n_rows)
    if m is not None:
        meta["undocumented_columns"] = dg.MetadataValue.json(sm.undocumented_columns(con, m))
        checks = column_tests_result(con, m)
    if extra_meta:
        meta.update(extra_meta)
    return dg.MaterializeResult(asset_key=table_key(schema, name), metadata=meta,
                                data_version=dg.DataVersion(data_version) if data_version else None), checks


def md_table(df: pd.DataFrame, max_rows: int = 40) -> dg.MetadataValue:
    if df is None or not len(df):
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False, floatfmt=".4g"))


def md_image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def save_figure(paths, name: str, png: bytes, svg: str | None = None) -> Path:
    d = paths.reports / "figures"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.png"
    p.write_bytes(png)
    if svg is not None:
        (d / f"{name}.svg").write_text(svg, encoding="utf-8")
    return p


# a run tagged so recomputes every derived table even when its inputs are unchanged
# (``ibd-pipeline run --force``)
RECOMPUTE_TAG = "ibd/recompute"


def inputs_unchanged(context, con, asset: str, inputs: list[str], outputs: list[str], settings: dict,
                     schema: str = "analytics", content: str | None = None):
    """Skip a derived asset whose inputs are unchanged (issue 14: only what changed is
    recomputed): returns (fingerprint, results). ``results`` is None when the asset must
    compute (inputs, settings or code changed; an output is missing; the run is tagged
    ``RECOMPUTE_TAG``); then the asset calls ``wh.record_inputs(con, asset, fingerprint)``
    after publishing. Otherwise ``results`` are the materializations and column checks of
    the tables as they are, with the time of the computation they come from; the
    fingerprint is their data version. ``content``: the hash of what the computation
    reads of ``inputs`` (e.g. ``stats.analyses.predictor_inputs_hash``), used instead of
    the whole tables' content - a change to a column it does not read recomputes nothing."""
    from ..fingerprint import code_and_config

    config = json.dumps(settings, sort_keys=True, default=str) + code_and_config()
    if content is not None:  # what it reads of the tables, named with them
        config += "|reads:" + ",".join(sorted(inputs)) + ":" + content
    fp = wh.inputs_fingerprint(con, [] if content is not None else inputs, config)
    last = wh.last_inputs(con, asset)
    if (context.run.tags.get(RECOMPUTE_TAG) == "true" or last is None or last[0] != fp
            or not all(wh.table_exists(con, f"{schema}.{o}") for o in outputs)):
        return fp, None
    results, checks = [], []
    for o in outputs:
        n = reads.count_rows(con, f"{schema}.{o}")
        r, c = published(con, o, n, schema, {"recomputed": False, "inputs_unchanged_since": last[1]},
                         data_version=fp)
        results.append(r)
        checks += c
    return fp, results + checks
