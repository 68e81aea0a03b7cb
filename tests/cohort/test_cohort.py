"""IOIBD DTT criteria, eligibility and patient flow: hand-built patients at and beside
every threshold (STUDY.md "DTT-IBD per the IOIBD consensus", "Inclusion and exclusion")."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.cohort.test_cohort_frames import START, Study, row, settings

from ibd_pipeline.cohort import flow_diagram, patient_flow, reason_order


def cd_with_failures(st: Study, pid: str, *episodes, **kw):
    """A CD patient with a valid baseline and post-baseline visit whose only DTT evidence is
    ``episodes`` = (drug, stop_reason) advanced-therapy episodes before UPA start."""
    st.patient(pid, diagnosis="CD", **kw)
    for i, (drug, reason) in enumerate(episodes):
        st.med(pid, drug, -900 + 200 * i, -800 + 200 * i, reason)
    st.visit(pid, -7, hbi=8)
    st.visit(pid, 30, hbi=6)
    return pid


# ---------------------------------------------------------------- criterion 1
def test_two_anti_tnfs_are_one_mechanism_anti_tnf_plus_vedolizumab_are_two():
    st = Study()
    cd_with_failures(st, "ONE", ("infliximab", "primary_nonresponse"), ("adalimumab", "secondary_loss_of_response"))
    cd_with_failures(st, "TWO", ("infliximab", "primary_nonresponse"), ("vedolizumab", "secondary_loss_of_response"))
    d = st.dtt()
    one, two = row(d, patient_id="ONE"), row(d, patient_id="TWO")
    assert one["failed_mechanisms"] == ["anti_tnf"] and one["n_failed_mechanisms"] == 1
    assert not one["crit1_advanced_failure"] and not one["is_dtt"]
    assert two["failed_mechanisms"] == ["anti_integrin", "anti_tnf"] and two["n_failed_mechanisms"] == 2
    assert two["crit1_advanced_failure"] and two["is_dtt"] and two["criteria_met"] == ["advanced_failure"]
    el = st.eligibility()
    assert row(el, patient_id="ONE")["exclusion_reason"] == "not_dtt"
    assert row(el, patient_id="TWO")["included"]


def test_ustekinumab_then_risankizumab_one_mechanism_by_default_two_when_split():
    st = Study()
    cd_with_failures(st, "IL", ("ustekinumab", "primary_nonresponse"), ("risankizumab", "secondary_loss_of_response"))
    d = row(st.dtt(), patient_id="IL")
    assert d["failed_mechanisms"] == ["anti_il23_pathway"] and not d["is_dtt"]
    split = settings(dtt={"mechanism_groups": {"anti_il23_pathway": []}})
    d = row(st.dtt(split), patient_id="IL")
    assert d["failed_mechanisms"] == ["anti_il12_23", "anti_il23"] and d["is_dtt"]
    assert row(st.eligibility(split), patient_id="IL")["included"]


def test_intolerance_is_not_failure_by_default_and_is_with_the_setting():
    st = Study()
    cd_with_failures(st, "INT", ("infliximab", "primary_nonresponse"), ("vedolizumab", "intolerance"))
    cd_with_failures(st, "ELECT", ("infliximab", "primary_nonresponse"), ("vedolizumab", "elective"))
    d = st.dtt()
    assert row(d, patient_id="INT")["n_failed_mechanisms"] == 1 and not row(d, patient_id="INT")["is_dtt"]
    d = st.dtt(settings(dtt={"intolerance_counts_as_failure": True}))
    assert row(d, patient_id="INT")["failed_mechanisms"] == ["anti_integrin", "anti_tnf"]
    assert row(d, patient_id="INT")["is_dtt"]
    assert not row(d, patient_id="ELECT")["is_dtt"]  # elective stops never count


def test_only_advanced_episodes_started_before_upa_count():
    st = Study()
    st.patient("P", diagnosis="CD")
    st.med("P", "infliximab", -300, -200, "primary_nonresponse")
    st.med("P", "azathioprine", -300, -200, "primary_nonresponse")  # advanced: false
    st.med("P", "vedolizumab", 0, 20, "primary_nonresponse")  # starts on day 0, not before
    assert row(st.dtt(), patient_id="P")["failed_mechanisms"] == ["anti_tnf"]
    st2 = Study()
    st2.patient("Q", diagnosis="CD")
    st2.med("Q", "infliximab", -300, -200, "primary_nonresponse")
    st2.med("Q", "vedolizumab", -1, -1, "primary_nonresponse")  # day -1: before
    assert row(st2.dtt(), patient_id="Q")["n_failed_mechanisms"] == 2
    # the minimum number of mechanisms is a setting
    assert row(st.dtt(settings(dtt={"min_failed_mechanisms": 1})), patient_id="P")["is_dtt"]


# ---------------------------------------------------------------- criterion 2
def cd_resected(st: Study, pid: str, n: int, hbi=7, ses=None, rutgeerts=None, **kw):
    st.patient(pid, diagnosis="CD", **kw)
    for i in range(n):
        st.surgery(pid, "ileocecal_resection", -1000 + 300 * i)
    st.visit(pid, -7, hbi=hbi)
    if ses is not None or rutgeerts is not None:
        st.visit(pid, -40, ses_cd=ses, rutgeerts=rutgeerts)
    st.visit(pid, 30, hbi=hbi)
    return pid


def test_adults_need_two_resections_one_is_not_enough():
    st = Study()
    cd_resected(st, "R1", 1)
    cd_resected(st, "R2", 2)
    d = st.dtt()
    assert row(d, patient_id="R1")["n_bowel_resections"] == 1 and not row(d, patient_id="R1")["is_dtt"]
    assert row(d, patient_id="R2")["n_bowel_resections"] == 2
    assert row(d, patient_id="R2")["crit2_cd_resections"] and row(d, patient_id="R2")["criteria_met"] == ["cd_resections"]
    assert row(st.dtt(settings(dtt={"resections_required": {"adult": 1}})), patient_id="R1")["is_dtt"]


def test_only_ibd_related_bowel_resections_before_upa_count():
    st = Study()
    st.patient("P", diagnosis="CD")
    st.surgery("P", "ileocecal_resection", -500)
    st.surgery("P", "small_bowel_resection", -400, ibd_related=False)
    st.surgery("P", "stricturoplasty", -300)  # not a bowel resection
    st.surgery("P", "segmental_colectomy", 0)  # on day 0: not before UPA start
    st.visit("P", -7, hbi=9)
    d = row(st.dtt(), patient_id="P")
    assert d["n_bowel_resections"] == 1 and not d["crit2_cd_resections"]


def test_uc_patients_never_meet_the_cd_resection_criterion():
    st = Study()
    st.patient("U", diagnosis="UC")
    st.surgery("U", "segmental_colectomy", -500)
    st.surgery("U", "segmental_colectomy", -300)
    st.visit("U", -40, ses_cd=10)
    assert not row(st.dtt(), patient_id="U")["crit2_cd_resections"]


@pytest.mark.parametrize(
    "hbi, ses, rutgeerts, active",
    [
        (4, None, None, False),
        (5, None, None, True),  # HBI >= 5
        (4, 3, None, False),
        (4, 4, None, True),  # SES-CD > 3
        (4, None, "i1", False),
        (4, None, "i2", True),  # Rutgeerts >= i2
    ],
)
def test_active_disease_thresholds(hbi, ses, rutgeerts, active):
    st = Study()
    cd_resected(st, "P", 2, hbi=hbi, ses=ses, rutgeerts=rutgeerts)
    d = row(st.dtt(), patient_id="P")
    assert bool(d["active_disease_baseline"]) == active
    assert bool(d["crit2_cd_resections"]) == active and bool(d["is_dtt"]) == active


def test_active_disease_baseline_windows():
    st = Study()
    st.patient("P", diagnosis="CD")
    st.surgery("P", "ileocecal_resection", -900)
    st.surgery("P", "ileocecal_resection", -600)
    st.visit("P", -31, hbi=12)  # outside the baseline visit window -30..0
    st.visit("P", -61, ses_cd=20)  # outside the baseline endoscopy window -60..0
    st.visit("P", -3, hbi=3)
    assert not row(st.dtt(), patient_id="P")["active_disease_baseline"]
    st.visit("P", -60, ses_cd=8)  # inside -60..0
    assert row(st.dtt(), patient_id="P")["active_disease_baseline"]


def test_one_resection_makes_a_16_year_old_dtt_and_excluded_as_under_18():
    st = Study()
    cd_resected(st, "KID", 1, age=16)
    cd_resected(st, "KID_INACTIVE", 1, hbi=3, age=16)
    cd_resected(st, "ADULT", 1, age=18)
    d = st.dtt()
    assert row(d, patient_id="KID")["is_dtt"] and row(d, patient_id="KID")["crit2_cd_resections"]
    assert not row(d, patient_id="KID_INACTIVE")["is_dtt"]
    assert not row(d, patient_id="ADULT")["is_dtt"]
    el = st.eligibility()
    assert row(el, patient_id="KID")["exclusion_reason"] == "under_18"
    assert row(el, patient_id="KID")["all_reasons"] == "under_18"
    assert row(el, patient_id="KID_INACTIVE")["exclusion_reason"] == "not_dtt"
    assert row(el, patient_id="KID_INACTIVE")["all_reasons"] == "not_dtt|under_18"
    assert row(el, patient_id="ADULT")["exclusion_reason"] == "not_dtt"


def test_child_age_is_completed_years_on_the_upa_start_date():
    st = Study()
    # 18th birthday on the day after UPA start: 17 at start -> a child
    cd_resected(st, "ALMOST", 1, birth_date=START - pd.DateOffset(years=18) + pd.Timedelta(days=1))
    # 18th birthday on the UPA start date: an adult
    cd_resected(st, "JUST", 1, birth_date=START - pd.DateOffset(years=18))
    d = st.dtt()
    assert row(d, patient_id="ALMOST")["age_at_upa_start"] == 17 and row(d, patient_id="ALMOST")["is_dtt"]
    assert row(d, patient_id="JUST")["age_at_upa_start"] == 18 and not row(d, patient_id="JUST")["is_dtt"]


# ------------------------------------------------------------- criteria 3-5
def test_pouchitis_complex_perianal_psychosocial_are_recorded_by_name():
    st = Study()
    st.patient("P", diagnosis="UC", pouchitis_chronic_ab_refractory=True, psychosocial_comorbidity=True)
    st.patient("Q", diagnosis="CD", complex_perianal=True)
    st.patient("N", diagnosis="CD", complex_perianal=None)  # missing = no
    d = st.dtt()
    assert row(d, patient_id="P")["criteria_met"] == ["pouchitis", "psychosocial"]
    assert row(d, patient_id="Q")["criteria_met"] == ["complex_perianal"] and row(d, patient_id="Q")["is_dtt"]
    assert not row(d, patient_id="N")["is_dtt"] and row(d, patient_id="N")["criteria_met"] == []


# ----------------------------------------------------------------- eligibility
def test_biologic_ending_the_day_before_upa_start_is_not_concomitant_overlapping_is():
    st = Study()
    st.dtt_cd("BEFORE")
    st.med("BEFORE", "ustekinumab", -200, -1, "elective")
    st.dtt_cd("SAMEDAY")
    st.med("SAMEDAY", "ustekinumab", -200, 0, "elective")
    st.dtt_cd("ONGOING")
    st.med("ONGOING", "risankizumab", -200, None)
    st.dtt_cd("AFTERSTOP", stop_day=100, stop_reason="inefficacy")
    st.med("AFTERSTOP", "adalimumab", 101, None)  # starts after UPA treatment ended
    st.dtt_cd("DURING", stop_day=100, stop_reason="inefficacy")
    st.med("DURING", "vedolizumab", 100, None)  # starts on the stop date: shares one day
    st.dtt_cd("NONBIO")
    st.med("NONBIO", "azathioprine", -200, None)  # not a biologic class
    el = st.eligibility()
    for pid, conc in [("BEFORE", False), ("SAMEDAY", True), ("ONGOING", True), ("AFTERSTOP", False),
                      ("DURING", True), ("NONBIO", False)]:
        r = row(el, patient_id=pid)
        assert (r["exclusion_reason"] == "concomitant_biologic") == conc, pid
        assert r["included"] == (not conc), pid
    # the class list is a setting
    s = settings(eligibility={"concomitant_biologic_classes": ["anti_tnf", "anti_integrin"]})
    assert row(st.eligibility(s), patient_id="ONGOING")["included"]


@pytest.mark.parametrize("diagnosis, days, included", [("UC", 55, False), ("UC", 56, True), ("CD", 83, False), ("CD", 84, True)])
def test_exposure_shorter_than_induction(diagnosis, days, included):
    st = Study()
    make = st.dtt_uc if diagnosis == "UC" else st.dtt_cd
    make("STOP", stop_day=days, stop_reason="adverse_event", followup_day=days + 60)
    make("FU", followup_day=days)  # ongoing: exposure runs to the last follow-up
    el = st.eligibility()
    for pid in ("STOP", "FU"):
        r = row(el, patient_id=pid)
        assert r["included"] == included
        assert r["exclusion_reason"] == (None if included else "other:short_exposure")


def test_short_exposure_threshold_is_a_setting():
    st = Study()
    st.dtt_uc("U", stop_day=55, stop_reason="adverse_event")
    assert row(st.eligibility(), patient_id="U")["exclusion_reason"] == "other:short_exposure"
    s = settings(eligibility={"min_exposure_days": {"UC": 50}})
    assert row(st.eligibility(s), patient_id="U")["included"]


def test_insufficient_data_cd():
    st = Study()
    st.dtt_cd("NO_BASE", baseline_hbi=None)
    st.visit("NO_BASE", -31, hbi=9)  # outside -30..0
    st.dtt_cd("PARTIAL", baseline_hbi=None)
    st.visit("PARTIAL", -5, hbi_wellbeing=2, hbi_pain=1, hbi_liquid_stools=4, hbi_mass=0)  # one item missing
    st.dtt_cd("NO_POST", post=False)
    st.visit("NO_POST", 0, hbi=7)  # day 0 is not post-baseline
    st.dtt_cd("DAY1", post=False)
    st.visit("DAY1", 1, ses_cd=10)  # any assessment with day > 0
    st.dtt_cd("OK", baseline_hbi=None)
    st.visit("OK", -30, hbi=9)
    el = st.eligibility()
    for pid in ("NO_BASE", "PARTIAL", "NO_POST"):
        assert row(el, patient_id=pid)["exclusion_reason"] == "insufficient_data", pid
    assert row(el, patient_id="DAY1")["included"]
    assert row(el, patient_id="OK")["included"]


def test_insufficient_data_uc_needs_stool_bleeding_and_a_baseline_endoscopy():
    st = Study()
    st.dtt_uc("NO_ENDO", baseline=(3, 2, None))
    st.visit("NO_ENDO", -61, mayo_endo=3)  # outside the endoscopy window -60..0
    st.dtt_uc("ENDO60", baseline=(3, 2, None))
    st.visit("ENDO60", -60, mayo_endo=3)
    st.patient("SPLIT", diagnosis="UC")  # stool and bleeding on different visits: no adapted Mayo
    st.med("SPLIT", "adalimumab", -900, -600, "primary_nonresponse")
    st.med("SPLIT", "tofacitinib", -500, -100, "secondary_loss_of_response")
    st.visit("SPLIT", -3, mayo_stool=2)
    st.visit("SPLIT", -10, mayo_bleeding=2, mayo_endo=2)
    st.visit("SPLIT", 30, mayo_stool=2, mayo_bleeding=1)
    el = st.eligibility()
    assert row(el, patient_id="NO_ENDO")["exclusion_reason"] == "insufficient_data"
    assert row(el, patient_id="ENDO60")["included"]
    assert row(el, patient_id="SPLIT")["exclusion_reason"] == "insufficient_data"


def test_ibdu_is_not_scored_and_falls_to_other_ibdu():
    st = Study()
    st.patient("X", diagnosis="IBDU", complex_perianal=True)  # DTT, no scores at all
    r = row(st.eligibility(), patient_id="X")
    assert r["exclusion_reason"] == "other:ibdu" and r["all_reasons"] == "other:ibdu"


@pytest.mark.parametrize(
    "test, value, excluded",
    [("ALT", 120, False), ("ALT", 121, True), ("AST", 105, False), ("AST", 106, True),
     ("EGFR", 30, False), ("EGFR", 29, True)],
)
def test_liver_or_kidney_thresholds(test, value, excluded):
    # ULN from the CRF: ALT 40 (x3 = 120), AST 35 (x3 = 105); eGFR < 30
    st = Study()
    st.dtt_cd("P")
    st.lab("P", test, -2, value)
    r = row(st.eligibility(), patient_id="P")
    assert (r["exclusion_reason"] == "other:liver_or_kidney") == excluded


def test_liver_or_kidney_with_detection_limit_qualifiers():
    st = Study()
    st.dtt_cd("UNDECIDED")
    st.lab("UNDECIDED", "ALT", -2, 100, ">")  # > 100 may or may not exceed 120: not excluded
    st.dtt_cd("ABOVE")
    st.lab("ABOVE", "ALT", -2, 120, ">")  # > 120: above 3 x ULN
    st.dtt_cd("LOW_EGFR")
    st.lab("LOW_EGFR", "EGFR", -2, 15, "<")
    el = st.eligibility()
    assert row(el, patient_id="UNDECIDED")["included"]
    assert row(el, patient_id="ABOVE")["exclusion_reason"] == "other:liver_or_kidney"
    assert row(el, patient_id="LOW_EGFR")["exclusion_reason"] == "other:liver_or_kidney"


def test_liver_or_kidney_uses_the_baseline_lab_only():
    st = Study()
    st.dtt_cd("P")
    st.lab("P", "ALT", -31, 500)  # outside -30..0
    st.lab("P", "ALT", 10, 500)  # after day 0
    st.lab("P", "EGFR", -20, 20)
    st.lab("P", "EGFR", -1, 90)  # the closest to day 0 wins
    assert row(st.eligibility(), patient_id="P")["included"]
    assert row(st.eligibility(settings(eligibility={"egfr_min": 95})), patient_id="P")["exclusion_reason"] == (
        "other:liver_or_kidney"
    )


def test_prior_total_colectomy_only_total_and_only_before_start():
    st = Study()
    st.dtt_uc("TOTAL")
    st.surgery("TOTAL", "total_proctocolectomy", -400)
    st.dtt_uc("SUBTOTAL")
    st.surgery("SUBTOTAL", "subtotal_colectomy", -400)
    st.dtt_uc("LATER")
    st.surgery("LATER", "total_proctocolectomy", 100)
    el = st.eligibility()
    assert row(el, patient_id="TOTAL")["exclusion_reason"] == "other:prior_total_colectomy"
    assert row(el, patient_id="SUBTOTAL")["included"]
    assert row(el, patient_id="LATER")["included"]


@pytest.mark.parametrize(
    "field, reason",
    [("pregnant_or_breastfeeding", "other:pregnancy_or_breastfeeding"),
     ("serious_infection_at_start", "other:serious_infection"), ("malignancy_history", "other:malignancy")],
)
def test_flag_exclusions(field, reason):
    st = Study()
    st.dtt_cd("P", **{field: True})
    assert row(st.eligibility(), patient_id="P")["exclusion_reason"] == reason


def test_first_reason_in_settings_order_and_all_reasons_listed():
    st = Study()
    st.patient("MANY", diagnosis="CD", age=17, stop_day=20, stop_reason="adverse_event",
               malignancy_history=True)  # not DTT, under 18, no scores, short exposure, malignancy
    st.med("MANY", "adalimumab", -100, None)  # concomitant biologic
    r = row(st.eligibility(), patient_id="MANY")
    assert not r["included"]
    assert r["exclusion_reason"] == "not_dtt"
    assert r["all_reasons"] == ("not_dtt|under_18|insufficient_data|concomitant_biologic|"
                                "other:malignancy|other:short_exposure")
    # reorder without code edits
    s = settings(eligibility={"order": ["other", "concomitant_biologic", "not_dtt", "under_18", "insufficient_data"],
                              "other_order": ["short_exposure", "malignancy", "ibdu", "pregnancy_or_breastfeeding",
                                              "serious_infection", "liver_or_kidney", "prior_total_colectomy"]})
    r = row(st.eligibility(s), patient_id="MANY")
    assert r["exclusion_reason"] == "other:short_exposure"
    assert r["all_reasons"].split("|")[:3] == ["other:short_exposure", "other:malignancy", "concomitant_biologic"]
    assert reason_order(s)[0] == "other:short_exposure"


def test_eligibility_columns_and_included_rows():
    st = Study()
    st.dtt_cd("A")
    st.dtt_uc("B")
    el = st.eligibility()
    assert list(el.columns) == ["patient_id", "center", "diagnosis", "included", "exclusion_reason", "all_reasons", "insufficient_data_detail"]
    assert el["included"].all() and el["exclusion_reason"].isna().all() and el["all_reasons"].isna().all()
    assert el["insufficient_data_detail"].isna().all()
    assert list(st.dtt().columns) == [
        "patient_id", "center", "diagnosis", "age_at_upa_start", "failed_mechanisms", "n_failed_mechanisms",
        "crit1_advanced_failure", "n_bowel_resections", "active_disease_baseline", "crit2_cd_resections",
        "crit3_pouchitis", "crit4_complex_perianal", "crit5_psychosocial", "criteria_met", "is_dtt",
    ]


def test_empty_side_tables():
    st = Study()
    st.patient("P", diagnosis="CD", complex_perianal=True)
    el = st.eligibility()
    assert row(el, patient_id="P")["exclusion_reason"] == "insufficient_data"


# ----------------------------------------------------------------------- flow
def small_flow_study() -> Study:
    st = Study()
    st.dtt_cd("C1", center="c1")
    st.dtt_uc("U1", center="c1")
    st.dtt_uc("U2", center="c2")
    st.patient("N1", center="c1")  # not DTT
    st.dtt_cd("K1", center="c2", age=17)
    st.dtt_uc("S1", center="c2", stop_day=10, stop_reason="adverse_event")
    st.dtt_cd("M1", center="c2", malignancy_history=True)
    return st


def test_patient_flow_counts_overall_and_per_center():
    el = small_flow_study().eligibility()
    f = patient_flow(el, settings())
    assert list(f.columns) == ["step", "reason", "center", "n", "counts"]

    def n(step, reason=None, center="all"):
        sel = f[(f["step"] == step) & (f["center"] == center)]
        sel = sel[sel["reason"].isna()] if reason is None else sel[sel["reason"] == reason]
        assert len(sel) == 1
        return int(sel["n"].iloc[0])

    assert n("screened") == 7 and n("excluded") == 4 and n("included") == 3
    assert n("excluded_by_reason", "not_dtt") == 1 and n("excluded_by_reason", "under_18") == 1
    assert n("excluded_by_reason", "insufficient_data") == 0  # zero counts are listed
    assert n("excluded_by_reason", "other") == 2
    assert n("excluded_by_reason", "other:short_exposure") == 1 and n("excluded_by_reason", "other:malignancy") == 1
    assert n("included_by_diagnosis", "UC") == 2 and n("included_by_diagnosis", "CD") == 1
    assert n("screened", center="c1") == 3 and n("included", center="c1") == 2
    assert n("screened", center="c2") == 4 and n("excluded_by_reason", "not_dtt", center="c2") == 0
    assert n("excluded", center="c2") == 3 and n("included_by_diagnosis", "UC", center="c2") == 1
    top = f[(f["step"] == "excluded_by_reason") & ~f["reason"].fillna("").str.contains(":")]
    assert top.groupby("center")["n"].sum().to_dict() == f[f["step"] == "excluded"].set_index("center")["n"].to_dict()


def test_flow_diagram_png_and_svg():
    f = patient_flow(small_flow_study().eligibility(), settings())
    png, svg = flow_diagram(f)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for text in ("Included (n = 3)", "Excluded (n = 4)", "History of malignancy (n = 1)", "UC", "CD"):
        assert text in svg
    assert flow_diagram(f) == (png, svg)  # deterministic
