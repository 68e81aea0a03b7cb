"""Who is in a time point's analysis set (study setting ``timepoints.analysis_set``).

* ``all_included`` (the multicenter protocol, STUDY.md "Endpoints"): every included
  patient is in every time point's set; a missing assessment is not evaluable
  (complete case) or a non-responder (NRI).
* ``reached_or_stopped`` (the single-center protocol: "week-k set = patients who reached
  week k plus those who stopped before it"): a patient is in the week-k set when UPA was
  stopped before the target day (a non-responder there) or when the target day lies on or
  before the data cut-off (``study.data_cutoff``); a patient still on UPA whose target day
  is after the cut-off has not yet reached the time point and is left out of its set -
  listed, with that reason, never dropped silently.
"""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.records import PATIENT_KEY, patient_table
from ibd_pipeline.clinical.windows import target_day

IN_SET, STOPPED_BEFORE, NOT_YET_REACHED, NO_TARGET = "reached", "stopped_before", "not_yet_reached", "no_target"
COLUMNS = ["patient_id", "timepoint", "target_date", "in_set", "membership"]


def analysis_sets(patients: pd.DataFrame, settings: dict, timepoints: list[str] | None = None) -> pd.DataFrame:
    """One row per included patient and clinical time point (default
    ``timepoints.clinical``): ``target_date`` (UPA start + target day), ``in_set`` (bool)
    and ``membership``: ``reached``, ``stopped_before`` (UPA stop date before the target
    date: in the set, as a non-responder), ``not_yet_reached`` (out of the set) or
    ``no_target`` (the time point has no target day for the diagnosis: out of the set).
    ``patients`` are the included patients (core columns)."""
    rule = settings["timepoints"].get("analysis_set", "all_included")
    if rule not in ("all_included", "reached_or_stopped"):
        raise ValueError(f"timepoints.analysis_set must be all_included or reached_or_stopped, not {rule!r}")
    cutoff = settings["study"].get("data_cutoff")
    if rule == "reached_or_stopped" and cutoff is None:
        raise ValueError("timepoints.analysis_set reached_or_stopped needs study.data_cutoff")
    cutoff = pd.Timestamp(cutoff) if cutoff is not None else None
    p = patient_table(patients)
    rows = []
    for tp in timepoints or settings["timepoints"]["clinical"]:
        for pat in p.to_dict("records"):
            t = target_day(settings, tp, pat["diagnosis"])
            if t is None:
                rows.append((pat[PATIENT_KEY], tp, pd.NaT, False, NO_TARGET))
                continue
            target = pat["upa_start_date"] + pd.Timedelta(days=t)
            stop = pat["upa_stop_date"]
            if rule == "all_included":
                membership = IN_SET
            elif pd.notna(stop) and stop < target:
                membership = STOPPED_BEFORE
            elif target <= cutoff:
                membership = IN_SET
            else:
                membership = NOT_YET_REACHED
            rows.append((pat[PATIENT_KEY], tp, target, membership in (IN_SET, STOPPED_BEFORE), membership))
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["target_date"] = pd.to_datetime(out["target_date"])
    out["in_set"] = out["in_set"].astype(bool)
    return out


def set_sizes(sets: pd.DataFrame) -> pd.DataFrame:
    """Per time point (in the order of ``sets``): N in the set, of them stopped before,
    and the patients left out as not yet reached - the week-k denominators of the paper."""
    order = list(dict.fromkeys(sets["timepoint"]))
    g = sets.groupby("timepoint", sort=False)
    out = pd.DataFrame({
        "timepoint": order,
        "n_in_set": [int(g.get_group(t)["in_set"].sum()) for t in order],
        "n_stopped_before": [int((g.get_group(t)["membership"] == STOPPED_BEFORE).sum()) for t in order],
        "n_not_yet_reached": [int((g.get_group(t)["membership"] == NOT_YET_REACHED).sum()) for t in order],
    })
    return out
