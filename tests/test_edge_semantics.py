"""Edge cases where tinydeep gave a wrong value or gradient without an error, found by a
differential fuzz against PyTorch (2026-11-27): infinities and NaN in max/min, indices
that mix integers and arrays, losses at the ends of their domain, a zero std, every target
ignored, an infinite parameter, constant rows in layer norm, resumed schedules. Each is
compared with PyTorch 2.13 on the numba CPU kernels, the NumPy reference and CUDA."""
import math

import numpy as np
import pytest

import tinydeep as td
from tinydeep import backends, functional as F, optim
from test_api_tensor import agree, device  # noqa: F401  (the backends fixture)

torch = pytest.importorskip("torch")
TF = torch.nn.functional
INF, NAN = np.inf, np.nan


def both(x, device, fn, grad_of=None):
    """fn on float64 leaves made from x in both libraries: (ours, theirs, our grad, torch's
    grad) with the gradient of the sum of the output (or of grad_of(output))."""
    a = td.tensor(x, dtype=np.float64, device=device, requires_grad=True)
    b = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ya, yb = fn(a), fn(b)
    (grad_of or (lambda y: y.sum()))(ya).backward()
    (grad_of or (lambda y: y.sum()))(yb).backward()
    host = backends.arrays(device).to_host
    return host(ya.data), yb.detach().numpy(), host(a.grad), b.grad.numpy()


def same(u, v, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(u, float), np.asarray(v, float), rtol=rtol, atol=0)


@pytest.mark.parametrize("x", [[[0., -INF], [1., 2.]], [1., INF], [INF, 1., INF], [-INF, -INF],
                               [1., NAN, 3., NAN], [2., 5., 5.]])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_of_all_elements_with_infinities_nan_and_ties(x, name, device):
    # was NaN whenever any element was ±inf ((-inf - m)·0); NaN ties with NaN, as torch
    for u, v in zip(*[both(x, device, lambda t: getattr(t, name)())[i::2] for i in (0, 1)]):
        same(u, v)


def test_max_min_of_integers_and_of_a_0d_tensor(device):
    assert td.tensor([3, 1, 2], device=device).max().item() == 3
    assert td.tensor([3, 1, 2], device=device).min().item() == 1
    v, i = td.tensor(3.0, device=device).max(0)
    assert (v.item(), i.item(), tuple(v.shape)) == (3.0, 0, ())
    assert tuple(td.tensor(3.0, device=device).argmax(-1, keepdim=True).shape) == ()
    assert tuple(td.tensor(np.ones((2, 3)), device=device).argmax(keepdim=True).shape) == (1, 1)


@pytest.mark.parametrize("index", [
    (1, slice(0, 2), np.array([2, 0])),                      # int, slice, array
    (0, slice(1, 3), [0, 1, 2]),                             # a list as the array
    (np.array([1, 0]), 2, slice(None), np.array([0, 4])),    # arrays around an int
    (1, None, slice(None), np.array([0, 2])),
    (Ellipsis, 1, np.array([0, 2])),
    (1, np.array([[True, False, True], [False, True, True], [True, True, False],
                  [False, False, True]])),                   # int, then a 2-D mask
    (-1, np.array([3, 0]), None, -2),
    (slice(None), 1, np.array([[0, 1], [2, 2]]), slice(1, 4)),
])
def test_indexing_that_mixes_integers_and_arrays_follows_torch(index, device):
    x = np.arange(2 * 4 * 3 * 5, dtype=np.float64).reshape(2, 4, 3, 5)
    t_index = tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    w = np.random.default_rng(0).standard_normal(torch.tensor(x)[t_index].shape)
    ours, theirs, g, tg = both(x, device, lambda t: t[index if isinstance(t, td.Tensor) else t_index],
                               lambda y: (y * (td.tensor(w, dtype=np.float64, device=device)
                                               if isinstance(y, td.Tensor) else torch.tensor(w))).sum())
    assert ours.shape == theirs.shape
    same(ours, theirs)
    same(g, tg)


def test_std_gradient_is_zero_where_std_is_zero(device):
    ours, theirs, g, tg = both([[1., 1., 1.], [0., 1., 2.]], device, lambda t: t.std(1))
    same(ours, theirs)
    same(g, tg)                              # was NaN on the constant row
    assert np.isfinite(g).all()


