"""Time-point windows (STUDY.md "Time points and windows").

Day 0 = UPA start; a day number is ``date - upa_start_date`` in days. Baseline is the
value closest to day 0 in ``timepoints.baseline_window`` (endoscopy:
``baseline_endoscopy_window``); a follow-up value is the one closest to the target with
``|day - target| <= timepoints.window_halfwidth``, a tie going to ``timepoints.tie_break``
(earlier). Every window, target and tie rule comes from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ibd_pipeline.clinical.records import PATIENT_KEY

HBI_ITEMS = ("hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications")
BASELINE = "baseline"


def add_day(df: pd.DataFrame, patients: pd.DataFrame, date_col: str) -> pd.DataFrame:
    """``df`` (rows of patients in ``patients`` only, rows without a date dropped) with
    ``day`` = ``date_col`` - ``upa_start_date`` in days (STUDY.md "Time points and windows":
    day 0 = UPA start)."""
    p = patients[[PATIENT_KEY, "upa_start_date"]]
    out = df.drop(columns=[c for c in ("upa_start_date", "day") if c in df.columns]).merge(
        p, on=PATIENT_KEY, how="inner"
    )
    out[date_col] = pd.to_datetime(out[date_col])
    out = out[out[date_col].notna() & out["upa_start_date"].notna()].reset_index(drop=True)
    out["day"] = (out[date_col] - pd.to_datetime(out["upa_start_date"])).dt.days.astype("int64")
    return out


def with_hbi_total(assessments: pd.DataFrame) -> pd.DataFrame:
    """Assessments with ``hbi_total`` = the sum of the five HBI items of the same visit,
    missing if any item is missing (STUDY.md "Endpoints": HBI = sum of its five items)."""
    a = assessments.copy()
    if all(c in a.columns for c in HBI_ITEMS):
        items = a[list(HBI_ITEMS)].apply(pd.to_numeric, errors="coerce").astype(float)
        a["hbi_total"] = items.sum(axis=1, skipna=False)
    elif "hbi_total" not in a.columns:
        a["hbi_total"] = np.nan
    return a


def _target_per_row(df: pd.DataFrame, target) -> np.ndarray:
    if isinstance(target, pd.Series | Mapping):
        t = df[PATIENT_KEY].map(target)
        return pd.to_numeric(t, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.full(len(df), np.nan if target is None else float(target))


def rank_in_window(df: pd.DataFrame, target, low, high, tie_break: str = "earlier") -> pd.DataFrame:
    """The rows whose day lies in ``[target + low, target + high]``, closest to the target
    first, equally close rows in ``tie_break`` order ('earlier' or 'later'), with
    ``target_day`` added. ``target``: a number, or a mapping/Series patient_id -> day
    (rows of patients without a target are dropped). STUDY.md "Time points and windows"."""
    if "day" not in df.columns:
        raise KeyError("window selection needs a 'day' column (see add_day)")
    if tie_break not in ("earlier", "later"):
        raise ValueError(f"tie_break must be 'earlier' or 'later', not {tie_break!r}")
    t = _target_per_row(df, target)
    day = pd.to_numeric(df["day"]).to_numpy(dtype=float, na_value=np.nan)
    idx = np.flatnonzero(~np.isnan(t) & (day >= t + low) & (day <= t + high))
    dist, day_key = np.abs(day[idx] - t[idx]), day[idx] if tie_break == "earlier" else -day[idx]
    order = idx[np.lexsort((day_key, dist))]  # closest first, ties by day
    return df.iloc[order].assign(target_day=t[order])


def first_per_group(
    ranked: pd.DataFrame, required_cols: Sequence[str] = (), by: Sequence[str] = (PATIENT_KEY,)
) -> pd.DataFrame:
    """Per group ``by`` the first row of ``rank_in_window`` output having every one of
    ``required_cols``."""
    if required_cols:
        ranked = ranked[ranked[list(required_cols)].notna().all(axis=1)]
    return ranked[~ranked.duplicated(list(by), keep="first")].reset_index(drop=True)


def select_in_window(
    df: pd.DataFrame,
    target,
    low,
    high,
    required_cols: Sequence[str] = (),
    by: Sequence[str] = (PATIENT_KEY,),
    tie_break: str = "earlier",
) -> pd.DataFrame:
    """Per group ``by`` (default: per patient) the row having every one of
    ``required_cols`` whose day lies in ``[target + low, target + high]``, closest to
    ``target`` (a tie goes to ``tie_break``: 'earlier' or 'later'). STUDY.md "Time points
    and windows".

    ``target`` is a number, or a mapping/Series patient_id -> target day (patients
    without a target are skipped); ``low`` (<= 0) and ``high`` (>= 0) are offsets from the
    target. Returns the chosen rows (every input column) plus ``target_day``."""
    return first_per_group(rank_in_window(df, target, low, high, tie_break), required_cols, by)


def select_visit(
    assessments: pd.DataFrame,
    target_day,
    halfwidth: int,
    required_cols: Sequence[str] = (),
    *,
    by: Sequence[str] = (PATIENT_KEY,),
    tie_break: str = "earlier",
) -> pd.DataFrame:
    """Per patient (or per ``by`` group, e.g. patient and lab test) the row closest to
    ``target_day`` with ``|day - target_day| <= halfwidth`` having every one of
    ``required_cols``; a tie goes to the earlier row (``tie_break``). STUDY.md "Time
    points and windows": "A follow-up value is the one closest to the target with
    |day - target| <= 28 (a tie goes to the earlier)". ``assessments`` needs ``day``
    (see ``add_day``); ``target_day`` is a number or a mapping patient_id -> day."""
    return select_in_window(
        assessments, target_day, -halfwidth, halfwidth, required_cols, by=by, tie_break=tie_break
    )


# ------------------------------------------------------------- settings-driven
def target_day(settings: dict, timepoint: str, diagnosis: str | None) -> int | None:
    """The target day of a time point for a diagnosis (settings ``timepoints.targets``;
    baseline = day 0). None when the time point has no target for the diagnosis."""
    if timepoint == BASELINE:
        return 0
    t = settings["timepoints"]["targets"].get(timepoint)
    if isinstance(t, Mapping):
        t = t.get(diagnosis)
    return None if t is None else int(t)


def window_bounds(settings: dict, timepoint: str, endoscopy: bool = False) -> tuple[int, int]:
    """(low, high) offsets around the target: baseline = settings ``baseline_window``
    (endoscopy: ``baseline_endoscopy_window``) around day 0; follow-up = +-
    ``window_halfwidth``, or a time point's own day range ``windows_by_timepoint`` (days
    from the start, e.g. an unscheduled follow-up endoscopy at any time on treatment) as
    offsets from its target. STUDY.md "Time points and windows"."""
    tp = settings["timepoints"]
    if timepoint == BASELINE:
        lo, hi = tp["baseline_endoscopy_window" if endoscopy else "baseline_window"]
        return int(lo), int(hi)
    own = (tp.get("windows_by_timepoint") or {}).get(timepoint)
    if own is not None:
        target = tp["targets"][timepoint]
        if isinstance(target, Mapping):
            raise ValueError(f"timepoints.windows_by_timepoint.{timepoint}: needs one target day, not one per diagnosis")
        return int(own[0]) - int(target), int(own[1]) - int(target)
    h = int(tp["window_halfwidth"])
    return -h, h


def targets_for(settings: dict, timepoint: str, diagnosis_by_patient: pd.Series) -> pd.Series:
    """patient_id -> target day of ``timepoint`` (missing where undefined)."""
    return diagnosis_by_patient.map(lambda dx: target_day(settings, timepoint, dx))


def select_at(
    df: pd.DataFrame,
    settings: dict,
    timepoint: str,
    diagnosis_by_patient: pd.Series,
    required_cols: Sequence[str] = (),
    *,
    endoscopy: bool = False,
    by: Sequence[str] = (PATIENT_KEY,),
) -> pd.DataFrame:
    """The rows chosen for ``timepoint`` per the settings (STUDY.md "Time points and
    windows"): baseline = closest to day 0 in the baseline (or baseline endoscopy)
    window; a follow-up time point = closest to the target within the half-width."""
    lo, hi = window_bounds(settings, timepoint, endoscopy)
    return select_in_window(
        df,
        targets_for(settings, timepoint, diagnosis_by_patient),
        lo,
        hi,
        required_cols,
        by=by,
        tie_break=settings["timepoints"].get("tie_break", "earlier"),
    )


SCORE_PARTS = {
    # part: (required columns = the values taken, is an endoscopic score)
    "hbi": (("hbi_total",), False),
    "mayo_sb": (("mayo_stool", "mayo_bleeding"), False),
    "mayo_endo": (("mayo_endo",), True),
    "ses_cd": (("ses_cd",), True),
    "rutgeerts": (("rutgeerts",), True),
}
CD_ENDOSCOPY = ("ses_cd", "rutgeerts")  # the CD endoscopic scores (setting timepoints.cd_endoscopy)


def scores_at(
    assessments: pd.DataFrame,
    settings: dict,
    timepoint: str,
    diagnosis_by_patient: pd.Series,
    parts: Sequence[str] = tuple(SCORE_PARTS),
) -> pd.DataFrame:
    """Per patient the score components at ``timepoint``, each chosen on its own
    (STUDY.md "Time points and windows": HBI, and the Mayo stool and bleeding subscores,
    come from one visit - the closest visit in the window that has them; an endoscopic
    score - Mayo endoscopic subscore, SES-CD, Rutgeerts - is the closest endoscopy in the
    window that has it; with ``timepoints.cd_endoscopy: closest_endoscopy`` SES-CD and
    Rutgeerts both come from the closest endoscopy having either). ``assessments`` need ``day``; HBI is recomputed from its items.

    Index: patient_id (every patient of ``diagnosis_by_patient``). Columns per part in
    ``parts``: hbi + hbi_date; mayo_stool, mayo_bleeding + mayo_sb_date; mayo_endo +
    mayo_endo_date; ses_cd + ses_cd_date; rutgeerts + rutgeerts_date (missing where
    nothing qualifies)."""
    a = with_hbi_total(assessments)
    missing = {c: None for part in parts for c in SCORE_PARTS[part][0] if c not in a.columns}
    a = a.assign(**missing) if missing else a
    ids = pd.Index(diagnosis_by_patient.index, name=PATIENT_KEY)
    bounds = {endo: window_bounds(settings, timepoint, endo) for endo in (False, True)}
    lo, hi = min(b[0] for b in bounds.values()), max(b[1] for b in bounds.values())
    # rank once over the union of the visit and endoscopy windows, then narrow per part
    ranked = rank_in_window(
        a, targets_for(settings, timepoint, diagnosis_by_patient), lo, hi,
        settings["timepoints"].get("tie_break", "earlier"),
    )
    offset = ranked["day"].to_numpy(dtype=float) - ranked["target_day"].to_numpy(dtype=float)
    # CD endoscopy: "closest_per_score" (default) takes each of SES-CD and Rutgeerts from
    # the closest endoscopy having it - SES-CD is the CD score, Rutgeerts counts "where
    # only Rutgeerts is recorded" (STUDY.md "Endpoints"); "closest_endoscopy" takes both
    # from the one closest endoscopy having either (an older SES-CD is then not used)
    cd_rule = settings["timepoints"].get("cd_endoscopy", "closest_per_score")
    if cd_rule not in ("closest_endoscopy", "closest_per_score"):
        raise ValueError(f"timepoints.cd_endoscopy must be closest_endoscopy or closest_per_score, got {cd_rule!r}")
    cols: dict[str, pd.Series] = {}
    for part in parts:
        req, endo = SCORE_PARTS[part]
        plo, phi = bounds[endo]
        in_window = ranked[(offset >= plo) & (offset <= phi)] if (plo, phi) != (lo, hi) else ranked
        if part in CD_ENDOSCOPY and cd_rule == "closest_endoscopy":
            has = in_window[list(CD_ENDOSCOPY)].notna().any(axis=1)
            chosen = first_per_group(in_window[has]).set_index(PATIENT_KEY).reindex(ids)
            chosen.loc[chosen[req[0]].isna(), "visit_date"] = pd.NaT
        else:
            chosen = first_per_group(in_window, req).set_index(PATIENT_KEY).reindex(ids)
        for c in req:
            cols["hbi" if c == "hbi_total" else c] = chosen[c]
        cols[f"{part}_date"] = chosen["visit_date"]
    return pd.DataFrame(cols, index=ids)


def labs_at(
    labs: pd.DataFrame,
    settings: dict,
    timepoint: str,
    diagnosis_by_patient: pd.Series,
    tests: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The lab values chosen for ``timepoint``, each test on its own (STUDY.md "Time
    points and windows": baseline = closest to day 0 in the baseline window; follow-up =
    closest to the target within the half-width). ``labs`` need ``day``. Returns one row
    per patient and test: the chosen lab rows (with ``qualifier``, None if absent)."""
    lab = labs if tests is None else labs[labs["test"].isin(list(tests))]
    lab = lab[lab[PATIENT_KEY].isin(diagnosis_by_patient.index)]
    if "qualifier" not in lab.columns:
        lab = lab.assign(qualifier=None)
    return select_at(lab, settings, timepoint, diagnosis_by_patient, ("value",), by=(PATIENT_KEY, "test"))
