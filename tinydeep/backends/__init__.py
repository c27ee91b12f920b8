"""Kernel backends: arrays in, arrays out, no autograd.

Every backend module offers the same names with the same signatures; the
plain-NumPy `reference` module defines what each kernel means and the others
are tested against it. A Tensor's device picks the backend:

    'cpu'  -> tinydeep.backends.cpu        (numba @njit(parallel=True))
    'cuda' -> tinydeep.backends.cuda       (numba.cuda; imported on first use, so
                                            `import tinydeep` never touches numba.cuda)

Besides the kernels, a device has array helpers (`arrays(device)`): the few
NumPy things the Tensor layer does to `.data` itself -- upload and read back,
transpose, broadcast, indexing, casts, comparisons, argmax. On the CPU they
are NumPy (views where NumPy gives views); on the GPU they are kernels in
cuda_device.py, so a tensor on 'cuda' never passes through the host.

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

On 'cuda' the arrays are C-contiguous device arrays, and cross_entropy returns
its loss as a 0-d device array instead of a float (reading it would make the
GPU wait); cross_entropy_backward accepts either.
"""
import importlib
import os

import numpy as np

KERNELS = (
    "matmul", "matmul_nt", "matmul_tn",
    "add", "sub", "mul", "div", "mul_scalar", "pow_scalar", "exp", "add_rowvec",
    "relu", "relu_backward", "sum",
    "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
    "im2col", "col2im", "max_pool2d", "max_pool2d_backward",
    "affine_grid", "affine_grid_backward", "bilinear_sample", "bilinear_sample_backward",
    "index_backward", "sgd_update",
)

DEVICES = ("cpu", "cuda")
_cpu_kernels = "cpu"
_modules = {}


def use_cpu_kernels(name):
    """Run 'cpu' tensors on the numba kernels ('cpu') or the NumPy oracle ('reference')."""
    global _cpu_kernels
    if name not in ("cpu", "reference"):
        raise ValueError(f"CPU kernels must be 'cpu' or 'reference', got {name!r}")
    _cpu_kernels = name


def module(name):
    """The kernel module called `name` ('reference', 'cpu', 'cuda')."""
    if name not in ("reference", "cpu", "cuda"):
        raise ValueError(f"unknown backend {name!r}; choose 'reference', 'cpu' or 'cuda'")
    if name not in _modules:  # (every op asks: import once, then a dict lookup)
        if name == "cuda":
            _require_cuda()
        _modules[name] = importlib.import_module(f"{__name__}.{name}")
    return _modules[name]


def get(device):
    """The kernel module that runs tensors on `device`."""
    if device == "cpu":
        return module(_cpu_kernels)
    if device == "cuda":
        return module("cuda")
    raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")


def arrays(device):
    """The array helpers for `device` (see the module docstring)."""
    if device == "cpu":
        return HostArrays
    if device == "cuda":
        _require_cuda()
        return importlib.import_module(f"{__name__}.cuda_device")
    raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")


def is_device_array(a):
    """True for a GPU array (numba's DeviceNDArray or the simulator's stand-in)."""
    return not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host")


# --- the GPU: found lazily -----------------------------------------------------------------

_cuda_state = None  # None: not looked yet; else (available, reason)


def _probe_cuda():
    global _cuda_state
    if _cuda_state is None:
        try:
            from numba import cuda
            ok = bool(cuda.is_available())
            reason = "" if ok else "numba.cuda found no usable CUDA GPU and driver"
        except Exception as e:  # numba.cuda missing or broken: no GPU for us
            ok, reason = False, f"numba.cuda cannot be imported ({e})"
        _cuda_state = (ok, reason)
    return _cuda_state


def cuda_available():
    """True when tensors can live on 'cuda': a CUDA GPU that numba.cuda can use, or the
    CUDA simulator (NUMBA_ENABLE_CUDASIM=1 set before numba is imported)."""
    return _probe_cuda()[0]


def _require_cuda():
    ok, reason = _probe_cuda()
    if not ok:
        sim = os.environ.get("NUMBA_ENABLE_CUDASIM", "")
        raise ValueError(
            f"device 'cuda' is not available: {reason}. Install the GPU extra "
            f"(pip install 'tinydeep[cuda]') on a machine with an NVIDIA GPU, or run the CUDA "
            f"kernels on the CPU in numba's simulator by setting NUMBA_ENABLE_CUDASIM=1 before "
            f"Python starts (slow; for tests)"
            + (f" [NUMBA_ENABLE_CUDASIM is {sim!r}]" if sim else ""))


class HostArrays:
    """The array helpers for 'cpu': NumPy, with views where NumPy gives views."""
    is_array = staticmethod(lambda a: isinstance(a, np.ndarray))
    from_host = staticmethod(lambda a: a)
    to_host = staticmethod(lambda a: a)
    full = staticmethod(lambda shape, value, dtype: np.full(shape, value, dtype=dtype))
    broadcast_to = staticmethod(np.broadcast_to)
    transpose = staticmethod(np.transpose)
    # (np.ascontiguousarray would turn a 0-d array into shape (1,))
    contiguous = staticmethod(lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a))
    astype = staticmethod(lambda a, dtype: a.astype(dtype, copy=False))
    compare = staticmethod(lambda a, b, op: getattr(np, op)(a, b))
    argmax = staticmethod(lambda a, axis=None: np.argmax(a, axis=axis))
    take = staticmethod(lambda a, index: a[index])
