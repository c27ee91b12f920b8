"""Neural-network ops: gradients by finite differences (float64), values against
closed forms, and against PyTorch to 1e-5 where it is installed."""
import numpy as np
import pytest

import tinydeep as td
from tinydeep import functional as F, gradcheck
from conftest import t64


def test_relu_and_linear(kernels, rng):
    x = t64(rng.standard_normal((6, 5)) + 0.05)  # keep away from the kink at 0
    w, b = t64(rng.standard_normal((3, 5))), t64(rng.standard_normal(3))
    assert gradcheck(lambda x: F.relu(x), [x])
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])
    x3 = t64(rng.standard_normal((2, 4, 5)))
    assert gradcheck(lambda x, w: F.linear(x, w), [x3, w])


def test_softmax_family(kernels, rng):
    x = t64(rng.standard_normal((4, 6)))
    assert gradcheck(lambda x: F.log_softmax(x, dim=1), [x])
    assert gradcheck(lambda x: F.softmax(x, dim=1), [x])
    p = F.softmax(x, dim=1).numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(p), F.log_softmax(x, dim=1).numpy(), rtol=1e-10)


def test_cross_entropy_value_gradient_and_stability(kernels, rng):
    from scipy.special import logsumexp
    z = rng.standard_normal((7, 5))
    t = rng.integers(0, 5, 7)
    loss = F.cross_entropy(t64(z, grad=False), td.tensor(t)).item()
    assert loss == pytest.approx(np.mean(logsumexp(z, axis=1) - z[np.arange(7), t]), rel=1e-12)
    assert gradcheck(lambda z: F.cross_entropy(z, td.tensor(t)), [t64(z)])
    big = td.tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])  # float32; naive exp overflows
    loss = F.cross_entropy(big, td.tensor([0, 0]))
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(5000.0)


def test_mse_loss(kernels, rng):
    a, b = t64(rng.standard_normal((3, 4))), t64(rng.standard_normal((3, 4)))
    assert F.mse_loss(a, b).item() == pytest.approx(np.mean((a.data - b.data) ** 2))
    assert gradcheck(lambda a, b: F.mse_loss(a, b), [a, b])
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        F.mse_loss(a, t64(np.ones((4, 3))))


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), (1, 2), (3, 1), ((2, 1), (1, 0)),
                                            ((1, 3), (0, 2))])
def test_conv2d_gradients(kernels, rng, stride, padding):
    x = t64(rng.standard_normal((2, 3, 7, 6)))
    w = t64(rng.standard_normal((4, 3, 3, 2)))
    b = t64(rng.standard_normal(4))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), [x, w, b])


@pytest.mark.parametrize("k,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (2, 1), (1, 1)),
                                              ((3, 1), None, (1, 0))])
def test_max_pool2d_gradients(kernels, rng, k, stride, padding):
    # a permutation: all values distinct, so no window has a tie (where the gradient jumps)
    x = t64(rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 10.0)
    assert gradcheck(lambda x: F.max_pool2d(x, k, stride, padding), [x])


@pytest.mark.parametrize("args", [dict(stride=(2, 1)), dict(padding=(1, 0)),
                                  dict(stride=(1, 2), padding=(0, 2))])
def test_conv2d_rectangular_matches_torch(kernels, rng, args):
    """Issue 14 item 2: a pair used to be cut to its first element ((1,1,2,2) for (2,1))."""
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 2))
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), **args).numpy()
    got = F.conv2d(t64(x), t64(w), **args).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    conv = td.nn.Conv2d(2, 3, (3, 2), **args)
    conv.weight.data[...] = w
    got = conv(td.tensor(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(got - conv.bias.numpy()[:, None, None], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,args", [((2, 3), {}), (3, dict(stride=(2, 1), padding=(1, 0))),
                                    ((3, 2), dict(stride=1, padding=(1, 1)))])
def test_max_pool2d_rectangular_matches_torch(kernels, rng, k, args):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 2, 7, 8))
    want = torch.nn.functional.max_pool2d(torch.tensor(x), k, **args).numpy()
    np.testing.assert_array_equal(F.max_pool2d(t64(x), k, **args).numpy(), want)
    np.testing.assert_array_equal(td.nn.MaxPool2d(k, **args)(t64(x)).numpy(), want)


@pytest.mark.parametrize("call,match", [
    (lambda x, w: F.conv2d(x, w, stride=1.5), "stride must be an int or a pair"),
    (lambda x, w: F.conv2d(x, w, stride=(2, 1, 1)), "stride must be an int or a pair"),
    (lambda x, w: F.conv2d(x, w, stride=(1, 0)), "stride must be >= 1"),
    (lambda x, w: F.conv2d(x, w, padding=-1), "padding must be >= 0"),
    (lambda x, w: F.conv2d(x, w, stride=None), "stride must be an int or a pair"),
    (lambda x, w: F.max_pool2d(x, (2, 0)), "kernel_size must be >= 1"),
    (lambda x, w: F.max_pool2d(x, 2.0), "kernel_size must be an int"),
    (lambda x, w: F.max_pool2d(x, (3, 2), padding=(1, 2)), "at most half the kernel"),
    (lambda x, w: td.nn.Conv2d(1, 2, 0), "kernel_size must be >= 1"),
    (lambda x, w: td.nn.Conv2d(0, 2, 3), "in_channels must be a positive int"),
    (lambda x, w: td.nn.MaxPool2d(2, stride=True), "stride must be an int or a pair")])
