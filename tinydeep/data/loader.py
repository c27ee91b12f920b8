"""Mini-batches of NumPy arrays.

Each pass draws its order from Generator([seed, epoch]): two loaders with the
same seed yield the same batches, epoch after epoch, and a transform receives
that same generator, so augmentation replays too. Only one batch is gathered
at a time (x[indices] copies just those rows), never the whole set: x can be a
np.memmap larger than memory.
"""
import numbers

import numpy as np


class DataLoader:
    """Iterate (x_batch, y_batch) over x (n, ...) and y (n, ...).

    shuffle    a new random order each epoch (else 0..n−1)
    drop_last  skip a final batch smaller than batch_size
    transform  t(x_batch, rng) -> x_batch, e.g. RandomAffine, RandomCrop, Compose
    """

    def __init__(self, x, y, batch_size=128, shuffle=True, seed=0, drop_last=False, transform=None):
        for what, a in (("x", x), ("y", y)):   # (arrays or memmaps: a list cannot take x[rows])
            if not hasattr(a, "shape") or not hasattr(a, "__getitem__") or np.ndim(a) == 0:
                raise TypeError(f"DataLoader: {what} must be an array with one row per example, "
                                f"got {type(a).__name__} (np.asarray it first)")
        if len(x) != len(y):
            raise ValueError(f"DataLoader: x has {len(x)} rows but y has {len(y)}")
        # ValueError for any non-positive-int batch_size, as PyTorch's BatchSampler raises
        if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be an integer >= 0, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable (x_batch, rng) -> x_batch, "
                            f"got {type(transform).__name__}")
        if drop_last and batch_size > len(x):
            raise ValueError(f"DataLoader: batch_size {batch_size} is larger than the {len(x)} rows "
                             f"of the data, so drop_last=True would leave no batch at all")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, seed
        self.drop_last, self.transform = drop_last, transform
        self.epoch = 0

    def __len__(self):
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        n = len(self.x)
        order = rng.permutation(n) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]     # views: nothing copied
            else:
                rows = order[lo:hi]
                xb, yb = self.x[rows], self.y[rows]       # a copy of this batch's rows only
            if self.transform is not None:
                xb = self.transform(xb, rng)
            yield xb, yb
