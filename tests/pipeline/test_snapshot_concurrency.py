"""The analysts' snapshot under load.

After a first full run (the session's reference run), a second process keeps querying
``data/analytics.duckdb`` read-only through ``connect_snapshot`` - a fresh connection per
query round, and one connection held open all along, as an analyst's notebook would -
while this process runs the whole pipeline again on a copy of that data directory, with
the senior reviewer's adjudications newly dropped into the inboxes (so the result
changes): the session's ``demo_run`` (tests/pipeline/conftest.py, ``ibd-pipeline demo``
on the copy). Neither side may fail; the reader sees the old snapshot, then the new one,
never a broken one; afterwards the snapshot reflects the new run.

The snapshot's shape is checked too: no ``staging`` schema, no raw ``quarantine.value``,
and the table and column descriptions in ``duckdb_tables()`` / ``duckdb_columns()``.
"""

from __future__ import annotations

import pytest

from ibd_pipeline.store.snapshot import connect_snapshot


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run


@pytest.fixture(scope="module")
def concurrent(demo_run):
    return demo_run


def test_a_reader_of_the_snapshot_and_a_full_run_do_not_disturb_each_other(concurrent):
    assert concurrent["returncode"] == 0, concurrent["stdout"][-3000:]
    assert "senior reviewer adjudicated 3 worklist(s)" in concurrent["stdout"]
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
