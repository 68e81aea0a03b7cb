"""The analysts' snapshot under load.

After a first full run (the session's reference run), a second process keeps querying
``data/analytics.duckdb`` read-only through ``connect_snapshot`` - a fresh connection per
query round, and one connection held open all along, as an analyst's notebook would -
while this process runs the whole pipeline again on a copy of that data directory, with
the senior reviewer's adjudications newly dropped into the inboxes (so the result
changes). Neither side may fail; the reader sees the old snapshot, then the new one,
never a broken one; afterwards the snapshot reflects the new run.

The snapshot's shape is checked too: no ``staging`` schema, no raw ``quarantine.value``,
and the table and column descriptions in ``duckdb_tables()`` / ``duckdb_columns()``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from dagster import DagsterInstance

from tests.support.fullrun import PROJECT, clean_env, reference_run, truth_dir
from ibd_pipeline.config import data_paths
from ibd_pipeline.snapshot import connect_snapshot

READER = textwrap.dedent(
    """
    import os, sys, time
    from ibd_pipeline.snapshot import connect_snapshot

    snapshot, flag = sys.argv[1], sys.argv[2]
    QUERIES = ("SELECT count(*) FROM analytics.endpoint_rates", "SELECT count(*) FROM core.patients",
               "SELECT count(*) FROM analytics.deliveries")
    held = connect_snapshot(snapshot)  # an analyst's session, open during the whole run
    i = 0
    while os.path.exists(flag):
        i += 1
        for label, con in (("fresh", None), ("held", held)):
            try:
                c = con or connect_snapshot(snapshot)
                counts = [c.execute(q).fetchone()[0] for q in QUERIES]
                if con is None:
                    c.close()
                print(label, i, *counts, flush=True)
            except Exception as e:
                print("ERR", label, i, type(e).__name__, str(e).replace(chr(10), " "), flush=True)
        time.sleep(0.05)
    held.close()
    print("done", i, flush=True)
    """
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="module")
def concurrent(reference, tmp_path_factory):
    """A copy of the reference data directory, adjudications dropped, run again while a
    second process reads the snapshot."""
    from ibd_pipeline.cli import adjudicate_outboxes
    from ibd_pipeline.runner import run_pipeline

    root = tmp_path_factory.mktemp("snapshot-load")
    shutil.copytree(reference.data.root, root / "data", ignore=shutil.ignore_patterns("dagster_home"))
    paths = data_paths(root / "data")
    dropped = adjudicate_outboxes(paths, truth_dir(tmp_path_factory))
    assert len(dropped) == 3
    con = connect_snapshot(paths.snapshot)
    before = {
        "deliveries": con.execute("SELECT count(*) FROM analytics.deliveries").fetchone()[0],
        "resolved": con.execute("SELECT count(*) FROM analytics.discrepancies WHERE status <> 'open'").fetchone()[0],
    }
    con.close()

    flag = root / "reading"
    flag.touch()
    script = root / "reader.py"
    script.write_text(READER)
    log = root / "reader.out"
    with open(log, "w") as out_fh:
        reader = subprocess.Popen(
            [sys.executable, str(script), str(paths.snapshot), str(flag)], env=clean_env(paths.root), cwd=PROJECT,
            stdout=out_fh, stderr=subprocess.PIPE, text=True,
        )
    try:
        deadline = time.time() + 60
        while "held 1 " not in log.read_text() and reader.poll() is None and time.time() < deadline:
            time.sleep(0.1)  # the reader is up and has read the first snapshot
        t0 = time.time()
        summary = run_pipeline(paths.root, settle_seconds=0, instance=DagsterInstance.ephemeral())
        seconds = time.time() - t0
        time.sleep(1)  # a few more rounds on the new snapshot
    finally:
        flag.unlink(missing_ok=True)
        _, err = reader.communicate(timeout=60)
    out = log.read_text()
    return {"paths": paths, "summary": summary, "seconds": seconds, "before": before, "reader_rc": reader.returncode,
            "out": out.splitlines(), "err": err}


def test_a_reader_of_the_snapshot_and_a_full_run_do_not_disturb_each_other(concurrent):
    s = concurrent["summary"]
    assert s.success, s.lines()
    assert concurrent["reader_rc"] == 0, concurrent["err"][-3000:]
    lines = concurrent["out"]
    assert [ln for ln in lines if ln.startswith("ERR")] == []
    fresh = [ln.split() for ln in lines if ln.startswith("fresh")]
    held = [ln.split() for ln in lines if ln.startswith("held")]
    assert len(fresh) >= 20 and len(held) == len(fresh), lines[-5:]
    assert lines[-1].startswith("done")
    # new connections saw the old snapshot, then the new one (never anything else) ...
    deliveries = [int(f[4]) for f in fresh]
    before = concurrent["before"]["deliveries"]
    assert deliveries[0] == before
    assert deliveries[-1] > before  # the adjudication files are deliveries too
    assert set(deliveries) == {deliveries[0], deliveries[-1]}
    switch = deliveries.index(deliveries[-1])
    assert all(d == deliveries[-1] for d in deliveries[switch:])  # no flapping back
    for f in fresh:
        assert int(f[2]) > 0 and int(f[3]) > 0  # endpoint rates and patients readable in every round
    # ... while the session held open kept reading its own consistent snapshot
    assert {tuple(h[2:]) for h in held} == {tuple(fresh[0][2:])}


def test_the_snapshot_afterwards_reflects_the_new_run(concurrent):
    paths = concurrent["paths"]
    con = connect_snapshot(paths.snapshot)
    try:
        n = con.execute("SELECT count(*) FROM analytics.deliveries").fetchone()[0]
        adj = con.execute("SELECT count(*) FROM analytics.deliveries WHERE round = 'ADJ' AND status = 'current'").fetchone()[0]
        resolved = con.execute("SELECT count(*) FROM analytics.discrepancies WHERE status <> 'open'").fetchone()[0]
    finally:
        con.close()
    assert n > concurrent["before"]["deliveries"] and adj == 3
    assert resolved > concurrent["before"]["resolved"]
    assert not list(paths.root.glob(".analytics.duckdb.*"))  # no temporary snapshot left behind


def test_the_snapshot_has_no_staging_no_raw_values_and_carries_the_descriptions(reference):
    con = connect_snapshot(reference.data.snapshot)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'study'").fetchall()}
        assert "staging" not in schemas and "reconciled" not in schemas
        assert {"core", "analytics"} <= schemas
        qcols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'study' AND schema_name = 'analytics' "
            "AND table_name = 'quarantine'").fetchall()]
        assert qcols and "value" not in qcols and "rule" in qcols
        tables = con.execute(
            "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = 'study'").fetchall()
        assert len(tables) > 20
        assert [t for t in tables if not (t[2] or "").strip()] == []
        undocumented = con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE database_name = 'study' "
            "AND coalesce(comment, '') = ''").fetchall()
        assert undocumented == []
        # read-only: an analyst cannot change it by accident
        with pytest.raises(Exception, match="(?i)read.only"):
            con.execute("CREATE TABLE analytics.scratch AS SELECT 1 AS x")
    finally:
        con.close()
