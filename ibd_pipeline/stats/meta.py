"""Center heterogeneity: random-effects pooling (DerSimonian-Laird) of per-center rates.

``dl_pool(y, v)`` pools generic effect sizes ``y`` with sampling variances ``v``
(inverse-variance, method-of-moments tau^2 of DerSimonian & Laird 1986; a REML tau^2 is
available for comparison with metafor's default). ``dersimonian_laird(events, totals)``
applies it to proportions on the logit scale with a 0.5 continuity correction for
centers with 0 events or 0 non-events (metafor's ``add=1/2, to="only0"``).

I^2 follows Higgins & Thompson (2002) as metafor computes it:
I^2 = tau^2 / (tau^2 + s^2) with the "typical" within-study variance
s^2 = (k-1) sum(w) / ((sum w)^2 - sum(w^2)); for DL this equals max(0, (Q-df)/Q).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from .rates import _sort, wilson_ci

HETEROGENEITY_COLUMNS = [
    "diagnosis", "endpoint", "center", "n", "n_total", "pct", "ci_low", "ci_high", "weight",
    "pooled_pct", "pooled_ci_low", "pooled_ci_high", "tau2", "i2", "q", "p_q", "small_cell",
]


@dataclass(frozen=True)
class PooledEffect:
    """A random-effects pooled effect size (:func:`dl_pool`).

    Attributes
    ----------
    estimate, se : float
        Pooled estimate and its standard error.
    ci_low, ci_high : float
        Wald confidence limits of the estimate.
    z, p : float
        Test of estimate = 0.
    tau2 : float
        Between-study variance.
    q : float
        Cochran's Q (fixed-effect weights); ``df`` = k - 1, ``p_q`` its p (NaN for k = 1).
    df : int
    p_q : float
    i2 : float
        I-squared in percent (NaN for k = 1).
    h2 : float
        H-squared (NaN for k = 1).
    k : int
        Number of studies.
    weights : numpy.ndarray
        Random-effects weights in percent, in the order of the input.
    fixed_estimate : float
        The fixed-effect (inverse-variance) estimate.
    method : str
        tau^2 estimator: "DL" or "REML".
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p: float
    tau2: float
    q: float
    df: int
    p_q: float
    i2: float
    h2: float
    k: int
    weights: np.ndarray
    fixed_estimate: float
    method: str


@dataclass(frozen=True)
class PooledProportion:
    """A random-effects pooled proportion on the logit scale (:func:`dersimonian_laird`).

    Attributes
    ----------
    pooled_logit, pooled_logit_se : float
        Pooled logit and its standard error.
    pooled_logit_ci : tuple of float
        Its confidence limits (logit scale).
    pooled : float
        The pooled proportion (0-1).
    ci : tuple of float
        Its confidence limits (proportions).
    tau2, q, p_q, i2 : float
        Between-center variance, Cochran's Q, its p, I-squared (percent).
    df, k : int
        Q's degrees of freedom, number of centers pooled.
    weights : numpy.ndarray
        Random-effects weights in percent aligned with the input (NaN for totals == 0).
    method : str
        tau^2 estimator.
    """

    pooled_logit: float
    pooled_logit_se: float
    pooled_logit_ci: tuple[float, float]
    pooled: float
    ci: tuple[float, float]
    tau2: float
    q: float
    df: int
    p_q: float
    i2: float
    k: int
    weights: np.ndarray
    method: str


def _tau2_reml(y, v, tau2_start, tol=1e-10, max_iter=1000):
    tau2 = max(0.0, tau2_start)
    for _ in range(max_iter):
        w = 1.0 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        # Fisher scoring step for the REML criterion (Viechtbauer 2005)
        num = np.sum(w**2 * ((y - mu) ** 2 - v)) / np.sum(w**2) + 1.0 / np.sum(w)
        new = max(0.0, num)
        if abs(new - tau2) < tol:
            return new
        tau2 = new
    return tau2


