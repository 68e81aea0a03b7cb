"""Biomarker trajectories: summaries per time point and tests across time points.

Values with a qualifier ('<' / '>') are used at their reported limit (e.g. CRP "<0.5"
counts as 0.5); rank-based tests are little affected by this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .rates import _sort, _with_overall, sort_timepoints
from .settings import BASELINE

SUMMARY_COLUMNS = ["diagnosis", "test", "timepoint", "n", "median", "q1", "q3", "mean", "sd"]
TEST_COLUMNS = ["diagnosis", "test", "comparison", "statistic", "p_value", "n", "method"]
KW = "Kruskal-Wallis"
SIGNED_RANK = "Wilcoxon signed-rank"


def _values(biomarkers: pd.DataFrame) -> pd.DataFrame:
    df = biomarkers.copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    df = df[df["value"].notna()]
    # one value per patient, test and time point (the pipeline already picks one)
    return df.drop_duplicates(["diagnosis", "patient_id", "test", "timepoint"], keep="first")


def signed_rank_test(x, y, exact_below: int = 50) -> tuple[float, float]:
    """Two-sided paired Wilcoxon signed-rank test as R's ``wilcox.test(x, y, paired = TRUE)``.

    Parameters
    ----------
    x, y : array_like
        Paired values.
    exact_below : int, default 50
        The exact distribution when fewer differences than this remain and none is zero
        or tied (R's rule), else the normal approximation with tie and continuity
        correction (``correct=TRUE``).

    Returns
    -------
    tuple of float
        ``(V, p)``: V = sum of the ranks of the positive differences x - y (zero
        differences dropped), two-sided p.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: baseline vs each time point.

    References
    ----------
    .. [1] Wilcoxon F. Individual comparisons by ranking methods. Biometrics Bulletin
       1945;1:80-83. R ``stats::wilcox.test``.
    """
    d = np.asarray(x, float) - np.asarray(y, float)
    nz = d[d != 0]
    exact = nz.size < exact_below and nz.size == d.size and np.unique(np.abs(nz)).size == nz.size
    res = stats.wilcoxon(nz, alternative="two-sided", zero_method="wilcox", correction=not exact,
                         method="exact" if exact else "asymptotic")
    v = float(stats.rankdata(np.abs(nz))[nz > 0].sum())
    return v, float(res.pvalue)


def biomarker_summary(biomarkers: pd.DataFrame, timepoint_order=None) -> pd.DataFrame:
    """Biomarker summary per diagnosis (UC, CD, overall), test and time point.

    Parameters
    ----------
    biomarkers : DataFrame
        ``analytics.biomarkers``: patient_id, diagnosis, test, timepoint, value.
    timepoint_order : sequence of str, optional
        The study's time points in order (rows sort by it).

    Returns
    -------
    DataFrame
        diagnosis, test, timepoint, n, median, q1, q3 (type-7 quantiles), mean, sd (ddof=1).

    Notes
    -----
    docs/STUDY_RULES.md#statistics: biomarker trajectories, summary per time point.
    """
    df = _with_overall(_values(biomarkers))
    rows = []
    for (dx, test, tp), g in df.groupby(["diagnosis", "test", "timepoint"], sort=False):
        v = g["value"].to_numpy(float)
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        rows.append({"diagnosis": dx, "test": test, "timepoint": tp, "n": int(v.size),
                     "median": med, "q1": q1, "q3": q3, "mean": float(v.mean()),
                     "sd": float(np.std(v, ddof=1)) if v.size > 1 else np.nan})
    return _sort(pd.DataFrame(rows, columns=SUMMARY_COLUMNS), ["diagnosis", "test", "timepoint"], timepoint_order)


def biomarker_tests(biomarkers: pd.DataFrame, baseline: str = BASELINE, timepoint_order=None) -> pd.DataFrame:
    """Biomarker tests across time points per diagnosis (UC, CD, overall) and test.

    Parameters
    ----------
    biomarkers : DataFrame
        ``analytics.biomarkers``: patient_id, diagnosis, test, timepoint, value.
    baseline : str, default "baseline"
        The time point every other one is compared with.
    timepoint_order : sequence of str, optional
        The study's time points in order (the comparisons follow it).

    Returns
    -------
    DataFrame
        diagnosis, test, comparison, statistic, p_value, n, method. ``comparison`` is
        ``across_timepoints`` (Kruskal-Wallis H over every time point, all available
        values as published; n = values) or ``<baseline>_vs_<tp>`` (Wilcoxon signed-rank
        on the patients with both values, n = pairs, :func:`signed_rank_test`).

    Notes
    -----
    docs/STUDY_RULES.md#statistics: Kruskal-Wallis across time points and Wilcoxon
    signed-rank of baseline vs each point.

    References
    ----------
    .. [1] Kruskal WH, Wallis WA. Use of ranks in one-criterion variance analysis.
       J Am Stat Assoc 1952;47:583-621.
    """
    df = _with_overall(_values(biomarkers))
    rows = []
    for (dx, test), g in df.groupby(["diagnosis", "test"], sort=False):
        tps = sort_timepoints(g["timepoint"].unique(), timepoint_order)
        samples = [g.loc[g["timepoint"] == tp, "value"].to_numpy(float) for tp in tps]
        samples = [s for s in samples if s.size]
        row = {"diagnosis": dx, "test": test, "comparison": "across_timepoints",
               "statistic": np.nan, "p_value": np.nan, "n": int(sum(s.size for s in samples)),
               "method": KW}
        pooled = np.concatenate(samples) if samples else np.array([])
        if len(samples) >= 2 and np.unique(pooled).size > 1:
            res = stats.kruskal(*samples)
            row.update(statistic=float(res.statistic), p_value=float(res.pvalue))
        rows.append(row)
        wide = g.pivot_table(index="patient_id", columns="timepoint", values="value", aggfunc="first")
        if baseline not in wide:
            continue
        for tp in tps:
            if tp == baseline:
                continue
            pair = wide[[baseline, tp]].dropna()
            row = {"diagnosis": dx, "test": test, "comparison": f"{baseline}_vs_{tp}",
                   "statistic": np.nan, "p_value": np.nan, "n": int(len(pair)), "method": SIGNED_RANK}
            d = (pair[tp] - pair[baseline]).to_numpy(float)
            if np.count_nonzero(d) >= 1:
                stat, p = signed_rank_test(pair[baseline].to_numpy(float), pair[tp].to_numpy(float))
                row.update(statistic=stat, p_value=p)
            rows.append(row)
    out = pd.DataFrame(rows, columns=TEST_COLUMNS)
    return _sort(out, ["diagnosis", "test"])

