"""The drop folder: complete files only, archived by hash, duplicates and bad names handled."""

import os
import time

import pytest

from ibd_pipeline.config import data_paths, load_centers
from ibd_pipeline.intake import (
    accept_file,
    accepted_deliveries,
    complete_files,
    drain_inbox,
    inbox_snapshot,
    read_manifest,
    sha256_file,
    take_complete_files,
    unsafe_name_reason,
)
from tests.support.intake import NAME_CHECK


def _ok_name(profile, name):
    if not name.startswith(("A_", "B_", "ADJ_")):
        raise ValueError(f"{name} does not follow {profile.file_pattern}")


@pytest.fixture()
def paths(tmp_path):
    return data_paths(tmp_path / "data").ensure()


@pytest.fixture()
def zcmu1():
    return load_centers()["zcmu1"]


def _drop(paths, center, name, data: bytes, age_seconds=10):
    p = paths.inbox(center) / name
    p.write_bytes(data)
    t = time.time() - age_seconds
    os.utime(p, (t, t))
    return p


def test_accepted_file_is_archived_under_its_sha256_and_leaves_the_inbox(paths, zcmu1):
    src = _drop(paths, "zcmu1", "A_patients_20250401.csv", b"mrn,sex\n1,M\n")
    sha = sha256_file(src)
    out = accept_file(paths, zcmu1, src.name, name_check=_ok_name)
    assert out.status == "accepted"
    assert (paths.archive("zcmu1") / f"{sha}.csv").read_bytes() == b"mrn,sex\n1,M\n"
    assert not src.exists()
    [d] = accepted_deliveries(paths, "zcmu1")
    assert (d.sha256, d.file_name, d.seq) == (sha, "A_patients_20250401.csv", 1)


def test_dropping_the_same_file_twice_loads_it_once(paths, zcmu1):
    data = b"mrn,sex\n1,M\n"
    _drop(paths, "zcmu1", "A_patients_20250401.csv", data)
    accept_file(paths, zcmu1, "A_patients_20250401.csv", name_check=_ok_name)
    _drop(paths, "zcmu1", "A_patients_20250402.csv", data)  # same bytes, other name
    out = accept_file(paths, zcmu1, "A_patients_20250402.csv", name_check=_ok_name)
    assert out.status == "duplicate"
    assert "A_patients_20250401.csv" in out.message
    assert len(accepted_deliveries(paths, "zcmu1")) == 1
    assert [d.status for d in read_manifest(paths, "zcmu1")] == ["accepted", "duplicate"]
    assert any("duplicate" in p.name for p in paths.outbox("zcmu1").iterdir())


def test_a_half_written_file_is_not_taken_until_it_stops_changing(paths, zcmu1):
    p = _drop(paths, "zcmu1", "A_labs_20250401.csv", b"mrn,test\n", age_seconds=10)
    first = inbox_snapshot(paths.inbox("zcmu1"))
    # the writer appends more before the next look
    with open(p, "ab") as fh:
        fh.write(b"1,CRP\n")
    t = time.time() - 10
    os.utime(p, (t + 5, t + 5))
    second = inbox_snapshot(paths.inbox("zcmu1"))
    assert complete_files(second, first, settle_seconds=1) == []
    # unchanged at the following look: now complete
    third = inbox_snapshot(paths.inbox("zcmu1"))
    assert complete_files(third, second, settle_seconds=1) == ["A_labs_20250401.csv"]


def test_a_freshly_modified_file_waits_for_the_settle_time(paths):
    _drop(paths, "zcmu1", "A_labs_20250401.csv", b"x", age_seconds=0)
    snap = inbox_snapshot(paths.inbox("zcmu1"))
    assert complete_files(snap, None, settle_seconds=30) == []
    assert complete_files(snap, None, settle_seconds=30, now=time.time() + 60) == ["A_labs_20250401.csv"]


def test_editor_lock_and_temporary_files_are_ignored(paths, zcmu1):
    for name in ("~$A_20250401.xlsx", ".~lock.A_labs.csv#", "A_labs_20250401.csv.tmp", "A_labs_20250401.csv.part", ".hidden"):
        _drop(paths, "zcmu1", name, b"partial")
    outcomes, _ = take_complete_files(paths, zcmu1, None, settle_seconds=0, name_check=NAME_CHECK)
    assert outcomes == []
    assert len(list(paths.inbox("zcmu1").iterdir())) == 5


def test_a_badly_named_file_is_rejected_with_a_note_in_the_outbox(paths, zcmu1):
    _drop(paths, "zcmu1", "patients final v2.csv", b"mrn\n1\n")
    out = accept_file(paths, zcmu1, "patients final v2.csv", name_check=_ok_name)
    assert out.status == "rejected"
    assert accepted_deliveries(paths, "zcmu1") == []
    notes = [p for p in paths.outbox("zcmu1").iterdir() if "rejected" in p.name]
    assert notes and "patients final v2.csv" in notes[0].read_text(encoding="utf-8-sig")
    assert not (paths.inbox("zcmu1") / "patients final v2.csv").exists()


@pytest.mark.parametrize("name", ["../A_patients_20250401.csv", "A_pat\x07ients_20250401.csv", "..", "a\\b.csv"])
def test_names_with_path_tricks_or_control_characters_are_unsafe(name):
    assert unsafe_name_reason(name) is not None


