"""ReferenceBackend: the meaning of every kernel and helper of the contract (backends/base.py).

This module is the oracle: `cpu.py` must compute the same numbers (to a stated tolerance, see
tests/test_backend_parity.py). Each kernel is the shortest NumPy that states its math.

Arrays are float32 or float64, of any layout; a result has the dtype of the
inputs. `out`, where offered, is an optional preallocated C-contiguous result,
which is then returned. Shapes are checked by the layers above, not here.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import reference_sampling
from .base import KERNELS, Backend, backend_class
from .scalar_ops import BINARY, UNARY, check_op

__all__ = list(KERNELS)


# --- matrix products -------------------------------------------------------------

def matmul(a, b, out=None):
    """C = A B with A (M,K), B (K,N)."""
    return np.matmul(a, b, out=out)


def matmul_nt(a, b, out=None):
    """C = A Bᵀ with A (M,K), B (N,K): the layer's x Wᵀ."""
    return np.matmul(a, b.T, out=out)


def matmul_tn(a, b, out=None):
    """C = Aᵀ B with A (K,M), B (K,N): the weight gradient gᵀ x."""
    return np.matmul(a.T, b, out=out)


# --- elementwise -------------------------------------------------------------------

def _result(out, like):
    """Where the result goes: `out`, or a new C-ordered array shaped like `like`.
    (Without it a ufunc returns a NumPy scalar for 0-d inputs, and keeps F order.)"""
    return np.empty(like.shape, dtype=like.dtype) if out is None else out


# The families apply a scalar function of scalar_ops.py to whole arrays; IEEE results
# (inf, NaN) without NumPy's warnings, as the compiled loops give them.

@np.errstate(all="ignore")
def unary(op, x, out=None):
    y = _result(out, x)
    y[...] = check_op(UNARY, op)[0](x)
    return y


@np.errstate(all="ignore")
def unary_backward(op, x, y, grad, out=None):
    dx = _result(out, grad)
    dx[...] = check_op(UNARY, op)[1](x, y, grad)
    return dx


@np.errstate(all="ignore")
def binary(op, a, b, out=None):
    y = _result(out, a)
    y[...] = check_op(BINARY, op)[0](a, b)
    return y


@np.errstate(all="ignore")
def binary_backward(op, a, b, y, grad):
    _, fa, fb = check_op(BINARY, op)
    da, db = _result(None, grad), _result(None, grad)
    da[...], db[...] = fa(a, b, y, grad), fb(a, b, y, grad)
    return da, db


def mul_scalar(x, s, out=None):
    """x * s for a Python number s; the result keeps x's dtype."""
    return np.multiply(x, x.dtype.type(s), out=_result(out, x))


def pow_scalar(x, p, out=None):
    """x ** p for a Python number p (a negative x with a fractional p gives NaN)."""
    return np.power(x, x.dtype.type(p), out=_result(out, x))


def add_rowvec(x, b, out=None):
    """y[m, n] = x[m, n] + b[n]: the bias add of a layer."""
    return np.add(x, b[None, :], out=_result(out, x))


# --- reduction -----------------------------------------------------------------------

def sum(x, axis=None, keepdims=False):
    """Σ over `axis` (None: all axes; an int or a tuple of ints, negative allowed).
    Accumulates in float64, so float32 sums of millions of elements stay accurate."""
    total = np.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64)
    return np.asarray(total).astype(x.dtype)


# --- softmax and cross-entropy --------------------------------------------------------

def log_softmax(x):
    """logp[m, n] = x[m, n] - log Σ_k exp(x[m, k]), each row shifted by its max first
    so that exp never overflows."""
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def log_softmax_backward(logp, grad):
    """dx = g - softmax · Σ_n g[:, n], with softmax = exp(logp)."""
    return grad - np.exp(logp) * grad.sum(axis=1, keepdims=True)


def cross_entropy(logits, targets):
    """loss = -mean_m logp[m, t_m] with logp = log_softmax(logits); returns (loss, logp),
    the loss a 0-d array (summed in float64)."""
    logp = log_softmax(logits)
    picked = logp[np.arange(logits.shape[0]), targets]
    return np.asarray(-np.mean(picked, dtype=np.float64), dtype=logits.dtype), logp


def cross_entropy_backward(logp, targets, grad_loss):
    """d logits = (softmax - onehot(t)) · grad_loss / M."""
    M = logp.shape[0]
    d = np.exp(logp)
    d[np.arange(M), targets] -= 1
    return d * logp.dtype.type(grad_loss / M)


# --- convolution as a matrix product --------------------------------------------------
# Geometry comes per dimension: stride = (sh, sw), padding = (ph, pw), a pool's
# kernel = (kh, kw). (A plain int means the same for both, as in PyTorch.)

def _pair(v):
    return (v, v) if np.isscalar(v) else (v[0], v[1])


def _out_size(H, W, kh, kw, stride, padding):
    """(Ho, Wo): how many kh×kw windows fit an H×W image (every backend's geometry)."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def _windows(x, kh, kw, stride, padding, fill):
    """All kh×kw windows of x (N,C,H,W) padded with `fill`: a view (N,C,Ho,Wo,kh,kw)."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def im2col(x, kh, kw, stride, padding):
    """cols[(n, ho, wo), (c, i, j)] = x[n, c, ho·sh - ph + i, wo·sw - pw + j] (0 outside the
    image), so that a convolution is cols @ W.reshape(C_out, C·kh·kw).T."""
    N, C = x.shape[:2]
    win = _windows(x, kh, kw, stride, padding, 0)                 # (N,C,Ho,Wo,kh,kw)
    Ho, Wo = win.shape[2:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)


