"""Neural-network ops, each a Function whose forward and backward call kernels.

Import as `from tinydeep import functional as F`. Names and conventions follow
PyTorch's `torch.nn.functional`, so results can be checked against it.
Every op checks its inputs (shapes, dtypes) before any kernel runs.
"""
import numpy as np

from . import backends
from .tensor import Function, Tensor, check_float, normalize_axes

__all__ = ["relu", "linear", "log_softmax", "softmax", "cross_entropy", "mse_loss",
           "conv2d", "max_pool2d", "affine_grid", "grid_sample"]


def _need_tensor(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} needs a Tensor, got {type(x).__name__}")
    return x


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
        self.y = self.k.relu(x)
        return self.y

    def backward(self, g):  # d relu(x) = [x > 0] dx
        return (self.k.relu_backward(self.y, g),)


def relu(x):
    return ReLU.apply(_need_tensor("relu", x))


# --- linear layer ----------------------------------------------------------

class Linear(Function):
    """y = x Wᵀ + b with x (M, in), W (out, in), b (out,)."""

    def forward(self, x, w, b):
        k = self.k
        self.x, self.w, self.has_bias = x, w, b is not None
        y = k.matmul_nt(x, w)
        return k.add_rowvec(y, b, out=y) if b is not None else y

    def backward(self, g):  # dx = g W, dW = gᵀ x, db = Σ_rows g
        k = self.k
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

class LogSoftmax(Function):
    def forward(self, x):
        self.logp = self.k.log_softmax(x)
        return self.logp

    def backward(self, g):  # d logp = g - softmax Σ g
        return (self.k.log_softmax_backward(self.logp, g),)


class Softmax(Function):
    def forward(self, x):
        self.logp = self.k.log_softmax(x)
        self.p = self.k.exp(self.logp)
        return self.p

    def backward(self, g):  # d p = p (g - Σ g p), which is log_softmax's backward applied to g p
        return (self.k.log_softmax_backward(self.logp, self.k.mul(g, self.p)),)


def _rows(name, x, dim):
    _need_tensor(name, x)
    check_float(name, x.data)
    if x.ndim != 2 or normalize_axes(dim, 2, name) != (1,):
        raise ValueError(f"{name} works over dim=1 of a 2-D tensor, got shape {tuple(x.shape)} "
                         f"and dim={dim}")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: shape {tuple(x.shape)} has no classes (dim 1 is empty)")
    return x


def log_softmax(x, dim=1):
    return LogSoftmax.apply(_rows("log_softmax", x, dim))


def softmax(x, dim=1):
    return Softmax.apply(_rows("softmax", x, dim))


class CrossEntropy(Function):
    """mean_i [ logsumexp(z_i) - z_i[t_i] ], computed from a max-shifted log-softmax."""

    def forward(self, logits, targets):
        loss, self.logp = self.k.cross_entropy(logits, targets)
        self.targets = targets
        # a Python float from the CPU kernels; a 0-d device array on 'cuda' (no readback)
        return np.asarray(loss, dtype=logits.dtype) if isinstance(loss, float) else loss

    def backward(self, g):  # d loss / d z = (softmax(z) - onehot(t)) / M
        g = float(g) if isinstance(g, np.ndarray) else g   # on 'cuda' g stays on the device
        return (self.k.cross_entropy_backward(self.logp, self.targets, g), None)


def cross_entropy(logits, targets):
    """Mean cross-entropy of logits (M, C) against integer class targets (M,)."""
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


def mse_loss(input, target):
    """mean((input - target)²); shapes must match exactly (no silent broadcasting)."""
    _need_tensor("mse_loss", input)
    t_shape = tuple(np.shape(target.data if isinstance(target, Tensor) else target))
    if tuple(input.shape) != t_shape:
        raise ValueError(f"mse_loss: input shape {tuple(input.shape)} != target shape {t_shape}")
    if input.size == 0:
        raise ValueError("mse_loss of an empty batch is undefined")
    return ((input - target) ** 2).mean()


# --- convolution and pooling ------------------------------------------------

