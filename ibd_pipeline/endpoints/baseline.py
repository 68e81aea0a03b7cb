"""Baseline characteristics and covariates (STUDY.md "Statistics": Table 1, predictors,
persistence covariates; derivations per study.yaml ``baseline``)."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.labs import check_canonical_units, compare
from ibd_pipeline.clinical.records import (
    PATIENT_KEY,
    as_bool,
    crf_or_default,
    days_per_year,
    medication_table,
    patient_table,
    surgery_table,
)
from ibd_pipeline.clinical.windows import BASELINE, add_day, labs_at
from ibd_pipeline.config import Crf

EIM = ("eim_eye", "eim_skin", "eim_joint", "eim_other")


# the baseline labs of the covariates (albumin, CRP, FC)
BASELINE_LAB_TESTS = ("ALB", "CRP", "FC")


def _group_members(spec) -> tuple[set[str], set[str]]:
    """(classes, drugs) of a ``baseline.prior_drug_groups`` entry: a list of classes, or a
    mapping with ``classes`` and/or ``drugs`` lists."""
    if isinstance(spec, dict):
        return set(spec.get("classes") or []), set(spec.get("drugs") or [])
    return set(spec or []), set()


def montreal_age(age_at_diagnosis, settings: dict):
    """Montreal age class (study.yaml ``baseline.montreal_age``): A1 < 17, A2 17-40, A3 > 40."""
    m = settings["baseline"]["montreal_age"]
    if age_at_diagnosis is None or pd.isna(age_at_diagnosis):
        return None
    if age_at_diagnosis < m["A1_below"]:
        return "A1"
    if age_at_diagnosis > m["A3_above"]:
        return "A3"
    return "A2"


def baseline_covariates(
    patients: pd.DataFrame,
    medications: pd.DataFrame,
    surgeries: pd.DataFrame,
    labs: pd.DataFrame,
    assessments: pd.DataFrame,
    settings: dict,
    crf: Crf | None = None,
) -> pd.DataFrame:
    """One row of baseline characteristics per (included) patient, derived per study.yaml
    ``baseline`` (STUDY.md "Statistics": Table 1, predictor and Cox covariates).

    age (completed years at UPA start), male, bmi (weight / height^2; the ``bmi`` column when
    height or weight is missing), bmi_le_18_5 (<= ``bmi_low``), albumin / crp / fc (baseline
    lab: closest to day 0 in the baseline window; the number as reported, a qualifier is
    only used by the flags), albumin_le_35, crp_gt_8, fc_gt_150 (flags <NA> when missing
    or undecidable), n_prior_mechanisms (distinct mechanisms - settings
    ``dtt.mechanism_groups`` - of advanced drugs started before UPA start), prior_<group> per
    ``prior_drug_groups`` (an episode of the group's classes/drugs started before UPA
    start), surgery_history (any IBD-related surgery before UPA start), perianal
    (cd_perianal, missing = false), eim_any, eim_eye/skin/joint/other (missing = false),
    steroid_at_baseline (a ``steroid_classes`` episode covering day 0), concomitant_<drug>
    per ``concomitant_drugs`` (an episode overlapping UPA treatment by >= 1 day),
    montreal_age (CD only), cd_location, cd_behavior, uc_extent, disease_duration_years
    (UPA start - diagnosis date, in years), smoking. ``assessments`` is accepted for
    interface symmetry (no baseline covariate is taken from it yet)."""
    crf = crf_or_default(crf)
    check_canonical_units(labs, crf)
    b = settings["baseline"]
    p = patient_table(patients)
    ids = p[PATIENT_KEY]
    out = p[[PATIENT_KEY, "center", "diagnosis"]].copy()
    out["age"] = p["age_at_upa_start"]
    out["male"] = p["sex"] == "M"

    bmi = pd.Series(pd.NA, index=p.index, dtype="Float64")
    if {"height_cm", "weight_kg"} <= set(p.columns):
        bmi = p["weight_kg"].astype("Float64") / (p["height_cm"].astype("Float64") / 100) ** 2
    if "bmi" in p.columns:
        bmi = bmi.fillna(p["bmi"].astype("Float64"))
    out["bmi"] = bmi
    out["bmi_le_18_5"] = (bmi <= float(b["bmi_low"])).astype("boolean")

    dx = p.set_index(PATIENT_KEY)["diagnosis"]
    base = labs_at(add_day(labs, p, "sample_date"), settings, BASELINE, dx, list(BASELINE_LAB_TESTS))
    # one chosen row per (patient, test): a dict instead of an indexed lookup per patient
    chosen = {(pid, t): (v, q) for pid, t, v, q in zip(base[PATIENT_KEY], base["test"], base["value"], base["qualifier"])}
    for test, col, flag, op, thr in (
        ("ALB", "albumin", "albumin_le_35", "<=", b["albumin_low"]),
        ("CRP", "crp", "crp_gt_8", ">", b["crp_high"]),
        ("FC", "fc", "fc_gt_150", ">", b["fc_high"]),
    ):
        vals, flags = [], []
        for pid in ids:
            r = chosen.get((pid, test))
            if r is not None:
                vals.append(float(r[0]))
                flags.append(compare(r[0], r[1], op, float(thr)))
            else:
                vals.append(None)
                flags.append(None)
        out[col] = pd.array(vals, dtype="Float64")
        out[flag] = pd.array([pd.NA if f is None else f for f in flags], dtype="boolean")

    m = medication_table(medications, p, settings, crf)
    prior = m[m["started_before_upa"]]
    mech = prior[prior["advanced"] & prior["mechanism"].notna()].groupby(PATIENT_KEY)["mechanism"].nunique()
    out["n_prior_mechanisms"] = ids.map(mech).fillna(0).astype("int64").values

    groups = dict(b.get("prior_drug_groups") or {})
    for name, spec in groups.items():
        classes, drugs = _group_members(spec)
        hit = prior[prior["drug_class"].isin(classes) | prior["drug"].isin(drugs)][PATIENT_KEY]
        out[f"prior_{name}"] = ids.isin(hit).values

    s = surgery_table(surgeries, p, crf)
    out["surgery_history"] = ids.isin(s.loc[s["ibd_related"] & s["before_upa"], PATIENT_KEY]).values
    out["perianal"] = as_bool(p["cd_perianal"]) if "cd_perianal" in p.columns else False
    for c in EIM:
        out[c] = as_bool(p[c]) if c in p.columns else False
    out["eim_any"] = out[list(EIM)].any(axis=1)

    st = m[m["drug_class"].isin(b["steroid_classes"])]
    covering = st[(st["start_date"] <= st["upa_start_date"]) & (st["end_date"] >= st["upa_start_date"])]
    out["steroid_at_baseline"] = ids.isin(covering[PATIENT_KEY]).values
    for drug in b.get("concomitant_drugs") or []:
        hit = m[(m["drug"] == drug) & m["overlaps_upa"]][PATIENT_KEY]
        out[f"concomitant_{drug}"] = ids.isin(hit).values

    out["montreal_age"] = [
        montreal_age(a, settings) if d == "CD" else None
        for a, d in zip(p.get("age_at_diagnosis", pd.Series(None, index=p.index)), p["diagnosis"])
    ]
    for c in ("cd_location", "cd_behavior", "uc_extent", "smoking"):
        out[c] = p[c] if c in p.columns else None
    if "diagnosis_date" in p.columns:
        out["disease_duration_years"] = (p["upa_start_date"] - p["diagnosis_date"]).dt.days / days_per_year(settings)
    else:
        out["disease_duration_years"] = float("nan")
    first = [PATIENT_KEY, "center", "diagnosis", "age", "male", "bmi", "bmi_le_18_5", "albumin", "albumin_le_35",
             "crp", "crp_gt_8", "fc", "fc_gt_150", "n_prior_mechanisms"]
    prior_cols = [f"prior_{k}" for k in groups]
    rest = ["surgery_history", "perianal", "eim_any", *EIM, "steroid_at_baseline",
            *[f"concomitant_{d}" for d in b.get("concomitant_drugs") or []],
            "montreal_age", "cd_location", "cd_behavior", "uc_extent", "disease_duration_years", "smoking"]
    return out[first + prior_cols + rest].reset_index(drop=True)
