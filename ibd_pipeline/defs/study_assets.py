"""Every pooled (unpartitioned) asset downstream of the SQL models, by domain."""

from .cohort import cohort_assets
from .outcomes import outcome_assets
from .quality import build_quality_checks, quality_assets
from .statistics import statistics_assets

study_assets = [*cohort_assets, *outcome_assets, *statistics_assets, *quality_assets]


def study_asset_checks(settings: dict, crf) -> list:
    """The pooled asset checks that depend on the study's settings and CRF."""
    return [build_quality_checks(settings, crf)]
