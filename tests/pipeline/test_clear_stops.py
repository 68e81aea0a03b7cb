"""Issue 18 items 3 and 5: one clear stop instead of crashes, and ``verify`` of the
archive against the warehouse."""

from __future__ import annotations

import os
import time

import pytest

from ibd_pipeline.config import MissingKeyError, data_paths, load_centers, read_pseudonym_key
from ibd_pipeline.intake import accept_file, manifest_path
from ibd_pipeline.runner import RunSummary, run_pipeline
from ibd_pipeline.verify import verify
from tests.support.intake import NAME_CHECK

CENTERS = load_centers()


@pytest.fixture()
def paths(tmp_path, monkeypatch):
    monkeypatch.delenv("IBD_PSEUDONYM_KEY_FILE", raising=False)
    return data_paths(tmp_path / "data").ensure()


def _archive_one(paths, name="A_patients_20250401.csv", data=b"mrn,sex\nM1,M\n"):
    p = paths.inbox("zcmu1") / name
    p.write_bytes(data)
    t = time.time() - 10
    os.utime(p, (t, t))
    assert accept_file(paths, CENTERS["zcmu1"], name, name_check=NAME_CHECK).status == "accepted"


@pytest.mark.parametrize("key", [None, b"short\n"])
def test_a_missing_or_short_key_stops_the_run_with_one_message_and_runs_no_job(paths, key):
    _archive_one(paths)
    if key is not None:
        paths.secrets.mkdir(parents=True, exist_ok=True)
        (paths.secrets / "pseudonym.key").write_bytes(key)
    s = run_pipeline(paths.root, settle_seconds=0)
    assert not s.success and s.exit_status == 1
    assert s.center_runs == {} and s.study_run is None  # no job ran on nothing
    stops = [line for line in s.lines() if line.startswith("stop:")]
    assert len(stops) == 1
    assert ("does not exist" if key is None else "shorter than 16") in stops[0]
    assert "backup" in stops[0] and "init-key" in stops[0]  # the fix is named
    assert not paths.warehouse.exists()


def test_an_unreadable_key_names_the_permission_fix(paths, monkeypatch):
    paths.secrets.mkdir(parents=True, exist_ok=True)
    k = paths.secrets / "pseudonym.key"
    k.write_text("x" * 64)
    import pathlib

    real = pathlib.Path.read_bytes
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")) if self == k else real(self))
    with pytest.raises(MissingKeyError, match="chmod 600"):
        read_pseudonym_key(paths)


def test_an_error_level_check_makes_the_exit_status_say_so():
    s = RunSummary(center_runs={"zcmu1": (True, "")}, study_run=(True, ""))
    assert s.exit_status == 0
    s.check_errors.append("core/patients quality_plausibility: 3 rows")
    assert s.success and s.exit_status == 2
    assert any(line.startswith("ERROR-level check failed") for line in s.lines())


def test_verify_finds_a_torn_manifest_an_unrecorded_archive_file_and_no_warehouse(paths):
    _archive_one(paths)
    _archive_one(paths, "A_labs_20250401.csv", b"mrn,test\nM1,CRP\n")
    m = manifest_path(paths, "zcmu1")
    data = m.read_bytes()
    m.write_bytes(data[:-30])
    r = verify(paths, list(CENTERS))
    text = "\n".join(r.lines())
    assert not r.ok
    assert "torn record" in text and "has no manifest record" in text and "rebuild" in text
    assert "no working warehouse" in text


def test_verify_of_a_consistent_archive_reports_only_the_missing_warehouse(paths):
    _archive_one(paths)
    r = verify(paths, list(CENTERS))
    assert r.checked_files == 1
    assert [p for p in r.problems if "warehouse" not in p] == []
