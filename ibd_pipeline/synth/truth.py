"""Ground truth of a synthetic delivery: canonical round-A tables, the design, the injected
invalid rows and discrepancies (outside the inbox, for tests).

Layout of ``truth_dir``::

    truth.json                 seed, sizes, per center the mrns and per patient the design
                               (diagnosis, eligibility category, first exclusion reason,
                               designed endpoints ...), invalid_rows, discrepancies
    invalid_rows.csv           the same lists as CSV (handy for large runs)
    discrepancies.csv
    <center>/<table>.csv       canonical round-A tables of the valid rows: canonical headers
                               (phi: drop fields removed, mrn kept), ISO dates, canonical
                               codes and units, booleans true/false; labs add ``qualifier``,
                               ``value_reported``, ``unit_reported``
    <center>/phi.csv           mrn, patient_name, phone (only to prove they are dropped)

Canonical text (also used for ``value_a``/``value_b`` of discrepancies and for
``resolved_value`` of adjudications): dates ISO ``YYYY-MM-DD``; booleans ``true``/``false``;
integers without decimals; floats as ``format(x, '.15g')``; codes canonical; empty = missing.
``record_key``: the table's key fields other than ``mrn`` joined by ``|`` (``patient`` for
the patients table). A record in one round only: field ``*``, ``present``/``absent``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import load_crf
from ._util import DAY_MIN, MISSING_DAY, date_of
from .writers import fast_csv

_ISO_LUT: np.ndarray | None = None


def iso_lut() -> np.ndarray:
    global _ISO_LUT
    if _ISO_LUT is None:
        days = np.arange(DAY_MIN, DAY_MIN + 45000)
        _ISO_LUT = np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object)
    return _ISO_LUT


def iso_days(days: np.ndarray) -> np.ndarray:
    """ISO text of day numbers (empty string for MISSING_DAY)."""
    d = np.asarray(days, dtype=np.int64)
    miss = d == MISSING_DAY
    out = iso_lut()[np.where(miss, DAY_MIN, d) - DAY_MIN].copy()
    out[miss] = ""
    return out


def canonical_text(value, ftype: str) -> str:
    """One canonical value as text (see module docstring)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if ftype == "date":
        v = int(value)
        return "" if v == MISSING_DAY else date_of(v).isoformat()
    if ftype == "bool":
        return "true" if bool(value) else "false"
    if ftype == "int":
        return str(int(value))
    if ftype == "float":
        return format(float(value), ".15g")
    return str(value)


def key_fields(table: str) -> list[str]:
    return [k for k in load_crf().table(table).key if k != "mrn"]


def record_keys(table: str, df: pd.DataFrame) -> np.ndarray:
    """``record_key`` of every row of a canonical frame (dates as day numbers)."""
    if table == "patients":
        return np.full(len(df), "patient", dtype=object)
    spec = load_crf().table(table)
    parts = []
    for k in key_fields(table):
        if spec.fields[k].type == "date":
            parts.append(iso_days(df[k].to_numpy()).astype(str))
        else:
            parts.append(df[k].astype(str).to_numpy().astype(str))
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, "|"), p)
    return out.astype(object)


def canonical_frame(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """A canonical frame (internal representation) as text/number columns for CSV."""
    spec = load_crf().table(table)
    out = {}
    for f, fs in spec.fields.items():
        if fs.phi == "drop" or f not in df.columns:
            continue
        v = df[f]
        if fs.type == "date":
            out[f] = iso_days(v.to_numpy())
        elif fs.type == "bool":
            arr = v.to_numpy(dtype=object)
            out[f] = np.where(pd.isna(arr), "", np.where(arr == True, "true", "false"))  # noqa: E712
        elif fs.type == "int":
            out[f] = pd.array(v, dtype="Float64").astype("Int64")
        elif fs.type == "float":
            out[f] = v.astype(float)
        else:
            out[f] = v.to_numpy(dtype=object)
    res = pd.DataFrame(out)
    if table == "labs":
        res["qualifier"] = df["qualifier"].to_numpy(dtype=object)
        res["value_reported"] = df["value_reported"].to_numpy(dtype=object)
        res["unit_reported"] = df["unit_reported"].to_numpy(dtype=object)
    return res


def write_truth_tables(truth_dir: Path, center: str, tables: dict[str, pd.DataFrame], phi: pd.DataFrame) -> None:
    d = truth_dir / center
    d.mkdir(parents=True, exist_ok=True)
    for t, df in tables.items():
        frame = canonical_frame(t, df)
        for c in frame.columns:
            col = frame[c]
            if col.dtype == float:
                txt = np.char.mod("%.15g", np.nan_to_num(col.to_numpy())).astype(object)
                txt[col.isna().to_numpy()] = ""
                frame[c] = txt
            elif str(col.dtype) == "Int64":
                frame[c] = col.astype(str).replace("<NA>", "").to_numpy(dtype=object)
        fast_csv(d / f"{t}.csv", frame, "utf-8")
    fast_csv(d / "phi.csv", phi, "utf-8")


def write_truth_json(truth_dir: Path, meta: dict, invalid: pd.DataFrame, disc: pd.DataFrame) -> None:
    truth_dir.mkdir(parents=True, exist_ok=True)
    invalid.to_csv(truth_dir / "invalid_rows.csv", index=False, encoding="utf-8")
    disc.to_csv(truth_dir / "discrepancies.csv", index=False, encoding="utf-8")
    doc = dict(meta)
    doc["invalid_rows"] = json.loads(invalid.to_json(orient="records", force_ascii=False))
    doc["discrepancies"] = json.loads(disc.to_json(orient="records", force_ascii=False))
    (truth_dir / "truth.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def read_truth_table(truth_dir: Path, center: str, table: str) -> pd.DataFrame:
    """One canonical truth table, typed as in docs/ARCHITECTURE.md "Canonical frames"
    (dates datetime64, int Int64, float float64, bool boolean, codes/strings object)."""
    spec = load_crf().table(table)
    p = Path(truth_dir) / center / f"{table}.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    for f in df.columns:
        fs = spec.fields.get(f)
        col = df[f]
        if fs is None:
            df[f] = col.replace("", None).astype(object)
        elif fs.type == "date":
            df[f] = pd.to_datetime(col.replace("", None), format="%Y-%m-%d")
        elif fs.type == "int":
            df[f] = pd.to_numeric(col.replace("", None)).astype("Int64")
        elif fs.type == "float":
            df[f] = pd.to_numeric(col.replace("", None)).astype(float)
        elif fs.type == "bool":
            df[f] = col.map({"true": True, "false": False, "": None}).astype("boolean")
        else:
            df[f] = col.replace("", None).astype(object)
    df.insert(0, "center", center)
    return df


def load_truth(truth_dir: Path | str, tables: bool = True) -> dict:
    """The ground truth: ``truth.json`` as a dict plus, with ``tables``, key ``tables`` =
    ``{center: {table: DataFrame}}`` (canonical round A, typed) and ``phi`` =
    ``{center: DataFrame(mrn, patient_name, phone)}``."""
    truth_dir = Path(truth_dir)
    doc = json.loads((truth_dir / "truth.json").read_text(encoding="utf-8"))
    if tables:
        crf = load_crf()
        doc["tables"] = {
            c: {t: read_truth_table(truth_dir, c, t) for t in crf.data_tables if (truth_dir / c / f"{t}.csv").exists()}
            for c in doc["centers"]
        }
        doc["phi"] = {
            c: pd.read_csv(truth_dir / c / "phi.csv", dtype=str, keep_default_na=False) for c in doc["centers"]
        }
    return doc
