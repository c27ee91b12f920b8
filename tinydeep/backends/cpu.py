"""CpuBackend: the kernels as Numba CPU code, `@njit(parallel=True)` loops split
over cores. It inherits ReferenceBackend and overrides what Numba makes faster:
the kernels here, the elementwise families (cpu_elementwise.py), matmul
(cpu_matmul.py), the direct convolution (cpu_conv.py), sampling (cpu_sampling.py)
and the optimizer updates (cpu_optim.py); the rest (index_backward, the array
helpers) is the reference's NumPy.

Every kernel computes what `reference.py` says it means (the parity tests
hold the two together); read the reference first for the math, then here for
how it is laid out as loops.

Each kernel comes in two parts:
  _name_kernel  a module-level `@njit(parallel=True, cache=True)` function on
                C-contiguous arrays, its outer loop a `prange` whose iterations
                write disjoint parts of the result (so threads never race);
  name          a thin Python wrapper that makes inputs contiguous where the
                kernel needs it, allocates the result and calls the kernel.
                (Inputs were checked at the op's entry: dtypes are not checked again.)
Elementwise kernels see their arrays flattened to 1-D: one `prange` over all
elements, which Numba hands out to threads in contiguous blocks. (A
`@vectorize(target='parallel')` ufunc would call the kernel once per element:
ten times slower, see shared/notes/kernels.md.)

Kernels compile on first use for each dtype (float32, float64) and are
cached on disk (`cache=True`), so later runs load them in milliseconds.
"""
import math

import numpy as np
from numba import njit, prange

from . import cpu_conv, cpu_elementwise, cpu_math, cpu_matmul, cpu_optim, cpu_sampling, scalar_ops
from . import cpu_memory  # noqa: F401  (imported for its effect: freed arrays are reused)
from .base import KERNELS, backend_class
from .reference import ReferenceBackend, _out_size, _pair, _result

__all__ = list(KERNELS)


# --- wrapper helpers ------------------------------------------------------------------

def _flat(a):
    """A 1-D C-contiguous view of `a` (a copy only when `a` is not contiguous)."""
    return np.ascontiguousarray(a).reshape(-1)


# --- elementwise: the families are in cpu_elementwise.py; these take a scalar ---------

@njit(parallel=True, cache=True)
def _mul_scalar_kernel(x, s, y):
    # y = s x
    for i in prange(y.size):
        y[i] = x[i] * s


@njit(parallel=True, cache=True)
def _pow_scalar_kernel(x, p, y):
    # y = x^p; x² and x¹ as products (exact, as pow is there), which vectorize: a pow call
    # per element is ~30x slower. (The test on p is outside the loops.)
    if p == 2:
        for i in prange(y.size):
            y[i] = x[i] * x[i]
    elif p == 1:
        for i in prange(y.size):
            y[i] = x[i]
    else:
        for i in prange(y.size):
            y[i] = x[i] ** p


@njit(parallel=True, cache=True)
def _add_rowvec_kernel(x, b, y):
    # y[m, n] = x[m, n] + b[n]
    M, N = x.shape
    for m in prange(M):
        for n in range(N):
            y[m, n] = x[m, n] + b[n]


def mul_scalar(x, s, out=None):
    y = _result(out, x)
    _mul_scalar_kernel(_flat(x), x.dtype.type(s), y.reshape(-1))
    return y


def pow_scalar(x, p, out=None):
    y = _result(out, x)
    _pow_scalar_kernel(_flat(x), x.dtype.type(p), y.reshape(-1))
    return y


def add_rowvec(x, b, out=None):
    y = _result(out, x)
    _add_rowvec_kernel(np.ascontiguousarray(x), np.ascontiguousarray(b), y)
    return y


# --- sum --------------------------------------------------------------------------------

_SUM_PART = 8192  # elements summed by one task before partial sums are combined


# A row's max and sum as reductions LLVM vectorizes: the max by maxnum (cpu_math), the sum in
# float64 lanes that LLVM may reorder. A NaN in the row still reaches the result: through
# its exp, in the sum.
@njit(cache=True)
def _row_max(r):
    mx = r[0]
    for n in range(np.uint64(1), np.uint64(r.size)):
        mx = cpu_math.maxnum(mx, r[n])
    return mx


