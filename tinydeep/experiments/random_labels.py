"""Zhang et al. 2017, "Understanding deep learning requires rethinking generalization".

The claim: a network large enough for the data reaches zero training error on
true labels, on random labels and on pure noise inputs alike, in not much
more time — so its capacity alone cannot explain why it generalizes on the
true labels. Reproduced here on a small training set:

    figure_1a      five corruptions (true, random labels, shuffled pixels, random
                   pixels, gaussian): loss curves, training and test accuracy
    figure_1bc     label corruption p = 0 … 1: time to fit relative to p = 0 (1b),
                   test error (1c)
    table_1        true labels with/without weight decay and augmentation, and random
                   labels, for MLP 1×512 and 3×512 (and a small CNN on request)
    batchnorm_table   Table 1's BatchNorm contrast: MLP 3×512 with/without it, over seeds
    exact_memorizer   their Theorem 1: a two-layer ReLU net with 2n + d weights that
                   fits any n real targets exactly, built in closed form
    run            all of the above as one record, for demos/random_labels.py

Training follows the paper: SGD, momentum 0.9, lr 0.01, batch 128, no
regularization unless a row says so. One change, forced by the smaller set:
the paper decays the lr ×0.95 per epoch of CIFAR-10, i.e. per 50,000 samples
seen; per epoch of a 4,000-sample set that decay would shrink the lr to
nothing in a few thousand steps, long before random labels are fitted. So the
decay is kept per 50,000 samples: ×0.95^(n_train/50000) per epoch here.

"Time to fit" is the first step at which the accuracy on the whole training
set (scored after each epoch, without augmentation) reaches the threshold,
100 % by default as in the paper; steps to 99 % come from the same curve.
"""
import math
import time

import numpy as np
from scipy.linalg import solve_triangular
from tqdm.auto import tqdm

from .. import nn
from ..data import RandomCrop, corrupt, glyphs, load_cifar10, load_fashion_mnist, load_mnist, mnist1d
from ..rng import manual_seed
from ..tensor import no_grad, tensor
from .args import check_dataset
from .sweep import paired, summary
from .training import evaluate, fit

NUM_CLASSES = 10
CHANCE = 1.0 / NUM_CLASSES
KINDS_1A = ("true", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")
P_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
ARCHS = ("mlp1x512", "mlp3x512", "cnn")  # each also with "_bn": BatchNorm after its hidden layers
DATASETS = ("glyphs", "mnist1d", "mnist", "fashion-mnist", "cifar10")
CIFAR_EPOCH = 50_000  # the paper's lr decays ×0.95 per epoch of CIFAR-10's 50,000 images
KNOT_OFFSET = 0.01  # exact_memorizer: where a knot sits between two projections (0 … 1)


# --- data ---------------------------------------------------------------------------

def load_data(dataset="glyphs", n_train=4000, n_test=4000, seed=0, download=False):
    """(x, y, x_test, y_test): images (n, C, H, W) float32 in [0, 1], labels int64.
    Glyphs are drawn fresh (test = another seed); the real sets are subsampled
    (seeded, without replacement). A real set's missing files raise FileNotFoundError
    from its loader, naming the files and the folder to put them in."""
    check_dataset(dataset, DATASETS)
    if dataset == "glyphs":
        train, test = glyphs(n_train, seed=seed), glyphs(n_test, seed=seed + 1)
        return train.images, train.labels, test.images, test.labels
    if dataset == "mnist1d":  # the published set: 4,000 training and 1,000 test sequences
        (x, y), (xt, yt) = mnist1d(), mnist1d(train=False)
        if n_train > len(x):
            raise ValueError(f"mnist1d has {len(x)} training sequences; asked for {n_train}")
        return x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]   # at most its 1,000 tests
    loader = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist,
              "cifar10": load_cifar10}[dataset]
    x, y = loader(train=True, download=download)
    xt, yt = loader(train=False, download=download)
    if n_train > len(x) or n_test > len(xt):
        raise ValueError(f"{dataset} has {len(x)} training and {len(xt)} test images; "
                         f"asked for {n_train} and {n_test}")
    rng = np.random.default_rng(seed)
    i, j = rng.choice(len(x), n_train, replace=False), rng.choice(len(xt), n_test, replace=False)
    return x[i], y[i], xt[j], yt[j]


