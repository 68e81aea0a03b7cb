"""Windows, endpoints and non-responder imputation: hand-built patients at and beside every
threshold (STUDY.md "Time points and windows", "Endpoints")."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.cohort.test_cohort_frames import Study, row, settings

from ibd_pipeline.clinical.windows import add_day, select_at, select_visit

CD_IND, UC_IND, M6, M12 = 84, 56, 182, 365


def ep(st: Study, pid: str, timepoint: str, endpoint: str, s=None) -> pd.Series:
    return row(st.endpoints(s), patient_id=pid, timepoint=timepoint, endpoint=endpoint)


def visits(st: Study) -> pd.DataFrame:
    return add_day(st.assessments, st.patients, "visit_date")


# -------------------------------------------------------------------- windows
@pytest.mark.parametrize("offset, chosen", [(28, True), (29, False), (-28, True), (-29, False)])
def test_visit_at_28_vs_29_days_from_target(offset, chosen):
    st = Study()
    st.patient("P")
    st.visit("P", M6 + offset, hbi=3)
    got = select_visit(visits(st), M6, 28, ["hbi_wellbeing"])
    assert (len(got) == 1) == chosen


def test_two_visits_equally_close_the_earlier_wins():
    st = Study()
    st.patient("P")
    st.visit("P", M6 - 5, hbi=3)
    st.visit("P", M6 + 5, hbi=6)
    got = select_visit(visits(st), M6, 28, ["hbi_wellbeing"])
    assert got["day"].tolist() == [M6 - 5]
    assert select_visit(visits(st), M6, 28, ["hbi_wellbeing"], tie_break="later")["day"].tolist() == [M6 + 5]
    st.visit("P", M6 + 4, hbi=1)  # strictly closer beats the tie
    assert select_visit(visits(st), M6, 28, ["hbi_wellbeing"])["day"].tolist() == [M6 + 4]


def test_closest_visit_having_the_required_columns():
    st = Study()
    st.patient("P")
    st.visit("P", M6, ses_cd=5)  # no HBI here
    st.visit("P", M6 + 20, hbi=2)
    v = visits(st)
    assert select_visit(v, M6, 28, ["hbi_wellbeing", "hbi_pain"])["day"].tolist() == [M6 + 20]
    assert select_visit(v, M6, 28, ["ses_cd"])["day"].tolist() == [M6]


def test_per_patient_targets_and_per_test_lab_selection():
    st = Study()
    st.patient("C", diagnosis="CD")
    st.patient("U", diagnosis="UC")
    for pid in ("C", "U"):
        st.visit(pid, 56, hbi=1)
        st.visit(pid, 84, hbi=2)
        st.lab(pid, "CRP", 80, 3)
        st.lab(pid, "FC", 60, 100)
    v, dx = visits(st), st.patients.set_index("patient_id")["diagnosis"]
    got = select_at(v, settings(), "induction", dx, ["hbi_wellbeing"]).set_index("patient_id")["day"]
    assert got.to_dict() == {"C": 84, "U": 56}
    labs = add_day(st.labs, st.patients, "sample_date")
    got = select_visit(labs, {"C": 84, "U": 56}, 28, ["value"], by=("patient_id", "test"))
    assert sorted(map(tuple, got[["patient_id", "test", "day"]].values.tolist())) == [
        ("C", "CRP", 80), ("C", "FC", 60), ("U", "CRP", 80), ("U", "FC", 60)]


def test_baseline_windows():
    st = Study()
    st.patient("P")
    st.visit("P", 1, hbi=10)  # after day 0: never baseline
    st.visit("P", -30, hbi=8)
    st.visit("P", -45, ses_cd=9)
    v, dx = visits(st), st.patients.set_index("patient_id")["diagnosis"]
    assert select_at(v, settings(), "baseline", dx, ["hbi_wellbeing"])["day"].tolist() == [-30]
    assert select_at(v, settings(), "baseline", dx, ["ses_cd"], endoscopy=True)["day"].tolist() == [-45]
    assert select_at(v, settings(), "baseline", dx, ["ses_cd"]).empty  # -45 is outside -30..0
    st.visit("P", 0, hbi=7)
    assert select_at(visits(st), settings(), "baseline", dx, ["hbi_wellbeing"])["day"].tolist() == [0]


def test_window_halfwidth_is_a_setting():
    st = Study()
    st.dtt_cd("P")
    st.visit("P", M6 + 29, hbi=2)
    assert ep(st, "P", "month6", "sf_clinical_remission")["reason"] == "no_assessment_in_window"
    s = settings(timepoints={"window_halfwidth": 29})
    assert ep(st, "P", "month6", "sf_clinical_remission", s)["status"] == "achieved"


# ------------------------------------------------------------------------- CD
@pytest.mark.parametrize("hbi, status, reason", [(4, "achieved", "hbi_le_4_steroid_free"), (5, "not_achieved", "hbi_gt_4")])
def test_cd_remission_hbi_4_vs_5(hbi, status, reason):
    st = Study()
    st.dtt_cd("P")
    st.visit("P", CD_IND, hbi=hbi)
    r = ep(st, "P", "induction", "sf_clinical_remission")
    assert (r["status"], r["reason"], r["value"]) == (status, reason, f"HBI {hbi}")
    assert r["status_nri"] == status


def test_hbi_is_the_sum_of_five_items_from_one_visit():
    st = Study()
    st.dtt_cd("P")
    st.visit("P", CD_IND, hbi_wellbeing=1, hbi_pain=1, hbi_liquid_stools=1, hbi_mass=1)  # no complications item
    st.visit("P", CD_IND + 10, hbi_wellbeing=1, hbi_pain=1, hbi_liquid_stools=1, hbi_mass=1, hbi_complications=1)
    r = ep(st, "P", "induction", "sf_clinical_remission")
    assert (r["status"], r["value"]) == ("not_achieved", "HBI 5")


def test_remission_threshold_is_a_setting():
    st = Study()
    st.dtt_cd("P")
    st.visit("P", CD_IND, hbi=5)
    s = settings(endpoints={"CD": {"remission_hbi_max": 5}})
    assert ep(st, "P", "induction", "sf_clinical_remission", s)["reason"] == "hbi_le_5_steroid_free"


@pytest.mark.parametrize(
    "base, fu, status, reason",
    [(10, 7, "achieved", "hbi_drop_ge_3"), (10, 8, "not_achieved", "hbi_drop_lt_3_and_lt_50pct"),
     (4, 2, "achieved", "hbi_drop_ge_50pct"), (5, 3, "not_achieved", "hbi_drop_lt_3_and_lt_50pct")],
)
def test_cd_clinical_response(base, fu, status, reason):
    st = Study()
    st.dtt_cd("P", baseline_hbi=base)
    st.visit("P", CD_IND, hbi=fu)
    r = ep(st, "P", "induction", "clinical_response")
    assert (r["status"], r["reason"], r["value"]) == (status, reason, f"HBI {fu} (baseline {base})")


@pytest.mark.parametrize("ses, status", [(3, "achieved"), (4, "not_achieved")])
def test_cd_endoscopic_remission_ses_cd_3_vs_4(ses, status):
    st = Study()
    st.dtt_cd("P")
    st.visit("P", M6, ses_cd=ses)
    r = ep(st, "P", "month6", "endoscopic_remission")
    assert r["status"] == status and r["value"] == f"SES-CD {ses}"
    assert r["reason"] == ("ses_cd_le_3" if ses == 3 else "ses_cd_gt_3")


@pytest.mark.parametrize("rut, status", [("i1", "achieved"), ("i2", "not_achieved")])
def test_cd_endoscopic_remission_rutgeerts_where_only_rutgeerts(rut, status):
    st = Study()
    st.dtt_cd("P", baseline_ses=None)
    st.visit("P", M6, rutgeerts=rut)
    r = ep(st, "P", "month6", "endoscopic_remission")
    assert r["status"] == status and r["value"].startswith(f"Rutgeerts {rut}")
    # SES-CD recorded in the window takes precedence over Rutgeerts
    st.visit("P", M6 + 20, ses_cd=2)
    assert ep(st, "P", "month6", "endoscopic_remission")["reason"] == "ses_cd_le_3"
    # no SES-CD at baseline or follow-up: endoscopic response is not evaluable
    st2 = Study()
    st2.dtt_cd("Q", baseline_ses=None)
    st2.visit("Q", -30, rutgeerts="i3")
    st2.visit("Q", M6, rutgeerts="i0")
    assert ep(st2, "Q", "month6", "endoscopic_response")["status"] == "not_evaluable"


@pytest.mark.parametrize("base, fu, status", [(49, 25, "not_achieved"), (48, 24, "achieved")])
def test_ses_cd_fall_49_vs_50_percent(base, fu, status):
    st = Study()
    st.dtt_cd("P", baseline_ses=base)
    st.visit("P", M12, ses_cd=fu)
    r = ep(st, "P", "month12", "endoscopic_response")
    assert r["status"] == status and r["value"] == f"SES-CD {fu} (baseline {base})"


def test_endoscopic_response_baseline_zero_or_missing_is_not_evaluable():
    st = Study()
    st.dtt_cd("Z", baseline_ses=0)
    st.visit("Z", M6, ses_cd=0)
    st.dtt_cd("M", baseline_ses=None)
    st.visit("M", M6, ses_cd=3)
    assert ep(st, "Z", "month6", "endoscopic_response")["reason"] == "baseline_score_zero"
    assert ep(st, "M", "month6", "endoscopic_response")["reason"] == "no_baseline_endoscopy"


# ------------------------------------------------------------------- steroids
@pytest.mark.parametrize("gap, status", [(89, "not_achieved"), (90, "achieved")])
def test_steroid_stopped_89_vs_90_days_before_month6(gap, status):
    st = Study()
    st.dtt_cd("P")
    st.visit("P", M6 + 3, hbi=2)
    st.med("P", "prednisone", -20, M6 + 3 - gap, "elective")
    r = ep(st, "P", "month6", "sf_clinical_remission")
    assert r["status"] == status
    assert r["reason"] == ("steroid_within_90_days" if gap == 89 else "hbi_le_4_steroid_free")


def test_steroid_ongoing_at_month12_and_the_90_day_setting():
    st = Study()
    st.dtt_cd("P")
    st.visit("P", M12, hbi=1)
    st.med("P", "methylprednisolone", 300, None)
    assert ep(st, "P", "month12", "sf_clinical_remission")["reason"] == "steroid_ongoing"
    st2 = Study()
    st2.dtt_cd("Q")
    st2.visit("Q", M12, hbi=1)
    st2.med("Q", "prednisone", 200, M12 - 60, "elective")
    assert ep(st2, "Q", "month12", "sf_clinical_remission")["reason"] == "steroid_within_90_days"
    s = settings(steroids={"free_days_before_assessment": 60})
    assert ep(st2, "Q", "month12", "sf_clinical_remission", s)["status"] == "achieved"


def test_induction_steroid_free_means_no_episode_covering_the_assessment_date():
    st = Study()
    st.dtt_uc("COVER", baseline=(3, 3, 3))
    st.visit("COVER", UC_IND, mayo_stool=0, mayo_bleeding=0, mayo_endo=0)
    st.med("COVER", "prednisone", -10, UC_IND, "elective")  # stops on the assessment date
    st.dtt_uc("TAPERED", baseline=(3, 3, 3))
    st.visit("TAPERED", UC_IND, mayo_stool=0, mayo_bleeding=0, mayo_endo=0)
    st.med("TAPERED", "prednisone", -10, UC_IND - 1, "elective")  # stopped the day before
    st.dtt_uc("BUDESONIDE", baseline=(3, 3, 3))
    st.visit("BUDESONIDE", UC_IND, mayo_stool=0, mayo_bleeding=0, mayo_endo=0)
    st.med("BUDESONIDE", "budesonide", -10, None)  # topical: not systemic
    r = ep(st, "COVER", "induction", "sf_clinical_remission")
    assert (r["status"], r["reason"]) == ("not_achieved", "steroid_at_assessment")
    assert ep(st, "TAPERED", "induction", "sf_clinical_remission")["status"] == "achieved"
    assert ep(st, "BUDESONIDE", "induction", "sf_clinical_remission")["status"] == "achieved"


# ------------------------------------------------------------------------- UC
@pytest.mark.parametrize(
    "parts, status, reason",
    [((1, 0, 1), "achieved", "adapted_mayo_le_2_no_subscore_gt_1_steroid_free"),
     ((0, 0, 2), "not_achieved", "subscore_gt_1"),  # adapted Mayo 2 with one subscore 2
     ((1, 1, 1), "not_achieved", "adapted_mayo_gt_2")],
)
def test_uc_remission(parts, status, reason):
    st = Study()
    st.dtt_uc("P")
    s, b, e = parts
    st.visit("P", UC_IND, mayo_stool=s, mayo_bleeding=b)
    st.visit("P", UC_IND + 3, mayo_endo=e)  # the endoscopy on another day in the window
    r = ep(st, "P", "induction", "sf_clinical_remission")
    assert (r["status"], r["reason"]) == (status, reason)
    assert r["value"].startswith(f"adapted Mayo {s + b + e} (stool {s}, bleeding {b}, endoscopic {e})")


def test_uc_stool_and_bleeding_come_from_one_visit():
    st = Study()
    st.dtt_uc("P")
    st.visit("P", UC_IND, mayo_stool=0, mayo_endo=0)  # closest, but no bleeding
    st.visit("P", UC_IND + 10, mayo_stool=2, mayo_bleeding=1)
    r = ep(st, "P", "induction", "sf_clinical_remission")
    assert r["value"].startswith("adapted Mayo 3 (stool 2, bleeding 1, endoscopic 0)")
    st2 = Study()
    st2.dtt_uc("Q")
    st2.visit("Q", UC_IND, mayo_stool=0, mayo_bleeding=0)  # no endoscopy in the window
    assert ep(st2, "Q", "induction", "sf_clinical_remission")["reason"] == "no_endoscopy_in_window"


@pytest.mark.parametrize(
    "base, fu, status, reason",
    [((2, 2, 2), (1, 1, 2), "achieved", "adapted_mayo_drop_ge_2_and_ge_30pct_bleeding_criterion_met"),  # 2 pts, 33 %
     ((3, 2, 2), (2, 1, 2), "not_achieved", "adapted_mayo_drop_lt_30pct"),  # 2 pts, 28.6 %
     ((3, 2, 3), (3, 2, 2), "not_achieved", "adapted_mayo_drop_lt_2"),  # 1 pt
     ((3, 1, 3), (0, 2, 1), "not_achieved", "bleeding_criterion_not_met"),  # bleeding rose to 2
     ((3, 1, 3), (0, 1, 1), "achieved", "adapted_mayo_drop_ge_2_and_ge_30pct_bleeding_criterion_met")],  # bleeding <= 1
)
def test_uc_clinical_response(base, fu, status, reason):
    st = Study()
    st.dtt_uc("P", baseline=base)
    st.visit("P", M6, mayo_stool=fu[0], mayo_bleeding=fu[1], mayo_endo=fu[2])
    r = ep(st, "P", "month6", "clinical_response")
    assert (r["status"], r["reason"]) == (status, reason)
    assert r["value"] == f"adapted Mayo {sum(fu)} (baseline {sum(base)}); bleeding {fu[1]} (baseline {base[1]})"


@pytest.mark.parametrize("endo, status", [(0, "achieved"), (1, "not_achieved")])
def test_uc_endoscopic_remission(endo, status):
    st = Study()
    st.dtt_uc("P")
    st.visit("P", M12, mayo_endo=endo)
    assert ep(st, "P", "month12", "endoscopic_remission")["status"] == status


@pytest.mark.parametrize("base, fu, status", [(2, 1, "achieved"), (3, 2, "not_achieved")])
def test_uc_endoscopic_response(base, fu, status):
    st = Study()
    st.dtt_uc("P", baseline=(3, 2, base))
    st.visit("P", M12, mayo_endo=fu)
    assert ep(st, "P", "month12", "endoscopic_response")["status"] == status


# ------------------------------------------------------------------------ NRI
def test_discontinuation_the_day_before_a_target_is_nri_at_that_and_later_targets():
    st = Study()
    st.dtt_cd("EVE", stop_day=CD_IND - 1, stop_reason="inefficacy")
    st.dtt_cd("ON", stop_day=CD_IND, stop_reason="inefficacy")
    for pid in ("EVE", "ON"):
        st.visit(pid, CD_IND - 10, hbi=1, ses_cd=0)  # measured before stopping
        st.lab(pid, "CRP", CD_IND - 10, 3)
    e = st.endpoints()
    eve = e[e["patient_id"] == "EVE"]
    clin = eve[eve["endpoint"].isin(["sf_clinical_remission", "clinical_response", "endoscopic_remission",
                                     "endoscopic_response"])]
    assert len(clin) == 12
    assert (clin["status"] == "not_achieved").all() and (clin["status_nri"] == "not_achieved").all()
    assert (clin["reason"] == "discontinued_before_timepoint").all()
    assert (clin["value"] == f"UPA stopped on day {CD_IND - 1}").all()
    # biomarker endpoints are evaluated from the labs regardless
    assert row(e, patient_id="EVE", timepoint="induction", endpoint="crp_normal")["status"] == "achieved"
    # stopped on the target day: induction evaluated, month 6 imputed
    assert row(e, patient_id="ON", timepoint="induction", endpoint="sf_clinical_remission")["status"] == "achieved"
    assert row(e, patient_id="ON", timepoint="month6", endpoint="sf_clinical_remission")["reason"] == (
        "discontinued_before_timepoint")


def test_resection_after_month6_before_month12():
    st = Study()
    st.dtt_cd("P")
    st.surgery("P", "ileocecal_resection", 200)
    st.visit("P", M6, hbi=2, ses_cd=2)
    st.visit("P", M12, hbi=1, ses_cd=0)
    e = st.endpoints()
    assert row(e, patient_id="P", timepoint="month6", endpoint="sf_clinical_remission")["status"] == "achieved"
    assert row(e, patient_id="P", timepoint="month6", endpoint="endoscopic_remission")["status"] == "achieved"
    for endpoint in ("sf_clinical_remission", "clinical_response", "endoscopic_remission", "endoscopic_response"):
        r = row(e, patient_id="P", timepoint="month12", endpoint=endpoint)
        assert (r["status"], r["reason"]) == ("not_achieved", "bowel_resection_before_timepoint")
        assert r["value"] == "bowel resection on day 200"


def test_resections_that_do_not_trigger_nri():
    st = Study()
    st.dtt_cd("P")
    st.surgery("P", "ileocecal_resection", -100)  # before UPA start
    st.surgery("P", "small_bowel_resection", 100, ibd_related=False)
    st.surgery("P", "perianal_fistula_surgery", 100)  # not a bowel resection
    st.visit("P", M6, hbi=2)
    assert ep(st, "P", "month6", "sf_clinical_remission")["status"] == "achieved"
    s = settings(endpoints={"nri_events": ["discontinuation"]})
    st.surgery("P", "ileocecal_resection", 150)
    assert ep(st, "P", "month6", "sf_clinical_remission")["reason"] == "bowel_resection_before_timepoint"
    assert ep(st, "P", "month6", "sf_clinical_remission", s)["status"] == "achieved"


def test_missing_assessment_is_not_evaluable_and_nri_not_achieved():
    st = Study()
    st.dtt_cd("P")
    r = ep(st, "P", "month12", "sf_clinical_remission")
    assert (r["status"], r["status_nri"], r["reason"]) == ("not_evaluable", "not_achieved", "no_assessment_in_window")
    assert r["value"] == "no HBI in days 337..393"
    r = ep(st, "P", "month12", "endoscopic_remission")
    assert r["reason"] == "no_endoscopy_in_window"


# ------------------------------------------------------------------ biomarkers
@pytest.mark.parametrize(
    "value, qualifier, status, reason",
    [(5, "<", "achieved", "crp_lt_8"), (10, "<", "not_evaluable", "qualifier_undecidable"),
     (200, ">", "not_achieved", "crp_ge_8"), (8, None, "not_achieved", "crp_ge_8"),
     (7.9, None, "achieved", "crp_lt_8"), (8, "<", "achieved", "crp_lt_8"), (5, ">", "not_evaluable",
                                                                              "qualifier_undecidable")],
)
def test_crp_qualifiers(value, qualifier, status, reason):
    st = Study()
    st.dtt_cd("P")
    st.lab("P", "CRP", M6 + 2, value, qualifier)
    r = ep(st, "P", "month6", "crp_normal")
    assert (r["status"], r["reason"]) == (status, reason)
    assert r["value"] == f"CRP {qualifier or ''}{value:g} mg/L"


@pytest.mark.parametrize("fc, status", [(149, "achieved"), (150, "not_achieved")])
def test_fc_normal_149_vs_150(fc, status):
    st = Study()
    st.dtt_uc("P")
    st.lab("P", "FC", -10, fc)
    assert ep(st, "P", "baseline", "fc_normal")["status"] == status


@pytest.mark.parametrize(
    "fc, crp, status, reason",
    [((100, None), (20, None), "achieved", "fc_lt_150"),
     ((200, None), (5, "<"), "achieved", "crp_lt_8"),
     ((100, None), (5, None), "achieved", "fc_lt_150_and_crp_lt_8"),
     ((200, None), (9, None), "not_achieved", "fc_ge_150_and_crp_ge_8"),
     ((200, None), None, "not_evaluable", "no_crp_in_window"),
     ((200, None), (10, "<"), "not_evaluable", "qualifier_undecidable"),
     ((100, None), (10, "<"), "achieved", "fc_lt_150"),
     (None, None, "not_evaluable", "no_lab_in_window")],
)
def test_biochemical_remission_fc_or_crp(fc, crp, status, reason):
    st = Study()
    st.dtt_cd("P")
    if fc:
        st.lab("P", "FC", 547 + 10, *fc)
    if crp:
        st.lab("P", "CRP", 547 - 10, *crp)
    r = ep(st, "P", "month18", "biochemical_remission")
    assert (r["status"], r["reason"]) == (status, reason)


def test_each_lab_is_chosen_on_its_own_and_biomarkers_are_evaluated_after_discontinuation():
    st = Study()
    st.dtt_uc("P", stop_day=100, stop_reason="adverse_event")
    st.lab("P", "CRP", UC_IND - 20, 20)
    st.lab("P", "CRP", UC_IND + 1, 3)  # closest CRP
    st.lab("P", "FC", UC_IND - 2, 500)
    st.lab("P", "CRP", M12, 2)
    e = st.endpoints()
    assert row(e, patient_id="P", timepoint="induction", endpoint="crp_normal")["value"] == "CRP 3 mg/L"
    assert row(e, patient_id="P", timepoint="induction", endpoint="fc_normal")["value"] == "FC 500 ug/g"
    assert row(e, patient_id="P", timepoint="month12", endpoint="crp_normal")["status"] == "achieved"
    assert row(e, patient_id="P", timepoint="month12", endpoint="sf_clinical_remission")["reason"] == (
        "discontinued_before_timepoint")


# ------------------------------------------------------------------ the frame
def test_every_row_has_status_value_and_reason():
    st = Study()
    st.dtt_cd("C", stop_day=200, stop_reason="inefficacy")
    st.visit("C", CD_IND, hbi=3, ses_cd=2)
    st.lab("C", "CRP", CD_IND, 10, "<")
    st.dtt_uc("U")
    st.visit("U", UC_IND, mayo_stool=1, mayo_bleeding=1, mayo_endo=1)
    st.lab("U", "FC", 0, 1800, ">")
    st.patient("X", diagnosis="IBDU")
    e = st.endpoints()
    assert list(e.columns) == ["patient_id", "center", "diagnosis", "timepoint", "endpoint", "status", "status_nri",
                               "value", "reason"]
    assert len(e) == 3 * (3 * 4 + 5 * 3)
    assert e["value"].map(lambda v: isinstance(v, str) and v != "").all()
    assert e["reason"].map(lambda v: isinstance(v, str) and v != "").all()
    assert set(e["status"]) <= {"achieved", "not_achieved", "not_evaluable"}
    assert ((e["status"] == "achieved") == (e["status_nri"] == "achieved")).all()
    assert set(e["status_nri"]) <= {"achieved", "not_achieved"}
    counts = e.groupby("timepoint")["endpoint"].nunique().to_dict()
    assert counts == {"baseline": 3, "induction": 7, "month6": 7, "month12": 7, "month18": 3}
    assert (e.loc[e["patient_id"] == "X", "reason"].isin(
        ["diagnosis_not_scored", "no_target_for_diagnosis", "no_lab_in_window"])).all()


def test_endpoint_names_rules_and_steroid_rule_come_from_the_settings():
    """A second study names its endpoints itself: clinical_remission by the remission rule
    without the steroid-free rule, and its own covering-rule time points."""
    st = Study()
    st.dtt_cd("P")
    st.visit("P", M6, hbi=2)
    st.med("P", "prednisone", M6 - 10, None)  # ongoing at month 6
    s = settings()
    s["endpoints"]["clinical_endpoints"] = {"clinical_remission": {"rule": "remission"}}
    s["endpoints"]["biomarker_endpoints"] = {"biomarker_remission": {"rule": "fc_or_crp_normal"}}
    out = st.endpoints(s)
    assert set(out["endpoint"]) == {"clinical_remission", "biomarker_remission"}
    r = row(out, patient_id="P", timepoint="month6", endpoint="clinical_remission")
    assert (r["status"], r["reason"]) == ("achieved", "hbi_le_4")  # no steroid-free rule asked for
    assert ep(st, "P", "month6", "sf_clinical_remission")["reason"] == "steroid_ongoing"  # this study's endpoint
    # the covering rule applies where the settings say: at month 6 an ongoing episode covers the date
    s2 = settings(steroids={"covering_rule_timepoints": ["induction", "month6"]})
    assert ep(st, "P", "month6", "sf_clinical_remission", s2)["reason"] == "steroid_at_assessment"
    bad = settings()
    bad["endpoints"]["clinical_endpoints"] = {"x": {"rule": "no_such_rule"}}
    with pytest.raises(ValueError, match="endpoints.clinical_endpoints.x: unknown rule 'no_such_rule'"):
        st.endpoints(bad)
