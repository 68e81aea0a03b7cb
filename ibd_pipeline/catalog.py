"""The warehouse catalog: one static, offline HTML page like ``dbt docs``
(``<data dir>/reports/catalog.html``, next to the study report), written after each good
run. Every schema, table and column of the warehouse with its description and type, row
counts, the SQL of each model, lineage (upstream and downstream tables), the YAML column
tests with their outcome on this warehouse, and the quality suite's results per table.
No value of any row is printed: only names, counts and outcomes."""

from __future__ import annotations

import html
from pathlib import Path

from . import sqlmodels as sm
from .store import reads

CATALOG_FILE = "catalog.html"
SCHEMAS = ("ref", "staging", "reconciled", "core", "analytics")
STYLE = """body{font-family:sans-serif;margin:0;display:flex}nav{width:260px;height:100vh;overflow:auto;
position:sticky;top:0;background:#f4f4f6;padding:8px;font-size:13px}main{padding:16px;max-width:1100px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
.pass{color:#176b1e}.fail{color:#b00020;font-weight:bold}section{border-top:2px solid #ddd;margin-top:18px}"""


def catalog_path(paths) -> Path:
    """``<data dir>/reports/catalog.html``, next to the study report."""
    return paths.reports / CATALOG_FILE


def table_anchor(schema: str, name: str) -> str:
    """The fragment of a table's section in the catalog (``#analytics.eligibility``)."""
    return f"{schema}.{name}"


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _link(qualified: str) -> str:
    return f'<a href="#{_e(qualified)}">{_e(qualified)}</a>'


def catalog_tables(con) -> list[tuple[str, str, str | None]]:
    """(schema, table, comment) of every table of the catalog's schemas, sorted."""
    return reads.schema_tables(con, SCHEMAS)


def build_catalog(con, out: Path) -> list[str]:
    """Write the catalog of the warehouse open on ``con`` to ``out``; returns the
    qualified names of the tables it lists."""
    models = {m.qualified: m for m in sm.load_models()}
    tables = catalog_tables(con)
    present = {f"{s}.{t}" for s, t, _ in tables}
    downstream: dict[str, set[str]] = {}
    for m in models.values():
        for s, n in m.upstream:
            downstream.setdefault(f"{s}.{n}", set()).add(m.qualified)
    quality = {}
    if "analytics.quality_results" in present:
        quality = reads.quality_counts(con)
    nav, body = [], []
    for schema in SCHEMAS:
        names = [(t, c) for s, t, c in tables if s == schema]
        if not names:
            continue
        nav.append(f"<h4>{_e(schema)}</h4>" + "".join(f'<div>{_link(f"{schema}.{t}")}</div>' for t, _ in names))
        for t, comment in names:
            q = f"{schema}.{t}"
            m = models.get(q)
            rows = reads.count_rows(con, f'{schema}."{t}"')
            cols = reads.table_columns(con, schema, t)
            results = {}
            if m is not None:
                names = {c for c, _, _ in cols}
                for test in m.tests:
                    if test.column not in names:  # documented but absent: shown by its absence
                        continue
                    results.setdefault(test.column, []).append((test, sm.run_test(con, m, test)))
            col_rows = "".join(
                f"<tr><td>{_e(c)}</td><td>{_e(ty)}</td><td>{_e((m.columns.get(c) if m else None) or cm)}</td><td>"
                + "<br>".join(
                    f'<span class="{"pass" if r.passed else "fail"}">{_e(test.kind)}: '
                    f'{"pass" if r.passed else f"FAIL ({r.failing_rows})"}</span>'
                    for test, r in results.get(c, [])
                ) + "</td></tr>"
                for c, ty, cm in cols
            )
            ups = [f"{s}.{n}" for s, n in m.upstream] if m else []
            parts = [
                f'<section id="{_e(q)}"><h2>{_e(q)}</h2><p>{_e((m.description.strip() if m else None) or comment)}</p>',
                f"<p>rows: <b>{rows}</b> &middot; built by: {'SQL model' if m and m.sql else 'Python asset'}"
                + (f" &middot; documented in <code>{_e(m.path.relative_to(sm.MODELS_DIR.parent))}</code>" if m else "") + "</p>",
                "<p>upstream: " + (", ".join(_link(u) for u in ups) or "-")
                + " &middot; downstream: " + (", ".join(_link(d) for d in sorted(downstream.get(q, ()))) or "-") + "</p>",
            ]
            if q in quality:
                n, failed = quality[q]
                parts.append(f'<p>quality suite: {n} expectations, <span class="{"fail" if failed else "pass"}">{failed} not ok</span> (analytics.quality_results)</p>')
            parts.append(f"<table><tr><th>column</th><th>type</th><th>description</th><th>tests (last outcome)</th></tr>{col_rows}</table>")
            if m is not None and m.sql:
                parts.append(f"<details open><summary>SQL</summary><pre>{_e(m.sql.strip())}</pre></details>")
            body.append("".join(parts) + "</section>")
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Warehouse catalog</title><style>{STYLE}</style></head>'
        f'<body><nav><h3>Warehouse catalog</h3><p><a href="study_report.html">study report</a></p>{"".join(nav)}</nav>'
        f"<main><h1>Warehouse catalog</h1><p>{len(tables)} tables in {len({s for s, _, _ in tables})} schemas. "
        "Study rules: docs/STUDY_RULES.md of the project.</p>" + "".join(body) + "</main></body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return [f"{s}.{t}" for s, t, _ in tables]
