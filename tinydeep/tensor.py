"""Tensor, Function and reverse-mode autograd.

A Tensor holds an array (`data`): a NumPy array on 'cpu', a device array on
'cuda' (it stays there: ops call that device's kernels, and the few things
this file does to arrays itself go through `backends.arrays(device)`), and,
when it was made by a differentiable op, a link to that op (`_ctx`). Each op is a `Function` whose
`forward` computes on arrays by calling backend kernels and whose `backward`
maps the gradient of the output to a gradient per input: the chain rule,
one op at a time. `Tensor.backward()` walks the graph in reverse topological
order and accumulates gradients into the leaves' `.grad`.

The arithmetic ops live here (they are the Tensor's operators); the neural
network ops (relu, conv, losses, sampling) live in `functional.py`.
"""
import functools
import inspect
import sys
from contextlib import nullcontext

import numpy as np

from . import backends

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_grad_enabled = True


class no_grad:
    """Context manager (and decorator, @no_grad() or @no_grad) that records no graph: for
    evaluation and updates."""

    def __new__(cls, fn=None):
        return super().__new__(cls) if fn is None else cls()(fn)

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):    # (its body would run after the with had ended)
            raise TypeError(f"no_grad cannot decorate the generator {fn.__name__}; use `with "
                            f"tinydeep.no_grad():` inside it")

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapped


def is_grad_enabled():
    return _grad_enabled


class IndexOutOfRange(IndexError, ValueError):
    """An index or axis out of range: an IndexError as in PyTorch (so `for x in t` stops),
    and a ValueError like every other refusal of bad input."""


DEFAULT_DTYPE = np.dtype(np.float32)


def result_dtype(source, dtype=None):
    """THE dtype rule; every dtype a Tensor is made with is chosen here (grep for it):
    an explicit `dtype` wins; a Tensor keeps its own; other float data (Python numbers,
    lists, NumPy arrays of any float width) becomes float32, the default like PyTorch's
    torch.get_default_dtype(); integer and bool data keep their dtype (labels, masks).
    Complex, string and object data are refused: they have no meaning here."""
    src = np.dtype(source.dtype if hasattr(source, "dtype") else np.asarray(source).dtype)
    if dtype is not None:
        src = np.dtype(dtype)
    elif isinstance(source, Tensor):
        return source.dtype
    elif src.kind == "f":
        return DEFAULT_DTYPE
    if src.kind not in "fiub":
        raise TypeError(f"cannot make a tensor from an array of dtype {src} (tensors hold "
                        f"real numbers: float32, float64, integers or bool)")
    return src


def _as_array(data, dtype, device="cpu"):
    """A new array (never the caller's: tensor() copies, from_numpy() shares) with the
    dtype `result_dtype` chooses, on `device`."""
    dt = result_dtype(data, dtype)
    if isinstance(data, Tensor):
        data = data.data
    if backends.is_device_array(data):
        data = data.copy_to_host()
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise TypeError(f"cannot make a tensor from {type(data).__name__}: {e}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a tensor from an array of dtype {arr.dtype}")
    arr = np.array(arr, dtype=dt, copy=True)   # (order 'K': a view's layout is kept)
    return arr if device == "cpu" else backends.arrays(device).from_host(arr)


def _wrap(data, device, requires_grad=False):
    """A Tensor around `data` itself (no copy, no conversion)."""
    t = Tensor.__new__(Tensor)
    t.data, t.device, t.grad, t._ctx, t.requires_grad = data, device, None, None, requires_grad
    return t


