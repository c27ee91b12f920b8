"""CudaBackend: every kernel and array helper of the contract (backends/base.py)
on numba.cuda device arrays.

Arrays in and out are C-contiguous device arrays; the meaning of each kernel
is the one `reference.py` states, and tests/test_cuda_backend.py checks them
against it. The loss of `cross_entropy` is a 0-d device array, as on every
backend: reading it (`Tensor.item()`) is the one place a step waits for the GPU.

Shapes of work. Elementwise kernels (here and the families in
cuda_elementwise.py) are grid-stride loops over the flat arrays: a fixed grid
of threads walks any size, so the simulator can run them with a handful of
threads. Row-wise kernels (sum over trailing axes,
log-softmax, cross-entropy) give each row a block whose threads stride
along the row and then combine their partial results by a tree in shared
memory: in step s the first s threads add the value s places up, halving s
until one total is left (log₂ of the block size steps, every step after a
syncthreads). Sums accumulate in float64, as the reference does.

Matrix products live in cuda_matmul.py, sampling in cuda_sampling.py; the
array helpers (transpose, broadcast, indexing, upload) in cuda_device.py.
"""
import math

import numpy as np
from numba import cuda, float64

from . import cuda_device, cuda_elementwise, cuda_matmul, cuda_sampling
from .base import KERNELS, Backend, backend_class
from .cpu_optim import adam_at, adam_constants
from .cuda_device import LAUNCH, empty, flat, full, grid, made, scatter_add, transpose, zeros
from .reference import _out_size, _pair, need_sgd_buffer  # geometry checked in functional

__all__ = list(KERNELS)


# --- elementwise: the families are in cuda_elementwise.py; these take a scalar --------

