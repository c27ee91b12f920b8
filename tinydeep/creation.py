"""Module-level tensor functions, as torch's: creation (zeros, ones, full, eye, arange,
linspace, randn, rand, *_like), joining (cat, stack), where, maximum, minimum, matmul,
and the dtype names (td.float32, td.long, ...).

Defaults follow PyTorch: float data is float32 unless dtype= says otherwise, integer
ranges and fills are int64; random tensors come from tinydeep.manual_seed's generator
(PyTorch's values differ, its distributions are the same). cat, stack and where are
compositions of Place and indexing, so their gradients come free on every backend.
"""
import numpy as np

from .rng import generator
from .tensor import (DEFAULT_DTYPE, Elementwise, Function, Place, Tensor, normalize_axes,
                     result_dtype)

float32, float64, float16 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)
int32, int64, uint8, bool = np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8), np.dtype(np.bool_)
float, double, long, int = float32, float64, int64, int32

__all__ = ["zeros", "ones", "full", "eye", "arange", "linspace", "randn", "rand", "zeros_like",
           "ones_like", "full_like", "rand_like", "randn_like", "cat", "stack", "where", "maximum",
           "minimum", "matmul", "float32", "float64", "float16", "int32", "int64", "uint8", "bool",
           "float", "double", "long", "int"]


def _shape(size, name):
    size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    if not all(isinstance(n, (np.integer, type(0))) and not isinstance(n, type(True)) and n >= 0
               for n in size):
        raise ValueError(f"{name}: sizes must be non-negative ints, got {size!r}")
    return tuple(map(type(0), size))


def _or(value, default):  # (not `value or default`: a NumPy dtype is falsy)
    return default if value is None else value


def _make(array, dtype, device, requires_grad):
    return Tensor(array, requires_grad=requires_grad, device=device,
                  dtype=result_dtype(array, dtype) if dtype is not None else array.dtype)


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad=False):
    """A tensor of `size` filled with fill_value: float32 for a float, int64 for an int,
    bool for a bool (PyTorch's inference), unless dtype= says otherwise."""
    kind = (np.bool_ if isinstance(fill_value, type(True)) else np.int64
            if isinstance(fill_value, (type(0), np.integer)) else DEFAULT_DTYPE)
    if not isinstance(fill_value, (type(0), type(0.0), np.number)) or (
            np.dtype(_or(dtype, kind)).kind in "iub" and not np.isfinite(fill_value)):
        raise TypeError(f"full: fill_value must be a number that fits the dtype, got {fill_value!r}")
    return _make(np.full(_shape((size,), "full"), fill_value, dtype=_or(dtype, kind)), dtype,
                 device, requires_grad)


def _sized(name, make):
    """zeros(2, 3) or zeros((2, 3)), with PyTorch's keywords; float32 by default."""
    def fn(*size, dtype=None, device="cpu", requires_grad=False):
        if name.startswith("rand") and np.dtype(_or(dtype, DEFAULT_DTYPE)).kind != "f":
            raise TypeError(f"{name}: random numbers need a float dtype, got {np.dtype(dtype)}")
        array = make(_shape(size, name)).astype(_or(dtype, DEFAULT_DTYPE))
        return _make(array, dtype, device, requires_grad)
    fn.__name__ = name
    return fn


zeros, ones = _sized("zeros", np.zeros), _sized("ones", np.ones)
randn = _sized("randn", lambda s: generator().standard_normal(s))  # from manual_seed's generator
rand = _sized("rand", lambda s: generator().random(s))             # uniform on [0, 1)


def eye(n, m=None, *, dtype=None, device="cpu", requires_grad=False):
    return _make(np.eye(n, m, dtype=_or(dtype, DEFAULT_DTYPE)), dtype, device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False):
    """[start, end) by step: int64 when all three are ints, float32 otherwise."""
    start, end = (0, start) if end is None else (start, end)
    if dtype is not None and np.dtype(dtype).kind in "iu":    # as PyTorch: cast first, then count
        start, end, step = type(0)(start), type(0)(end), type(0)(step)
    ints = all(isinstance(v, (type(0), np.integer)) for v in (start, end, step))
    if step == 0 or (end - start) * step < 0:
        raise ValueError(f"arange: step {step} is zero or leads away from end {end} (from {start})")
    a = np.arange(start, end, step, dtype=np.int64 if ints else np.float64)
    return _make(a.astype(_or(dtype, np.int64 if ints else DEFAULT_DTYPE)), dtype, device,
                 requires_grad)


def linspace(start, end, steps, *, dtype=None, device="cpu", requires_grad=False):
    return _make(np.linspace(start, end, steps).astype(_or(dtype, DEFAULT_DTYPE)), dtype, device,
                 requires_grad)


