"""The corruptions of Zhang et al. 2017, "Understanding deep learning requires
rethinking generalization": the same network fits all of them to zero training
error, though only `true` leaves anything to generalize.

    true             the data unchanged
    random_labels    every label replaced by a uniform random class
    partial_labels   each label, independently with probability p, replaced by a uniform
                     random class (which may be the old one: a fraction p·(K−1)/K changes)
    shuffled_pixels  one random permutation of pixel positions applied to every image; it
                     depends on the seed only, so train and test sets get the same one
    random_pixels    a different random permutation for each image
    gaussian         every input replaced by Gaussian noise with the data set's mean and
                     variance (one scalar each, over all pixels)

Images (n, C, H, W) are permuted over the H·W positions, a pixel keeping its
channels together; flat inputs (n, d) over the d features.
"""
import numpy as np

KINDS = ("true", "random_labels", "partial_labels", "shuffled_pixels", "random_pixels", "gaussian")


def _positions(x):
    """x as (n, C, P): P pixel positions, permuted as a unit across the channels."""
    if x.ndim == 2:
        return x[:, None, :]
    if x.ndim == 4:
        return x.reshape(x.shape[0], x.shape[1], -1)
    raise ValueError(f"corrupt: x must be (n, d) or (n, C, H, W), got shape {x.shape}")


def corrupt(x, y, kind, p=1.0, seed=0, num_classes=None):
    """(x, y) with corruption `kind` (one of KINDS) drawn from `seed`; returns new arrays
    (x or y is passed through when the kind leaves it alone). `p` is used by
    partial_labels; `num_classes` defaults to y.max() + 1."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"corrupt: x has {len(x)} rows but y has {len(y)}")
    if kind not in KINDS:
        raise ValueError(f"corrupt: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"corrupt: p must be a probability in [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    if kind in ("random_labels", "partial_labels"):
        k = int(num_classes if num_classes is not None else (y.max() + 1 if len(y) else 1))
        if k < 1 or (len(y) and y.max() >= k):
            raise ValueError(f"corrupt: num_classes {k} does not cover labels up to {y.max()}")
        replace = rng.random(len(y)) < (1.0 if kind == "random_labels" else p)
        new = rng.integers(0, k, len(y))
        return x, np.where(replace, new, y).astype(y.dtype)
    if kind == "shuffled_pixels":
        flat = _positions(x)
        return flat[:, :, rng.permutation(flat.shape[2])].reshape(x.shape), y
    if kind == "random_pixels":
        flat = _positions(x)
        n, c, positions = flat.shape
        order = rng.permuted(np.broadcast_to(np.arange(positions), (n, positions)), axis=1)
        out = np.take_along_axis(flat, order[:, None, :], axis=2)
        return out.reshape(x.shape), y
    if kind == "gaussian":
        mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return rng.normal(mean, std, x.shape).astype(dtype), y
    return x, y
