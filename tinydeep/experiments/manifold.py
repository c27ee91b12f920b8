"""The data manifold: how densely it is sampled, and what lies between its points.

Glyphs are drawn from a known 12-dimensional box of latent factors (rotation,
scale, …, noise; see tinydeep.data.glyphs), one box per digit, so the data
manifold is ten 12-dimensional sheets in pixel space and we can walk on them.

    density        test accuracy vs training examples per class (1 … 1000), trained
                   with and without augmentation (RandomAffine: random rotation, scale,
                   shift and shear through the engine's affine_grid + grid_sample).
                   Augmentation fills in the sheet between the few training points
                   along the affine directions, so it should matter most where the
                   sheet is sampled most thinly.
    interpolation  two glyphs of the same digit, joined by a path along the latent
                   factors (render each (1 − t)·z_a + t·z_b: the latent box is convex,
                   so every point of that path is a glyph the generator could have drawn)
                   and by linear blending of the pixels ((1 − t)·x_a + t·x_b: two faded
                   glyphs on top of each other, which the generator never draws). The
                   model's predicted class and confidence along both paths, for a few
                   examples and averaged over many random pairs.
    run            both, one record, for demos/manifold.py

The density part also runs on MNIST-1D (`dataset="mnist1d"`): its 4,000 training
sequences give at most 394 of a class (PER_CLASS_MNIST1D stops at 300), the test set is
its 1,000 sequences, and the augmentation is a random shift of up to ±5 of the 40
positions (random_labels.Shift1d), one of the factors its generator draws: a 2-D affine
map has no plane to act in on a 1-D signal. The interpolation needs the generator's
latent factors, which only glyphs expose, so an MNIST-1D record has none. The other sets
(mnist, fashion-mnist, cifar10) are refused (UNFIT): this experiment is about a manifold
whose coordinates are known.

Model: an MLP 1×512 on the flattened 28×28 image, SGD momentum 0.9, lr 0.01, batch
min(128, n), for a fixed budget of SGD steps whatever the training-set size (rounded up
to whole epochs), so that the small sets are not short-changed: without augmentation
they are fitted long before the budget ends; with it, every step sees new variants.
"""
import time

import numpy as np
from tqdm.auto import tqdm

from .. import nn
from ..data import LATENT_NAMES, RandomAffine, glyphs, mnist1d, render_glyphs
from ..rng import manual_seed
from .random_labels import Shift1d
from .args import check_dataset
from .sweep import paired, summary
from .training import evaluate, fit, outputs

NUM_CLASSES = 10
PER_CLASS = (1, 3, 10, 30, 100, 300, 1000)
PER_CLASS_MNIST1D = (1, 3, 10, 30, 100, 300)     # its training set holds 394-411 per class
DATASETS = ("glyphs", "mnist1d")
_NO_LATENTS = ("its images come without the latent factors that drew them, so there is no "
               "manifold to walk on (only glyphs has them; --dataset mnist1d runs the "
               "density part alone)")
SHIFT_MNIST1D = 40 // 8  # positions: 1/8 of the length, as random_labels shifts sequences
UNFIT = {"mnist": _NO_LATENTS, "fashion-mnist": _NO_LATENTS, "cifar10": _NO_LATENTS}
# the augmentation: comparable to the glyphs' own ranges (rotation ±20°, shear 0.3 ≈ 17°,
# shift ±0.08 of the side, scale 0.75–1), applied on top of them
AUGMENT = dict(rotation=20.0, scale=0.15, translate=0.08, shear=15.0)
TEST_SEED = 0           # the test glyphs; training sets use seeds 1, 2, … (never 0)
# two moderate styles, opposite in every factor (a corner of the 12-D box would be rare)
STYLE_A = dict(rotation=-15.0, scale=0.8, aspect=0.92, shear=-0.2, shift_x=-0.05,
               shift_y=0.03, width=0.07, taper=-0.12, bend=-0.12, waist=0.08, bulge=-0.08,
               noise=0.0)
STYLE_B = dict(rotation=15.0, scale=0.95, aspect=1.08, shear=0.2, shift_x=0.05,
               shift_y=-0.03, width=0.11, taper=0.12, bend=0.12, waist=-0.08, bulge=0.08,
               noise=0.0)
