"""Kernel backends: arrays in, arrays out, no autograd.

A Tensor's device picks a backend, one object that offers every kernel and
array helper of the contract in base.py (`Backend`, with the math of each):

    'cpu'  -> CpuBackend (cpu.py: numba @njit(parallel=True)), which inherits
              ReferenceBackend (reference.py: plain NumPy, the meaning of it all)
    'cuda' -> CudaBackend (cuda.py: numba.cuda; imported on first use, so
              `import tinydeep` never touches numba.cuda)

`get(device)` returns it; `arrays(device)` is the same object, named for the
array helpers it offers (upload, to_host, transpose, broadcast, indexing...).
`use_cpu_kernels('reference')` swaps the CPU backend for the NumPy oracle,
which lets the same autograd run on either and be compared. `module(name)`
is a backend's Python module (kernels as plain functions, for tests and benchmarks).
"""
import importlib
import os

import numpy as np

from .base import CONTRACT, FAMILIES, HELPERS, KERNELS, Backend  # noqa: F401  (the contract)

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
    """The backend module called `name` ('reference', 'cpu', 'cuda'); its BACKEND is the
    Backend object, and its functions (and, through it, inherited kernels) are the kernels."""
    if name not in ("reference", "cpu", "cuda"):
        raise ValueError(f"unknown backend {name!r}; choose 'reference', 'cpu' or 'cuda'")
    if name not in _modules:  # (every op asks: import once, then a dict lookup)
        if name == "cuda":
            _require_cuda()
        _modules[name] = importlib.import_module(f"{__name__}.{name}")
    return _modules[name]


def get(device):
    """The Backend that runs tensors on `device`."""
    if device == "cpu":
        return module(_cpu_kernels).BACKEND
    if device == "cuda":
        return module("cuda").BACKEND
    raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")


arrays = get  # the same Backend, asked for its array helpers


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
