"""Neural-network ops, each a Function whose forward and backward call kernels.

Import as `from tinydeep import functional as F`. Names and conventions follow
PyTorch's `torch.nn.functional`, so results can be checked against it.
Every op checks its inputs (shapes, dtypes) before any kernel runs.
"""
import warnings

import numpy as np

from . import backends
from .tensor import Function, Tensor, check_float, normalize_axes

__all__ = ["relu", "linear", "log_softmax", "softmax", "cross_entropy", "mse_loss",
           "conv2d", "max_pool2d", "affine_grid", "grid_sample"]


def _need_tensor(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} needs a Tensor, got {type(x).__name__}")
    return x


def _need_vector(name, what, v, n):
    """v (a Tensor, an array or None) must hold n numbers, one per channel or class."""
    shape = tuple(np.shape(v.data if isinstance(v, Tensor) else v))
    if v is not None and shape != (n,):
        raise ValueError(f"{name}: {what} must have {n} elements, one per channel/class, "
                         f"got shape {shape}")


def _need_ndim(name, what, x, ndim):
    if x.ndim != ndim:
        raise ValueError(f"{name}: {what} must be {ndim}-D, got shape {tuple(x.shape)}")


def _need_sizes(name, what, x):
    """Refuse zero-size dimensions: an empty batch, no channels or an empty image leave
    nothing to convolve, pool or sample (the kernels split their work by these sizes)."""
    if min(x.shape, default=1) < 1:
        raise ValueError(f"{name}: {what} of shape {tuple(x.shape)} has a zero-size dimension "
                         f"(an empty batch, no channels or an empty image)")


def _pair(name, what, v, minimum):
    """An int or a pair of ints (PyTorch's rule for kernel_size, stride, padding) as a pair
    (h, w), each >= minimum; anything else is refused, never truncated."""
    pair = (v, v) if isinstance(v, (int, np.integer)) else v
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in pair)):
        raise TypeError(f"{name}: {what} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {v!r}")
    return int(pair[0]), int(pair[1])


# --- activations ---------------------------------------------------------

class ReLU(Function):
    def forward(self, x):
        check_float("relu", x)
        self.y = self.backend.relu(x)
        return self.y

    def backward(self, g):  # d relu(x) = [x > 0] dx
        return (self.backend.relu_backward(self.y, g),)


def relu(x):
    return ReLU.apply(_need_tensor("relu", x))


# --- linear layer ----------------------------------------------------------

class Linear(Function):
    """y = x Wᵀ + b with x (M, in), W (out, in), b (out,)."""

    def forward(self, x, w, b):
        k = self.backend
        self.x, self.w, self.has_bias = x, w, b is not None
        y = k.matmul_nt(x, w)
        return k.add_rowvec(y, b, out=y) if b is not None else y

    def backward(self, g):  # dx = g W, dW = gᵀ x, db = Σ_rows g
        k = self.backend
        return (k.matmul(g, self.w) if self.needs_grad[0] else None,
                k.matmul_tn(g, self.x) if self.needs_grad[1] else None,
                k.sum(g, axis=0) if self.has_bias and self.needs_grad[2] else None)


def linear(x, weight, bias=None):
    """x (..., in) -> (..., out); leading dimensions are flattened into rows."""
    for t in (x, weight) + ((bias,) if bias is not None else ()):
        _need_tensor("linear", t)
    check_float("linear", x.data, weight.data, *([bias.data] if bias is not None else []))
    _need_ndim("linear", "weight", weight, 2)
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {tuple(x.shape)} does not match weight of "
                         f"shape {tuple(weight.shape)} (needs last dim {weight.shape[1]})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {tuple(bias.shape)} should be ({weight.shape[0]},)")
    lead = x.shape[:-1]
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    y = Linear.apply(x2, weight, bias)
    return y if x.ndim == 2 else y.reshape(*lead, weight.shape[0])


# --- softmax and losses --------------------------------------------------------

def _log_softmax_kernels(k, x):
    """The backend's log_softmax and its backward over dim 1: of rows x (M, N), or of x
    (O, K, I), where a backend has kernels over a middle axis (the CPU's, beside the contract)."""
    if x.ndim == 2:
        return k.log_softmax, k.log_softmax_backward
    return k.log_softmax_middle, k.log_softmax_middle_backward


class LogSoftmax(Function):
    def forward(self, x):
        log_softmax, self.log_softmax_backward = _log_softmax_kernels(self.backend, x)
        self.logp = log_softmax(x)
        return self.logp

    def backward(self, g):  # d logp = g - softmax Σ g
        return (self.log_softmax_backward(self.logp, g),)


class Softmax(Function):
    def forward(self, x):
        log_softmax, self.log_softmax_backward = _log_softmax_kernels(self.backend, x)
        self.logp = log_softmax(x)
        self.p = self.backend.exp(self.logp)
        return self.p

    def backward(self, g):  # d p = p (g - Σ g p), which is log_softmax's backward applied to g p
        return (self.log_softmax_backward(self.logp, self.backend.mul(g, self.p)),)


def _rows(name, x, dim):
    _need_tensor(name, x)
    check_float(name, x.data)
    if not (x.ndim == 2 or _middle(x)) or normalize_axes(dim, x.ndim, name) != (1,):
        raise ValueError(f"{name} works over dim=1 of a 2-D tensor, got shape {tuple(x.shape)} "
                         f"and dim={dim}")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: shape {tuple(x.shape)} has no classes (dim 1 is empty)")
    return x


