"""The elementwise families on the CPU: each scalar function of scalar_ops.py
compiled into one `prange` loop over flat arrays (what `reference.py` does with
whole NumPy arrays, split over cores).

One loop per family is written here, not one per op: the op's name reaches the
compiler as a string literal, and an overload picks that op's scalar function
and inlines it into the loop, so each op gets its own machine code (as fast as
a loop written by hand) while the loop's source stays one. Because the name is
part of the kernel's type signature, Numba's on-disk cache keeps every op's
loop apart (`cache=True` works, unlike kernels made in a factory); the name
carries scalar_ops.VERSION so an edit there never meets a stale loop.
"""
import numpy as np
from numba import literally, njit, prange, typeof, types
from numba.extending import overload

from .scalar_ops import BINARY, UNARY, VERSION, check_op

_jitted = {}


def _scalar(table, op, which):
    """The Numba version of table[op][which] (op given as 'name/VERSION')."""
    key = (op.literal_value, which)
    if key not in _jitted:
        _jitted[key] = njit(table[op.literal_value.split("/")[0]][which])
    return _jitted[key]


def _map(op, x, y):
    """y = f(x)"""


def _map_backward(op, x, y, g, dx):
    """dx = df(x, y, g)"""


def _zip(op, a, b, y):
    """y = f(a, b)"""


def _zip_backward(op, a, b, y, g, da, db):
    """da, db = da(a, b, y, g), db(a, b, y, g)"""


# Each overload returns its loop with the op's scalar function bound (None until the op
# is a literal: then `literally` makes Numba retype with it).
@overload(_map, inline="always")
def _map_loop(op, x, y):
    if isinstance(op, types.StringLiteral):
        f = _scalar(UNARY, op, 0)

        def loop(op, x, y):
            for i in prange(y.size):
                y[i] = f(x[i])
        return loop


@overload(_map_backward, inline="always")
def _map_backward_loop(op, x, y, g, dx):
    if isinstance(op, types.StringLiteral):
        df = _scalar(UNARY, op, 1)

        def loop(op, x, y, g, dx):
            for i in prange(dx.size):
                dx[i] = df(x[i], y[i], g[i])
        return loop


@overload(_zip, inline="always")
def _zip_loop(op, a, b, y):
    if isinstance(op, types.StringLiteral):
        f = _scalar(BINARY, op, 0)

        def loop(op, a, b, y):
            for i in prange(y.size):
                y[i] = f(a[i], b[i])
        return loop


@overload(_zip_backward, inline="always")
def _zip_backward_loop(op, a, b, y, g, da, db):
    if isinstance(op, types.StringLiteral):
        fa, fb = _scalar(BINARY, op, 1), _scalar(BINARY, op, 2)

        def loop(op, a, b, y, g, da, db):
            for i in prange(da.size):
                da[i] = fa(a[i], b[i], y[i], g[i])
                db[i] = fb(a[i], b[i], y[i], g[i])
        return loop


@njit(parallel=True, cache=True)
def _map_kernel(op, x, y):
    literally(op)
    _map(op, x, y)


@njit(parallel=True, cache=True)
def _map_backward_kernel(op, x, y, g, dx):
    literally(op)
    _map_backward(op, x, y, g, dx)


@njit(parallel=True, cache=True)
def _zip_kernel(op, a, b, y):
    literally(op)
    _zip(op, a, b, y)


@njit(parallel=True, cache=True)
def _zip_backward_kernel(op, a, b, y, g, da, db):
    literally(op)
    _zip_backward(op, a, b, y, g, da, db)


_compiled = {}


def _run(kernel, op, *arrays):
    """kernel(op, *arrays) with flat C-contiguous arrays (outputs last, written in place),
    through the compiled loop for this op and these array types: looked up once, then
    called directly (a call by name would retype the literal every time)."""
    flat = [(a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(-1) for a in arrays]
    types_ = tuple(typeof(a) for a in flat)
    key = (kernel, op, types_)
    if key not in _compiled:
        _compiled[key] = kernel.compile((types.literal(f"{op}/{VERSION}"),) + types_)
    _compiled[key](f"{op}/{VERSION}", *flat)


def _result(out, like):
    return np.empty(like.shape, like.dtype) if out is None else out


def unary(op, x, out=None):
    check_op(UNARY, op)
    y = _result(out, x)
    _run(_map_kernel, op, x, y)
    return y


def unary_backward(op, x, y, grad, out=None):
    check_op(UNARY, op)
    dx = _result(out, grad)
    _run(_map_backward_kernel, op, x, y, grad, dx)
    return dx


def binary(op, a, b, out=None):
    check_op(BINARY, op)
    y = _result(out, a)
    _run(_zip_kernel, op, a, b, y)
    return y


def binary_backward(op, a, b, y, grad):
    check_op(BINARY, op)
    da, db = np.empty(grad.shape, grad.dtype), np.empty(grad.shape, grad.dtype)
    _run(_zip_backward_kernel, op, a, b, y, grad, da, db)
    return da, db
