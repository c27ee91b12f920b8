"""More layers, as torch.nn's: activations, Dropout, normalization, Embedding, pooling,
containers and losses. Each calls a `functional` op; defaults and initial weights are
PyTorch's (BatchNorm: momentum 0.1, eps 1e-5, weight 1, bias 0, unbiased running var;
Embedding: N(0, 1); LayerNorm: weight 1, bias 0). Re-exported by nn.py.
"""
import numpy as np

from . import functional as F
from .nn import Module, Parameter, need_module
from .rng import generator
from .tensor import DEFAULT_DTYPE, Tensor

__all__ = ["Identity", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "Softmax", "LogSoftmax",
           "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding", "AvgPool2d",
           "AdaptiveAvgPool2d", "ModuleList", "ModuleDict", "CrossEntropyLoss", "MSELoss",
           "NLLLoss", "BCELoss", "BCEWithLogitsLoss"] + [
               f"{kind}Pad{d}d" for kind in ("Zero", "Constant", "Reflection", "Replication",
                                             "Circular") for d in (1, 2, 3)]


def _init(fields):
    """A constructor taking `fields` ((name, default) pairs) by position or keyword."""
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        unknown = set(kwargs) - {f for f, _ in fields}
        if unknown or len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(unknown) or args}")
        for i, (f, default) in enumerate(fields):
            setattr(self, f, args[i] if i < len(args) else kwargs.get(f, default))
    return __init__


def _layer(name, fn, *fields, doc=""):
    """A Module whose forward is fn(self, x), its fields its constructor's arguments."""
    extra = lambda self: ", ".join(f"{f}={getattr(self, f)!r}" for f, _ in fields)  # noqa: E731
    return type(name, (Module,), {"__init__": _init(fields), "forward": lambda self, x: fn(self, x),
                                  "__doc__": doc, "extra_repr": extra, "__module__": __name__})


Identity = _layer("Identity", lambda m, x: x)
Sigmoid = _layer("Sigmoid", lambda m, x: F.sigmoid(x))
Tanh = _layer("Tanh", lambda m, x: F.tanh(x))
LeakyReLU = _layer("LeakyReLU", lambda m, x: F.leaky_relu(x, m.negative_slope),
                   ("negative_slope", 0.01), ("inplace", False))
GELU = _layer("GELU", lambda m, x: F.gelu(x, m.approximate), ("approximate", "none"))
Softmax = _layer("Softmax", lambda m, x: F.softmax(x, m.dim), ("dim", None))
LogSoftmax = _layer("LogSoftmax", lambda m, x: F.log_softmax(x, m.dim), ("dim", None))
Dropout = _layer("Dropout", lambda m, x: F.dropout(x, m.p, m.training), ("p", 0.5), ("inplace", False),
                 doc="Zeroes elements with probability p in training (scaled by 1/(1-p)).")
AvgPool2d = _layer("AvgPool2d", lambda m, x: F.avg_pool2d(
    x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override),
    ("kernel_size", None), ("stride", None), ("padding", 0), ("ceil_mode", False),
    ("count_include_pad", True), ("divisor_override", None))
AdaptiveAvgPool2d = _layer("AdaptiveAvgPool2d", lambda m, x: F.adaptive_avg_pool2d(x, m.output_size),
                           ("output_size", None))


class _Pad(Module):
    """torch.nn's padding layers: F.pad by `padding`, an int for every side or PyTorch's
    (left, right, top, bottom, front, back) for the last `dims` dims; ConstantPad's `value`."""
    kind, mode, dims = "Zero", "constant", 2

    def __init__(self, padding, value=None):
        super().__init__()
        name, n, constant = type(self).__name__, 2 * self.dims, self.kind == "Constant"
        if constant == (value is None):
            raise TypeError(f"{name}: {'needs' if constant else 'takes no'} value")
        one = isinstance(padding, (int, np.integer)) and not isinstance(padding, bool)
        self.padding = (int(padding),) * n if one else tuple(padding)
        if len(self.padding) != n or not all(isinstance(a, int) for a in self.padding):
            raise ValueError(f"{name}: padding must be an int or {n} ints, got {padding!r}")
        self.value = value if constant else 0.0 if self.mode == "constant" else None

    def forward(self, x):
        return F.pad(x, self.padding, self.mode, self.value)

    def extra_repr(self):
        return (f"padding={self.padding}, value={self.value}" if self.kind == "Constant"
                else f"{self.padding}")


