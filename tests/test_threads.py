"""tinydeep.threads (the team that runs the packed kernels' parts, blas_limits) and the
first-compile notice."""
import threading

import numpy as np
import pytest
from numba import njit

from tinydeep import compile_notice, threads


def test_team_runs_every_task_once_on_several_threads():
    seen, lock = [], threading.Lock()

    def task(i):
        with lock:
            seen.append((i, threading.get_ident()))

    team = threads.Team()
    team.run([lambda i=i: task(i) for i in range(7)], threads=3)
    assert sorted(i for i, _ in seen) == list(range(7))
    assert len({t for _, t in seen}) == 3          # the caller and two workers
    seen.clear()
    team.run([lambda i=i: task(i) for i in range(2)], threads=1)    # one thread: all here
    assert {t for _, t in seen} == {threading.get_ident()}


def test_team_reraises_a_workers_error_and_stays_usable():
    team = threads.Team()

    def boom():
        raise ValueError("part 1 failed")

    with pytest.raises(ValueError, match="part 1 failed"):
        team.run([lambda: None, boom], threads=2)
    out = []
    team.run([lambda: out.append(0), lambda: out.append(1)], threads=2)
    assert sorted(out) == [0, 1]


def test_a_nested_run_goes_serial_instead_of_deadlocking():
    team, out = threads.Team(), []
    team.run([lambda: team.run([lambda: out.append("inner")] * 2, threads=2),
              lambda: out.append("outer")], threads=2)
    assert sorted(out) == ["inner", "inner", "outer"]


def test_blas_limits_caps_numpy_blas_inside_the_block():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    np.ones((64, 64)) @ np.ones((64, 64))          # load the BLAS library
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    if not blas:
        pytest.skip("NumPy's BLAS is not visible to threadpoolctl")
    with threads.blas_limits(1):
        inside = [p["num_threads"] for p in threadpoolctl.threadpool_info()
                  if p["user_api"] == "blas"]
    after = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert inside == [1] * len(inside)
    assert after == [p["num_threads"] for p in blas]


def test_compile_notice_says_one_line_for_a_tinydeep_kernel_only():
    lines = []
    listener = compile_notice._FirstCompile(lines.append)
    from numba.core import event
    event.register("numba:compile", listener)
    try:
        def outside(x):
            return x + 1

        def inside(x):
            return x + 2

        inside.__module__ = "tinydeep.backends.some_kernels"
        njit(outside)(1)                   # not tinydeep's: no line
        assert lines == []
        njit(inside)(1)
        njit(inside)(1.5)                  # a second compile: still one line
        assert lines == [compile_notice.MESSAGE]
    finally:
        event.unregister("numba:compile", listener)
