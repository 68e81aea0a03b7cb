"""One Dagster instance for the CLI, `ibd-pipeline ui` and `dagster dev`: where it lives,
its run queue of one, a sensor that knows what headless runs processed, definitions that
load without a warning, and a UI that stops promptly on a signal."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import dagster as dg
import psutil
import pytest
import yaml
from tests.support.fullrun import PROJECT, clean_env

from ibd_pipeline.config import data_paths
from ibd_pipeline.definitions import build_definitions
from ibd_pipeline.defs.resources import StudyResource
from ibd_pipeline.runner import ensure_dagster_home, get_instance


def _queue_limit(instance) -> int:
    """The run limit the daemon's queue applies (QueuedRunCoordinatorDaemon)."""
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    return instance.get_concurrency_config().run_queue_config.max_concurrent_runs


def test_the_instance_is_in_the_data_directory_when_dagster_home_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    paths = data_paths(tmp_path / "data")
    instance = get_instance(paths)
    assert os.path.samefile(instance.root_directory, paths.dagster_home)
    assert _queue_limit(instance) == 1
    assert os.environ["DAGSTER_HOME"] == str(paths.dagster_home)  # child processes use the same one


def test_the_instance_follows_dagster_home_and_gets_the_projects_settings(tmp_path, monkeypatch):
    home = tmp_path / "my_dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    paths = data_paths(tmp_path / "data")
    instance = get_instance(paths)
    assert os.path.samefile(instance.root_directory, home)
    assert not paths.dagster_home.exists()
    assert _queue_limit(instance) == 1


def test_a_users_dagster_yaml_keeps_its_settings_and_gets_the_run_queue_of_one(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "concurrency": {"runs": {"max_concurrent_runs": 3}, "pools": {"default_limit": 2}},
        "run_monitoring": {"enabled": True},
    }))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home(data_paths(tmp_path / "data"))
    cfg = yaml.safe_load((home / "dagster.yaml").read_text())
    assert cfg["run_monitoring"] == {"enabled": True}
    assert cfg["concurrency"] == {"pools": {"default_limit": 2}, "runs": {"max_concurrent_runs": 1}}
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert _queue_limit(dg.DagsterInstance.from_config(str(home))) == 1


def test_the_definitions_load_and_resolve_without_any_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        defs = build_definitions(tmp_path / "data")
        for job in ("center_job", "study_job"):
            defs.resolve_job_def(job)
        defs.resolve_asset_graph()
        defs.get_repository_def()


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run


def test_the_cli_and_an_instance_from_dagster_home_see_the_same_runs(reference):
    home = clean_env(reference.data.root)["DAGSTER_HOME"]
    instance = dg.DagsterInstance.from_config(home)
    runs = instance.get_runs()
    centers = sorted(r.tags["ibd/center"] for r in runs if r.job_name == "center_job")
    assert centers == ["hzfph", "zcmu1", "zju2"]
    assert [r.status for r in runs if r.job_name == "study_job"] == [dg.DagsterRunStatus.SUCCESS]
    assert all(r.tags.get("ibd/trigger") == "cli" for r in runs)
    assert _queue_limit(instance) == 1
    # the CLI wrote no warning (deprecations of Definitions, etc.)
    assert "Warning" not in reference.stderr.replace("RuntimeWarning: overflow", "")


def test_a_sensor_evaluation_after_a_headless_run_requests_nothing(reference):
    data = reference.data.root
    instance = dg.DagsterInstance.from_config(clean_env(data)["DAGSTER_HOME"])
    defs = build_definitions(data)
    sensor = defs.resolve_sensor_def("inbox_sensor")
    # the first tick of a UI started after the headless run: no cursor yet
    with dg.build_sensor_context(cursor=None, instance=instance, repository_def=defs.get_repository_def(),
                                 resources={"study": StudyResource(data_dir=str(data))}) as ctx:
        tick = sensor.evaluate_tick(ctx)
    assert tick.run_requests == []
    assert "no complete new files" in tick.skip_message


