"""Model-term calibration of the single-center CD cohort (issue 15): the terms of the
published week-12 logistic model (``logistic_week12_clinical_remission``) and of the
discontinuation Cox model (``cox_discontinuation``) in the direction and on the side of
``statistics.alpha`` that the paper prints, as the pipeline derives them.

Public API::

    model_targets(published, alpha) -> list[Target]
    covariate_design(cols, s) -> dict[str, Covariate]
    ModelTerms(design, y_index, y, time, event, s).terms() -> {(model, kind, covariate, level): (b, z) | None}
    term_penalty(term, target, alpha) -> float
    calibrate_covariates(rng, cols, s, targets, y_index, y, time, event, units, max_steps) -> Calibration

The covariates are those of the pipeline (``ibd_pipeline.endpoints.baseline``: the
``baseline.flags`` of the study settings compared with their thresholds, disease
duration in years of 12 x ``persistence.days_per_month`` days, the prior-drug groups,
resection history, EIM), rebuilt from the generator's patient columns. The fits follow
the pipeline's (``ibd_pipeline.stats.logistic``: each candidate alone, then the
candidates of univariate p < ``statistics.cox_entry_p`` together, Wald p of the
maximum-likelihood fit; ``ibd_pipeline.stats.survival.cox_models``: univariate Cox, then
the multivariable model of ``statistics.cox_selection`` - forward selection at
``cox_entry_p``, or the univariate p < ``cox_entry_p`` candidates together - capped by
``events_per_variable``, Efron ties, Wald p), in numpy. A term whose maximum-likelihood estimate is infinite (separation, monotone
likelihood: the pipeline then fits Firth) counts as not reproduced.

The calibration moves covariate values between patients (swaps within a column, or
within a group of columns that belong together): every marginal count, median and
quartile of Table 1 stays as designed. A seeded hill climb accepts a swap that does not
increase the total penalty (a continuous distance of each term's Wald z from the
published side, with a safety margin), until every term holds or the steps run out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

# published term names (published_figures.yaml) -> (pipeline covariate, level, inverted):
# the reading of comparisons.yaml (age coded <= 45 years; "1 vs 2+" prior biologics is
# the inverse of the pipeline's 2+ vs 1)
PUBLISHED_TERMS = {
    "age": ("age_le_45", None, False),
    "age_le_45": ("age_le_45", None, False),
    "disease_duration_per_year": ("disease_duration_years", None, False),
    "male": ("male", None, False),
    "bmi_le_18_5": ("bmi_le_18_5", None, False),
    "location_L2_vs_L1": ("cd_location", "L2", False),
    "location_L3_vs_L1": ("cd_location", "L3", False),
    "behavior_B2_vs_B1": ("cd_behavior", "B2", False),
    "behavior_B3_vs_B1": ("cd_behavior", "B3", False),
    "prior_advanced_1_vs_2plus": ("prior_advanced_2plus", None, True),
    "perianal": ("perianal", None, False),
    "prior_intestinal_resection": ("prior_bowel_resection", None, False),
    "prior_corticosteroid": ("prior_glucocorticoid", None, False),
    "prior_immunosuppressant": ("prior_immunosuppressant", None, False),
    "eim": ("eim_any", None, False),
    "alb_le_35": ("albumin_le_35", None, False),
    "hb_le_110": ("hb_le_110", None, False),
    "crp_gt_5": ("crp_gt_5", None, False),
    "fc_gt_250": ("fc_gt_250", None, False),
    "hbi_gt_12": ("hbi_gt_12", None, False),
}
MODELS = {"logistic_week12_clinical_remission": ("logistic", "or"), "cox_discontinuation": ("cox", "hr")}

# the generator's patient columns of each pipeline source (baseline.flags ``source``) and
# of the covariates that are not flags
FLAG_SOURCES = {"age": ("age",), "bmi": ("bmi",), "lab:ALB": ("ALB",), "lab:HB": ("HB",),
                "lab:CRP": ("CRP",), "lab:FC": ("FC",), "hbi": ("hbi0",), "n_prior_advanced_drugs": ("biologics",)}
DIRECT = {"male": "male", "perianal": "perianal", "prior_bowel_resection": "resection_history",
          "prior_glucocorticoid": "steroid", "prior_immunosuppressant": "immunomodulator", "eim_any": "eim_any"}
CATEGORICAL = ("cd_location", "cd_behavior")

Z_MARGIN = 0.15         # safety margin on the Wald z scale (the pipeline's fits are not numpy's)
NOT_ESTIMABLE = 4.0     # penalty of a term without a finite ML estimate or without a row
MAX_LOG_ODDS = 20.0     # as ibd_pipeline.stats.predictors.MAX_LOG_RATIO
MONOTONE = 10.0         # as ibd_pipeline.stats.survival.MONOTONE_COEF / MONOTONE_SE


@dataclass(frozen=True)
class Target:
    """One published model term.

    Attributes
    ----------
    figure : str
        Its published_figures.yaml path.
    model : {"logistic", "cox"}
    kind : {"univariate", "multivariable"}
    covariate, level : str, str or None
        The pipeline's term (``level`` of a categorical covariate).
    inverted : bool
        The published estimate is the inverse of the pipeline's.
    above_one : bool
        Published estimate > 1.
    significant : bool
        Published p < alpha.
    """

    figure: str
    model: str
    kind: str
    covariate: str
    level: str | None
    inverted: bool
    above_one: bool
    significant: bool

    @property
    def key(self) -> tuple:
        return (self.model, self.kind, self.covariate, self.level)


@dataclass(frozen=True)
class Covariate:
    """A covariate as the pipeline derives it: ``columns`` (n, k) float, one per level
    (a categorical one: indicators against its first level), ``levels`` (None for a
    plain covariate), ``sources`` the generator's columns it is computed from."""

    columns: np.ndarray
    levels: tuple
    sources: tuple


