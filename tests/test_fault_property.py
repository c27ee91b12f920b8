"""Random malformed arguments into every public op and layer constructor, with PyTorch as
the oracle (issue 15). Each argument is usually valid and sometimes broken: a wrong rank,
a zero size, a float64/float16/big-endian/int/bool/complex/object/string array, NaN and
Inf values, a read-only or non-contiguous array; sizes that are negative, zero, fractional,
NaN, None, strings or bools. The only outcomes allowed:
  - a ValueError or TypeError with a message, raised before any kernel ran; or
  - a result (and input gradients) equal to PyTorch's for the same call, where PyTorch
    gives one.
Never a Numba error, never a silent result where PyTorch refuses the call. `sweep(n)`
classifies n calls for tests/fault_sweep.py.
"""
import math
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinydeep as td
from tinydeep import functional as F, nn, optim
from tinydeep.data import DataLoader
from test_faults import kernel_calls

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = ["float32"] * 6 + ["float64", "float16", ">f4", "int64", "bool", "complex64", "object", "<U1"]
BAD_SIZES = [0, -1, 2.5, None, "2", True, float("nan"), float("inf")]


class Draw:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.tags = set()   # what a call does that PENDING may list

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]

    def odd(self, p=0.2):
        return self.rng.random() < p

    def size(self, good):
        """`good` (an int) usually; sometimes a malformed size."""
        return self.pick(BAD_SIZES) if self.odd(0.15) else good

    def shape(self, shape):
        """`shape` usually; sometimes one more or one fewer dimension, or a zero size."""
        shape = tuple(shape)
        r = self.rng.random()
        if r < 0.06 and shape:
            return shape[1:]
        if r < 0.12:
            return shape + (self.int(1, 3),)
        if r < 0.16 and shape:
            i = self.int(0, len(shape) - 1)
            return shape[:i] + (0,) + shape[i + 1:]
        return shape

    def array(self, shape, dtype=None):
        dtype = dtype or (self.pick(DTYPES) if self.odd(0.3) else "float32")
        shape = tuple(shape)
        wide = self.odd(0.2) and shape
        base = self.rng.uniform(-1, 1, shape[:-1] + (2 * shape[-1],) if wide else shape)
        a = base[..., ::2] if wide else base        # a non-contiguous view, sometimes
        if self.odd(0.1) and a.size:
            a = a.copy()
            a.flat[self.int(0, a.size - 1)] = self.pick([np.nan, np.inf, -np.inf])
        if dtype == "bool":
            a = a > 0
        elif dtype == "int64":
            with np.errstate(invalid="ignore"):
                a = (a * 3).astype(np.int64)
        elif dtype == "object":
            a = a.astype(object)
        elif dtype == "<U1":
            a = a.astype("<U1")
        else:
            a = a.astype(dtype)
        if self.odd(0.1):
            a = np.array(a)
            a.flags.writeable = False
        return a


def _t(a, grad=True):
    """Our tensor from an array (this can refuse: that is an outcome too)."""
    return td.Tensor(a, requires_grad=grad and a.dtype.kind == "f")


def _torch(a, grad=True):
    """PyTorch's tensor for the same data, float32 as ours are by default."""
    if a.dtype.kind in "OUSc" or (a.dtype.kind == "f" and a.dtype.byteorder == ">"):
        return torch.as_tensor(a.astype(a.dtype.newbyteorder("=")) if a.dtype.kind == "f" else a)
    t = torch.tensor(np.array(a))
    if t.dtype in (torch.float64, torch.float16):
        t = t.float()
    return t.requires_grad_(grad and t.is_floating_point())


# --- the calls: each returns (ours, theirs, arrays) -------------------------------------

def c_relu(d):
    a = d.array(d.shape((3, 4)))
    return lambda: F.relu(_t(a)), lambda: TF.relu(_torch(a)), [a]


def c_linear(d):
    n, i, o = 3, d.int(1, 4), d.int(1, 3)
    x, w = d.array(d.shape((n, i))), d.array(d.shape((o, i)))
    b = d.array(d.shape((o,))) if d.odd(0.7) else None
    arrays = [x, w] + ([] if b is None else [b])
    return (lambda: F.linear(_t(x), _t(w), None if b is None else _t(b)),
            lambda: TF.linear(_torch(x), _torch(w), None if b is None else _torch(b)), arrays)


