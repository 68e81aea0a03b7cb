"""The demo study, made once per session and read by test_demo_study.py and
test_snapshot_concurrency.py (and the session's reference run, tests/conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.fullrun import PROJECT, clean_env, copy_data_dir, once_per_run

# The analyst of test_snapshot_concurrency.py: queries the snapshot in rounds, with a fresh
# connection per round and with one connection held open all along, until the flag goes.
READER = textwrap.dedent(
    """
    import os, sys, time
    from ibd_pipeline.store.snapshot import connect_snapshot

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


@pytest.fixture(scope="session")
def demo_run(reference_run, truth_dir, tmp_path_factory) -> dict:
    """``ibd-pipeline demo`` (in this process, as ``make demo`` runs it) on a copy of the
    reference run's data directory, while a second process reads the analysts' snapshot.

    The reference run is the demo's first run: the same deliveries (``generate_deliveries``
    with the demo's default 122 patients and seed, ground truth copied to
    ``ground_truth/`` where the demo writes it) through ``ibd-pipeline run --settle 0``. On
    the copy the demo finds them archived and generates nothing, its first run finds
    every job unchanged (asserted in test_demo_study.py), the senior reviewer adjudicates
    every center's worklist and the second run loads the adjudications - the whole
    pipeline again, which the reader watches (test_snapshot_concurrency.py). Made once
    per test run (``once_per_run``: its two modules may be in different workers)."""
    from ibd_pipeline.config import data_paths

    return once_per_run(tmp_path_factory, "demo", lambda root: _demo(reference_run, truth_dir, root),
                        lambda d: {**d, "paths": str(d["paths"].root)},
                        lambda d: {**d, "paths": data_paths(d["paths"])})


def _demo(reference_run, truth_dir, root) -> dict:
    from ibd_pipeline.cli import main as cli_main
    from ibd_pipeline.store.snapshot import connect_snapshot

    paths = copy_data_dir(reference_run.data, root)
    shutil.copytree(truth_dir, paths.ground_truth)
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
    stdout = io.StringIO()
    env_before = dict(os.environ)
    with open(log, "w") as out_fh:
        reader = subprocess.Popen(
            [sys.executable, str(script), str(paths.snapshot), str(flag)], env=clean_env(paths.root), cwd=PROJECT,
            stdout=out_fh, stderr=subprocess.PIPE, text=True,
        )
    try:
        deadline = time.time() + 60
        while "held 1 " not in log.read_text() and reader.poll() is None and time.time() < deadline:
            time.sleep(0.1)  # the reader is up and has read the first snapshot
        with contextlib.redirect_stdout(stdout):
            returncode = cli_main(["--data-dir", str(paths.root), "demo"])
        time.sleep(1)  # a few more rounds on the new snapshot
    finally:
        flag.unlink(missing_ok=True)
        _, err = reader.communicate(timeout=60)
        os.environ.clear()  # the demo sets IBD_DATA_DIR for its own process
        os.environ.update(env_before)
    return {"paths": paths, "returncode": returncode, "stdout": stdout.getvalue(), "before": before,
            "reader_rc": reader.returncode, "out": log.read_text().splitlines(), "err": err}
