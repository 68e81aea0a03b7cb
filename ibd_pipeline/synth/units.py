"""Lab units as each center delivers them, and the exact canonical value of what is written.

A center profile's ``units`` say ``{test: {delivered unit: factor}}`` (delivered value x
factor = canonical value). The generator writes the converted value rounded to sensible
decimals; the *canonical truth* is then ``Decimal(str(written)) * Decimal(str(factor))``,
i.e. exactly what the pipeline's exact conversion gives. It is computed here with integer
arithmetic (``n * F / 10**(d + k)``, both operands exact in float64, so the division is
correctly rounded and equals ``float(Decimal(...) * Decimal(...))``).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd

from .cohort import DECIMALS

# alternative spellings of canonical units (centers/units.yaml aliases), used now and then
# by centers that do not write canonical text
ALIASES = {"ug/g": ["µg/g", "μg/g"], "10^9/L": ["×10^9/L"], "mL/min/1.73m2": ["mL/min/1.73m²"]}


def factor_parts(factor) -> tuple[int, int]:
    """``factor`` as an exact integer F and decimal exponent k (factor = F / 10**k)."""
    d = Decimal(str(factor)).normalize()
    sign, digits, exp = d.as_tuple()
    F = int("".join(map(str, digits)))
    if exp >= 0:
        return F * 10**exp, 0
    return F, -exp


def written_decimals(test: str, factor) -> int:
    """Decimals a lab prints for ``test`` in a unit with ``factor`` (CRP mg/dL: 2)."""
    f = float(factor)
    return max(0, DECIMALS[test] + (int(round(math.log10(f))) if f > 0 else 0))


def fixed_text(n: np.ndarray, d: int) -> np.ndarray:
    """Decimal text of the integers ``n`` scaled by 10**-d, with exactly d decimals
    (each distinct value formatted once)."""
    n = np.asarray(n, dtype=np.int64)
    uniq, inv = np.unique(n, return_inverse=True)
    if d == 0:
        txt = [str(int(u)) for u in uniq]
    else:
        p = 10**d
        txt = [f"{int(u) // p}.{int(u) % p:0{d}d}" for u in uniq]
    return np.array(txt, dtype=object)[inv]


def convert_labs(labs: pd.DataFrame, profile, canonical_units: dict, rng: np.random.Generator) -> pd.DataFrame:
    """Add the delivered form and the canonical truth to design lab values.

    In: ``test``, ``dvalue`` (design value, canonical unit), ``qualifier``.
    Out (added): ``unit`` (canonical), ``unit_reported``, ``wn``/``wd`` (written value as
    integer and decimals), ``value_written`` (float), ``value_reported`` (text as
    delivered, qualifier included), ``value`` (canonical truth, float), ``factor``.
    """
    m = len(labs)
    test = labs["test"].to_numpy()
    unit = np.array([canonical_units[t] for t in test], dtype=object) if m else np.array([], dtype=object)
    out = labs.copy()
    out["unit"] = unit
    unit_rep = unit.copy()
    wn = np.zeros(m, dtype=np.int64)
    wd = np.zeros(m, dtype=np.int64)
    value = np.zeros(m, dtype=float)
    fac = np.ones(m, dtype=float)
    Fs = np.ones(m, dtype=np.int64)
    ks = np.zeros(m, dtype=np.int64)
    dv = labs["dvalue"].to_numpy(dtype=float)
    conv = profile.units or {}
    uses_aliases = bool(profile.raw.get("vocabulary"))
    r = rng.random(m)
    r2 = rng.random(m)
    tcodes, tuniq = pd.factorize(test)
    for ti, t in enumerate(tuniq):
        sel = tcodes == ti
        options = conv.get(t) or {}
        groups = [(canonical_units[t], 1, sel)]
        if options:
            du, f = next(iter(options.items()))
            keep_canon = r < (0.05 if float(f) != 1.0 else 0.10)
            groups = [(canonical_units[t], 1, sel & keep_canon), (du, f, sel & ~keep_canon)]
        for u, f, g in groups:
            if not g.any():
                continue
            d = written_decimals(t, f)
            F, k = factor_parts(f)
            n = np.rint(dv[g] / float(f) * 10**d).astype(np.int64)
            n = np.maximum(n, 1)
            wn[g], wd[g] = n, d
            value[g] = (n * F) / float(10 ** (d + k))
            fac[g] = float(f)
            Fs[g], ks[g] = F, k
            if u == canonical_units[t] and uses_aliases and u in ALIASES:
                al = ALIASES[u]
                pick = g & (r2 < 0.03)
                if pick.any():
                    unit_rep[pick] = np.array(al, dtype=object)[rng.integers(0, len(al), pick.sum())]
                rest = g & ~pick
                unit_rep[rest] = u
            else:
                unit_rep[g] = u
    out["unit_reported"] = unit_rep
    out["wn"], out["wd"] = wn, wd
    out["value_written"] = wn / np.power(10.0, wd)
    out["value"] = value
    out["factor"] = fac
    out["_F"], out["_k"] = Fs, ks
    out["value_reported"] = value_texts(wn, wd, labs["qualifier"].to_numpy())
    return out


def value_texts(wn: np.ndarray, wd: np.ndarray, qualifier: np.ndarray) -> np.ndarray:
    """Delivered value text: qualifier + fixed-decimal number."""
    txt = np.empty(len(wn), dtype=object)
    for d in np.unique(wd):
        g = wd == d
        txt[g] = fixed_text(wn[g], int(d))
    q = np.asarray(qualifier, dtype=object)
    has_q = (q == "<") | (q == ">")
    if has_q.any():
        txt[has_q] = np.char.add(q[has_q].astype(str), txt[has_q].astype(str))
    return txt
