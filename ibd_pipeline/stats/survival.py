"""Treatment persistence: Kaplan-Meier, log-rank, Cox models, discontinuation rate
(docs/STUDY_RULES.md#persistence, #statistics).

Input ``persistence``: patient_id, center, diagnosis, time_days, event (1 = stopped
UPA, 0 = censored at last follow-up), stop_reason. Grouping variables that are not in
``persistence`` (the baseline flags of ``persistence.km_groups``) are joined from
``covariates`` on patient_id.

Kaplan-Meier confidence intervals use Greenwood's variance with either the
log-log transform (``ci_type='log-log'``: lifelines' and SAS' default, always inside
[0, 1]) or the log transform (``ci_type='log'``: R survival's ``survfit`` default).
Cox models are lifelines ``CoxPHFitter`` (Efron ties, as R ``coxph``) converged to R's
rule (relative change of the log partial likelihood below `statistics.cox_tolerance`, 1e-13), with the Firth-penalized
fallback of :func:`cox_models`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test, proportional_hazard_test
from scipy import stats

from ..forking import Forked
from .order import stable_order
from .settings import SELECTION_TEXT

KM_COLUMNS = ["group_var", "group", "month", "survival", "ci_low", "ci_high", "n_at_risk"]
LOGRANK_COLUMNS = ["group_var", "groups", "n", "events", "test_statistic", "df", "p_value", "test"]
COX_COLUMNS = ["model", "variable", "coef", "hr", "ci_low", "ci_high", "p_value", "ph_test_p",
               "step", "n", "events", "note", "method", "converged", "estimable"]
RATE_COLUMNS = ["group_var", "group", "n", "events", "patient_years", "rate_per_100py", "ci_low", "ci_high"]


# ------------------------------------------------------------------ helpers
def _group_labels(s: pd.Series) -> pd.Series:
    """Binary (bool / 0-1) grouping variables become 'yes'/'no'; others str."""
    if str(s.dtype) in ("bool", "boolean"):
        return s.map({True: "yes", False: "no"})
    vals = set(pd.Series(s).dropna().unique().tolist())
    if vals and vals <= {0, 1}:
        return s.map(lambda v: None if pd.isna(v) else ("yes" if v == 1 else "no"))
    return s.map(lambda v: None if pd.isna(v) else str(v))


def with_covariates(persistence: pd.DataFrame, covariates: pd.DataFrame | None, columns) -> pd.DataFrame:
    """The persistence frame with the covariate columns it lacks.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    covariates : DataFrame or None
        ``analytics.baseline_covariates`` (patient_id and the columns).
    columns : sequence of str
        Columns needed (``overall`` is no column and is skipped).

    Returns
    -------
    DataFrame
        A copy of ``persistence`` with the missing columns left-joined on patient_id.

    Raises
    ------
    KeyError
        Naming the columns found in neither frame.

    Notes
    -----
    docs/STUDY_RULES.md#persistence: groups and Cox covariates are baseline covariates.
    """
    need = [c for c in columns if c not in persistence.columns and c != "overall"]
    if not need:
        return persistence.copy()
    if covariates is None:
        raise KeyError(f"columns {need} are not in the persistence frame and no covariates were given")
    missing = [c for c in need if c not in covariates.columns]
    if missing:
        raise KeyError(f"columns {missing} are in neither the persistence nor the covariates frame")
    return persistence.merge(covariates[["patient_id", *need]], on="patient_id", how="left")


def _groups(df: pd.DataFrame, group_var: str):
    if group_var == "overall":
        yield "all", df
        return
    labels = _group_labels(df[group_var])
    for g in sorted(labels.dropna().unique()):
        yield g, df[labels == g]


def km_at(durations, events, times, alpha: float = 0.05, ci_type: str = "log-log") -> pd.DataFrame:
    """Kaplan-Meier survival at given times with Greenwood confidence limits.

    Parameters
    ----------
    durations : array_like
        Follow-up times.
    events : array_like
        1 = event, 0 = censored.
    times : sequence of float
        Times of the estimates.
    alpha : float, default 0.05
        Two-sided CI level.
    ci_type : {"log-log", "log"}, default "log-log"
        log-log (lifelines' and SAS' default, always inside [0, 1]) or log (R
        ``survfit``'s default).

    Returns
    -------
    DataFrame
        time, survival (right-continuous: events at t included), ci_low, ci_high,
        n_at_risk (time >= t). Beyond the last observation S is NaN unless the curve
        already reached 0.

    Notes
    -----
    docs/STUDY_RULES.md#persistence: Kaplan-Meier rates at ``persistence.km_months``.

    References
    ----------
    .. [1] Kaplan EL, Meier P. Nonparametric estimation from incomplete observations.
       J Am Stat Assoc 1958;53:457-481. Greenwood M. The natural duration of cancer.
       Rep Public Health Med Subj 1926;33. lifelines ``KaplanMeierFitter``.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=int)
    kmf = KaplanMeierFitter(alpha=alpha).fit(d, e)
    et = kmf.event_table
    z = stats.norm.ppf(1 - alpha / 2)
    at_risk = et["at_risk"].to_numpy(float)
    obs = et["observed"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(np.where(obs > 0, obs / (at_risk * (at_risk - obs)), 0.0))
    idx_times = et.index.to_numpy(float)
    out = []
    for t in times:
        s = float(kmf.survival_function_at_times(t).iloc[0])
        pos = np.searchsorted(idx_times, t, side="right") - 1
        gw = greenwood[pos] if pos >= 0 else 0.0
        n_risk = int((d >= t).sum())
        if t > d.max() and s > 0:
            out.append((t, np.nan, np.nan, np.nan, n_risk))
            continue
        if s <= 0:
            lo, hi = 0.0, 0.0
        elif s >= 1 or gw == 0:
            lo, hi = s, s
        elif ci_type == "log":
            se = np.sqrt(gw)
            lo, hi = s * np.exp(-z * se), min(1.0, s * np.exp(z * se))
        elif ci_type == "log-log":
            se = np.sqrt(gw / np.log(s) ** 2)
            lo = np.exp(-np.exp(np.log(-np.log(s)) + z * se))
            hi = np.exp(-np.exp(np.log(-np.log(s)) - z * se))
        else:
            raise ValueError(f"unknown ci_type {ci_type!r}")
        out.append((t, s, float(lo), float(hi), n_risk))
    return pd.DataFrame(out, columns=["time", "survival", "ci_low", "ci_high", "n_at_risk"])


# ----------------------------------------------------------------- Kaplan-Meier
def km_estimates(
    persistence: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    *,
    group_vars,
    months,
    days_per_month: float,
    alpha: float = 0.05,
    ci_type: str = "log-log",
    duration_col: str = "time_days",
    event_col: str = "event",
) -> pd.DataFrame:
    """Kaplan-Meier persistence (probability of still being on UPA) per group.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    covariates : DataFrame, optional
        ``analytics.baseline_covariates`` for grouping variables not in ``persistence``.
    group_vars : sequence of str
        Groupings (``persistence.km_groups``): ``overall`` (one group ``all``), or a
        column (binary ones become yes / no).
    months : sequence of float
        Months of the estimates (``persistence.km_months``).
    days_per_month : float
        Day of a month's estimate = month x this (``persistence.days_per_month``).
    alpha : float, default 0.05
    ci_type : {"log-log", "log"}, default "log-log"
        See :func:`km_at`.
    duration_col, event_col : str

    Returns
    -------
    DataFrame
        group_var, group, month, survival, ci_low, ci_high, n_at_risk.

    Notes
    -----
    docs/STUDY_RULES.md#persistence and #statistics (Kaplan-Meier by diagnosis and the
    baseline groupings).
    """
    df = with_covariates(persistence, covariates, group_vars)
    rows = []
    for gv in group_vars:
        for g, sub in _groups(df, gv):
            sub = sub[sub[duration_col].notna()]
            if sub.empty:
                continue
            res = km_at(sub[duration_col], sub[event_col], [m * days_per_month for m in months], alpha, ci_type)
            for m, r in zip(months, res.itertuples()):
                rows.append({"group_var": gv, "group": g, "month": m, "survival": r.survival,
                             "ci_low": r.ci_low, "ci_high": r.ci_high, "n_at_risk": r.n_at_risk})
    return pd.DataFrame(rows, columns=KM_COLUMNS)


def logrank_tests(
    persistence: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    *,
    group_vars,
    duration_col: str = "time_days",
    event_col: str = "event",
) -> pd.DataFrame:
    """Log-rank test per grouping variable.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    covariates : DataFrame, optional
        ``analytics.baseline_covariates`` for grouping variables not in ``persistence``.
    group_vars : sequence of str
        Grouping columns (the ``persistence.km_groups`` but ``overall``).
    duration_col, event_col : str

    Returns
    -------
    DataFrame
        group_var, groups ("a|b"), n, events, test_statistic, df, p_value, test (not
        tested with fewer than 2 groups).

    Notes
    -----
    docs/STUDY_RULES.md#statistics: log-rank by diagnosis and the baseline groupings.
    lifelines ``logrank_test`` for two groups, ``multivariate_logrank_test`` for more.

    References
    ----------
    .. [1] Mantel N. Evaluation of survival data and two new rank order statistics
       arising in its consideration. Cancer Chemother Rep 1966;50:163-170.
    """
    df = with_covariates(persistence, covariates, group_vars)
    rows = []
    for gv in group_vars:
        labels = _group_labels(df[gv])
        sub = df[labels.notna() & df[duration_col].notna()]
        lab = labels[sub.index]
        levels = sorted(lab.unique())
        row = {"group_var": gv, "groups": "|".join(levels), "n": int(len(sub)),
               "events": int(sub[event_col].sum()), "test_statistic": np.nan, "df": np.nan,
               "p_value": np.nan, "test": "not tested (fewer than 2 groups)"}
        if len(levels) == 2:
            a, b = (lab == levels[0]), (lab == levels[1])
            r = logrank_test(sub.loc[a, duration_col], sub.loc[b, duration_col],
                             sub.loc[a, event_col], sub.loc[b, event_col])
            row.update(test_statistic=float(r.test_statistic), df=1, p_value=float(r.p_value), test="log-rank")
        elif len(levels) > 2:
            r = multivariate_logrank_test(sub[duration_col], lab, sub[event_col])
            row.update(test_statistic=float(r.test_statistic), df=int(r.degrees_of_freedom),
                       p_value=float(r.p_value), test="log-rank (k groups)")
        rows.append(row)
    return pd.DataFrame(rows, columns=LOGRANK_COLUMNS)


# ------------------------------------------------------------------------ Cox
# a |log hazard ratio| or standard error beyond these: the partial likelihood is
# monotone (e.g. no event in one level) - the ML estimate is infinite
MONOTONE_COEF, MONOTONE_SE = 10.0, 10.0
ML_METHOD = "Cox (partial likelihood, Efron ties), stratified by center"
FIRTH_METHOD = ("Firth-penalized Cox (Heinze & Schemper 2001; Breslow ties; center as covariate, "
                "profile penalized-likelihood CI, penalized LR p)")


@dataclass(frozen=True)
class _Fit:
    """One Cox fit: per-variable numbers on the log scale ({variable: value} of coef,
    lo, hi, p), the method, whether it converged, the proportional-hazards p values."""

    coef: dict
    lo: dict
    hi: dict
    p: dict
    method: str
    converged: bool
    ph: dict = field(default_factory=dict)


def _cox_data(df, variables, duration_col, event_col, strata):
    cols = [duration_col, event_col, *variables] + ([strata] if strata else [])
    data = df[cols].dropna().copy()
    for v in variables:
        data[v] = pd.to_numeric(data[v].astype("Float64") if str(data[v].dtype) == "boolean" else data[v],
                                errors="coerce").astype(float)
    return data.dropna()


def _firth_cox(data, variables, duration_col, event_col, strata, alpha):
    """Firth-penalized Cox (firthmodels ``FirthCoxPH``, as R coxphf): it has no strata, so
    the centers enter as covariates."""
    from firthmodels import FirthCoxPH

    X = data[list(variables)]
    if strata and strata in data and data[strata].nunique() > 1:
        X = pd.concat([X, pd.get_dummies(data[strata].astype(str), prefix=strata, drop_first=True, dtype=float)],
                      axis=1)
    k = len(variables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FirthCoxPH(max_iter=200, gtol=1e-8, xtol=1e-9).fit(
            X.to_numpy(float), (data[event_col].to_numpy().astype(bool), data[duration_col].to_numpy(float)))
        ci = m.conf_int(alpha=alpha, method="pl", features=list(range(k)), max_iter=200, tol=1e-6)
        m.lrt(features=list(range(k)))
    return _Fit(dict(zip(variables, m.coef_[:k])), dict(zip(variables, ci[:k, 0])), dict(zip(variables, ci[:k, 1])),
                dict(zip(variables, m.lrt_pvalues_[:k])), FIRTH_METHOD, bool(m.converged_))


def _fit_cox(df, variables, duration_col, event_col, strata, alpha, tolerance=1e-9, firth=True, ph=True):
    """(fit or None, data, note). The ML fit (lifelines, Efron ties, a baseline hazard per
    stratum) to R coxph's convergence rule (relative change of the log partial
    likelihood < ``tolerance``); when it does not converge or the likelihood is monotone,
    the Firth-penalized fit (``firth``). ``ph``: with the proportional-hazards test of
    each variable (a fit that is only a step of the selection, never reported, skips it:
    the test costs about a fifth of a fit)."""
    data = _cox_data(df, variables, duration_col, event_col, strata)
    notes = []
    if strata and data[strata].nunique() < 2:
        strata_arg = None
        notes.append(f"one {strata} only: not stratified")
    else:
        strata_arg = [strata] if strata else None
    const = [v for v in variables if data[v].nunique() < 2]
    if const:
        return None, data, f"no variation in {', '.join(const)}"
    fit_data = data if strata_arg else data.drop(columns=[strata] if strata else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cph = CoxPHFitter(alpha=alpha).fit(
                fit_data, duration_col, event_col, strata=strata_arg,
                fit_options={"precision": 1e-12, "r_precision": tolerance, "max_steps": 500})
            error = None
        except Exception as exc:  # lifelines ConvergenceError, singular matrices ...
            cph, error = None, f"{type(exc).__name__}"
    converged = cph is not None and not any("converge" in str(w.message).lower() for w in caught)
    monotone: list[str] = []
    if cph is not None:
        summ = cph.summary
        monotone = summ.index[(summ["se(coef)"] > MONOTONE_SE) | (summ["coef"].abs() > MONOTONE_COEF)].tolist()
    if converged and not monotone:
        lo_col = [c for c in summ.columns if c.startswith("coef lower")][0]
        hi_col = [c for c in summ.columns if c.startswith("coef upper")][0]
        fit = _Fit(summ["coef"].to_dict(), summ[lo_col].to_dict(), summ[hi_col].to_dict(), summ["p"].to_dict(),
                   ML_METHOD if strata_arg else ML_METHOD.replace(", stratified by center", ""), True,
                   (_ph_pvalues(cph, fit_data) if ph else None) or {})
        return fit, data, "; ".join(notes) or None
    if error:
        notes.append(f"maximum-likelihood fit failed ({error})")
    elif monotone:
        notes.append(f"monotone likelihood (the ML estimate is infinite, e.g. no event in a level) for "
                     f"{', '.join(map(str, monotone))}")
    else:
        notes.append("the maximum-likelihood fit did not converge")
    if not firth:
        return None, data, "; ".join(notes)
    try:
        fit = _firth_cox(data, variables, duration_col, event_col, strata if strata_arg else None, alpha)
    except Exception as exc:  # a design the penalized fit cannot handle either
        notes.append(f"Firth-penalized fit failed ({type(exc).__name__})")
        return None, data, "; ".join(notes)
    notes.append("Firth-penalized fit" + ("" if fit.converged else " did not converge either"))
    return fit, data, "; ".join(notes)


def _ph_pvalues(cph, data):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = proportional_hazard_test(cph, data, time_transform="rank")
        return res.summary["p"].to_dict()
    except Exception:
        return {}


def _not_estimable(events: int, n: int) -> str:
    return f"not estimable ({events} events / {n})"


def _estimable(fit: _Fit, v) -> bool:
    vals = [fit.coef[v], fit.lo[v], fit.hi[v]]
    return bool(fit.converged and np.all(np.isfinite(vals)) and max(abs(x) for x in vals) < 2 * MONOTONE_COEF)


def _cox_rows(model, fit, data, variables, event_col, note, step=None):
    rows = []
    n, events = int(len(data)), int(data[event_col].sum())
    for i, v in enumerate(variables):
        row = {"model": model, "variable": v, "ph_test_p": float(fit.ph.get(v, np.nan)),
               "step": (i + 1) if step else None, "n": n, "events": events, "note": note,
               "method": fit.method, "converged": fit.converged, "estimable": _estimable(fit, v)}
        if row["estimable"]:
            row.update(coef=float(fit.coef[v]), hr=float(np.exp(fit.coef[v])), ci_low=float(np.exp(fit.lo[v])),
                       ci_high=float(np.exp(fit.hi[v])), p_value=float(fit.p[v]))
        else:
            row["note"] = _not_estimable(events, n) + (f"; {note}" if note else "")
        rows.append(row)
    return rows


def _univariate_cox(state, v):
    """(rows, p) of the univariate model of ``v`` (p None when it could not be fitted or
    is not estimable)."""
    data, duration_col, event_col, strata, alpha, tolerance = state
    fit, d, note = _fit_cox(data, [v], duration_col, event_col, strata, alpha, tolerance)
    if fit is None:
        return [{"model": "univariate", "variable": v, "n": int(len(d)),
                 "events": int(d[event_col].sum()) if len(d) else 0, "estimable": False,
                 "note": _not_estimable(int(d[event_col].sum()) if len(d) else 0, int(len(d))) + f"; {note}"}], None
    r = _cox_rows("univariate", fit, d, [v], event_col, note)
    return r, (r[-1]["p_value"] if r[-1]["estimable"] else None)


def _candidate_p(state, item):
    """Wald p of candidate ``v`` added to the ``selected`` variables (None: no ML fit -
    forward selection enters only variables the unpenalized model can estimate)."""
    data, duration_col, event_col, strata, alpha, tolerance = state
    selected, v = item
    fit, _, _ = _fit_cox(data, list(selected) + [v], duration_col, event_col, strata, alpha, tolerance, firth=False,
                         ph=False)
    if fit is None:
        return None
    return float(fit.p[v])


def cox_models(
    data: pd.DataFrame,
    candidates,
    strata: str | None = "center",
    entry_p: float = 0.05,
    duration_col: str = "time_days",
    event_col: str = "event",
    alpha: float = 0.05,
    workers: int | None = 1,
    events_per_variable: float = 10,
    tolerance: float = 1e-9,
    selection: str = "forward",
) -> pd.DataFrame:
    """Cox models of persistence: univariate per candidate, then one multivariable model
    (forward selection, or the univariately significant candidates together), stratified
    by center.

    Parameters
    ----------
    data : DataFrame
        Persistence joined with the covariates (:func:`with_covariates`).
    candidates : sequence of str
        Candidate covariates (``statistics.covariates`` the cohort has).
    strata : str or None, default "center"
        A separate baseline hazard per level (lifelines strata).
    entry_p : float, default 0.05
        Forward selection adds the candidate of smallest Wald p while p < this; with
        ``selection="univariate"`` the candidates of univariate p < this enter together
        (``statistics.cox_entry_p``).
    duration_col, event_col : str
    alpha : float, default 0.05
        CI level (``statistics.alpha``).
    workers : int or None, default 1
        Processes for the independent fits (None = ``$IBD_STATS_WORKERS`` or the CPUs);
        the result does not depend on it.
    events_per_variable : float, default 10
        The multivariable model takes at most floor(events / this) variables (forward
        selection stops there, said in ``note``; ``statistics.events_per_variable``).
    tolerance : float, default 1e-9
        Convergence: relative change of the log partial likelihood (R coxph's rule;
        ``statistics.cox_tolerance``).
    selection : {"forward", "univariate"}, default "forward"
        How the multivariable model's variables are chosen (``statistics.cox_selection``):
        forward selection on the Wald p of each candidate added, or every candidate of
        univariate p < ``entry_p`` entered together (the most significant first when the
        events-per-variable limit allows fewer).

    Returns
    -------
    DataFrame
        model (univariate / multivariable), variable, coef, hr, ci_low, ci_high, p_value,
        ph_test_p (lifelines ``proportional_hazard_test``, scaled Schoenfeld residuals,
        rank-transformed time), step (order of entry), n, events (patients with complete
        data on the model's variables), note, method, converged, estimable.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (Cox models; proportional hazards checked). Honest fits
    (issue 13): the maximum-likelihood fit (Efron ties) when it converged and the
    likelihood is not monotone, otherwise the Firth-penalized Cox model (``method`` says
    which); a variable still without a finite estimate is "not estimable (events / n)"
    with no number. Forward selection enters only variables the ML fit estimates.

    References
    ----------
    .. [1] Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220.
    .. [2] Heinze G, Schemper M. A solution to the problem of monotone likelihood in Cox
       regression. Biometrics 2001;57:114-119 (R ``coxphf``).
    .. [3] Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based on
       weighted residuals. Biometrika 1994;81:515-526.
    """
    if selection not in SELECTION_TEXT:
        raise ValueError(f"statistics.cox_selection: {selection!r} is none of {sorted(SELECTION_TEXT)}")
    candidates = list(candidates)
    data = stable_order(data)  # the fits do not follow the keyed ids' order
    rows = []
    uni_p = {}
    events = int(pd.to_numeric(data[event_col], errors="coerce").fillna(0).sum())
    max_vars = int(events // events_per_variable)
    capped = False
    with Forked((data, duration_col, event_col, strata, alpha, tolerance), workers) as pool:
        # the univariate models, then each forward step's candidate models, are independent fits
        for v, (v_rows, p) in zip(candidates, pool.map(_univariate_cox, candidates)):
            rows += v_rows
            if p is not None:
                uni_p[v] = p
        selected: list[str] = []
        remaining = [v for v in candidates if v in uni_p] if selection == "forward" else []
        if selection == "univariate":
            significant = sorted((v for v in candidates if v in uni_p and uni_p[v] < entry_p), key=lambda v: uni_p[v])
            capped = len(significant) > max_vars
            selected = significant[:max_vars]
        while remaining:
            best, best_p = None, np.inf
            for v, p in zip(remaining, pool.map(_candidate_p, [(tuple(selected), v) for v in remaining])):
                if p is None:
                    continue
                if np.isfinite(p) and p < best_p:
                    best, best_p = v, p
            if best is None or not best_p < entry_p:
                break
            if len(selected) >= max_vars:
                capped = True
                break
            selected.append(best)
            remaining.remove(best)
    stop = "forward selection stopped there" if selection == "forward" else "the most significant entered"
    cap_note = (f"events-per-variable limit {events_per_variable:g}: {events} events support {max_vars} "
                f"variable(s); {stop}") if capped else None
    if selected:
        fit, d, note = _fit_cox(data, selected, duration_col, event_col, strata, alpha, tolerance)
        note = "; ".join(x for x in (note, cap_note) if x) or None
        if fit is None:
            rows += [{"model": "multivariable", "variable": v, "n": int(len(d)), "events": int(d[event_col].sum()),
                      "estimable": False, "step": i + 1,
                      "note": _not_estimable(int(d[event_col].sum()), int(len(d))) + f"; {note}"}
                     for i, v in enumerate(selected)]
        else:
            rows += _cox_rows("multivariable", fit, d, selected, event_col, note, step=True)
    elif capped:
        rows.append({"model": "multivariable", "variable": None, "n": int(len(data)), "events": events,
                     "estimable": False, "note": f"{_not_estimable(events, int(len(data)))}; {cap_note}"})
    else:
        rows.append({"model": "multivariable", "variable": None,
                     "note": f"no candidate entered ({SELECTION_TEXT[selection]}, entry p < {entry_p})"})
    out = pd.DataFrame(rows, columns=COX_COLUMNS)
    out["step"] = out["step"].astype("Int64")
    out["n"] = out["n"].astype("Int64")
    out["events"] = out["events"].astype("Int64")
    out["converged"] = out["converged"].astype("boolean")
    out["estimable"] = out["estimable"].astype("boolean")
    return out


# ----------------------------------------------------------- rates per 100 PY
def poisson_exact_ci(events, exposure, alpha: float = 0.05):
    """Exact Poisson confidence interval of a rate.

    Parameters
    ----------
    events : int or array_like
        Event counts.
    exposure : float or array_like
        Exposure (e.g. patient-years).
    alpha : float, default 0.05

    Returns
    -------
    tuple
        ``(low, high)`` of events / exposure: floats for scalars, arrays for arrays.

    Notes
    -----
    docs/STUDY_RULES.md#safety and #statistics: events and discontinuations per 100
    patient-years with exact intervals.

    References
    ----------
    .. [1] Garwood F. Fiducial limits for the Poisson distribution. Biometrika
       1936;28:437-442.
    """
    k = np.asarray(events, dtype=float)
    t = np.asarray(exposure, dtype=float)
    lo = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * k) / 2, 0.0) / t
    hi = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2 / t
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def discontinuation_rate(
    persistence: pd.DataFrame,
    group_vars=("overall", "diagnosis"),
    days_per_year: float = 365.25,
    per: float = 100.0,
    alpha: float = 0.05,
    duration_col: str = "time_days",
    event_col: str = "event",
) -> pd.DataFrame:
    """Discontinuations per 100 patient-years of UPA exposure.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    group_vars : sequence of str, default ("overall", "diagnosis")
    days_per_year : float, default 365.25
        Patient-years = sum of ``time_days`` / this (12 x ``persistence.days_per_month``).
    per : float, default 100
    alpha : float, default 0.05
    duration_col, event_col : str

    Returns
    -------
    DataFrame
        group_var, group, n, events, patient_years, rate_per_100py, ci_low, ci_high
        (exact Poisson, :func:`poisson_exact_ci`).

    Notes
    -----
    docs/STUDY_RULES.md#statistics: discontinuations per 100 patient-years.
    """
    rows = []
    for gv in group_vars:
        for g, sub in _groups(persistence, gv):
            py = float(sub[duration_col].sum()) / days_per_year
            k = int(sub[event_col].sum())
            lo, hi = poisson_exact_ci(k, py, alpha) if py > 0 else (np.nan, np.nan)
            rows.append({"group_var": gv, "group": g, "n": int(len(sub)), "events": k,
                         "patient_years": py, "rate_per_100py": per * k / py if py > 0 else np.nan,
                         "ci_low": per * lo, "ci_high": per * hi})
    return pd.DataFrame(rows, columns=RATE_COLUMNS)