def dl_pool(y, v, alpha: float = 0.05, method: str = "DL") -> PooledEffect:
    """Random-effects pooling of effect sizes with their sampling variances.

    Parameters
    ----------
    y : array_like
        Effect sizes (one per study / center).
    v : array_like
        Their sampling variances (positive).
    alpha : float, default 0.05
        Two-sided CI level (``statistics.alpha``).
    method : {"DL", "REML"}, default "DL"
        tau^2 estimator: DerSimonian-Laird method of moments, or REML (Fisher scoring)
        for comparison with metafor's default.

    Returns
    -------
    PooledEffect

    Raises
    ------
    ValueError
        For unequal or non-1-D inputs, non-positive variances, nothing to pool or an
        unknown method.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: center heterogeneity by a random-effects pooled
    estimate (DerSimonian-Laird) and I-squared as metafor computes it.

    References
    ----------
    .. [1] DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials
       1986;7:177-188.
    .. [2] Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat
       Med 2002;21:1539-1558.
    .. [3] Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat
       Softw 2010;36(3). R ``metafor::rma``.
    """
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    if y.shape != v.shape or y.ndim != 1:
        raise ValueError("y and v must be one-dimensional and of equal length")
    if (v <= 0).any():
        raise ValueError("sampling variances must be positive")
    k = y.size
    if k == 0:
        raise ValueError("nothing to pool")
    w = 1.0 / v
    fixed = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - fixed) ** 2))
    df = k - 1
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    tau2_dl = max(0.0, (q - df) / c) if k > 1 else 0.0
    if method.upper() == "DL":
        tau2 = tau2_dl
    elif method.upper() == "REML":
        tau2 = _tau2_reml(y, v, tau2_dl) if k > 1 else 0.0
    else:
        raise ValueError(f"unknown tau^2 method {method!r}")
    ws = 1.0 / (v + tau2)
    est = float(np.sum(ws * y) / np.sum(ws))
    se = float(np.sqrt(1.0 / np.sum(ws)))
    z = stats.norm.ppf(1 - alpha / 2)
    if k > 1:
        s2 = df * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))
        i2 = 100.0 * tau2 / (tau2 + s2)
        h2 = (tau2 + s2) / s2
        p_q = float(stats.chi2.sf(q, df))
    else:
        i2, h2, p_q = np.nan, np.nan, np.nan
    return PooledEffect(
        estimate=est, se=se, ci_low=float(est - z * se), ci_high=float(est + z * se),
        z=est / se, p=float(2 * stats.norm.sf(abs(est / se))),
        tau2=float(tau2), q=q, df=df, p_q=p_q, i2=float(i2), h2=float(h2),
        k=k, weights=100.0 * ws / np.sum(ws), fixed_estimate=float(fixed), method=method.upper(),
    )


