"""Endpoints per included patient and time point (docs/STUDY_RULES.md#endpoints,
#windows): one row per patient, time point and endpoint with the complete-case status,
the non-responder-imputation status, the value used and the reason.

Which endpoints, under which names, is the settings' (``endpoints.clinical_endpoints``,
``endpoints.biomarker_endpoints``: name -> rule); this module holds the rules
(``CLINICAL_RULES``, ``BIOMARKER_RULES``) and their thresholds come from the settings too."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ibd_pipeline.clinical.labs import check_canonical_units, compare, lab_text
from ibd_pipeline.clinical.records import (
    PATIENT_KEY,
    fmt_num,
    fmt_value,
    medication_table,
    patient_table,
    surgery_table,
)
from ibd_pipeline.clinical.windows import (
    BASELINE,
    add_day,
    labs_at,
    scores_at,
    target_day,
    window_bounds,
)
from ibd_pipeline.config import Crf
from ibd_pipeline.endpoints.analysis_sets import analysis_sets

ACHIEVED, NOT_ACHIEVED, NOT_EVALUABLE = "achieved", "not_achieved", "not_evaluable"
# the rules an endpoint of the settings names (study.yaml endpoints.*_endpoints.<name>.rule)
REMISSION, RESPONSE, ENDOSCOPIC_REMISSION, ENDOSCOPIC_RESPONSE = (
    "remission", "response", "endoscopy_remission", "endoscopy_response")
CLINICAL_RULES = (REMISSION, RESPONSE, ENDOSCOPIC_REMISSION, ENDOSCOPIC_RESPONSE)
ENDOSCOPIC_RULES = (ENDOSCOPIC_REMISSION, ENDOSCOPIC_RESPONSE)
FC_OR_CRP_NORMAL, FC_AND_CRP_NORMAL, CRP_NORMAL, FC_NORMAL = "fc_or_crp_normal", "fc_and_crp_normal", "crp_normal", "fc_normal"
BIOMARKER_RULES = (FC_OR_CRP_NORMAL, FC_AND_CRP_NORMAL, CRP_NORMAL, FC_NORMAL)
ENDPOINT_LAB_TESTS = ("CRP", "FC")  # the labs the biomarker endpoints read
OUTPUT_COLUMNS = [
    "patient_id", "center", "diagnosis", "timepoint", "endpoint", "status", "status_nri", "value", "reason",
]


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint of the settings: its name, the rule deciding it and whether the
    remission rule also needs the steroid-free rule."""

    name: str
    rule: str
    steroid_free: bool = False


def endpoint_specs(settings: dict, kind: str) -> list[EndpointSpec]:
    """The settings' endpoints of ``kind`` ("clinical" or "biomarker"; study.yaml
    ``endpoints.<kind>_endpoints``) in their order, each rule checked against the rules
    of this module."""
    rules = CLINICAL_RULES if kind == "clinical" else BIOMARKER_RULES
    out = []
    for name, spec in ((settings["endpoints"].get(f"{kind}_endpoints")) or {}).items():
        if spec["rule"] not in rules:
            raise ValueError(f"endpoints.{kind}_endpoints.{name}: unknown rule {spec['rule']!r} (one of {list(rules)})")
        out.append(EndpointSpec(name, spec["rule"], bool(spec.get("steroid_free", False))))
    return out


def _covering_rule(timepoint: str, settings: dict) -> bool:
    """docs/STUDY_RULES.md#windows: at ``steroids.covering_rule_timepoints`` steroid-free
    means no episode covers the date (patients taper during induction); at the other
    clinical time points the N-days-free rule."""
    return timepoint in ((settings.get("steroids") or {}).get("covering_rule_timepoints") or ())
NRI_REASONS = {
    "discontinuation": "discontinued_before_timepoint",
    "bowel_resection": "bowel_resection_before_timepoint",
}


@dataclass(frozen=True)
class Result:
    status: str
    value: str
    reason: str


def _na(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and x != x) or (x is pd.NaT)


def _pct_ok(drop: float, base: float, pct: float) -> bool:
    """drop >= pct % of base, exactly (integers stay integers: 49/100 is not >= 50 %)."""
    return base > 0 and drop * 100 >= pct * base


