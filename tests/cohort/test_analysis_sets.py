"""A time point's analysis set follows the study's rule (issue 15): the single-center
study's week-k set is the patients who reached week k by the data cut-off plus those who
stopped before it; the multicenter study keeps every included patient in every set."""

from __future__ import annotations

import pandas as pd
import pytest

from ibd_pipeline.config import load_settings, settings_path, with_overrides
from ibd_pipeline.endpoints.analysis_sets import analysis_sets, set_sizes

SECOND = load_settings(settings_path("single_center_cd"))
CUTOFF = pd.Timestamp(SECOND["study"]["data_cutoff"])


def patients(*rows) -> pd.DataFrame:
    """(id, start as days before the cut-off, stop day or None)."""
    out = []
    for pid, days_before_cutoff, stop_day in rows:
        start = CUTOFF - pd.Timedelta(days=days_before_cutoff)
        out.append(dict(patient_id=pid, center="ahmu", diagnosis="CD", upa_start_date=start,
                        upa_stop_date=None if stop_day is None else start + pd.Timedelta(days=stop_day),
                        last_followup_date=CUTOFF))
    df = pd.DataFrame(out)
    df["upa_stop_date"] = pd.to_datetime(df["upa_stop_date"])
    return df


def test_week_k_set_is_reached_by_the_cutoff_or_stopped_before():
    p = patients(("LONG", 400, None), ("W12_ONLY", 84, None), ("W11", 83, None),
                 ("STOP_D50", 60, 50), ("STOP_D200", 300, 200))
    sets = analysis_sets(p, SECOND)
    m = sets.set_index(["patient_id", "timepoint"])["membership"]
    assert m["LONG", "week24"] == "reached"
    assert m["W12_ONLY", "week12"] == "reached"          # target day 84 = the cut-off itself
    assert m["W12_ONLY", "week24"] == "not_yet_reached"
    assert m["W11", "week12"] == "not_yet_reached" and m["W11", "week8"] == "reached"
    assert m["STOP_D50", "week4"] == "reached"            # stopped on day 50, after week 4 (day 28)
    assert m["STOP_D50", "week8"] == "stopped_before"     # ... before week 8 (day 56): a non-responder
    assert m["STOP_D50", "week24"] == "stopped_before"    # though week 24 lies after the cut-off
    assert m["STOP_D200", "week24"] == "reached"          # stopped after day 168
    sizes = set_sizes(sets).set_index("timepoint")
    assert sizes.loc["week24"].to_dict() == {"n_in_set": 3, "n_stopped_before": 1, "n_not_yet_reached": 2}
    assert sizes.loc["week4", "n_in_set"] == 5
    assert list(sizes.index) == SECOND["timepoints"]["clinical"]


def test_all_included_keeps_every_patient_in_every_set():
    s = with_overrides(SECOND, {"timepoints": {"analysis_set": "all_included"}})
    sets = analysis_sets(patients(("W11", 83, None), ("STOP", 60, 10)), s)
    assert sets["in_set"].all() and set(sets["membership"]) == {"reached"}


def test_reached_or_stopped_without_a_cutoff_is_an_error():
    s = with_overrides(SECOND, {"study": {"data_cutoff": None}})
    with pytest.raises(ValueError, match="needs study.data_cutoff"):
        analysis_sets(patients(("A", 10, None)), s)


def test_multicenter_default_has_no_target_rows_out_of_set_only_where_undefined():
    multi = load_settings()
    p = patients(("A", 400, None))
    sets = analysis_sets(p, multi)
    assert set(sets["timepoint"]) == set(multi["timepoints"]["clinical"])
    assert sets["in_set"].all()
