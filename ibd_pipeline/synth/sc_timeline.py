"""Timeline design of the single-center CD cohort: when each included patient stops UPA or is
censored, calibrated to the published week-k analysis sets and Kaplan-Meier persistence.

Every count comes from the published figures (``studies/single_center_cd/published_figures.yaml``)
and every day from the study settings (``studies/single_center_cd/study.yaml``):

* the week-k set is "reached week k or stopped before it", so the stops before each week
  (``flow.analysis_sets.effectiveness.weekK.stopped_before_nonresponder``) and the patients not
  yet at each week (``n - N``) fix how many patients stop, or are censored, in each *gap*
  between two weeks: gap 0 before the first week's window, gap j after the week-j target and
  before the week-(j+1) window, the last gap after the last target;
* a stop or censoring day never falls inside a later window, so whether a patient reached a
  week (a visit in its window, or follow-up past the target) or stopped before it (stop day
  before the target) does not depend on the reading of "reached";
* inside those ranges the days (and which patients have baseline albumin <= 35 g/L or BMI
  <= 18.5) are chosen by a seeded local search so that the Kaplan-Meier persistence at the
  published months lies within a fraction of a percentage point of the published curve, the
  follow-up median and quartiles are close to the published ones, the albumin and BMI strata
  follow their published curves as closely as the search gets, the low strata stop at a
  higher rate and the published Cox terms of the two strata flags (univariate, and the
  multivariable model of both) hold in direction and side of alpha as the pipeline derives
  them (:mod:`.sc_calibrate`). The search is deterministic per seed and raises if the overall
  curve misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sc_calibrate import CoxRisk, Target, cox_fit, term_penalty

# tolerance (percentage points) the overall Kaplan-Meier curve must meet at every published month
KM_TOLERANCE = 0.4
SEARCH_STEPS = 4000
RESTARTS = 8
STRATA_STEPS = 6000  # stage-2 annealing steps (the strata and their Cox terms)
# the pipeline's Cox covariates (baseline flags) that are the strata of the timeline
STRATA_COVARIATES = {"albumin_le_35": "alb", "bmi_le_18_5": "bmi"}
COX_WEIGHT = 200.0  # stage-2 loss per unit of the strata's Cox-term penalty (Wald z scale, squared)
STRATA_TOLERANCE = 1.5  # points of a stratum's Kaplan-Meier curve from the published one, before the wall
STRATA_RAMP = 0.4       # points over which the wall rises to its height
STRATA_WALL = 40.0      # stage-2 loss of one stratum month beyond the tolerance (at full height)


@dataclass
class Timeline:
    """Per included patient (arrays of length n): ``day`` = stop day (stoppers) or censoring
    day (= follow-up, days from the start to last_followup_date), ``stopped``, ``gap`` (index of
    the gap the day lies in; ``gap`` g means weeks 0..g-1 were reached), ``alb_low``,
    ``bmi_low``; ``lo``/``hi`` the allowed day range of each patient; ``cox_penalty`` the
    strata's Cox-term penalty left (0: every term holds with its margin)."""

    day: np.ndarray
    stopped: np.ndarray
    gap: np.ndarray
    alb_low: np.ndarray
    bmi_low: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    km: dict
    cox_penalty: float = 0.0


