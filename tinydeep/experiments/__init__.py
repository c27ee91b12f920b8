"""The reproductions as plain functions that return result records (dicts of
numbers and lists), so tests can check them and demos only print and plot."""
from .records import save_figure, save_json
from .training import evaluate, fit
from . import manifold, primes  # noqa: F401,E402  (issue 6: density/interpolation, primes)

__all__ = ["fit", "evaluate", "save_json", "save_figure"]
