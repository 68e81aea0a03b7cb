"""Data quality over the core and analytics tables (great-expectations, organised by the
Kahn framework of the OHDSI Data Quality Dashboard): results table, GX Data Docs under
reports/data_docs, and one asset check per expectation on the table it judges."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import quality
from ..config import load_crf, load_settings
from .resources import StudyResource
from .tables import akey, core, publish, read, table_spec

QUALITY_INPUTS = ["patients", "medications", "surgeries", "assessments", "labs", "adverse_events"]
QUALITY_RESULTS = akey("quality_results")


@dg.multi_asset(
    specs=[table_spec("quality_results", [core(t) for t in QUALITY_INPUTS] + [akey("eligibility")], "quality")],
    name="quality_results",
)
def quality_results(study: StudyResource, warehouse: DuckDBResource):
    """Every expectation of the quality suite with its Kahn category, the share of failing
    rows, its threshold and severity, and up to ten failing rows; the GX Data Docs a
    coordinator can open are written to reports/data_docs (index.html, quality_summary.html)."""
    docs = study.paths().reports / "data_docs"
    with warehouse.get_connection() as con:
        tables = {f"core.{t}": read(con, f"core.{t}") for t in QUALITY_INPUTS}
        tables["analytics.eligibility"] = read(con, "analytics.eligibility")
        results = quality.run_quality_suite(tables, study.settings(), study.crf(), docs_dir=docs)
        counts = results["severity"].value_counts().to_dict()
        result, _ = publish(con, "quality_results", results, extra_meta={
            "ok": int(counts.get("ok", 0)), "warn": int(counts.get("warn", 0)), "error": int(counts.get("error", 0)),
            "data_docs": dg.MetadataValue.path(str(docs / "index.html")),
            "summary": dg.MetadataValue.path(str(docs / quality.SUMMARY_FILE)),
        })
    yield result


def _asset_of(table_name: str) -> dg.AssetKey:
    schema, name = table_name.split(".", 1) if "." in table_name else ("core", table_name)
    return dg.AssetKey([schema, name])


def _check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            c.check_id, asset=_asset_of(c.table), additional_deps=[QUALITY_RESULTS],
            description=f"[{c.category}/{c.subcategory}] {c.description}",
        )
        for c in quality.quality_checks(load_settings(), load_crf())
    ]


@dg.multi_asset_check(
    specs=_check_specs(),
    name="quality_checks",
)
def quality_checks(warehouse: DuckDBResource):
    """The stored results of the quality suite, one check per expectation, on the table it
    judges: WARN above its threshold, ERROR above the error threshold (not blocking)."""
    with warehouse.get_connection() as con:
        results = read(con, "analytics.quality_results")
    for row in results.to_dict("records"):
        meta = quality.result_metadata(row)
        meta = {k: (dg.MetadataValue.json(v) if k == "examples" else v) for k, v in meta.items() if v is not None}
        yield dg.AssetCheckResult(
            asset_key=_asset_of(row["table_name"]),
            check_name=row["check_id"],
            passed=bool(row["passed"]),
            severity=dg.AssetCheckSeverity.WARN if row["severity"] in ("ok", "warn") else dg.AssetCheckSeverity.ERROR,
            metadata=meta,
        )


quality_assets = [quality_results]
quality_asset_checks = [quality_checks]