EXAMPLES = ((1, 1), (7, 7), (4, 4), (3, 8))   # (digit a, digit b) for the figure


def augmentation(dataset="glyphs"):
    """The augmentation of every augmented run: RandomAffine on glyphs, a shift of up to
    ±1/8 of the length on MNIST-1D."""
    return Shift1d(SHIFT_MNIST1D) if dataset == "mnist1d" else RandomAffine(**AUGMENT)


def augmentation_record(dataset="glyphs"):
    return {"shift": SHIFT_MNIST1D} if dataset == "mnist1d" else dict(AUGMENT)


def make_model(seed=0, width=512, size=28, inputs=None):
    """MLP 1×`width` on the flattened input: `inputs` values, or a size×size image."""
    manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.MLP(inputs or size * size, width, 1, NUM_CLASSES))


def train_set(per_class, seed=0, dataset="glyphs"):
    """Exactly `per_class` samples of each digit: glyphs drawn from seed 1 + seed (glyphs()
    balances the classes, so 10·k samples hold k of each), or MNIST-1D training sequences
    picked without replacement by seed 1 + seed."""
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    check_dataset(dataset, DATASETS, UNFIT)
    if dataset == "glyphs":
        g = glyphs(NUM_CLASSES * int(per_class), seed=1 + seed)
        return g.images, g.labels
    x, y = mnist1d()
    most = int(np.bincount(y, minlength=NUM_CLASSES).min())
    if per_class > most:
        raise ValueError(f"per_class: mnist1d's training set holds {most} of its rarest "
                         f"class; asked for {per_class}")
    rng = np.random.default_rng(1 + seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(y == k), int(per_class), replace=False)
                           for k in range(NUM_CLASSES)])
    pick = rng.permutation(pick)
    return x[pick], y[pick]


def test_set(n_test, dataset="glyphs"):
    """The test images: glyphs of seed TEST_SEED, or MNIST-1D's first `n_test` test
    sequences (it has 1,000)."""
    check_dataset(dataset, DATASETS, UNFIT)
    if dataset == "glyphs":
        g = glyphs(n_test, seed=TEST_SEED)
        return g.images, g.labels
    x, y = mnist1d(train=False)
    return x[:n_test], y[:n_test]


