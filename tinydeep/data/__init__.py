"""Data for tinydeep: NumPy arrays in, NumPy arrays out.

    glyphs, render_glyphs     synthetic digits with known latent factors     (glyphs.py)
    spirals, sawtooth,        toy problems with closed forms                 (toy.py)
      compositional, primes, split
    load_mnist, load_fashion_mnist, load_cifar10
                              published formats, downloaded and checked      (formats.py)
    mnist1d                   Greydanus's MNIST-1D, generated locally        (mnist1d.py)
    corrupt                   Zhang et al.'s label and pixel corruptions     (corrupt.py)
    RandomAffine, RandomCrop, Compose                                        (augment.py)
    DataLoader                seeded mini-batches                            (loader.py)

Images are float32 (N, C, H, W) in [0, 1]; labels int64.
"""
from .augment import Compose, RandomAffine, RandomCrop
from .corrupt import KINDS, corrupt
from .formats import data_dir, load_cifar10, load_fashion_mnist, load_mnist
from .glyphs import LATENT_NAMES, Glyphs, glyphs, render_glyphs
from .loader import DataLoader
from .mnist1d import mnist1d
from .toy import compositional, primes, sawtooth, spirals, split

__all__ = ["glyphs", "render_glyphs", "Glyphs", "LATENT_NAMES", "spirals", "sawtooth",
           "compositional", "primes", "split", "load_mnist", "load_fashion_mnist",
           "load_cifar10", "data_dir", "corrupt", "KINDS", "RandomAffine", "RandomCrop",
           "Compose", "DataLoader", "mnist1d"]