def _pad(kind, mode):
    return [type(f"{kind}Pad{d}d", (_Pad,), {"kind": kind, "mode": mode, "dims": d,
                                              "__module__": __name__})
            for d in (1, 2, 3)]


ZeroPad1d, ZeroPad2d, ZeroPad3d = _pad("Zero", "constant")
ConstantPad1d, ConstantPad2d, ConstantPad3d = _pad("Constant", "constant")
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = _pad("Reflection", "reflect")
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = _pad("Replication", "replicate")
CircularPad1d, CircularPad2d, CircularPad3d = _pad("Circular", "circular")


class _BatchNorm(Module):
    ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, DEFAULT_DTYPE)) if affine else None
        self.bias = Parameter(np.zeros(num_features, DEFAULT_DTYPE)) if affine else None
        self.track_running_stats = track_running_stats
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, DEFAULT_DTYPE)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, DEFAULT_DTYPE)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))

    def forward(self, x):
        if x.ndim not in self.ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {' or '.join(map(str, self.ndims))}"
                             f"-D input with {self.num_features} channels in dim 1, got shape {x.shape}")
        batch_stats, momentum = self.training or not self.track_running_stats, self.momentum
        if self.training and self.track_running_stats:
            n = self.num_batches_tracked      # (a count: updated on the host, any device)
            n.data = Tensor(n.numpy() + 1, device=n.device, dtype=np.int64).data
            if momentum is None:              # the cumulative average: the t-th batch weighs 1/t
                momentum = 1.0 / int(n.numpy())
        run = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return F.batch_norm(x, *run, self.weight, self.bias, batch_stats, momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L): per channel, across the batch (and length)."""
    ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W): per channel, across the batch and the image."""
    ndims = (4,)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(np.ones(shape, DEFAULT_DTYPE)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, DEFAULT_DTYPE)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class Embedding(Module):
    """A table of num_embeddings vectors, initialized N(0, 1) as PyTorch's; the row at
    padding_idx starts at zero and is never trained (F.embedding gives it no gradient);
    max_norm, norm_type, scale_grad_by_freq: see F.embedding."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False):
        super().__init__()
        if sparse:
            raise ValueError("Embedding: sparse=True is not supported (no sparse gradients)")
        w = (generator().standard_normal((num_embeddings, embedding_dim)).astype(DEFAULT_DTYPE)
             if _weight is None else _weight)
        if padding_idx is not None:
            padding_idx = F._padding_idx(padding_idx, num_embeddings)
            if _weight is None:   # (a given weight is kept as it is, as PyTorch's)
                w[padding_idx] = 0
        self.padding_idx, self.weight = padding_idx, Parameter(w)
        self.weight.requires_grad = not _freeze
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is `embeddings` (shared, as PyTorch's); frozen if freeze."""
        if len(embeddings.shape) != 2:
            raise ValueError(f"from_pretrained: embeddings must be 2-D, got shape {tuple(embeddings.shape)}")
        return cls(*embeddings.shape, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, idx):
        return F.embedding(idx, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq)


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), need_module("ModuleList", len(self), module))
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i):
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        for k, m in dict(modules or {}).items():
            self[k] = m

    def __setitem__(self, key, module):
        if key not in self._modules and hasattr(self, key):   # ('training', 'forward', ...)
            raise KeyError(f"ModuleDict: the key {key!r} names an attribute of the module")
        setattr(self, key, need_module("ModuleDict", key, module))

    def __getitem__(self, key):
        return self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


def _loss(name, fn, *fields):
    def forward(self, input, target):
        return fn(input, target, **{f: getattr(self, f) for f, _ in fields})
    return type(name, (Module,), {"__init__": _init(fields), "forward": forward, "__module__": __name__})


CrossEntropyLoss = _loss("CrossEntropyLoss", F.cross_entropy, ("weight", None),
                         ("ignore_index", -100), ("reduction", "mean"), ("label_smoothing", 0.0))
NLLLoss = _loss("NLLLoss", F.nll_loss, ("weight", None), ("ignore_index", -100), ("reduction", "mean"))
MSELoss = _loss("MSELoss", F.mse_loss, ("reduction", "mean"))
BCELoss = _loss("BCELoss", F.binary_cross_entropy, ("weight", None), ("reduction", "mean"))
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits,
                          ("weight", None), ("reduction", "mean"), ("pos_weight", None))
