"""DataLoader batching and determinism; RandomAffine, RandomCrop, Compose."""
import tracemalloc

import numpy as np
import pytest

from tinydeep.data import Compose, DataLoader, RandomAffine, RandomCrop


def numbered(n, d=3):
    """Row i of x holds i everywhere, so a batch tells which rows it holds."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1), np.arange(n)


def batches(loader):
    return [(xb.copy(), yb.copy()) for xb, yb in loader]


# --- DataLoader -------------------------------------------------------------------

@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (9, 3, True), (5, 8, False)])
def test_every_row_once_per_epoch(n, bs, drop):
    x, y = numbered(n)
    loader = DataLoader(x, y, batch_size=bs, shuffle=True, seed=1, drop_last=drop)
    got = batches(loader)
    assert len(got) == len(loader)
    sizes = [len(yb) for _, yb in got]
    assert all(s == bs for s in sizes[:-1]) and (sizes[-1] == bs or not drop)
    seen = np.concatenate([yb for _, yb in got])
    assert len(set(seen)) == len(seen) == (n // bs * bs if drop else n)
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0], yb)   # x and y rows stay paired


def test_same_seed_same_batches_every_epoch():
    x, y = numbered(50)
    a, b = DataLoader(x, y, 8, seed=3), DataLoader(x, y, 8, seed=3)
    first_a, first_b = batches(a), batches(b)
    second_a, second_b = batches(a), batches(b)
    for u, v in zip(first_a + second_a, first_b + second_b):
        np.testing.assert_array_equal(u[1], v[1])
    order = lambda bs: np.concatenate([yb for _, yb in bs])
    assert not np.array_equal(order(first_a), order(second_a))          # a new order each epoch
    assert not np.array_equal(order(first_a), order(batches(DataLoader(x, y, 8, seed=4))))


def test_no_shuffle_yields_views_in_order():
    x, y = numbered(10)
    got = list(DataLoader(x, y, 4, shuffle=False))
    assert [yb.tolist() for _, yb in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(np.shares_memory(xb, x) for xb, _ in got)


def test_an_epoch_never_copies_the_whole_data_set():
    x = np.zeros((20_000, 1, 28, 28), np.float32)        # 63 MB
    y = np.zeros(20_000, np.int64)
    loader = DataLoader(x, y, batch_size=256, shuffle=True, seed=0)
    tracemalloc.start()
    try:
        for _ in loader:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * x.nbytes, f"peak {peak / 1e6:.1f} MB while iterating {x.nbytes / 1e6:.0f} MB"


def test_transform_gets_the_loaders_generator():
    x = np.random.default_rng(0).random((12, 1, 6, 6)).astype(np.float32)
    y = np.arange(12)
    crop = RandomCrop(2)
    a = batches(DataLoader(x, y, 5, seed=7, transform=crop))
    b = batches(DataLoader(x, y, 5, seed=7, transform=crop))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u[0], v[0])
    assert any(not np.array_equal(xb, x[yb]) for xb, yb in a)   # it did move something


@pytest.mark.parametrize("args", [dict(y=np.zeros(4)), dict(batch_size=0), dict(batch_size=2.5),
                                  dict(batch_size="8"), dict(batch_size=True)])
def test_loader_bad_arguments(args):
    kwargs = dict(x=np.zeros((5, 2)), y=np.zeros(5)) | args
    with pytest.raises(ValueError):
        DataLoader(**kwargs)


# --- RandomAffine through the engine's affine_grid + grid_sample ---------------------

def images(n=3, c=2, h=8, w=8, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def test_identity_affine_returns_the_input():
    x = images(h=9, w=7)
    np.testing.assert_allclose(RandomAffine()(x, np.random.default_rng(0)), x, atol=1e-6)


@pytest.mark.parametrize("size", [8, 9])
def test_quarter_turn_is_rot90(size):
    # with align_corners=False, a quarter turn maps pixel centres onto pixel centres
    x = np.zeros((2, 1, size, size), np.float32)
    x[:, :, 1:4, 2:size - 2] = 1.0          # an off-centre bar and a random patch
    x[1, 0, 4:, 5:] = np.random.default_rng(1).random((size - 4, size - 5))
    out = RandomAffine(rotation=(90, 90))(x, np.random.default_rng(0))
    np.testing.assert_allclose(out, np.rot90(x, k=1, axes=(2, 3)), atol=1e-5)


def test_translation_by_whole_pixels():
    x = images(h=10, w=10)
    out = RandomAffine(translate=(0.2, 0.2))(x, np.random.default_rng(0))   # 2 px right, 2 px down
    np.testing.assert_allclose(out[:, :, 2:, 2:], x[:, :, :-2, :-2], atol=1e-5)
    assert np.abs(out[:, :, :2]).max() < 1e-6 and np.abs(out[:, :, :, :2]).max() < 1e-6


def test_shear_slides_each_row_by_its_height():
    # 45° shear about the centre of a 9×9 image: output (r, c) reads input (r, c − (r − 4))
    x = images(1, 1, 9, 9)
    out = RandomAffine(shear=(45, 45))(x, np.random.default_rng(0))[0, 0]
    for r in range(9):
        for c in range(9):
            src = c - (r - 4)
            want = x[0, 0, r, src] if 0 <= src < 9 else 0.0
            assert abs(out[r, c] - want) < 1e-5


def test_scale_about_the_centre_on_a_linear_ramp():
    # bilinear sampling reproduces a linear image exactly, so zooming by 2 about the centre
    # gives f(c + (r − c)/2) wherever the source lies inside the image
    r, c = np.indices((9, 9), dtype=np.float32)
    ramp = (0.3 * r + 0.1 * c)[None, None]
    out = RandomAffine(scale=(2, 2))(ramp, np.random.default_rng(0))[0, 0]
    np.testing.assert_allclose(out, 0.3 * (4 + (r - 4) / 2) + 0.1 * (4 + (c - 4) / 2), atol=1e-5)


def test_random_affine_matches_torch_for_the_same_theta():
    torch = pytest.importorskip("torch")
    x = images(4, 3, 12, 10)
    t = RandomAffine(rotation=30, scale=0.2, translate=0.1, shear=10)
    theta = t.thetas(4, 12, 10, np.random.default_rng(5))
    ours = t(x, np.random.default_rng(5))
    grid = torch.nn.functional.affine_grid(torch.tensor(theta), x.shape, align_corners=False)
    ref = torch.nn.functional.grid_sample(torch.tensor(x), grid, align_corners=False).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_random_affine_is_random_and_seeded():
    x = images()
    t = RandomAffine(rotation=20, translate=0.1)
    a, b = t(x, np.random.default_rng(1)), t(x, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(2)))
    assert not np.allclose(a[0], a[1]) or not np.allclose(x[0], x[1])


# --- RandomCrop, Compose ------------------------------------------------------------

def test_random_crop_is_a_shift_with_zero_fill():
    x = images(20, 1, 7, 7, seed=3)
    out = RandomCrop(2)(x, np.random.default_rng(0))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    shifts = set()
    for i in range(20):
        hits = [(t, l) for t in range(5) for l in range(5)
                if np.array_equal(out[i], padded[i, :, t:t + 7, l:l + 7])]
        assert hits, f"image {i} is no window of the padded image"
        shifts.add(hits[0])
    assert len(shifts) > 5
    np.testing.assert_array_equal(RandomCrop(0)(x, np.random.default_rng(0)), x)


def test_compose_applies_in_order():
    x = images()
    identity = Compose([RandomCrop(0), RandomAffine()])
    np.testing.assert_allclose(identity(x, np.random.default_rng(0)), x, atol=1e-6)
    shift = RandomAffine(translate=(0.25, 0.25))
    both = Compose([shift, shift])(x, np.random.default_rng(0))
    np.testing.assert_allclose(both[:, :, 4:, 4:], x[:, :, :-4, :-4], atol=1e-5)


@pytest.mark.parametrize("make", [lambda: RandomAffine(shear=90), lambda: RandomAffine(scale=(-1, 1)),
                                  lambda: RandomAffine(rotation=(10, -10)), lambda: RandomCrop(-1),
                                  lambda: RandomCrop(1.5)])
def test_bad_transform_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("t", [RandomAffine(), RandomCrop(1)])
def test_transforms_want_a_batch(t):
    with pytest.raises(ValueError, match="N, C, H, W"):
        t(np.zeros((3, 8, 8), np.float32), np.random.default_rng(0))
