"""Pure endpoint logic: time-point windows, endpoints, biomarkers, safety, persistence
and baseline covariates (STUDY.md "Time points and windows", "Endpoints")."""

from ibd_pipeline.endpoints.baseline import baseline_covariates
from ibd_pipeline.endpoints.biomarkers import biomarkers, compare
from ibd_pipeline.endpoints.evaluate import endpoints
from ibd_pipeline.endpoints.persistence import persistence
from ibd_pipeline.endpoints.safety import exposure, treatment_emergent_aes
from ibd_pipeline.endpoints.windows import select_in_window, select_visit

__all__ = [
    "baseline_covariates",
    "biomarkers",
    "compare",
    "endpoints",
    "exposure",
    "persistence",
    "select_in_window",
    "select_visit",
    "treatment_emergent_aes",
]
