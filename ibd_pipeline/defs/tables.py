"""Helpers shared by the Python assets that write analytics tables: reading the
warehouse, writing a table with its YAML documentation (dbt_like_sql/analytics/*.yml),
and turning that YAML's column tests into asset checks."""

import base64
from pathlib import Path

import dagster as dg
import pandas as pd

from .. import sqlmodels as sm
from .. import warehouse as wh


def akey(name: str, schema: str = "analytics") -> dg.AssetKey:
    return dg.AssetKey([schema, name])


def core(name: str) -> dg.AssetKey:
    return dg.AssetKey(["core", name])


def doc_model(schema: str, name: str) -> sm.Model | None:
    try:
        return sm.model_by_name(f"{schema}.{name}")
    except KeyError:
        return None


def description(name: str, schema: str = "analytics") -> str | None:
    m = doc_model(schema, name)
    return m.description.strip() if m else None


def table_spec(name: str, deps, group: str, schema: str = "analytics", description_text: str | None = None) -> dg.AssetSpec:
    """The spec of a Python-built table: its description comes from its YAML doc."""
    m = doc_model(schema, name)
    meta = {}
    if m is not None:
        meta["dagster/column_schema"] = dg.TableSchema(columns=[dg.TableColumn(c, "", description=d) for c, d in m.columns.items()])
    return dg.AssetSpec(
        akey(name, schema),
        deps=list(deps),
        description=description_text or (m.description.strip() if m else None),
        kinds={"duckdb", "python"},
        group_name=group,
        metadata=meta,
    )


def table_checks(names: list[str], schema: str = "analytics") -> list[dg.AssetCheckSpec]:
    """The YAML column tests of these tables as asset-check specs."""
    specs = []
    for n in names:
        m = doc_model(schema, n)
        if m is None:
            continue
        for t in m.tests:
            specs.append(dg.AssetCheckSpec(t.name, asset=akey(n, schema), description=f"{t.kind} on {t.column}"))
    return specs


def read(con, qualified: str, where: str = "", params=None) -> pd.DataFrame:
    return wh.read_table(con, qualified, where, params)


def _storable(df: pd.DataFrame) -> pd.DataFrame:
    """DuckDB-friendly copy: lists stay lists, sets become sorted lists."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: isinstance(v, (set, frozenset, tuple))).any():
            out[c] = out[c].map(lambda v: sorted(v) if isinstance(v, (set, frozenset)) else (list(v) if isinstance(v, tuple) else v))
    return out


def publish(con, name: str, df: pd.DataFrame, schema: str = "analytics", extra_meta: dict | None = None):
    """Replace the table, write its descriptions, and return (MaterializeResult, checks)."""
    wh.replace_table(con, f"{schema}.{name}", _storable(df))
    m = doc_model(schema, name)
    checks = []
    meta = {"dagster/row_count": len(df)}
    if m is not None:
        sm.document(con, m)
        meta["undocumented_columns"] = dg.MetadataValue.json(sm.undocumented_columns(con, m))
        for t in m.tests:
            r = sm.run_test(con, m, t)
            checks.append(
                dg.AssetCheckResult(
                    asset_key=akey(name, schema), check_name=t.name, passed=r.passed, severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"failing_values": r.failing_rows, "examples": dg.MetadataValue.json([str(x) for x in r.examples])},
                )
            )
    if extra_meta:
        meta.update(extra_meta)
    return dg.MaterializeResult(asset_key=akey(name, schema), metadata=meta), checks


def md_table(df: pd.DataFrame, max_rows: int = 40) -> dg.MetadataValue:
    if df is None or not len(df):
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False))


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