def corrupted(x, y, xt, yt, kind, p=1.0, seed=0):
    """Training and test sets for one corruption, as in the paper: labels are corrupted
    in the training set only (the test set keeps its true labels); pixel corruptions
    apply to both inputs — shuffled_pixels with the same permutation (it depends on the
    seed only), random_pixels and gaussian drawn afresh for the test images."""
    xc, yc = corrupt(x, y, kind, p=p, seed=seed, num_classes=NUM_CLASSES)
    if kind in ("true", "random_labels", "partial_labels"):
        return xc, yc, xt, yt
    xtc, _ = corrupt(xt, yt, kind, seed=seed if kind == "shuffled_pixels" else seed + 1)
    return xc, yc, xtc, yt


# --- models and one training run --------------------------------------------------------

def make_model(arch, in_shape, seed=0):
    """MLP 1×512 or 3×512 on flattened images (the paper's MLPs), or a small CNN:
    two 5×5 conv + ReLU + 2×2 max-pool blocks (16, 32 channels), then a linear layer;
    "mlp3x512_bn" etc.: the same net and initial weights with BatchNorm (`with_batchnorm`)."""
    if arch.endswith("_bn"):
        return with_batchnorm(make_model(arch[:-3], in_shape, seed))
    manual_seed(seed)
    c, h, w = in_shape
    if arch in ("mlp1x512", "mlp3x512"):
        return nn.Sequential(nn.Flatten(), nn.MLP(c * h * w, 512, int(arch[3]), NUM_CLASSES))
    if arch == "cnn" and h == 1:  # sequences (MNIST-1D): the paper's 1-D CNN
        from .mnist1d import make_model as sequence_model
        return sequence_model("cnn", w, seed=seed)
    if arch == "cnn":
        return small_cnn(in_shape)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}, _bn")


