"""Toy sets against their closed forms, and primes against trial division."""
import math

import numpy as np
import pytest

from tinydeep.data import compositional, primes, sawtooth, spirals, split


def test_spirals_shapes_classes_and_arms():
    x, y = spirals(600, classes=3, noise=0.0, seed=1)
    assert x.shape == (600, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [200] * 3
    # noise-free: each point sits on its arm, angle = 2π(turns·r + c/classes)
    r = np.linalg.norm(x, axis=1)
    angle = np.arctan2(x[:, 1], x[:, 0])
    expected = 2 * np.pi * (1.5 * r + y / 3)
    assert np.allclose(np.cos(angle - expected), 1, atol=1e-4)
    np.testing.assert_array_equal(spirals(600, 3, seed=1)[0], spirals(600, 3, seed=1)[0])


def tent_closed_form(x, k):
    """T^k(x) = 1 − |2·frac(2^(k−1)·x) − 1| for k >= 1 (frac(1) taken as 0)."""
    z = 2.0 ** (k - 1) * x
    return 1 - np.abs(2 * (z - np.floor(z)) - 1)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_sawtooth_is_the_k_fold_tent_map(k):
    x, y = sawtooth(k, n=1001)
    assert x.shape == y.shape == (1001, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y, tent_closed_form(x.astype(np.float64), k), atol=1e-5)
    # 2^(k−1) teeth peaking at x = (2j + 1)/2^k, and 2^(k−1) + 1 zeros at x = 2j/2^k:
    # a grid of spacing 1/2^(k+2) holds them all
    x, y = sawtooth(k, n=2 ** (k + 2) + 1)
    assert np.isclose(y[:, 0], 1, atol=1e-6).sum() == 2 ** (k - 1)
    assert np.isclose(y[:, 0], 0, atol=1e-6).sum() == 2 ** (k - 1) + 1


def test_sawtooth_random_points_and_identity():
    x, y = sawtooth(4, n=500, seed=2)
    assert (x >= 0).all() and (x <= 1).all()
    np.testing.assert_allclose(y, tent_closed_form(x.astype(np.float64), 4), atol=1e-5)
    x0, y0 = sawtooth(0, n=11)
    np.testing.assert_array_equal(x0, y0)


def test_compositional_formula():
    x, y = compositional(777)
    assert x.shape == y.shape == (777, 1) and x.min() == np.float32(-np.pi)
    np.testing.assert_allclose(y, np.cos(4 * x.astype(np.float64)), atol=1e-5)
    x, y = compositional(100, seed=3)
    np.testing.assert_allclose(y, 2 * (2 * np.cos(x.astype(np.float64)) ** 2 - 1) ** 2 - 1, atol=1e-5)


def trial_division(m):
    return m >= 2 and all(m % d for d in range(2, math.isqrt(m) + 1))


def test_primes_against_trial_division():
    x, y = primes(10)
    assert x.shape == (1024, 10) and x.dtype == np.float32 and y.dtype == np.int64
    numbers = (x @ 2.0 ** np.arange(9, -1, -1)).astype(int)
    np.testing.assert_array_equal(numbers, np.arange(1024))
    assert y.tolist() == [int(trial_division(m)) for m in range(1024)]
    xo, yo = primes(10, odd_only=True)
    assert len(xo) == 512 and (xo[:, -1] == 1).all()
    assert yo.tolist() == [int(trial_division(m)) for m in range(1, 1024, 2)]


def test_split_is_seeded_and_disjoint():
    x, y = primes(8)
    a = split(x, y, test_fraction=0.25, seed=4)
    b = split(x, y, test_fraction=0.25, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    xtr, ytr, xte, yte = a
    assert len(xte) == 64 and len(xtr) == 192
    together = np.concatenate([xtr, xte]) @ 2.0 ** np.arange(7, -1, -1)
    assert sorted(together.astype(int).tolist()) == list(range(256))


@pytest.mark.parametrize("call", [lambda: primes(1), lambda: primes(21), lambda: sawtooth(-1),
                                  lambda: spirals(10, classes=1), lambda: compositional(0),
                                  lambda: split(np.zeros(3), np.zeros(4)),
                                  lambda: split(np.zeros(3), np.zeros(3), test_fraction=1.5)])
def test_bad_arguments(call):
    with pytest.raises(ValueError):
        call()
