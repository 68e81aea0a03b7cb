"""Lab comparisons shared by the cohort and endpoint rules: detection-limit qualifiers
against thresholds (STUDY.md "Endpoints", biochemical endpoints; "Inclusion and
exclusion" lab criteria), the lab text of a reason, and the canonical-unit guard
(docs/ARCHITECTURE.md, "Canonical frames")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibd_pipeline.clinical.records import fmt_value
from ibd_pipeline.config import Crf


def clean_qualifier(q):
    """A delivered qualifier as '<', '>' or None (missing or blank -> None)."""
    if q is None or q is pd.NA or (isinstance(q, float) and np.isnan(q)):
        return None
    q = str(q).strip()
    return q or None


def compare(value, qualifier, op: str, threshold: float) -> bool | None:
    """Is the true lab value ``op`` ``threshold``? True, False, or None when a
    detection-limit qualifier makes it undecidable (STUDY.md "Endpoints", biochemical
    endpoints): "<5" (value 5, qualifier '<') is below 8; "<10" against 8 is undecidable;
    ">200" is not below 8. ``op``: '<', '<=', '>', '>='. A missing value gives None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if op in (">", ">="):
        r = compare(value, qualifier, "<=" if op == ">" else "<", threshold)
        return None if r is None else not r
    if op not in ("<", "<="):
        raise ValueError(f"unknown comparison {op!r}")
    v, q = float(value), clean_qualifier(qualifier)
    if q is None:
        return v < threshold if op == "<" else v <= threshold
    if q == "<":  # true value < v
        return True if v <= threshold else None
    if q == ">":  # true value > v
        return False if v >= threshold else None
    return None


def lab_text(test: str, value, qualifier, unit: str | None = None) -> str:
    """'CRP <5 mg/L'."""
    q = clean_qualifier(qualifier) or ""
    u = f" {unit}" if unit else ""
    return f"{test} {q}{fmt_value(value)}{u}"


def check_canonical_units(labs: pd.DataFrame, crf: Crf) -> None:
    """Core labs are in the CRF's canonical unit (docs/ARCHITECTURE.md); a lab in another
    unit cannot be compared with a threshold, so it is an error, not a silent skip."""
    if "unit" not in labs.columns or labs.empty:
        return
    canon = labs["test"].map(lambda t: (crf.lab_tests.get(t) or {}).get("unit"))
    bad = labs[canon.notna() & labs["unit"].notna() & (labs["unit"] != canon)]
    if len(bad):
        ex = bad.iloc[0]
        raise ValueError(
            f"{len(bad)} lab rows are not in the canonical unit, e.g. {ex['test']} in "
            f"{ex['unit']!r} (expected {canon.loc[bad.index[0]]!r})"
        )
