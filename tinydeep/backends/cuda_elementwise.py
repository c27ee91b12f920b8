"""The elementwise families on the GPU: each scalar function of scalar_ops.py
becomes a device function inside one grid-stride kernel per family, made on the
first launch of that op (lazy: nothing compiles at import, and the simulator
runs the same kernels). Arrays are C-contiguous device arrays, seen flat.

Four elements a thread per pass. A thread of a grid-stride loop that loads one
element, computes and stores, keeps one 4-byte load in flight; a GPU's memory
needs megabytes in flight to stream at full speed (bandwidth × latency: about
4 TB/s × 0.8 µs on an H200), more than the 270 K resident threads' one load each.
So each pass loads x[i], x[i + G], x[i + 2G], x[i + 3G] (G the grid's size)
before it stores anything: four independent loads in flight, each still
coalesced across the warp; the last elements go one at a time. The backward of
a binary op keeps the one-element loop (four loads an element already), and
`relu_rung1` in benchmarks/bench_cuda.py, the one-element loop, is timed beside
this on a GPU.
"""
from numba import cuda

from .cuda_device import empty, flat, grid, made
from .scalar_ops import BINARY, UNARY, check_op


def _map_kernel(op):
    f = cuda.jit(device=True)(UNARY[op][0])

    @cuda.jit
    def kernel(x, y):                       # y = f(x)
        i, G = cuda.grid(1), cuda.gridsize(1)
        while i + 3 * G < y.size:
            x0, x1, x2, x3 = x[i], x[i + G], x[i + 2 * G], x[i + 3 * G]
            y[i], y[i + G], y[i + 2 * G], y[i + 3 * G] = f(x0), f(x1), f(x2), f(x3)
            i += 4 * G
        while i < y.size:
            y[i] = f(x[i])
            i += G
    return kernel


def _map_backward_kernel(op):
    df = cuda.jit(device=True)(UNARY[op][1])

    @cuda.jit
    def kernel(x, y, g, dx):                # dx = df(x, y, g)
        i, G = cuda.grid(1), cuda.gridsize(1)
        while i + 3 * G < dx.size:
            x0, x1, x2, x3 = x[i], x[i + G], x[i + 2 * G], x[i + 3 * G]
            y0, y1, y2, y3 = y[i], y[i + G], y[i + 2 * G], y[i + 3 * G]
            g0, g1, g2, g3 = g[i], g[i + G], g[i + 2 * G], g[i + 3 * G]
            dx[i], dx[i + G] = df(x0, y0, g0), df(x1, y1, g1)
            dx[i + 2 * G], dx[i + 3 * G] = df(x2, y2, g2), df(x3, y3, g3)
            i += 4 * G
        while i < dx.size:
            dx[i] = df(x[i], y[i], g[i])
            i += G
    return kernel


def _zip_kernel(op):
    f = cuda.jit(device=True)(BINARY[op][0])

    @cuda.jit
    def kernel(a, b, y):                    # y = f(a, b)
        i, G = cuda.grid(1), cuda.gridsize(1)
        while i + 3 * G < y.size:
            a0, a1, a2, a3 = a[i], a[i + G], a[i + 2 * G], a[i + 3 * G]
            b0, b1, b2, b3 = b[i], b[i + G], b[i + 2 * G], b[i + 3 * G]
            y[i], y[i + G] = f(a0, b0), f(a1, b1)
            y[i + 2 * G], y[i + 3 * G] = f(a2, b2), f(a3, b3)
            i += 4 * G
        while i < y.size:
            y[i] = f(a[i], b[i])
            i += G
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
