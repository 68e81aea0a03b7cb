"""Every asset key of the pipeline, built here and nowhere else. A table's key is its
place in the warehouse, ``[schema, table]`` (``staging/labs``, ``core/patients``,
``analytics/endpoints``); the two assets that are not tables have one-part keys
(``study_report``, ``analytics_snapshot``). docs/ARCHITECTURE.md, "Warehouse"."""

from __future__ import annotations

import dagster as dg


def table_key(schema: str, name: str) -> dg.AssetKey:
    """The asset of the warehouse table ``schema.name``."""
    return dg.AssetKey([schema, name])


def qualified_key(table_name: str, default_schema: str = "core") -> dg.AssetKey:
    """The asset of ``"schema.name"`` (a bare ``name`` is in ``default_schema``)."""
    schema, name = table_name.split(".", 1) if "." in table_name else (default_schema, table_name)
    return table_key(schema, name)


def staging_key(table: str) -> dg.AssetKey:
    """A CRF table's validated rows of the current deliveries (per center)."""
    return table_key("staging", table)


def reconciled_key(table: str) -> dg.AssetKey:
    """A CRF data table after adjudication (per center)."""
    return table_key("reconciled", table)


def ref_key(table: str) -> dg.AssetKey:
    """A reference table from the CRF and study.yaml."""
    return table_key("ref", table)


def core_key(table: str) -> dg.AssetKey:
    """A pooled, documented core table (SQL model)."""
    return table_key("core", table)


def analytics_key(table: str) -> dg.AssetKey:
    """An analytics table (cohort, endpoints, statistics, quality, provenance)."""
    return table_key("analytics", table)


DELIVERIES = analytics_key("deliveries")
QUARANTINE = analytics_key("quarantine")
SAMPLE = analytics_key("reabstraction_sample")
AGREEMENT = analytics_key("agreement")
DISCREPANCIES = analytics_key("discrepancies")
QUALITY_RESULTS = analytics_key("quality_results")
REPORT = dg.AssetKey(["study_report"])
SNAPSHOT = dg.AssetKey(["analytics_snapshot"])
