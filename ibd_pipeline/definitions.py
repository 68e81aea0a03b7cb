"""The Dagster definitions of the study pipeline (`dagster dev` in the repository root
loads `defs` from here through workspace.yaml).

Two jobs: `center_job` (partitioned by center: extraction, reconciliation) and
`study_job` (the pooled warehouse, cohort, endpoints, statistics, report). The file-drop
sensor requests center runs; a run-status sensor requests the study run after them.
The executor is in-process by default (`IBD_EXECUTOR=multiprocess` to change).

One code location per study (workspace.yaml): the attribute of this module named after a
study (``multicenter_upa``, ``single_center_cd``, ... = ``config.study_names()``) is that
study's Definitions, with its own data directory; ``defs`` is the study in use
(``$IBD_STUDY``, else the default)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from . import config
from .config import data_paths, load_crf, load_settings

# The assets (ibd_pipeline.defs) are imported when a study's definitions are first built,
# after the process was switched to that study (study_definitions): their keys carry the
# study (defs/keys.py), so the import must not come before.

def study_graph(settings: dict) -> tuple[list, list]:
    """(center assets, pooled assets incl. the report and the snapshot) of a study."""
    from .defs import ingest, reconcile, warehouse_models
    from .defs.keys import AGREEMENT, DELIVERIES, DISCREPANCIES
    from .defs.publication import build_snapshot_asset
    from .defs.report import build_report_asset
    from .defs.study_assets import study_assets

    center = [ingest.staging_tables, *reconcile.build_center_assets(settings)]
    pooled = [warehouse_models.reference_tables, *warehouse_models.sql_model_assets, *study_assets(settings)]
    pooled_keys = sorted({k for a in pooled for k in a.keys}, key=lambda k: k.to_user_string())
    # the report reads every pooled table and the center-level provenance tables (the
    # agreement and discrepancies only with double abstraction)
    provenance = [DELIVERIES] + ([AGREEMENT, DISCREPANCIES] if settings.get("reconciliation") is not None else [])
    report = build_report_asset(pooled_keys + provenance)
    # the analysts' snapshot is published last, after every pooled asset and the report succeeded
    snapshot = build_snapshot_asset(pooled_keys + [report.key])
    return center, [*pooled, report, snapshot]


def executor_from_env(name: str | None = None):
    name = (name or os.environ.get("IBD_EXECUTOR", "in_process")).lower()
    if name in ("multiprocess", "multiprocessing"):
        return dg.multiprocess_executor
    if name in ("in_process", "inprocess", "in-process"):
        return dg.in_process_executor
    raise ValueError(f"IBD_EXECUTOR must be in_process or multiprocess, not {name!r}")


def build_definitions(
    data_dir: str | Path | None = None,
    settings_file: str | Path | None = None,
    key_file: str | Path | None = None,
    executor: str | None = None,
) -> dg.Definitions:
    """The study's Definitions for one data directory (tests build their own)."""
    from .defs.resources import build_resources
    from .defs.sensors import build_sensors
    from .defs.study_assets import study_asset_checks

    paths = data_paths(data_dir)
    settings_file = settings_file or os.environ.get("IBD_STUDY_SETTINGS")
    settings = load_settings(settings_file)
    center_assets, pooled_assets = study_graph(settings)
    center_selection = dg.AssetSelection.assets(*center_assets)
    center_job = dg.define_asset_job(
        "center_job",
        selection=center_selection,
        description="One center: extraction and validation, sample, agreement, worklist, reconciled tables.",
    )
    study_job = dg.define_asset_job(
        "study_job",
        selection=dg.AssetSelection.all() - center_selection,
        description="Pooled study: warehouse models, cohort, endpoints, statistics, quality, report, snapshot.",
    )
    return dg.Definitions(
        assets=[*center_assets, *pooled_assets],
        asset_checks=study_asset_checks(settings, load_crf()),
        jobs=[center_job, study_job],
        sensors=build_sensors(center_job, study_job),
        resources=build_resources(paths.root, settings_file, key_file or os.environ.get("IBD_PSEUDONYM_KEY_FILE")),
        executor=executor_from_env(executor),
    )


def study_definitions(name: str) -> dg.Definitions:
    """The Definitions of study ``name`` for its own code location. A code location is one
    process per study: when ``name`` is not the study of ``$IBD_STUDY``, this process is
    switched to it (``IBD_STUDY`` set; ``IBD_DATA_DIR``, ``IBD_STUDY_SETTINGS`` and
    ``IBD_CENTERS_DIR``, which belong to the other study, dropped), so every module reads
    this study's settings, centers and data directory."""
    import sys

    name = config.study_name(name)
    keys = sys.modules.get(f"{__package__}.defs.keys")
    if keys is not None and keys.STUDY != name:
        raise RuntimeError(f"this process defined the assets of study {keys.STUDY!r}; the definitions of {name!r} "
                           "need their own process (one code location per study, workspace.yaml)")
    if name != (os.environ.get("IBD_STUDY") or config.DEFAULT_STUDY):
        for var in ("IBD_DATA_DIR", "IBD_STUDY_SETTINGS", "IBD_CENTERS_DIR"):
            os.environ.pop(var, None)
    os.environ["IBD_STUDY"] = name
    return build_definitions()


_BUILT: dict[str, dg.Definitions] = {}


def __getattr__(attr: str) -> dg.Definitions:
    """``defs`` (the study in use) and one attribute per study, built on first access."""
    if attr == "defs":
        if attr not in _BUILT:
            _BUILT[attr] = build_definitions()
        return _BUILT[attr]
    if attr in config.study_names():
        if attr not in _BUILT:
            _BUILT[attr] = study_definitions(attr)
        return _BUILT[attr]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
