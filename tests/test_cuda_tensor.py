"""Tensors, autograd, layers and training on device 'cuda' against the same code
on the CPU with the NumPy reference kernels (in the simulator when no GPU)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tinydeep as td
from tinydeep import backends
from tinydeep import functional as F

pytestmark = pytest.mark.usefixtures("fast_cuda_simulator")
needs_cuda = pytest.mark.skipif(not backends.cuda_available(),
                                reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")


@pytest.fixture
def reference_cpu():
    backends.use_cpu_kernels("reference")
    yield
    backends.use_cpu_kernels("cpu")


def test_import_is_lazy_and_cuda_without_a_gpu_says_how_to_simulate():
    """`import tinydeep` does not import numba.cuda; asking for 'cuda' with no GPU and no
    simulator raises a ValueError that names NUMBA_ENABLE_CUDASIM=1 (skipped on a GPU)."""
    code = ("import sys, tinydeep\n"
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported eagerly'\n"
            "if tinydeep.cuda_available():\n"
            "    print('GPU'); raise SystemExit\n"
            "try:\n"
            "    tinydeep.tensor([1.0], device='cuda')\n"
            "except ValueError as e:\n"
            "    print('ERR', e)\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    if res.stdout.startswith("GPU"):
        pytest.skip("a real GPU is present")
    assert res.stdout.startswith("ERR") and "NUMBA_ENABLE_CUDASIM=1" in res.stdout, res.stdout


@needs_cuda
def test_to_and_back():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = td.tensor(x, requires_grad=True).to("cuda")
    assert t.device == "cuda" and t.requires_grad and t.is_leaf
    assert backends.is_device_array(t.data)
    assert t.to("cuda") is t
    back = t.cpu()
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), x)
    np.testing.assert_array_equal(t.numpy(), x)
    assert "device='cuda'" in repr(t)
    assert td.tensor(2.5, device="cuda").item() == 2.5
    assert t.double().dtype == np.float64 and t.double().device == "cuda"
    with pytest.raises(ValueError, match="gradients do not flow"):
        (t * 2).to("cpu")


@needs_cuda
def test_mixing_devices_is_refused():
    a = td.tensor([1.0, 2.0], device="cuda")
    b = td.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="different devices"):
        a + b
    with pytest.raises(ValueError, match="NumPy array"):
        a * np.ones(2, np.float32)
    with pytest.raises(ValueError, match="different devices"):
        a == b
    with pytest.raises(ValueError, match="logits are on 'cuda' but targets on 'cpu'"):
        F.cross_entropy(td.tensor(np.zeros((2, 3)), device="cuda"), td.tensor(np.array([0, 1])))


def _graph(device, xs):
    """A graph touching every Tensor-level array path: broadcast, scalar ops, pow, div,
    sum/mean over axes, reshape, transpose, permute, indexing, matmul, relu, softmax."""
    x, w, b, v = (td.tensor(a, requires_grad=True, device=device) for a in xs)
    h = F.relu(x @ w + b)                                   # (4,5) + (5,)
    h = (h * 0.5 + 1.0) ** 2.0 / (v + 3.0)                  # (4,5) / (1,5)
    y = h.reshape(2, 2, 5).transpose(1, 2).permute(2, 0, 1)  # (2,5,2) -> (2,2,5)
    z = y[1] - y[0][np.array([1, 0])] + F.softmax(x @ w, dim=1)[1:3]
    loss = z.sum(axis=0).mean() + (2.0 - h).sum() * 0.01 + F.log_softmax(h, 1)[:, 2].mean()
    loss.backward()
    return [loss.numpy()] + [t.numpy() if t.grad is None else backends.arrays(device).to_host(t.grad)
                             for t in (x, w, b, v)]


@needs_cuda
def test_autograd_graph_matches_cpu(reference_cpu):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in [(4, 3), (3, 5), (5,), (1, 5)]]
    xs = [a.astype(np.float64) for a in xs]
    want = _graph("cpu", xs)
    got = _graph("cuda", xs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@needs_cuda
def test_metrics_on_the_device():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0]], np.float32)
    t = td.tensor(logits, device="cuda")
    pred = t.argmax(axis=1)
    assert pred.device == "cuda"
    acc = (pred == td.tensor(np.array([1, 0, 0]), device="cuda")).float().mean()
    assert acc.item() == pytest.approx(2 / 3)
    assert (t > 0.5).numpy().tolist() == (logits > 0.5).tolist()


def _conv_net_pass(device, x, seed):
    td.manual_seed(seed)
    loc = td.nn.Sequential(td.nn.Flatten(), td.nn.Linear(2 * 5 * 5, 6))
    net = td.nn.Sequential(td.nn.SpatialTransformer(loc, (4, 4)),
                           td.nn.Conv2d(2, 3, 3, padding=1), td.nn.ReLU(),
                           td.nn.MaxPool2d(2), td.nn.Flatten(), td.nn.Linear(12, 3))
    loc[1].weight.data[...] = 0.05                        # a non-identity transform
    net.to(device)
    xt = td.tensor(x, device=device)
    loss = F.cross_entropy(net(xt), np.array([0, 2]))
    loss.backward()
    return loss.item(), {n: backends.arrays(device).to_host(p.grad)
                         for n, p in net.named_parameters()}


@needs_cuda
def test_conv_pool_and_spatial_transformer_match_cpu(reference_cpu):
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    loss_cpu, grads_cpu = _conv_net_pass("cpu", x, 3)
    loss_gpu, grads_gpu = _conv_net_pass("cuda", x, 3)
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-5)
    for name in grads_cpu:
        np.testing.assert_allclose(grads_gpu[name], grads_cpu[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)


class _Transfers:
    """Counts host<->device copies: uploads through numba.cuda.to_device or a device
    array's copy_to_device (into a pooled buffer), readbacks through copy_to_host."""

    def __init__(self, monkeypatch):
        from numba import cuda
        self.up = self.down = 0
        to_device, cls = cuda.to_device, type(cuda.device_array(1))
        copy_to_host, copy_to_device = cls.copy_to_host, cls.copy_to_device

        def up(*a, **k):
            self.up += 1
            return to_device(*a, **k)

        def up_into(arr, *a, **k):
            self.up += 1
            return copy_to_device(arr, *a, **k)

        def down(arr, *a, **k):
            self.down += 1
            return copy_to_host(arr, *a, **k)
        monkeypatch.setattr(cuda, "to_device", up)
        monkeypatch.setattr(cls, "copy_to_host", down)
        monkeypatch.setattr(cls, "copy_to_device", up_into)


