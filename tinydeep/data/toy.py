"""Small toy problems for the demos, each a closed form.

    spirals        k interleaved spiral arms in the plane: classification, x (n, 2), y (n,) int64
    sawtooth       T∘T∘…∘T (k times), T(x) = 1 − |2x − 1| the tent map: a function with
                   2^k linear pieces that a deep ReLU net writes with O(k) units and a
                   shallow one needs Ω(2^k) for (Telgarsky 2016); x, y (n, 1) float32
    compositional  f(x) = 2(2cos²x − 1)² − 1 = T₂(T₂(cos x)) = cos 4x on [−π, π], a
                   composition of Chebyshev polynomials (Poggio et al. 2017); x, y (n, 1) float32
    primes         the binary digits of an integer → is it prime: no smooth structure for a
                   net to find, so a net that fits the training integers can only memorize
                   them; x (m, bits) float32 in {0, 1}, y (m,) int64

`split(x, y, test_fraction, seed)` cuts any of them into a train and a test part.
"""
import numpy as np


def _grid_or_sample(n, lo, hi, seed):
    """n evenly spaced points when seed is None, else n uniform draws, as (n, 1) float64."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if seed is None:
        return np.linspace(lo, hi, int(n))[:, None]
    return np.random.default_rng(seed).uniform(lo, hi, (int(n), 1))


def spirals(n, classes=2, turns=1.5, noise=0.1, seed=0):
    """n points on `classes` spiral arms, one arm per class, turning `turns` times.
    Arm c at parameter t ∈ [0, 1]: radius t, angle 2π·(turns·t + c/classes),
    plus Gaussian noise of std `noise`·(arm spacing). Returns x (n, 2) float32, y (n,) int64."""
    if int(classes) != classes or classes < 2:
        raise ValueError(f"spirals: classes must be an integer >= 2, got {classes!r}")
    if int(n) != n or n < 1 or not (0 < turns < np.inf and 0 <= noise < np.inf):   # (NaN too)
        raise ValueError(f"spirals: need n >= 1, turns > 0, noise >= 0, got {n}, {turns}, {noise}")
    rng = np.random.default_rng(seed)
    y = np.arange(int(n)) % classes
    t = np.sqrt(rng.random(int(n)))              # √u: points spread evenly along the arm's area
    angle = 2 * np.pi * (turns * t + y / classes)
    x = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x += noise / classes * rng.standard_normal(x.shape)
    return x.astype(np.float32), y.astype(np.int64)


def tent(x):
    """T(x) = 1 − |2x − 1|: the unit interval folded once, [0, ½] and [½, 1] both onto [0, 1]."""
    return 1.0 - np.abs(2.0 * x - 1.0)


def sawtooth(k, n=1024, seed=None):
    """The k-fold tent map T^k on [0, 1]: 2^(k−1) teeth, 2^k linear pieces (T⁰ is x itself).
    x evenly spaced (seed None) or uniform (seeded). Returns x, y (n, 1) float32."""
    if int(k) != k or k < 0:
        raise ValueError(f"sawtooth: k must be a non-negative integer, got {k!r}")
    x = _grid_or_sample(n, 0.0, 1.0, seed)
    y = x
    for _ in range(int(k)):
        y = tent(y)
    return x.astype(np.float32), y.astype(np.float32)


def compositional(n=1024, seed=None):
    """f(x) = 2(2cos²x − 1)² − 1 on [−π, π], x evenly spaced (seed None) or uniform.
    Returns x, y (n, 1) float32."""
    x = _grid_or_sample(n, -np.pi, np.pi, seed)
    inner = 2 * np.cos(x) ** 2 - 1             # T₂(cos x) = cos 2x
    return x.astype(np.float32), (2 * inner ** 2 - 1).astype(np.float32)


def is_prime(m):
    """Sieve of Eratosthenes: a boolean array, entry i says whether i is prime, for i < m."""
    sieve = np.ones(max(int(m), 2), bool)
    sieve[:2] = False
    for p in range(2, int(np.sqrt(m)) + 1):
        if sieve[p]:
            sieve[p * p::p] = False
    return sieve[:m]


def primes(bits, odd_only=False):
    """Every integer in [0, 2^bits) (or every odd one) as its binary digits, most
    significant first, labelled 1 if prime. Row i is the integer i (2i + 1 if odd_only),
    so `x @ 2**arange(bits)[::-1]` recovers it. Evens are all composite but 2, so
    `odd_only` removes the one digit that carries any signal.
    Returns x (m, bits) float32 in {0, 1}, y (m,) int64."""
    if int(bits) != bits or not 2 <= bits <= 20:
        raise ValueError(f"primes: bits must be an integer in [2, 20], got {bits!r}")
    bits = int(bits)
    numbers = np.arange(1 << bits)
    if odd_only:
        numbers = numbers[1::2]
    shifts = np.arange(bits - 1, -1, -1)
    x = (numbers[:, None] >> shifts) & 1
    return x.astype(np.float32), is_prime(1 << bits)[numbers].astype(np.int64)


def split(x, y, test_fraction=0.5, seed=0):
    """A seeded random split: (x_train, y_train, x_test, y_test), the test part holding
    round(test_fraction · n) rows. Same seed, same split."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"split: x has {len(x)} rows but y has {len(y)}")
    if not 0 <= test_fraction <= 1:
        raise ValueError(f"split: test_fraction must be in [0, 1], got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
