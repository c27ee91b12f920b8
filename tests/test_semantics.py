"""Core semantics (issue 14): each everyday idiom gives PyTorch's answer or a clear error.

One test per item of the issue, each failing on the engine before the fix; numbers come
from PyTorch (skipped without it) or from a closed form. Run on the numba CPU kernels
and on the NumPy reference kernels (the `kernels` fixture).
"""
import re
from pathlib import Path

import numpy as np
import pytest

import tinydeep as td
from tinydeep import functional as F, nn, optim
from conftest import t64

torch = pytest.importorskip("torch")


def grads_both(fn, *arrays):
    """fn applied to tinydeep and torch leaves (float64): (our value, our grads, theirs)."""
    ours = [t64(a) for a in arrays]
    theirs = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    y, yt = fn(ours), fn(theirs)
    y.sum().backward()
    yt.sum().backward()
    zero = lambda t, g: np.zeros(t.shape) if g is None else np.asarray(g)  # noqa: E731  (unused leaf)
    return ((y.numpy(), [zero(t, t.grad) for t in ours]),
            (yt.detach().numpy(), [zero(t, t.grad) for t in theirs]))


def assert_same(ours, theirs):
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=1e-12)
    for g, h in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-12)


# --- 1. axes: one rule, negative axes, repeated axes refused ---------------------------------

@pytest.mark.parametrize("fn", [
    lambda x: x[0].permute(-1, 0) * x[1],                       # the issue's reproducer
    lambda x: x[2].permute(-1, 0, -2) * 3.0,                    # non-square: shape of the grad
    lambda x: x[2].transpose(-1, -3) * 2.0,
    lambda x: x[2].sum(dim=(-1, 0)),
    lambda x: x[2].mean(-2, keepdim=True),
    lambda x: x[2].flatten(-2),
    lambda x: x[2].flatten(0, -2)])
def test_negative_axes_give_torch_gradients(kernels, fn):
    a = np.array([[0.0, 1], [2, 3]])
    b = np.array([[0.0, 10], [20, 30]])
    c = np.arange(24.0).reshape(2, 3, 4) / 7
    assert_same(*grads_both(fn, a, b, c))


def test_permute_with_mixed_signs_issue_numbers(kernels):
    x = t64([[0.0, 1], [2, 3]])
    (x.permute(-1, 0) * t64([[0.0, 10], [20, 30]], grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 20], [10, 30]])   # was [[0, 10], [20, 30]]


def test_repeated_and_bad_axes_are_refused(kernels):
    x = td.tensor(np.ones((2, 3)))
    for call in (lambda: x.mean((1, 1)), lambda: x.sum((0, -2)), lambda: x.permute(0, 0),
                 lambda: F.softmax(x, dim=(1, 1))):
        with pytest.raises(ValueError, match="more than once|dim"):
            call()
    with pytest.raises(IndexError, match="axis 2 is out of range"):
        x.sum(2)
    with pytest.raises(TypeError, match="axis must be an int"):
        x.sum(1.5)
    with pytest.raises(ValueError, match="permute"):
        x.permute(1)


# --- 3. a layer used twice is one parameter set, trained once per step -----------------------

def test_shared_layer_is_listed_and_stepped_once(kernels):
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(model.parameters()) == 2
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3


# --- 4, 5. bool, float, int, index, iteration, __array__ ---------------------------------------

