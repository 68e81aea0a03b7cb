"""Privacy (STUDY.md): names, phone numbers and raw record numbers never leave the
extraction step, and the pseudonymization key is never written anywhere but its file.
Scans one full CLI run of the synthetic study: warehouse, snapshot, report, data docs,
outboxes, the Dagster instance's logs and the run's own console output."""

import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from fullrun_support import KEY_TEXT, PROJECT, reference_run, truth_dir

from ibd_pipeline.snapshot import connect_snapshot

CENTERS = ("zcmu1", "zju2", "hzfph")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="module")
def phi(tmp_path_factory) -> dict[str, dict[str, set[str]]]:
    """center -> {'names', 'phones', 'mrns'} of the delivered files."""
    out = {}
    for c in CENTERS:
        df = pd.read_csv(truth_dir(tmp_path_factory) / c / "phi.csv", dtype=str)
        cols = {k: next(col for col in df.columns if k in col) for k in ("name", "phone", "mrn")}
        out[c] = {k + "s": set(df[col].dropna()) for k, col in cols.items()}
        assert all(len(v) > 20 for v in out[c].values())
    return out


def _all(phi, kinds=("names", "phones", "mrns"), centers=CENTERS) -> set[str]:
    return {v for c in centers for k in kinds for v in phi[c][k] if len(v) >= 2}


def _hits(text: str, values: set[str]) -> list[str]:
    # names are 2-3 Chinese characters: match them whole between non-CJK neighbours is
    # overkill; a plain substring test is stricter and finds none when nothing leaked
    return sorted(v for v in values if v in text)[:5]


def _db_text_hits(con, values: set[str]) -> list[str]:
    con.register("secret_values", pd.DataFrame({"v": sorted(values)}))
    found = []
    cols = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE data_type = 'VARCHAR' "
        "AND database_name = current_database() AND schema_name NOT IN ('information_schema', 'pg_catalog')"
    ).fetchall()
    assert cols
    for s, t, col in cols:
        rows = con.execute(
            f'SELECT DISTINCT x."{col}" FROM {s}."{t}" x JOIN secret_values v ON contains(x."{col}", v.v)'
        ).fetchall()
        found += [f"{s}.{t}.{col}: {r[0]!r}" for r in rows[:2]]
    con.unregister("secret_values")
    return found


def test_no_identifier_in_the_warehouse_or_the_snapshot(run, phi):
    values = _all(phi)
    con = duckdb.connect(str(run.data.warehouse), read_only=True)
    try:
        assert _db_text_hits(con, values) == []
    finally:
        con.close()
    snap = connect_snapshot(run.data.snapshot)
    try:
        assert _db_text_hits(snap, values) == []
    finally:
        snap.close()


def test_no_identifier_in_the_report_the_data_docs_or_the_logs(run, phi):
    values = _all(phi)
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for p in [run.data.reports / "study_report.html", *run.data.reports.rglob("*.html"), *run.data.reports.rglob("*.json")]:
        texts[str(p)] = p.read_text(encoding="utf-8", errors="replace")
    for p in run.data.dagster_home.rglob("*"):
        if p.is_file():
            texts[str(p)] = p.read_bytes().decode("utf-8", errors="replace")
    assert len(texts) > 10
    leaks = {k: _hits(v, values) for k, v in texts.items()}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_outbox_files_carry_no_names_or_phones_and_only_their_own_centers_record_numbers(run, phi):
    for c in CENTERS:
        others = [o for o in CENTERS if o != c]
        forbidden = _all(phi, ("names", "phones")) | _all(phi, ("mrns",), others)
        files = [p for p in run.data.outbox(c).iterdir() if p.is_file()]
        assert any(p.name.endswith(".report.html") for p in files)
        for p in files:
            if p.suffix == ".xlsx":
                from python_calamine import CalamineWorkbook

                wb = CalamineWorkbook.from_path(str(p))
                text = "\n".join(str(cell) for s in wb.sheet_names for row in wb.get_sheet_by_name(s).to_python() for cell in row)
            else:
                raw = p.read_bytes()
                text = raw.decode("gb18030", errors="replace") if c == "hzfph" and p.suffix == ".csv" else raw.decode("utf-8", errors="replace")
            assert _hits(text, forbidden) == [], p.name


def test_the_pseudonymization_key_is_written_nowhere_but_its_file(run):
    key = KEY_TEXT.strip()
    con = duckdb.connect(str(run.data.warehouse), read_only=True)
    try:
        assert _db_text_hits(con, {key}) == []
    finally:
        con.close()
    for p in run.data.root.rglob("*"):
        if p.is_file() and p.parent != run.data.secrets and p.suffix not in (".duckdb",):
            assert key.encode() not in p.read_bytes(), p
    assert key not in run.stdout + run.stderr
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, tracked):
        f = Path(PROJECT) / name.decode()
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