def c_softmax(d):
    a, dim = d.array(d.shape((3, 4))), d.pick([1, -1, 0, 2, 1.5])
    fn = d.pick([(F.softmax, TF.softmax), (F.log_softmax, TF.log_softmax)])
    return lambda: fn[0](_t(a), dim=dim), lambda: fn[1](_torch(a), dim=dim), [a]


def c_cross_entropy(d):
    m, c = 4, 3
    logits = d.array(d.shape((m, c)))
    target = d.rng.integers(-1 if d.odd(0.1) else 0, c + (1 if d.odd(0.1) else 0), d.shape((m,)))
    target = target.astype(d.pick(["int64"] * 4 + ["int32", "float32", "bool"]))
    # PyTorch wants int64 class indices; tinydeep also takes narrower ints (the same answer)
    theirs = target.astype(np.int64) if target.dtype.kind in "iu" else target
    return (lambda: F.cross_entropy(_t(logits), td.tensor(target)),
            lambda: TF.cross_entropy(_torch(logits), torch.as_tensor(theirs)), [logits])


def c_mse(d):
    shape = d.shape((3, 2))
    a, b = d.array(shape), d.array(d.shape(shape))
    return lambda: F.mse_loss(_t(a), _t(b, False)), lambda: TF.mse_loss(_torch(a), _torch(b, False)), [a]


def c_conv2d(d):
    c, co, k = d.int(1, 2), d.int(1, 2), d.int(1, 3)
    x, w = d.array(d.shape((2, c, 5, 5))), d.array(d.shape((co, c, k, k)))
    stride, pad = d.size(d.int(1, 2)), d.pick([0, 1]) if not d.odd(0.1) else d.pick(BAD_SIZES)
    return (lambda: F.conv2d(_t(x), _t(w), None, stride, pad),
            lambda: TF.conv2d(_torch(x), _torch(w), None, stride, pad), [x, w])


