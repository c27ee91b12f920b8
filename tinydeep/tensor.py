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
import numpy as np

from . import backends

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_grad_enabled = True


class no_grad:
    """Context manager (and decorator) that records no graph: for evaluation and updates."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapped


def is_grad_enabled():
    return _grad_enabled


def _as_array(data, dtype, device="cpu"):
    """float32 by default: Python numbers and float arrays of any width become float32;
    integer and bool arrays keep their dtype (labels, masks); `dtype` overrides.
    The result lives on `device` (uploaded from the host if need be)."""
    if isinstance(data, Tensor):
        data = data.data
    if backends.is_device_array(data):
        if device != "cpu":        # stays on the device: convert there
            if dtype is None and data.dtype.kind == "f" and data.dtype != np.float32:
                dtype = np.float32
            return backends.arrays(device).astype(data, data.dtype if dtype is None else dtype)
        data = data.copy_to_host()
    if device != "cpu":
        return backends.arrays(device).from_host(_as_array(data, dtype))
    arr = np.asarray(data)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        return arr.astype(np.float32)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a tensor from an array of dtype {arr.dtype}")
    return arr


class Tensor:
    __array_priority__ = 1000  # so `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(self, data, requires_grad=False, device="cpu", dtype=None):
        backends.get(device)  # raises a clear error for an unknown or unavailable device
        self.data = _as_array(data, dtype, device)
        self.device = device
        self.grad = None
        self._ctx = None
        if requires_grad and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"only floating-point tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)

    # --- plain properties -------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))  # (the simulator's is a tuple subclass)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._ctx is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"tensor({np.array2string(self.numpy(), precision=4, separator=', ')}{dev}{grad})"

    def numpy(self):
        """The values as a NumPy array: the tensor's own array on 'cpu', a copy read back
        from the device otherwise (the one place a GPU tensor waits for the GPU)."""
        return backends.arrays(self.device).to_host(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().item()

    def detach(self):
        return Tensor(self.data, device=self.device)

    def float(self):
        return Tensor(self.data, device=self.device, dtype=np.float32)

    def double(self):
        return Tensor(self.data, device=self.device, dtype=np.float64)

    def to(self, device):
        """This tensor on `device` (itself if it is there already): a copy that is a new
        leaf with the same requires_grad. Gradients do not flow across a move, so moving a
        tensor computed from others that need gradients is refused."""
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
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad, by the chain rule
        applied in reverse topological order."""
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
            grad = _as_array(grad, self.dtype, self.device)
            if grad.shape != self.shape:
                raise ValueError(f"backward() gradient has shape {grad.shape}, "
                                 f"but the tensor has shape {self.shape}")
        k = backends.get(self.device)
        grads = {id(self): grad}
        for t in reversed(_topological_order(self)):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._ctx is None:  # a leaf: accumulate
                g = arrays.contiguous(g)
                t.grad = g if t.grad is None else k.add(t.grad, g)
                continue
            ctx = t._ctx
            for parent, pg in zip(ctx.parents, ctx.backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                prev = grads.get(id(parent))
                grads[id(parent)] = pg if prev is None else k.add(prev, pg)

    # --- operators ----------------------------------------------------------
    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        if _is_number(other):
            return MulScalar.apply(self, s=float(other))
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return self * other if _is_number(other) else Mul.apply(other, self)

    def __truediv__(self, other):
        if _is_number(other):
            return MulScalar.apply(self, s=1.0 / float(other))
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return MatMul.apply(other, self)

    def __neg__(self):
        return MulScalar.apply(self, s=-1.0)

    def __pow__(self, p):
        if isinstance(p, Tensor) or not np.isscalar(p):
            raise TypeError("only powers by a Python number are supported (x ** 2.0)")
        return Pow.apply(self, p=float(p))

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
        return Tensor(backends.arrays(self.device).compare(self.data, other, op),
                      device=self.device)

    __eq__ = lambda self, o: self._compare(o, "equal")
    __ne__ = lambda self, o: self._compare(o, "not_equal")
    __lt__ = lambda self, o: self._compare(o, "less")
    __le__ = lambda self, o: self._compare(o, "less_equal")
    __gt__ = lambda self, o: self._compare(o, "greater")
    __ge__ = lambda self, o: self._compare(o, "greater_equal")
    __hash__ = object.__hash__

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.numpy()  # an index is worked out on the host (a readback on 'cuda')
        return Index.apply(self, index=index)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, dim0=None, dim1=None):
        """Swap two axes, as PyTorch does; with no arguments, reverse them all."""
        if dim0 is None:
            return Transpose.apply(self, axes=None)
        perm = list(range(self.ndim))
        try:
            perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
        except (IndexError, TypeError):
            raise ValueError(f"transpose({dim0}, {dim1}) does not fit a tensor of "
                             f"shape {self.shape}") from None
        return Transpose.apply(self, axes=tuple(perm))

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=axes)

    T = property(lambda self: self.transpose())

    def sum(self, axis=None, keepdims=False):
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        axes = _normalize_axis(axis, self.ndim)
        n = int(np.prod([self.shape[a] for a in axes])) if axes else 1
        return MulScalar.apply(self.sum(axis, keepdims), s=1.0 / max(n, 1))

    def argmax(self, axis=None):
        return Tensor(backends.arrays(self.device).argmax(self.data, axis), device=self.device)


def _is_number(x):
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool)


def tensor(data, requires_grad=False, device="cpu", dtype=None):
    """Make a Tensor from a number, list or array (float32 unless `dtype` says otherwise)."""
    return Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)


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


