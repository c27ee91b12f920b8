"""The PyTorch-named Tensor methods that are compositions of tensor.py's ops.

Each is built from differentiable primitives (the elementwise families, Sum, Index,
Reshape, Transpose, Expand, Place), so its backward comes free and runs on every
backend; `install` attaches them to Tensor when tensor.py is imported. Names,
arguments and defaults follow torch.Tensor: x.sum(dim=1, keepdim=True), x.max(1)
-> (values, indices), x.var() unbiased, x.softmax(dim) on any dim and rank.
"""
from collections import namedtuple

import numpy as np

from . import backends
from .tensor import (FLOAT_DTYPES, Elementwise, Expand, Tensor, Unary, _torch_names, _wrap,
                     normalize_axes)

MaxMin = namedtuple("MaxMin", "values indices")   # torch.return_types.max / min


def _unary(op):
    def method(self):
        return Unary.apply(self, op=op)
    method.__name__, method.__doc__ = op, f"{op}(x) elementwise (scalar_ops.UNARY[{op!r}])."
    return method


def _astype(x, dtype):
    """A cast with no gradient (integer and bool results, as PyTorch's .long())."""
    return _wrap(backends.arrays(x.device).astype(x.data, np.dtype(dtype)), x.device)


_float_sum = Tensor.sum


def sum_(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Σ over dim (all when None); an integer or bool tensor sums to int64, as PyTorch's."""
    if self.dtype in FLOAT_DTYPES:
        return _float_sum(self, axis, keepdims, dim=dim, keepdim=keepdim)
    s = _float_sum(_astype(self, np.float64), axis, keepdims, dim=dim, keepdim=keepdim)
    return _astype(s, np.int64)   # (exact below 2^53 elements)


def prod(self, dim=None, keepdim=False):
    """∏ over dim (all elements when None) as a tree of pairwise products, so the gradient
    is the chain rule through multiplications, ∂/∂x_i = ∏_{j≠i} x_j, exact with zeros (no
    division by x). Integer and bool tensors give int64, as PyTorch's."""
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))):
        raise TypeError(f"prod: dim must be one int (or None for all elements), got {dim!r}")
    if self.dtype not in FLOAT_DTYPES:      # no gradient: NumPy's int64 product (wraps as PyTorch's)
        return Tensor(np.prod(self.numpy(), axis=None if self.ndim == 0 else dim, keepdims=keepdim,
                              dtype=np.int64),
                      device=self.device)
    (d,) = (0,) if dim is None else normalize_axes(dim, max(self.ndim, 1), "prod")
    x, odd = self.reshape(-1) if dim is None or self.ndim == 0 else self, None
    at = lambda s: (slice(None),) * d + (s,)  # noqa: E731
    if x.shape[d] == 0:
        x = x.sum(d, keepdims=True) * 0.0 + 1.0     # the empty product
    elif x.shape[d] == 1:
        x = x * 1.0                                 # a new tensor, never self or a view of it
    while x.shape[d] > 1:
        n = x.shape[d]
        if n % 2:   # the odd one out joins at the end
            odd = x[at(slice(n - 1, n))] if odd is None else odd * x[at(slice(n - 1, n))]
        x = x[at(slice(0, n - 1, 2))] * x[at(slice(1, n, 2))]
    x = x if odd is None else x * odd
    return x.reshape(()) if dim is None or self.ndim == 0 else x if keepdim else x.squeeze(d)


def _argext(self, dim, keepdim, sign, name):
    """int64 indices of the maxima (sign +1) or minima (-1) along dim (of the flattened
    tensor when None); the first one on ties, as NumPy's and PyTorch's CPU."""
    arrays, data = backends.arrays(self.device), self.data
    if self.numel() == 0:
        raise ValueError(f"{name} of an empty tensor")
    if sign < 0:
        data = ((-self.detach()).data if self.dtype in FLOAT_DTYPES
                else arrays.from_host(-arrays.to_host(data).astype(np.int64)))
    if dim is None:
        idx = _wrap(np.asarray(arrays.argmax(data, None)) if self.device == "cpu"
                    else arrays.argmax(data, None), self.device)
        return idx.reshape((1,) * self.ndim) if keepdim else idx
    (d,) = normalize_axes(dim, max(self.ndim, 1), name)     # a 0-d tensor has dim 0 / -1
    if self.ndim == 0:
        return _wrap(arrays.full((), 0, np.int64), self.device)
    idx = arrays.argmax(data, d)
    idx = _wrap(np.asarray(idx) if self.device == "cpu" else idx, self.device)
    return idx.unsqueeze(d) if keepdim else idx


