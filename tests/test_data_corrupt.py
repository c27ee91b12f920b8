"""Zhang et al.'s corruptions: each one's defining property, checked statistically."""
import numpy as np
import pytest

from tinydeep.data import KINDS, corrupt


def unique_images(n, c=1, h=6, w=5, seed=0):
    """Images whose pixel values are all distinct, so a permutation can be read back."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n * c * h * w).reshape(n, c, h, w).astype(np.float32), rng.integers(0, 10, n)


def permutation_of(before, after):
    """The p with after.flat = before.flat[p], for one image whose values are distinct."""
    lookup = {v: i for i, v in enumerate(before.ravel())}
    return np.array([lookup[v] for v in after.ravel()])


def test_true_changes_nothing():
    x, y = unique_images(5)
    x2, y2 = corrupt(x, y, "true")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_random_labels_are_uniform_and_ignore_the_old_ones():
    n, k = 50_000, 10
    y = np.zeros(n, np.int64)                 # all the same: the new ones must not be
    _, y2 = corrupt(np.zeros((n, 3)), y, "random_labels", seed=1, num_classes=k)
    counts = np.bincount(y2, minlength=k)
    chi2 = ((counts - n / k) ** 2 / (n / k)).sum()
    assert chi2 < 33.7                        # 99.99 % quantile of χ²(9)
    assert y2.dtype == y.dtype


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_partial_labels_change_a_fraction_p_times_k_minus_1_over_k(p):
    # each label is redrawn with probability p among all K classes, so it actually
    # changes with probability q = p(K − 1)/K; the count is Binomial(n, q)
    n, k = 40_000, 10
    rng = np.random.default_rng(3)
    y = rng.integers(0, k, n)
    _, y2 = corrupt(np.zeros((n, 2)), y, "partial_labels", p=p, seed=5)
    q = p * (k - 1) / k
    changed = (y2 != y).mean()
    assert abs(changed - q) <= 4 * np.sqrt(q * (1 - q) / n) + 1e-12
    # the replaced ones are uniform: among the changed, every other class equally likely
    if p > 0:
        moved = (y2[y2 != y] - y[y2 != y]) % k
        counts = np.bincount(moved, minlength=k)[1:]
        expected = counts.sum() / (k - 1)
        assert ((counts - expected) ** 2 / expected).sum() < 31.8   # χ²(8), 99.99 %


def test_partial_labels_with_p_1_are_random_labels():
    y = np.random.default_rng(0).integers(0, 10, 1000)
    a = corrupt(np.zeros((1000, 1)), y, "partial_labels", p=1.0, seed=9)[1]
    b = corrupt(np.zeros((1000, 1)), y, "random_labels", seed=9)[1]
    np.testing.assert_array_equal(a, b)


def test_shuffled_pixels_is_one_permutation_shared_by_train_and_test():
    train, ytr = unique_images(20, seed=1)
    test, yte = unique_images(7, seed=2)
    a, ya = corrupt(train, ytr, "shuffled_pixels", seed=42)
    b, _ = corrupt(test, yte, "shuffled_pixels", seed=42)
    perms = [permutation_of(u, v) for u, v in zip(np.concatenate([train, test]), np.concatenate([a, b]))]
    assert all(np.array_equal(p, perms[0]) for p in perms)
    assert sorted(perms[0]) == list(range(30)) and not np.array_equal(perms[0], np.arange(30))
    np.testing.assert_array_equal(ya, ytr)
    other = corrupt(train, ytr, "shuffled_pixels", seed=43)[0]
    assert not np.array_equal(other, a)


def test_random_pixels_is_a_new_permutation_per_image():
    x, y = unique_images(30, seed=3)
    x2, _ = corrupt(x, y, "random_pixels", seed=1)
    perms = np.array([permutation_of(u, v) for u, v in zip(x, x2)])
    assert all(sorted(p) == list(range(30)) for p in perms)
    assert len({p.tobytes() for p in perms}) == 30
    np.testing.assert_array_equal(np.sort(x2.reshape(30, -1), 1), np.sort(x.reshape(30, -1), 1))


@pytest.mark.parametrize("kind", ["shuffled_pixels", "random_pixels"])
def test_pixel_permutations_keep_a_pixels_channels_together(kind):
    x, y = unique_images(4, c=3, h=4, w=4, seed=5)
    x2, _ = corrupt(x, y, kind, seed=0)
    for u, v in zip(x, x2):
        pixels = {tuple(u[:, i, j]) for i in range(4) for j in range(4)}
        assert {tuple(v[:, i, j]) for i in range(4) for j in range(4)} == pixels


def test_flat_inputs_are_permuted_over_features():
    x = np.random.default_rng(0).random((5, 12)).astype(np.float32)
    x2, _ = corrupt(x, np.zeros(5, int), "random_pixels", seed=0)
    np.testing.assert_array_equal(np.sort(x2, 1), np.sort(x, 1))
    assert not np.array_equal(x2, x)


def test_gaussian_matches_mean_and_variance_not_content():
    rng = np.random.default_rng(0)
    x = (rng.random((500, 1, 8, 8)) ** 3).astype(np.float32)
    x2, _ = corrupt(x, np.zeros(500, int), "gaussian", seed=2)
    assert x2.shape == x.shape and x2.dtype == np.float32
    assert abs(x2.mean() - x.mean()) < 0.01 and abs(x2.std() - x.std()) < 0.01
    assert abs(np.corrcoef(x.ravel(), x2.ravel())[0, 1]) < 0.02
    # Gaussian, not the data's skewed histogram
    z = (x2 - x2.mean()) / x2.std()
    assert abs((z ** 3).mean()) < 0.05 and abs((z ** 4).mean() - 3) < 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_result_and_inputs_untouched(kind):
    x, y = unique_images(10, seed=8)
    x0, y0 = x.copy(), y.copy()
    a = corrupt(x, y, kind, p=0.5, seed=3)
    b = corrupt(x, y, kind, p=0.5, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("args", [dict(kind="blur"), dict(kind="partial_labels", p=1.5),
                                  dict(kind="partial_labels", p=-0.1), dict(kind="true", p=float("nan")),
                                  dict(kind="random_labels", y=np.zeros(3, int)),
                                  dict(kind="random_labels", num_classes=2)])
def test_bad_arguments(args):
    x, y = unique_images(4)
    y = args.pop("y", y)
    with pytest.raises(ValueError):
        corrupt(x, y, **args)
