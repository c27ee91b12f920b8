"""affine_grid and bilinear grid_sample kernels: the NumPy reference against
PyTorch (where installed) and against finite differences; the Numba CPU
kernels against the reference."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinydeep.backends import cpu_sampling, reference_sampling

MODULES = {"reference": reference_sampling, "cpu": cpu_sampling}
MODES = [(p, a) for p in ("zeros", "border") for a in (False, True)]


def sample_inputs(rng, shape, out_hw, dtype=np.float64, spread=1.3):
    """image (N,C,H,W), grid (N,Ho,Wo,2) in [-spread, spread], grad (N,C,Ho,Wo)."""
    N, C, _, _ = shape
    Ho, Wo = out_hw
    image = rng.standard_normal(shape).astype(dtype)
    grid = rng.uniform(-spread, spread, (N, Ho, Wo, 2)).astype(dtype)
    grad = rng.standard_normal((N, C, Ho, Wo)).astype(dtype)
    return image, grid, grad


# --------------------------------------------------------------- vs PyTorch

def torch_sample(image, grid, grad, padding_mode, align_corners):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    ti = torch.tensor(image, requires_grad=True)
    tg = torch.tensor(grid, requires_grad=True)
    out = F.grid_sample(ti, tg, mode="bilinear", padding_mode=padding_mode,
                        align_corners=align_corners)
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), ti.grad.numpy(), tg.grad.numpy()


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("padding_mode,align_corners", MODES)
@pytest.mark.parametrize("shape,out_hw", [((2, 3, 5, 7), (4, 6)), ((1, 2, 1, 4), (3, 2)),
                                          ((3, 1, 6, 1), (2, 5))])
def test_grid_sample_matches_torch(module, padding_mode, align_corners, shape, out_hw):
    pytest.importorskip("torch")
    mod = MODULES[module]
    image, grid, grad = sample_inputs(np.random.default_rng(0), shape, out_hw)
    out_t, d_image_t, d_grid_t = torch_sample(image, grid, grad, padding_mode, align_corners)
    out = mod.bilinear_sample(image, grid, padding_mode, align_corners)
    d_image, d_grid = mod.bilinear_sample_backward(image, grid, grad, padding_mode, align_corners)
    np.testing.assert_allclose(out, out_t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_image, d_image_t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_grid, d_grid_t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_grid_sample_edges_match_torch(module, padding_mode, align_corners):
    """Points exactly on pixel centres, on the image edges and just outside: the
    one-sided derivatives and the border clip's zero gradient at the edge."""
    pytest.importorskip("torch")
    mod = MODULES[module]
    rng = np.random.default_rng(1)
    W = 5
    values = np.array([-1.3, -1.0, -0.8, -0.6, -0.5, 0.0, 0.2, 0.5, 0.6, 0.8, 1.0, 1.3])
    xs, ys = np.meshgrid(values, values)
    grid = np.stack([xs, ys], axis=-1)[None]                 # (1, 12, 12, 2)
    image = rng.standard_normal((1, 2, W, W))
    grad = rng.standard_normal((1, 2) + grid.shape[1:3])
    out_t, d_image_t, d_grid_t = torch_sample(image, grid, grad, padding_mode, align_corners)
    d_image, d_grid = mod.bilinear_sample_backward(image, grid, grad, padding_mode, align_corners)
    np.testing.assert_allclose(mod.bilinear_sample(image, grid, padding_mode, align_corners),
                               out_t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_image, d_image_t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_grid, d_grid_t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_grid_sample_float32_matches_torch(module, padding_mode, align_corners):
    torch = pytest.importorskip("torch")
    mod = MODULES[module]
    image, grid, grad = sample_inputs(np.random.default_rng(2), (2, 3, 6, 5), (4, 7), np.float32)
    F = torch.nn.functional
    ti, tg = torch.tensor(image, requires_grad=True), torch.tensor(grid, requires_grad=True)
    out_t = F.grid_sample(ti, tg, padding_mode=padding_mode, align_corners=align_corners)
    out_t.backward(torch.tensor(grad))
    out = mod.bilinear_sample(image, grid, padding_mode, align_corners)
    d_image, d_grid = mod.bilinear_sample_backward(image, grid, grad, padding_mode, align_corners)
    assert out.dtype == d_image.dtype == d_grid.dtype == np.float32
    np.testing.assert_allclose(out, out_t.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(d_image, ti.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(d_grid, tg.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H,W", [(5, 7), (1, 4), (3, 1), (1, 1)])
def test_affine_grid_matches_torch(module, align_corners, dtype, H, W):
    torch = pytest.importorskip("torch")
    mod = MODULES[module]
    rng = np.random.default_rng(3)
    theta = rng.standard_normal((3, 2, 3)).astype(dtype)
    grad = rng.standard_normal((3, H, W, 2)).astype(dtype)
    tt = torch.tensor(theta, requires_grad=True)
    with warnings.catch_warnings():   # PyTorch warns about unit-size grids; not our concern
        warnings.simplefilter("ignore")
        grid_t = torch.nn.functional.affine_grid(tt, (3, 1, H, W), align_corners=align_corners)
    grid_t.backward(torch.tensor(grad))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    grid = mod.affine_grid(theta, H, W, align_corners)
    d_theta = mod.affine_grid_backward(grad, align_corners)
    assert grid.dtype == d_theta.dtype == dtype
    np.testing.assert_allclose(grid, grid_t.detach().numpy(), atol=tol)
    np.testing.assert_allclose(d_theta, tt.grad.numpy(), atol=tol * 10)


# ------------------------------------------------------ finite differences

def fd_points(rng, N, Ho, Wo, H, W, align_corners):
    """A grid whose pixel coordinates are k + f, k in [-2, size], f in [0.2, 0.8]:
    away from the integers where the bilinear derivative is one-sided, and
    going outside the image on both sides."""
    def normalized(size, shape):
        p = rng.integers(-2, size + 1, shape) + rng.uniform(0.2, 0.8, shape)
        if align_corners:
            return p / ((size - 1) / 2) - 1 if size > 1 else np.zeros(shape)
        return (2 * p + 1) / size - 1
    return np.stack([normalized(W, (N, Ho, Wo)), normalized(H, (N, Ho, Wo))], axis=-1)


def central_difference(f, x, eps=1e-6):
    d = np.zeros_like(x)
    flat, dflat = x.reshape(-1), d.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        dflat[i] = (plus - minus) / (2 * eps)
    return d


@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_reference_backward_matches_finite_differences(padding_mode, align_corners):
    rng = np.random.default_rng(4)
    N, C, H, W, Ho, Wo = 2, 3, 4, 5, 3, 4
    image = rng.standard_normal((N, C, H, W))
    grid = fd_points(rng, N, Ho, Wo, H, W, align_corners)
    v = rng.standard_normal((N, C, Ho, Wo))
    R = reference_sampling

    def loss():
        return float(np.sum(v * R.bilinear_sample(image, grid, padding_mode, align_corners)))
    d_image, d_grid = R.bilinear_sample_backward(image, grid, v, padding_mode, align_corners)
    np.testing.assert_allclose(d_image, central_difference(loss, image), atol=1e-7)
    np.testing.assert_allclose(d_grid, central_difference(loss, grid), atol=1e-6)
    assert np.abs(d_grid).max() > 0.1                    # the test is not vacuous


@pytest.mark.parametrize("align_corners", [False, True])
def test_reference_affine_grid_backward_matches_finite_differences(align_corners):
    rng = np.random.default_rng(5)
    theta = rng.standard_normal((2, 2, 3))
    v = rng.standard_normal((2, 4, 5, 2))
    R = reference_sampling

    def loss():
        return float(np.sum(v * R.affine_grid(theta, 4, 5, align_corners)))
    np.testing.assert_allclose(R.affine_grid_backward(v, align_corners),
                               central_difference(loss, theta), atol=1e-7)


# -------------------------------------------------------- cpu vs reference

def assert_close(actual, expected, dtype):
    assert actual.dtype == dtype and actual.shape == expected.shape
    if dtype == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
    else:  # the Numba kernels work in float64 inside, the reference in float32
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def check_cpu_against_reference(image, grid, grad, padding_mode, align_corners):
    dtype = image.dtype
    R, C = reference_sampling, cpu_sampling
    assert_close(C.bilinear_sample(image, grid, padding_mode, align_corners),
                 R.bilinear_sample(image, grid, padding_mode, align_corners), dtype)
    for actual, expected in zip(
            C.bilinear_sample_backward(image, grid, grad, padding_mode, align_corners),
            R.bilinear_sample_backward(image, grid, grad, padding_mode, align_corners)):
        assert_close(actual, expected, dtype)


def check_affine_against_reference(theta, grad_grid, align_corners):
    dtype = theta.dtype
    H, W = grad_grid.shape[1:3]
    R, C = reference_sampling, cpu_sampling
    assert_close(C.affine_grid(theta, H, W, align_corners),
                 R.affine_grid(theta, H, W, align_corners), dtype)
    assert_close(C.affine_grid_backward(grad_grid, align_corners),
                 R.affine_grid_backward(grad_grid, align_corners), dtype)


SHAPES = [  # (N, C, H, W), (Ho, Wo)
    ((1, 1, 1, 1), (1, 1)), ((1, 1, 1, 6), (2, 3)), ((1, 2, 5, 1), (3, 2)),
    ((1, 3, 6, 7), (9, 4)), ((2, 1, 4, 4), (4, 4)), ((3, 2, 5, 3), (1, 7)),
    ((9, 4, 3, 5), (6, 2)),            # N above the thread count: one band per sample
    ((2, 3, 4, 5), (3, 0)), ((1, 2, 3, 3), (0, 4)),                  # empty grids
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding_mode,align_corners", MODES)
@pytest.mark.parametrize("shape,out_hw", SHAPES)
def test_cpu_matches_reference(dtype, padding_mode, align_corners, shape, out_hw):
    rng = np.random.default_rng(6)
    image, grid, grad = sample_inputs(rng, shape, out_hw, dtype)
    check_cpu_against_reference(image, grid, grad, padding_mode, align_corners)
    theta = rng.standard_normal((shape[0], 2, 3)).astype(dtype)
    check_affine_against_reference(theta, grid, align_corners)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_cpu_matches_reference_on_non_contiguous_inputs(dtype, padding_mode, align_corners):
    rng = np.random.default_rng(7)
    image = rng.standard_normal((3, 4, 8, 6)).astype(dtype).transpose(0, 1, 3, 2)[:, ::2]
    grid = rng.uniform(-1.3, 1.3, (3, 5, 4, 2)).astype(dtype).transpose(0, 2, 1, 3)[..., ::-1]
    grad = rng.standard_normal((3, 2, 4, 10)).astype(dtype)[..., ::2]
    assert not (image.flags.c_contiguous or grid.flags.c_contiguous or grad.flags.c_contiguous)
    check_cpu_against_reference(image, grid, grad, padding_mode, align_corners)
    theta = rng.standard_normal((2, 3, 3)).astype(dtype).transpose(0, 2, 1)[:, :2]
    check_affine_against_reference(theta, grid, align_corners)


@pytest.mark.parametrize("split", [(1, 1), (1, 7), (2, 3), (3, 1), (4, 9)])
def test_cpu_work_split_does_not_change_results(monkeypatch, split):
    """Bands per sample S and chunks of work items normally follow the thread
    count; force each combination, so every path runs on any machine."""
    monkeypatch.setattr(cpu_sampling, "_work_split", lambda N: split)
    rng = np.random.default_rng(10)
    for shape, out_hw in [((1, 2, 5, 6), (7, 3)), ((3, 1, 4, 4), (2, 5))]:
        image, grid, grad = sample_inputs(rng, shape, out_hw)
        check_cpu_against_reference(image, grid, grad, "zeros", False)
        check_cpu_against_reference(image, grid, grad, "border", True)


@settings(deadline=None, max_examples=20)
@given(N=st.integers(1, 4), C=st.integers(1, 4), H=st.integers(1, 6), W=st.integers(1, 6),
       Ho=st.integers(1, 6), Wo=st.integers(1, 6), mode=st.sampled_from(MODES),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**31))
def test_cpu_matches_reference_on_random_shapes(N, C, H, W, Ho, Wo, mode, dtype, seed):
    rng = np.random.default_rng(seed)
    image, grid, grad = sample_inputs(rng, (N, C, H, W), (Ho, Wo), dtype)
    check_cpu_against_reference(image, grid, grad, *mode)
    theta = rng.standard_normal((N, 2, 3)).astype(dtype)
    check_affine_against_reference(theta, grid, mode[1])


@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_cpu_far_outside_and_nan_grid_points(padding_mode, align_corners):
    """Coordinates far outside the image must not index out of bounds (the
    kernels convert them to integers), and a NaN coordinate gives NaN."""
    rng = np.random.default_rng(9)
    image = rng.standard_normal((1, 2, 3, 4))
    far = np.array([[[[1e30, 0.0], [-1e30, 2e9], [0.3, -7e12], [-3e9, 1e20]]]])
    grad = rng.standard_normal((1, 2, 1, 4))
    check_cpu_against_reference(image, far, grad, padding_mode, align_corners)
    nan = np.array([[[[np.nan, 0.5], [0.2, np.nan]]]])
    out = cpu_sampling.bilinear_sample(image, nan, padding_mode, align_corners)
    d_image, d_grid = cpu_sampling.bilinear_sample_backward(image, nan, grad[..., :2],
                                                            padding_mode, align_corners)
    assert np.isnan(out).all() and d_image.shape == image.shape


@pytest.mark.parametrize("module", MODULES)
def test_bad_padding_mode_raises(module):
    mod = MODULES[module]
    image, grid, grad = sample_inputs(np.random.default_rng(8), (1, 1, 3, 3), (2, 2))
    with pytest.raises(ValueError, match="zeros.*border"):
        mod.bilinear_sample(image, grid, "reflection", False)
    with pytest.raises(ValueError, match="zeros.*border"):
        mod.bilinear_sample_backward(image, grid, grad, "nearest", True)