def test_var_gradient_is_torchs_formula_also_when_correction_reaches_n(device):
    # 2·(x - mean)·g/(n - c): ±inf where n = c (was NaN everywhere, through the mean's path)
    for kw in (dict(dim=1), dict(dim=1, correction=2), dict(dim=(0, 1), correction=0)):
        w = np.random.default_rng(2).standard_normal(2)
        ours, theirs, g, tg = both([[1., 2.], [3., 3.]], device, lambda t: t.var(**kw),
                                   lambda y: (y * (td.tensor(w[:y.numel()], dtype=np.float64,
                                                             device=device).reshape(y.shape)
                                                   if isinstance(y, td.Tensor) else
                                                   torch.tensor(w[:y.numel()]).reshape(y.shape))).sum())
        same(ours, theirs)
        same(g, tg)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_gradient_at_zero_and_one(reduction, device):
    # torch's gradient (x - t)/max(x(1-x), 1e-12): finite where x is exactly 0 or 1 (was NaN)
    t = [1., 1., 0., 0.2, 1., 0.]
    ours, theirs, g, tg = both([0.3, 1., 0., 0.5, 0., 1.], device, lambda x: F.binary_cross_entropy(
        x, td.tensor(t, dtype=np.float64, device=device), reduction=reduction)
        if isinstance(x, td.Tensor) else TF.binary_cross_entropy(x, torch.tensor(t, dtype=x.dtype),
                                                                  reduction=reduction))
    same(ours, theirs)
    same(g, tg, rtol=1e-8)                   # (torch's 1e-12 is rounded to float32)


def test_binary_cross_entropy_of_a_saturated_sigmoid():
    z = td.tensor([20.0, -20.0, 0.5], requires_grad=True)      # float32: sigmoid(20) == 1.0
    F.binary_cross_entropy(z.sigmoid(), td.tensor([1.0, 0.0, 1.0])).backward()
    zt = torch.tensor([20.0, -20.0, 0.5], requires_grad=True)
    TF.binary_cross_entropy(zt.sigmoid(), torch.tensor([1.0, 0.0, 1.0])).backward()
    np.testing.assert_allclose(z.grad, zt.grad.numpy(), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1}, {"weight": [1.0, 2.0, 3.0]}])
def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient(kw, device):
    x = [[1., 2., 3.], [0., 1., 0.]]

    def loss(t):
        if isinstance(t, td.Tensor):
            args = {k: td.tensor(v, dtype=np.float64, device=device) if k == "weight" else v
                    for k, v in kw.items()}
            return F.cross_entropy(t, td.tensor([1, 1], device=device), ignore_index=1, **args)
        args = {k: torch.tensor(v, dtype=t.dtype) if k == "weight" else v for k, v in kw.items()}
        return TF.cross_entropy(t, torch.tensor([1, 1]), ignore_index=1, **args)

    ours, theirs, g, tg = both(x, device, loss)
    assert np.isnan(ours) and np.isnan(theirs)
    same(g, tg)                              # zeros (was NaN everywhere)
    assert not g.any()


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adam", dict(lr=0.1)), ("AdamW", dict(lr=0.1, weight_decay=0.0))])
def test_an_infinite_parameter_stays_infinite_without_weight_decay(name, kw, device):
    # λ = 0 adds nothing (PyTorch skips the term); 0·inf made the parameter NaN
    p = td.tensor([INF, 1.0], device=device, requires_grad=True)
    (p * td.tensor([1.0, 2.0], device=device)).sum().backward()
    getattr(optim, name)([p], **kw).step()
    q = torch.tensor([INF, 1.0], requires_grad=True)
    (q * torch.tensor([1.0, 2.0])).sum().backward()
    getattr(torch.optim, name)([q], **kw).step()
    np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-6)


def test_layer_norm_of_constant_float32_rows_is_zero(device):
    # closed form: x - mean = 0 on a constant row (x·scale + (bias - mean·scale) left ~1e-4)
    rows = np.float32([[1.3771907], [0.60368544], [2.921268], [-0.6070081]])
    for x in (rows, np.tile(rows, (1, 5))):
        y = F.layer_norm(td.tensor(x, device=device), x.shape[-1:]).numpy()
        assert (y == 0).all(), y


@pytest.mark.parametrize("name,kw", [("CosineAnnealingLR", dict(T_max=7)),
                                     ("ExponentialLR", dict(gamma=0.9))])
@pytest.mark.parametrize("last_epoch", [3, 4])
def test_schedules_resumed_at_last_epoch_follow_torch(name, kw, last_epoch):
    ours = optim.SGD([td.tensor([0.0], requires_grad=True)], lr=0.1)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ours.param_groups[0]["initial_lr"] = theirs.param_groups[0]["initial_lr"] = 0.1
    s = getattr(optim.lr_scheduler, name)(ours, last_epoch=last_epoch, **kw)
    st = getattr(torch.optim.lr_scheduler, name)(theirs, last_epoch=last_epoch, **kw)
    for _ in range(10):
        assert math.isclose(ours.param_groups[0]["lr"], theirs.param_groups[0]["lr"],
                            rel_tol=1e-12, abs_tol=1e-15)
        theirs.step()
        s.step()
        st.step()


