"""What loading a center writes (docs/STUDY_RULES.md#extraction; record-level delivery
semantics, issue 12): its staging rows - through the *record state* of each table, the
newest accepted version of every CRF key, computed inside DuckDB - and its quarantine,
delivery records, withdrawals and delivery notes. ``loading`` calls these inside one
``warehouse.transaction``, so an interrupted load leaves the previous state."""

from __future__ import annotations

import duckdb
import pandas as pd

from ..config import Crf
from .warehouse import (DELIVERY_COLUMNS, NOTE_COLUMNS, QUARANTINE_COLUMNS, WITHDRAWAL_COLUMNS, ddl, delete_center,
                        ensure_table, insert_frame, quoted, staging_columns)

ORDER = "_ord"  # a version's position: the archive sequence number of its delivery


def key_columns(table: str, crf: Crf) -> list[str]:
    """The staging columns of a table's CRF key (``mrn`` -> patient_id, ``table`` -> table_name)."""
    return [("patient_id" if f == "mrn" else "table_name" if f == "table" else f) for f in crf.table(table).key]


def clear_staging(con: duckdb.DuckDBPyConnection, table: str, center: str) -> None:
    delete_center(con, f"staging.{table}", center)


def insert_staging(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, crf: Crf) -> int:
    return insert_frame(con, f"staging.{table}", df, staging_columns(table, crf))


class RecordState:
    """The versions of one staging table's records a center's deliveries applied
    (temporary table ``_v``, every version with its delivery's ``_ord``) and, after
    ``settle``, the record state (``_c``: the newest version of every key per round,
    numbered ``_i`` in the order received). Temporary tables of the connection, dropped
    by ``close``."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, crf: Crf):
        self.con, self.table = con, table
        self.cols = staging_columns(table, crf)
        self.vcols = self.cols + [(ORDER, "BIGINT")]
        kc = key_columns(table, crf)
        self._part = ", ".join(["round", *map(quoted, kc)])
        self._keys = ["round", *kc]
        self._on = " AND ".join(f"r.{quoted(c)} = v.{quoted(c)}" for c in self._keys)
        con.execute("DROP TABLE IF EXISTS _v")
        con.execute(ddl("_v", self.vcols, temp=True))

    def add(self, frame: pd.DataFrame, center: str, seq: int) -> None:
        """The valid rows of one chunk of the delivery with archive position ``seq``."""
        insert_frame(self.con, "_v", frame.assign(center=center, **{ORDER: seq}), self.vcols)

    def settle(self) -> None:
        """Compute the record state: the newest accepted version of every key."""
        self.con.execute("DROP TABLE IF EXISTS _c")
        self.con.execute(
            f"CREATE TEMP TABLE _c AS SELECT *, row_number() OVER (ORDER BY {ORDER}, source_file, source_row) AS _i FROM _v "
            f"QUALIFY row_number() OVER (PARTITION BY {self._part} ORDER BY {ORDER} DESC) = 1"
        )

    def kept(self, rejected: pd.DataFrame) -> pd.DataFrame:
        """Of the rows that failed (``rejected``: key columns, ``round``, ``_seq``, file_name,
        sheet, source_row, rules), those whose record kept an earlier accepted version: the
        version kept (kept_seq, kept_file, kept_row) and the file the record is now from."""
        on = self._on
        self.con.register("_rk_src", rejected)
        try:
            return self.con.execute(
                f"SELECT r._seq, r.file_name, r.sheet, r.source_row AS row_number, r.patient_id, r.rules, "
                f"v.{ORDER} AS kept_seq, v.source_file AS kept_file, v.source_row AS kept_row, "
                f"(SELECT c.source_file FROM _c c WHERE {on.replace('v.', 'c.')}) AS now_file "
                f"FROM _rk_src r JOIN _v v ON {on} AND v.{ORDER} < r._seq "
                f"WHERE NOT EXISTS (SELECT 1 FROM _v w WHERE {on.replace('v.', 'w.')} AND w.{ORDER} = r._seq) "
                f"QUALIFY row_number() OVER (PARTITION BY r._seq, {', '.join('r.' + quoted(c) for c in self._keys)} "
                f"ORDER BY v.{ORDER} DESC, r.source_row) = 1"
            ).df()
        finally:
            self.con.unregister("_rk_src")

    def absent(self, rnd: str, seq: int) -> pd.DataFrame:
        """Records of round ``rnd`` not in the delivery ``seq`` (their version is older)."""
        return self.con.execute(
            f"SELECT {ORDER}, source_file, source_row, patient_id FROM _c WHERE round = ? AND {ORDER} < ? ORDER BY _i",
            [rnd, seq],
        ).df()

    def withdraw(self, withdrawn: pd.DataFrame) -> pd.DataFrame:
        """Remove the rows of the withdrawn patients (``withdrawn``: patient_id, seq of the
        withdrawal list) from the record state; returns what was removed."""
        self.con.register("_wd_src", withdrawn[["patient_id", "seq"]].rename(columns={"seq": "_wd_seq"}))
        try:
            gone = self.con.execute(
                "SELECT w._wd_seq AS _seq, c.source_file, c.source_row, c.patient_id FROM _c c "
                "JOIN _wd_src w USING (patient_id) ORDER BY c._i"
            ).df()
            self.con.execute("DELETE FROM _c WHERE patient_id IN (SELECT patient_id FROM _wd_src)")
        finally:
            self.con.unregister("_wd_src")
        return gone

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM _c").fetchone()[0])

    def rows(self, lo: int | None = None, hi: int | None = None) -> pd.DataFrame:
        """The record state in the order received (positions ``lo`` <= _i < ``hi`` when given)."""
        select = ", ".join(quoted(c) for c, _ in self.cols)
        if lo is None:
            return self.con.execute(f"SELECT {select} FROM _c ORDER BY _i").df()
        return self.con.execute(f"SELECT {select} FROM _c WHERE _i >= ? AND _i < ? ORDER BY _i", [lo, hi]).df()

    def close(self) -> None:
        self.con.execute("DROP TABLE IF EXISTS _c")
        self.con.execute("DROP TABLE IF EXISTS _v")


def replace_center_records(con: duckdb.DuckDBPyConnection, center: str, quarantine: pd.DataFrame, deliveries: pd.DataFrame,
                           withdrawals: pd.DataFrame, notes: pd.DataFrame) -> None:
    """A center's quarantine, delivery records, withdrawal audit and delivery notes,
    replaced (inside the caller's transaction)."""
    delete_center(con, "analytics.quarantine", center)
    if len(quarantine):
        insert_frame(con, "analytics.quarantine", quarantine.assign(center=center), QUARANTINE_COLUMNS)
    delete_center(con, "analytics.deliveries", center)
    insert_frame(con, "analytics.deliveries", deliveries, DELIVERY_COLUMNS)
    ensure_table(con, "analytics.withdrawals", WITHDRAWAL_COLUMNS)
    delete_center(con, "analytics.withdrawals", center)
    if len(withdrawals):
        insert_frame(con, "analytics.withdrawals", withdrawals, WITHDRAWAL_COLUMNS)
    delete_center(con, "analytics.delivery_notes", center)
    insert_frame(con, "analytics.delivery_notes", notes, NOTE_COLUMNS)