def test_a_control_character_name_is_rejected_without_touching_anything_outside_the_inbox(paths, zcmu1, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    name = "A_patients_2025\x010401.csv"
    _drop(paths, "zcmu1", name, b"mrn\n1\n")
    out = accept_file(paths, zcmu1, name, name_check=_ok_name)
    assert out.status == "rejected" and "control" in out.message
    assert outside.read_text() == "keep"
    assert accepted_deliveries(paths, "zcmu1") == []


def test_drain_inbox_takes_every_complete_file(paths, zcmu1):
    _drop(paths, "zcmu1", "A_patients_20250401.csv", b"a")
    _drop(paths, "zcmu1", "B_patients_20250401.csv", b"b")
    import ibd_pipeline.intake as intake

    orig = intake.accept_file
    intake.accept_file = lambda p, prof, n, name_check=None: orig(p, prof, n, name_check=_ok_name)
    try:
        outcomes = drain_inbox(paths, zcmu1, settle_seconds=1, name_check=NAME_CHECK)
    finally:
        intake.accept_file = orig
    assert sorted(o.status for o in outcomes) == ["accepted", "accepted"]
    assert [d.file_name for d in accepted_deliveries(paths, "zcmu1")] == ["A_patients_20250401.csv", "B_patients_20250401.csv"]


def test_names_pointing_outside_the_inbox_are_rejected_without_touching_their_target(tmp_path):
    paths = data_paths(tmp_path / "data").ensure()
    profile = load_centers()["zcmu1"]
    outside = paths.root / "inbox" / "A_patients_20250401.csv"  # one level above zcmu1's inbox
    outside.write_bytes(b"precious")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    for name in ("../A_patients_20250401.csv", "..", ".", "../../../secret.txt", "sub/A_patients_20250401.csv", ""):
        o = accept_file(paths, profile, name, name_check=NAME_CHECK)
        assert o.status == "rejected", name
    assert outside.read_bytes() == b"precious"
    assert secret.read_bytes() == b"secret"
    assert (paths.root / "inbox" / "zcmu1").is_dir()
    assert not any((paths.archive("zcmu1") / "rejected").iterdir())  # nothing was moved into the archive
    assert [r.status for r in read_manifest(paths, "zcmu1")] == ["rejected"] * 6
    # a name with a backslash is a plain file name on POSIX: it stays inside this inbox
    p = paths.inbox("zcmu1") / "..\\..\\A_patients_20250401.csv"
    p.write_bytes(b"x")
    assert accept_file(paths, profile, p.name, name_check=NAME_CHECK).status == "rejected"
    assert not p.exists() and outside.read_bytes() == b"precious"


def test_a_file_name_that_is_not_utf8_is_rejected_and_recorded(tmp_path):
    paths = data_paths(tmp_path / "data").ensure()
    raw = os.fsencode(str(paths.inbox("zcmu1"))) + b"/A_pat\xffients_20250401.csv"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x")
    os.close(fd)
    (name,) = os.listdir(paths.inbox("zcmu1"))
    o = accept_file(paths, load_centers()["zcmu1"], name, name_check=NAME_CHECK)
    assert o.status == "rejected" and "control" in o.message
    (rec,) = read_manifest(paths, "zcmu1")
    assert rec.file_name == "A_pat\\xffients_20250401.csv"
    assert os.listdir(paths.inbox("zcmu1")) == []
    notes = list(paths.outbox("zcmu1").iterdir())
    assert len(notes) == 1 and "A_pat\\xffients" in notes[0].read_text(encoding="utf-8-sig")


def test_a_file_gone_before_it_is_taken_is_left_for_the_next_look(paths, zcmu1):
    """The scan listed it, the coordinator deleted or renamed it before it was taken: no
    exception (the sensor must not fail), nothing recorded."""
    out = accept_file(paths, zcmu1, "A_patients_20250401.csv", name_check=NAME_CHECK)
    assert out.status == "gone"  # not reported in the run output (another run may have taken it)
    assert read_manifest(paths, "zcmu1") == []
    outcomes, snap = take_complete_files(paths, zcmu1, {"A_patients_20250401.csv": [1, 0]}, settle_seconds=0, name_check=NAME_CHECK)
    assert outcomes == [] and snap == {}


@pytest.mark.parametrize("name", ["A_patients\x85_20250401.csv", "A_patients\u2028_20250401.csv", "A_pat\x1eients_20250401.csv"])
def test_a_name_with_a_line_break_is_rejected_and_its_record_stays_readable(paths, zcmu1, name):
    _drop(paths, "zcmu1", name, b"x")
    assert accept_file(paths, zcmu1, name, name_check=NAME_CHECK).status == "rejected"
    _drop(paths, "zcmu1", "A_patients_20250401.csv", b"y")
    assert accept_file(paths, zcmu1, "A_patients_20250401.csv", name_check=NAME_CHECK).status == "accepted"
    records = read_manifest(paths, "zcmu1")
    assert [(r.seq, r.status) for r in records] == [(1, "rejected"), (2, "accepted")]
    assert records[0].file_name == name
