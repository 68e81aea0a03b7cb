"""The synthetic single-center CD cohort (First Affiliated Hospital of Anhui Medical
University, ``ahmu``), calibrated by construction to its published figures.

Public API::

    generate_single_center(published, settings, seed) -> SingleCenterCohort
        .frames  canonical CRF frames (patients, medications, surgeries, assessments, labs,
                 adverse_events, dose_episodes, pk_samples; ``mrn``, round A)
        .truth   one row per screened patient: inclusion, exclusion reason and the designed
                 latent states (for tests)
        .design  the calibration achieved (Kaplan-Meier, follow-up quartiles, ...)

``published`` is ``studies/single_center_cd/published_figures.yaml``, ``settings`` the study
settings ``studies/single_center_cd/study.yaml`` (read through :func:`flat_settings`:
``study``, ``eligibility``, ``timepoints``, ``endpoints``, ``persistence``, ``baseline``,
``dosing``, ``synth``). Every
count comes from ``published`` and every rule (window, threshold, day) from ``settings``; the
only choices made here are synthetic ones (named constants below), documented where made.

How the figures are met (rules of the study's STUDY.md applied exactly):

* timeline (:mod:`.sc_timeline`): stops and censorings per gap between the weeks give the
  week-k sets and their stopped-before counts exactly; a seeded search puts the days so the
  Kaplan-Meier persistence meets the published months and the albumin / BMI strata follow
  their curves;
* Table 1: every count by an exact-size draw; medians and quartiles by designed samples
  (:func:`.sc_values.designed_sample`); BMI <= 18.5 through height and weight;
* clinical states per week: a latent responsiveness ``g`` (log odds ratios of the published
  multivariable week-12 model for BMI, behaviour and albumin, plus logistic noise) ranks the
  evaluated patients; the top ``n`` remit, the next respond; stopped patients are
  non-responders (the noise is redrawn until the week-12 terms of those covariates hold in
  direction and side of alpha);
* model terms (:mod:`.sc_calibrate`): the other covariates' values are swapped between
  patients (every Table 1 count, median and quartile kept) until each published week-12
  logistic and discontinuation Cox term holds in direction and side of alpha as the
  pipeline fits it (``design["model_terms"]``);
* endoscopy, biomarkers, safety, surgery and PK: exact-count assignments; the PK
  concentrations by the published medians and quartiles per group, their unpublished tails
  drawn inward from the Tukey fences until the two published rank-sum comparisons
  (by remission, by response) hold on their side of alpha (``PK_FENCES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import load_crf
from ..study_model import COX_SELECTION_DEFAULT
from ._util import day_of, largest_remainder, rng_for, years_before
from .names import chinese_names, mobile_numbers, record_numbers
from .sc_calibrate import (
    PUBLISHED_TERMS,
    ModelTerms,
    Target,
    Unit,
    calibrate_covariates,
    covariate,
    model_targets,
    penalty,
)
from .sc_timeline import design_timeline
from .sc_values import designed_sample, exact_subset, hbi_items

CENTER = "ahmu"

# ----------------------------------------------------------------- synthetic choices
# (none is a figure of the paper; each shapes the synthetic patients only)
NOISE_SD_WEEK = 0.6        # per-week noise added to g when ranking the clinical states
INEFFICACY_SHIFT = 3.0     # inefficacy stoppers rank lower at their visits and endoscopy before the stop
DIRECTION_TRIES = 200      # redraws of the latent noise until the week-12 model's designed terms hold
CALIBRATION_STEPS = 6000   # swaps tried at most by the model-term calibration (sc_calibrate)
STOP_AE_LEAD_DAYS = (0, 3)  # an AE that ends UPA starts this many days before the stop
EXCLUDED_FU_DAYS = (120, 400)
EXCLUSION_RULES = ("outside_age_range", "no_prior_class_failure", "baseline_hbi_below", "incomplete_baseline",
                   "concomitant_biologic", "prior_procedure", "no_followup_visit")  # the rules _realize_excluded can break
MAINTENANCE_VISIT_DAYS = 84  # clinic visits after the last scheduled week (every 12 weeks)

# published names of the week-12 logistic / Cox covariates -> designed patient columns
COVARIATE_COLUMNS = {
    "bmi_le_18_5": "bmi_low",
    "behavior_B2_vs_B1": "b2",
    "behavior_B3_vs_B1": "b3",
    "alb_le_35": "alb_low",
}
# published emergency-surgery indications -> CRF codes (surgeries.indication) and procedures
INDICATIONS = {
    "obstruction": ("obstruction", "small_bowel_resection"),
    "perforation": ("perforation", "ileocecal_resection"),
    "bleeding": ("bleeding", "segmental_colectomy"),
}
SITE_OF_LOCATION = {"L1": "ileum", "L2": "colon", "L3": "ileocecal", "L4": "other"}
FISTULA_PROCEDURE = {"ileum": "small_bowel_resection", "colon": "segmental_colectomy"}
STEROIDS = ["prednisone", "methylprednisolone"]
IMMUNOMODULATORS = ["azathioprine", "methotrexate", "thalidomide"]


# Where the paper is inconsistent or silent, the reading the cohort reproduces (``design["readings"]``;
# the report's "published vs derived" can cite them). Keys name the published_figures.yaml entry.
READINGS = {
    "flow.analysis_sets.effectiveness.week24": "the printed 'not yet reached week 24' is counted from the week-12 "
    "set: not yet at week 24 = n - N of the 108 (not_yet_reached_of_108)",
    "flow.analysis_sets.endoscopy": "the patients with a follow-up endoscopy are all in the week-24 set and the "
    "excluded_no_followup_endoscopy are the rest of that set; each of them had a baseline endoscopy",
    "endpoints.endoscopic": "the endoscopic remitters are among the responders; the remission percentage is of all "
    "patients with a follow-up endoscopy",
    "safety.ae_leading_to_discontinuation": "n as printed (one patient per adverse_event term of the stop "
    "reasons); Table 4's percentage is not reproduced (the pipeline prints n / 108)",
    "cox_discontinuation.multivariable": "the printed model: albumin and BMI (the univariate p < 0.05 variables) "
    "entered together, BMI's p given albumin at or above 0.05 (forward selection at 0.05 would leave BMI out); the "
    "timeline's BMI and albumin strata are chosen so that the four Cox terms of the two hold",
    "logistic_week12_clinical_remission": "the univariate p < 0.05 variables entered together; albumin's printed "
    "CI is impossible next to its OR, so only directions and sides of p 0.05 are reproduced (as for every term)",
    "persistence.km_by_bmi": "no BMI lies within 0.2 of the threshold, so '<=' (text, tables) and '<' (Figure 5 "
    "legend) give the same groups; the two published BMI curves, mixed in the published group sizes, lie a few "
    "points below the overall curve at month 9, so they are followed only roughly (the overall curve is kept)",
    "persistence.km_percent": "the stops between the week-12 visit and month 3 that the month-3 rate needs fall "
    "after the week-12 target (the patient was seen at week 12)",
    "biomarkers": "complete case: the patients of the week's set with the test in the week's window; a patient "
    "may have FC without CRP (the combined N is below the FC N)",
    "persistence.km_by_albumin": "the albumin <= 35 group size (not published) mixes the published albumin curves "
    "into the overall curve, capped by the published lower quartile (design['n_alb_low'])",
    "safety.fibrinogen_cases": "the month-3 case falls before the end of induction (dosing.induction_days)",
    "safety.cd_related_surgery": "surgery neither ends UPA nor makes a non-responder (the paper's stop reasons are "
    "only inefficacy and AEs): the operated patients stay on UPA",
    "study.data_cutoff": "not stated; a patient still on UPA is followed to the settings' cut-off",
}


@dataclass
class SingleCenterCohort:
    frames: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    design: dict = field(default_factory=dict)


# ------------------------------------------------------------------------ settings
def flat_settings(settings: dict) -> dict:
    """The settings the generator reads (studies/single_center_cd/study.yaml, the typed
    study model's keys), flat, with a clear error naming a missing key."""

    def get(*path):
        cur = settings
        for p in path:
            if not isinstance(cur, dict) or p not in cur or cur[p] is None:
                raise KeyError(f"study settings: missing {'.'.join(path)} (studies/single_center_cd/study.yaml)")
            cur = cur[p]
        return cur

    period = get("study", "period")
    cutoff = day_of(str(get("study", "data_cutoff")))
    p0, p1 = day_of(str(period["start"])), day_of(str(period["end"]))
    if not p0 <= p1 < cutoff:
        raise ValueError(f"study.period {period} must end before study.data_cutoff {get('study', 'data_cutoff')}")
    targets = get("timepoints", "targets")
    weeks = []
    for tp in get("timepoints", "clinical"):
        day = targets[tp]
        if not isinstance(day, int) or day % 7:
            raise ValueError(f"timepoints.targets.{tp}: the generator needs a whole week (a day count divisible by 7), not {day!r}")
        weeks.append(day // 7)
    cd, bio = get("endpoints", "CD"), get("endpoints", "biochemical")
    return {
        "center": get("synth", "center"),
        "period_start": p0,
        "period_end": p1,
        "cutoff": cutoff,
        "min_followup_days": cutoff - p1,
        "max_followup_days": cutoff - p0,
        "age_years": [int(get("eligibility", "adult_age")), int(get("eligibility", "max_age"))],
        "hbi_min": int(get("eligibility", "baseline_hbi_min")),
        "anti_tnf_stop_reasons": list(get("eligibility", "prior_failure", "stop_reasons")),
        "ostomy_procedures": list(get("eligibility", "excluded_procedures")),
        "exclusion_order": list(get("eligibility", "order")),
        "weeks": weeks,
        "window_halfwidth_days": int(get("timepoints", "window_halfwidth")),
        "baseline_window": [int(x) for x in get("timepoints", "baseline_window")],
        "baseline_endoscopy_window": [int(x) for x in get("timepoints", "baseline_endoscopy_window")],
        "prior_biologic_window_days": int(get("baseline", "recent_biologic_days")),
        "remission_hbi_max": int(cd["remission_hbi_max"]),
        "response_drop_min": int(cd["response_hbi_drop_points"]),
        "endo_remission_max": int(cd["endoscopic_remission_ses_cd_max"]),
        "endo_response_reduction": float(cd["endoscopic_response_drop_pct"]) / 100.0,
        "crp_max": float(get("endpoints", "biochemical", "crp_max")),
        "fc_max": float(bio["fc_max"]),
        "km_months": [float(m) for m in get("persistence", "km_months")],
        "days_per_month": float(get("persistence", "days_per_month")),
        "alb_le": float(get("baseline", "albumin_low")),
        "bmi_le": float(get("baseline", "bmi_low")),
        "dose": {k: int(get("dosing", k)) for k in ("induction_mg", "maintenance_mg", "deescalation_mg")},
        "induction_days": int(get("dosing", "induction_days")),
        "excluded_per_reason": int(get("synth", "excluded_per_reason")),
        "visit_offset_days": int(get("synth", "visit_offset_days")),
        "assay_limits": {k: tuple(v) for k, v in get("synth", "assay_limits").items()},
        "pk_hours": [float(x) for x in get("synth", "pk_hours_since_dose")],
        "abstractor_id": str(get("synth", "abstractor_id")),
        # the model terms (sc_calibrate): covariates, flags and their thresholds, the entry rules
        "model_flags": dict(get("baseline", "flags")),
        "thresholds": {k: v for k, v in get("baseline").items() if isinstance(v, (int, float))},
        "logistic_covariates": list(get("statistics", "covariates")),
        "cox_covariates": list((settings.get("statistics") or {}).get("cox_covariates") or get("statistics", "covariates")),
        "alpha": float(get("statistics", "alpha")),
        "entry_p": float(get("statistics", "cox_entry_p")),
        "cox_selection": str((settings.get("statistics") or {}).get("cox_selection") or COX_SELECTION_DEFAULT),
        "events_per_variable": float(get("statistics", "events_per_variable")),
        "predictor_timepoint": str(get("statistics", "predictor_outcome", "timepoint")),
    }


def _week_key(w: int) -> str:
    return f"week{w}"


def alb_low_count(pub: dict, n: int) -> int:
    """Patients with baseline albumin <= 35 g/L (not published): the share that mixes the
    published albumin strata into the overall Kaplan-Meier curve (mean over the months),
    at most the count below the published lower quartile of albumin."""
    per = pub["persistence"]
    ov, (lo, hi) = per["km_percent"], [c for c in per["km_by_albumin"].values() if isinstance(c, dict)]
    w = [(hi[k] - ov[k]) / (hi[k] - lo[k]) for k in ov if hi[k] != lo[k]]
    q1_pos = int(np.floor((n - 1) * 0.25)) + 1
    return int(min(round(float(np.mean(w)) * n), q1_pos))


def _pct_rows(d: dict) -> dict[str, int]:
    return {k: int(v["n"]) for k, v in d.items() if isinstance(v, dict) and "n" in v}


def check_published(pub: dict) -> None:
    """Published partitions must add up before anything is designed (ValueError naming the
    entry and both numbers)."""
    n = int(pub["flow"]["included"])
    base = pub["baseline"]
    parts = {
        "baseline.cd_location": (sum(_pct_rows(base["cd_location"]).values()), n),
        "baseline.cd_behavior": (sum(_pct_rows(base["cd_behavior"]).values()), n),
        "baseline.biologics_exposed_count": (sum(_pct_rows(base["biologics_exposed_count"]).values()), n),
        "baseline.biologic_within_2_months_before_start": (
            sum(_pct_rows(base["biologic_within_2_months_before_start"]).values()), n),
        "persistence.reasons": (sum(_pct_rows(pub["persistence"]["reasons"]).values()),
                                int(pub["persistence"]["discontinued"]["n"])),
        "safety.by_term": (sum(_pct_rows(pub["safety"]["by_term"]).values()), int(pub["safety"]["events_total"])),
    }
    for where, (got, want) in parts.items():
        if got != want:
            raise ValueError(f"published figures: {where} add up to {got}, expected {want}")


# ------------------------------------------------------------------ the generator
def generate_single_center(published: dict, settings: dict, seed: int) -> SingleCenterCohort:
    s = flat_settings(settings)
    crf = load_crf()
    n = int(published["flow"]["included"])
    check_published(published)
    R = lambda *names: rng_for(seed, "single_center", *names)  # noqa: E731
    base = published["baseline"]

    # 1. timeline: stop / censoring days, albumin and BMI strata
    n_alb = alb_low_count(published, n)
    n_bmi = int(base["bmi_le_18_5"]["n"])
    cox_terms = [t for t in model_targets(published, s["alpha"]) if t.model == "cox" and cox_reachable(t, s)]
    tl = design_timeline(R("timeline"), published, s, n, n_alb, n_bmi, cox_terms)
    P = pd.DataFrame(
        {
            "day": tl.day,
            "stopped": tl.stopped,
            "gap": tl.gap,
            "alb_low": tl.alb_low,
            "bmi_low": tl.bmi_low,
        }
    )
    # start day: follow-up of a patient on UPA runs to the cut-off; a stopper starts in the period
    rng = R("start")
    P["start"] = np.where(
        P["stopped"],
        [int(rng.integers(s["period_start"], min(s["period_end"], s["cutoff"] - d) + 1)) for d in P["day"]],
        s["cutoff"] - P["day"],
    )

    # 2. stop reasons: the AE stops (one per published term), the rest inefficacy
    per = published["persistence"]
    ae_stop_terms = list(per["reasons"]["adverse_event"]["terms"])
    rng = R("stop_reason")
    stop_idx = np.flatnonzero(P["stopped"])
    ae_stoppers = rng.choice(stop_idx, size=len(ae_stop_terms), replace=False)
    P["stop_reason"] = np.where(P["stopped"], "inefficacy", None).astype(object)
    P["ae_stop_term"] = None
    for i, term in zip(ae_stoppers, ae_stop_terms):
        P.loc[i, "stop_reason"] = "adverse_event"
        P.loc[i, "ae_stop_term"] = term
    if int((P["stop_reason"] == "inefficacy").sum()) != int(per["reasons"]["inefficacy"]["n"]):
        raise ValueError("published stop reasons do not add up to the discontinuations")

    # 3. CD-related surgery during follow-up (plan first: it constrains behaviour and biologics)
    surg = _plan_surgeries(R("surgery"), published, s, P)

    # 4. Table 1 covariates
    _design_covariates(R("covariates"), published, s, P, surg)
    _design_biologics(R("biologics"), published, s, P, crf, surg)

    # 5. clinical states per week (latent g), checked against the week-12 model directions
    states, g = _design_states(seed, published, s, P)
    P["g"] = g
    # 5b. the other covariates of the models: values moved between patients until the
    # published logistic and Cox terms hold (direction, side of alpha)
    model_terms = _calibrate_terms(R("model_terms"), published, s, P, states, surg)

    # 6. endoscopy, biomarkers, AEs and dose episodes, PK
    endo = _design_endoscopy(R("endoscopy"), published, s, P)
    labs_w = _design_biomarkers(R("biomarkers"), published, s, P)
    aes = _design_aes(R("aes"), published, s, P)

    # 7. the screened patients who fail a population rule
    excluded = _design_excluded(s)

    frames, truth = _realize(seed, published, s, crf, P, states, endo, labs_w, aes, surg, excluded)
    years = float(P["day"].sum()) / 365.25
    design = {
        "km": tl.km,
        "timeline_cox_penalty": tl.cox_penalty,
        "n_alb_low": n_alb,
        "n_bmi_low": n_bmi,
        "excluded": len(excluded),
        "patient_years": round(years, 1),
        "stops_per_100_patient_years": round(100 * float(P["stopped"].sum()) / years, 1),
        "model_terms": model_terms,
        "readings": {
            **READINGS,
            "persistence.discontinuation_per_100_patient_years": (
                f"not reproduced: the published curve, follow-up quartiles and start period give "
                f"{years:.0f} patient-years, {100 * float(P['stopped'].sum()) / years:.0f} stops per 100 patient-years"
            ),
        },
    }
    return SingleCenterCohort(frames=frames, truth=truth, design=design)


# --------------------------------------------------------------------- surgeries
def _plan_surgeries(rng, pub: dict, s: dict, P: pd.DataFrame) -> list[dict]:
    cs = pub["safety"]["cd_related_surgery"]
    n_el = int(cs["elective_intestinal_fistula"])
    indications = list(cs["emergency"]["indications"])
    k = int(cs["patients"]["n"])
    if n_el + len(indications) != k:
        raise ValueError("published CD-related surgeries: elective + emergency != patients")
    t = cs["time_from_start_months"]
    days = designed_sample(rng, k, *(np.array([t["iqr"][0], t["median"], t["iqr"][1]]) * s["days_per_month"]),
                           lo=30, decimals=0).astype(int)
    rng.shuffle(days)
    out, used = [], set()
    two_plus = exact_subset(rng, k, int(cs["prior_2plus_biologics"]))
    for j in range(k):
        elective = j < n_el
        ok = np.flatnonzero((~P["stopped"]) & (P["day"] >= days[j] + 14))
        ok = [i for i in ok if i not in used]
        if not ok:
            raise ValueError(f"no patient on UPA followed {days[j] + 14} days for a CD-related surgery")
        i = int(rng.choice(ok))
        used.add(i)
        if elective:
            urgency, indication, proc = "elective", "fistula", None
        else:
            name = indications[j - n_el]
            code = next((c for c in INDICATIONS if c in name), "other")
            urgency, (indication, proc) = "emergency", INDICATIONS.get(code, ("other", "other"))
        out.append({"i": i, "day": int(days[j]), "urgency": urgency, "indication": indication,
                    "procedure": proc, "two_plus": bool(two_plus[j])})
    return out


# ------------------------------------------------------------------- covariates
def _design_covariates(rng, pub: dict, s: dict, P: pd.DataFrame, surg: list[dict]) -> None:
    base = pub["baseline"]
    n = len(P)
    elective = [x["i"] for x in surg if x["urgency"] == "elective"]
    P["male"] = exact_subset(rng, n, int(base["male"]["n"]))
    # Montreal location and behaviour: exact counts; elective fistula surgery = penetrating (B3)
    loc = _pct_rows(base["cd_location"])
    beh = _pct_rows(base["cd_behavior"])
    P["cd_behavior"] = _exact_categories(rng, n, beh, must={"B3": elective})
    P["cd_location"] = _exact_categories(rng, n, loc)
    P["b2"] = P["cd_behavior"] == "B2"
    P["b3"] = P["cd_behavior"] == "B3"
    P["perianal"] = exact_subset(rng, n, int(base["perianal"]["n"]))
    P["eim_any"] = exact_subset(rng, n, int(base["eim_any"]["n"]))
    kinds = rng.choice(["joint", "skin", "eye", "other"], size=n, p=[0.55, 0.2, 0.15, 0.1])
    for kind in ("joint", "skin", "eye", "other"):
        P[f"eim_{kind}"] = P["eim_any"] & (kinds == kind)
    P["resection_history"] = exact_subset(rng, n, int(base["bowel_resection_history"]["n"]))
    smoker = exact_subset(rng, n, int(base["active_smoker"]["n"]))
    former = (~smoker) & (rng.random(n) < 0.1)
    P["smoking"] = np.where(smoker, "current", np.where(former, "former", "never"))
    P["steroid"] = exact_subset(rng, n, int(base["prior_corticosteroid"]["n"]))
    P["immunomodulator"] = exact_subset(rng, n, int(base["prior_immunomodulator"]["n"]))
    # age, disease duration (years): designed medians and quartiles
    lo_age, hi_age = s["age_years"]
    a = base["age_years"]
    age = designed_sample(rng, n, a["iqr"][0], a["median"], a["iqr"][1], lo=lo_age, decimals=0)
    P["age"] = rng.permutation(np.clip(age, lo_age, hi_age).astype(int))
    d = base["disease_duration_years"]
    dur = rng.permutation(designed_sample(rng, n, d["iqr"][0], d["median"], d["iqr"][1], lo=d["iqr"][0] / 3, decimals=2))
    P["duration_years"] = np.minimum(dur, P["age"] - 10)
    # BMI: exactly the designed low group at or below the threshold (margin for rounding)
    thr = s["bmi_le"]
    bmi = np.where(P["bmi_low"], rng.uniform(thr - 3.5, thr - 0.2, n), np.clip(rng.normal(thr + 3.0, 2.2, n), thr + 0.3, 32))
    h = np.round(np.where(P["male"], rng.normal(172, 6, n), rng.normal(160, 5, n)))
    w = np.round(bmi * (h / 100) ** 2, 1)
    P["height_cm"], P["weight_kg"] = h, w
    real = w / (h / 100) ** 2
    P["bmi"] = real
    if not np.array_equal(real <= thr, P["bmi_low"].to_numpy()):
        raise AssertionError("BMI design crossed the threshold")
    # baseline labs: designed samples; albumin exactly the designed low group <= threshold
    lab = base["labs"]
    lim = s["assay_limits"]
    alb = designed_sample(rng, n, lab["ALB_g_L"]["iqr"][0], lab["ALB_g_L"]["median"], lab["ALB_g_L"]["iqr"][1],
                          decimals=1, below=(s["alb_le"], int(P["alb_low"].sum())))
    k = int(P["alb_low"].sum())
    P["ALB"] = 0.0
    P.loc[P["alb_low"], "ALB"] = rng.permutation(alb[:k])
    P.loc[~P["alb_low"], "ALB"] = rng.permutation(alb[k:])
    for test, key, dec, log in (("CRP", "CRP_mg_L", 2, True), ("FC", "FC_ug_g", 2, True), ("HB", "HB_g_L", 0, False)):
        q = lab[key]
        P[test] = rng.permutation(
            designed_sample(rng, n, q["iqr"][0], q["median"], q["iqr"][1], log=log, decimals=dec,
                            limits=tuple(lim.get(test, (None, None))))
        )
    h0 = base["hbi"]
    hbi = designed_sample(rng, n, h0["iqr"][0], h0["median"], h0["iqr"][1], lo=max(h0["min_ge"], s["hbi_min"]), decimals=0)
    P["hbi0"] = rng.permutation(np.maximum(hbi, s["hbi_min"]).astype(int))


def _exact_categories(rng, n: int, counts: dict[str, int], must: dict | None = None) -> np.ndarray:
    if sum(counts.values()) != n:
        raise ValueError(f"published categories {counts} do not add up to {n}")
    out = np.empty(n, dtype=object)
    free = np.ones(n, bool)
    must = must or {}
    for cat, idx in must.items():
        if len(idx) > counts[cat]:
            raise ValueError(f"{len(idx)} patients must be {cat}, published {counts[cat]}")
        out[list(idx)] = cat
        free[list(idx)] = False
    pool = rng.permutation(np.flatnonzero(free))
    pos = 0
    for cat, k in counts.items():
        k -= len(must.get(cat, ()))
        out[pool[pos : pos + k]] = cat
        pos += k
    return out


# -------------------------------------------------------------------- biologics
def _design_biologics(rng, pub: dict, s: dict, P: pd.DataFrame, crf, surg: list[dict]) -> None:
    """Ever-exposed biologics per patient (exact per drug, 1 vs 2+ exactly) and the most
    recent one (given within 2 months before the start, or none)."""
    base = pub["baseline"]
    n = len(P)
    ever = {d: int(v["n"]) for d, v in base["ever_exposed"].items() if d in crf.drugs and int(v["n"]) > 0}
    tnf = [d for d in ever if crf.drugs[d]["class"] == "anti_tnf"]
    other = [d for d in ever if d not in tnf]
    n_tnf_any = int(base["ever_exposed"]["anti_tnf_any"]["n"])
    if n_tnf_any != n or len(tnf) != 2:
        raise ValueError("the design expects every patient anti-TNF exposed, with two anti-TNF drugs")
    both = sum(ever[d] for d in tnf) - n_tnf_any
    only = {d: ever[d] - both for d in tnf}
    counts = _pct_rows(base["biologics_exposed_count"])
    n1 = counts["1"]
    two_must = [x["i"] for x in surg if x["two_plus"]]
    one_must = [x["i"] for x in surg if not x["two_plus"]]
    single = exact_subset(rng, n, n1, must=one_must, never=two_must)
    split = largest_remainder(n1, only)
    exp = [set() for _ in range(n)]
    sidx = rng.permutation(np.flatnonzero(single))
    pos = 0
    for d in tnf:
        for i in sidx[pos : pos + split[d]]:
            exp[i].add(d)
        pos += split[d]
    multi = rng.permutation(np.flatnonzero(~single))
    for i in multi[:both]:
        exp[i].update(tnf)
    rest = multi[both:]
    left = {d: only[d] - split[d] for d in tnf}
    pos = 0
    for d in tnf:
        for i in rest[pos : pos + left[d]]:
            exp[i].add(d)
        pos += left[d]
    if pos != len(rest):
        raise ValueError("published anti-TNF exposures do not fit the 1 vs 2+ counts")
    tokens = list(rng.permutation(sum(([d] * ever[d] for d in other), [])))
    if len(tokens) < len(rest):
        raise ValueError("too few non-anti-TNF exposures for the patients with 2+ biologics")
    for i in rest:  # each single-anti-TNF patient of the 2+ group gets one other biologic
        exp[i].add(tokens.pop())
    for d in tokens:  # the remaining exposures go to 2+ patients without that drug
        cands = [i for i in multi if d not in exp[i]]
        exp[int(rng.choice(cands))].add(d)
    # most recent biologic: within 2 months before the start (per drug) or none
    recent = {k: int(v["n"]) for k, v in base["biologic_within_2_months_before_start"].items() if isinstance(v, dict)}
    latest = _assign_latest(rng, exp, recent)
    P["biologics"] = [sorted(e) for e in exp]
    P["latest"] = latest


def _assign_latest(rng, exp: list[set], quota: dict[str, int], tries: int = 200) -> list:
    n = len(exp)
    for _ in range(tries):
        left = dict(quota)
        out = [None] * n
        order = sorted(range(n), key=lambda i: (len(exp[i]), rng.random()))
        ok = True
        for i in order:
            opts = [d for d in sorted(exp[i]) + ["none"] if left.get(d, 0) > 0]  # sorted: a set's order follows PYTHONHASHSEED
            if not opts:
                ok = False
                break
            # the option whose quota is scarcest relative to its remaining candidates
            def need(d):
                cands = sum(1 for j in order if out[j] is None and (d == "none" or d in exp[j]))
                return left[d] / max(cands, 1)
            d = max(opts, key=lambda d: (need(d), rng.random()))
            out[i] = d
            left[d] -= 1
        if ok and all(v == 0 for v in left.values()):
            return out
    raise ValueError(f"cannot assign the most recent biologics {quota} to the exposures")


# ---------------------------------------------------------------- clinical states
def _outcome_week(s: dict) -> int:
    """The week of the logistic model's outcome (``statistics.predictor_outcome``)."""
    tp = str(s["predictor_timepoint"])
    w = int(tp.removeprefix("week")) if tp.startswith("week") else -1
    if w not in s["weeks"]:
        raise ValueError(f"statistics.predictor_outcome.timepoint {tp!r} is not a clinical week {s['weeks']}")
    return w


def _week_outcome(states: dict, week: int) -> tuple[np.ndarray, np.ndarray]:
    """(patients of the week's set, 1 = remission) of the logistic model (NRI: a stop
    before the week is not a remission)."""
    st = states[week]
    idx = np.flatnonzero(np.array([x is not None for x in st]))
    return idx, (st[idx] == "R").astype(float)


def _designed_model(pub: dict, s: dict, P: pd.DataFrame):
    """(covariates, targets, settings) of the week-12 logistic terms of the covariates
    that drive the latent responsiveness (``COVARIATE_COLUMNS``): the published model of
    those covariates, univariate and multivariable."""
    names = {PUBLISHED_TERMS[k][0] for k in COVARIATE_COLUMNS}
    covs = [c for c in s["logistic_covariates"] if c in names]
    cols = {c: P[c].to_numpy() for c in P.columns}
    design = {c: covariate(c, cols, s) for c in covs}
    targets = [t for t in model_targets(pub, s["alpha"]) if t.model == "logistic" and t.covariate in names]
    return design, targets, {**s, "logistic_covariates": covs, "cox_covariates": []}


def _design_states(seed: int, pub: dict, s: dict, P: pd.DataFrame):
    """State per (patient, week): 'R' remission, 'P' response only, 'N' neither, 'S' stopped
    before the week, None not reached (not in the week's set). Of ``DIRECTION_TRIES``
    draws of the latent noise, the first whose week-12 logistic terms of the designed
    covariates hold in direction and side of alpha (else the closest one)."""
    weeks = s["weeks"]
    ep = pub["endpoints"]
    mv = pub["logistic_week12_clinical_remission"]["multivariable"]
    beta = {COVARIATE_COLUMNS[k]: np.log(float(v["or"])) for k, v in mv.items() if k in COVARIATE_COLUMNS}
    X = P[list(beta)].to_numpy(dtype=float)
    lin = X @ np.array(list(beta.values()))
    n = len(P)
    week = _outcome_week(s)
    design, targets, s_model = _designed_model(pub, s, P)
    best = None
    for attempt in range(DIRECTION_TRIES):
        rng = rng_for(seed, "single_center", "states", attempt)
        g = lin + rng.logistic(0, 1, n)
        states = {}
        for j, w in enumerate(weeks):
            wk = _week_key(w)
            st = np.full(n, None, dtype=object)
            stopped_before = P["stopped"].to_numpy() & (P["gap"].to_numpy() <= j)
            evaluated = P["gap"].to_numpy() > j
            st[stopped_before] = "S"
            score = g + rng.normal(0, NOISE_SD_WEEK, n) - INEFFICACY_SHIFT * (P["stop_reason"] == "inefficacy").to_numpy()
            idx = np.flatnonzero(evaluated)
            idx = idx[np.argsort(-score[idx], kind="stable")]
            r, p = int(ep["clinical_remission"][wk]["n"]), int(ep["clinical_response"][wk]["n"])
            if p > len(idx) or r > p:
                raise ValueError(f"{wk}: {r} remissions / {p} responses do not fit {len(idx)} evaluated patients")
            st[idx[:r]] = "R"
            st[idx[r:p]] = "P"
            st[idx[p:]] = "N"
            states[w] = st
        # the week's set: published directions and sides of alpha of the designed covariates
        y_idx, y = _week_outcome(states, week)
        terms = ModelTerms(design, y_idx, y, P["day"].to_numpy(), P["stopped"].to_numpy(), s_model).terms()
        pen = penalty(terms, targets, s["alpha"])
        if best is None or pen < best[0]:
            best = (pen, states, g)
        if pen == 0:
            break
    return best[1], best[2]


# ------------------------------------------------------------------- model terms
def cox_reachable(t: Target, s: dict) -> bool:
    """Whether the pipeline can print ``t`` as published: under forward selection
    (``statistics.cox_selection: forward``) a multivariable Cox term enters only with a p
    below ``statistics.cox_entry_p`` at its step, so a published multivariable p at or
    above alpha cannot be reproduced; with the univariate p < entry candidates entered
    together (``univariate``) any multivariable p can (READINGS
    ``cox_discontinuation.multivariable``)."""
    entered_only_below_alpha = s["cox_selection"] == "forward" and float(s["entry_p"]) <= float(s["alpha"])
    return not (t.model == "cox" and t.kind == "multivariable" and not t.significant and entered_only_below_alpha)


def _calibrate_terms(rng, pub: dict, s: dict, P: pd.DataFrame, states: dict, surg: list[dict]) -> dict:
    """Move covariate values between patients (:func:`.sc_calibrate.calibrate_covariates`)
    until the published week-12 logistic and discontinuation Cox terms hold in direction
    and side of alpha; ``P`` is changed in place. The Table 1 counts, medians and
    quartiles stay (values are swapped within a column); the designed strata (BMI and
    albumin: the timeline's) never move; a penetrating (B3) elective fistula surgery
    keeps its behaviour and the operated patients their prior biologics (the published
    2+ count of the surgery patients); age and disease duration keep duration <= age - 10;
    sex moves with a height of that sex and the weight follows the patient's BMI."""
    n = len(P)
    everyone = np.ones(n, bool)

    def but(ix) -> np.ndarray:
        m = np.ones(n, bool)
        m[sorted(ix)] = False
        return m

    def duration_fits(c, i, j) -> bool:
        return bool(all(c["duration_years"][k] <= c["age"][k] - 10 for k in (i, j)))

    elective = {x["i"] for x in surg if x["urgency"] == "elective"}
    operated = {x["i"] for x in surg}
    units = [
        Unit("sex", ("male", "height_cm"), everyone),
        Unit("age", ("age",), everyone, duration_fits),
        Unit("duration", ("duration_years",), everyone, duration_fits),
        Unit("location", ("cd_location",), everyone),
        Unit("behaviour", ("cd_behavior", "b2", "b3"), but(elective)),
        Unit("perianal", ("perianal",), everyone),
        Unit("resection", ("resection_history",), everyone),
        Unit("steroid", ("steroid",), everyone),
        Unit("immunomodulator", ("immunomodulator",), everyone),
        Unit("eim", ("eim_any", "eim_joint", "eim_skin", "eim_eye", "eim_other"), everyone),
        Unit("biologics", ("biologics", "latest"), but(operated)),
        *(Unit(c, (c,), everyone) for c in ("HB", "CRP", "FC", "hbi0")),
    ]
    moved = sorted({c for u in units for c in u.columns})
    cols = {c: P[c].to_numpy().copy() for c in P.columns}
    targets = model_targets(pub, s["alpha"])
    kept = [t for t in targets if cox_reachable(t, s)]
    y_idx, y = _week_outcome(states, _outcome_week(s))
    res = calibrate_covariates(rng, cols, s, kept, y_idx, y, P["day"].to_numpy(), P["stopped"].to_numpy(), units,
                               CALIBRATION_STEPS)
    for c in moved:
        P[c] = cols[c]
    P["weight_kg"] = np.round(P["bmi"] * (P["height_cm"] / 100) ** 2, 1)
    if not np.array_equal(P["weight_kg"] / (P["height_cm"] / 100) ** 2 <= s["bmi_le"], P["bmi_low"].to_numpy()):
        raise AssertionError("the sex swaps moved a BMI across the threshold")
    return {"steps": res.steps, "swaps": res.swaps, "penalty_before": round(res.penalty_before, 3),
            "penalty_after": round(res.penalty_after, 3), "not_reproduced_before": res.unmatched_before,
            "not_reproduced": res.unmatched_after,
            "not_reachable": [t.figure for t in targets if not cox_reachable(t, s)]}


# -------------------------------------------------------------------- endoscopy
def _design_endoscopy(rng, pub: dict, s: dict, P: pd.DataFrame) -> dict:
    """Baseline SES-CD (exact count), one follow-up endoscopy (exact count, all in the last
    week's set), response / remission states, PK samples."""
    n = len(P)
    es = pub["endpoints"]["endoscopic"]
    sets = pub["flow"]["analysis_sets"]["endoscopy"]
    n_base, n_fu = int(sets["baseline_endoscopy"]), int(sets["followup_endoscopy"])
    dpm = s["days_per_month"]
    t = es["time_to_followup_endoscopy_months"]
    last_t = 7 * s["weeks"][-1] + s["window_halfwidth_days"] + 1
    edays = designed_sample(rng, n_fu, *(np.array([t["iqr"][0], t["median"], t["iqr"][1]]) * dpm), lo=last_t,
                            decimals=0).astype(int)
    reached_last = np.flatnonzero(P["gap"].to_numpy() == len(s["weeks"]))
    chosen, day_of_e = [], {}
    for e in sorted(edays, reverse=True):
        cands = [i for i in reached_last if i not in day_of_e and P["day"][i] >= e + 8]
        while not cands:
            e -= 7
            if e < last_t:
                raise ValueError("no patient followed long enough for a follow-up endoscopy")
            cands = [i for i in reached_last if i not in day_of_e and P["day"][i] >= e + 8]
        i = int(rng.choice(cands))
        day_of_e[i] = int(e)
        chosen.append(i)
    chosen = np.array(chosen)
    # states: top of g + noise remit, next respond only, the rest neither
    n_resp, n_rem = int(es["response"]["n"]), int(es["remission"]["n"])
    ineff = (P["stop_reason"] == "inefficacy").to_numpy()[chosen]
    score = P["g"].to_numpy()[chosen] + rng.normal(0, 0.8, len(chosen)) - INEFFICACY_SHIFT * ineff
    order = chosen[np.argsort(-score, kind="stable")]
    state = {int(i): ("ER" if k < n_rem else "EP" if k < n_resp else "EN") for k, i in enumerate(order)}
    # baseline SES-CD of the 32 (their published quartiles): responders get the higher values
    b32 = es["ses_cd_baseline_in_the_32"]
    vals = designed_sample(rng, n_fu, b32["iqr"][0], b32["median"], b32["iqr"][1], lo=5, decimals=0).astype(int)
    noisy = vals + rng.normal(0, 2.5, n_fu)
    by_resp = sorted(chosen, key=lambda i: (state[int(i)] == "EN", rng.random()))
    bl = dict(zip([int(i) for i in by_resp], vals[np.argsort(-noisy)].tolist()))
    rmax = s["endo_remission_max"]
    red = s["endo_response_reduction"]
    # follow-up SES-CD of the non-responders: the upper half of the published follow-up values
    # (their lower quartile between the published median and upper quartile, their median at the
    # upper quartile), paired in order with their baselines, then kept short of a response
    f_q = es["ses_cd_followup"]
    f_med, f_q3 = float(f_q["median"]), float(f_q["iqr"][1])
    en = sorted((int(i) for i in chosen if state[int(i)] == "EN"), key=lambda i: bl[i])
    en_v = designed_sample(rng, len(en), (f_med + f_q3) / 2, f_q3, f_q3 + (f_q3 - f_med) / 2, lo=f_med, decimals=0)
    en_fu = dict(zip(en, en_v.astype(int).tolist()))
    fu = {}
    for i in chosen:
        i = int(i)
        b = bl[i]
        half = int(np.floor(b * (1 - red)))  # largest value with a reduction >= the rule
        if state[i] == "ER":
            v = int(rng.integers(0, min(rmax, half) + 1))
        elif state[i] == "EP":
            if half <= rmax:  # too low a baseline for a response without remission
                b = bl[i] = 2 * (rmax + 1) + int(rng.integers(0, 4))
                half = int(np.floor(b * (1 - red)))
            v = int(rng.integers(rmax + 1, min(half, rmax + 2) + 1))  # just above the remission limit
        else:
            v = int(min(max(en_fu[i], half + 1, rmax + 1), max(b + 2, half + 1, rmax + 1)))  # short of a response
        fu[i] = v
    # the other baseline endoscopies (Table 1 quartiles over all with one)
    t1 = pub["baseline"]["ses_cd"]
    others = [i for i in rng.permutation(n) if i not in bl][: n_base - n_fu]
    ov = rng.permutation(designed_sample(rng, len(others), t1["iqr"][0], t1["median"], t1["iqr"][1], lo=4, decimals=0))
    for i, v in zip(others, ov):
        bl[int(i)] = int(v)
    lo_b, hi_b = s["baseline_endoscopy_window"]
    bday = {i: int(rng.integers(max(lo_b, -55), min(hi_b, -3) + 1)) for i in bl}
    # PK: per state group the published counts, concentrations by the published quartiles
    pk = pub["pharmacokinetics"]
    n_pk_resp, n_pk_rem = int(pk["endoscopic_response"]["n"]), int(pk["endoscopic_remission"]["n"])
    n_pk = int(pk["N"])
    group_n = {"ER": n_pk_rem, "EP": n_pk_resp - n_pk_rem, "EN": n_pk - n_pk_resp}
    conc = pk["concentration_ng_mL"]
    rem, resp, nonresp = conc["by_remission"]["remitters"], conc["by_response"]["responders"], conc["by_response"]["non_responders"]
    nonrem = conc["by_remission"]["non_remitters"]
    # (inferred) remitters' lower quartile = responders' median: the responders without
    # remission hold the responders' lower half (quartiles: non-remitters' Q1, responders' Q1, median)
    qs = {
        "ER": (rem["iqr"][0], rem["median"], rem["iqr"][1]),
        "EP": (nonrem["iqr"][0], resp["iqr"][0], resp["median"]),
        "EN": (nonresp["iqr"][0], nonresp["median"], nonresp["iqr"][1]),
    }
    picks = {}
    for st, k in group_n.items():
        members = [i for i in chosen if state[int(i)] == st]
        if k > len(members):
            raise ValueError(f"{k} PK samples of {st} but {len(members)} patients")
        picks[st] = rng.choice(members, size=k, replace=False)
    # the published rank-sum comparisons on their side of alpha (remitters vs the others,
    # responders vs non-responders): the quartiles fix the middle of each group, the tails
    # are not published (inferred: from the Tukey fences, 1.5 IQR on the log scale, inward
    # until both p values keep a margin from alpha; PK_TRIES draws per fence)
    tests = [(("ER",), ("EP", "EN"), float(conc["by_remission"]["p"])),
             (("ER", "EP"), ("EN",), float(conc["by_response"]["p"]))]

    def draw(fence):
        out = {}
        for st, k in group_n.items():
            q1, _, q3 = np.log(qs[st])
            lo, hi = np.exp(q1 - fence * (q3 - q1)), np.exp(q3 + fence * (q3 - q1))
            out[st] = rng.permutation(designed_sample(rng, k, *qs[st], lo=lo, hi=hi, log=True, decimals=2))
        return out

    found = False
    for fence in PK_FENCES:
        for _attempt in range(PK_TRIES):
            vals = draw(fence)
            if all(_rank_sum_side_ok(np.concatenate([vals[g] for g in a]), np.concatenate([vals[g] for g in b]), p,
                                     s["alpha"]) for a, b, p in tests):
                found = True
                break
        if found:
            break
    pkv = {int(i): float(x) for st in group_n for i, x in zip(picks[st], vals[st])}
    return {"baseline": bl, "baseline_day": bday, "followup": fu, "followup_day": day_of_e, "state": state, "pk": pkv}


PK_FENCES = (1.5, 1.25, 1.0, 0.75, 0.5, 0.35, 0.25)  # tails of the PK groups, in IQRs beyond the quartiles
PK_TRIES = 20
PK_MARGIN = 0.8  # a p of the side below alpha is at most 0.8 x alpha, above at least alpha / 0.8


def _rank_sum_side_ok(x: np.ndarray, y: np.ndarray, published_p: float, alpha: float) -> bool:
    """Whether the two-sided Wilcoxon rank-sum p of ``x`` vs ``y`` (exact, as R's
    wilcox.test for small samples without ties) is on the published p's side of
    ``alpha``, with the margin PK_MARGIN."""
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
    return p <= PK_MARGIN * alpha if published_p < alpha else p >= alpha / PK_MARGIN


# ------------------------------------------------------------------- biomarkers
def _design_biomarkers(rng, pub: dict, s: dict, P: pd.DataFrame) -> dict:
    """Per week with published biomarker figures: which evaluated patients have CRP / FC,
    remission status by exact counts, values by the published medians and quartiles."""
    bm = pub["biomarkers"]
    med = bm["medians"]
    lim = s["assay_limits"]
    out = {}
    weeks = [w for w in s["weeks"] if _week_key(w) in bm["crp_remission"]]
    for w in weeks:
        wk = _week_key(w)
        j = s["weeks"].index(w)
        crp, fc, both = (bm[k][wk] for k in ("crp_remission", "fc_remission", "biomarker_remission"))
        n_both, n_crp, n_fc = int(both["N"]), int(crp["N"]), int(fc["N"])
        crp_only, fc_only = n_crp - n_both, n_fc - n_both
        a = int(both["n"])
        f = min(fc_only, round(fc_only * int(fc["n"]) / n_fc))
        b = int(fc["n"]) - a - f
        e = min(crp_only, round(crp_only * int(crp["n"]) / n_crp))
        c = int(crp["n"]) - a - e
        d = n_both - a - b - c
        if min(crp_only, fc_only, b, c, d, e, f) < 0:
            raise ValueError(f"{wk}: published biomarker counts are inconsistent")
        evaluated = np.flatnonzero(P["gap"].to_numpy() > j)
        n_union = n_both + crp_only + fc_only
        if n_union > len(evaluated):
            raise ValueError(f"{wk}: {n_union} patients with biomarkers but {len(evaluated)} with a visit")
        who = rng.choice(evaluated, size=n_union, replace=False)
        kind = np.array(["both"] * n_both + ["crp"] * crp_only + ["fc"] * fc_only)
        rng.shuffle(kind)
        score = P["g"].to_numpy()[who] + rng.normal(0, 1.0, n_union)
        crp_ok = np.zeros(n_union, bool)
        fc_ok = np.zeros(n_union, bool)
        bi = np.flatnonzero(kind == "both")
        bi = bi[np.argsort(-score[bi], kind="stable")]
        crp_ok[bi[:a]] = fc_ok[bi[:a]] = True
        mid = rng.permutation(bi[a : a + b + c])
        fc_ok[mid[:b]] = True
        crp_ok[mid[b:]] = True
        for k_, ok, cnt in (("crp", crp_ok, e), ("fc", fc_ok, f)):
            ii = np.flatnonzero(kind == k_)
            ii = ii[np.argsort(-score[ii], kind="stable")]
            ok[ii[:cnt]] = True
        has_crp = kind != "fc"
        has_fc = kind != "crp"
        vals = {}
        for test, has, ok, thr, key in (("CRP", has_crp, crp_ok, s["crp_max"], "CRP_mg_L"),
                                        ("FC", has_fc, fc_ok, s["fc_max"], "FC_ug_g")):
            q = med[key][wk]
            k_ok = int((has & ok).sum())
            v = designed_sample(rng, int(has.sum()), q[1], q[0], q[2], log=True, decimals=2,
                                below=(thr, k_ok), limits=tuple(lim.get(test, (None, None))))
            col = np.full(n_union, np.nan)
            col[np.flatnonzero(has & ok)] = rng.permutation(v[:k_ok])
            col[np.flatnonzero(has & ~ok)] = rng.permutation(v[k_ok:])
            vals[test] = col
        # albumin and haemoglobin with the CRP sample, ranked like the baseline value
        for test, key, dec in (("ALB", "ALB_g_L", 1), ("HB", "HB_g_L", 0)):
            q = med[key][wk]
            v = designed_sample(rng, int(has_crp.sum()), q[1], q[0], q[2], decimals=dec)
            ii = np.flatnonzero(has_crp)
            rank = np.argsort(np.argsort(P[test].to_numpy()[who[ii]] + rng.normal(0, 3.0, len(ii))))
            col = np.full(n_union, np.nan)
            col[ii] = v[rank]
            vals[test] = col
        out[w] = {"who": who, **vals}
    return out


# -------------------------------------------------------------------- safety
def _design_aes(rng, pub: dict, s: dict, P: pd.DataFrame) -> list[dict]:
    """AE events by term (exact), patients with any AE (exact; one patient per extra event
    gets a second, different term), the AE stops, the fibrinogen and induction dose cases."""
    saf = pub["safety"]
    dpm = s["days_per_month"]
    terms = {k: int(v["n"]) for k, v in saf["by_term"].items()}
    n_pat = int(saf["patients_with_any_ae"]["n"])
    if sum(terms.values()) != int(saf["events_total"]):
        raise ValueError("published AE terms do not add up to the events")
    left = dict(terms)
    events, used = [], set()
    ind = s["induction_days"]
    # AE stops: onset just before the stop
    for i in np.flatnonzero(P["ae_stop_term"].notna().to_numpy()):
        term = P["ae_stop_term"][i]
        lead = int(rng.integers(STOP_AE_LEAD_DAYS[0], STOP_AE_LEAD_DAYS[1] + 1))
        events.append({"i": int(i), "day": max(1, int(P["day"][i]) - lead), "term": term, "severity": "severe",
                       "stop": True, "reduce": False})
        left[term] -= 1
        used.add(int(i))
    # fibrinogen cases: nadir in the published month, dose reduced to 30 mg, normalised later
    ongoing = lambda min_day: [i for i in np.flatnonzero(~P["stopped"].to_numpy())  # noqa: E731
                               if i not in used and P["day"][i] >= min_day]
    fib_term = next(t for t in terms if "fibrinogen" in t)
    for case in saf["fibrinogen_cases"]:
        m = int(case["month"])
        day = int(rng.integers(int((m - 1) * dpm) + 1, min(int(m * dpm), ind - 1) + 1))
        i = int(rng.choice(ongoing(day + 42)))
        events.append({"i": i, "day": day, "term": fib_term, "severity": "moderate", "stop": False, "reduce": True,
                       "nadir": float(case["nadir_g_L"])})
        left[fib_term] -= 1
        used.add(i)
    # the other dose reductions to 30 mg during induction (published reasons besides fibrinogen)
    red = saf["dose_reduced_to_30_during_induction"]
    other_reason = [r for r in red["reasons"] if "fibrinogen" not in r]
    for k in range(int(red["n"]) - len(saf["fibrinogen_cases"])):
        term = other_reason[k % len(other_reason)]
        day = int(rng.integers(7, ind - 14))
        i = int(rng.choice(ongoing(ind + 1)))
        events.append({"i": i, "day": day, "term": term, "severity": "moderate", "stop": False, "reduce": True})
        left[term] -= 1
        used.add(i)
    # the remaining events: one per new patient, the extra ones as second terms
    rest = sum(([t] * k for t, k in left.items() if k > 0), [])
    rest = list(rng.permutation(rest))
    n_new = n_pat - len(used)
    extra = len(rest) - n_new
    if n_new <= 0 or extra < 0:
        raise ValueError("published AE patients and events do not fit the AE stops and dose reductions")
    new_pat = []
    for t in rest[:n_new]:
        i = int(rng.choice(ongoing(30)))
        used.add(i)
        new_pat.append(i)
        day = int(rng.integers(7, min(int(P["day"][i]), 365) + 1))
        events.append({"i": i, "day": day, "term": t, "severity": str(rng.choice(["mild", "moderate"], p=[0.7, 0.3])),
                       "stop": False, "reduce": False})
    for t in rest[n_new:]:
        i = next(j for j in new_pat if all(not (ev["i"] == j and ev["term"] == t) for ev in events))
        day = int(rng.integers(7, min(int(P["day"][i]), 365) + 1))
        events.append({"i": i, "day": day, "term": t, "severity": "mild", "stop": False, "reduce": False})
    return events


# ------------------------------------------------------------------- excluded
def _design_excluded(s: dict) -> list[dict]:
    """Screened patients failing one population rule each (synthetic: the paper gives no
    counts per reason): ``excluded_per_reason`` of every rule of ``eligibility.order``."""
    out = []
    unknown = [r for r in s["exclusion_order"] if r not in EXCLUSION_RULES]
    if unknown:
        raise ValueError(f"eligibility.order: no synthetic patient for rule(s) {unknown}; known: {EXCLUSION_RULES}")
    for reason in s["exclusion_order"]:
        for k in range(s["excluded_per_reason"]):
            out.append({"reason": reason, "variant": k})
    return out


# ------------------------------------------------------------------- realization
def _dt(days) -> pd.Series:
    a = np.asarray(days, dtype="float64")
    out = pd.Series(pd.NaT, index=range(len(a)), dtype="datetime64[ns]")
    ok = ~np.isnan(a)
    out[ok] = pd.to_datetime(a[ok].astype("int64"), unit="D")
    return out


# field types of every column the generator writes (the CRF additions of the second study
# included: SECOND_STUDY.md); schemas/crf.yaml wins where it has the field
TYPES = {
    "patients": {
        "mrn": "str", "patient_name": "str", "phone": "str", "abstractor_id": "str", "sex": "str",
        "birth_date": "date", "diagnosis": "str", "diagnosis_date": "date", "cd_location": "str",
        "cd_upper_gi": "bool", "cd_behavior": "str", "cd_perianal": "bool", "uc_extent": "str",
        "complex_perianal": "bool", "ileal_pouch": "bool", "pouchitis_chronic_ab_refractory": "bool",
        "psychosocial_comorbidity": "bool", "smoking": "str", "height_cm": "float", "weight_kg": "float",
        "eim_eye": "bool", "eim_skin": "bool", "eim_joint": "bool", "eim_other": "bool",
        "pregnant_or_breastfeeding": "bool", "serious_infection_at_start": "bool", "malignancy_history": "bool",
        "upa_start_date": "date", "upa_stop_date": "date", "upa_stop_reason": "str", "last_followup_date": "date",
        "imaging_penetrating": "bool", "imaging_penetrating_site": "str",
    },
    "medications": {"mrn": "str", "abstractor_id": "str", "drug": "str", "start_date": "date", "stop_date": "date",
                    "stop_reason": "str", "last_dose_date": "date"},
    "surgeries": {"mrn": "str", "abstractor_id": "str", "surgery_date": "date", "procedure": "str",
                  "ibd_related": "bool", "urgency": "str", "indication": "str"},
    "assessments": {"mrn": "str", "abstractor_id": "str", "visit_date": "date", "hbi_wellbeing": "int",
                    "hbi_pain": "int", "hbi_liquid_stools": "int", "hbi_mass": "int", "hbi_complications": "int",
                    "mayo_stool": "int", "mayo_bleeding": "int", "mayo_pga": "int", "mayo_endo": "int",
                    "ses_cd": "int", "rutgeerts": "str", "upa_dose_mg": "int"},
    "labs": {"mrn": "str", "abstractor_id": "str", "sample_date": "date", "test": "str", "value": "float",
             "unit": "str"},
    "adverse_events": {"mrn": "str", "abstractor_id": "str", "onset_date": "date", "term": "str", "serious": "bool",
                       "led_to_discontinuation": "bool", "severity": "str", "led_to_dose_reduction": "bool"},
    "dose_episodes": {"mrn": "str", "abstractor_id": "str", "start_date": "date", "dose_mg": "int", "reason": "str"},
    "pk_samples": {"mrn": "str", "abstractor_id": "str", "sample_date": "date", "sample_time": "str",
                   "hours_since_last_dose": "float", "upa_ng_ml": "float", "assay": "str"},
}


CRF_TYPE = {"date": "date", "int": "int", "float": "float", "bool": "bool", "code": "str", "string": "str"}


def _frame(table: str, rows: list[dict], crf) -> pd.DataFrame:
    """Rows -> a canonical frame (docs/ARCHITECTURE.md "Canonical frames"): the CRF's field
    types where schemas/crf.yaml has the field, else those of the study's CRF additions."""
    spec = crf.tables[table].fields if table in crf.tables else {}
    cols = {c: CRF_TYPE[spec[c].type] if c in spec else t for c, t in TYPES[table].items()}
    df = pd.DataFrame(rows, columns=list(cols))
    for c, t in cols.items():
        if t == "date":
            df[c] = _dt(df[c].to_numpy(dtype="float64")) if len(df) else pd.Series(dtype="datetime64[ns]")
        elif t == "int":
            df[c] = pd.array(df[c].to_numpy(dtype="float64"), dtype="Float64").astype("Int64") if len(df) else pd.Series(dtype="Int64")
        elif t == "float":
            df[c] = df[c].astype("float64")
        elif t == "bool":
            df[c] = pd.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else bool(v) for v in df[c]],
                             dtype="boolean")
        else:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


