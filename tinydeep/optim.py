"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules, as in torch.optim.

An optimizer holds `param_groups`: a list of dicts, each with its 'params' and its own
hyperparameters ('lr', 'momentum', 'weight_decay', ...); a key a group leaves out takes
the constructor's value. The schedulers live in lr_scheduler.py (optim.lr_scheduler).
"""
import math

from . import backends
from .tensor import Elementwise, Tensor, _check_grad, _wrap, zero_grads


class Optimizer:
    """What every optimizer shares, as torch.optim.Optimizer: `param_groups` (dicts with
    'params' and the hyperparameters, a key left out taking the constructor's value),
    per-parameter `state`, zero_grad, a step that checks every parameter before it
    updates any, and state_dict/load_state_dict in PyTorch's layout. A subclass sets
    `defaults` and defines `_update(group, p, state)`."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        name = type(self).__name__
        params = list(params) if not isinstance(params, Tensor) else params
        if isinstance(params, Tensor) or not params:
            raise (TypeError if params else ValueError)(
                f"{name} needs an iterable of Tensors or of param-group dicts, got "
                + ("a Tensor (wrap it in a list)" if params else "an empty parameter list"))
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups, self.state = [], {}
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a param group must be a dict with a 'params' entry, got {group!r}")
        g = {**self.defaults, **group}
        g["params"] = [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])
        self._check_group(g, len(self.param_groups))
        seen = {id(p) for other in self.param_groups for p in other["params"]}
        if seen & {id(p) for p in g["params"]} or len({id(p) for p in g["params"]}) < len(g["params"]):
            raise ValueError(f"{name}: a parameter appears more than once (in one group or in "
                             f"two); it would be updated twice per step")
        self.param_groups.append(g)

    @property
    def lr(self):
        """The first group's rate; setting it sets every group's (code with one group)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self, set_to_none=True):
        zero_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

    def step(self):
        """Check every parameter first (its .grad's shape, dtype and device; a writable
        array), so a refusal changes nothing; then one kernel call per parameter."""
        todo = []
        for gi, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                _check_grad(p, p.grad)
                # host arrays only: a CUDA DeviceNDArray's .flags is a dict (the simulator's
                # is NumPy's), and device memory is never read-only
                if getattr(getattr(p.data, "flags", None), "writeable", True) is False:
                    raise ValueError(f"{type(self).__name__}: parameter {i} of group {gi} (shape "
                                     f"{p.shape}) is read-only (from_numpy of a read-only or "
                                     f"memory-mapped array?); make a writable copy with "
                                     f"tinydeep.tensor(...)")
                state = self.state.setdefault(p, {})   # keyed by the parameter, as PyTorch's
                if any(backends.is_device_array(v) != backends.is_device_array(p.data)
                       for v in state.values() if hasattr(v, "shape") and v.shape):
                    raise ValueError(f"{type(self).__name__}: a parameter moved to another device "
                                     f"after the optimizer took a step; create the optimizer "
                                     f"after Module.to(device)")
                todo.append((group, p, state))
        for group, p, state in todo:
            self._update(group, p, state)

    def state_dict(self):
        """PyTorch's layout: parameters named by their index over all groups; each one's
        state (buffers as NumPy copies, counts as numbers)."""
        params = [p for g in self.param_groups for p in g["params"]]
        index = {id(p): i for i, p in enumerate(params)}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {}
        for i, p in enumerate(params):
            s = {k: (backends.arrays(p.device).to_host(v).copy() if hasattr(v, "shape") else v)
                 for k, v in self.state.get(p, {}).items() if v is not None}
            if s:
                state[i] = s
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by state_dict(); the groups must have the
        same sizes, the buffers the parameters' shapes. Checked first."""
        name = type(self).__name__
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"{name}.load_state_dict: the saved param groups do not match this "
                             f"optimizer's in number or size")
        params = [p for g in self.param_groups for p in g["params"]]
        loaded = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            loaded[p] = {}
            for k, v in s.items():   # 'step' a count; every other entry a buffer like p (copied)
                if k != "step" and tuple(getattr(v, "shape", ())) != p.shape:
                    raise ValueError(f"{name}.load_state_dict: the {k} of parameter {i} has "
                                     f"shape {tuple(getattr(v, 'shape', ()))}, the parameter {p.shape}")
                loaded[p][k] = int(v) if k == "step" else Tensor(v, device=p.device, dtype=p.dtype).data
        for gi, (g, saved) in enumerate(zip(self.param_groups, groups)):
            new = {**g, **{k: v for k, v in saved.items() if k != "params"}}
            self._check_group(new, gi)
        for g, saved in zip(self.param_groups, groups):
            g.update({k: v for k, v in saved.items() if k != "params"})
        self.state = loaded

    def _check_group(self, g, gi):
        name = type(self).__name__
        where = f"{name} (param group {gi})"
        unknown = set(g) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:      # (a typo, or torch's maximize / foreach: an option this optimizer lacks)
            raise ValueError(f"{where}: unknown param-group keys {sorted(unknown)}")
        for i, p in enumerate(g["params"]):  # as PyTorch: only tensors, named by position
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} can only optimize Tensors, but params[{i}] of group "
                                f"{gi} is a {type(p).__name__}; pass model.parameters()")
            if not p.is_leaf:
                raise ValueError(f"{where}: params[{i}] is not a leaf (it was computed from others)")
        for what in self.numbers:
            v = g[what]
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
                raise TypeError(f"{where}: {what} must be a number, got {v!r}")
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{where}: {what} must be finite and >= 0, got {v!r}")


