"""Baseline characteristics and covariates (STUDY.md "Statistics": Table 1, predictors,
persistence covariates; derivations per study.yaml ``baseline``)."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.labs import check_canonical_units, compare
from ibd_pipeline.clinical.records import (
    PATIENT_KEY,
    as_bool,
    days_per_year,
    medication_table,
    patient_table,
    surgery_table,
)
from ibd_pipeline.clinical.windows import BASELINE, add_day, labs_at, scores_at
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
    crf: Crf,
) -> pd.DataFrame:
    """One row of baseline characteristics per (included) patient, derived per study.yaml
    ``baseline`` (STUDY.md "Statistics": Table 1, predictor and Cox covariates).

    age (completed years at UPA start), male, bmi (weight / height^2; the ``bmi`` column when
    height or weight is missing), the yes/no flags of ``baseline.flags`` (each its source -
    bmi, age, disease duration, the baseline HBI (column baseline_hbi) or a baseline lab,
    whose value column comes first: closest to day 0 in the baseline window, the number as
    reported, a qualifier only used by the flag - compared with its ``baseline`` threshold;
    <NA> when missing or undecidable; e.g. bmi_le_18_5, albumin_le_35), n_prior_mechanisms (distinct mechanisms - settings
    ``dtt.mechanism_groups`` - of advanced drugs started before UPA start), prior_<group> per
    ``prior_drug_groups`` (an episode of the group's classes/drugs started before UPA
    start), surgery_history (any IBD-related surgery before UPA start), perianal
    (cd_perianal, missing = false), eim_any, eim_eye/skin/joint/other (missing = false),
    steroid_at_baseline (a ``steroid_classes`` episode covering day 0), concomitant_<drug>
    per ``concomitant_drugs`` (an episode overlapping UPA treatment by >= 1 day),
    montreal_age (CD only), cd_location, cd_behavior, uc_extent, disease_duration_years
    (UPA start - diagnosis date, in years), smoking. ``assessments`` is accepted for
    interface symmetry (no baseline covariate is taken from it yet)."""
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
    if "diagnosis_date" in p.columns:
        duration = (p["upa_start_date"] - p["diagnosis_date"]).dt.days / days_per_year(settings)
    else:
        duration = pd.Series(float("nan"), index=p.index)

    # the yes/no flags of the settings (baseline.flags: source compared with a baseline
    # threshold); a lab flag's value column (``what`` in lower case) precedes it
    flag_specs = dict(b.get("flags") or {})
    dx = p.set_index(PATIENT_KEY)["diagnosis"]
    tests = [f["source"].split(":", 1)[1] for f in flag_specs.values() if f["source"].startswith("lab:")]
    base = labs_at(add_day(labs, p, "sample_date"), settings, BASELINE, dx, tests) if tests else None
    # one chosen row per (patient, test): a dict instead of an indexed lookup per patient
    chosen = {} if base is None else {
        (pid, t): (v, q) for pid, t, v, q in zip(base[PATIENT_KEY], base["test"], base["value"], base["qualifier"])}
    flag_cols: list[str] = []
    late_flags: list[tuple] = []  # flags of a count derived below (n_prior_advanced_drugs)
    hbi = None
    for flag, f in flag_specs.items():
        op, thr, src = f["compare"], float(b[f["threshold"]]), f["source"]
        if src.startswith("lab:"):
            test, col = src.split(":", 1)[1], str(f["what"]).lower()
            vals, flags = [], []
            for pid in ids:
                r = chosen.get((pid, test))
                if r is not None:
                    vals.append(float(r[0]))
                    flags.append(compare(r[0], r[1], op, thr))
                else:
                    vals.append(None)
                    flags.append(None)
            out[col] = pd.array(vals, dtype="Float64")
            out[flag] = pd.array([pd.NA if x is None else x for x in flags], dtype="boolean")
            flag_cols += [col, flag]
            continue
        if src == "hbi":
            if hbi is None:
                sc = scores_at(add_day(assessments, p, "visit_date"), settings, BASELINE, dx, ("hbi",))
                hbi = ids.map(sc["hbi"]).astype("Float64")
                out["baseline_hbi"] = hbi.values
                flag_cols.append("baseline_hbi")
            value = hbi
        elif src == "n_prior_advanced_drugs":
            late_flags.append((flag, op, thr))
            continue
        else:
            value = {"bmi": bmi, "age": out["age"].astype("Float64"), "disease_duration_years": duration}[src]
        flagged = (value <= thr) if op == "<=" else (value > thr)
        out[flag] = pd.array(flagged, dtype="boolean")
        flag_cols.append(flag)

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
    # on demand (a study's covariates, Table 1 rows or flags name them): the number of
    # distinct advanced drugs started before UPA, an IBD-related bowel resection before UPA
    wanted = set((settings.get("statistics") or {}).get("covariates") or []) | {
        v["name"] for v in (settings.get("statistics") or {}).get("table1_variables") or []} | {
        f["source"] for f in flag_specs.values()}
    on_demand = []
    if "n_prior_advanced_drugs" in wanted:
        n_adv = prior[prior["advanced"]].groupby(PATIENT_KEY)["drug"].nunique()
        out["n_prior_advanced_drugs"] = ids.map(n_adv).fillna(0).astype("int64").values
        on_demand.append("n_prior_advanced_drugs")
    if "prior_bowel_resection" in wanted:
        out["prior_bowel_resection"] = ids.isin(s.loc[s["bowel_resection"] & s["before_upa"], PATIENT_KEY]).values
        on_demand.append("prior_bowel_resection")
    for flag, op, thr in late_flags:
        value = out["n_prior_advanced_drugs"].astype("Float64")
        out[flag] = pd.array((value <= thr) if op == "<=" else (value > thr), dtype="boolean")
        on_demand.append(flag)
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
    out["disease_duration_years"] = duration.values
    bmi_flags = [c for c in flag_cols if flag_specs.get(c, {}).get("source") == "bmi"]
    first = [PATIENT_KEY, "center", "diagnosis", "age", "male", "bmi", *bmi_flags,
             *[c for c in flag_cols if c not in bmi_flags], "n_prior_mechanisms"]
    prior_cols = [f"prior_{k}" for k in groups] + on_demand
    rest = ["surgery_history", "perianal", "eim_any", *EIM, "steroid_at_baseline",
            *[f"concomitant_{d}" for d in b.get("concomitant_drugs") or []],
            "montreal_age", "cd_location", "cd_behavior", "uc_extent", "disease_duration_years", "smoking"]
    return out[first + prior_cols + rest].reset_index(drop=True)