class _Rec:
    """Row collector of one patient."""

    def __init__(self, out: dict, mrn: str, aid: str):
        self.out, self.mrn, self.aid = out, mrn, aid

    def add(self, table: str, **row):
        self.out[table].append({"mrn": self.mrn, "abstractor_id": self.aid, **row})


def _realize(seed, pub, s, crf, P, states, endo, labs_w, aes, surg, excluded):
    n = len(P)
    n_all = n + len(excluded)
    rid = rng_for(seed, "single_center", "identity")
    mrns = record_numbers(rid, s["center"], n_all)
    names = chinese_names(rid, n_all)
    phones = mobile_numbers(rid, n_all)
    aid = s["abstractor_id"]
    out = {t: [] for t in TYPES}
    truth = []
    weeks = s["weeks"]
    hw, off = s["window_halfwidth_days"], s["visit_offset_days"]
    units = {t: crf.lab_tests[t]["unit"] for t in crf.lab_tests}
    fib_lo, fib_hi = crf.lab_tests["FIB"]["normal"]
    dose = s["dose"]
    ind = s["induction_days"]
    rng = rng_for(seed, "single_center", "realize")
    surg_of = {x["i"]: x for x in surg}
    ae_of: dict[int, list] = {}
    for ev in aes:
        ae_of.setdefault(ev["i"], []).append(ev)

    for i in range(n):
        p = P.iloc[i]
        rec = _Rec(out, mrns[i], aid)
        start = int(p["start"])
        end_rel = int(p["day"])
        stop = start + end_rel if p["stopped"] else None
        last_fu = start + end_rel
        # dose episodes
        doses = [(start, dose["induction_mg"], "induction")]
        reduce = [ev for ev in ae_of.get(i, []) if ev["reduce"]]
        if reduce:
            doses.append((start + reduce[0]["day"] + int(rng.integers(1, 4)), dose["maintenance_mg"], "adverse_event"))
        elif end_rel > ind:
            doses.append((start + ind, dose["maintenance_mg"], "maintenance"))
        if endo["state"].get(i) == "ER":
            eday = endo["followup_day"][i]
            doses.append((start + eday + int(rng.integers(1, 8)), dose["deescalation_mg"], "endoscopic_remission"))
        for d0, mg, why in doses:
            rec.add("dose_episodes", start_date=d0, dose_mg=mg, reason=why)

        def dose_on(day):
            cur = None
            for d0, mg, _ in doses:
                if d0 <= day:
                    cur = mg
            return cur

        # baseline visit, labs
        bday = start - int(rng.integers(0, min(2, -s["baseline_window"][0]) + 1))
        _visit(rec, rng, bday, int(p["hbi0"]), None, None)
        for test in ("CRP", "FC", "HB", "ALB"):
            rec.add("labs", sample_date=bday, test=test, value=float(p[test]), unit=units[test])
        rec.add("labs", sample_date=bday, test="FIB", value=round(float(rng.uniform(fib_lo + 0.3, fib_hi)), 2),
                unit=units["FIB"])
        if i in endo["baseline"]:
            _visit(rec, rng, start + endo["baseline_day"][i], None, endo["baseline"][i], None)
        # visits: an early one for stoppers before the first window, then the reached weeks
        B = int(p["hbi0"])
        if int(p["gap"]) == 0:
            vday = int(rng.integers(max(1, end_rel - 7), end_rel))
            _visit(rec, rng, start + vday, _hbi_for(rng, "N", B, s), None, dose_on(start + vday))
        visit_day = {}
        for j, w in enumerate(weeks):
            st = states[w][i]
            if st in (None, "S"):
                continue
            t = 7 * w
            hi_off = min(off, end_rel - t - (1 if p["stopped"] else 0))
            vday = t + int(rng.integers(-off, hi_off + 1))
            visit_day[w] = vday
            _visit(rec, rng, start + vday, _hbi_for(rng, st, B, s), None, dose_on(start + vday))
        # maintenance visits every MAINTENANCE_VISIT_DAYS after the last week, to the stop / cut-off
        if int(p["gap"]) == len(weeks):
            eday_rel = endo["followup_day"].get(i)
            t = 7 * weeks[-1] + MAINTENANCE_VISIT_DAYS
            while t + off < end_rel:
                vday = t + int(rng.integers(-off, off + 1))
                if eday_rel is None or abs(vday - eday_rel) > hw:
                    st = states[weeks[-1]][i]
                    _visit(rec, rng, start + vday, _hbi_for(rng, st, B, s), None, dose_on(start + vday))
                t += MAINTENANCE_VISIT_DAYS
        # follow-up endoscopy and PK
        if i in endo["followup"]:
            eday = start + endo["followup_day"][i]
            _visit(rec, rng, eday, None, endo["followup"][i], dose_on(eday))
            if i in endo["pk"]:
                lo_h, hi_h = s["pk_hours"]
                hours = round(float(rng.uniform(lo_h, hi_h)), 1)
                hh = int(rng.integers(8, 12))
                rec.add("pk_samples", sample_date=eday, sample_time=f"{hh:02d}:{int(rng.integers(0, 60)):02d}",
                        hours_since_last_dose=hours, upa_ng_ml=endo["pk"][i], assay="lc_ms")
        # week labs
        for w, L in labs_w.items():
            hit = np.flatnonzero(L["who"] == i)
            if not len(hit):
                continue
            k = int(hit[0])
            for test in ("CRP", "FC", "ALB", "HB"):
                v = L[test][k]
                if not np.isnan(v):
                    rec.add("labs", sample_date=start + visit_day[w], test=test, value=float(v), unit=units[test])
        # adverse events (+ the fibrinogen nadir and its normalisation)
        for ev in ae_of.get(i, []):
            rec.add("adverse_events", onset_date=start + ev["day"], term=ev["term"], serious=False,
                    led_to_discontinuation=ev["stop"], severity=ev["severity"], led_to_dose_reduction=ev["reduce"])
            if "nadir" in ev:
                rec.add("labs", sample_date=start + ev["day"], test="FIB", value=ev["nadir"], unit=units["FIB"])
                rec.add("labs", sample_date=start + ev["day"] + 28, test="FIB",
                        value=round(float(rng.uniform(fib_lo, fib_lo + 0.8)), 2), unit=units["FIB"])
        # surgeries: history before the start, CD-related during follow-up
        diag = start - int(round(float(p["duration_years"]) * 365.25))
        if p["resection_history"]:
            sday = int(rng.integers(diag + 30, start - 90)) if start - 90 > diag + 30 else start - 90
            rec.add("surgeries", surgery_date=sday, procedure=str(rng.choice(["ileocecal_resection", "small_bowel_resection"])),
                    ibd_related=True, urgency="elective", indication=str(rng.choice(["obstruction", "fistula"])))
        site = None
        if p["cd_behavior"] == "B3":
            site = SITE_OF_LOCATION.get(p["cd_location"], "other")
        if i in surg_of:
            x = surg_of[i]
            proc = x["procedure"] or FISTULA_PROCEDURE.get(site, "ileocecal_resection")
            rec.add("surgeries", surgery_date=start + x["day"], procedure=proc, ibd_related=True,
                    urgency=x["urgency"], indication=x["indication"])
        # medications
        _medications(rec, rng, s, p, start, diag, last_fu)
        # patient row
        born = _birth(rng, start, int(p["age"]))
        rec.add("patients", patient_name=names[i], phone=phones[i], sex="M" if p["male"] else "F", birth_date=born,
                diagnosis="CD", diagnosis_date=diag, cd_location=p["cd_location"], cd_upper_gi=False,
                cd_behavior=p["cd_behavior"], cd_perianal=bool(p["perianal"]), smoking=p["smoking"],
                height_cm=float(p["height_cm"]), weight_kg=float(p["weight_kg"]),
                eim_eye=bool(p["eim_eye"]), eim_skin=bool(p["eim_skin"]), eim_joint=bool(p["eim_joint"]),
                eim_other=bool(p["eim_other"]), upa_start_date=start, upa_stop_date=stop,
                upa_stop_reason=p["stop_reason"], last_followup_date=last_fu,
                imaging_penetrating=site is not None, imaging_penetrating_site=site)
        truth.append({"mrn": mrns[i], "included": True, "exclusion_reason": None, "stopped": bool(p["stopped"]),
                      "stop_reason": p["stop_reason"], "days_on_upa": end_rel, "alb_low": bool(p["alb_low"]),
                      "bmi_low": bool(p["bmi_low"]), "g": float(p["g"]),
                      **{f"state_week{w}": states[w][i] for w in weeks},
                      "endoscopy_state": endo["state"].get(i), "latest_biologic": p["latest"]})

    _realize_excluded(rng, s, crf, excluded, mrns[n:], names[n:], phones[n:], out, truth, units)
    frames = {t: _frame(t, rows, crf) for t, rows in out.items()}
    for t, df in frames.items():
        frames[t] = df.sort_values(["mrn"] + [c for c in df.columns if c.endswith("_date")][:1], kind="stable").reset_index(drop=True)
    return frames, pd.DataFrame(truth)