# ------------------------------------------------------------------- steroids
def steroid_free(episodes: pd.DataFrame, on: pd.Timestamp, timepoint: str, settings: dict) -> tuple[bool, str, str]:
    """Steroid-free at an assessment date (docs/STUDY_RULES.md#windows): at
    ``steroids.covering_rule_timepoints`` no systemic corticosteroid episode covers the
    date (an ongoing episode covers every date from its start); at the others no episode
    that started on or before the date is ongoing, and every one stopped >=
    ``steroids.free_days_before_assessment`` days before it (date - stop date >= N).
    ``episodes``: that patient's episodes of a class in ``steroids.classes``. Returns
    (free, reason, detail text)."""
    ep = episodes[episodes["start_date"] <= on]
    if _covering_rule(timepoint, settings):
        cover = ep[ep["stop_date"].isna() | (ep["stop_date"] >= on)]
        if len(cover):
            r = cover.iloc[0]
            return False, "steroid_at_assessment", f"{r['drug']} covers the assessment date"
        return True, "", ""
    n = int(settings["steroids"]["free_days_before_assessment"])
    ongoing = ep[ep["stop_date"].isna()]
    if len(ongoing):
        return False, "steroid_ongoing", f"{ongoing.iloc[0]['drug']} ongoing"
    gap = (on - ep["stop_date"]).dt.days
    recent = ep[gap < n]
    if len(recent):
        r = recent.iloc[0]
        return False, f"steroid_within_{n}_days", f"{r['drug']} stopped {int((on - r['stop_date']).days)} days before"
    return True, "", ""


def _episode_records(episodes: pd.DataFrame) -> list[tuple]:
    """A patient's steroid episodes as (start, stop or None, drug) tuples, in row order."""
    stops = [None if pd.isna(x) else x for x in episodes["stop_date"].tolist()]
    return list(zip(episodes["start_date"].tolist(), stops, episodes["drug"].tolist()))


def _steroid_free_records(records: list[tuple], on, timepoint: str, settings: dict) -> tuple[bool, str, str]:
    """``steroid_free`` on ``_episode_records`` (the same rules, row order and texts,
    without building a frame per assessment)."""
    ep = [r for r in records if r[0] <= on]  # NaT start (or date) compares False: left out, as in the frame
    if _covering_rule(timepoint, settings):
        for _start, stop, drug in ep:
            if stop is None or stop >= on:
                return False, "steroid_at_assessment", f"{drug} covers the assessment date"
        return True, "", ""
    n = int(settings["steroids"]["free_days_before_assessment"])
    for _start, stop, drug in ep:
        if stop is None:
            return False, "steroid_ongoing", f"{drug} ongoing"
    for _start, stop, drug in ep:
        gap = (on - stop).days
        if gap < n:
            return False, f"steroid_within_{n}_days", f"{drug} stopped {int(gap)} days before"
    return True, "", ""


# ---------------------------------------------------------------------- NRI
def nri_event(
    patient: pd.Series, target_date: pd.Timestamp, resection_dates: list[pd.Timestamp], settings: dict
) -> tuple[str, str] | None:
    """The non-responder event before a time point, if any (STUDY.md "Endpoints",
    failures and gaps): UPA stopped (stop date < target date = start + target day), or an
    IBD-related bowel resection on or after the UPA start and before the target date;
    events per ``endpoints.nri_events``. The earliest event wins (ties: settings order).
    Returns (reason, value text) or None."""
    found = []
    for i, ev in enumerate(settings["endpoints"]["nri_events"]):
        if ev == "discontinuation":
            stop = patient["upa_stop_date"]
            if not _na(stop) and stop < target_date:
                found.append((stop, i, NRI_REASONS[ev], f"UPA stopped on day {(stop - patient['upa_start_date']).days}"))
        elif ev == "bowel_resection":
            before = [d for d in resection_dates if d < target_date]
            if before:
                d = min(before)
                found.append((d, i, NRI_REASONS[ev], f"bowel resection on day {(d - patient['upa_start_date']).days}"))
        else:
            raise ValueError(f"unknown endpoints.nri_events entry {ev!r}")
    if not found:
        return None
    _, _, reason, text = min(found)
    return reason, text