def test_arithmetic_methods(device):
    agree(lambda x, y: x.pow(2).add(y).sub(y.neg()).mul(x).div(y.pow(x)), [(2, 3), (3,)], device,
          positive=True)


def test_max_with_keepdim_of_a_0d_tensor_stays_0d(device):
    v, i = td.tensor(2.0, device=device).max(0, keepdim=True)
    assert tuple(v.shape) == tuple(i.shape) == ()


def _raises(fn, kind, words):
    with pytest.raises(kind) as e:
        fn()
    assert words in str(e.value), str(e.value)


X = np.random.default_rng(0).standard_normal((2, 3))
BAD_INPUT = {   # each silently gave garbage or an obscure error; torch refuses each
    "batch_norm weight length": (lambda: F.batch_norm(td.tensor(X), None, None, td.ones(4),
                                                      training=True), ValueError, "3 elements"),
    "batch_norm running stats length": (lambda: F.batch_norm(td.tensor(X), td.zeros(4), td.ones(4),
                                                             training=True), ValueError, "running_mean"),
    "batch_norm eval without stats": (lambda: F.batch_norm(td.tensor(X), None, None),
                                      ValueError, "evaluation mode"),
    "cross_entropy class weights": (lambda: F.cross_entropy(td.tensor(X), td.tensor([0, 1]),
                                                            weight=td.ones(5)), ValueError, "3 elements"),
    "nll_loss short weights": (lambda: F.nll_loss(td.tensor(X), td.tensor([0, 2]), weight=[1.0, 2.0]),
                               ValueError, "3 elements"),
    "bce outside [0, 1]": (lambda: F.binary_cross_entropy(td.tensor([0.5, 1.2]), td.tensor([1.0, 0.0])),
                           ValueError, "[0, 1]"),
    "bce NaN": (lambda: F.binary_cross_entropy(td.tensor([0.5, NAN]), td.tensor([1.0, 0.0])),
                ValueError, "[0, 1]"),
    "embedding 1-D weight": (lambda: F.embedding(td.tensor([[0, 1]]), td.tensor([1.0, 2.0, 3.0])),
                             ValueError, "2-D"),
    "layer_norm of a list": (lambda: F.layer_norm([[1.0, 2.0]], (2,)), TypeError, "Tensor"),
    "Sequential of a function": (lambda: td.nn.Sequential(td.nn.ReLU(), lambda x: x),
                                 TypeError, "not a Module"),
    "ModuleList of a number": (lambda: td.nn.ModuleList().append(3), TypeError, "not a Module"),
    "ModuleDict key 'training'": (lambda: td.nn.ModuleDict({"training": td.nn.ReLU()}),
                                  KeyError, "training"),
    "cat of one Tensor": (lambda: td.cat(td.ones(2, 3)), TypeError, "sequence"),
    "cat of 0-d tensors": (lambda: td.cat([td.tensor(1.0), td.tensor(2.0)]), ValueError, "0-d"),
    "where with a float condition": (lambda: td.where(td.tensor([1.0, 0.0]), 1.0, 0.0),
                                     TypeError, "bool"),
    "arange with a step cast to 0": (lambda: td.arange(0, 1, 0.3, dtype=td.long), ValueError, "step"),
    "arange away from its end": (lambda: td.arange(5, 1), ValueError, "step"),
    "randn with an integer dtype": (lambda: td.randn(3, dtype=td.long), TypeError, "float dtype"),
    "full of NaN as int64": (lambda: td.full((2,), NAN, dtype=td.long), TypeError, "fill_value"),
    "full of None": (lambda: td.full((2,), None), TypeError, "fill_value"),
    "requires_grad set on an int tensor": (lambda: setattr(td.tensor([1, 2]), "requires_grad", True),
                                           TypeError, "floating-point"),
    "adaptive_avg_pool2d of an empty image": (lambda: F.adaptive_avg_pool2d(td.ones(1, 1, 5, 0), 2),
                                              ValueError, "empty image"),
    "a Module without forward": (lambda: td.nn.Module()(td.ones(2)), NotImplementedError, "forward"),
    # a fourth fuzz (layers): a silent broadcast, silent zeros, silent fills, NumPy's messages
    "layer_norm weight of the wrong shape": (lambda: F.layer_norm(td.ones(2, 3, 4), (4,), td.ones(1)),
                                             ValueError, "normalized_shape"),
    "layer_norm bias that would broadcast": (lambda: F.layer_norm(td.ones(2, 4), (4,), None,
                                                                  td.ones(5, 1, 4)), ValueError, "bias"),
    "layer_norm over no dims": (lambda: F.layer_norm(td.ones(2, 4), ()), ValueError, "at least one"),
    "pad cropping more than the dim": (lambda: F.pad(td.ones(2, 3, 1), (-2, 2), value=7.0),
                                       ValueError, "cropping 2"),
    "pad cropping both ends past each other": (lambda: F.pad(td.ones(2, 3, 4), (-3, -2)),
                                               ValueError, "cropping 3 and 2"),
    "one_hot of nothing with num_classes -1": (lambda: F.one_hot(td.tensor(np.zeros(0, np.int64))),
                                               ValueError, "non-empty"),
    "one_hot with a float num_classes": (lambda: F.one_hot(td.tensor([0, 1]), 3.0), ValueError,
                                         "num_classes"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gets_a_clear_error_as_torch_refuses_it(case):
    _raises(*BAD_INPUT[case])


def test_argument_forms_torch_accepts():
    from collections import OrderedDict
    layers = lambda nn: OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU()),   # noqa: E731
                                     ("out", nn.Linear(3, 1))])
    ours, theirs = td.nn.Sequential(layers(td.nn)), torch.nn.Sequential(layers(torch.nn))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours[1:].state_dict()) == list(theirs[1:].state_dict()) == ["out.weight", "out.bias"]
    for a, b in [(td.arange(2.5, dtype=td.long), torch.arange(2.5, dtype=torch.long)),
                 (td.arange(-2.5, 3, 1.5, dtype=td.long), torch.arange(-2.5, 3, 1.5, dtype=torch.long)),
                 (td.arange(1, 7.9, 2.6, dtype=td.long), torch.arange(1, 7.9, 2.6, dtype=torch.long)),
                 (td.where(td.tensor([True, False]), 1.0, 0.0), torch.where(torch.tensor([True, False]), 1.0, 0.0)),
                 (td.where(td.tensor([True, False]), 1, 0), torch.where(torch.tensor([True, False]), 1, 0)),
                 (F.batch_norm(td.ones(4, 0), None, None, training=True),
                  TF.batch_norm(torch.ones(4, 0), None, None, training=True))]:
        assert a.numpy().tolist() == b.numpy().tolist() and str(a.dtype) == str(b.dtype).split(".")[1]


