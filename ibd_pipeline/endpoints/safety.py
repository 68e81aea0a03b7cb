"""Safety (STUDY.md "Endpoints", Safety): treatment-emergent adverse events and
exposure."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.clinical.records import (
    PATIENT_KEY,
    as_bool,
    crf_or_default,
    days_between,
    days_per_year,
    patient_table,
)
from ibd_pipeline.config import Crf

AE_COLUMNS = ["patient_id", "center", "diagnosis", "onset_date", "day", "term", "serious", "led_to_discontinuation"]
EXPOSURE_COLUMNS = ["patient_id", "center", "diagnosis", "exposure_days", "exposure_years"]


def treatment_emergent_aes(
    patients: pd.DataFrame, adverse_events: pd.DataFrame, settings: dict, crf: Crf | None = None
) -> pd.DataFrame:
    """Treatment-emergent adverse events of the given (included) patients (STUDY.md
    Safety: onset from day 0 to ``safety.treatment_emergent_days_after_stop`` days after
    the stop date; while treatment is ongoing, every onset from day 0). ``serious`` is the
    recorded flag, or true for a CRF ``serious_by_definition`` term.
    Columns: patient_id, center, diagnosis, onset_date, day, term, serious,
    led_to_discontinuation."""
    crf = crf_or_default(crf)
    after = int(settings["safety"]["treatment_emergent_days_after_stop"])
    p = patient_table(patients)[[PATIENT_KEY, "center", "diagnosis", "upa_start_date", "upa_stop_date"]]
    ae = adverse_events.drop(columns=[c for c in ("center", "diagnosis", "day") if c in adverse_events.columns])
    ae = ae.merge(p, on=PATIENT_KEY, how="inner")
    ae["onset_date"] = pd.to_datetime(ae["onset_date"])
    ae["day"] = days_between(ae["onset_date"], ae["upa_start_date"])
    limit = ae["upa_stop_date"] + pd.Timedelta(days=after)
    te = (ae["day"] >= 0) & (ae["upa_stop_date"].isna() | (ae["onset_date"] <= limit))
    ae = ae[te.fillna(False).astype(bool)].copy()
    ae["serious"] = as_bool(ae["serious"]) | ae["term"].isin(crf.serious_by_definition)
    ae["led_to_discontinuation"] = as_bool(ae["led_to_discontinuation"])
    ae["day"] = ae["day"].astype("int64")
    return ae.sort_values([PATIENT_KEY, "onset_date", "term"], kind="mergesort")[AE_COLUMNS].reset_index(drop=True)


def exposure(patients: pd.DataFrame, settings: dict | None = None) -> pd.DataFrame:
    """UPA exposure per patient (STUDY.md "Inclusion and exclusion" 5 and Safety):
    exposure_days = stop date (or last follow-up while ongoing) - start date;
    exposure_years = exposure_days / ``days_per_year``.
    Columns: patient_id, center, diagnosis, exposure_days, exposure_years."""
    p = patient_table(patients)
    out = p[[PATIENT_KEY, "center", "diagnosis", "exposure_days"]].copy()
    out["exposure_years"] = out["exposure_days"].astype(float) / days_per_year(settings)
    return out[EXPOSURE_COLUMNS].reset_index(drop=True)
