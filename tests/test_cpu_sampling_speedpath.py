"""The Numba CPU bilinear sampler computes tap offsets (whole numbers below the
zero-framed plane's size) in the grid's dtype. float32 holds whole numbers
exactly only up to 2**24, so beyond that plane size the kernels get the grid in
float64. Check where that switch happens and that a float32 image sampled
through a float64 grid still matches the reference."""
import numpy as np

from tinydeep.backends import cpu_sampling, reference_sampling


def test_float32_grid_switches_to_float64_just_past_2_to_the_24():
    grid = np.zeros((1, 2, 2, 2), np.float32)
    pad = cpu_sampling.PAD
    side = 2 ** 12 - 2 * pad                  # framed plane 4096 x 4096 = 2**24 pixels
    assert cpu_sampling._taps_grid(grid, side, side).dtype == np.float32
    assert cpu_sampling._taps_grid(grid, side, side + 1).dtype == np.float64
    assert cpu_sampling._taps_grid(grid.astype(np.float64), side, side + 1).dtype == np.float64


def test_float32_image_through_float64_grid_matches_reference(monkeypatch):
    """The switched path (forced here at a small size): float32 image, float64
    grid, results in the image's dtype."""
    monkeypatch.setattr(cpu_sampling, "_taps_grid", lambda grid, H, W: grid.astype(np.float64))
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 2, 7, 9)).astype(np.float32)
    grid32 = rng.uniform(-1.3, 1.3, (3, 5, 6, 2)).astype(np.float32)
    grad = rng.standard_normal((3, 2, 5, 6)).astype(np.float32)
    for padding_mode, align_corners in [("zeros", False), ("border", True)]:
        expected = reference_sampling.bilinear_sample(image, grid32, padding_mode, align_corners)
        d_expected = reference_sampling.bilinear_sample_backward(image, grid32, grad,
                                                                 padding_mode, align_corners)
        out = cpu_sampling.bilinear_sample(image, grid32, padding_mode, align_corners)
        d_image, d_grid = cpu_sampling.bilinear_sample_backward(image, grid32, grad,
                                                                padding_mode, align_corners)
        for actual, want in [(out, expected), (d_image, d_expected[0]), (d_grid, d_expected[1])]:
            assert actual.dtype == np.float32 and actual.shape == want.shape
            np.testing.assert_allclose(actual, want, rtol=1e-4, atol=1e-4)
