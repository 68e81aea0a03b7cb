"""Inclusion and exclusion (docs/STUDY_RULES.md#eligibility): every criterion is
evaluated for every screened patient; an excluded patient gets the first failed one in
the settings order (``eligibility.order``, with ``other`` expanded by
``eligibility.other_order``), and ``all_reasons`` lists every failed one."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.labs import compare
from ibd_pipeline.clinical.records import (
    PATIENT_KEY,
    as_bool,
    crf_or_default,
    medication_table,
    patient_table,
    surgery_table,
)
from ibd_pipeline.clinical.windows import BASELINE, add_day, labs_at, scores_at
from ibd_pipeline.config import Crf

OTHER = "other"
OUTPUT_COLUMNS = ["patient_id", "center", "diagnosis", "included", "exclusion_reason", "all_reasons", "insufficient_data_detail"]
# what made a scored (UC/CD) patient's data insufficient (docs/STUDY_RULES.md#eligibility, 3)
MISSING_BASELINE = {"CD": "no_baseline_hbi", "UC": "no_baseline_adapted_mayo"}
MISSING_POST_BASELINE = "no_post_baseline_assessment"
REASON_SEPARATOR = "|"
# the lab tests eligibility reads (liver_or_kidney); callers may pass only these
LAB_TESTS = ("ALT", "AST", "EGFR")
# the score items of an assessment (STUDY.md "Inclusion and exclusion" 3: a post-baseline
# assessment is a visit that scored something - clinical or endoscopic)
POST_BASELINE_SCORES = ("hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications",
                        "mayo_stool", "mayo_bleeding", "mayo_pga", "mayo_endo", "ses_cd", "rutgeerts")


def reason_order(settings: dict) -> list[str]:
    """The exclusion reason codes in the settings order: ``eligibility.order`` with
    ``other`` replaced by ``other:<name>`` for each ``eligibility.other_order`` entry
    (docs/STUDY_RULES.md#eligibility: each excluded patient gets the first reason)."""
    e = settings["eligibility"]
    out: list[str] = []
    for r in e["order"]:
        if r == OTHER:
            out.extend(f"{OTHER}:{o}" for o in e["other_order"])
        else:
            out.append(r)
    return out


def has_baseline_activity(
    assessments: pd.DataFrame, patients: pd.DataFrame, settings: dict
) -> pd.Series:
    """patient_id -> has a baseline activity score (docs/STUDY_RULES.md#eligibility, 3):
    CD: an HBI total (five items of one visit) in the baseline window; UC: an adapted Mayo -
    stool + bleeding from the closest baseline visit having both AND the Mayo endoscopic
    subscore from the closest endoscopy in the baseline endoscopy window. Other diagnoses
    are not scored (True: they are not 'insufficient data')."""
    dx = patients.set_index(PATIENT_KEY)["diagnosis"]
    sc = scores_at(assessments, settings, BASELINE, dx, ("hbi", "mayo_sb", "mayo_endo"))
    cd = sc["hbi"].notna()
    uc = sc["mayo_stool"].notna() & sc["mayo_bleeding"].notna() & sc["mayo_endo"].notna()
    return pd.Series(
        [bool(cd[p]) if d == "CD" else bool(uc[p]) if d == "UC" else True for p, d in dx.items()],
        index=dx.index,
    )


def liver_or_kidney(labs: pd.DataFrame, patients: pd.DataFrame, settings: dict, crf: Crf) -> pd.Series:
    """patient_id -> baseline ALT or AST > ``eligibility.liver_uln_multiple`` x the upper
    normal limit of the CRF lab_tests, or eGFR < ``eligibility.egfr_min``
    (docs/STUDY_RULES.md#eligibility, 5); each baseline lab is the closest to day 0 in the baseline
    window. A qualified value that cannot be decided ("<200" against 120) does not exclude."""
    e = settings["eligibility"]
    dx = patients.set_index(PATIENT_KEY)["diagnosis"]
    base = labs_at(labs, settings, BASELINE, dx, list(LAB_TESTS))
    hit = pd.Series(False, index=dx.index)
    for _, r in base.iterrows():
        if r["test"] == "EGFR":
            bad = compare(r["value"], r["qualifier"], "<", float(e["egfr_min"]))
        else:
            uln = crf.lab_tests[r["test"]]["normal"][1]
            bad = compare(r["value"], r["qualifier"], ">", float(e["liver_uln_multiple"]) * float(uln))
        if bad:
            hit[r[PATIENT_KEY]] = True
    return hit


def eligibility(
    patients: pd.DataFrame,
    dtt: pd.DataFrame,
    medications: pd.DataFrame,
    assessments: pd.DataFrame,
    labs: pd.DataFrame,
    surgeries: pd.DataFrame,
    settings: dict,
    crf: Crf | None = None,
) -> pd.DataFrame:
    """Inclusion/exclusion of every screened patient (docs/STUDY_RULES.md#eligibility).

    Reason codes: ``not_dtt`` (``dtt.is_dtt`` false, or the patient missing from ``dtt``), ``under_18`` (age at UPA start <
    ``eligibility.adult_age``), ``insufficient_data`` (UC/CD: no baseline activity score -
    see ``has_baseline_activity`` - or no assessment with day > 0; with
    ``eligibility.post_baseline_needs_score``, default true, that assessment must carry
    a score item of ``POST_BASELINE_SCORES``: a visit row without any is no assessment), ``concomitant_biologic``
    (an episode of a class in ``eligibility.concomitant_biologic_classes`` sharing >= 1 day
    with UPA treatment [start, stop or last follow-up]; an ongoing episode runs to the last
    follow-up), ``other:ibdu``, ``other:pregnancy_or_breastfeeding``,
    ``other:serious_infection``, ``other:malignancy``, ``other:liver_or_kidney``,
    ``other:prior_total_colectomy`` (a CRF ``total_colectomy`` procedure before UPA start),
    ``other:short_exposure`` (exposure days < ``eligibility.min_exposure_days[diagnosis]``).

    Columns: patient_id, center, diagnosis, included (bool), exclusion_reason (first
    reason in the settings order, None if included), all_reasons (every reason in the
    settings order joined by '|', None if included), insufficient_data_detail (for a
    patient with the insufficient_data reason, first or not: what was missing -
    ``no_baseline_hbi`` (CD) or ``no_baseline_adapted_mayo`` (UC), and/or
    ``no_post_baseline_assessment``, joined by '|'; None otherwise)."""
    crf = crf_or_default(crf)
    e = settings["eligibility"]
    pt = patient_table(patients)
    p = pt.set_index(PATIENT_KEY)
    ids = p.index
    reasons: dict[str, pd.Series] = {}

    is_dtt = dtt.set_index(PATIENT_KEY)["is_dtt"].reindex(ids)
    reasons["not_dtt"] = ~is_dtt.astype("boolean").fillna(False).astype(bool)
    age = p["age_at_upa_start"].astype("Float64")
    reasons["under_18"] = (age < float(e["adult_age"])).fillna(False).astype(bool)

    a = add_day(assessments, pt, "visit_date")
    scored = p["diagnosis"].isin(["UC", "CD"])
    post_rows = a[a["day"] > 0]
    if e.get("post_baseline_needs_score", True):  # a visit row with no score is no assessment
        scores = [c for c in POST_BASELINE_SCORES if c in post_rows.columns]
        post_rows = post_rows[post_rows[scores].notna().any(axis=1)] if scores else post_rows.iloc[:0]
    post = pd.Series(ids.isin(post_rows[PATIENT_KEY]), index=ids)
    base = has_baseline_activity(a, pt, settings).reindex(ids)
    reasons["insufficient_data"] = scored & (~base.astype(bool) | ~post.astype(bool))

    m = medication_table(medications, pt, settings, crf)
    conc = m[m["drug_class"].isin(e["concomitant_biologic_classes"]) & m["overlaps_upa"]]
    reasons["concomitant_biologic"] = pd.Series(ids.isin(conc[PATIENT_KEY]), index=ids)

    def flag(field: str) -> pd.Series:
        return as_bool(p[field]) if field in p.columns else pd.Series(False, index=ids)

    lab = add_day(labs, pt, "sample_date")
    s = surgery_table(surgeries, pt, crf)
    colectomy = s[s["total_colectomy"] & s["before_upa"]]
    min_exp = p["diagnosis"].map(e["min_exposure_days"]).astype("Float64")
    other = {
        "ibdu": p["diagnosis"] == "IBDU",
        "pregnancy_or_breastfeeding": flag("pregnant_or_breastfeeding"),
        "serious_infection": flag("serious_infection_at_start"),
        "malignancy": flag("malignancy_history"),
        "liver_or_kidney": liver_or_kidney(lab, pt, settings, crf).reindex(ids),
        "prior_total_colectomy": pd.Series(ids.isin(colectomy[PATIENT_KEY]), index=ids),
        "short_exposure": (p["exposure_days"].astype("Float64") < min_exp).fillna(False).astype(bool),
    }
    unknown = set(e["other_order"]) - set(other)
    if unknown:
        raise ValueError(f"eligibility.other_order names unknown criteria: {sorted(unknown)}")
    for name, hit in other.items():
        reasons[f"{OTHER}:{name}"] = hit
    order = reason_order(settings)
    unknown = set(order) - set(reasons)
    if unknown:
        raise ValueError(f"eligibility.order names unknown criteria: {sorted(unknown)}")

    table = pd.DataFrame({r: reasons[r].reindex(ids).fillna(False).astype(bool) for r in order}, index=ids)
    all_reasons = [[r for r in order if row[r]] for _, row in table.iterrows()]
    out = pt[[PATIENT_KEY, "center", "diagnosis"]].reset_index(drop=True)
    out["included"] = [not rs for rs in all_reasons]
    out["exclusion_reason"] = [rs[0] if rs else None for rs in all_reasons]
    out["all_reasons"] = [REASON_SEPARATOR.join(rs) if rs else None for rs in all_reasons]
    out["insufficient_data_detail"] = insufficient_data_detail(
        p["diagnosis"], base.astype(bool), post.astype(bool), table["insufficient_data"] if "insufficient_data" in table else None
    ).reindex(out[PATIENT_KEY]).to_numpy()
    return out[OUTPUT_COLUMNS]


def insufficient_data_detail(diagnosis: pd.Series, has_baseline: pd.Series, has_post: pd.Series, insufficient) -> pd.Series:
    """patient_id -> what was missing for the ``insufficient_data`` reason (None where the
    reason does not apply): the baseline score of the diagnosis and/or any assessment
    after day 0, in that order, joined by '|'."""
    out = {}
    for pid, dx in diagnosis.items():
        if insufficient is None or not bool(insufficient.get(pid, False)):
            out[pid] = None
            continue
        missing = []
        if not has_baseline[pid]:
            missing.append(MISSING_BASELINE.get(dx, f"no_baseline_score_{dx}"))
        if not has_post[pid]:
            missing.append(MISSING_POST_BASELINE)
        out[pid] = REASON_SEPARATOR.join(missing) or None
    return pd.Series(out, dtype=object)
