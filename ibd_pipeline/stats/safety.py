"""Safety tables: treatment-emergent adverse events by term and diagnosis
(docs/STUDY_RULES.md#safety).

Per diagnosis (UC, CD, overall) and term (plus ``term='any'``): patients with >= 1
event (n, % of the included patients n_included of that diagnosis), number of events,
and events per 100 patient-years of UPA exposure with the exact Poisson CI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .survival import poisson_exact_ci

AE_COLUMNS = ["diagnosis", "term", "n_patients", "n_included", "pct_patients", "n_events", "patient_years",
              "rate_per_100py", "rate_ci_low", "rate_ci_high"]
ANY = "any"
# decimals for a published table (``ae_tables(decimals=DECIMALS)``): percent to 0.1,
# patient-years and rates to 0.01
DECIMALS = {"pct_patients": 1, "patient_years": 2, "rate_per_100py": 2, "rate_ci_low": 2, "rate_ci_high": 2}


@dataclass(frozen=True)
class AeTables:
    """The safety tables (:func:`ae_tables`), each with the columns of ``AE_COLUMNS``:
    diagnosis, term (``any`` first), n_patients, n_included, pct_patients, n_events,
    patient_years, rate_per_100py, rate_ci_low, rate_ci_high.

    Attributes
    ----------
    by_term : DataFrame
        Every listed and every observed term for every diagnosis.
    serious : DataFrame
        Serious events: every term with at least one in the cohort (zeros included for
        the other diagnoses).
    discontinuation : DataFrame
        Events leading to discontinuation, likewise.
    """

    by_term: pd.DataFrame
    serious: pd.DataFrame
    discontinuation: pd.DataFrame


def _flag(s: pd.Series) -> pd.Series:
    if str(s.dtype) == "boolean":
        return s.fillna(False).astype(bool)
    return s.map(lambda v: bool(v) if v is not None and not (isinstance(v, float) and np.isnan(v))
                 and str(v).lower() not in ("false", "0", "no") else False).astype(bool)


def _cohort(diagnoses) -> pd.DataFrame:
    if isinstance(diagnoses, pd.Series):
        return pd.DataFrame({"patient_id": diagnoses.index, "diagnosis": diagnoses.to_numpy()})
    return diagnoses[["patient_id", "diagnosis"]].drop_duplicates("patient_id")


def _table(ae: pd.DataFrame, cohort: pd.DataFrame, exposure: pd.DataFrame, terms, alpha) -> pd.DataFrame:
    rows = []
    for dx in ("UC", "CD", "overall"):
        pts = cohort if dx == "overall" else cohort[cohort["diagnosis"] == dx]
        N = int(len(pts))
        py = float(exposure.loc[exposure["patient_id"].isin(pts["patient_id"]), "exposure_years"].sum())
        sub = ae[ae["patient_id"].isin(pts["patient_id"])]
        for term in [ANY, *terms]:
            t = sub if term == ANY else sub[sub["term"] == term]
            k = int(len(t))
            lo, hi = poisson_exact_ci(k, py, alpha) if py > 0 else (np.nan, np.nan)
            n_pat = int(t["patient_id"].nunique())
            rows.append({"diagnosis": dx, "term": term, "n_patients": n_pat, "n_included": N,
                         "pct_patients": 100.0 * n_pat / N if N else np.nan, "n_events": k,
                         "patient_years": py, "rate_per_100py": 100.0 * k / py if py > 0 else np.nan,
                         "rate_ci_low": 100.0 * lo, "rate_ci_high": 100.0 * hi})
    return pd.DataFrame(rows, columns=AE_COLUMNS)


def _terms(observed: pd.Series, listed) -> list[str]:
    """The listed terms in their order, then any other observed term (sorted)."""
    seen = sorted(observed.dropna().astype(str).unique())
    listed = list(dict.fromkeys(str(t) for t in (listed or ())))
    return listed + [t for t in seen if t not in listed]


def ae_tables(adverse_events: pd.DataFrame, exposure: pd.DataFrame, diagnoses, alpha: float = 0.05,
              terms=None, decimals: dict | None = None) -> AeTables:
    """Treatment-emergent adverse events by term and diagnosis, with rates per 100
    patient-years.

    Parameters
    ----------
    adverse_events : DataFrame
        ``analytics.adverse_events`` (patient_id, term, serious, led_to_discontinuation;
        with a ``treatment_emergent`` column only treatment-emergent events count).
        Events of patients outside the cohort are ignored.
    exposure : DataFrame
        patient_id, exposure_years.
    diagnoses : DataFrame or Series
        The included cohort (patient_id, diagnosis; or diagnosis indexed by patient_id):
        the denominators.
    alpha : float, default 0.05
        CI level of the exact Poisson rate intervals (``statistics.alpha``).
    terms : sequence of str, optional
        Terms the by-term table always lists, zeros included (the CRF's ``ae_terms``, so
        that no herpes zoster, VTE, MACE, ... shows as 0 rather than not at all); other
        observed terms follow, sorted.
    decimals : dict, optional
        {column: decimals} to round to (e.g. ``DECIMALS``; default exact).

    Returns
    -------
    AeTables

    Notes
    -----
    docs/STUDY_RULES.md#safety: patients with >= 1 event per term (n, %) and events per
    100 patient-years (:func:`ibd_pipeline.stats.survival.poisson_exact_ci`).
    """
    cohort = _cohort(diagnoses)
    ae = adverse_events[adverse_events["patient_id"].isin(cohort["patient_id"])].copy()
    if "treatment_emergent" in ae:
        ae = ae[_flag(ae["treatment_emergent"])]
    ae["serious"] = _flag(ae["serious"]) if "serious" in ae else False
    ae["led_to_discontinuation"] = _flag(ae["led_to_discontinuation"]) if "led_to_discontinuation" in ae else False
    serious = ae[ae["serious"]]
    disc = ae[ae["led_to_discontinuation"]]
    out = {
        "by_term": _table(ae, cohort, exposure, _terms(ae["term"], terms), alpha),
        "serious": _table(serious, cohort, exposure, _terms(serious["term"], ()), alpha),
        "discontinuation": _table(disc, cohort, exposure, _terms(disc["term"], ()), alpha),
    }
    return AeTables(**({k: v.round(decimals) for k, v in out.items()} if decimals else out))
