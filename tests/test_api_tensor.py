"""The PyTorch user's first hour, Tensor and module level (issue 16): every item on the
numba CPU kernels, the NumPy reference kernels and CUDA (the simulator without a GPU),
its values and its float64 gradients compared with PyTorch 2.13's (an independent
autograd), and the float64 gradients of each also checked by finite differences."""
import numpy as np
import pytest

import tinydeep as td
from tinydeep import backends

torch = pytest.importorskip("torch")

DEVICES = ["cpu", "reference", "cuda"]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda" and not td.cuda_available():
        pytest.skip("no CUDA (nor its simulator)")
    if request.param == "cuda":
        request.getfixturevalue("fast_cuda_simulator")
    backends.use_cpu_kernels("reference" if request.param == "reference" else "cpu")
    yield "cuda" if request.param == "cuda" else "cpu"
    backends.use_cpu_kernels("cpu")


def _arrays(shapes, seed, positive):
    rng = np.random.default_rng(seed)
    return [np.abs(rng.standard_normal(s)) + 0.5 if positive else rng.standard_normal(s)
            for s in shapes]


def _host(v):
    return v.numpy() if isinstance(v, td.Tensor) else np.asarray(v.detach().numpy())


def agree(fn, shapes, device, positive=False, grad=True, seed=0):
    """fn (written once, for both libraries) on float64 leaves: values, dtypes and shapes
    equal to torch's; the gradient of a random projection of the output too."""
    xs = _arrays(shapes, seed, positive)
    ours = [td.tensor(x, dtype=np.float64, device=device, requires_grad=grad) for x in xs]
    theirs = [torch.tensor(x, requires_grad=grad) for x in xs]
    a, b = fn(*ours), fn(*theirs)
    pairs = list(zip(a, b)) if isinstance(b, tuple) else [(a, b)]
    for u, v in pairs:
        assert tuple(u.shape) == tuple(v.shape)
        assert _host(u).dtype == np.dtype(str(v.dtype).replace("torch.", "").replace("long", "int64"))
        np.testing.assert_allclose(_host(u), _host(v), rtol=1e-10, atol=1e-12)
    if grad:
        u, v = pairs[0]
        w = np.random.default_rng(seed + 1).standard_normal(tuple(v.shape))
        (u * td.tensor(w, dtype=np.float64, device=device)).sum().backward()
        (v * torch.tensor(w)).sum().backward()
        for x, t in zip(ours, theirs):
            want = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
            got = np.zeros(t.shape) if x.grad is None else backends.arrays(device).to_host(x.grad)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        if device == "cpu":
            fresh = [td.tensor(x, dtype=np.float64, requires_grad=True) for x in xs]
            assert td.gradcheck(lambda *ts: fn(*ts)[0] if isinstance(b, tuple) else fn(*ts), fresh)


