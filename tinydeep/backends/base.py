"""The kernel contract as code: what every backend offers, and what each thing means.

A backend is one object (`backends.get(device)`) with two kinds of methods:
kernels (arrays in, arrays out, no autograd) and array helpers (the few things
the Tensor layer does to `.data` itself). `Backend` declares all of them with
their math; `ReferenceBackend` (reference.py) implements every one in NumPy (batch
norm: composed here of the others) and so defines the meaning; `CpuBackend` (cpu.py)
overrides what Numba makes faster; `CudaBackend` (cuda.py) implements the rest on
device arrays. Return types are part of the contract: arrays, never Python
numbers (a loss is a 0-d array on every device, so the GPU never waits).

Inputs arrive checked: dtypes, shapes and devices are refused by the op's
entry (functional.py, tensor.py) before any kernel runs, so kernels do not
check again. Arrays are float32 or float64 of one dtype, any layout on the
host (C-contiguous on a GPU); `out`, where offered, is an optional C-contiguous
result, then returned. Elementwise ops come in families built from the scalar
functions of scalar_ops.py: `unary(op, x)` runs UNARY[op] over x.
"""
import functools

KERNELS = (
    "matmul", "matmul_nt", "matmul_tn",
    "add", "sub", "mul", "div", "mul_scalar", "pow_scalar", "exp", "add_rowvec",
    "relu", "relu_backward", "sum",
    "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
    "batch_norm", "batch_norm_backward",
    "im2col", "col2im", "max_pool2d", "max_pool2d_backward",
    "affine_grid", "affine_grid_backward", "bilinear_sample", "bilinear_sample_backward",
    "index_backward", "sgd_update", "adam_update",
)
FAMILIES = ("unary", "unary_backward", "binary", "binary_backward")
HELPERS = ("is_array", "from_host", "to_host", "full", "broadcast_to", "transpose",
           "contiguous", "astype", "compare", "argmax", "take")
CONTRACT = KERNELS + FAMILIES + HELPERS