# ------------------------------------------------------------ CD endpoints
def cd_endpoint(spec: EndpointSpec, b: dict, f: dict, steroid, win: str, cfg: dict) -> Result:
    """CD endpoints (docs/STUDY_RULES.md#endpoints, CD; thresholds ``endpoints.CD``), by
    the endpoint's rule: remission HBI <= 4 (and steroid-free when the endpoint says
    so); response HBI drop >= 3 points or >= 50 %; endoscopic remission SES-CD <= 3, or
    Rutgeerts i0-i1 where only Rutgeerts is recorded in the window; endoscopic response
    SES-CD drop >= 50 %. ``b``/``f``: baseline and time-point components from ``scores_at``."""
    rule = spec.rule
    if rule == REMISSION:
        if _na(f["hbi"]):
            return Result(NOT_EVALUABLE, f"no HBI in days {win}", "no_assessment_in_window")
        hbi, mx = float(f["hbi"]), cfg["remission_hbi_max"]
        val = f"HBI {fmt_value(hbi)}"
        if hbi > mx:
            return Result(NOT_ACHIEVED, val, f"hbi_gt_{fmt_num(mx)}")
        if not spec.steroid_free:
            return Result(ACHIEVED, val, f"hbi_le_{fmt_num(mx)}")
        free, why, detail = steroid(f["hbi_date"])
        if not free:
            return Result(NOT_ACHIEVED, f"{val}; {detail}", why)
        return Result(ACHIEVED, val, f"hbi_le_{fmt_num(mx)}_steroid_free")
    if rule == RESPONSE:
        if _na(f["hbi"]):
            return Result(NOT_EVALUABLE, f"no HBI in days {win}", "no_assessment_in_window")
        if _na(b["hbi"]):
            return Result(NOT_EVALUABLE, f"HBI {fmt_value(f['hbi'])} (no baseline)", "no_baseline")
        hb, hf = float(b["hbi"]), float(f["hbi"])
        val = f"HBI {fmt_value(hf)} (baseline {fmt_value(hb)})"
        pts, pct = cfg["response_hbi_drop_points"], cfg["response_hbi_drop_pct"]
        if hb - hf >= pts:
            return Result(ACHIEVED, val, f"hbi_drop_ge_{fmt_num(pts)}")
        if pct is None:  # no percentage rule: the drop in points alone
            return Result(NOT_ACHIEVED, val, f"hbi_drop_lt_{fmt_num(pts)}")
        if _pct_ok(hb - hf, hb, pct):
            return Result(ACHIEVED, val, f"hbi_drop_ge_{fmt_num(pct)}pct")
        return Result(NOT_ACHIEVED, val, f"hbi_drop_lt_{fmt_num(pts)}_and_lt_{fmt_num(pct)}pct")
    if rule == ENDOSCOPIC_REMISSION:
        if not _na(f["ses_cd"]):
            ses, mx = float(f["ses_cd"]), cfg["endoscopic_remission_ses_cd_max"]
            val = f"SES-CD {fmt_value(ses)}"
            if ses <= mx:
                return Result(ACHIEVED, val, f"ses_cd_le_{fmt_num(mx)}")
            return Result(NOT_ACHIEVED, val, f"ses_cd_gt_{fmt_num(mx)}")
        if not _na(f["rutgeerts"]):
            ok = list(cfg["endoscopic_remission_rutgeerts"])
            val = f"Rutgeerts {f['rutgeerts']} (no SES-CD)"
            if f["rutgeerts"] in ok:
                return Result(ACHIEVED, val, f"rutgeerts_{'_'.join(ok)}")
            return Result(NOT_ACHIEVED, val, f"rutgeerts_not_{'_'.join(ok)}")
        return Result(NOT_EVALUABLE, f"no SES-CD or Rutgeerts in days {win}", "no_endoscopy_in_window")
    if rule == ENDOSCOPIC_RESPONSE:
        return _drop_pct("SES-CD", f["ses_cd"], b["ses_cd"], cfg["endoscopic_response_drop_pct"], win, "ses_cd")
    raise ValueError(f"{spec.name}: unknown rule {rule!r}")