# --- checkpoints, fit/evaluate, the loader (a third fuzz: closed forms, no torch needed) ----
from tinydeep.data import DataLoader  # noqa: E402
from tinydeep.tensor import Function  # noqa: E402

@pytest.mark.parametrize("name", ["file", "allow_pickle", "w"])
def test_a_parameter_named_like_a_savez_keyword_round_trips(name, tmp_path):
    # np.savez(f, **state) took 'file' and 'allow_pickle' for its own keywords
    class One(td.nn.Module):
        def __init__(self, values):
            super().__init__()
            setattr(self, name, td.nn.Parameter(np.asarray(values, np.float32)))

    td.nn.save(One([1.0, 2.0, 3.0]), tmp_path / "m.npz")
    back = td.nn.load(One([0.0, 0.0, 0.0]), tmp_path / "m.npz")
    assert getattr(back, name).numpy().tolist() == [1.0, 2.0, 3.0]


def test_load_refuses_a_non_module_and_a_zip_it_cannot_read(tmp_path):
    path = tmp_path / "m.npz"
    td.nn.save(td.nn.Linear(2, 2), path)
    _raises(lambda: td.nn.load({}, path), TypeError, "Module")
    raw = bytearray(path.read_bytes())
    at = raw.rfind(b"PK\x01\x02")                 # the central directory's first entry
    raw[at + 10] = 99                              # an unknown compression method
    path.write_bytes(bytes(raw))
    _raises(lambda: td.nn.load(td.nn.Linear(2, 2), path), ValueError, "not a readable")


def test_evaluate_and_outputs_give_back_each_modules_mode():
    from tinydeep.experiments.training import evaluate, outputs
    model = td.nn.Sequential(td.nn.Linear(4, 8), td.nn.Dropout(0.5), td.nn.Linear(8, 3))
    x, y = np.random.default_rng(0).random((6, 4), np.float32), np.array([0, 1, 2, 0, 1, 2])
    model.eval()
    evaluate(model, x, y)
    outputs(model, x)
    assert not any(m.training for m in model.modules())
    model.train()
    model[1].eval()                                # a mixed mode is restored as it was
    evaluate(model, x, y)
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_fit_and_evaluate_run_a_float64_model():
    from tinydeep.experiments.training import evaluate, fit
    model = td.nn.Sequential(td.nn.Linear(4, 8), td.nn.ReLU(), td.nn.Linear(8, 3)).double()
    x, y = np.random.default_rng(0).random((20, 4)), np.random.default_rng(1).integers(0, 3, 20)
    fit(model, x, y, epochs=1, lr=0.1, batch_size=10)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert 0 <= evaluate(model, x, y)[0] <= 1


