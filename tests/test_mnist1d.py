"""MNIST-1D: the set against the mnist1d package's own generator, the CNN against
PyTorch's Conv1d, and a --quick run of the demo."""
import math
import json
import os
import sys

import numpy as np
import pytest

import tinydeep as td
from tinydeep.data import mnist1d
from tinydeep.experiments import mnist1d as m1d

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))


def package_set(shuffle=False):
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.shuffle_seq = shuffle
    return make_dataset(args)


def test_mnist1d_is_the_packages_set_as_images():
    d = package_set()
    x, y = mnist1d()
    xt, yt = mnist1d(train=False)
    assert x.shape == (4000, 1, 1, 40) and xt.shape == (1000, 1, 1, 40)
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0, 0], d["x"].astype(np.float32))
    np.testing.assert_array_equal(yt, d["y_test"])
    assert sorted(set(y.tolist())) == list(range(10))


def test_shuffled_positions_is_one_permutation_of_the_same_samples():
    x, y = mnist1d()
    xs, ys = mnist1d(shuffle_positions=True)
    np.testing.assert_array_equal(y, ys)
    # find the permutation from the first sequences (distinct values), then check all
    perm = [int(np.flatnonzero(x[0, 0, 0] == v)[0]) for v in xs[0, 0, 0]]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    np.testing.assert_array_equal(xs, x[..., perm])
    np.testing.assert_array_equal(mnist1d(False, True)[0], mnist1d(False)[0][..., perm])


def test_mnist1d_leaves_numpys_global_generator_alone_and_is_seeded():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    a, _ = mnist1d(seed=3, num_samples=200)
    assert np.array_equal(np.random.get_state()[1], before)
    b, _ = mnist1d(seed=3, num_samples=200)
    c, _ = mnist1d(seed=4, num_samples=200)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    a[0] = 99  # a copy: the cached set is not changed
    assert not np.array_equal(mnist1d(seed=3, num_samples=200)[0], a)


def test_mnist1d_errors(monkeypatch):
    with pytest.raises(ValueError, match="num_samples"):
        mnist1d(num_samples=3)
    with pytest.raises(ValueError, match="seed"):
        mnist1d(seed=-1)
    m1d_data = sys.modules["tinydeep.data.mnist1d"]
    m1d_data._generate.cache_clear()
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match="pip install"):
        mnist1d(seed=5, num_samples=100)


def test_cnn_is_pytorchs_conv1d_stack():
    torch = pytest.importorskip("torch")
    net = m1d.make_model("cnn", seed=0)
    convs = [m for m in net if isinstance(m, td.nn.Conv2d)]
    ref = torch.nn.Sequential(
        torch.nn.Conv1d(1, 25, 5, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv1d(25, 25, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv1d(25, 25, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(125, 10)).double()
    with torch.no_grad():
        for c, r in zip(convs, [ref[0], ref[2], ref[4]]):
            r.weight.copy_(torch.tensor(c.weight.numpy()[:, :, 0, :]))
            r.bias.copy_(torch.tensor(c.bias.numpy()))
        ref[7].weight.copy_(torch.tensor(net[-1].weight.numpy()))
        ref[7].bias.copy_(torch.tensor(net[-1].bias.numpy()))
    x, _ = mnist1d(num_samples=100)
    ours = net(td.tensor(x[:16])).numpy()
    theirs = ref(torch.tensor(x[:16, 0].astype(np.float64))).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert sum(math.prod(p.shape) for p in net.parameters()) == sum(p.numel() for p in ref.parameters())


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        m1d.make_model("gru")


def test_demo_quick(tmp_path):
    import mnist_1d as demo
    rec = demo.main(["--quick", "--out", str(tmp_path), "--threads", "1"])
    saved = json.loads((tmp_path / "mnist_1d.json").read_text())
    assert (tmp_path / "mnist_1d.png").stat().st_size > 10_000
    assert saved["rows"] == json.loads(json.dumps(rec["rows"]))
    cfg = rec["config"]
    assert len(rec["runs"]) == len(cfg["models"]) * 2 * len(cfg["seeds"])
    for row in rec["rows"]:
        accs = [r["test_accuracy"] for r in rec["runs"]
                if r["model"] == row["model"] and not r["shuffled"]]
        assert row["test_accuracy"]["mean"] == pytest.approx(np.mean(accs))
        assert row["published"] == {"mlp": 0.68, "cnn": 0.94}[row["model"]]
        for r in rec["runs"]:
            assert 0 <= r["test_accuracy"] <= 1
    assert "Greydanus" in rec["source"]
    # a rerun reads the finished runs back instead of training again
    again = demo.main(["--quick", "--out", str(tmp_path)])
    assert again["runs"] == rec["runs"]
    assert again["seconds"] < rec["seconds"]