def _train_mlp(device, X, Y, steps, batch, transfers=None):
    td.manual_seed(0)
    model = td.nn.MLP(X.shape[1], 8, 2, 3).to(device)
    opt = td.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4)
    losses = []
    for step in range(steps):
        i = (step * batch) % len(X)
        if transfers is not None and step == steps - 1:
            transfers.up = transfers.down = 0
        xb = td.tensor(X[i:i + batch], device=device)         # one batch up ...
        loss = F.cross_entropy(model(xb), Y[i:i + batch])      # (its labels go up here)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())                             # ... one scalar down
    if transfers is not None:
        transfers.last_step = (transfers.up, transfers.down)
    return losses, model.state_dict()


@needs_cuda
def test_mlp_trains_on_cuda_to_the_cpu_loss(monkeypatch):
    """Same seed, same batches: the losses of every step and the final weights agree with
    the numba CPU path; a training step moves one batch up and one scalar down."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((48, 6)).astype(np.float32)
    Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    steps = 12
    losses_cpu, w_cpu = _train_mlp("cpu", X, Y, steps, 16)
    transfers = _Transfers(monkeypatch)
    losses_gpu, w_gpu = _train_mlp("cuda", X, Y, steps, 16, transfers)
    assert transfers.last_step == (2, 1)                       # x and y up, the loss down
    assert losses_gpu[-1] < losses_gpu[0] * 0.8                # it learns
    np.testing.assert_allclose(losses_gpu, losses_cpu, rtol=1e-4, atol=1e-5)
    for name in w_cpu:
        np.testing.assert_allclose(w_gpu[name], w_cpu[name], rtol=1e-4, atol=1e-5, err_msg=name)


@needs_cuda
def test_state_dict_round_trip_and_optimizer_device_check():
    td.manual_seed(1)
    model = td.nn.MLP(3, 4, 1, 2)
    state = model.state_dict()
    model.to("cuda")
    assert all(p.device == "cuda" for p in model.parameters())
    for name, arr in model.state_dict().items():
        np.testing.assert_array_equal(arr, state[name])
    model.load_state_dict(state)
    assert all(backends.is_device_array(p.data) for p in model.parameters())
    opt = td.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = model(td.tensor(np.ones((2, 3)), device="cuda")).sum()
    loss.backward()
    opt.step()
    model.to("cpu")
    loss = model(td.tensor(np.ones((2, 3)))).sum()
    loss.backward()
    with pytest.raises(ValueError, match="create the optimizer after"):
        opt.step()


@needs_cuda
def test_cuda_benchmark_runs_its_code_paths(tmp_path):
    """benchmarks/bench_cuda.py with --tiny: every contender is checked against its oracle
    before timing, so this exercises the benchmark's correctness checks (its timings only
    mean something on a real GPU, where this test uses the full sizes' code, tiny shapes)."""
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_cuda.py")
    spec = importlib.util.spec_from_file_location("bench_cuda", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    old = sys.getswitchinterval()
    try:
        res = bench.main(["--tiny", "--json", str(tmp_path / "bench.json")])
    finally:
        sys.setswitchinterval(old)
    assert set(res) >= {"matmul", "relu", "grid_sample", "mlp"}
    assert res["mlp"]["last_loss_gpu"] == pytest.approx(res["mlp"]["last_loss_cpu"], rel=1e-4)
    assert (tmp_path / "bench.json").exists()


@needs_cuda
def test_cross_entropy_with_targets_on_the_gpu_honours_ignore_index():
    """Targets already on the GPU are not read back: ignore_index that is a class takes the
    unfused path (the ignored rows get no loss and no gradient, as on the CPU and in
    PyTorch); a target outside [0, C) makes the loss and that row's gradient NaN, never a
    finite wrong gradient."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    t = np.array([0, 2, 0, 3, 1])
    got, want = [], []
    for device, out in (("cuda", got), ("cpu", want)):
        logits = td.tensor(x, device=device, requires_grad=True)
        target = td.tensor(t, device=device) if device == "cuda" else t
        loss = F.cross_entropy(logits, target, ignore_index=0)
        loss.backward()
        out += [float(loss.numpy()), backends.arrays(device).to_host(logits.grad)]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)
    assert np.all(got[1][[0, 2]] == 0)                   # the ignored rows
    logits = td.tensor(x, device="cuda", requires_grad=True)
    loss = F.cross_entropy(logits, td.tensor(np.array([0, -100, 2, 3, 1]), device="cuda"))
    loss.backward()
    g = backends.arrays("cuda").to_host(logits.grad)
    assert np.isnan(float(loss.numpy())) and np.isnan(g[1]).all() and np.isfinite(g[[0, 2, 3, 4]]).all()