class Conv2d(Function):
    """Convolution as a matrix product: unfold every k×k patch into a row
    (im2col), multiply by the flattened filters, fold gradients back (col2im)."""

    def forward(self, x, w, b, stride, padding):
        k = self.k
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
        return self.arrays.contiguous(
            self.arrays.transpose(y.reshape(n, self.ho, self.wo, c_out), (0, 3, 1, 2)))

    def backward(self, g):
        k = self.k
        if self.direct:
            x, w, stride, padding, has_bias = self.saved
            return (k.conv2d_backward_input(g, w, x.shape, stride, padding)
                    if self.needs_grad[0] else None,
                    k.conv2d_backward_weight(g, x, w.shape, stride, padding)
                    if self.needs_grad[1] else None,
                    k.conv2d_backward_bias(g) if has_bias and self.needs_grad[2] else None)
        c_out = self.w2.shape[0]
        g2 = self.arrays.contiguous(self.arrays.transpose(g, (0, 2, 3, 1))).reshape(-1, c_out)
        x_shape, kh, kw, stride, padding = self.geom
        dx = (k.col2im(k.matmul(g2, self.w2), x_shape, kh, kw, stride, padding)
              if self.needs_grad[0] else None)
        dw = (k.matmul_tn(g2, self.cols).reshape(c_out, x_shape[1], kh, kw)
              if self.needs_grad[1] else None)
        db = k.sum(g2, axis=0) if self.has_bias and self.needs_grad[2] else None
        return dx, dw, db


def conv2d(input, weight, bias=None, stride=1, padding=0):
    """input (N, C, H, W) * weight (C_out, C, kh, kw) -> (N, C_out, Ho, Wo)."""
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
    def forward(self, x, kernel_size, stride, padding):
        self.x_shape = x.shape
        y, self.argmax = self.k.max_pool2d(x, kernel_size, stride, padding)
        return y

    def backward(self, g):  # the gradient goes to the element that won each window
        return (self.k.max_pool2d_backward(g, self.argmax, self.x_shape),)


def max_pool2d(input, kernel_size, stride=None, padding=0):
    _need_tensor("max_pool2d", input)
    check_float("max_pool2d", input.data)
    _need_ndim("max_pool2d", "input", input, 4)
    _need_sizes("max_pool2d", "input", input)
    kernel = _pair("max_pool2d", "kernel_size", kernel_size, 1)
    # stride=None (or PyTorch's empty list) means stride = kernel_size
    stride = kernel if stride is None or (isinstance(stride, list) and not stride) else _pair("max_pool2d", "stride", stride, 1)
    padding = _pair("max_pool2d", "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel "
                         f"size {kernel} in each dimension")
    if any(n + 2 * p < k for n, p, k in zip(input.shape[2:], padding, kernel)):
        raise ValueError(f"max_pool2d: window {kernel} is larger than the input "
                         f"{tuple(input.shape)} with padding {padding}")
    return MaxPool2d.apply(input, kernel_size=kernel, stride=stride, padding=padding)


# --- spatial transformer: affine grids and bilinear sampling ----------------------

class AffineGrid(Function):
    def forward(self, theta, h, w, align_corners):
        self.align_corners = align_corners
        return self.k.affine_grid(theta, h, w, align_corners)

    def backward(self, g):  # grid = base · θᵀ, so dθ = Σ_points g ⊗ base
        return (self.k.affine_grid_backward(g, self.align_corners),)


def affine_grid(theta, size, align_corners=False):
    """theta (N, 2, 3) and size (N, C, H, W) -> sampling grid (N, H, W, 2) in [-1, 1] coords."""
    _need_tensor("affine_grid", theta)
    check_float("affine_grid", theta.data)
    if theta.ndim != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"affine_grid: theta must have shape (N, 2, 3), got {tuple(theta.shape)}")
    if len(size) != 4 or size[0] != theta.shape[0] or min(size) < 1:
        raise ValueError(f"affine_grid: size must be (N, C, H, W) with N = {theta.shape[0]} "
                         f"and positive sizes, got {tuple(size)}")
    return AffineGrid.apply(theta, h=int(size[2]), w=int(size[3]), align_corners=bool(align_corners))


class GridSample(Function):
    def forward(self, image, grid, padding_mode, align_corners):
        self.image, self.grid = image, grid
        self.opts = (padding_mode, align_corners)
        return self.k.bilinear_sample(image, grid, *self.opts)

    def backward(self, g):  # image gradient: scatter of the bilinear weights; grid: their slope
        return self.k.bilinear_sample_backward(self.image, self.grid, g, *self.opts)


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
    return GridSample.apply(input, grid, padding_mode=padding_mode, align_corners=bool(align_corners))
