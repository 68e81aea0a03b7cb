"""Univariate, then multivariable logistic regression (``statistics.predictor_method:
logistic``; the single-center study's week-12 clinical remission model, its STUDY_RULES.md
#statistics): each candidate covariate on its own, then one model of every candidate
whose univariate p is below ``statistics.cox_entry_p`` (entered together; the paper
states no selection rule).

A categorical covariate (text levels, e.g. Montreal behaviour B1/B2/B3) enters as
indicators against its first level (sorted: B1), one row per level, and is selected when
any of its levels is. Every fit is the one of :mod:`.predictors` (separation checked
first; statsmodels maximum likelihood when it converges, else Firth-penalized as R
``logistf``); a coefficient that is still not finite is "not estimable" and carries no
number - a model that did not fit is never shown as if it had.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .predictors import MAX_LOG_RATIO, _align_outcome, _fit_logit, _not_estimable

LOGISTIC_COLUMNS = ["model", "variable", "level", "reference", "coef", "odds_ratio", "ci_low", "ci_high", "p_value",
                    "selected", "n", "events", "method", "note", "converged", "estimable"]


@dataclass(frozen=True)
class LogisticModels:
    """The univariate and multivariable logistic models.

    Attributes
    ----------
    table : DataFrame
        One row per model term (LOGISTIC_COLUMNS): ``model`` univariate or multivariable,
        ``variable`` the covariate, ``level``/``reference`` for a categorical one.
    selected : tuple of str
        The covariates of the multivariable model, in candidate order.
    note : str
        What was left out and why.
    """

    table: pd.DataFrame
    selected: tuple[str, ...]
    note: str


def _design(df: pd.DataFrame, var: str) -> tuple[pd.DataFrame, list[tuple[str, str | None, str | None]]]:
    """Columns of ``var`` (numeric/boolean as is; text as indicators vs its first level)
    and per column (variable, level, reference)."""
    s = df[var]
    if s.dtype == object or str(s.dtype) in ("string", "category"):
        levels = sorted(str(v) for v in s.dropna().unique())
        if len(levels) < 2:
            return pd.DataFrame(index=df.index), []
        ref = levels[0]
        cols = {f"{var}[{lv}]": (s.astype(object) == lv).astype(float).where(s.notna()) for lv in levels[1:]}
        return pd.DataFrame(cols, index=df.index), [(var, lv, ref) for lv in levels[1:]]
    v = s.astype("Float64") if str(s.dtype) in ("bool", "boolean") else s
    return pd.DataFrame({var: pd.to_numeric(v, errors="coerce").astype(float)}, index=df.index), [(var, None, None)]


def _rows(model: str, fit: dict | None, X: pd.DataFrame, terms, y: np.ndarray, note: str, selected: set) -> list[dict]:
    events, n = int(y.sum()), int(len(y))
    out = []
    for col, (var, level, ref) in zip(X.columns, terms):
        row = {"model": model, "variable": var, "level": level, "reference": ref, "coef": np.nan, "odds_ratio": np.nan,
               "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "selected": var in selected, "n": n,
               "events": events, "method": fit["method"] if fit else "", "note": note,
               "converged": bool(fit["converged"]) if fit else False, "estimable": False}
        if fit is not None:
            b = float(fit["params"][col])
            lo, hi = (float(x) for x in np.asarray(fit["ci"].loc[col], float)[:2])
            finite = all(np.isfinite(v) and abs(v) < MAX_LOG_RATIO for v in (b, lo, hi)) and bool(fit["converged"])
            if finite:
                row.update(coef=b, odds_ratio=float(np.exp(b)), ci_low=float(np.exp(lo)), ci_high=float(np.exp(hi)),
                           p_value=float(fit["p"][col]), estimable=True)
            else:
                row["note"] = "; ".join(x for x in (note, _not_estimable(events, n)) if x)
        out.append(row)
    return out


def _fit(df: pd.DataFrame, y: pd.Series, variables: list[str], alpha: float):
    parts = [_design(df, v) for v in variables]
    X = pd.concat([p[0] for p in parts], axis=1)
    terms = [t for p in parts for t in p[1]]
    keep = X.notna().all(axis=1) & y.notna()
    X, yy = X[keep], y[keep].astype(int).to_numpy()
    dropped = int((~keep).sum())
    note = f"{dropped} patient(s) without the outcome or a covariate left out" if dropped else ""
    if len(X) == 0 or X.shape[1] == 0 or len(set(yy)) < 2:
        return None, X, terms, yy, "; ".join(x for x in (note, "no model: no variation in the outcome or covariate") if x)
    constant = [c for c in X.columns if X[c].nunique() < 2]
    if constant:
        return None, X, terms, yy, "; ".join(x for x in (note, f"no model: {', '.join(constant)} constant") if x)
    fit = _fit_logit(yy, X, pd.Series("one", index=X.index), "none", alpha)
    notes = "; ".join(fit.get("notes") or [])
    return fit, X, terms, yy, "; ".join(x for x in (note, notes) if x)


def logistic_models(covariates: pd.DataFrame, outcome: pd.Series, candidates: list[str], entry_p: float,
                    alpha: float = 0.05) -> LogisticModels:
    """Univariate logistic regressions of ``outcome`` on each candidate, then the
    multivariable model of the candidates with a univariate p < ``entry_p``.

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates`` (patient_id and the candidate columns).
    outcome : Series
        0/1 by patient_id (:func:`ibd_pipeline.stats.predictors.outcome_from_endpoints`);
        patients without it are left out.
    candidates : list of str
        ``statistics.covariates``.
    entry_p : float
        ``statistics.cox_entry_p`` (the study's one entry level, 0.05).
    alpha : float, default 0.05
        CI level.

    Returns
    -------
    LogisticModels

    Notes
    -----
    docs/STUDY_RULES.md#statistics (the fits) and studies/single_center_cd/STUDY_RULES.md
    #statistics (this method): complete case per model; all selected variables entered
    together (the paper's printed model).

    References
    ----------
    Heinze G, Schemper M. A solution to the problem of separation in logistic
    regression. Stat Med 2002;21:2409-19 (the Firth fallback).
    """
    missing = [c for c in candidates if c not in covariates.columns]
    if missing:
        raise ValueError(f"statistics.covariates names columns the baseline covariates do not have: {missing}")
    y = _align_outcome(covariates, outcome)
    rows = []
    selected = []
    for v in candidates:
        fit, X, terms, yy, note = _fit(covariates, y, [v], alpha)
        r = _rows("univariate", fit, X, terms, yy, note, set())
        if any(x["estimable"] and x["p_value"] < entry_p for x in r):
            selected.append(v)
        rows += r
    sel = set(selected)
    for r in rows:
        r["selected"] = r["variable"] in sel
    note = ""
    if selected:
        fit, X, terms, yy, mnote = _fit(covariates, y, selected, alpha)
        rows += _rows("multivariable", fit, X, terms, yy, mnote, sel)
    else:
        note = f"no candidate had a univariate p < {entry_p}: no multivariable model"
    return LogisticModels(pd.DataFrame(rows, columns=LOGISTIC_COLUMNS), tuple(selected), note)