@njit(fastmath={"reassoc"}, cache=True)
def _row_sum(r):
    s = 0.0
    for n in range(np.uint64(r.size)):
        s += r[n]
    return s


@njit(parallel=True, cache=True)
def _sum_kernel(x, rows_per_part, parts):
    # parts[p, o, i] = Σ_r x[o, r, i] over the rows r of part p, for x (O, R, I): the R rows
    # are cut into parts of `rows_per_part`, one task sums one part of one o in float64
    # (parts starts at 0), and sum() adds the parts: parallel even when O = 1, and the
    # rounding error grows with the part length, not with R. (One parallel loop: each one
    # more costs about a second of compiling on a first run.)
    O, R, I = x.shape
    xf = x.reshape(-1)
    for task in prange(parts.shape[0] * O):
        p, o = task // O, task % O
        r0 = p * rows_per_part
        r1 = min(r0 + rows_per_part, R)
        if I == 1:  # the last axis: a row in vector lanes
            parts[p, o, 0] = _row_sum(xf[o * R + r0:o * R + r1])
        else:
            acc = parts[p, o]
            for r in range(r0, r1):
                row = x[o, r]
                for i in range(I):
                    acc[i] += row[i]


_SUM_COLS = 256  # columns one task of _sum_rows_kernel sums (its float64 accumulators: 2 KiB)