def _drop_pct(label: str, fu, base, pct: float, win: str, code: str) -> Result:
    """Endoscopic response: score decrease >= ``pct`` % from baseline (STUDY.md
    "Endpoints"). A baseline of 0 cannot fall by a percentage: not evaluable."""
    if _na(fu):
        return Result(NOT_EVALUABLE, f"no {label} in days {win}", "no_endoscopy_in_window")
    if _na(base):
        return Result(NOT_EVALUABLE, f"{label} {fmt_value(fu)} (no baseline)", "no_baseline_endoscopy")
    fu, base = float(fu), float(base)
    val = f"{label} {fmt_value(fu)} (baseline {fmt_value(base)})"
    if base <= 0:
        return Result(NOT_EVALUABLE, val, "baseline_score_zero")
    if _pct_ok(base - fu, base, pct):
        return Result(ACHIEVED, val, f"{code}_drop_ge_{fmt_num(pct)}pct")
    return Result(NOT_ACHIEVED, val, f"{code}_drop_lt_{fmt_num(pct)}pct")


# ------------------------------------------------------------ UC endpoints
def _mayo_parts(x: dict) -> tuple[float, float, float] | None:
    if _na(x["mayo_stool"]) or _na(x["mayo_bleeding"]) or _na(x["mayo_endo"]):
        return None
    return float(x["mayo_stool"]), float(x["mayo_bleeding"]), float(x["mayo_endo"])


def _mayo_missing(x: dict, win: str, baseline: bool) -> Result:
    if _na(x["mayo_stool"]) or _na(x["mayo_bleeding"]):
        return Result(
            NOT_EVALUABLE,
            "no baseline stool and bleeding subscores" if baseline else f"no stool and bleeding subscores in days {win}",
            "no_baseline" if baseline else "no_assessment_in_window",
        )
    return Result(
        NOT_EVALUABLE,
        "no baseline Mayo endoscopic subscore" if baseline else f"no Mayo endoscopic subscore in days {win}",
        "no_baseline_endoscopy" if baseline else "no_endoscopy_in_window",
    )


def uc_endpoint(spec: EndpointSpec, b: dict, f: dict, steroid, win: str, cfg: dict) -> Result:
    """UC endpoints (docs/STUDY_RULES.md#endpoints, UC; thresholds ``endpoints.UC``) by the
    endpoint's rule; adapted Mayo = stool + bleeding (one visit) + endoscopic subscore
    (closest endoscopy): remission adapted Mayo <= 2 with no subscore > 1 (and
    steroid-free when the endpoint says so); response drop >= 2 points and >= 30 %, with
    bleeding drop >= 1 or bleeding <= 1; endoscopic remission endoscopic subscore <= 0;
    endoscopic response endoscopic subscore drop >= 50 %."""
    rule = spec.rule
    if rule in (REMISSION, RESPONSE):
        fp = _mayo_parts(f)
        if fp is None:
            return _mayo_missing(f, win, baseline=False)
        s, bl, e = fp
        total = s + bl + e
        parts = f"stool {fmt_value(s)}, bleeding {fmt_value(bl)}, endoscopic {fmt_value(e)}"
        if rule == REMISSION:
            mx, sub = cfg["remission_adapted_mayo_max"], cfg["remission_subscore_max"]
            val = f"adapted Mayo {fmt_value(total)} ({parts})"
            if total > mx:
                return Result(NOT_ACHIEVED, val, f"adapted_mayo_gt_{fmt_num(mx)}")
            if max(fp) > sub:
                return Result(NOT_ACHIEVED, val, f"subscore_gt_{fmt_num(sub)}")
            if not spec.steroid_free:
                return Result(ACHIEVED, val, f"adapted_mayo_le_{fmt_num(mx)}_no_subscore_gt_{fmt_num(sub)}")
            free, why, detail = steroid(f["mayo_sb_date"])
            if not free:
                return Result(NOT_ACHIEVED, f"{val}; {detail}", why)
            return Result(ACHIEVED, val, f"adapted_mayo_le_{fmt_num(mx)}_no_subscore_gt_{fmt_num(sub)}_steroid_free")
        bp = _mayo_parts(b)
        if bp is None:
            return _mayo_missing(b, win, baseline=True)
        bt = sum(bp)
        val = (
            f"adapted Mayo {fmt_value(total)} (baseline {fmt_value(bt)}); "
            f"bleeding {fmt_value(bl)} (baseline {fmt_value(bp[1])})"
        )
        pts, pct = cfg["response_drop_points"], cfg["response_drop_pct"]
        bdrop, bmax = cfg["response_bleeding_drop"], cfg["response_bleeding_max"]
        if bt - total < pts:
            return Result(NOT_ACHIEVED, val, f"adapted_mayo_drop_lt_{fmt_num(pts)}")
        if not _pct_ok(bt - total, bt, pct):
            return Result(NOT_ACHIEVED, val, f"adapted_mayo_drop_lt_{fmt_num(pct)}pct")
        if not (bp[1] - bl >= bdrop or bl <= bmax):
            return Result(NOT_ACHIEVED, val, "bleeding_criterion_not_met")
        return Result(
            ACHIEVED, val, f"adapted_mayo_drop_ge_{fmt_num(pts)}_and_ge_{fmt_num(pct)}pct_bleeding_criterion_met"
        )
    if rule == ENDOSCOPIC_REMISSION:
        if _na(f["mayo_endo"]):
            return Result(NOT_EVALUABLE, f"no Mayo endoscopic subscore in days {win}", "no_endoscopy_in_window")
        e, mx = float(f["mayo_endo"]), cfg["endoscopic_remission_endo_max"]
        val = f"Mayo endoscopic subscore {fmt_value(e)}"
        if e <= mx:
            return Result(ACHIEVED, val, f"mayo_endo_le_{fmt_num(mx)}")
        return Result(NOT_ACHIEVED, val, f"mayo_endo_gt_{fmt_num(mx)}")
    if rule == ENDOSCOPIC_RESPONSE:
        return _drop_pct(
            "Mayo endoscopic subscore", f["mayo_endo"], b["mayo_endo"], cfg["endoscopic_response_drop_pct"], win, "mayo_endo"
        )
    raise ValueError(f"{spec.name}: unknown rule {rule!r}")