def test_python_protocols_match_torch():
    assert bool(td.tensor([5.0]) < 1) is False and bool(td.tensor(0.5) < 1) is True
    best = td.tensor(3.0)
    assert ("smaller" if td.tensor(2.0) < best else "not") == "smaller"
    with pytest.raises(ValueError, match="more than one value is ambiguous"):
        bool(td.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bool(torch.tensor([1.0, 2.0]))
    assert float(td.tensor([2.5])) == 2.5 and int(td.tensor(-2.7)) == int(torch.tensor(-2.7))
    assert [10, 20, 30][td.tensor(2)] == 30 and [10, 20, 30][torch.tensor(2)] == 30
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][td.tensor(1.0)]
    rows = list(td.tensor(np.arange(6.0).reshape(3, 2)))
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    a, b = td.tensor([1.0, 2.0])
    assert (a.item(), b.item()) == (1.0, 2.0)
    with pytest.raises(TypeError, match="0-d"):
        iter(td.tensor(1.0))
    arr = np.asarray(td.tensor([1.0, 2.0], dtype=np.float64))
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64
    assert np.asarray(td.tensor([1, 2]), dtype=np.float32).dtype == np.float32


def test_iterating_a_tensor_with_gradients_keeps_the_graph(kernels):
    x = t64([1.0, 2.0, 3.0])
    total = sum(v * v for v in x)
    total.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


# --- 6, 7. indexing ------------------------------------------------------------------------------

def test_tensor_inside_a_tuple_index_and_0d_results(kernels):
    z = np.arange(20.0).reshape(4, 5)
    got = td.tensor(z)[np.arange(4), td.tensor([0, 4, 2, 2])]
    np.testing.assert_array_equal(got.numpy(), z[np.arange(4), [0, 4, 2, 2]])
    v = td.tensor([1.0, -2.0])
    assert type(v[0].numpy()) is np.ndarray and v[0].shape == ()
    assert F.relu(v[1]).item() == 0.0
    assert type((v.sum() * 2).data) is np.ndarray
    with pytest.raises(IndexError):
        v[2]


# --- 8. dtype and graph: casts are differentiable, nothing narrows silently ---------------------

def test_casts_keep_dtype_and_graph(kernels):
    x = t64([1.0, 2.0])
    assert x.detach().dtype == np.float64 and td.tensor(x).dtype == np.float64
    assert nn.Parameter(x).dtype == np.float64
    y = x.float()
    assert y.requires_grad and y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    assert x.double() is x
    z = td.tensor([1.0], requires_grad=True).double()
    assert z.requires_grad and z.dtype == np.float64


def test_model_with_a_cast_inside_trains_its_first_layer(kernels):
    td.manual_seed(0)
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    second.weight, second.bias = nn.Parameter(second.weight.double()), nn.Parameter(second.bias.double())
    x = td.tensor(np.ones((5, 3)))
    F.cross_entropy(second(F.relu(first(x)).double()), td.tensor(np.zeros(5, np.int64))).backward()
    assert first.weight.grad is not None and first.weight.grad.dtype == np.float32


# --- 9. copies and shares -------------------------------------------------------------------------

def test_tensor_and_parameter_copy_from_numpy_shares(kernels):
    a = np.ones(3, np.float32)
    t, p, s = td.tensor(a), nn.Parameter(a), td.from_numpy(a)
    p.grad = np.ones(3, np.float32)
    optim.SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(a, [1, 1, 1])                 # the caller's array is untouched
    s.data[0] = 7.0
    assert a[0] == 7.0 and t.numpy()[0] == 1.0                  # from_numpy shares, tensor copied
    assert td.from_numpy(np.zeros(2)).dtype == np.float64       # and keeps the dtype
    with pytest.raises(TypeError, match="from_numpy"):
        td.from_numpy(np.zeros(2, np.float16))


def test_two_parameters_from_one_array_train_apart(kernels):
    a = np.ones((2, 2), np.float32)
    p, q = nn.Parameter(a), nn.Parameter(a)
    p.grad = np.ones((2, 2), np.float32)
    optim.SGD([p], lr=1.0).step()
    np.testing.assert_array_equal(q.numpy(), np.ones((2, 2)))


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a - b,
                                lambda a, b: (a + b).reshape(4), lambda a, b: a * 1.0 + b])
