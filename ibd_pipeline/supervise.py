"""A long-running command (``dagster dev`` for ``ibd-pipeline ui``) that stops within a
bounded time of a signal, whatever its own shutdown takes.

The command runs in its own process group. The first SIGINT, SIGTERM or SIGHUP this
process receives (alone, or as one of its process group: Ctrl-C in a terminal, ``kill
-TERM -<pgid>``, a service manager's stop) is passed on as one SIGINT to that group, which
is the Ctrl-C ``dagster dev`` expects: it asks the webserver, the daemon and the code
servers to shut down cleanly. When the group has not gone ``grace_seconds`` later (under
load, the webserver's and the code servers' shutdown alone has taken 10 s on 2 cores), or
at a second signal, what is left of it is killed. This process returns only once every
process of the group has gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a process of the group we may not signal
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def run_supervised(cmd: list[str], env: dict | None = None, cwd: str | None = None, grace_seconds: float = 7.0,
                   poll_seconds: float = 0.1) -> int:
    """Run ``cmd`` in its own process group until it exits or a stop signal (module
    docstring); return its exit status (128 + the signal's number when it was stopped)."""
    state: dict = {"signal": None, "deadline": None, "killed": False, "pgid": None}

    def on_signal(signum, _frame):
        if state["signal"] is None:
            state["signal"] = signum
            state["deadline"] = time.monotonic() + grace_seconds
            if state["pgid"] is not None:
                _signal_group(state["pgid"], signal.SIGINT)
        else:  # a second signal: stop now
            state["deadline"] = time.monotonic()

    # handled here before the command starts, so it starts with their default dispositions:
    # a process started in the background (`cmd &`, nohup) inherits SIGINT ignored, and
    # dagster dev maps SIGTERM to SIGINT's disposition - it would ignore both
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        child = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True)
    except BaseException:
        for s, h in previous.items():
            signal.signal(s, h)
        raise
    pgid = state["pgid"] = child.pid
    if state["signal"] is not None:  # a signal came while it was starting
        _signal_group(pgid, signal.SIGINT)
    try:
        # until the command has exited and (after a stop signal) its group has gone
        while child.poll() is None or (state["signal"] is not None and _group_alive(pgid)):
            now = time.monotonic()
            if state["killed"] and now >= state["deadline"] + 1.0:
                break  # killed; what still answers is a zombie its new parent has not reaped yet
            if state["deadline"] is not None and now >= state["deadline"] and not state["killed"]:
                print(f"ibd-pipeline: the processes of `{os.path.basename(cmd[0])}` had not stopped "
                      f"{grace_seconds:g} s after the signal: killed", file=sys.stderr, flush=True)
                _signal_group(pgid, signal.SIGKILL)
                state["killed"], state["deadline"] = True, now
            time.sleep(poll_seconds)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if child.poll() is None or (not state["killed"] and _group_alive(pgid)):
            _signal_group(pgid, signal.SIGKILL)  # this process is leaving: nothing of the group stays
            child.wait()
    if state["signal"] is not None:
        return 128 + int(state["signal"])
    return child.returncode
