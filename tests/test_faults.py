"""Bad inputs and faults: one test per row of the README's fault table.

Each row's answer is a clear error naming the problem, raised before any kernel
runs, and nothing lost: results and checkpoints are written under a temporary name
and renamed, a diverging loss stops training naming the step, Ctrl-C leaves what
was saved readable. Random shapes go into the ops and random bytes into the file
parsers (hypothesis): the only outcomes allowed are a result that agrees with the
NumPy reference backend, or a ValueError/TypeError before any kernel ran.
"""
import contextlib
import errno
import gzip
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinydeep as td
from tinydeep import backends, functional as F, nn
from tinydeep.data import DataLoader, formats
from tinydeep.experiments import records
from tinydeep.experiments.training import TrainingDiverged, evaluate, fit, history_path
from tinydeep.tensor import is_grad_enabled

CLEAN = (ValueError, TypeError)


# --- a spy on the kernels: did any run before the error? ------------------------------

class _Spy:
    def __init__(self, module, calls):
        self._module, self._calls = module, calls

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name in backends.KERNELS + backends.FAMILIES and callable(attr):
            def spied(*a, **k):
                self._calls.append(name)
                return attr(*a, **k)
            return spied
        return attr


@contextlib.contextmanager
def kernel_calls(kernels="cpu"):
    """Run the block on `kernels` ('cpu' or 'reference') and list every kernel it calls."""
    calls, real_get = [], backends.get
    backends.use_cpu_kernels(kernels)
    backends.get = lambda device: _Spy(real_get(device), calls)
    try:
        yield calls
    finally:
        backends.get = real_get
        backends.use_cpu_kernels("cpu")


def outcome(make, kernels):
    """('ok', arrays of the output and its input gradients) or ('error', the exception type),
    asserting that an error came before any kernel ran."""
    inputs, op = make()
    with kernel_calls(kernels) as calls:
        try:
            out = op(*inputs)
        except CLEAN as e:
            assert calls == [], f"{type(e).__name__} ({e}) raised after kernels ran: {calls}"
            assert str(e), "an error without a message"
            return "error", type(e)
        assert isinstance(out, td.Tensor)
        if out.requires_grad:
            out.backward(np.ones(out.shape, out.dtype))
    grads = [t.grad for t in inputs if isinstance(t, td.Tensor) and t.requires_grad]
    return "ok", [out.data] + grads


# --- random inputs for the ops ------------------------------------------------------

DTYPES = [np.float32, np.float32, np.float32, np.float64, np.int64, np.bool_]