DIFFERENTIABLE = {
    "sum dim keepdim": (lambda x: x.sum(dim=1, keepdim=True), [(2, 3, 2)]),
    "sum dims": (lambda x: x.sum((0, -1)), [(2, 3, 2)]),
    "mean dim": (lambda x: x.mean(dim=-2), [(2, 3, 2)]),
    "prod": (lambda x: x.prod(), [(3, 5)]),
    "prod dim": (lambda x: x.prod(1), [(2, 7, 3)]),
    "prod dim keepdim": (lambda x: x.prod(dim=-1, keepdim=True), [(3, 6)]),
    "prod 0-d": (lambda x: x.prod(0), [()]),
    "prod empty": (lambda x: x.prod(1), [(2, 0)]),
    "max dim": (lambda x: x.max(dim=1), [(3, 4)]),
    "max keepdim": (lambda x: x.max(0, keepdim=True), [(3, 4)]),
    "min dim": (lambda x: x.min(dim=-1), [(3, 4)]),
    "max all": (lambda x: x.max(), [(3, 4)]),
    "min all": (lambda x: x.min(), [(3, 4)]),
    "var": (lambda x: x.var(), [(3, 4)]),
    "var dim biased": (lambda x: x.var(1, unbiased=False, keepdim=True), [(3, 4)]),
    "std dim": (lambda x: x.std(dim=0), [(3, 4)]),
    "exp": (lambda x: x.exp(), [(2, 3)]),
    "log": (lambda x: x.log(), [(2, 3)]),
    "sqrt": (lambda x: x.sqrt(), [(2, 3)]),
    "abs": (lambda x: x.abs(), [(2, 3)]),
    "abs()": (lambda x: abs(x), [(2, 3)]),
    "tanh": (lambda x: x.tanh(), [(2, 3)]),
    "sigmoid": (lambda x: x.sigmoid(), [(2, 3)]),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), [(3, 4)]),
    "clamp min": (lambda x: x.clamp(min=0.1), [(3, 4)]),
    "pow tensor": (lambda x, y: x ** y, [(2, 3), (3,)]),
    "rpow": (lambda x: 2.0 ** x, [(2, 3)]),
    "unsqueeze": (lambda x: x.unsqueeze(1) * 1.0, [(2, 3)]),
    "unsqueeze -1": (lambda x: x.unsqueeze(-1) * 1.0, [(2, 3)]),
    "squeeze": (lambda x: x.squeeze() * 1.0, [(2, 1, 3, 1)]),
    "squeeze dim": (lambda x: x.squeeze(1) * 1.0, [(2, 1, 3, 1)]),
    "flatten range": (lambda x: x.flatten(1, 2) * 1.0, [(2, 3, 2, 2)]),
    "view": (lambda x: x.view(3, -1) * 1.0, [(2, 3, 2)]),
    "t": (lambda x: x.t() * 1.0, [(2, 3)]),
    "expand": (lambda x: x.expand(2, 3, 4) * 1.0, [(3, 1)]),
    "expand -1": (lambda x: x.expand(4, -1) * 1.0, [(1, 3)]),
    "repeat": (lambda x: x.repeat(2, 1, 3), [(2, 3)]),
    "clone": (lambda x: x.clone(), [(2, 3)]),
    "softmax dim 0": (lambda x: x.softmax(0), [(3, 4)]),
    "softmax 3-D dim 1": (lambda x: x.softmax(dim=1), [(2, 3, 4)]),
    "log_softmax 1-D": (lambda x: x.log_softmax(0), [(5,)]),
    "log_softmax 4-D": (lambda x: x.log_softmax(-3), [(2, 3, 2, 2)]),
    "softmax empty dim": (lambda x: x.softmax(1), [(2, 0, 3)]),
    "log_softmax no rows": (lambda x: x.log_softmax(1), [(0, 4)]),
}
DIFF_DOMAIN = {"log", "sqrt", "pow tensor"}  # positive inputs


@pytest.mark.parametrize("name", list(DIFFERENTIABLE))
def test_tensor_method_matches_torch(name, device):
    fn, shapes = DIFFERENTIABLE[name]
    agree(fn, shapes, device, positive=name in DIFF_DOMAIN)


