"""The re-abstraction sample (STUDY.md Workflow step 3): a seeded random share of each
center's screened patients, stratified by diagnosis, that is stable across re-runs and
across later deliveries.

The draw order is a hash of the study's seed and what the record says (center, UPA start,
birth date, sex, diagnosis date, diagnosis - ``ORDER_FIELDS``), never of the pseudonymous
id: ids depend on each site's secret key, and a study's sample must not (issue 13). Two
records equal on every order field are drawn in their source-row order."""

from __future__ import annotations

import hashlib
import math
from typing import Mapping

import pandas as pd

SAMPLE_COLUMNS = ["center", "patient_id", "diagnosis"]
_NO_DIAGNOSIS = "\x00"  # stratum of patients without a diagnosis (sorts first)
# non-secret fields of a patient record that order the draw (with the center)
ORDER_FIELDS = ("upa_start_date", "birth_date", "sex", "diagnosis_date", "diagnosis")


def _text(v) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    return str(v)


def draw_order(seed: int, center: str, values) -> str:
    """The seeded rank of a patient record from its center and its ``ORDER_FIELDS``
    values: lower is drawn first. Reproducible from the data and the seed alone."""
    text = "\x1f".join([str(seed), str(center), *(_text(v) for v in values)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stratum_size(n: int, fraction: float, min_per_stratum: int = 1) -> int:
    """Patients drawn from a stratum of n: ceil(fraction * n), at least min_per_stratum,
    at most n. (The product is rounded to 9 decimals first: 0.2 * 35 is 7, not 8.)"""
    if n <= 0:
        return 0
    return min(n, max(int(min_per_stratum), math.ceil(round(fraction * n, 9))))


def draw_sample(
    patients: pd.DataFrame,
    previous: pd.DataFrame | None,
    fraction: float,
    seed: int,
    min_per_stratum: int = 1,
) -> pd.DataFrame:
    """The sample: per center and diagnosis, ``stratum_size`` patients.

    ``patients``: the round-A patients frame (``center, patient_id, diagnosis``, the
    ``ORDER_FIELDS`` and ``source_row``; a ``round`` column, if present, is filtered to
    ``A``). ``previous``: the sample drawn
    before (same columns) or None. Patients of ``previous`` that still exist stay drawn
    (in their current stratum, even if that makes it larger than its target); each
    stratum is then topped up in the order of ``draw_order`` (ties: ``source_row``).
    Without ``previous`` the same patients always give the same sample.
    Returns ``center, patient_id, diagnosis`` sorted by center and patient_id.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"sample fraction must be in (0, 1], got {fraction}")
    p = patients
    if "round" in p.columns:
        p = p[p["round"] == "A"]
    missing = [c for c in ORDER_FIELDS if c not in p.columns]
    if missing:
        raise KeyError(f"the sample's draw order needs the patient fields {missing}")
    tie = ["source_row"] if "source_row" in p.columns else []
    p = p[[*SAMPLE_COLUMNS, *(c for c in ORDER_FIELDS if c not in SAMPLE_COLUMNS), *tie]]
    p = p.dropna(subset=["center", "patient_id"])
    p = p.drop_duplicates(["center", "patient_id"], keep="first").copy()
    if p.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SAMPLE_COLUMNS})
    p["_stratum"] = p["diagnosis"].where(p["diagnosis"].notna(), _NO_DIAGNOSIS).astype(str)
    p["_rank"] = [draw_order(seed, c, vals) for c, vals in
                  zip(p["center"], p[list(ORDER_FIELDS)].itertuples(index=False, name=None))]
    if previous is not None and len(previous):
        kept = set(zip(previous["center"], previous["patient_id"]))
        p["_kept"] = [k in kept for k in zip(p["center"], p["patient_id"])]
    else:
        p["_kept"] = False

    drawn = []
    for _, g in p.groupby(["center", "_stratum"], sort=True):
        target = stratum_size(len(g), fraction, min_per_stratum)
        kept = g[g["_kept"]]
        need = max(0, target - len(kept))
        drawn += [kept, g[~g["_kept"]].sort_values(["_rank", *tie], kind="mergesort").head(need)]
    out = pd.concat(drawn)[SAMPLE_COLUMNS]
    return out.sort_values(["center", "patient_id"]).reset_index(drop=True)


def reviewer_list(sample: pd.DataFrame, mrn_of: Mapping[str, str]) -> pd.DataFrame:
    """The senior reviewer's list of sampled charts (for the center's outbox - the only
    place besides the worklist where an mrn is written): ``center, mrn, patient_id,
    diagnosis``, sorted by center, diagnosis and mrn. Raises if an mrn is unknown."""
    unknown = [pid for pid in sample["patient_id"] if pid not in mrn_of]
    if unknown:
        raise KeyError(f"no mrn for {len(unknown)} sampled patient(s), e.g. {unknown[0]}")
    out = sample[SAMPLE_COLUMNS].copy()
    out.insert(1, "mrn", [str(mrn_of[pid]) for pid in out["patient_id"]])
    return out.sort_values(["center", "diagnosis", "mrn"], na_position="first").reset_index(drop=True)