def has_middle_softmax(device):
    """Whether the backend of `device` has log_softmax kernels over a middle axis (the CPU)."""
    return hasattr(backends.get(device), "log_softmax_middle")


def _middle(x):
    """x is (O, K, I), I > 1, on a backend with kernels over the middle axis."""
    return x.ndim == 3 and x.shape[2] > 1 and has_middle_softmax(x.device)


def _any_dim(x, dim):
    """Not over dim 1 of a 2-D tensor (or of an (O, K, I) one, _middle), or no elements: the
    any-dim, any-rank method (tensor_api.py), which comes back here with one of those."""
    return (isinstance(x, Tensor) and isinstance(dim, (int, np.integer)) and not isinstance(dim, bool)
            and x.dtype.kind == "f" and (x.numel() == 0 or not (x.ndim == 2 and dim in (1, -1))
                                         and not (_middle(x) and dim in (1, -2))))


def _implicit_dim(name, x, dim):
    """dim, or where it is None PyTorch's legacy choice (0 for 0-, 1- and 3-D x, else 1), with
    PyTorch's warning."""
    if dim is None and isinstance(x, Tensor):
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                      f"call to include dim=X as an argument.", stacklevel=3)
        return 0 if x.ndim in (0, 1, 3) else 1
    return dim


def log_softmax(x, dim=None):
    dim = _implicit_dim("log_softmax", x, dim)
    return x.log_softmax(dim) if _any_dim(x, dim) else LogSoftmax.apply(_rows("log_softmax", x, dim))


def softmax(x, dim=None):
    dim = _implicit_dim("softmax", x, dim)
    return x.softmax(dim) if _any_dim(x, dim) else Softmax.apply(_rows("softmax", x, dim))


class CrossEntropy(Function):
    """mean_i [ logsumexp(z_i) - z_i[t_i] ], computed from a max-shifted log-softmax."""

    def forward(self, logits, targets):
        loss, self.logp = self.backend.cross_entropy(logits, targets)  # loss: a 0-d array
        self.targets = targets
        return loss

    def backward(self, g):  # d loss / d z = (softmax(z) - onehot(t)) / M
        return (self.backend.cross_entropy_backward(self.logp, self.targets, g), None)


def _cross_entropy_fused(logits, targets):
    """Mean cross-entropy of logits (M, C) against integer class targets (M,): one kernel."""
    _rows("cross_entropy", logits, 1)
    if isinstance(targets, Tensor) and targets.device != logits.device:
        raise ValueError(f"cross_entropy: logits are on {logits.device!r} but targets on "
                         f"{targets.device!r}; move them with .to(device)")
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: targets of shape {t.shape} do not match logits of "
                         f"shape {tuple(logits.shape)} (need ({logits.shape[0]},))")
    if t.size == 0:
        raise ValueError("cross_entropy of an empty batch is undefined")
    # Targets already on the GPU are not range-checked here (that would mean a readback);
    # the kernel makes the loss NaN for a target outside [0, C).
    if isinstance(t, np.ndarray) and (t.min() < 0 or t.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: targets must lie in [0, {logits.shape[1]}), "
                         f"got values from {t.min()} to {t.max()}")
    arrays = backends.arrays(logits.device)
    if isinstance(t, np.ndarray) and logits.device != "cpu":
        t = arrays.from_host(t)                      # the batch's labels go up with it
    return CrossEntropy.apply(logits, arrays.astype(t, np.int64))


def mse_loss(input, target, reduction="mean"):
    """(input - target)² reduced by `reduction` ('mean', 'sum', 'none'); shapes must match
    exactly (no silent broadcasting)."""
    _need_tensor("mse_loss", input)
    t_shape = tuple(np.shape(target.data if isinstance(target, Tensor) else target))
    if tuple(input.shape) != t_shape:
        raise ValueError(f"mse_loss: input shape {tuple(input.shape)} != target shape {t_shape}")
    if input.numel() == 0 and reduction == "mean":
        raise ValueError("mse_loss of an empty batch is undefined")
    return _reduce("mse_loss", (input - target) ** 2, reduction)


# --- convolution and pooling ------------------------------------------------

