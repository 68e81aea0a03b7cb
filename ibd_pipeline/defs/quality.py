"""Data quality over the core and analytics tables (great-expectations, organised by the
Kahn framework of the OHDSI Data Quality Dashboard): results table, GX Data Docs under
reports/data_docs, and one asset check per table and Kahn category, listing its expectations."""

import json

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import quality
from .resources import StudyResource
from .keys import QUALITY_RESULTS, analytics_key, core_key, qualified_key
from ..store import warehouse as wh
from ..fingerprint import code_and_config
from .tables import RECOMPUTE_TAG, inputs_unchanged, publish, read, table_spec

QUALITY_INPUTS = ["patients", "medications", "surgeries", "assessments", "labs", "adverse_events"]


@dg.multi_asset(
    specs=[table_spec("quality_results", [core_key(t) for t in QUALITY_INPUTS] + [analytics_key("eligibility")], "quality")],
    name="quality_results",
)
def quality_results(context: dg.AssetExecutionContext, study: StudyResource, warehouse: DuckDBResource):
    """Every expectation of the quality suite with its Kahn category, the share of failing
    rows, its threshold and severity, and up to ten failing rows; the GX Data Docs a
    coordinator can open are written to reports/data_docs (index.html, quality_summary.html).
    The suite runs in the database: GX's SQL engine on this run's warehouse connection
    (quality/sql.py), so no core table is read into memory. It runs again only when a
    table it validates, the settings or the code changed (or its Data Docs are gone), and
    then validates again only the frames whose tables changed (quality/reuse.py; all of
    them under `--force`); the Data Docs always list every check."""
    docs = study.paths().reports / "data_docs"
    settings = study.settings()
    inputs = [f"core.{t}" for t in QUALITY_INPUTS] + ["analytics.eligibility"]
    with warehouse.get_connection() as con:
        fp, unchanged = inputs_unchanged(context, con, "quality_results", inputs, ["quality_results"], settings)
        if unchanged is not None and (docs / "index.html").exists():
            results = read(con, "analytics.quality_results")
            recomputed = False
        else:
            # frames whose tables are unchanged keep their results, unless the run recomputes everything
            cache = quality.SuiteCache(study.paths().reports / "quality_cache",
                                       json.dumps(settings, sort_keys=True, default=str) + code_and_config(),
                                       enabled=context.run.tags.get(RECOMPUTE_TAG) != "true")
            results = quality.run_quality_suite_sql(con, settings, study.crf(), docs_dir=docs, cache=cache)
            recomputed = True
        counts = results["severity"].value_counts().to_dict()
        meta = {"ok": int(counts.get("ok", 0)), "warn": int(counts.get("warn", 0)), "error": int(counts.get("error", 0)),
                "data_docs": dg.MetadataValue.path(str(docs / "index.html")),
                "summary": dg.MetadataValue.path(str(docs / quality.SUMMARY_FILE))}
        if recomputed:
            meta["frames_reused"] = len(cache.reused)  # unchanged inputs: their saved results (quality/reuse.py)
            result, _ = publish(con, "quality_results", results, extra_meta=meta, data_version=fp)
            wh.record_inputs(con, "quality_results", fp)
        else:  # the tables as they are (inputs_unchanged's materialization) with the suite's counts
            first = next(r for r in unchanged if isinstance(r, dg.MaterializeResult))
            result = dg.MaterializeResult(asset_key=first.asset_key, metadata={**first.metadata, **meta},
                                          data_version=first.data_version)
    yield result


def _check_specs(settings: dict, crf) -> list[dg.AssetCheckSpec]:
    """One check per (table, Kahn category) of the suite, described by its expectations."""
    groups: dict[tuple[str, str], list] = {}
    for c in quality.quality_checks(settings, crf):
        groups.setdefault((c.table, c.category), []).append(c)
    return [
        dg.AssetCheckSpec(
            quality.check_group_name(category), asset=qualified_key(table), additional_deps=[QUALITY_RESULTS],
            description=f"{category.capitalize()} (Kahn framework) of `{table}`: {len(cs)} expectations, each within "
            "its threshold of failing rows - " + "; ".join(f"{c.check_id} ({c.description})" for c in cs),
        )
        for (table, category), cs in sorted(groups.items())
    ]


def _expectations_md(rows: list[dict]) -> dg.MetadataValue:
    lines = ["| expectation | column | failing rows | share | threshold | severity |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['check_id']} | {r['column_name'] or ''} | {r['n_failed']} of {r['n_rows']} | "
            f"{r['failed_share']:.2%} | {r['threshold']:.2%} | {r['severity']} |"
        )
    return dg.MetadataValue.md("\n".join(lines))


def build_quality_checks(settings: dict, crf) -> dg.AssetChecksDefinition:
    """The quality checks of the study's settings and CRF (built with the Definitions, so
    a settings file passed to ``build_definitions`` decides them, not an import-time default)."""

    @dg.multi_asset_check(specs=_check_specs(settings, crf), name="quality_checks")
    def quality_checks(warehouse: DuckDBResource):
        """The stored results of the quality suite, one check per table and Kahn category
        (conformance, completeness, plausibility): passed when every expectation is within its
        threshold; WARN above a threshold, ERROR above an error threshold (not blocking). The
        metadata lists every expectation and the failing rows of those that failed."""
        with warehouse.get_connection() as con:
            results = read(con, "analytics.quality_results")
        for g in quality.grouped_results(results):
            failing = [r for r in g["expectations"] if r["severity"] != "ok"]
            yield dg.AssetCheckResult(
                asset_key=qualified_key(g["table_name"]),
                check_name=g["check_name"],
                passed=g["passed"],
                severity=dg.AssetCheckSeverity.ERROR if g["severity"] == "error" else dg.AssetCheckSeverity.WARN,
                metadata={
                    "expectations": g["n_expectations"],
                    "failed_expectations": g["n_failed_expectations"],
                    "worst_severity": g["severity"],
                    "results": _expectations_md(g["expectations"]),
                    "failing_rows": dg.MetadataValue.json({r["check_id"]: r["examples"] for r in failing}),
                },
            )

    return quality_checks


quality_assets = [quality_results]