MODULE_LEVEL = {
    "cat": (lambda x, y: TD(x).cat([x, y], dim=1), [(2, 3), (2, 2)]),
    "cat -1 3-D": (lambda x, y: TD(x).cat([x, y, x], -1), [(2, 1, 3), (2, 1, 2)]),
    "stack": (lambda x, y: TD(x).stack([x, y], dim=1), [(2, 3), (2, 3)]),
    "stack last": (lambda x, y: TD(x).stack([x, y], -1), [(2, 3), (2, 3)]),
    "where": (lambda x, y: TD(x).where(x > 0, x, y), [(2, 3), (2, 3)]),
    "where broadcast": (lambda x, y: TD(x).where(x > 0, x, y), [(2, 3), (3,)]),
    "maximum": (lambda x, y: TD(x).maximum(x, y), [(2, 3), (3,)]),
    "minimum": (lambda x, y: TD(x).minimum(x, y), [(2, 3), (2, 3)]),
    "matmul 2-D": (lambda x, y: TD(x).matmul(x, y), [(2, 3), (3, 4)]),
    "matmul 1-D": (lambda x, y: TD(x).matmul(x, y), [(3,), (3, 4)]),
    "matmul dot": (lambda x, y: TD(x).matmul(x, y), [(3,), (3,)]),
    "matmul 2-D @ 1-D": (lambda x, y: TD(x).matmul(x, y), [(2, 3), (3,)]),
    "@ 3-D by 2-D": (lambda x, y: x @ y, [(4, 2, 3), (3, 5)]),
    "@ 4-D by 1-D": (lambda x, y: x @ y, [(2, 4, 2, 3), (3,)]),
    "@ 1-D by 3-D": (lambda x, y: x @ y, [(3,), (4, 3, 2)]),
    "@ batched": (lambda x, y: x @ y, [(4, 2, 3), (4, 3, 5)]),
    "@ batch broadcast": (lambda x, y: x @ y, [(2, 1, 2, 3), (4, 3, 5)]),
    "@ 2-D by 3-D": (lambda x, y: x @ y, [(2, 3), (4, 3, 5)]),
    # Tensor methods as module-level functions (torch.max(out, 1) of the blitz, torch.exp(x)...)
    "torch.max(x, 1)": (lambda x, y: TD(x).max(x, 1)[0] + TD(x).max(y), [(2, 3), (3,)]),
    "torch.max(a, b), torch.min(a, b)": (lambda x, y: TD(x).max(x, y) * TD(x).min(x, y), [(2, 3), (2, 3)]),
    "torch.sum, mean, exp, abs": (lambda x, y: TD(x).sum(TD(x).exp(x), dim=1) + TD(x).mean(TD(x).abs(y)), [(2, 3), (3,)]),
    "torch.flatten, transpose, t": (lambda x, y: TD(x).flatten(TD(x).transpose(x, 0, 1), 0) + TD(x).t(y).sum(), [(2, 3), (2, 3)]),
    "torch.softmax, sigmoid, clamp": (lambda x, y: TD(x).softmax(x, 1) * TD(x).clamp(TD(x).sigmoid(y), 0.3, 0.7), [(2, 3), (2, 3)]),
}


def TD(x):
    """The library x comes from: tinydeep or torch."""
    return td if isinstance(x, td.Tensor) else torch


@pytest.mark.parametrize("name", list(MODULE_LEVEL))
def test_module_function_matches_torch(name, device):
    fn, shapes = MODULE_LEVEL[name]
    agree(fn, shapes, device)


def test_where_takes_no_nan_from_the_branch_not_taken(device):
    x = td.tensor([1.0, -1.0, 2.0], dtype=np.float64, device=device, requires_grad=True)
    y = td.where(x > 0, x.log(), td.zeros_like(x))     # log(-1) is NaN, not taken
    y.sum().backward()
    assert np.all(np.isfinite(y.numpy()))
    np.testing.assert_allclose(backends.arrays(device).to_host(x.grad), [1.0, 0.0, 0.5])


