"""``ibd-pipeline ui`` runs ``dagster dev`` under ``supervise.run_supervised``: a stop
signal becomes one SIGINT to the command's process group, and what has not stopped after
the grace period is killed; the supervisor returns only when the group has gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

# a command that starts a grandchild, then either exits on SIGINT (graceful) or ignores it
CHILD = textwrap.dedent("""
    import signal, subprocess, sys, time
    stubborn = sys.argv[1] == "stubborn"
    if stubborn:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN) if sys.argv[1] == 'stubborn' else None; time.sleep(600)",
        sys.argv[1]])
    try:
        print("ready", flush=True)  # the grandchild runs (Popen returned after its exec)
        time.sleep(600)
    except KeyboardInterrupt:
        grandchild.wait()
        sys.exit(0)
""")

SUPERVISOR = textwrap.dedent("""
    import sys
    from ibd_pipeline.supervise import run_supervised
    sys.exit(run_supervised([sys.executable, "-c", sys.argv[1], sys.argv[2]], grace_seconds=float(sys.argv[3])))
""")


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(tmp_path, mode: str, grace: float, background: bool = False):
    """``background``: started as `cmd &` from a script is (SIGINT ignored, inherited)."""
    log = open(tmp_path / "out.log", "w+")
    p = subprocess.Popen([sys.executable, "-c", SUPERVISOR, CHILD, mode, str(grace)], stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()),
                         preexec_fn=_ignore_sigint if background else None)
    deadline = time.time() + 60
    # the command and its grandchild, the grandchild past its exec: a signal to a process
    # forked but not yet exec'd is lost with its handler, and the command would wait forever
    while len(psutil.Process(p.pid).children(recursive=True)) < 2 or "ready" not in (tmp_path / "out.log").read_text():
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.1)
    return p, psutil.Process(p.pid).children(recursive=True), log


def _stop(p, descendants, sig) -> float:
    t0 = time.time()
    os.killpg(p.pid, sig)  # the supervisor's own group: the command is in another one
    p.wait(timeout=30)
    gone, alive = psutil.wait_procs(descendants, timeout=5)
    assert alive == []
    return time.time() - t0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_becomes_the_commands_own_ctrl_c_and_everything_stops(tmp_path, sig):
    p, descendants, log = _start(tmp_path, "graceful", grace=20)
    seconds = _stop(p, descendants, sig)
    assert seconds < 10  # the graceful shutdown, not the 20 s grace period
    assert p.returncode == 128 + sig
    log.seek(0)
    assert "killed" not in log.read()


def test_started_in_the_background_the_command_still_gets_its_ctrl_c(tmp_path):
    """`ibd-pipeline ui &` inherits SIGINT ignored; the command must not (dagster dev maps
    SIGTERM to SIGINT's disposition and would ignore both)."""
    p, descendants, log = _start(tmp_path, "graceful", grace=20, background=True)
    seconds = _stop(p, descendants, signal.SIGTERM)
    assert seconds < 10
    log.seek(0)
    assert "killed" not in log.read()


def test_a_command_that_ignores_the_signal_is_killed_after_the_grace_period(tmp_path):
    p, descendants, log = _start(tmp_path, "stubborn", grace=1.5)
    seconds = _stop(p, descendants, signal.SIGTERM)
    assert 1.5 <= seconds < 8
    log.seek(0)
    assert "had not stopped 1.5 s after the signal: killed" in log.read()


def test_the_demo_names_the_ui_command_of_its_study_and_data_directory(tmp_path, monkeypatch):
    from ibd_pipeline.cli import ui_hint
    from ibd_pipeline.config import data_paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IBD_STUDY", raising=False)
    assert ui_hint(data_paths(tmp_path / "data")) == "make dev"
    assert ui_hint(data_paths(tmp_path / "elsewhere")) == f".venv/bin/ibd-pipeline --data-dir {tmp_path / 'elsewhere'} ui"
    monkeypatch.setenv("IBD_STUDY", "single_center_cd")
    assert ui_hint(data_paths(tmp_path / "data" / "studies" / "single_center_cd")) == \
        ".venv/bin/ibd-pipeline --study single_center_cd ui"
