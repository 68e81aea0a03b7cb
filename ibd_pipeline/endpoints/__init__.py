"""Pure endpoint logic: endpoints, biomarkers, safety, persistence and baseline
covariates (STUDY.md "Endpoints"); the time-point windows and lab comparisons they
apply are in ``ibd_pipeline.clinical``."""

from ibd_pipeline.endpoints.baseline import BASELINE_LAB_TESTS, baseline_covariates
from ibd_pipeline.endpoints.biomarkers import BIOMARKER_TESTS, RATIO_PARTS, biomarkers
from ibd_pipeline.endpoints.evaluate import ENDPOINT_LAB_TESTS
from ibd_pipeline.endpoints.evaluate import endpoints
from ibd_pipeline.endpoints.persistence import persistence
from ibd_pipeline.endpoints.safety import exposure, treatment_emergent_aes

# every lab test the endpoint package reads (callers may pass only these labs)
LAB_TESTS = tuple(dict.fromkeys([*ENDPOINT_LAB_TESTS, *BIOMARKER_TESTS, *RATIO_PARTS, *BASELINE_LAB_TESTS]))

__all__ = [
    "LAB_TESTS",
    "baseline_covariates",
    "biomarkers",
    "endpoints",
    "exposure",
    "persistence",
    "treatment_emergent_aes",
]
