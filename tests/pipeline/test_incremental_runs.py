"""A headless run reruns only what changed (issue 14; ibd_pipeline/fingerprint.py):
nothing new does nothing, a one-center update reruns that center and the study, and the
result equals a full rerun."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from ibd_pipeline import fingerprint as fp
from ibd_pipeline.config import data_paths

from tests.support.fullrun import copy_data_dir, differences, run_cli, warehouse_contents

FPS = {"a": "fa", "b": "fb", "study": "fs"}
OUT = {"warehouse.duckdb": [10, 1]}
STATE = {"done": dict(FPS), "outputs": OUT, "check_errors": {"b": ["check x failed"]}}


def test_nothing_changed_plans_no_job():
    p = fp.plan(STATE, OUT, FPS, ["a", "b"], set(), study=True)
    assert (p.to_run, p.run_study, p.unchanged) == ([], False, ["a", "b", "study"])
    assert p.check_errors["b"] == ["check x failed"]  # replayed, so the exit status still says so


def test_a_changed_or_touched_center_runs_with_the_study_and_only_it():
    assert fp.plan(STATE, OUT, {**FPS, "a": "fa2"}, ["a", "b"], set(), study=True).to_run == ["a"]
    p = fp.plan(STATE, OUT, FPS, ["a", "b"], {"b"}, study=True)
    assert (p.to_run, p.run_study, p.unchanged) == (["b"], True, ["a"])


def test_a_changed_study_input_runs_the_study_alone():
    p = fp.plan(STATE, OUT, {**FPS, "study": "fs2"}, ["a", "b"], set(), study=True)
    assert (p.to_run, p.run_study) == ([], True)


def test_outputs_written_by_someone_else_run_everything():
    p = fp.plan(STATE, {"warehouse.duckdb": [10, 2]}, FPS, ["a", "b"], set(), study=True)
    assert (p.to_run, p.run_study, p.done) == (["a", "b"], True, {})
    assert fp.plan({}, OUT, FPS, ["a"], set(), study=True).to_run == ["a"]


def test_a_center_fingerprint_follows_its_archive_journal_and_the_key(tmp_path):
    paths = data_paths(tmp_path / "data").ensure(["c1"])
    paths.secrets.mkdir(parents=True)
    (paths.secrets / "pseudonym.key").write_text("k" * 64)
    first = fp.center_fingerprint(paths, "c1", "base")
    (paths.archive("c1") / "manifest.jsonl").write_text('{"seq": 1}\n')
    second = fp.center_fingerprint(paths, "c1", "base")
    (paths.archive("c1") / "confirmed.jsonl").write_text('{"file_name": "x"}\n')
    third = fp.center_fingerprint(paths, "c1", "base")
    (paths.secrets / "pseudonym.key").write_text("j" * 64)
    fourth = fp.center_fingerprint(paths, "c1", "base")
    assert len({first, second, third, fourth, fp.center_fingerprint(paths, "c1", "other code")}) == 5


def test_the_code_and_configuration_hash_follows_a_settings_edit(tmp_path, monkeypatch):
    settings = tmp_path / "study.yaml"
    shutil.copy(fp.settings_path(), settings)
    monkeypatch.setenv("IBD_STUDY_SETTINGS", str(settings))
    before = fp.code_and_config()
    settings.write_text(settings.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert fp.code_and_config() != before


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def copied(reference_run, tmp_path_factory):
    """A copy of the session's reference data directory (modification times kept, no
    Dagster instance)."""
    return copy_data_dir(reference_run.data, tmp_path_factory.mktemp("incremental"))


def test_a_run_with_nothing_new_runs_no_job_and_changes_nothing(copied):
    before = _sha(copied.warehouse), _sha(copied.snapshot)
    run = run_cli(copied, "run", "--settle", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    for job in ("center hzfph", "center zcmu1", "center zju2", "study"):
        assert any(ln.startswith(f"{job}: unchanged since the run of ") for ln in lines), lines
    assert not any(ln.endswith(": ok") for ln in lines), lines
    assert (_sha(copied.warehouse), _sha(copied.snapshot)) == before
    assert not copied.dagster_home.exists()  # no Dagster run was even started


STAT_INPUTS = {"table1": ["baseline_covariates"], "endpoint_tests": ["endpoints"], "biomarker_statistics": ["biomarkers"],
               "predictor_models": ["baseline_covariates", "endpoints"],
               "persistence_models": ["persistence", "baseline_covariates"], "center_heterogeneity": ["endpoints"],
               "safety_tables": ["adverse_events", "exposure"],
               # the quality suite (defs/quality.py) over the core tables and the eligibility
               "quality_results": ["core.patients", "core.medications", "core.surgeries", "core.assessments",
                                   "core.labs", "core.adverse_events", "eligibility"]}


# assets whose data version is what they read of their tables (defs/statistics.py)
READ_SUBSET = {"predictor_models", "persistence_models"}


def _statistics_state(db) -> tuple[dict, dict]:
    """(asset -> when its tables were computed, table -> content fingerprint)."""
    import duckdb

    from ibd_pipeline.store import warehouse as wh

    con = duckdb.connect(str(db), read_only=True)
    try:
        computed = dict(con.execute("SELECT asset, computed_at FROM meta.asset_inputs").fetchall())
        tables = {t: wh.table_fingerprint(con, t if "." in t else f"analytics.{t}") for ts in STAT_INPUTS.values() for t in ts}
    finally:
        con.close()
    return computed, tables


def test_a_delivery_that_changes_no_table_recomputes_no_statistics(copied):
    import json

    computed0, _ = _statistics_state(copied.warehouse)
    entry = next(json.loads(ln) for ln in (copied.archive("hzfph") / "manifest.jsonl").read_text().splitlines()
                 if '"A_surgeries_' in ln)
    again = copied.inbox("hzfph") / entry["file_name"].replace("_2025", "_2026")  # the same bytes, a later date
    shutil.copy(copied.archive("hzfph") / entry["archive_name"], again)
    run = run_cli(copied, "run", "--settle", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any(ln.startswith("intake hzfph/") and ": duplicate" in ln for ln in lines), lines
    assert "center hzfph: ok" in lines and "study: ok" in lines, lines
    assert _statistics_state(copied.warehouse)[0] == computed0  # inputs identical: reported, not recomputed


def test_a_one_center_update_reruns_that_center_and_the_study_and_equals_a_full_rerun(copied, truth_dir):
    from ibd_pipeline.cli import adjudicate_outboxes

    computed0, inputs0 = _statistics_state(copied.warehouse)
    assert set(computed0) == set(STAT_INPUTS)
    dropped = adjudicate_outboxes(copied, truth_dir)
    for f in dropped:  # keep only hzfph's reviewed worklist
        if f.parent.name != "hzfph":
            f.unlink()
    run = run_cli(copied, "run", "--settle", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "center hzfph: ok" in lines and "study: ok" in lines, lines
    assert any(ln.startswith("center zcmu1: unchanged") for ln in lines), lines
    assert any(ln.startswith("center zju2: unchanged") for ln in lines), lines
    # a statistics asset is recomputed exactly when a table it reads changed - the models
    # when what they read of them changed (a subset: unchanged tables, no refit; the
    # equality with the full rerun below proves nothing was skipped that mattered)
    computed1, inputs1 = _statistics_state(copied.warehouse)
    for asset, tables in STAT_INPUTS.items():
        changed = any(inputs0[t] != inputs1[t] for t in tables)
        recomputed = computed1[asset] != computed0[asset]
        if asset in READ_SUBSET:
            assert changed or not recomputed, asset
        else:
            assert recomputed == changed, (asset, changed)
    incremental = warehouse_contents(copied.warehouse)
    full = run_cli(copied, "run", "--settle", "0", "--force")
    assert full.returncode == 0 and "center zju2: ok" in full.stdout.splitlines(), full.stdout + full.stderr
    assert differences(warehouse_contents(copied.warehouse), incremental) == []
    computed2, _ = _statistics_state(copied.warehouse)
    assert all(computed2[a] > computed1[a] for a in STAT_INPUTS)  # --force recomputes every table
