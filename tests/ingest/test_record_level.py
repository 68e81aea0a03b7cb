"""Record-level delivery semantics (issue 12 item 1, issue 18 item 2 loading rules):
a correction never loses accepted data; absent records are kept and listed; removal only
through the withdrawal list; held and older-dated files never replace the current one.
Each scenario is replayed in the three centers' own formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import time
import os
from pathlib import Path

import duckdb
import pytest

from ibd_pipeline.config import data_paths, load_centers, load_crf, load_settings
from ibd_pipeline.intake import drain_inbox
from ibd_pipeline.loading import confirm_delivery, load_center
from ibd_pipeline.pseudonym import patient_id
from ibd_pipeline.store.snapshot import publish_snapshot
from tests.support.intake import NAME_CHECK

CENTERS = load_centers()
CRF = load_crf()
SETTINGS = load_settings()
KEY = b"record-level-test-key-0123456789"
DATA_TABLES = [t for t in CRF.tables if t != "adjudications"]
PATIENT_SHEET = {v: k for k, v in CENTERS["zju2"].sheets.items()}["patients"]


@pytest.fixture(scope="module")
def study(small_deliveries):
    return small_deliveries  # 30 patients, seed 3 (read-only)


# ------------------------------------------------------------------ files in the centers' formats
def read_rows(center: str, path: Path, table: str = "patients") -> list[list]:
    p = CENTERS[center]
    if p.format == "xlsx":
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_path(str(path))
        return [list(r) for r in wb.get_sheet_by_name(PATIENT_SHEET if table == "patients" else table).to_python()]
    return list(csv.reader(io.StringIO(path.read_bytes().decode(p.encoding), newline="")))


def write_rows(center: str, folder: Path, name: str, sheets: dict[str, list[list]]) -> Path:
    p = CENTERS[center]
    path = folder / name
    if p.format == "xlsx":
        import xlsxwriter

        wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
        datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
        for sheet, rows in sheets.items():
            ws = wb.add_worksheet(sheet)
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    if isinstance(v, (dt.datetime, dt.date)):
                        ws.write_datetime(i, j, v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day), datefmt)
                    elif isinstance(v, (int, float)) and not isinstance(v, bool):
                        ws.write_number(i, j, v)
                    elif v not in (None, ""):
                        ws.write_string(i, j, str(v))
        wb.close()
    else:
        (rows,) = sheets.values()
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        path.write_bytes(buf.getvalue().encode(p.encoding))
    t = time.time() - 60
    os.utime(path, (t, t))
    return path


def patients_name(center: str, yyyymmdd: str) -> str:
    return CENTERS[center].file_pattern.format(round="A", table="patients", yyyymmdd=yyyymmdd)


def patients_sheets(center: str, rows: list[list]) -> dict[str, list[list]]:
    return {PATIENT_SHEET: rows} if CENTERS[center].format == "xlsx" else {"patients": rows}


def first_round_a_patients(center: str, study: Path) -> Path:
    inbox = study / "inbox" / center
    return next(inbox / n for n in sorted(os.listdir(inbox)) if n.startswith("A_") and ("patients" in n or n.endswith(".xlsx")))


def col(center: str, header: list, field: str) -> int:
    return header.index(CENTERS[center].header_for("patients", field))


# ------------------------------------------------------------------ warehouse helpers
def setup(center: str, study: Path, root: Path):
    paths = data_paths(root / "data").ensure([center])
    for f in (study / "inbox" / center).iterdir():
        shutil.copy(f, paths.inbox(center) / f.name)
    drain_inbox(paths, CENTERS[center], settle_seconds=0, name_check=NAME_CHECK)
    return paths


def load(paths, center: str, root: Path):
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        rep = load_center(con, paths, CENTERS[center], CRF, KEY, SETTINGS)
        state = {t: con.execute(f"SELECT * EXCLUDE (delivery_id) FROM staging.{t} WHERE center = ? ORDER BY ALL", [center]).df()
                 for t in DATA_TABLES}
    finally:
        con.close()
    return rep, state


def deliver(paths, center: str, name: str, sheets) -> None:
    write_rows(center, paths.inbox(center), name, sheets)
    (o,) = drain_inbox(paths, CENTERS[center], settle_seconds=0, name_check=NAME_CHECK)
    assert o.status == "accepted", o


def query(root: Path, sql: str, params=()):
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


# ================================================================== the correction scenario
@pytest.mark.parametrize("center", sorted(CENTERS))
def test_a_correction_with_two_invalid_patient_rows_keeps_their_accepted_versions(center, study, tmp_path):
    paths = setup(center, study, tmp_path)
    _, before = load(paths, center, tmp_path)
    known_sql = "SELECT count(*) FROM analytics.quarantine WHERE center = ? AND rule = 'patient_known'"
    pk_before = query(tmp_path, known_sql, [center])
    rows = read_rows(center, first_round_a_patients(center, study))
    header, body = rows[0], [list(r) for r in rows[1:]]
    bd, mrn_c, wt = col(center, header, "birth_date"), col(center, header, "mrn"), col(center, header, "weight_kg")
    bad = [str(body[0][mrn_c]).strip(), str(body[1][mrn_c]).strip()]
    body[0][bd] = "1991/13/45"
    body[1][bd] = "1991/13/45"
    changed_mrn = str(body[2][mrn_c]).strip()
    body[2][wt] = 77.5  # the one record the correction really changes
    if CENTERS[center].format != "xlsx":
        body[2][wt] = "77.5"
    name = patients_name(center, "20250501")
    deliver(paths, center, name, patients_sheets(center, [header] + body))
    rep, after = load(paths, center, tmp_path)

    # row counts per table equal; only the really changed patient row differs
    for t in DATA_TABLES:
        assert len(after[t]) == len(before[t]), t
    for t in DATA_TABLES:
        if t != "patients":
            assert after[t].drop(columns=["source_file", "source_row"]).equals(before[t].drop(columns=["source_file", "source_row"])), t
    bad_ids = [patient_id(KEY, center, m) for m in bad]
    changed_id = patient_id(KEY, center, changed_mrn)
    b = before["patients"].set_index(["round", "patient_id"])
    a = after["patients"].set_index(["round", "patient_id"])
    for pid in bad_ids:  # the two patients keep their accepted (April) version
        assert a.loc[("A", pid)].drop(["source_file", "source_row"]).equals(b.loc[("A", pid)].drop(["source_file", "source_row"]))
        assert not str(a.loc[("A", pid), "source_file"]).startswith(name)
    assert a.loc[("A", changed_id), "weight_kg"] == 77.5
    assert b.loc[("A", changed_id), "weight_kg"] != 77.5
    assert rep.kept == 2

    notes = query(tmp_path, "SELECT patient_id, note FROM analytics.delivery_notes WHERE center = ? AND kind = 'kept' "
                            "AND file_name = ?", [center, name])
    assert sorted(p for p, _ in notes) == sorted(bad_ids)
    assert all("kept the version of 2025-04-01" in n and "failed" in n for _, n in notes)
    # no row of another table was affected (their patients kept an accepted version)
    assert query(tmp_path, known_sql, [center]) == pk_before

    page = (paths.outbox(center) / f"{name}.report.html").read_text(encoding="utf-8")
    for pid in bad_ids:
        assert pid in page
    assert page.count("kept the version of 2025-04-01") == 2
    status = (paths.outbox(center) / "index.html").read_text(encoding="utf-8")
    assert status.index("下一步") < status.index("What to do next")
    for pid in bad_ids:
        assert pid in status
    assert name in status

    # rebuild from the archive alone gives the same tables
    (tmp_path / "w.duckdb").unlink()
    _, rebuilt = load(paths, center, tmp_path)
    for t in DATA_TABLES:
        assert rebuilt[t].equals(after[t]), t


@pytest.mark.parametrize("center", sorted(CENTERS))
def test_a_new_patient_whose_row_fails_lists_the_affected_rows_of_other_tables(center, study, tmp_path):
    """A patient first delivered in the correction whose row fails: the rows of other
    tables naming that patient cannot be accepted and are listed, by file and row, in the
    report of the patients delivery that caused it."""
    paths = setup(center, study, tmp_path)
    load(paths, center, tmp_path)
    # the April patients file without its first patient, then a correction where that row fails
    rows = read_rows(center, first_round_a_patients(center, study))
    header, body = rows[0], [list(r) for r in rows[1:]]
    mrn_c, bd = col(center, header, "mrn"), col(center, header, "birth_date")
    victim = patient_id(KEY, center, str(body[0][mrn_c]).strip())
    root2 = tmp_path / "second"
    root2.mkdir()
    paths2 = data_paths(root2 / "data").ensure([center])
    for f in sorted((study / "inbox" / center).iterdir()):
        if f.name == first_round_a_patients(center, study).name and CENTERS[center].format != "xlsx":
            write_rows(center, paths2.inbox(center), f.name, patients_sheets(center, [header] + body[1:]))
        else:
            shutil.copy(f, paths2.inbox(center) / f.name)
    if CENTERS[center].format == "xlsx":
        pytest.skip("zju2 delivers one workbook per round: covered by the CSV centers")
    drain_inbox(paths2, CENTERS[center], settle_seconds=0, name_check=NAME_CHECK)
    load(paths2, center, root2)
    body[0][bd] = "1991/13/45"
    name = patients_name(center, "20250501")
    deliver(paths2, center, name, patients_sheets(center, [header] + body))
    load(paths2, center, root2)
    affected = query(root2, "SELECT table_name, source_file, row_number FROM analytics.delivery_notes "
                            "WHERE center = ? AND file_name = ? AND kind = 'patient_known'", [center, name])
    expected = query(root2, "SELECT count(*) FROM analytics.quarantine WHERE center = ? AND rule = 'patient_known' AND patient_id = ?",
                     [center, victim])[0][0]
    assert expected > 0 and len(affected) == expected
    page = (paths2.outbox(center) / f"{name}.report.html").read_text(encoding="utf-8")
    assert "Affected rows of other tables" in page
    src, row = affected[0][1], affected[0][2]
    assert src in page and f">{row}<" in page


# ================================================================== absent records
@pytest.mark.parametrize("center", sorted(CENTERS))
def test_a_record_absent_from_a_newer_delivery_is_kept_and_listed(center, study, tmp_path):
    paths = setup(center, study, tmp_path)
    _, before = load(paths, center, tmp_path)
    rows = read_rows(center, first_round_a_patients(center, study))
    header, body = rows[0], rows[1:]
    mrns = [str(r[col(center, header, "mrn")]).strip() for r in body]
    staged = set(before["patients"].query("round == 'A'")["patient_id"])
    i = next(i for i, m in enumerate(mrns) if mrns.count(m) == 1 and patient_id(KEY, center, m) in staged)
    gone = patient_id(KEY, center, mrns[i])
    name = patients_name(center, "20250501")
    deliver(paths, center, name, patients_sheets(center, [header] + body[:i] + body[i + 1:]))
    rep, after = load(paths, center, tmp_path)
    assert len(after["patients"]) == len(before["patients"])
    assert gone in set(after["patients"]["patient_id"])
    assert rep.absent == 1
    notes = query(tmp_path, "SELECT patient_id, note FROM analytics.delivery_notes WHERE center = ? AND kind = 'absent'", [center])
    assert notes == [(gone, "不在最新交付中，已保留 / not in the latest delivery, kept")]
    assert "not in the latest delivery" in (paths.outbox(center) / f"{name}.report.html").read_text(encoding="utf-8")
    status = query(tmp_path, "SELECT file_name, status FROM analytics.deliveries WHERE center = ? AND table_name = 'patients' "
                             "AND round = 'A' ORDER BY seq", [center])
    assert status[-1] == (name, "current") and status[0][1] == "partly_current"


# ================================================================== held and older-dated files
@pytest.mark.parametrize("center", sorted(CENTERS))
def test_a_header_only_or_much_smaller_file_is_held_until_confirmed(center, study, tmp_path):
    paths = setup(center, study, tmp_path)
    _, before = load(paths, center, tmp_path)
    rows = read_rows(center, first_round_a_patients(center, study))
    header, body = rows[0], rows[1:]
    small = patients_name(center, "20250501")
    deliver(paths, center, small, patients_sheets(center, [header] + body[:2]))
    rep, after = load(paths, center, tmp_path)
    assert [h.split(":")[0] for h in rep.held] == [small]
    assert after["patients"].equals(before["patients"])
    assert query(tmp_path, "SELECT DISTINCT status FROM analytics.deliveries WHERE file_name = ?", [small]) == [("held",)]
    status = (paths.outbox(center) / "index.html").read_text(encoding="utf-8")
    assert f"ibd-pipeline confirm {center} {small}" in status
    confirm_delivery(paths, center, small, by="coordinator")
    rep, confirmed = load(paths, center, tmp_path)
    assert rep.held == []
    assert query(tmp_path, "SELECT DISTINCT status FROM analytics.deliveries WHERE file_name = ?", [small]) == [("current",)]
    assert len(confirmed["patients"]) == len(before["patients"])  # the others are kept (not in the latest delivery)
    staged_a = set(before["patients"].query("round == 'A'")["patient_id"])
    sent = {patient_id(KEY, center, str(r[col(center, header, "mrn")]).strip()) for r in body[:2]}
    assert rep.absent == len(staged_a - sent) > 0

    empty = patients_name(center, "20250601")
    deliver(paths, center, empty, patients_sheets(center, [header]))
    rep, _ = load(paths, center, tmp_path)
    assert [h.split(":")[0] for h in rep.held] == [empty]


@pytest.mark.parametrize("center", sorted(CENTERS))
def test_a_delivery_dated_older_than_the_current_one_never_replaces_it(center, study, tmp_path):
    paths = setup(center, study, tmp_path)
    rows = read_rows(center, first_round_a_patients(center, study))
    header, body = rows[0], [list(r) for r in rows[1:]]
    wt = col(center, header, "weight_kg")
    newer = [list(r) for r in body]
    newer[0][wt] = 66.6 if CENTERS[center].format == "xlsx" else "66.6"
    deliver(paths, center, patients_name(center, "20250601"), patients_sheets(center, [header] + newer))
    _, current = load(paths, center, tmp_path)
    older = [list(r) for r in body]
    older[0][wt] = 144.4 if CENTERS[center].format == "xlsx" else "144.4"
    old_name = patients_name(center, "20250501")
    deliver(paths, center, old_name, patients_sheets(center, [header] + older))
    rep, after = load(paths, center, tmp_path)
    assert after["patients"].equals(current["patients"])
    assert 66.6 in set(after["patients"]["weight_kg"]) and 144.4 not in set(after["patients"]["weight_kg"])
    assert [o.split(":")[0] for o in rep.older] == [old_name]
    assert "older_than_current" in {s for (s,) in query(tmp_path, "SELECT status FROM analytics.deliveries WHERE file_name = ?", [old_name])}
    assert "dated older than the current delivery" in (paths.outbox(center) / "index.html").read_text(encoding="utf-8")


# ================================================================== withdrawal
def withdrawal_sheets(center: str, mrn: str) -> tuple[str, dict]:
    spec = CENTERS[center].raw["withdrawals"]
    c = spec["columns"]
    name = spec["files"].format(yyyymmdd="20250610")
    rows = [[c["mrn"], c["withdrawn_on"], c["reason"], c["recorded_by"]], [mrn, "2025-06-09", "consent withdrawn 撤回知情同意", "Li"]]
    return name, {"撤回": rows} if CENTERS[center].format == "xlsx" else {"withdrawals": rows}


@pytest.mark.parametrize("center", sorted(CENTERS))
def test_a_withdrawal_list_removes_the_patient_everywhere_audits_it_and_keeps_the_archive(center, study, tmp_path):
    paths = setup(center, study, tmp_path)
    _, before = load(paths, center, tmp_path)
    rows = read_rows(center, first_round_a_patients(center, study))
    mrn = str(rows[1][col(center, rows[0], "mrn")]).strip()
    pid = patient_id(KEY, center, mrn)
    n_rows = {t: int((before[t]["patient_id"] == pid).sum()) for t in DATA_TABLES}
    assert n_rows["patients"] >= 1 and sum(n_rows.values()) > n_rows["patients"]
    archived = sorted(p.name for p in paths.archive(center).iterdir())
    name, sheets = withdrawal_sheets(center, mrn)
    write_rows(center, paths.inbox(center), name, sheets)
    (o,) = drain_inbox(paths, CENTERS[center], settle_seconds=0, name_check=NAME_CHECK)
    assert o.status == "accepted", o
    rep, after = load(paths, center, tmp_path)
    assert rep.withdrawn == 1
    for t in DATA_TABLES:
        assert pid not in set(after[t]["patient_id"]), t
        assert len(after[t]) == len(before[t]) - n_rows[t], t
    audit = query(tmp_path, "SELECT patient_id, reason, recorded_by, file_name, rows_removed, received_at IS NOT NULL "
                            "FROM analytics.withdrawals WHERE center = ?", [center])
    assert audit == [(pid, "consent withdrawn 撤回知情同意", "Li", name, sum(n_rows.values()), True)]
    # the archive keeps every file (the withdrawal list joins them)
    assert set(archived) <= {p.name for p in paths.archive(center).iterdir()}
    page = (paths.outbox(center) / f"{name}.report.html").read_text(encoding="utf-8")
    assert "removed: the patient was withdrawn" in page and pid in page
    # the analysts' snapshot holds no row of the patient
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS core")
        publish_snapshot(con, tmp_path / "snap.duckdb", schemas=("staging", "analytics"))
    finally:
        con.close()
    snap = duckdb.connect(str(tmp_path / "snap.duckdb"), read_only=True)
    try:
        for t in DATA_TABLES:
            assert snap.execute(f"SELECT count(*) FROM staging.{t} WHERE patient_id = ?", [pid]).fetchone() == (0,)
        assert snap.execute("SELECT count(*) FROM analytics.quarantine WHERE patient_id = ?", [pid]).fetchone() == (0,)
        assert snap.execute("SELECT count(*) FROM analytics.withdrawals").fetchone() == (1,)
    finally:
        snap.close()
