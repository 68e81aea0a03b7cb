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

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from .rates import _sort, wilson_ci

HETEROGENEITY_COLUMNS = [
    "diagnosis", "endpoint", "center", "n", "n_total", "pct", "ci_low", "ci_high", "weight",
    "pooled_pct", "pooled_ci_low", "pooled_ci_high", "tau2", "i2", "q", "p_q", "small_cell",
]
PRIMARY_ENDPOINTS = ("sf_clinical_remission", "clinical_response", "endoscopic_remission",
                     "endoscopic_response")


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


def dl_pool(y, v, alpha: float = 0.05, method: str = "DL") -> dict:
    """Random-effects pooling of effect sizes ``y`` with sampling variances ``v``.

    Returns dict: estimate, se, ci_low, ci_high, z, p (test of estimate = 0), tau2, q,
    df, p_q, i2 (percent), h2, k, weights (random-effects weights, percent, same order
    as ``y``), fixed_estimate. ``method``: "DL" (default) or "REML".
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
    return {
        "estimate": est, "se": se, "ci_low": float(est - z * se), "ci_high": float(est + z * se),
        "z": est / se, "p": float(2 * stats.norm.sf(abs(est / se))),
        "tau2": float(tau2), "q": q, "df": df, "p_q": p_q, "i2": float(i2), "h2": float(h2),
        "k": k, "weights": 100.0 * ws / np.sum(ws), "fixed_estimate": float(fixed),
        "method": method.upper(),
    }


def logit_effects(events, totals, cc: float = 0.5):
    """Per-study logit and its variance; ``cc`` is added to events and non-events of the
    studies with a zero cell. Studies with totals == 0 get NaN."""
    e = np.asarray(events, dtype=float)
    n = np.asarray(totals, dtype=float)
    zero = (e == 0) | (e == n)
    a = np.where(zero, e + cc, e)
    b = np.where(zero, n - e + cc, n - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(n > 0, np.log(a / b), np.nan)
        v = np.where(n > 0, 1.0 / a + 1.0 / b, np.nan)
    return y, v


def dersimonian_laird(events, totals, alpha: float = 0.05, cc: float = 0.5, method: str = "DL") -> dict:
    """DerSimonian-Laird random-effects pooled proportion on the logit scale.

    Returns dict: pooled_logit, pooled_logit_se, pooled_logit_ci (tuple), pooled
    (proportion), ci (tuple of proportions), tau2, q, df, p_q, i2 (percent), k, weights
    (percent, aligned with the input; NaN for studies with totals == 0).
    """
    y, v = logit_effects(events, totals, cc)
    ok = ~np.isnan(y)
    res = dl_pool(y[ok], v[ok], alpha=alpha, method=method)
    weights = np.full(y.shape, np.nan)
    weights[ok] = res["weights"]
    return {
        "pooled_logit": res["estimate"], "pooled_logit_se": res["se"],
        "pooled_logit_ci": (res["ci_low"], res["ci_high"]),
        "pooled": float(expit(res["estimate"])),
        "ci": (float(expit(res["ci_low"])), float(expit(res["ci_high"]))),
        "tau2": res["tau2"], "q": res["q"], "df": res["df"], "p_q": res["p_q"], "i2": res["i2"],
        "k": res["k"], "weights": weights, "method": res["method"],
    }


def center_heterogeneity(
    endpoints: pd.DataFrame,
    timepoint: str = "month12",
    endpoint_names=PRIMARY_ENDPOINTS,
    analysis: str = "complete_case",
    small_cell_below: int = 5,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Per-center rates of the primary endpoints at ``timepoint`` with the
    DerSimonian-Laird pooled rate, per diagnosis (UC, CD, overall) and endpoint.

    One row per center (pct / ci in percent, Wilson CI; ``weight`` = random-effects
    weight in percent); the pooled columns repeat on every center row of the group.
    ``small_cell`` flags centers with N, or a non-zero n, below ``small_cell_below``
    (STUDY.md Privacy: cells of fewer than 5 patients are flagged).
    ``analysis``: complete_case (N = evaluable) or nri (N = all included).
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
                "weight": pooled["weights"][i] if pooled else np.nan,
                "pooled_pct": 100 * pooled["pooled"] if pooled else np.nan,
                "pooled_ci_low": 100 * pooled["ci"][0] if pooled else np.nan,
                "pooled_ci_high": 100 * pooled["ci"][1] if pooled else np.nan,
                "tau2": pooled["tau2"] if pooled else np.nan,
                "i2": pooled["i2"] if pooled else np.nan,
                "q": pooled["q"] if pooled else np.nan,
                "p_q": pooled["p_q"] if pooled else np.nan,
                "small_cell": bool(N < small_cell_below or 0 < n < small_cell_below),
            })
    out = pd.DataFrame(rows, columns=HETEROGENEITY_COLUMNS)
    return _sort(out, ["diagnosis", "endpoint", "center"])


__all__ = ["dl_pool", "dersimonian_laird", "logit_effects", "center_heterogeneity"]
