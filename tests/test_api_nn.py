"""The PyTorch user's first hour, F and nn (issue 16): losses, activations, padding,
pooling, dilated and 'same' convolutions, Dropout, BatchNorm (running statistics,
train/eval), LayerNorm, Embedding, containers and Module's tree walks, each compared
with PyTorch 2.13 on the numba CPU kernels, the NumPy reference and CUDA (simulator)."""
import numpy as np
import pytest

import tinydeep as td
from tinydeep import backends, functional as F, nn

from test_api_tensor import agree, device  # noqa: F401  (the backends fixture)

torch = pytest.importorskip("torch")
TF, TNN = torch.nn.functional, torch.nn


def FF(x):
    return F if isinstance(x, td.Tensor) else TF


def tgt(x, values):
    """Integer targets in x's library, on x's device."""
    return (td.tensor(np.array(values), device=x.device) if isinstance(x, td.Tensor)
            else torch.tensor(np.array(values)))


def W(x, values):
    return (td.tensor(np.array(values), dtype=np.float64, device=x.device)
            if isinstance(x, td.Tensor) else torch.tensor(np.array(values, dtype=np.float64)))


CASES = {
    "sigmoid": (lambda x: FF(x).sigmoid(x), [(2, 3)]),
    "tanh": (lambda x: FF(x).tanh(x), [(2, 3)]),
    "leaky_relu": (lambda x: FF(x).leaky_relu(x, 0.2), [(3, 4)]),
    "F.softmax 3-D dim 0": (lambda x: FF(x).softmax(x, dim=0), [(2, 3, 4)]),
    "F.log_softmax 2-D dim 0": (lambda x: FF(x).log_softmax(x, dim=0), [(3, 4)]),
    "gelu tanh": (lambda x: FF(x).gelu(x, approximate="tanh"), [(3, 4)]),
    "gelu": (lambda x: FF(x).gelu(x), [(3, 4)]),
    "mse sum": (lambda x, y: FF(x).mse_loss(x, y, reduction="sum"), [(3, 4), (3, 4)]),
    "mse none": (lambda x, y: FF(x).mse_loss(x, y, reduction="none"), [(3, 4), (3, 4)]),
    "cross_entropy": (lambda x: FF(x).cross_entropy(x, tgt(x, [0, 3, 1])), [(3, 4)]),
    "ce sum": (lambda x: FF(x).cross_entropy(x, tgt(x, [0, 3, 1]), reduction="sum"), [(3, 4)]),
    "ce none": (lambda x: FF(x).cross_entropy(x, tgt(x, [0, 3, 1]), reduction="none"), [(3, 4)]),
    "ce smoothing": (lambda x: FF(x).cross_entropy(x, tgt(x, [0, 3, 1]), label_smoothing=0.1), [(3, 4)]),
    "ce weight": (lambda x: FF(x).cross_entropy(x, tgt(x, [0, 3, 1]), weight=W(x, [1, 2, 3, 4])), [(3, 4)]),
    # targets from the host: ones already on a GPU are not read back to look for ignore_index
    "ce ignore": (lambda x: FF(x).cross_entropy(x, np.array([0, -100, 1]) if isinstance(x, td.Tensor)
                                                else tgt(x, [0, -100, 1])), [(3, 4)]),
    "ce all options": (lambda x: FF(x).cross_entropy(x, tgt(x, [0, 2, 1, 2]), weight=W(x, [1, 2, 3, 4]),
                                                     ignore_index=2, label_smoothing=0.3), [(4, 4)]),
    "ce 4-D": (lambda x: FF(x).cross_entropy(x, tgt(x, [[[0, 2], [1, 1]], [[2, 2], [0, 1]]])), [(2, 3, 2, 2)]),
    "nll_loss": (lambda x: FF(x).nll_loss(x.log_softmax(1), tgt(x, [0, 3, 1])), [(3, 4)]),
    "bce": (lambda x, y: FF(x).binary_cross_entropy(x.sigmoid(), y.sigmoid()), [(3, 4), (3, 4)]),
    "bce logits": (lambda x, y: FF(x).binary_cross_entropy_with_logits(x * 5, y.sigmoid()), [(3, 4), (3, 4)]),
    "bce logits pos_weight": (lambda x, y: FF(x).binary_cross_entropy_with_logits(
        x, y.sigmoid(), pos_weight=W(x, [1, 2, 3, 4]), reduction="sum"), [(3, 4), (3, 4)]),
    "pad": (lambda x: FF(x).pad(x, (1, 2, 0, 1)), [(1, 2, 3, 3)]),
    "pad value crop": (lambda x: FF(x).pad(x, (-1, 2), value=1.5), [(2, 3, 4)]),
    "pad reflect": (lambda x: FF(x).pad(x, (2, 1), mode="reflect"), [(2, 3, 4)]),
    "pad reflect 2 dims": (lambda x: FF(x).pad(x, (1, 2, 2, 0), mode="reflect"), [(1, 2, 3, 4)]),
    "pad reflect crop": (lambda x: FF(x).pad(x, (-1, 3), mode="reflect"), [(3, 4)]),
    "pad reflect 3 dims": (lambda x: FF(x).pad(x, (1, 1, 1, 0, 0, 1), mode="reflect"), [(1, 2, 2, 3)]),
    "pad replicate": (lambda x: FF(x).pad(x, (3, 1, 0, 2), mode="replicate"), [(2, 3, 4)]),
    "pad replicate crop": (lambda x: FF(x).pad(x, (-1, 5, 1, -2), mode="replicate"), [(1, 2, 3, 4)]),
    "pad circular": (lambda x: FF(x).pad(x, (1, 2, 3, 1), mode="circular"), [(1, 2, 3, 4)]),
    "pad circular crop": (lambda x: FF(x).pad(x, (-1, 3, 2, -1), mode="circular"), [(2, 3, 5)]),
    "avg_pool2d": (lambda x: FF(x).avg_pool2d(x, 2), [(1, 2, 4, 4)]),
    "avg_pool2d stride pad": (lambda x: FF(x).avg_pool2d(x, 3, 2, 1), [(1, 2, 5, 5)]),
    "avg_pool2d no pad count": (lambda x: FF(x).avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                                [(1, 2, 6, 5)]),
    "avg_pool2d no pad count 2": (lambda x: FF(x).avg_pool2d(x, (2, 3), 1, (1, 1), False, False),
                                  [(2, 1, 4, 5)]),
    "avg_pool2d ceil": (lambda x: FF(x).avg_pool2d(x, 3, 2, 1, ceil_mode=True), [(1, 2, 6, 5)]),
    "avg_pool2d ceil no pad count": (lambda x: FF(x).avg_pool2d(
        x, (2, 3), 2, (1, 1), ceil_mode=True, count_include_pad=False), [(2, 1, 5, 6)]),
    "avg_pool2d ceil drops a window": (lambda x: FF(x).avg_pool2d(x, 2, 2, 1, True), [(1, 2, 5, 5)]),
    "avg_pool2d ceil stride > kernel": (lambda x: FF(x).avg_pool2d(x, 2, 3, ceil_mode=True,
                                                                   count_include_pad=False), [(1, 1, 7, 8)]),
    "avg_pool2d divisor_override": (lambda x: FF(x).avg_pool2d(x, 3, 2, 1, True, divisor_override=4),
                                    [(1, 2, 6, 5)]),
    "max_pool2d ceil indices": (lambda x: FF(x).max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
                                [(1, 2, 6, 5)]),
    "max_pool2d ceil drops a window": (lambda x: FF(x).max_pool2d(x, 2, 2, 1, 1, True), [(1, 2, 5, 5)]),
    "max_pool2d ceil stride > kernel": (lambda x: FF(x).max_pool2d(x, 2, 3, 0, 1, True, True), [(2, 1, 7, 8)]),
    "max_pool2d dilation indices": (lambda x: FF(x).max_pool2d(x, 3, 2, 1, 2, return_indices=True),
                                    [(1, 2, 7, 8)]),
    "max_pool2d dilation pairs ceil": (lambda x: FF(x).max_pool2d(x, (2, 3), (1, 2), (1, 0), (3, 2), True, True),
                                       [(2, 1, 9, 6)]),
    "adaptive_avg_pool2d": (lambda x: FF(x).adaptive_avg_pool2d(x, (2, 3)), [(1, 2, 5, 4)]),
    "conv2d same": (lambda x, w: FF(x).conv2d(x, w, padding="same"), [(1, 2, 5, 5), (3, 2, 3, 2)]),
    "conv2d dilation": (lambda x, w: FF(x).conv2d(x, w, padding=1, dilation=2), [(1, 2, 6, 6), (3, 2, 3, 3)]),
    "conv2d same dilation": (lambda x, w: FF(x).conv2d(x, w, padding="same", dilation=(2, 1)),
                             [(1, 1, 5, 5), (2, 1, 3, 3)]),
    "layer_norm": (lambda x, w, b: FF(x).layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
    "layer_norm 2 dims": (lambda x, w, b: FF(x).layer_norm(x, (4, 5), w, b), [(2, 3, 4, 5), (4, 5), (4, 5)]),
    "layer_norm plain": (lambda x: FF(x).layer_norm(x, (6,)), [(4, 6)]),
    "batch_norm train": (lambda x, w, b: FF(x).batch_norm(x, None, None, w, b, training=True),
                         [(4, 3, 2), (3,), (3,)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_functional_matches_torch(name, device):  # noqa: F811
    fn, shapes = CASES[name]
    agree(fn, shapes, device, seed=hash(name) % 1000)


@pytest.mark.parametrize("shape, amounts, kwargs, match", [
    ((2, 3), (4, 0), dict(mode="reflect"), "does not fit"),
    ((2, 4), (0, 5), dict(mode="circular"), "does not fit"),
    ((2, 3), (1, 1), dict(mode="reflect", value=1.0), "no value"),
    ((4,), (1, 1), dict(mode="replicate"), "1-D"),
    ((1, 1, 2, 3), (1, 1), dict(mode="circular"), "4-D"),
    ((2, 3), (1, 1), dict(mode="wrap"), "mode")])
def test_pad_modes_refuse_like_torch(shape, amounts, kwargs, match):
    with pytest.raises((RuntimeError, NotImplementedError)):
        TF.pad(torch.zeros(shape), amounts, **kwargs)
    with pytest.raises(ValueError, match=match):
        F.pad(td.zeros(shape), amounts, **kwargs)


def test_pad_modes_sweep_matches_torch():
    """Every (left, right) in -6..6 on a dim of 5, each mode: where PyTorch refuses, so does
    tinydeep; where tinydeep pads, the values are torch's. (Circular pads wider than the dim
    left after cropping would wrap more than once; PyTorch takes some of them, depending on
    the number of channels; tinydeep refuses them all.)
    value=0 is accepted by every mode, as torch does; amounts must be integers."""
    x = np.arange(10.0).reshape(1, 2, 5)        # (N, C, W): torch's batched path
    for mode in ("reflect", "replicate", "circular"):
        for lo, hi in np.ndindex(13, 13):
            lo, hi = int(lo) - 6, int(hi) - 6
            try:
                want = TF.pad(torch.tensor(x), (lo, hi), mode=mode).numpy()
            except (RuntimeError, NotImplementedError):
                want = None
            try:
                got = F.pad(td.tensor(x, dtype=np.float64), (lo, hi), mode=mode).numpy()
            except ValueError:
                wraps_twice = max(lo, hi) > 5 - max(-lo, 0) - max(-hi, 0)
                assert want is None or mode == "circular" and wraps_twice, (mode, lo, hi)
                continue
            assert want is not None, (mode, lo, hi)
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(F.pad(td.tensor(x), (1, 2), mode=mode, value=0).numpy(),
                                      TF.pad(torch.tensor(x), (1, 2), mode=mode, value=0).numpy())
    with pytest.raises(TypeError, match="integers"):
        F.pad(td.tensor(x), (1.5, 1))


def test_pooling_ceil_mode_sweep_matches_torch():
    """Every small geometry (padding up to half the kernel), ceil_mode on: shapes, values and
    max_pool2d's indices as torch's, the windows PyTorch's rule drops among them."""
    rng, dropped = np.random.default_rng(0), 0
    for h, w, k, s, p in np.ndindex(9, 7, 4, 5, 2):
        if k < 1 or s < 1 or p > k // 2 or min(h, w) < 1 or min(h, w) + 2 * p < k:
            continue
        dropped += (-(-(h + 2 * p - k) // s)) * s >= h + p
        x = rng.standard_normal((1, 2, h, w))
        for cip in (True, False):
            want = TF.avg_pool2d(torch.tensor(x), k, s, p, True, cip).numpy()
            got = F.avg_pool2d(td.tensor(x, dtype=np.float64), k, s, p, True, cip).numpy()
            assert got.shape == want.shape, (h, w, k, s, p, cip)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        want, at = TF.max_pool2d(torch.tensor(x), k, s, p, 1, True, True)
        got, ours = F.max_pool2d(td.tensor(x, dtype=np.float64), k, s, p, 1, True, True)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        np.testing.assert_array_equal(ours.numpy(), at.numpy())
    assert dropped > 20


def test_pooling_layers_ceil_mode_and_dilation(device):  # noqa: F811
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6))
    X, XT = td.tensor(x, dtype=np.float64, device=device), torch.tensor(x)
    for args, kw in [((3, 2, 1), dict(ceil_mode=True)), ((2,), dict(ceil_mode=True, count_include_pad=False)),
                     ((3, 2, 1), dict(ceil_mode=True, divisor_override=5))]:
        np.testing.assert_allclose(nn.AvgPool2d(*args, **kw)(X).numpy(),
                                   TNN.AvgPool2d(*args, **kw)(XT).numpy(), rtol=1e-12)
    for args, kw in [((3, 2, 1), dict(ceil_mode=True)), ((3, 2, 1), dict(dilation=2)),
                     ((2,), dict(dilation=(3, 2), ceil_mode=True))]:
        (a, i), (b, j) = (nn.MaxPool2d(*args, **kw, return_indices=True)(X),
                          TNN.MaxPool2d(*args, **kw, return_indices=True)(XT))
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(i.numpy(), j.numpy())
    assert repr(nn.MaxPool2d(3, 2, 1, dilation=2)).replace("(3, 3)", "3").replace("(2, 2)", "2").replace(
        "(1, 1)", "1") == repr(TNN.MaxPool2d(3, 2, 1, dilation=2))
    assert repr(nn.MaxPool2d(2, ceil_mode=True)).replace("(2, 2)", "2").replace("(0, 0)", "0") == \
        repr(TNN.MaxPool2d(2, ceil_mode=True))


@pytest.mark.parametrize("op, kwargs, match", [
    ("max_pool2d", dict(dilation=0), "dilation"), ("max_pool2d", dict(dilation=(1, -1)), "dilation"),
    ("max_pool2d", dict(dilation=4), "larger"), ("max_pool2d", dict(dilation=(1, 4), stride=1, ceil_mode=True), "larger"),
    ("avg_pool2d", dict(padding=2), "at most half"), ("max_pool2d", dict(padding=2, dilation=2), "at most half"),
    ("max_pool2d", dict(padding=2), "at most half"), ("avg_pool2d", dict(divisor_override=0), "zero")])
def test_pooling_refusals(op, kwargs, match):
    with pytest.raises(RuntimeError):
        getattr(TF, op)(torch.zeros(1, 1, 4, 4), 2, **kwargs)
    with pytest.raises(ValueError, match=match):
        getattr(F, op)(td.zeros(1, 1, 4, 4), 2, **kwargs)


PADS = {1: ((2, 3, 5), (2, 1)), 2: ((1, 2, 4, 5), (2, 1, 1, 2)), 3: ((1, 2, 3, 4, 5), (1, 2, 2, 1, 1, 0))}


@pytest.mark.parametrize("kind", ["Zero", "Constant", "Reflection", "Replication", "Circular"])
def test_padding_layers_match_torch(kind, device):  # noqa: F811
    """Each torch.nn padding layer, 1-D to 3-D, an int and a tuple: values and gradients
    (gradcheck on the CPU), its .padding and its repr, as torch's."""
    for d, (shape, amounts) in PADS.items():
        for padding in (1, amounts):
            args = (padding, 0.5) if kind == "Constant" else (padding,)
            ours, theirs = getattr(nn, f"{kind}Pad{d}d")(*args), getattr(TNN, f"{kind}Pad{d}d")(*args)
            assert ours.padding == theirs.padding and repr(ours) == repr(theirs)
            agree(lambda x: (ours if isinstance(x, td.Tensor) else theirs)(x), [shape], device,
                  grad=padding == 1, seed=d)
    with pytest.raises(TypeError, match="needs value"):
        nn.ConstantPad2d(1)
    with pytest.raises(ValueError, match="4 ints"):
        getattr(nn, f"{kind}Pad2d")(*((1, 2), 0.5)[:1 + (kind == "Constant")])


def test_embedding_max_norm_and_scale_grad_by_freq_like_torch(device):  # noqa: F811
    """max_norm renormalizes the picked rows in place (p = 2, 1, 3.5, inf), scale_grad_by_freq
    divides each row's gradient by its count, padding_idx still gets none: all as torch's."""
    idx = np.array([[0, 2, 2], [5, 2, 1]])
    td.manual_seed(0)       # weights whose picked rows need renormalizing, whatever ran before
    for norm_type, freq, pad in [(2.0, False, None), (1.0, True, None), (3.5, True, 1), (np.inf, False, 2)]:
        kw = dict(padding_idx=pad, max_norm=1.5, norm_type=norm_type, scale_grad_by_freq=freq)
        ours, theirs = nn.Embedding(6, 3, **kw).double(), TNN.Embedding(6, 3, **kw).double()
        ours.weight.data = ours.weight.data * 2
        _twin(ours, theirs)
        before = ours.weight.numpy().copy()
        ours.to(device)
        y, yt = ours(td.tensor(idx, device=device)), theirs(torch.tensor(idx))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
        after = ours.weight.numpy()
        np.testing.assert_allclose(after, theirs.weight.detach().numpy(), rtol=1e-12)
        assert (after[[3, 4]] == before[[3, 4]]).all() and (after[[0, 2, 5]] != before[[0, 2, 5]]).any()
        assert np.linalg.norm(after[[0, 1, 2, 5]], norm_type, axis=1).max() <= 1.5
        g = np.random.default_rng(1).standard_normal(yt.shape)
        (y * td.tensor(g, dtype=np.float64, device=device)).sum().backward()
        (yt * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(backends.arrays(device).to_host(ours.weight.grad),
                                   theirs.weight.grad.numpy(), rtol=1e-12, atol=1e-15)
    # neither is a derivative (no finite differences): the closed form of a sum's gradient
    w = td.tensor(np.ones((4, 2)), dtype=np.float64, device=device, requires_grad=True)
    F.embedding(td.tensor(np.array([1, 1, 3, 1]), device=device), w, scale_grad_by_freq=True).sum().backward()
    np.testing.assert_allclose(backends.arrays(device).to_host(w.grad), [[0, 0], [1, 1], [0, 0], [1, 1]])
    w = td.tensor([[np.inf, 1.0], [2.0, -np.inf]], dtype=np.float64, device=device)   # the value
    got = F.embedding(td.tensor(np.array([0, 1, 0]), device=device), w, scale_grad_by_freq=True)
    np.testing.assert_array_equal(got.numpy(), torch.nn.functional.embedding(        # stays: no NaN
        torch.tensor([0, 1, 0]), torch.tensor(w.numpy()), scale_grad_by_freq=True).numpy())
    for make in (lambda: nn.Embedding(3, 2, sparse=True),
                 lambda: F.embedding(td.tensor(np.array([0])), nn.Embedding(3, 2).weight, sparse=True)):
        with pytest.raises(ValueError, match="sparse"):
            make()


def test_one_hot_and_dropout(device):  # noqa: F811
    t = td.tensor(np.array([0, 2, 1]), device=device)
    np.testing.assert_array_equal(F.one_hot(t).numpy(), TF.one_hot(torch.tensor([0, 2, 1])).numpy())
    assert F.one_hot(t, 5).shape == (3, 5) and F.one_hot(t).dtype == np.int64
    x = td.ones(200, 100, device=device)
    td.manual_seed(0)
    y = F.dropout(x, 0.3).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert F.dropout(x, 0.3, training=False) is x
    m = nn.Dropout(0.5)
    assert (m(x).numpy() == 0).any() and m.eval()(x) is x


def _twin(ours, theirs):
    """Copy tinydeep's parameters into the torch module (same names)."""
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            p.copy_(torch.tensor(ours.state_dict()[n].astype(np.float64)))


@pytest.mark.parametrize("cls, shape, momentum", [
    ("BatchNorm1d", (6, 3), 0.1), ("BatchNorm1d", (4, 3, 5), 0.1), ("BatchNorm2d", (4, 3, 2, 2), 0.1),
    ("BatchNorm1d", (6, 3), None), ("BatchNorm2d", (4, 3, 2, 2), None)])   # None: cumulative
def test_batchnorm_running_stats_train_eval(cls, shape, momentum, device):  # noqa: F811
    ours = getattr(nn, cls)(3, momentum=momentum).double().to(device)
    theirs = getattr(TNN, cls)(3, momentum=momentum).double()
    assert ours.momentum == theirs.momentum and ours.eps == theirs.eps == 1e-5
    assert getattr(nn, cls)(3).momentum == 0.1
    rng = np.random.default_rng(0)
    for step in range(4):
        x = rng.standard_normal(shape) * 2 + 1
        a = ours(td.tensor(x, dtype=np.float64, device=device))
        b = theirs(torch.tensor(x))
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    sd = ours.state_dict()
    assert list(sd) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-12)
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(td.tensor(x, dtype=np.float64, device=device)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    fresh = getattr(nn, cls)(3).double()
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh.running_var.numpy(), sd["running_var"])


def test_batchnorm_gradients(device):  # noqa: F811
    ours, theirs = nn.BatchNorm2d(2).double().to(device), TNN.BatchNorm2d(2).double()
    agree(lambda x: ours(x) if isinstance(x, td.Tensor) else theirs(x), [(3, 2, 2, 2)], device)


def test_layers_match_torch(device):  # noqa: F811
    td.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4))
    X, XT = td.tensor(x, dtype=np.float64, device=device), torch.tensor(x)
    pairs = [(nn.Identity(), TNN.Identity()), (nn.Sigmoid(), TNN.Sigmoid()), (nn.Tanh(), TNN.Tanh()),
             (nn.AvgPool2d(2), TNN.AvgPool2d(2)), (nn.AdaptiveAvgPool2d(1), TNN.AdaptiveAvgPool2d(1)),
             (nn.AdaptiveAvgPool2d((3, 3)), TNN.AdaptiveAvgPool2d((3, 3))),
             (nn.AvgPool2d(3, 2, 1, count_include_pad=False),
              TNN.AvgPool2d(3, 2, 1, count_include_pad=False)),
             (nn.LeakyReLU(0.1), TNN.LeakyReLU(0.1)), (nn.Softmax(dim=1), TNN.Softmax(dim=1)),
             (nn.GELU(), TNN.GELU()), (nn.LogSoftmax(dim=-1), TNN.LogSoftmax(dim=-1))]
    for a, b in pairs:
        np.testing.assert_allclose(a(X).numpy(), b(XT).numpy(), rtol=1e-10, atol=1e-12)
    ln, lt = nn.LayerNorm(4).double().to(device), TNN.LayerNorm(4).double()
    np.testing.assert_allclose(ln(X).numpy(), lt(XT).detach().numpy(), rtol=1e-10, atol=1e-12)
    empty = td.tensor(np.zeros((0, 3, 4)), device=device, dtype=np.float64, requires_grad=True)
    ln(empty).sum().backward()                  # an empty batch: an empty result, as torch's
    assert ln(empty).shape == (0, 3, 4) and empty.grad.shape == (0, 3, 4)
    emb, et = nn.Embedding(5, 3).double().to(device), TNN.Embedding(5, 3).double()
    _twin(emb, et)
    idx = np.array([[0, 4], [4, 2]])
    np.testing.assert_allclose(emb(td.tensor(idx, device=device)).numpy(),
                               et(torch.tensor(idx)).detach().numpy())
    y = np.random.default_rng(2).standard_normal((4, 5))
    yt = td.tensor(y, device=device, dtype=np.float64)
    t = np.array([0, 4, 1, 1])
    for ours, theirs in ((nn.CrossEntropyLoss(), TNN.CrossEntropyLoss()),
                         (nn.CrossEntropyLoss(label_smoothing=0.2, reduction="sum"),
                          TNN.CrossEntropyLoss(label_smoothing=0.2, reduction="sum"))):
        np.testing.assert_allclose(ours(yt, td.tensor(t, device=device)).numpy(),
                                   theirs(torch.tensor(y), torch.tensor(t)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(nn.MSELoss()(yt, yt * 0.5).numpy(),
                               TNN.MSELoss()(torch.tensor(y), torch.tensor(y) * 0.5).numpy())


def test_embedding_padding_idx_like_torch(device):  # noqa: F811
    """The padding row: zero at construction, no gradient, a negative index normalized."""
    ours = nn.Embedding(5, 3, padding_idx=-2).double()
    theirs = TNN.Embedding(5, 3, padding_idx=-2).double()
    assert ours.padding_idx == theirs.padding_idx == 3
    np.testing.assert_array_equal(ours.weight.numpy()[3], theirs.weight.detach().numpy()[3])
    assert not ours.weight.numpy()[3].any() and ours.weight.numpy()[[0, 1, 2, 4]].all()
    ours.weight.data[3] = 2.0   # (a padding row given values still gets no gradient)
    _twin(ours, theirs)
    ours.to(device)
    idx = np.array([[3, 1], [3, 3]])
    y, yt = ours(td.tensor(idx, device=device)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    w = np.random.default_rng(0).standard_normal(yt.shape)
    w[0, 0] = np.inf            # a non-finite gradient at a padding position: still none
    y.backward(td.tensor(w, dtype=np.float64, device=device))
    yt.backward(torch.tensor(w))
    np.testing.assert_allclose(backends.arrays(device).to_host(ours.weight.grad),
                               theirs.weight.grad.numpy(), rtol=1e-12)
    assert theirs.weight.grad.numpy()[1].any() and not theirs.weight.grad.numpy()[3].any()
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 3, padding_idx=5)
    # F.embedding alone (no finite-difference check: the padding row's zero gradient is a rule)
    fn = lambda w: FF(w).embedding(tgt(w, [3, 0, 3, 2]), w, padding_idx=-1)  # noqa: E731
    agree(fn, [(4, 2)], device, grad=False)
    w = td.tensor(np.ones((4, 2)), dtype=np.float64, device=device, requires_grad=True)
    fn(w).sum().backward()
    np.testing.assert_array_equal(backends.arrays(device).to_host(w.grad),
                                  [[1, 1], [0, 0], [1, 1], [0, 0]])


def test_init_distributions_match_torch():
    """Defaults at construction: BatchNorm/LayerNorm ones and zeros, Embedding N(0, 1)."""
    bn, bt = nn.BatchNorm2d(4), TNN.BatchNorm2d(4)
    for k, v in bt.state_dict().items():
        np.testing.assert_array_equal(bn.state_dict()[k], v.numpy())
        assert bn.state_dict()[k].dtype == np.dtype(str(v.dtype).replace("torch.", ""))
    td.manual_seed(0)
    w = nn.Embedding(1000, 100).weight.numpy()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    assert nn.LayerNorm(3).weight.numpy().tolist() == [1, 1, 1]


def test_module_tree_walks_like_torch():
    def build(lib):
        return lib.Sequential(lib.Linear(2, 3), lib.Sequential(lib.ReLU(), lib.Linear(3, 1)),
                              lib.BatchNorm1d(1))
    ours, theirs = build(nn), build(TNN)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [type(m).__name__ for m in ours.children()] == [type(m).__name__ for m in theirs.children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    seen = []
    ours.apply(lambda m: seen.append(type(m).__name__))
    theirs_seen = []
    theirs.apply(lambda m: theirs_seen.append(type(m).__name__))
    assert seen == theirs_seen
    part = ours[1:]
    assert isinstance(part, nn.Sequential) and len(part) == 2
    assert ours.double().state_dict()["2.running_mean"].dtype == np.float64
    assert ours.float()[0].weight.dtype == np.float32
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    md = nn.ModuleDict({"a": nn.Linear(2, 1)})
    assert len(ml.parameters()) == 4 and len(md.parameters()) == 2 and "a" in md
    assert list(md.keys()) == ["a"] and isinstance(ml[0], nn.Linear)
    assert td.nn.functional is F


def test_load_state_dict_strict():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    sd = m.state_dict()
    del sd["1.running_var"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match="missing"):
        m.load_state_dict(sd)
    sd["0.weight"] = np.full((2, 2), 3.0)
    keys = m.load_state_dict(sd, strict=False)
    assert keys.missing_keys == ["1.running_var"] and keys.unexpected_keys == ["extra"]
    assert (m[0].weight.numpy() == 3).all()


def test_pooling_and_padding_arguments_as_torch_takes_them():
    """avg_pool2d names itself when refusing an integer input; stride=[] means the kernel
    (as max_pool2d and torch); a padding layer takes a NumPy integer."""
    with pytest.raises(TypeError, match="avg_pool2d"):
        F.avg_pool2d(td.tensor(np.ones((1, 1, 4, 4), dtype=np.int64)), 2)
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    np.testing.assert_allclose(F.avg_pool2d(td.tensor(x, dtype=np.float64), 2, []).numpy(),
                               TF.avg_pool2d(torch.tensor(x), 2, []).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(nn.ZeroPad2d(np.int64(1))(td.tensor(x)).numpy(),
                                  torch.nn.ZeroPad2d(1)(torch.tensor(x, dtype=torch.float32)).numpy())


def test_max_pool2d_dilation_sweep_matches_torch():
    """Every small geometry with dilation 1-3, ceil_mode off and on: shapes, values, indices
    and the gradient as torch's. (A window wholly in the padding, which only dilation makes,
    is -inf in both; its index is left out: torch's points outside the plane.)"""
    rng, seen = np.random.default_rng(0), 0
    for h, k, s, p, d, ceil in np.ndindex(8, 4, 3, 2, 4, 2):
        w = 9 - h
        if min(h, k, s, d) < 1 or p > k // 2 or min(h, w) + 2 * p < d * (k - 1) + 1:
            continue
        x = rng.standard_normal((1, 2, h, w))
        X, XT = td.tensor(x, dtype=np.float64, requires_grad=True), torch.tensor(x, requires_grad=True)
        (got, ours), (want, at) = (F.max_pool2d(X, k, s, p, d, bool(ceil), True),
                                   TF.max_pool2d(XT, k, s, p, d, bool(ceil), True))
        assert got.shape == tuple(want.shape), (h, w, k, s, p, d, ceil)
        np.testing.assert_array_equal(got.numpy(), want.detach().numpy())
        inside = np.isfinite(want.detach().numpy())
        np.testing.assert_array_equal(ours.numpy()[inside], at.numpy()[inside])
        g = rng.standard_normal(want.shape) * inside
        (got * td.tensor(g, dtype=np.float64)).sum().backward()
        (want * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(X.grad, XT.grad.numpy(), rtol=1e-12)
        seen += d > 1
    assert seen > 100


def test_embedding_from_pretrained_like_torch(device):  # noqa: F811
    """The given table as the weight (shared, padding row kept as given), frozen by default,
    no random numbers drawn; unfrozen it trains as torch's, with every option."""
    e = np.random.default_rng(5).standard_normal((5, 3)) * 2
    E = td.tensor(e, dtype=np.float64, device=device)
    td.manual_seed(7)
    ours, theirs = nn.Embedding.from_pretrained(E), TNN.Embedding.from_pretrained(torch.tensor(e))
    after = nn.Linear(2, 2).weight.numpy()
    td.manual_seed(7)
    np.testing.assert_array_equal(after, nn.Linear(2, 2).weight.numpy())
    assert ours.weight.data is E.data and ours.weight.requires_grad is theirs.weight.requires_grad is False
    idx = np.array([[0, 4], [4, 2]])
    y = ours(td.tensor(idx, device=device))
    np.testing.assert_array_equal(y.numpy(), theirs(torch.tensor(idx)).numpy())
    assert not y.requires_grad
    kw = dict(freeze=False, padding_idx=1, max_norm=2.5, norm_type=1.5, scale_grad_by_freq=True)
    ours = nn.Embedding.from_pretrained(td.tensor(e, dtype=np.float64, device=device), **kw)
    theirs = TNN.Embedding.from_pretrained(torch.tensor(e), **kw)
    assert ours.weight.requires_grad and ours.padding_idx == theirs.padding_idx == 1
    np.testing.assert_array_equal(ours.weight.numpy()[1], e[1])   # (not zeroed, as torch's)
    idx = np.array([1, 3, 3, 0, 1, 4])
    y, yt = ours(td.tensor(idx, device=device)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-12)
    w = np.random.default_rng(6).standard_normal(yt.shape)
    (y * td.tensor(w, dtype=np.float64, device=device)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(backends.arrays(device).to_host(ours.weight.grad),
                               theirs.weight.grad.numpy(), rtol=1e-12)
    with pytest.raises(AssertionError):
        TNN.Embedding.from_pretrained(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="2-D"):
        nn.Embedding.from_pretrained(td.zeros(2, 3, 4))


@pytest.mark.parametrize("kw", [dict(padding="same", dilation=2), dict(padding="valid", stride=2),
                                dict(padding=(1, 2), dilation=(1, 2)),
                                dict(padding=1, padding_mode="reflect"),
                                dict(padding="same", padding_mode="replicate", kernel_size=(2, 3)),
                                dict(padding=(2, 1), padding_mode="circular", stride=2, dilation=2)])
def test_conv2d_module_takes_torchs_arguments(kw, device):
    """nn.Conv2d's padding strings, dilation and padding modes (torch's signature; they were
    F.conv2d's alone): values and float64 gradients of input, weight and bias."""
    kw = dict(dict(kernel_size=3), **kw)
    theirs = torch.nn.Conv2d(2, 3, **kw).double()
    ours = nn.Conv2d(2, 3, **kw).double().to(device)
    ours.weight.data = backends.arrays(device).from_host(theirs.weight.detach().numpy())
    ours.bias.data = backends.arrays(device).from_host(theirs.bias.detach().numpy())
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 8))
    a = td.tensor(x, dtype=np.float64, device=device, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    ya, yb = ours(a), theirs(b)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    host = backends.arrays(device).to_host
    assert ya.shape == tuple(yb.shape)
    for u, v in [(ya.data, yb), (a.grad, b.grad), (ours.weight.grad, theirs.weight.grad),
                 (ours.bias.grad, theirs.bias.grad)]:
        np.testing.assert_allclose(host(u), v.detach().numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(2, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(2, 4, 3, padding_mode="mirror")


@pytest.mark.parametrize("dims", [(), (0,), (1, 2), (0, -2), (2, 3)])
def test_flatten_module_start_and_end_dim_as_torch(dims):
    assert nn.Flatten(*dims)(td.ones(2, 3, 4, 5)).shape == tuple(torch.nn.Flatten(*dims)(torch.ones(2, 3, 4, 5)).shape)


@pytest.mark.parametrize("name,kw,std,bound", [
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"), np.sqrt(2 / (64 * 9)), None),
    ("kaiming_uniform_", dict(a=np.sqrt(5)), None, np.sqrt(3) * np.sqrt(2 / 6) / np.sqrt(32 * 9)),
    ("xavier_uniform_", dict(gain=2.0), None, 2 * np.sqrt(6 / (32 * 9 + 64 * 9))),
    ("xavier_normal_", {}, np.sqrt(2 / (32 * 9 + 64 * 9)), None),
    ("normal_", dict(mean=1.0, std=0.01), 0.01, None), ("uniform_", dict(a=-2.0, b=3.0), None, 3.0)])
def test_nn_init_has_torchs_distributions(name, kw, std, bound, device):
    """nn.init fills in place (the same array on the host, so optimizer state stays keyed)
    with the distribution torch.nn.init draws from for the same shape (fans of a 3x3 conv
    weight 64x32: fan_in 288, fan_out 576)."""
    w = nn.Parameter(np.zeros((64, 32, 3, 3))).to(device)
    before = w.data
    assert getattr(nn.init, name)(w, **kw) is w and (device != "cpu" or w.data is before)
    ours = backends.arrays(device).to_host(w.data).astype(np.float64)
    theirs = getattr(torch.nn.init, name)(torch.empty(64, 32, 3, 3), **kw).numpy()
    if std is not None:
        assert abs(ours.std() - std) < 0.03 * std and abs(theirs.std() - std) < 0.03 * std
    if bound is not None:
        assert ours.max() <= bound and ours.max() > 0.99 * bound and abs(theirs.max() - bound) < 0.01 * bound


def test_nn_init_in_a_models_apply_and_its_gains():
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def init(layer):
        if isinstance(layer, nn.Linear):
            nn.init.constant_(layer.weight, 0.5)
            nn.init.zeros_(layer.bias)
    m.apply(init)
    np.testing.assert_array_equal(m(td.ones(1, 3)).numpy(), [[3.0, 3.0]])
    for args in [("relu",), ("tanh",), ("leaky_relu", 0.2), ("leaky_relu",), ("selu",), ("conv2d",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-12)
    with pytest.raises(ValueError, match="fan_in"):
        nn.init.kaiming_normal_(nn.Parameter(np.zeros((2, 2))), mode="fan")
    with pytest.raises(ValueError, match="2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3)))
    import importlib
    assert importlib.import_module("tinydeep.nn.init") is nn.init
