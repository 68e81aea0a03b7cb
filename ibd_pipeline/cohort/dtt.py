"""Difficult-to-treat IBD per the IOIBD consensus (STUDY.md "DTT-IBD per the IOIBD
consensus"), judged on data before the UPA start date."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.records import (
    PATIENT_KEY,
    as_bool,
    crf_or_default,
    medication_table,
    patient_table,
    surgery_table,
)
from ibd_pipeline.clinical.windows import BASELINE, add_day, scores_at
from ibd_pipeline.config import Crf

INTOLERANCE = "intolerance"  # the CRF stop_reason code the intolerance setting refers to

# criterion column -> name listed in ``criteria_met``
CRITERIA = {
    "crit1_advanced_failure": "advanced_failure",
    "crit2_cd_resections": "cd_resections",
    "crit3_pouchitis": "pouchitis",
    "crit4_complex_perianal": "complex_perianal",
    "crit5_psychosocial": "psychosocial",
}
OUTPUT_COLUMNS = [
    "patient_id", "center", "diagnosis", "age_at_upa_start", "failed_mechanisms",
    "n_failed_mechanisms", "crit1_advanced_failure", "n_bowel_resections",
    "active_disease_baseline", "crit2_cd_resections", "crit3_pouchitis",
    "crit4_complex_perianal", "crit5_psychosocial", "criteria_met", "is_dtt",
]


def failure_stop_reasons(settings: dict) -> set[str]:
    """Stop reasons that make an episode a failure (STUDY.md "DTT-IBD" 1: primary
    non-response or secondary loss of response; intolerance only when the setting
    ``dtt.intolerance_counts_as_failure`` says so)."""
    d = settings["dtt"]
    out = set(d["failure_stop_reasons"])
    if d.get("intolerance_counts_as_failure"):
        out.add(INTOLERANCE)
    return out


def failed_mechanisms(meds: pd.DataFrame, settings: dict) -> pd.Series:
    """patient_id -> sorted distinct mechanisms of failed advanced therapies (STUDY.md
    "DTT-IBD" 1): episodes started before the UPA start, stopped for a failure reason,
    of an ``advanced: true`` drug (when ``dtt.advanced_only``); mechanism = CRF class
    after ``dtt.mechanism_groups``. ``meds`` from ``medication_table``.

    A failure whose stop comes after the UPA start (an episode bridging the switch,
    stopped later for loss of response) is not known before the UPA start, and DTT is
    judged on data before it: with ``dtt.failure_stopped_by_upa_start`` (default true)
    only episodes stopped on or before the UPA start date count (a missing stop date
    is no known failure); false counts the stop reason whenever the episode stopped."""
    sel = meds["started_before_upa"] & meds["stop_reason"].isin(failure_stop_reasons(settings))
    if settings["dtt"].get("failure_stopped_by_upa_start", True):
        sel &= (meds["stop_date"] <= meds["upa_start_date"]).fillna(False).astype(bool)
    if settings["dtt"].get("advanced_only", True):
        sel &= meds["advanced"]
    f = meds[sel & meds["mechanism"].notna()]
    return f.groupby(PATIENT_KEY)["mechanism"].agg(lambda s: sorted(set(s)))


def active_disease_at_baseline(
    assessments: pd.DataFrame, patients: pd.DataFrame, settings: dict, crf: Crf
) -> pd.Series:
    """patient_id -> active disease at baseline (STUDY.md "DTT-IBD" 2: HBI >= 5, or
    SES-CD > 3, or Rutgeerts >= i2; thresholds ``dtt.active_disease``). HBI from the
    baseline visit (closest with all five items in the baseline window); SES-CD and
    Rutgeerts each from the closest endoscopy having it in the baseline endoscopy window.
    ``patients`` from ``patient_table``."""
    dx = patients.set_index(PATIENT_KEY)["diagnosis"]
    sc = scores_at(add_day(assessments, patients, "visit_date"), settings, BASELINE, dx, ("hbi", "ses_cd", "rutgeerts"))
    ad = settings["dtt"]["active_disease"]
    codes = list(crf.table("assessments").fields["rutgeerts"].codes)
    rmin = codes.index(ad["rutgeerts_min"])
    hbi = pd.to_numeric(sc["hbi"], errors="coerce") >= ad["hbi_min"]
    ses = pd.to_numeric(sc["ses_cd"], errors="coerce") > ad["ses_cd_above"]
    rut = sc["rutgeerts"].map(lambda r: r in codes and codes.index(r) >= rmin)
    return (hbi | ses | rut.astype(bool)).reindex(dx.index).fillna(False).astype(bool)


def dtt_criteria(
    patients: pd.DataFrame,
    medications: pd.DataFrame,
    surgeries: pd.DataFrame,
    assessments: pd.DataFrame,
    settings: dict,
    crf: Crf | None = None,
) -> pd.DataFrame:
    """One row per screened patient: which IOIBD difficult-to-treat criteria hold
    (STUDY.md "DTT-IBD per the IOIBD consensus"; a patient is DTT if any holds).

    1. ``crit1_advanced_failure``: failed advanced therapies of >= ``dtt.min_failed_mechanisms``
       distinct mechanisms (see ``failed_mechanisms``).
    2. ``crit2_cd_resections``: CD, >= ``dtt.resections_required.adult`` IBD-related bowel
       resections before UPA start (``.child`` when age at UPA start <
       ``dtt.child_age_below``), and active disease at baseline.
    3-5. the CRF flags ``pouchitis_chronic_ab_refractory``, ``complex_perianal``,
       ``psychosocial_comorbidity`` (missing = no).

    ``n_bowel_resections`` counts procedure records (surgeries rows). ``criteria_met`` lists
    the names of the criteria met (advanced_failure, cd_resections, pouchitis,
    complex_perianal, psychosocial)."""
    crf = crf_or_default(crf)
    d = settings["dtt"]
    p = patient_table(patients)
    pid = p[PATIENT_KEY]
    out = p[[PATIENT_KEY, "center", "diagnosis", "age_at_upa_start"]].copy()

    mechs = failed_mechanisms(medication_table(medications, p, settings, crf), settings)
    out["failed_mechanisms"] = [list(mechs.get(x, [])) for x in pid]
    out["n_failed_mechanisms"] = out["failed_mechanisms"].map(len).astype("int64")
    out["crit1_advanced_failure"] = out["n_failed_mechanisms"] >= int(d["min_failed_mechanisms"])

    s = surgery_table(surgeries, p, crf)
    n_res = s[s["bowel_resection"] & s["before_upa"]].groupby(PATIENT_KEY).size()
    out["n_bowel_resections"] = pid.map(n_res).fillna(0).astype("int64").values
    out["active_disease_baseline"] = pid.map(active_disease_at_baseline(assessments, p, settings, crf)).values
    child = out["age_at_upa_start"].astype("Float64") < float(d["child_age_below"])
    needed = child.fillna(False).map({True: d["resections_required"]["child"], False: d["resections_required"]["adult"]})
    out["crit2_cd_resections"] = (
        (out["diagnosis"] == "CD")
        & (out["n_bowel_resections"] >= needed.astype("int64"))
        & out["active_disease_baseline"]
    )
    for col, field in (
        ("crit3_pouchitis", "pouchitis_chronic_ab_refractory"),
        ("crit4_complex_perianal", "complex_perianal"),
        ("crit5_psychosocial", "psychosocial_comorbidity"),
    ):
        out[col] = as_bool(p[field]) if field in p.columns else False
    crit = out[list(CRITERIA)].astype(bool)
    out[list(CRITERIA)] = crit
    out["criteria_met"] = [[CRITERIA[c] for c in CRITERIA if row[c]] for _, row in crit.iterrows()]
    out["is_dtt"] = crit.any(axis=1)
    return out[OUTPUT_COLUMNS].reset_index(drop=True)