def test_conv_pool_sizes_are_refused_not_truncated(call, match):
    x, w = td.tensor(np.ones((1, 1, 6, 6))), td.tensor(np.ones((1, 1, 3, 3)))
    with pytest.raises((ValueError, TypeError), match=match):
        call(x, w)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_affine_grid_and_grid_sample_gradients(kernels, rng, padding_mode, align_corners):
    image = t64(rng.standard_normal((2, 2, 5, 6)))
    theta = t64(np.array([[[0.9, 0.2, 0.1], [-0.15, 1.1, -0.05]],
                          [[1.2, -0.3, 0.2], [0.25, 0.8, 0.1]]]) + rng.uniform(-0.03, 0.03, (2, 2, 3)))

    def sample(image, theta):
        grid = F.affine_grid(theta, (2, 2, 4, 5), align_corners)
        return F.grid_sample(image, grid, padding_mode=padding_mode, align_corners=align_corners)

    assert gradcheck(sample, [image, theta], atol=1e-5, rtol=1e-4)
    # a random grid reaching outside [-1, 1], at non-integer pixel positions
    grid = t64(rng.uniform(-1.2, 1.2, (2, 3, 4, 2)))
    assert gradcheck(lambda i, g: F.grid_sample(i, g, padding_mode=padding_mode,
                                                align_corners=align_corners), [image, grid],
                     atol=1e-5, rtol=1e-4)


def test_identity_transform_reproduces_the_image(kernels, rng):
    image = td.tensor(rng.standard_normal((3, 2, 8, 9)))
    theta = td.tensor(np.tile([[1.0, 0, 0], [0, 1, 0]], (3, 1, 1)))
    for ac in (False, True):
        out = F.grid_sample(image, F.affine_grid(theta, image.shape, ac), align_corners=ac)
        np.testing.assert_allclose(out.numpy(), image.numpy(), atol=1e-5)


def test_bad_shapes_name_the_problem():
    x = td.tensor(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="grid must have shape"):
        F.grid_sample(x, td.tensor(np.zeros((2, 4, 4))))
    with pytest.raises(ValueError, match="grid must have shape"):
        F.grid_sample(x, td.tensor(np.zeros((3, 4, 4, 2))))
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(x, td.tensor(np.zeros((2, 4, 4, 2))), padding_mode="reflection")
    with pytest.raises(ValueError, match=r"theta must have shape \(N, 2, 3\)"):
        F.affine_grid(td.tensor(np.zeros((2, 3, 3))), (2, 3, 8, 8))
    with pytest.raises(ValueError, match="3 channels.*expects 4"):
        F.conv2d(x, td.tensor(np.zeros((5, 4, 3, 3))))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(td.tensor(np.zeros((3, 8, 8))), td.tensor(np.zeros((5, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        F.cross_entropy(td.tensor(np.zeros((2, 3))), td.tensor([0, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(td.tensor(np.zeros((2, 3))), td.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"does not match weight of shape \(4, 5\)"):
        F.linear(td.tensor(np.zeros((2, 3))), td.tensor(np.zeros((4, 5))))


# --- against PyTorch -----------------------------------------------------------

@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(torch.float32)


def _torch_grads(torch, fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(np.cos(np.arange(out.numel())).reshape(out.shape)))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _our_grads(fn, *arrays):
    ts = [t64(a) for a in arrays]
    out = fn(*ts)
    out.backward(np.cos(np.arange(int(np.prod(out.shape)))).reshape(out.shape))
    return out.numpy(), [t.grad for t in ts]


def _assert_same(ours, theirs, tol=1e-5):
    np.testing.assert_allclose(ours[0], theirs[0], atol=tol, rtol=tol)
    for a, b in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_grid_sample_and_affine_grid_match_torch(kernels, torch, rng, padding_mode, align_corners):
    tf = torch.nn.functional
    image = rng.standard_normal((2, 3, 9, 7))
    theta = np.array([[[0.8, 0.3, 0.2], [-0.2, 1.1, -0.1]], [[1.3, 0.0, -0.4], [0.1, 0.7, 0.3]]])
    size = (2, 3, 6, 8)
    theirs = _torch_grads(torch, lambda i, th: tf.grid_sample(
        i, tf.affine_grid(th, size, align_corners=align_corners), mode="bilinear",
        padding_mode=padding_mode, align_corners=align_corners), image, theta)
    ours = _our_grads(lambda i, th: F.grid_sample(
        i, F.affine_grid(th, size, align_corners), padding_mode=padding_mode,
        align_corners=align_corners), image, theta)
    _assert_same(ours, theirs)


def test_conv2d_and_cross_entropy_match_torch(kernels, torch, rng):
    tf = torch.nn.functional
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    _assert_same(_our_grads(lambda x, w, b: F.conv2d(x, w, b, 2, 1), x, w, b),
                 _torch_grads(torch, lambda x, w, b: tf.conv2d(x, w, b, 2, 1), x, w, b))
    z, t = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    _assert_same(_our_grads(lambda z: F.cross_entropy(z, td.tensor(t)), z),
                 _torch_grads(torch, lambda z: tf.cross_entropy(z, torch.tensor(t)), z))


def test_float32_grid_sample_matches_torch(torch, rng):
    tf = torch.nn.functional
    image = rng.standard_normal((1, 2, 16, 16)).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, (1, 5, 7, 2)).astype(np.float32)
    ref = tf.grid_sample(torch.tensor(image), torch.tensor(grid), align_corners=False).numpy()
    ours = F.grid_sample(td.tensor(image), td.tensor(grid)).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)
