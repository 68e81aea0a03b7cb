"""Every pooled (unpartitioned) asset downstream of the SQL models, by domain."""

from .cohort import build_cohort_assets
from .outcomes import outcome_assets
from .quality import build_quality_checks, quality_assets
from .statistics import build_statistics_assets


def study_assets(settings: dict) -> list:
    """The pooled assets of the study (its settings decide, e.g., whether there is a DTT
    table)."""
    return [*build_cohort_assets(settings), *outcome_assets, *build_statistics_assets(settings), *quality_assets]


def study_asset_checks(settings: dict, crf) -> list:
    """The pooled asset checks that depend on the study's settings and CRF."""
    return [build_quality_checks(settings, crf)]
