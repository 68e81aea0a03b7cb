"""Persistence on upadacitinib (STUDY.md "Endpoints", Persistence; "Statistics",
Persistence)."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.records import PATIENT_KEY, days_between, patient_table

PERSISTENCE_COLUMNS = ["patient_id", "center", "diagnosis", "time_days", "event", "stop_reason"]


def persistence(patients: pd.DataFrame) -> pd.DataFrame:
    """Time on treatment per (included) patient (STUDY.md Persistence: time from start to
    stop for any reason, censored at last follow-up). ``event`` is 1 when UPA was
    stopped (time = stop - start), 0 when censored (time = last follow-up - start);
    ``stop_reason`` is the recorded UPA stop reason (None when censored).
    Columns: patient_id, center, diagnosis, time_days, event, stop_reason."""
    p = patient_table(patients)
    out = p[[PATIENT_KEY, "center", "diagnosis"]].copy()
    out["time_days"] = days_between(p["treatment_end_date"], p["upa_start_date"]).astype("int64")
    out["event"] = p["discontinued"].astype("int64")
    reason = p["upa_stop_reason"] if "upa_stop_reason" in p.columns else pd.Series(None, index=p.index)
    out["stop_reason"] = reason.where(p["discontinued"], None).astype(object)
    return out[PERSISTENCE_COLUMNS].reset_index(drop=True)