def test_a_new_dagster_instance_on_a_data_directory_that_has_been_run_requests_only_new_deliveries(reference, tmp_path):
    """A new DAGSTER_HOME (deleted, or pointed elsewhere) knows no run: the sensor reads what
    the published snapshot holds, so it requests no center again - until one delivers."""
    from tests.support.fullrun import copy_data_dir

    paths = copy_data_dir(reference.data, tmp_path)  # no dagster_home
    defs = build_definitions(paths.root)
    sensor = defs.resolve_sensor_def("inbox_sensor")
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        with dg.build_sensor_context(cursor=cursor, instance=instance, repository_def=defs.get_repository_def(),
                                     resources={"study": StudyResource(data_dir=str(paths.root))}) as ctx:
            return ctx, sensor.evaluate_tick(ctx)

    _, first = tick(None)
    assert first.run_requests == [], [r.partition_key for r in first.run_requests]
    from ibd_pipeline.intake import accepted_deliveries

    labs = next(d for d in accepted_deliveries(paths, "zcmu1") if d.file_name.startswith("A_labs_"))
    new = paths.inbox("zcmu1") / "A_labs_20250402.csv"
    new.write_bytes(labs.archive_path(paths).read_bytes() + b"\r\n")  # other bytes: a new delivery
    old = time.time() - 30
    os.utime(new, (old, old))
    _, seen = tick(first.cursor)  # first seen: taken when unchanged at the next look
    assert seen.run_requests == []
    _, second = tick(seen.cursor)
    assert [r.partition_key for r in second.run_requests] == ["zcmu1"], second.skip_message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_ui_stops_within_ten_seconds_of_a_signal_to_its_process_group(tmp_path, sig):
    port = _free_port()
    data = tmp_path / "data"
    env = clean_env(data)
    env.pop("DAGSTER_HOME")  # the default: inside the data directory
    log = open(tmp_path / "ui.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "ibd_pipeline.cli", "--data-dir", str(data), "ui", "--port", str(port)],
                         cwd=PROJECT, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).read()
                break
            except OSError:
                assert p.poll() is None and time.time() < deadline, (tmp_path / "ui.log").read_text()[-3000:]
                time.sleep(1)
        time.sleep(3)  # the daemon's first sensor ticks
        # the webserver, the daemon and the code servers run in a process group of their own
        # (ibd_pipeline/supervise.py): every descendant must go, not only this group
        descendants = psutil.Process(p.pid).children(recursive=True)
        assert len(descendants) >= 3, descendants
        t0 = time.time()
        os.killpg(p.pid, sig)
        p.wait(timeout=10)
        _, alive = psutil.wait_procs(descendants, timeout=max(0.1, 10 - (time.time() - t0)))
        if alive:
            pytest.fail(f"processes of the UI still alive {time.time() - t0:.1f} s after {sig.name}: {alive}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
    text = (tmp_path / "ui.log").read_text()
    assert (data / "dagster_home" / "dagster.yaml").exists()
    assert "Warning" not in text, text[-2000:]
    assert "WARNING" not in text, text[-2000:]  # e.g. no "dagster.yaml in the current folder" from `dagster dev`
    assert "Launched run" not in text  # nothing new in the inboxes: nothing runs


def test_every_table_asset_has_typed_column_metadata(reference):
    instance = dg.DagsterInstance.from_config(clean_env(reference.data.root)["DAGSTER_HOME"])
    defs = build_definitions(reference.data.root)
    tables = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if len(k.path) == 2]
    assert len(tables) > 50
    for key in tables:
        event = instance.get_latest_materialization_event(key)
        assert event is not None, key
        meta = event.asset_materialization.metadata
        schema = meta["dagster/column_schema"].schema
        assert schema.columns and all(c.type for c in schema.columns), key
        assert meta["dagster/table_name"].value == "warehouse." + ".".join(key.path)
        assert meta["catalog"].value.endswith("#" + ".".join(key.path))


def test_the_catalog_lists_every_table_of_the_snapshot(reference, tmp_path):
    import duckdb

    from ibd_pipeline.catalog import build_catalog
    from ibd_pipeline.store.snapshot import connect_snapshot

    snap = connect_snapshot(reference.data.snapshot)
    try:
        published = {f"{s}.{t}" for s, t in snap.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    finally:
        snap.close()
    con = duckdb.connect(str(reference.data.warehouse), read_only=True)
    try:
        listed = build_catalog(con, tmp_path / "catalog.html")
    finally:
        con.close()
    page = (tmp_path / "catalog.html").read_text(encoding="utf-8")
    assert published and published <= set(listed)
    for q in published:
        assert f'<section id="{q}">' in page, q
    assert "FAIL (" not in page  # every column test of the reference run passes
    assert "CREATE" not in page and "SELECT" in page  # the models' SQL, not DDL
