"""The endpoint rules follow the study's settings (issue 15): the single-center study's
clinical remission is HBI <= 4 without the steroid-free condition, its response is an HBI
drop >= 3 points with no percentage rule, its biomarker remission needs CRP <= 5 AND
FC <= 250, and a patient who has not reached a week by the data cut-off has no rows there;
the multicenter rules stay as they were."""

from __future__ import annotations

import pandas as pd
from tests.cohort.test_cohort_frames import Study, row

from ibd_pipeline.config import load_settings, settings_path

SECOND = load_settings(settings_path("single_center_cd"))
CUTOFF = pd.Timestamp(SECOND["study"]["data_cutoff"])
LONG_AGO = CUTOFF - pd.Timedelta(days=400)


def cd(st: Study, pid: str, baseline_hbi=10, start=LONG_AGO, **kw):
    st.patient(pid, diagnosis="CD", start=start, followup_day=(CUTOFF - start).days, **kw)
    st.visit(pid, -3, hbi=baseline_hbi)
    return pid


def status(ep, pid, tp, endpoint):
    return row(ep, patient_id=pid, timepoint=tp, endpoint=endpoint)[["status", "reason"]].tolist()


def test_clinical_remission_is_not_steroid_free_in_the_second_study_and_is_in_the_first():
    st = Study()
    cd(st, "PRED")
    st.visit("PRED", 84, hbi=3)
    st.med("PRED", "prednisone", 60, None)  # ongoing at week 12
    ep = st.endpoints(SECOND)
    assert status(ep, "PRED", "week12", "clinical_remission") == ["achieved", "hbi_le_4"]
    assert "sf_clinical_remission" not in set(ep["endpoint"])
    multi = Study()
    cd(multi, "PRED")
    multi.visit("PRED", 84, hbi=3)
    multi.med("PRED", "prednisone", 60, None)
    ep1 = multi.endpoints(load_settings())
    assert status(ep1, "PRED", "induction", "sf_clinical_remission")[0] == "not_achieved"


def test_response_is_three_points_without_a_percentage_rule():
    st = Study()
    cd(st, "DROP2_OF_4", baseline_hbi=4)   # -2 points = 50%: a response in the multicenter study only
    st.visit("DROP2_OF_4", 28, hbi=2)
    cd(st, "DROP3", baseline_hbi=12)
    st.visit("DROP3", 28, hbi=9)
    ep = st.endpoints(SECOND)
    assert status(ep, "DROP2_OF_4", "week4", "clinical_response") == ["not_achieved", "hbi_drop_lt_3"]
    assert status(ep, "DROP3", "week4", "clinical_response") == ["achieved", "hbi_drop_ge_3"]
    multi = Study()
    cd(multi, "DROP2_OF_4", baseline_hbi=4)
    multi.visit("DROP2_OF_4", 84, hbi=2)
    assert status(multi.endpoints(load_settings()), "DROP2_OF_4", "induction", "clinical_response") == \
        ["achieved", "hbi_drop_ge_50pct"]


def test_biomarker_remission_needs_both_tests_at_most_their_thresholds():
    st = Study()
    for pid, crp, fc in (("BOTH_AT_LIMIT", 5, 250), ("FC_HIGH", 2, 251), ("CRP_ONLY", 4, None), ("CRP_HIGH_ONLY", 8, None)):
        cd(st, pid)
        st.lab(pid, "CRP", 84, crp)
        if fc is not None:
            st.lab(pid, "FC", 84, fc)
    ep = st.endpoints(SECOND)
    assert status(ep, "BOTH_AT_LIMIT", "week12", "biomarker_remission") == ["achieved", "fc_le_250_and_crp_le_5"]
    assert status(ep, "FC_HIGH", "week12", "biomarker_remission") == ["not_achieved", "fc_gt_250"]
    assert status(ep, "FC_HIGH", "week12", "crp_remission") == ["achieved", "crp_le_5"]
    assert status(ep, "CRP_ONLY", "week12", "biomarker_remission") == ["not_evaluable", "no_fc_in_window"]
    # complete case of a combination needs every test: CRP > 5 without FC is not evaluable (the paper's N 75 < 81)
    assert status(ep, "CRP_HIGH_ONLY", "week12", "biomarker_remission") == ["not_evaluable", "no_fc_in_window"]


def test_a_patient_not_yet_at_a_week_has_no_rows_there_and_a_stopped_one_is_a_non_responder():
    st = Study()
    cd(st, "RECENT", start=CUTOFF - pd.Timedelta(days=90))        # reached week 12 (day 84), not week 24
    st.visit("RECENT", 84, hbi=2)
    cd(st, "STOPPED", start=CUTOFF - pd.Timedelta(days=90), stop_day=40, stop_reason="inefficacy")
    ep = st.endpoints(SECOND)
    recent = ep[ep["patient_id"] == "RECENT"]
    assert "week24" not in set(recent[recent["endpoint"] == "clinical_remission"]["timepoint"])
    assert status(ep, "RECENT", "week12", "clinical_remission") == ["achieved", "hbi_le_4"]
    assert status(ep, "STOPPED", "week24", "clinical_remission") == ["not_achieved", "discontinued_before_timepoint"]
    assert status(ep, "STOPPED", "week4", "clinical_remission")[1] == "no_assessment_in_window"


def test_the_one_unscheduled_follow_up_endoscopy_is_complete_case_and_not_imputed():
    st = Study()
    cd(st, "SCOPED")
    st.visit("SCOPED", -20, ses_cd=12)
    st.visit("SCOPED", 400, ses_cd=2)                               # month 13: in days 1..730
    cd(st, "STOPPED_SCOPED", stop_day=100, stop_reason="inefficacy")
    st.visit("STOPPED_SCOPED", -20, ses_cd=10)
    st.visit("STOPPED_SCOPED", 95, ses_cd=4)
    cd(st, "NO_SCOPE")
    ep = st.endpoints(SECOND)
    assert status(ep, "SCOPED", "followup_endoscopy", "endoscopic_remission") == ["achieved", "ses_cd_le_2"]
    assert status(ep, "SCOPED", "followup_endoscopy", "endoscopic_response") == ["achieved", "ses_cd_drop_ge_50pct"]
    # stopped before day 210: a clinical non-responder, but its endoscopy counts as measured
    assert status(ep, "STOPPED_SCOPED", "followup_endoscopy", "endoscopic_response") == ["achieved", "ses_cd_drop_ge_50pct"]
    assert status(ep, "NO_SCOPE", "followup_endoscopy", "endoscopic_remission")[0] == "not_evaluable"
    # endoscopic endpoints only at the endoscopy, clinical ones only at the weeks
    assert set(ep[ep["endpoint"] == "endoscopic_remission"]["timepoint"]) == {"followup_endoscopy"}
    assert "followup_endoscopy" not in set(ep[ep["endpoint"] == "clinical_remission"]["timepoint"])
