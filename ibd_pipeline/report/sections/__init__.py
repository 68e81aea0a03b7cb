"""The report's sections, one module each; every module exposes ``build(ctx) -> str`` (the
section's HTML body). :data:`SECTIONS` is the one registry: the page order, the titles
and the builders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..context import ReportContext
from . import (biomarkers, centers, cox, endpoints, flow, persistence, pk, predictors, provenance, published, quality,
               roc, safety, settings, table1)


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    build: Callable[[ReportContext], str]


SECTIONS: list[Section] = [
    Section("provenance", "Data provenance", provenance.build),
    Section("flow", "Patient flow", flow.build),
    Section("table1", "Table 1: baseline characteristics", table1.build),
    Section("endpoints", "Endpoints", endpoints.build),
    Section("biomarkers", "Biomarker trajectories", biomarkers.build),
    Section("persistence", "Persistence on upadacitinib (Kaplan-Meier)", persistence.build),
    Section("cox", "Cox models of discontinuation", cox.build),
    Section("predictors", "Predictors of the primary outcome (logistic model)", predictors.build),
    Section("roc", "ROC curve of the logistic model", roc.build),
    Section("centers", "Center heterogeneity", centers.build),
    Section("pk", "Pharmacokinetic substudy", pk.build),
    Section("safety", "Safety", safety.build),
    Section("quality", "Data quality checks", quality.build),
    Section("published", "Published vs derived", published.build),
    Section("settings", "Appendix: settings this report ran with", settings.build),
]
SECTION_IDS = [s.id for s in SECTIONS]
OPTIONAL_SECTIONS = {"quality": "quality_results", "pk": "pk_concentrations"}  # only when the table exists