@njit(parallel=True, cache=True)
def _sum_rows_kernel(x, out):
    # out[i] = Σ_r x[r, i]  for x (R, I): a bias gradient. The columns are cut into
    # blocks of _SUM_COLS, one task per block, each summed straight down the rows in
    # float64 accumulators that stay in L1 -- no partial-sum array, one pass over x.
    # (Indices are unsigned: no wrap-around checks, so the inner loop vectorizes.)
    R, I = x.shape
    for blk in prange((I + _SUM_COLS - 1) // _SUM_COLS):
        i0 = np.uint64(blk * _SUM_COLS)
        n = np.uint64(min(I - blk * _SUM_COLS, _SUM_COLS))
        acc = np.zeros(_SUM_COLS)
        for r in range(R):
            for i in range(n):
                acc[i] += x[np.uint64(r), i0 + i]
        for i in range(n):
            out[i0 + i] = acc[i]


@njit(parallel=True, cache=True)
def _sum_middle_kernel(x, out):
    # out[k] = Σ_o Σ_i x[o, k, i]  for x (O, K, I): every axis summed but a middle run
    # (per-channel sums of NCHW: O = N, K = C, I = H·W). One task per k, its O runs of I
    # contiguous elements each summed in vector lanes.
    for k in prange(x.shape[1]):
        s = 0.0
        for o in range(x.shape[0]):
            s += _row_sum(x[o, k])
        out[k] = s


def _runs(axes):
    """Sorted axes -> runs of adjacent axes as (start, stop): (0, 1, 3) -> [(0, 2), (3, 4)]."""
    runs = []
    for a in axes:
        if runs and runs[-1][1] == a:
            runs[-1][1] = a + 1
        else:
            runs.append([a, a + 1])
    return runs


def sum(x, axis=None, keepdims=False):
    """Σ over `axis` (None, an int or a tuple; negative ints count from the end).
    Each run of adjacent reduced axes is one (outer, reduced, inner) reduction;
    intermediate results stay float64, the last one is rounded to x's dtype."""
    if axis is None:
        axes = tuple(range(x.ndim))
    else:
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        axes = tuple(sorted({int(a) % max(x.ndim, 1) for a in axes}))
    y = np.asarray(x, order="C")  # (np.ascontiguousarray would make a 0-d x 1-d)
    if not axes:
        return y.copy() if y is x else y
    runs = _runs(axes)
    R = math.prod(y.shape[:len(axes)])
    if runs == [[0, len(axes)]] and len(axes) < y.ndim and y.size and R <= _SUM_PART:
        # Leading axes of at most _SUM_PART rows (a bias gradient): one pass, summed
        # along rows no longer than the parts below, so the rounding is as good.
        r = np.empty(y.shape[len(axes):], dtype=x.dtype)
        _sum_rows_kernel(y.reshape(R, -1), r.reshape(-1))
        return r.reshape((1,) * len(axes) + r.shape) if keepdims else r
    kept = math.prod(y.shape[runs[0][1]:runs[-1][0]])
    if (len(runs) == 2 and runs[0][0] == 0 and runs[-1][1] == y.ndim and y.size
            and kept >= cpu_matmul._threads()):
        # One kept run between summed ones (batch-norm statistics, a per-channel
        # gradient): one pass, a task per kept element.
        r = np.empty(kept, dtype=x.dtype)
        _sum_middle_kernel(y.reshape(math.prod(y.shape[:runs[0][1]]), kept, -1), r)
        y = r.reshape(tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
        runs = []
    for k, (start, stop) in enumerate(runs):
        shape = y.shape
        O, R, I = (math.prod(shape[:start]), math.prod(shape[start:stop]),
                   math.prod(shape[stop:]))
        rows_per_part = max(1, _SUM_PART // max(I, 1))
        parts = np.zeros((-(-R // rows_per_part), O, I))
        _sum_kernel(y.reshape(O, R, I), rows_per_part, parts)
        r = parts[0] if len(parts) == 1 else parts.sum(axis=0)
        if k == len(runs) - 1:
            r = r.astype(x.dtype, copy=False)
        y = r.reshape(shape[:start] + (1,) * (stop - start) + shape[stop:])
    if keepdims:
        return y
    return y.reshape(tuple(n for d, n in enumerate(x.shape) if d not in axes))


# --- softmax and cross-entropy ------------------------------------------------------------

@njit(parallel=True, cache=True, fastmath={"contract"})  # (cpu_math's exp)
def _log_softmax_kernel(x, logp):
    # logp[m, n] = x[m, n] - (max_m + log Σ_k exp(x[m, k] - max_m)), one row per task;
    # the row of exps is kept in logp's row to be summed. (scalar_ops.exp: cpu_math's for
    # float32.)
    for m in prange(x.shape[0]):
        r, o = x[m], logp[m]
        mx = _row_max(r)
        for n in range(np.uint64(r.size)):
            o[n] = scalar_ops.exp(r[n] - mx)
        shift = mx + math.log(_row_sum(o))
        for n in range(np.uint64(r.size)):
            o[n] = r[n] - shift


@njit(parallel=True, cache=True, fastmath={"contract"})  # (cpu_math's exp)
def _log_softmax_backward_kernel(logp, grad, dx):
    # dx[m, n] = grad[m, n] - exp(logp[m, n]) · Σ_k grad[m, k]
    for m in prange(logp.shape[0]):
        lp, g, d = logp[m], grad[m], dx[m]
        g_sum = _row_sum(g)
        for n in range(np.uint64(lp.size)):
            d[n] = g[n] - scalar_ops.exp(lp[n]) * g_sum


@njit(parallel=True, cache=True, fastmath={"contract"})  # (cpu_math's exp)
def _cross_entropy_backward_kernel(logp, targets, scale, dz):
    # dz[m, n] = (softmax[m, n] - [n = t_m]) · scale,  scale = grad_loss / M
    M, N = logp.shape
    for m in prange(M):
        for n in range(np.uint64(N)):
            dz[m, n] = scalar_ops.exp(logp[m, n]) * scale
        t = targets[m]
        dz[m, t] = (scalar_ops.exp(logp[m, t]) - 1) * scale


_MIDDLE_LANES = 256  # positions i one task of the middle-axis softmax takes (float64 sums: 2 KiB)


@njit(parallel=True, cache=True, fastmath={"contract"})  # (cpu_math's exp)
def _log_softmax_middle_kernel(x, logp):
    # logp[o, k, i] = x[o, k, i] - (m + log Σ_k exp(x[o, k, i] - m)), m = max_k x[o, k, i]:
    # over the middle axis of x (O, K, I) (channels of NCHW: O = N, I = H·W). A task per o
    # and block of positions i, each pass along a contiguous run of i (vector lanes); the
    # exps are kept in logp to be summed in float64, as in the row kernel.
    O, K, I = x.shape
    blocks = (I + _MIDDLE_LANES - 1) // _MIDDLE_LANES
    for t in prange(O * blocks):
        o, i0 = t // blocks, np.uint64(t % blocks * _MIDDLE_LANES)
        n = np.uint64(min(_MIDDLE_LANES, I - i0))
        mx = x[o, 0, i0:i0 + n].copy()
        for k in range(1, K):
            r = x[o, k]
            for i in range(n):
                mx[i] = max(mx[i], r[i0 + i])
        s = np.zeros(n)
        for k in range(K):
            r, e = x[o, k], logp[o, k]
            for i in range(n):
                e[i0 + i] = scalar_ops.exp(r[i0 + i] - mx[i])
            for i in range(n):      # (a loop of its own: fused with the exps, 1.6x slower)
                s[i] += e[i0 + i]
        for i in range(n):
            s[i] = mx[i] + math.log(s[i])
        for k in range(K):
            r, e = x[o, k], logp[o, k]
            for i in range(n):
                e[i0 + i] = r[i0 + i] - s[i]


@njit(parallel=True, cache=True, fastmath={"contract"})  # (cpu_math's exp)
def _log_softmax_middle_backward_kernel(logp, g, dx):
    # dx[o, k, i] = g[o, k, i] - exp(logp[o, k, i]) · Σ_k g[o, k, i], the sums in float64
    O, K, I = logp.shape
    blocks = (I + _MIDDLE_LANES - 1) // _MIDDLE_LANES
    for t in prange(O * blocks):
        o, i0 = t // blocks, np.uint64(t % blocks * _MIDDLE_LANES)
        n = np.uint64(min(_MIDDLE_LANES, I - i0))
        s = np.zeros(n)
        for k in range(K):
            r = g[o, k]
            for i in range(n):
                s[i] += r[i0 + i]
        for k in range(K):
            r, lp, d = g[o, k], logp[o, k], dx[o, k]
            for i in range(n):
                d[i0 + i] = r[i0 + i] - scalar_ops.exp(lp[i0 + i]) * s[i]


def _into_new(kernel, *arrays):
    """kernel(*arrays made C-contiguous, out) into a new out shaped like arrays[0]."""
    out = np.empty(arrays[0].shape, dtype=arrays[0].dtype)
    kernel(*[np.ascontiguousarray(a) for a in arrays], out)
    return out


def log_softmax(x):
    return _into_new(_log_softmax_kernel, x)


def log_softmax_backward(logp, grad):
    return _into_new(_log_softmax_backward_kernel, logp, grad)


def log_softmax_middle(x):
    """log_softmax over axis 1 of x (O, K, I): beside the contract (whose kernel takes rows),
    for softmax over a dim that is not last (tensor_api), with no moving of axes."""
    return _into_new(_log_softmax_middle_kernel, x)


def log_softmax_middle_backward(logp, grad):
    return _into_new(_log_softmax_middle_backward_kernel, logp, grad)


def cross_entropy(logits, targets):
    """-mean_m logp[m, t_m]; the M picked values are summed in float64."""
    logp = log_softmax(logits)
    picked = logp[np.arange(logp.shape[0]), targets]
    return np.asarray(-np.mean(picked, dtype=np.float64), dtype=logits.dtype), logp


def cross_entropy_backward(logp, targets, grad_loss):
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    dz = np.empty(logp.shape, dtype=logp.dtype)
    scale = logp.dtype.type(grad_loss / logp.shape[0])
    _cross_entropy_backward_kernel(np.ascontiguousarray(logp), targets, scale, dz)
    return dz


# --- batch norm: a task per channel, whose N·I values (~0.4 MB in a small CNN) stay in the
# core's L2 between the passes ------------------------------------------------------------

@njit(fastmath={"reassoc"}, cache=True)
def _row_dot_centered(a, ma, r, m):
    # Σ (a[k] - ma)·(r[k] - m) in float64 lanes
    s = 0.0
    for n in range(np.uint64(r.size)):
        s += (a[n] - ma) * (r[n] - m)
    return s


@njit(parallel=True, cache=True)
def _batch_norm_kernel(x, weight, bias, eps, y, mean, var):
    # mean, var over (n, i) in float64, two passes; y = (x - mean)·scale + bias,
    # scale = weight/√(var + ε), as base.Backend.batch_norm (x·scale + (bias - mean·scale)
    # left ~1e-4 of rounding where a float32 row is constant and scale is 1/√ε ≈ 316)
    N, C, I = x.shape
    T = x.dtype.type
    for c in prange(C):
        m = 0.0
        for n in range(N):
            m += _row_sum(x[n, c])
        m /= N * I
        v = 0.0
        for n in range(N):
            v += _row_dot_centered(x[n, c], m, x[n, c], m)
        v /= N * I
        scale = weight[c] / math.sqrt(v + eps)
        a, b, mt = T(scale), T(bias[c]), T(m)
        for n in range(N):
            r, o = x[n, c], y[n, c]
            for i in range(np.uint64(I)):
                o[i] = (r[i] - mt) * a + b
        mean[c], var[c] = m, v


@njit(parallel=True, cache=True)
def _batch_norm_backward_kernel(x, g, mean, var, weight, eps, dx, dweight, dbias):
    # db = Σ g, Σ g·(x - mean), dweight = that·invstd; then PyTorch's CPU form of
    # dx = weight·invstd·(g - db/n - (x - mean)·invstd²·Σ g·(x - mean)/n)
    N, C, I = x.shape
    T = x.dtype.type
    for c in prange(C):
        m, invstd = np.float64(mean[c]), 1 / math.sqrt(var[c] + eps)
        sg = sgx = 0.0
        for n in range(N):
            sg += _row_sum(g[n, c])
            sgx += _row_dot_centered(g[n, c], 0.0, x[n, c], m)
        k, gm, a = T(sgx * invstd * invstd / (N * I)), T(sg / (N * I)), T(weight[c] * invstd)
        mt = T(m)
        for n in range(N):
            r, gr, d = x[n, c], g[n, c], dx[n, c]
            for i in range(np.uint64(I)):
                d[i] = (gr[i] - gm - (r[i] - mt) * k) * a
        dweight[c], dbias[c] = sgx * invstd, sg


def _channel_runs(a):
    """x (N, C, I) with each channel's values in runs: as it is, or for I = 1 (BatchNorm1d's
    (N, C)) transposed to (1, C, N), one run per channel instead of N strided values."""
    return np.ascontiguousarray(a if a.shape[2] > 1 else a.reshape(a.shape[0], -1).T[None])


def _from_channel_runs(a, shape):
    return a if a.shape == shape else a[0].T.reshape(shape)


def batch_norm(x, weight, bias, eps):
    xr = _channel_runs(x)
    y = np.empty(xr.shape, x.dtype)
    mean, var = np.empty(x.shape[1], x.dtype), np.empty(x.shape[1], x.dtype)
    _batch_norm_kernel(xr, weight, bias, eps, y, mean, var)
    return _from_channel_runs(y, x.shape), mean, var


def batch_norm_backward(x, grad, mean, var, weight, eps):
    xr, gr = _channel_runs(x), _channel_runs(grad)
    dx = np.empty(xr.shape, x.dtype)
    dweight, dbias = np.empty(x.shape[1], x.dtype), np.empty(x.shape[1], x.dtype)
    _batch_norm_backward_kernel(xr, gr, mean, var, weight, eps, dx, dweight, dbias)
    return _from_channel_runs(dx, x.shape), dweight, dbias


# --- convolution as a matrix product -----------------------------------------------------

# The conv and pool kernels index flat arrays with unsigned offsets: with signed
# indices Numba tests every access for a negative (wrap-around) index, which
# keeps LLVM from simplifying the short inner loops (3-5x slower here).
_u = np.uint64


@njit(cache=True, inline="always")
def _inside(o, stride, padding, k, size):
    # The window at o·s - p: its start, and the taps t in [lo, hi) that land inside
    # the image, 0 <= o·s - p + t < size (hi may be <= lo when none does).
    start = o * stride - padding
    return start, max(0, -start), min(k, size - start)


@njit(parallel=True, cache=True)
def _im2col_kernel(x, kh, kw, sh, sw, ph, pw, Ho, Wo, cols):
    # cols[(n, ho, wo), (c, i, j)] = x[n, c, ho·sh - ph + i, wo·sw - pw + j], 0 outside;
    # one task per (n, ho) fills Wo whole rows of cols, front to back. The taps
    # inside the image are worked out once per window, so the inner loops are
    # plain copies with no bounds test per element.
    N, C, H, W = x.shape
    K = C * kh * kw
    xf, cf = x.reshape(-1), cols.reshape(-1)
    for task in prange(N * Ho):
        n, ho = task // Ho, task % Ho
        h0, i_lo, i_hi = _inside(ho, sh, ph, kh, H)
        for wo in range(Wo):
            w0, j_lo, j_hi = _inside(wo, sw, pw, kw, W)
            j_hi = max(j_lo, j_hi)
            row = (task * Wo + wo) * K
            for c in range(C):
                for i in range(kh):
                    at = _u(row + (c * kh + i) * kw)
                    if i < i_lo or i >= i_hi:
                        for j in range(_u(kw)):
                            cf[at + j] = 0
                        continue
                    src = _u(((n * C + c) * H + h0 + i) * W + w0)
                    for j in range(_u(j_lo)):
                        cf[at + j] = 0
                    for j in range(_u(j_lo), _u(j_hi)):
                        cf[at + j] = xf[src + j]
                    for j in range(_u(j_hi), _u(kw)):
                        cf[at + j] = 0


@njit(parallel=True, cache=True)
def _col2im_kernel(cols, kh, kw, sh, sw, ph, pw, Ho, Wo, dx):
    # dx[n, c, h, w] += cols[(n, ho, wo), (c, i, j)] wherever h = ho·sh - ph + i, w = wo·sw - pw + j.
    # One task per image n: no two tasks write the same pixel. The task reads its
    # rows of cols front to back and adds each into dx[n], which stays in cache.
    N, C, H, W = dx.shape
    K = C * kh * kw
    cf, df = cols.reshape(-1), dx.reshape(-1)
    for n in prange(N):
        for ho in range(Ho):
            h0, i_lo, i_hi = _inside(ho, sh, ph, kh, H)
            for wo in range(Wo):
                w0, j_lo, j_hi = _inside(wo, sw, pw, kw, W)
                row = ((n * Ho + ho) * Wo + wo) * K
                for c in range(C):
                    for i in range(i_lo, i_hi):
                        src = _u(row + (c * kh + i) * kw)
                        dst = _u(((n * C + c) * H + h0 + i) * W + w0)
                        for j in range(_u(j_lo), _u(j_hi)):
                            df[dst + j] += cf[src + j]


def im2col(x, kh, kw, stride, padding):
    N, C, H, W = x.shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    cols = cpu_matmul.empty((N * Ho * Wo, C * kh * kw), x.dtype)   # recycled when big
    _im2col_kernel(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, Ho, Wo, cols)
    return cols


def col2im(cols, x_shape, kh, kw, stride, padding):
    N, C, H, W = x_shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    dx = np.zeros((N, C, H, W), dtype=cols.dtype)
    _col2im_kernel(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, Ho, Wo, dx)
    return dx


# --- max pooling ---------------------------------------------------------------------------

@njit(inline="always")
def _window_max(xf, x_at, W, h_lo, h_hi, w_lo, w_hi):
    # (max, h·W + w of the first max) of the plane xf[x_at:] over rows [h_lo, h_hi) and
    # columns [w_lo, w_hi), scanned in row-major order (a NaN wins)
    best_at = _u(h_lo * W + w_lo)
    best = xf[_u(x_at) + best_at]
    for h in range(h_lo, h_hi):
        for at in range(_u(h * W + w_lo), _u(h * W + w_hi)):
            v = xf[_u(x_at) + at]
            if v > best or (v != v and best == best):
                best = v
                best_at = at
    return best, best_at


@njit(parallel=True, cache=True)
def _max_pool2d_kernel(x, kh, kw, sh, sw, ph, pw, out, argmax):
    # out = max over the kh×kw window at (ho·sh - ph, wo·sw - pw), argmax = h·W + w of the first
    # maximum in row-major order (a NaN wins). Padding (-inf) never beats a real element,
    # so the scan covers only the window's part inside the image, starting from its
    # first real element. One task per plane (n, c).
    N, C, H, W = x.shape
    _, _, Ho, Wo = out.shape
    xf, of, af = x.reshape(-1), out.reshape(-1), argmax.reshape(-1)
    for plane in prange(N * C):
        x_at, o_at = plane * H * W, plane * Ho * Wo
        for ho in range(Ho):
            h0, i_lo, i_hi = _inside(ho, sh, ph, kh, H)
            for wo in range(Wo):
                w0, j_lo, j_hi = _inside(wo, sw, pw, kw, W)
                best, best_at = _window_max(xf, x_at, W, h0 + i_lo, h0 + i_hi, w0 + j_lo,
                                            w0 + j_hi)
                of[_u(o_at + ho * Wo + wo)] = best
                af[_u(o_at + ho * Wo + wo)] = best_at


@njit(parallel=True, cache=True)
def _max_pool2x2_kernel(x, out, argmax):
    # The same for k = stride = 2, padding 0, the common case: every window lies inside
    # the image, and with its size a constant LLVM unrolls the scan into selects
    # instead of branches that the CPU mispredicts half the time (3-6x faster).
    N, C, H, W = x.shape
    _, _, Ho, Wo = out.shape
    xf, of, af = x.reshape(-1), out.reshape(-1), argmax.reshape(-1)
    for plane in prange(N * C):
        x_at, o_at = plane * H * W, plane * Ho * Wo
        for ho in range(Ho):
            for wo in range(Wo):
                best, best_at = _window_max(xf, x_at, W, 2 * ho, 2 * ho + 2, 2 * wo, 2 * wo + 2)
                of[_u(o_at + ho * Wo + wo)] = best
                af[_u(o_at + ho * Wo + wo)] = best_at


@njit(parallel=True, cache=True)
def _max_pool2d_backward_kernel(grad, argmax, dx):
    # dx[plane, argmax[plane, q]] += grad[plane, q], planes (n, c) flattened; one task per plane,
    # which zeroes its plane first, while it is in cache (not a whole-array zeros pass before)
    planes, Q = grad.shape
    for plane in prange(planes):
        dx[plane, :] = 0
        for q in range(Q):
            dx[plane, argmax[plane, q]] += grad[plane, q]


def max_pool2d(x, kernel, stride, padding):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    if kh == kw == sh == sw == 2 and ph == pw == 0:
        _max_pool2x2_kernel(np.ascontiguousarray(x), out, argmax)
    else:
        _max_pool2d_kernel(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, out, argmax)
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape):
    N, C, H, W = x_shape
    dx = np.empty((N * C, H * W), dtype=grad.dtype)
    _max_pool2d_backward_kernel(np.ascontiguousarray(grad).reshape(N * C, -1),
                                np.ascontiguousarray(argmax).reshape(N * C, -1), dx)
    return dx.reshape(N, C, H, W)


# Defined here, or in the files named; the rest inherited from the reference.
CpuBackend = backend_class("cpu", ReferenceBackend, {
    **vars(cpu_elementwise), **vars(cpu_matmul), **vars(cpu_optim), **vars(cpu_sampling),
    **globals()})
# Beside the contract, used where a backend has them (elsewhere the contract's kernels): the
# direct convolution rungs (functional.Conv2d, where prefer_direct says so for the shape;
# else im2col + matmul), batches of products in one call (tensor.MatMul's N-D case; else
# one each), softmax over a middle axis (functional.LogSoftmax / Softmax; else rows).
for _f in (cpu_conv.conv2d_forward, cpu_conv.conv2d_backward_input,
           cpu_conv.conv2d_backward_weight, cpu_conv.conv2d_backward_bias, cpu_conv.prefer_direct,
           cpu_matmul.matmul_batched, log_softmax_middle, log_softmax_middle_backward):
    setattr(CpuBackend, _f.__name__, staticmethod(_f))
BACKEND = CpuBackend()


def __getattr__(name):  # cpu.add, cpu.index_backward...: the kernels it inherits
    return getattr(BACKEND, name)

