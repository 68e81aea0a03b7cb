"""The eligibility catalogue serves a study without the IOIBD DTT rule (issue 15: the
single-center study's population - prior anti-TNF failure or intolerance, baseline HBI >= 8,
age 18-75, no ostomy history, complete baseline, a follow-up visit): each criterion the
study's ``eligibility.order`` names is evaluated, in that order, and nothing else."""

from __future__ import annotations

import pytest
from tests.cohort.test_cohort_frames import Study, row

from ibd_pipeline.cohort import eligibility
from ibd_pipeline.config import load_crf, load_settings, settings_path

SECOND = load_settings(settings_path("single_center_cd"))


def refractory_cd(st: Study, pid: str, baseline_hbi=10, tnf_stop="secondary_loss_of_response", labs=True,
                  post=True, **kw):
    """A CD patient meeting the single-center population: an anti-TNF episode stopped for
    failure, a baseline HBI, the baseline labs and a follow-up visit."""
    st.patient(pid, diagnosis="CD", **kw)
    st.med(pid, "infliximab", -700, -60, tnf_stop)
    if baseline_hbi is not None:
        st.visit(pid, -3, hbi=baseline_hbi)
    if labs:
        for test, value in (("CRP", 12), ("FC", 800), ("HB", 115), ("ALB", 38)):
            st.lab(pid, test, -2, value)
    if post:
        st.visit(pid, 28, hbi=5)
    return pid


def run(st: Study, s=SECOND):
    return eligibility(st.patients, None, st.medications, st.assessments, st.labs, st.surgeries, s, load_crf())


def test_the_single_center_population_rules_each_exclude_for_their_own_reason():
    st = Study()
    refractory_cd(st, "OK")
    refractory_cd(st, "INTOLERANT", tnf_stop="intolerance")        # intolerance counts here
    refractory_cd(st, "AGE17", age=17)
    refractory_cd(st, "AGE75", age=75)
    refractory_cd(st, "AGE76", age=76)
    refractory_cd(st, "ELECTIVE_STOP", tnf_stop="elective")        # no failure, no intolerance
    refractory_cd(st, "HBI7", baseline_hbi=7)
    refractory_cd(st, "HBI8", baseline_hbi=8)
    refractory_cd(st, "NO_LABS", labs=False)
    refractory_cd(st, "NO_FOLLOWUP", post=False)
    refractory_cd(st, "OSTOMY")
    st.surgery("OSTOMY", "ostomy_creation", -400)
    refractory_cd(st, "OSTOMY_AFTER")
    st.surgery("OSTOMY_AFTER", "ostomy_creation", 100)                # after the start: not a history
    refractory_cd(st, "VDZ_ON_UPA")
    st.med("VDZ_ON_UPA", "vedolizumab", -30, 20)                    # overlaps the UPA start
    el = run(st)
    expected = {
        "OK": None, "INTOLERANT": None, "AGE75": None, "HBI8": None, "OSTOMY_AFTER": None,
        "AGE17": "outside_age_range", "AGE76": "outside_age_range", "ELECTIVE_STOP": "no_prior_class_failure",
        "HBI7": "baseline_hbi_below", "NO_LABS": "incomplete_baseline", "NO_FOLLOWUP": "no_followup_visit",
        "OSTOMY": "prior_procedure", "VDZ_ON_UPA": "concomitant_biologic",
    }
    got = {pid: row(el, patient_id=pid)["exclusion_reason"] for pid in expected}
    assert got == expected
    assert el["included"].sum() == 5


def test_a_patient_failing_several_rules_gets_the_first_in_the_study_order_and_all_are_listed():
    st = Study()
    refractory_cd(st, "MANY", age=80, baseline_hbi=5, tnf_stop="elective")
    r = row(run(st), patient_id="MANY")
    assert r["exclusion_reason"] == "outside_age_range"
    assert r["all_reasons"] == "outside_age_range|no_prior_class_failure|baseline_hbi_below"
    assert r["insufficient_data_detail"] is None  # not a criterion of this study


def test_a_missing_baseline_hbi_is_incomplete_baseline_when_the_study_requires_it_else_below_minimum():
    st = Study()
    refractory_cd(st, "NO_HBI", baseline_hbi=None)
    assert row(run(st), patient_id="NO_HBI")["exclusion_reason"] == "incomplete_baseline"
    s = dict(SECOND, eligibility={**SECOND["eligibility"],
                                  "order": [c for c in SECOND["eligibility"]["order"] if c != "incomplete_baseline"]})
    assert row(run(st, s), patient_id="NO_HBI")["exclusion_reason"] == "baseline_hbi_below"


def test_the_multicenter_dtt_criterion_needs_a_dtt_table():
    st = Study()
    refractory_cd(st, "X")
    multi = load_settings()
    with pytest.raises(ValueError, match="names not_dtt, but the study derives no DTT criteria"):
        run(st, multi)


def test_an_unknown_criterion_is_named_with_the_known_ones():
    st = Study()
    refractory_cd(st, "X")
    s = dict(SECOND, eligibility={**SECOND["eligibility"], "order": ["outside_age_range", "too_tall"]})
    with pytest.raises(ValueError, match=r"unknown criteria: \['too_tall'\].*prior_procedure"):
        run(st, s)