def test_prod_gradient_with_zeros_matches_torch(device):
    """One zero in a slice: its gradient is the product of the others, the rest get 0;
    two zeros: all 0 (PyTorch's). Integer and bool products are int64."""
    x = np.random.default_rng(4).standard_normal((4, 5))
    x[0, 2] = x[1, 1] = x[1, 3] = x[3, 0] = 0.0        # rows with one, two, no and one zero
    for a, kw in ((x, dict()), (x[0], dict()), (x, dict(dim=0, keepdim=True)), (x, dict(dim=1))):
        t = td.tensor(a, dtype=np.float64, device=device, requires_grad=True)
        tt = torch.tensor(a, requires_grad=True)
        y, yt = t.prod(**kw), tt.prod(**kw)
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=0)
        w = np.random.default_rng(5).standard_normal(yt.shape)
        (y * td.tensor(w, dtype=np.float64, device=device)).sum().backward()
        (yt * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(backends.arrays(device).to_host(t.grad), tt.grad.numpy(),
                                   rtol=1e-12, atol=0)
    assert tt.grad[0, 2] != 0               # (the case the test is about happens)
    i = np.array([[2, 3, 1], [0, 5, 4]])
    for a, b in ((td.tensor(i, device=device), torch.tensor(i)),
                 (td.tensor(i, device=device) > 0, torch.tensor(i) > 0)):
        for kw in (dict(), dict(dim=1)):
            p, q = a.prod(**kw), b.prod(**kw)
            assert p.dtype == np.int64 and q.dtype == torch.int64
            np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_prod_returns_new_memory_and_exact_int64(device):
    """Over a dimension of size 1 no multiplication happens, yet the result is new memory
    (writing into it leaves the input alone), as PyTorch's; int64 products are exact past
    2^53 (not through float64) and wrap as PyTorch's."""
    t = td.tensor(np.arange(3.0).reshape(1, 3), device=device)
    for p in (t.prod(dim=0, keepdim=True), t.prod(dim=0), t[0, :1].prod()):
        assert p is not t
        p.data[...] = 7                                 # an optimizer writing in place
        np.testing.assert_array_equal(t.numpy(), [[0.0, 1.0, 2.0]])
    big = np.array([2 ** 31 + 1, 2 ** 31 + 1, 3 ** 30], dtype=np.int64)
    for kw in (dict(), dict(dim=0)):
        assert td.tensor(big[:2], device=device).prod(**kw).item() == torch.tensor(big[:2]).prod(**kw).item()
        assert td.tensor(big, device=device).prod(**kw).item() == torch.tensor(big).prod(**kw).item()
    with pytest.raises(TypeError, match="dim must be one int"):
        t.prod(dim=(0, 1))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_extrema(name, device):
    x = np.random.default_rng(3).standard_normal((3, 4, 2))
    t, tt = td.tensor(x, device=device), torch.tensor(x)
    for kw in (dict(), dict(dim=1), dict(dim=-1, keepdim=True), dict(dim=0)):
        a, b = getattr(t, name)(**kw), getattr(tt, name)(**kw)
        assert a.dtype == np.int64 and a.shape == tuple(b.shape)
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_shape_queries_and_casts(device):
    x = td.tensor(np.arange(12.0).reshape(3, 4) - 5, device=device)
    tt = torch.tensor(np.arange(12.0).reshape(3, 4) - 5, dtype=torch.float32)
    assert x.size() == tuple(tt.size()) and x.size(1) == tt.size(1) and x.size(-2) == 3
    assert x.dim() == tt.dim() == 2 and x.numel() == tt.numel() == 12
    for cast, dtype in (("long", np.int64), ("int", np.int32), ("bool", np.bool_)):
        c, ct = getattr(x, cast)(), getattr(tt, cast)()
        assert c.dtype == dtype and c.device == device
        np.testing.assert_array_equal(c.numpy(), ct.numpy())
    assert x.tolist() == tt.tolist()
    s, st = (x > 0).sum(), (tt > 0).sum()
    assert s.dtype == np.int64 and int(s) == int(st) == 6
    s1 = (x > 0).sum(dim=1)
    np.testing.assert_array_equal(s1.numpy(), (tt > 0).sum(dim=1).numpy())
    assert x.long().sum().dtype == np.int64 and int(x.long().sum()) == int(tt.long().sum())


def test_creation_matches_torch(device):
    kw = dict(device=device)
    cases = [
        (td.zeros(2, 3, **kw), torch.zeros(2, 3)), (td.ones((2, 3), **kw), torch.ones((2, 3))),
        (td.zeros(2, dtype=td.float64, **kw), torch.zeros(2, dtype=torch.float64)),
        (td.full((2, 2), 1.5, **kw), torch.full((2, 2), 1.5)),
        (td.full((2,), 7, **kw), torch.full((2,), 7)), (td.eye(3, **kw), torch.eye(3)),
        (td.eye(2, 3, **kw), torch.eye(2, 3)), (td.arange(5, **kw), torch.arange(5)),
        (td.arange(1, 7, 2, **kw), torch.arange(1, 7, 2)),
        (td.arange(0, 1, 0.25, **kw), torch.arange(0, 1, 0.25)),
        (td.arange(4, dtype=td.float64, **kw), torch.arange(4, dtype=torch.float64)),
        (td.linspace(-1, 1, 5, **kw), torch.linspace(-1, 1, 5)),
        (td.zeros_like(td.ones(2, 3, dtype=td.float64, **kw)), torch.zeros_like(torch.ones(2, 3, dtype=torch.float64))),
        (td.ones_like(td.arange(3, **kw)), torch.ones_like(torch.arange(3))),
        (td.full_like(td.arange(3, **kw), 2.5), torch.full_like(torch.arange(3), 2.5)),
        (td.full_like(td.ones(2, dtype=td.float64, **kw), -1), torch.full_like(torch.ones(2, dtype=torch.float64), -1)),
        (td.zeros_like(td.tensor(3.0, **kw)), torch.zeros_like(torch.tensor(3.0))),
        (td.ones_like(td.arange(3, **kw), dtype=td.float32), torch.ones_like(torch.arange(3), dtype=torch.float32)),
    ]
    for a, b in cases:
        assert a.shape == tuple(b.shape) and a.device == device
        assert a.dtype == np.dtype(str(b.dtype).replace("torch.", "")), (a.dtype, b.dtype)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert td.float32 == np.float32 and td.float64 == np.float64 and td.long == np.int64
    assert td.ones(2, requires_grad=True, **kw).requires_grad


def test_random_tensors_have_torchs_distributions():
    td.manual_seed(0)
    n = td.randn(200_000).numpy()
    u = td.rand(200_000).numpy()
    assert n.dtype == u.dtype == np.float32 and td.randn(2, 3).shape == (2, 3)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    assert abs(u.var() - 1 / 12) < 0.002
    td.manual_seed(1)
    a = td.randn(3).numpy()
    td.manual_seed(1)
    np.testing.assert_array_equal(a, td.randn(3).numpy())


def test_random_like_takes_shape_dtype_and_device(device):
    x = td.ones(300, 200, dtype=td.float64, device=device)
    for make, mean, var in ((td.rand_like, 0.5, 1 / 12), (td.randn_like, 0.0, 1.0)):
        r = make(x)
        assert r.shape == x.shape and r.dtype == np.float64 and r.device == device
        assert abs(r.numpy().mean() - mean) < 0.01 and abs(r.numpy().var() - var) < 0.01 * var + 0.002
        assert make(x, dtype=td.float32).dtype == np.float32
        with pytest.raises(TypeError, match="float dtype"):      # torch: not implemented for 'Long'
            make(td.arange(3))


def test_requires_grad_in_place_as_torch():
    x = td.zeros(2).requires_grad_()
    assert x.requires_grad and x.requires_grad_(False) is x and not x.requires_grad
    y = td.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):   # torch: flags of leaf variables only
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="leaf"):   # (before: the gradient silently stopped at y)
        y.requires_grad = False
    assert y.requires_grad_() is y and y.requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        td.arange(3).requires_grad_()


