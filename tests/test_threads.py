"""tinydeep.threads.blas_limits and the first-compile notice."""

import numpy as np
import pytest
from numba import njit

from tinydeep import threads
from tinydeep.backends import cpu_warmup


def test_blas_limits_caps_numpy_blas_inside_the_block():
    import threadpoolctl                               # a dependency: must not skip
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


def test_first_compile_says_one_line_and_starts_the_helper_for_a_tinydeep_kernel_only():
    lines, starts = [], []
    listener = cpu_warmup._FirstCompile(lines.append, lambda: starts.append(1))
    from numba.core import event
    event.register("numba:compile", listener)
    try:
        def outside(x):
            return x + 1

        def inside(x):
            return x + 2

        inside.__module__ = "tinydeep.backends.some_kernels"
        njit(outside)(1)                   # not tinydeep's: no line
        assert lines == [] and starts == []
        njit(inside)(1)
        njit(inside)(1.5)                  # a second compile: still one line, one start
        assert lines == [cpu_warmup.MESSAGE] and starts == [1]
    finally:
        event.unregister("numba:compile", listener)
