"""Differential test against PyTorch: random graphs, and the cases users hit after the demos.

Hypothesis draws random graphs of elementwise ops (with broadcasting), reductions,
indexing, shape ops (permute/transpose/reshape/flatten with negative axes) and matmul,
builds each in tinydeep and in PyTorch in lockstep, and compares the output and the
gradient of every leaf, in float32 and float64, on the numba CPU kernels and the NumPy
reference kernels. Explicit cases cover rectangular conv/pool, a shared layer trained
by SGD with momentum, casts inside a graph, and multi-step runs with param groups and
chained schedulers.

Seed policy: `derandomize=True` with a fixed `max_examples` (GRAPHS = 50 per dtype and
kernel set, 4 x 50 = 200 graphs of 2-6 ops, about 1,100 ops in all), so CI runs the same
cases every time; no example database. Hypothesis draws a seed per graph, and a NumPy
generator from it picks the shape and the ops (uniformly; hypothesis's own derandomized
choices lean to the first option) while hypothesis draws each op's arguments. Set
TINYDEEP_DIFF_EXAMPLES to run more locally (still derandomized).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinydeep as td
from tinydeep import backends, functional as F, nn, optim

torch = pytest.importorskip("torch")

GRAPHS = int(os.environ.get("TINYDEEP_DIFF_EXAMPLES", "50"))
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


class Pair:
    """The same value in both libraries: `ours` (tinydeep) and `theirs` (torch)."""

    def __init__(self, ours, theirs):
        self.ours, self.theirs = ours, theirs

    shape = property(lambda self: tuple(self.ours.shape))

    def apply(self, fn, *others):
        """fn written once for both libraries (they share the names used here)."""
        return Pair(fn(self.ours, *(o.ours for o in others)),
                    fn(self.theirs, *(o.theirs for o in others)))


class Graph:
    def __init__(self, draw, dtype):
        self.draw, self.dtype, self.leaves = draw, dtype, []
        # the op at each step comes from a generator seeded by hypothesis: uniform over the
        # ops (hypothesis's own choices lean to the first option when derandomized)
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def leaf(self, shape, positive=False):
        a = self.draw(st.integers(0, 2**32 - 1))
        x = np.random.default_rng(a).standard_normal(shape)
        x = np.abs(x) + 0.5 if positive else x
        p = Pair(td.tensor(x, dtype=self.dtype, requires_grad=True),
                 torch.tensor(x, dtype=TORCH_DTYPE[self.dtype], requires_grad=True))
        self.leaves.append(p)
        return p

    def axis(self, ndim):
        return self.draw(st.integers(-ndim, ndim - 1))

    def broadcast_partner_shape(self, shape):
        """A shape that broadcasts against `shape`: some dims 1, leading dims maybe dropped."""
        drop = self.draw(st.integers(0, len(shape)))
        return tuple(1 if self.draw(st.booleans()) else n for n in shape[drop:])

    def step(self, x, pool):
        """One random op on x (and maybe a partner): returns the new Pair."""
        d, shape, nd = self.draw, x.shape, len(x.shape)
        ops = ["unary", "scalar", "binary", "reuse"]
        if nd:
            ops += ["sum", "mean", "permute", "transpose", "reshape", "flatten", "index", "index"]
        if nd == 2:
            ops += ["matmul", "matmul", "softmax", "softmax"]
        op = ops[self.rng.integers(len(ops))]
        if op == "unary":
            kind = d(st.sampled_from(["relu", "neg", "square", "cube"]))
            return {"relu": lambda: Pair(F.relu(x.ours), torch.relu(x.theirs)),
                    "neg": lambda: x.apply(lambda t: -t),
                    "square": lambda: x.apply(lambda t: t ** 2),
                    "cube": lambda: x.apply(lambda t: t ** 3.0)}[kind]()
        if op == "scalar":
            c = d(st.sampled_from([2.0, -0.5, 3, 0.25]))
            kind = d(st.sampled_from(["mul", "rmul", "add", "rsub", "div", "rdiv"]))
            return x.apply({"mul": lambda t: t * c, "rmul": lambda t: c * t,
                            "add": lambda t: t + c, "rsub": lambda t: c - t,
                            "div": lambda t: t / c, "rdiv": lambda t: c / (t * t + 1.0)}[kind])
        if op in ("binary", "reuse"):
            partners = [p for p in pool if _broadcasts(p.shape, shape)] if op == "reuse" else []
            y = d(st.sampled_from(partners)) if partners else self.leaf(self.broadcast_partner_shape(shape))
            kind = d(st.sampled_from(["add", "sub", "mul", "div", "rdiv"]))
            if kind in ("div", "rdiv"):  # a denominator kept away from 0
                den = y.apply(lambda t: t * t + 0.5)
                return x.apply(lambda a, b: a / b, den) if kind == "div" else den.apply(lambda a, b: a / b, x)
            return x.apply({"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                            "mul": lambda a, b: a * b}[kind], y)
        if op in ("sum", "mean"):
            axes = d(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                              unique_by=lambda a: a % nd))
            keep = d(st.booleans())
            dim = axes[0] if len(axes) == 1 and d(st.booleans()) else tuple(axes)
            return x.apply(lambda t: getattr(t, op)(dim=dim, keepdim=keep))
        if op == "permute":
            perm = d(st.permutations(range(nd)))
            perm = [a - nd if d(st.booleans()) else a for a in perm]
            return x.apply(lambda t: t.permute(*perm))
        if op == "transpose":
            a, b = self.axis(nd), self.axis(nd)
            return x.apply(lambda t: t.transpose(a, b))
        if op == "reshape":
            size = int(np.prod(shape))
            divisors = [k for k in range(1, size + 1) if size % k == 0]
            k = d(st.sampled_from(divisors))
            new = d(st.sampled_from([(size,), (k, size // k), (size // k, -1), (-1, 1, k)]))
            return x.apply(lambda t: t.reshape(new))
        if op == "flatten":
            s = self.axis(nd)
            e = d(st.integers(s % nd, nd - 1))
            e = e - nd if d(st.booleans()) else e
            return x.apply(lambda t: t.flatten(s, e))
        if op == "index":
            n = shape[0]
            kind = d(st.sampled_from(["int", "slice", "array", "tuple"]))
            if kind == "int":
                i = d(st.integers(-n, n - 1))
                return x.apply(lambda t: t[i])
            if kind == "slice":
                a = d(st.integers(0, n - 1))
                return x.apply(lambda t: t[a:n])
            idx = np.array(d(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5)))  # repeats add up
            if kind == "array":
                return Pair(x.ours[td.tensor(idx)], x.theirs[torch.tensor(idx)])
            if nd == 1:
                return Pair(x.ours[(idx,)], x.theirs[(torch.tensor(idx),)])
            s = slice(1, None) if shape[1] > 1 else slice(None)
            return Pair(x.ours[idx, s], x.theirs[torch.tensor(idx), s])
        if op == "matmul":
            w = self.leaf((shape[1], d(st.integers(1, 4))))
            if d(st.booleans()):
                return x.apply(lambda a, b: a @ b, w)
            v = self.leaf((d(st.integers(1, 4)), shape[0]))
            return v.apply(lambda a, b: a @ b, x)
        kind = d(st.sampled_from(["softmax", "log_softmax"]))      # softmax over the last axis
        return Pair(getattr(F, kind)(x.ours, dim=-1), getattr(torch, kind)(x.theirs, dim=-1))


def _broadcasts(a, b):
    """True when a broadcasts to b (a partner never grows x)."""
    try:
        return np.broadcast_shapes(a, b) == tuple(b)
    except ValueError:
        return False


def _check_graph(data, dtype, kernels):
    backends.use_cpu_kernels(kernels)
    try:
        g = Graph(data.draw, dtype)
        shape = tuple(int(n) for n in g.rng.integers(1, 5, g.rng.integers(1, 4)))
        x = g.leaf(shape)
        pool = [x]
        for _ in range(int(g.rng.integers(2, 7))):
            x = g.step(x, pool)
            pool.append(x)
        # a random cotangent, so that every output element's gradient counts
        v = np.random.default_rng(7).standard_normal(x.shape)
        (x.ours * td.tensor(v, dtype=dtype)).sum().backward()
        (x.theirs * torch.tensor(v, dtype=TORCH_DTYPE[dtype])).sum().backward()
        assert x.ours.dtype == dtype
        np.testing.assert_allclose(x.ours.numpy(), x.theirs.detach().numpy(), **TOL[dtype])
        for i, leaf in enumerate(g.leaves):
            ours = np.zeros(leaf.shape) if leaf.ours.grad is None else leaf.ours.grad
            theirs = np.zeros(leaf.shape) if leaf.theirs.grad is None else leaf.theirs.grad.numpy()
            assert np.shape(ours) == leaf.shape, f"leaf {i}"
            np.testing.assert_allclose(ours, theirs, **TOL[dtype], err_msg=f"leaf {i}")
    finally:
        backends.use_cpu_kernels("cpu")


GRAPH_SETTINGS = settings(max_examples=GRAPHS, derandomize=True, database=None, deadline=None,
                          suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kernels", ["cpu", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@GRAPH_SETTINGS
@given(data=st.data())
def test_random_graphs_match_torch(kernels, dtype, data):
    _check_graph(data, dtype, kernels)


# --- explicit cases ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("conv,pool", [
    (dict(stride=(2, 1), padding=(1, 0)), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    (dict(stride=(1, 3), padding=(0, 2)), dict(kernel_size=(3, 1), stride=None, padding=(1, 0))),
    (dict(stride=2, padding=1), dict(kernel_size=2, stride=(2, 1), padding=0))])
def test_rectangular_conv_and_pool_match_torch(dtype, conv, pool):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    leaves = [Pair(td.tensor(a, dtype=dtype, requires_grad=True),
                   torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)) for a in (x, w, b)]
    ours = F.max_pool2d(F.conv2d(*(p.ours for p in leaves), **conv), **pool)
    theirs = torch.nn.functional.max_pool2d(
        torch.nn.functional.conv2d(*(p.theirs for p in leaves), **conv), **pool)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **TOL[dtype])
    v = rng.standard_normal(ours.shape)
    (ours * td.tensor(v, dtype=dtype)).sum().backward()
    (theirs * torch.tensor(v, dtype=TORCH_DTYPE[dtype])).sum().backward()
    for p in leaves:
        np.testing.assert_allclose(p.ours.grad, p.theirs.grad.numpy(), **TOL[dtype])
    # the layers take the same arguments
    ours_layer = nn.MaxPool2d(**pool)(nn.Conv2d(3, 4, (3, 2), **conv)(leaves[0].ours.float()))
    assert ours_layer.shape == ours.shape


def _copy_from_torch(ours, theirs):
    for (name, p), (tname, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        p.data[...] = q.detach().numpy()


def _train_both(ours, theirs, opt, topt, x, y, steps, sched=(), tsched=()):
    xo, xt = td.tensor(x, dtype=x.dtype), torch.tensor(x)
    for _ in range(steps):
        for model, o, xs, lib_ce, ys in ((ours, opt, xo, F.cross_entropy, td.tensor(y)),
                                         (theirs, topt, xt, torch.nn.functional.cross_entropy,
                                          torch.tensor(y))):
            o.zero_grad()
            lib_ce(model(xs), ys).backward()
            o.step()
        for s in list(sched) + list(tsched):
            s.step()


def test_shared_layer_under_sgd_with_momentum_matches_torch():
    td.manual_seed(0)
    torch.manual_seed(0)
    lin, tlin = nn.Linear(4, 4), torch.nn.Linear(4, 4).double()
    ours = nn.Sequential(lin, nn.ReLU(), lin, nn.ReLU(), nn.Linear(4, 3))
    theirs = torch.nn.Sequential(tlin, torch.nn.ReLU(), tlin, torch.nn.ReLU(),
                                 torch.nn.Linear(4, 3).double())
    _copy_from_torch(ours.double(), theirs)
    assert len(ours.parameters()) == len(list(theirs.parameters())) == 4
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    rng = np.random.default_rng(0)
    _train_both(ours, theirs, opt, topt, rng.standard_normal((8, 4)), rng.integers(0, 3, 8), 6)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_casts_inside_a_graph_train_every_layer_like_torch():
    """float32 layer -> .double() -> float64 layer -> .float() -> loss: every layer trains."""
    td.manual_seed(1)
    torch.manual_seed(1)
    a, b = nn.Linear(3, 5), nn.Linear(5, 2)
    b.weight, b.bias = nn.Parameter(b.weight.double()), nn.Parameter(b.bias.double())
    ta, tb = torch.nn.Linear(3, 5), torch.nn.Linear(5, 2).double()
    for (p, q) in ((a, ta), (b, tb)):
        p.weight.data[...], p.bias.data[...] = q.weight.detach().numpy(), q.bias.detach().numpy()

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, x):
            return self.b(F.relu(self.a(x)).double()).float()

    theirs = lambda x: tb(torch.relu(ta(x)).double()).float()  # noqa: E731
    ours = Ours()
    opt = optim.SGD(ours.parameters(), lr=0.2, momentum=0.5)
    topt = torch.optim.SGD(list(ta.parameters()) + list(tb.parameters()), lr=0.2, momentum=0.5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    before = a.weight.numpy().copy()
    _train_both(ours, theirs, opt, topt, x, rng.integers(0, 2, 6), 4)
    assert not np.allclose(a.weight.numpy(), before)            # the first layer trained
    assert a.weight.dtype == np.float32 and b.weight.dtype == np.float64
    for p, q in zip(ours.parameters(), list(ta.parameters()) + list(tb.parameters())):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernels", ["cpu", "reference"])
def test_param_groups_and_chained_schedulers_over_many_steps_match_torch(kernels):
    backends.use_cpu_kernels(kernels)
    try:
        td.manual_seed(2)
        torch.manual_seed(2)
        ours = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        theirs = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
        _copy_from_torch(ours.double(), theirs)

        def groups(m):
            ps = list(m.parameters())
            return [{"params": ps[:2], "lr": 0.05, "momentum": 0.9, "nesterov": True},
                    {"params": ps[2:3], "momentum": 0.8, "dampening": 0.25, "weight_decay": 1e-2},
                    {"params": ps[3:]}]
        opt = optim.SGD(groups(ours), lr=0.1)
        topt = torch.optim.SGD(groups(theirs), lr=0.1)
        sched = [optim.StepLR(opt, step_size=3, gamma=0.5), optim.ExponentialLR(opt, gamma=0.9)]
        tsched = [torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.5),
                  torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.9)]
        rng = np.random.default_rng(2)
        x, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
        for epoch in range(4):
            _train_both(ours, theirs, opt, topt, x, y, 2, sched, tsched)
            assert [g["lr"] for g in opt.param_groups] == pytest.approx(
                [g["lr"] for g in topt.param_groups], rel=1e-12)
            assert sched[1].get_last_lr() == pytest.approx(tsched[1].get_last_lr(), rel=1e-12)
        for p, q in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-9, atol=1e-12)
        # a checkpoint of the optimizer resumes the same run
        saved, tsaved = opt.state_dict(), topt.state_dict()
        for i, s in saved["state"].items():
            np.testing.assert_allclose(s["momentum_buffer"], tsaved["state"][i]["momentum_buffer"].numpy(),
                                       rtol=1e-9, atol=1e-12)
    finally:
        backends.use_cpu_kernels("cpu")