@pytest.mark.parametrize("seed", [None, -1, 1.5])
def test_loader_seed_is_checked_when_made(seed):
    _raises(lambda: DataLoader(np.ones((4, 2)), np.zeros(4), 2, seed=seed),
            ValueError, "seed")


def test_loader_refuses_lists_and_spirals_refuse_nan():
    _raises(lambda: DataLoader([[1, 2], [3, 4]], [0, 1], 1), TypeError, "array")
    from tinydeep.data.toy import spirals
    for kw in (dict(turns=NAN), dict(noise=NAN), dict(turns=INF)):
        _raises(lambda: spirals(10, **kw), ValueError, "turns")


def test_gradcheck_refuses_a_gradient_of_the_wrong_shape():
    class Triple(Function):
        def forward(self, a):
            return a * 3

        def backward(self, g):
            return ((g * 3)[None, :],)             # (1, 3) for a (3,) input

    x = td.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    _raises(lambda: td.gradcheck(lambda t: Triple.apply(t), [x]), AssertionError, "shape")


def test_augmentation_and_glyph_ranges_and_labels_are_checked():
    from tinydeep.data.augment import RandomAffine, RandomCrop
    from tinydeep.data.glyphs import glyphs, render_glyphs
    for make in (lambda: RandomAffine(rotation=(5,)), lambda: RandomAffine(rotation=INF),
                 lambda: RandomAffine(scale=(0.9, 1.0, 1.1)), lambda: glyphs(4, rotation=(10,))):
        _raises(make, ValueError, "pair (low, high)")
    _raises(lambda: RandomCrop(None), ValueError, "padding")
    _raises(lambda: RandomCrop(2)(np.zeros((0, 1, 4, 4), np.float32)), ValueError, "non-empty")
    latents = glyphs(1, seed=0).latents
    _raises(lambda: render_glyphs(np.array([3.7]), latents), ValueError, "integer digits")