@dataclass
class Calibration:
    """What :func:`calibrate_covariates` achieved: penalty and unmatched targets before
    and after, the swaps accepted and the steps run."""

    penalty_before: float
    penalty_after: float
    unmatched_before: list = field(default_factory=list)
    unmatched_after: list = field(default_factory=list)
    swaps: int = 0
    steps: int = 0


# ------------------------------------------------------------------------ targets
def model_targets(published: dict, alpha: float) -> list[Target]:
    """The published model terms (``logistic_week12_clinical_remission`` and
    ``cox_discontinuation``, univariate and multivariable) as targets.

    Parameters
    ----------
    published : dict
        studies/single_center_cd/published_figures.yaml.
    alpha : float
        ``statistics.alpha``.

    Returns
    -------
    list of Target
        A published name without a reading in ``PUBLISHED_TERMS`` raises ValueError.
    """
    out = []
    for section, (model, key) in MODELS.items():
        for kind in ("univariate", "multivariable"):
            for name, fig in (published.get(section, {}).get(kind) or {}).items():
                if name not in PUBLISHED_TERMS:
                    raise ValueError(f"{section}.{kind}.{name}: no pipeline term for this published name")
                cov, level, inv = PUBLISHED_TERMS[name]
                out.append(Target(f"{section}.{kind}.{name}", model, kind, cov, level, inv,
                                  float(fig[key]) > 1, float(fig["p"]) < alpha))
    return out


# ---------------------------------------------------------------------- covariates
def covariate_design(cols: dict, s: dict) -> dict[str, Covariate]:
    """The pipeline's covariates of the models (``statistics.covariates`` and
    ``cox_covariates``) from the generator's patient columns.

    Parameters
    ----------
    cols : dict of str to ndarray
        The generator's patient columns (age, duration_years, male, bmi,
        cd_location, cd_behavior, ALB, HB, CRP, FC, hbi0, biologics, resection_history,
        steroid, immunomodulator, perianal, eim_any).
    s : dict
        :func:`ibd_pipeline.synth.single_center.flat_settings` (``model_flags``,
        ``thresholds``, ``logistic_covariates``, ``cox_covariates``, ``days_per_month``).

    Returns
    -------
    dict of str to Covariate
    """
    wanted = list(dict.fromkeys(list(s["logistic_covariates"]) + list(s["cox_covariates"])))
    out = {}
    for name in wanted:
        out[name] = covariate(name, cols, s)
    return out