class Draw:
    """Random choices from one seed (hypothesis picks the seed), so that each backend
    gets an identical rebuild of the same inputs."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]

    def flag(self):
        return self.int(0, 1) == 1

    def dim(self, hi=4):
        """A size, 0 one time in ten (an empty batch, no channels, an empty image)."""
        return 0 if self.int(0, 9) == 0 else self.int(1, hi)

    def odd(self):
        """True one time in five: then a case breaks one rule on purpose."""
        return self.int(0, 4) == 0

    def shape(self, ndim=(0, 4), size=(0, 4)):
        return tuple(self.int(*size) for _ in range(self.int(*ndim)))

    def ndim_or(self, shape, lo=0, hi=5):
        """Usually `shape`, sometimes with one more or one fewer dimension."""
        k = self.pick([0] * 8 + [1, -1])
        if k == 1 and len(shape) < hi:
            return shape + (self.int(1, 3),)
        if k == -1 and len(shape) > lo:
            return shape[1:]
        return shape

    def array(self, shape, dtype):
        shape = tuple(shape)
        if self.flag() and shape:  # a non-contiguous view: every other column of a wider array
            a = self.rng.uniform(-1, 1, shape[:-1] + (2 * shape[-1],))[..., ::2]
        else:
            a = self.rng.uniform(-1, 1, shape)
        if np.dtype(dtype).kind == "b":
            return a > 0
        if np.dtype(dtype).kind == "i":
            return (a * 3).astype(dtype)
        return a.astype(dtype)

    def tensor(self, shape, dtype, grad=True):
        a = self.array(shape, dtype)
        return td.Tensor(a, requires_grad=grad and a.dtype.kind == "f", dtype=a.dtype)


def case_relu(r, dt):
    return [r.tensor(r.shape(), dt)], F.relu


def case_linear(r, dt):
    n, i, o = r.dim(3), r.dim(3), r.dim(3)
    x = r.tensor(r.ndim_or((n, i), 1), dt)
    w = r.tensor(r.ndim_or((o, i + r.odd()), 1), dt)
    b = r.pick([None, (o,), (o,), (o + r.odd(),), (1, o)])
    return [x, w] + ([] if b is None else [r.tensor(b, dt)]), F.linear


def case_softmax(r, dt):
    fn, dim = r.pick([F.softmax, F.log_softmax]), r.pick([1, 1, -1, 0])
    return [r.tensor(r.ndim_or((r.dim(3), r.dim(4)), 1), dt)], lambda x: fn(x, dim=dim)


def case_cross_entropy(r, dt):
    m, c = r.dim(3), r.dim(4)
    logits = r.tensor(r.ndim_or((m, c), 1), dt)
    t = r.rng.integers(-r.odd(), max(1, c + r.odd()), m + r.odd())
    t = t.astype(r.pick([np.int64] * 3 + [np.int32, np.uint8, np.float32, np.bool_]))
    return [logits, td.tensor(t)], F.cross_entropy


def case_mse(r, dt):
    shape = r.shape((0, 3))
    other = r.pick([shape, shape, r.shape((0, 3))])
    return [r.tensor(shape, dt), r.tensor(other, dt, grad=False)], F.mse_loss


def case_conv2d(r, dt):
    n, c, co, h, w, k = r.dim(2), r.dim(2), r.dim(2), r.dim(5), r.dim(5), r.dim(3)
    x = r.tensor(r.ndim_or((n, c, h, w)), dt)
    wt = r.tensor(r.ndim_or((co, c + r.odd(), k, k)), dt)
    bias = r.pick([None, (co,), (co,), (co + r.odd(),)])
    stride, pad = r.int(1, 2) - r.odd(), r.int(0, 2) - r.odd()
    inputs = [x, wt] + ([] if bias is None else [r.tensor(bias, dt)])
    return inputs, lambda x, w, b=None: F.conv2d(x, w, b, stride=stride, padding=pad)


def case_max_pool(r, dt):
    shape = r.ndim_or(tuple(r.dim(5) for _ in range(4)))
    k, pad, stride = r.int(1, 3) - r.odd(), r.int(0, 1) - r.odd(), r.pick([None, 0, 1, 2])
    return [r.tensor(shape, dt)], lambda x: F.max_pool2d(x, k, stride, pad)


def case_affine_grid(r, dt):
    n = r.dim(2)
    theta = r.tensor(r.pick([(n, 2, 3)] * 4 + [(n, 3, 2), (n, 6)]), dt)
    size = r.ndim_or((n + r.odd(), r.dim(3), r.dim(4), r.dim(4)), 3)
    ac = r.flag()
    return [theta], lambda t: F.affine_grid(t, size, align_corners=ac)


def case_grid_sample(r, dt):
    n = r.dim(2)
    x = r.tensor(r.ndim_or((n, r.dim(2), r.dim(4), r.dim(4))), dt)
    grid = r.tensor((n + r.odd(), r.dim(3), r.dim(3), 2 + r.odd()), dt)
    mode, ac = r.pick(["zeros", "border"] * 2 + ["reflection"]), r.flag()
    return [x, grid], lambda x, g: F.grid_sample(x, g, padding_mode=mode, align_corners=ac)


def case_matmul(r, dt):
    m, k, n = r.dim(3), r.dim(3), r.dim(3)
    a = r.tensor(r.ndim_or((m, k), 1), dt)
    b = r.tensor(r.ndim_or((k + r.odd(), n), 1), dt)
    return [a, b], lambda a, b: a @ b


def case_binary(r, dt):
    a = r.shape((0, 3))
    b = r.pick([a, a[1:], tuple(1 if s else s for s in a), r.shape((0, 3))])
    fn = r.pick([lambda x, y: x + y, lambda x, y: x - y, lambda x, y: x * y,
                 lambda x, y: x / y])
    return [r.tensor(a, dt), r.tensor(b, dt)], fn


def case_sum_mean(r, dt):
    axis, keep, name = r.pick([None, 0, 1, -1, 3, (0, 1)]), r.flag(), r.pick(["sum", "mean"])
    return [r.tensor(r.shape((0, 3)), dt)], lambda x: getattr(x, name)(axis=axis, keepdims=keep)


def case_shape_ops(r, dt):
    shape = r.shape((1, 3), (1, 3))
    x = r.tensor(shape, dt)
    op = r.pick(["reshape", "transpose", "permute", "flatten", "index"])
    if op == "reshape":
        new = r.pick([(-1,), (int(np.prod(shape)) + 1,), tuple(reversed(shape))])
        return [x], lambda x: x.reshape(new)
    if op == "transpose":
        a, b = r.int(-4, 3), r.int(-4, 3)
        return [x], lambda x: x.transpose(a, b)
    if op == "permute":
        perm = [int(i) for i in r.rng.permutation(len(shape) + r.pick([0, 0, 1]))]
        return [x], lambda x: x.permute(*perm)
    if op == "flatten":
        start = r.int(0, 3)
        return [x], lambda x: x.flatten(start)
    i = r.int(-4, 4)
    return [x], lambda x: x[i]


OPS = {"relu": case_relu, "linear": case_linear, "softmax": case_softmax,
       "cross_entropy": case_cross_entropy, "mse_loss": case_mse, "conv2d": case_conv2d,
       "max_pool2d": case_max_pool, "affine_grid": case_affine_grid,
       "grid_sample": case_grid_sample, "matmul": case_matmul, "add_sub_mul_div": case_binary,
       "sum_mean": case_sum_mean, "reshape_transpose_index": case_shape_ops}


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), dt=st.sampled_from(DTYPES))
def test_random_shapes_into_ops(op, seed, dt):
    """Wrong shapes/ranks, zero sizes, float64/int/bool and non-contiguous arrays, at random:
    either the result and its gradients agree with the NumPy reference backend, or the op
    raises ValueError/TypeError, with a message, before any kernel ran."""
    make = lambda: OPS[op](Draw(seed), dt)  # noqa: E731  (identical inputs for each backend)
    got, want = outcome(make, "cpu"), outcome(make, "reference")
    assert got[0] == want[0], f"cpu {got}, reference {want}"
    if got[0] == "error":
        assert got[1] is want[1]
        return
    for g, w in zip(got[1], want[1]):
        assert g.shape == w.shape and g.dtype == w.dtype
        tol = 1e-4 if g.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True)


def test_the_kernel_spy_sees_kernels():
    """The sweep's 'no kernel ran' check can fail: on valid inputs the spy sees the kernels."""
    with kernel_calls() as calls:
        F.relu(td.tensor(np.ones((2, 3)))) @ td.tensor(np.ones((3, 2)))
    assert calls == ["relu", "matmul"]


