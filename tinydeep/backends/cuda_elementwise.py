"""The elementwise families on the GPU: each scalar function of scalar_ops.py
becomes a device function inside one grid-stride kernel per family, made on the
first launch of that op (lazy: nothing compiles at import, and the simulator
runs the same kernels). Arrays are C-contiguous device arrays, seen flat.
"""
from numba import cuda

from .cuda_device import empty, flat, grid, made
from .scalar_ops import BINARY, UNARY, check_op


def _map_kernel(op):
    f = cuda.jit(device=True)(UNARY[op][0])

    @cuda.jit
    def kernel(x, y):                       # y = f(x)
        for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            y[i] = f(x[i])
    return kernel


def _map_backward_kernel(op):
    df = cuda.jit(device=True)(UNARY[op][1])

    @cuda.jit
    def kernel(x, y, g, dx):                # dx = df(x, y, g)
        for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            dx[i] = df(x[i], y[i], g[i])
    return kernel


def _zip_kernel(op):
    f = cuda.jit(device=True)(BINARY[op][0])

    @cuda.jit
    def kernel(a, b, y):                    # y = f(a, b)
        for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            y[i] = f(a[i], b[i])
    return kernel


def _zip_backward_kernel(op):
    fa, fb = (cuda.jit(device=True)(d) for d in BINARY[op][1:])

    @cuda.jit
    def kernel(a, b, y, g, da, db):         # da, db = da(a, b, y, g), db(a, b, y, g)
        for i in range(cuda.grid(1), da.size, cuda.gridsize(1)):
            da[i] = fa(a[i], b[i], y[i], g[i])
            db[i] = fb(a[i], b[i], y[i], g[i])
    return kernel


def _launch(factory, op, *arrays):
    """The op's kernel over the flat arrays (outputs last); nothing to do when empty."""
    if arrays[-1].size:
        made(factory, op)[grid(arrays[-1].size)](*(flat(a) for a in arrays))


def unary(op, x, out=None):
    check_op(UNARY, op)
    y = empty(x.shape, x.dtype) if out is None else out
    _launch(_map_kernel, op, x, y)
    return y


def unary_backward(op, x, y, grad, out=None):
    check_op(UNARY, op)
    dx = empty(grad.shape, grad.dtype) if out is None else out
    _launch(_map_backward_kernel, op, x, y, grad, dx)
    return dx


def binary(op, a, b, out=None):
    check_op(BINARY, op)
    y = empty(a.shape, a.dtype) if out is None else out
    _launch(_zip_kernel, op, a, b, y)
    return y


def binary_backward(op, a, b, y, grad):
    check_op(BINARY, op)
    da, db = empty(grad.shape, grad.dtype), empty(grad.shape, grad.dtype)
    _launch(_zip_backward_kernel, op, a, b, y, grad, da, db)
    return da, db