@cuda.jit
def _mul_scalar_kernel(x, s, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[i] * s


@cuda.jit
def _pow_scalar_kernel(x, p, fractional, out):
    # x ** p; a negative base with a fractional power is NaN (as in NumPy)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        v = x[i]
        if fractional and v < 0:
            out[i] = math.nan
        else:
            out[i] = math.pow(v, p)


@cuda.jit
def _add_rowvec_kernel(x, b, out):
    # y[m, n] = x[m, n] + b[n], flat index i = m·N + n
    N = b.size
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[i] + b[i % N]


def _unary(kernel, x, out, *scalars):
    out = empty(x.shape, x.dtype) if out is None else out
    if out.size:
        kernel[grid(out.size)](flat(x), *scalars, flat(out))
    return out


def mul_scalar(x, s, out=None):
    """x * s for a Python number s; the result keeps x's dtype."""
    return _unary(_mul_scalar_kernel, x, out, x.dtype.type(s))


def pow_scalar(x, p, out=None):
    """x ** p for a Python number p (a negative x with a fractional p gives NaN)."""
    return _unary(_pow_scalar_kernel, x, out, x.dtype.type(p), float(p) != math.floor(p))


def add_rowvec(x, b, out=None):
    """y[m, n] = x[m, n] + b[n]: the bias add of a layer."""
    out = empty(x.shape, x.dtype) if out is None else out
    if out.size:
        _add_rowvec_kernel[grid(out.size)](flat(x), b, flat(out))
    return out


# --- row-wise kernels: one block per row, tree reduction in shared memory ------------------

def _row_factory(RT):
    """Kernels for blocks of RT threads (RT a power of two, a compile-time constant)."""

    @cuda.jit(device=True)
    def tree(buf, tid, is_max):
        # buf[0] = Σ (or max) of buf[0:RT]: halve the active threads until one is left
        cuda.syncthreads()
        s = RT // 2
        while s > 0:
            if tid < s:
                if is_max:
                    if buf[tid + s] > buf[tid] or buf[tid + s] != buf[tid + s]:
                        buf[tid] = buf[tid + s]
                else:
                    buf[tid] += buf[tid + s]
            cuda.syncthreads()
            s //= 2
        total = buf[0]
        cuda.syncthreads()                # everyone has read buf[0] before it is reused
        return total

    @cuda.jit(device=True)
    def row_sum(x, r, buf, tid):
        # Σ_j x[r, j], the block's threads taking every RT-th j
        acc = 0.0
        for j in range(tid, x.shape[1], RT):
            acc += x[r, j]
        buf[tid] = acc
        return tree(buf, tid, False)

    @cuda.jit
    def sum_rows(x, out, scale):
        # out[r] = scale · Σ_j x[r, j]
        buf = cuda.shared.array(RT, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            total = row_sum(x, r, buf, tid)
            if tid == 0:
                out[r] = total * scale

    @cuda.jit(device=True)
    def log_softmax_row(x, r, out, buf, tid):
        # out[r] = x[r] - max - log Σ exp(x[r] - max); returns max + log Σ exp(...)
        m = -math.inf
        for j in range(tid, x.shape[1], RT):
            v = x[r, j]
            if v > m or v != v:
                m = v
        buf[tid] = m
        m = tree(buf, tid, True)
        acc = 0.0
        for j in range(tid, x.shape[1], RT):
            acc += math.exp(x[r, j] - m)
        buf[tid] = acc
        lse = m + math.log(tree(buf, tid, False))
        for j in range(tid, x.shape[1], RT):
            out[r, j] = x[r, j] - lse
        return lse

    @cuda.jit
    def log_softmax(x, out):
        buf = cuda.shared.array(RT, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            log_softmax_row(x, r, out, buf, tid)

    @cuda.jit
    def cross_entropy(x, t, logp, nll):
        # logp = log_softmax(x); nll[r] = -logp[r, t[r]] = lse - x[r, t[r]] (NaN for a bad t)
        buf = cuda.shared.array(RT, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            lse = log_softmax_row(x, r, logp, buf, tid)
            if tid == 0:
                k = t[r]
                nll[r] = lse - x[r, k] if 0 <= k < x.shape[1] else math.nan

    @cuda.jit
    def log_softmax_backward(logp, g, out):
        # dx = g - softmax · Σ_j g[r, j]
        buf = cuda.shared.array(RT, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, g.shape[0], cuda.gridDim.x):
            total = row_sum(g, r, buf, tid)
            for j in range(tid, g.shape[1], RT):
                out[r, j] = g[r, j] - math.exp(logp[r, j]) * total

    return dict(sum_rows=sum_rows, log_softmax=log_softmax, cross_entropy=cross_entropy,
                log_softmax_backward=log_softmax_backward)


def _rows(name):
    return made(_row_factory, LAUNCH["reduce_threads"])[name]


def _row_launch(rows):
    return max(1, min(rows, LAUNCH["max_blocks"])), LAUNCH["reduce_threads"]


@cuda.jit
def _sum_cols_kernel(x, rows, out):
    # out[s, c] = Σ x[r, c] over the s-th run of `rows` rows: one thread per (s, c), c the
    # fastest, so neighbouring threads read neighbouring columns
    S, R = out.shape
    for e in range(cuda.grid(1), S * R, cuda.gridsize(1)):
        s, c = e // R, e % R
        acc = 0.0
        for r in range(s * rows, min(x.shape[0], (s + 1) * rows)):
            acc += x[r, c]
        out[s, c] = acc


def _sum_cols(x, out):
    """out[c] = Σ_r x[r, c] for x (L, R), in two passes of ~√L rows a thread: one thread
    per column alone would walk all L rows (a conv's bias gradient: L = N·Ho·Wo = 100,352
    for 16 threads). Pass 1: float64 partial sums of runs of rows; pass 2 adds them."""
    L, R = x.shape
    rows = max(1, math.isqrt(L))
    S = -(-L // rows)
    parts = empty((S, R), np.float64)
    _sum_cols_kernel[grid(S * R)](x, rows, parts)
    _sum_cols_kernel[grid(R)](parts, S, out.reshape(1, R))


def sum(x, axis=None, keepdims=False):
    """Σ over `axis` (None, an int or a tuple of ints, negative allowed), in float64.
    Reduced axes in front (a bias gradient): column sums (_sum_cols). Otherwise the
    reduced axes are moved to the back and each row is summed by a block."""
    nd = x.ndim
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = tuple(sorted({a % max(nd, 1) for a in ((axis,) if np.isscalar(axis) else axis)}))
    kept = [d for d in range(nd) if d not in axes]
    R = math.prod(x.shape[d] for d in kept)
    L = math.prod(x.shape[d] for d in axes)
    out_shape = (tuple(1 if d in axes else x.shape[d] for d in range(nd)) if keepdims
                 else tuple(x.shape[d] for d in kept))
    out = empty(out_shape, x.dtype)
    if R == 0:
        return out
    if L == 0:
        return full(out_shape, 0, x.dtype)
    if axes == tuple(range(len(axes))) and R > 1:     # leading axes: column sums
        _sum_cols(x.reshape(L, R), flat(out))
    else:
        rows = transpose(x, kept + list(axes)).reshape(R, L)
        _rows("sum_rows")[_row_launch(R)](rows, flat(out), 1.0)
    return out


# --- softmax and cross-entropy -----------------------------------------------------------

def log_softmax(x):
    """logp[m, n] = x[m, n] - log Σ_k exp(x[m, k]), max-shifted."""
    out = empty(x.shape, x.dtype)
    if x.size:
        _rows("log_softmax")[_row_launch(x.shape[0])](x, out)
    return out


def log_softmax_backward(logp, grad):
    """dx = g - softmax · Σ_n g[:, n]."""
    out = empty(grad.shape, grad.dtype)
    if grad.size:
        _rows("log_softmax_backward")[_row_launch(grad.shape[0])](logp, grad, out)
    return out


def cross_entropy(logits, targets):
    """(loss, logp): loss = -mean_m logp[m, t_m] as a 0-d device array (no readback).
    A target outside [0, C) makes the loss NaN (device targets are not range-checked
    on the host: that would be a readback)."""
    M = logits.shape[0]
    logp = empty(logits.shape, logits.dtype)
    nll = empty((M,), np.float64)
    _rows("cross_entropy")[_row_launch(M)](logits, targets, logp, nll)
    loss = empty((), logits.dtype)
    _rows("sum_rows")[1, LAUNCH["reduce_threads"]](nll.reshape(1, M), flat(loss), 1.0 / M)
    return loss, logp


@cuda.jit
def _cross_entropy_backward_kernel(logp, t, gl, use_gl, scale, out):
    # d logits = (softmax - onehot(t)) · grad_loss / M, grad_loss = gl[0] or 1 (in scale);
    # NaN for a row whose target is outside [0, N), as its loss (targets are not read back)
    N = logp.shape[1]
    s = scale * gl[0] if use_gl else scale
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        m, n = i // N, i % N
        d = math.exp(logp[m, n])
        if n == t[m]:
            d -= 1
        if t[m] < 0 or t[m] >= N:
            d = math.nan
        out[m, n] = d * s


_dummy = {}


def cross_entropy_backward(logp, targets, grad_loss):
    """d logits = (softmax - onehot(t)) · grad_loss / M (grad_loss: a number or 0-d device array)."""
    M = logp.shape[0]
    out = empty(logp.shape, logp.dtype)
    if isinstance(grad_loss, (int, float, np.number)):
        if logp.dtype.str not in _dummy:         # a placeholder gl, made once per dtype
            _dummy[logp.dtype.str] = full((1,), 1, logp.dtype)
        gl, use_gl, scale = _dummy[logp.dtype.str], False, logp.dtype.type(float(grad_loss) / M)
    else:
        gl, use_gl, scale = flat(grad_loss), True, logp.dtype.type(1.0 / M)
    if out.size:
        _cross_entropy_backward_kernel[grid(out.size)](logp, targets, gl, use_gl, scale, out)
    return out


# --- convolution as a matrix product ------------------------------------------------------
# Windows are rectangular: kernel (kh, kw), stride (sh, sw), padding (ph, pw).

@cuda.jit
def _im2col_kernel(x, kh, kw, sh, sw, ph, pw, Ho, Wo, cols):
    # cols[(n, ho, wo), (c, i, j)] = x[n, c, ho·sh - ph + i, wo·sw - pw + j], 0 outside
    _, _, H, W = x.shape
    width = cols.shape[1]
    for e in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        row, col = e // width, e % width
        n, ho, wo = row // (Ho * Wo), (row // Wo) % Ho, row % Wo
        c, i, j = col // (kh * kw), (col // kw) % kh, col % kw
        h, w = ho * sh - ph + i, wo * sw - pw + j
        if 0 <= h < H and 0 <= w < W:
            cols[row, col] = x[n, c, h, w]
        else:
            cols[row, col] = 0


@cuda.jit
def _col2im_kernel(cols, kh, kw, sh, sw, ph, pw, Ho, Wo, x):
    # x[n, c, h, w] = Σ of the cols entries copied from (h, w): a gather per pixel
    # (h = ho·sh - ph + i, so ho = (h + ph - i) / sh when that divides), no atomics needed
    N, C, H, W = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        n, c, h, w = e // (C * H * W), (e // (H * W)) % C, (e // W) % H, e % W
        acc = cols[0, 0] * 0
        for i in range(kh):
            hs = h + ph - i
            if hs < 0 or hs % sh != 0 or hs // sh >= Ho:
                continue
            for j in range(kw):
                ws = w + pw - j
                if ws < 0 or ws % sw != 0 or ws // sw >= Wo:
                    continue
                acc += cols[(n * Ho + hs // sh) * Wo + ws // sw, (c * kh + i) * kw + j]
        x[n, c, h, w] = acc


def im2col(x, kh, kw, stride, padding):
    """x (N,C,H,W) -> cols (N·Ho·Wo, C·kh·kw); stride (sh, sw), padding (ph, pw)."""
    stride, padding = _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    cols = empty((N * Ho * Wo, C * kh * kw), x.dtype)
    if cols.size:
        _im2col_kernel[grid(cols.size)](x, kh, kw, *stride, *padding, Ho, Wo, cols)
    return cols


def col2im(cols, x_shape, kh, kw, stride, padding):
    """The adjoint of im2col: cols (N·Ho·Wo, C·kh·kw) -> (N,C,H,W)."""
    stride, padding = _pair(stride), _pair(padding)
    N, C, H, W = x_shape
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    x = empty(tuple(x_shape), cols.dtype)
    if x.size:
        _col2im_kernel[grid(x.size)](cols, kh, kw, *stride, *padding, Ho, Wo, x)
    return x


# --- max pooling ---------------------------------------------------------------------------

@cuda.jit
def _max_pool_kernel(x, kh, kw, sh, sw, ph, pw, out, argmax):
    # out = max of the kh×kw window at (ho·sh - ph, wo·sw - pw) over its in-image positions,
    # the first maximum in row-major order (a NaN counts as the maximum); argmax = h·W + w
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, c, ho, wo = e // (C * Ho * Wo), (e // (Ho * Wo)) % C, (e // Wo) % Ho, e % Wo
        best = x[n, c, 0, 0]
        where = -1
        for i in range(kh):
            h = ho * sh - ph + i
            if h < 0 or h >= H:
                continue
            for j in range(kw):
                w = wo * sw - pw + j
                if w < 0 or w >= W:
                    continue
                v = x[n, c, h, w]
                if where < 0 or (best == best and (v > best or v != v)):
                    best = v
                    where = h * W + w
        out[n, c, ho, wo] = best
        argmax[n, c, ho, wo] = where


@cuda.jit
def _max_pool_backward_kernel(grad, argmax, HW, dx):
    # dx[plane].flat[argmax] += grad: windows that share a winner add up, hence atomics
    per_plane = grad.size // max(dx.size // HW, 1)
    for e in range(cuda.grid(1), grad.size, cuda.gridsize(1)):
        cuda.atomic.add(dx, (e // per_plane) * HW + argmax[e], grad[e])


def max_pool2d(x, kernel, stride, padding):
    """x (N,C,H,W) -> (out (N,C,Ho,Wo), argmax int64 (N,C,Ho,Wo)); kernel (kh, kw),
    stride (sh, sw), padding (ph, pw)."""
    (kh, kw), stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    out = empty((N, C, Ho, Wo), x.dtype)
    argmax = empty((N, C, Ho, Wo), np.int64)
    if out.size:
        _max_pool_kernel[grid(out.size)](x, kh, kw, *stride, *padding, out, argmax)
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape):
    """grad (N,C,Ho,Wo) -> dx (N,C,H,W), each gradient sent to its window's winner."""
    N, C, H, W = x_shape
    dx = zeros(tuple(x_shape), grad.dtype)
    if grad.size:
        _max_pool_backward_kernel[grid(grad.size)](flat(grad), flat(argmax), H * W, flat(dx))
    return dx


# --- indexing and the optimizer ---------------------------------------------------------------

def index_backward(grad, index, shape):
    """zeros(shape) with grad scatter-added at `index` (a host index: ints, slices, arrays)."""
    return scatter_add(grad, index, tuple(shape))


@cuda.jit
def _sgd_kernel(param, grad, buf, has_buf, lr, mu, nesterov, wd):
    # g = grad + λ·p;  buf = μ·buf + g;  g = g + μ·buf (nesterov) or buf;  p -= lr·g
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + wd * param[i] if wd != 0 else grad[i]
        if has_buf:
            b = mu * buf[i] + g
            buf[i] = b
            g = g + mu * b if nesterov else b
        param[i] = param[i] - lr * g


def sgd_update(param, grad, buf, lr, momentum, nesterov, weight_decay):
    """One SGD step in place (PyTorch's rule, dampening 0); `buf` is None when momentum is 0."""
    need_sgd_buffer(buf, momentum)
    t = param.dtype.type
    if param.size:
        has_buf = momentum != 0
        _sgd_kernel[grid(param.size)](flat(param), flat(grad), flat(buf if has_buf else param),
                                      has_buf, t(lr), t(momentum),
                                      bool(nesterov), t(weight_decay))


_adam_at = cuda.jit(device=True, inline="always")(adam_at)


@cuda.jit
def _adam_kernel(param, grad, m, v, decay, wd, b1c, b2, b2c, step, bc2s, eps):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):   # as the CPU's
        _adam_at(i, param, grad, m, v, decay, wd, b1c, b2, b2c, step, bc2s, eps)


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                decoupled):
    """One Adam/AdamW step in place (PyTorch's rule; see base.Backend.adam_update)."""
    if param.size:
        _adam_kernel[grid(param.size)](flat(param), flat(grad), flat(exp_avg), flat(exp_avg_sq),
                                       *adam_constants(param.dtype.type, step, lr, beta1, beta2,
                                                       eps, weight_decay, decoupled))

# Defined here, or in the files named: the CudaBackend's table.
CudaBackend = backend_class("cuda", Backend, {
    **vars(cuda_device), **vars(cuda_elementwise), **vars(cuda_matmul), **vars(cuda_sampling),
    **globals()})
BACKEND = CudaBackend()


def __getattr__(name):  # cuda.add etc.: the kernels the base derives from the families
    return getattr(BACKEND, name)
