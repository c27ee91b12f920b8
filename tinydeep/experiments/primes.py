"""No manifold: is an integer prime, from its binary digits.

Primality has no smooth structure in the bits: flipping one bit of a prime gives a
prime or a composite with no pattern a net could interpolate, so a net that fits the
training integers has memorized them, and on new integers it can do no better than
predicting the majority class (composite). Set beside it the same MLP, trained the
same way, on the same number of glyphs: there the training points lie on a manifold,
and fitting them generalizes.

Odd integers only, by default: every even number but 2 is composite, so with all
integers the last bit is a true and trivially learnable cue — not a manifold, one
lookup. With odd numbers that cue is gone and what is left has no such structure.
(Divisibility by 3 is still written in the bits — the alternating sum of the bits
mod 3 — but only as a parity-like function of all of them, which an MLP does not pick
up from a few thousand examples.) The all-integers case is reported beside it.

    train_run      one MLP trained until 100 % training accuracy (or max_epochs)
    compare        odd integers, all integers and glyphs at the same training-set size
    run            the record for demos/primes.py
"""
import time

import numpy as np
from tqdm.auto import tqdm

from .. import nn
from ..data import glyphs, primes, split
from ..rng import manual_seed
from .sweep import paired, summary
from .training import evaluate, fit, outputs


def base_rate(y_train, y_test):
    """(majority class of the training labels, its share of the test labels): the test
    accuracy of always predicting what was most common in training."""
    majority = int(np.bincount(y_train).argmax())
    return majority, float(np.mean(y_test == majority))


def train_run(x, y, xt, yt, width=512, depth=2, lr=0.05, max_epochs=300, seed=0, desc="train",
              groups=None):
    """An MLP (depth × width ReLU) on flattened inputs, SGD momentum 0.9, batch 128, trained
    until the whole training set is classified correctly or max_epochs pass. `groups` maps
    names to boolean masks over the test set, each scored on its own."""
    classes = int(max(y.max(), yt.max())) + 1
    manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.MLP(int(np.prod(x.shape[1:])), width, depth, classes))
    t0 = time.perf_counter()
    hist = fit(model, x, y, epochs=max_epochs, lr=lr, seed=seed, desc=desc,
               stop_at_accuracy=1.0, eval_train=True)
    train_acc, _ = evaluate(model, x, y)
    test_acc, _ = evaluate(model, xt, yt)
    majority, rate = base_rate(y, yt)
    with_pred = predictions(model, xt)
    minority = yt != majority
    return {"n_train": len(x), "n_test": len(xt), "classes": classes,
            "train_accuracy": train_acc, "test_accuracy": test_acc,
            "majority_class": majority, "base_rate": rate,
            "lift_over_base_rate": test_acc - rate,
            # how the test errors split: minority items found, majority items called minority
            "minority_recall": float(np.mean(with_pred[minority] == yt[minority]))
            if minority.any() else None,
            "predicted_not_majority": float(np.mean(with_pred != majority)),
            "group_accuracy": {k: float(np.mean(with_pred[m] == yt[m]))
                               for k, m in (groups or {}).items()},
            "epochs": len(hist["train_acc"]), "steps_to_fit": hist["steps_to_fit"],
            "seconds": round(time.perf_counter() - t0, 2)}


def predictions(model, x, batch_size=2000):
    """The predicted class of each row of x."""
    return outputs(model, x, batch_size).argmax(1)


def prime_data(bits, n_train, odd_only=True, seed=0):
    """The integers below 2^bits (odd only by default), n_train of them for training and
    all the rest for testing: (x, y, x_test, y_test)."""
    x, y = primes(bits, odd_only=odd_only)
    if not 0 < n_train < len(x):
        raise ValueError(f"n_train must be between 1 and {len(x) - 1} for {bits} bits "
                         f"({'odd ' if odd_only else ''}integers: {len(x)}), got {n_train}")
    return split(x, y, test_fraction=1 - n_train / len(x), seed=seed)


def compare(bits=16, n_train=4000, n_test_glyphs=4000, width=512, depth=2, lr=0.05,
            max_epochs=300, seed=0, verbose=True):
    """Three rows with one MLP recipe and one training-set size: primes from odd
    integers, primes from all integers, and glyphs (10 digits)."""
    rows = []
    for name, odd in (("odd integers", True), ("all integers", False)):
        data = prime_data(bits, n_train, odd_only=odd, seed=seed)
        # with all integers: is the trivial cue learned? (every even number but 2 is composite)
        groups = None if odd else {"even": data[2][:, -1] == 0, "odd": data[2][:, -1] == 1}
        r = train_run(*data, width, depth, lr, max_epochs, seed, desc=f"primes, {name}",
                      groups=groups)
        r.update(task=f"prime? ({name} < 2^{bits})", data="primes", odd_only=odd, bits=bits)
        rows.append(r)
    g, gt = glyphs(n_train, seed=1 + seed), glyphs(n_test_glyphs, seed=0)
    r = train_run(g.images, g.labels, gt.images, gt.labels, width, depth, lr, max_epochs, seed,
                  desc="glyphs")
    r.update(task="which digit? (glyphs 28x28)", data="glyphs")
    rows.append(r)
    if verbose:
        for r in rows:
            tqdm.write(f"  {r['task']:<32} train {r['train_accuracy']:6.1%}  test "
                       f"{r['test_accuracy']:6.1%}  base rate {r['base_rate']:6.1%}  "
                       f"({r['epochs']} epochs, {r['seconds']:.0f} s)")
    return rows


DEFAULT = dict(bits=16, n_train=4000, n_test_glyphs=4000, max_epochs=300, seeds=(0, 1, 2))
QUICK = dict(bits=12, n_train=1000, n_test_glyphs=1000, max_epochs=300, seeds=(0, 1))


def run(bits=16, n_train=4000, n_test_glyphs=4000, width=512, depth=2, lr=0.05,
        max_epochs=300, seed=0, seeds=None, verbose=True):
    """`compare` for each seed (its own split, training glyphs and initial weights); the
    rows are the first seed's, each with `over_seeds`: test accuracy − base rate, paired
    per seed, with its spread and whether it is beyond the seed noise."""
    t0 = time.perf_counter()
    seeds = (seed,) if seeds is None else tuple(seeds)
    seed = seeds[0]
    per_seed = [compare(bits, n_train, n_test_glyphs, width, depth, lr, max_epochs, s, verbose)
                for s in seeds]
    rows = per_seed[0]
    for i, r in enumerate(rows):
        runs = [rs[i] for rs in per_seed]
        r["over_seeds"] = {
            "test_accuracy": summary([x["test_accuracy"] for x in runs]),
            "base_rate": summary([x["base_rate"] for x in runs]),
            "test_minus_base_rate": paired([x["test_accuracy"] for x in runs],
                                           [x["base_rate"] for x in runs], "test accuracy",
                                           "base rate", what=r["task"], scale=100,
                                           unit=" points")}
    return {"config": {"model": f"MLP {depth}x{width}", "lr": lr, "momentum": 0.9,
                       "batch": 128, "stop": "100% training accuracy or max_epochs",
                       "max_epochs": max_epochs, "bits": bits, "n_train": n_train,
                       "seed": seed, "seeds": list(seeds), "main_choice": "odd integers only (evens are a "
                       "trivial cue: all composite but 2)"},
            "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
