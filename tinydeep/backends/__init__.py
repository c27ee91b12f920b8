"""Kernel backends: arrays in, arrays out, no autograd.

Every backend module offers the same names with the same signatures; the
plain-NumPy `reference` module defines what each kernel means and the others
are tested against it. A Tensor's device picks the backend:

    'cpu'  -> tinydeep.backends.cpu        (numba @njit(parallel=True))
    'cuda' -> not part of this version     (see issue 9)

`use_cpu_kernels('reference')` swaps the CPU backend for the NumPy oracle,
which lets the same autograd run on either and be compared.

The contract (shapes in comments; float32 or float64 arrays of any layout
unless stated; `out`, where offered, is an optional preallocated result):

    matmul(a, b, out=None)            a (M,K) @ b (K,N)      -> (M,N)
    matmul_nt(a, b, out=None)         a (M,K) @ b (N,K).T    -> (M,N)
    matmul_tn(a, b, out=None)         a (K,M).T @ b (K,N)    -> (M,N)
    add/sub/mul/div(a, b, out=None)   same shapes (broadcasting is done above)
    mul_scalar(x, s, out=None)        x * s
    pow_scalar(x, p, out=None)        x ** p
    exp(x, out=None)                  eˣ
    add_rowvec(x, b, out=None)        x (M,N) + b (N,)       (bias add)
    relu(x, out=None)                 max(x, 0)
    relu_backward(x, grad, out=None)  grad * (x > 0)
    sum(x, axis=None, keepdims=False) axis: None, int or tuple of ints
    log_softmax(x)                    rows of x (M,N)
    log_softmax_backward(logp, grad)  grad - softmax * grad.sum(1)
    cross_entropy(logits, targets)    -> (mean loss as float, logp (M,N))
    cross_entropy_backward(logp, targets, grad_loss) -> d logits (M,N)
    im2col(x, kh, kw, stride, padding)                -> (N*Ho*Wo, C*kh*kw)
    col2im(cols, x_shape, kh, kw, stride, padding)    -> (N,C,H,W)
    max_pool2d(x, k, stride, padding)                 -> (out, argmax)
    max_pool2d_backward(grad, argmax, x_shape)        -> (N,C,H,W)
    affine_grid(theta, H, W, align_corners)           -> grid (N,H,W,2)
    affine_grid_backward(grad_grid, align_corners)    -> d theta (N,2,3)
    bilinear_sample(image, grid, padding_mode, align_corners)
                                                      -> (N,C,Ho,Wo)
    bilinear_sample_backward(image, grid, grad, padding_mode, align_corners)
                                                      -> (d image, d grid)
    index_backward(grad, index, shape)                -> scatter-add of grad
    sgd_update(param, grad, buf, lr, momentum, nesterov, weight_decay)
                                                      in place, returns None
"""
import importlib

KERNELS = (
    "matmul", "matmul_nt", "matmul_tn",
    "add", "sub", "mul", "div", "mul_scalar", "pow_scalar", "exp", "add_rowvec",
    "relu", "relu_backward", "sum",
    "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
    "im2col", "col2im", "max_pool2d", "max_pool2d_backward",
    "affine_grid", "affine_grid_backward", "bilinear_sample", "bilinear_sample_backward",
    "index_backward", "sgd_update",
)

DEVICES = ("cpu",)
_cpu_kernels = "cpu"


def use_cpu_kernels(name):
    """Run 'cpu' tensors on the numba kernels ('cpu') or the NumPy oracle ('reference')."""
    global _cpu_kernels
    if name not in ("cpu", "reference"):
        raise ValueError(f"CPU kernels must be 'cpu' or 'reference', got {name!r}")
    _cpu_kernels = name


def module(name):
    """The kernel module called `name` ('reference', 'cpu')."""
    if name not in ("reference", "cpu"):
        raise ValueError(f"unknown backend {name!r}; choose 'reference' or 'cpu'")
    return importlib.import_module(f"{__name__}.{name}")


def get(device):
    """The kernel module that runs tensors on `device`."""
    if device == "cpu":
        return module(_cpu_kernels)
    if device == "cuda":
        raise ValueError("device 'cuda' is not available in this version of tinydeep: "
                         "only 'cpu' tensors are supported")
    raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")
