"""Endpoint rates n/N (%) with Wilson 95% CI, UC vs CD tests, Cochran's Q over time.

Analyses (docs/STUDY_RULES.md#endpoints):

* ``complete_case`` (primary): n = patients with ``status == 'achieved'``,
  N = patients with status achieved or not_achieved (not evaluable left out);
* ``nri`` (sensitivity): n = patients with ``status_nri == 'achieved'``, N = every
  included patient with a row at that time point.

Percentages and their CI limits are in percent (0-100). Time points sort in the study's
order (``timepoint_order``, :func:`ibd_pipeline.stats.settings.timepoint_order`); without
one, in the order they first appear.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import cochrans_q as _sm_cochrans_q

from .contingency import chi_square_or_fisher

ANALYSES = ("complete_case", "nri")
DIAGNOSES = ("UC", "CD", "overall")
RATE_COLUMNS = ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total", "pct", "ci_low", "ci_high"]


def wilson_ci(n, N, alpha: float = 0.05):
    """Wilson score interval for ``n`` successes out of ``N``.

    Parameters
    ----------
    n : int or array_like
        Successes.
    N : int or array_like
        Trials; ``N == 0`` gives NaN limits.
    alpha : float, default 0.05
        Two-sided level (``statistics.alpha``).

    Returns
    -------
    tuple
        ``(low, high)`` as proportions (0-1): floats for scalars, arrays for arrays.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: endpoint rates carry Wilson 95% CIs. Equal to
    ``statsmodels.stats.proportion.proportion_confint(n, N, alpha, 'wilson')``.

    References
    ----------
    .. [1] Wilson EB. Probable inference, the law of succession, and statistical
       inference. J Am Stat Assoc 1927;22:209-212.
    """
    n_arr = np.asarray(n, dtype=float)
    N_arr = np.asarray(N, dtype=float)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = n_arr / N_arr
        denom = 1 + z**2 / N_arr
        center = (p + z**2 / (2 * N_arr)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / N_arr + z**2 / (4 * N_arr**2))
        low = np.where(N_arr > 0, np.clip(center - half, 0, 1), np.nan)
        high = np.where(N_arr > 0, np.clip(center + half, 0, 1), np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def _tp_rank(values, timepoint_order=None) -> dict:
    """{time point: rank}: the position in ``timepoint_order`` (unknown ones after it, in
    the order they first appear in ``values``); without an order, first appearance."""
    order = list(timepoint_order or ())
    seen = list(dict.fromkeys(v for v in values if v not in order))
    return {tp: i for i, tp in enumerate([*order, *seen])}


def sort_timepoints(values, timepoint_order=None) -> list:
    """Time points in the study's order.

    Parameters
    ----------
    values : iterable of str
        Time points (repeats allowed).
    timepoint_order : sequence of str, optional
        The study's order (:func:`ibd_pipeline.stats.settings.timepoint_order`).

    Returns
    -------
    list of str
        The distinct values: those of the order in its order, then the others as they
        first appear (without an order: as they first appear).

    Notes
    -----
    docs/STUDY_RULES.md#windows: time points are ordered by ``study.yaml``, not by name.
    """
    rank = _tp_rank(values, timepoint_order)
    return sorted(dict.fromkeys(values), key=rank.__getitem__)


def _with_overall(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.assign(diagnosis="overall")], ignore_index=True)


def _counts(df: pd.DataFrame, analysis: str) -> tuple[int, int]:
    if analysis == "complete_case":
        ev = df["status"].isin(["achieved", "not_achieved"])
        return int((df["status"] == "achieved").sum()), int(ev.sum())
    if analysis == "nri":
        return int((df["status_nri"] == "achieved").sum()), int(df["patient_id"].nunique())
    raise ValueError(f"unknown analysis {analysis!r}")


def endpoint_rates(endpoints: pd.DataFrame, alpha: float = 0.05, timepoint_order=None) -> pd.DataFrame:
    """Endpoint rates n/N (%) with Wilson CI.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``: patient_id, diagnosis, timepoint, endpoint, status, status_nri.
    alpha : float, default 0.05
        Two-sided CI level (``statistics.alpha``).
    timepoint_order : sequence of str, optional
        The study's time points in order (rows sort by it).

    Returns
    -------
    DataFrame
        One row per diagnosis (UC, CD, overall), time point, endpoint and analysis
        (complete_case, nri): diagnosis, timepoint, endpoint, analysis, n, n_total, pct,
        ci_low, ci_high (percent).

    Notes
    -----
    docs/STUDY_RULES.md#endpoints: complete case (N = evaluable) is primary, NRI
    (N = every included patient) the sensitivity analysis.
    """
    rows = []
    ep = _with_overall(endpoints)
    for (dx, tp, name), g in ep.groupby(["diagnosis", "timepoint", "endpoint"], sort=False):
        for analysis in ANALYSES:
            n, N = _counts(g, analysis)
            lo, hi = wilson_ci(n, N, alpha)
            rows.append({"diagnosis": dx, "timepoint": tp, "endpoint": name, "analysis": analysis,
                         "n": n, "n_total": N, "pct": 100.0 * n / N if N else np.nan,
                         "ci_low": 100.0 * lo, "ci_high": 100.0 * hi})
    out = pd.DataFrame(rows, columns=RATE_COLUMNS)
    return _sort(out, ["diagnosis", "endpoint", "analysis", "timepoint"], timepoint_order)


def _sort(df: pd.DataFrame, keys: list[str], timepoint_order=None) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    k = df.copy()
    if "timepoint" in k:
        k["_tp"] = k["timepoint"].map(_tp_rank(k["timepoint"], timepoint_order))
    if "diagnosis" in k:
        k["_dx"] = k["diagnosis"].map({d: i for i, d in enumerate(DIAGNOSES)}).fillna(9)
    order = [{"timepoint": "_tp", "diagnosis": "_dx"}.get(c, c) for c in keys]
    k = k.sort_values(order, kind="stable")
    return k.drop(columns=[c for c in ("_tp", "_dx") if c in k]).reset_index(drop=True)


def uc_vs_cd_tests(endpoints: pd.DataFrame, fisher_expected_below: float = 5, seed: int = 0,
                   timepoint_order=None) -> pd.DataFrame:
    """UC vs CD per time point, endpoint and analysis.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    fisher_expected_below : float, default 5
        Fisher's exact test when an expected count is below this
        (``statistics.fisher_expected_below``).
    seed : int, default 0
        Seed of the Monte Carlo Fisher test of large r x c tables (``statistics.seed``).
    timepoint_order : sequence of str, optional
        The study's time points in order (rows sort by it).

    Returns
    -------
    DataFrame
        timepoint, endpoint, analysis, n_uc, n_total_uc, n_cd, n_total_cd, statistic,
        p_value, test, min_expected.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the 2 x 2 table diagnosis x achieved is tested by
    Pearson chi-square without continuity correction, or Fisher's exact test when an
    expected count is below ``fisher_expected_below`` (:func:`chi_square_or_fisher`).
    """
    rows = []
    for (tp, name), g in endpoints.groupby(["timepoint", "endpoint"], sort=False):
        for analysis in ANALYSES:
            counts = {dx: _counts(g[g["diagnosis"] == dx], analysis) for dx in ("UC", "CD")}
            table = [[counts[dx][0], counts[dx][1] - counts[dx][0]] for dx in ("UC", "CD")]
            res = chi_square_or_fisher(table, fisher_expected_below, seed=seed)
            rows.append({"timepoint": tp, "endpoint": name, "analysis": analysis,
                         "n_uc": counts["UC"][0], "n_total_uc": counts["UC"][1],
                         "n_cd": counts["CD"][0], "n_total_cd": counts["CD"][1],
                         "statistic": res.statistic, "p_value": res.p_value, "test": res.test,
                         "min_expected": res.min_expected})
    cols = ["timepoint", "endpoint", "analysis", "n_uc", "n_total_uc", "n_cd", "n_total_cd", "statistic",
            "p_value", "test", "min_expected"]
    return _sort(pd.DataFrame(rows, columns=cols), ["endpoint", "analysis", "timepoint"], timepoint_order)


def cochran_q(endpoints: pd.DataFrame, timepoints, analyses=ANALYSES) -> pd.DataFrame:
    """Cochran's Q across time points per diagnosis (UC, CD, overall), endpoint and analysis.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    timepoints : sequence of str
        The time points compared (``timepoints.clinical``).
    analyses : sequence of str, default ("complete_case", "nri")
        complete_case: patients with status achieved / not_achieved at every point;
        nri: patients with a status_nri at every point.

    Returns
    -------
    DataFrame
        diagnosis, endpoint, analysis, timepoints, q, df, p, n_patients, note. Q is
        undefined when no patient changes status: q and p are NaN with a note.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: change across time points by Cochran's Q on the
    patients with all points (statsmodels ``cochrans_q``).

    References
    ----------
    .. [1] Cochran WG. The comparison of percentages in matched samples. Biometrika
       1950;37:256-266.
    """
    timepoints = list(timepoints)
    rows = []
    ep = _with_overall(endpoints[endpoints["timepoint"].isin(timepoints)])
    for (dx, name), g in ep.groupby(["diagnosis", "endpoint"], sort=False):
        for analysis in analyses:
            col = "status" if analysis == "complete_case" else "status_nri"
            ok = g[g[col].isin(["achieved", "not_achieved"])]
            wide = (ok.assign(y=(ok[col] == "achieved").astype(int))
                    .pivot_table(index="patient_id", columns="timepoint", values="y", aggfunc="first")
                    .reindex(columns=timepoints))
            wide = wide.dropna()
            row = {"diagnosis": dx, "endpoint": name, "analysis": analysis,
                   "timepoints": ",".join(timepoints), "q": np.nan, "df": len(timepoints) - 1,
                   "p": np.nan, "n_patients": int(len(wide)), "note": None}
            x = wide.to_numpy(dtype=int)
            if len(wide) < 2 or set(g["timepoint"]) < set(timepoints):
                row["note"] = "fewer than 2 patients with every time point"
                if set(g["timepoint"]) < set(timepoints):
                    row["note"] = "endpoint not assessed at every time point"
            elif np.all(x.min(axis=1) == x.max(axis=1)):
                row["note"] = "no patient changes status across time points; Q undefined"
            else:
                res = _sm_cochrans_q(x)
                row.update(q=float(res.statistic), df=int(res.df), p=float(res.pvalue))
            rows.append(row)
    cols = ["diagnosis", "endpoint", "analysis", "timepoints", "q", "df", "p", "n_patients", "note"]
    return _sort(pd.DataFrame(rows, columns=cols), ["diagnosis", "endpoint", "analysis"])