# -------------------------------------------------------- biomarker endpoints
def biomarker_thresholds(cfg: dict) -> dict[str, tuple[str, float]]:
    """Per test (CRP, FC) the comparison that counts as normal and its threshold, from
    ``endpoints.biochemical``: ``<`` for ``crp_below``/``fc_below``, ``<=`` for
    ``crp_max``/``fc_max``."""
    out = {}
    for test in ("CRP", "FC"):
        below, at_most = cfg.get(f"{test.lower()}_below"), cfg.get(f"{test.lower()}_max")
        if (below is None) == (at_most is None):
            raise ValueError(f"endpoints.biochemical: give exactly one of {test.lower()}_below and {test.lower()}_max")
        out[test] = ("<", float(below)) if below is not None else ("<=", float(at_most))
    return out


_WORDS = {"<": ("lt", "ge"), "<=": ("le", "gt")}
# per rule: the tests it reads and whether any one (OR) or every one (AND) must be normal
_BIOMARKER_TESTS = {CRP_NORMAL: (("CRP",), "any"), FC_NORMAL: (("FC",), "any"),
                    FC_OR_CRP_NORMAL: (("FC", "CRP"), "any"), FC_AND_CRP_NORMAL: (("FC", "CRP"), "all")}


def biomarker_endpoint(spec: EndpointSpec, crp: pd.Series | None, fc: pd.Series | None, win: str, cfg: dict,
                       units: dict) -> Result:
    """Biochemical endpoints (docs/STUDY_RULES.md#endpoints, both; thresholds
    ``endpoints.biochemical``, see ``biomarker_thresholds``) by the endpoint's rule:
    crp_normal (the multicenter study: CRP < 8 mg/L; the single-center one: <= 5),
    fc_normal (FC < 150 ug/g; <= 250), fc_or_crp_normal (either normal: the multicenter
    biochemical remission), fc_and_crp_normal (both normal, each measured: the
    single-center biomarker remission). Detection-limit qualifiers are honoured ("<5" is
    below 8; "<10" against 8 is undecidable -> not evaluable; ">200" is not below 8).
    ``crp``/``fc``: the chosen lab row or None."""
    if spec.rule not in _BIOMARKER_TESTS:
        raise ValueError(f"{spec.name}: unknown rule {spec.rule!r}")
    tests, combine = _BIOMARKER_TESTS[spec.rule]
    thr = biomarker_thresholds(cfg)
    rows = {"CRP": crp, "FC": fc}
    outcomes, texts = [], []
    for test in tests:
        op, t = thr[test]
        row = rows[test]
        if row is None:
            outcomes.append((test, op, t, "missing"))
            texts.append(f"no {test} in days {win}")
            continue
        r = compare(row["value"], row["qualifier"], op, t)
        outcomes.append((test, op, t, {True: "ok", False: "not", None: "undecidable"}[r]))
        texts.append(lab_text(test, row["value"], row["qualifier"], units.get(test)))
    val = "; ".join(texts)

    def words(kind):
        return "_and_".join(f"{te.lower()}_{_WORDS[op][0 if kind == 'ok' else 1]}_{fmt_num(t)}"
                            for te, op, t, o in outcomes if o == kind)

    ok = [o for o in outcomes if o[3] == "ok"]
    measured = all(o[3] in ("ok", "not") for o in outcomes)
    if (combine == "any" and ok) or (combine == "all" and len(ok) == len(outcomes)):
        return Result(ACHIEVED, val, words("ok"))
    # AND: complete case needs every test of the combination measured (a patient with
    # CRP > 5 and no FC is not evaluable for CRP <= 5 AND FC <= 250)
    if (combine == "all" and measured) or all(o[3] == "not" for o in outcomes):
        return Result(NOT_ACHIEVED, val, words("not"))
    if any(o[3] == "undecidable" for o in outcomes):
        return Result(NOT_EVALUABLE, val, "qualifier_undecidable")
    missing = [te for te, _, _, o in outcomes if o == "missing"]
    if len(missing) == len(outcomes):
        return Result(NOT_EVALUABLE, val, "no_lab_in_window")
    return Result(NOT_EVALUABLE, val, "_and_".join(f"no_{te.lower()}_in_window" for te in missing))


