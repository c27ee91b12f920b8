"""The CPU's float32 exp, tanh and erf (backends/cpu_math.py) against the exact values.

Measured through the CPU backend's elementwise families (the path every op takes), in
ulps of the correctly rounded float32 result, with float64 NumPy as the exact value.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.special

from tinydeep.backends import cpu

K = cpu.BACKEND


def sweep(step):
    """Every `step`-th float32 bit pattern, NaNs and infinities left out."""
    x = np.arange(0, 2**32, step, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return x[np.isfinite(x)]


def ulp_errors(got, x, exact):
    """|got - exact(x)| in units of the float32 spacing at the rounded exact value; where
    the rounded value is 0 or infinite, got must equal it."""
    with np.errstate(over="ignore"):
        want = exact(x.astype(np.float64))
        rounded = want.astype(np.float32)
    edge = ~np.isfinite(rounded) | (rounded == 0)
    np.testing.assert_array_equal(got[edge], rounded[edge])
    spacing = np.spacing(np.abs(rounded[~edge])).astype(np.float64)
    return np.abs(got[~edge].astype(np.float64) - want[~edge]) / spacing


@pytest.mark.parametrize("op, exact, bound", [("exp", np.exp, 1.5), ("tanh", np.tanh, 2.0),
                                              ("erf", scipy.special.erf, 1.5)])
def test_float32_within_ulps_of_the_exact_value(op, exact, bound):
    # a coarse sweep of every binade, and a fine one where the ranges and branches meet
    x = np.concatenate([sweep(4099), np.linspace(-110, 90, 200_001, dtype=np.float32),
                        np.linspace(0.55, 0.7, 20_001, dtype=np.float32)])
    x = np.concatenate([x, -x])
    errors = ulp_errors(K.unary(op, x), x, exact)
    assert errors.max() <= bound, f"{op}: {errors.max():.3f} ulp at {x[errors.argmax()]}"


def test_float32_specials():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.7229, -87.5, -103.0,
                  -104.0, -1e4, 1e-30, -1e-30, 1e-45], dtype=np.float32)
    with np.errstate(over="ignore"):
        exp_want = np.exp(x.astype(np.float64)).astype(np.float32)
    y = K.unary("exp", x)
    assert np.isnan(y[0]) and y[1] == np.inf and y[2] == 0 and np.isinf(y[6])
    assert np.isfinite(y[5]) and y[8] > 0                  # the largest finite, a subnormal
    np.testing.assert_allclose(y[1:], exp_want[1:], rtol=2e-7, atol=2e-45)
    t = K.unary("tanh", x)
    np.testing.assert_array_equal(t[1:], np.tanh(x[1:]))   # saturated, 0 and tiny: exact
    assert np.isnan(t[0]) and np.signbit(t[4]) and np.signbit(t[12])
    e = K.unary("erf", x)
    np.testing.assert_array_equal(e[1:], scipy.special.erf(x[1:].astype(np.float64)).astype(
        np.float32))
    assert np.isnan(e[0]) and np.signbit(e[4]) and np.signbit(e[12])


def test_float64_keeps_libm():
    x = np.random.default_rng(0).uniform(-30, 30, 1000)
    np.testing.assert_array_equal(K.unary("exp", x), [math.exp(v) for v in x])
    for op in ("tanh", "erf"):
        np.testing.assert_array_equal(K.unary(op, x), [getattr(math, op)(v) for v in x])


def test_first_compile_warns_nothing(tmp_path):
    """A new user's first run compiles these loops: Numba must not print its internal
    warnings (a branch inlined into a parallel loop once gave NumbaIRAssumptionWarning)."""
    code = """if True:
        import warnings
        import numpy as np
        from numba.core.errors import NumbaWarning
        warnings.simplefilter("error", NumbaWarning)
        from tinydeep.backends import cpu
        z = np.random.default_rng(0).standard_normal((16, 10)).astype(np.float32)
        lp = cpu.log_softmax(z)
        cpu.log_softmax_backward(lp, z)
        cpu.cross_entropy_backward(lp, np.zeros(16, np.int64), 1.0)
        for op in ("exp", "tanh", "erf", "gelu", "sigmoid"):
            cpu.unary_backward(op, z, cpu.unary(op, z), z)
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), TINYDEEP_WARMUP="0")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "Warning" not in run.stderr, run.stderr[-2000:]
