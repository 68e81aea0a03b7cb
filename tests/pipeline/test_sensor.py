"""The file-drop sensor: a complete file requests a run of its center's partition, once."""

import json
import os
import time

import dagster as dg

from ibd_pipeline.config import data_paths
from ibd_pipeline.definitions import build_definitions
from ibd_pipeline.defs.resources import StudyResource
from tests.support.intake import NAME_CHECK


def _tick(sensor, data, cursor, instance=None):
    """One evaluation as the daemon does it (evaluate_tick validates the result)."""
    repo = build_definitions(data).get_repository_def()
    instance = instance or dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(cursor=cursor, resources={"study": StudyResource(data_dir=str(data))}, repository_def=repo, instance=instance) as ctx:
        tick = sensor.evaluate_tick(ctx)
    if tick.run_requests:
        return dg.SensorResult(run_requests=tick.run_requests), tick.cursor
    return dg.SkipReason(tick.skip_message), tick.cursor


def _drop(path, data: bytes, age=30):
    path.write_bytes(data)
    t = time.time() - age
    os.utime(path, (t, t))


def test_a_complete_file_requests_one_run_of_its_center_partition(tmp_path):
    data = tmp_path / "data"
    paths = data_paths(data).ensure()
    defs = build_definitions(data)
    sensor = defs.resolve_sensor_def("inbox_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    _drop(paths.inbox("hzfph") / "A_patients_20250401.csv", "住院号,性别\n1,男\n".encode("gb18030"))
    _drop(paths.inbox("zcmu1") / "~$A_20250401.xlsx", b"lock")  # editor lock file: ignored
    result, cursor = _tick(sensor, data, None)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("hzfph", "hzfph:1")]
    assert (paths.archive("hzfph") / "manifest.jsonl").exists()
    assert json.loads(cursor)["hzfph"]["seq"] == 1

    # the same bytes dropped again: recorded as a duplicate, no new run
    _drop(paths.inbox("hzfph") / "A_patients_20250402.csv", "住院号,性别\n1,男\n".encode("gb18030"))
    result, cursor = _tick(sensor, data, cursor)  # first seen: must stay unchanged until the next look
    assert isinstance(result, dg.SkipReason)
    result, cursor = _tick(sensor, data, cursor)
    assert isinstance(result, dg.SkipReason) and "duplicate" in result.skip_message
    assert json.loads(cursor)["hzfph"]["seq"] == 1
    assert (paths.inbox("zcmu1") / "~$A_20250401.xlsx").exists()


def test_a_file_still_being_written_waits_for_the_next_tick(tmp_path):
    data = tmp_path / "data"
    paths = data_paths(data).ensure()
    sensor = build_definitions(data).resolve_sensor_def("inbox_sensor")
    f = paths.inbox("zcmu1") / "A_labs_20250401.csv"
    f.write_bytes(b"mrn,test\n")  # fresh: younger than the settle time
    result, cursor = _tick(sensor, data, None)
    assert isinstance(result, dg.SkipReason)
    assert f.exists()
    _drop(f, b"mrn,test\n1,CRP\n")  # finished and settled
    result, cursor = _tick(sensor, data, cursor)  # changed since the previous look: not yet
    assert isinstance(result, dg.SkipReason) and f.exists()
    result, cursor = _tick(sensor, data, cursor)  # unchanged since the previous look: taken
    assert [r.partition_key for r in result.run_requests] == ["zcmu1"]
    assert not f.exists()


def test_a_delivery_archived_by_an_interrupted_tick_is_requested_by_the_next(tmp_path):
    from ibd_pipeline.config import load_centers
    from ibd_pipeline.intake import accept_file

    data = tmp_path / "data"
    paths = data_paths(data).ensure()
    sensor = build_definitions(data).resolve_sensor_def("inbox_sensor")
    _, cursor = _tick(sensor, data, None)  # nothing yet
    _drop(paths.inbox("zcmu1") / "A_labs_20250401.csv", b"mrn,test\n1,CRP\n")
    accept_file(paths, load_centers()["zcmu1"], "A_labs_20250401.csv", name_check=NAME_CHECK)  # archived, but no run was requested
    result, cursor = _tick(sensor, data, cursor)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("zcmu1", "zcmu1:1")]
