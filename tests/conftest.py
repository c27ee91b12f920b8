import numpy as np
import pytest

import tinydeep as td
from tinydeep import backends


@pytest.fixture(params=["cpu", "reference"])
def kernels(request):
    """Run a test with the numba CPU kernels and again with the NumPy reference ones."""
    backends.use_cpu_kernels(request.param)
    yield request.param
    backends.use_cpu_kernels("cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def t64(a, grad=True):
    """A float64 tensor for gradient checks."""
    return td.tensor(np.asarray(a), requires_grad=grad, dtype=np.float64)
