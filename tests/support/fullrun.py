"""Helpers of the full pipeline runs (the runs themselves are session fixtures in
tests/conftest.py: ``deliveries``, ``pseudonym_key``, ``reference_run``, ``new_data_dir``).

A full run of the default 122-patient synthetic study costs ~40 s on the test machine,
so the *reference run* (an uninterrupted ``ibd-pipeline run`` in a subprocess, with the
Dagster console log at DEBUG) is made once per pytest session and only read by its users.

Every data directory made from the session's deliveries gets byte-identical deliveries
(generated once) and the same pseudonymization key, so delivery ids (SHA-256 of the
files) and patient ids agree between directories.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from ibd_pipeline.config import DataPaths, data_paths

PROJECT = Path(__file__).resolve().parents[2]
SEED = 20250401  # the default synthetic study (`ibd-pipeline demo`'s default seed)
N_PATIENTS = 122
COMPARED_SCHEMAS = ("staging", "reconciled", "ref", "core", "analytics")
# columns that record when something happened, not what: they differ between two runs
RUN_TIME_COLUMNS = {"received_at"}


@dataclass
class CliRun:
    data: DataPaths
    returncode: int
    stdout: str
    stderr: str
    seconds: float


T = TypeVar("T")


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], T], dump: Callable[[T], object],
                 load: Callable[[object], T]) -> T:
    """``make(directory)`` once for the whole test run: in one process as a plain session
    fixture; under pytest-xdist (``make test`` runs two workers) by the first worker that
    asks, under a file lock in the directory the workers share, the others ``load`` what
    it recorded (``dump``, JSON). Fixtures made this way are read-only for their users."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/: the same for every worker of the run
    record = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if record.exists():
            return load(json.loads(record.read_text()))
        directory = shared / name
        shutil.rmtree(directory, ignore_errors=True)  # what a worker that failed here left
        directory.mkdir()
        value = make(directory)
        record.write_text(json.dumps(dump(value)))
        return value


def dump_run(run: "CliRun") -> dict:
    d = asdict(run)
    d["data"] = str(run.data.root)
    return d


def load_run(d: dict) -> "CliRun":
    return CliRun(**{**d, "data": data_paths(Path(d["data"]))})


def clean_env(data_dir: Path, **extra: str) -> dict:
    """The environment of a CLI subprocess for ``data_dir`` (no IBD_/DAGSTER_ settings of
    the test process leak in; the Dagster instance lives in the data directory)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBD_", "DAGSTER_"))}
    env.update(
        IBD_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(Path(data_dir) / "dagster_home"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(PROJECT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra)
    return env


def cli_command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ibd_pipeline.cli", "--data-dir", str(data_dir), *args]


def make_data_dir(root: Path, deliveries: Path, key_text: str) -> DataPaths:
    """A fresh data directory under ``root`` holding the deliveries of ``deliveries``
    (``inbox/<center>/``) in its inboxes and ``key_text`` as its pseudonymization key."""
    paths = data_paths(root / "data").ensure()
    for center_dir in (deliveries / "inbox").iterdir():
        for f in center_dir.iterdir():
            shutil.copy2(f, paths.inbox(center_dir.name) / f.name)
    paths.secrets.mkdir(parents=True, exist_ok=True)
    (paths.secrets / "pseudonym.key").write_text(key_text + "\n")
    return paths


def copy_data_dir(src: DataPaths, root: Path) -> DataPaths:
    """A copy of a finished run's data directory (modification times kept, no Dagster
    instance): much cheaper than a run, for tests that change a run."""
    shutil.copytree(src.root, root / "data", ignore=shutil.ignore_patterns("dagster_home"))
    return data_paths(root / "data")


def run_cli(paths: DataPaths, *args: str, timeout: float = 600, **env) -> CliRun:
    t0 = time.time()
    p = subprocess.run(
        cli_command(paths.root, *args), env=clean_env(paths.root, **env), cwd=PROJECT,
        capture_output=True, text=True, timeout=timeout,
    )
    return CliRun(paths, p.returncode, p.stdout, p.stderr, time.time() - t0)


# ------------------------------------------------------------------ comparing warehouses
def _norm(v):
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return float(f"{v:.10g}")  # last-bit noise of floating point sums is not a difference
    return v


def table_names(con: duckdb.DuckDBPyConnection, schemas=COMPARED_SCHEMAS) -> list[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1",
        [list(schemas)],
    ).fetchall()
    return [r[0] for r in rows]


def table_rows(con: duckdb.DuckDBPyConnection, qualified: str, ignore=RUN_TIME_COLUMNS) -> tuple[list[str], list[tuple]]:
    """(columns, rows) of a table without the run-time columns, rows as a sorted list
    (order-insensitive comparison; floats to 10 significant digits)."""
    schema, name = qualified.split(".")
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
            "AND table_name = ? ORDER BY column_index",
            [schema, name],
        ).fetchall()
        if r[0] not in ignore
    ]
    select = ", ".join(f'"{c}"' for c in cols)
    rows = con.execute(f'SELECT {select} FROM {schema}."{name}" ORDER BY ALL').fetchall()
    return cols, sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)


def contents(con: duckdb.DuckDBPyConnection, schemas=COMPARED_SCHEMAS) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table of ``schemas`` of the connection's default database:
    {schema.table: (columns, sorted rows)}."""
    return {t: table_rows(con, t) for t in table_names(con, schemas)}


def warehouse_contents(db: Path, schemas=COMPARED_SCHEMAS) -> dict[str, tuple[list[str], list[tuple]]]:
    """``contents`` of a working-warehouse file (opened read-only)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return contents(con, schemas)
    finally:
        con.close()


def snapshot_contents(db: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """``contents`` of a published snapshot (``analytics.duckdb``, attached as documented)."""
    from ibd_pipeline.store.snapshot import connect_snapshot

    con = connect_snapshot(db)
    try:
        return contents(con, ("core", "analytics"))
    finally:
        con.close()


def differences(expected: dict, got: dict, limit: int = 3) -> list[str]:
    """Human-readable differences between two ``warehouse_contents`` results."""
    out = []
    for t in sorted(set(expected) | set(got)):
        if t not in got:
            out.append(f"{t}: missing")
            continue
        if t not in expected:
            out.append(f"{t}: unexpected table")
            continue
        (ec, er), (gc, gr) = expected[t], got[t]
        if ec != gc:
            out.append(f"{t}: columns {ec} != {gc}")
            continue
        if er != gr:
            es, gs = set(er), set(gr)
            out.append(
                f"{t}: {len(er)} vs {len(gr)} rows; only expected: {sorted(es - gs, key=repr)[:limit]}; "
                f"only got: {sorted(gs - es, key=repr)[:limit]}"
            )
    return out