class Tensor:
    __array_priority__ = 1000  # so `ndarray * Tensor` calls Tensor.__rmul__
    __array_ufunc__ = None     # and NumPy ufuncs never strip the graph off silently

    def __init__(self, data, requires_grad=False, device="cpu", dtype=None):
        backends.get(device)  # raises a clear error for an unknown or unavailable device
        self.data = _as_array(data, dtype, device)
        self.device = device
        self.grad = None
        self._ctx = None
        self.requires_grad = requires_grad

    def _set_requires_grad(self, value):   # (also `t.requires_grad = True` later: checked too)
        if value and self.data.dtype not in FLOAT_DTYPES:
            if self.data.dtype.kind == "f":  # float16, big-endian: floats tinydeep does not compute in
                raise TypeError(f"tinydeep computes gradients in float32 or float64 (native byte "
                                f"order) only, got {self.data.dtype}; leave out dtype= (float "
                                f"arrays become float32) or pass dtype=np.float32")
            raise TypeError(f"only floating-point tensors can require gradients, got {self.data.dtype}")
        if not value and self._ctx is not None:   # (its gradient would stop here, unseen)
            raise RuntimeError("only a leaf tensor's requires_grad can be turned off; "
                               "use x.detach() for a result without gradient")
        self._requires_grad = bool(value)
    requires_grad = property(lambda self: self._requires_grad, _set_requires_grad)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    # --- plain properties -------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))  # (the simulator's is a tuple subclass)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    dim = lambda self: self.data.ndim                                # noqa: E731
    numel = lambda self: int(self.data.size)                         # noqa: E731

    def size(self, dim=None):
        """The shape, as PyTorch's size(); size(d) is its length along d."""
        return self.shape if dim is None else self.shape[normalize_axes(dim, self.ndim, "size")[0]]
    is_leaf = property(lambda self: self._ctx is None)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):  # over dim 0, as PyTorch
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __array__(self, dtype=None, copy=None):  # np.asarray(t): the values, no graph
        a = self.numpy()
        return np.array(a, dtype=dtype, copy=True) if copy or dtype is not None else a

    def _scalar(self, what):
        if self.numel() != 1:
            raise ValueError(f"{what}: only a tensor with one element can be converted to a "
                             f"Python scalar, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def __bool__(self):
        if self.numel() != 1:
            raise ValueError(f"Boolean value of Tensor with {'no' if self.numel() == 0 else 'more than one'}"
                             f" value{'s' if self.numel() == 0 else ''} is ambiguous (shape {self.shape}); "
                             f"use .any() or .all() on the NumPy values, or reduce it first")
        return bool(self._scalar("bool()"))

    def __float__(self):
        return float(self._scalar("float()"))

    def __int__(self):
        return int(self._scalar("int()"))

    def __index__(self):
        if self.dtype.kind not in "iub" or self.numel() != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index, got dtype {self.dtype} and shape {self.shape}")
        return int(self._scalar("index"))

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device={self.device!r}"
        dt = "" if self.dtype == DEFAULT_DTYPE or self.dtype.kind != "f" else f", dtype={self.dtype}"
        return f"tensor({np.array2string(self.numpy(), precision=4, separator=', ')}{dev}{dt}{grad})"

    def numpy(self):
        """The values as a NumPy array: the tensor's own array on 'cpu', a copy read back
        from the device otherwise (the one place a GPU tensor waits for the GPU)."""
        return backends.arrays(self.device).to_host(self.data)

    def item(self):
        return self._scalar("item()")

    def __format__(self, spec):   # f"{loss:.4f}": a 0-d tensor formats as its number (torch's)
        return format(self.item(), spec) if self.ndim == 0 else object.__format__(self, spec)

    def detach(self):
        """The same values (the same array, shared as in PyTorch) with no graph."""
        return _wrap(self.data, self.device)

    def float(self):
        return self._cast(np.float32)

    def double(self):
        return self._cast(np.float64)

    def _cast(self, dtype):
        """A differentiable cast (the gradient is cast back); itself when it has the dtype."""
        dt = result_dtype(self.data, dtype)
        return self if dt == self.dtype else Cast.apply(self, dtype=dt)

    def to(self, device):
        """This tensor on `device` (itself if it is there already): a copy that is a new
        leaf with the same requires_grad. Gradients do not flow across a move, so moving a
        tensor computed from others that need gradients is refused. A dtype (np.float64)
        instead of a device casts, as .double() does."""
        if not isinstance(device, str):
            return self._cast(device)
        if device == self.device:
            return self
        backends.get(device)  # raises a clear error for an unknown or unavailable device
        if self._ctx is not None:
            raise ValueError("cannot move a computed tensor that needs gradients to another "
                             "device (gradients do not flow across .to()); move the inputs "
                             "and parameters first, or .detach() it")
        return Tensor(self.numpy(), requires_grad=self.requires_grad, device=device,
                      dtype=self.dtype)

    def cpu(self):
        return self.to("cpu")

    # --- autograd -----------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad, by the chain rule
        applied in reverse topological order. The graph's saved arrays are then freed, so
        a second backward through it raises, unless retain_graph=True (as in PyTorch)."""
        if not self.requires_grad:
            raise ValueError("backward() on a tensor that does not require grad "
                             "(no input had requires_grad=True, or it was made under no_grad)")
        arrays = backends.arrays(self.device)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() on a tensor of shape {self.shape} needs a gradient "
                                 f"argument of that shape (or reduce it to a scalar first)")
            grad = arrays.full(self.shape, 1, self.dtype)
        else:
            if isinstance(grad, Tensor) and grad.device != self.device:
                raise ValueError(f"backward() gradient is on {grad.device!r} but the tensor is on "
                                 f"{self.device!r}")
            if isinstance(grad, Tensor) and grad.dtype != self.dtype:
                raise TypeError(f"backward() gradient has dtype {grad.dtype} but the tensor "
                                f"{self.dtype}; convert it with .float() or .double()")
            grad = _as_array(grad, self.dtype, self.device)   # a copy: the caller's g stays theirs
            if grad.shape != self.shape:
                raise ValueError(f"backward() gradient has shape {grad.shape}, "
                                 f"but the tensor has shape {self.shape}")
        k = backends.get(self.device)
        order = _topological_order(self)
        if any(t._ctx is not None and t._ctx.freed for t in order):
            raise RuntimeError("Trying to backward through the graph a second time: its saved "
                               "arrays were freed by the first backward(). Call "
                               "backward(retain_graph=True) the first time to keep them")
        for t in order:
            if t._ctx is None and t.grad is not None:
                _check_grad(t, t.grad)
        grads = {id(self): grad}
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._ctx is None:  # a leaf: accumulate into a .grad that belongs to it alone
                if t.grad is not None:
                    t.grad = k.add(t.grad, g)
                elif isinstance(g, np.ndarray) and g.base is None and sys.getrefcount(g) <= _SOLE:
                    t.grad = g      # nothing else refers to g: adopted (PyTorch steals it too)
                else:
                    t.grad = k.mul_scalar(g, 1.0)
                continue
            ctx = t._ctx
            for parent, pg in zip(ctx.parents, ctx.backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                prev = grads.get(id(parent))
                grads[id(parent)] = pg if prev is None else k.add(prev, pg)
        if not retain_graph:
            for t in order:
                if t._ctx is not None:
                    t._ctx.free()

    # --- operators ----------------------------------------------------------
    __add__ = lambda self, other: Add.apply(self, other)               # noqa: E731
    __radd__ = lambda self, other: Add.apply(other, self)              # noqa: E731
    __sub__ = lambda self, other: Sub.apply(self, other)               # noqa: E731
    __rsub__ = lambda self, other: Sub.apply(other, self)              # noqa: E731
    # a true division, also by a number: t / 0 is ±inf or NaN
    __truediv__ = lambda self, other: Div.apply(self, other)           # noqa: E731
    __rtruediv__ = lambda self, other: Div.apply(other, self)          # noqa: E731
    __matmul__ = lambda self, other: MatMul.apply(self, other)         # noqa: E731
    __rmatmul__ = lambda self, other: MatMul.apply(other, self)        # noqa: E731
    __neg__ = lambda self: MulScalar.apply(self, s=-1.0)               # noqa: E731
    __rpow__ = lambda self, base: Elementwise.apply(base, self, op="pow")  # noqa: E731

    def __mul__(self, other):
        if _is_number(other):
            return MulScalar.apply(self, s=float(other))
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return self * other if _is_number(other) else Mul.apply(other, self)

    def __pow__(self, p):  # a number exponent: one kernel; a tensor one: the pow family
        return Pow.apply(self, p=float(p)) if _is_number(p) else Elementwise.apply(self, p, op="pow")

    def _in_place(self, other, op, sign):
        """x += y etc. Where no gradient flows (no_grad(): `p -= lr * p.grad`) x takes a new array
        of the new values (Python alone would rebind the name, leaving the parameter as it was);
        in a graph the name is rebound to x + y, as torch's values and gradients (`loss += l`)."""
        if _grad_enabled and self.requires_grad and self._ctx is None:
            raise RuntimeError(f"in-place {sign}= on a leaf tensor that requires grad: run it "
                               f"under tinydeep.no_grad() (an update), or write x = x {sign} y")
        graph = _grad_enabled and (self.requires_grad or getattr(other, "requires_grad", False))
        with (nullcontext() if graph else no_grad()):
            y = op(self, other)
        if y.shape != self.shape or y.dtype != self.dtype:
            raise TypeError(f"in-place {sign}=: the result, {y.dtype} {y.shape}, does not fit the "
                            f"tensor, {self.dtype} {self.shape}")
        if graph:
            return y
        self.data = y.data
        return self

    __iadd__ = lambda self, o: self._in_place(o, Tensor.__add__, "+")       # noqa: E731
    __isub__ = lambda self, o: self._in_place(o, Tensor.__sub__, "-")       # noqa: E731
    __imul__ = lambda self, o: self._in_place(o, Tensor.__mul__, "*")       # noqa: E731
    __itruediv__ = lambda self, o: self._in_place(o, Tensor.__truediv__, "/")  # noqa: E731
    __ipow__ = lambda self, o: self._in_place(o, Tensor.__pow__, "**")      # noqa: E731

    # comparisons give bool tensors and carry no gradient
    def _compare(self, other, op):
        """op names a NumPy comparison ufunc ('equal', 'less', ...)."""
        if isinstance(other, Tensor):
            if other.device != self.device:
                raise ValueError(f"comparing tensors on different devices ({self.device!r} and "
                                 f"{other.device!r}); move them with .to(device)")
            other = other.data
        elif self.device != "cpu" and not _is_number(other) and not isinstance(other, bool):
            raise ValueError(f"a tensor on {self.device!r} can be compared with a number or a "
                             f"tensor on the same device, not a {type(other).__name__}")
        return _wrap(np.asarray(backends.arrays(self.device).compare(self.data, other, op))
                     if self.device == "cpu" else
                     backends.arrays(self.device).compare(self.data, other, op), self.device)

    __eq__ = lambda self, o: self._compare(o, "equal")
    __ne__ = lambda self, o: self._compare(o, "not_equal")
    __lt__ = lambda self, o: self._compare(o, "less")
    __le__ = lambda self, o: self._compare(o, "less_equal")
    __gt__ = lambda self, o: self._compare(o, "greater")
    __ge__ = lambda self, o: self._compare(o, "greater_equal")
    __hash__ = object.__hash__

    def __getitem__(self, index):
        # a Tensor index, alone or inside a tuple, is worked out on the host (a readback on 'cuda')
        host = lambda i: i.numpy() if isinstance(i, Tensor) else i  # noqa: E731
        index = tuple(host(i) for i in index) if isinstance(index, tuple) else host(index)
        ints = [isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                for i in (index if isinstance(index, tuple) else ())]
        if any(ints) and any(isinstance(i, (list, np.ndarray)) for i in index):
            # PyTorch takes the integers first (each drops its dim; a mask spans its ndim dims),
            # then the rest; NumPy would count them as arrays and put the broadcast dims first
            first = [i if i is None or i is Ellipsis or is_int else slice(None)
                     for i, is_int in zip(index, ints)
                     for _ in range(np.ndim(i) if np.asarray(i).dtype == bool else 1)]
            rest = [slice(None) if i is None else i for i, is_int in zip(index, ints) if not is_int]
            return Index.apply(Index.apply(self, index=tuple(first)), index=tuple(rest))
        return Index.apply(self, index=index)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        # as PyTorch: integer sizes >= 0, and at most one -1 to be inferred (NumPy would
        # take any negative number as "infer")
        if (not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape)
                or any(n < -1 for n in shape) or sum(n == -1 for n in shape) > 1):
            raise ValueError(f"reshape: {tuple(shape)} is not a shape (integer sizes >= 0, "
                             f"at most one -1)")
        return Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_axes((start_dim, end_dim), self.ndim, "flatten", allow_repeats=True)
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        return self.reshape(self.shape[:s] + (int(np.prod(self.shape[s:e + 1])),) + self.shape[e + 1:])

    def transpose(self, dim0=None, dim1=None):
        """Swap two axes, as PyTorch does; with no arguments, reverse them all."""
        if dim0 is None and dim1 is None:
            return Transpose.apply(self, axes=tuple(reversed(range(self.ndim))))
        d0, d1 = normalize_axes((dim0, dim1), self.ndim, "transpose", allow_repeats=True)
        perm = list(range(self.ndim))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return Transpose.apply(self, axes=tuple(perm))

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        perm = normalize_axes(axes, self.ndim, "permute")
        if len(perm) != self.ndim:
            raise ValueError(f"permute: {axes} does not name each of the {self.ndim} axes of "
                             f"shape {self.shape} once")
        return Transpose.apply(self, axes=perm)

    T = property(lambda self: self.transpose())

    # (PyTorch's names dim= and keepdim= are accepted too)
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _torch_names(axis, keepdims, dim, keepdim)
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        check_float("mean", self.data)  # as PyTorch: no mean of ints; before the sum kernel
        axis, keepdims = _torch_names(axis, keepdims, dim, keepdim)
        axes = normalize_axes(axis, self.ndim, "mean")
        n = int(np.prod([self.shape[a] for a in axes]))
        # the mean of nothing is 0/0 = NaN, as in PyTorch
        return MulScalar.apply(self.sum(axis, keepdims), s=1.0 / n if n else float("nan"))


