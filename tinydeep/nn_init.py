"""nn.init, as torch.nn.init: each function fills a Parameter (or any float Tensor) in place
and returns it, with PyTorch's distributions, fans and gains, drawn from
tinydeep.manual_seed's generator (so other values than PyTorch's). Used as
`model.apply(fn)` with `nn.init.kaiming_normal_(m.weight, mode="fan_out")` and the like.
"""
import math

import numpy as np

from . import backends
from .rng import generator

GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "sigmoid": 1.0,
         "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance through `nonlinearity` (PyTorch's table);
    leaky_relu with negative slope `param` (default 0.01): √(2 / (1 + slope²))."""
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + (0.01 if param is None else param) ** 2))
    if nonlinearity not in GAINS:
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")
    return GAINS[nonlinearity]


def _fans(t):
    """(fan_in, fan_out) of a weight (out, in, *kernel): in·k and out·k, k the kernel's size."""
    if t.ndim < 2:
        raise ValueError(f"fans need a weight of at least 2 dimensions, got shape {t.shape}")
    k = math.prod(t.shape[2:])
    return t.shape[1] * k, t.shape[0] * k


def _fill(t, values):
    """t's values replaced in place (on the host its array stays the same object)."""
    values = np.asarray(values, dtype=t.dtype)
    if isinstance(t.data, np.ndarray):
        t.data[...] = values
    else:
        t.data = backends.arrays(t.device).from_host(values)
    return t


def uniform_(t, a=0.0, b=1.0):
    return _fill(t, generator().uniform(a, b, t.shape))


def normal_(t, mean=0.0, std=1.0):
    return _fill(t, generator().normal(mean, std, t.shape))


def constant_(t, val):
    return _fill(t, np.full(t.shape, val))


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain=1.0):
    """Glorot & Bengio 2010: U(-a, a), a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain=1.0):
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(t, a, mode, nonlinearity):
    """He et al. 2015: std = gain / √fan, fan = fan_in or fan_out (mode)."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = _fans(t)[mode == "fan_out"]
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)    # U(-b, b) has std b/√3
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))
