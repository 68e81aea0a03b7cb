"""The report's endpoint definitions are written from the study settings
(endpoints/definitions.py): a threshold changed in study.yaml changes the text, and the
second study's rules (no percentage response rule, CRP <= 5 AND FC <= 250, NRI for the
clinical endpoints only, the reached-or-stopped sets) are stated as it applies them."""

from __future__ import annotations

from ibd_pipeline.config import PROJECT_ROOT, load_settings
from ibd_pipeline.endpoints.definitions import endpoint_definitions, missing_data_text

UNITS = {"CRP": "mg/L", "FC": "\u00b5g/g"}


def _texts(settings):
    return {(d.endpoint, d.diagnosis): d.text for d in endpoint_definitions(settings, UNITS)}


def test_the_multicenter_definitions_follow_its_settings():
    s = load_settings()
    t = _texts(s)
    assert t[("sf_clinical_remission", "CD")] == "HBI \u2264 4 and steroid-free"
    assert t[("clinical_response", "CD")] == "HBI decrease \u2265 3 points or \u2265 50% from baseline"
    assert t[("endoscopic_remission", "CD")].startswith("SES-CD \u2264 3, or Rutgeerts i0/i1")
    assert t[("clinical_response", "UC")].startswith("adapted Mayo decrease \u2265 2 points and \u2265 30%")
    assert t[("biochemical_remission", None)] == "FC < 150 \u00b5g/g or CRP < 8 mg/L"
    assert missing_data_text(s).startswith("Stopping UPA or an IBD-related bowel resection before a time point")
    # a threshold of the settings is the text's
    s["endpoints"]["CD"]["remission_hbi_max"] = 3
    s["endpoints"]["biochemical"]["crp_below"] = 10
    t = _texts(s)
    assert t[("sf_clinical_remission", "CD")] == "HBI \u2264 3 and steroid-free"
    assert t[("crp_normal", None)] == "CRP < 10 mg/L"


def test_the_second_study_definitions_are_its_own():
    s = load_settings(PROJECT_ROOT / "studies" / "single_center_cd" / "study.yaml")
    t = _texts(s)
    assert {dx for _, dx in t} == {"CD", None}  # no UC rules in a CD-only study
    assert t[("clinical_remission", "CD")] == "HBI \u2264 4"  # not steroid-free
    assert t[("clinical_response", "CD")] == "HBI decrease \u2265 3 points from baseline"  # no percentage rule
    assert t[("endoscopic_remission", "CD")] == "SES-CD \u2264 2"
    assert t[("biomarker_remission", None)] == "FC \u2264 250 \u00b5g/g and CRP \u2264 5 mg/L, each measured"
    text = missing_data_text(s, lambda n: n.replace("_", " ").capitalize())
    assert "reached it by the data cut-off (2025-09-30) or stopped UPA" in text
    assert "Stopping UPA before a time point counts as non-response for clinical remission and clinical response" in text
    assert "bowel resection" not in text
    assert text.endswith("Endoscopic remission and endoscopic response: evaluated as measured "
                         "(a stop before the time point is not a non-response).")