# --- one test per row of the README's fault table ---------------------------------------------

def test_wrong_shapes_into_layers():
    """Every layer names the shapes that do not fit, and its own weights' shape."""
    x = td.tensor(np.zeros((4, 3)))
    img = td.tensor(np.zeros((2, 1, 5, 5)))
    cases = [(nn.Linear(10, 2), x, r"input of shape \(4, 3\) does not match weight of shape \(2, 10\)"),
             (nn.MLP(10, 5, 2, 3), x, r"\(4, 3\).*\(5, 10\)"),
             (nn.Conv2d(3, 4, 3), img, r"input has 1 channels \(2, 1, 5, 5\) but weight expects 3"),
             (nn.Conv2d(1, 4, 7), img, r"kernel 7x7 is larger than the padded input 5x5"),
             (nn.Conv2d(1, 4, 3), x, r"input must be 4-D, got shape \(4, 3\)"),
             (nn.MaxPool2d(2), x, r"input must be 4-D, got shape \(4, 3\)"),
             (nn.MaxPool2d(6), img, r"window (6|\(6, 6\)) is larger than the input"),
             (nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), img, r"\(2, 25\).*\(3, 16\)"),
             (nn.SpatialTransformer(nn.Sequential(nn.Flatten(), nn.Linear(16, 6)), (4, 4)), img,
              r"\(2, 25\).*\(6, 16\)")]
    for layer, inp, message in cases:
        with kernel_calls() as calls, pytest.raises(ValueError, match=message):
            layer(inp)
        assert calls == [], (layer, calls)
    with pytest.raises(ValueError, match="must end in a Linear layer with 6 outputs"):
        nn.SpatialTransformer(nn.Sequential(nn.Flatten(), nn.Linear(16, 5)), (4, 4))