def _torch_names(axis, keepdims, dim, keepdim):
    if dim is not None and axis is not None:
        raise TypeError("give axis= or PyTorch's dim=, not both")
    return (axis if dim is None else dim), bool(keepdims if keepdim is None else keepdim)


def _is_number(x):
    return isinstance(x, (int, float, np.number)) and not isinstance(x, (bool, complex, np.complexfloating))


def tensor(data, requires_grad=False, device="cpu", dtype=None):
    """Make a Tensor from a number, list, array or Tensor: always a copy. The dtype follows
    `result_dtype`: float32 for float data unless `dtype` says otherwise; a Tensor keeps its."""
    return Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)


def from_numpy(array):
    """A 'cpu' Tensor that shares `array` (no copy, its dtype kept): writes through either
    show in both, as torch.from_numpy. Only float32/float64, integer and bool arrays."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy needs a NumPy array, got {type(array).__name__}")
    if array.dtype.kind not in "iub" and array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"from_numpy shares the array, so it cannot convert dtype {array.dtype}; "
                        f"use tinydeep.tensor(array) (a copy, float32) instead")
    return _wrap(array, "cpu")


def _sole_reference_count():
    """sys.getrefcount of an array held by one local variable only (a view of it would be one
    more), measured as backward() measures its g: right on any CPython version."""
    g = np.empty(1)
    return sys.getrefcount(g)


_SOLE = _sole_reference_count()


def zero_grads(params, set_to_none=True):
    """Module/Optimizer.zero_grad: each .grad to None (a step then skips it), or to zeros with
    set_to_none=False (a step still moves it by momentum, decay and Adam's averages)."""
    for p in params:
        if p.grad is not None:
            p.grad = None if set_to_none else backends.arrays(p.device).full(p.shape, 0, p.dtype)


def _check_grad(t, grad):
    """A .grad must fit its tensor (it may have been set by hand): checked before any kernel."""
    arrays = backends.arrays(t.device)
    if not arrays.is_array(grad):
        raise TypeError(f".grad of a tensor on {t.device!r} must be an array there, got "
                        f"{type(grad).__name__}; set it to None (zero_grad()) to start over")
    if tuple(grad.shape) != t.shape or grad.dtype != t.dtype:
        raise ValueError(f".grad has shape {tuple(grad.shape)} and dtype {grad.dtype}, but its "
                         f"tensor has shape {t.shape} and dtype {t.dtype}; set .grad = None "
                         f"(zero_grad()) or give it the tensor's shape and dtype")


def _topological_order(root):
    """Tensors reachable from `root`, each after all of its inputs (iterative DFS)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            stack.extend((p, False) for p in t._ctx.parents if p.requires_grad)
    return order


def normalize_axes(axis, ndim, name="", allow_repeats=False):
    """The one axis rule, for every op that takes axes: None means all axes; an int or a
    sequence of ints, each in [-ndim, ndim), negative ones counted from the end; an axis
    named twice is refused (PyTorch does). Returns non-negative axes in the order given.
    A 0-d tensor accepts axis 0 or -1 and has no axis to reduce, as in PyTorch."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{name}: an axis must be an int, got {a!r}")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise IndexOutOfRange(f"{name}: axis {a} is out of range for a tensor with {ndim} "
                                  f"dimensions (expected one in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])")
        if ndim:
            out.append(int(a) % ndim)
    if not allow_repeats and len(set(out)) != len(out):
        raise ValueError(f"{name}: axes {axes} name the same axis more than once")
    return tuple(out)


