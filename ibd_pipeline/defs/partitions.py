"""Centers as static partitions: one partition per profile under centers/."""

import warnings

import dagster as dg

from ..config import center_ids

center_partitions = dg.StaticPartitionsDefinition(center_ids())


def center_check_spec(name: str, asset, description: str, blocking: bool = False) -> dg.AssetCheckSpec:
    """An asset check of a center-partitioned asset, itself partitioned by center: each
    center's result is its own (the UI shows one result per partition, not the three
    centers' results as one series). Dagster 1.13 marks partitioned checks as a preview
    feature; that one warning, about this deliberate use, is acknowledged here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking, partitions_def=center_partitions)