def test_float64_runs_in_float64_and_mixed_precision_is_refused():
    td.manual_seed(0)
    layer = nn.Linear(3, 2)
    x64 = td.tensor(np.ones((4, 3)), dtype=np.float64)
    with pytest.raises(TypeError, match=r"mixed dtypes \['float32', 'float64'\].*\.float\(\)"):
        layer(x64)
    assert layer(x64.float()).dtype == np.float32
    assert td.tensor(np.ones(3)).dtype == np.float32  # NumPy's float64 default becomes float32
    w64 = td.tensor(layer.weight.data, dtype=np.float64, requires_grad=True)
    y = F.linear(x64, w64)
    assert y.dtype == np.float64
    y.sum().backward()
    assert w64.grad.dtype == np.float64
    np.testing.assert_array_equal(w64.grad, np.full((2, 3), 4.0))  # d Σ(x Wᵀ)/dW = Σ_rows x


def test_int_and_bool_inputs_are_refused_with_their_dtype():
    for dtype in (np.int64, np.int32, np.uint8, np.bool_):
        x = td.tensor(np.ones((2, 3), dtype))
        assert x.dtype == dtype  # kept as they are: labels and masks are integer/bool
        for op in (F.relu, lambda t: F.linear(t, td.tensor(np.ones((2, 3)))), lambda t: t.mean(),
                   lambda t: t + 1.0, lambda t: F.softmax(t)):
            with kernel_calls() as calls, pytest.raises(
                    TypeError, match=f"got {np.dtype(dtype)}.*convert with .float()"):
                op(x)
            assert calls == []
        total = x.sum()  # as in PyTorch: the sum of an integer or bool tensor is an int64
        assert total.dtype == np.int64 and total.item() == 6
        with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
            td.tensor(np.ones(3, dtype), requires_grad=True)
    with pytest.raises(TypeError, match="cannot make a tensor from an array of dtype complex128"):
        td.tensor(np.ones(2, complex))


def test_non_contiguous_inputs_give_the_same_numbers():
    """Transposed and strided views give bit-for-bit what their contiguous copies give."""
    rng = np.random.default_rng(0)
    views = {"x": rng.standard_normal((6, 8)).astype(np.float32).T,                 # (8, 6)
             "w": rng.standard_normal((10, 5))[::2].astype(np.float32).T.copy().T,  # (5, 6)^T
             "img": rng.standard_normal((3, 5, 7, 2)).astype(np.float32).transpose(3, 0, 1, 2),
             "k": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)[:, :, ::-1, :],
             "grid": rng.uniform(-1, 1, (2, 2, 4, 3)).astype(np.float32).transpose(0, 2, 1, 3)}
    views["w"] = rng.standard_normal((6, 10)).astype(np.float32)[:, ::2].T             # (5, 6)

    def run(arrays):
        t = {k: td.tensor(v, requires_grad=True) for k, v in arrays.items()}
        y = (F.linear(t["x"], t["w"]).sum()
             + F.max_pool2d(F.relu(F.conv2d(t["img"], t["k"], padding=1)), 2).sum()
             + F.grid_sample(t["img"], t["grid"][..., :2]).sum()
             + F.log_softmax(t["x"]).sum())
        y.backward()
        return [y.data] + [t[k].grad for k in sorted(t)]

    assert not any(v.flags.c_contiguous for v in views.values())
    got = run(views)
    want = run({k: np.ascontiguousarray(v) for k, v in views.items()})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_nan_and_inf_inputs_propagate_in_ops_and_fit_refuses_them():
    """Ops do not scan for NaN (a pass over memory per op); like IEEE and PyTorch they pass
    it on. fit() and evaluate() scan their data once and name the first bad row."""
    x = td.tensor(np.array([[0.0, np.nan], [1.0, 2.0]]))
    assert np.isnan(F.relu(x).data[0, 1]) and np.isfinite(F.relu(x).data[1]).all()
    loss = F.cross_entropy(td.tensor([[np.inf, 0.0], [0.0, 1.0]]), np.array([0, 1]))
    assert np.isnan(loss.item())
    td.manual_seed(0)
    model = nn.MLP(2, 4, 1, 2)
    data = np.ones((300, 2), np.float32)
    y = np.zeros(300, np.int64)
    for bad in (np.nan, np.inf, -np.inf):
        data[:] = 1.0
        data[217, 1] = bad
        with kernel_calls() as calls, pytest.raises(ValueError, match="NaN or Inf.*row 217"):
            fit(model, data, y, epochs=1, lr=0.1)
        assert calls == []
        with pytest.raises(ValueError, match="NaN or Inf.*row 217"):
            evaluate(model, data, y)