def argmax(self, dim=None, keepdim=False, *, axis=None):
    return _argext(self, _torch_names(axis, False, dim, None)[0], keepdim, 1, "argmax")


def argmin(self, dim=None, keepdim=False, *, axis=None):
    return _argext(self, _torch_names(axis, False, dim, None)[0], keepdim, -1, "argmin")


def _extreme(self, dim, keepdim, sign, name):
    if dim is None:
        # the value, with the gradient shared by every element that ties for it (PyTorch's;
        # NaN ties with NaN): m + Σ pick(x - m, tie) / #ties, exactly m (x - m is 0 at the
        # ties; pick lets no ±inf of the others through); Σ pick(x, tie) / #ties for m = ±inf
        m = self.detach().reshape(-1)[int(_argext(self, None, False, sign, name))]
        if self.dtype not in FLOAT_DTYPES:
            return m
        v = float(m)
        tie = _astype(self == m if v == v else self != self, self.dtype)
        if v - v != 0:                                  # ±inf or NaN
            return Elementwise.apply(self, tie, op="pick").sum() / tie.sum()
        return m + Elementwise.apply(self - m, tie, op="pick").sum() / tie.sum()
    (d,) = normalize_axes(dim, max(self.ndim, 1), name)
    idx = _argext(self, d, False, sign, name)
    grids = list(np.indices(idx.shape, sparse=True)) if self.ndim else []
    values = self[tuple(grids[:d] + [idx.numpy()] + grids[d:])] if self.ndim else self * 1.0
    if keepdim and self.ndim:
        values, idx = values.unsqueeze(d), idx.unsqueeze(d)
    return MaxMin(values, idx)


def max_(self, dim=None, keepdim=False):
    """max() -> the largest value; max(dim) -> (values, indices) along dim."""
    return _extreme(self, dim, keepdim, 1, "max")


def min_(self, dim=None, keepdim=False):
    return _extreme(self, dim, keepdim, -1, "min")


def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
    """Σ (x - mean)² / (n - correction) over dim; correction 1 (unbiased) by default."""
    c = (1 if unbiased else 0) if correction is None else correction
    axes = normalize_axes(dim, self.ndim, "var")
    n = int(np.prod([self.shape[a] for a in axes]))
    dev = self - self.mean(dim, keepdims=True).detach()   # (its gradient Σ dev·… is 0: PyTorch's formula)
    return (dev * dev).sum(dim, keepdims=keepdim) / float(np.maximum(n - c, 0))


def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
    """√var; its gradient 1/(2·std) is 0 where std = 0, as PyTorch's (not ∞·0 = NaN): the
    root is taken of var + 1 there and picked out."""
    v = var(self, dim, unbiased, keepdim, correction=correction)
    zero = _astype(v == 0, v.dtype)
    return Elementwise.apply((v + zero).sqrt(), 1 - zero, op="pick")


def clamp(self, min=None, max=None):
    """min(max(x, lo), hi); the gradient flows where lo <= x <= hi, as PyTorch's."""
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    y = self if min is None else Elementwise.apply(self, min, op="clamp_min")
    return y if max is None else Elementwise.apply(y, max, op="clamp_max")


def unsqueeze(self, dim):
    (d,) = normalize_axes(dim, self.ndim + 1, "unsqueeze")
    return self.reshape(self.shape[:d] + (1,) + self.shape[d:])


def squeeze(self, dim=None):
    axes = [a for a in normalize_axes(dim, self.ndim, "squeeze") if self.shape[a] == 1]
    return self.reshape(tuple(n for a, n in enumerate(self.shape) if a not in axes))


def t(self):
    if self.ndim > 2:
        raise ValueError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}")
    return self.transpose() if self.ndim == 2 else self