def test_a_buffer_set_to_none_leaves_the_state_dict_as_torch():
    ours, theirs = td.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    ours.running_mean = theirs.running_mean = None
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_in_place_update_under_no_grad_moves_the_parameters_as_torch(kernels):
    """The hand-written SGD step `p -= lr * p.grad` under no_grad(): it left every parameter
    as it was (Python rebound the name to a new tensor), silently. Three steps of a small
    MLP against torch's, from the same weights."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    ours = [td.nn.Linear(3, 4), td.nn.ReLU(), td.nn.Linear(4, 1)]
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).double()
    model = td.nn.Sequential(*ours).double()
    for (_, p), q in zip(model.named_parameters(), theirs.parameters()):
        p.data[...] = q.detach().numpy()
    for _ in range(3):
        F.mse_loss(model(td.tensor(x, dtype=np.float64)), td.tensor(y, dtype=np.float64)).backward()
        TF.mse_loss(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        with td.no_grad(), torch.no_grad():
            for p, q in zip(model.parameters(), theirs.parameters()):
                p -= 0.1 * p.grad
                p.grad = None
                q -= 0.1 * q.grad
                q.grad = None
    for p, q in zip(model.parameters(), theirs.parameters()):
        same(p.numpy(), q.detach().numpy(), rtol=1e-12)


def test_in_place_ops_in_a_graph_keep_torchs_gradients(kernels):
    w = td.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    v = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    loss, tloss = 0, 0
    for k in range(3):          # the accumulation `loss += l`
        loss += (w ** 2 * (k + 1)).sum()
        tloss += (v ** 2 * (k + 1)).sum()
    loss *= 0.5
    tloss *= 0.5
    loss.backward()
    tloss.backward()
    same(loss.numpy(), tloss.detach().numpy())
    same(w.grad, v.grad.numpy())
    with pytest.raises(RuntimeError, match="leaf"):     # torch: a leaf Variable that requires grad
        w += 1
    x = td.ones(2, dtype=np.float64)
    y = (w * x).sum()
    x += 1          # after the graph saved x: the gradient is that of what was computed
    w.grad = None
    y.backward()
    same(w.grad, [1.0, 1.0])
    assert x.numpy().tolist() == [2.0, 2.0]
    x /= td.tensor([2.0, 4.0], dtype=np.float64)
    x **= 2
    assert x.numpy().tolist() == [1.0, 0.25]
    with pytest.raises(TypeError, match="does not fit"):     # torch: doesn't match the broadcast shape
        x += td.ones(3, 2, dtype=np.float64)


@pytest.mark.parametrize("fn", ["max", "avg"])
@pytest.mark.parametrize("size,k,s,p", [(2, 3, 2, 0), (1, 2, 2, 0), (3, 4, 3, 1), (2, 3, 3, 1)])
def test_ceil_mode_pools_an_input_smaller_than_the_window_as_torch(fn, size, k, s, p, kernels):
    """ceil_mode needs one window that starts inside the input, not an input as big as the
    window: these were refused ("window larger than the input"), torch pools them."""
    x = np.random.default_rng(size * k).standard_normal((1, 2, size, size + 1))
    ours = {"max": lambda a: F.max_pool2d(a, k, s, p, 1, True),
            "avg": lambda a: F.avg_pool2d(a, k, s, p, True, False)}[fn]
    theirs = {"max": lambda b: TF.max_pool2d(b, k, s, p, 1, True),
              "avg": lambda b: TF.avg_pool2d(b, k, s, p, True, False)}[fn]
    a, b, ga, gb = both(x, "cpu", lambda t: ours(t) if isinstance(t, td.Tensor) else theirs(t))
    assert a.shape == b.shape
    same(a, b)
    same(ga, gb)


def test_softmax_without_dim_takes_torchs_implicit_dim_and_warns(device):
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    for shape in [(5,), (2, 3), (2, 3, 4), (2, 3, 2, 2)]:
        for name in ["softmax", "log_softmax"]:
            with pytest.warns(UserWarning, match="Implicit dimension"):
                a, b, ga, gb = both(x.reshape(-1)[:int(np.prod(shape))].reshape(shape), device,
                                    lambda t: getattr(F if isinstance(t, td.Tensor) else TF, name)(t),
                                    grad_of=lambda y: (y * y).sum())
            same(a, b, rtol=1e-10)
            same(ga, gb, rtol=1e-10)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = td.nn.Softmax()(td.tensor(x, device=device))
    same(backends.arrays(device).to_host(y.data), TF.softmax(torch.tensor(x), 0).numpy(), rtol=1e-6)


# --- a fifth fuzz (optimizers, schedules, losses against torch 2.13) ---------------------

def test_bce_with_logits_gradient_at_zero_and_its_precision(device):
    """The gradient at a logit of exactly 0 was (1 - t) - 0.5·0 (abs and relu both took 0 at
    the kink): a zero-initialised logit layer with every label 1 did not move. And log(1 + e)
    lost the small losses and gradients that float32 holds (x = 12, t = 1: 0.9 % off)."""
    x, t = np.array([0.0, 0.0, 0.0, 3.0]), np.array([1.0, 0.0, 0.25, 0.5])
    a, b, ga, gb = both(x, device, lambda z: (F if isinstance(z, td.Tensor) else TF)
                        .binary_cross_entropy_with_logits(z, (td.tensor(t, dtype=np.float64, device=device)
                                                              if isinstance(z, td.Tensor) else torch.tensor(t)),
                                                          reduction="none"))
    same(a, b)
    same(ga, gb)
    same(ga[:3], 0.5 - t[:3])                                    # σ(0) - t, exactly
    exact = {"loss x=12 t=1": np.log1p(np.exp(-12.0)), "grad x=-15 t=0": 1 / (1 + np.exp(15.0)),
             "loss x=-15 t=0": np.log1p(np.exp(-15.0)), "bce x=1e-6 t=0": -np.log1p(-1e-6)}
    z = td.tensor([12.0, -15.0], device=device, requires_grad=True)        # float32
    loss = F.binary_cross_entropy_with_logits(z, td.tensor([1.0, 0.0], device=device), reduction="none")
    loss.sum().backward()
    host = backends.arrays(device).to_host
    p = td.tensor([1e-6], device=device)
    got = {"loss x=12 t=1": host(loss.data)[0], "grad x=-15 t=0": host(z.grad)[1],
           "loss x=-15 t=0": host(loss.data)[1],
           "bce x=1e-6 t=0": host(F.binary_cross_entropy(p, td.tensor([0.0], device=device)).data)}
    for k in exact:
        np.testing.assert_allclose(got[k], exact[k], rtol=1e-6, err_msg=k)


def _trajectories(make, steps, zero, state_at=None):
    """(ours, torch's) parameter after `steps` of the same gradients, zero_grad as `zero`
    says; with state_at, our optimizer is rebuilt from its state_dict at that step."""
    grads = np.random.default_rng(1).standard_normal((steps, 3))
    p, q = td.tensor(np.ones(3), dtype=np.float64, requires_grad=True), torch.ones(3, dtype=torch.float64, requires_grad=True)
    o, r = make(optim, p), make(torch.optim, q)
    for i, g in enumerate(grads):
        if i % 2 == 0:
            p.grad, q.grad = g.copy(), torch.tensor(g)
        o.step()
        r.step()
        o.zero_grad(**zero)
        r.zero_grad(**zero)
        if i == state_at:
            sd = o.state_dict()
            o = make(optim, p)
            o.load_state_dict(sd)
    return p.numpy(), q.detach().numpy()


@pytest.mark.parametrize("make", [lambda o, p: o.SGD([p], lr=0.1, momentum=0.9),
                                  lambda o, p: o.Adam([p], lr=0.1, weight_decay=0.1),
                                  lambda o, p: o.AdamW([p], lr=0.1, amsgrad=True)])
def test_zero_grad_to_zeros_keeps_stepping_as_torch(make):
    """zero_grad(set_to_none=False) set None: the next step skipped the parameter, where
    torch's momentum, decay and averages keep moving it."""
    same(*_trajectories(make, 6, dict(set_to_none=False)))
    same(*_trajectories(make, 6, dict(set_to_none=True)))
    same(*_trajectories(make, 6, dict(set_to_none=False), state_at=2))


def test_optimizer_state_of_a_scalar_parameter_loads_as_a_copy(kernels):
    """A 0-d parameter's buffers were loaded as the checkpoint's own arrays: two optimizers
    loaded from one state_dict stepped one buffer (and wrote into the checkpoint)."""
    p = td.tensor(1.0, dtype=np.float64, requires_grad=True)
    o = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array(0.5)
    o.step()
    sd = o.state_dict()
    saved = sd["state"][0]["momentum_buffer"].copy()
    q = td.tensor(p.numpy().copy(), requires_grad=True)                # float32
    runs = []
    for _ in range(2):
        r = td.tensor(p.numpy().copy(), dtype=np.float64, requires_grad=True)
        o2 = optim.SGD([r], lr=0.1, momentum=0.9)
        o2.load_state_dict(sd)
        for g in (-1.0, 2.0):
            r.grad = np.array(g)
            o2.step()
        runs.append(float(r.numpy()))
    w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    ref = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    for g in (0.5, -1.0, 2.0):
        w.grad = torch.tensor(g, dtype=torch.float64)
        ref.step()
    same(runs, [w.item()] * 2)
    same(sd["state"][0]["momentum_buffer"], saved)
    o3 = optim.SGD([q], lr=0.1, momentum=0.9)
    o3.load_state_dict(sd)
    assert o3.state[q]["momentum_buffer"].dtype == np.float32


def test_schedules_and_state_refuse_what_torch_refuses():
    p = td.ones(2, requires_grad=True)
    o = optim.SGD([p], lr=1.0)
    s = optim.lr_scheduler.LambdaLR(o, lambda e: 0.5 ** e)
    o.add_param_group({"params": [td.ones(2, requires_grad=True)], "lr": 1.0})
    with pytest.raises(ValueError, match="param group"):      # torch: zip() argument 2 is shorter
        s.step()
    step = optim.lr_scheduler.StepLR(o, 1, 0.5)                 # a rule from the lrs: every group
    step.step()
    assert step.get_last_lr() == [0.5, 0.5]
    o2 = optim.SGD([td.ones(2, requires_grad=True)], lr=1.0)
    with pytest.raises(KeyError, match="initial_lr"):           # torch: KeyError 'initial_lr'
        optim.lr_scheduler.StepLR(o2, 3, last_epoch=5)
    sd = o2.state_dict()
    sd["param_groups"][0]["maximize"] = True                   # torch's option, not ours
    with pytest.raises(ValueError, match="maximize"):
        o2.load_state_dict(sd)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_whose_targets_all_weigh_zero_is_nan_as_torch(smoothing, kernels):
    x = np.random.default_rng(2).standard_normal((3, 4))
    w, t = np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 1, 0])
    a = td.tensor(x, dtype=np.float64, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    F.cross_entropy(a, td.tensor(t), weight=td.tensor(w, dtype=np.float64), label_smoothing=smoothing).backward()
    TF.cross_entropy(b, torch.tensor(t), weight=torch.tensor(w), label_smoothing=smoothing).backward()
    assert np.isnan(a.grad).all() == torch.isnan(b.grad).all().item() == True    # noqa: E712


# --- a sixth fuzz (autograd graphs and Module semantics against torch 2.13) ----------------

def _names(m):
    return [n for n, _ in m.named_parameters()], list(m.state_dict())


def test_module_registration_as_torch():
    """A reassigned layer moved to the end (a Sequential then ran Tanh before Linear), a
    Tensor over a parameter unregistered it (never trained, never saved), del left it
    registered, named_parameters(prefix=) lost the dot."""
    for lib in (td, torch):
        s = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.Tanh())
        setattr(s, "0", lib.nn.Linear(2, 2))
        assert [type(m).__name__ for m in s] == ["Linear", "Tanh"]
        lin = lib.nn.Linear(2, 3)
        lin.weight = lib.nn.Parameter(lib.ones(3, 2))
        assert _names(lin) == (["weight", "bias"], ["weight", "bias"])
        with pytest.raises(TypeError, match="cannot assign"):
            lin.weight = lib.ones(3, 2)
        del lin.bias
        assert _names(lin) == (["weight"], ["weight"])
        bn = lib.nn.BatchNorm1d(2)
        bn.running_mean = lib.nn.Parameter(lib.zeros(2))
        assert [n for n, _ in bn.named_parameters()] == ["weight", "bias", "running_mean"]
        with pytest.raises(TypeError, match="cannot assign"):
            bn.running_var = 5
        assert [n for n, _ in lib.nn.Sequential(lib.nn.Linear(1, 1)).named_parameters(prefix="p")] == \
            ["p.0.weight", "p.0.bias"]
    m = td.nn.Linear(2, 2)
    for name, value, error in [("weight", td.ones(2), KeyError), ("a.b", td.ones(2), KeyError),
                               ("c", np.ones(2), TypeError)]:
        with pytest.raises(error):          # torch: KeyError / TypeError at once
            m.register_buffer(name, value)
    with pytest.raises(KeyError, match="'.'"):
        td.nn.ModuleDict({"a.b": td.nn.ReLU()})
    with pytest.raises(ValueError, match="True or False"):
        m.train("no")


