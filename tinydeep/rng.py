"""One global random generator, so `manual_seed(s)` makes a whole run repeatable."""
import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the generator that layers use for their initial weights."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator():
    return _rng