def small_cnn(in_shape, channels=(16, 32), classes=NUM_CLASSES, layers=nn):
    """5×5 conv (c1) → ReLU → 2×2 max-pool → 5×5 conv (c2) → ReLU → 2×2 max-pool → Linear,
    padding 2 so each pool halves the side; weights drawn from the current seed. `layers`:
    tinydeep.nn, or torch.nn for the same net in PyTorch (same names)."""
    (c, h, w), (c1, c2), L = in_shape, channels, layers
    return L.Sequential(L.Conv2d(c, c1, 5, padding=2), L.ReLU(), L.MaxPool2d(2),
                        L.Conv2d(c1, c2, 5, padding=2), L.ReLU(), L.MaxPool2d(2),
                        L.Flatten(), L.Linear(c2 * (h // 4) * (w // 4), classes))


def with_batchnorm(model, layers=nn):
    """The net with BatchNorm (PyTorch's defaults) between each Linear or Conv2d and its ReLU,
    as Inception has it (BatchNorm draws no weights); `layers`: tinydeep.nn or torch.nn."""
    leaves = [m for m in model.modules() if not list(m.children())]
    out = []
    for layer, after in zip(leaves, leaves[1:] + [None]):
        out.append(layer)
        if isinstance(after, layers.ReLU) and isinstance(layer, (layers.Linear, layers.Conv2d)):
            norm = layers.BatchNorm1d if isinstance(layer, layers.Linear) else layers.BatchNorm2d
            out.append(norm(layer.weight.shape[0]))
    return layers.Sequential(*out)


class Shift1d:
    """RandomCrop for sequences (N, C, 1, L): zero-pad `padding` at both ends of the
    length, cut a random window of the original length (a shift of ±padding)."""

    def __init__(self, padding):
        self.padding = int(padding)

    def __call__(self, x, rng):
        n, length, p = len(x), x.shape[-1], self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (0, 0), (p, p)))
        left = rng.integers(0, 2 * p + 1, n)
        return np.stack([padded[i, ..., s:s + length] for i, s in enumerate(left)])


def binned(steps, losses, bins=300):
    """Mean loss over consecutive blocks of steps (≤ `bins` points), as (step, mean) lists."""
    k = max(1, -(-len(losses) // bins))
    n = len(losses) // k * k
    if n == 0:
        return [], []
    means = np.asarray(losses[:n]).reshape(-1, k).mean(1)
    return np.asarray(steps[k - 1:n:k]).tolist(), means.round(5).tolist()


def train_run(x, y, xt, yt, arch="mlp1x512", lr=0.01, lr_decay=None, weight_decay=0.0,
              augment=False, max_epochs=200, fit_threshold=1.0, seed=0, desc="train",
              device="cpu"):
    """Train one model from scratch until its accuracy on the whole training set, scored
    after each epoch, reaches `fit_threshold`, or `max_epochs` pass. lr_decay None means ×0.95 per 50,000
    samples seen. Returns the run's record (config, curve, time to fit, accuracies)."""
    n = len(x)
    if lr_decay is None:
        lr_decay = 0.95 ** (n / CIFAR_EPOCH)
    transform = None
    if augment:  # a random shift of up to 1/8 of the side; sequences shift along their length
        transform = (Shift1d(x.shape[-1] // 8) if x.shape[2] == 1 else
                     RandomCrop(padding=x.shape[-1] // 8))
    model = make_model(arch, x.shape[1:], seed=seed).to(device)
    t0 = time.perf_counter()
    hist = fit(model, x, y, epochs=max_epochs, lr=lr, lr_decay=lr_decay,
               weight_decay=weight_decay, transform=transform, seed=seed, desc=desc,
               stop_at_accuracy=fit_threshold, eval_train=True)
    seconds = time.perf_counter() - t0
    train_acc, train_loss = evaluate(model, x, y)
    test_acc, test_loss = evaluate(model, xt, yt)
    steps_per_epoch = -(-n // 128)
    curve_steps, curve_loss = binned(hist["steps"], hist["losses"])
    ends = [steps_per_epoch * (e + 1) for e in range(len(hist["train_acc"]))]
    first = lambda t: next((s for s, a in zip(ends, hist["eval_train_acc"]) if a >= t), None)
    return {"arch": arch, "parameters": sum(math.prod(p.shape) for p in model.parameters()),
            "lr": lr, "lr_decay_per_epoch": lr_decay,
            "weight_decay": weight_decay, "augment": augment, "seed": seed,
            "fit_threshold": fit_threshold, "max_epochs": max_epochs,
            "steps_to_fit": hist["steps_to_fit"], "steps_to_99": first(0.99),
            "epochs": len(hist["train_acc"]),
            "steps": hist["steps"][-1] if hist["steps"] else 0,
            "curve": {"steps": curve_steps, "loss": curve_loss,
                      "epoch_end_steps": ends, "train_acc": hist["eval_train_acc"],
                      "running_train_acc": hist["train_acc"]},
            "train_accuracy": train_acc, "train_loss": train_loss,
            "test_accuracy": test_acc, "test_loss": test_loss, "seconds": round(seconds, 2)}


def _note(verbose, label, r):
    if verbose:
        fit_at = f"fit in {r['steps_to_fit']} steps" if r["steps_to_fit"] else \
            f"not fit in {r['steps']} steps"
        tqdm.write(f"  {label:<34} {fit_at:<22} train {r['train_accuracy']:6.1%}  "
                   f"test {r['test_accuracy']:6.1%}  ({r['seconds']:.0f} s)")


# --- the paper's figures and table ---------------------------------------------------------

def ink_baseline(x, y, xt, yt):
    """Test accuracy of the nearest class mean of total ink (the sum of an image's pixels).
    Ink survives any permutation of the pixels, so it bounds from below what a model can
    still learn from random_pixels: its test accuracy need not fall all the way to chance."""
    ink, ink_t = x.reshape(len(x), -1).sum(1), xt.reshape(len(xt), -1).sum(1)
    means = np.array([ink[y == k].mean() if np.any(y == k) else np.inf
                      for k in range(NUM_CLASSES)])
    return float(np.mean(np.abs(ink_t[:, None] - means[None, :]).argmin(1) == yt))


def figure_1a(data, kinds=KINDS_1A, seed=0, verbose=True, **train):
    """One MLP run per corruption kind; returns {"kinds": [...], "runs": {kind: run},
    "ink_baseline": test accuracy of classifying by total ink alone}."""
    x, y, xt, yt = data
    runs = {}
    for kind in kinds:
        runs[kind] = r = train_run(*corrupted(x, y, xt, yt, kind, seed=seed), seed=seed, desc=kind, **train)
        r["kind"] = kind
        _note(verbose, f"1a {kind}", r)
    return {"kinds": list(kinds), "runs": runs, "ink_baseline": ink_baseline(x, y, xt, yt)}


def figure_1bc(data, p_levels=P_LEVELS, seeds=(0,), reuse=(), verbose=True, **train):
    """Label corruption p: steps to fit relative to p = 0 (Figure 1b) and test error
    (Figure 1c), one run per (p, seed); each seed draws its own corrupted labels and
    initial weights. A run in `reuse`, a list of (run record, its training labels), with
    the same seed and labels as a (p, seed) is taken instead of training again:
    partial_labels with p = 0 is the true set and p = 1 is random_labels, exactly.

    Per p: the runs, steps to 100 % and to 99 % training accuracy, each relative to the
    same seed's p = 0 run (None where a run did not get there), and their means."""
    x, y, xt, yt = data
    runs = []
    for seed in seeds:
        for p in p_levels:
            xc, yc, xtc, ytc = corrupted(x, y, xt, yt, "partial_labels", p=p, seed=seed)
            same = [r for r, labels in reuse if r["seed"] == seed and np.array_equal(labels, yc)]
            if same:
                r = dict(same[0], reused_from=same[0].get("kind"))
            else:
                r = train_run(xc, yc, xtc, ytc, seed=seed, desc=f"p={p:g} seed {seed}", **train)
            r.update(kind="partial_labels", p=p,
                     label_noise=float(np.mean(yc != y)))  # fraction changed, ≈ 0.9 p
            runs.append(r)
            _note(verbose, f"1b/c p={p:g} seed {seed}" + (" (1a run)" if same else ""), r)

    at = lambda p, key: [next(r[key] for r in runs if r["seed"] == s and r["p"] == p)
                         for s in seeds]
    lo, hi = p_levels[0], p_levels[-1]
    ratios = lambda key: [[h / b if b and h else None for h, b in zip(at(p, key), at(lo, key))]
                          for p in p_levels]   # per p, per seed: over the same seed's p = lo
    by_p = [[r for r in runs if r["p"] == p] for p in p_levels]
    rel100, rel99 = ratios("steps_to_fit"), ratios("steps_to_99")
    comparisons = {  # corrupted vs clean, paired by seed (the same initial weights)
        "test_error": paired([1 - a for a in at(hi, "test_accuracy")],
                             [1 - a for a in at(lo, "test_accuracy")], f"p={hi:g}", f"p={lo:g}",
                             what="test error", scale=100, unit=" points"),
        "steps_to_99": paired(at(hi, "steps_to_99"), at(lo, "steps_to_99"), f"p={hi:g}",
                              f"p={lo:g}", what="steps to 99 % training accuracy"),
        "steps_to_fit": paired(at(hi, "steps_to_fit"), at(lo, "steps_to_fit"), f"p={hi:g}",
                               f"p={lo:g}", what="steps to 100 % training accuracy")}
    per_p = lambda key: [[r[key] for r in rs] for rs in by_p]
    err = [[1.0 - a for a in accs] for accs in per_p("test_accuracy")]
    rec = {"p": list(p_levels), "seeds": list(seeds), "runs": runs,
           "steps_to_fit": per_p("steps_to_fit"), "steps_to_99": per_p("steps_to_99"),
           "relative_time_to_fit": rel100, "relative_time_to_99": rel99, "test_error": err,
           "train_accuracy": per_p("train_accuracy"), "corrupted_vs_clean": comparisons}
    for name, v in (("relative_time_to_fit", rel100), ("relative_time_to_99", rel99), ("test_error", err)):
        for stat in ("mean", "std"):
            rec[f"{stat}_{name}"] = [summary(a)[stat] for a in v]
    return rec


TABLE_1_ROWS = (  # (labels, weight decay on, augmentation on), as in the paper's Table 1
    ("true", False, False), ("true", True, False), ("true", False, True),
    ("true", True, True), ("random_labels", False, False))


def table_1(data, archs=("mlp1x512", "mlp3x512"), weight_decay=5e-4, aug_max_epochs=None,
            seed=0, reuse=None, verbose=True, **train):
    """Train and test accuracy per (architecture, labels, weight decay, augmentation).
    `reuse` maps (arch, labels, wd, aug) to an existing run of the same configuration.
    Augmented runs rarely reach 100 % on the shifted images, so they stop at
    `aug_max_epochs` (default: max_epochs)."""
    x, y, xt, yt = data
    reuse = reuse or {}
    rows = []
    for arch in archs:
        for labels, wd, aug in TABLE_1_ROWS:
            key = (arch, labels, wd, aug)
            if key in reuse:
                r = dict(reuse[key])
            else:
                cfg = dict(train)
                if aug and aug_max_epochs:
                    cfg["max_epochs"] = aug_max_epochs
                r = train_run(*corrupted(x, y, xt, yt, labels, seed=seed), arch=arch,
                              weight_decay=weight_decay if wd else 0.0, augment=aug,
                              seed=seed, desc=f"{arch} {labels} wd={wd:d} aug={aug:d}", **cfg)
            r.update(labels=labels)
            rows.append(r)
            _note(verbose, f"T1 {arch} {labels} wd={wd:d} aug={aug:d}"
                  + (" (1a run)" if key in reuse else ""), r)
    return {"rows": rows, "weight_decay": weight_decay,
            "augmentation": "RandomCrop: zero-pad by side/8 pixels, cut a random window"}


COMPARED = ("train_accuracy", "test_accuracy", "steps_to_fit")


def batchnorm_table(data, arch="mlp3x512", seeds=(0,), labels=("true", "random_labels"),
                    reuse=None, verbose=True, **train):
    """Table 1's BatchNorm contrast (the paper's Inception with and without it; no crop, no
    weight decay): `arch` with BatchNorm beside the same net without, per seed from the same
    initial weights, scored in eval mode (running statistics) in training and after. `reuse`
    maps (arch, labels, seed) to a run. Per labels: mean ± std, paired BatchNorm − plain."""
    reuse, bn_arch, runs, groups = reuse or {}, arch + "_bn", [], []
    for lab in labels:
        for seed in seeds:
            split = corrupted(*data, lab, seed=seed)
            for name in (arch, bn_arch):
                key = (name, lab, seed)
                r = dict(reuse[key]) if key in reuse else train_run(
                    *split, arch=name, seed=seed, desc=f"{name} {lab} s{seed}", **train)
                r.update(labels=lab, batchnorm=name == bn_arch)
                runs.append(r)
                _note(verbose, f"T1-BN {name} {lab} seed {seed}" + " (T1 run)" * (key in reuse), r)
        at = lambda name, k: [r[k] for r in runs if r["labels"] == lab and r["arch"] == name]
        variants = [{"arch": name, "batchnorm": name == bn_arch,
                     "parameters": at(name, "parameters")[0],
                     "fitted": sum(s is not None for s in at(name, "steps_to_fit")),
                     **{k: summary(at(name, k)) for k in COMPARED}} for name in (bn_arch, arch)]
        groups.append({"labels": lab, "variants": variants, **{f"{k}_difference": paired(
            at(bn_arch, k), at(arch, k), "BatchNorm", "plain",
            what=f"{k.replace('_', ' ')}, {lab.replace('_', ' ')}",
            **(dict(scale=100, unit=" points") if "acc" in k else {})) for k in COMPARED}})
    return {"arch": arch, "batchnorm_arch": bn_arch, "seeds": list(seeds), "groups": groups,
            "runs": runs}



# --- Theorem 1: the exact memorizer -------------------------------------------------------

def exact_memorizer(X, y, seed=0, tries=16):
    """Zhang et al.'s Theorem 1, by construction. For n distinct samples X (n, d) and any
    real targets y (n,) or (n, k), pick a direction a, project z = X a, sort the z's and
    put a bias between each neighbouring pair, b₁ < z₍₁₎ < b₂ < z₍₂₎ < … < bₙ < z₍ₙ₎. Then

        f(x) = Σⱼ wⱼ · max(⟨a, x⟩ − bⱼ, 0)

    and the n×n matrix Aᵢⱼ = max(z₍ᵢ₎ − bⱼ, 0) is lower triangular with a positive
    diagonal, so A w = y has exactly one solution: f fits y exactly.

    Where each bⱼ sits in its gap matters in floating point. Midway knots make the
    slopes of f alternate and pile up (residuals near 1e-6 at n = 1000); a knot just
    above the previous projection, bⱼ = z₍ⱼ₋₁₎ + KNOT_OFFSET·(z₍ⱼ₎ − z₍ⱼ₋₁₎), makes f
    nearly the connect-the-dots interpolant, whose slopes stay bounded (≈ 1e-9).

    Built from tinydeep layers in float64:
        Linear(d, 1, no bias) [weight a]  →  Linear(1, n) [weight 1, bias −b]  →  ReLU
        →  Linear(n, k, no bias) [weight w]
    The first two compose into one hidden layer with the rank-one weight 1·aᵀ, so this is
    the paper's two-layer net. Its free numbers are a, b and w: d + n + n·k, which is 2n + d
    for one output (the middle layer's ones are fixed, not fitted).

    Of `tries` random directions the one with the widest smallest gap between sorted
    projections is kept (a better conditioned A). Returns (model, info)."""
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(len(X), -1)
    Y = np.asarray(y, dtype=np.float64)
    one_output = Y.ndim == 1
    Y = Y.reshape(len(Y), -1)
    n, d = X.shape
    if len(Y) != n:
        raise ValueError(f"exact_memorizer: X has {n} rows but y has {len(Y)}")
    if n < 1:
        raise ValueError("exact_memorizer needs at least one sample")
    proj = nn.Linear(d, 1, bias=False)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(tries):
        a = rng.standard_normal((1, d))
        proj.weight = nn.Parameter(a, dtype=np.float64)
        with no_grad():  # z from the network's own layer, so the solve sees exactly its z
            z = proj(tensor(X, dtype=np.float64)).numpy()[:, 0]
        zs = np.sort(z)
        gap = np.diff(zs).min() if n > 1 else 1.0
        if best is None or gap > best[0]:
            best = (gap, a, z)
    gap, a, z = best
    if gap <= 0:
        raise ValueError("exact_memorizer: the rows of X are not distinct (two samples "
                         "project to the same point on every direction tried)")
    proj.weight = nn.Parameter(a, dtype=np.float64)
    order = np.argsort(z)
    zs = z[order]
    b = np.empty(n)
    b[1:] = zs[:-1] + KNOT_OFFSET * np.diff(zs)   # just above the previous projection
    b[0] = zs[0] - ((zs[-1] - zs[0]) / (n - 1) if n > 1 else 1.0)  # a mean gap below all
    A = np.maximum(zs[:, None] - b[None, :], 0.0)  # lower triangular, diagonal > 0
    w = solve_triangular(A, Y[order], lower=True)   # (n, k)

    knots = nn.Linear(1, n)
    knots.weight = nn.Parameter(np.ones((n, 1)), dtype=np.float64)
    knots.bias = nn.Parameter(-b, dtype=np.float64)
    out = nn.Linear(n, Y.shape[1], bias=False)
    out.weight = nn.Parameter(w.T.copy(), dtype=np.float64)
    model = nn.Sequential(proj, knots, nn.ReLU(), out)
    k = Y.shape[1]
    info = {"n": n, "d": d, "outputs": k, "free_weights": d + n + n * k,
            "paper_count_2n_plus_d": 2 * n + d if one_output else None,
            "stored_numbers": sum(math.prod(p.shape) for p in model.parameters()),
            "min_gap": float(gap), "max_abs_w": float(np.abs(w).max()),
            "direction": a[0], "biases": b, "output_weights": w}
    return model, info


def memorizer_predict(model, X):
    """The memorizer's outputs on X (n, d) or images, as a float64 array."""
    X = np.asarray(X, dtype=np.float64)
    with no_grad():
        return model(tensor(X.reshape(len(X), -1), dtype=np.float64)).numpy()


def max_relative_residual(model, X, y):
    """max |f(xᵢ) − yᵢ| / max |yᵢ|."""
    f = memorizer_predict(model, X).reshape(np.shape(y))
    return float(np.abs(f - y).max() / max(np.abs(y).max(), np.finfo(float).tiny))


def theorem_1(data, n=1000, seed=0, curve_n=8):
    """The exact memorizer on n training images: arbitrary real targets (residual), random
    labels as one-hot targets (train accuracy 100 %, test at chance) and true labels
    (memorized too; how well does a projection on one random direction generalize?).
    Plus a tiny 1-D example for a picture of f along the projection."""
    x, y, xt, yt = data
    n = min(n, len(x))
    X = x[:n].reshape(n, -1)
    rng = np.random.default_rng(seed)
    rec = {"n": n, "d": X.shape[1]}
    t0 = time.perf_counter()
    targets = rng.standard_normal(n)
    model, info = exact_memorizer(X, targets, seed=seed)
    rec["real_targets"] = {"max_relative_residual": max_relative_residual(model, X, targets), **{
        k: info[k] for k in ("free_weights", "paper_count_2n_plus_d", "stored_numbers", "min_gap",
                             "max_abs_w")}}
    for name, labels in (("random_labels", corrupt(X, y[:n], "random_labels", seed=seed)[1]),
                         ("true_labels", y[:n])):
        onehot = np.eye(NUM_CLASSES)[labels]
        model, info = exact_memorizer(X, onehot, seed=seed)
        rec[name] = {"max_relative_residual": max_relative_residual(model, X, onehot),
                     "free_weights": info["free_weights"],
                     "train_accuracy": float(np.mean(memorizer_predict(model, X).argmax(1) == labels)),
                     "test_accuracy": float(np.mean(memorizer_predict(model, xt).argmax(1) == yt))}
    # the picture: n = curve_n points in 2-D, random targets, f along the direction a
    P, t = rng.standard_normal((curve_n, 2)), rng.standard_normal(curve_n)
    small, info = exact_memorizer(P, t, seed=seed)
    a = info["direction"]
    z = P @ a
    line = np.linspace(z.min() - 0.5, z.max() + 0.5, 400)
    f_line = memorizer_predict(small, line[:, None] * a[None, :] / (a @ a))[:, 0]
    rec["curve"] = {"z": z.tolist(), "targets": t.tolist(), "knots": info["biases"].tolist(),
                    "line": line.tolist(), "f": f_line.tolist()}
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    return rec


# --- everything, for the demo -----------------------------------------------------------------

# on MNIST-1D, MLP 1x512 fit only 98.7 % of true, 84.8 % of random labels in 300 epochs
FIGURE_ARCH = {"mnist1d": "mlp3x512"}
DEFAULT = dict(n_train=4000, n_test=4000, max_epochs=300, aug_max_epochs=50,
               archs=("mlp1x512", "mlp3x512"), memorizer_n=1000, p_levels=P_LEVELS)
QUICK = dict(n_train=500, n_test=2000, max_epochs=400, aug_max_epochs=150,
             archs=("mlp1x512",), memorizer_n=300, p_levels=(0.0, 0.5, 1.0),
             bn_arch="mlp1x512", bn_labels=("true",))


def run(dataset="glyphs", n_train=4000, n_test=4000, max_epochs=300, aug_max_epochs=50,
        archs=("mlp1x512", "mlp3x512"), memorizer_n=1000, lr=0.01, fit_threshold=1.0,
        weight_decay=5e-4, p_levels=P_LEVELS, seeds=(0,), download=False, verbose=True,
        device="cpu", bn_arch="mlp3x512", bn_labels=("true", "random_labels"), arch=None):
    """Figures 1a-1c (`arch`: FIGURE_ARCH's or MLP 1x512), Table 1 with its BatchNorm contrast
    (`bn_arch` over `seeds` on `bn_labels`; None skips it) and Theorem 1; one record."""
    t0 = time.perf_counter()
    seed = seeds[0]  # the data set, Figure 1a, Table 1 and Theorem 1 use the first seed
    data = load_data(dataset, n_train, n_test, seed=seed, download=download)
    train = dict(lr=lr, max_epochs=max_epochs, fit_threshold=fit_threshold, device=device)
    arch = arch or FIGURE_ARCH.get(dataset, "mlp1x512")
    if verbose:
        tqdm.write(f"{dataset}: {n_train} training, {n_test} test images; {arch}, SGD "
                   f"momentum 0.9, lr {lr}, batch 128, until {fit_threshold:.0%} training "
                   f"accuracy or {max_epochs} epochs")
    fig1a = figure_1a(data, seed=seed, verbose=verbose, arch=arch, **train)
    labels_of = {k: corrupted(*data, k, seed=seed)[1] for k in ("true", "random_labels")}
    fig1bc = figure_1bc(data, p_levels, seeds, verbose=verbose,
                        reuse=[(fig1a["runs"][k], labels_of[k]) for k in labels_of], arch=arch,
                        **train)
    reuse = {(arch, k, False, False): fig1a["runs"][k] for k in ("true", "random_labels")}
    tab1 = table_1(data, archs, weight_decay, aug_max_epochs, seed=seed, reuse=reuse,
                   verbose=verbose, **train)
    bn = bn_arch and batchnorm_table(  # Table 1's plain runs are the first seed's halves
        data, bn_arch, seeds, bn_labels, verbose=verbose, **train, reuse={
            (r["arch"], r["labels"], seed): r for r in tab1["rows"] if not r["weight_decay"]
            and not r["augment"]})
    thm1 = theorem_1(data, memorizer_n, seed=seed)
    if verbose:
        tqdm.write(f"  Theorem 1 memorizer on n={thm1['n']}  ({thm1['seconds']:.1f} s)")
    return {"config": {"dataset": dataset, "n_train": n_train, "n_test": len(data[2]),
                       "image_shape": list(data[0].shape[1:]), "lr": lr,
                       "lr_decay": "x0.95 per 50,000 samples seen (the paper's per-epoch "
                                   "decay on CIFAR-10)", "momentum": 0.9, "batch_size": 128,
                       "fit_threshold": fit_threshold, "max_epochs": max_epochs,
                       "aug_max_epochs": aug_max_epochs, "weight_decay": weight_decay,
                       "figure_arch": arch, "archs": list(archs), "memorizer_n": memorizer_n,
                       "seeds": list(seeds), "bn_arch": bn_arch, "bn_labels": list(bn_labels),
                       "chance": CHANCE, "device": device},
            "figure_1a": fig1a, "figure_1bc": fig1bc, "table_1": tab1,
            "table_1_batchnorm": bn, "theorem_1": thm1,
            "seconds": round(time.perf_counter() - t0, 1)}
