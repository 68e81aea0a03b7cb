"""The two-sample Wilcoxon rank-sum (Mann-Whitney) test as R's ``wilcox.test`` computes it
(docs/STUDY_RULES.md#statistics: "Wilcoxon rank-sum or Student's t").

R's defaults: the exact distribution of W when both samples have fewer than 50 values and
no value is tied; otherwise the normal approximation with the tie correction of the
variance and the continuity correction (``correct = TRUE``). The statistic is R's W, the
Mann-Whitney U of the first sample (its rank sum minus n1 (n1 + 1) / 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

EXACT = "exact"
ASYMPTOTIC = "normal approximation with continuity correction"
EXACT_BELOW = 50  # R wilcox.test: exact when both n < 50 and there are no ties


@dataclass(frozen=True)
class RankSumResult:
    """The result of :func:`wilcoxon_rank_sum`.

    Attributes
    ----------
    statistic : float
        R's W (Mann-Whitney U of the first sample); NaN when a sample is empty.
    p : float
        Two-sided p; NaN when a sample is empty.
    method : str or None
        :data:`EXACT` or :data:`ASYMPTOTIC`; None when a sample is empty (no test).
    n1, n2 : int
        The numbers of non-missing values of the two samples.
    """

    statistic: float
    p: float
    method: str | None
    n1: int
    n2: int


def wilcoxon_rank_sum(a, b, exact_below: int = EXACT_BELOW) -> RankSumResult:
    """Two-sided Wilcoxon rank-sum (Mann-Whitney) test with R's defaults.

    Parameters
    ----------
    a, b : array_like
        The two samples; missing values (NaN) are left out, as R's ``wilcox.test`` does.
    exact_below : int, default 50
        The exact distribution when both samples have fewer values than this and no value
        is tied, else the normal approximation with tie and continuity correction.

    Returns
    -------
    RankSumResult
        NaN statistic and p (method None) when either sample has no value: there is
        nothing to compare, and no number is made up.

    Notes
    -----
    docs/STUDY_RULES.md#statistics. R: ``wilcox.test(a, b)`` (``exact = NULL``,
    ``correct = TRUE``); with ties R falls back to the normal approximation (and warns).

    References
    ----------
    .. [1] Mann HB, Whitney DR. On a test of whether one of two random variables is
       stochastically larger than the other. Ann Math Stat 1947;18:50-60. R
       ``stats::wilcox.test``.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return RankSumResult(float("nan"), float("nan"), None, int(a.size), int(b.size))
    pooled = np.concatenate([a, b])
    exact = a.size < exact_below and b.size < exact_below and np.unique(pooled).size == pooled.size
    res = stats.mannwhitneyu(a, b, alternative="two-sided", use_continuity=True,
                             method="exact" if exact else "asymptotic")
    return RankSumResult(float(res.statistic), float(res.pvalue), EXACT if exact else ASYMPTOTIC,
                         int(a.size), int(b.size))


__all__ = ["ASYMPTOTIC", "EXACT", "EXACT_BELOW", "RankSumResult", "wilcoxon_rank_sum"]
