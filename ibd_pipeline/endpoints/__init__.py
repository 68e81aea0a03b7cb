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


def lab_tests(settings: dict) -> tuple[str, ...]:
    """Every lab test the endpoint package reads for the study: ``LAB_TESTS`` and the
    tests of its lab flags (``baseline.flags`` with ``source: lab:<TEST>``)."""
    flags = (settings.get("baseline") or {}).get("flags") or {}
    extra = [f["source"].split(":", 1)[1] for f in flags.values() if str(f.get("source", "")).startswith("lab:")]
    return tuple(dict.fromkeys([*LAB_TESTS, *extra]))

__all__ = [
    "LAB_TESTS",
    "lab_tests",
    "baseline_covariates",
    "biomarkers",
    "endpoints",
    "exposure",
    "persistence",
    "treatment_emergent_aes",
]
