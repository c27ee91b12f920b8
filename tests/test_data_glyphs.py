"""glyphs: shapes, determinism, the latent round trip, and what each latent does."""
import numpy as np
import pytest

from tinydeep.data import LATENT_NAMES, glyphs, render_glyphs


def test_shapes_dtypes_ranges():
    g = glyphs(50, seed=3)
    assert g.images.shape == (50, 1, 28, 28) and g.images.dtype == np.float32
    assert g.labels.shape == (50,) and g.labels.dtype == np.int64
    assert g.latents.shape == (50, len(LATENT_NAMES)) and g.latent_names == LATENT_NAMES
    assert 0.0 <= g.images.min() and g.images.max() <= 1.0
    assert np.bincount(g.labels, minlength=10).tolist() == [5] * 10
    assert (g.images.reshape(50, -1).max(1) > 0.9).all()  # every digit has solid ink


def test_other_sizes():
    g = glyphs(10, seed=0, size=12)
    assert g.images.shape == (10, 1, 12, 12)
    assert glyphs(0, seed=0).images.shape == (0, 1, 28, 28)


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = glyphs(30, seed=7), glyphs(30, seed=7), glyphs(30, seed=8)
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.images, c.images)


def test_latents_lie_in_the_given_ranges():
    g = glyphs(400, seed=1, rotation=(5, 10), scale=(0.9, 0.95), shift=0.02, noise=0.0)
    col = dict(zip(LATENT_NAMES, g.latents.T))
    assert col["rotation"].min() >= 5 and col["rotation"].max() <= 10
    assert col["scale"].min() >= 0.9 and col["scale"].max() <= 0.95
    assert np.abs(col["shift_x"]).max() <= 0.02 and (col["noise"] == 0).all()


def test_render_from_latents_reproduces_the_images():
    g = glyphs(40, seed=11)
    np.testing.assert_array_equal(render_glyphs(g.labels, g.latents, noise_seed=11), g.images)
    clean = glyphs(40, seed=11, noise=0.0)
    np.testing.assert_array_equal(render_glyphs(clean.labels, clean.latents), clean.images)


def _canonical(n=1):
    lat = np.zeros((n, len(LATENT_NAMES)))
    lat[:, LATENT_NAMES.index("scale")] = 1.0
    lat[:, LATENT_NAMES.index("aspect")] = 1.0
    lat[:, LATENT_NAMES.index("width")] = 0.09
    return lat


def _centroid(img):
    r, c = np.indices(img.shape)
    return np.array([(r * img).sum(), (c * img).sum()]) / img.sum()


def test_shift_moves_the_ink_by_that_many_pixels():
    lat = _canonical(2)
    lat[1, LATENT_NAMES.index("shift_x")] = 3 / 28
    lat[1, LATENT_NAMES.index("shift_y")] = -2 / 28
    img = render_glyphs([0, 0], lat)[:, 0]
    np.testing.assert_allclose(_centroid(img[1]) - _centroid(img[0]), [-2, 3], atol=0.05)


def test_rotating_a_zero_by_90_degrees_swaps_its_axes():
    # the canonical 0 is an ellipse taller than wide; turned by 90° it is wider than tall
    lat = _canonical(2)
    lat[1, 0] = 90.0
    img = render_glyphs([0, 0], lat)[:, 0]
    np.testing.assert_allclose(img[1], np.rot90(img[0]), atol=0.02)


def test_width_and_scale_increase_ink():
    lat = _canonical(3)
    lat[1, LATENT_NAMES.index("width")] = 0.14
    lat[2, LATENT_NAMES.index("scale")] = 1.2
    ink = render_glyphs([3, 3, 3], lat).sum(axis=(1, 2, 3))
    assert ink[1] > 1.3 * ink[0] and ink[2] > 1.1 * ink[0]


@pytest.mark.parametrize("width", [0.05, 0.09, 0.13])
def test_antialiased_stroke_carries_exactly_its_width_of_ink(width):
    # ink(d) = clip(w/2 + 1/2 − |d|, 0, 1) is a ramp symmetric about |d| = w/2, so across
    # a stroke it integrates to w pixels; only the ramp (≤ 2 pixels per side) is grey
    lat = _canonical()
    lat[0, LATENT_NAMES.index("width")] = width
    row = render_glyphs([1], lat)[0, 0, 16]          # the vertical stem of the 1
    assert abs(row.sum() - width * 28) < 0.02
    assert len(np.flatnonzero((row > 0.001) & (row < 0.999))) <= 4


def test_interpolating_latents_moves_smoothly():
    g = glyphs(2, seed=5, noise=0.0)
    a, b = g.latents
    path = np.array([a + t * (b - a) for t in np.linspace(0, 1, 9)])
    imgs = render_glyphs(np.full(9, g.labels[0]), path)
    steps = np.abs(np.diff(imgs, axis=0)).sum(axis=(1, 2, 3))
    assert steps.max() < 0.5 * np.abs(imgs[-1] - imgs[0]).sum()


@pytest.mark.parametrize("kwargs", [dict(size=7), dict(size=6.5), dict(n=-1), dict(scale=(0, 1)),
                                    dict(rotation=(10, 5)), dict(noise=(-0.1, 0.1))])
def test_bad_arguments(kwargs):
    args = dict(n=4, seed=0) | kwargs
    with pytest.raises(ValueError):
        glyphs(**args)


def test_render_checks_its_inputs():
    with pytest.raises(ValueError):
        render_glyphs([0, 1], _canonical(3))
    with pytest.raises(ValueError):
        render_glyphs([10], _canonical())
    with pytest.raises(ValueError):
        render_glyphs([0], _canonical(), size=4)
