"""Work in forked processes (ibd_pipeline.forking): results and errors come back, the
arguments are inherited rather than pickled, and the child's memory is not kept."""

import os

import numpy as np
import psutil
import pytest

from ibd_pipeline.forking import Forked, in_child

KEPT = []  # what a leaky library would keep alive in its process


def _sum_and_keep(arrays, scale=1):
    KEPT.append(np.ones(50_000_000))  # 400 MB kept alive "by the library"
    return os.getpid(), scale * sum(float(a.sum()) for a in arrays)


def _apply(fn, x):
    return fn(x)


def _fail(_):
    raise ValueError("bad frame in the child")


def test_in_child_returns_the_result_computed_in_another_process_and_keeps_none_of_its_memory():
    arrays = [np.arange(10.0), np.arange(5.0)]
    rss0 = psutil.Process().memory_info().rss
    pid, total = in_child(_sum_and_keep, arrays, scale=2)
    assert total == 2 * (45.0 + 10.0)
    assert pid != os.getpid()
    assert KEPT == []  # the child's list, not ours
    assert psutil.Process().memory_info().rss - rss0 < 100 * 2**20


def test_in_child_inherits_arguments_that_cannot_be_pickled():
    assert in_child(_apply, lambda x: x + 1, 41) == 42


def test_an_error_in_the_child_is_raised_in_the_caller():
    with pytest.raises(ValueError, match="bad frame in the child"):
        in_child(_fail, None)


def _square(state, item):
    return state["offset"] + item * item


def test_forked_workers_give_the_serial_results_in_order():
    state = {"offset": 1}
    with Forked(state, workers=2) as f:
        par = f.map(_square, range(20))
    with Forked(state, workers=1) as f:
        ser = f.map(_square, range(20))
    assert par == ser == [1 + i * i for i in range(20)]


def _die(_):
    os._exit(9)


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="child process running _die died"):
        in_child(_die, None)


def _blas_threads(_state, _item):
    from threadpoolctl import threadpool_info

    return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})


def test_forked_work_runs_one_blas_thread_per_process_and_the_caller_gets_its_threads_back():
    """The workers already use every core: a BLAS pool per process on top of them made the
    bootstrap beside Boruta twice as slow (issue 14)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def caller_threads():
        return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})

    with threadpool_limits(limits=2, user_api="blas"):
        before = caller_threads()
        with Forked(None, workers=2) as f:
            inside, workers = caller_threads(), f.map(_blas_threads, range(4))
        assert f.forked is False  # the pool is gone
        assert (inside, workers) == ([1], [[1]] * 4)
        assert caller_threads() == before == [2]