def test_empty_batch():
    """Dense ops return an empty batch; losses, the spatial ops and fit() refuse one."""
    empty = td.tensor(np.zeros((0, 3)), requires_grad=True)
    w = td.tensor(np.ones((2, 3)), requires_grad=True)
    y = F.relu(F.linear(empty, w))
    assert y.shape == (0, 2)
    y.backward(np.zeros((0, 2), np.float32))
    np.testing.assert_array_equal(w.grad, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="cross_entropy of an empty batch is undefined"):
        F.cross_entropy(td.tensor(np.zeros((0, 3))), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="mse_loss of an empty batch is undefined"):
        F.mse_loss(empty, np.zeros((0, 3), np.float32))
    img0, grid0 = td.tensor(np.zeros((0, 1, 4, 4))), td.tensor(np.zeros((0, 2, 2, 2)))
    for op in (lambda: F.conv2d(img0, td.tensor(np.ones((2, 1, 3, 3)))),
               lambda: F.max_pool2d(img0, 2), lambda: F.grid_sample(img0, grid0)):
        with pytest.raises(ValueError, match=r"\(0, 1, 4, 4\) has a zero-size dimension"):
            op()
    with pytest.raises(ValueError, match="positive sizes"):
        F.affine_grid(td.tensor(np.zeros((0, 2, 3))), (0, 1, 4, 4))
    td.manual_seed(0)
    model = nn.MLP(3, 4, 1, 2)
    for fn in (lambda: fit(model, np.zeros((0, 3), np.float32), np.zeros(0, np.int64), 1, 0.1),
               lambda: evaluate(model, np.zeros((0, 3), np.float32), np.zeros(0, np.int64))):
        with pytest.raises(ValueError, match=r"the data set is empty \(x has shape \(0, 3\)\)"):
            fn()


def test_batch_larger_than_the_data():
    """As in PyTorch: one (smaller) batch of everything; with drop_last that would be
    no batch at all, which DataLoader refuses."""
    x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    batches = list(DataLoader(x, y, batch_size=64, shuffle=False))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0][0], x)
    with pytest.raises(ValueError, match=r"batch_size 64 .* 5 rows.*drop_last"):
        DataLoader(x, y, batch_size=64, drop_last=True)
    td.manual_seed(0)
    model = nn.MLP(2, 4, 1, 5)
    hist = fit(model, x / 10, y, epochs=3, lr=0.1, batch_size=64)
    assert hist["steps"] == [1, 2, 3]  # one step per epoch, on all five rows


def test_labels_out_of_range_for_cross_entropy():
    logits = td.tensor(np.zeros((3, 4)), requires_grad=True)
    for targets, message in (([0, 4, 1], r"targets must lie in \[0, 4\), got values from 0 to 4"),
                             ([0, -1, 1], r"got values from -1 to 1"),
                             ([0.0, 1.0, 2.0], "must be integer class indices, got dtype float64"),
                             ([0, 1], r"targets of shape \(2,\) do not match logits of shape \(3, 4\)")):
        with kernel_calls() as calls, pytest.raises((ValueError, TypeError), match=message):
            F.cross_entropy(logits, np.array(targets))
        assert calls == []
    td.manual_seed(0)
    with pytest.raises(ValueError, match=r"fit: label 7 is out of range for a model with 3 "
                                         r"outputs \(labels must lie in \[0, 3\); the first bad one is in row 3"):
        fit(nn.MLP(2, 4, 1, 3), np.ones((8, 2), np.float32), np.arange(8), epochs=1, lr=0.1)