def covariate(name: str, cols: dict, s: dict) -> Covariate:
    """One covariate of :func:`covariate_design` (ValueError for one the generator does
    not make)."""
    flags = s["model_flags"]
    if name in flags:
        f = flags[name]
        src = f["source"]
        if src not in FLAG_SOURCES:
            raise ValueError(f"baseline.flags.{name}: source {src!r} has no synthetic column")
        thr = float(s["thresholds"][f["threshold"]])
        v = _source_value(src, cols)
        flag = v <= thr if f["compare"] == "<=" else v > thr
        return Covariate(flag.astype(float)[:, None], (None,), FLAG_SOURCES[src])
    if name in DIRECT:
        return Covariate(np.asarray(cols[DIRECT[name]], float)[:, None], (None,), (DIRECT[name],))
    if name == "disease_duration_years":
        days = np.round(np.asarray(cols["duration_years"], float) * 365.25)  # as _realize's diagnosis date
        return Covariate((days / (12 * s["days_per_month"]))[:, None], (None,), ("duration_years",))
    if name in CATEGORICAL:
        v = np.asarray(cols[name]).astype(str)
        levels = sorted(set(v.tolist()))
        X = np.column_stack([(v == lv).astype(float) for lv in levels[1:]]) if len(levels) > 1 else np.zeros((len(v), 0))
        return Covariate(X, tuple(levels[1:]), (name,))
    raise ValueError(f"statistics covariate {name!r}: the synthetic cohort has no column for it")


def _source_value(src: str, cols: dict) -> np.ndarray:
    if src == "n_prior_advanced_drugs":
        return np.array([len(b) for b in cols["biologics"]], float)
    return np.asarray(cols[FLAG_SOURCES[src][0]], float)