def test_float_double_and_to_dtype_keep_gradients_as_torch():
    """float()/double() dropped every .grad: `backward(); model.double(); opt.step()` then
    skipped the update."""
    m = td.nn.Linear(3, 2)
    m(td.ones(4, 3)).sum().backward()
    g = m.weight.grad.copy()
    assert m.double().weight.grad.dtype == np.float64 and np.array_equal(m.weight.grad, g)
    assert m.to(np.float32).weight.dtype == np.float32 and m.weight.grad.dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.int64)


def test_load_state_dict_reports_keys_in_torchs_order():
    ours, theirs = (lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.Linear(2, 2)) for lib in (td, torch))
    state = {"zz": np.zeros(1), "1.bias": np.zeros(2), "aa": np.zeros(1)}
    a = ours.load_state_dict(state, strict=False)
    b = theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    assert (a.missing_keys, a.unexpected_keys) == (b.missing_keys, b.unexpected_keys)


def test_no_grad_decorates_bare_and_keeps_the_name():
    x = td.ones(2, requires_grad=True)

    @td.no_grad
    def double(t):
        return t * 2
    assert not double(x).requires_grad and double.__name__ == "double" and (x * 2).requires_grad
    with pytest.raises(TypeError, match="generator"):     # its body would run with grad on
        td.no_grad()(lambda: (yield))


