"""Check backward() against central finite differences in float64.

For f: inputs -> output and a fixed random cotangent v, backward() gives
∇ₓ ⟨v, f(x)⟩; finite differences give the same number per input element as
(⟨v, f(x + εeᵢ)⟩ - ⟨v, f(x - εeᵢ)⟩) / 2ε, with error O(ε²).
"""
import numpy as np

from .tensor import Tensor, no_grad


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0):
    """fn(*inputs) -> Tensor. Every float input that requires grad is checked; inputs
    must be float64. Returns True or raises AssertionError naming the worst element."""
    checked = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for x in checked:
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs for accurate differences, got {x.dtype}")
    for x in checked:
        x.data = np.ascontiguousarray(x.data)  # so the flat view below perturbs x itself
    out = fn(*inputs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    for x in checked:
        x.grad = None
    (out * Tensor(v, dtype=np.float64)).sum().backward()

    def project():
        with no_grad():
            return float(np.sum(v * fn(*inputs).data))

    for i, x in enumerate(checked):
        analytic = np.zeros_like(x.data) if x.grad is None else x.grad
        if analytic.shape != x.shape or analytic.dtype != x.dtype:   # (a Function's backward)
            raise AssertionError(f"gradcheck: input {i} of shape {x.shape} ({x.dtype}) got a "
                                 f"gradient of shape {analytic.shape} ({analytic.dtype})")
        numeric = np.zeros_like(x.data)
        flat = x.data.reshape(-1)  # a view: perturb in place
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            plus = project()
            flat[j] = old - eps
            minus = project()
            flat[j] = old
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            j = np.unravel_index(np.argmax(err - rtol * np.abs(numeric)), err.shape)
            raise AssertionError(f"gradcheck: input {i} of shape {x.shape}: at {j} backward gives "
                                 f"{analytic[j]:.8g}, finite differences {numeric[j]:.8g} "
                                 f"(max abs error {err.max():.3g})")
    return True
