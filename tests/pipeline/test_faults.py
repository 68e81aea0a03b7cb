"""No data lost under faults.

(a) Kill and rerun: ``ibd-pipeline run`` in a subprocess is killed (SIGKILL) once in the
middle of extraction (when the second center's ``staging_tables`` step starts) and once
in the middle of the study job (when the SQL model ``core.patients`` starts); after each
kill the warehouse opens and every center is either fully loaded or not at all; a third
run to completion gives exactly the tables of an uninterrupted run on the same
deliveries (the session's ``reference_run``, tests/conftest.py), and every delivery is in the archive under
its SHA-256.

(b) Rebuild: with the warehouse deleted, ``rebuild`` (the archive alone) gives the same
tables again.

The kill points are found deterministically: with IBD_LOG_LEVEL=DEBUG the CLI prints
Dagster's STEP_START events on stderr (line-buffered), and the test kills the process
on the line of the step it waits for.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import duckdb
import pytest
from dagster import DagsterInstance

from tests.support.fullrun import (
    PROJECT,
    clean_env,
    cli_command,
    differences,
    run_cli,
    snapshot_contents,
    warehouse_contents,
)
from ibd_pipeline.config import load_centers, load_crf, load_settings
from ibd_pipeline.intake import accepted_deliveries, read_manifest, sha256_file
from tests.support.intake import NAME_CHECK

CENTERS = list(load_centers())  # the order the runner takes them in
CENTER_TABLES = [f"staging.{t}" for t in load_crf().tables] + ["analytics.deliveries", "analytics.quarantine"]


def run_and_kill(paths, step: str, occurrence: int, timeout: float = 400) -> dict:
    """Start ``ibd-pipeline run`` and SIGKILL it when the ``occurrence``-th STEP_START of
    ``step`` appears on its stderr. Returns what happened."""
    log = paths.root.parent / f"killed-at-{step}-{occurrence}.log"
    t0 = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cli_command(paths.root, "run", "--settle", "0"), env=clean_env(paths.root, IBD_LOG_LEVEL="DEBUG"),
            cwd=PROJECT, stdout=out, stderr=subprocess.PIPE, text=True,
        )
        seen, killed, lines = 0, False, []
        deadline = time.time() + timeout
        try:
            for line in proc.stderr:
                lines.append(line)
                if "STEP_START" in line and f'"{step}"' in line:
                    seen += 1
                    if seen == occurrence:
                        proc.send_signal(signal.SIGKILL)
                        killed = True
                        break
                if time.time() > deadline:
                    break
        finally:
            if proc.poll() is None and not killed:
                proc.kill()
            proc.stderr.close()
            rc = proc.wait(timeout=60)
    return {"killed": killed, "returncode": rc, "seconds": time.time() - t0, "stderr_tail": "".join(lines[-20:])}


def center_rows(contents: dict, center: str) -> dict:
    """The rows of one center in the center-scoped tables."""
    out = {}
    for t in CENTER_TABLES:
        if t not in contents:
            out[t] = []
            continue
        cols, rows = contents[t]
        i = cols.index("center")
        out[t] = [r for r in rows if r[i] == center]
    return out


def archive_problems(paths, src_inbox) -> list[str]:
    """Every delivered file must be in its center's archive as <sha256>.<ext>, with that
    hash and the delivered bytes; the inbox must be empty."""
    problems = []
    for center in CENTERS:
        delivered = {f.name: f for f in (src_inbox / center).iterdir()}
        accepted = {d.file_name: d for d in accepted_deliveries(paths, center)}
        if set(accepted) != set(delivered):
            problems.append(f"{center}: archived {sorted(accepted)} != delivered {sorted(delivered)}")
        for name, d in accepted.items():
            p = paths.archive(center) / d.archive_name
            if p.name != f"{d.sha256}{p.suffix}" or not p.exists():
                problems.append(f"{center}/{name}: archive file {p.name} missing or misnamed")
            elif sha256_file(p) != d.sha256 or (name in delivered and p.read_bytes() != delivered[name].read_bytes()):
                problems.append(f"{center}/{name}: archive file does not hash to its name / differs from the delivery")
        leftover = [f.name for f in paths.inbox(center).iterdir()]
        if leftover:
            problems.append(f"{center}: files left in the inbox {leftover}")
    return problems


def cells(path):
    """A list or worklist as its cells (a workbook's bytes carry its creation time)."""
    if path.suffix == ".xlsx":
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_path(str(path))
        return {n: wb.get_sheet_by_name(n).to_python() for n in wb.sheet_names}
    return path.read_bytes()


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run


@pytest.fixture(scope="module")
def expected(reference):
    return warehouse_contents(reference.data.warehouse)


@pytest.fixture(scope="module")
def crashed(new_data_dir, deliveries, reference):
    """The same deliveries in a second data directory: killed in extraction, killed in
    the study job, then run to completion (states captured after every step)."""
    paths = new_data_dir("faults")
    out = {"paths": paths}
    out["kill1"] = run_and_kill(paths, "staging_tables", 2)
    out["after_kill1"] = warehouse_contents(paths.warehouse) if paths.warehouse.exists() else {}
    out["archive_after_kill1"] = archive_problems(paths, deliveries / "inbox")
    out["kill2"] = run_and_kill(paths, "core__patients", 1)
    out["after_kill2"] = warehouse_contents(paths.warehouse)
    t0 = time.time()
    out["final_run"] = run_cli(paths, "run", "--settle", "0")
    out["final_seconds"] = time.time() - t0
    out["final"] = warehouse_contents(paths.warehouse)
    return out


def test_a_run_killed_in_extraction_leaves_each_center_loaded_completely_or_not_at_all(crashed, expected):
    k = crashed["kill1"]
    assert k["killed"] and k["returncode"] == -signal.SIGKILL, k
    got = crashed["after_kill1"]
    first = CENTERS[0]
    # the center whose job finished before the kill is complete ...
    assert center_rows(got, first) == center_rows(expected, first)
    # ... and the others, killed while being extracted or not started, hold nothing
    # half-written: all of their rows or none
    for c in CENTERS[1:]:
        rows = center_rows(got, c)
        assert rows == center_rows(expected, c) or all(v == [] for v in rows.values()), c
    assert all(v == [] for v in center_rows(got, CENTERS[2]).values())
    # intake finishes before any job starts: everything delivered is already archived
    assert crashed["archive_after_kill1"] == []


def test_a_run_killed_in_the_study_job_keeps_every_center_result(crashed, expected):
    k = crashed["kill2"]
    assert k["killed"] and k["returncode"] == -signal.SIGKILL, k
    got = crashed["after_kill2"]
    center_level = [t for t in expected if t.startswith(("staging.", "reconciled."))] + [
        f"analytics.{t}" for t in ("deliveries", "quarantine", "reabstraction_sample", "agreement", "discrepancies")
    ]
    assert differences({t: expected[t] for t in center_level}, {t: got.get(t, ([], [])) for t in center_level}) == []


def test_rerunning_after_the_kills_gives_the_tables_of_an_uninterrupted_run(crashed, expected, reference):
    run = crashed["final_run"]
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "study: ok" in run.stdout
    assert len(expected) > 40
    assert differences(expected, crashed["final"]) == []
    # the analysts' snapshot too
    assert differences(snapshot_contents(reference.data.snapshot), snapshot_contents(crashed["paths"].snapshot)) == []


def test_every_delivery_is_archived_under_its_hash_with_one_manifest_record(crashed, reference, deliveries):
    src = deliveries / "inbox"
    for paths in (crashed["paths"], reference.data):
        assert archive_problems(paths, src) == []
        for c in CENTERS:
            records = read_manifest(paths, c)
            assert [r.status for r in records] == ["accepted"] * len(records)  # nothing recorded twice
            assert len({r.seq for r in records}) == len(records)
            for line in (paths.archive(c) / "manifest.jsonl").read_text(encoding="utf-8").split("\n")[:-1]:
                json.loads(line)  # no torn line


def _undated(name: str) -> str:
    """A worklist is named after the day it was written (a run may cross midnight)."""
    return re.sub(r"^((?:ADJ_|worklist_).*?)\d{8}(\.\w+)$", r"\1<date>\2", name)


def test_the_outboxes_after_the_kills_are_those_of_an_uninterrupted_run(crashed, reference):
    for c in CENTERS:
        want = {_undated(p.name): p for p in reference.data.outbox(c).iterdir()}
        got = {_undated(p.name): p for p in crashed["paths"].outbox(c).iterdir()}
        assert sorted(got) == sorted(want), c
        for name, p in want.items():
            if name.startswith(("reabstraction_sample_", "worklist_", "rejected_rows_")) and name.endswith(".xlsx"):
                assert cells(got[name]) == cells(p), name


def test_rebuild_from_the_archive_alone_gives_the_same_tables(crashed, expected):
    """Runs last in this module: it deletes the crashed data directory's warehouse."""
    from ibd_pipeline.runner import rebuild

    paths = crashed["paths"]
    before = crashed["final"]
    for p in (paths.warehouse, paths.warehouse.with_name(paths.warehouse.name + ".wal")):
        p.unlink(missing_ok=True)
    summary = rebuild(paths.root, instance=DagsterInstance.ephemeral())
    assert summary.success, summary.lines()
    assert summary.intake == []  # the archive alone, not the inbox
    rebuilt = warehouse_contents(paths.warehouse)
    assert differences(before, rebuilt) == []
    assert differences(expected, rebuilt) == []
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM analytics.deliveries WHERE status = 'current'").fetchone()[0]
    finally:
        con.close()
    assert n > 0


def test_a_crash_between_commit_and_the_delivery_reports_still_gets_the_coordinator_a_report(tmp_path, deliveries, monkeypatch):
    import shutil

    import ibd_pipeline.loading as loading
    from ibd_pipeline.config import data_paths
    from ibd_pipeline.intake import drain_inbox

    src = deliveries / "inbox" / "zcmu1" / "A_surgeries_20250401.csv"
    paths = data_paths(tmp_path / "data").ensure()
    shutil.copy(src, paths.inbox("zcmu1") / src.name)
    shutil.copy(src.with_name("A_patients_20250401.csv"), paths.inbox("zcmu1") / "A_patients_20250401.csv")  # its patients
    profile = load_centers()["zcmu1"]
    drain_inbox(paths, profile, settle_seconds=0, name_check=NAME_CHECK)
    key = b"k" * 32
    con = duckdb.connect(str(tmp_path / "w.duckdb"))

    def crash(*a, **kw):
        raise KeyboardInterrupt("process killed")  # stands for SIGKILL right after COMMIT

    with monkeypatch.context() as m:
        m.setattr(loading, "write_delivery_report", crash)
        with pytest.raises(KeyboardInterrupt):
            loading.load_center(con, paths, profile, load_crf(), key, load_settings())
    assert con.execute("SELECT count(*) FROM staging.surgeries").fetchone()[0] > 0  # the load was committed
    loading.load_center(con, paths, profile, load_crf(), key, load_settings())  # the rerun
    con.close()
    assert (paths.outbox("zcmu1") / f"{src.name}.report.html").exists()
