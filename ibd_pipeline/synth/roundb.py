"""Round B: an independent second abstraction of the same charts, and its discrepancies.

Round B equals round A except for a controlled share of the *compared field values*
(every CRF field except the key fields, ``mrn``, ``abstractor_id`` and ``phi: drop``
fields; STUDY.md Workflow step 3). A discrepancy is realistic and always a *valid* value,
so it shows up as a disagreement, never as a quarantined row:

* a date off by 1-10 days (start/stop/follow-up order kept, never after the delivery
  date of the file: CRF ``plausibility.dates_not_after_delivery``),
* a neighbouring code (L2 -> L3, primary non-response <-> loss of response, i1 -> i2 ...),
* a score off by one (SES-CD by two), a lab value typo (on the value as written, so the
  unit conversion still applies), a height/weight slip,
* a boolean flipped, a non-required value left empty or an empty one filled in,
* a whole record present in one round only (a lab row or an episode missed or added):
  field ``*``, value ``present`` on the side that has it and ``absent`` on the other.

The share is ``discrepancies / compared values of round A`` (a one-sided record counts
as one discrepancy). Round A is never changed: the truth is round A.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import load_crf
from ._util import MISSING_DAY
from .truth import canonical_text, record_keys
from .units import value_texts

MISSINGABLE = {
    "patients": [
        "smoking",
        "height_cm",
        "weight_kg",
        "eim_eye",
        "eim_skin",
        "eim_joint",
        "eim_other",
        "cd_upper_gi",
        "psychosocial_comorbidity",
    ],
    "assessments": [
        "hbi_wellbeing",
        "hbi_pain",
        "hbi_liquid_stools",
        "hbi_mass",
        "hbi_complications",
        "mayo_stool",
        "mayo_bleeding",
        "mayo_pga",
        "mayo_endo",
        "ses_cd",
        "rutgeerts",
        "upa_dose_mg",
    ],
}
FILLABLE = {"patients": ["smoking", "height_cm", "weight_kg"]}
NOT_MUTATED = {("patients", "diagnosis"), ("labs", "unit")}
INT_STEP = {"ses_cd": 2, "hbi_liquid_stools": 2}
RECORD_MISSING_TABLES = {"labs": 0.5, "medications": 0.2, "assessments": 0.2, "adverse_events": 0.1}
RECORD_EXTRA_TABLES = {"labs": 0.7, "medications": 0.3}


def compared_fields(table: str, present=None) -> list[str]:
    """The compared CRF fields of ``table``; with ``present`` (a frame's columns) only those
    the generated frame holds (the CRF fields of the single-center study are not generated)."""
    spec = load_crf().table(table)
    return [
        f for f, s in spec.fields.items()
        if f not in spec.key and f not in ("mrn", "abstractor_id") and s.phi != "drop" and (present is None or f in present)
    ]


def compared_values(tables: dict[str, pd.DataFrame]) -> int:
    return int(sum(len(df) * len(compared_fields(t, df.columns)) for t, df in tables.items()))


def _is_missing(arr: np.ndarray, ftype: str) -> np.ndarray:
    if ftype == "date":
        return np.asarray(arr, dtype=np.int64) == MISSING_DAY
    if ftype in ("int", "float"):
        return pd.isna(np.asarray(arr, dtype=float))
    return pd.isna(pd.Series(arr, dtype=object)).to_numpy()


def _texts(values, ftype):
    return [canonical_text(v, ftype) for v in values]


def make_round_b(
    center: str, tables: dict[str, pd.DataFrame], share: float, rng: np.random.Generator, mrn_of: np.ndarray, units_of,
    last_day: int | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, int]:
    """Round B tables of one center and the discrepancy list.

    ``tables``: round-A canonical frames (with ``pidx``; labs converted, see units.py).
    ``mrn_of[pidx]`` gives the mrn; ``units_of(test) -> (factor, decimals, F, k)`` of a
    delivered unit is not needed: lab typos keep the row's own unit and factor.
    ``last_day``: the delivery date (day number) of the files; no date of round B is
    moved past it (a date that would be is moved back by as much instead).
    Returns (B tables, discrepancies DataFrame, compared values of A).
    """
    crf = load_crf()
    total = compared_values(tables)
    D = int(round(share * total))
    n_rec = int(round(0.06 * D)) if D >= 10 else 0
    n_field = D - n_rec
    B = {t: df.copy() for t, df in tables.items()}
    disc = []
    # ----------------------------------------------------------- field level
    sizes = {t: len(df) * len(compared_fields(t, df.columns)) for t, df in tables.items()}
    alloc = _allocate(n_field, sizes)
    for t, k in alloc.items():
        if k <= 0:
            continue
        df = tables[t]
        spec = crf.table(t)
        fields = [f for f in compared_fields(t, df.columns) if (t, f) not in NOT_MUTATED]
        elig = {}
        for f in fields:
            ft = spec.fields[f].type
            miss = _is_missing(df[f].to_numpy(), ft)
            ok = ~miss
            if t == "labs" and f == "value":
                ok &= ~df["qualifier"].isin(["<", ">"]).to_numpy()
            if f in FILLABLE.get(t, []):
                ok |= miss
            if t == "patients" and f == "upa_stop_reason":
                ok &= ~miss
            if t == "medications" and f == "stop_reason":
                ok &= ~miss
            elig[f] = np.flatnonzero(ok)
        counts = np.array([len(elig[f]) for f in fields])
        if counts.sum() == 0:
            continue
        flat = rng.choice(counts.sum(), size=min(k, int(counts.sum())), replace=False)
        offs = np.concatenate([[0], np.cumsum(counts)])
        fidx = np.searchsorted(offs, flat, side="right") - 1
        pidx = df["pidx"].to_numpy()
        for j, f in enumerate(fields):
            rows = elig[f][flat[fidx == j] - offs[j]]
            if len(rows) == 0:
                continue
            a_vals, b_vals = _mutate(t, f, spec.fields[f], df, B[t], rows, rng, last_day)
            ft = spec.fields[f].type
            keys = record_keys(t, df.iloc[rows])
            for r, key, va, vb in zip(rows, keys, _texts(a_vals, ft), _texts(b_vals, ft)):
                disc.append((center, mrn_of[pidx[r]], t, key, f, va, vb))
    # ---------------------------------------------------------- record level
    n_missing = int(round(n_rec * 0.6))
    n_extra = n_rec - n_missing
    if n_missing:
        alloc = _allocate(n_missing, {t: w * (len(tables[t]) > 0) for t, w in RECORD_MISSING_TABLES.items()})
        for t, k in alloc.items():
            if k <= 0:
                continue
            df = B[t]
            # a record B leaves out is one discrepancy ("*"), never also a field discrepancy:
            # draw only among records whose fields round B kept as A wrote them
            changed = {(d[1], d[3]) for d in disc if d[2] == t}
            cand = np.flatnonzero([
                (mrn_of[p], k) not in changed for p, k in zip(df["pidx"].to_numpy(), record_keys(t, df))
            ])
            rows = cand[rng.choice(len(cand), size=min(k, len(cand)), replace=False)]
            keys = record_keys(t, df.iloc[rows])
            pidx = df["pidx"].to_numpy()
            for r, key in zip(rows, keys):
                disc.append((center, mrn_of[pidx[r]], t, key, "*", "present", "absent"))
            B[t] = df.drop(df.index[rows]).reset_index(drop=True)
    if n_extra:
        alloc = _allocate(n_extra, {t: w * (len(tables[t]) > 0) for t, w in RECORD_EXTRA_TABLES.items()})
        for t, k in alloc.items():
            if k <= 0:
                continue
            extra = _extra_records(t, tables, B[t], k, rng, last_day)
            if len(extra):
                for key, pidx in zip(record_keys(t, extra), extra["pidx"].to_numpy()):
                    disc.append((center, mrn_of[pidx], t, key, "*", "absent", "present"))
                B[t] = (
                    pd.concat([B[t], extra], ignore_index=True)
                    .sort_values(["pidx"], kind="stable")
                    .reset_index(drop=True)
                )
    cols = ["center", "mrn", "table", "record_key", "field", "value_a", "value_b"]
    return B, pd.DataFrame(disc, columns=cols), total


def _allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    keys = [k for k, w in weights.items() if w > 0]
    if not keys or total <= 0:
        return {}
    w = np.array([weights[k] for k in keys], dtype=float)
    raw = total * w / w.sum()
    base = np.floor(raw).astype(int)
    order = np.argsort(-(raw - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return dict(zip(keys, base.tolist()))


def _not_after(v: np.ndarray, new: np.ndarray, last_day: int | None) -> np.ndarray:
    """``new`` dates (``v`` shifted), those after ``last_day`` shifted back from ``v`` by
    as much instead."""
    if last_day is None:
        return new
    return np.where(new > last_day, v - np.abs(new - v), new)


def _mutate(t, f, fs, A: pd.DataFrame, Bdf: pd.DataFrame, rows: np.ndarray, rng, last_day: int | None = None) -> tuple[list, list]:
    """Change field ``f`` of ``rows`` in the round-B frame; return A and B values."""
    ft = fs.type
    col = A[f].to_numpy()
    a_vals = list(col[rows])
    m = len(rows)
    new = np.array(col[rows], dtype=object)
    miss_a = _is_missing(col[rows], ft)
    to_missing = (~miss_a) & (rng.random(m) < 0.15) & np.isin(f, MISSINGABLE.get(t, []))
    if ft == "date":
        v = np.asarray(col[rows], dtype=np.int64)
        s = rng.integers(1, 11, m) * np.where(rng.random(m) < 0.5, -1, 1)
        if t == "patients" and f == "upa_start_date":
            s = -np.abs(s)
        if t == "medications" and f == "stop_date":
            st = A["start_date"].to_numpy()[rows]
            s = np.where(v + s < st, np.abs(s), s)
        new = _not_after(v, v + s, last_day)
        if t == "patients" and f == "last_followup_date" and last_day is not None:
            # a follow-up moved back from the delivery date stays on or after the
            # upadacitinib stop (CRF plausibility.exposure_within_followup): then 1 day back
            stop = np.asarray(A["upa_stop_date"].to_numpy()[rows], dtype=np.int64)
            moved = (v + s > last_day) & (stop != MISSING_DAY) & (new < stop)
            new = np.where(moved & (v - 1 >= stop), v - 1, new)
        vals = new
    elif ft == "bool":
        vals = np.array([not bool(x) for x in col[rows]], dtype=object)
    elif ft == "code":
        codes = list(fs.codes)
        out = []
        for x in col[rows]:
            if x is None:
                out.append(codes[int(rng.integers(0, len(codes)))])
                continue
            if f == "sex":
                out.append("F" if x == "M" else "M")
                continue
            i = codes.index(x)
            j = i + (1 if (i == 0 or (i < len(codes) - 1 and rng.random() < 0.5)) else -1)
            out.append(codes[j])
        vals = np.array(out, dtype=object)
    elif ft == "int":
        v = np.asarray(col[rows], dtype=float)
        if fs.codes:  # upa_dose_mg
            opts = [float(c) for c in fs.codes]
            vals = np.array([opts[(opts.index(x) + 1) % len(opts)] for x in v])
        else:
            lo, hi = fs.range
            step = rng.integers(1, INT_STEP.get(f, 1) + 1, m) * np.where(rng.random(m) < 0.5, -1, 1)
            nv = v + step
            nv = np.where((nv < lo) | (nv > hi), v - step, nv)
            vals = nv
    elif ft == "float":
        v = np.asarray(col[rows], dtype=float)
        if t == "labs":
            wn = A["wn"].to_numpy()[rows]
            delta = np.maximum(1, np.rint(wn * rng.uniform(0.05, 0.2, m))).astype(np.int64)
            nwn = wn + delta * np.where((rng.random(m) < 0.5) & (wn - delta >= 1), -1, 1)
            wd = A["wd"].to_numpy()[rows]
            F = A["_F"].to_numpy()[rows]
            k = A["_k"].to_numpy()[rows]
            vals = (nwn * F) / np.power(10.0, wd + k)
            bi = Bdf.index[rows]
            Bdf.loc[bi, "wn"] = nwn
            Bdf.loc[bi, "value_written"] = nwn / np.power(10.0, wd)
            Bdf.loc[bi, "value_reported"] = value_texts(nwn, wd, A["qualifier"].to_numpy()[rows])
        else:
            spread = 3.0 if f == "height_cm" else 2.5
            d = np.round(rng.uniform(0.5, spread, m), 1) * np.where(rng.random(m) < 0.5, -1, 1)
            base = np.where(np.isnan(v), 170.0 if f == "height_cm" else 60.0, v)
            vals = np.round(base + d, 1)
    else:
        vals = new
    vals = np.array(vals, dtype=object)
    if to_missing.any():
        vals[to_missing] = MISSING_DAY if ft == "date" else None
    # write into B
    bi = Bdf.index[rows]
    if ft == "date":
        Bdf.loc[bi, f] = np.array(vals, dtype=np.int64)
    elif ft in ("int", "float"):
        Bdf.loc[bi, f] = np.array([np.nan if x is None else float(x) for x in vals])
    else:
        Bdf.loc[bi, f] = vals
    b_vals = [None if (x is None or (ft == "date" and int(x) == MISSING_DAY)) else x for x in vals]
    return a_vals, b_vals


def _extra_records(t: str, A: dict[str, pd.DataFrame], Bdf: pd.DataFrame, k: int, rng, last_day: int | None = None) -> pd.DataFrame:
    """Records the second abstractor added (present in B only), valid and with new keys."""
    if t == "labs":
        src = A["labs"]
        cand = src[~src["qualifier"].isin(["<", ">"])]
        if not len(cand):
            return src.iloc[:0]
        pick = cand.iloc[rng.choice(len(cand), size=min(k, len(cand)), replace=False)].copy()
        shift = rng.integers(1, 4, len(pick))
        day = pick["sample_date"].to_numpy()
        pick["sample_date"] = _not_after(day, day + shift, last_day)
        near = src[src["pidx"].isin(pick["pidx"].unique())]
        existing = set(zip(near["pidx"], near["sample_date"], near["test"]))
        ok = [(p, d, te) not in existing for p, d, te in zip(pick["pidx"], pick["sample_date"], pick["test"])]
        pick = pick[ok].drop_duplicates(["pidx", "sample_date", "test"])
        wn = pick["wn"].to_numpy()
        nwn = np.maximum(1, wn + rng.integers(-2, 3, len(pick)))
        pick["wn"] = nwn
        pick["value_written"] = nwn / np.power(10.0, pick["wd"].to_numpy())
        pick["value"] = (nwn * pick["_F"].to_numpy()) / np.power(10.0, pick["wd"].to_numpy() + pick["_k"].to_numpy())
        pick["value_reported"] = value_texts(nwn, pick["wd"].to_numpy(), pick["qualifier"].to_numpy())
        return pick.reset_index(drop=True)
    if t == "medications":
        pats = A["patients"]
        if not len(pats):
            return A["medications"].iloc[:0]
        pp = pats.iloc[rng.choice(len(pats), size=k, replace=True)]
        start = pp["upa_start_date"].to_numpy() - rng.integers(400, 2000, k)
        start = np.maximum(start, pp["birth_date"].to_numpy() + 6000)
        drug = np.array(["budesonide", "mesalazine", "prednisone"], dtype=object)[rng.integers(0, 3, k)]
        out = pd.DataFrame(
            {
                "pidx": pp["pidx"].to_numpy(),
                "drug": drug,
                "start_date": start,
                "stop_date": start + rng.integers(30, 120, k),
                "stop_reason": "elective",
            }
        )
        am = A["medications"]
        am = am[am["pidx"].isin(out["pidx"].unique())]
        existing = set(zip(am["pidx"], am["drug"], am["start_date"]))
        ok = [(p, d, s) not in existing for p, d, s in zip(out["pidx"], out["drug"], out["start_date"])]
        out = out[ok].drop_duplicates(["pidx", "drug", "start_date"])
        for c in A["medications"].columns:
            if c not in out.columns:
                out[c] = None
        return out[A["medications"].columns].reset_index(drop=True)
    return Bdf.iloc[:0]