def test_a_grad_belongs_to_its_tensor_alone(kernels, op):
    a, b = t64(np.ones((2, 2))), t64(np.ones((2, 2)))
    op(a, b).sum().backward()
    b_before = b.grad.copy()
    a.grad *= 10                                               # scaling one changes no other
    np.testing.assert_array_equal(b.grad, b_before)
    g = np.ones((2, 2))
    leaf = t64(np.zeros((2, 2)))
    leaf.backward(g)
    leaf.grad *= 3
    np.testing.assert_array_equal(g, np.ones((2, 2)))          # the caller's g is not stored


# --- 10. powers and division ----------------------------------------------------------------------

def test_pow_zero_and_division_by_zero_match_torch(kernels):
    assert_same(*grads_both(lambda x: x[0] ** 0, np.array([0.0, 2.0])))
    np.testing.assert_array_equal((td.tensor([1.0, -1.0, 0.0]) / 0).numpy(),
                                  (torch.tensor([1.0, -1.0, 0.0]) / 0).numpy())
    np.testing.assert_array_equal((td.tensor([1.0, -1.0]) / 0.0).numpy(), [np.inf, -np.inf])


def test_division_gradient_does_not_overflow_in_float32(kernels):
    a, b = td.tensor([1e-30], requires_grad=True), td.tensor([1e-25], requires_grad=True)
    (a / b).sum().backward()
    at, bt = torch.tensor([1e-30], requires_grad=True), torch.tensor([1e-25], requires_grad=True)
    (at / bt).sum().backward()
    np.testing.assert_allclose(b.grad, bt.grad.numpy(), rtol=1e-6)   # -1e20, not -inf
    assert np.isfinite(b.grad).all()
    assert_same(*grads_both(lambda x: x[0] / x[1], np.array([1.0, -2.0, 3.0]), np.array([0.5, 4.0, -3.0])))


# --- 11. reductions -------------------------------------------------------------------------------

def test_mean_over_nothing_is_nan(kernels):
    got = td.tensor(np.zeros((2, 0))).mean(1).numpy()
    want = torch.zeros((2, 0)).mean(1).numpy()
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got).all() and np.isnan(td.tensor(np.zeros(0)).mean().item())


# --- 12. a second backward through a freed graph -------------------------------------------------

def test_second_backward_raises_unless_retain_graph(kernels):
    w = t64([1.0, 2.0])
    loss = (w * w).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 4.0])          # nothing was added
    w.grad = None
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(w.grad, [4.0, 8.0])
    h = w * w                                                  # a shared subgraph, freed by the first
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 3).sum().backward()


# --- 13 and issue 15 items 1-2: the optimizer --------------------------------------------------

def test_param_groups_dampening_and_state_dict_match_torch(kernels):
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(3)
    ours = [t64(w0), t64(b0)]
    theirs = [torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)]
    groups = lambda p: [{"params": [p[0]], "lr": 0.05, "dampening": 0.3},  # noqa: E731
                        {"params": [p[1]], "weight_decay": 0.1}]
    opt = optim.SGD(groups(ours), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(groups(theirs), lr=0.1, momentum=0.9)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == \
        [{k: g[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}
         for g in topt.param_groups]
    x = rng.standard_normal((4, 2))
    for step in range(4):
        for o, ps, xs in ((opt, ours, td.tensor(x, dtype=np.float64)), (topt, theirs, torch.tensor(x))):
            o.zero_grad()
            ((xs @ ps[0].T + ps[1]) ** 2).sum().backward()
            o.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-12)
    state = opt.state_dict()
    tstate = topt.state_dict()
    assert sorted(state["state"]) == sorted(tstate["state"]) == [0, 1]
    np.testing.assert_allclose(state["state"][0]["momentum_buffer"],
                               tstate["state"][0]["momentum_buffer"].numpy(), rtol=1e-12)
    fresh = optim.SGD(groups([t64(w0), t64(b0)]), lr=0.1, momentum=0.9)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 0.05
    np.testing.assert_array_equal(fresh.state_dict()["state"][1]["momentum_buffer"],
                                  state["state"][1]["momentum_buffer"])


def test_optimizer_refusals():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="dampening 0"):
        optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(TypeError, match="'params' entry"):
        optim.SGD([{"lr": 0.1}], lr=0.1)
    with pytest.raises(ValueError, match="dampening must be finite and >= 0"):
        optim.SGD([{"params": [p], "dampening": -1}], lr=0.1)


