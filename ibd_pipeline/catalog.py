"""The warehouse catalog: a static, offline HTML page like ``dbt docs`` (placeholder, built below)."""

from __future__ import annotations

from pathlib import Path

CATALOG_FILE = "catalog.html"


def catalog_path(paths) -> Path:
    """``<data dir>/reports/catalog.html``, next to the study report."""
    return paths.reports / CATALOG_FILE


def table_anchor(schema: str, name: str) -> str:
    """The fragment of a table's section in the catalog (``#analytics.eligibility``)."""
    return f"{schema}.{name}"