def test_model_on_cuda_with_data_on_cpu():
    """Mixed devices are refused by Function.apply, naming both. Where this build or machine
    has no 'cuda', asking for it says so instead."""
    x = td.tensor(np.ones((2, 3)))
    on_other = td.Tensor.__new__(td.Tensor)  # a tensor that claims another device
    on_other.__dict__.update(td.tensor(np.ones((3, 3)), requires_grad=True).__dict__)
    on_other.device = "cuda"
    with kernel_calls() as calls, pytest.raises(ValueError, match=r"different devices \('cpu' and 'cuda'\)"):
        x @ on_other
    assert calls == []
    # the real thing: a model moved to 'cuda' (numba's CUDA simulator here, a GPU where there
    # is one) fed a batch that stayed on the CPU
    code = textwrap.dedent("""
        import numpy as np, tinydeep as td
        from tinydeep import nn
        try:
            model = nn.Linear(3, 2).to("cuda")
        except ValueError as e:
            print("NO CUDA:", e)
        else:
            try:
                model(td.tensor(np.ones((2, 3))))
            except ValueError as e:
                print("REFUSED:", e)
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM=os.environ.get("NUMBA_ENABLE_CUDASIM", "1"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    if r.stdout.startswith("NO CUDA"):  # no simulator and no GPU in this build: it says so
        assert re.search("not available|NUMBA_ENABLE_CUDASIM", r.stdout), r.stdout
    else:
        assert "REFUSED: Linear: tensors are on different devices ('cpu' and 'cuda')" in r.stdout


def test_checkpoint_from_another_architecture(tmp_path):
    td.manual_seed(0)
    path = tmp_path / "mlp.npz"
    nn.save(nn.MLP(4, 8, 1, 3), path)
    other = nn.MLP(4, 8, 2, 3)
    before = [p.data.copy() for p in other.parameters()]
    with pytest.raises(ValueError, match=r"mlp.npz does not fit MLP: missing \['4.weight', '4.bias'\], "
                                         r"wrong shapes \[2.weight: \(3, 8\) vs \(8, 8\)"):
        nn.load(other, path)
    # a wrong shape somewhere: nothing was copied in
    for p, b in zip(other.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    with pytest.raises(ValueError, match=r"wrong shapes \[0.weight: \(8, 4\) vs \(8, 5\)"):
        nn.load(nn.MLP(5, 8, 1, 3), path)
    path.write_bytes(path.read_bytes()[:100])  # a truncated checkpoint
    with pytest.raises(ValueError, match="is not a readable tinydeep checkpoint"):
        nn.load(nn.MLP(4, 8, 1, 3), path)


def _idx(a):
    a = np.asarray(a, np.uint8)
    return bytes([0, 0, 8, a.ndim]) + b"".join(s.to_bytes(4, "big") for s in a.shape) + a.tobytes()


def test_truncated_data_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path))
    folder = tmp_path / "mnist"
    folder.mkdir()
    images, labels = _idx(np.zeros((3, 28, 28))), _idx([1, 2, 3])
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images[:-5]))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: truncated: header says "
                                         r"shape \(3, 28, 28\) \(2368 bytes\), file has 2363"):
        formats.load_mnist(train=False, download=False)
    cut = gzip.compress(images)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(cut[:len(cut) // 2])  # a cut gzip stream
    with pytest.raises(ValueError, match="not a valid gzip file"):
        formats.load_mnist(train=False, download=False)
    with pytest.raises(ValueError, match=r"2 bytes is not a whole number of 3073-byte"):
        formats.parse_cifar_batch(b"\x00\x01")


def test_wrong_magic_data_file():
    good = _idx([1, 2, 3])
    for bad in (b"\x08\x03" + good[2:], b"\x00\x00\x07" + good[3:], b"PK\x03\x04zip", b""):
        with pytest.raises(ValueError, match="not an IDX file"):
            formats.parse_idx(bad, "labels.idx")
    with pytest.raises(ValueError, match=r"label 200 outside 0..9 \(not CIFAR-10\?\)"):
        formats.parse_cifar_batch(bytes([200]) + bytes(3072))


def test_wrong_checksum_download_is_discarded(tmp_path, monkeypatch):
    """A download whose MD5 differs from the published one never gets its final name;
    a file on disk whose bytes changed fails gzip's own CRC-32 check when read."""
    served = tmp_path / "mirror"
    served.mkdir()
    blob = gzip.compress(_idx([1, 2, 3]))
    (served / "labels.gz").write_bytes(blob)
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path / "home"))
    monkeypatch.setitem(formats.RESOURCES, "fake", {
        "dir": "fake", "mirrors": [served.as_uri() + "/"],
        "files": {"labels.gz": hashlib.md5(b"something else").hexdigest()}})
    with pytest.raises(ValueError, match="checksum mismatch.*the download was discarded"):
        formats.fetch("fake", ["labels.gz"])
    assert os.listdir(tmp_path / "home" / "fake") == []   # no file, no temporary left over
    monkeypatch.setitem(formats.RESOURCES["fake"], "files",
                        {"labels.gz": hashlib.md5(blob).hexdigest()})
    (path,) = formats.fetch("fake", ["labels.gz"])        # the right checksum: kept
    flipped = bytearray(blob)
    flipped[-12] ^= 0xFF                                   # one byte of the data, after the header
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="not a valid gzip file"):
        formats._read(path)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(head=st.sampled_from([b"", b"\x00\x00\x08\x01", b"\x00\x00\x08\x03", b"\x00\x00\x0d\x02",
                             b"\x00\x00\x08\xff", b"\x05"]),
       body=st.binary(max_size=64), sizes=st.lists(st.integers(0, 2**32 - 1), max_size=3))