def test_schedulers_are_chainable_like_torch():
    p, q = nn.Parameter(np.zeros(1)), torch.zeros(1, requires_grad=True)
    opt, topt = optim.SGD([p], lr=1.0), torch.optim.SGD([q], lr=1.0)
    scheds = [optim.StepLR(opt, step_size=2, gamma=0.5), optim.ExponentialLR(opt, gamma=0.9)]
    tscheds = [torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5),
               torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.9)]
    for epoch in range(6):
        if epoch == 3:                                         # a change by hand is kept
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.3
        for s, t in zip(scheds, tscheds):
            s.step()
            t.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        for s, t in zip(scheds, tscheds):
            assert s.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-12)
            assert s.last_epoch == t.last_epoch and s.base_lrs == t.base_lrs


def test_bad_grad_or_read_only_parameter_is_refused_before_any_kernel(kernels):
    p, q = nn.Parameter(np.zeros((4, 3))), nn.Parameter(np.zeros(2))
    q.grad = np.ones(2, np.float32)
    p.grad = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 3\)"):
        optim.SGD([q, p], lr=0.1).step()
    np.testing.assert_array_equal(q.numpy(), [0, 0])            # the first was not stepped
    p.grad = np.ones((4, 3), np.float64)
    with pytest.raises(ValueError, match="float64.*float32"):
        optim.SGD([p], lr=0.1).step()
    w = td.tensor(np.ones((2, 3)), requires_grad=True)
    w.grad = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"\(5,\).*\(2, 3\)"):
        (w * 2.0).sum().backward()
    ro = np.ones(3, np.float32)
    ro.flags.writeable = False
    leaf = td.from_numpy(ro)
    leaf.requires_grad = True
    leaf.grad = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="read-only"):
        optim.SGD([leaf], lr=0.1).step()
    copied = td.tensor(ro, requires_grad=True)                  # tensor() copies: writable
    copied.grad = np.ones(3, np.float32)
    optim.SGD([copied], lr=0.5).step()
    np.testing.assert_array_equal(copied.numpy(), [0.5, 0.5, 0.5])


# --- issue 15 item 6 (a few lines of tensor.py): non-numbers do not become NaN ----------------

def test_binary_ops_refuse_non_numbers():
    x = td.tensor([1.0])
    for other in (None, 1j, "a"):
        with pytest.raises(TypeError, match="real number"):
            x + other


# --- dtype: one rule, and float64 in gives float64 out everywhere ------------------------------

CORE = Path(td.__file__).parent


def test_dtype_is_chosen_in_one_place():
    """Grep-able rule: the core files never convert a dtype on their own; `result_dtype`
    (tensor.py) chooses every Tensor's dtype, and the only casts are the differentiable
    Cast op and the kernels' own."""
    pattern = re.compile(r"astype\(|np\.float32\b|dtype=np\.float")
    found = {}
    for name in ("tensor.py", "functional.py", "nn.py", "optim.py"):
        lines = (CORE / name).read_text().splitlines()
        found[name] = [ln.strip() for ln in lines   # (class labels become int64: not a float dtype)
                       if pattern.search(ln) and not re.search(r"astype\([^()]*np\.int64\)", ln)
                       and not ln.strip().startswith(('"', 'f"'))]   # (nor messages' text)
    assert found["functional.py"] == [] and found["optim.py"] == []
    assert all("DEFAULT_DTYPE" in ln or "np.float32" not in ln for ln in found["nn.py"]), found["nn.py"]
    allowed = ("DEFAULT_DTYPE = np.dtype(np.float32)", "FLOAT_DTYPES = (np.dtype(np.float32)",
               "backend.astype(", "self._cast(np.float")
    assert all(any(a in ln for a in allowed) for ln in found["tensor.py"]), found["tensor.py"]