def unbroadcast(k, grad, shape):
    """The gradient of a broadcast is a sum: reduce `grad` over the axes that
    broadcasting added or stretched from 1, so it gets back `shape`."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape)
                                      if n == 1 and grad.shape[i + lead] != 1)
    return k.sum(grad, axis=axes, keepdims=False).reshape(shape)


class Function:
    """A differentiable op. Subclasses define
        forward(self, *arrays, **params) -> array
        backward(self, grad) -> one gradient (or None) per Tensor input.
    `self.needs_grad[i]` tells backward which input gradients are wanted."""
    freed = False

    def free(self):
        """Drop what forward saved for backward (after a backward without retain_graph);
        the links to the inputs stay, so the graph can still be walked and drawn."""
        parents = self.parents
        self.__dict__.clear()
        self.parents, self.freed = parents, True

    @classmethod
    def apply(cls, *inputs, **params):
        tensors = [x for x in inputs if isinstance(x, Tensor)]
        device = tensors[0].device
        for t in tensors:
            if t.device != device:
                raise ValueError(f"{cls.__name__}: tensors are on different devices "
                                 f"({device!r} and {t.device!r}); move them with .to(device)")
        if device != "cpu":
            for x in inputs:
                if isinstance(x, np.ndarray):
                    raise ValueError(f"{cls.__name__}: a NumPy array cannot meet tensors on "
                                     f"{device!r}; make it a tensor there with "
                                     f"tinydeep.tensor(array, device={device!r})")
        ctx = cls()
        ctx.backend = backends.get(device)  # the kernels and array helpers of this device
        ctx.needs_grad = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        data = ctx.forward(*arrays, **params)
        # a 0-d result stays a 0-d array, never a NumPy scalar (which has no .flags, no out=)
        out = _wrap(np.asarray(data) if isinstance(data, np.generic) else data, device)
        out.requires_grad = _grad_enabled and any(ctx.needs_grad)
        if out.requires_grad:
            ctx.parents = [x if isinstance(x, Tensor) else _CONSTANT for x in inputs]
            out._ctx = ctx
        return out


def check_float(name, *arrays):
    """Refuse non-float or mixed-precision arrays before any kernel sees them."""
    dtypes = {a.dtype for a in arrays}
    for dt in dtypes:
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"{name} needs float32 or float64 tensors, got {dt} "
                            f"(convert with .float())")
    if len(dtypes) > 1:
        raise TypeError(f"{name} got mixed dtypes {sorted(str(d) for d in dtypes)}; "
                        f"convert one with .float() or .double()")


_CONSTANT = Tensor.__new__(Tensor)  # stands in for a non-Tensor input in `parents`
_CONSTANT._ctx, _CONSTANT.requires_grad = None, False


class _Binary(Function):
    """Elementwise a ∘ b, NumPy broadcasting: broadcast above the kernel, unbroadcast the grads."""
    kernel = None

    def forward(self, a, b):
        a, b = self._arrays(a, b)
        self.a, self.b = a, b
        shape = np.broadcast_shapes(a.shape, b.shape)
        return getattr(self.backend, self.kernel)(self._bc(a, shape), self._bc(b, shape))

    def _bc(self, x, shape):    # a kernel's input of `shape` (broadcast_to is ~5 us a call)
        return x if x.shape == shape else self.backend.broadcast_to(x, shape)

    def _arrays(self, a, b):
        # a Python number takes the dtype of the tensor it meets (made on its device)
        a_is = isinstance(a, np.ndarray) or backends.is_device_array(a)
        b_is = isinstance(b, np.ndarray) or backends.is_device_array(b)
        ref = a if a_is else b
        for x, is_array in ((a, a_is), (b, b_is)):
            if not is_array and not _is_number(x) and not isinstance(x, bool):
                raise TypeError(f"{type(self).__name__.lower()}: a tensor can meet a tensor, an "
                                f"array or a real number, not {type(x).__name__} {x!r}")
        a = a if a_is else self.backend.full((), a, ref.dtype)
        b = b if b_is else self.backend.full((), b, ref.dtype)
        check_float(type(self).__name__.lower(), a, b)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{type(self).__name__.lower()}: shapes {a.shape} and {b.shape} "
                             f"do not broadcast") from None
        return a, b

    def _grads(self, ga, gb):
        k = self.backend
        return (unbroadcast(k, ga, self.a.shape) if self.needs_grad[0] else None,
                unbroadcast(k, gb, self.b.shape) if self.needs_grad[1] else None)


class Add(_Binary):
    kernel = "add"

    def backward(self, g):  # d(a+b) = da + db
        return self._grads(g, g)


class Sub(_Binary):
    kernel = "sub"

    def backward(self, g):  # d(a-b) = da - db
        return self._grads(g, self.backend.mul_scalar(g, -1.0) if self.needs_grad[1] else None)


class Mul(_Binary):
    kernel = "mul"

    def backward(self, g):  # d(ab) = b da + a db
        k, shape, bc = self.backend, g.shape, self._bc
        ga = k.mul(g, bc(self.b, shape)) if self.needs_grad[0] else None
        gb = k.mul(g, bc(self.a, shape)) if self.needs_grad[1] else None
        return self._grads(ga, gb)


class Div(_Binary):
    kernel = "div"

    def forward(self, a, b):
        self.y = super().forward(a, b)
        return self.y

    def backward(self, g):  # d(a/b) = da / b - (a/b) db / b, as -(a/b)/b: no b² to overflow
        k, b = self.backend, self._bc(self.b, g.shape)
        ga = k.div(g, b) if self.needs_grad[0] else None
        gb = k.mul_scalar(k.div(k.mul(g, self.y), b), -1.0) if self.needs_grad[1] else None
        return self._grads(ga, gb)


class MulScalar(Function):
    def forward(self, x, s):
        check_float("mul", x)
        self.s = s
        return self.backend.mul_scalar(x, s)

    def backward(self, g):
        return (self.backend.mul_scalar(g, self.s),)


class Pow(Function):
    def forward(self, x, p):
        check_float("pow", x)
        self.x, self.p = x, p
        return self.backend.pow_scalar(x, p)

    def backward(self, g):  # d(x^p) = p x^(p-1) dx, and 0 for p = 0 (where 0·0⁻¹ would be NaN)
        k = self.backend
        if self.p == 0:
            return (k.mul_scalar(g, 0.0),)
        return (k.mul(g, k.mul_scalar(k.pow_scalar(self.x, self.p - 1.0), self.p)),)


class Cast(Function):
    """x as another float dtype; the gradient comes back in x's dtype."""

    def forward(self, x, dtype):
        self.src = x.dtype
        return self.backend.astype(x, dtype)

    def backward(self, g):
        return (self.backend.astype(g, self.src),)


