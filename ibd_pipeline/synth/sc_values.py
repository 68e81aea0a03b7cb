"""Value helpers of the single-center CD generator: samples with a designed median and
quartiles, exact counts below a threshold, HBI items (numpy only; the model fits are in
:mod:`.sc_calibrate`).
"""

from __future__ import annotations

import numpy as np


def designed_sample(
    rng: np.random.Generator,
    n: int,
    q1: float,
    median: float,
    q3: float,
    *,
    lo: float | None = None,
    hi: float | None = None,
    log: bool = False,
    decimals: int | None = None,
    below: tuple[float, int] | None = None,
    limits: tuple[float | None, float | None] = (None, None),
) -> np.ndarray:
    """``n`` sorted values whose sample quartiles (numpy's linear rule) are close to
    ``(q1, median, q3)``: the inverse of a piecewise-linear distribution through the
    quartiles (on the log scale if ``log``), from ``lo`` to ``hi`` (default: the Tukey
    fences, 1.5 IQR beyond the quartiles), with a little seeded jitter between neighbours.
    ``below=(threshold, k)`` makes exactly ``k`` values <= threshold (the others above);
    ``limits`` clip to assay limits."""
    if n == 0:
        return np.array([], dtype=float)
    f = np.log if log else (lambda x: np.asarray(x, dtype=float))
    finv = np.exp if log else (lambda x: x)
    a, m, b = f(q1), f(median), f(q3)
    iqr = max(b - a, 1e-9)
    lo_t = f(lo) if lo is not None else a - 1.5 * iqr
    hi_t = f(hi) if hi is not None else b + 1.5 * iqr
    pos = np.arange(n, dtype=float)
    knots = np.array([0.0, (n - 1) * 0.25, (n - 1) * 0.5, (n - 1) * 0.75, max(n - 1, 1e-9)])
    v = np.interp(pos, knots, [lo_t, a, m, b, hi_t])
    if n > 2:  # jitter each interior value within a third of the gap to its neighbours
        gaps = np.minimum(np.diff(v)[:-1], np.diff(v)[1:])
        v[1:-1] += (rng.random(n - 2) - 0.5) * (2 / 3) * gaps
    v = np.sort(finv(v))
    lo_l, hi_l = limits
    if lo_l is not None:
        v = np.maximum(v, lo_l)
    if hi_l is not None:
        v = np.minimum(v, hi_l)
    if decimals is not None:
        v = np.round(v, decimals)
    if below is not None:
        thr, k = below
        step = 10.0 ** -(decimals if decimals is not None else 2)
        v[:k] = np.minimum(v[:k], thr)
        v[k:] = np.maximum(v[k:], thr + step)
        v = np.sort(v)
    return v


def exact_subset(rng: np.random.Generator, n: int, k: int, must=(), never=(), weights=None) -> np.ndarray:
    """A boolean mask of exactly ``k`` of ``n`` members containing every index in ``must``
    and none in ``never`` (ValueError when impossible); the rest drawn (with ``weights``)."""
    must = np.asarray(sorted(set(int(i) for i in must)), dtype=int)
    never_set = set(int(i) for i in never)
    if len(must) > k or set(must.tolist()) & never_set:
        raise ValueError(f"cannot pick {k} of {n} with {len(must)} required and {len(never_set)} excluded")
    pool = np.array([i for i in range(n) if i not in never_set and i not in set(must.tolist())], dtype=int)
    need = k - len(must)
    if need > len(pool):
        raise ValueError(f"cannot pick {k} of {n}: only {len(pool) + len(must)} allowed")
    p = None
    if weights is not None and len(pool):
        w = np.asarray(weights, dtype=float)[pool]
        p = w / w.sum()
    extra = rng.choice(pool, size=need, replace=False, p=p) if need else np.array([], dtype=int)
    mask = np.zeros(n, dtype=bool)
    mask[must] = True
    mask[extra] = True
    return mask


def hbi_items(rng: np.random.Generator, total: int) -> tuple[int, int, int, int, int]:
    """Split an HBI total into (wellbeing 0-4, pain 0-3, liquid stools, mass 0-3,
    complications 0-8); the liquid stools take the rest (HBI = their sum)."""
    total = int(total)
    w = min(total, int(np.clip(round(total * 0.2 + rng.normal(0, 0.6)), 0, 4)))
    p = min(total - w, int(np.clip(round(total * 0.15 + rng.normal(0, 0.6)), 0, 3)))
    m = min(total - w - p, int(rng.random() < min(0.05 * total, 0.5)))
    c = min(total - w - p - m, int(rng.integers(0, 3)) if total >= 8 else 0)
    return w, p, total - w - p - m - c, m, c
