"""Issue 13: three rules of STUDY.md that left room, each decided and a setting.

1. A failure stop after the UPA start does not count for DTT criterion 1
   (``dtt.failure_stopped_by_upa_start``, default true: DTT is judged on data before
   the UPA start).
2. CD baseline endoscopy: SES-CD comes from the closest endoscopy having it even when
   a closer one has only Rutgeerts (``timepoints.cd_endoscopy: closest_per_score``);
   ``closest_endoscopy`` takes both scores from the closest endoscopy.
3. A post-baseline visit row without any score is no "post-baseline assessment"
   (``eligibility.post_baseline_needs_score``, default true).
"""

from __future__ import annotations

from tests.cohort.test_cohort import cd_with_failures
from tests.cohort.test_cohort_frames import Study, row, settings


def test_a_failure_stopped_after_the_upa_start_does_not_make_dtt():
    st = Study()
    cd_with_failures(st, "LATE", ("infliximab", "primary_nonresponse"))
    st.med("LATE", "vedolizumab", -60, 40, "secondary_loss_of_response")  # bridges the switch, stops on day 40
    cd_with_failures(st, "ON0", ("infliximab", "primary_nonresponse"))
    st.med("ON0", "vedolizumab", -60, 0, "secondary_loss_of_response")  # stops on the UPA start date
    d = st.dtt()
    assert row(d, patient_id="LATE")["failed_mechanisms"] == ["anti_tnf"] and not row(d, patient_id="LATE")["is_dtt"]
    assert row(d, patient_id="ON0")["n_failed_mechanisms"] == 2 and row(d, patient_id="ON0")["is_dtt"]
    assert row(st.eligibility(), patient_id="LATE")["exclusion_reason"] == "not_dtt"
    loose = settings(dtt={"failure_stopped_by_upa_start": False})
    assert row(st.dtt(loose), patient_id="LATE")["failed_mechanisms"] == ["anti_integrin", "anti_tnf"]


def test_cd_baseline_ses_cd_from_an_earlier_endoscopy_when_the_closest_has_only_rutgeerts():
    st = Study()
    st.patient("R", diagnosis="CD")
    for i in range(2):
        st.surgery("R", "ileocecal_resection", -1000 + 300 * i)
    st.visit("R", -7, hbi=3)  # HBI not active
    st.visit("R", -50, ses_cd=9)  # earlier endoscopy: SES-CD active
    st.visit("R", -10, rutgeerts="i1")  # closest endoscopy: Rutgeerts only, not active
    st.visit("R", 30, hbi=3)
    d = row(st.dtt(), patient_id="R")
    assert d["active_disease_baseline"] and d["crit2_cd_resections"]
    closest = settings(timepoints={"cd_endoscopy": "closest_endoscopy"})
    d = row(st.dtt(closest), patient_id="R")
    assert not d["active_disease_baseline"] and not d["is_dtt"]


def test_a_post_baseline_visit_without_any_score_is_not_an_assessment():
    st = Study()
    two = (("infliximab", "primary_nonresponse"), ("vedolizumab", "secondary_loss_of_response"))
    st.patient("EMPTY", diagnosis="CD")
    for i, (drug, reason) in enumerate(two):
        st.med("EMPTY", drug, -900 + 200 * i, -800 + 200 * i, reason)
    st.visit("EMPTY", -7, hbi=8)
    st.visit("EMPTY", 30)  # a visit row with no score item
    cd_with_failures(st, "SCORED", *two)
    el = st.eligibility()
    assert row(el, patient_id="EMPTY")["exclusion_reason"] == "insufficient_data"
    assert row(el, patient_id="SCORED")["included"]
    loose = settings(eligibility={"post_baseline_needs_score": False})
    assert row(st.eligibility(loose), patient_id="EMPTY")["included"]
