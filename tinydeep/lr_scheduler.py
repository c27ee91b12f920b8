"""Learning-rate schedules, as torch.optim.lr_scheduler (reached as optim.lr_scheduler).

Chainable, as PyTorch's: each step() computes every group's new lr from its current
one (`get_lr`), so a rate the user set by hand, or another scheduler's change, is
kept; LambdaLR alone sets base_lr·λ(epoch) outright, as PyTorch's does. base_lrs are
the groups' 'initial_lr' (their lr when the first scheduler was made). Call step()
once per epoch, after the optimizer's step.
"""
import math
from collections import Counter


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for i, g in enumerate(optimizer.param_groups):
            if last_epoch != -1 and "initial_lr" not in g:      # (torch: a KeyError)
                raise KeyError(f"param group {i} has no 'initial_lr' to resume last_epoch from")
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch, self._step_count = last_epoch, 0
        self.step()

    def get_lr(self):  # each schedule below defines its rule; the base has none
        raise NotImplementedError(f"{type(self).__name__} must define get_lr() (the rates "
                                  f"of this step, one per param group)")

    def _lrs(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self):
        self._step_count += 1
        self.last_epoch += 1
        lrs, groups = self.get_lr(), self.optimizer.param_groups
        if len(lrs) != len(groups):   # a group added since (torch: zip() argument 2 is shorter)
            raise ValueError(f"{type(self).__name__}: {len(lrs)} rates for {len(groups)} param groups")
        for g, lr in zip(groups, lrs):
            g["lr"] = lr
        self._last_lr = self._lrs()

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state):
        self.__dict__.update(state)


def _positive(name, what, v, integer=False):
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or not v > 0:
        raise ValueError(f"{name}: {what} must be a positive {'int' if integer else 'number'}, "
                         f"got {v!r}")
    return v


class StepLR(LRScheduler):
    """lr ← lr·γ every `step_size` steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _positive("StepLR", "step_size", step_size, integer=True)
        self.gamma = _positive("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        hit = self.last_epoch > 0 and self.last_epoch % self.step_size == 0
        return [lr * (self.gamma if hit else 1.0) for lr in self._lrs()]


class MultiStepLR(LRScheduler):
    """lr ← lr·γ at each milestone epoch (twice at a milestone named twice)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(_positive("MultiStepLR", "a milestone", m, integer=True)
                                  for m in milestones)
        self.gamma = _positive("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [lr * self.gamma ** self.milestones.get(self.last_epoch, 0) for lr in self._lrs()]


class ExponentialLR(LRScheduler):
    """lr ← lr·γ at every step (Zhang et al. decay the rate by 0.95 per epoch)."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = _positive("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [lr * (self.gamma if self._step_count > 1 else 1.0) for lr in self._lrs()]


class CosineAnnealingLR(LRScheduler):
    """η_t = η_min + (η_0 - η_min)(1 + cos(πt/T_max))/2 (Loshchilov & Hutter 2017, without
    restarts), in PyTorch's chainable form: each step rescales lr - η_min by the ratio of
    consecutive cosine terms; past T_max it climbs back, as PyTorch's does."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = _positive("CosineAnnealingLR", "T_max", T_max, integer=True)
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        if self._step_count == 1:     # the scheduler's first step, made by its constructor
            return self._lrs()        # (also when resumed at last_epoch > 0: PyTorch 2.13's)
        if (t - 1 - T) % (2 * T) == 0:  # the trough, where the ratio would be 0/0
            return [lr + (b - lo) * (1 - math.cos(math.pi / T)) / 2
                    for lr, b in zip(self._lrs(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [lo + ratio * (lr - lo) for lr in self._lrs()]


class LambdaLR(LRScheduler):
    """lr = base_lr · λ(epoch), one λ for all groups or one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(self.lr_lambdas) != n or not all(callable(f) for f in self.lr_lambdas):
            raise ValueError(f"LambdaLR: lr_lambda must be a function or a list of {n} functions")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [b * f(self.last_epoch) for b, f in zip(self.base_lrs, self.lr_lambdas)]
