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
# the lab tests eligibility reads (liver_or_kidney); callers may pass only these and the
# study's own (``lab_tests``)
LAB_TESTS = ("ALT", "AST", "EGFR")


def lab_tests(settings: dict, crf: Crf) -> tuple[str, ...]:
    """Every lab test the study's eligibility criteria read: ``LAB_TESTS`` and the lab
    tests of ``eligibility.baseline_required`` (incomplete baseline data)."""
    required = (settings["eligibility"].get("baseline_required") or [])
    return tuple(dict.fromkeys([*LAB_TESTS, *(t for t in required if t in crf.lab_tests)]))
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
    dtt: pd.DataFrame | None,
    medications: pd.DataFrame,
    assessments: pd.DataFrame,
    labs: pd.DataFrame,
    surgeries: pd.DataFrame,
    settings: dict,
    crf: Crf,
) -> pd.DataFrame:
    """Inclusion/exclusion of every screened patient (docs/STUDY_RULES.md#eligibility).

    The criteria are a catalogue; a study uses the ones its ``eligibility.order`` (and
    ``eligibility.other_order`` for ``other``) names, in that order, and only those are
    evaluated - so a study without the IOIBD DTT rule passes ``dtt=None`` and a study
    without a settings key of a criterion it does not name needs no such key.

    Reason codes of the catalogue: ``not_dtt`` (``dtt.is_dtt`` false, or the patient
    missing from ``dtt``), ``under_18`` (age at UPA start < ``eligibility.adult_age``),
    ``outside_age_range`` (age at UPA start < ``eligibility.adult_age`` or >
    ``eligibility.max_age``), ``no_prior_class_failure`` (no medication episode of a class
    in ``eligibility.prior_failure.classes`` that started before the UPA start and stopped
    for a reason in ``eligibility.prior_failure.stop_reasons``), ``baseline_hbi_below``
    (CD: no baseline HBI total, or one below ``eligibility.baseline_hbi_min``; the
    baseline HBI is the closest visit in the baseline window), ``no_followup_visit`` (no
    assessment with day > 0; with ``eligibility.post_baseline_needs_score`` it must carry
    a score item), ``insufficient_data`` (UC/CD: no baseline activity score - see
    ``has_baseline_activity`` - or no assessment with day > 0, as for
    ``no_followup_visit``), ``concomitant_biologic`` (an episode of a class in
    ``eligibility.concomitant_biologic_classes`` sharing >= 1 day with UPA treatment
    [start, stop or last follow-up]; an ongoing episode runs to the last follow-up),
    ``prior_procedure`` (a surgery with a procedure of ``eligibility.excluded_procedures``
    - e.g. ``ostomy_creation`` - before the UPA start), ``other:ibdu``,
    ``other:pregnancy_or_breastfeeding``, ``other:serious_infection``,
    ``other:malignancy``, ``other:liver_or_kidney``, ``other:prior_total_colectomy`` (a
    CRF ``total_colectomy`` procedure before UPA start), ``other:short_exposure``
    (exposure days < ``eligibility.min_exposure_days[diagnosis]``).

    Columns: patient_id, center, diagnosis, included (bool), exclusion_reason (first
    reason in the settings order, None if included), all_reasons (every reason in the
    settings order joined by '|', None if included), insufficient_data_detail (for a
    patient with the insufficient_data reason, first or not: what was missing -
    ``no_baseline_hbi`` (CD) or ``no_baseline_adapted_mayo`` (UC), and/or
    ``no_post_baseline_assessment``, joined by '|'; None otherwise)."""
    e = settings["eligibility"]
    pt = patient_table(patients)
    p = pt.set_index(PATIENT_KEY)
    ids = p.index
    order = reason_order(settings)
    a = add_day(assessments, pt, "visit_date")
    cache: dict[str, pd.Series] = {}

    def once(name, fn):
        if name not in cache:
            cache[name] = fn()
        return cache[name]

    def ids_in(frame: pd.DataFrame) -> pd.Series:
        return pd.Series(ids.isin(frame[PATIENT_KEY]), index=ids)

    def age() -> pd.Series:
        return p["age_at_upa_start"].astype("Float64")

    def post() -> pd.Series:
        post_rows = a[a["day"] > 0]
        if e.get("post_baseline_needs_score", True):  # a visit row with no score is no assessment
            scores = [c for c in POST_BASELINE_SCORES if c in post_rows.columns]
            post_rows = post_rows[post_rows[scores].notna().any(axis=1)] if scores else post_rows.iloc[:0]
        return ids_in(post_rows)

    def base() -> pd.Series:
        return has_baseline_activity(a, pt, settings).reindex(ids)

    def meds() -> pd.DataFrame:
        return medication_table(medications, pt, settings, crf)

    def surg() -> pd.DataFrame:
        return surgery_table(surgeries, pt, crf)

    def not_dtt():
        if dtt is None:
            raise ValueError("eligibility.order names not_dtt, but the study derives no DTT criteria (population rule)")
        is_dtt = dtt.set_index(PATIENT_KEY)["is_dtt"].reindex(ids)
        return ~is_dtt.astype("boolean").fillna(False).astype(bool)

    def outside_age_range():
        low = (age() < float(e["adult_age"])).fillna(False)
        high = (age() > float(e["max_age"])).fillna(False) if e.get("max_age") is not None else False
        return (low | high).astype(bool)

    def no_prior_class_failure():
        pf = e["prior_failure"]
        m = once("meds", meds)
        failed = m[m["drug_class"].isin(pf["classes"]) & m["started_before_upa"]
                   & m["stop_reason"].isin(pf["stop_reasons"])]
        return ~ids_in(failed)

    def baseline_hbi_below():
        hbi = scores_at(a, settings, BASELINE, p["diagnosis"], ("hbi",))["hbi"].reindex(ids).astype("Float64")
        # a missing baseline HBI is not shown to reach the minimum: this reason, unless the
        # study names it as incomplete baseline data (then that reason says it)
        missing_elsewhere = "incomplete_baseline" in order and "hbi" in (e.get("baseline_required") or [])
        below = (hbi < float(e["baseline_hbi_min"])).fillna(not missing_elsewhere)
        return (below & (p["diagnosis"] == "CD")).astype(bool)

    def incomplete_baseline():
        return missing_baseline(a, add_day(labs, pt, "sample_date"), pt, e["baseline_required"], settings, crf).reindex(ids)

    def concomitant_biologic():
        m = once("meds", meds)
        return ids_in(m[m["drug_class"].isin(e["concomitant_biologic_classes"]) & m["overlaps_upa"]])

    def prior_procedure():
        s = once("surg", surg)
        return ids_in(s[s["procedure"].isin(e["excluded_procedures"]) & s["before_upa"]])

    def flag(field: str) -> pd.Series:
        return as_bool(p[field]) if field in p.columns else pd.Series(False, index=ids)

    def short_exposure():
        min_exp = p["diagnosis"].map(e["min_exposure_days"]).astype("Float64")
        return (p["exposure_days"].astype("Float64") < min_exp).fillna(False).astype(bool)

    def prior_total_colectomy():
        s = once("surg", surg)
        return ids_in(s[s["total_colectomy"] & s["before_upa"]])

    scored = p["diagnosis"].isin(["UC", "CD"])
    catalogue = {
        "not_dtt": not_dtt,
        "under_18": lambda: (age() < float(e["adult_age"])).fillna(False).astype(bool),
        "outside_age_range": outside_age_range,
        "no_prior_class_failure": no_prior_class_failure,
        "baseline_hbi_below": baseline_hbi_below,
        "incomplete_baseline": incomplete_baseline,
        "no_followup_visit": lambda: ~once("post", post).astype(bool),
        "insufficient_data": lambda: scored & (~once("base", base).astype(bool) | ~once("post", post).astype(bool)),
        "concomitant_biologic": concomitant_biologic,
        "prior_procedure": prior_procedure,
        f"{OTHER}:ibdu": lambda: p["diagnosis"] == "IBDU",
        f"{OTHER}:pregnancy_or_breastfeeding": lambda: flag("pregnant_or_breastfeeding"),
        f"{OTHER}:serious_infection": lambda: flag("serious_infection_at_start"),
        f"{OTHER}:malignancy": lambda: flag("malignancy_history"),
        f"{OTHER}:liver_or_kidney": lambda: liver_or_kidney(add_day(labs, pt, "sample_date"), pt, settings, crf).reindex(ids),
        f"{OTHER}:prior_total_colectomy": prior_total_colectomy,
        f"{OTHER}:short_exposure": short_exposure,
    }
    unknown = [r for r in order if r not in catalogue]
    if unknown:
        others = sorted(k.split(":", 1)[1] for k in catalogue if k.startswith(f"{OTHER}:"))
        raise ValueError(f"eligibility.order/other_order name unknown criteria: {unknown} (known: "
                         f"{sorted(k for k in catalogue if ':' not in k)}, other: {others})")

    table = pd.DataFrame({r: catalogue[r]().reindex(ids).fillna(False).astype(bool) for r in order}, index=ids)
    all_reasons = [[r for r in order if row[r]] for _, row in table.iterrows()]
    out = pt[[PATIENT_KEY, "center", "diagnosis"]].reset_index(drop=True)
    out["included"] = [not rs for rs in all_reasons]
    out["exclusion_reason"] = [rs[0] if rs else None for rs in all_reasons]
    out["all_reasons"] = [REASON_SEPARATOR.join(rs) if rs else None for rs in all_reasons]
    if "insufficient_data" in table:
        detail = insufficient_data_detail(p["diagnosis"], once("base", base).astype(bool),
                                          once("post", post).astype(bool), table["insufficient_data"])
        out["insufficient_data_detail"] = detail.reindex(out[PATIENT_KEY]).to_numpy()
    else:
        out["insufficient_data_detail"] = None
    return out[OUTPUT_COLUMNS]


