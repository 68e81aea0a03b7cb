"""Biomarker values, safety, exposure, persistence and baseline covariates (STUDY.md
"Endpoints" - Safety/Persistence, "Statistics"; study.yaml ``baseline``)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from tests.cohort.test_cohort_frames import START, Study, row, settings

from ibd_pipeline.clinical.labs import compare
from ibd_pipeline.config import load_crf
from ibd_pipeline.endpoints import (
    baseline_covariates,
    biomarkers,
    exposure,
    persistence,
    treatment_emergent_aes,
)


# ------------------------------------------------------------------ qualifiers
@pytest.mark.parametrize(
    "value, q, op, thr, expected",
    [(5, "<", "<", 8, True), (10, "<", "<", 8, None), (200, ">", "<", 8, False), (8, None, "<", 8, False),
     (8, "<", "<", 8, True), (5, ">", "<", 8, None), (35, None, "<=", 35, True), (36, "<", "<=", 35, None),
     (9, ">", ">", 8, True), (8, ">", ">", 8, True), (8, None, ">", 8, False), (5, "<", ">", 8, False),
     (None, None, "<", 8, None), (5, "", "<", 8, True)],
)
def test_compare_with_detection_limit_qualifiers(value, q, op, thr, expected):
    assert compare(value, q, op, thr) is expected


# ------------------------------------------------------------------ biomarkers
def test_biomarkers_per_timepoint_each_test_on_its_own_with_hdl_tc_ratio():
    st = Study()
    st.dtt_cd("C")
    st.dtt_uc("U", center="zju2")
    st.lab("C", "CRP", -10, 12)
    st.lab("C", "CRP", -2, 5, "<")  # closest to day 0
    st.lab("C", "HDL", -3, 1.2)
    st.lab("C", "TC", -1, 4.8)
    st.lab("C", "ALB", 84 + 28, 38)  # CD induction window edge
    st.lab("C", "NEUT", 0, 3)  # not a trajectory biomarker
    st.lab("U", "FC", 56 - 28, 900)  # UC induction window edge
    st.lab("U", "FC", 84 + 1, 50)  # outside the UC induction window
    st.lab("U", "VITD25", 547, 40)
    st.lab("U", "HDL", 182, 1.0)  # no TC at month 6: no ratio
    b = biomarkers(st.patients, st.labs, settings(), load_crf())
    assert list(b.columns) == ["patient_id", "center", "diagnosis", "timepoint", "test", "value", "qualifier",
                               "sample_date", "day", "unit"]
    got = {(r.patient_id, r.timepoint, r.test): (r.value, r.qualifier, r.day, r.unit) for r in b.itertuples()}
    assert got[("C", "baseline", "CRP")] == (5.0, "<", -2, "mg/L")
    assert got[("C", "baseline", "HDL_TC_RATIO")][0] == pytest.approx(1.2 / 4.8)
    assert got[("C", "baseline", "HDL_TC_RATIO")][2] == -1  # the later of the two samples
    assert got[("C", "induction", "ALB")] == (38.0, None, 112, "g/L")
    assert got[("U", "induction", "FC")] == (900.0, None, 28, "ug/g")
    assert got[("U", "month18", "VITD25")][0] == 40.0
    assert ("C", "baseline", "NEUT") not in got and ("C", "baseline", "HDL") not in got
    assert not any(k[2] == "HDL_TC_RATIO" and k[0] == "U" for k in got)
    assert row(b, patient_id="U", test="FC")["center"] == "zju2"
    assert len(b) == 5


def test_biomarkers_refuse_non_canonical_units():
    st = Study()
    st.dtt_cd("C")
    st.lab("C", "CRP", -2, 0.5, unit="mg/dL")
    with pytest.raises(ValueError, match="canonical unit"):
        biomarkers(st.patients, st.labs, settings(), load_crf())


# ---------------------------------------------------------------------- safety
def test_treatment_emergent_window():
    st = Study()
    st.dtt_cd("S", stop_day=100, stop_reason="adverse_event", followup_day=200)
    st.ae("S", "rash", -1)  # before day 0
    st.ae("S", "acne", 0)
    st.ae("S", "infection", 130)  # stop + 30
    st.ae("S", "anemia", 131)  # stop + 31
    st.dtt_cd("O", followup_day=500)  # ongoing: every onset from day 0
    st.ae("O", "vte", 450)
    st.ae("O", "neutropenia", 451, serious=True, led_to_discontinuation=True)
    ae = treatment_emergent_aes(st.patients, st.adverse_events, settings(), load_crf())
    assert list(ae.columns) == ["patient_id", "center", "diagnosis", "onset_date", "day", "term", "serious",
                                "led_to_discontinuation"]
    assert sorted(zip(ae["patient_id"], ae["term"])) == [
        ("O", "neutropenia"), ("O", "vte"), ("S", "acne"), ("S", "infection")]
    assert row(ae, term="vte")["serious"]  # serious by definition (CRF)
    assert not row(ae, term="acne")["serious"]
    assert row(ae, term="neutropenia")["led_to_discontinuation"]
    assert row(ae, term="infection")["day"] == 130
    s = settings(safety={"treatment_emergent_days_after_stop": 31})
    assert "anemia" in set(treatment_emergent_aes(st.patients, st.adverse_events, s, load_crf())["term"])


def test_exposure_and_persistence():
    st = Study()
    st.dtt_cd("STOP", stop_day=120, stop_reason="inefficacy", followup_day=300)
    st.dtt_uc("ON", followup_day=365)
    ex = exposure(st.patients, settings())
    assert list(ex.columns) == ["patient_id", "center", "diagnosis", "exposure_days", "exposure_years"]
    assert row(ex, patient_id="STOP")["exposure_days"] == 120
    assert row(ex, patient_id="ON")["exposure_years"] == pytest.approx(365 / 365.25)
    p = persistence(st.patients)
    assert list(p.columns) == ["patient_id", "center", "diagnosis", "time_days", "event", "stop_reason"]
    assert tuple(row(p, patient_id="STOP")[["time_days", "event", "stop_reason"]]) == (120, 1, "inefficacy")
    assert tuple(row(p, patient_id="ON")[["time_days", "event"]]) == (365, 0)
    assert row(p, patient_id="ON")["stop_reason"] is None


# ------------------------------------------------------------ baseline covariates
def covariates(st: Study, s=None) -> pd.DataFrame:
    return baseline_covariates(st.patients, st.medications, st.surgeries, st.labs, st.assessments, s or settings(), load_crf())


def test_baseline_covariates_thresholds_and_prior_therapy():
    st = Study()
    # BMI 18.5 exactly (weight 53.465 kg at 170 cm); albumin 35; CRP 8; FC 150: all at the boundary
    st.dtt_cd("A", height_cm=170.0, weight_kg=18.5 * 1.7**2, sex="F", diagnosis_years=7,
              birth_date=START - pd.DateOffset(years=30))
    st.lab("A", "ALB", -5, 35)
    st.lab("A", "CRP", -5, 8)
    st.lab("A", "FC", -5, 150)
    st.med("A", "ustekinumab", -90, -30, "primary_nonresponse")  # prior IL-12/23
    st.med("A", "tacrolimus", -400, -300, "other")  # {drugs: [tacrolimus]} and immunosuppressant
    st.med("A", "prednisone", -20, 0, "elective")  # covers day 0
    st.med("A", "mesalazine", -400, None)  # ongoing: concomitant with UPA
    st.med("A", "thalidomide", -400, -1, "other")  # ended the day before: not concomitant
    st.surgery("A", "perianal_abscess_drainage", -100)  # IBD-related surgery history
    # above every threshold
    st.dtt_cd("B", height_cm=170.0, weight_kg=54.0, eim_skin=True, cd_perianal=True)
    st.lab("B", "ALB", -5, 35.1)
    st.lab("B", "CRP", -5, 8.1)
    st.lab("B", "FC", -5, 1800, ">")
    st.med("B", "prednisone", -20, -1, "elective")  # stopped the day before day 0
    st.surgery("B", "ileocecal_resection", -100, ibd_related=False)
    st.dtt_uc("U")  # no labs
    c = covariates(st)
    a, b, u = (row(c, patient_id=x) for x in ("A", "B", "U"))
    assert a["bmi"] == pytest.approx(18.5) and a["bmi_le_18_5"] and not b["bmi_le_18_5"]
    assert a["albumin_le_35"] and not b["albumin_le_35"]
    assert not a["crp_gt_8"] and b["crp_gt_8"]
    assert not a["fc_gt_150"] and b["fc_gt_150"] and b["fc"] == 1800
    assert pd.isna(u["albumin"]) and pd.isna(u["crp_gt_8"])
    assert a["n_prior_mechanisms"] == 3 and b["n_prior_mechanisms"] == 2  # anti-TNF, anti-integrin (+ IL-23 path)
    assert a["prior_anti_il12_23_or_il23"] and not b["prior_anti_il12_23_or_il23"]
    assert a["prior_tacrolimus"] and a["prior_immunosuppressant"] and not b["prior_tacrolimus"]
    assert a["prior_glucocorticoid"] and a["prior_anti_tnf"] and a["prior_anti_integrin"] and u["prior_jak"]
    assert a["steroid_at_baseline"] and not b["steroid_at_baseline"]
    assert a["concomitant_mesalazine"] and not a["concomitant_thalidomide"]
    assert a["surgery_history"] and not b["surgery_history"]
    assert b["perianal"] and not a["perianal"] and not u["perianal"]
    assert b["eim_any"] and b["eim_skin"] and not a["eim_any"]
    assert not a["male"] and b["male"]
    assert a["age"] == 30 and a["montreal_age"] == "A2" and pd.isna(u["montreal_age"])
    assert u["uc_extent"] == "E3" and a["cd_location"] == "L3"
    assert math.isclose(a["disease_duration_years"], (START - (START - pd.DateOffset(years=7))).days / 365.25)


@pytest.mark.parametrize("age_at_dx, cls", [(16, "A1"), (17, "A2"), (40, "A2"), (41, "A3")])
def test_montreal_age(age_at_dx, cls):
    st = Study()
    st.dtt_cd("P", birth_date=START - pd.DateOffset(years=age_at_dx + 5), diagnosis_years=5)
    assert row(covariates(st), patient_id="P")["montreal_age"] == cls


def test_covariate_groups_and_mechanisms_follow_the_settings():
    st = Study()
    st.dtt_cd("P")
    st.med("P", "ustekinumab", -300, -250, "primary_nonresponse")
    st.med("P", "guselkumab", -200, -150, "primary_nonresponse")
    meds = st.medications.assign(mechanism="stale")  # a core column is never trusted
    s = settings(dtt={"mechanism_groups": {"anti_il23_pathway": []}},
                 baseline={"prior_drug_groups": {"il23_only": {"classes": ["anti_il23"]}},
                           "concomitant_drugs": ["azathioprine"]})
    c = baseline_covariates(st.patients, meds, st.surgeries, st.labs, st.assessments, s, load_crf())
    r = row(c, patient_id="P")
    assert r["n_prior_mechanisms"] == 4 and r["prior_il23_only"] and "concomitant_azathioprine" in c.columns
    assert row(covariates(st), patient_id="P")["n_prior_mechanisms"] == 3