def _batched(k, x, y, batch, ta=False, tb=False):
    """x[i] @ y[i] (x[i]ᵀ where ta, y[i]ᵀ where tb) for every matrix of the batch, x and y
    broadcast to it first: in one call where the backend has matmul_batched (the CPU)."""
    count = int(np.prod(batch, dtype=np.int64))
    xs, ys = (k.contiguous(k.broadcast_to(v, batch + tuple(v.shape)[-2:])).reshape(
        (count,) + tuple(v.shape)[-2:]) for v in (x, y))
    if hasattr(k, "matmul_batched"):
        out = k.matmul_batched(xs.swapaxes(1, 2) if ta else xs, ys.swapaxes(1, 2) if tb else ys)
    else:
        kernel = k.matmul_tn if ta else k.matmul_nt if tb else k.matmul
        out = k.full((count, xs.shape[2 if ta else 1], ys.shape[1 if tb else 2]), 0, x.dtype)
        for i in range(count):
            kernel(xs[i], ys[i], out=out[i])
    return out.reshape(batch + tuple(out.shape)[1:])


class MatMul(Function):
    """a @ b as torch.matmul: a 1-D a is a row, a 1-D b a column (the unit axis dropped
    after); axes before the last two are batches of matrices, broadcast as NumPy's. With
    a 2-D b the product is one product of all of a's rows."""
    def forward(self, a, b):
        if not hasattr(a, "shape") or not hasattr(b, "shape"):
            raise TypeError("matmul needs two tensors")
        check_float("matmul", a, b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both need at least 1 dimension, got {a.shape} and {b.shape}")
        A = a.reshape(1, -1) if a.ndim == 1 else a
        B = b.reshape(-1, 1) if b.ndim == 1 else b
        (*batch_a, M, K), (*batch_b, K_b, N) = A.shape, B.shape
        if K != K_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match ({K} != {K_b})")
        try:
            batch = np.broadcast_shapes(tuple(batch_a), tuple(batch_b))
        except ValueError:
            raise ValueError(f"matmul: the batch shapes of {a.shape} and {b.shape} do not broadcast"
                             ) from None
        k, self.A, self.B, self.batch, self.shapes = self.backend, A, B, batch, (a.shape, b.shape)
        self.rows = int(np.prod(batch, dtype=np.int64)) * M   # a's rows, stacked (2-D b)
        if B.ndim == 2:
            y = k.matmul(A if A.ndim == 2 else k.contiguous(A).reshape(self.rows, K), B)
        else:
            y = _batched(k, A, B, batch)
        return y.reshape(batch + (M,) * (a.ndim > 1) + (N,) * (b.ndim > 1))

    def backward(self, g):  # C = AB: dA = dC Bᵀ, dB = Aᵀ dC, summed over broadcast batches
        k, A, B, batch = self.backend, self.A, self.B, self.batch
        (M, K), N = tuple(A.shape)[-2:], tuple(B.shape)[-1]
        G = k.contiguous(g).reshape(batch + (M, N))
        da = db = None
        if B.ndim == 2:
            G = G.reshape(self.rows, N)
            if self.needs_grad[0]:
                da = k.matmul_nt(G, B)
            if self.needs_grad[1]:
                db = k.matmul_tn(A if A.ndim == 2 else k.contiguous(A).reshape(self.rows, K), G)
        else:
            if self.needs_grad[0]:
                da = unbroadcast(k, _batched(k, G, B, batch, tb=True), A.shape)
            if self.needs_grad[1]:
                db = unbroadcast(k, _batched(k, A, G, batch, ta=True), B.shape)
        return tuple(None if d is None else d.reshape(shape) for d, shape in zip((da, db), self.shapes))


class Sum(Function):
    def forward(self, x, axis, keepdims):
        check_float("sum", x)
        self.axes = tuple(sorted(normalize_axes(axis, x.ndim, "sum")))
        self.shape, self.keepdims = x.shape, keepdims
        return self.backend.sum(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g):  # every input element gets the gradient of its sum
        if not self.keepdims:
            g = g.reshape(tuple(1 if d in self.axes else n for d, n in enumerate(self.shape)))
        return (self.backend.broadcast_to(g, self.shape),)


class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) to {tuple(shape)}") from None

    def backward(self, g):
        return (g.reshape(self.shape),)