# ---------------------------------------------------------------------------- fits
def logit_fit(X: np.ndarray, y: np.ndarray, iters: int = 60):
    """Maximum-likelihood logistic regression with an intercept (Newton-Raphson / IRLS).

    Parameters
    ----------
    X : ndarray, shape (n, k)
        Covariate columns (no constant).
    y : ndarray, shape (n,)
        0/1 outcome.
    iters : int, default 60
        Newton steps at most.

    Returns
    -------
    tuple of ndarray or None
        (coefficients, Wald z) of the columns of ``X``, as statsmodels ``Logit``; None when
        a binary column has an empty cell against ``y`` (separation: the pipeline fits
        Firth), the fit does not converge or an estimate is beyond ``MAX_LOG_ODDS``.
    """
    for c in range(X.shape[1]):
        col = X[:, c]
        if np.all((col == 0) | (col == 1)):
            a, b = col == 1, y == 1
            if min((a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()) == 0:
                return None
    X1 = np.column_stack([np.ones(len(X)), X])
    beta = np.zeros(X1.shape[1])
    for _ in range(iters):
        eta = X1 @ beta
        p = 1 / (1 + np.exp(-eta))
        W = p * (1 - p)
        H = X1.T @ (X1 * W[:, None])
        try:
            step = np.linalg.solve(H, X1.T @ (y - p))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    else:
        return None
    p = 1 / (1 + np.exp(-(X1 @ beta)))
    H = X1.T @ (X1 * (p * (1 - p))[:, None])
    try:
        se = np.sqrt(np.diag(np.linalg.inv(H)))[1:]
    except np.linalg.LinAlgError:
        return None
    b = beta[1:]
    if not np.all(np.isfinite(b)) or np.max(np.abs(b)) >= MAX_LOG_ODDS:
        return None
    return b, b / se


class CoxRisk:
    """Risk and event sets of the distinct event times (Efron ties), computed once for
    a (time, event) pair."""

    def __init__(self, time: np.ndarray, event: np.ndarray):
        time = np.asarray(time, float)
        event = np.asarray(event, bool)
        tt = np.unique(time[event])
        self.R = (time[None, :] >= tt[:, None]).astype(float)
        self.D = ((time[None, :] == tt[:, None]) & event[None, :]).astype(float)
        self.d = self.D.sum(axis=1)
        self.event = event.astype(float)


def cox_fit(X: np.ndarray, risk: CoxRisk, iters: int = 60, init: np.ndarray | None = None):
    """Cox proportional hazards by partial likelihood, Efron ties (as lifelines and R
    ``coxph``), Newton-Raphson with step halving.

    Parameters
    ----------
    X : ndarray, shape (n, k)
        Covariate columns.
    risk : CoxRisk
        Risk and event sets of the persistence.
    iters : int, default 60
        Newton steps at most.
    init : ndarray, optional
        Starting coefficients (default 0; a nearby fit's converge in fewer steps to the
        same maximum).

    Returns
    -------
    tuple of ndarray or None
        (coefficients, Wald z); None when the fit does not converge or the likelihood is
        monotone (a coefficient or SE beyond ``MONOTONE``: the pipeline fits Firth).
    """
    n, k = X.shape
    beta = np.zeros(k) if init is None else np.asarray(init, float).copy()
    R, D, d = risk.R, risk.D, risk.d
    xs = risk.event @ X
    max_d = int(d.max()) if len(d) else 0

    def parts(b):
        w = np.exp(X @ b)
        wx = w[:, None] * X
        M = np.column_stack([w, wx, (wx[:, :, None] * X[:, None, :]).reshape(n, k * k)])
        S, T = R @ M, D @ M
        ll, g, H = float(xs @ b), xs.copy(), np.zeros((k, k))
        for l in range(max_d):
            act = d > l
            a = (l / d[act])[:, None]
            ph = S[act] - a * T[act]
            p0 = ph[:, 0]
            p1 = ph[:, 1 : 1 + k] / p0[:, None]
            ll -= float(np.log(p0).sum())
            g -= p1.sum(axis=0)
            H += (ph[:, 1 + k :] / p0[:, None]).sum(axis=0).reshape(k, k) - p1.T @ p1
        return ll, g, H

    ll, g, H = parts(beta)
    for _ in range(iters):
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return None
        t = 1.0
        while True:
            nb = beta + t * step
            nll, ng, nH = parts(nb)
            if nll >= ll - 1e-12 or t < 1e-4:
                break
            t /= 2
        beta, ll, g, H = nb, nll, ng, nH
        if np.max(np.abs(t * step)) < 1e-10:
            break
        if np.max(np.abs(beta)) > 2 * MONOTONE:
            return None
    else:
        return None
    try:
        se = np.sqrt(np.diag(np.linalg.inv(H)))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(se)) or np.max(np.abs(beta)) > MONOTONE or np.max(se) > MONOTONE:
        return None
    return beta, beta / se


def wald_p(z: float) -> float:
    """Two-sided p of a Wald z."""
    return math.erfc(abs(z) / math.sqrt(2))


