"""The direct convolution rung (tinydeep/backends/cpu_conv.py) against PyTorch's conv2d
and its gradients, and against the reference backend's im2col formulation (float64)."""
import numpy as np
import pytest

from tinydeep.backends import cpu_conv
from tinydeep.backends import reference as ref

# (N, C, H, W, C_out, kh, kw, stride, padding): square and rectangular, stride > 1,
# padding wider than the kernel's half, outputs narrower than a micro-tile, C*kh*kw past KC
GEOMETRIES = [
    (3, 1, 9, 9, 4, 5, 5, (1, 1), (2, 2)),
    (2, 3, 7, 10, 5, 3, 2, (2, 1), (1, 0)),
    (2, 2, 11, 6, 3, 4, 3, (3, 2), (2, 1)),
    (1, 4, 5, 5, 33, 1, 1, (1, 1), (0, 0)),
    (2, 20, 6, 6, 13, 5, 5, (1, 1), (2, 2)),        # K = 500
    (2, 27, 6, 7, 13, 5, 5, (1, 1), (2, 2)),        # K = 675, past KC (512 here): k-blocks
    (2, 27, 9, 8, 5, 5, 5, (2, 1), (2, 2)),         # the same with stride
    (2, 2, 5, 40, 3, 3, 3, (1, 1), (1, 1)),         # rows wider than a micro-tile (40 > 32)
    (5, 2, 3, 4, 2, 3, 4, (1, 1), (0, 0)),          # a single output pixel per image
    (2, 3, 6, 6, 80, 3, 3, (1, 1), (1, 1)),         # C_out past the rows that read P in place
    # the implicit GEMM (stride 1, channels filling >= 80 % of NR- or NR/2-wide slivers; forward
    # and dx K >= 64 taps, dW kernel rows of 4, 5, 6 (one tap of 7 dropped), 7, ...):
    (2, 32, 14, 14, 64, 5, 5, (1, 1), (2, 2)),      # LeNet's second conv: rows of 7 + 7, k-blocks
    (2, 32, 5, 9, 32, 3, 3, (1, 1), (1, 1)),        # a row of 9 in a tile of 12 (3 dropped)
    (1, 32, 4, 4, 32, 3, 3, (1, 1), (3, 3)),        # padding past the kernel: dx the other rung
    (2, 16, 7, 10, 32, 3, 5, (1, 1), (1, 2)),       # rectangular; dx in half-width tiles
    (2, 8, 6, 6, 40, 3, 3, (1, 1), (1, 1)),         # 40 of 48 channels: zero-padded slivers
    (2, 4, 8, 9, 32, 2, 6, (1, 1), (0, 2)),         # dW only: kernel rows of 6 in tiles of 7
    (3, 1, 28, 28, 32, 5, 5, (1, 1), (2, 2)),       # LeNet's first conv: dW only, 784 pixels
    (2, 1, 9, 9, 16, 5, 5, (1, 1), (2, 2)),         # dW, 25 taps, 16 channels
    (2, 8, 5, 6, 8, 3, 3, (1, 1), (1, 1)),          # 8 channels: half-width tiles at float64
    (2, 32, 3, 3, 32, 5, 5, (1, 1), (1, 1)),        # one output pixel, all three implicit
]


def ids(g):
    return "N{}C{}H{}W{}O{}k{}x{}s{}p{}".format(*g[:7], "".join(map(str, g[7])),
                                                "".join(map(str, g[8])))