def endpoint_groups(settings: dict, clinical: list[EndpointSpec]) -> list[tuple[str, list[EndpointSpec]]]:
    """Per clinical or endoscopic time point, in order, the endpoints evaluated there: the
    clinical rules (remission, response) at ``timepoints.clinical``, the endoscopic rules
    at ``timepoints.endoscopic`` (default: the clinical time points)."""
    tp = settings["timepoints"]
    endoscopic_at = tp.get("endoscopic") or tp["clinical"]
    out = []
    for t in dict.fromkeys([*tp["clinical"], *endoscopic_at]):
        out.append((t, [e for e in clinical if (t in endoscopic_at if e.rule in ENDOSCOPIC_RULES else t in tp["clinical"])]))
    return out


# ------------------------------------------------------------------- driver
def endpoints(
    patients: pd.DataFrame,
    medications: pd.DataFrame,
    surgeries: pd.DataFrame,
    assessments: pd.DataFrame,
    labs: pd.DataFrame,
    settings: dict,
    crf: Crf,
) -> pd.DataFrame:
    """Every endpoint of every included patient at every time point
    (docs/STUDY_RULES.md#endpoints, #windows).

    Clinical and endoscopic endpoints (``endpoints.clinical_endpoints``) at
    ``timepoints.clinical``; biomarker endpoints (``endpoints.biomarker_endpoints``) at
    ``timepoints.labs``, each by its rule.

    Endoscopic endpoints are evaluated at ``timepoints.endoscopic`` (default: the clinical
    time points). Analysis sets (``timepoints.analysis_set``, ``endpoints.analysis_sets``):
    with ``reached_or_stopped`` a patient who has not yet reached a clinical time point by
    the data cut-off (and did not stop before it) has no rows there - the analysis-set
    table lists them; with ``all_included`` (default) every included patient has rows.
    Non-responder imputation applies to the endpoint groups of ``endpoints.nri_applies_to``.

    Failures and gaps: a patient who stopped UPA or had an IBD-related bowel resection
    before the time point (``nri_event``) is ``not_achieved`` for the clinical and
    endoscopic endpoints at that and every later time point, whatever was measured;
    biomarker endpoints are evaluated from the labs regardless. Otherwise a missing
    component leaves the endpoint ``not_evaluable``. ``status_nri`` counts not evaluable as
    not achieved. ``value`` is the score/lab value used (text) and ``reason`` is always set.
    Patients of a diagnosis without clinical scores (IBDU) get ``diagnosis_not_scored``.

    Columns: patient_id, center, diagnosis, timepoint, endpoint, status, status_nri, value,
    reason."""
    check_canonical_units(labs, crf)
    p = patient_table(patients)
    dx = p.set_index(PATIENT_KEY)["diagnosis"]
    tp_cfg = settings["timepoints"]
    cfg = settings["endpoints"]
    clinical, biomarker = endpoint_specs(settings, "clinical"), endpoint_specs(settings, "biomarker")
    groups = endpoint_groups(settings, clinical)
    nri_groups = set(cfg.get("nri_applies_to") or ("clinical", "endoscopic"))
    # the analysis-set rule is the clinical time points'; an endoscopic-only time point
    # (one unscheduled follow-up endoscopy) is complete case among every included patient
    sets = analysis_sets(p, settings, list(tp_cfg["clinical"]))
    left_out = sets[~sets["in_set"] & (sets["membership"] != "no_target")]
    out_of_set = set(zip(left_out[PATIENT_KEY], left_out["timepoint"]))

    a = add_day(assessments, p, "visit_date")
    scores = {tp: scores_at(a, settings, tp, dx).to_dict("index") for tp in [BASELINE, *(t for t, _ in groups)]}
    lab = add_day(labs, p, "sample_date")
    chosen_labs = {
        tp: {(r[PATIENT_KEY], r["test"]): r for r in labs_at(lab, settings, tp, dx, list(ENDPOINT_LAB_TESTS)).to_dict("records")}
        for tp in tp_cfg["labs"]
    }
    units = {t: crf.canonical_unit(t) for t in ("CRP", "FC")}

    meds = medication_table(medications, p, settings, crf)
    steroids = meds[meds["drug_class"].isin((settings.get("steroids") or {}).get("classes") or [])]
    steroids_by = {k: _episode_records(g) for k, g in steroids.groupby(PATIENT_KEY)}
    no_episodes: list[tuple] = []
    s = surgery_table(surgeries, p, crf)
    res = s[s["bowel_resection"] & (s["day"] >= 0)]
    res_by = res.groupby(PATIENT_KEY)["surgery_date"].apply(list).to_dict()

    rows = []
    for pat in p.to_dict("records"):
        pid, diag = pat[PATIENT_KEY], pat["diagnosis"]
        head = (pid, pat["center"], diag)
        episodes = steroids_by.get(pid, no_episodes)
        for tp, at_tp in groups:
            if (pid, tp) in out_of_set:  # not yet reached (timepoints.analysis_set): not in this set
                continue
            t = target_day(settings, tp, diag)
            lo, hi = window_bounds(settings, tp)
            if t is None or diag not in ("CD", "UC"):
                for ep in at_tp:
                    rows.append((*head, tp, ep.name, Result(NOT_EVALUABLE, f"{diag} is not scored", "diagnosis_not_scored")))
                continue
            win = f"{t + lo}..{t + hi}"
            ev = nri_event(pat, pat["upa_start_date"] + pd.Timedelta(days=t), res_by.get(pid, []), settings)
            b, f = scores[BASELINE][pid], scores[tp][pid]

            def steroid(on, _tp=tp, _ep=episodes):
                return _steroid_free_records(_ep, on, _tp, settings)

            for ep in at_tp:
                if ev is not None and ("endoscopic" if ep.rule in ENDOSCOPIC_RULES else "clinical") in nri_groups:
                    r = Result(NOT_ACHIEVED, ev[1], ev[0])
                elif diag == "CD":
                    r = cd_endpoint(ep, b, f, steroid, win, cfg["CD"])
                else:
                    r = uc_endpoint(ep, b, f, steroid, win, cfg["UC"])
                rows.append((*head, tp, ep.name, r))
        for tp in tp_cfg["labs"]:
            t = target_day(settings, tp, diag)
            if t is None:
                for ep in biomarker:
                    rows.append((*head, tp, ep.name, Result(NOT_EVALUABLE, f"no {tp} target for {diag}", "no_target_for_diagnosis")))
                continue
            lo, hi = window_bounds(settings, tp)
            win = f"{t + lo}..{t + hi}"
            crp, fc = chosen_labs[tp].get((pid, "CRP")), chosen_labs[tp].get((pid, "FC"))
            for ep in biomarker:
                rows.append((*head, tp, ep.name, biomarker_endpoint(ep, crp, fc, win, cfg["biochemical"], units)))

    out = pd.DataFrame(
        [(*h, r.status, ACHIEVED if r.status == ACHIEVED else NOT_ACHIEVED, r.value, r.reason) for *h, r in rows],
        columns=OUTPUT_COLUMNS,
    )
    return out
