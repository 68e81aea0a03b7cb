"""Issue 18 at the drop folder: incomplete copies are held, the manifest survives its own
faults, concurrent runs do not race, ignored or unreadable entries are reported, and a
file name that may identify a patient is never repeated."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile

import pytest

from ibd_pipeline.config import data_paths, load_centers
from ibd_pipeline.intake import (
    accept_file,
    accepted_deliveries,
    drain_inbox,
    manifest_path,
    read_manifest,
    repair_manifest,
    stray_entries,
    take_complete_files,
)
from tests.support.intake import NAME_CHECK

CENTERS = load_centers()
CSV = b"mrn,sex\nM1,M\nM2,F\n"


@pytest.fixture()
def paths(tmp_path):
    return data_paths(tmp_path / "data").ensure()


def _drop(paths, center, name, data: bytes, age=10):
    p = paths.inbox(center) / name
    p.write_bytes(data)
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def _notes(paths, center, kind):
    out = paths.outbox(center)
    return [p for p in out.iterdir() if p.name.endswith(f".{kind}.txt")] if out.exists() else []


# ------------------------------------------------------------------ incomplete copies
@pytest.mark.parametrize("center", ["zcmu1", "hzfph"])
def test_a_csv_torn_in_its_last_row_is_held_not_archived(paths, center):
    enc = CENTERS[center].encoding or "utf-8"
    whole = "住院号,性别,出生日期\nM1,男,2000/01/01\nM2,女,1990/02/03\n".encode(enc)
    _drop(paths, center, "A_patients_20250401.csv", whole[:-12])  # the copy stalled mid-row
    (o,) = drain_inbox(paths, CENTERS[center], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "held" and "incomplete" in o.message
    assert accepted_deliveries(paths, center) == []
    assert (paths.inbox(center) / "A_patients_20250401.csv").exists()
    assert len(_notes(paths, center, "held")) == 1
    drain_inbox(paths, CENTERS[center], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert len(_notes(paths, center, "held")) == 1  # reported once, not at every look
    _drop(paths, center, "A_patients_20250401.csv", whole)  # copied again, completely
    (o,) = drain_inbox(paths, CENTERS[center], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "accepted"


def test_a_csv_ending_inside_a_quoted_value_is_held(paths):
    _drop(paths, "zcmu1", "A_patients_20250401.csv", b'mrn,sex,note\nM1,M,"a long\nnote that')
    (o,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "held"


def test_a_complete_csv_without_a_final_line_end_is_taken(paths):
    _drop(paths, "zcmu1", "A_patients_20250401.csv", b"mrn,sex\nM1,M\nM2,F")
    (o,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "accepted"


def test_a_workbook_cut_before_its_zip_directory_is_held(paths):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>" * 200)
        z.writestr("xl/worksheets/sheet1.xml", "<row/>" * 2000)
    data = buf.getvalue()
    _drop(paths, "zju2", "A_20250401.xlsx", data[: len(data) // 2])
    (o,) = drain_inbox(paths, CENTERS["zju2"], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "held" and "zip directory" in o.message
    _drop(paths, "zju2", "A_20250401.xlsx", data)
    (o,) = drain_inbox(paths, CENTERS["zju2"], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "accepted"


# ------------------------------------------------------------------ the manifest's own faults
def test_a_torn_manifest_tail_is_repaired_and_the_next_delivery_is_recorded(paths):
    prof = CENTERS["zcmu1"]
    _drop(paths, "zcmu1", "A_patients_20250401.csv", CSV)
    assert accept_file(paths, prof, "A_patients_20250401.csv", name_check=NAME_CHECK).status == "accepted"
    _drop(paths, "zcmu1", "A_labs_20250401.csv", b"mrn,test\nM1,CRP\n")
    assert accept_file(paths, prof, "A_labs_20250401.csv", name_check=NAME_CHECK).status == "accepted"
    m = manifest_path(paths, "zcmu1")
    data = m.read_bytes()
    m.write_bytes(data[: len(data) - 40])  # power loss while the second record was written
    _drop(paths, "zcmu1", "B_patients_20250401.csv", b"mrn,sex\nM1,M\n")
    assert accept_file(paths, prof, "B_patients_20250401.csv", name_check=NAME_CHECK).status == "accepted"
    records = read_manifest(paths, "zcmu1")
    # the torn record is recovered from the archive's own record, the next one follows it
    assert sorted(d.file_name for d in records) == ["A_labs_20250401.csv", "A_patients_20250401.csv", "B_patients_20250401.csv"]
    assert sorted(d.seq for d in records) == [1, 2, 3]
    lines = m.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(json.loads(line) for line in lines[:-1])
    assert list(m.parent.glob("manifest.torn-*"))


def test_rebuild_recovers_every_accepted_file_when_the_manifest_is_lost(paths):
    prof = CENTERS["zcmu1"]
    for name in ("A_patients_20250401.csv", "A_labs_20250401.csv"):
        _drop(paths, "zcmu1", name, name.encode() + b"\nx\n")
        accept_file(paths, prof, name, name_check=NAME_CHECK)
    manifest_path(paths, "zcmu1").write_bytes(b'{"center": "zcmu1", "se')  # only a torn line left
    notes = repair_manifest(paths, "zcmu1")
    assert len(notes) == 3
    assert sorted(d.file_name for d in accepted_deliveries(paths, "zcmu1")) == ["A_labs_20250401.csv", "A_patients_20250401.csv"]


def test_two_concurrent_intakes_take_each_file_once_with_distinct_sequence_numbers(paths):
    prof = CENTERS["zcmu1"]
    names = [f"A_{t}_20250401.csv" for t in ("patients", "labs", "medications", "surgeries", "assessments")]
    for n in names:
        _drop(paths, "zcmu1", n, n.encode() + b"\n1\n")
    results: list = []

    def look():
        outs, _ = take_complete_files(paths, prof, None, settle_seconds=0, name_check=NAME_CHECK)
        results.extend(outs)

    threads = [threading.Thread(target=look) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.status for o in results) == ["accepted"] * 5  # no spurious "duplicate" or "gone" lines
    records = read_manifest(paths, "zcmu1")
    assert sorted(r.seq for r in records) == [1, 2, 3, 4, 5]
    assert sorted(r.file_name for r in records) == sorted(names)


# ------------------------------------------------------------------ entries that are not taken
def test_an_unreadable_file_is_reported_once_and_does_not_stall_the_run(paths):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    p = _drop(paths, "zcmu1", "A_patients_20250401.csv", CSV)
    p.chmod(0)
    t0 = time.time()
    (o,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, name_check=NAME_CHECK)
    assert time.time() - t0 < 5
    assert o.status == "unreadable" and "chmod" in o.message
    assert len(_notes(paths, "zcmu1", "unreadable")) == 1


def test_an_unreadable_file_as_root_is_reported_not_waited_for(paths, monkeypatch):
    """The same under root (who reads every file): the read fails with a permission error."""
    import ibd_pipeline.intake as intake

    _drop(paths, "zcmu1", "A_patients_20250401.csv", CSV)

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(intake, "sha256_file", denied)
    t0 = time.time()
    (o,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, name_check=NAME_CHECK)
    assert time.time() - t0 < 5 and o.status == "unreadable"
    assert len(_notes(paths, "zcmu1", "unreadable")) == 1


def test_an_inbox_the_pipeline_cannot_remove_from_does_not_crash_the_intake(paths, monkeypatch):
    import ibd_pipeline.intake as intake

    _drop(paths, "zcmu1", "A_patients_20250401.csv", CSV)
    real = intake.Path.unlink

    def no_unlink(self, missing_ok=False):
        if self.parent == paths.inbox("zcmu1"):
            raise PermissionError(13, "Permission denied")
        return real(self, missing_ok=missing_ok)

    monkeypatch.setattr(intake.Path, "unlink", no_unlink)
    (o,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o.status == "accepted" and "chmod" in o.message  # archived all the same, cause and fix named
    (o2,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, max_wait=5, name_check=NAME_CHECK)
    assert o2.status == "blocked" and "chmod" in o2.message  # no "duplicate" note at every run
    assert [d.status for d in read_manifest(paths, "zcmu1")] == ["accepted"]


def test_a_read_only_inbox_gives_one_message_naming_cause_and_fix(paths, monkeypatch):
    import ibd_pipeline.intake as intake

    _drop(paths, "zcmu1", "A_patients_20250401.csv", CSV)
    monkeypatch.setattr(intake.os, "access", lambda p, mode: False)
    (o,) = drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, name_check=NAME_CHECK)
    assert o.status == "blocked" and "not writable" in o.message and "chmod" in o.message


def test_entries_in_the_wrong_place_are_noted_in_the_outbox_and_the_run_output(paths, tmp_path):
    root = paths.root / "inbox"
    (root / "A_patients_20250401.csv").write_bytes(CSV)  # the inbox root
    (root / "zzz9").mkdir()  # an unknown center
    (root / "zzz9" / "A_patients_20250401.csv").write_bytes(CSV)
    (paths.inbox("zcmu1") / "April").mkdir()  # a subfolder
    target = tmp_path / "elsewhere.csv"
    target.write_bytes(CSV)
    (root / "link.csv").symlink_to(target)
    outs = stray_entries(paths, CENTERS)
    assert sorted((o.center, o.file_name, o.status) for o in outs) == [
        ("-", "A_patients_20250401.csv", "ignored"), ("-", "link.csv", "ignored"), ("-", "zzz9", "ignored"),
        ("zcmu1", "April", "ignored"),
    ]
    assert all(o.message for o in outs)
    assert len(_notes(paths, "_inbox", "ignored")) == 3 and len(_notes(paths, "zcmu1", "ignored")) == 1
    stray_entries(paths, CENTERS)
    assert len(_notes(paths, "_inbox", "ignored")) == 3  # once per entry


# ------------------------------------------------------------------ names that may identify someone
def test_a_rejected_file_named_after_a_patient_is_shown_by_its_hash_only(paths):
    name = "张伟_13812345678_ZY03102594.csv"
    _drop(paths, "zcmu1", name, CSV)
    o = accept_file(paths, CENTERS["zcmu1"], name, name_check=NAME_CHECK)
    assert o.status == "rejected"
    (rec,) = read_manifest(paths, "zcmu1")
    texts = [o.file_name, o.message, rec.file_name, rec.message, manifest_path(paths, "zcmu1").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8-sig") + p.name for p in paths.outbox("zcmu1").iterdir() if p.is_file()]
    for t in texts:
        for ident in ("张伟", "13812345678", "ZY03102594"):
            assert ident not in t, t
    assert rec.file_name.startswith("file #") and "{round}_{table}_{yyyymmdd}.csv" in rec.file_name
