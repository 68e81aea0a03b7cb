"""The study settings are validated once against the typed model (issue 15 item 1): a
typo, a wrong type or a dangling reference gives one clear error naming the file and
the key, and nothing runs."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from ibd_pipeline.config import load_settings, load_study_model, settings_path
from ibd_pipeline.study_model import StudySettingsError, validate_settings

from tests.support.fullrun import PROJECT, clean_env

GOOD = yaml.safe_load(settings_path().read_text(encoding="utf-8"))


def broken(**edits) -> dict:
    d = copy.deepcopy(GOOD)
    for path, value in edits.items():
        *parents, leaf = path.split("__")
        node = d
        for p in parents:
            node = node[p]
        node[leaf] = value
    return d


def test_the_projects_settings_are_valid_and_typed():
    m = load_study_model()
    assert m.statistics.predictor_outcome.timepoint == "month12"
    assert m.reconciliation.sample_fraction == pytest.approx(0.20)
    assert m.timepoints.targets["induction"] == {"UC": 56, "CD": 84}


def test_a_misspelt_key_is_an_error_naming_file_and_key():
    with pytest.raises(StudySettingsError) as e:
        validate_settings(broken(statistics__alpah=0.05), "studies/x/study.yaml")
    msg = str(e.value)
    assert msg.startswith("studies/x/study.yaml: 1 problem(s)")
    assert "statistics.alpah: unknown key" in msg


def test_a_wrong_type_and_an_out_of_range_value_are_both_listed():
    with pytest.raises(StudySettingsError) as e:
        validate_settings(broken(timepoints__window_halfwidth="28 days", reconciliation__sample_fraction=1.5), "s.yaml")
    msg = str(e.value)
    assert "2 problem(s)" in msg
    assert "timepoints.window_halfwidth:" in msg and "'28 days'" in msg
    assert "reconciliation.sample_fraction:" in msg and "1.5" in msg


def test_a_missing_section_and_a_dangling_time_point_are_errors():
    d = broken()
    del d["persistence"]
    with pytest.raises(StudySettingsError, match=r"persistence: Field required"):
        validate_settings(d, "s.yaml")
    with pytest.raises(StudySettingsError, match=r"statistics.predictor_outcome.timepoint: 'month13' is not a clinical"):
        validate_settings(broken(statistics__predictor_outcome={**GOOD["statistics"]["predictor_outcome"],
                                                                "timepoint": "month13"}), "s.yaml")
    with pytest.raises(StudySettingsError, match=r"timepoints: Value error, labs: \['month24'\] not among the targets"):
        validate_settings(broken(timepoints__labs=["baseline", "month24"]), "s.yaml")


def test_load_settings_rejects_a_broken_file(tmp_path):
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(broken(dtt__min_failed_mechanisms="two")), encoding="utf-8")
    with pytest.raises(StudySettingsError, match=r"dtt.min_failed_mechanisms"):
        load_settings(f)


def test_the_cli_stops_with_one_message_and_no_traceback(tmp_path):
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(broken(eligibility__adult_agee=18)), encoding="utf-8")
    data = tmp_path / "data"
    p = subprocess.run([sys.executable, "-m", "ibd_pipeline.cli", "--data-dir", str(data), "run"],
                       env=clean_env(data, IBD_STUDY_SETTINGS=str(f)), cwd=PROJECT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert f"error: {f}: 1 problem(s)" in p.stderr and "eligibility.adult_agee: unknown key" in p.stderr
