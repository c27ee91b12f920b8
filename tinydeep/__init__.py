"""tinydeep: a from-scratch deep-learning engine to read, run and measure."""
import sys

from . import backends, functional, nn, nn_init, optim
from .checkpoint import read as load, save
from .gradcheck import gradcheck
from .rng import manual_seed
from .backends import cuda_available
from .tensor import Tensor, from_numpy, is_grad_enabled, no_grad, tensor
from . import creation
from .creation import *  # noqa: F401,F403  (zeros, cat, where, float32, ...: torch's names)
globals().update(creation.FUNCTIONS)   # torch.exp(x), torch.max(out, 1), ...

# torch's module paths: `import tinydeep.nn.functional as F`, `from tinydeep.optim.lr_scheduler import
# StepLR`, `nn.init.kaiming_normal_(...)`
sys.modules[__name__ + ".nn.functional"] = functional
sys.modules[__name__ + ".optim.lr_scheduler"] = optim.lr_scheduler
nn.init = sys.modules[__name__ + ".nn.init"] = nn_init

__version__ = "0.1.0"
__all__ = ["Tensor", "tensor", "from_numpy", "no_grad", "is_grad_enabled", "manual_seed", "gradcheck", "save", "load",
           "backends", "functional", "nn", "optim", "cuda_available"] + creation.__all__ + list(creation.FUNCTIONS)