class Conv2d(Function):
    """Convolution as a matrix product: unfold every k×k patch into a row
    (im2col), multiply by the flattened filters, fold gradients back (col2im)."""

    def forward(self, x, w, b, stride, padding):
        k = self.backend
        self.direct = (getattr(k, "prefer_direct", None) is not None
                       and k.prefer_direct(x.shape, w.shape, stride, padding, x.itemsize))
        if self.direct:         # image by image, no batch-sized patch matrix (cpu_conv.py)
            self.saved = (x, w, stride, padding, b is not None)
            return k.conv2d_forward(x, w, stride, padding, bias=b)
        n, _, h, wd = x.shape
        c_out, _, kh, kw = w.shape
        self.geom = (x.shape, kh, kw, stride, padding)
        self.ho = (h + 2 * padding[0] - kh) // stride[0] + 1
        self.wo = (wd + 2 * padding[1] - kw) // stride[1] + 1
        self.cols = k.im2col(x, kh, kw, stride, padding)          # (N·Ho·Wo, C·kh·kw)
        self.w2 = w.reshape(c_out, -1)                            # (C_out, C·kh·kw)
        y = k.matmul_nt(self.cols, self.w2)                       # (N·Ho·Wo, C_out)
        if b is not None:
            k.add_rowvec(y, b, out=y)
        self.has_bias = b is not None
        return self.backend.contiguous(
            self.backend.transpose(y.reshape(n, self.ho, self.wo, c_out), (0, 3, 1, 2)))

    def backward(self, g):
        k = self.backend
        if self.direct:
            x, w, stride, padding, has_bias = self.saved
            return (k.conv2d_backward_input(g, w, x.shape, stride, padding)
                    if self.needs_grad[0] else None,
                    k.conv2d_backward_weight(g, x, w.shape, stride, padding)
                    if self.needs_grad[1] else None,
                    k.conv2d_backward_bias(g) if has_bias and self.needs_grad[2] else None)
        c_out = self.w2.shape[0]
        g2 = self.backend.contiguous(self.backend.transpose(g, (0, 2, 3, 1))).reshape(-1, c_out)
        x_shape, kh, kw, stride, padding = self.geom
        dx = (k.col2im(k.matmul(g2, self.w2), x_shape, kh, kw, stride, padding)
              if self.needs_grad[0] else None)
        dw = (k.matmul_tn(g2, self.cols).reshape(c_out, x_shape[1], kh, kw)
              if self.needs_grad[1] else None)
        db = k.sum(g2, axis=0) if self.has_bias and self.needs_grad[2] else None
        return dx, dw, db


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """input (N, C, H, W) * weight (C_out, C, kh, kw) -> (N, C_out, Ho, Wo); padding may be
    'same' or 'valid', dilation spaces the kernel's taps (see _conv2d_general)."""
    if isinstance(padding, str) or dilation not in (1, (1, 1)):
        return _conv2d_general(input, weight, bias, stride, padding, dilation)
    for t in (input, weight) + ((bias,) if bias is not None else ()):
        _need_tensor("conv2d", t)
    check_float("conv2d", input.data, weight.data, *([bias.data] if bias is not None else []))
    _need_ndim("conv2d", "input", input, 4)
    _need_ndim("conv2d", "weight", weight, 4)
    _need_sizes("conv2d", "input", input)
    _need_sizes("conv2d", "weight", weight)
    stride, padding = _pair("conv2d", "stride", stride, 1), _pair("conv2d", "padding", padding, 0)
    n, c, h, w = input.shape
    c_out, c_in, kh, kw = weight.shape
    if c != c_in:
        raise ValueError(f"conv2d: input has {c} channels {tuple(input.shape)} but weight "
                         f"expects {c_in} {tuple(weight.shape)}")
    if h + 2 * padding[0] < kh or w + 2 * padding[1] < kw:
        raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input "
                         f"{h + 2 * padding[0]}x{w + 2 * padding[1]}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"conv2d: bias shape {tuple(bias.shape)} should be ({c_out},)")
    return Conv2d.apply(input, weight, bias, stride=stride, padding=padding)


class MaxPool2d(Function):
    def forward(self, x, kernel_size, stride, padding, indices=None):
        self.x_shape = x.shape
        y, self.argmax = self.backend.max_pool2d(x, kernel_size, stride, padding)
        if indices is not None:     # (return_indices: the caller's list receives them)
            indices.append(self.argmax)
        return y

    def backward(self, g):  # the gradient goes to the element that won each window
        return (self.backend.max_pool2d_backward(g, self.argmax, self.x_shape),)


