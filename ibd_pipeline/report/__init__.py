"""The study report a statistician hands to the investigators (STUDY.md "Statistics",
"Privacy"): one self-contained HTML file built from the warehouse's ``analytics``
tables - settings, data provenance, patient flow, Table 1, endpoints, biomarkers,
persistence, Cox and logistic models, ROC, center heterogeneity, safety, data quality
and the published-vs-derived comparison. Figures are embedded PNGs; only aggregates
appear (no patient ids) and per-center cells under ``statistics.small_cell_below``
patients are flagged.

    from ibd_pipeline.report import build_report
    result = build_report(con, paths.reports / "study_report.html", settings)
"""

from __future__ import annotations

from .build import DPI, SECTION_IDS, ReportResult, build_report
from .data import Unavailable, Warehouse
from .published import compare_published, load_published

__all__ = ["DPI", "SECTION_IDS", "ReportResult", "Unavailable", "Warehouse", "build_report",
           "compare_published", "load_published"]