# ---------------------------------------------------------------------- the models
class ModelTerms:
    """The pipeline's model terms of a design, with every fit memoised by the versions
    of its covariates (a swap refits only the models of the covariates it changed).

    Parameters
    ----------
    design : dict of str to Covariate
        :func:`covariate_design`.
    y_index : ndarray of int
        Patients of the logistic model's analysis set (the week-12 set).
    y : ndarray
        Their 0/1 outcome.
    time, event : ndarray
        Persistence of every patient (days, stopped).
    s : dict
        ``logistic_covariates``, ``cox_covariates``, ``entry_p``, ``events_per_variable``,
        ``cox_selection``.
    """

    def __init__(self, design: dict, y_index, y, time, event, s: dict):
        self.design = dict(design)
        self.version = {k: 0 for k in self.design}
        self.y_index = np.asarray(y_index, int)
        self.y = np.asarray(y, float)
        self.risk = CoxRisk(time, event)
        self.n_events = int(np.asarray(event, bool).sum())
        self.s = s
        self._memo: dict = {}

    def update(self, name: str, cov: Covariate) -> None:
        """Replace covariate ``name`` (its fits are recomputed when next needed; an
        unchanged one keeps its fits)."""
        if np.array_equal(self.design[name].columns, cov.columns):
            return
        self.design[name] = cov
        self.version[name] += 1

    def _fit(self, model: str, names: tuple):
        key = (model, names, tuple(self.version[v] for v in names))
        if key not in self._memo:
            if len(self._memo) > 20000:
                self._memo.clear()
            X = np.column_stack([self.design[v].columns for v in names])
            if model == "logistic":
                res = logit_fit(X[self.y_index], self.y) if X.shape[1] else None
            else:
                res = cox_fit(X, self.risk) if X.shape[1] else None
            terms = [(v, lv) for v in names for lv in self.design[v].levels]
            self._memo[key] = None if res is None else {t: (float(b), float(z)) for t, b, z in zip(terms, *res)}
        return self._memo[key]

    def terms(self) -> dict:
        """{(model, kind, covariate, level): (coef, z) or None (not estimable)}; a term the
        pipeline would not print (not selected) has no key."""
        out = {}
        entry = float(self.s["entry_p"])
        selected = []
        for v in self.s["logistic_covariates"]:
            fit = self._fit("logistic", (v,))
            for lv in self.design[v].levels:
                out[("logistic", "univariate", v, lv)] = None if fit is None else fit[(v, lv)]
            if fit is not None and any(wald_p(z) < entry for _, z in fit.values()):
                selected.append(v)
        if selected:
            fit = self._fit("logistic", tuple(selected))
            for v in selected:
                for lv in self.design[v].levels:
                    out[("logistic", "multivariable", v, lv)] = None if fit is None else fit[(v, lv)]
        remaining, uni_p = [], {}
        for v in self.s["cox_covariates"]:
            fit = self._fit("cox", (v,))
            out[("cox", "univariate", v, None)] = None if fit is None else fit[(v, None)]
            if fit is not None:
                remaining.append(v)
                uni_p[v] = wald_p(fit[(v, None)][1])
        max_vars = int(self.n_events // float(self.s["events_per_variable"]))
        chosen: list[str] = []
        if self.s["cox_selection"] == "univariate":
            # the univariate p < entry candidates together, the most significant first
            chosen = sorted((v for v in remaining if uni_p[v] < entry), key=lambda v: uni_p[v])[:max_vars]
            remaining = []
        while remaining:
            best, best_p = None, np.inf
            for v in remaining:
                fit = self._fit("cox", tuple(chosen) + (v,))
                if fit is not None and wald_p(fit[(v, None)][1]) < best_p:
                    best, best_p = v, wald_p(fit[(v, None)][1])
            if best is None or not best_p < entry or len(chosen) >= max_vars:
                break
            chosen.append(best)
            remaining.remove(best)
        if chosen:
            fit = self._fit("cox", tuple(chosen))
            for v in chosen:
                out[("cox", "multivariable", v, None)] = None if fit is None else fit[(v, None)]
        return out


def term_penalty(term, target: Target, alpha: float, margin: float = Z_MARGIN) -> float:
    """Distance of a derived term from its published direction and side of ``alpha`` on
    the Wald z scale (0 = reproduced with ``margin`` to spare); ``NOT_ESTIMABLE`` for a
    term without a row or a finite estimate."""
    if term is None:
        return NOT_ESTIMABLE
    _, z = term
    zz = (1 if target.above_one != target.inverted else -1) * z
    zc = _z_crit(alpha)
    if target.significant:
        return max(0.0, zc + margin - zz)
    return max(0.0, margin - zz) + max(0.0, zz - (zc - margin))


def term_matches(term, target: Target, alpha: float) -> bool:
    """The report's rule (ibd_pipeline.report.comparisons, ``compare: estimate``): same
    side of 1 and the same side of ``alpha``."""
    if term is None:
        return False
    b, z = term
    above = (b > 0) != target.inverted
    return above == target.above_one and (wald_p(z) < alpha) == target.significant


@functools.lru_cache(maxsize=None)
def _z_crit(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha / 2)


def penalty(terms: dict, targets: list[Target], alpha: float) -> float:
    """Sum of :func:`term_penalty` over ``targets``."""
    return float(sum(term_penalty(terms.get(t.key), t, alpha) for t in targets))


def unmatched(terms: dict, targets: list[Target], alpha: float) -> list[str]:
    """Figures of the targets the derived terms do not reproduce (:func:`term_matches`)."""
    return [t.figure for t in targets if not term_matches(terms.get(t.key), t, alpha)]


# -------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Unit:
    """Generator columns whose values move together between two patients (``columns``),
    the patients that may take part (``eligible``, bool mask) and a rule two patients
    must keep after the swap (``valid(cols, i, j)``, default none)."""

    name: str
    columns: tuple
    eligible: np.ndarray
    valid: Callable[[dict, int, int], bool] | None = None


def calibrate_covariates(rng, cols: dict, s: dict, targets: list[Target], y_index, y, time, event,
                         units: list[Unit], max_steps: int) -> Calibration:
    """Swap covariate values between patients until the derived model terms reproduce
    the published ones (``targets``); ``cols`` is changed in place.

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeded (the calibration is deterministic per seed).
    cols : dict of str to ndarray
        The generator's patient columns (:func:`covariate_design`).
    s : dict
        Settings (:func:`covariate_design`, :class:`ModelTerms`, ``alpha``).
    targets : list of Target
        The terms to reproduce (:func:`model_targets`).
    y_index, y, time, event
        The logistic analysis set and outcome, the persistence (:class:`ModelTerms`).
    units : list of Unit
        What may move.
    max_steps : int
        Swaps tried at most.

    Returns
    -------
    Calibration

    Notes
    -----
    A swap is proposed in a unit that feeds a covariate of a target not yet reproduced
    (with its margin), between two eligible patients whose values differ; it is kept
    when the total penalty does not increase. The climb stops when only the univariate
    terms of covariates that no unit moves are left (their penalty cannot change).
    """
    alpha = float(s["alpha"])
    design = covariate_design(cols, s)
    models = ModelTerms(design, y_index, y, time, event, s)
    feeds = {u.name: [c for c, cov in design.items() if set(cov.sources) & set(u.columns)] for u in units}
    units = [u for u in units if feeds[u.name]]
    terms = models.terms()
    cur = penalty(terms, targets, alpha)
    out = Calibration(cur, cur, unmatched(terms, targets, alpha))
    # a univariate term of a covariate no unit moves does not change: its penalty stays
    moved = {c for u in units for c in feeds[u.name]}
    fixed = penalty(terms, [t for t in targets if t.kind == "univariate" and t.covariate not in moved], alpha)
    steps = 0
    while steps < max_steps and cur > fixed:
        bad = {t.covariate for t in targets if term_penalty(terms.get(t.key), t, alpha) > 0}
        pool = [u for u in units if set(feeds[u.name]) & bad] or units
        u = pool[int(rng.integers(len(pool)))]
        idx = np.flatnonzero(u.eligible)
        i, j = (int(x) for x in rng.choice(idx, size=2, replace=False))
        steps += 1
        if all(_same(cols[c][i], cols[c][j]) for c in u.columns):
            continue
        _swap(cols, u.columns, i, j)
        if u.valid is not None and not u.valid(cols, i, j):
            _swap(cols, u.columns, i, j)
            continue
        for c in feeds[u.name]:
            models.update(c, covariate(c, cols, s))
        new_terms = models.terms()
        new = penalty(new_terms, targets, alpha)
        if new <= cur:
            terms, cur = new_terms, new
            out.swaps += 1
        else:
            _swap(cols, u.columns, i, j)
            for c in feeds[u.name]:
                models.update(c, covariate(c, cols, s))
    out.steps = steps
    out.penalty_after = cur
    out.unmatched_after = unmatched(terms, targets, alpha)
    return out


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _swap(cols: dict, names, i: int, j: int) -> None:
    for c in names:
        a = cols[c]
        a[i], a[j] = a[j], a[i]