def reference(x, w, g, stride, padding):
    """y, dx, dw through the reference backend's im2col/col2im, in float64."""
    x, w, g = (a.astype(np.float64) for a in (x, w, g))
    N, C_out, Ho, Wo = g.shape
    kh, kw = w.shape[2:]
    cols = ref.im2col(x, kh, kw, stride, padding)
    w2 = w.reshape(C_out, -1)
    y = (cols @ w2.T).reshape(N, Ho, Wo, C_out).transpose(0, 3, 1, 2)
    g2 = g.transpose(0, 2, 3, 1).reshape(-1, C_out)
    dx = ref.col2im(g2 @ w2, x.shape, kh, kw, stride, padding)
    dw = (g2.T @ cols).reshape(w.shape)
    return y, dx, dw


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "patches"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=ids)
def test_direct_matches_the_im2col_reference(geom, dtype, implicit, rng, monkeypatch):
    monkeypatch.setattr(cpu_conv, "IMPLICIT", implicit)      # False: the patch-matrix path only
    N, C, H, W, C_out, kh, kw, stride, padding = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C_out, C, kh, kw)).astype(dtype)
    Ho = (H + 2 * padding[0] - kh) // stride[0] + 1
    Wo = (W + 2 * padding[1] - kw) // stride[1] + 1
    g = rng.standard_normal((N, C_out, Ho, Wo)).astype(dtype)
    y, dx, dw = reference(x, w, g, stride, padding)
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(C * kh * kw)) if dtype == np.float32 else \
        dict(rtol=1e-11, atol=1e-11)
    got_y = cpu_conv.conv2d_forward(x, w, stride, padding)
    assert got_y.shape == y.shape and got_y.dtype == dtype
    np.testing.assert_allclose(got_y, y, **tol)
    got_dx = cpu_conv.conv2d_backward_input(g, w, x.shape, stride, padding)
    assert got_dx.shape == x.shape and got_dx.dtype == dtype
    np.testing.assert_allclose(got_dx, dx, **tol)
    tol_w = dict(tol, atol=tol["atol"] * np.sqrt(N * Ho * Wo))
    got_dw = cpu_conv.conv2d_backward_weight(g, x, w.shape, stride, padding)
    assert got_dw.shape == w.shape and got_dw.dtype == dtype
    np.testing.assert_allclose(got_dw, dw, **tol_w)


def test_direct_matches_torch_conv2d_and_its_gradients(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 3, 12, 10))
    w = rng.standard_normal((6, 3, 5, 3))
    stride, padding = (2, 1), (2, 1)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=padding)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(cpu_conv.conv2d_forward(x, w, stride, padding),
                               ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpu_conv.conv2d_backward_input(g, w, x.shape, stride, padding),
                               tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpu_conv.conv2d_backward_weight(g, x, w.shape, stride, padding),
                               tw.grad.numpy(), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("C, C_out", [(2, 3), (16, 16)])      # the latter: implicit GEMM
def test_split_over_threads_gives_the_same_numbers(monkeypatch, rng, C, C_out):
    # one run of images per thread, dW summed over the runs: 1 and 3 "threads" agree
    x = rng.standard_normal((7, C, 6, 6))
    w = rng.standard_normal((C_out, C, 3, 3))
    g = rng.standard_normal((7, C_out, 6, 6))
    got = {}
    for t in (1, 3):
        monkeypatch.setattr(cpu_conv._mm, "_threads", lambda t=t: t)
        got[t] = (cpu_conv.conv2d_forward(x, w, (1, 1), (1, 1)),
                  cpu_conv.conv2d_backward_input(g, w, x.shape, (1, 1), (1, 1)),
                  cpu_conv.conv2d_backward_weight(g, x, w.shape, (1, 1), (1, 1)))
    for a, b in zip(got[1], got[3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_forward_adds_the_bias_per_channel(rng):
    x = rng.standard_normal((3, 2, 5, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)
    np.testing.assert_allclose(cpu_conv.conv2d_forward(x, w, (1, 1), (1, 1), bias=b),
                               cpu_conv.conv2d_forward(x, w, (1, 1), (1, 1))
                               + b[None, :, None, None], rtol=1e-13, atol=1e-13)


def test_prefer_direct_follows_the_measured_range(monkeypatch):
    monkeypatch.setattr(cpu_conv._mm, "_threads", lambda: 2)
    assert cpu_conv.prefer_direct((128, 32, 14, 14), (64, 32, 5, 5), (1, 1), (2, 2))
    assert cpu_conv.prefer_direct((128, 1, 28, 28), (32, 1, 5, 5), (1, 1), (2, 2))
    assert not cpu_conv.prefer_direct((1, 32, 14, 14), (64, 32, 5, 5), (1, 1), (2, 2))
    assert not cpu_conv.prefer_direct((128, 64, 224, 224), (64, 64, 3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradient_sums_over_batch_and_pixels(dtype, rng):
    g = rng.standard_normal((5, 3, 7, 4)).astype(dtype)
    db = cpu_conv.conv2d_backward_bias(g)
    assert db.shape == (3,) and db.dtype == dtype
    np.testing.assert_allclose(db, g.astype(np.float64).sum(axis=(0, 2, 3)),
                               rtol=1e-6 if dtype == np.float32 else 1e-13)
    empty = cpu_conv.conv2d_backward_bias(np.full((5, 3, 0, 4), np.nan, dtype))   # no pixels
    np.testing.assert_array_equal(empty, np.zeros(3, dtype))