def c_max_pool(d):
    x = d.array(d.shape((2, 1, 5, 5)))
    k, stride = d.size(d.int(1, 3)), d.pick([None, 1, 2]) if not d.odd(0.1) else d.pick(BAD_SIZES)
    pad = 0 if not d.odd(0.1) else d.pick(BAD_SIZES)
    kk = k if isinstance(k, int) and not isinstance(k, bool) else 0
    pad = pad if not (isinstance(pad, int) and pad > kk // 2) else 0   # PyTorch's own rule
    return (lambda: F.max_pool2d(_t(x), k, stride, pad),
            lambda: TF.max_pool2d(_torch(x), k, stride, pad), [x])


def c_affine_grid(d):
    theta = d.array(d.shape((2, 2, 3)))
    size = tuple(d.size(s) for s in (2, 1, 3, 4))
    if any(isinstance(v, float) for v in size):
        d.tags.add("affine_grid with a float size")
    ac = d.pick([True, False])
    return (lambda: F.affine_grid(_t(theta), size, align_corners=ac),
            lambda: TF.affine_grid(_torch(theta), size, align_corners=ac), [theta])


def c_grid_sample(d):
    x, grid = d.array(d.shape((2, 1, 4, 4))), d.array(d.shape((2, 3, 3, 2)))
    mode, ac = d.pick(["zeros", "border", "reflection", "nearest?"]), d.pick([True, False])
    return (lambda: F.grid_sample(_t(x), _t(grid), padding_mode=mode, align_corners=ac),
            lambda: TF.grid_sample(_torch(x), _torch(grid), padding_mode=mode, align_corners=ac),
            [x, grid])


def c_matmul(d):
    a, b = d.array(d.shape((3, 4))), d.array(d.shape((4, 2)))
    return lambda: _t(a) @ _t(b), lambda: _torch(a) @ _torch(b), [a, b]


def c_binary(d):
    a = d.array(d.shape((3, 4)))
    other = d.array(d.shape((3, 4))) if d.odd(0.6) else d.pick([2.0, -1, 0.5, np.nan, None, 1j, "x"])
    op = d.pick(["__add__", "__sub__", "__mul__", "__truediv__"])
    if other is None or isinstance(other, complex):
        d.tags.add("binary with None or complex")
    ours_other = lambda: _t(other) if isinstance(other, np.ndarray) else other  # noqa: E731
    theirs_other = lambda: _torch(other) if isinstance(other, np.ndarray) else other  # noqa: E731
    return (lambda: getattr(_t(a), op)(ours_other()), lambda: getattr(_torch(a), op)(theirs_other()),
            [a] + ([other] if isinstance(other, np.ndarray) else []))


def c_reduce(d):
    a = d.array(d.shape((3, 4)))
    axis, keep = d.pick([None, 0, 1, -1, 2, (0, 1), 1.5, "0"]), d.pick([True, False])
    name = d.pick(["sum", "mean"])
    if isinstance(axis, (float, str)):
        d.tags.add("reduce over a non-integer axis")

    def theirs():
        x = _torch(a)
        return getattr(x, name)() if axis is None and not keep else getattr(x, name)(
            dim=axis if axis is not None else tuple(range(x.ndim)), keepdim=keep)
    return lambda: getattr(_t(a), name)(axis=axis, keepdims=keep), theirs, [a]


def c_shape_op(d):
    a = d.array((2, 3, 4) if not d.odd(0.2) else d.shape((2, 3)))
    kind = d.pick(["reshape", "transpose", "flatten"])
    if kind == "reshape":
        new = d.pick([(6, 4), (-1,), (4, -1, 2), (5, 5), (2.5, 2), (-2, 12)])
        if new == (-2, 12):
            d.tags.add("reshape to a negative size other than -1")
        return lambda: _t(a).reshape(new), lambda: _torch(a).reshape(new), [a]
    if kind == "transpose":
        i, j = d.pick([0, 1, 2, -1, 3, 1.5]), d.pick([0, 2, -3, 4])
        return lambda: _t(a).transpose(i, j), lambda: _torch(a).transpose(i, j), [a]
    s = d.pick([0, 1, 2, 3, -1, 0.5])
    return lambda: _t(a).flatten(s), lambda: _torch(a).flatten(s), [a]


OPS = [c_relu, c_linear, c_softmax, c_cross_entropy, c_mse, c_conv2d, c_max_pool,
       c_affine_grid, c_grid_sample, c_matmul, c_binary, c_reduce, c_shape_op]


# --- constructors: (ours, theirs or None, a spec check for when theirs is None) -------------

def k_linear(d):
    i, o = d.size(3), d.size(2)
    return lambda: nn.Linear(i, o), lambda: torch.nn.Linear(i, o)


def k_conv2d(d):
    i, o, k, s, p = d.size(1), d.size(2), d.size(3), d.size(1), d.pick([0, 1]) if not d.odd(0.15) else d.pick(BAD_SIZES)
    return lambda: nn.Conv2d(i, o, k, stride=s, padding=p), lambda: torch.nn.Conv2d(i, o, k, stride=s, padding=p)


def k_maxpool(d):
    k, s = d.size(2), d.pick([None, 1, 2]) if not d.odd(0.15) else d.pick(BAD_SIZES)
    p = 0 if not d.odd(0.15) else d.pick(BAD_SIZES)
    x = torch.zeros(1, 1, 6, 6)
    # PyTorch builds MaxPool2d lazily; its answer is the first forward pass
    return lambda: nn.MaxPool2d(k, s, p), lambda: torch.nn.MaxPool2d(k, s, p)(x)


def k_mlp(d):
    i, w, depth, o = d.size(3), d.size(4), d.size(d.int(0, 2)), d.size(2)

    def theirs():  # PyTorch has no MLP; its layers' rules plus "depth is a count"
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError("depth")
        sizes = [i] + [w] * depth + [o]
        for a, b in zip(sizes, sizes[1:]):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (a, b)):
                raise ValueError("size")
            torch.nn.Linear(a, b)
    return lambda: nn.MLP(i, w, depth, o), theirs


