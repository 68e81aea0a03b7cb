"""Realisation of the designed cohort as canonical CRF tables (round A = the truth).

Input: the slot dicts of :mod:`.design` (one per patient), the center and ``mrn`` of each
patient. Output: one pandas DataFrame per CRF data table with the CRF field names plus
``pidx`` (patient index). Dates are int day numbers (``_util.MISSING_DAY`` = empty),
booleans are object arrays of True/False/None, numbers float (NaN = empty), codes str/None.

Large tables (assessments, labs) are built column-wise with numpy per *role* (a visit or
sample that a patient may have: baseline, induction, ...); small per-patient lists
(medications, surgeries, adverse events) are built in Python.

How each designed state becomes values (STUDY.md "Time points and windows", "Endpoints"):

* one scheduled visit per clinical time point, ``|offset| <= 10`` days from the target,
  with clinical subscores *and* the endoscopy; decoy visits (opposite values, no
  endoscopy) lie strictly farther from the target, inside the window;
* baseline visit (with endoscopy) on days -14..0; an optional earlier visit on days
  -120..-65 (outside both baseline windows);
* a steroid course covering day 0 (if designed) ends on day 14..60 (CD) / 14..40 (UC):
  before every induction visit and >= 90 days before every month-6 visit;
* labs: one sample per test per lab time point (CRP/FC decoys strictly farther), values
  never within 0.5 mg/L of CRP 8 or 10 ug/g of FC 150.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._util import MISSING_DAY, day_of, rng_for, years_before
from .design import TARGETS, TIMES

CORE_TESTS = ["CRP", "FC", "ESR", "ALB", "VITD25", "WBC", "HB", "PLT", "ALT", "AST", "HDL", "TC", "LDL"]
OCCASIONAL_TESTS = {"EGFR": 0.3, "NEUT": 0.4, "CK": 0.2, "FIB": 0.2}
CORE_PRESENCE = {"CRP": 1.0, "FC": 1.0, "VITD25": 0.8, "HDL": 0.85, "TC": 0.85, "LDL": 0.85}
ALL_TESTS = CORE_TESTS + list(OCCASIONAL_TESTS)
# canonical decimals of each test as the labs print it
DECIMALS = {
    "CRP": 1,
    "FC": 0,
    "ESR": 0,
    "ALB": 1,
    "VITD25": 1,
    "WBC": 2,
    "NEUT": 2,
    "HB": 0,
    "PLT": 0,
    "ALT": 0,
    "AST": 0,
    "HDL": 2,
    "TC": 2,
    "LDL": 2,
    "CK": 0,
    "FIB": 2,
    "EGFR": 0,
}

STUDY_START = "2023-01-03"
CUTOFF = "2025-03-31"  # last day any record may carry (end of the study period)


@dataclass
class Context:
    """Everything the realisation steps share."""

    seed: int
    slots: list[dict]
    settings: dict
    n: int = 0
    arr: dict = field(default_factory=dict)  # per-patient numpy arrays

    def rng(self, *names):
        return rng_for(self.seed, "cohort", *names)


def _u(rng, lo, hi, size=None):
    """Uniform integers in [lo, hi] (inclusive; arrays allowed)."""
    lo = np.asarray(lo)
    hi = np.asarray(hi)
    return (lo + np.floor(rng.random(size if size is not None else np.broadcast(lo, hi).shape) * (hi - lo + 1))).astype(
        np.int64
    )


def _targets(settings: dict) -> dict:
    tp = settings["timepoints"]["targets"]
    return {
        "induction": {
            "UC": int(tp["induction"]["UC"]),
            "CD": int(tp["induction"]["CD"]),
            "IBDU": int(tp["induction"]["UC"]),
        },
        "month6": int(tp["month6"]),
        "month12": int(tp["month12"]),
        "month18": int(tp["month18"]),
        "hw": int(settings["timepoints"]["window_halfwidth"]),
    }


def target_day(tg: dict, t: str, diag: np.ndarray) -> np.ndarray:
    if t == "induction":
        return np.array([tg["induction"].get(d, tg["induction"]["UC"]) for d in diag], dtype=np.int64)
    if t == "baseline":
        return np.zeros(len(diag), dtype=np.int64)
    return np.full(len(diag), tg[t], dtype=np.int64)


# ------------------------------------------------------------------ patients
def _patient_arrays(ctx: Context) -> None:
    """Per-patient dates and flags: UPA start/stop, birth, diagnosis, follow-up horizon."""
    S = ctx.slots
    n = ctx.n = len(S)
    rng = ctx.rng("patients")
    tg = _targets(ctx.settings)
    a = ctx.arr
    a["diag"] = np.array([s["diagnosis"] for s in S], dtype=object)
    a["included"] = np.array([s["included"] for s in S])
    a["category"] = np.array([s["category"] for s in S], dtype=object)
    a["detail"] = np.array([s["detail"] for s in S], dtype=object)
    phase = np.array([s["stop_phase"] or "" for s in S], dtype=object)
    a["phase"] = phase
    start0, cutoff = day_of(STUDY_START), day_of(CUTOFF)
    start = start0 + np.where(a["included"], _u(rng, 0, 225, n), _u(rng, 0, 540, n))
    recent = phase == "recent"
    start = np.where(recent, day_of("2025-01-10") + _u(rng, 0, 25, n), start)
    a["start"] = start
    ind = target_day(tg, "induction", a["diag"])
    hw = tg["hw"]
    m6, m12 = tg["month6"], tg["month12"]
    stop = np.full(n, MISSING_DAY, dtype=np.int64)
    sa = _u(rng, ind + hw + 8, m6 - hw - 14, n)
    sb = _u(rng, m6 + hw + 15, m12 - hw - 17, n)
    sc = _u(rng, m12 + hw + 27, m12 + hw + 127, n)
    stop = np.where(phase == "S_a", sa, stop)
    stop = np.where(phase == "S_b", sb, stop)
    stop = np.where(phase == "S_c", sc, stop)
    stop = np.where(phase == "short", _u(rng, 50, 70, n), stop)
    a["stop"] = stop  # relative day, MISSING_DAY = ongoing
    # follow-up horizon (relative day of last follow-up, for excluded patients fixed now)
    horizon = np.minimum(cutoff - start, _u(rng, 200, 700, n))
    horizon = np.where(a["included"], cutoff - start, horizon)
    horizon = np.where(recent, _u(rng, 40, 50, n), horizon)
    insuff = a["detail"] == "no_followup"
    horizon = np.where(insuff, np.minimum(cutoff - start, _u(rng, 60, 300, n)), horizon)
    horizon = np.where(phase == "short", stop + _u(rng, 30, 200, n), horizon)
    a["horizon"] = horizon
    age = np.array([s["age"] for s in S])
    dx_age = np.array([s["dx_age"] for s in S])
    birth = years_before(start, age) - _u(rng, 20, 340, n)
    dx = years_before(birth, -dx_age) + _u(rng, 20, 180, n)
    a["birth"], a["dx"] = birth, dx
    a["dx_rel"] = dx - start
    a["g"] = np.array([s["g"] for s in S])
    a["alb_low"] = np.array([bool(s.get("alb_low")) for s in S])
    a["post_dose"] = np.where(rng.random(n) < 0.8, 15, 30)
    a["ind_target"] = ind


def _patients_table(ctx: Context, last_fu_rel: np.ndarray) -> pd.DataFrame:
    S = ctx.slots
    a = ctx.arr
    n = ctx.n
    rng = ctx.rng("patients-table")
    diag = a["diag"]
    cd, uc = diag == "CD", diag == "UC"
    male = np.array([s["male"] for s in S])

    def col(key, only=None):
        v = np.array([s[key] for s in S], dtype=object)
        if only is not None:
            v = np.where(only, v, None)
        return v

    def b(key, only=None):
        v = np.array([bool(s[key]) for s in S], dtype=object)
        if only is not None:
            v = np.where(only, v, None)
        return v

    height = np.where(male, rng.normal(171.5, 6.0, n), rng.normal(160.0, 5.5, n))
    bmi = np.clip(rng.normal(20.6, 3.0, n), 14.5, 33)
    weight = bmi * (height / 100) ** 2
    height = np.round(height, 1)
    weight = np.round(weight, 1)
    height = np.where(rng.random(n) < 0.04, np.nan, height)
    weight = np.where(rng.random(n) < 0.04, np.nan, weight)
    smoking = np.array(["never", "former", "current"], dtype=object)[rng.choice(3, size=n, p=[0.65, 0.2, 0.15])]
    smoking = np.where(rng.random(n) < 0.05, None, smoking)
    eim = np.array([s["eim"] for s in S], dtype=bool).reshape(n, 4)
    stop = a["stop"]
    has_stop = stop != MISSING_DAY
    reasons = np.array([s["stop_reason"] for s in S], dtype=object)
    df = pd.DataFrame(
        {
            "pidx": np.arange(n),
            "sex": np.where(male, "M", "F").astype(object),
            "birth_date": a["birth"],
            "diagnosis": diag,
            "diagnosis_date": a["dx"],
            "cd_location": col("cd_location", cd),
            "cd_upper_gi": b("cd_upper_gi", cd),
            "cd_behavior": col("cd_behavior", cd),
            "cd_perianal": b("cd_perianal", cd),
            "uc_extent": col("uc_extent", uc),
            "complex_perianal": b("complex_perianal"),
            "ileal_pouch": b("ileal_pouch"),
            "pouchitis_chronic_ab_refractory": b("pouchitis"),
            "psychosocial_comorbidity": b("psychosocial"),
            "smoking": smoking,
            "height_cm": height,
            "weight_kg": weight,
            "eim_eye": eim[:, 0].astype(object),
            "eim_skin": eim[:, 1].astype(object),
            "eim_joint": eim[:, 2].astype(object),
            "eim_other": eim[:, 3].astype(object),
            "pregnant_or_breastfeeding": b("pregnant"),
            "serious_infection_at_start": b("serious_infection"),
            "malignancy_history": b("malignancy"),
            "upa_start_date": a["start"],
            "upa_stop_date": np.where(has_stop, a["start"] + stop, MISSING_DAY),
            "upa_stop_reason": np.where(has_stop, reasons, None),
            "last_followup_date": a["start"] + last_fu_rel,
        }
    )
    return df


# --------------------------------------------------------------- assessments
def _hbi_items(rng, F):
    """Split HBI totals into the five items (wellbeing 0-4, pain 0-3, stools, mass 0-3,
    complications 0-8) - the stools absorb the rest."""
    F = F.astype(np.int64)
    w = np.minimum(F, _u(rng, 0, 3, len(F)))
    p = np.minimum(F - w, _u(rng, 0, 2, len(F)))
    m = np.minimum(F - w - p, np.where(rng.random(len(F)) < 0.2, 1, 0))
    c = np.minimum(F - w - p - m, np.where(rng.random(len(F)) < 0.3, _u(rng, 1, 2, len(F)), 0))
    s = F - w - p - m - c
    return w, p, s, m, c


def _cd_hbi(rng, B, state, steroid):
    """HBI total for designed CD states (remission HBI <= 4; response drop >= 3 or >= 50%)."""
    n = len(B)
    F = np.zeros(n, dtype=np.int64)
    bh = state == "BH"
    F = np.where(bh, _u(rng, 0, np.minimum(4, B - 3)), F)
    ro = state == "RO"
    F = np.where(ro, np.where(B == 5, _u(rng, 3, 4, n), 4), F)
    po = state == "PO"
    F = np.where(po & ~steroid, _u(rng, 5, np.maximum(5, B - 4)), F)
    F = np.where(po & steroid, _u(rng, 1, 4, n), F)
    ne = state == "NE"
    F = np.where(ne, _u(rng, np.maximum(5, B - 2), B + 2), F)
    return F


def _cd_ses(rng, E0, state):
    """SES-CD for designed endoscopic states (remission <= 3; response drop >= 50%)."""
    n = len(E0)
    E = np.where(state == "ER", _u(rng, 0, 3, n), 0)
    E = np.where(state == "EP", _u(rng, 4, np.maximum(4, (E0 + 1) // 2 - 1)), E)
    E = np.where(state == "EN", _u(rng, E0 // 2 + 1, np.minimum(60, E0 + 2)), E)
    return E


def _rutgeerts(rng, E):
    out = np.where(
        E <= 3, np.where(rng.random(len(E)) < 0.6, "i0", "i1"), np.where(E <= 6, "i2", np.where(E <= 12, "i3", "i4"))
    )
    return out.astype(object)


def _uc_subs(rng, s0, b0, e0, state):
    """(stool, bleeding, endo) for designed UC states (see design.UC_STATE)."""
    n = len(s0)
    r = rng.integers(0, 4, n)
    s = np.zeros(n, dtype=np.int64)
    b = np.zeros(n, dtype=np.int64)
    e = np.zeros(n, dtype=np.int64)
    s1 = state == "S1"
    s = np.where(s1, np.array([0, 1, 0, 1])[r], s)
    b = np.where(s1, np.array([0, 0, 1, 1])[r], b)
    s23 = (state == "S2") | (state == "S3")
    r3 = r % 3
    s = np.where(s23, np.array([0, 1, 0])[r3], s)
    b = np.where(s23, np.array([0, 0, 1])[r3], b)
    e = np.where(s23, 1, e)
    s4 = state == "S4"
    low = e0 == 1
    s = np.where(s4, np.where(low, 2, 1), s)
    b = np.where(s4, 1, b)
    e = np.where(s4, np.where(low, 1, 2), e)
    s5 = state == "S5"
    drop = np.where(e0 == 3, r, r % 3)  # 0 none, 1 stool-1, 2 bleeding-1, 3 endo-1
    s = np.where(s5, s0 - (drop == 1), s)
    b = np.where(s5, b0 - (drop == 2), b)
    e = np.where(s5, e0 - (drop == 3), e)
    return s, b, e


def _uc_pga(rng, s, b, remission):
    base = np.clip(np.round((s + b) / 2 + rng.normal(0, 0.5, len(s))), 0, 3).astype(np.int64)
    return np.where(remission, np.minimum(base, 1), np.maximum(base, 1))


def _assessments(ctx: Context) -> pd.DataFrame:
    """Visits with HBI items (CD) or Mayo subscores (UC), endoscopies, UPA dose."""
    S = ctx.slots
    a = ctx.arr
    n = ctx.n
    rng = ctx.rng("assessments")
    tg = _targets(ctx.settings)
    diag = a["diag"]
    cd, uc, ibdu = diag == "CD", diag == "UC", diag == "IBDU"
    inc = a["included"]
    detail = a["detail"]
    stop = a["stop"]
    horizon = a["horizon"]
    cd_low = np.array([s["cd_low"] for s in S])
    B = np.where(cd_low, np.where(rng.random(n) < 0.7, 5, 6), _u(rng, 8, 16, n))
    E0 = _u(rng, 10, 24, n)
    rut = np.array([s["rutgeerts"] for s in S])
    e0 = np.array([s["uc_e0"] for s in S], dtype=np.int64)
    need = np.where(np.array([s["uc_need7"] for s in S]), 7, 5) - e0
    s0 = np.where(rng.random(n) < 0.6, 3, 2)
    b0 = np.array([1, 2, 3])[rng.choice(3, size=n, p=[0.2, 0.45, 0.35])]
    for _ in range(4):
        short = s0 + b0 < need
        b0 = np.where(short & (b0 < 3), b0 + 1, b0)
        short = s0 + b0 < need
        s0 = np.where(short & (s0 < 3), s0 + 1, s0)
    a["hbi0"], a["ses0"] = B, E0
    steroid_var = [s["steroid_var"] for s in S]
    clin = np.array([s["clin"] or ("NE",) * 3 for s in S], dtype=object).reshape(n, 3)
    endo = np.array([s["endo"] or ("EN",) * 3 for s in S], dtype=object).reshape(n, 3)
    # excluded UC patients were designed with random states: make S2 impossible for e0 != 3
    clin = np.where(uc[:, None] & (e0[:, None] != 3) & (clin == "S2"), "S1", clin)

    rows = []  # list of dict-of-arrays

    def add(mask, day, kind, tidx=None, endoscopy=False, state=None, estate=None, decoy=False, score=True):
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return
        day = np.asarray(day)[idx] if np.ndim(day) else np.full(len(idx), day)
        keep = day <= horizon[idx]
        stp = stop[idx]
        keep &= (stp == MISSING_DAY) | (day <= stp)
        idx, day = idx[keep], day[keep]
        if len(idx) == 0:
            return
        m = len(idx)
        out = {"pidx": idx, "visit_day": day}
        d = diag[idx]
        st = np.asarray(state)[idx] if state is not None else np.array(["NE"] * m, dtype=object)
        # CD
        isc = d == "CD"
        ster = np.array([tidx is not None and TIMES[tidx] in steroid_var[i] for i in idx])
        if kind == "base" or kind == "pre":
            F = np.where(kind == "pre", np.maximum(5, B[idx] + _u(rng, -2, 2, m)), B[idx])
        elif decoy:
            F = np.where(np.isin(st, ["BH", "RO"]), B[idx] + 1, _u(rng, 0, 2, m))
        else:
            F = _cd_hbi(rng, B[idx], st, ster)
        w, p, s_, mm, c = _hbi_items(rng, F)
        for name, v in (
            ("hbi_wellbeing", w),
            ("hbi_pain", p),
            ("hbi_liquid_stools", s_),
            ("hbi_mass", mm),
            ("hbi_complications", c),
        ):
            out[name] = np.where(isc & score, v, np.nan)
        if endoscopy:
            if kind == "base":
                E = E0[idx]
            else:
                es = np.asarray(estate)[idx]
                E = _cd_ses(rng, E0[idx], es)
            out["ses_cd"] = np.where(isc, E, np.nan)
            out["rutgeerts"] = np.where(isc & rut[idx], _rutgeerts(rng, E), None)
        else:
            out["ses_cd"] = np.full(m, np.nan)
            out["rutgeerts"] = np.full(m, None, dtype=object)
        # UC
        isu = d == "UC"
        if kind in ("base", "pre"):
            su, bu, eu = s0[idx].copy(), b0[idx].copy(), e0[idx].copy()
            if kind == "pre":
                su = np.clip(su + _u(rng, -1, 0, m), 1, 3)
            rem = np.zeros(m, bool)
        elif decoy:
            good = np.isin(st, ["S1", "S2", "S3"])
            su = np.where(good, 3, 0)
            bu = np.where(good, 3, 0)
            eu = np.zeros(m, dtype=np.int64)
            rem = ~good
        else:
            su, bu, eu = _uc_subs(rng, s0[idx], b0[idx], e0[idx], st)
            rem = np.isin(st, ["S1", "S2", "S3"])
        out["mayo_stool"] = np.where(isu & score, su, np.nan)
        out["mayo_bleeding"] = np.where(isu & score, bu, np.nan)
        out["mayo_pga"] = np.where(isu & score, _uc_pga(rng, su, bu, rem), np.nan)
        out["mayo_endo"] = np.where(isu & endoscopy, eu, np.nan)
        ind_t = a["ind_target"][idx]
        dose = np.where(day < 0, np.nan, np.where(day <= ind_t, 45, a["post_dose"][idx]))
        out["upa_dose_mg"] = dose
        rows.append(out)

    hw = tg["hw"]
    ind = a["ind_target"]
    nob = detail == "no_baseline"
    nof = detail == "no_followup"
    scored = ~ibdu
    # baseline (+ optional earlier visit outside the windows)
    base_day = np.where(inc & (rng.random(n) < 0.15), 0, _u(rng, -14, -1, n))
    add(scored & ~nob, base_day, "base", endoscopy=True)
    add(scored & (inc | nob) & (rng.random(n) < 0.3), _u(rng, -120, -65, n), "pre")
    # follow-up time points
    for t, name in enumerate(TIMES):
        tgt = ind if name == "induction" else np.full(n, tg[name])
        off = _u(rng, -10, 10, n)
        present = scored & ~nof & (inc | (t == 0) | (rng.random(n) < 0.6))
        present &= ~np.isin(a["phase"], ["short", "recent"])
        add(present, tgt + off, "tp", tidx=t, endoscopy=True, state=clin[:, t], estate=endo[:, t])
        if t == 0:
            # decoy: inside the window, strictly farther from the target, opposite values
            sign = np.where(off > 0, -1, np.where(off < 0, 1, np.where(rng.random(n) < 0.5, -1, 1)))
            far = np.abs(off) + _u(rng, 3, 12, n)
            dec = inc & (rng.random(n) < 0.15)
            add(dec, tgt + sign * np.minimum(far, hw - 2), "tp", tidx=None, state=clin[:, t], decoy=True)
    # short exposure / recent start: one post-baseline visit
    add(
        scored & np.isin(a["phase"], ["short", "recent"]),
        _u(rng, 25, 38, n),
        "tp",
        tidx=0,
        state=clin[:, 0],
        estate=endo[:, 0],
    )
    # no baseline: follow-up visits exist (checked above); IBDU: dose-only visits
    add(ibdu, ind + _u(rng, -7, 7, n), "tp", score=False)
    add(ibdu & (rng.random(n) < 0.7), tg["month6"] + _u(rng, -7, 7, n), "tp", score=False)
    # interim and later visits (no endoscopy), stop visits
    interim = np.where(cd, _u(rng, ind + hw + 13, tg["month6"] - hw - 9, n), _u(rng, ind + hw + 16, ind + hw + 41, n))
    add(inc & (rng.random(n) < 0.3), interim, "tp", state=clin[:, 0])
    add(
        inc & (rng.random(n) < 0.4),
        _u(rng, tg["month12"] + hw + 37, tg["month12"] + hw + 127, n),
        "tp",
        state=clin[:, 2],
    )
    stopper = inc & (stop != MISSING_DAY)
    add(stopper, stop, "tp", state=np.full(n, "NE", dtype=object))
    cols = [
        "pidx",
        "visit_day",
        "hbi_wellbeing",
        "hbi_pain",
        "hbi_liquid_stools",
        "hbi_mass",
        "hbi_complications",
        "mayo_stool",
        "mayo_bleeding",
        "mayo_pga",
        "mayo_endo",
        "ses_cd",
        "rutgeerts",
        "upa_dose_mg",
    ]
    df = pd.concat([pd.DataFrame({c: r[c] for c in cols}) for r in rows], ignore_index=True)
    df = df.sort_values(["pidx", "visit_day"], kind="stable")
    df = df.drop_duplicates(["pidx", "visit_day"], keep="first").reset_index(drop=True)
    return df


# ---------------------------------------------------------------------- labs
def _lab_values(rng, test, z, t_index, normal, extra):
    """Canonical design values of one test (float) and qualifier ('', '<', '>').

    ``z`` patient effect, ``t_index`` 0 baseline .. 5, ``normal`` CRP/FC designed flag."""
    m = len(z)
    q = np.full(m, "", dtype=object)
    post = t_index > 0
    if test == "CRP":
        lo = rng.random(m) < 0.15
        lim = np.where(rng.random(m) < 0.7, 0.5, 1.0)
        v_norm = np.where(lo, lim, 0.6 + 6.9 * rng.beta(1.2, 2.5, m))
        # abnormal CRP close above 8 mg/L: the published baseline mean (5.3) with 51 of 80
        # patients at >= 8 mg/L leaves little room above the threshold
        v_abn = np.minimum(8.2 + np.exp(rng.normal(-0.3, 0.9, m)), 180.0)
        v = np.where(normal, v_norm, v_abn)
        q = np.where(normal & lo, "<", "")
        return v, q.astype(object)
    if test == "FC":
        lo = rng.random(m) < 0.08
        v_norm = np.where(lo, 20.0, 20 + 120 * rng.beta(1.5, 2.0, m))
        v_abn = 160 + np.exp(rng.normal(np.log(750), 0.6, m))
        hi = v_abn >= 1800
        v = np.where(normal, v_norm, np.where(hi, 1800.0, v_abn))
        q = np.where(normal & lo, "<", np.where(~normal & hi, ">", ""))
        return v, q.astype(object)
    noise = rng.normal(0, 1, m)
    if test == "ESR":
        v = np.maximum(2, np.exp(np.log(15.5) + 0.55 * z + 0.25 * noise) * np.where(post, 0.75, 1.0))
    elif test == "ALB":
        v = np.clip(41.1 + 4.0 * z + 1.2 * noise + 0.8 * post, 22, 52)
    elif test == "VITD25":
        v = np.clip(40.3 + 11 * z + 4 * noise + 2 * post, 8, 120)
    elif test in ("WBC", "NEUT"):
        v = np.clip(6.5 + 1.6 * z + 0.7 * noise, 2.3, 18)
        if test == "NEUT":
            v = v * (0.55 + 0.1 * rng.random(m))
    elif test == "HB":
        v = np.clip(122.4 + 15 * z + 5 * noise + 3 * post, 70, 175)
    elif test == "PLT":
        v = np.clip(296 + 75 * z + 25 * noise - 20 * post, 90, 650)
    elif test == "ALT":
        v = np.clip(np.exp(np.log(13) + 0.4 * z + 0.2 * noise), 4, 90)
    elif test == "AST":
        v = np.clip(np.exp(np.log(17) + 0.3 * z + 0.15 * noise), 6, 90)
    elif test == "HDL":
        v = np.clip(1.22 + 0.28 * z + 0.08 * noise + 0.08 * post, 0.5, 2.8)
    elif test == "TC":
        v = np.clip(4.1 + 0.8 * z + 0.2 * noise + 0.35 * post, 2.0, 9.0)
    elif test == "LDL":
        v = np.clip(2.3 + 0.6 * z + 0.15 * noise + 0.2 * post, 0.8, 6.0)
    elif test == "CK":
        v = np.clip(np.exp(np.log(85) + 0.4 * z + 0.2 * noise) * np.where(post, 1.2, 1.0), 20, 900)
    elif test == "FIB":
        v = np.clip(3.4 + 0.8 * z + 0.3 * noise - 0.3 * post, 1.2, 8)
    elif test == "EGFR":
        v = np.clip(108 + 14 * z + 4 * noise, 50, 150)
    else:  # pragma: no cover
        raise KeyError(test)
    return v, q


def _labs(ctx: Context) -> pd.DataFrame:
    """Lab samples: canonical design values (unit conversion per center comes later)."""
    S = ctx.slots
    a = ctx.arr
    n = ctx.n
    rng = ctx.rng("labs")
    tg = _targets(ctx.settings)
    inc = a["included"]
    horizon = a["horizon"]
    crp = np.array([s["crp"] or (False,) * 5 for s in S], dtype=bool).reshape(n, 5)
    fc = np.array([s["fc"] or (False,) * 5 for s in S], dtype=bool).reshape(n, 5)
    # excluded patients: random CRP/FC status
    rnd = rng.random((n, 5)) < np.array([0.35, 0.55, 0.6, 0.6, 0.6])
    crp = np.where(inc[:, None], crp, rnd)
    fc = np.where(inc[:, None], fc, rng.random((n, 5)) < np.array([0.2, 0.45, 0.5, 0.55, 0.6]))
    Z = {t: rng.normal(size=n) for t in ALL_TESTS}
    Z["NEUT"] = Z["WBC"]
    lab_excl = np.array([s["lab_excl"] or "" for s in S], dtype=object)
    parts = []

    def sample(mask, day, t_index, role):
        idx = np.flatnonzero(mask & (day <= horizon))
        if len(idx) == 0:
            return
        m = len(idx)
        d = day[idx]
        for test in ALL_TESTS:
            p = CORE_PRESENCE.get(test, 0.95) if test in CORE_TESTS else OCCASIONAL_TESTS[test]
            if role == "hist":
                p = p * 0.6 if test not in ("CRP", "FC") else 0.8
            if role == "bl" and test in ("ALT", "AST"):
                p = 1.0
            keep = rng.random(m) < p
            if role == "bl" and test == "ALB":  # the designed albumin <= 35 g/L is measured
                keep |= a["alb_low"][idx] & inc[idx]
            if role == "bl" and test in ("ALT", "AST", "EGFR"):
                keep |= lab_excl[idx] == test
            ii = idx[keep]
            if len(ii) == 0:
                continue
            dd = d[keep].copy()
            if test == "FC":  # stool sample: same day or up to 2 days later
                dd = dd + _u(rng, 0, 2, len(ii))
                if role == "bl":
                    dd = np.minimum(dd, 0)
                else:
                    dd = np.minimum(dd, d[keep] + 2)
            normal = (
                (crp if test == "CRP" else fc)[ii, t_index]
                if t_index is not None and test in ("CRP", "FC")
                else rng.random(len(ii)) < 0.5
            )
            v, q = _lab_values(
                rng, test, Z[test][ii], np.full(len(ii), 0 if t_index is None else t_index), normal, False
            )
            if role == "bl":
                hit = lab_excl[ii] == test
                if hit.any():
                    v = v.copy()
                    v[hit] = {"ALT": rng.uniform(135, 260), "AST": rng.uniform(120, 240), "EGFR": rng.uniform(14, 27)}[
                        test
                    ]
            parts.append(
                pd.DataFrame(
                    {
                        "pidx": ii,
                        "sample_day": dd,
                        "test": test,
                        "dvalue": v,
                        "qualifier": q,
                        "role": role,
                        "normal": normal,
                    }
                )
            )

    bl_day = _u(rng, -14, 0, n)
    sample(np.ones(n, bool), bl_day, 0, "bl")
    sample(rng.random(n) < 0.5, _u(rng, -400, -90, n), None, "hist")
    labt = ["induction", "month6", "month12", "month18"]
    for k, name in enumerate(labt, start=1):
        tgt = target_day(tg, name, a["diag"])
        off = _u(rng, -10, 10, n)
        prob = np.array([0.75, 0.5, 0.35, 0.25])[k - 1]
        present = inc | (rng.random(n) < prob)
        present &= ~(a["detail"] == "no_followup") | (rng.random(n) < 0.5)
        sample(present, tgt + off, k, name)
    df = pd.concat(parts, ignore_index=True)
    # decoy CRP/FC samples of included patients: inside the window, strictly farther from
    # the target than the chosen sample, opposite status
    main = df[df["pidx"].isin(np.flatnonzero(inc)) & df["test"].isin(["CRP", "FC"]) & (df["role"] != "hist")]
    main = main[rng.random(len(main)) < 0.12]
    if len(main):
        tk = main["role"].map({"bl": 0, "induction": 1, "month6": 2, "month12": 3, "month18": 4}).to_numpy()
        tgt = np.where(tk == 0, 0, 0)
        for k, name in enumerate(labt, start=1):
            tgt = np.where(tk == k, target_day(tg, name, a["diag"][main["pidx"].to_numpy()]), tgt)
        off = main["sample_day"].to_numpy() - tgt
        mm = len(main)
        sign = np.where(off > 0, -1, np.where(off < 0, 1, np.where(rng.random(mm) < 0.5, -1, 1)))
        far = np.minimum(np.abs(off) + _u(rng, 3, 12, mm), tg["hw"] - 2)
        dday = np.where(tk == 0, _u(rng, -28, -20, mm), tgt + sign * far)
        nrm = ~main["normal"].to_numpy().astype(bool)
        parts2 = []
        for test in ("CRP", "FC"):
            sel = (main["test"] == test).to_numpy()
            if not sel.any():
                continue
            pid = main["pidx"].to_numpy()[sel]
            v, q = _lab_values(rng, test, Z[test][pid], tk[sel], nrm[sel], False)
            parts2.append(
                pd.DataFrame(
                    {
                        "pidx": pid,
                        "sample_day": dday[sel],
                        "test": test,
                        "dvalue": v,
                        "qualifier": q,
                        "role": "decoy",
                        "normal": nrm[sel],
                    }
                )
            )
        df = pd.concat([df] + parts2, ignore_index=True)
    df = df[df["sample_day"] <= horizon[df["pidx"].to_numpy()]]
    df = df.sort_values(["pidx", "sample_day", "test"], kind="stable")
    df = df.drop_duplicates(["pidx", "sample_day", "test"], keep="first").reset_index(drop=True)
    df["test"] = df["test"].astype(object)
    return _calibrate_baseline(df, a, rng)


# baseline albumin of the patients designed with albumin <= 35 g/L (design.ALBUMIN_LOW_SHARE)
ALB_LOW_RANGE = (27.0, 34.9)
ALB_ABOVE_MIN = 35.5  # every other included patient's baseline albumin is above 35 g/L


def _calibrate_baseline(df: pd.DataFrame, a: dict, rng) -> pd.DataFrame:
    """Baseline samples of the included patients: albumin <= 35 g/L exactly for the
    designed ``alb_low`` patients (others above, shifted to the published mean), and the
    other continuous tests scaled to the published baseline means
    (design.TARGETS["baseline_means"]); FC keeps its designed normal / abnormal status (the
    abnormal values are scaled); CRP is left as designed (51 of 80 patients at >= 8 mg/L
    cannot average the published 5.3 mg/L)."""
    means = TARGETS["baseline_means"]
    pid = df["pidx"].to_numpy()
    bl = (df["role"] == "bl").to_numpy() & a["included"][pid]
    v = df["dvalue"].to_numpy(dtype=float).copy()
    for test, target in means.items():
        sel = bl & (df["test"] == test).to_numpy()
        if not sel.any() or test == "CRP":
            continue
        if test == "FC":  # the abnormal values (>= 160 ug/g) carry the mean, capped at '>1800'
            ab = sel & ~df["normal"].to_numpy(dtype=bool)
            if ab.any():
                f = (target * sel.sum() - v[sel & ~ab].sum()) / v[ab].sum()
                v[ab] = np.clip(v[ab] * f, 160.0, 1800.0)
                q = df["qualifier"].to_numpy(dtype=object).copy()
                q[ab] = np.where(v[ab] >= 1800.0, ">", "")
                df["qualifier"] = q
            continue
        if test == "ALB":
            low = sel & a["alb_low"][pid]
            high = sel & ~a["alb_low"][pid]
            v[low] = np.round(rng.uniform(*ALB_LOW_RANGE, int(low.sum())), 1)
            if high.any():
                want = (target * sel.sum() - v[low].sum()) / high.sum()
                v[high] = np.maximum(v[high] + (want - v[high].mean()), ALB_ABOVE_MIN)
            continue
        v[sel] = v[sel] * (target / v[sel].mean())
    df["dvalue"] = v
    return df


# --------------------------------------------------------- medications etc.
STEROIDS = (["prednisone", "methylprednisolone"], [0.75, 0.25])
POST_SWITCH = {
    "CD": ["ustekinumab", "risankizumab", "infliximab", "vedolizumab"],
    "UC": ["vedolizumab", "ustekinumab", "infliximab", "tofacitinib"],
    "IBDU": ["vedolizumab"],
}


def _medications(ctx: Context, visit_days: dict) -> pd.DataFrame:
    """Treatment episodes before and during UPA (UPA itself is not listed)."""
    S = ctx.slots
    a = ctx.arr
    rng = ctx.rng("medications")
    rows_p, rows_d, rows_s, rows_e, rows_r = [], [], [], [], []

    def ep(i, drug, s, e, r):
        rows_p.append(i)
        rows_d.append(drug)
        rows_s.append(int(s))
        rows_e.append(MISSING_DAY if e is None else int(e))
        rows_r.append(None if e is None else r)

    ri = lambda lo, hi: int(lo + np.floor(rng.random() * (hi - lo + 1)))  # noqa: E731
    pick = lambda names, p=None: names[int(rng.choice(len(names), p=p))]  # noqa: E731
    for i, s in enumerate(S):
        dx = int(a["dx_rel"][i])
        diag = s["diagnosis"]
        inc = s["included"]
        stop = int(a["stop"][i])
        c = s["conv"]
        # advanced therapies: consecutive segments ending 14-90 days before day 0
        adv = s["advanced"]
        if adv:
            end = -ri(14, 90)
            k = len(adv)
            begin = max(dx + 60, end - 365 * 7)
            if end - begin < 110 * k:
                begin = max(dx + 10, end - 110 * k)
            cuts = np.sort(rng.random(k - 1)) if k > 1 else np.array([])
            w = np.diff(np.concatenate([[0.0], cuts, [1.0]]))
            w = 0.3 / k + 0.7 * w
            bounds = begin + np.round(np.concatenate([[0.0], np.cumsum(w)]) * (end - begin)).astype(int)
            for j, (drug, reason) in enumerate(adv):
                seg0, seg1 = int(bounds[j]), int(bounds[j + 1])
                L = max(seg1 - seg0, 30)
                st = seg0 + ri(0, max(0, L // 10))
                sp = seg1 if j == k - 1 else seg1 - ri(1, max(1, L // 10))
                sp = max(sp, st + 14)
                ep(i, drug, st, min(sp, -1), reason)
        span_lo = dx + 7
        if c.get("asa"):
            st = span_lo + ri(0, 120)
            st = min(st, -60)
            if c["asa"] == "conc":
                sp = None if rng.random() < 0.7 else ri(30, 300)
                ep(i, "mesalazine", st, sp, "elective")
            else:
                sp = min(st + ri(120, 900), -30)
                ep(
                    i,
                    pick(["mesalazine", "sulfasalazine"], [0.85, 0.15]),
                    st,
                    max(sp, st + 30) if sp > st + 30 else st + 30,
                    pick(
                        ["secondary_loss_of_response", "primary_nonresponse", "other", "intolerance"],
                        [0.4, 0.2, 0.25, 0.15],
                    ),
                )
        for key, drugs, dur in (
            ("thiopurine", (["azathioprine", "mercaptopurine"], [0.85, 0.15]), (90, 1000)),
            ("mtx", (["methotrexate"], None), (90, 600)),
            ("tacro", (["tacrolimus"], None), (60, 180)),
            ("cyclo", (["cyclosporine"], None), (30, 90)),
            ("trip", (["tripterygium_wilfordii"], None), (90, 400)),
        ):
            if c.get(key):
                hi = -60 - dur[0]
                st = ri(min(span_lo, hi), hi) if span_lo < hi else hi
                sp = min(st + ri(*dur), -30)
                reason = (
                    "secondary_loss_of_response"
                    if c[key] == "failed"
                    else pick(
                        ["secondary_loss_of_response", "intolerance", "other", "primary_nonresponse"],
                        [0.4, 0.3, 0.15, 0.15],
                    )
                )
                ep(i, pick(*drugs), st, sp, reason)
        if c.get("een"):
            hi = -120
            st = ri(min(span_lo, hi), hi) if span_lo < hi else hi
            ep(i, "exclusive_enteral_nutrition", st, st + ri(42, 90), "elective")
        if c.get("gc_prior"):
            hi = -30 - 130
            st = ri(min(span_lo, hi), hi) if span_lo < hi else hi
            drug = pick(*STEROIDS) if c["gc_prior"] == "systemic" else "budesonide"
            ep(i, drug, st, st + ri(56, 120), pick(["elective", "other"], [0.8, 0.2]))
        if c.get("steroid_bl"):
            st = 0 if c["steroid_bl"] == "day0" else ri(-60, -7)
            hi = 60 if diag == "CD" else 40
            ep(i, pick(*STEROIDS), st, ri(14, hi), "elective")
        if c.get("thal") == "conc":
            st = ri(-300, -30)
            ep(i, "thalidomide", st, None if rng.random() < 0.6 else ri(60, 300), pick(["elective", "intolerance"]))
        elif c.get("thal") == "prior":
            hi = -90
            st = ri(min(span_lo, hi - 60), hi - 60) if span_lo < hi - 60 else hi - 60
            ep(
                i,
                "thalidomide",
                st,
                min(st + ri(60, 400), -30),
                pick(["intolerance", "secondary_loss_of_response", "other"]),
            )
        # intercurrent steroid course: response-only patient still on steroids at the visit
        # (month 6: a course that ended 30-60 days before the visit - excluded only by the
        # 90-day rule; month 12: a course still running at the visit)
        for t in s["steroid_var"]:
            vd = visit_days.get((i, t))
            if vd is None:
                continue
            if t == "month6":
                sp = vd - ri(30, 60)
                ep(i, "prednisone", max(sp - ri(14, 28), int(a["ind_target"][i]) + 15), sp, "elective")
            else:
                ep(i, "prednisone", vd - ri(14, 28), vd + ri(7, 21), "elective")
        if s["conc_biologic"]:
            drug, how = s["conc_biologic"]
            if how == "overlap":
                ep(i, drug, ri(-200, -60), ri(10, 40), "other")
            else:
                ep(i, drug, ri(30, 60), None, None)
        if s["post_switch"] and stop != MISSING_DAY:
            ep(i, pick(POST_SWITCH[diag]), stop + ri(14, 40), None, None)
        del inc
    df = pd.DataFrame(
        {
            "pidx": np.array(rows_p, dtype=np.int64),
            "drug": np.array(rows_d, dtype=object),
            "start_day": np.array(rows_s, dtype=np.int64),
            "stop_day": np.array(rows_e, dtype=np.int64),
            "stop_reason": np.array(rows_r, dtype=object),
        }
    )
    df = df.sort_values(["pidx", "start_day", "drug"], kind="stable")
    df = df.drop_duplicates(["pidx", "drug", "start_day"], keep="first").reset_index(drop=True)
    return df


def _surgeries(ctx: Context) -> pd.DataFrame:
    S = ctx.slots
    a = ctx.arr
    rng = ctx.rng("surgeries")
    rows = []
    for i, s in enumerate(S):
        dx = int(a["dx_rel"][i])
        procs = s["surgeries"]
        if procs:
            lo, hi = dx + 90, -60
            if hi - lo < 60 * len(procs):
                lo = hi - 60 * len(procs)
            days = np.sort(rng.choice(np.arange(lo, hi + 1), size=len(procs), replace=False))
            if procs[:2] == ["total_proctocolectomy", "ipaa"]:
                days = np.array([days[0], min(days[0] + 120, -30)])
            for p, d in zip(procs, days):
                rows.append((i, int(d), p, True))
        if s["nonibd_surgery"]:
            age_days = int(a["start"][i] - a["birth"][i])
            rows.append((i, -int(rng.integers(60, max(61, age_days - 18 * 365))), "other", False))
        if s["stop_reason"] == "surgery" and a["stop"][i] != MISSING_DAY:
            rows.append(
                (
                    i,
                    int(a["stop"][i]) + int(rng.integers(2, 11)),
                    str(rng.choice(["ileocecal_resection", "small_bowel_resection"])),
                    True,
                )
            )
    df = pd.DataFrame(rows, columns=["pidx", "surgery_day", "procedure", "ibd_related"])
    df = df.astype({"pidx": np.int64, "surgery_day": np.int64})
    df["ibd_related"] = df["ibd_related"].astype(object)
    df = df.sort_values(["pidx", "surgery_day"], kind="stable")
    return df.drop_duplicates(["pidx", "surgery_day", "procedure"]).reset_index(drop=True)


def _adverse_events(ctx: Context) -> pd.DataFrame:
    """Designed treatment-emergent AEs (onset day 0 .. stop + 30) plus a few outside the
    window (before day 0; > 30 days after the stop) that must not count."""
    S = ctx.slots
    a = ctx.arr
    rng = ctx.rng("adverse-events")
    terms_all = ["acne", "rash", "infection", "herpes_zoster", "fever", "other", "anemia", "dyslipidemia"]
    rows = []
    for i, s in enumerate(S):
        stop = int(a["stop"][i])
        hor = int(a["horizon"][i])
        if s["included"]:
            end = stop - 3 if stop != MISSING_DAY else 500
            used = set()
            for term in s["ae_terms"]:
                if term == s["ae_stop_term"]:
                    d = int(rng.integers(max(14, stop - 30), stop - 2))
                else:
                    d = int(rng.integers(14, max(15, end)))
                while (d, term) in used:
                    d += 1
                used.add((d, term))
                serious = term == s["ae_stop_term"] or (term == "infection" and rng.random() < 0.3)
                rows.append((i, d, term, bool(serious), term == s["ae_stop_term"]))
                if rng.random() < 0.15 and term != s["ae_stop_term"]:
                    d2 = int(rng.integers(14, max(15, end)))
                    if (d2, term) not in used:
                        used.add((d2, term))
                        rows.append((i, d2, term, False, False))
            if rng.random() < 0.1:
                rows.append(
                    (
                        i,
                        -int(rng.integers(10, 120)),
                        str(rng.choice(["infection", "rash", "fever", "other"])),
                        False,
                        False,
                    )
                )
            if stop != MISSING_DAY and rng.random() < 0.5:
                rows.append(
                    (
                        i,
                        stop + int(rng.integers(45, 70)),
                        str(rng.choice(["herpes_zoster", "infection", "other"])),
                        False,
                        False,
                    )
                )
        else:
            if s["stop_reason"] == "adverse_event" and stop != MISSING_DAY:
                term = s["ae_stop_term"] or str(rng.choice(["rash", "herpes_zoster"]))
                rows.append((i, stop - int(rng.integers(2, 8)), term, term == "infection", True))
            if rng.random() < 0.2 and hor > 20:
                rows.append((i, int(rng.integers(14, hor)), str(rng.choice(terms_all)), False, False))
    df = pd.DataFrame(rows, columns=["pidx", "onset_day", "term", "serious", "led_to_discontinuation"])
    df = df.astype({"pidx": np.int64, "onset_day": np.int64})
    for c in ("serious", "led_to_discontinuation"):
        df[c] = df[c].astype(object)
    df = df.sort_values(["pidx", "onset_day"], kind="stable")
    return df.drop_duplicates(["pidx", "onset_day", "term"]).reset_index(drop=True)


# ---------------------------------------------------------------------- main
def realize(slots: list[dict], seed: int, settings: dict) -> tuple[dict[str, pd.DataFrame], Context]:
    """Canonical round-A tables (relative days still absolute day numbers per table) for
    the designed patients. Returns ``(tables, context)``."""
    ctx = Context(seed=seed, slots=slots, settings=settings)
    _patient_arrays(ctx)
    a = ctx.arr
    start = a["start"]
    assess = _assessments(ctx)
    labs = _labs(ctx)
    # scheduled visit day of each (patient, time point) for intercurrent steroid courses
    tg = _targets(settings)
    visit_days = {}
    want = [(i, t) for i, s in enumerate(slots) for t in s["steroid_var"]]
    if want:
        av = assess.set_index("pidx")
        for i, t in want:
            tgt = tg[t] if t != "induction" else int(a["ind_target"][i])
            vd = av.loc[[i], "visit_day"].to_numpy() if i in av.index else np.array([])
            vd = vd[np.abs(vd - tgt) <= tg["hw"]]
            if len(vd):
                visit_days[(i, t)] = int(vd[np.argmin(np.abs(vd - tgt))])
    meds = _medications(ctx, visit_days)
    surg = _surgeries(ctx)
    aes = _adverse_events(ctx)
    # last follow-up: the latest record (+ 0..20 days), within the horizon
    n = ctx.n
    latest = np.zeros(n, dtype=np.int64)
    for df, col in ((assess, "visit_day"), (labs, "sample_day"), (aes, "onset_day"), (surg, "surgery_day")):
        if len(df):
            mx = df.groupby("pidx")[col].max()
            latest[mx.index.to_numpy()] = np.maximum(latest[mx.index.to_numpy()], mx.to_numpy())
    st = meds["start_day"].to_numpy()
    sp = meds["stop_day"].to_numpy()
    sp = np.where(sp == MISSING_DAY, st, sp)
    mx = pd.Series(np.maximum(st, sp)).groupby(meds["pidx"].to_numpy()).max()
    latest[mx.index.to_numpy()] = np.maximum(latest[mx.index.to_numpy()], mx.to_numpy())
    stop = a["stop"]
    latest = np.where(stop != MISSING_DAY, np.maximum(latest, stop), latest)
    rng = ctx.rng("followup")
    # included: the latest record + 0..20 days; excluded: the designed horizon (so that an
    # "other" exclusion never also has a short exposure)
    last_fu = np.where(a["included"], np.minimum(latest + _u(rng, 0, 20, n), day_of(CUTOFF) - start), a["horizon"])
    last_fu = np.maximum(last_fu, latest)
    a["last_fu"] = last_fu
    patients = _patients_table(ctx, last_fu)
    # absolute dates
    assess["visit_date"] = start[assess["pidx"].to_numpy()] + assess.pop("visit_day").to_numpy()
    labs["sample_date"] = start[labs["pidx"].to_numpy()] + labs.pop("sample_day").to_numpy()
    aes["onset_date"] = start[aes["pidx"].to_numpy()] + aes.pop("onset_day").to_numpy()
    surg["surgery_date"] = start[surg["pidx"].to_numpy()] + surg.pop("surgery_day").to_numpy()
    p = meds["pidx"].to_numpy()
    meds["start_date"] = start[p] + meds.pop("start_day").to_numpy()
    spd = meds.pop("stop_day").to_numpy()
    meds["stop_date"] = np.where(spd == MISSING_DAY, MISSING_DAY, start[p] + spd)
    tables = {
        "patients": patients,
        "medications": meds,
        "surgeries": surg,
        "assessments": assess,
        "labs": labs,
        "adverse_events": aes,
    }
    return tables, ctx
