"""Layers: Modules that own Parameters and call `functional` ops.

A Module registers every Parameter and sub-Module assigned to it as an
attribute, so `parameters()`, `state_dict()` and `zero_grad()` can walk the
tree. Initial weights come from `tinydeep.manual_seed`'s generator.
"""
import math
from collections import namedtuple

import numpy as np

from . import backends
from . import functional as F
from .rng import generator
from .tensor import DEFAULT_DTYPE, Tensor, _wrap, zero_grads


IncompatibleKeys = namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")
functional = F   # torch.nn.functional's place: `F = nn.functional`


class _Data:   # Parameter.data: read as an attribute; `p.data = t` (torch's idiom) stores t's array
    def __set__(self, p, value):
        p.__dict__["data"] = value.data if isinstance(value, Tensor) else value


class Parameter(Tensor):
    """A Tensor that a Module trains: requires_grad is on. Made from an array or a number,
    it holds a copy (float32 unless `dtype` says otherwise), so training never writes into
    the caller's array; made from a Tensor of the same dtype, it shares that tensor's array
    (PyTorch's nn.Parameter(t) does too) and keeps its dtype."""
    data = _Data()

    def __init__(self, data, dtype=None):
        if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
            if data.dtype.kind != "f":
                raise TypeError(f"only floating-point tensors can require gradients, got {data.dtype}")
            self.data, self.device, self.grad, self._ctx = data.data, data.device, None, None
            self.requires_grad = True
        else:
            super().__init__(data, requires_grad=True, dtype=dtype)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        """As PyTorch's: a Parameter, a Module or (under a buffer's name) a tensor is registered
        as `name`, keeping its place when the name is reassigned; a registered name takes
        None, or a value of its kind, or a TypeError."""
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before assigning {name!r}")
        tables = {"parameter": self._parameters, "child module": self._modules, "buffer": self._buffers}
        kind = ("parameter" if isinstance(value, Parameter) else "child module" if isinstance(value, Module)
                else next((k for k, t in tables.items() if name in t), None))
        if kind:
            if not (value is None or isinstance(value, (Parameter, Module))
                    or kind == "buffer" and isinstance(value, Tensor)):
                raise TypeError(f"cannot assign {type(value).__name__!r} as {kind} {name!r} of "
                                f"{type(self).__name__} (a {kind.split()[-1]} or None expected)")
            for k, t in tables.items():
                if k != kind:
                    t.pop(name, None)
            tables[kind][name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for t in (self._parameters, self._modules, self._buffers):
            t.pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # each subclass defines its own
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs, each Parameter once (under its first name), as in PyTorch:
        a layer used twice is trained once per step, not twice."""
        seen = set()
        for name, m in self._named_modules(prefix + "." if prefix else ""):
            for pname, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield name + pname, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def _named_modules(self, prefix="", seen=None):
        """(prefix, module) for this module and every sub-module, each once."""
        seen = set() if seen is None else seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m._named_modules(prefix + name + ".", seen)

    def modules(self):
        return (m for _, m in self._named_modules())

    def named_modules(self, prefix=""):
        """(name, module) pairs: this module as '' (or prefix), then every descendant once."""
        return ((name[:-1], m) for name, m in self._named_modules(prefix + "." if prefix else ""))

    def children(self):
        return (m for _, m in self.named_children())

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def apply(self, fn):
        """fn(m) for every sub-module, children first, then for this one (as PyTorch's)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def register_buffer(self, name, tensor):
        """A tensor that is state but not trained (BatchNorm's running statistics): in
        state_dict(), moved by to(), cast by float()/double(), never in parameters()."""
        if not isinstance(name, str) or not name or "." in name or (
                hasattr(self, name) and name not in self._buffers):
            raise KeyError(f"register_buffer: {name!r} is not a free attribute name (no '.')")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    def named_buffers(self, prefix=""):
        for name, m in self._named_modules(prefix + "." if prefix else ""):
            for bname, b in m._buffers.items():
                if b is not None:
                    yield name + bname, b

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def _state(self):
        """name -> tensor for state_dict(): each module's parameters, then its buffers."""
        out, seen = {}, set()
        for name, m in self._named_modules():
            for n, t in list(m._parameters.items()) + list(m._buffers.items()):
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    out[name + n] = t
        return out

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be True or False, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def float(self):
        """Cast every float parameter and buffer, and each gradient, in place, as PyTorch does."""
        return self._cast(Tensor.float)

    def double(self):
        return self._cast(Tensor.double)

    def _cast(self, to):
        for p in self.parameters() + [b for b in self.buffers() if b.dtype.kind == "f"]:
            p.data, p.grad = to(p.detach()).data, None if p.grad is None else to(_wrap(p.grad, p.device)).data
        return self

    def to(self, device):
        """Move every parameter (and its gradient) to `device` in place, as PyTorch does;
        create the optimizer after this, or before its first step. A float dtype: _cast."""
        if not isinstance(device, str):         # a dtype: float() or double()
            cast = {"float32": self.float, "float64": self.double}.get(np.dtype(device).name)
            if cast is None:
                raise TypeError(f"Module.to: a dtype must be float32 or float64, got {device!r}")
            return cast()
        for p in self.parameters() + self.buffers():
            if p.device != device:
                moved = Tensor(p.numpy(), device=device, dtype=p.dtype)
                grad = None if p.grad is None else Tensor(
                    backends.arrays(p.device).to_host(p.grad), device=device, dtype=p.dtype).data
                p.data, p.device, p.grad = moved.data, device, grad
        return self

    def state_dict(self):
        """Name -> a NumPy copy of the parameter (read back from the device if need be)."""
        return {name: np.array(p.numpy(), copy=True) for name, p in self._state().items()}

    def load_state_dict(self, state, strict=True, source="state_dict"):
        """Copy arrays into the parameters. Everything is checked first (every name present,
        no extra names, the right shapes, real-number dtypes: float, int or bool; strings,
        complex, datetimes, structured and object arrays are refused), so a refusal leaves
        the module exactly as it was; the message names `source` and each offending array."""
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"load_state_dict: {source} must be a mapping of name -> array "
                            f"(as state_dict() returns), got {type(state).__name__}")
        own = self._state()
        missing = [n for n in own if n not in state]            # (in the module's order,
        unexpected = [n for n in state if n not in own]         # and in state's: PyTorch's)
        keys = IncompatibleKeys(missing, unexpected)
        if not strict:   # (PyTorch's strict=False: load what matches, report the rest)
            missing, unexpected = [], []
            own = {n: p for n, p in own.items() if n in state}
        arrays, misshaped, mistyped = {}, [], []
        for n, p in own.items():
            if n not in state:
                continue
            a = state[n]
            a = a.numpy() if isinstance(a, Tensor) else a
            try:
                a = np.asarray(a)
            except (ValueError, TypeError) as e:
                mistyped.append(f"{n}: not an array ({e})")
                continue
            if a.dtype.kind not in "fiub" or a.dtype.hasobject:
                kind = {"U": "strings", "S": "bytes", "c": "complex numbers", "M": "datetimes",
                        "m": "time deltas", "V": "a structured record", "O": "Python objects"}
                mistyped.append(f"{n}: dtype {a.dtype} ({kind.get(a.dtype.kind, 'not numbers')})")
            elif a.shape != p.shape:
                misshaped.append(f"{n}: {a.shape} vs {tuple(p.shape)}")
            else:
                arrays[n] = a
        if missing or unexpected or misshaped or mistyped:
            parts = [f"missing {missing}" if missing else "",
                     f"unexpected {unexpected}" if unexpected else "",
                     f"wrong shapes [{'; '.join(misshaped)}]" if misshaped else "",
                     f"wrong dtypes [{'; '.join(mistyped)}]" if mistyped else ""]
            raise ValueError(f"{source} does not fit {type(self).__name__}: "
                             + ", ".join(p for p in parts if p) + "; nothing was loaded")
        # convert (and move to the device) all of them before the first one is assigned
        data = {n: Tensor(np.array(arrays[n], dtype=p.dtype), device=p.device, dtype=p.dtype).data
                for n, p in own.items()}
        for n, p in own.items():
            p.data, p.grad = data[n], None
        return keys

    def __repr__(self):
        inner = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({self.extra_repr()}{inner}{chr(10) if inner else ''})"

    def extra_repr(self):
        return ""


def _uniform(bound, shape):
    return generator().uniform(-bound, bound, size=shape).astype(DEFAULT_DTYPE)


class Linear(Module):
    """y = x Wᵀ + b. Initialized like PyTorch: Kaiming-uniform with a = √5, which gives
    W, b ~ U(-1/√in, 1/√in)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Linear: {what} must be a positive int, got {n!r}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(bound, (out_features, in_features)))
        self.bias = Parameter(_uniform(bound, (out_features,))) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def __init__(self, inplace=False):   # (a new tensor either way: see SEMANTICS.md)
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


def need_module(owner, key, m):
    """m, when it is a Module; a container that took anything else would drop it unseen."""
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: {key!r} is not a Module (got {type(m).__name__})")
    if not str(key) or "." in str(key):    # (a name in state_dict's dotted paths)
        raise KeyError(f"{owner}: a module name cannot be empty or contain '.', got {key!r}")
    return m


class Sequential(Module):
    def __init__(self, *layers):   # Sequential(layer, ...) or Sequential(OrderedDict(name=layer))
        super().__init__()
        one_dict = len(layers) == 1 and isinstance(layers[0], dict)
        named = layers[0].items() if one_dict else enumerate(layers)
        for name, layer in named:
            setattr(self, str(name), need_module("Sequential", name, layer))

    def __getitem__(self, i):   # a slice keeps the layers' names, as PyTorch's
        if isinstance(i, slice):
            return Sequential(dict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch); Kaiming-uniform init with
    fan_in = in_channels · kh · kw. padding_mode other than 'zeros': F.pad's mode, then an
    unpadded convolution (as PyTorch's). groups: 1 only."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros"):
        super().__init__()
        kh, kw = F._pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = F._pair("Conv2d", "stride", stride, 1)
        self.padding = padding if padding in ("same", "valid") else F._pair("Conv2d", "padding", padding, 0)
        self.dilation = F._pair("Conv2d", "dilation", dilation, 1)
        for what, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Conv2d: {what} must be a positive int, got {n!r}")
        if groups != 1 or padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"Conv2d takes groups=1 only and padding_mode 'zeros', 'reflect', "
                             f"'replicate' or 'circular'; got groups={groups!r}, padding_mode={padding_mode!r}")
        self.padding_mode = padding_mode
        if padding == "same":    # d(k - 1) in all, the odd one on the bottom/right (F.pad's order)
            t = [d * (k - 1) for d, k in zip(self.dilation, (kh, kw))]
            self._pads = (t[1] // 2, t[1] - t[1] // 2, t[0] // 2, t[0] - t[0] // 2)
        else:
            ph, pw = (0, 0) if padding == "valid" else self.padding
            self._pads = (pw, pw, ph, ph)
        bound = 1.0 / math.sqrt(in_channels * kh * kw)
        self.weight = Parameter(_uniform(bound, (out_channels, in_channels, kh, kw)))
        self.bias = Parameter(_uniform(bound, (out_channels,))) if bias else None

    def forward(self, x):
        if self.padding_mode == "zeros":
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        x = F.pad(x, self._pads, mode=self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)

    def extra_repr(self):
        o, i, kh, kw = self.weight.shape
        return (f"{i}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, padding_mode={self.padding_mode}")


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = F._pair("MaxPool2d", "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else F._pair("MaxPool2d", "stride", stride, 1)
        self.padding = F._pair("MaxPool2d", "padding", padding, 0)
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


from .checkpoint import load, save  # noqa: E402,F401  (nn.save / nn.load: .npz files)
from .nn_models import MLP, SpatialTransformer  # noqa: E402,F401  (tinydeep's own models)
from .nn_layers import *  # noqa: E402,F401,F403  (Dropout, BatchNorm2d, ModuleList, losses, ...)