class Transpose(Function):
    def forward(self, x, axes):  # axes: a permutation, already normalized (non-negative)
        self.axes = axes
        return self.backend.transpose(x, axes)

    def backward(self, g):  # the inverse permutation
        return (self.backend.transpose(g, tuple(int(a) for a in np.argsort(self.axes))),)


class Index(Function):
    def forward(self, x, index):
        self.shape, self.index = x.shape, index
        try:
            return self.backend.take(x, index)
        except IndexError as e:
            raise IndexOutOfRange(f"index {index!r} does not fit a tensor of shape {x.shape}: "
                                  f"{e}") from None

    def backward(self, g):  # scatter the gradient back; repeated indices add up
        return (self.backend.index_backward(g, self.index, self.shape),)


# --- the elementwise families (backends/scalar_ops.py) and two shape ops --------------

class Unary(Function):
    """y = f(x) for f = scalar_ops.UNARY[op]: exp, log, sqrt, abs, tanh, sigmoid, ..."""

    def forward(self, x, op):
        check_float(op, x)
        self.op, self.x = op, x
        self.y = self.backend.unary(op, x)
        return self.y

    def backward(self, g):  # dx = df(x, y, g), the family's derivative
        return (self.backend.unary_backward(self.op, self.x, self.y, g),)