def test_in_place_op_in_a_graph_keeps_the_shape():
    """`y += b` in a graph broadcast y to a new shape; torch refuses (and under no_grad we did)."""
    w = td.ones(3, requires_grad=True)
    y = w * 1
    with pytest.raises(TypeError, match="does not fit"):
        y += td.ones(2, 3)
    a = td.zeros(3)
    with pytest.raises(TypeError, match="does not fit"):
        a += td.ones(2, 3, requires_grad=True)


# --- PyTorch tutorials' idioms run with the import changed (a seventh check) --------------

def test_tutorial_idioms_run_as_torchs(tmp_path):
    """`p.data = t` stored the Tensor itself (the next forward failed inside the matmul
    kernel), f"{loss:.4f}" raised, nn.ReLU(inplace=True) raised, torch.save/torch.load of
    a state_dict did not exist."""
    for lib in (td, torch):
        lin = lib.nn.Linear(4, 3)
        lin.weight.data = lib.zeros(3, 4)
        lin.bias.data = lib.ones(3)
        assert lin(lib.ones(2, 4)).sum().item() == 6.0
        assert f"{lib.tensor(0.123456):.3f}" == "0.123"
        with pytest.raises(TypeError):
            f"{lib.ones(2):.2f}"
        net = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU(inplace=True),
                                lib.nn.LeakyReLU(0.1, True), lib.nn.Dropout(0.5, inplace=True),
                                lib.nn.BatchNorm1d(3))
        path = tmp_path / f"{lib.__name__}.pth"
        lib.save(net.state_dict(), path)
        again = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU(), lib.nn.LeakyReLU(0.1),
                                  lib.nn.Dropout(0.5), lib.nn.BatchNorm1d(3))
        again.load_state_dict(lib.load(path))
        for (k, a), (j, b) in zip(net.state_dict().items(), again.state_dict().items()):
            assert k == j and np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(TypeError, match="never pickles"):
        td.save([1, 2], tmp_path / "list.pth")
    import importlib        # `import tinydeep.nn.functional as F`: 'tinydeep.nn' is not a package
    assert importlib.import_module("tinydeep.nn.functional") is F
    assert importlib.import_module("tinydeep.optim.lr_scheduler").StepLR is optim.lr_scheduler.StepLR
