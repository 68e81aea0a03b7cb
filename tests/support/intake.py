"""The intake's name check for the default study, as ``ibd-pipeline run`` builds it
(``ingest.delivery_name_check`` with the study's CRF)."""

from ibd_pipeline.config import load_crf
from ibd_pipeline.ingest import delivery_name_check

NAME_CHECK = delivery_name_check(load_crf())