def missing_baseline(assessments: pd.DataFrame, labs: pd.DataFrame, patients: pd.DataFrame, required: list[str],
                     settings: dict, crf: Crf) -> pd.Series:
    """patient_id -> some item of ``required`` is missing at baseline
    (docs/STUDY_RULES.md#eligibility, "incomplete baseline data"): ``hbi`` (the five items
    of one visit in the baseline window), a CRF lab test (closest value in the baseline
    window) or a field of the patient record. ``assessments``/``labs`` need ``day``."""
    p = patients.set_index(PATIENT_KEY)
    dx = p["diagnosis"]
    missing = pd.Series(False, index=p.index)
    scores = [r for r in required if r == "hbi"]
    tests = [r for r in required if r in crf.lab_tests]
    fields = [r for r in required if r not in scores and r not in tests]
    unknown = [f for f in fields if f not in p.columns and f not in crf.table("patients").fields]
    if unknown:
        raise ValueError(f"eligibility.baseline_required names unknown items: {unknown} "
                         "(hbi, a CRF lab test, or a patients field)")
    if scores:
        missing |= scores_at(assessments, settings, BASELINE, dx, ("hbi",))["hbi"].reindex(p.index).isna()
    if tests:
        base = labs_at(labs, settings, BASELINE, dx, tests)
        have = base.dropna(subset=["value"]).groupby(PATIENT_KEY)["test"].nunique()
        missing |= have.reindex(p.index).fillna(0) < len(tests)
    for f in fields:
        missing |= p[f].isna() if f in p.columns else True
    return missing.astype(bool)


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