class SGD(Optimizer):
    """PyTorch's SGD, one fused kernel per parameter:
        g = ∇ + λ·p                                    (weight decay)
        v = g at the first step, then μ·v + (1 - τ)·g  (momentum buffer, dampening τ)
        g = g + μ·v  if nesterov  else  v
        p = p - lr·g
    """
    numbers = ("lr", "momentum", "dampening", "weight_decay")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, g, gi):
        super()._check_group(g, gi)
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError(f"SGD (param group {gi}): Nesterov momentum needs momentum > 0 "
                             f"and dampening 0")

    def _update(self, group, p, state):
        k, arrays = backends.get(p.device), backends.arrays(p.device)
        mom, damp = group["momentum"], group["dampening"]
        buf, grad, wd = state.get("momentum_buffer"), p.grad, group["weight_decay"]
        if mom and buf is None:       # zeros: the first step's buffer is then the gradient itself
            buf = state["momentum_buffer"] = arrays.full(p.shape, 0, p.dtype)
        elif mom and damp:            # μ·v + (1 - τ)(∇ + λp): the kernel with ∇, λ scaled
            grad, wd = k.mul_scalar(grad, 1.0 - damp), wd * (1.0 - damp)
        k.sgd_update(p.data, grad, buf, group["lr"], mom, group["nesterov"], wd)


class Adam(Optimizer):
    """Kingma & Ba 2015 as torch.optim.Adam (and AdamW, Loshchilov & Hutter 2019, with
    decoupled=True), one fused kernel per parameter (backends: adam_update):
        g = ∇ + λ·p  (Adam)            p = p·(1 - lr·λ)  (AdamW)
        m = β₁·m + (1 - β₁)·g          v = β₂·v + (1 - β₂)·g²
        p = p - lr · (m / (1 - β₁ᵗ)) / (√(v / (1 - β₂ᵗ)) + ε)
    amsgrad=True (Reddi et al. 2018) puts v̂ = max(v̂, v), the largest v so far, in place of v.
    """
    numbers = ("lr", "eps", "weight_decay")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=bool(amsgrad)))

    def _check_group(self, g, gi):
        super()._check_group(g, gi)
        b = g["betas"]
        if len(b) != 2 or not all(isinstance(v, (int, float)) and 0 <= v < 1 for v in b):
            raise ValueError(f"{type(self).__name__} (param group {gi}): betas must be two "
                             f"numbers in [0, 1), got {b!r}")

    def _update(self, group, p, state):
        k, arrays = backends.get(p.device), backends.arrays(p.device)
        if not state:
            state.update(step=0, exp_avg=arrays.full(p.shape, 0, p.dtype),
                         exp_avg_sq=arrays.full(p.shape, 0, p.dtype))
        state["step"] += 1
        if group["amsgrad"]:
            return self._amsgrad(group, p, state, k, arrays)
        k.adam_update(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                      group["lr"], *group["betas"], group["eps"], group["weight_decay"],
                      self.decoupled)

    def _amsgrad(self, group, p, state, k, arrays):
        """The step above with v̂ (state 'max_exp_avg_sq'), composed of elementwise ops, then
        applied in place by the SGD kernel: p -= u + λ'·p, λ' = lr·λ for AdamW's decay."""
        (b1, b2), lr, wd, t = group["betas"], group["lr"], group["weight_decay"], state["step"]
        vmax = state.setdefault("max_exp_avg_sq", arrays.full(p.shape, 0, p.dtype))
        g, m, v, vmax, w = (_wrap(a, p.device) for a in (p.grad, state["exp_avg"],
                                                         state["exp_avg_sq"], vmax, p.data))
        g = g if self.decoupled or not wd else g + w * wd
        m, v = m + (g - m) * (1 - b1), v * b2 + (g * g) * (1 - b2)
        vmax = Elementwise.apply(vmax, v, op="maximum")
        u = m * (lr / (1 - b1 ** t)) / (vmax.sqrt() / math.sqrt(1 - b2 ** t) + group["eps"])
        state.update(exp_avg=m.data, exp_avg_sq=v.data, max_exp_avg_sq=vmax.data)
        k.sgd_update(p.data, u.data, None, 1.0, 0.0, False, lr * wd if self.decoupled else 0.0)


class AdamW(Adam):
    """Adam with decoupled weight decay (default λ = 0.01, as PyTorch's)."""
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


from . import lr_scheduler  # noqa: E402  (torch.optim.lr_scheduler's place)
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LRScheduler,  # noqa: E402,F401
                           MultiStepLR, StepLR)