def test_random_bytes_into_the_parsers(head, body, sizes):
    """Headers that are almost right (a real type code, random sizes up to 2³²-1, random
    bodies) give an array of exactly the stated size or a ValueError; never a crash, never
    a huge allocation or a hang."""
    data = head + b"".join(s.to_bytes(4, "big") for s in sizes) + body
    try:
        a = formats.parse_idx(data)
        assert a.size * a.itemsize + 4 + 4 * a.ndim == len(data)
    except ValueError as e:
        assert "IDX" in str(e)
    try:
        images, labels = formats.parse_cifar_batch(body * 49)
        assert images.shape == (len(labels), 3, 32, 32)
    except ValueError as e:
        assert "CIFAR-10" in str(e)


def _old_and_new(tmp_path):
    path = tmp_path / "out" / "record.json"
    records.save_json({"run": 1}, path)
    return path


def test_no_space_left_keeps_the_old_results(tmp_path, monkeypatch):
    path = _old_and_new(tmp_path)

    def full(f):
        f.write(b"{\"run\": 2, ")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError, match=r"cannot write the file .*record.json: no space left on the "
                                      r"device; nothing was written"):
        records.atomic_write(path, full)
    assert records.load_json(path) == {"run": 1}
    assert sorted(os.listdir(path.parent)) == ["record.json"]