def _pool_args(name, input, kernel_size, stride, padding):
    """Check a pooling's input (a float NCHW tensor); return kernel, stride and padding as
    (h, w) pairs. stride=None (or PyTorch's empty list) means stride = kernel_size."""
    _need_tensor(name, input)
    check_float(name, input.data)
    _need_ndim(name, "input", input, 4)
    _need_sizes(name, "input", input)
    kernel = _pair(name, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or (isinstance(stride, list) and not stride) \
        else _pair(name, "stride", stride, 1)
    return kernel, stride, _pair(name, "padding", padding, 0)


def _pool_extra(name, input, kernel, stride, padding, ceil_mode, dilation=(1, 1)):
    """Check a pooling's geometry; return the rows and columns it must add on the bottom and
    right for ceil_mode, PyTorch's rule: ⌈(n + 2p - k)/s⌉ + 1 windows, less the last if it
    would start in the right padding (⌊·⌋ + 1 windows without ceil_mode: nothing to add).
    Dilation d spreads a window over k = d(k - 1) + 1 (the padding rule keeps the taps)."""
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel "
                         f"size {kernel} in each dimension")
    kernel = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    extra = []
    for n, k, s, p in zip(input.shape[2:], kernel, stride, padding):
        out = -(-(n + 2 * p - k) // s) + 1 if ceil_mode else (n + 2 * p - k) // s + 1
        out -= bool(ceil_mode and (out - 1) * s >= n + p)
        if out < 1:
            raise ValueError(f"{name}: window {kernel} is larger than the input "
                             f"{tuple(input.shape)} with padding {padding}")
        extra.append(max((out - 1) * s + k - n - 2 * p, 0))
    return extra


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """The maximum of each window (padding: -inf). ceil_mode: a last partial window (see
    _pool_extra). dilation d: a window's k taps d apart, gathered from the padded input into
    side-by-side k×k blocks that the plain kernel pools with stride k (the gather's gradient
    adds back up). return_indices: also each maximum's h·W + w in its input plane."""
    kernel, stride, padding = _pool_args("max_pool2d", input, kernel_size, stride, padding)
    dilation = _pair("max_pool2d", "dilation", dilation, 1)
    eh, ew = _pool_extra("max_pool2d", input, kernel, stride, padding, ceil_mode, dilation)
    rows, cols = np.arange(input.shape[2] + eh), np.arange(input.shape[3] + ew)
    if dilation == (1, 1):
        x = pad(input, (0, ew, 0, eh), value=-np.inf) if eh or ew else input
    else:
        ph, pw = padding
        x = pad(input, (pw, pw + ew, ph, ph + eh), value=-np.inf)
        rows, cols = ((np.arange((n - d * (k - 1) - 1) // s + 1)[:, None] * s + np.arange(k) * d).ravel()
                      for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation))
        x, stride, padding, rows, cols = x[:, :, rows[:, None], cols], kernel, (0, 0), rows - ph, cols - pw
    found = [] if return_indices else None
    y = MaxPool2d.apply(x, kernel_size=kernel, stride=stride, padding=padding, indices=found)
    if not return_indices:
        return y
    r, c = divmod(backends.arrays(input.device).to_host(found[0]), x.shape[3])   # in x's plane
    return y, Tensor(rows[r] * input.shape[3] + cols[c], device=input.device, dtype=np.int64)


# --- spatial transformer: affine grids and bilinear sampling ----------------------

class AffineGrid(Function):
    def forward(self, theta, h, w, align_corners):
        self.align_corners = align_corners
        return self.backend.affine_grid(theta, h, w, align_corners)

    def backward(self, g):  # grid = base · θᵀ, so dθ = Σ_points g ⊗ base
        return (self.backend.affine_grid_backward(g, self.align_corners),)


def affine_grid(theta, size, align_corners=False):
    """theta (N, 2, 3) and size (N, C, H, W) -> sampling grid (N, H, W, 2) in [-1, 1] coords."""
    _need_tensor("affine_grid", theta)
    check_float("affine_grid", theta.data)
    if theta.ndim != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"affine_grid: theta must have shape (N, 2, 3), got {tuple(theta.shape)}")
    if (len(size) != 4 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                  for n in size) or size[0] != theta.shape[0] or min(size) < 1):
        raise ValueError(f"affine_grid: size must be (N, C, H, W) with N = {theta.shape[0]} "
                         f"and positive sizes (integers), got {tuple(size)}")
    return AffineGrid.apply(theta, h=int(size[2]), w=int(size[3]), align_corners=bool(align_corners))


class GridSample(Function):
    def forward(self, image, grid, padding_mode, align_corners):
        self.image, self.grid = image, grid
        self.opts = (padding_mode, align_corners)
        return self.backend.bilinear_sample(image, grid, *self.opts)

    def backward(self, g):  # image gradient: scatter of the bilinear weights; grid: their slope
        return self.backend.bilinear_sample_backward(self.image, self.grid, g, *self.opts)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Sample input (N, C, H, W) at grid (N, Ho, Wo, 2) points (x, y) in [-1, 1]."""
    _need_tensor("grid_sample", input)
    _need_tensor("grid_sample", grid)
    check_float("grid_sample", input.data, grid.data)
    if mode != "bilinear":
        raise ValueError(f"grid_sample: only mode='bilinear' is implemented, got {mode!r}")
    if padding_mode not in ("zeros", "border"):
        raise ValueError(f"grid_sample: padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    _need_ndim("grid_sample", "input", input, 4)
    _need_sizes("grid_sample", "input", input)
    if grid.ndim != 4 or grid.shape[3] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(f"grid_sample: grid must have shape (N, Ho, Wo, 2) with N = "
                         f"{input.shape[0]}, got {tuple(grid.shape)}")
    # PyTorch samples NaN at a NaN or infinite point; the kernels would drop it as out of
    # range (0). Refused on the host, where looking is cheap (a GPU grid is not read back).
    if isinstance(grid.data, np.ndarray) and not np.isfinite(grid.data).all():
        raise ValueError("grid_sample: the grid holds NaN or infinite coordinates (a "
                         "diverged localization net?)")
    return GridSample.apply(input, grid, padding_mode=padding_mode, align_corners=bool(align_corners))


# --- PyTorch's first-hour functions: compositions, so their backward comes free --------
from .tensor import Place, Unary  # noqa: E402
from .rng import generator  # noqa: E402

__all__ += ["sigmoid", "tanh", "leaky_relu", "gelu", "dropout", "one_hot", "nll_loss",
            "binary_cross_entropy", "binary_cross_entropy_with_logits", "avg_pool2d",
            "adaptive_avg_pool2d", "pad", "layer_norm", "batch_norm", "embedding"]
REDUCTIONS = ("mean", "sum", "none")


def _reduce(name, loss, reduction, weight_sum=None, kept=True):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else (
        loss.mean() if weight_sum is None else _per_weight(loss.sum(), weight_sum, kept))


def _per_weight(total, weight_sum, kept):
    """total / Σw, as PyTorch's: where every target is ignored NaN with a zero gradient; where
    targets are kept but weigh 0, 0/0 (NaN, its gradient too)."""
    return total / weight_sum if kept else total * 0.0 + float("nan")


def sigmoid(x):
    return Unary.apply(_need_tensor("sigmoid", x), op="sigmoid")


def tanh(x):
    return Unary.apply(_need_tensor("tanh", x), op="tanh")


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, slope·x elsewhere (the gradient at 0 is the slope's, as PyTorch's)."""
    pos = (_need_tensor("leaky_relu", x) > 0).to(x.dtype)
    return x * (pos * (1.0 - negative_slope) + negative_slope)