def train_one(per_class, augment, test, steps=2000, seed=0, lr=0.01, width=512,
              dataset="glyphs"):
    """One model trained from scratch on `per_class` samples per digit for ≈ `steps` SGD
    steps. Returns (run record, model)."""
    x, y = train_set(per_class, seed, dataset)
    batch = min(128, len(x))
    per_epoch = -(-len(x) // batch)
    epochs = max(1, -(-steps // per_epoch))
    model = make_model(seed, width, inputs=int(np.prod(x.shape[1:])))
    t0 = time.perf_counter()
    hist = fit(model, x, y, epochs=epochs, lr=lr, batch_size=batch,
               transform=augmentation(dataset) if augment else None, seed=seed,
               desc=f"{per_class}/class{' aug' if augment else ''} seed {seed}")
    train_acc, _ = evaluate(model, x, y)
    test_acc, test_loss = evaluate(model, *test)
    return ({"per_class": int(per_class), "n_train": len(x), "augment": bool(augment),
             "seed": seed, "steps": hist["steps"][-1], "epochs": epochs,
             "train_accuracy": train_acc, "test_accuracy": test_acc, "test_loss": test_loss,
             "seconds": round(time.perf_counter() - t0, 2)}, model)


def density(per_class=PER_CLASS, seeds=(0, 1, 2, 3, 4), many_seeds_up_to=10, steps=1500,
            n_test=2000, lr=0.01, width=512, keep=None, verbose=True, dataset="glyphs"):
    """Test accuracy vs examples per class, without and with augmentation. Sizes up to
    `many_seeds_up_to` per class run once per seed (each seed draws its own training set
    and initial weights); larger ones, whose spread is small, only with seeds[0].
    `keep` = (per_class, augment): also return that configuration's seeds[0] model.
    Returns (record, kept model or None)."""
    if not per_class or min(per_class) < 1:
        raise ValueError(f"per_class must be positive integers, got {per_class!r}")
    test = test_set(n_test, dataset)
    n_test = len(test[0])
    runs, kept = [], None
    for k in per_class:
        for augment in (False, True):
            for seed in (seeds if k <= many_seeds_up_to else seeds[:1]):
                r, model = train_one(k, augment, test, steps, seed, lr, width, dataset)
                runs.append(r)
                if keep == (k, augment) and seed == seeds[0]:
                    kept = model
                if verbose:
                    tqdm.write(f"  {k:>5}/class  aug={augment:d}  seed {seed}  train "
                               f"{r['train_accuracy']:6.1%}  test {r['test_accuracy']:6.1%}"
                               f"  ({r['seconds']:.0f} s)")

    def column(augment, key="test_accuracy"):
        return [[r[key] for r in runs if r["per_class"] == k and r["augment"] == augment]
                for k in per_class]

    out = {"dataset": dataset, "per_class": list(per_class), "n_test": n_test, "steps": steps,
           "runs": runs, "augmentation": augmentation_record(dataset),
           "augmentation_name": type(augmentation(dataset)).__name__}
    for name, augment in (("plain", False), ("augmented", True)):
        acc = column(augment)
        out[name] = {"test_accuracy": acc, "mean": [summary(a)["mean"] for a in acc],
                     "std": [summary(a)["std"] for a in acc],
                     "train_accuracy": [float(np.mean(a)) for a in column(augment, "train_accuracy")]}
    out["lift"] = [a - p for a, p in zip(out["augmented"]["mean"], out["plain"]["mean"])]
    # the same seed draws the same training set and initial weights with and without
    # augmentation, so the two runs of a seed are a pair
    out["lift_paired"] = [paired(a, p, "augmented", "plain", what=f"{k}/class test accuracy",
                                 scale=100, unit=" points")
                          for k, a, p in zip(per_class, out["augmented"]["test_accuracy"],
                                             out["plain"]["test_accuracy"])]
    return out, kept


# --- interpolation ------------------------------------------------------------------------

def style(**latents):
    """A latent vector (12,) in LATENT_NAMES order from keyword values."""
    missing = set(LATENT_NAMES) - set(latents)
    if missing or set(latents) - set(LATENT_NAMES):
        raise ValueError(f"style needs exactly the latents {LATENT_NAMES}; missing "
                         f"{sorted(missing)}, unknown {sorted(set(latents) - set(LATENT_NAMES))}")
    return np.array([latents[k] for k in LATENT_NAMES], float)


def latent_path(label_a, z_a, label_b, z_b, t):
    """Glyphs rendered (clean) at latents (1 − t)·z_a + t·z_b for each t. The digit is
    label_a for t < ½ and label_b from ½ on: the class is not a continuous factor, so
    between two digits the path on the manifold has to jump from one sheet to the other."""
    t = np.asarray(t, float)[:, None]
    z = (1 - t) * np.asarray(z_a, float)[None] + t * np.asarray(z_b, float)[None]
    labels = np.where(t[:, 0] < 0.5, label_a, label_b).astype(np.int64)
    return render_glyphs(labels, z)


def pixel_path(x_a, x_b, t):
    """(1 − t)·x_a + t·x_b for each t: images (len(t), C, H, W) float32."""
    x_a, x_b = np.asarray(x_a, np.float32), np.asarray(x_b, np.float32)
    if x_a.shape != x_b.shape:
        raise ValueError(f"pixel_path: images differ in shape, {x_a.shape} vs {x_b.shape}")
    t = np.asarray(t, np.float32).reshape(-1, *([1] * x_a.ndim))
    return (1 - t) * x_a[None] + t * x_b[None]


def predict(model, x, batch_size=1000):
    """Class probabilities softmax(model(x)), (n, 10) float64."""
    z = outputs(model, x, batch_size).astype(np.float64)
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def _path_record(model, images, label_a, label_b):
    p = predict(model, images)
    return {"predicted": p.argmax(1).tolist(), "confidence": p.max(1).round(4).tolist(),
            "p_a": p[:, label_a].round(4).tolist(), "p_b": p[:, label_b].round(4).tolist()}


def interpolation(model, examples=EXAMPLES, steps=9, n_pairs=300, seed=0):
    """Latent path vs pixel blend. `examples`: digit pairs drawn from STYLE_A (left) to
    STYLE_B (right), with images and predictions (for the figure). `n_pairs` random
    same-digit pairs of clean test-distribution glyphs (seed 10_000 + seed): the mean
    probability of their digit and the accuracy at each t, on both paths."""
    t = np.linspace(0, 1, steps)
    z_a, z_b = style(**STYLE_A), style(**STYLE_B)
    shown = []
    for a, b in examples:
        lat = latent_path(a, z_a, b, z_b, t)
        pix = pixel_path(lat[0], lat[-1], t)
        shown.append({"digits": [a, b], "latent_images": lat[:, 0].round(3).tolist(),
                      "pixel_images": pix[:, 0].round(3).tolist(),
                      "latent": _path_record(model, lat, a, b),
                      "pixel": _path_record(model, pix, a, b)})

    # random pairs: sample i and sample i + n of the same digit (labels sorted to match)
    g = glyphs(2 * n_pairs, seed=10_000 + seed)
    order = np.argsort(g.labels, kind="stable")
    labels, latents = g.labels[order], g.latents[order]
    ends_a, ends_b, digits = [], [], []
    for d in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == d)
        half = len(idx) // 2
        ends_a += list(idx[:half])
        ends_b += list(idx[half:2 * half])
        digits += [d] * half
    digits = np.array(digits)
    lat_p, pix_p = [], []
    for ti in tqdm(t, desc="paths", leave=False):
        z = (1 - ti) * latents[ends_a] + ti * latents[ends_b]
        lat = render_glyphs(digits, z)
        pix = pixel_path(render_glyphs(digits, latents[ends_a]),
                         render_glyphs(digits, latents[ends_b]), [ti])[0]
        lat_p.append(predict(model, lat))
        pix_p.append(predict(model, pix))
    rows = np.arange(len(digits))

    def summary(ps):
        return {"mean_p_true": [float(p[rows, digits].mean()) for p in ps],
                "accuracy": [float((p.argmax(1) == digits).mean()) for p in ps],
                "mean_confidence": [float(p.max(1).mean()) for p in ps]}

    return {"t": t.round(4).tolist(), "style_a": STYLE_A, "style_b": STYLE_B,
            "examples": shown, "n_pairs": len(digits),
            "latent": summary(lat_p), "pixel": summary(pix_p)}


DEFAULT = dict(per_class=PER_CLASS, seeds=(0, 1, 2), many_seeds_up_to=1000, steps=1500,
               n_test=2000, n_pairs=300)
QUICK = dict(per_class=(1, 10, 100), seeds=(0, 1), many_seeds_up_to=10, steps=300,
             n_test=1000, n_pairs=100)


def run(per_class=PER_CLASS, seeds=(0, 1, 2, 3, 4), many_seeds_up_to=10, steps=1500,
        n_test=2000, n_pairs=300, lr=0.01, width=512, verbose=True, dataset="glyphs"):
    """Density (both curves) and interpolation, the latter with the model trained on the
    largest set without augmentation (the paths' images need no augmentation to be
    in-distribution: the latent ones are glyphs). One record. On mnist1d the density
    part only ("interpolation": None)."""
    check_dataset(dataset, DATASETS, UNFIT)
    t0 = time.perf_counter()
    dens, model = density(per_class, seeds, many_seeds_up_to, steps, n_test, lr, width,
                          keep=(max(per_class), False), verbose=verbose, dataset=dataset)
    interp = None
    if dataset == "glyphs":
        interp = interpolation(model, n_pairs=n_pairs, seed=seeds[0])
        interp["model"] = {"per_class": max(per_class), "augment": False,
                           "test_accuracy": next(r["test_accuracy"] for r in dens["runs"]
                                                 if r["per_class"] == max(per_class)
                                                 and not r["augment"])}
    shape = "the 40 values of MNIST-1D" if dataset == "mnist1d" else "flattened 28x28 glyphs"
    return {"config": {"dataset": dataset, "model": f"MLP 1x{width} on {shape}", "lr": lr,
                       "momentum": 0.9, "batch": "min(128, n)", "steps": steps,
                       "seeds": list(seeds), "many_seeds_up_to": many_seeds_up_to,
                       "n_test": dens["n_test"], "chance": 1 / NUM_CLASSES},
            "density": dens, "interpolation": interp,
            "seconds": round(time.perf_counter() - t0, 1)}