def test_from_numpy_shares():
    a = np.zeros(3)
    t = td.from_numpy(a)
    t.data[0] = 5
    assert a[0] == 5 and t.dtype == np.float64


def test_bad_arguments_get_clear_errors():
    x = td.ones(2, 3)
    with pytest.raises(ValueError, match="expand"):
        x.expand(3, 3)
    with pytest.raises(ValueError, match="cat"):
        td.cat([x, td.ones(3, 3)], dim=1)
    with pytest.raises(IndexError):
        x.unsqueeze(4)
    with pytest.raises(ValueError, match="t\\(\\)"):
        td.ones(2, 2, 2).t()
    with pytest.raises(ValueError, match="clamp"):
        x.clamp()
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 3\) do not match \(3 != 2\)"):
        x @ x
    with pytest.raises(ValueError, match="batch shapes of \\(2, 2, 3\\) and \\(3, 3, 4\\)"):
        td.ones(2, 2, 3) @ td.ones(3, 3, 4)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        td.tensor(2.0) @ x


def test_type_any_and_all_as_torch(device):
    """The tutorials' accuracy line `(pred.argmax(1) == y).type(torch.float).sum()`, and
    any()/all() of a mask."""
    x = np.array([[0.5, -2.0, 1.0], [3.0, 0.0, -1.0]])
    for lib in (td, torch):
        t = lib.tensor(x, device=device) if lib is td else lib.tensor(x)
        y = lib.tensor([2, 0], device=device) if lib is td else lib.tensor([2, 0])
        got = [(t.argmax(1) == y).type(lib.float).sum().item(), (t > 2).any().item(),
               (t > -3).all().item(), (t > 0).all().item(), str(t.type(lib.float64).dtype)[-7:]]
        assert got == [2.0, True, True, False, "float64"], (lib.__name__, got)