def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:  # a 0-d tensor has no axis to name
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % max(ndim, 1) for a in axes))


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
        ctx.k = backends.get(device)
        ctx.arrays = backends.arrays(device)  # transpose, broadcast, ... for this device
        ctx.needs_grad = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        out = Tensor.__new__(Tensor)
        out.data = ctx.forward(*arrays, **params)
        out.device, out.grad, out._ctx = device, None, None
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
_CONSTANT.requires_grad, _CONSTANT._ctx = False, None


class _Binary(Function):
    """Elementwise a ∘ b with NumPy broadcasting: broadcast above the kernel,
    unbroadcast the gradients."""
    kernel = None

    def forward(self, a, b):
        a, b = self._arrays(a, b)
        self.a, self.b = a, b
        shape = np.broadcast_shapes(a.shape, b.shape)
        bc = self.arrays.broadcast_to
        return getattr(self.k, self.kernel)(bc(a, shape), bc(b, shape))

    def _arrays(self, a, b):
        # a Python number takes the dtype of the tensor it meets (made on its device)
        a_is = isinstance(a, np.ndarray) or backends.is_device_array(a)
        b_is = isinstance(b, np.ndarray) or backends.is_device_array(b)
        ref = a if a_is else b
        a = a if a_is else self.arrays.full((), a, ref.dtype)
        b = b if b_is else self.arrays.full((), b, ref.dtype)
        check_float(type(self).__name__.lower(), a, b)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{type(self).__name__.lower()}: shapes {a.shape} and {b.shape} "
                             f"do not broadcast") from None
        return a, b

    def _grads(self, ga, gb):
        k = self.k
        return (unbroadcast(k, ga, self.a.shape) if self.needs_grad[0] else None,
                unbroadcast(k, gb, self.b.shape) if self.needs_grad[1] else None)


class Add(_Binary):
    kernel = "add"

    def backward(self, g):  # d(a+b) = da + db
        return self._grads(g, g)


class Sub(_Binary):
    kernel = "sub"

    def backward(self, g):  # d(a-b) = da - db
        return self._grads(g, self.k.mul_scalar(g, -1.0) if self.needs_grad[1] else None)


class Mul(_Binary):
    kernel = "mul"

    def backward(self, g):  # d(ab) = b da + a db
        k, shape, bc = self.k, g.shape, self.arrays.broadcast_to
        ga = k.mul(g, bc(self.b, shape)) if self.needs_grad[0] else None
        gb = k.mul(g, bc(self.a, shape)) if self.needs_grad[1] else None
        return self._grads(ga, gb)


class Div(_Binary):
    kernel = "div"

    def backward(self, g):  # d(a/b) = da / b - a db / b²
        k, shape, bc = self.k, g.shape, self.arrays.broadcast_to
        b = bc(self.b, shape)
        ga = k.div(g, b) if self.needs_grad[0] else None
        gb = None
        if self.needs_grad[1]:
            a_over_b2 = k.div(bc(self.a, shape), k.mul(b, b))
            gb = k.mul_scalar(k.mul(g, a_over_b2), -1.0)
        return self._grads(ga, gb)


class MulScalar(Function):
    def forward(self, x, s):
        check_float("mul", x)
        self.s = s
        return self.k.mul_scalar(x, s)

    def backward(self, g):
        return (self.k.mul_scalar(g, self.s),)


class Pow(Function):
    def forward(self, x, p):
        check_float("pow", x)
        self.x, self.p = x, p
        return self.k.pow_scalar(x, p)

    def backward(self, g):  # d(x^p) = p x^(p-1) dx
        k = self.k
        return (k.mul(g, k.mul_scalar(k.pow_scalar(self.x, self.p - 1.0), self.p)),)


class MatMul(Function):
    def forward(self, a, b):
        if not hasattr(a, "shape") or not hasattr(b, "shape"):
            raise TypeError("matmul needs two tensors")
        check_float("matmul", a, b)
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul needs 2-D tensors, got shapes {a.shape} and {b.shape}")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match "
                             f"({a.shape[1]} != {b.shape[0]})")
        self.a, self.b = a, b
        return self.k.matmul(a, b)

    def backward(self, g):  # C = AB: dA = dC Bᵀ, dB = Aᵀ dC
        k = self.k
        return (k.matmul_nt(g, self.b) if self.needs_grad[0] else None,
                k.matmul_tn(self.a, g) if self.needs_grad[1] else None)


class Sum(Function):
    def forward(self, x, axis, keepdims):
        check_float("sum", x)
        self.shape, self.axes, self.keepdims = x.shape, _normalize_axis(axis, x.ndim), keepdims
        total = self.k.sum(x, axis=self.axes, keepdims=keepdims)
        return np.asarray(total) if isinstance(total, (np.ndarray, np.generic)) else total

    def backward(self, g):  # every input element gets the gradient of its sum
        if not self.keepdims:
            g = g.reshape(tuple(1 if d in self.axes else n for d, n in enumerate(self.shape)))
        return (self.arrays.broadcast_to(g, self.shape),)


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
    def forward(self, x, axes):
        if axes is not None and sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: {axes} is not a permutation of the "
                             f"{x.ndim} axes of shape {x.shape}")
        self.axes = axes
        return self.arrays.transpose(x, axes)

    def backward(self, g):  # the inverse permutation
        inverse = None if self.axes is None else tuple(int(a) for a in np.argsort(self.axes))
        return (self.arrays.transpose(g, inverse),)


class Index(Function):
    def forward(self, x, index):
        self.shape, self.index = x.shape, index
        try:
            return self.arrays.take(x, index)
        except IndexError as e:
            raise ValueError(f"index {index!r} does not fit a tensor of shape {x.shape}: {e}") from None

    def backward(self, g):  # scatter the gradient back; repeated indices add up
        return (self.k.index_backward(g, self.index, self.shape),)
