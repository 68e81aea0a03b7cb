"""The analysts' tables explain themselves: the missing item of insufficient_data, what a
patient_flow row counts, and endpoint rates by center (docs/STUDY_RULES.md#eligibility,
#statistics)."""

from dataclasses import replace

import pandas as pd
from tests.cohort.test_cohort_frames import Study, row, settings

from ibd_pipeline.cohort import patient_flow
from ibd_pipeline.stats import params_from_settings
from ibd_pipeline.stats.analyses import endpoint_rate_tables


def test_insufficient_data_names_what_was_missing():
    st = Study()
    st.dtt_cd("CD_NO_BASE", baseline_hbi=None)
    st.dtt_cd("CD_NO_POST", post=False)
    st.dtt_uc("UC_NO_ENDO", baseline=(3, 2, None))
    st.dtt_cd("CD_NEITHER", baseline_hbi=None, post=False)
    st.dtt_cd("OK")
    el = st.eligibility()
    detail = {pid: row(el, patient_id=pid)["insufficient_data_detail"] for pid in el["patient_id"]}
    assert detail["CD_NO_BASE"] == "no_baseline_hbi"
    assert detail["CD_NO_POST"] == "no_post_baseline_assessment"
    assert detail["UC_NO_ENDO"] == "no_baseline_adapted_mayo"
    assert detail["CD_NEITHER"] == "no_baseline_hbi|no_post_baseline_assessment"
    assert detail["OK"] is None
    for pid in ("CD_NO_BASE", "CD_NO_POST", "UC_NO_ENDO", "CD_NEITHER"):
        assert row(el, patient_id=pid)["exclusion_reason"] == "insufficient_data"


def test_insufficient_data_detail_is_given_when_it_is_not_the_first_reason():
    st = Study()
    st.dtt_cd("KID", age=16, baseline_hbi=None)  # under_18 comes first
    r = row(st.eligibility(), patient_id="KID")
    assert r["exclusion_reason"] == "under_18" and "insufficient_data" in r["all_reasons"]
    assert r["insufficient_data_detail"] == "no_baseline_hbi"


def test_patient_flow_says_whether_a_row_counts_patients_or_reasons():
    st = Study()
    st.dtt_cd("TWO_OTHER", center="c1", malignancy_history=True, serious_infection_at_start=True)
    st.dtt_uc("OK", center="c1")
    f = patient_flow(st.eligibility(), settings())
    assert set(f["counts"]) == {"patients", "reasons"}
    assert (f.loc[f["step"] == "other_reason", "counts"] == "reasons").all()
    assert (f.loc[f["step"] != "other_reason", "counts"] == "patients").all()
    allc = f[f["center"] == "all"]
    # one patient excluded as other, with two named other reasons
    assert allc[(allc["step"] == "excluded_by_reason") & (allc["reason"] == "other")]["n"].item() == 1
    assert allc[(allc["step"] == "other_reason") & (allc["reason"] == "other")]["n"].item() == 2


def test_endpoint_rates_by_center_are_each_centers_own_rates():
    ep = pd.DataFrame({
        "patient_id": ["a1", "a2", "a3", "b1", "b2"],
        "center": ["A", "A", "A", "B", "B"],
        "diagnosis": ["CD"] * 5,
        "timepoint": ["month12"] * 5,
        "endpoint": ["sf_clinical_remission"] * 5,
        "status": ["achieved", "not_achieved", "not_evaluable", "achieved", "achieved"],
        "status_nri": ["achieved", "not_achieved", "not_achieved", "achieved", "achieved"],
    })
    out = endpoint_rate_tables(ep, replace(params_from_settings(settings()), small_cell_below=3)).endpoint_rates_by_center
    assert list(out.columns[:2]) == ["center", "diagnosis"] and out.columns[-1] == "small_cell"

    def get(center, analysis, dx="CD"):
        sel = out[(out["center"] == center) & (out["analysis"] == analysis) & (out["diagnosis"] == dx)]
        assert len(sel) == 1
        return sel.iloc[0]

    a_cc, a_nri, b_cc = get("A", "complete_case"), get("A", "nri"), get("B", "complete_case")
    assert (a_cc["n"], a_cc["n_total"], round(a_cc["pct"], 1)) == (1, 2, 50.0)
    assert (a_nri["n"], a_nri["n_total"]) == (1, 3)
    assert (b_cc["n"], b_cc["n_total"], b_cc["pct"]) == (2, 2, 100.0)
    assert a_cc["ci_low"] < 50.0 < a_cc["ci_high"]
    assert bool(a_cc["small_cell"]) and not bool(a_nri["small_cell"])
    assert get("B", "complete_case", "overall")["n_total"] == 2
