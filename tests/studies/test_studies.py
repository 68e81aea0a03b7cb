"""A project holds several studies, each a folder of configuration (issue 15 items 1-2):
the study in use is chosen by name (``--study``, ``$IBD_STUDY``), each has its own
settings, centers, published figures and data directory, and one typed model validates
every study's settings, rejecting a broken file with the file and the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ibd_pipeline import config
from ibd_pipeline.cli import main
from ibd_pipeline.study_model import StudySettingsError, validate_settings

SECOND = "single_center_cd"


@pytest.fixture
def no_study_env(monkeypatch):
    for var in ("IBD_STUDY", "IBD_DATA_DIR", "IBD_STUDY_SETTINGS", "IBD_CENTERS_DIR"):
        monkeypatch.setenv(var, "x")  # recorded, so the teardown restores the session's value
        monkeypatch.delenv(var)
    return monkeypatch


def test_the_project_lists_the_default_study_first_then_the_study_folders():
    names = config.study_names()
    assert names[0] == config.DEFAULT_STUDY
    assert SECOND in names
    assert config.study_dir(config.DEFAULT_STUDY) == config.PROJECT_ROOT
    assert config.study_dir(SECOND) == config.PROJECT_ROOT / "studies" / SECOND


def test_each_study_resolves_its_own_settings_centers_and_data_directory(no_study_env, tmp_path):
    no_study_env.chdir(tmp_path)
    assert config.settings_path() == config.PROJECT_ROOT / "study.yaml"
    assert config.data_paths().root == (tmp_path / "data").resolve()
    no_study_env.setenv("IBD_STUDY", SECOND)
    assert config.settings_path() == config.PROJECT_ROOT / "studies" / SECOND / "study.yaml"
    assert config.centers_dir() == config.PROJECT_ROOT / "studies" / SECOND / "centers"
    assert config.data_paths().root == (tmp_path / "data" / "studies" / SECOND).resolve()
    assert config.load_settings()["population"]["rule"] == "criteria"
    # asking for another study by name does not take the study in use's redirections
    no_study_env.setenv("IBD_STUDY_SETTINGS", str(tmp_path / "what_if.yaml"))
    assert config.settings_path(config.DEFAULT_STUDY) == config.PROJECT_ROOT / "study.yaml"


def test_an_unknown_study_name_is_one_clear_error_and_exit_2(no_study_env, capsys):
    with pytest.raises(config.UnknownStudyError, match=r"no study 'nope'.*known: multicenter_upa"):
        config.study_dir("nope")
    assert main(["--study", "nope", "studies"]) == 2
    err = capsys.readouterr().err
    assert "no study 'nope'" in err and SECOND in err


def test_study_option_selects_the_study_and_drops_another_studys_data_directory(no_study_env, tmp_path, capsys):
    no_study_env.setenv("IBD_DATA_DIR", str(tmp_path / "multicenter_data"))
    assert main(["--study", SECOND, "studies"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if SECOND in l)
    assert line.startswith("*") and "studies/single_center_cd/" in line
    assert "multicenter_data" not in out  # the multicenter study's IBD_DATA_DIR is not the second study's
    import os

    assert os.environ["IBD_STUDY"] == SECOND and "IBD_DATA_DIR" not in os.environ


def test_both_studies_settings_are_valid_under_one_model():
    multi = config.load_study_model(config.settings_path(config.DEFAULT_STUDY))
    single = config.load_study_model(config.settings_path(SECOND))
    assert multi.population.rule == "ioibd_dtt" and multi.reconciliation is not None
    assert single.population.rule == "criteria" and single.reconciliation is None
    assert single.study.diagnoses == ["CD"] and single.endpoints.UC is None
    assert single.timepoints.clinical == ["week4", "week8", "week12", "week24"]
    assert single.endpoints.biomarker_endpoints["biomarker_remission"].rule == "fc_and_crp_normal"
    assert not any(e.steroid_free for e in single.endpoints.clinical_endpoints.values())
    assert single.statistics.predictor_method == "logistic"


SINGLE = yaml.safe_load((config.PROJECT_ROOT / "studies" / SECOND / "study.yaml").read_text(encoding="utf-8"))


def _second(edit) -> dict:
    d = copy.deepcopy(SINGLE)
    edit(d)
    return d


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["eligibility"].pop("baseline_hbi_min"), "baseline_hbi_below needs eligibility.baseline_hbi_min"),
    (lambda d: d["eligibility"]["order"].insert(0, "not_dtt"), "names not_dtt, but population.rule is not ioibd_dtt"),
    (lambda d: d["study"].update(diagnoses=["UC", "CD"]), "endpoints.UC: study.diagnoses includes UC"),
    (lambda d: d["study"].pop("data_cutoff"), "reached_or_stopped needs study.data_cutoff"),
    (lambda d: d["endpoints"]["biochemical"].update(crp_below=5), "give exactly one of crp_below and crp_max"),
    (lambda d: d["population"].update(rule="ioibd"), "population.rule"),
    (lambda d: d["statistics"].update(predictor_method="elastic_net_boruta"), "needs cv_folds, bootstrap_samples"),
    (lambda d: d["endpoints"]["clinical_endpoints"]["clinical_remission"].update(steroid_free=True),
     "['clinical_remission'] are steroid-free: the steroids section is needed"),
])
def test_a_broken_second_study_file_names_the_file_and_the_key(edit, expected):
    with pytest.raises(StudySettingsError) as e:
        validate_settings(_second(edit), "studies/single_center_cd/study.yaml")
    msg = str(e.value)
    assert msg.startswith("studies/single_center_cd/study.yaml: 1 problem(s)")
    assert expected in msg


def test_the_workspace_has_one_code_location_per_listed_study():
    ws = yaml.safe_load((config.PROJECT_ROOT / "workspace.yaml").read_text(encoding="utf-8"))
    locations = [e["python_module"] for e in ws["load_from"]]
    for loc in locations:
        assert loc["module_name"] == "ibd_pipeline.definitions"
        assert loc["attribute"] == loc["location_name"] and loc["attribute"] in config.study_names()
    assert locations[0]["attribute"] == config.DEFAULT_STUDY


def test_a_study_folder_documents_a_project_sql_model_its_own_way(tmp_path):
    import duckdb

    from ibd_pipeline import sqlmodels as sm

    root, overlay = tmp_path / "project", tmp_path / "study"
    (root / "analytics").mkdir(parents=True)
    (overlay / "analytics").mkdir(parents=True)
    (root / "analytics" / "rates.sql").write_text("SELECT * FROM analytics.endpoints_in")
    (root / "analytics" / "rates.yml").write_text(
        "description: multicenter rates\ncolumns:\n  timepoint: {description: tp, tests: [{accepted_values: [month6]}]}\n")
    (overlay / "analytics" / "rates.yml").write_text(
        "description: single-center rates\ncolumns:\n  timepoint:\n    description: tp\n"
        "    tests: [{accepted_values: {values: [baseline], from_settings: [timepoints.clinical]}}]\n")
    (m,) = sm.load_models(str(root), str(overlay))
    assert m.description == "single-center rates" and m.sql == "SELECT * FROM analytics.endpoints_in"
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA ref; CREATE SCHEMA analytics")
    con.execute("CREATE TABLE ref.settings AS SELECT * FROM (VALUES ('timepoints.clinical', '[\"week4\", \"week12\"]')) t(key, value)")
    con.execute("CREATE TABLE analytics.rates AS SELECT * FROM (VALUES ('week4'), ('baseline'), ('month6')) t(timepoint)")
    (test,) = m.tests
    r = sm.run_test(con, m, test)
    assert not r.passed and r.examples == ["month6"]  # week4 from the settings and the literal baseline accepted


def test_studies_validates_every_study_and_names_the_broken_file_and_key(no_study_env, tmp_path, capsys):
    studies = tmp_path / "studies"
    for name in (SECOND, "typo_study"):
        (studies / name).mkdir(parents=True)
    good = (config.PROJECT_ROOT / "studies" / SECOND / "study.yaml").read_text(encoding="utf-8")
    (studies / SECOND / "study.yaml").write_text(good, encoding="utf-8")
    (studies / "typo_study" / "study.yaml").write_text(good.replace("  max_age: 75", "  max_agee: 75"), encoding="utf-8")
    no_study_env.setattr(config, "STUDIES_DIR", studies)
    assert main(["studies"]) == 2
    out = capsys.readouterr().out
    assert f"{SECOND}" in out and "settings valid" in out
    bad = out.split("typo_study", 1)[1]
    assert "study.yaml invalid" in bad and "eligibility.max_agee: unknown key" in bad and "typo_study/study.yaml" in bad
