"""Work in forked processes that inherit the data: independent model fits on every core
(``Forked``), and one memory-hungry computation in a child process whose memory all goes
back to the system when it ends (``in_child``).

The resamples of the bootstrap, the Boruta run and the candidate Cox models of one
forward-selection step are independent computations; ``Forked`` runs them in
``workers`` processes forked from the caller (Linux), which inherit the data they read
(``state``) instead of receiving a pickled copy per task. Results come back in the
order of the items, and every task computes exactly what the serial loop computes, so
the output does not depend on the number of workers. Anything the pool cannot do
(no fork, a daemonic caller, a worker that dies) is done again in-process.

``workers``: ``$IBD_STATS_WORKERS`` or the number of CPUs (at most 4); 1 = in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys

log = logging.getLogger(__name__)

_STATE = None  # what the forked workers read (set before the fork)


def default_workers() -> int:
    env = os.environ.get("IBD_STATS_WORKERS", "").strip()
    if env.isdigit():
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``) - before a
    fork, so the workers do not start with the parent's freed-but-kept pages mapped."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:  # noqa: BLE001 - not glibc: nothing to do
        pass


def can_fork() -> bool:
    """Whether work can go to forked processes here (Linux, not a daemonic process)."""
    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def init_worker() -> None:
    # the caller's signal handlers (e.g. Dagster's interrupt handler) are not the worker's
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _one_blas_thread():
    """One BLAS/OpenMP thread per process while work runs in forked processes (restored
    after): the processes already use every core, and a BLAS pool of as many threads in
    each of them made the bootstrap beside Boruta twice as slow (issue 14). None when
    threadpoolctl is not there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return None
    return threadpool_limits(limits=1)


def _call(job):
    fn, item = job
    return fn(_STATE, item)


class Forked:
    """``with Forked(state, workers) as f: f.map(fn, items)`` - ``fn(state, item)`` for
    every item, in forked workers when ``workers`` > 1 (see module docstring)."""

    def __init__(self, state, workers: int | None = 1):
        self.state = state
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self.pool = None
        self.blas = None

    def __enter__(self) -> "Forked":
        global _STATE
        if self.workers > 1 and can_fork():
            _STATE = self.state
            release_free_memory()
            self.blas = _one_blas_thread()  # the workers inherit it
            try:
                self.pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=init_worker)
            except Exception as e:  # noqa: BLE001 - no pool: in-process
                log.warning("stats: no worker processes (%s: %s); computing in-process", type(e).__name__, e)
                self.pool = None
                self._restore_blas()
        return self

    def _restore_blas(self) -> None:
        if self.blas is not None:
            self.blas.restore_original_limits()
            self.blas = None

    def __exit__(self, exc_type, *exc) -> None:
        global _STATE
        if self.pool is not None:
            if exc_type is None:
                self.pool.close()  # the workers finish and exit
            else:
                self.pool.terminate()
            self.pool.join()
            self.pool = None
        self._restore_blas()
        _STATE = None

    @property
    def forked(self) -> bool:
        """Whether the work goes to forked processes (else it is done in-process)."""
        return self.pool is not None

    def submit(self, fn, item):
        """Start ``fn(state, item)``; ``.get()`` on the result gives its value."""
        if self.pool is not None:
            try:
                return _Async(self.pool.apply_async(_call, ((fn, item),)), fn, self.state, item)
            except Exception:  # noqa: BLE001
                pass
        return _Done(fn(self.state, item))

    def map(self, fn, items) -> list:
        items = list(items)
        if self.pool is not None and len(items) > 1:
            try:
                size = max(1, len(items) // (self.workers * 4))
                return self.pool.map(_call, [(fn, it) for it in items], chunksize=size)
            except Exception as e:  # noqa: BLE001 - recomputed in-process (raises there if fn does)
                log.warning("stats: worker processes failed (%s: %s); computing in-process", type(e).__name__, e)
        return [fn(self.state, it) for it in items]


def _child_call(fn, kwargs):
    return fn(*_STATE, **kwargs)


def in_child(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in one forked child process, its result pickled back.

    For a library that keeps what it computed on alive in the process after it returns
    (great-expectations' ephemeral context holds its data frames in a process-wide
    project): in a child, all of that memory goes back to the system when the child
    ends. The child inherits ``args`` (no pickled copy); ``kwargs`` are pickled. Without
    fork (see ``can_fork``) ``fn`` runs in-process. An exception ``fn`` raises in the
    child is raised here; a child that dies (killed, out of memory) raises
    ``RuntimeError`` rather than being run again in this process."""
    global _STATE
    if not can_fork():
        return fn(*args, **kwargs)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    _STATE = args  # set before the child is forked (at submit)
    release_free_memory()
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"), initializer=init_worker) as ex:
            try:
                return ex.submit(_child_call, fn, kwargs).result()
            except BrokenProcessPool as e:
                raise RuntimeError(f"the child process running {getattr(fn, '__name__', fn)} died (killed, or out of memory?)") from e
    finally:
        _STATE = None


class _Done:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class _Async:
    def __init__(self, res, fn, state, item):
        self.res, self.fn, self.state, self.item = res, fn, state, item

    def get(self):
        try:
            return self.res.get()
        except Exception as e:  # noqa: BLE001
            log.warning("stats: worker process failed (%s: %s); computing in-process", type(e).__name__, e)
            return self.fn(self.state, self.item)