def _f64(rng, *shape):
    return td.tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=True)


PUBLIC_OPS = {
    "add": lambda r: _f64(r, 2, 3) + _f64(r, 3), "radd": lambda r: 1 + _f64(r, 2),
    "sub": lambda r: _f64(r, 2, 3) - 2, "rsub": lambda r: 2 - _f64(r, 2),
    "mul": lambda r: _f64(r, 2, 3) * _f64(r, 2, 1), "mul_number": lambda r: _f64(r, 2) * 3,
    "div": lambda r: _f64(r, 2) / _f64(r, 2), "div_number": lambda r: _f64(r, 2) / 3,
    "rdiv": lambda r: 1 / _f64(r, 2), "neg": lambda r: -_f64(r, 2), "pow": lambda r: _f64(r, 2) ** 2,
    "matmul": lambda r: _f64(r, 2, 3) @ _f64(r, 3, 4), "sum": lambda r: _f64(r, 2, 3).sum(0),
    "mean": lambda r: _f64(r, 2, 3).mean(), "reshape": lambda r: _f64(r, 2, 3).reshape(-1),
    "view": lambda r: _f64(r, 2, 3).view(3, 2), "flatten": lambda r: _f64(r, 2, 3).flatten(),
    "transpose": lambda r: _f64(r, 2, 3).transpose(0, 1), "T": lambda r: _f64(r, 2, 3).T,
    "permute": lambda r: _f64(r, 2, 3).permute(-1, 0), "index": lambda r: _f64(r, 4)[1:3],
    "detach": lambda r: _f64(r, 2).detach(), "tensor": lambda r: td.tensor(_f64(r, 2)),
    "to_cpu": lambda r: _f64(r, 2).to("cpu"), "double": lambda r: _f64(r, 2).double(),
    "relu": lambda r: F.relu(_f64(r, 3)), "linear": lambda r: F.linear(_f64(r, 2, 3), _f64(r, 4, 3), _f64(r, 4)),
    "log_softmax": lambda r: F.log_softmax(_f64(r, 2, 3)), "softmax": lambda r: F.softmax(_f64(r, 2, 3)),
    "cross_entropy": lambda r: F.cross_entropy(_f64(r, 2, 3), td.tensor([0, 2])),
    "mse_loss": lambda r: F.mse_loss(_f64(r, 2, 3), _f64(r, 2, 3)),
    "conv2d": lambda r: F.conv2d(_f64(r, 1, 2, 5, 5), _f64(r, 3, 2, 3, 2), _f64(r, 3), stride=(2, 1)),
    "max_pool2d": lambda r: F.max_pool2d(_f64(r, 1, 2, 5, 5), (2, 3)),
    "affine_grid": lambda r: F.affine_grid(_f64(r, 1, 2, 3), (1, 1, 3, 4)),
    "grid_sample": lambda r: F.grid_sample(_f64(r, 1, 2, 4, 4), _f64(r, 1, 3, 3, 2) * 0.5),
    "Parameter": lambda r: nn.Parameter(_f64(r, 2)) * 1,
}


@pytest.mark.parametrize("name", sorted(PUBLIC_OPS))
def test_every_public_op_keeps_float64(kernels, name):
    rng = np.random.default_rng(0)
    out = PUBLIC_OPS[name](rng)
    assert out.dtype == np.float64, name
    if out.requires_grad:
        out.sum().backward()
        leaves, stack = [], [out]
        while stack:
            t = stack.pop()
            if t._ctx is None:
                leaves.append(t)
            else:
                stack.extend(p for p in t._ctx.parents if isinstance(p, td.Tensor) and p.requires_grad)
        assert leaves and all(t.grad is None or t.grad.dtype == np.float64 for t in leaves)