def logit_effects(events, totals, cc: float = 0.5):
    """Per-study logit of a proportion and its variance.

    Parameters
    ----------
    events, totals : array_like
        Events and patients per study.
    cc : float, default 0.5
        Continuity correction added to events and non-events of the studies with a zero
        cell (metafor's ``add=1/2, to="only0"``).

    Returns
    -------
    tuple of numpy.ndarray
        ``(y, v)``: logits and their variances 1/a + 1/b; NaN for totals == 0.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the per-center rates are pooled on the logit scale.
    """
    e = np.asarray(events, dtype=float)
    n = np.asarray(totals, dtype=float)
    zero = (e == 0) | (e == n)
    a = np.where(zero, e + cc, e)
    b = np.where(zero, n - e + cc, n - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(n > 0, np.log(a / b), np.nan)
        v = np.where(n > 0, 1.0 / a + 1.0 / b, np.nan)
    return y, v


def dersimonian_laird(events, totals, alpha: float = 0.05, cc: float = 0.5,
                      method: str = "DL") -> PooledProportion:
    """Random-effects pooled proportion on the logit scale (DerSimonian-Laird).

    Parameters
    ----------
    events, totals : array_like
        Events and patients per center; centers with totals == 0 are left out of the pool.
    alpha : float, default 0.05
        Two-sided CI level (``statistics.alpha``).
    cc : float, default 0.5
        Continuity correction of the centers with 0 events or 0 non-events.
    method : {"DL", "REML"}, default "DL"
        tau^2 estimator (:func:`dl_pool`).

    Returns
    -------
    PooledProportion

    Notes
    -----
    docs/STUDY_RULES.md#statistics: center heterogeneity, DerSimonian-Laird on the logit
    scale; the proportions are back-transformed with the inverse logit.

    References
    ----------
    .. [1] DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials
       1986;7:177-188. R ``metafor::rma(measure="PLO", method="DL")``.
    """
    y, v = logit_effects(events, totals, cc)
    ok = ~np.isnan(y)
    res = dl_pool(y[ok], v[ok], alpha=alpha, method=method)
    weights = np.full(y.shape, np.nan)
    weights[ok] = res.weights
    return PooledProportion(
        pooled_logit=res.estimate, pooled_logit_se=res.se, pooled_logit_ci=(res.ci_low, res.ci_high),
        pooled=float(expit(res.estimate)), ci=(float(expit(res.ci_low)), float(expit(res.ci_high))),
        tau2=res.tau2, q=res.q, df=res.df, p_q=res.p_q, i2=res.i2, k=res.k, weights=weights, method=res.method,
    )


def center_heterogeneity(
    endpoints: pd.DataFrame,
    timepoint: str,
    endpoint_names,
    small_cell_below: int,
    analysis: str = "complete_case",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Per-center rates with the random-effects pooled rate, per diagnosis and endpoint.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    timepoint : str
        The time point (``statistics.heterogeneity.timepoint``).
    endpoint_names : sequence of str
        The endpoints (``statistics.heterogeneity.endpoints``).
    small_cell_below : int
        Centers with N, or a non-zero n, below this are flagged
        (``statistics.small_cell_below``).
    analysis : {"complete_case", "nri"}, default "complete_case"
        complete_case: N = evaluable patients; nri: N = every included patient.
    alpha : float, default 0.05
        Two-sided CI level (``statistics.alpha``).

    Returns
    -------
    DataFrame
        One row per diagnosis (UC, CD, overall), endpoint and center: n, n_total, pct,
        ci_low, ci_high (percent, Wilson CI), weight (random-effects weight, percent),
        the pooled columns (pooled_pct, pooled_ci_low, pooled_ci_high, tau2, i2, q, p_q;
        repeated on every center row of the group) and small_cell.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (center heterogeneity, :func:`dersimonian_laird`) and
    #privacy (small cells are flagged).
    """
    ep = endpoints[(endpoints["timepoint"] == timepoint) & endpoints["endpoint"].isin(list(endpoint_names))]
    ep = pd.concat([ep, ep.assign(diagnosis="overall")], ignore_index=True)
    rows = []
    for (dx, name), g in ep.groupby(["diagnosis", "endpoint"], sort=False):
        per = []
        for center, gc in g.groupby("center", sort=True):
            if analysis == "complete_case":
                N = int(gc["status"].isin(["achieved", "not_achieved"]).sum())
                n = int((gc["status"] == "achieved").sum())
            else:
                N = int(gc["patient_id"].nunique())
                n = int((gc["status_nri"] == "achieved").sum())
            per.append((center, n, N))
        events = np.array([p[1] for p in per])
        totals = np.array([p[2] for p in per])
        pooled = None
        if (totals > 0).any():
            pooled = dersimonian_laird(events, totals, alpha=alpha)
        for i, (center, n, N) in enumerate(per):
            lo, hi = wilson_ci(n, N, alpha)
            rows.append({
                "diagnosis": dx, "endpoint": name, "center": center, "n": n, "n_total": N,
                "pct": 100.0 * n / N if N else np.nan, "ci_low": 100 * lo, "ci_high": 100 * hi,
                "weight": pooled.weights[i] if pooled else np.nan,
                "pooled_pct": 100 * pooled.pooled if pooled else np.nan,
                "pooled_ci_low": 100 * pooled.ci[0] if pooled else np.nan,
                "pooled_ci_high": 100 * pooled.ci[1] if pooled else np.nan,
                "tau2": pooled.tau2 if pooled else np.nan,
                "i2": pooled.i2 if pooled else np.nan,
                "q": pooled.q if pooled else np.nan,
                "p_q": pooled.p_q if pooled else np.nan,
                "small_cell": bool(N < small_cell_below or 0 < n < small_cell_below),
            })
    out = pd.DataFrame(rows, columns=HETEROGENEITY_COLUMNS)
    return _sort(out, ["diagnosis", "endpoint", "center"])


__all__ = ["PooledEffect", "PooledProportion", "center_heterogeneity", "dersimonian_laird", "dl_pool", "logit_effects"]
