"""Optimizers and schedules as torch.optim's (issue 16): Adam and AdamW (their fused
update kernel on every backend), param_groups and state_dict for every optimizer,
and the schedulers of optim.lr_scheduler, chainable, against PyTorch 2.13."""
import math

import numpy as np
import pytest

import tinydeep as td
from tinydeep import backends, optim

from test_api_tensor import device  # noqa: F401  (the backends fixture)

torch = pytest.importorskip("torch")


def _pair(shapes, device, seed=0):  # noqa: F811
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    return ([td.tensor(a, dtype=np.float64, device=device, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def _run(ours, theirs, params, tparams, steps, device, seed=1):  # noqa: F811
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p, q in zip(params, tparams):
            g = rng.standard_normal(q.shape)
            p.grad = td.tensor(g, dtype=np.float64, device=device).data
            q.grad = torch.tensor(g)
        ours.step()
        theirs.step()
    for p, q in zip(params, tparams):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, kwargs", [
    ("Adam", dict(lr=1e-2)), ("Adam", dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2)), ("AdamW", dict(lr=3e-2, weight_decay=0.5)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)), ("AdamW", dict(lr=3e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, betas=(0.0, 0.5), amsgrad=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2))])
def test_optimizer_steps_match_torch(name, kwargs, device):  # noqa: F811
    params, tparams = _pair([(3, 4), (4,), (2, 2, 2)], device)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 5e-3}]
    tgroups = [{"params": tparams[:2]}, {"params": tparams[2:], "lr": 5e-3}]
    ours, theirs = getattr(optim, name)(groups, **kwargs), getattr(torch.optim, name)(tgroups, **kwargs)
    assert [{k: v for k, v in g.items() if k not in ("params", "initial_lr")} for g in ours.param_groups] \
        == [{k: g[k] for k in ours.param_groups[i] if k not in ("params", "initial_lr")}
            for i, g in enumerate(theirs.param_groups)]
    _run(ours, theirs, params, tparams, 5, device)


def test_defaults_match_torch():
    p = [td.tensor(np.zeros(2), requires_grad=True)]
    q = [torch.zeros(2, requires_grad=True)]
    for name in ("Adam", "AdamW", "SGD"):
        ours = getattr(optim, name)(p).param_groups[0]
        theirs = getattr(torch.optim, name)(q).param_groups[0]
        for k, v in ours.items():
            if k != "params":
                assert theirs[k] == v, (name, k)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "AdamW amsgrad"])
def test_state_dict_round_trip(name, device):  # noqa: F811
    kw = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=1e-2, amsgrad="amsgrad" in name)
    name = name.split()[0]
    params, tparams = _pair([(3,), (2, 2)], device)
    ours, theirs = getattr(optim, name)(params, **kw), getattr(torch.optim, name)(tparams, **kw)
    _run(ours, theirs, params, tparams, 2, device)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for i in tsd["state"]:
        for k, v in tsd["state"][i].items():
            np.testing.assert_allclose(np.asarray(sd["state"][i][k]), v.numpy(), rtol=1e-12)
    copies = [td.tensor(p.numpy(), dtype=np.float64, device=device, requires_grad=True) for p in params]
    fresh = getattr(optim, name)(copies, lr=123.0)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == kw["lr"]
    _run(fresh, theirs, copies, tparams, 2, device, seed=7)


SCHEDULES = {
    "StepLR": lambda o, M: M.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o, M: M.MultiStepLR(o, milestones=[2, 5, 5], gamma=0.3),
    "ExponentialLR": lambda o, M: M.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o, M: M.CosineAnnealingLR(o, T_max=4, eta_min=0.01),
    "LambdaLR": lambda o, M: M.LambdaLR(o, lr_lambda=lambda e: 1 / (1 + e)),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_match_torch(name):
    ours = optim.Adam([{"params": [td.tensor([1.0], requires_grad=True)]},
                       {"params": [td.tensor([1.0], requires_grad=True)], "lr": 0.5}], lr=0.1)
    theirs = torch.optim.Adam([{"params": [torch.ones(1, requires_grad=True)]},
                               {"params": [torch.ones(1, requires_grad=True)], "lr": 0.5}], lr=0.1)
    s, t = SCHEDULES[name](ours, optim.lr_scheduler), SCHEDULES[name](theirs, torch.optim.lr_scheduler)
    for epoch in range(12):
        assert s.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-12), epoch
        if epoch == 6:          # a rate changed by hand is kept (chainable), as in PyTorch
            ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 0.05
        ours.step(), theirs.step()
        s.step(), t.step()


def test_two_schedulers_chain_like_torch():
    ours = optim.SGD([td.tensor([1.0], requires_grad=True)], lr=1.0)
    theirs = torch.optim.SGD([torch.ones(1, requires_grad=True)], lr=1.0)
    mine = [optim.lr_scheduler.ExponentialLR(ours, 0.9), optim.lr_scheduler.MultiStepLR(ours, [3], 0.1)]
    tm = [torch.optim.lr_scheduler.ExponentialLR(theirs, 0.9),
          torch.optim.lr_scheduler.MultiStepLR(theirs, [3], 0.1)]
    for _ in range(6):
        ours.step(), theirs.step()
        for a, b in zip(mine, tm):
            a.step(), b.step()
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12)
    assert math.isclose(mine[1].get_last_lr()[0], tm[1].get_last_lr()[0], rel_tol=1e-12)


def test_bad_arguments():
    p = [td.tensor([1.0], requires_grad=True)]
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(p, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="lr"):
        optim.AdamW(p, lr=-1)
    with pytest.raises(ValueError, match="T_max"):
        optim.lr_scheduler.CosineAnnealingLR(optim.SGD(p, lr=1), T_max=0)
    q = td.tensor([1.0], requires_grad=True)
    q.grad = np.ones(2)
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([q]).step()
    assert backends.get("cpu") is not None