def declared(f):
    """A contract entry (its signature and meaning) that raises if a backend lacks it."""
    @functools.wraps(f)
    def missing(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement {f.__name__}")
    missing.declared_only = True
    return missing


class Backend:
    """Every kernel and array helper, with its meaning (shapes in the docstrings). An
    entry that only states its meaning raises NotImplementedError until a backend
    implements it; the named family members below are defined here, for all."""
    name = "contract"

    # --- elementwise families (scalar_ops.py) -----------------------------------------
    def unary(self, op, x, out=None):
        """y = f(x) elementwise, (f, df) = UNARY[op]."""

    def unary_backward(self, op, x, y, grad, out=None):
        """dx = df(x, y, grad) elementwise: the gradient of y = f(x)."""

    def binary(self, op, a, b, out=None):
        """y = f(a, b) elementwise, (f, da, db) = BINARY[op], on equal shapes (broadcasting
        is done above)."""

    def binary_backward(self, op, a, b, y, grad):
        """(da(a, b, y, grad), db(a, b, y, grad)): the gradients of y = f(a, b)."""

    # the members the Tensor layer calls by name
    def add(self, a, b, out=None):
        """a + b."""
        return self.binary("add", a, b, out)

    def sub(self, a, b, out=None):
        """a - b."""
        return self.binary("sub", a, b, out)

    def mul(self, a, b, out=None):
        """a * b."""
        return self.binary("mul", a, b, out)

    def div(self, a, b, out=None):
        """a / b (IEEE: x/0 = ±inf, 0/0 = NaN)."""
        return self.binary("div", a, b, out)

    def exp(self, x, out=None):
        """eˣ (softmax = exp(log_softmax))."""
        return self.unary("exp", x, out)

    def relu(self, x, out=None):
        """max(x, 0); a NaN passes through."""
        return self.unary("relu", x, out)

    def relu_backward(self, x, grad, out=None):
        """grad · [x > 0] (x: the ReLU's input or its output, both > 0 at the same places)."""
        return self.unary_backward("relu", x, x, grad, out)

    # --- other elementwise kernels ---------------------------------------------------
    def mul_scalar(self, x, s, out=None):
        """x · s for a Python number s; the result keeps x's dtype."""

    def pow_scalar(self, x, p, out=None):
        """x ** p for a Python number p (a negative x with a fractional p gives NaN)."""

    def add_rowvec(self, x, b, out=None):
        """y[m, n] = x[m, n] + b[n], x (M,N), b (N,): a layer's bias add."""

    # --- matrix products --------------------------------------------------------------
    def matmul(self, a, b, out=None):
        """C = A B, A (M,K), B (K,N) -> (M,N)."""

    def matmul_nt(self, a, b, out=None):
        """C = A Bᵀ, A (M,K), B (N,K) -> (M,N): a layer's x Wᵀ."""

    def matmul_tn(self, a, b, out=None):
        """C = Aᵀ B, A (K,M), B (K,N) -> (M,N): a weight gradient gᵀ x."""

    # --- reductions, softmax, loss --------------------------------------------------
    def sum(self, x, axis=None, keepdims=False):
        """Σ over `axis` (None: all; an int or tuple, negative allowed), accumulated in
        float64 and returned as an array of x's dtype (0-d for a full sum)."""

    def log_softmax(self, x):
        """logp[m, n] = x[m, n] - log Σ_k exp(x[m, k]) over the rows of x (M,N), max-shifted."""

    def log_softmax_backward(self, logp, grad):
        """dx = g - softmax · Σ_n g[:, n], softmax = exp(logp)."""

    def cross_entropy(self, logits, targets):
        """(loss, logp): loss = -mean_m logp[m, t_m] as a 0-d array of logits' dtype,
        logp = log_softmax(logits) (M,N); targets (M,) int64."""

    def cross_entropy_backward(self, logp, targets, grad_loss):
        """d logits = (softmax - onehot(t)) · grad_loss / M; grad_loss a number or 0-d array."""

    # --- batch norm (training: the batch's statistics); composed here of the kernels above,
    # for every backend that has no fused version -----------------------------------------
    def batch_norm(self, x, weight, bias, eps):
        """(y, mean, var) for x (N, C, I), per channel c over n and i: mean, biased var,
        y = (x - mean)·scale + bias with scale = weight/√(var + ε) (PyTorch's order)."""
        n, bc = x.shape[0] * x.shape[2], lambda v: self.broadcast_to(v.reshape(1, -1, 1), x.shape)
        mean = self.mul_scalar(self.sum(x, axis=(0, 2)), 1 / n)
        # + the mean of what is left (x - mean): exact where a channel is constant, where
        # the rounding of Σx·(1/n) would come out ×1/√ε as ~1e-4 instead of 0
        mean = self.add(mean, self.mul_scalar(self.sum(self.sub(x, bc(mean)), axis=(0, 2)), 1 / n))
        centered = self.sub(x, bc(mean))
        var = self.mul_scalar(self.sum(self.mul(centered, centered), axis=(0, 2)), 1 / n)
        scale = self.mul(weight, self.pow_scalar(self.add(var, self.full(var.shape, eps, x.dtype)),
                                                 -0.5))
        return self.add(self.mul(centered, bc(scale)), bc(bias)), mean, var

    def batch_norm_backward(self, x, grad, mean, var, weight, eps):
        """(dx, dweight, dbias) of batch_norm: with invstd = 1/√(var + ε), x̂ = (x - mean)·invstd
        and n = N·I, dbias = Σ g, dweight = Σ g·x̂, dx = weight·invstd·(g - dbias/n - x̂·dweight/n)
        (the mean and var depend on x too: the two subtracted terms)."""
        n, bc = x.shape[0] * x.shape[2], lambda v: self.broadcast_to(v.reshape(1, -1, 1), x.shape)
        invstd = self.pow_scalar(self.add(var, self.full(var.shape, eps, x.dtype)), -0.5)
        x_hat = self.mul(self.sub(x, bc(mean)), bc(invstd))
        dbias, dweight = self.sum(grad, axis=(0, 2)), self.sum(self.mul(grad, x_hat), axis=(0, 2))
        inner = self.sub(self.sub(grad, bc(self.mul_scalar(dbias, 1 / n))),
                         self.mul(x_hat, bc(self.mul_scalar(dweight, 1 / n))))
        return self.mul(inner, bc(self.mul(weight, invstd))), dweight, dbias

    # --- convolution and pooling ------------------------------------------------------
    def im2col(self, x, kh, kw, stride, padding):
        """cols[(n, ho, wo), (c, i, j)] = x[n, c, ho·sh - ph + i, wo·sw - pw + j] (0 outside):
        x (N,C,H,W) -> (N·Ho·Wo, C·kh·kw); stride, padding an int or (h, w)."""

    def col2im(self, cols, x_shape, kh, kw, stride, padding):
        """The adjoint of im2col: each cols entry added back onto its pixel -> (N,C,H,W)."""

    def max_pool2d(self, x, kernel, stride, padding):
        """(out, argmax): the max of each window (padding -inf, first maximum on ties, a NaN
        wins) and its h·W + w in the input plane (int64), both (N,C,Ho,Wo); kernel,
        stride, padding an int or (h, w)."""

    def max_pool2d_backward(self, grad, argmax, x_shape):
        """dx[n, c].flat[argmax] += grad: each window's gradient to its winner -> (N,C,H,W)."""

    # --- bilinear sampling (PyTorch's affine_grid / grid_sample) ------------------------
    def affine_grid(self, theta, H, W, align_corners):
        """grid[n, h, w] = θ[n] · (x_w, y_h, 1): theta (N,2,3) -> (N,H,W,2)."""

    def affine_grid_backward(self, grad_grid, align_corners):
        """dθ[n] = Σ_points grad ⊗ (x, y, 1) -> (N,2,3)."""

    def bilinear_sample(self, image, grid, padding_mode, align_corners):
        """out[n, c, i, j] = image[n, c] at grid[n, i, j] = (x, y) in [-1, 1], bilinear
        ('zeros' or 'border' outside) -> (N,C,Ho,Wo)."""

    def bilinear_sample_backward(self, image, grid, grad, padding_mode, align_corners):
        """(d image, d grid): the bilinear weights' scatter and their slopes."""

    # --- indexing and the optimizer -----------------------------------------------------
    def index_backward(self, grad, index, shape):
        """zeros(shape) with grad scatter-added at `index` (repeats add up)."""

    def sgd_update(self, param, grad, buf, lr, momentum, nesterov, weight_decay):
        """In place, PyTorch's rule (dampening 0): g = grad + λ·param; when μ ≠ 0
        buf = μ·buf + g, g = g + μ·buf (nesterov) or buf; param -= lr·g. Returns None."""

    @declared
    def adam_update(self, param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                    weight_decay, decoupled):
        """In place, PyTorch's Adam (decoupled=False: g = grad + λ·param) or AdamW (True:
        param ·= 1 - lr·λ, g = grad): m = β₁·m + (1-β₁)·g, v = β₂·v + (1-β₂)·g²,
        param -= lr/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε), t = step >= 1. Returns None."""

    # --- array helpers: the NumPy the Tensor layer does to .data itself -----------------
    def is_array(self, a):
        """True for this device's arrays."""

    def from_host(self, a):
        """Upload a NumPy array (the same array on the host)."""

    def to_host(self, a):
        """The values as a NumPy array (a readback on a GPU)."""

    def full(self, shape, value, dtype):
        """A new array of `shape` filled with `value`."""

    def broadcast_to(self, a, shape):
        """a broadcast to `shape` (NumPy's rules; a view on the host)."""

    def transpose(self, a, axes=None):
        """a with its axes permuted (reversed when None)."""

    def contiguous(self, a):
        """a in C order (itself if it already is; a 0-d array stays 0-d)."""

    def astype(self, a, dtype):
        """a as `dtype` (itself if it already is)."""

    def compare(self, a, b, op):
        """A bool array: op names a NumPy comparison ('equal', 'less', ...); b may be a number."""

    def argmax(self, a, axis=None):
        """int64 indices of the maxima along `axis` (of the flattened array when None)."""

    def take(self, a, index):
        """a[index] for a host index (ints, slices, integer or bool arrays)."""


# The families' named members and batch norm are defined above; every other entry only
# states its meaning, and raises until a backend implements it.
for _name in set(CONTRACT) - {"add", "sub", "mul", "div", "exp", "relu", "relu_backward",
                              "batch_norm", "batch_norm_backward"}:
    setattr(Backend, _name, declared(getattr(Backend, _name)))


def backend_class(name, base, namespace):
    """A `base` subclass whose methods are the contract's functions found in `namespace`
    (a kernel module's globals): a backend module is plain functions, its class the table."""
    table = {n: staticmethod(namespace[n]) for n in CONTRACT if callable(namespace.get(n))}
    return type(f"{name.capitalize()}Backend", (base,),
                {"name": name, "__module__": namespace["__name__"], **table})