def col2im(cols, x_shape, kh, kw, stride, padding):
    """The adjoint of im2col: every cols entry is added back onto the pixel it was
    copied from (overlapping windows sum; entries that came from padding are dropped)."""
    N, C, H, W = x_shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    c6 = cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 1, 2, 4, 5)   # (N,C,Ho,Wo,kh,kw)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] += c6[..., i, j]
    return np.ascontiguousarray(xp[:, :, ph:ph + H, pw:pw + W])


# --- max pooling ----------------------------------------------------------------------------

def max_pool2d(x, kernel, stride, padding):
    """out[n, c, ho, wo] = max of the kh×kw window at (ho·sh - ph, wo·sw - pw), padding = -inf;
    argmax = h·W + w of that maximum in its input plane (PyTorch's indices). Ties go to
    the first maximum in row-major window order (a NaN counts as the maximum)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    win = _windows(x, kh, kw, stride, padding, -np.inf)            # (N,C,Ho,Wo,kh,kw)
    Ho, Wo = win.shape[2:4]
    win = win.reshape(N, C, Ho, Wo, kh * kw)
    pos = np.argmax(win, axis=-1)                                  # window position i·kw + j
    out = np.take_along_axis(win, pos[..., None], axis=-1)[..., 0]
    # A window of real -inf values ties with its padding: take its first real position.
    valid = _windows(np.ones((1, 1, H, W), bool), kh, kw, stride, padding, False)[0, 0]
    valid = valid.reshape(Ho, Wo, kh * kw)
    ho, wo = np.arange(Ho)[:, None], np.arange(Wo)[None, :]
    pos = np.where(valid[ho, wo, pos], pos, np.argmax(valid, axis=-1))
    h = ho * sh - ph + pos // kw
    w = wo * sw - pw + pos % kw
    return np.ascontiguousarray(out), (h * W + w).astype(np.int64)


def max_pool2d_backward(grad, argmax, x_shape):
    """dx[n, c].flat[argmax[n, c, ho, wo]] += grad[n, c, ho, wo]: each window's gradient goes
    to the element that won it (an element that won several windows gets their sum)."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dtype=grad.dtype)
    plane = np.arange(N * C)[:, None]
    np.add.at(dx, (plane, argmax.reshape(N * C, -1)), grad.reshape(N * C, -1))
    return dx.reshape(N, C, H, W)


# --- indexing and the optimizer ---------------------------------------------------------------

def index_backward(grad, index, shape):
    """The gradient of y = x[index]: zeros(shape) with grad scatter-added at `index`
    (an element picked twice gets both gradients)."""
    dx = np.zeros(shape, dtype=grad.dtype)
    if all(np.ndim(i) == 0 or getattr(i, "dtype", None) == np.bool_     # slices, ints, masks
           for i in (index if isinstance(index, tuple) else (index,))):  # pick each element
        dx[index] = grad                                # once: no np.add.at (~50x slower)
        return dx
    np.add.at(dx, index, grad)
    return dx


def need_sgd_buffer(buf, momentum):          # every backend's sgd_update, before its kernel
    if buf is None and momentum != 0:
        raise ValueError("sgd_update kernel: momentum != 0 needs a momentum buffer")


def sgd_update(param, grad, buf, lr, momentum, nesterov, weight_decay):
    """One SGD step in place (PyTorch's rule, dampening 0):
        g = grad + λ·param
        buf = μ·buf + g;  g = g + μ·buf if nesterov else buf      (when μ ≠ 0)
        param -= lr·g
    `buf` is None when momentum is 0."""
    need_sgd_buffer(buf, momentum)
    t = param.dtype.type
    g = grad + t(weight_decay) * param if weight_decay else grad   # (λ = 0: an inf param stays inf)
    if momentum != 0:
        buf *= t(momentum)
        buf += g
        g = g + t(momentum) * buf if nesterov else buf
    param -= t(lr) * g



def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                decoupled):
    """One Adam (decoupled=False) or AdamW (True) step in place, PyTorch's rule:
        Adam: g = grad + λ·param          AdamW: param = param·(1 - lr·λ)
        m += (1-β₁)·(g - m);  v = β₂·v + (1-β₂)·g²
        param -= lr/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε)          (t = step, from 1)"""
    t = param.dtype.type
    decay, wd = (1.0 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    grad = grad + t(wd) * param if wd else grad
    param *= t(decay)
    exp_avg += t(1.0 - beta1) * (grad - exp_avg)
    exp_avg_sq *= t(beta2)
    exp_avg_sq += t(1.0 - beta2) * grad * grad
    denom = np.sqrt(exp_avg_sq) / t(np.sqrt(1.0 - beta2 ** step)) + t(eps)
    param -= t(lr / (1.0 - beta1 ** step)) * (exp_avg / denom)

# --- array helpers: NumPy, with views where NumPy gives views -----------------------------

HOST_ARRAYS = dict(
    is_array=lambda a: isinstance(a, np.ndarray), from_host=lambda a: a, to_host=lambda a: a,
    full=lambda shape, value, dtype: np.full(shape, value, dtype=dtype),
    broadcast_to=np.broadcast_to, transpose=np.transpose,
    # (np.ascontiguousarray would turn a 0-d array into shape (1,))
    contiguous=lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a),
    astype=lambda a, dtype: a.astype(dtype, copy=False),
    compare=lambda a, b, op: getattr(np, op)(a, b),
    argmax=lambda a, axis=None: np.argmax(a, axis=axis),
    take=lambda a, index: a[index])

ReferenceBackend = backend_class("reference", Backend,
                                 {**vars(reference_sampling), **HOST_ARRAYS, **globals()})
BACKEND = ReferenceBackend()


def __getattr__(name):  # reference.add etc.: the kernels the base derives from the families
    return getattr(BACKEND, name)
