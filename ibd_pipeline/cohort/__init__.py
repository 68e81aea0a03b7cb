"""Pure cohort logic: IOIBD difficult-to-treat criteria, eligibility, patient flow
(STUDY.md "DTT-IBD per the IOIBD consensus", "Inclusion and exclusion")."""

from ibd_pipeline.cohort.dtt import dtt_criteria
from ibd_pipeline.cohort.eligibility import LAB_TESTS, eligibility, lab_tests, reason_order
from ibd_pipeline.cohort.flow import flow_diagram, patient_flow

__all__ = ["LAB_TESTS", "dtt_criteria", "eligibility", "flow_diagram", "lab_tests", "patient_flow", "reason_order"]
