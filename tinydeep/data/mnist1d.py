"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"): ten 1-D digit templates
of 12 points, each padded, scaled, sheared, translated, given correlated and iid
noise, and resampled to 40 points. 4,000 training and 1,000 test sequences by
default. Small enough to train on a CPU in seconds, hard enough that models
differ: published test accuracy logistic 32 %, MLP 68 %, CNN 94 %, GRU 91 %;
with the 40 positions shuffled (one permutation for every sequence), the MLP
keeps 68 % and the CNN falls to 56 %.

The set is generated here by the `mnist1d` package (`make_dataset`), never
downloaded. The sequences come back as float32 "images" (n, 1, 1, 40), so a 1-D
convolution is a Conv2d with kernel (1, k), and labels int64, as load_mnist
returns them.
"""
import functools

import numpy as np

SEQUENCE_LENGTH = 40
# Greydanus 2020, Table 1 (test accuracy); "shuffled" is its shuffled-positions column.
PUBLISHED = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}
PUBLISHED_SHUFFLED = {"mlp": 0.68, "cnn": 0.56}
SOURCE = 'Greydanus 2020, "Scaling down deep learning" (arXiv:2011.14439), Table 1'


def _package():
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError("MNIST-1D needs the `mnist1d` package: pip install 'tinydeep[mnist1d]' "
                          "(or pip install mnist1d)") from None
    return get_dataset_args, make_dataset


@functools.lru_cache(maxsize=8)
def _generate(seed, num_samples, shuffle_positions):
    """The package's make_dataset with its default arguments, except those given.
    It seeds NumPy's global generator; that state is restored afterwards."""
    get_dataset_args, make_dataset = _package()
    args = get_dataset_args()
    args.seed, args.num_samples, args.shuffle_seq = seed, num_samples, shuffle_positions
    state = np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    as_images = lambda x: np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), 1, 1, -1)
    out = (as_images(d["x"]), np.asarray(d["y"], np.int64),
           as_images(d["x_test"]), np.asarray(d["y_test"], np.int64))
    for a in out:
        a.flags.writeable = False  # cached: callers share these arrays
    return out


def mnist1d(train=True, shuffle_positions=False, seed=42, num_samples=5000):
    """(x, y): x float32 (n, 1, 1, 40), y int64 in 0..9. The training split is the first
    80 % of `num_samples`, the test split the rest. seed=42 is the published set.
    shuffle_positions applies one fixed permutation of the 40 positions to every
    sequence (the same samples otherwise), as in the paper's shuffled column."""
    if int(num_samples) != num_samples or num_samples < 10:
        raise ValueError(f"mnist1d: num_samples must be an integer >= 10, got {num_samples!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"mnist1d: seed must be a non-negative integer, got {seed!r}")
    x, y, xt, yt = _generate(int(seed), int(num_samples), bool(shuffle_positions))
    return (x.copy(), y.copy()) if train else (xt.copy(), yt.copy())
