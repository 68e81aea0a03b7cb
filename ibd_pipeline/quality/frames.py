"""The pandas frames the quality expectations validate.

A frame name is ``<table>[+patients][@<variant>]``:

* ``core.labs`` - the core table itself;
* ``core.labs+patients`` - the table with its patient's dates and diagnosis
  (:data:`~ibd_pipeline.quality.checks.PATIENT_COLUMNS`) joined on patient_id, plus
  ``in_core_patients`` (the patient exists) and, for labs, ``canonical_unit`` (CRF
  lab_tests) and ``physiological_low`` / ``physiological_high`` of the test (checks.yaml
  ``lab_limits``);
* variants: ``dx=CD`` (rows of CD patients), ``dx!=CD`` (rows of patients with another,
  known diagnosis, with ``cd_fields_recorded``: the CD-only fields recorded on the row,
  comma-separated, empty if none), ``stopped`` (patients with a UPA stop date),
  ``advanced_stopped`` (stopped advanced-therapy episodes), ``serious_terms`` (adverse
  events serious by definition), ``recomputed`` (derived columns recomputed);
* ``baseline@included`` - one row per included patient (analytics.eligibility) with a CD
  or UC diagnosis and ``baseline_score``.

Only the columns the checks need are kept (``needed``), so a 10-million-row table is
never copied whole. A frame whose input table is absent is ``None`` (its checks are
reported as not run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibd_pipeline.config import Crf

from .checks import PATIENT_COLUMNS

ELIGIBILITY = "analytics.eligibility"


class MissingInput(Exception):
    """A table the frame needs is not in ``tables``."""


def _need(tables: dict, name: str) -> pd.DataFrame:
    df = tables.get(name)
    if df is None:
        raise MissingInput(name)
    return df


def _cols(df: pd.DataFrame, wanted) -> list[str]:
    seen, out = set(), []
    for c in wanted:
        if c in df.columns and c not in seen:
            seen.add(c)
            out.append(c)
    return out


def _patient_index(patients: pd.DataFrame) -> pd.DataFrame:
    return patients.drop_duplicates("patient_id").set_index("patient_id")


def _take(series: pd.Series, positions: np.ndarray, index) -> pd.Series:
    """``series`` values at ``positions`` (-1 -> missing)."""
    return pd.Series(series.array.take(positions, allow_fill=True), index=index, name=series.name)


def _as_float(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _as_dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce")


def recorded_fields(df: pd.DataFrame, fields: list[str], crf_types: dict[str, str]) -> pd.Series:
    """Per row, the fields of ``fields`` that are recorded (present; for yes/no fields:
    true), comma-separated; None when none is."""
    masks = {}
    for f in fields:
        if f not in df.columns:
            continue
        v = df[f]
        if crf_types.get(f) == "bool":
            try:
                m = v.astype("boolean").fillna(False).to_numpy(dtype=bool)
            except (TypeError, ValueError):
                m = v.notna().to_numpy()
        else:
            m = v.notna().to_numpy()
        masks[f] = m
    out = pd.Series(None, index=df.index, dtype=object)
    if not masks:
        return out
    any_rec = np.logical_or.reduce(list(masks.values()))
    rows = np.flatnonzero(any_rec)
    if len(rows):
        names = [np.where(m[rows], f, "") for f, m in masks.items()]
        out.iloc[rows] = [",".join(x for x in t if x) for t in zip(*names)]
    return out


def _join_patients(df: pd.DataFrame, patients: pd.DataFrame, wanted: set[str]) -> pd.DataFrame:
    p = _patient_index(patients)
    pos = p.index.get_indexer(df["patient_id"])
    df["in_core_patients"] = pos >= 0
    for c in PATIENT_COLUMNS:
        if c in wanted and c in p.columns and c not in df.columns:
            df[c] = _take(p[c], pos, df.index)
    return df


def _baseline(tables: dict, settings: dict, cfg: dict) -> pd.DataFrame:
    """Included CD/UC patients with their baseline activity score (see checks.yaml)."""
    el = _need(tables, ELIGIBILITY)
    patients = _need(tables, "core.patients")
    a = _need(tables, "core.assessments")
    included = el.loc[el["included"].astype("boolean").fillna(False).to_numpy(dtype=bool), "patient_id"]
    dxs = [d for d in (cfg.get("baseline_score_diagnoses") or ["CD", "UC"]) if d in ("CD", "UC")]
    p = patients.loc[patients["patient_id"].isin(included) & patients["diagnosis"].isin(dxs),
                     ["patient_id", "diagnosis", "upa_start_date"]].drop_duplicates("patient_id").reset_index(drop=True)
    p["upa_start_date"] = _as_dates(p["upa_start_date"])
    score_cols = _cols(a, ["hbi_total", "hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass",
                           "hbi_complications", "mayo_stool", "mayo_bleeding", "mayo_endo"])
    aa = a.loc[a["patient_id"].isin(p["patient_id"]), ["patient_id", "visit_date", *score_cols]].copy()
    for c in score_cols:
        aa[c] = _as_float(aa[c])
    if "hbi_total" not in aa.columns:
        items = ["hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications"]
        aa["hbi_total"] = aa[items].sum(axis=1, min_count=len(items)) if set(items) <= set(aa.columns) else np.nan
    start = p.set_index("patient_id")["upa_start_date"]
    aa["day"] = (_as_dates(aa["visit_date"]) - aa["patient_id"].map(start)).dt.days
    aa["dist"] = aa["day"].abs()
    tp = settings["timepoints"]
    lo, hi = tp["baseline_window"]
    elo, ehi = tp.get("baseline_endoscopy_window", tp["baseline_window"])

    def closest(mask: pd.Series, value: pd.Series, window) -> pd.Series:
        w = mask & aa["day"].between(window[0], window[1])
        sel = aa.loc[w, ["patient_id", "dist", "day"]].assign(v=value[w])
        sel = sel.sort_values(["patient_id", "dist", "day"])  # closest to day 0, a tie to the earlier
        return sel.drop_duplicates("patient_id").set_index("patient_id")["v"]

    nan = pd.Series(np.nan, index=aa.index)
    hbi = closest(aa["hbi_total"].notna(), aa["hbi_total"], (lo, hi))
    if {"mayo_stool", "mayo_bleeding", "mayo_endo"} <= set(aa.columns):
        sb_val = aa["mayo_stool"] + aa["mayo_bleeding"]
        sb = closest(sb_val.notna(), sb_val, (lo, hi))
        endo = closest(aa["mayo_endo"].notna(), aa["mayo_endo"], (elo, ehi))
    else:
        sb = endo = closest(nan.notna(), nan, (lo, hi))
    uc = p["patient_id"].map(sb) + p["patient_id"].map(endo)
    p["baseline_score"] = np.where(p["diagnosis"] == "CD", p["patient_id"].map(hbi), uc).astype("float64")
    return p


def _recomputed(table: str, df: pd.DataFrame) -> pd.DataFrame:
    if table == "core.patients":
        if {"bmi", "height_cm", "weight_kg"} <= set(df.columns):
            h, w = _as_float(df["height_cm"]), _as_float(df["weight_kg"])
            expected = (w / (h / 100.0) ** 2).where((h > 0) & (w > 0))
            bmi = _as_float(df["bmi"])
            diff = (bmi - expected).abs()
            one_missing = bmi.isna() ^ expected.isna()
            df["bmi_abs_diff"] = diff.mask(one_missing, np.inf)
        if {"birth_date", "upa_start_date", "age_at_upa_start"} <= set(df.columns):
            b, s = _as_dates(df["birth_date"]), _as_dates(df["upa_start_date"])
            before_birthday = (s.dt.month < b.dt.month) | ((s.dt.month == b.dt.month) & (s.dt.day < b.dt.day))
            df["age_at_upa_start_recomputed"] = (s.dt.year - b.dt.year - before_birthday.astype(int)).astype("float64")
            df["age_at_upa_start"] = _as_float(df["age_at_upa_start"])
        if {"upa_start_date", "last_followup_date", "exposure_days"} <= set(df.columns):
            stop = _as_dates(df["upa_stop_date"]) if "upa_stop_date" in df.columns else pd.Series(pd.NaT, index=df.index)
            end = stop.fillna(_as_dates(df["last_followup_date"]))
            df["exposure_days_recomputed"] = (end - _as_dates(df["upa_start_date"])).dt.days.astype("float64")
            df["exposure_days"] = _as_float(df["exposure_days"])
    elif table == "core.assessments":
        sums = {
            "hbi_total": ["hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications"],
            "adapted_mayo": ["mayo_stool", "mayo_bleeding", "mayo_endo"],
        }
        for total, items in sums.items():
            if total in df.columns and set(items) <= set(df.columns):
                vals = pd.concat([_as_float(df[i]) for i in items], axis=1)
                df[f"{total}_recomputed"] = vals.sum(axis=1, min_count=len(items)).where(vals.notna().all(axis=1))
                df[total] = _as_float(df[total])
    return df


RECOMPUTE_INPUTS = {
    "core.patients": ["bmi", "height_cm", "weight_kg", "birth_date", "upa_start_date", "upa_stop_date",
                      "last_followup_date", "age_at_upa_start", "exposure_days"],
    "core.assessments": ["hbi_total", "hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass",
                         "hbi_complications", "adapted_mayo", "mayo_stool", "mayo_bleeding", "mayo_endo"],
}


def build_frame(
    name: str,
    tables: dict[str, pd.DataFrame],
    settings: dict,
    crf: Crf,
    cfg: dict,
    needed: set[str] | list[str],
) -> pd.DataFrame:
    """The frame ``name`` with (at least) the ``needed`` columns it can provide.
    Raises :class:`MissingInput` when an input table is absent."""
    needed = set(needed)
    base, _, variant = name.partition("@")
    if base == "baseline":
        return _baseline(tables, settings, cfg)
    table, _, join = base.partition("+")
    src = _need(tables, table)
    tname = table.split(".", 1)[1]
    crf_types = {f: s.type for f, s in crf.tables[tname].fields.items()} if tname in crf.tables else {}

    wanted = set(needed) | {"patient_id"}
    dx_fields: list[str] = []
    if variant.startswith("dx"):
        wanted.add("diagnosis")
        if variant.startswith("dx!="):
            dx = variant[4:]
            dx_fields = list(((cfg.get("diagnosis_specific_fields") or {}).get(table) or {}).get(dx) or [])
            wanted |= set(dx_fields)
    elif variant == "stopped":
        wanted.add("upa_stop_date")
    elif variant == "advanced_stopped":
        wanted |= {"drug", "stop_date"}
    elif variant == "serious_terms":
        wanted.add("term")
    elif variant == "recomputed":
        wanted |= set(RECOMPUTE_INPUTS.get(table, []))
    if table == "core.labs" and needed & {"physiological_low", "physiological_high", "canonical_unit"}:
        wanted |= {"test", "value"}

    # the needed columns only; no copy of the column data (new columns are added to this
    # frame and rows filtered into new frames, so the caller's table is never modified)
    df = pd.DataFrame({c: src[c] for c in _cols(src, [c for c in src.columns if c in wanted])}, copy=False)
    if join:
        df = _join_patients(df, _need(tables, "core.patients"), wanted)
    if table == "core.labs" and "canonical_unit" in needed:
        df["canonical_unit"] = df["test"].map({t: s["unit"] for t, s in crf.lab_tests.items()})
    if table == "core.labs" and ({"physiological_low", "physiological_high"} & needed):
        limits = cfg.get("lab_limits") or {}
        df["physiological_low"] = df["test"].map({t: v[0] for t, v in limits.items()}).astype("float64")
        df["physiological_high"] = df["test"].map({t: v[1] for t, v in limits.items()}).astype("float64")

    if variant.startswith("dx!="):
        dx = variant[4:]
        keep = df["diagnosis"].notna() & (df["diagnosis"] != dx)
        df = df.loc[keep.to_numpy(dtype=bool)].copy()
        df[f"{dx.lower()}_fields_recorded"] = recorded_fields(df, dx_fields, crf_types)
    elif variant.startswith("dx="):
        df = df.loc[(df["diagnosis"] == variant[3:]).fillna(False).to_numpy(dtype=bool)].copy()
    elif variant == "stopped":
        df = df.loc[df["upa_stop_date"].notna().to_numpy()].copy()
    elif variant == "advanced_stopped":
        advanced = {d for d, s in crf.drugs.items() if s.get("advanced")}
        df = df.loc[(df["stop_date"].notna() & df["drug"].isin(advanced)).to_numpy()].copy()
    elif variant == "serious_terms":
        df = df.loc[df["term"].isin(list(crf.serious_by_definition)).to_numpy()].copy()
    elif variant == "recomputed":
        df = _recomputed(table, df.copy())
    elif variant:
        raise ValueError(f"unknown quality frame variant {variant!r} in {name!r}")
    return df  # index kept (no copy); GX reports rows by the example columns, not the index
