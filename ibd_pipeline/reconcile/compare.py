"""Round A versus round B, field by field, for the sampled patients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ibd_pipeline.config import Crf
from ibd_pipeline.reconcile.values import (
    FLOAT_RTOL,
    WHOLE_RECORD,
    column_text,
    compared_fields,
    record_keys,
)

ID = ["center", "patient_id"]
RECORD = ["center", "patient_id", "table_name", "record_key"]
CELL_COLUMNS = [
    "center", "patient_id", "table_name", "record_key", "field", "field_type",
    "value_a", "value_b", "agree", "in_a", "in_b",
]


@dataclass(frozen=True)
class Comparison:
    """``cells``: one row per compared field of every record of the compared patients
    (columns ``CELL_COLUMNS``; ``value_a``/``value_b`` are canonical text or None;
    ``in_a``/``in_b`` say whether the record exists in that round - a record in one
    round only disagrees on every field). ``missing_in_b``: sampled patients without a
    round-B patients row (``center, patient_id, diagnosis``) - not compared, not yet
    reconciled."""

    cells: pd.DataFrame
    missing_in_b: pd.DataFrame


def _frame(frames: Mapping[str, pd.DataFrame] | None, table: str) -> pd.DataFrame:
    df = (frames or {}).get(table)
    if df is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ID})
    return df


def _restrict(df: pd.DataFrame, ids: pd.MultiIndex) -> pd.DataFrame:
    if df.empty:
        return df
    return df[pd.MultiIndex.from_frame(df[ID]).isin(ids)]


def _keyed(df: pd.DataFrame, table: str, crf: Crf, fields: dict[str, str], which: str) -> pd.DataFrame:
    """Canonical text (and numbers for floats) of the compared fields, by record key."""
    out = pd.DataFrame({"center": df["center"].astype(object), "patient_id": df["patient_id"].astype(object)})
    out["record_key"] = record_keys(df, table, crf) if len(df) else pd.Series(dtype=object)
    dup = out.duplicated(["center", "patient_id", "record_key"], keep=False)
    if dup.any():
        ex = out[dup].iloc[0]
        raise ValueError(
            f"round {which} {table}: {int(dup.sum())} rows share a record key "
            f"(e.g. {ex['patient_id']} {ex['record_key']!r}); keys must be unique after validation"
        )
    for f, t in fields.items():
        col = df[f] if f in df.columns else pd.Series(None, index=df.index, dtype=object)
        out[f] = column_text(col, t)
        if t == "float":
            out["#" + f] = pd.to_numeric(col, errors="coerce").astype(float)
    out["_in"] = True
    return out


def compare_rounds(
    a: Mapping[str, pd.DataFrame],
    b: Mapping[str, pd.DataFrame],
    sample: pd.DataFrame,
    crf: Crf,
) -> Comparison:
    """Compare round A with round B on every compared field (``values.compared_fields``)
    of every record of the sampled patients; records are matched on the CRF key
    (``record_key``). Text is compared trimmed, dates as dates, ints and bools exactly,
    floats exactly up to floating-point rounding (relative 1e-9); missing == missing."""
    sampled = sample[ID + (["diagnosis"] if "diagnosis" in sample.columns else [])].drop_duplicates(ID)
    b_pat = _frame(b, "patients")
    has_b = pd.MultiIndex.from_frame(sampled[ID]).isin(pd.MultiIndex.from_frame(b_pat[ID]))
    missing_in_b = sampled[~has_b].reset_index(drop=True)
    compared_ids = pd.MultiIndex.from_frame(sampled.loc[has_b, ID])

    parts = []
    for table in crf.data_tables:
        fa = _restrict(_frame(a, table), compared_ids)
        fb = _restrict(_frame(b, table), compared_ids)
        if fa.empty and fb.empty:
            continue
        fields = compared_fields(crf, table)
        ka = _keyed(fa, table, crf, fields, "A")
        kb = _keyed(fb, table, crf, fields, "B")
        m = ka.merge(kb, on=["center", "patient_id", "record_key"], how="outer", suffixes=("_a", "_b"), sort=True)
        in_a = m["_in_a"].notna().to_numpy(dtype=bool)
        in_b = m["_in_b"].notna().to_numpy(dtype=bool)
        both = in_a & in_b
        base = m[["center", "patient_id", "record_key"]]
        if not fields:  # a table with nothing but key fields: compare existence only
            fields_iter = [(WHOLE_RECORD, "record")]
        else:
            fields_iter = list(fields.items())
        for order, (f, t) in enumerate(fields_iter):
            if f == WHOLE_RECORD:
                va = vb = pd.Series(None, index=m.index, dtype=object)
                same = np.ones(len(m), dtype=bool)
            else:
                va, vb = m[f + "_a"], m[f + "_b"]
                both_missing = (va.isna() & vb.isna()).to_numpy(dtype=bool)
                if t == "float":
                    na, nb = m["#" + f + "_a"].to_numpy(float), m["#" + f + "_b"].to_numpy(float)
                    with np.errstate(invalid="ignore"):
                        close = np.isclose(na, nb, rtol=FLOAT_RTOL, atol=0.0)
                    same = close | both_missing
                else:
                    same = (va == vb).fillna(False).to_numpy(dtype=bool) | both_missing
            part = base.copy()
            part.insert(2, "table_name", table)
            part["field"] = f
            part["field_type"] = t
            part["value_a"] = va.astype(object).where(va.notna(), None).to_numpy()
            part["value_b"] = vb.astype(object).where(vb.notna(), None).to_numpy()
            part["agree"] = same & both
            part["in_a"] = in_a
            part["in_b"] = in_b
            part["_order"] = order
            part["_row"] = np.arange(len(m))
            parts.append(part)

    if not parts:
        cells = pd.DataFrame({c: pd.Series(dtype=bool if c in ("agree", "in_a", "in_b") else object) for c in CELL_COLUMNS})
        return Comparison(cells=cells, missing_in_b=missing_in_b)
    cells = pd.concat(parts, ignore_index=True)
    table_rank = {t: i for i, t in enumerate(crf.data_tables)}
    cells["_table"] = cells["table_name"].map(table_rank)
    cells = cells.sort_values(["center", "patient_id", "_table", "_row", "_order"], kind="stable")
    cells = cells[CELL_COLUMNS].reset_index(drop=True)
    for c in ("agree", "in_a", "in_b"):
        cells[c] = cells[c].astype(bool)
    return Comparison(cells=cells, missing_in_b=missing_in_b)
