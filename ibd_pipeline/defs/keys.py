"""Every asset key of the pipeline, built here and nowhere else. A table's key is its
place in the warehouse, ``[schema, table]`` (``staging/labs``, ``core/patients``,
``analytics/endpoints``); the two assets that are not tables have one-part keys
(``study_report``, ``analytics_snapshot``). docs/ARCHITECTURE.md, "Warehouse".

Every study but the default one prefixes its keys with its name
(``single_center_cd/analytics/endpoints``): one Dagster workspace shows every study's code
location side by side, and an asset key names one asset of one study. The prefix is the
study of this process (``$IBD_STUDY`` when the assets are defined: a code location is one
process per study); the table is always the last two parts of a table key."""

from __future__ import annotations

import dagster as dg

from ..config import DEFAULT_STUDY, study_name

STUDY = study_name()
PREFIX: tuple[str, ...] = () if STUDY == DEFAULT_STUDY else (STUDY,)


def table_key(schema: str, name: str) -> dg.AssetKey:
    """The asset of the warehouse table ``schema.name`` (of this process's study)."""
    return dg.AssetKey([*PREFIX, schema, name])


def table_of(key: dg.AssetKey) -> str:
    """The warehouse table ``schema.name`` of a table's asset key."""
    return ".".join(key.path[-2:])


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
REPORT = dg.AssetKey([*PREFIX, "study_report"])
SNAPSHOT = dg.AssetKey([*PREFIX, "analytics_snapshot"])
