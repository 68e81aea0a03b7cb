"""Small shared helpers of the synthetic generator: seeded random streams, day numbers.

Dates are handled internally as *day numbers* (``int``, days since 1970-01-01) so that
whole columns can be shifted, compared and formatted with numpy; ``MISSING_DAY`` marks an
empty date.
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta

import numpy as np

EPOCH = date(1970, 1, 1)
MISSING_DAY = np.iinfo(np.int32).min  # sentinel of an empty date in int32 day arrays

# Every generated date lies in this range (birth dates of the oldest patients to the
# latest follow-up); formatting uses lookup tables over it.
DAY_MIN = (date(1920, 1, 1) - EPOCH).days
DAY_MAX = (date(2035, 12, 31) - EPOCH).days


def rng_for(seed: int, *names: object) -> np.random.Generator:
    """An independent random stream for one purpose (``names``) of one seed.

    Streams are keyed by name, not drawn one after the other, so a change in one part of
    the generator never shifts the random numbers of another (determinism per seed).
    """
    key = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(n).encode("utf-8")) for n in names]
    return np.random.default_rng(key)


def day_of(d: str | date) -> int:
    """Day number of an ISO date string or a ``date``."""
    if isinstance(d, str):
        d = date.fromisoformat(d[:10]) if "-" in d else date(int(d[:4]), int(d[4:6]), int(d[6:8]))
    return (d - EPOCH).days


def date_of(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


def iso(day: int) -> str:
    return "" if day == MISSING_DAY else date_of(day).isoformat()


def years_before(day: np.ndarray, years: np.ndarray) -> np.ndarray:
    """The same calendar day ``years`` earlier (29 Feb -> 28 Feb), vectorised."""
    d = np.asarray(day, dtype="int64").astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(int) + 1970
    m = d.astype("datetime64[M]").astype(int) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(int) + 1
    y2 = y - np.asarray(years, dtype="int64")
    leap = (y2 % 4 == 0) & ((y2 % 100 != 0) | (y2 % 400 == 0))
    dd = np.where((m == 2) & (dd == 29) & ~leap, 28, dd)
    out = ((y2 - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (m - 1).astype("timedelta64[M]")).astype(
        "datetime64[D]"
    ) + (dd - 1).astype("timedelta64[D]")
    return out.astype("int64")


def completed_years(born: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Age in completed years on day ``on`` for birth day ``born`` (vectorised)."""
    b = np.asarray(born, dtype="int64").astype("datetime64[D]")
    o = np.asarray(on, dtype="int64").astype("datetime64[D]")
    by = b.astype("datetime64[Y]").astype(int)
    oy = o.astype("datetime64[Y]").astype(int)
    bm = b.astype("datetime64[M]").astype(int) % 12
    om = o.astype("datetime64[M]").astype(int) % 12
    bd = (b - b.astype("datetime64[M]")).astype(int)
    od = (o - o.astype("datetime64[M]")).astype(int)
    before = (om < bm) | ((om == bm) & (od < bd))
    return oy - by - before.astype(int)


def largest_remainder(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` into integer parts proportional to ``weights`` (Hamilton method)."""
    keys = list(weights)
    w = np.array([float(weights[k]) for k in keys])
    raw = total * w / w.sum()
    base = np.floor(raw).astype(int)
    rest = total - base.sum()
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return dict(zip(keys, base.tolist()))
