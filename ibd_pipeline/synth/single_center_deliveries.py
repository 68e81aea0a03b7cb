"""The single-center study's synthetic delivery: the calibrated cohort
(:mod:`.single_center`) exported the way its hospital's REDCap exports it
(:mod:`.redcap`), into the center's inbox, with the ground truth beside it."""

from __future__ import annotations

import json
from pathlib import Path

from .redcap import write_redcap_export
from .single_center import generate_single_center


def write_single_center_delivery(inbox_root: Path, settings: dict, published: dict, seed: int | None = None,
                                 delivery_date: str | None = None, truth_dir: Path | None = None) -> Path:
    """Write ``redcap_records_<date>.csv`` and ``redcap_dictionary_<date>.csv`` of the
    calibrated cohort into ``inbox_root/<synth.center>/`` and the truth (one row per
    screened patient: included, exclusion reason, designed states; the calibration and the
    readings of the paper's inconsistencies) into ``truth_dir`` (default
    ``inbox_root.parent / 'ground_truth'``). ``seed`` defaults to ``synth.seed``, the date
    to the data cut-off. Returns the truth directory."""
    s = settings["synth"]
    seed = int(s["seed"] if seed is None else seed)
    date = delivery_date or str(settings["study"]["data_cutoff"]).replace("-", "")
    cohort = generate_single_center(published, settings, seed)
    export = write_redcap_export(cohort.frames, None, Path(inbox_root) / s["center"], date)
    truth = Path(truth_dir) if truth_dir else Path(inbox_root).parent / "ground_truth"
    truth.mkdir(parents=True, exist_ok=True)
    cohort.truth.to_csv(truth / "single_center_truth.csv", index=False)
    (truth / "single_center_design.json").write_text(
        json.dumps({"seed": seed, "records": export.n_records, "rows": export.n_rows,
                    "files": [export.records.name, export.dictionary.name], "design": cohort.design},
                   indent=1, default=str), encoding="utf-8")
    return truth
