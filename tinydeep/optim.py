"""Stochastic gradient descent and learning-rate schedules."""
import numpy as np

from . import backends


class SGD:
    """PyTorch's SGD (dampening 0), one fused kernel per parameter:
        g = ∇ + λ·p                  (weight decay)
        v = μ·v + g                  (momentum buffer)
        g = g + μ·v  if nesterov  else  v
        p = p - lr·g
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD got an empty parameter list")
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD needs lr, momentum, weight_decay >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.buffers = [np.zeros_like(p.data) if momentum else None for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for p, buf in zip(self.params, self.buffers):
            if p.grad is None:
                continue
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
