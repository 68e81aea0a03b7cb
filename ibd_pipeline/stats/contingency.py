"""Contingency-table tests with the study's rule (docs/STUDY_RULES.md#statistics):

Pearson chi-square WITHOUT continuity correction, or Fisher's exact test when any
expected count is below ``fisher_expected_below`` (default 5).

* 2 x 2 tables: ``scipy.stats.fisher_exact`` (two-sided).
* 2 x k (and k x 2) tables: the exact Freeman-Halton extension of Fisher's test,
  computed here by complete enumeration of the tables with the observed margins
  (p = sum of the probabilities of all tables no more probable than the observed one,
  with R's relative tolerance 1e-7 - the definition R's ``fisher.test`` uses).
  scipy's r x c ``fisher_exact`` is a Monte-Carlo/permutation approximation, so it is
  only used (seeded) when the enumeration would be too large or for r, c > 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import gammaln

CHI2 = "Pearson chi-square"
FISHER_2X2 = "Fisher's exact"
FISHER_EXACT_RXC = "Fisher's exact (Freeman-Halton, exact enumeration)"
FISHER_MC = "Fisher's exact (Monte Carlo, {n} tables, seed {seed})"
NOT_TESTED = "not tested"

_REL_ERR = 1 + 1e-7  # same tie tolerance as R's fisher.test
_MAX_STATES = 3_000_000


@dataclass(frozen=True)
class ContingencyResult:
    """A contingency-table test (:func:`chi_square_or_fisher`).

    Attributes
    ----------
    statistic : float
        Chi-square, or the odds ratio of Fisher's 2 x 2 test (NaN for r x c Fisher).
    p_value : float
        Two-sided p.
    test : str
        The test used (``CHI2``, ``FISHER_2X2``, ``FISHER_EXACT_RXC``, Monte Carlo, or
        ``NOT_TESTED``).
    min_expected : float
        The smallest expected count.
    """

    statistic: float
    p_value: float
    test: str
    min_expected: float = np.nan


def _clean(table) -> np.ndarray:
    t = np.asarray(table, dtype=float)
    if t.ndim != 2:
        raise ValueError("a contingency table must be two-dimensional")
    if (t < 0).any() or not np.allclose(t, np.round(t)):
        raise ValueError("a contingency table holds non-negative integer counts")
    t = np.round(t).astype(np.int64)
    # rows / columns with no observation carry no information (and break expected counts)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    return t


def expected_counts(table) -> np.ndarray:
    """Expected counts under independence.

    Parameters
    ----------
    table : array_like
        Counts (groups x outcomes); empty rows and columns are dropped.

    Returns
    -------
    numpy.ndarray

    Notes
    -----
    docs/STUDY_RULES.md#statistics: Fisher's exact test when one is below
    ``statistics.fisher_expected_below``.
    """
    t = _clean(table)
    if t.size == 0:
        return t.astype(float)
    return stats.contingency.expected_freq(t)


def _log_choose(n, k):
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def fisher_exact_2xk(table) -> float | None:
    """Exact two-sided Fisher (Freeman-Halton) p of a 2 x k or k x 2 table.

    Parameters
    ----------
    table : array_like
        Counts with two rows or two columns.

    Returns
    -------
    float or None
        p = sum of the probabilities of the tables with the observed margins no more
        probable than the observed one (R's relative tolerance 1e-7); None when the
        enumeration would exceed the size limit.

    Raises
    ------
    ValueError
        For a table with neither two rows nor two columns.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (Fisher's exact test of Table 1 categories).

    References
    ----------
    .. [1] Freeman GH, Halton JH. Note on an exact treatment of contingency, goodness of
       fit and other problems of significance. Biometrika 1951;38:141-149. R
       ``stats::fisher.test``.
    """
    t = _clean(table)
    if t.shape[0] != 2 and t.shape[1] == 2:
        t = t.T
    if t.shape[0] != 2:
        raise ValueError("fisher_exact_2xk needs a table with two rows or two columns")
    if t.shape[1] < 2:
        return 1.0
    cols = t.sum(axis=0)
    r1 = int(t[0].sum())
    n = int(cols.sum())
    obs_lp = float(np.sum(_log_choose(cols, t[0])))
    # progressive enumeration of the first row, pruning impossible partial sums
    sums = np.zeros(1, dtype=np.int64)
    lps = np.zeros(1)
    remaining = int(cols.sum())
    for c in cols:
        c = int(c)
        remaining -= c
        x = np.arange(c + 1)
        s = (sums[:, None] + x[None, :]).ravel()
        lp = (lps[:, None] + _log_choose(c, x)[None, :]).ravel()
        keep = (s <= r1) & (s + remaining >= r1)
        sums, lps = s[keep], lp[keep]
        if sums.size > _MAX_STATES:
            return None
    denom = float(_log_choose(n, r1))
    probs = np.exp(lps - denom)
    p_obs = np.exp(obs_lp - denom)
    p = float(probs[probs <= p_obs * _REL_ERR].sum())
    return min(1.0, p)


def chi_square_or_fisher(table, fisher_expected_below: float = 5, seed: int = 0,
                         mc_resamples: int = 99_999) -> ContingencyResult:
    """Test a contingency table by the study's rule.

    Parameters
    ----------
    table : array_like
        Counts (groups x outcomes); empty rows and columns are dropped.
    fisher_expected_below : float, default 5
        Fisher's exact test when an expected count is below this
        (``statistics.fisher_expected_below``), else Pearson chi-square without
        continuity correction.
    seed : int, default 0
        Seed of the Monte Carlo Fisher test (``statistics.seed``), used only for tables
        too large to enumerate or beyond 2 x k.
    mc_resamples : int, default 99999

    Returns
    -------
    ContingencyResult
        ``NOT_TESTED`` (NaN) for fewer than two rows or columns.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (Table 1, UC vs CD).

    References
    ----------
    .. [1] Fisher RA. On the interpretation of chi-square from contingency tables, and
       the calculation of P. J R Stat Soc 1922;85:87-94.
    """
    t = _clean(table)
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        return ContingencyResult(np.nan, np.nan, NOT_TESTED)
    exp = stats.contingency.expected_freq(t)
    min_exp = float(exp.min())
    if min_exp >= fisher_expected_below:
        res = stats.chi2_contingency(t, correction=False)
        return ContingencyResult(float(res.statistic), float(res.pvalue), CHI2, min_exp)
    if t.shape == (2, 2):
        res = stats.fisher_exact(t, alternative="two-sided")
        return ContingencyResult(float(res.statistic), float(res.pvalue), FISHER_2X2, min_exp)
    if 2 in t.shape:
        p = fisher_exact_2xk(t)
        if p is not None:
            return ContingencyResult(np.nan, p, FISHER_EXACT_RXC, min_exp)
    method = stats.MonteCarloMethod(n_resamples=mc_resamples, rng=np.random.default_rng(seed))
    res = stats.fisher_exact(t, method=method)
    return ContingencyResult(np.nan, float(res.pvalue), FISHER_MC.format(n=mc_resamples, seed=seed), min_exp)