class Elementwise(_Binary):
    """y = f(a, b) for f = scalar_ops.BINARY[op] (pow, maximum, minimum, ...), broadcast."""

    def forward(self, a, b, op):
        a, b = self._arrays(a, b)
        self.a, self.b, self.op = a, b, op
        shape = np.broadcast_shapes(a.shape, b.shape)
        self.ab = (self._bc(a, shape), self._bc(b, shape))
        self.y = self.backend.binary(op, *self.ab)
        return self.y

    def backward(self, g):
        return self._grads(*self.backend.binary_backward(self.op, *self.ab, self.y, g))


class Expand(Function):
    """x broadcast to `shape` (a copy); the gradient sums back over the stretched axes."""

    def forward(self, x, shape):
        self.shape = x.shape
        return self.backend.contiguous(self.backend.broadcast_to(x, shape))

    def backward(self, g):
        return (unbroadcast(self.backend, g, self.shape),)


class Place(Function):
    """zeros(shape) with x written at `index` (slices): the adjoint of indexing, which
    pads, concatenates and dilates; the gradient is g[index]."""

    def forward(self, x, index, shape):
        self.index = index
        return self.backend.index_backward(x, index, shape)

    def backward(self, g):
        return (self.backend.contiguous(self.backend.take(g, self.index)),)


from . import tensor_api  # noqa: E402,F401  (attaches the PyTorch-named methods to Tensor)
