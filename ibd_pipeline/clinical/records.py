"""Per-row derivations shared by the cohort and endpoint code (pure pandas): the
patient key, the derived columns of the patients, medications and surgeries tables, day
counts and the days of a year, and the text of a value in a reason.

The core tables already carry most of these columns (``docs/ARCHITECTURE.md``, "Core
tables"), but the study settings may be overridden per call (``with_overrides``), and
hand-built frames do not carry them; so every derivation that depends on a setting or on
the CRF is recomputed here from the raw CRF fields, never read back from a derived column.
"""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.config import Crf, load_crf, load_settings

PATIENT_KEY = "patient_id"


def crf_or_default(crf: Crf | None) -> Crf:
    return crf if crf is not None else load_crf()


def as_bool(s: pd.Series) -> pd.Series:
    """A nullable/boolean/object column as plain bool, missing -> False."""
    if s.dtype == bool:
        return s
    return s.astype("boolean").fillna(False).astype(bool)


def completed_years(born: pd.Series, on: pd.Series) -> pd.Series:
    """Age in completed years on a date (STUDY.md "Time points and windows": ages are in
    completed years on the date in question). A 29 February birthday is reached on
    1 March in a non-leap year. Missing dates give <NA>."""
    born, on = pd.to_datetime(born), pd.to_datetime(on)

    def yyyymmdd(d: pd.Series) -> pd.Series:
        return d.dt.year * 10000 + d.dt.month * 100 + d.dt.day

    return ((yyyymmdd(on) - yyyymmdd(born)) // 10000).astype("Int64")


def days_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """``later - earlier`` in whole days (nullable Int64)."""
    return (pd.to_datetime(later) - pd.to_datetime(earlier)).dt.days.astype("Int64")


def days_per_year(settings: dict | None = None) -> float:
    """Days in a year for exposure in patient-years: 12 x ``persistence.days_per_month``
    (30.4375 -> 365.25)."""
    settings = settings if settings is not None else load_settings()
    return 12 * float(settings["persistence"]["days_per_month"])


def patient_table(patients: pd.DataFrame) -> pd.DataFrame:
    """The patients frame with the derived columns of ``core.patients`` recomputed:
    ``treatment_end_date`` (stop date, else last follow-up - STUDY.md: an ongoing
    treatment runs to the last follow-up), ``exposure_days`` (STUDY.md "Inclusion and
    exclusion" 5: stop date, or last follow-up while ongoing, minus start date),
    ``discontinued`` (stop date set), ``age_at_upa_start`` and ``age_at_diagnosis``
    (completed years)."""
    p = patients.copy()
    for c in ("upa_start_date", "upa_stop_date", "last_followup_date", "birth_date", "diagnosis_date"):
        if c in p.columns:
            p[c] = pd.to_datetime(p[c])
    if "upa_stop_date" not in p.columns:
        p["upa_stop_date"] = pd.NaT
    p["treatment_end_date"] = treatment_dates(p)["treatment_end_date"]
    p["exposure_days"] = days_between(p["treatment_end_date"], p["upa_start_date"])
    p["discontinued"] = p["upa_stop_date"].notna()
    if "birth_date" in p.columns:
        p["age_at_upa_start"] = completed_years(p["birth_date"], p["upa_start_date"])
        if "diagnosis_date" in p.columns:
            p["age_at_diagnosis"] = completed_years(p["birth_date"], p["diagnosis_date"])
    return p


def treatment_dates(patients: pd.DataFrame) -> pd.DataFrame:
    """patient_id, upa_start_date, last_followup_date, treatment_end_date (stop date, else
    last follow-up: STUDY.md "Time points and windows", an ongoing treatment runs to the
    last follow-up)."""
    p = patients[[PATIENT_KEY, "upa_start_date", "last_followup_date"]].copy()
    stop = patients["upa_stop_date"] if "upa_stop_date" in patients.columns else pd.Series(pd.NaT, index=p.index)
    p["treatment_end_date"] = pd.to_datetime(stop).fillna(pd.to_datetime(p["last_followup_date"]))
    return p


def mechanism_map(settings: dict) -> dict[str, str]:
    """drug class -> mechanism of action (STUDY.md "DTT-IBD" 1: classes listed together in
    settings ``dtt.mechanism_groups`` count as one mechanism; any other class is its own
    mechanism)."""
    groups = (settings.get("dtt") or {}).get("mechanism_groups") or {}
    out: dict[str, str] = {}
    for group, classes in groups.items():
        for cls in classes or []:
            out[cls] = group
    return out


def medication_table(
    medications: pd.DataFrame, patients: pd.DataFrame, settings: dict, crf: Crf | None = None
) -> pd.DataFrame:
    """Medication episodes joined to their patient's UPA dates, with ``drug_class`` and
    ``advanced`` from the CRF drug list, ``mechanism`` (class after the settings'
    mechanism groups), ``ongoing`` (no stop date), ``end_date`` (stop date, else last
    follow-up - STUDY.md: an ongoing episode runs to the last follow-up) and
    ``overlaps_upa`` (shares >= 1 day with UPA treatment [start, stop or last follow-up],
    both ends inclusive - STUDY.md "Time points and windows")."""
    crf = crf_or_default(crf)
    p = treatment_dates(patients)
    m = medications.drop(
        columns=[c for c in p.columns if c != PATIENT_KEY and c in medications.columns]
    ).merge(p, on=PATIENT_KEY, how="inner")
    for c in ("start_date", "stop_date"):
        if c not in m.columns:
            m[c] = pd.NaT
        m[c] = pd.to_datetime(m[c])
    if "stop_reason" not in m.columns:
        m["stop_reason"] = None
    drugs = crf.drugs
    m["drug_class"] = m["drug"].map(lambda d: (drugs.get(d) or {}).get("class"))
    m["advanced"] = m["drug"].map(lambda d: bool((drugs.get(d) or {}).get("advanced", False)))
    mech = mechanism_map(settings)
    m["mechanism"] = m["drug_class"].map(lambda c: mech.get(c, c) if c is not None else None)
    m["ongoing"] = m["stop_date"].isna()
    m["end_date"] = m["stop_date"].fillna(m["last_followup_date"])
    m["overlaps_upa"] = (m["start_date"] <= m["treatment_end_date"]) & (
        m["end_date"] >= m["upa_start_date"]
    )
    m["started_before_upa"] = m["start_date"] < m["upa_start_date"]
    return m


def surgery_table(surgeries: pd.DataFrame, patients: pd.DataFrame, crf: Crf | None = None) -> pd.DataFrame:
    """Surgeries joined to the patient's UPA start, with ``bowel_resection`` (the CRF
    procedure flag AND ``ibd_related`` - STUDY.md "DTT-IBD" 2), ``total_colectomy`` (CRF
    procedure flag), ``before_upa`` (surgery date < UPA start) and ``day``."""
    crf = crf_or_default(crf)
    p = treatment_dates(patients)[[PATIENT_KEY, "upa_start_date"]]
    s = surgeries.drop(columns=[c for c in ("upa_start_date",) if c in surgeries.columns]).merge(
        p, on=PATIENT_KEY, how="inner"
    )
    s["surgery_date"] = pd.to_datetime(s["surgery_date"])
    procs = crf.procedures
    ibd = as_bool(s["ibd_related"]) if "ibd_related" in s.columns else pd.Series(False, index=s.index)
    s["ibd_related"] = ibd
    flag = s["procedure"].map(lambda x: bool((procs.get(x) or {}).get("bowel_resection", False)))
    s["bowel_resection"] = flag.astype(bool) & ibd
    s["total_colectomy"] = s["procedure"].map(
        lambda x: bool((procs.get(x) or {}).get("total_colectomy", False))
    ).astype(bool)
    s["before_upa"] = s["surgery_date"] < s["upa_start_date"]
    s["day"] = days_between(s["surgery_date"], s["upa_start_date"])
    return s


def fmt_num(x) -> str:
    """A threshold for a reason code: 4 -> '4', 18.5 -> '18_5'."""
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return str(x).replace(".", "_")


def fmt_value(x) -> str:
    """A score or lab value for the ``value`` text: 3.0 -> '3', 5.25 -> '5.25'."""
    if x is None or (isinstance(x, float) and pd.isna(x)) or x is pd.NA:
        return "NA"
    xf = float(x)
    if xf.is_integer():
        return str(int(xf))
    return f"{xf:.4g}"
