"""Endpoint rates n/N (%) with Wilson 95% CI, UC vs CD tests, Cochran's Q over time.

Analyses (STUDY.md "Endpoints"):

* ``complete_case`` (primary): n = patients with ``status == 'achieved'``,
  N = patients with status achieved or not_achieved (not evaluable left out);
* ``nri`` (sensitivity): n = patients with ``status_nri == 'achieved'``, N = every
  included patient with a row at that time point.

Percentages and their CI limits are in percent (0-100).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import cochrans_q as _sm_cochrans_q

from .contingency import chi_square_or_fisher

TIMEPOINT_ORDER = ["baseline", "induction", "month6", "month12", "month18"]
ANALYSES = ("complete_case", "nri")
DIAGNOSES = ("UC", "CD", "overall")
RATE_COLUMNS = ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total", "pct", "ci_low", "ci_high"]


def wilson_ci(n, N, alpha: float = 0.05):
    """Wilson score interval for n successes out of N (proportions, 0-1).

    Scalars give a tuple (low, high); arrays give a tuple of arrays. N == 0 -> NaN.
    Equal to ``statsmodels.stats.proportion.proportion_confint(n, N, alpha, 'wilson')``.
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


def _tp_key(tp: str) -> int:
    return TIMEPOINT_ORDER.index(tp) if tp in TIMEPOINT_ORDER else len(TIMEPOINT_ORDER)


def _with_overall(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.assign(diagnosis="overall")], ignore_index=True)


def _counts(df: pd.DataFrame, analysis: str) -> tuple[int, int]:
    if analysis == "complete_case":
        ev = df["status"].isin(["achieved", "not_achieved"])
        return int((df["status"] == "achieved").sum()), int(ev.sum())
    if analysis == "nri":
        return int((df["status_nri"] == "achieved").sum()), int(df["patient_id"].nunique())
    raise ValueError(f"unknown analysis {analysis!r}")


def endpoint_rates(endpoints: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """n/N (%) with Wilson CI per diagnosis (UC, CD, overall), time point, endpoint and
    analysis (complete_case, nri)."""
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
    return _sort(out, ["diagnosis", "endpoint", "analysis", "timepoint"])


def _sort(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    k = df.copy()
    if "timepoint" in k:
        k["_tp"] = k["timepoint"].map(_tp_key)
    if "diagnosis" in k:
        k["_dx"] = k["diagnosis"].map({d: i for i, d in enumerate(DIAGNOSES)}).fillna(9)
    order = [{"timepoint": "_tp", "diagnosis": "_dx"}.get(c, c) for c in keys]
    k = k.sort_values(order, kind="stable")
    return k.drop(columns=[c for c in ("_tp", "_dx") if c in k]).reset_index(drop=True)


def uc_vs_cd_tests(endpoints: pd.DataFrame, fisher_expected_below: float = 5,
                   seed: int = 20250401) -> pd.DataFrame:
    """UC vs CD per time point, endpoint and analysis: 2 x 2 table (diagnosis x
    achieved), Pearson chi-square without correction, Fisher's exact when an expected
    count is below ``fisher_expected_below``.

    Columns: timepoint, endpoint, analysis, n_uc, n_total_uc, n_cd, n_total_cd, statistic, p_value,
    test, min_expected.
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
    return _sort(pd.DataFrame(rows, columns=cols), ["endpoint", "analysis", "timepoint"])


def cochran_q(endpoints: pd.DataFrame, timepoints=("induction", "month6", "month12"),
              analyses=ANALYSES) -> pd.DataFrame:
    """Cochran's Q (statsmodels ``cochrans_q``) per diagnosis (UC, CD, overall),
    endpoint and analysis across ``timepoints`` on the patients with an evaluable
    result at every one of them (complete_case: status achieved/not_achieved at all
    points; nri: a status_nri at all points).

    Columns: diagnosis, endpoint, analysis, timepoints, q, df, p, n_patients, note.
    Q is undefined when no patient changes status (all rows constant): q and p are then
    NaN with a note.
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
