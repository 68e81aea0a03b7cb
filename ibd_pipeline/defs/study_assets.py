"""Every pooled (unpartitioned) asset downstream of the SQL models, by domain."""

from .cohort import cohort_assets
from .outcomes import outcome_assets
from .quality import quality_asset_checks, quality_assets
from .statistics import statistics_assets

study_assets = [*cohort_assets, *outcome_assets, *statistics_assets, *quality_assets]
study_asset_checks = [*quality_asset_checks]
