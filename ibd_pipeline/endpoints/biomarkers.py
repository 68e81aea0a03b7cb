"""Lab values per time point and detection-limit qualifiers (STUDY.md "Endpoints" -
biochemical endpoints; "Statistics" - biomarker trajectories)."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.labs import check_canonical_units, clean_qualifier
from ibd_pipeline.clinical.records import PATIENT_KEY, crf_or_default
from ibd_pipeline.clinical.windows import add_day, labs_at
from ibd_pipeline.config import Crf

BIOMARKER_TESTS = ("CRP", "FC", "ESR", "ALB", "VITD25", "WBC", "HB", "PLT", "ALT", "AST", "LDL")
RATIO_TEST = "HDL_TC_RATIO"
RATIO_PARTS = ("HDL", "TC")
OUTPUT_COLUMNS = [
    "patient_id", "center", "diagnosis", "timepoint", "test", "value", "qualifier",
    "sample_date", "day", "unit",
]


def _combine_ratio_qualifier(q_num, q_den):
    """Qualifier of num/den: '<' on the numerator stays '<', '<' on the denominator
    becomes '>'; contradictory qualifiers make the ratio unknown (returns False)."""
    flip = {"<": ">", ">": "<"}
    qs = {q for q in (clean_qualifier(q_num), flip.get(clean_qualifier(q_den))) if q}
    if len(qs) > 1:
        return False
    return qs.pop() if qs else None


def biomarkers(
    patients: pd.DataFrame, labs: pd.DataFrame, settings: dict, crf: Crf | None = None
) -> pd.DataFrame:
    """Biomarker values per included patient and lab time point (settings
    ``timepoints.labs``: baseline, induction, months 6, 12, 18), each test chosen on its own
    (STUDY.md "Time points and windows"), for the trajectory tests of STUDY.md
    "Statistics" (CRP, FC, ESR, ALB, 25(OH)D, WBC, HB, PLT, ALT, AST, HDL/TC, LDL).

    ``HDL_TC_RATIO`` = HDL / TC from the values chosen for HDL and for TC at the same time
    point (its sample date is the later of the two). Values are in the CRF's canonical
    unit (an input row in another unit raises). Only values found in a window are listed.
    Columns: patient_id, center, diagnosis, timepoint, test, value, qualifier,
    sample_date, day, unit."""
    crf = crf_or_default(crf)
    check_canonical_units(labs, crf)
    dx = patients.set_index(PATIENT_KEY)["diagnosis"]
    lab = add_day(labs, patients, "sample_date")
    wanted = list(BIOMARKER_TESTS) + list(RATIO_PARTS)
    frames = []
    for tp in settings["timepoints"]["labs"]:
        chosen = labs_at(lab, settings, tp, dx, wanted)
        if chosen.empty:
            continue
        chosen = chosen.assign(timepoint=tp)
        frames.append(chosen[chosen["test"].isin(BIOMARKER_TESTS)])
        hdl = chosen[chosen["test"] == RATIO_PARTS[0]].set_index(PATIENT_KEY)
        tc = chosen[chosen["test"] == RATIO_PARTS[1]].set_index(PATIENT_KEY)
        both = hdl.join(tc, how="inner", lsuffix="_n", rsuffix="_d")
        rows = []
        for pid, r in zip(both.index, both.to_dict("records")):
            q = _combine_ratio_qualifier(r["qualifier_n"], r["qualifier_d"])
            if q is False or not r["value_d"]:
                continue
            later = max(r["sample_date_n"], r["sample_date_d"])
            rows.append(
                {
                    PATIENT_KEY: pid,
                    "test": RATIO_TEST,
                    "value": float(r["value_n"]) / float(r["value_d"]),
                    "qualifier": q,
                    "sample_date": later,
                    "day": int(r["day_n"] if later == r["sample_date_n"] else r["day_d"]),
                    "timepoint": tp,
                }
            )
        if rows:
            frames.append(pd.DataFrame(rows))
    if not frames:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out = out.drop(columns=[c for c in ("center", "diagnosis") if c in out.columns]).merge(
        patients[[PATIENT_KEY, "center", "diagnosis"]], on=PATIENT_KEY, how="left"
    )
    out["unit"] = out["test"].map(
        lambda t: "ratio" if t == RATIO_TEST else (crf.lab_tests.get(t) or {}).get("unit")
    )
    out["qualifier"] = out["qualifier"].map(clean_qualifier).astype(object)
    out["value"] = out["value"].astype(float)
    out["day"] = out["day"].astype("int64")
    order = {tp: i for i, tp in enumerate(settings["timepoints"]["labs"])}
    tests = {t: i for i, t in enumerate(list(BIOMARKER_TESTS) + [RATIO_TEST])}
    out = out.assign(_tp=out["timepoint"].map(order), _t=out["test"].map(tests))
    out = out.sort_values([PATIENT_KEY, "_tp", "_t"], kind="mergesort")
    return out[OUTPUT_COLUMNS].reset_index(drop=True)
