"""Security: no identifier and no key leaves where it belongs.

Scanned (the session's reference run of the default synthetic study, an
``ibd-pipeline run`` in a subprocess with the Dagster console log at DEBUG):
the working warehouse and the analysts' snapshot (every value of every column cast to
text, and the table/column descriptions), the study report and figures, the
data-quality Data Docs, every coordinator outbox, the Dagster instance (event logs and
run storage dumped through SQLite, compute logs) and the CLI's own stdout/stderr - for
the names, phone numbers and record numbers (mrn) of the ground truth
(``<center>/phi.csv``, what the inbox files carried). Only a center's own outbox may
name its own patients' mrns, and only in the reviewer list and the worklist; names and
phones appear nowhere; delivery reports show pseudonymous ids only. The
pseudonymization key appears nowhere either, nor in any git-tracked file.

Identifiers are matched as whole tokens (an mrn inside a longer run of letters and
digits, e.g. inside a hash, is not a hit) and names as substrings of runs of Chinese
characters; a name that also occurs in the pipeline's own text (templates,
vocabularies, code) cannot be told apart and is left out - the test checks that this
leaves almost every name in, and that the scanner does find every kind of identifier
where it really is (the archived deliveries).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.support.fullrun import PROJECT, run_cli
from ibd_pipeline.config import load_centers
from ibd_pipeline.store.snapshot import connect_snapshot

CENTERS = load_centers()
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


class Secrets:
    """The identifiers of one or more centers, searchable in text."""

    def __init__(self, phi: pd.DataFrame, static_text: str):
        self.mrns = set(phi["mrn"])
        self.phones = set(phi["phone"])
        names = set(phi["patient_name"])
        self.ambiguous_names = {n for n in names if n in static_text}
        self.names = names - self.ambiguous_names
        self.max_name = max(map(len, self.names), default=0)

    def find(self, text: str, mrns: bool = True, names: bool = True, phones: bool = True) -> set[str]:
        hits = set()
        if mrns or phones:
            tokens = set(_TOKEN.findall(text))
            if mrns:
                hits |= tokens & self.mrns
            if phones:
                hits |= tokens & self.phones
        if names:
            for run in set(_CJK.findall(text)):
                for k in range(2, self.max_name + 1):
                    hits |= {run[i : i + k] for i in range(len(run) - k + 1)} & self.names
        return hits


def _static_text() -> str:
    """The pipeline's own text: everything a generated file may contain besides data
    (the synthetic-data generator, which holds the name syllables, is not part of it)."""
    parts = []
    for folder in ("ibd_pipeline", "centers", "schemas", "dbt_like_sql"):
        for p in (PROJECT / folder).rglob("*"):
            if p.is_file() and p.suffix in (".py", ".yaml", ".yml", ".sql", ".html", ".md") and "synth" not in p.parts:
                parts.append(p.read_text(encoding="utf-8", errors="ignore"))
    parts.append((PROJECT / "study.yaml").read_text(encoding="utf-8"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run


@pytest.fixture(scope="module")
def phi(truth_dir) -> dict[str, pd.DataFrame]:
    return {
        c: pd.read_csv(truth_dir / c / "phi.csv", dtype=str, keep_default_na=False) for c in CENTERS
    }


@pytest.fixture(scope="module")
def everyone(phi) -> Secrets:
    s = Secrets(pd.concat(phi.values(), ignore_index=True), _static_text())
    assert len(s.mrns) == 122 and len(s.phones) >= 120
    assert len(s.ambiguous_names) <= 5, s.ambiguous_names  # almost every name is searched for
    assert len(s.names) >= 100
    return s


# ------------------------------------------------------------------ what is scanned
def duckdb_text(con: duckdb.DuckDBPyConnection) -> str:
    """Every value of every table (cast to text), and every name and description."""
    parts = []
    tables = con.execute(
        "SELECT schema_name, table_name, coalesce(comment, '') FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    assert tables
    for schema, name, comment in tables:
        parts.append(f"{schema}.{name} {comment}")
        cols = con.execute(
            "SELECT column_name, coalesce(comment, '') FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ?",
            [schema, name],
        ).fetchall()
        parts += [f"{c} {cc}" for c, cc in cols]
        select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c, _ in cols)
        for row in con.execute(f'SELECT {select} FROM {schema}."{name}"').fetchall():
            parts.append("\x1f".join("" if v is None else v for v in row))
    for (sql,) in con.execute("SELECT coalesce(sql, '') FROM duckdb_views() WHERE NOT internal").fetchall():
        parts.append(sql)
    return "\n".join(parts)


def sqlite_text(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def file_text(path: Path, encoding: str | None = None) -> str:
    if path.suffix == ".xlsx":
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_path(str(path))
        return "\n".join(
            "\x1f".join(str(v) for v in row) for n in wb.sheet_names for row in wb.get_sheet_by_name(n).to_python()
        ) + "\n" + "\n".join(wb.sheet_names)
    data = path.read_bytes()
    if path.suffix in (".png", ".jpg", ".gif", ".ico", ".woff", ".woff2", ".ttf"):
        return data.decode("latin-1")
    for enc in filter(None, (encoding, "utf-8-sig", "gb18030")):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _where(hits: set[str], phi: dict[str, pd.DataFrame]) -> list[str]:
    out = []
    for h in sorted(hits):
        for c, df in phi.items():
            for col in ("mrn", "patient_name", "phone"):
                if (df[col] == h).any():
                    out.append(f"{c}.{col}={h}")
    return out


# ------------------------------------------------------------------ the scanner itself
def test_the_scanner_finds_the_identifiers_where_they_are(reference, everyone):
    """The archived deliveries do carry every identifier (that is what the archive is for):
    the scanner must find them there, in both encodings and in workbooks, and in a table
    value or a description of a DuckDB database."""
    found = set()
    for center, profile in CENTERS.items():
        for p in reference.data.archive(center).glob("*.*"):
            if p.suffix in (".csv", ".xlsx"):
                found |= everyone.find(file_text(p, profile.encoding if p.suffix == ".csv" else None))
    for kind in ("mrns", "phones", "names"):
        want = getattr(everyone, kind)
        assert len(want & found) >= 0.95 * len(want), kind
    mrn, phone, name = sorted(everyone.mrns)[0], sorted(everyone.phones)[0], sorted(everyone.names)[0]
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE t (a VARCHAR, b BIGINT)")
        con.execute("INSERT INTO t VALUES (?, ?)", [f"note: {name}先生", int(phone)])
        con.execute(f"COMMENT ON COLUMN t.a IS 'e.g. {mrn}'")
        assert everyone.find(duckdb_text(con)) == {mrn, phone, name}
    finally:
        con.close()
    assert everyone.find(f"P{mrn}x {phone}0") == set()  # inside longer tokens (hashes, numbers): not a hit


# ------------------------------------------------------------------ warehouse, snapshot, reports
def test_no_identifier_in_any_value_or_description_of_the_warehouse_or_the_snapshot(reference, everyone, phi):
    con = duckdb.connect(str(reference.data.warehouse), read_only=True)
    try:
        text = duckdb_text(con)
    finally:
        con.close()
    assert "core.patients" in text and len(text) > 1_000_000
    assert _where(everyone.find(text), phi) == []
    snap = connect_snapshot(reference.data.snapshot)
    try:
        assert _where(everyone.find(duckdb_text(snap)), phi) == []
    finally:
        snap.close()


def test_no_identifier_in_the_study_report_its_figures_or_the_data_docs(reference, everyone, phi):
    reports = reference.data.reports
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert reports / "study_report.html" in files
    assert any("data_docs" in p.parts for p in files)
    for p in files:
        assert _where(everyone.find(file_text(p)), phi) == [], p


def test_outboxes_name_only_the_centers_own_record_numbers_and_only_where_needed(reference, everyone, phi):
    static = _static_text()
    for center, profile in CENTERS.items():
        own = Secrets(phi[center], static)
        others = Secrets(pd.concat([df for c, df in phi.items() if c != center], ignore_index=True), static)
        files = [p for p in reference.data.outbox(center).iterdir() if p.is_file()]
        lists = [p for p in files if p.name.startswith(("reabstraction_sample_", "worklist_")) and p.suffix == ".xlsx"]
        assert len(lists) == 2, files  # the reviewer list and the worklist
        assert any(p.name.endswith(".report.html") for p in files)
        for p in files:
            text = file_text(p, profile.encoding if p.suffix == ".csv" else None)
            assert _where(others.find(text), phi) == [], f"{p.name} names another center's patients"
            assert _where(everyone.find(text, mrns=False), phi) == [], p.name  # no names, no phones anywhere
            if p in lists:
                assert own.find(text, names=False, phones=False), f"{p.name} should name the center's own record numbers"
            else:  # delivery reports: pseudonymous ids only
                assert _where(own.find(text), phi) == [], p.name


# ------------------------------------------------------------------ logs
def test_no_identifier_in_the_dagster_instance_or_the_cli_output(reference, everyone, phi):
    home = reference.data.dagster_home
    dbs = list(home.rglob("*.db"))
    logs = [p for p in home.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert dbs and any(p.suffix == ".err" for p in logs)
    events = 0
    for p in dbs:
        text = sqlite_text(p)
        events += text.count("STEP_START")
        assert _where(everyone.find(text), phi) == [], p
    assert events > 20  # the event log was really read
    for p in logs:
        assert _where(everyone.find(file_text(p)), phi) == [], p
    assert "STEP_START" in reference.stderr and "study: ok" in reference.stdout
    assert _where(everyone.find(reference.stdout + reference.stderr), phi) == []


# ------------------------------------------------------------------ the key
def test_the_pseudonymization_key_is_written_nowhere(reference, pseudonym_key):
    key = (reference.data.secrets / "pseudonym.key").read_text().strip()
    assert key == pseudonym_key
    found = []
    con = duckdb.connect(str(reference.data.warehouse), read_only=True)
    try:
        if key in duckdb_text(con):
            found.append("warehouse")
    finally:
        con.close()
    snap = connect_snapshot(reference.data.snapshot)
    try:
        if key in duckdb_text(snap):
            found.append("snapshot")
    finally:
        snap.close()
    for folder in ("reports", "outbox", "archive", "dagster_home"):
        for p in (reference.data.root / folder).rglob("*"):
            if p.is_file() and (key.encode() in p.read_bytes() or (p.suffix == ".db" and key in sqlite_text(p))):
                found.append(str(p.relative_to(reference.data.root)))
    for db in (reference.data.warehouse, reference.data.snapshot):
        if key.encode() in db.read_bytes():
            found.append(f"{db.name} (bytes)")
    if key in reference.stdout + reference.stderr:
        found.append("CLI output")
    assert found == []


def test_no_key_and_no_generated_data_is_tracked_by_git(reference):
    out = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True).stdout
    tracked = [PROJECT / n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
    assert len(tracked) > 50
    rel = [p.relative_to(PROJECT).as_posix() for p in tracked]
    assert [r for r in rel if r.startswith("data/") or r.endswith((".key", ".duckdb", ".duckdb.wal"))] == []
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/secrets/pseudonym.key"], cwd=PROJECT)
    assert ignored.returncode == 0, "data/ (with the key) must be git-ignored"
    keys = {(reference.data.secrets / "pseudonym.key").read_text().strip().encode()}
    local = PROJECT / "data" / "secrets" / "pseudonym.key"  # the developer's own `make demo` key, if any
    if local.exists():
        keys.add(local.read_bytes().strip())
    assert [p for p in tracked if p.is_file() and any(k and k in p.read_bytes() for k in keys)] == []


# ------------------------------------------------------------------ seeded identifiers, every format
# Each center (one format each: CSV UTF-8 with BOM, CSV GB18030, xlsx) gets its own
# identifiers in the synthetic generator's style (ibd_pipeline.synth.names): a Chinese
# name, a mobile number and a record number of the center's local style. They are
# seeded into every field of every table (three rows per file share the fields), into
# an extra column whose header is an identifier and into the name of an extra file (a
# sheet named by an identifier rejects the whole workbook: tests/ingest/test_ingest_privacy.py); then one full `ibd-pipeline run` (center jobs, study job,
# publication) and the scan of everything outside the inbox, archive and working warehouse.
SEEDS = {
    "zcmu1": {"name": "司马婉清", "phone": "13911220001", "mrn": "ZY77120394"},
    "hzfph": {"name": "欧阳娜娜", "phone": "13911220002", "mrn": "2019771203"},
    "zju2": {"name": "诸葛明远", "phone": "13911220003", "mrn": "0077120394"},
}
FORMATS = {c: f"{p.format}-{p.encoding or 'binary'}" for c, p in CENTERS.items()}


def _seed_values(s: dict) -> list[str]:
    return [s["name"], s["phone"], s["mrn"], f"{s['name']}{s['phone']}", f"{s['mrn']} {s['name']}"]


def _seed_table(rows: list[list], s: dict) -> list[list]:
    """Rows (header first) with identifiers in every column (column j in data row
    ``picks[j % 3]``) and an extra column whose header and values are identifiers."""
    header, data = list(rows[0]), [list(r) for r in rows[1:]]
    values = _seed_values(s)
    if data:
        picks = sorted({0, len(data) // 2, len(data) - 1})
        for j in range(len(header)):
            data[picks[j % len(picks)]][j] = values[j % len(values)]
    return [header + [f"{s['name']}{s['phone']}"]] + [r + [s["mrn"]] for r in data]


def _seed_center(inbox: Path, center: str) -> int:
    """Seed every delivery file of ``center`` in place; returns the number of files."""
    import csv
    import io

    from tests.ingest.test_ingest_support import write_xlsx

    profile, s = CENTERS[center], SEEDS[center]
    files = sorted(p for p in inbox.iterdir() if p.is_file())
    for p in files:
        if profile.format == "xlsx":
            import python_calamine as pc

            wb = pc.CalamineWorkbook.from_path(str(p))
            sheets = {n: _seed_table(wb.get_sheet_by_name(n).to_python(), s) for n in wb.sheet_names}
            write_xlsx(p, sheets)
        else:
            text = p.read_bytes().decode(profile.encoding).lstrip("\ufeff")
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\r\n").writerows(_seed_table(list(csv.reader(io.StringIO(text))), s))
            p.write_bytes(buf.getvalue().encode(profile.encoding))
    extra = files[0]  # the same content under a name carrying every identifier (rejected by its name)
    (inbox / f"{s['name']}{s['phone']}_{s['mrn']}_{extra.name}").write_bytes(extra.read_bytes())
    return len(files)


@pytest.fixture(scope="module")
def seeded(new_data_dir):
    paths = new_data_dir("seeded")
    for center in CENTERS:
        assert _seed_center(paths.inbox(center), center) >= 1
    run = run_cli(paths, "run", "--settle", "0", IBD_LOG_LEVEL="DEBUG")
    assert paths.snapshot.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    return run


def _seed_secrets(center: str) -> Secrets:
    s = SEEDS[center]
    static = _static_text()
    assert s["name"] not in static
    return Secrets(pd.DataFrame({"mrn": [s["mrn"]], "phone": [s["phone"]], "patient_name": [s["name"]]}), static)


def _seeded_text_outside(run) -> dict[str, str]:
    """Every text outside the inbox, archive and working warehouse: {where: text}."""
    data = run.data
    out = {"CLI output": run.stdout + run.stderr}
    snap = connect_snapshot(data.snapshot)
    try:
        out["snapshot"] = duckdb_text(snap)
    finally:
        snap.close()
    for folder in (data.root / "outbox", data.reports, data.dagster_home):
        for p in folder.rglob("*"):
            if p.is_file():
                where = str(p.relative_to(data.root))
                out[f"{where} (name)"] = p.name
                out[where] = sqlite_text(p) if p.suffix == ".db" else file_text(p)
    return out


@pytest.mark.parametrize("center", list(CENTERS), ids=[f"{c}-{FORMATS[c]}" for c in CENTERS])
def test_seeded_identifiers_reach_the_archive_and_the_working_quarantine(seeded, center):
    """The seeding really happened: every identifier is in the archived files and in the
    working warehouse's quarantine values (where they belong), and the snapshot of this
    run was published with the rejected rows counted."""
    secrets_ = _seed_secrets(center)
    profile = CENTERS[center]
    archived = "\n".join(file_text(p, profile.encoding if p.suffix == ".csv" else None)
                         for p in seeded.data.archive(center).glob("*.*") if p.suffix in (".csv", ".xlsx"))
    want = {SEEDS[center][k] for k in ("name", "phone", "mrn")}
    assert secrets_.find(archived) == want
    con = duckdb.connect(str(seeded.data.warehouse), read_only=True)
    try:
        values = "\n".join(str(v) for (v,) in con.execute("SELECT value FROM analytics.quarantine WHERE center = ?",
                                                           [center]).fetchall())
    finally:
        con.close()
    assert secrets_.find(values) == want
    snap = connect_snapshot(seeded.data.snapshot)
    try:
        n = snap.execute("SELECT count(*) FROM analytics.quarantine WHERE center = ?", [center]).fetchone()[0]
    finally:
        snap.close()
    assert n >= 10
    assert list(seeded.data.root.joinpath("outbox", center).glob("*.report.html"))


@pytest.mark.parametrize("center", list(CENTERS), ids=[f"{c}-{FORMATS[c]}" for c in CENTERS])
def test_no_seeded_identifier_outside_the_inbox_the_archive_and_the_working_warehouse(seeded, center):
    """Snapshot (every value and description), outboxes, reports (study report, Data
    Docs, catalog), the Dagster instance (event log, run storage, compute logs), the
    names of those files and the CLI output: none holds a seeded name, phone or record number."""
    secrets_ = _seed_secrets(center)
    texts = _seeded_text_outside(seeded)
    assert any("data_docs" in w for w in texts) and any(w.endswith(".db") for w in texts)
    assert "STEP_START" in seeded.stderr
    found = {w: sorted(secrets_.find(t)) for w, t in texts.items()}
    assert {w: h for w, h in found.items() if h} == {}
