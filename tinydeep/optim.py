"""Stochastic gradient descent and learning-rate schedules, as in torch.optim.

An optimizer holds `param_groups`: a list of dicts, each with its 'params' and its own
hyperparameters ('lr', 'momentum', 'dampening', 'weight_decay', 'nesterov'); a key a
group leaves out takes the constructor's value. Schedulers change a group's 'lr' in
place and are chainable: each step multiplies the current rate by a factor, so a rate
the user set by hand, or another scheduler's change, is kept.
"""
import math

from . import backends
from .tensor import Tensor, _check_grad

HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")


class SGD:
    """PyTorch's SGD, one fused kernel per parameter:
        g = ∇ + λ·p                                    (weight decay)
        v = g at the first step, then μ·v + (1 - τ)·g  (momentum buffer, dampening τ)
        g = g + μ·v  if nesterov  else  v
        p = p - lr·g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        self.defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                             weight_decay=weight_decay, nesterov=nesterov)
        params = list(params) if not isinstance(params, Tensor) else params
        if isinstance(params, Tensor) or not params:
            raise (TypeError if params else ValueError)(
                "SGD needs an iterable of Tensors or of param-group dicts, got "
                + ("a Tensor (wrap it in a list)" if params else "an empty parameter list"))
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups, self.state = [], {}
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"SGD: a param group must be a dict with a 'params' entry, got {group!r}")
        unknown = set(group) - set(HYPERPARAMETERS) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"SGD: unknown param-group keys {sorted(unknown)}")
        g = {**self.defaults, **group}
        g["params"] = [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])
        _check_group(g, len(self.param_groups))
        seen = {id(p) for other in self.param_groups for p in other["params"]}
        if seen & {id(p) for p in g["params"]} or len({id(p) for p in g["params"]}) < len(g["params"]):
            raise ValueError("SGD: a parameter appears more than once (in one group or in two); "
                             "it would be updated twice per step")
        self.param_groups.append(g)

    @property
    def lr(self):
        """The first group's rate; setting it sets every group's (code with one group)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self):
        """Check every parameter first (its .grad's shape, dtype and device; a writable
        array), so a refusal changes nothing; then one kernel call per parameter."""
        todo = []
        for gi, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                _check_grad(p, p.grad)
                # (host arrays only: a CUDA device array's .flags is a dict, and never read-only)
                if getattr(getattr(p.data, "flags", None), "writeable", True) is False:
                    raise ValueError(f"SGD: parameter {i} of group {gi} (shape {p.shape}) is "
                                     f"read-only (from_numpy of a read-only or memory-mapped "
                                     f"array?); make a writable copy with tinydeep.tensor(...)")
                todo.append((group, p))
        for group, p in todo:
            self._update(group, p)

    def _update(self, group, p):
        k, arrays = backends.get(p.device), backends.arrays(p.device)
        mom, damp = group["momentum"], group["dampening"]
        state = self.state.setdefault(id(p), {})
        buf, grad, wd = state.get("momentum_buffer"), p.grad, group["weight_decay"]
        if buf is not None and backends.is_device_array(buf) != backends.is_device_array(p.data):
            raise ValueError("SGD: a parameter moved to another device after the optimizer "
                             "took a step; create the optimizer after Module.to(device)")
        if mom and buf is None:       # zeros: the first step's buffer is then the gradient itself
            buf = state["momentum_buffer"] = arrays.full(p.shape, 0, p.dtype)
        elif mom and damp:            # μ·v + (1 - τ)(∇ + λp): the kernel with ∇, λ scaled
            grad, wd = k.mul_scalar(grad, 1.0 - damp), wd * (1.0 - damp)
        k.sgd_update(p.data, grad, buf, group["lr"], mom, group["nesterov"], wd)

    def state_dict(self):
        """PyTorch's layout: parameters named by their index over all groups; momentum
        buffers as NumPy copies."""
        params = [p for g in self.param_groups for p in g["params"]]
        index = {id(p): i for i, p in enumerate(params)}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {}
        for i, p in enumerate(params):
            buf = self.state.get(id(p), {}).get("momentum_buffer")
            if buf is not None:
                state[i] = {"momentum_buffer": backends.arrays(p.device).to_host(buf).copy()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and momentum buffers saved by state_dict(); the groups
        must have the same sizes, the buffers the parameters' shapes. Checked first."""
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("SGD.load_state_dict: the saved param groups do not match this "
                             "optimizer's in number or size")
        params = [p for g in self.param_groups for p in g["params"]]
        buffers = {}
        for i, s in state_dict["state"].items():
            b = s.get("momentum_buffer")
            if b is not None and tuple(b.shape) != params[int(i)].shape:
                raise ValueError(f"SGD.load_state_dict: the momentum buffer of parameter {i} has "
                                 f"shape {tuple(b.shape)}, the parameter {params[int(i)].shape}")
            p = params[int(i)]
            buffers[id(p)] = Tensor(b, device=p.device, dtype=p.dtype).data
        for g, saved in zip(self.param_groups, groups):
            new = {**g, **{k: v for k, v in saved.items() if k != "params"}}
            _check_group(new, self.param_groups.index(g))
            g.update(new)
        self.state = {pid: {"momentum_buffer": b} for pid, b in buffers.items()}


def _check_group(g, gi):
    where = f"SGD (param group {gi})"
    for i, p in enumerate(g["params"]):  # as PyTorch: only tensors, named by position
        if not isinstance(p, Tensor):
            raise TypeError(f"SGD can only optimize Tensors, but params[{i}] of group {gi} is "
                            f"a {type(p).__name__}; pass model.parameters()")
        if not p.is_leaf:
            raise ValueError(f"{where}: params[{i}] is not a leaf (it was computed from others)")
    for what in ("lr", "momentum", "dampening", "weight_decay"):
        v = g[what]
        if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
            raise TypeError(f"{where}: {what} must be a number, got {v!r}")
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{where}: {what} must be finite and >= 0, got {v!r}")
    if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
        raise ValueError(f"{where}: Nesterov momentum needs momentum > 0 and dampening 0")


class LRScheduler:
    """Chainable, as PyTorch's: each step() sets every group's lr from its current value
    (`_factor` says by what), so changes made by hand or by another scheduler are kept.
    base_lrs are the groups' 'initial_lr' (their lr when the first scheduler was made)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def step(self):
        self.last_epoch += 1
        f = self._factor()
        for g in self.optimizer.param_groups:
            g["lr"] = g["lr"] * f
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state):
        self.__dict__.update(state)


def _positive(name, what, v, integer=False):
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or not v > 0:
        raise ValueError(f"{name}: {what} must be a positive {'int' if integer else 'number'}, "
                         f"got {v!r}")
    return v


class StepLR(LRScheduler):
    """lr ← lr·γ every `step_size` steps; call step() once per epoch."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _positive("StepLR", "step_size", step_size, integer=True)
        self.gamma = _positive("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def _factor(self):
        return self.gamma if self.last_epoch > 0 and self.last_epoch % self.step_size == 0 else 1.0


class ExponentialLR(LRScheduler):
    """lr ← lr·γ at every step (Zhang et al. decay the rate by 0.95 per epoch)."""

    def __init__(self, optimizer, gamma):
        self.gamma = _positive("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)

    def _factor(self):
        return self.gamma if self.last_epoch > 0 else 1.0