def _hbi_for(rng, state: str, B: int, s: dict) -> int:
    rmax, drop = s["remission_hbi_max"], s["response_drop_min"]
    if state == "R":
        return int(rng.integers(0, rmax + 1))
    if state == "P":  # response without remission: above the remission limit, drop >= rule
        return int(rng.integers(rmax + 1, max(rmax + 1, B - drop) + 1))
    return int(rng.integers(max(rmax + 1, B - drop + 1), B + 3))


def _visit(rec: _Rec, rng, day: int, hbi: int | None, ses: int | None, dose: int | None) -> None:
    items = hbi_items(rng, hbi) if hbi is not None else (None,) * 5
    rec.add("assessments", visit_date=day, hbi_wellbeing=items[0], hbi_pain=items[1], hbi_liquid_stools=items[2],
            hbi_mass=items[3], hbi_complications=items[4], ses_cd=ses, upa_dose_mg=dose)


def _birth(rng, start: int, age: int) -> int:
    hi = int(years_before(np.array([start]), np.array([age]))[0])
    lo = int(years_before(np.array([start]), np.array([age + 1]))[0]) + 1
    return int(rng.integers(lo, hi + 1))


def _medications(rec: _Rec, rng, s: dict, p, start: int, diag: int, last_fu: int) -> None:
    """Biologic episodes before the start (the most recent one last; its last dose within
    the 2-month window, or earlier for 'none'), steroids and immunomodulators."""
    window = s["prior_biologic_window_days"]
    bios = list(p["biologics"])
    latest = p["latest"]
    tnf_first = sorted(bios, key=lambda d: (d == latest, d not in ("infliximab", "adalimumab"), rng.random()))
    if latest == "none":
        last_end = start - int(rng.integers(window + 30, window + 300))
    else:
        last_end = start - int(rng.integers(7, window - 5))
    first = diag + 30
    m = len(tnf_first)
    span = max(last_end - first, 90 * m)
    first = last_end - span
    # consecutive episodes: equal parts of the span, inner bounds moved by up to a quarter part
    bounds = np.linspace(first, last_end, m + 1)
    bounds[1:-1] += (rng.random(m - 1) - 0.5) * 0.5 * span / m
    for k, d in enumerate(tnf_first):
        a, b = int(bounds[k]), int(bounds[k + 1])
        st0 = a + int(rng.integers(0, max(1, (b - a) // 4)))
        end = b if k == m - 1 else b - int(rng.integers(0, max(1, (b - a) // 4)))
        reason = str(rng.choice(s["anti_tnf_stop_reasons"]))
        rec.add("medications", drug=d, start_date=st0, stop_date=end, stop_reason=reason, last_dose_date=end)
    if p["steroid"]:
        d0 = start - int(rng.integers(20, 150))
        rec.add("medications", drug=str(rng.choice(STEROIDS)), start_date=d0,
                stop_date=min(start + int(rng.integers(0, 45)), last_fu), stop_reason="elective", last_dose_date=None)
    if p["immunomodulator"]:
        d0 = max(diag + 10, start - int(rng.integers(90, 900)))
        ongoing = rng.random() < 0.4
        rec.add("medications", drug=str(rng.choice(IMMUNOMODULATORS)), start_date=d0,
                stop_date=None if ongoing else start - int(rng.integers(1, 60)),
                stop_reason=None if ongoing else str(rng.choice(["intolerance", "secondary_loss_of_response", "other"])),
                last_dose_date=None)


def _realize_excluded(rng, s, crf, excluded, mrns, names, phones, out, truth, units):
    """Each screened-out patient: an ordinary eligible record with one rule broken."""
    aid = s["abstractor_id"]
    lo_age, hi_age = s["age_years"]
    fib_lo, fib_hi = crf.lab_tests["FIB"]["normal"]
    for x, mrn, name, phone in zip(excluded, mrns, names, phones):
        r, v = x["reason"], x["variant"]
        rec = _Rec(out, mrn, aid)
        fu = int(rng.integers(*EXCLUDED_FU_DAYS))
        start = s["cutoff"] - fu
        age = int(rng.integers(lo_age + 4, min(hi_age, 50)))
        if r == "outside_age_range":
            age = lo_age - 1 if v % 2 == 0 else hi_age + 1
        diag = start - int(rng.integers(2 * 365, 6 * 365))
        B = s["hbi_min"] - 1 - v % 3 if r == "baseline_hbi_below" else int(rng.integers(s["hbi_min"] + 1, 15))
        bday = start - int(rng.integers(0, 4))
        if not (r == "incomplete_baseline" and v % 2 == 0):
            _visit(rec, rng, bday, B, None, None)
        for test, val in (("CRP", rng.uniform(6, 40)), ("FC", rng.uniform(300, 1500)), ("HB", rng.uniform(100, 135)),
                          ("ALB", rng.uniform(33, 44)), ("FIB", rng.uniform(fib_lo + 0.3, fib_hi))):
            if r == "incomplete_baseline" and v % 2 == 1 and test == "ALB":
                continue
            rec.add("labs", sample_date=bday, test=test, value=round(float(val), 1), unit=units[test])
        if r != "no_followup_visit":
            for w in s["weeks"]:
                if 7 * w + s["visit_offset_days"] < fu:
                    _visit(rec, rng, start + 7 * w + int(rng.integers(-3, 4)), int(rng.integers(2, 9)), None, 30)
        last_fu = start if r == "no_followup_visit" else start + fu
        # prior biologics: anti-TNF failure (or not, for that rule), most recent within 2 months
        tnf_reason = "secondary_loss_of_response"
        if r == "no_prior_class_failure":
            tnf_reason = "elective" if v % 2 == 0 else "other"
        rec.add("medications", drug="infliximab", start_date=start - 700, stop_date=start - 300, stop_reason=tnf_reason,
                last_dose_date=start - 300)
        if r == "concomitant_biologic":
            rec.add("medications", drug="ustekinumab", start_date=start - 200,
                    stop_date=None if v % 2 == 0 else start + 45, stop_reason=None if v % 2 == 0 else "other",
                    last_dose_date=None if v % 2 == 0 else start + 45)
        else:
            rec.add("medications", drug="ustekinumab", start_date=start - 250, stop_date=start - 30,
                    stop_reason="secondary_loss_of_response", last_dose_date=start - 30)
        if r == "prior_procedure":
            rec.add("surgeries", surgery_date=start - int(rng.integers(200, 1500)), procedure="ostomy_creation",
                    ibd_related=True, urgency="emergency" if v % 2 else "elective", indication="other")
        rec.add("dose_episodes", start_date=start, dose_mg=s["dose"]["induction_mg"], reason="induction")
        male = bool(rng.random() < 0.6)
        h = float(round(rng.normal(172 if male else 160, 5)))
        rec.add("patients", patient_name=name, phone=phone, sex="M" if male else "F", birth_date=_birth(rng, start, age),
                diagnosis="CD", diagnosis_date=diag, cd_location=str(rng.choice(["L1", "L3"])), cd_upper_gi=False,
                cd_behavior="B1", cd_perianal=False, smoking="never", height_cm=h,
                weight_kg=float(round(21.0 * (h / 100) ** 2, 1)), eim_eye=False, eim_skin=False, eim_joint=False,
                eim_other=False, upa_start_date=start, upa_stop_date=None, upa_stop_reason=None,
                last_followup_date=last_fu, imaging_penetrating=False, imaging_penetrating_site=None)
        truth.append({"mrn": mrn, "included": False, "exclusion_reason": r})
