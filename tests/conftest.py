"""Fixtures shared by every test folder (docs/ARCHITECTURE.md, "Tests").

Configuration (read once): ``crf``, ``settings``, ``profiles``.
Synthetic data (generated once per session, never modified; copy before changing):
``deliveries`` (the default 122-patient study, seed 20250401: ``inbox/<center>/`` and
``truth/``), ``truth_dir``, ``small_deliveries`` (30 patients, seed 3, every table has
rows) and the session's ``pseudonym_key``.
Full runs (each made once per session, read-only for their users): ``reference_run``,
the uninterrupted ``ibd-pipeline run`` of ``deliveries``; ``new_data_dir(name)`` gives a
fresh data directory holding those deliveries and that key, for a test's own run.

``make test`` runs the suite in two pytest-xdist workers (``-n 2 --dist loadfile``: a
module's tests stay in one worker, so a module fixture is made once). The session's key,
deliveries and reference run are made once for the whole run (``once_per_run``: the first
worker that needs one makes it under a file lock, the other reads it), so both workers'
data directories hold the same deliveries and key (docs/ARCHITECTURE.md, "Tests").
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.fullrun import (
    N_PATIENTS,
    SEED,
    CliRun,
    dump_run,
    load_run,
    make_data_dir,
    once_per_run,
    run_cli,
)


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
def pseudonym_key(tmp_path_factory) -> str:
    """The session's pseudonymization key (as `init-key` writes it; never in git), the
    same in every worker."""
    return once_per_run(tmp_path_factory, "pseudonym-key", lambda _: secrets.token_hex(32), str, str)


@pytest.fixture(scope="session")
def deliveries(tmp_path_factory) -> Path:
    """The default synthetic study's deliveries (``inbox/<center>/``) and ground truth
    (``truth/``), generated once per session; never modified."""
    from ibd_pipeline.synth import generate_deliveries

    def make(root: Path) -> Path:
        generate_deliveries(root / "inbox", n_patients=N_PATIENTS, seed=SEED, truth_dir=root / "truth")
        return root

    return once_per_run(tmp_path_factory, "deliveries", make, str, Path)


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
def reference_run(tmp_path_factory, deliveries, pseudonym_key) -> CliRun:
    """One uninterrupted ``ibd-pipeline run --settle 0`` of the session's deliveries in a
    subprocess (DEBUG console log), once per test run. Read-only for its users: a test
    that changes it works on ``copy_data_dir(reference_run.data, tmp)``."""

    def make(root: Path) -> CliRun:
        run = run_cli(make_data_dir(root, deliveries, pseudonym_key), "run", "--settle", "0", IBD_LOG_LEVEL="DEBUG")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        return run

    return once_per_run(tmp_path_factory, "reference", make, dump_run, load_run)
