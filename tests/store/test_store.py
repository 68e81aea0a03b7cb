"""The storage layer's transactions (ibd_pipeline/store/, issue 16): a write that fails
inside a step leaves what the previous step committed; the warehouse has one writer at
a time; the reconciliation replaces exactly the quarantine rows it owns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest

from ibd_pipeline.config import data_paths, load_centers, load_crf, load_settings
from ibd_pipeline.intake import drain_inbox
from ibd_pipeline.loading import load_center
from ibd_pipeline.store import reconciled as store_rc
from ibd_pipeline.store import staging as stg
from ibd_pipeline.store import warehouse as wh
from tests.support.intake import NAME_CHECK

CENTERS = load_centers()
CRF = load_crf()
SETTINGS = load_settings()
KEY = b"store-test-key-0123456789abcdef0"
CENTER = "zcmu1"  # one CSV per table


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory):
    from ibd_pipeline.synth import generate_deliveries

    root = tmp_path_factory.mktemp("store")
    generate_deliveries(root / "inbox", n_patients=12, seed=11, truth_dir=root / "truth")
    return root / "inbox" / CENTER


def _state(con) -> dict[str, pd.DataFrame]:
    out = {f"staging.{t}": con.execute(f"SELECT * FROM staging.{t} WHERE center = ? ORDER BY ALL", [CENTER]).df()
           for t in CRF.tables}
    for t in ("deliveries", "quarantine", "delivery_notes", "withdrawals"):
        out[f"analytics.{t}"] = con.execute(f"SELECT * FROM analytics.{t} WHERE center = ? ORDER BY ALL", [CENTER]).df()
    return out


def test_a_write_failing_inside_a_load_leaves_the_previous_accepted_rows(deliveries, tmp_path, monkeypatch):
    paths = data_paths(tmp_path / "data").ensure([CENTER])
    for f in deliveries.iterdir():
        shutil.copy(f, paths.inbox(CENTER) / f.name)
    drain_inbox(paths, CENTERS[CENTER], settle_seconds=0, name_check=NAME_CHECK)
    con = duckdb.connect(str(paths.warehouse))
    try:
        load_center(con, paths, CENTERS[CENTER], CRF, KEY, SETTINGS)
        before = _state(con)
        n_patients = len(before["staging.patients"])
        assert n_patients > 0 and len(before["analytics.deliveries"]) == len(list(deliveries.iterdir()))

        # a newer patients delivery without its last patient: accepted, it would change the
        # delivery records (and the notes: that patient is "absent", kept)
        src = next(p for p in deliveries.iterdir() if p.name.startswith("A_patients_"))
        lines = src.read_bytes().splitlines(keepends=True)
        newer = paths.inbox(CENTER) / src.name.replace("20250401", "20250402")
        newer.write_bytes(b"".join(lines[:-1]))
        t = time.time() - 60
        os.utime(newer, (t, t))
        drain_inbox(paths, CENTERS[CENTER], settle_seconds=0, name_check=NAME_CHECK)

        real = stg.replace_center_records

        def fail_after_writing(con_, *args, **kwargs):
            real(con_, *args, **kwargs)  # every write of the load is done ...
            raise OSError("disk full")  # ... and the last one fails before the commit

        monkeypatch.setattr(stg, "replace_center_records", fail_after_writing)
        with pytest.raises(OSError, match="disk full"):
            load_center(con, paths, CENTERS[CENTER], CRF, KEY, SETTINGS)
        after = _state(con)
        for name, df in before.items():
            pd.testing.assert_frame_equal(after[name], df, obj=name)

        monkeypatch.setattr(stg, "replace_center_records", real)
        rep = load_center(con, paths, CENTERS[CENTER], CRF, KEY, SETTINGS)
        done = _state(con)
        assert rep.absent == 1
        assert len(done["staging.patients"]) == n_patients  # the absent patient is kept
        row = done["analytics.deliveries"].query("file_name == @newer.name")
        assert row[["table_name", "status", "rows_in"]].values.tolist() == [["patients", "current", len(lines) - 2]]
        assert done["analytics.delivery_notes"]["kind"].tolist() == ["absent"]
    finally:
        con.close()


def test_a_transaction_commits_all_or_nothing(tmp_path):
    cols = [("center", "VARCHAR"), ("n", "BIGINT")]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        wh.ensure_table(con, "t", cols)
        wh.insert_frame(con, "t", pd.DataFrame({"center": ["a", "a", "b"], "n": [1, 2, 3]}), cols)
        with pytest.raises(ValueError, match="bad row"):
            with wh.transaction(con):
                wh.delete_center(con, "t", "a")
                wh.insert_frame(con, "t", pd.DataFrame({"center": ["a"], "n": [9]}), cols)
                raise ValueError("bad row")
        assert con.execute("SELECT center, n FROM t ORDER BY n").fetchall() == [("a", 1), ("a", 2), ("b", 3)]
        with wh.transaction(con):
            wh.delete_center(con, "t", "a")
            wh.insert_frame(con, "t", pd.DataFrame({"center": ["a"], "n": [9]}), cols)
        assert con.execute("SELECT center, n FROM t ORDER BY n").fetchall() == [("b", 3), ("a", 9)]
    finally:
        con.close()


def test_the_warehouse_has_one_writer_and_a_second_one_waits_for_the_lock(tmp_path):
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(3); c.close()",
         str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(wh.DatabaseError):  # no waiting: the lock is another process's
            with wh.connect(db, wait_seconds=0):
                pass
        t0 = time.monotonic()
        with wh.connect(db, wait_seconds=30) as con:  # waits until the holder closes
            waited = time.monotonic() - t0
            con.execute("CREATE TABLE t AS SELECT 1 AS x")
        assert waited > 0.5
    finally:
        holder.wait(timeout=30)
    with wh.connect(db, read_only=True) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]


def _quarantine_row(field: str, rule: str, row: int) -> dict:
    return {"center": CENTER, "round": "ADJ", "delivery_id": "d", "table_name": "adjudications", "file_name": "worklist.xlsx",
            "sheet": None, "row_number": row, "patient_id": "P1", "field": field, "value": "x", "rule": rule, "message": "m"}


def test_the_reconciliation_replaces_only_the_decision_rejections_it_owns(tmp_path):
    """reconcile.decisions.DECISION_REJECTIONS names the quarantine rows the decisions
    make; those of the ADJ file's extraction (and other centers' rows) stay."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        wh.ensure_warehouse(con, CRF)
        rows = [
            _quarantine_row("decided_on", "type", 2),  # the extraction's: kept
            _quarantine_row("resolved_value", "range", 3),  # a decision's: replaced
            _quarantine_row("field", "no_open_discrepancy", 4),
            _quarantine_row("record_key", "record_unavailable", 5),
            _quarantine_row("field", "unique_key", 6),
            _quarantine_row("record_key", "unique_key", 7),  # the extraction's key check: kept
            {**_quarantine_row("resolved_value", "range", 8), "center": "zju2"},  # another center's: kept
        ]
        wh.insert_frame(con, "analytics.quarantine", pd.DataFrame(rows), wh.QUARANTINE_COLUMNS)
        new = pd.DataFrame([_quarantine_row("resolved_value", "code", 9)]).drop(columns="center")
        store_rc.write_reconciled(con, CENTER, {}, new, CRF)
        left = con.execute("SELECT center, row_number, field, rule FROM analytics.quarantine ORDER BY center, row_number").fetchall()
        assert left == [
            (CENTER, 2, "decided_on", "type"), (CENTER, 7, "record_key", "unique_key"),
            (CENTER, 9, "resolved_value", "code"), ("zju2", 8, "resolved_value", "range"),
        ]
    finally:
        con.close()


def test_the_memory_limit_setting_bounds_duckdb_on_every_warehouse_connection(tmp_path, monkeypatch):
    from ibd_pipeline.store import warehouse as wh_

    db = tmp_path / "w.duckdb"
    with wh_.connect(db) as con:
        default = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    monkeypatch.setenv(wh_.MEMORY_LIMIT_ENV, "300MB")
    with wh_.connect(db) as con:
        limited = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limited != default
    assert limited.endswith("MiB") and 280 <= float(limited.split()[0]) <= 300  # DuckDB shows 300MB as 286.1 MiB
    ro = wh_.open_read_only(db)
    try:
        assert ro.execute("SELECT current_setting('memory_limit')").fetchone()[0] == limited  # read-only ones too
    finally:
        ro.close()
