import os
import shutil

# The CUDA backend is tested everywhere: on a machine with no NVIDIA GPU the same
# tests run its kernels in numba's CUDA simulator (threads as Python threads: slow,
# so the cuda tests shrink their shapes when simulating). numba reads this switch
# once, when it is first imported -- hence here, before tinydeep (and numba) load.
# An explicit NUMBA_ENABLE_CUDASIM=0 or =1 in the environment is left alone.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not (
        shutil.which("nvidia-smi") or os.path.exists("/dev/nvidiactl")):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

# No warm-up helper process (backends/cpu_warmup.py) in the tests and their subprocesses,
# except where test_cpu_warmup.py asks for one.
os.environ.setdefault("TINYDEEP_WARMUP", "0")

import numpy as np  # noqa: E402
# The lent GPU machines' image (2026-11) pairs a numba-cuda that still calls np.row_stack with
# NumPy 2.5, which removed it: every CUDA compile fails there. Give the alias back (as
# benchmarks/gpu_check.py does).
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
import pytest  # noqa: E402

import tinydeep as td  # noqa: E402
from tinydeep import backends


@pytest.fixture(params=["cpu", "reference"])
def kernels(request):
    """Run a test with the numba CPU kernels and again with the NumPy reference ones."""
    backends.use_cpu_kernels(request.param)
    yield request.param
    backends.use_cpu_kernels("cpu")


@pytest.fixture(scope="module")
def fast_cuda_simulator():
    """The simulator runs a block's threads as Python threads that meet at every
    syncthreads; with the default 5 ms GIL switch interval each meeting costs
    milliseconds. A 0.1 ms interval makes the cuda tests ~10x faster."""
    import sys
    old = sys.getswitchinterval()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def t64(a, grad=True):
    """A float64 tensor for gradient checks."""
    return td.tensor(np.asarray(a), requires_grad=grad, dtype=np.float64)
