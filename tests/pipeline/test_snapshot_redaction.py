"""The last line of defence at snapshot publish: every text column of every table of the
analysts' snapshot passes the PHI check; a value that fails is redacted and the run notes it."""

from __future__ import annotations

import time

import duckdb
import pandas as pd

from ibd_pipeline.privacy import WITHHELD
from ibd_pipeline.store.snapshot import connect_snapshot, publish_snapshot, redact_snapshot

NAME, PHONE, MRN = "欧阳娜娜", "13812345678", "ZY03102594"


def _warehouse(path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA core; CREATE SCHEMA analytics")
    con.execute("CREATE TABLE core.patients (patient_id VARCHAR, note VARCHAR, age INTEGER, start DATE)")
    con.execute(
        "INSERT INTO core.patients VALUES ('P0123456789', ?, 40, DATE '2024-01-01'), ('Pabc', 'CD', 41, NULL), "
        "('Pdef', ?, 42, NULL), ('Pdef2', ?, 43, NULL)",
        [f"called {NAME}", f"tel {PHONE}", f"called {NAME}"],
    )
    con.execute("COMMENT ON TABLE core.patients IS 'one row per patient'")
    con.execute("CREATE TABLE analytics.table1 (label VARCHAR, UC VARCHAR)")
    con.execute("INSERT INTO analytics.table1 VALUES ('CRP, median [IQR]', '839 [111-1313]'), (?, '12 (40.0%)')", [MRN])
    return con


def test_publish_redacts_every_failing_text_value_and_reports_where(tmp_path):
    con = _warehouse(tmp_path / "w.duckdb")
    found: dict = {}
    try:
        publish_snapshot(con, tmp_path / "analytics.duckdb", before_publish=lambda c, db: found.update(redact_snapshot(c, db)))
        # the working warehouse keeps what was delivered
        assert con.execute("SELECT count(*) FROM core.patients WHERE note LIKE ?", [f"%{NAME}%"]).fetchone()[0] == 2
    finally:
        con.close()
    assert found == {"core.patients.note": 3, "analytics.table1.label": 1}
    snap = connect_snapshot(tmp_path / "analytics.duckdb")
    try:
        notes = dict(snap.execute("SELECT patient_id, note FROM core.patients").fetchall())
        t1 = snap.execute("SELECT label, UC FROM analytics.table1 ORDER BY UC").fetchall()
        comment = snap.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'patients'").fetchone()[0]
    finally:
        snap.close()
    assert notes == {"P0123456789": f"called {WITHHELD}", "Pabc": "CD", "Pdef": f"tel {WITHHELD}", "Pdef2": f"called {WITHHELD}"}
    assert t1 == [(WITHHELD, "12 (40.0%)"), ("CRP, median [IQR]", "839 [111-1313]")]  # statistics untouched
    assert comment == "one row per patient"


def test_a_failing_hook_leaves_the_old_snapshot_in_place(tmp_path):
    con = _warehouse(tmp_path / "w.duckdb")
    target = tmp_path / "analytics.duckdb"
    try:
        publish_snapshot(con, target)
        before = target.read_bytes()

        def boom(c, db):
            raise RuntimeError("check failed")

        try:
            publish_snapshot(con, target, before_publish=boom)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the hook's error must propagate")
    finally:
        con.close()
    assert target.read_bytes() == before


def test_the_check_costs_little_on_a_study_sized_snapshot(tmp_path):
    """50,000 rows x 3 text columns (a few thousand distinct values, as the 122-patient
    study's snapshot has ~4,000): each distinct value is checked once."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 's.duckdb'}' AS snap")
    con.execute("CREATE SCHEMA snap.core")
    n = 50_000
    df = pd.DataFrame({
        "patient_id": [f"P{i % 3000:020x}" for i in range(n)],
        "diagnosis": [["克罗恩病", "溃疡性结肠炎", "CD"][i % 3] for i in range(n)],
        "message": [f"the value in row {i % 4000}, field sex, is not a code of the CRF" for i in range(n)],
    })
    con.register("df", df)
    con.execute("CREATE TABLE snap.core.t AS SELECT * FROM df")
    t0 = time.perf_counter()
    assert redact_snapshot(con, "snap") == {}
    assert time.perf_counter() - t0 < 5.0
    con.close()