def gelu(x, approximate="none"):
    """x·Φ(x). 'tanh': 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), as PyTorch's."""
    _need_tensor("gelu", x)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + (0.7978845608028654 * (x + 0.044715 * x * x * x)).tanh())
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Unary.apply(x, op="gelu")


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted
    dropout, as PyTorch's); the identity when not training. Masks from manual_seed's
    generator."""
    _need_tensor("dropout", x)
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return x
    keep = (generator().random(x.shape) >= p) / (1.0 - p) if p < 1 else np.zeros(x.shape)
    return x * Tensor(keep, device=x.device, dtype=x.dtype)


def one_hot(tensor, num_classes=-1):
    t = _need_tensor("one_hot", tensor).numpy()
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot is only applicable to index tensors, got dtype {t.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or (
            num_classes < -1 or num_classes == -1 and not t.size):
        raise ValueError(f"one_hot: num_classes must be an int >= 0, or -1 (the largest class "
                         f"+ 1) for a non-empty tensor, got {num_classes!r}")
    n = int(t.max()) + 1 if num_classes == -1 else int(num_classes)
    if t.size and (t.min() < 0 or t.max() >= n):
        raise ValueError(f"one_hot: class values must lie in [0, {n}), got {t.min()}..{t.max()}")
    return Tensor(np.eye(n, dtype=np.int64)[t], device=tensor.device, dtype=np.int64)


def _class_last(name, x, target, ignore_index):
    """(N, C, d1, ...) logits and (N, d1, ...) targets as (M, C) rows and (M,) labels, each
    label in [0, C) or ignore_index: all checked before any kernel runs."""
    _need_tensor(name, x)
    check_float(name, x.data)
    t = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
    want = x.shape[:1] + x.shape[2:] if x.ndim >= 2 else ()
    if t.dtype.kind not in "iu" or t.shape != want or x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"{name}: input of shape {x.shape} needs integer class targets of "
                         f"shape {want}, got {t.shape} {t.dtype}")
    c = x.shape[1] if x.ndim >= 2 else x.shape[0]
    if np.any(((t < 0) | (t >= c)) & (t != ignore_index)):
        raise ValueError(f"{name}: targets must lie in [0, {c}) or be ignore_index={ignore_index}")
    if x.ndim < 2:
        x, t = x.reshape(1, -1), t.reshape(1)
    if x.ndim > 2:
        x = x.permute(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])
    return x, np.asarray(t, dtype=np.int64).reshape(-1)


def _per_sample(input):
    """The shape of a per-sample loss: (N, d1, ...) for input (N, C, d1, ...), () for (C,)."""
    return input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-w[t]·input[t] per sample (input: log-probabilities); 'mean' divides by Σ w[t] over
    the samples not ignored, as PyTorch's."""
    x, t = _class_last("nll_loss", input, target, ignore_index)
    _need_vector("nll_loss", "weight", weight, x.shape[1])
    keep = t != ignore_index
    w = np.ones(x.shape[1]) if weight is None else (
        weight.numpy() if isinstance(weight, Tensor) else np.asarray(weight))
    safe = np.where(keep, t, 0)
    wt = np.where(keep, w[safe], 0.0)
    picked = x[np.arange(len(t)), safe] * Tensor(-wt, device=x.device, dtype=x.dtype)
    loss = _reduce("nll_loss", picked, reduction, float(wt.sum()), bool(keep.any()))
    return loss.reshape(_per_sample(input)) if reduction == "none" else loss


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """PyTorch's cross_entropy: nll_loss of log_softmax over dim 1, with optional class
    weights, an ignored class and label smoothing ε (the target mixed with ε/C uniform).
    Plain mean over (M, C) logits runs the fused kernel."""
    # Targets already on a GPU are not read back to look for ignore_index (a step would wait
    # for the GPU): there the fused kernel runs unless ignore_index is a class, and a target
    # outside [0, C) (-100 included) makes the loss and that row's gradient NaN.
    on_gpu = isinstance(target, Tensor) and target.device != "cpu"
    if on_gpu and isinstance(input, Tensor) and input.ndim == 2:
        fusable = not 0 <= ignore_index < input.shape[1]
    else:
        fusable = not (np.asarray(target) == ignore_index).any()
    if (weight is None and reduction == "mean" and label_smoothing == 0 and isinstance(input, Tensor)
            and input.ndim == 2 and fusable):
        return _cross_entropy_fused(input, target)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    x, t = _class_last("cross_entropy", input, target, ignore_index)
    logp = x.log_softmax(1)
    nll = nll_loss(logp, t, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll.reshape(_per_sample(input)) if reduction == "none" else nll
    keep = t != ignore_index
    w = None if weight is None else Tensor(weight.numpy() if isinstance(weight, Tensor) else weight,
                                           device=x.device, dtype=x.dtype)
    smooth = -((logp * w) if w is not None else logp).sum(1) * Tensor(keep, device=x.device, dtype=x.dtype)
    if reduction == "mean":
        wt = (np.ones(x.shape[1]) if w is None else w.numpy())[np.where(keep, t, 0)] * keep
        smooth = _per_weight(smooth.sum(), float(wt.sum()), bool(keep.any()))
    else:
        smooth = _reduce("cross_entropy", smooth, reduction)
        if reduction == "none":
            smooth, nll = (v.reshape(_per_sample(input)) for v in (smooth, nll))
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / x.shape[1])


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w·(t·log x + (1-t)·log(1-x)), logs clamped at -100; PyTorch's gradient w·(x - t) /
    max(x(1-x), 1e-12), finite at x = 0 or 1: the value plus x·c - (x·c) = 0, of gradient c."""
    _need_tensor("binary_cross_entropy", input)
    t = target if isinstance(target, Tensor) else Tensor(target, device=input.device, dtype=input.dtype)
    if t.shape != input.shape:
        raise ValueError(f"binary_cross_entropy: target shape {t.shape} != input shape {input.shape}")
    # probabilities, as PyTorch checks (on the host only: a GPU input is not read back)
    if isinstance(input.data, np.ndarray) and not ((input.data >= 0) & (input.data <= 1)).all():
        raise ValueError("binary_cross_entropy: input values must be probabilities in [0, 1] "
                         "(NaN is not); for logits use binary_cross_entropy_with_logits")
    x = input.detach()
    xc = input * ((x - t.detach()) / (x * (1 - x)).clamp(min=1e-12))
    log_1mx = Unary.apply(-x, op="log1p")       # log(1 - x), exact for a small x
    loss = (-(t * x.log().clamp(min=-100) + (1 - t) * log_1mx.clamp(min=-100))
            + (xc - xc.detach()))
    return _reduce("binary_cross_entropy", loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """BCE of sigmoid(x) = (1-t)·softplus(x) + pw·t·softplus(-x), softplus(x) = log(1 + e^x):
    no exp overflows, no log(1 + tiny) rounds, and the gradient (1-t)·σ(x) - pw·t·σ(-x)
    subtracts nothing where t is 0 or 1 (and is σ(0) - t at 0, not a kink's choice)."""
    _need_tensor("binary_cross_entropy_with_logits", input)
    t = target if isinstance(target, Tensor) else Tensor(target, device=input.device, dtype=input.dtype)
    if t.shape != input.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {t.shape} != input "
                         f"shape {input.shape}")
    loss = ((1 - t) * Unary.apply(input, op="softplus")
            + (t if pos_weight is None else pos_weight * t) * Unary.apply(-input, op="softplus"))
    return _reduce("binary_cross_entropy_with_logits", loss if weight is None else loss * weight,
                   reduction)


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dimensions: pad = (left, right, top, bottom, ...), from the
    last dimension backwards as PyTorch's; negative amounts crop. Modes other than
    'constant' (value, default 0): see _pad_by_index."""
    _need_tensor("pad", input)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {pad} must hold a (before, after) pair per padded dimension")
    if any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) for p in pad):
        raise TypeError(f"pad: amounts must be integers, got {pad}")
    if mode != "constant":
        return _pad_by_index(input, pad, mode, value)
    crop, place, shape = [slice(None)] * input.ndim, [slice(None)] * input.ndim, list(input.shape)
    for i in range(len(pad) // 2):
        d, lo, hi = input.ndim - 1 - i, int(pad[2 * i]), int(pad[2 * i + 1])
        if max(-lo, 0) + max(-hi, 0) > input.shape[d]:
            raise ValueError(f"pad: cropping {-min(lo, 0)} and {-min(hi, 0)} from dim {d} of "
                             f"size {input.shape[d]} leaves less than nothing")
        crop[d] = slice(max(-lo, 0), input.shape[d] - max(-hi, 0))
        shape[d] = input.shape[d] + lo + hi
        place[d] = slice(max(lo, 0), shape[d] - max(hi, 0))
    x = input[tuple(crop)] if any(s != slice(None) for s in crop) else input
    y = Place.apply(x, index=tuple(place), shape=tuple(shape))
    if value:   # (None or 0: the zeros Place leaves)
        fill = np.full(shape, value, dtype=input.dtype)
        fill[tuple(place)] = 0
        y = y + Tensor(fill, device=input.device, dtype=input.dtype)
    return y


def _pad_by_index(x, pad, mode, value):
    """Each padded dim gathered at the positions j = -left .. n-1+right mapped into 0..n-1
    (the gradient scatters back, adding up): 'reflect' mirrors about the edge without
    repeating it (j -> n-1 - |n-1 - |j||), 'replicate' repeats it (j clipped), 'circular'
    wraps (crops first, then j mod the cropped size). As PyTorch's: the last 1, 2 or 3 dims
    of an input with 1 or 2 more (a batch and/or channels)."""
    k = len(pad) // 2
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}")
    if value is not None and value != 0:
        raise ValueError(f"pad: mode {mode!r} takes no value (got value={value!r})")
    if not 1 <= k <= 3 or x.ndim not in (k + 1, k + 2):
        raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of an input with 1 "
                         f"or 2 more; {len(pad)} amounts do not fit a {x.ndim}-D input")
    for i in range(k):
        d, lo, hi = x.ndim - 1 - i, int(pad[2 * i]), int(pad[2 * i + 1])
        n, out = x.shape[d], x.shape[d] + lo + hi
        m = n - max(-lo, 0) - max(-hi, 0)       # circular: the size after the crop
        fits = {"reflect": max(lo, hi) < n and out >= 1, "replicate": out >= 1,
                "circular": max(lo, hi) <= m and out >= 0 and (m >= 1 or out == 0)}[mode]
        if not fits:
            raise ValueError(f"pad: {mode} padding ({lo}, {hi}) does not fit dim {d} of size {n} "
                             f"(reflect: each < {n}; circular: each <= the size after cropping, "
                             f"{m}; a non-empty result)")
        j = np.arange(-lo, n + hi)
        if mode == "reflect":
            idx = n - 1 - np.abs(n - 1 - np.abs(j))
        elif mode == "replicate":
            idx = np.clip(j, 0, n - 1)
        else:
            idx = max(-lo, 0) + np.arange(-max(lo, 0), m + max(hi, 0)) % max(m, 1)
        x = x[(slice(None),) * d + (idx,)]
    return x


def _conv2d_general(input, weight, bias, stride, padding, dilation):
    """Dilation as a kernel with zeros between its taps (Place), 'same' as the padding
    that keeps the size (the odd one on the bottom/right, as PyTorch's), then conv2d."""
    _need_tensor("conv2d", weight)
    _need_ndim("conv2d", "weight", weight, 4)
    dh, dw = _pair("conv2d", "dilation", dilation, 1)
    if (dh, dw) != (1, 1):
        o, c, kh, kw = weight.shape
        shape = (o, c, (kh - 1) * dh + 1, (kw - 1) * dw + 1)
        weight = Place.apply(weight, index=(slice(None), slice(None), slice(None, None, dh),
                                            slice(None, None, dw)), shape=shape)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if _pair("conv2d", "stride", stride, 1) != (1, 1):
            raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
        th, tw = weight.shape[2] - 1, weight.shape[3] - 1
        if th % 2 or tw % 2:
            input = pad(input, (tw // 2, tw - tw // 2, th // 2, th - th // 2))
            padding = 0
        else:
            padding = (th // 2, tw // 2)
    elif isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    return conv2d(input, weight, bias, stride, padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """The mean of each window, as a convolution of each channel with 1/(kh·kw). The divisor
    counts the window's positions inside the input and its padding (count_include_pad,
    PyTorch's default) or inside the input alone, or is divisor_override. ceil_mode: a last
    partial window (see _pool_extra) over zeros that no divisor counts."""
    (kh, kw), stride, padding = _pool_args("avg_pool2d", input, kernel_size, stride, padding)
    if divisor_override is not None and not divisor_override:
        raise ValueError("avg_pool2d: divisor_override must not be zero")
    eh, ew = _pool_extra("avg_pool2d", input, (kh, kw), stride, padding, ceil_mode)
    n, c, h, w = input.shape
    x = input.reshape(n * c, 1, h, w)
    ones = Tensor(np.full((1, 1, kh, kw), 1.0 / (kh * kw)), device=input.device, dtype=input.dtype)
    y = conv2d(pad(x, (0, ew, 0, eh)) if eh or ew else x, ones, None, stride, padding)

    def count(size, k, s, p, out):   # per output position, along one dim
        start = np.arange(out) * s - p
        return (np.minimum(start + k, size + p) - start if count_include_pad
                else np.minimum(start + k, size) - np.maximum(start, 0))
    div = (np.outer(count(h, kh, stride[0], padding[0], y.shape[2]),
                    count(w, kw, stride[1], padding[1], y.shape[3]))
           if divisor_override is None else np.full(y.shape[2:], divisor_override))
    if (div != kh * kw).any():   # (a constant: no gradient)
        y = y * Tensor(kh * kw / div, device=input.device, dtype=input.dtype)
    return y.reshape(n, c, *y.shape[2:])


def adaptive_avg_pool2d(input, output_size):
    """Output cell (i, j) is the mean of rows ⌊iH/oh⌋..⌈(i+1)H/oh⌉ and likewise columns."""
    _need_tensor("adaptive_avg_pool2d", input)
    _need_ndim("adaptive_avg_pool2d", "input", input, 4)
    oh, ow = _pair("adaptive_avg_pool2d", "output_size", output_size, 1)
    h, w = input.shape[2:]
    if not h or not w:
        raise ValueError(f"adaptive_avg_pool2d: an empty image, shape {tuple(input.shape)}")
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    from .creation import stack
    cells = lambda n, o: [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]  # noqa: E731
    rows = [stack([input[:, :, a:b, p:q].mean((2, 3)) for p, q in cells(w, ow)], -1)
            for a, b in cells(h, oh)]
    return stack(rows, -2)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / √(var + ε) over the last len(normalized_shape) dims (biased var): batch
    norm's kernels with each row as a channel, then weight and bias elementwise."""
    _need_tensor("layer_norm", input)
    n = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not n or tuple(input.shape[input.ndim - len(n):]) != n:
        raise ValueError(f"layer_norm: input shape {input.shape} does not end in {n} (at least one dim)")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != n:
            raise ValueError(f"layer_norm: {name} of shape {tuple(t.shape)}, not normalized_shape {n}")
    rows = input.reshape(1, -1, int(np.prod(n)))
    y = BatchNorm.apply(rows, None, None, eps=eps, running=(None, None, 0)).reshape(input.shape)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


class BatchNorm(Function):
    """Training-mode batch norm of x as (N, C, I) by the batch's statistics (the backend's
    batch_norm kernels); the running (mean, var) move by momentum, var unbiased (PyTorch's)."""
    def forward(self, x, weight, bias, eps, running):
        check_float("batch_norm", *(a for a in (x, weight, bias) if a is not None))
        k, (N, C) = self.backend, x.shape[:2]
        weight, bias = (k.full((C,), v, x.dtype) if a is None else a for a, v in ((weight, 1), (bias, 0)))
        I = int(np.prod(x.shape[2:], dtype=np.int64))            # (not -1: a 0 in N or C)
        self.x, self.eps, self.weight = k.contiguous(x).reshape(N, C, I), eps, weight
        y, self.mean, self.var = k.batch_norm(self.x, weight, bias, eps)
        n, (run_mean, run_var, m) = N * self.x.shape[2], running
        if run_mean is not None:
            for run, new in ((run_mean, self.mean), (run_var, k.mul_scalar(self.var, n / (n - 1)))):
                run.data = k.add(k.mul_scalar(run.data, 1 - m), k.mul_scalar(new, m))
        return y.reshape(x.shape)

    def backward(self, g):
        k = self.backend
        dx, dw, db = k.batch_norm_backward(self.x, k.contiguous(g).reshape(self.x.shape),
                                           self.mean, self.var, self.weight, self.eps)
        return (dx.reshape(g.shape), dw if self.needs_grad[1] else None,
                db if self.needs_grad[2] else None)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize over every dim but 1 (channels): in training by the batch's statistics, the
    running ones moving by `momentum` (unbiased variance, as PyTorch); in eval by those."""
    _need_tensor("batch_norm", input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {tuple(input.shape)}")
    for what, v in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        _need_vector("batch_norm", what, v, input.shape[1])
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed in evaluation "
                         "mode (training=False)")
    shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    if input.shape[1] == 0:
        return input * 1.0                     # no channels: the empty result, as PyTorch's
    if training:
        n = input.numel() // input.shape[1]
        if n < 2:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {input.shape}")
        return BatchNorm.apply(input, weight, bias, eps=eps,
                               running=(running_mean, running_var, momentum))
    # (x - mean) · weight/√(var + ε), the per-channel scale first (as PyTorch): one full pass
    scale = (running_var.reshape(shape) + eps) ** -0.5
    scale = scale if weight is None else scale * weight.reshape(shape)
    y = (input - running_mean.reshape(shape)) * scale
    return y if bias is None else y + bias.reshape(shape)


class _ScaleGrad(Function):
    """x unchanged; its gradient g·s (s an array of x's shape)."""
    def forward(self, x, s):
        self.s = s
        return x

    def backward(self, g):
        return self.backend.mul(g, self.s), None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """weight[input]: rows picked by integer indices; the gradient adds up per row, except
    at padding_idx (negative counts from the end), whose row gets none (PyTorch's).
    max_norm: first, each picked row whose norm_type-norm exceeds max_norm is scaled in place
    by max_norm / (norm + 1e-7) (no gradient). scale_grad_by_freq: each row's gradient is
    divided by how many times the input picks it."""
    _need_ndim("embedding", "weight", _need_tensor("embedding", weight), 2)
    idx = input.numpy() if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise IndexError(f"embedding: index out of range [0, {weight.shape[0]})")
    if sparse:
        raise ValueError("embedding: sparse=True is not supported (tinydeep has no sparse gradients)")
    if max_norm is not None or scale_grad_by_freq:
        rows, inverse, counts = np.unique(idx, return_inverse=True, return_counts=True)
    if max_norm is not None and rows.size:
        norm = np.linalg.norm(weight.detach()[rows].numpy(), norm_type, axis=1)
        scale = np.ones((weight.shape[0], 1))
        scale[rows[norm > max_norm], 0] = max_norm / (norm[norm > max_norm] + 1e-7)
        weight.data = (weight.detach() * Tensor(scale, device=weight.device, dtype=weight.dtype)).data
    out = weight[idx]
    if scale_grad_by_freq:   # each picked row's gradient divided by its count
        s = (1.0 / counts)[inverse].reshape(idx.shape + (1,)) * np.ones(out.shape)
        out = _ScaleGrad.apply(out, Tensor(s, device=weight.device, dtype=weight.dtype))
    if padding_idx is None:
        return out
    from .creation import where   # the padding rows: no gradient (not g·0: an inf stays out)
    return where((idx == _padding_idx(padding_idx, weight.shape[0]))[..., None], out.detach(), out)


def _padding_idx(i, n):
    if not -n <= i < n:
        raise ValueError(f"embedding: padding_idx must be within [-{n}, {n}), got {i}")
    return int(i) % n