def k_sgd(d):
    lr = d.pick([0.1, 0.01]) if not d.odd(0.3) else d.pick([-0.1, float("nan"), float("inf"), "0.1", None])
    mom = 0.9 if not d.odd(0.1) else d.pick([-0.5, float("nan")])
    as_arrays = d.odd(0.1)

    def ours():
        params = nn.Linear(2, 2).parameters()
        return optim.SGD([p.numpy() for p in params] if as_arrays else params, lr=lr, momentum=mom)

    def theirs():
        params = list(torch.nn.Linear(2, 2).parameters())
        if isinstance(lr, float) and not math.isfinite(lr) or isinstance(mom, float) and math.isnan(mom):
            raise ValueError("non-finite")  # PyTorch takes NaN; tinydeep refuses it (issue 15)
        return torch.optim.SGD([p.detach().numpy() for p in params] if as_arrays else params,
                               lr=lr, momentum=mom)
    return ours, theirs


def k_loader(d):
    bs = d.size(4)
    x, y = np.zeros((10, 2), np.float32), np.zeros(d.pick([10, 10, 10, 9]), np.int64)
    ds = lambda: torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))  # noqa: E731
    return lambda: DataLoader(x, y, bs), lambda: list(torch.utils.data.DataLoader(ds(), bs))


CONSTRUCTORS = [k_linear, k_conv2d, k_maxpool, k_mlp, k_sgd, k_loader]


# --- one call, classified ----------------------------------------------------------------

def _run_theirs(theirs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", theirs()
        except Exception as e:  # noqa: BLE001  (PyTorch refused: any type)
            return "error", e


def classify(seed):
    """(verdict, detail) for the call drawn from `seed`; the detail starts with the call's
    family (and its PENDING tags, in brackets)."""
    d = Draw(seed)
    is_op = d.rng.random() < 0.7
    make = d.pick(OPS if is_op else CONSTRUCTORS)
    made = make(d)
    ours, theirs = made[0], made[1]
    verdict, detail = _classify(is_op, ours, theirs)
    return verdict, f"{make.__name__[2:]} {sorted(d.tags) or ''}: {detail}"


def _classify(is_op, ours, theirs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with kernel_calls() as calls:
            try:
                out = ours()
                if is_op and out.requires_grad:
                    out.backward(np.ones(out.shape, out.dtype))
            except (ValueError, TypeError) as e:
                if not str(e):
                    return "poor", f"{type(e).__name__} without a message"
                if calls and not (is_op and "backward" in str(e)):
                    return "poor", f"{type(e).__name__}({e}) after kernels {calls}"
                return "good", ""
            except Exception as e:  # noqa: BLE001
                kind = "crash" if type(e).__module__.startswith("numba") else "poor"
                return kind, f"{type(e).__name__}: {str(e)[:200]}"
    status, want = _run_theirs(theirs)
    if status == "error":
        return "silent wrong", f"PyTorch refuses ({type(want).__name__}: {want}) but tinydeep returned"
    if not is_op:
        return "good", ""
    got = out.numpy()
    want_np = want.detach().numpy()
    if got.shape != want_np.shape:
        return "silent wrong", f"shape {got.shape}, PyTorch {want_np.shape}"
    if not np.allclose(got, want_np, rtol=1e-4, atol=1e-5, equal_nan=True):
        return "silent wrong", f"values differ from PyTorch's by {np.nanmax(np.abs(got - want_np))}"
    return "good", ""


def sweep(n, start=0):
    """(Counter of verdicts, [(seed, verdict, detail) of each call that is not good])."""
    counts, bad = Counter(), []
    for seed in range(start, start + n):
        verdict, detail = classify(seed)
        counts[verdict] += 1
        if verdict != "good":
            bad.append((seed, verdict, detail))
    return counts, bad


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_malformed_arguments_get_pytorchs_answer_or_a_clean_error(seed):
    verdict, detail = classify(seed)
    assert verdict == "good", f"seed {seed}: {verdict}: {detail}"


def test_the_oracle_can_disagree(monkeypatch):
    """The classification is not a rubber stamp: with relu replaced by the identity (a
    silent wrong result), the calls that reach relu are classified as silent wrong."""
    monkeypatch.setattr(F, "relu", lambda x: x * 1.0)
    verdicts = Counter(classify(seed)[0] for seed in range(200) if _draws(seed, c_relu))
    assert verdicts["silent wrong"] >= 3, verdicts


def _draws(seed, op):
    d = Draw(seed)
    return d.rng.random() < 0.7 and d.pick(OPS) is op
