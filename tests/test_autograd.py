"""Autograd against finite differences (float64) and closed forms."""
import numpy as np
import pytest

import tinydeep as td
from tinydeep import gradcheck
from conftest import t64


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 5), (3, 1)),
                                    ((1,), (2, 3)), ((4, 1), (1, 5))])
def test_binary_ops_with_broadcasting(kernels, rng, op, shapes):
    a = t64(rng.standard_normal(shapes[0]))
    b = t64(rng.uniform(0.5, 2.0, shapes[1]) * rng.choice([-1, 1], shapes[1]))
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    assert gradcheck(fn, [a, b])


def test_scalar_ops_and_pow(kernels, rng):
    x = t64(rng.uniform(0.5, 2.0, (3, 5)))
    assert gradcheck(lambda x: (2.0 - x) * 3.0 / 4.0 + 1.0 - (-x) ** 3 + x ** 0.5 + 1.0 / x, [x])


def test_matmul(kernels, rng):
    a, b = t64(rng.standard_normal((5, 7))), t64(rng.standard_normal((7, 3)))
    assert gradcheck(lambda a, b: a @ b, [a, b])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False),
                                           (-1, True)])
def test_sum_and_mean(kernels, rng, axis, keepdims):
    x = t64(rng.standard_normal((3, 4, 5)))
    assert gradcheck(lambda x: x.sum(axis, keepdims), [x])
    assert gradcheck(lambda x: x.mean(axis, keepdims), [x])


def test_reshape_transpose_index(kernels, rng):
    x = t64(rng.standard_normal((4, 6)))
    assert gradcheck(lambda x: x.reshape(3, 8).T * 2.0, [x])
    assert gradcheck(lambda x: x.reshape(2, 3, 4).transpose(0, 2).permute(2, 0, 1), [x])
    # repeated indices must add their gradients
    assert gradcheck(lambda x: x[np.array([0, 2, 0, 3])][:, 1:5:2], [x])


def test_gradient_accumulates_across_uses_and_calls(kernels):
    x = t64([1.0, 2.0, 3.0])
    y = (x * x + x * 3.0).sum()  # d/dx = 2x + 3
    y.backward()
    np.testing.assert_allclose(x.grad, [5.0, 7.0, 9.0])
    (x * 2.0).sum().backward()  # accumulates, like PyTorch
    np.testing.assert_allclose(x.grad, [7.0, 9.0, 11.0])



def test_each_grad_is_its_own_array(kernels):
    """backward() adopts a gradient array as .grad only when nothing else refers to it: leaves
    fed the same upstream gradient (an add passes it on to both; a reshape views it), a graph
    kept for a second backward, and .grads of earlier calls never share memory."""
    a, b, c = t64(np.ones(3)), t64(np.ones(3)), t64(np.ones((3, 1)))
    y = ((a + b) * 0.5 + c.reshape(3) * 0.5) * 2.0   # d/da = d/db = d/dc = 1
    y.sum().backward(retain_graph=True)
    grads = [a.grad, b.grad, c.grad]
    for i, g in enumerate(grads):
        for h in grads[i + 1:]:
            assert not np.shares_memory(g, h)
    a.grad[:] = 100.0                               # a user's in-place edit of one .grad ...
    np.testing.assert_array_equal(b.grad, np.ones(3))   # ... leaves the others as they were
    np.testing.assert_array_equal(c.grad, np.ones((3, 1)))
    kept_b, kept_c = b.grad, c.grad
    y.sum().backward()                              # the retained graph, once more: accumulates
    np.testing.assert_array_equal(a.grad, np.full(3, 101.0))
    np.testing.assert_array_equal(b.grad, np.full(3, 2.0))
    np.testing.assert_array_equal(kept_b, np.ones(3))   # a new array, not the earlier one changed
    np.testing.assert_array_equal(c.grad, np.full((3, 1), 2.0))
    np.testing.assert_array_equal(kept_c, np.ones((3, 1)))

def test_diamond_graph_visits_each_node_once(kernels):
    x = t64([2.0])
    a = x * 3.0
    y = a * a + a  # dy/dx = (2a + 1)·3 = 39
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [39.0])


def test_deep_chain_does_not_recurse(kernels):
    x = t64([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 5000], rtol=1e-9)


def test_no_grad_and_detach():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    with td.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y._ctx is None
    z = (x * 2.0).detach()
    assert not z.requires_grad
    assert td.is_grad_enabled()


def test_comparisons_carry_no_grad():
    x = td.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), [False, True, True])
    assert (x == td.tensor([1.0, 0.0, 3.0])).float().mean().item() == pytest.approx(2 / 3)


def test_defaults_float32_and_item():
    assert td.tensor([1, 2]).dtype == np.int64  # integer data stays integer (labels)
    assert td.tensor([1.0, 2.0]).dtype == np.float32
    assert td.tensor(np.zeros(3, np.float64)).dtype == np.float32
    assert td.tensor(np.zeros(3), dtype=np.float64).dtype == np.float64
    assert td.tensor([[3.5]]).item() == 3.5
    with pytest.raises(ValueError, match="one element"):
        td.tensor([1.0, 2.0]).item()


def test_backward_of_non_scalar_needs_a_gradient():
    x = td.tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*gradient"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_allclose(x.grad, np.ones((2, 3)))


def test_bad_inputs_raise_clear_errors():
    a, b = td.tensor(np.ones((3, 4))), td.tensor(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5, 2\)"):
        a @ b
    with pytest.raises(ValueError, match="at least 1 dimension"):   # 1-D and N-D: as torch's
        td.tensor(1.0) @ td.tensor(np.ones(3))
    with pytest.raises(ValueError, match="do not broadcast"):
        a + b
    with pytest.raises(TypeError, match="int64"):
        td.tensor([1, 2]) @ td.tensor([[1], [2]])
    with pytest.raises(TypeError, match="mixed dtypes"):
        a + td.tensor(np.ones((3, 4)), dtype=np.float64)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(5, 5)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        td.tensor([1.0], device="tpu")   # 'cuda' without a GPU: tests/test_cuda_tensor.py
    with pytest.raises(TypeError, match="require gradients"):
        td.tensor([1, 2], requires_grad=True)


def test_gradcheck_catches_a_wrong_backward():
    """The checker itself must be able to fail."""
    from tinydeep.tensor import Function

    class BadSquare(Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return (g * self.x,)  # should be 2·x·g

    x = t64([0.3, -1.2])
    with pytest.raises(AssertionError, match="finite differences"):
        gradcheck(lambda x: BadSquare.apply(x), [x])


def test_gradient_of_a_0d_leaf_is_0d():
    """d(x²)/dx = 2x for a 0-d x, and the gradient keeps the leaf's shape ()."""
    x = td.tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.shape == () and float(x.grad) == 6.0
