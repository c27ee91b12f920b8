"""Elementwise ops, each written once as a scalar function and its derivative.

As MiniTorch's map and zip: every backend turns these into loops over arrays --
the reference calls them on whole NumPy arrays, the CPU compiles each into a
`prange` loop, CUDA into a grid-stride kernel (backends/*elementwise*). So each
function is written with arithmetic and the few functions below only (no `if`),
which mean the same on a number, on an array, in Numba and in numba.cuda.

    UNARY[name]  = (f, df):      y = f(x),     dx = df(x, y, g)
    BINARY[name] = (f, da, db):  y = f(a, b),  da = da(a, b, y, g),  db = db(a, b, y, g)

g is the gradient of the output; a derivative returns the input's gradient
(the chain rule applied: g · ∂y/∂input). Derivatives follow PyTorch's choices
at kinks: relu'(0) = 0, |x|'(0) = 0, ties of maximum/minimum split g in half.
Adding an op is one entry here; every backend and the parity tests pick it up.
"""
import math
import zlib
from pathlib import Path

import numpy as np
import scipy.special
from numba import types
from numba.extending import overload


# NumPy's ufuncs on arrays (the reference) and in Python; in compiled code, on the CPU or
# the GPU, the same math on numbers (numba.cuda compiles no NumPy ufunc on a number).

def _numpy_or(ufunc, compiled):
    def f(x):
        return ufunc(x)
    overload(f)(lambda x: compiled)
    return f


exp = _numpy_or(np.exp, lambda x: math.exp(x))
log = _numpy_or(np.log, lambda x: math.log(x))
log1p = _numpy_or(np.log1p, lambda x: math.log1p(x))
sqrt = _numpy_or(np.sqrt, lambda x: math.sqrt(x))
tanh = _numpy_or(np.tanh, lambda x: math.tanh(x))
erf = _numpy_or(scipy.special.erf, lambda x: math.erf(x))
sign = _numpy_or(np.sign, lambda x: x * 0 if x == 0 else (1 if x > 0 else (-1 if x < 0 else x)))


def power(a, b):
    return np.power(a, b)


def where(cond, a, b):
    """a where cond holds, else b."""
    return np.where(cond, a, b)


def like(x, c):
    """The number c in x's float type: NumPy keeps a float32 array float32 beside a Python
    float, compiled code would make the expression float64 (and call float64 functions)."""
    return c


overload(power)(lambda a, b: lambda a, b: a ** b)
overload(where)(lambda cond, a, b: lambda cond, a, b: a if cond else b)
overload(like)(lambda x, c: (lambda x, c: np.float32(c)) if x == types.float32 else (lambda x, c: c))


UNARY = {
    "neg": (lambda x: -x, lambda x, y, g: -g),
    "exp": (lambda x: exp(x), lambda x, y, g: g * y),
    "log": (lambda x: log(x), lambda x, y, g: g / x),
    "sqrt": (lambda x: sqrt(x), lambda x, y, g: g / (y + y)),
    "abs": (lambda x: abs(x), lambda x, y, g: g * sign(x)),
    "tanh": (lambda x: tanh(x), lambda x, y, g: g * (1 - y * y)),
    "erf": (lambda x: erf(x), lambda x, y, g: g * 1.1283791670955126 * exp(-x * x)),  # 2/√π
    "sigmoid": (lambda x: 1 / (1 + exp(-x)), lambda x, y, g: g * y * (1 - y)),
    # x·Φ(x) = ½x(1 + erf(x/√2)), dx = g·(Φ(x) + x·φ(x)), φ(x) = e^(-x²/2)/√(2π)
    "gelu": (lambda x: x * (0.5 + 0.5 * erf(x * like(x, 0.7071067811865476))),
             lambda x, y, g: g * (0.5 + 0.5 * erf(x * like(x, 0.7071067811865476))
                                  + x * like(x, 0.3989422804014327) * exp(x * x * like(x, -0.5)))),
    # max(x, 0) with a NaN passing through; the gradient flows where the unit was active
    # (y > 0 iff x > 0, so either the input or the output may be passed as x)
    "relu": (lambda x: np.maximum(x, 0), lambda x, y, g: where(x > 0, g, 0)),
    "reciprocal": (lambda x: 1 / x, lambda x, y, g: -g * y * y),
    "log1p": (lambda x: log1p(x), lambda x, y, g: g / (1 + x)),       # log(1 + x), exact near 0
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), no overflow; its derivative is sigmoid(x)
    "softplus": (lambda x: np.maximum(x, 0) + log1p(exp(-abs(x))), lambda x, y, g: g / (1 + exp(-x))),
}

# PyTorch's pow backward: da = g · b · a^(b-1), taken as 0 where b = 0;
# db = g · y · log a, taken as 0 where a = 0 and b >= 0
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b, y, g: g, lambda a, b, y, g: g),
    "sub": (lambda a, b: a - b, lambda a, b, y, g: g, lambda a, b, y, g: -g),
    "mul": (lambda a, b: a * b, lambda a, b, y, g: g * b, lambda a, b, y, g: g * a),
    "div": (lambda a, b: a / b, lambda a, b, y, g: g / b, lambda a, b, y, g: -g * y / b),
    "pow": (lambda a, b: power(a, b),
            lambda a, b, y, g: where(b == 0, 0, g * b * power(a, b - 1)),
            lambda a, b, y, g: where((a == 0) & (b >= 0), 0, g * y * log(a))),
    "maximum": (lambda a, b: np.maximum(a, b),
                lambda a, b, y, g: g * ((a > b) + 0.5 * (a == b)),
                lambda a, b, y, g: g * ((b > a) + 0.5 * (a == b))),
    "minimum": (lambda a, b: np.minimum(a, b),
                lambda a, b, y, g: g * ((a < b) + 0.5 * (a == b)),
                lambda a, b, y, g: g * ((b < a) + 0.5 * (a == b))),
    # clamp by a bound b: the gradient goes to x where x is inside (ties too), else to b (PyTorch's)
    "clamp_min": (lambda a, b: np.maximum(a, b), lambda a, b, y, g: g * (a >= b),
                  lambda a, b, y, g: g * (a < b)),
    "clamp_max": (lambda a, b: np.minimum(a, b), lambda a, b, y, g: g * (a <= b),
                  lambda a, b, y, g: g * (a > b)),
    "pick": (lambda a, m: where(m != 0, a, 0), lambda a, m, y, g: where(m != 0, g, 0),  # td.where
             lambda a, m, y, g: 0 * g),
}

# Changes with this file: compiled loops are cached under "name/VERSION", so editing a
# function here can never run a stale loop from Numba's on-disk cache.
VERSION = f"{zlib.crc32(Path(__file__).read_bytes()):08x}"


def check_op(table, op):
    """The entry of `op` in UNARY or BINARY, or a ValueError listing the choices."""
    if op not in table:
        raise ValueError(f"unknown elementwise op {op!r}; choose one of {sorted(table)}")
    return table[op]
