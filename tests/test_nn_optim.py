"""Layers, checkpoints, the optimizer and a real training run."""
import os

import numpy as np
import pytest

import tinydeep as td
from tinydeep import functional as F, nn, optim


def test_mlp_structure_and_init_bounds():
    td.manual_seed(0)
    m = nn.MLP(20, 16, 2, 3)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert sum(p.numel() for p in m.parameters()) == 20 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    w = m[0].weight.numpy()
    # Kaiming-uniform(a=√5) bound is 1/√fan_in; a uniform on ±b has std b/√3
    assert np.abs(w).max() <= 1 / np.sqrt(20)
    assert w.std() == pytest.approx(1 / np.sqrt(20) / np.sqrt(3), rel=0.1)
    assert m(td.tensor(np.zeros((5, 20)))).shape == (5, 3)


def test_manual_seed_makes_init_repeatable():
    td.manual_seed(7)
    a = nn.Linear(4, 3).weight.numpy().copy()
    td.manual_seed(7)
    np.testing.assert_array_equal(a, nn.Linear(4, 3).weight.numpy())


def test_train_eval_and_zero_grad():
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    assert m.eval() is m and not m[0].training
    m.train()
    assert m[1].training
    F.cross_entropy(m(td.tensor(np.ones((2, 3)))), td.tensor([0, 1])).backward()
    assert m[0].weight.grad is not None
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_save_load_roundtrip_and_mismatches(tmp_path):
    td.manual_seed(1)
    a, b = nn.MLP(5, 8, 1, 2), nn.MLP(5, 8, 1, 2)
    path = tmp_path / "model.npz"
    nn.save(a, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind
    nn.load(b, path)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with pytest.raises(ValueError, match=r"model\.npz.*wrong shapes \[0\.weight: \(8, 5\) vs \(9, 5\)"):
        nn.load(nn.MLP(5, 9, 1, 2), path)
    with pytest.raises(ValueError, match=r"missing \['4\.weight', '4\.bias'\]"):
        nn.load(nn.MLP(5, 8, 2, 2), path)
    with pytest.raises(ValueError, match=r"unexpected \['2\.weight', '2\.bias'\]"):
        nn.load(nn.Sequential(nn.Linear(5, 8)), path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="bad.npz"):
        nn.load(b, bad)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        nn.load(b, tmp_path / "nope.npz")


def test_save_failure_keeps_the_old_file(tmp_path, monkeypatch):
    m = nn.Linear(3, 2)
    path = tmp_path / "m.npz"
    nn.save(m, path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", boom)   # (checkpoint._write_npz's writer)
    with pytest.raises(OSError, match="disk full"):
        nn.save(m, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0),
                                                  (0.9, True, 1e-2), (0.5, False, 5e-4)])
def test_sgd_matches_the_recurrence(kernels, momentum, nesterov, wd):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(3)]
    p = nn.Parameter(p0.copy(), dtype=np.float64)
    opt = optim.SGD([p], lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    expect, v = p0.copy(), np.zeros(5)
    for g in grads:
        p.grad = g.copy()
        opt.step()
        d = g + wd * expect
        v = momentum * v + d
        expect = expect - 0.1 * (d + momentum * v if nesterov else (v if momentum else d))
    np.testing.assert_allclose(p.numpy(), expect, rtol=1e-12)


def test_sgd_matches_torch(kernels):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    td.manual_seed(0)
    ours = nn.MLP(4, 8, 1, 3)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for (_, p), q in zip(ours.named_parameters(), theirs.parameters()):
            q.copy_(torch.tensor(p.numpy()))
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(ours(td.tensor(x)), td.tensor(y)).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x, dtype=torch.float32)),
                                          torch.tensor(y)).backward()
        topt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), atol=1e-5)


def test_schedulers():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.1)
    lrs = []
    for _ in range(5):
        step.step()
        lrs.append(opt.lr)
    np.testing.assert_allclose(lrs, [1.0, 0.1, 0.1, 0.01, 0.01])
    opt.lr = 0.5
    exp = optim.ExponentialLR(opt, gamma=0.95)
    for _ in range(3):
        exp.step()
    assert opt.lr == pytest.approx(0.5 * 0.95 ** 3)


def test_spatial_transformer_starts_at_identity(rng):
    loc = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 6))
    st = nn.SpatialTransformer(loc, (8, 8))
    x = td.tensor(rng.standard_normal((2, 1, 8, 8)))
    np.testing.assert_allclose(st(x).numpy(), x.numpy(), atol=1e-5)
    out = st(x)
    (out * td.tensor(rng.standard_normal(out.shape))).sum().backward()
    assert np.abs(loc[3].weight.grad).sum() > 0  # gradients reach θ through grid_sample
    with pytest.raises(ValueError, match="6 outputs"):
        nn.SpatialTransformer(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), (8, 8))


def two_blobs(n, rng):
    """Two Gaussian classes in 10-D whose means differ along one direction."""
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 10)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 2.5, -2.5)
    x[:, 1] += 1.5 * np.sin(3 * x[:, 0])  # a bend, so the net has something to learn
    return x, y


def test_mlp_trains_to_98_percent():
    rng = np.random.default_rng(0)
    x, y = two_blobs(2000, rng)
    xt, yt = two_blobs(1000, rng)
    td.manual_seed(0)
    model = nn.MLP(10, 32, 2, 2)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(5):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model(td.tensor(x[idx])), td.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with td.no_grad():
        acc = (model(td.tensor(xt)).argmax(1) == td.tensor(yt)).float().mean().item()
    assert acc >= 0.98, acc


def test_conv_net_forward_backward_shapes(rng):
    net = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 10))
    x = td.tensor(rng.standard_normal((3, 1, 28, 28)))
    out = net(x)
    assert out.shape == (3, 10)
    F.cross_entropy(out, td.tensor([1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