def test_read_only_output_dir(tmp_path, monkeypatch):
    """A read-only folder is found before any training (check_writable, which the CLI runs
    before a demo), and a save into it raises naming the path; nothing is left behind."""
    path = _old_and_new(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(OSError, match=r"into the folder .*out: the file system is read-only"):
            records.check_writable(path.parent)
        with pytest.raises(OSError, match=r"record.json: the file system is read-only"):
            records.save_json({"run": 2}, path)
    assert records.load_json(path) == {"run": 1}
    if os.geteuid() != 0:  # root writes anywhere: then the simulated fault above is the test
        os.chmod(path.parent, 0o555)
        try:
            with pytest.raises(PermissionError, match="permission denied"):
                records.save_json({"run": 2}, path)
        finally:
            os.chmod(path.parent, 0o755)


def test_results_get_the_umask_permissions(tmp_path):
    """Results and checkpoints alike: the bits a plain open() gives, not mkstemp's 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    for path in (records.save_json({"a": 1}, tmp_path / "r.json"),
                 nn.save(nn.Linear(2, 3), tmp_path / "m.npz")):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask, path


class _Faulty(nn.Module):
    """An MLP whose forward pass does something bad at training call number `at` (1-based);
    calls without gradients (fit's one-example probe of the output width) do not count."""

    def __init__(self, at, fault):
        super().__init__()
        td.manual_seed(0)
        self.net = nn.MLP(2, 8, 1, 2)
        object.__setattr__(self, "calls", 0)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "fault", fault)

    def forward(self, x):
        if not is_grad_enabled():
            return self.net(x)
        object.__setattr__(self, "calls", self.calls + 1)
        y = self.net(x)
        if self.calls == self.at:
            return self.fault(y)
        return y


def _toy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_nan_loss_stops_training_naming_the_step(tmp_path):
    """Steps 1..4 are epoch 1 (40 rows, batches of 10); the loss turns NaN at step 7: training
    stops there, and the checkpoint holds exactly the parameters after epoch 1."""
    x, y = _toy()
    ckpt = tmp_path / "run.npz"
    model = _Faulty(at=7, fault=lambda y: y * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 7 \(epoch 2\).*run.npz") as e:
        fit(model, x, y, epochs=3, lr=0.1, batch_size=10, checkpoint=ckpt)
    assert e.value.step == 7 and e.value.history["steps"] == [1, 2, 3, 4, 5, 6]
    saved = records.load_json(history_path(ckpt))
    assert saved["diverged_at_step"] == 7 and len(saved["losses"]) == 6
    reference = _Faulty(at=0, fault=None)
    fit(reference, x, y, epochs=1, lr=0.1, batch_size=10)      # the same seed, one clean epoch
    restored = nn.load(_Faulty(at=0, fault=None), ckpt)
    for p, q in zip(restored.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert e.value.history["losses"][:4] == fit(_Faulty(0, None), x, y, 1, 0.1, batch_size=10)["losses"]


def test_ctrl_c_leaves_partial_results_readable(tmp_path):
    """A real SIGINT in the middle of step 6: it takes effect when step 6 is done (fit holds
    signals except between steps), KeyboardInterrupt goes on up carrying the history, and
    the checkpoint and history on disk are whole and readable."""
    x, y = _toy()
    ckpt = tmp_path / "run.npz"

    def interrupt(out):
        signal.raise_signal(signal.SIGINT)  # Python's handler raises KeyboardInterrupt here
        return out
    model = _Faulty(at=6, fault=interrupt)
    # a shell that starts a job in the background ignores SIGINT for it; restore Python's
    # own handler, as at an interactive prompt
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt) as e:
            fit(model, x, y, epochs=3, lr=0.1, batch_size=10, checkpoint=ckpt)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert e.value.history["steps"] == [1, 2, 3, 4, 5, 6]
    saved = records.load_json(history_path(ckpt))
    assert saved["interrupted_after_step"] == 6 and saved["checkpoint_after_step"] == 6
    assert saved["losses"] == e.value.history["losses"]
    restored = nn.load(_Faulty(0, None), ckpt)
    for p, q in zip(restored.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)   # the parameters after step 6
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


def test_a_signal_received_by_another_thread_waits_for_the_step_to_end(tmp_path):
    """The kernel hands a process's SIGTERM to any thread not blocking it (here a thread
    started before fit, as BLAS and Numba workers are), and Python then runs the handler in
    the main thread wherever it is: mid-step, once. fit must still stop only between whole
    steps (seen in CI: a SIGHUP mid-update left no checkpoint of the last step)."""
    import threading
    x, y = _toy()
    ckpt = tmp_path / "run.npz"
    go, sent = threading.Event(), threading.Event()

    def sender():
        go.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        sent.set()
    worker = threading.Thread(target=sender, daemon=True)
    worker.start()

    def terminate(out):
        go.set()
        sent.wait(10)
        for _ in range(1000):   # bytecodes at which Python runs a pending handler
            out = out + 0.0
        return out
    model = _Faulty(at=6, fault=terminate)
    with pytest.raises(td.signals.Terminated) as e:
        fit(model, x, y, epochs=3, lr=0.1, batch_size=10, checkpoint=ckpt)
    worker.join()
    assert e.value.code == 128 + signal.SIGTERM
    saved = records.load_json(history_path(ckpt))
    assert saved["interrupted_after_step"] == 6 and saved["checkpoint_after_step"] == 6
    assert saved["signal"] == "SIGTERM"


def _seeded_losses():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (96, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, 96)
    td.manual_seed(1)
    loc = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 6))
    model = nn.Sequential(nn.SpatialTransformer(loc, (12, 12)), nn.Flatten(), nn.MLP(144, 16, 1, 4))
    for p in loc[-1].parameters():  # move off the identity, so the grid's gradient matters
        p.data += rng.uniform(-0.1, 0.1, p.shape).astype(np.float32)
    return fit(model, x, y, epochs=2, lr=0.1, batch_size=16, seed=5)["losses"]


def test_same_seed_gives_bit_identical_losses():
    """Two fresh runs (fresh data, model, optimizer and loader from the same seeds; numba's
    threads on): the same losses to the last bit, through linear, ReLU, conv, max-pool,
    affine_grid, grid_sample, cross-entropy and SGD, forward and backward. The CPU kernels
    split their work in a fixed way and add partial sums in a fixed order; the same holds
    across processes (`python -c` twice; not repeated here, to keep CI fast)."""
    first, second = _seeded_losses(), _seeded_losses()
    assert len(first) == 12 and len(set(first)) > 1  # twelve steps, and the losses moved
    assert [v.hex() for v in first] == [v.hex() for v in second]


def test_a_signal_held_when_the_block_fails_is_sent_again_not_lost():
    """A Ctrl-C held during a step that then fails with an error: after the block the
    interrupt still reaches the program (chained to the error), so a caller that catches
    the error does not go on training."""
    from tinydeep.signals import signals_at_checkpoints
    signal.signal(signal.SIGINT, signal.default_int_handler)     # Python's, whatever ran before
    with pytest.raises(KeyboardInterrupt) as caught:
        with signals_at_checkpoints():
            signal.raise_signal(signal.SIGINT)            # held: only noted
            raise ValueError("the step failed")
    assert isinstance(caught.value.__context__, ValueError)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
