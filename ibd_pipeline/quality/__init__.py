"""Data-quality suite of the core tables with Great Expectations, organised by the Kahn
framework (conformance, completeness, plausibility; as in the OHDSI Data Quality
Dashboard). Pure: no dagster. great_expectations is imported only when the suite runs.

* :func:`quality_checks` - the suite declared as data (CRF + ``checks.yaml`` + settings);
* :func:`run_quality_suite` - validate the tables, build Data Docs, return
  ``analytics.quality_results``;
* :func:`run_quality_suite_sql` - the same in the database: GX's SQL engine on a DuckDB
  connection (``quality/sql.py``), the same results and Data Docs; with a
  :class:`SuiteCache` (``quality/reuse.py``) only the frames whose tables changed are
  validated again.
"""

from .checks import CATEGORIES, SEVERITIES, SUBCATEGORIES, QualityCheck, checks_frame, load_check_config, quality_checks
from .suite import (
    RESULT_COLUMN_DOCS,
    RESULT_COLUMNS,
    SUMMARY_FILE,
    SuiteRun,
    check_group_name,
    grouped_results,
    result_metadata,
    run_quality_suite,
    run_quality_suite_detailed,
)
from .reuse import SuiteCache, frame_inputs
from .sql import run_quality_suite_sql, run_quality_suite_sql_detailed

__all__ = [
    "CATEGORIES",
    "RESULT_COLUMN_DOCS",
    "RESULT_COLUMNS",
    "SEVERITIES",
    "SUBCATEGORIES",
    "SUMMARY_FILE",
    "SuiteCache",
    "QualityCheck",
    "SuiteRun",
    "check_group_name",
    "frame_inputs",
    "checks_frame",
    "grouped_results",
    "load_check_config",
    "quality_checks",
    "result_metadata",
    "run_quality_suite",
    "run_quality_suite_detailed",
    "run_quality_suite_sql",
    "run_quality_suite_sql_detailed",
]
