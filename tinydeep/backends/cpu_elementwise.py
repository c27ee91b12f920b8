"""The elementwise families on the CPU: each scalar function of scalar_ops.py
compiled into one `prange` loop over flat arrays (what `reference.py` does with
whole NumPy arrays, split over cores).

One loop per family is written here, not one per op: the op's name reaches the
compiler as a string literal, and an overload (`_call`) picks that op's scalar
function for the loop body, so each op gets its own machine code (as fast as a
loop written by hand) while the loop's source stays one. Because the name is
part of the kernel's type signature, Numba's on-disk cache keeps every op's
loop apart (`cache=True` works, unlike kernels made in a factory); the name
carries scalar_ops.VERSION and cpu_math.VERSION (the float32 exp, tanh and erf here)
so an edit there never meets a stale loop.
"""
import math

import numpy as np
from numba import literally, njit, prange, typeof, types
from numba.extending import overload

from .reference import _result
from . import cpu_math, scalar_ops
from .scalar_ops import BINARY, UNARY, check_op

VERSION = scalar_ops.VERSION + cpu_math.VERSION

_jitted = {}
_CONTRACT = {"contract"}   # a·b + c fused (cpu_math's polynomials inline here)


def _call(op, which, args):
    """The scalar function `which` of op (0: f, 1: its derivative, 2: the second one)
    applied to args; UNARY's when it takes 1 or 3 arguments, BINARY's for 2 or 4."""


# Inlined at Numba's IR level (the overload and the scalar function): each kernel is one
# function to compile, not three.
@overload(_call, inline="always")
def _call_typed(op, which, args):
    if isinstance(op, types.StringLiteral) and isinstance(which, types.IntegerLiteral):
        key = (op.literal_value, which.literal_value, len(args))
        if key not in _jitted:
            table = UNARY if len(args) in (1, 3) else BINARY
            _jitted[key] = njit(inline="always")(table[key[0].split("/")[0]][key[1]])
        f = _jitted[key]
        return [lambda op, which, args: f(args[0]),
                lambda op, which, args: f(args[0], args[1]),
                lambda op, which, args: f(args[0], args[1], args[2]),
                lambda op, which, args: f(args[0], args[1], args[2], args[3])][len(args) - 1]


@njit(parallel=True, cache=True, fastmath=_CONTRACT)
def _map_kernel(op, x, y):
    literally(op)
    for i in prange(y.size):
        y[i] = _call(op, 0, (x[i],))


@njit(parallel=True, cache=True, fastmath=_CONTRACT)
def _map_backward_kernel(op, x, y, g, dx):
    literally(op)
    for i in prange(dx.size):
        dx[i] = _call(op, 1, (x[i], y[i], g[i]))


@njit(parallel=True, cache=True, fastmath=_CONTRACT)
def _zip_kernel(op, a, b, y):
    literally(op)
    for i in prange(y.size):
        y[i] = _call(op, 0, (a[i], b[i]))


@njit(parallel=True, cache=True, fastmath=_CONTRACT)
def _zip_backward_kernel(op, a, b, y, g, da, db):
    literally(op)
    for i in prange(da.size):
        da[i] = _call(op, 1, (a[i], b[i], y[i], g[i]))
        db[i] = _call(op, 2, (a[i], b[i], y[i], g[i]))


@njit(parallel=True, cache=True, fastmath=_CONTRACT)
def _zip_vector_kernel(op, x, v, y, K, I, v_first):
    # y = f(x, v), or f(v, x) where v_first, for x and y viewed as (O, K, I) and v a vector
    # along K: an operand broadcast from a bias (I = 1) or a per-channel (1, C, 1, 1) array,
    # read where it lies instead of first broadcast into a full-size copy. (Unsigned
    # indices: no wrap-around checks, so the inner loops vectorize.)
    literally(op)
    n = np.uint64(K if I == 1 else I)   # the inner loop: a row of K (I = 1), or a run of I
    for t in prange(y.size // n):
        at = np.uint64(t) * n
        if I == 1 and v_first:
            for i in range(n):
                y[at + i] = _call(op, 0, (v[i], x[at + i]))
        elif I == 1:
            for i in range(n):
                y[at + i] = _call(op, 0, (x[at + i], v[i]))
        elif v_first:
            vk = v[t % K]
            for i in range(n):
                y[at + i] = _call(op, 0, (vk, x[at + i]))
        else:
            vk = v[t % K]
            for i in range(n):
                y[at + i] = _call(op, 0, (x[at + i], vk))


_compiled = {}


def _run(kernel, op, *arrays, scalars=()):
    """kernel(op, *arrays, *scalars) with flat C-contiguous arrays (outputs last, written in
    place), through the compiled loop for this op and these types: looked up once, then
    called directly (a call by name would retype the literal every time)."""
    flat = [(a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(-1) for a in arrays]
    key = (kernel, op) + tuple((a.dtype, a.flags.writeable) for a in flat) + tuple(
        type(s) for s in scalars)
    loop = _compiled.get(key)
    if loop is None:
        sig = (types.literal(f"{op}/{VERSION}"),) + tuple(typeof(a) for a in flat + list(scalars))
        loop = _compiled[key] = kernel.compile(sig)
    loop(f"{op}/{VERSION}", *flat, *scalars)


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


def _vector(v):
    """(v_flat, K, I) where v, a broadcast view, holds K contiguous elements along one run
    of its axes and repeats them along the others, which run I elements after it (a
    scalar: K = I = 1); None otherwise."""
    run = [d for d in range(v.ndim) if v.strides[d] != 0 and v.shape[d] > 1]
    if run and run != list(range(run[0], run[-1] + 1)):
        return None
    s, e = (run[0], run[-1] + 1) if run else (v.ndim, v.ndim)
    flat = v[tuple(slice(None) if s <= d < e else 0 for d in range(v.ndim))]
    if not flat.flags.c_contiguous:
        return None
    I = math.prod(v.shape[e:]) if run else 1
    return flat.reshape(-1), flat.size, I


def binary(op, a, b, out=None):
    check_op(BINARY, op)
    y = _result(out, a)
    # One operand broadcast from a vector, the other whole: the vector is read in place.
    for x, v, v_first in ((a, b, False), (b, a, True)):
        form = None if v.flags.c_contiguous or not x.flags.c_contiguous else _vector(v)
        if form is not None and y.flags.c_contiguous and y.size:
            v_flat, K, I = form
            _run(_zip_vector_kernel, op, x, v_flat, y, scalars=(K, I, v_first))
            return y
    _run(_zip_kernel, op, a, b, y)
    return y


def binary_backward(op, a, b, y, grad):
    check_op(BINARY, op)
    da, db = np.empty(grad.shape, grad.dtype), np.empty(grad.shape, grad.dtype)
    _run(_zip_backward_kernel, op, a, b, y, grad, da, db)
    return da, db
