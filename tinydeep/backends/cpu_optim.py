"""The optimizers' in-place updates on the CPU, a `prange` loop over the flat parameter
(PyTorch's rules: base.Backend.sgd_update / adam_update). Adam's step of one element,
`adam_at`, is the GPU's too; it sits beside the cached loop that inlines it because
Numba's on-disk cache notices edits to that loop's own file only.
"""
import math

import numpy as np
from numba import njit, prange

from .reference import need_sgd_buffer


@njit(parallel=True, cache=True)
def _sgd_kernel(param, grad, buf, lr, momentum, nesterov, weight_decay):
    # g = grad + λ·param;  buf = μ·buf + g;  g = g + μ·buf (nesterov) or buf;  param -= lr·g
    # (the momentum lines only when μ ≠ 0), one element per iteration, in place.
    for i in prange(param.size):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        if momentum != 0:
            v = momentum * buf[i] + g
            buf[i] = v
            g = g + momentum * v if nesterov else v
        param[i] -= lr * g


def sgd_update(param, grad, buf, lr, momentum, nesterov, weight_decay):
    need_sgd_buffer(buf, momentum)
    # The kernel updates flat C-contiguous arrays in place; other layouts go through a copy.
    p = np.asarray(param, order="C")
    v = np.empty(0, dtype=param.dtype) if buf is None else np.asarray(buf, order="C")
    t = param.dtype.type
    _sgd_kernel(p.reshape(-1), np.ascontiguousarray(grad).reshape(-1), v.reshape(-1), t(lr), t(momentum),
                bool(nesterov), t(weight_decay))
    if p is not param:
        param[...] = p
    if buf is not None and v is not buf:
        buf[...] = v


def adam_at(i, param, grad, m, v, decay, wd, b1c, b2, b2c, step, bc2s, eps):
    """One Adam/AdamW step of element i, in place: the CPU's and the GPU's update loop.
    g = grad + λ·p (Adam; λ = 0 for AdamW);  p·decay (AdamW: 1 - lr·λ; Adam: 1);
    m += (1-β₁)(g - m);  v = β₂·v + (1-β₂)·g²;  p -= step · m / (√v / √(1-β₂ᵗ) + ε)."""
    p = param[i]
    g = grad[i] + wd * p if wd != 0 else grad[i]
    mi = m[i] + b1c * (g - m[i])
    vi = b2 * v[i] + b2c * g * g
    m[i] = mi
    v[i] = vi
    param[i] = p * decay - step * (mi / (math.sqrt(vi) / bc2s + eps))


def adam_constants(t, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """adam_at's (decay, wd, b1c, b2, b2c, step, bc2s, eps) in the parameter's dtype t."""
    decay, wd = (1.0 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    return (t(decay), t(wd), t(1.0 - beta1), t(beta2), t(1.0 - beta2),
            t(lr / (1.0 - beta1 ** step)), t(math.sqrt(1.0 - beta2 ** step)), t(eps))


_adam_at = njit(inline="always")(adam_at)


@njit(parallel=True, cache=True)
def _adam_kernel(param, grad, m, v, decay, wd, b1c, b2, b2c, step, bc2s, eps):
    for i in prange(param.size):
        _adam_at(i, param, grad, m, v, decay, wd, b1c, b2, b2c, step, bc2s, eps)


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                decoupled):
    arrays = [np.asarray(a, order="C") for a in (param, exp_avg, exp_avg_sq)]
    _adam_kernel(arrays[0].reshape(-1), np.ascontiguousarray(grad).reshape(-1),
                 *(a.reshape(-1) for a in arrays[1:]),
                 *adam_constants(param.dtype.type, step, lr, beta1, beta2, eps, weight_decay,
                                 decoupled))
    for a, orig in zip(arrays, (param, exp_avg, exp_avg_sq)):
        if a is not orig:   # (another layout went through a C-ordered copy)
            orig[...] = a