def _sizes(sizes):
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes


def expand(self, *sizes):
    """A broadcast to `sizes` (-1 keeps a dimension), as PyTorch's; here a copy."""
    sizes = _sizes(sizes)
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise ValueError(f"expand: {sizes} has fewer dimensions than shape {self.shape}")
    shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    try:
        np.broadcast_shapes(self.shape, shape)
        assert np.broadcast_shapes(self.shape, shape) == shape
    except (ValueError, AssertionError):
        raise ValueError(f"expand: shape {self.shape} cannot be expanded to {sizes}") from None
    return self if shape == self.shape else Expand.apply(self, shape=shape)


def expand_as(self, other):
    return expand(self, other.shape)


def repeat(self, *reps):
    """Tile the tensor reps[i] times along dim i: (1, d0, 1, d1, ...) expanded to
    (r0, d0, r1, d1, ...), then merged."""
    reps = _sizes(reps)
    if len(reps) < self.ndim:
        raise ValueError(f"repeat: {len(reps)} repeats for a tensor with {self.ndim} dimensions")
    shape = (1,) * (len(reps) - self.ndim) + self.shape
    x = self.reshape(tuple(v for n in shape for v in (1, n)))
    x = x.expand(tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return x.reshape(tuple(r * n for r, n in zip(reps, shape)))


def clone(self):
    if self.dtype in FLOAT_DTYPES:
        return self * 1.0
    return _wrap(backends.arrays(self.device).from_host(self.numpy().copy()), self.device)


def _along_last(self, dim, name, fn):
    """fn over dim 1 of x viewed as (O, K, I), where the backend has kernels over a middle
    axis; elsewhere over the rows of x with `dim` moved last and the rest flattened, the
    layout restored after: softmax on any dim and rank."""
    from . import functional as F
    (d,) = normalize_axes(dim, max(self.ndim, 1), name)
    x = self.reshape(1) if self.ndim == 0 else self
    if x.numel() == 0:
        return self * 1.0     # nothing to normalize: the empty shape, as torch returns it
    inner = int(np.prod(x.shape[d + 1:]))
    if inner > 1 and F.has_middle_softmax(x.device):
        return fn(x.reshape(-1, x.shape[d], inner), F).reshape(self.shape)
    moved = x.transpose(d, -1) if d != x.ndim - 1 else x
    y = fn(moved.reshape(-1, moved.shape[-1]) if moved.ndim != 2 else moved, F)
    y = y.reshape(moved.shape)
    y = y.transpose(d, -1) if d != x.ndim - 1 else y
    return y.reshape(self.shape)


def softmax(self, dim):
    return _along_last(self, dim, "softmax", lambda r, F: F.softmax(r, dim=1))


def log_softmax(self, dim):
    return _along_last(self, dim, "log_softmax", lambda r, F: F.log_softmax(r, dim=1))


METHODS = dict(
    sum=sum_, prod=prod, argmax=argmax, argmin=argmin, max=max_, min=min_, var=var, std=std, clamp=clamp,
    clip=clamp, unsqueeze=unsqueeze, squeeze=squeeze, t=t, expand=expand,
    expand_as=expand_as, repeat=repeat, clone=clone, softmax=softmax, log_softmax=log_softmax,
    long=lambda self: _astype(self, np.int64), int=lambda self: _astype(self, np.int32),
    bool=lambda self: _astype(self, np.bool_), tolist=lambda self: self.numpy().tolist(),
    contiguous=lambda self: self, type=lambda self, dtype: self.to(dtype),   # x.type(torch.float)
    any=lambda self: Tensor(self.numpy().any(), device=self.device),
    all=lambda self: Tensor(self.numpy().all(), device=self.device), __abs__=_unary("abs"), sigmoid=_unary("sigmoid"),
    pow=Tensor.__pow__, add=Tensor.__add__, sub=Tensor.__sub__, mul=Tensor.__mul__,
    div=Tensor.__truediv__, neg=Tensor.__neg__,
    **{op: _unary(op) for op in ("exp", "log", "sqrt", "abs", "tanh", "relu")})


def install(cls):
    for name, f in METHODS.items():
        setattr(cls, name, f)


install(Tensor)
