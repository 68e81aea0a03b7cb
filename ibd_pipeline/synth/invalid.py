"""Deliberately invalid rows of round A (the pipeline must quarantine them).

They are *extra* rows (real records are never replaced, so the calibration is untouched),
on keys that collide with no real record, formatted exactly like the center's other rows:

=================  ================  =====================================================
rule               table / field     the row
=================  ================  =====================================================
``code``           medications.drug  a drug that is not in the CRF (a biosimilar name)
``range``          assessments       ``hbi_pain`` 9 (CD) or ``mayo_stool`` 5 (UC)
``stop_after_start`` medications     stop date before the start date
``unique_key``     labs, patients    an exact copy of an earlier row, placed later
``required``       labs.value        no value (a missing token)
``patient_known``  labs.mrn          a record number that is not in the patients table
=================  ================  =====================================================

Each is recorded with file name, sheet (xlsx), the row number the coordinator sees
(header = row 1, first data row = 2, per sheet for xlsx), field and rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .writers import sheet_names, sheet_row

UNKNOWN_DRUG = {"canonical": "infliximab_biosimilar", "zh": "英夫利西单抗生物类似药"}


def _extra_frame(table: str, rows: list[dict], columns) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in columns:
        if c not in df.columns:
            df[c] = None
    return df


def build_invalid(
    center: str,
    A: dict[str, pd.DataFrame],
    fmt,
    abstractor: str,
    mrn_of: np.ndarray,
    rng: np.random.Generator,
    per_kind: int,
) -> list[tuple[str, pd.DataFrame, list[dict]]]:
    """Invalid rows per table: [(table, cells to insert, records)] where a record has
    ``rule``, ``field``, ``mrn`` and ``dup_of`` (row index copied, or None)."""
    out = []
    pats = A["patients"]
    if not len(pats):
        return out
    pidx_all = pats["pidx"].to_numpy()
    start_of = dict(zip(pats["pidx"], pats["upa_start_date"]))
    birth_of = dict(zip(pats["pidx"], pats["birth_date"]))
    diag_of = dict(zip(pats["pidx"], pats["diagnosis"]))
    meds, vis, labs = A["medications"], A["assessments"], A["labs"]

    def med_exists(p, drug, d):
        return bool(((meds["pidx"] == p) & (meds["drug"] == drug) & (meds["start_date"] == d)).any())

    def visit_exists(p, d):
        return bool(((vis["pidx"] == p) & (vis["visit_date"] == d)).any())

    def lab_exists(p, d, test):
        return bool(((labs["pidx"] == p) & (labs["sample_date"] == d) & (labs["test"] == test)).any())

    localized = fmt.localized

    def past_day(p, lo, hi):
        return int(max(start_of[p] - rng.integers(lo, hi), birth_of[p] + 6000))

    # medications: unknown code, stop before start
    med_rows, med_recs = [], []
    for _ in range(per_kind):
        p = int(rng.choice(pidx_all))
        st = past_day(p, 500, 3000)
        med_rows.append(
            {
                "pidx": p,
                "drug": "__unknown__",
                "start_date": st,
                "stop_date": st + int(rng.integers(30, 200)),
                "stop_reason": "other",
            }
        )
        med_recs.append({"rule": "code", "field": "drug", "pidx": p})
        while True:
            p = int(rng.choice(pidx_all))
            st = past_day(p, 500, 2500)
            if not med_exists(p, "mesalazine", st):
                break
        med_rows.append(
            {
                "pidx": p,
                "drug": "mesalazine",
                "start_date": st,
                "stop_date": st - int(rng.integers(20, 100)),
                "stop_reason": "other",
            }
        )
        med_recs.append({"rule": "stop_after_start", "field": "stop_date", "pidx": p})
    cells = fmt.table(
        "medications", _extra_frame("medications", med_rows, A["medications"].columns), abstractor, mrn_of
    )
    h_drug = fmt.p.header_for("medications", "drug")
    unk = UNKNOWN_DRUG["zh" if localized else "canonical"]
    cells.loc[[r["rule"] == "code" for r in med_recs], h_drug] = unk
    out.append(("medications", cells, med_recs))
    # assessments: out of range
    ass_rows, ass_recs = [], []
    for _ in range(per_kind):
        for _try in range(50):
            p = int(rng.choice(pidx_all))
            if diag_of[p] in ("CD", "UC"):
                break
        d = past_day(p, 200, 400)
        while visit_exists(p, d):
            d -= 1
        if diag_of[p] == "CD":
            ass_rows.append(
                {
                    "pidx": p,
                    "visit_date": d,
                    "hbi_wellbeing": 1.0,
                    "hbi_pain": 9.0,
                    "hbi_liquid_stools": 3.0,
                    "hbi_mass": 0.0,
                    "hbi_complications": 0.0,
                }
            )
            ass_recs.append({"rule": "range", "field": "hbi_pain", "pidx": p})
        else:
            ass_rows.append({"pidx": p, "visit_date": d, "mayo_stool": 5.0, "mayo_bleeding": 1.0, "mayo_pga": 1.0})
            ass_recs.append({"rule": "range", "field": "mayo_stool", "pidx": p})
    df = _extra_frame("assessments", ass_rows, A["assessments"].columns)
    for c in df.columns:
        if c.startswith(("hbi_", "mayo_")) or c in ("ses_cd", "upa_dose_mg"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    out.append(("assessments", fmt.table("assessments", df, abstractor, mrn_of), ass_recs))
    # labs: missing value, unknown patient
    lab_rows, lab_recs = [], []
    known = set(mrn_of[pidx_all])
    for _ in range(per_kind):
        p = int(rng.choice(pidx_all))
        d = past_day(p, 100, 300)
        while lab_exists(p, d, "CRP"):
            d -= 1
        lab_rows.append(
            {
                "pidx": p,
                "sample_date": d,
                "test": "CRP",
                "value_written": np.nan,
                "value_reported": None,
                "unit_reported": "mg/L",
                "qualifier": "",
            }
        )
        lab_recs.append({"rule": "required", "field": "value", "pidx": p})
        base = str(mrn_of[p])
        for k in range(1000):
            cand = base[:-3] + f"{(int(base[-3:]) + 7 * (k + 1)) % 1000:03d}"
            if cand not in known:
                break
        lab_rows.append(
            {
                "pidx": -1,
                "mrn": cand,
                "sample_date": d,
                "test": "ESR",
                "value_written": 12.0,
                "value_reported": "12",
                "unit_reported": "mm/h",
                "qualifier": "",
            }
        )
        lab_recs.append({"rule": "patient_known", "field": "mrn", "pidx": -1, "mrn": cand})
    df = _extra_frame("labs", lab_rows, A["labs"].columns)
    mrns = np.array([r.get("mrn") for r in lab_rows], dtype=object)
    ext = np.concatenate([mrn_of, mrns])
    df["pidx"] = np.where(df["pidx"].to_numpy() == -1, len(mrn_of) + np.arange(len(df)), df["pidx"].to_numpy())
    lab_cells = fmt.table("labs", df, abstractor, ext)
    h_val = fmt.p.header_for("labs", "value")
    miss_tok = [t for t in fmt.missing if t != ""] or [""]
    for j, r in enumerate(lab_recs):
        if r["rule"] == "required":
            tok = miss_tok[int(rng.integers(0, len(miss_tok)))] if rng.random() < 0.5 else ""
            lab_cells.iat[j, list(lab_cells.columns).index(h_val)] = None if (fmt.xlsx and tok == "") else tok
    out.append(("labs", lab_cells, lab_recs))
    return out


def insert_rows(
    cells: pd.DataFrame, extra: pd.DataFrame | None, dup_count: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Insert ``extra`` rows at random positions and ``dup_count`` exact copies of random
    rows somewhere after their original. Returns (cells, new positions of the extra rows,
    new positions of the copies) - positions are 0-based data-row indices."""
    n = len(cells)
    keys = [np.arange(n, dtype=float)]
    frames = [cells]
    n_extra = 0 if extra is None else len(extra)
    if n_extra:
        frames.append(extra.reset_index(drop=True))
        keys.append(rng.integers(0, n + 1, n_extra) - 0.5 + rng.random(n_extra) * 0.01)
    if dup_count and n:
        src = rng.integers(0, n, dup_count)
        later = src + rng.integers(0, np.maximum(1, n - src))
        frames.append(cells.iloc[src].reset_index(drop=True))
        keys.append(np.maximum(later, src) + 0.5 + rng.random(dup_count) * 0.01)
    allk = np.concatenate(keys)
    big = pd.concat(frames, ignore_index=True)
    order = np.argsort(allk, kind="stable")
    pos = np.empty(len(order), dtype=np.int64)
    pos[order] = np.arange(len(order))
    extra_pos = pos[n : n + n_extra]
    dup_pos = pos[n + n_extra :]
    return big.iloc[order].reset_index(drop=True), extra_pos, dup_pos


def row_location(profile, table: str, n_rows: int, index: int, file_name: str) -> dict:
    """File, sheet and row number (header = 1) of the data row with 0-based ``index``."""
    if profile.format == "xlsx":
        s, r = sheet_row(index)
        return {"file_name": file_name, "sheet": sheet_names(profile, table, n_rows)[s], "row_number": int(r)}
    return {"file_name": file_name, "sheet": "", "row_number": int(index) + 2}
