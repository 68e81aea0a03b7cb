"""Fixtures shared by every test folder (docs/ARCHITECTURE.md, "Tests").

Configuration (read once): ``crf``, ``settings``, ``profiles``.
Synthetic data (generated once per session, never modified; copy before changing):
``deliveries`` (the default 122-patient study, seed 20250401: ``inbox/<center>/`` and
``truth/``), ``truth_dir``, ``small_deliveries`` (30 patients, seed 3, every table has
rows) and the session's ``pseudonym_key``.
Full runs (each made once per session, read-only for their users): ``reference_run``,
the uninterrupted ``ibd-pipeline run`` of ``deliveries``; ``new_data_dir(name)`` gives a
fresh data directory holding those deliveries and that key, for a test's own run.

Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``) every worker has its
own session, hence its own copies: ``pytest_collection_modifyitems`` below keeps each
test module on one worker (its module fixtures are made once) and puts the tests that
read a session full run into one of two groups (``FULLRUN_GROUPS``), each group on one
worker with its own reference run, scheduled first (they are the longest).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.fullrun import N_PATIENTS, SEED, CliRun, make_data_dir, run_cli

FULLRUN_FIXTURES = {"reference_run", "demo_run"}
# test module -> xdist group of its tests that read a session full run; the two groups
# are about equally long (measured: ~4 min each on a loaded 2-core machine). A module not
# listed goes to the first group.
FULLRUN_GROUPS = {
    "tests/pipeline/test_faults.py": "fullrun-1",
    "tests/pipeline/test_key_independence.py": "fullrun-1",
    "tests/pipeline/test_instance.py": "fullrun-1",
    "tests/stats/test_stats_vs_r.py": "fullrun-1",
    "tests/pipeline/test_security_scan.py": "fullrun-2",
    "tests/pipeline/test_incremental_runs.py": "fullrun-2",
    "tests/pipeline/test_demo_study.py": "fullrun-2",
    "tests/pipeline/test_snapshot_concurrency.py": "fullrun-2",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """xdist groups: a full-run group (above) for the tests that read ``reference_run`` or
    ``demo_run``, else the test's module; full-run groups first (stable sort: within a
    group the collection order, e.g. test_faults' rebuild last, is kept)."""
    for item in items:
        module = item.nodeid.split("::")[0]
        if item.get_closest_marker("xdist_group") is None:
            if FULLRUN_FIXTURES & set(getattr(item, "fixturenames", ())):
                group = FULLRUN_GROUPS.get(module, "fullrun-1")
            else:
                group = module
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda it: not _group(it).startswith("fullrun"))


def _group(item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


@pytest.fixture(scope="session")
def crf():
    from ibd_pipeline.config import load_crf

    return load_crf()


@pytest.fixture(scope="session")
def settings():
    """The study settings (a fresh dict per session: copy it before changing it)."""
    from ibd_pipeline.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def profiles():
    """The centers' export profiles, in the order the runner takes them."""
    from ibd_pipeline.config import load_centers

    return load_centers()


@pytest.fixture(scope="session")
def pseudonym_key() -> str:
    """The session's pseudonymization key (as `init-key` writes it; never in git)."""
    return secrets.token_hex(32)


@pytest.fixture(scope="session")
def deliveries(tmp_path_factory) -> Path:
    """The default synthetic study's deliveries (``inbox/<center>/``) and ground truth
    (``truth/``), generated once per session; never modified."""
    from ibd_pipeline.synth import generate_deliveries

    root = tmp_path_factory.mktemp("deliveries")
    generate_deliveries(root / "inbox", n_patients=N_PATIENTS, seed=SEED, truth_dir=root / "truth")
    return root


@pytest.fixture(scope="session")
def truth_dir(deliveries) -> Path:
    return deliveries / "truth"


@pytest.fixture(scope="session")
def small_deliveries(tmp_path_factory) -> Path:
    """A small synthetic study (30 patients, seed 3; every table has rows):
    ``inbox/<center>/`` and ``truth/``, generated once per session; never modified."""
    from ibd_pipeline.synth import generate_deliveries

    root = tmp_path_factory.mktemp("small-deliveries")
    generate_deliveries(root / "inbox", n_patients=30, seed=3, truth_dir=root / "truth")
    return root


@pytest.fixture(scope="session")
def new_data_dir(tmp_path_factory, deliveries, pseudonym_key):
    """``new_data_dir(name)``: a fresh data directory holding the session's deliveries in
    its inboxes and the session's pseudonymization key."""

    def make(name: str):
        return make_data_dir(tmp_path_factory.mktemp(name), deliveries, pseudonym_key)

    return make


@pytest.fixture(scope="session")
def reference_run(new_data_dir) -> CliRun:
    """One uninterrupted ``ibd-pipeline run --settle 0`` of the session's deliveries in a
    subprocess (DEBUG console log), once per session. Read-only for its users: a test
    that changes it works on ``copy_data_dir(reference_run.data, tmp)``."""
    paths = new_data_dir("reference")
    run = run_cli(paths, "run", "--settle", "0", IBD_LOG_LEVEL="DEBUG")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run
