"""Stochastic gradient descent and learning-rate schedules."""

from . import backends


class SGD:
    """PyTorch's SGD (dampening 0), one fused kernel per parameter:
        g = ∇ + λ·p                  (weight decay)
        v = μ·v + g                  (momentum buffer)
        g = g + μ·v  if nesterov  else  v
        p = p - lr·g
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        import math
        from .tensor import Tensor
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD got an empty parameter list")
        for i, p in enumerate(self.params):  # as PyTorch: only tensors, named by position
            if not isinstance(p, Tensor):
                raise TypeError(f"SGD can only optimize Tensors, but params[{i}] is a "
                                f"{type(p).__name__}; pass model.parameters()")
        for what, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
                raise TypeError(f"SGD: {what} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"SGD: {what} must be finite, got {v!r}")
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD needs lr, momentum, weight_decay >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.buffers = [None] * len(self.params)   # momentum buffers, made at the first step

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            buf = self.buffers[i]
            if self.momentum and buf is None:      # zeros on the parameter's device
                buf = self.buffers[i] = backends.arrays(p.device).full(p.shape, 0, p.dtype)
            if buf is not None and backends.is_device_array(buf) != backends.is_device_array(p.data):
                raise ValueError("SGD: a parameter moved to another device after the optimizer "
                                 "took a step; create the optimizer after Module.to(device)")
            backends.get(p.device).sgd_update(p.data, p.grad, buf, self.lr, self.momentum,
                                              self.nesterov, self.weight_decay)


class StepLR:
    """lr = lr₀ · γ^⌊epoch / step_size⌋; call step() once per epoch."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.base_lr, self.epoch = optimizer.lr, 0

    def step(self):
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)


class ExponentialLR(StepLR):
    """lr = lr₀ · γ^epoch (Zhang et al. decay the rate by 0.95 per epoch)."""

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer, step_size=1, gamma=gamma)