def km_at(day: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival (percent) at days ``at`` (step function; ties: events before
    censorings of the same day, i.e. those censored that day are still at risk)."""
    day = np.asarray(day, dtype=np.int64)
    if len(day) == 0:
        return np.full(len(at), np.nan)
    size = int(day.max()) + 2
    exits = np.bincount(day, minlength=size)
    events = np.bincount(day, weights=event.astype(float), minlength=size)
    at_risk = len(day) - np.concatenate([[0], np.cumsum(exits)[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - events / np.maximum(at_risk, 1), 1.0)
    surv = np.cumprod(factor)
    idx = np.minimum(np.floor(at).astype(int), size - 1)
    return 100.0 * surv[idx]


def _quantiles(x: np.ndarray) -> np.ndarray:
    return np.quantile(x, [0.25, 0.5, 0.75])


def gap_counts(pub: dict, n: int) -> tuple[list[int], list[int]]:
    """(stoppers per gap, non-stoppers per gap) from the published analysis sets."""
    eff = pub["flow"]["analysis_sets"]["effectiveness"]
    weeks = sorted(eff, key=lambda k: int(k.removeprefix("week")))
    stopped_before = [int(eff[w]["stopped_before_nonresponder"]) for w in weeks]
    not_reached = [n - int(eff[w]["N"]) - 0 for w in weeks]
    total_stops = int(pub["persistence"]["discontinued"]["n"])
    stops = [stopped_before[0]] + [b - a for a, b in zip(stopped_before, stopped_before[1:])]
    stops.append(total_stops - stopped_before[-1])
    # patients not yet at week k: the stoppers before week k are in the set, so the
    # not-reached are non-stoppers whose follow-up ends before week k
    ends = [not_reached[0]] + [b - a for a, b in zip(not_reached, not_reached[1:])]
    ends.append(n - total_stops - not_reached[-1])
    if min(stops) < 0 or min(ends) < 0:
        raise ValueError(f"published analysis sets are not nested: stops per gap {stops}, ends per gap {ends}")
    return stops, ends


def _ranges(gap: np.ndarray, stopped: np.ndarray, tdays: list[int], hw: int, min_fu: int, max_fu: int):
    """Allowed day range per patient: gap 0 before the first window (after an early visit);
    gap j in (target_j, start of window j+1); the last gap after the last target."""
    lo = np.empty(len(gap), dtype=np.int64)
    hi = np.empty(len(gap), dtype=np.int64)
    last = len(tdays)
    for i, (g, s) in enumerate(zip(gap, stopped)):
        a = 8 if g == 0 else tdays[g - 1] + 1
        b = (tdays[g] - hw - 1) if g < last else max_fu
        if not s:
            a = max(a, min_fu)
        if a > b:
            raise ValueError(f"no day fits gap {g} (stopped={bool(s)}): range [{a}, {b}]")
        lo[i], hi[i] = a, b
    return lo, hi


def strata_cox_penalty(day: np.ndarray, stopped: np.ndarray, flags: dict, targets, alpha: float,
                       memo: dict | None = None) -> float:
    """Sum of :func:`.sc_calibrate.term_penalty` of the published Cox terms ``targets``
    whose covariates are the strata ``flags`` ({covariate: bool array}): a univariate term
    from the flag alone, a multivariable one from the model of every flag with a
    multivariable target (the univariately significant strata entered together).
    ``memo`` (a dict kept between calls) reuses the fits of unchanged inputs and starts
    each fit from the last one of its model."""
    if not targets:
        return 0.0
    memo = {} if memo is None else memo
    if len(memo) > 50000:
        memo.clear()
    day_key = day.tobytes()
    risk = memo.get(("risk", day_key))
    if risk is None:
        risk = memo[("risk", day_key)] = CoxRisk(day, stopped)
    multi = tuple(c for c in flags if any(t.kind == "multivariable" and t.covariate == c for t in targets))
    fits: dict = {}
    out = 0.0
    for t in targets:
        names = (t.covariate,) if t.kind == "univariate" else multi
        if names not in fits:
            key = (names, day_key, *(flags[c].tobytes() for c in names))
            if key not in memo:
                res = cox_fit(np.column_stack([flags[c] for c in names]).astype(float), risk,
                              init=memo.get(("last", names)))
                memo[key] = res
                if res is not None:
                    memo[("last", names)] = res[0]
            fits[names] = memo[key]
        fit = fits[names]
        k = names.index(t.covariate)
        out += term_penalty(None if fit is None else (fit[0][k], fit[1][k]), t, alpha)
    return float(out)


def design_timeline(rng: np.random.Generator, pub: dict, s: dict, n: int, n_alb_low: int, n_bmi_low: int,
                    cox_targets: list[Target] = ()) -> Timeline:
    """The calibrated timeline (see the module docstring). ``s`` is the flat settings dict of
    :func:`ibd_pipeline.synth.single_center.flat_settings`; ``cox_targets`` the published Cox
    terms to hold (those of the two strata flags, ``STRATA_COVARIATES``, are used)."""
    stops, ends = gap_counts(pub, n)
    tdays = [7 * w for w in s["weeks"]]
    hw = s["window_halfwidth_days"]
    gap = np.concatenate([np.full(k, j) for j, k in enumerate(stops)] + [np.full(k, j) for j, k in enumerate(ends)])
    stopped = np.concatenate([np.ones(sum(stops), bool), np.zeros(sum(ends), bool)])
    lo, hi = _ranges(gap, stopped, tdays, hw, s["min_followup_days"], s["max_followup_days"])

    per = pub["persistence"]
    dpm = s["days_per_month"]
    months = np.array(s["km_months"], dtype=float)
    at = months * dpm
    keys = [f"m{int(m)}" for m in months]
    target = np.array([float(per["km_percent"][k]) for k in keys])
    strata = {
        "alb": [np.array([float(c[k]) for k in keys]) for c in per["km_by_albumin"].values() if isinstance(c, dict)],
        "bmi": [np.array([float(c[k]) for k in keys]) for c in per["km_by_bmi"].values() if isinstance(c, dict)],
    }
    fu = pub["baseline"]["followup_months"]
    fu_target = np.array([fu["iqr"][0], fu["median"], fu["iqr"][1]], dtype=float)

    seg_edges = np.concatenate([[0], np.floor(at).astype(np.int64), [s["max_followup_days"]]])
    stop_idx = np.flatnonzero(stopped)
    cens_idx = np.flatnonzero(~stopped)

    def overall_err(day):
        return km_at(day, stopped, at) - target

    def loss1(day):
        err = overall_err(day)
        out = float(np.sum((err / 0.15) ** 2)) + 1e4 * float(np.sum(np.maximum(np.abs(err) - 0.3, 0) ** 2))
        return out + float(np.sum(((_quantiles(day / dpm) - fu_target) / 0.3) ** 2))

    def propose_day(day):
        nd = day.copy()
        if rng.random() < 0.5:  # a stop: into a random month segment that its range meets
            i = int(rng.choice(stop_idx))
            k = int(rng.integers(len(seg_edges) - 1))
            a, b = max(lo[i], seg_edges[k] + (k > 0)), min(hi[i], seg_edges[k + 1])
            if a > b:
                return nd
            nd[i] = a + int(rng.integers(b - a + 1))
        else:  # a censoring: anywhere in its range, or a few days away
            i = int(rng.choice(cens_idx))
            if rng.random() < 0.4:
                nd[i] = lo[i] + int(rng.integers(hi[i] - lo[i] + 1))
            else:
                nd[i] = int(np.clip(day[i] + rng.integers(-20, 21), lo[i], hi[i]))
        return nd

    # stage 1: the overall curve and the follow-up quartiles (simulated annealing - a worse
    # state is accepted with probability exp(-delta / T) - from fresh starts until it fits)
    for _attempt in range(RESTARTS):
        day = lo + np.floor(rng.random(n) * (np.minimum(hi, lo + 400) - lo + 1)).astype(np.int64)
        cur = loss1(day)
        best = (cur, day)
        for T in np.geomspace(20.0, 0.01, SEARCH_STEPS):
            nd = propose_day(day)
            new = loss1(nd)
            if new <= cur or rng.random() < np.exp(-(new - cur) / T):
                day, cur = nd, new
                if cur < best[0]:
                    best = (cur, day)
        day = best[1]
        if np.all(np.abs(overall_err(day)) <= KM_TOLERANCE * 0.75):
            break

    # stage 2: the albumin and BMI strata (which patients are low; days moved only while the
    # overall curve stays inside the tolerance), simulated annealing as well
    alb = np.zeros(n, bool)
    alb[rng.choice(n, n_alb_low, replace=False)] = True
    bmi = np.zeros(n, bool)
    bmi[rng.choice(n, n_bmi_low, replace=False)] = True

    cox_targets = [t for t in cox_targets if t.covariate in STRATA_COVARIATES]
    cox_memo: dict = {}

    def cox_pen(day, alb, bmi):
        flags = {"alb": alb, "bmi": bmi}
        return strata_cox_penalty(day, stopped, {c: flags[f] for c, f in STRATA_COVARIATES.items()}, cox_targets,
                                  float(s["alpha"]), cox_memo)

    def loss2_curves(day, alb, bmi):
        """The stage-2 loss without the Cox terms (:func:`loss2` = this + the Cox part >= it)."""
        out = float(np.sum(((_quantiles(day / dpm) - fu_target) / 0.3) ** 2))
        for flag, (lo_c, hi_c) in ((alb, strata["alb"]), (bmi, strata["bmi"])):
            # published order: the low (<= threshold) group first
            for err in (km_at(day[flag], stopped[flag], at) - lo_c, km_at(day[~flag], stopped[~flag], at) - hi_c):
                out += float(np.sum((err / 4.0) ** 2))
                # a month beyond STRATA_TOLERANCE (the report compares the strata within 2 points)
                # costs up to STRATA_WALL, whatever the distance: where the published curves cannot
                # all hold (their mix misses the overall curve), one month misses, not several
                out += STRATA_WALL * float(np.sum(np.clip(np.abs(err) - STRATA_TOLERANCE, 0, STRATA_RAMP)))
            r_lo = stopped[flag].sum() / max(day[flag].sum(), 1)
            r_hi = stopped[~flag].sum() / max(day[~flag].sum(), 1)
            out += 200.0 * max(0.0, 1.8 - r_lo / max(r_hi, 1e-12)) ** 2  # the low stratum stops more
        return out

    def loss2(day, alb, bmi):
        return loss2_curves(day, alb, bmi) + COX_WEIGHT * cox_pen(day, alb, bmi) ** 2

    cur = loss2(day, alb, bmi)
    best = (cur, day, alb, bmi)
    for T in np.geomspace(3.0, 0.01, STRATA_STEPS):
        u = rng.random()
        nd, na, nb = day, alb, bmi
        if u < 0.2:
            nd = propose_day(day)
            if np.any(np.abs(overall_err(nd)) > KM_TOLERANCE * 0.75):
                continue
        else:
            flag = alb if u < 0.6 else bmi
            f2 = flag.copy()
            f2[int(rng.choice(np.flatnonzero(flag)))] = False
            f2[int(rng.choice(np.flatnonzero(~flag)))] = True
            na, nb = (f2, bmi) if u < 0.6 else (alb, f2)
        # Metropolis: accept when new <= cur - T log(a), a uniform; the Cox fits only when the
        # curves alone leave the state acceptable (the Cox part is >= 0)
        bound = cur - T * np.log(1.0 - rng.random())
        new = loss2_curves(nd, na, nb)
        if new > bound:
            continue
        new += COX_WEIGHT * cox_pen(nd, na, nb) ** 2
        if new <= bound:
            day, alb, bmi, cur = nd, na, nb, new
            if cur < best[0]:
                best = (cur, day, alb, bmi)
    _, day, alb, bmi = best

    S = km_at(day, stopped, at)
    miss = np.abs(S - target)
    if np.any(miss > KM_TOLERANCE):
        raise RuntimeError(
            f"persistence calibration missed: KM {np.round(S, 2).tolist()} vs published {target.tolist()} "
            f"(months {months.tolist()})"
        )
    km = {
        "overall": dict(zip(keys, np.round(S, 2).tolist())),
        "alb_low": dict(zip(keys, np.round(km_at(day[alb], stopped[alb], at), 2).tolist())),
        "alb_high": dict(zip(keys, np.round(km_at(day[~alb], stopped[~alb], at), 2).tolist())),
        "bmi_low": dict(zip(keys, np.round(km_at(day[bmi], stopped[bmi], at), 2).tolist())),
        "bmi_high": dict(zip(keys, np.round(km_at(day[~bmi], stopped[~bmi], at), 2).tolist())),
        "followup_months_quartiles": np.round(_quantiles(day / dpm), 2).tolist(),
    }
    return Timeline(day=day, stopped=stopped, gap=gap, alb_low=alb, bmi_low=bmi, lo=lo, hi=hi, km=km,
                    cox_penalty=round(cox_pen(day, alb, bmi), 4))