def _like(make):
    """zeros_like(t), full_like(t, v), ...: make(t.shape, ...) in t's dtype and on t's device
    unless dtype=/device= say otherwise."""
    def like(t, *fill_value, dtype=None, device=None, requires_grad=False):
        return make(t.shape, *fill_value, dtype=_or(dtype, t.dtype), device=_or(device, t.device),
                    requires_grad=requires_grad)
    return like


zeros_like, ones_like, full_like, rand_like, randn_like = map(_like, (zeros, ones, full, rand, randn))


class Cat(Function):
    """Tensors joined along `dim`: each placed at its slice of the result (on the host,
    np.concatenate); the gradient is each slice of g."""

    def forward(self, *xs, dim, shape):
        self.index, start = [], 0
        for x in xs:
            sl = [slice(None)] * len(shape)
            sl[dim] = slice(start, start + x.shape[dim])
            self.index.append(tuple(sl))
            start += x.shape[dim]
        if all(isinstance(x, np.ndarray) for x in xs):
            return np.concatenate(xs, axis=dim)
        out = self.backend.full(shape, 0, xs[0].dtype)
        for x, index in zip(xs, self.index):
            out = self.backend.add(out, self.backend.index_backward(x, index, shape))
        return out

    def backward(self, g):
        a = self.backend
        return tuple(a.contiguous(a.take(g, index)) if need else None
                     for index, need in zip(self.index, self.needs_grad))


def cat(tensors, dim=0):
    tensors = [] if isinstance(tensors, Tensor) else list(tensors)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("cat needs a non-empty sequence (list, tuple) of Tensors")
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("cat: 0-d tensors have no dim to join along; use stack")
    (d,) = normalize_axes(dim, first.ndim, "cat")
    for t in tensors[1:]:
        if t.ndim != first.ndim or t.shape[:d] + t.shape[d + 1:] != first.shape[:d] + first.shape[d + 1:]:
            raise ValueError(f"cat: shapes {first.shape} and {t.shape} differ outside dim {dim}")
        if t.dtype != first.dtype:
            raise TypeError(f"cat: mixed dtypes {first.dtype} and {t.dtype}; cast one first")
    shape = first.shape[:d] + (sum(t.shape[d] for t in tensors),) + first.shape[d + 1:]
    return Cat.apply(*tensors, dim=d, shape=shape)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("stack needs a non-empty sequence of Tensors")
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack: all tensors need one shape, got {sorted({t.shape for t in tensors})}")
    (d,) = normalize_axes(dim, tensors[0].ndim + 1, "stack")
    return cat([t.unsqueeze(d) for t in tensors], d)


def where(condition, input, other):
    """input where condition holds, else other (broadcast); a NaN or inf not picked never leaks."""
    cond = np.asarray(condition.numpy() if isinstance(condition, Tensor) else condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {cond.dtype}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):     # two numbers
        return Tensor(np.where(cond, input, other))
    ref = input if isinstance(input, Tensor) else other
    a, b = [t if isinstance(t, Tensor) else Tensor(t, device=ref.device, dtype=ref.dtype)
            for t in (input, other)]
    keep, drop = (Tensor(m, device=t.device, dtype=t.dtype) for m, t in ((cond, a), (~cond, b)))
    return Elementwise.apply(a, keep, op="pick") + Elementwise.apply(b, drop, op="pick")


def maximum(input, other):
    """Elementwise max; on ties each input gets half the gradient (PyTorch's rule)."""
    return Elementwise.apply(input, other, op="maximum")


def minimum(input, other):
    return Elementwise.apply(input, other, op="minimum")


def matmul(input, other):
    """input @ other, as torch.matmul (1-D sides, batches of matrices: see tensor.MatMul)."""
    return input @ other



def _as_function(name):
    """torch.exp(x), torch.sum(x, dim=1), torch.max(out, 1): the Tensor method `name` as a
    function of its tensor; torch.max(a, b) / torch.min(a, b) of two tensors: maximum/minimum."""
    def f(input, *args, **kwargs):
        if name in ("max", "min") and args and isinstance(args[0], Tensor):
            return (maximum if name == "max" else minimum)(input, *args)
        return getattr(input, name)(*args, **kwargs)
    f.__name__ = f.__qualname__ = name
    return f


FUNCTIONS = {n: _as_function(n) for n in (   # (a dict: names like sum and max stay builtins here)
    "sum", "mean", "prod", "max", "min", "argmax", "argmin", "var", "std", "exp", "log", "sqrt",
    "abs", "tanh", "sigmoid", "relu", "clamp", "flatten", "reshape", "transpose", "permute",
    "squeeze", "unsqueeze", "softmax", "log_softmax", "t")}
