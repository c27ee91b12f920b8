"""MNIST-1D (Greydanus 2020): the paper's logistic, MLP and CNN rows and its
shuffled-positions contrast, over seeds, beside the published numbers.

The models follow the paper's code: logistic regression (40 → 10); an MLP
40 → 100 → 100 → 10 with ReLU; a CNN of three 1-D convolutions with 25 channels
(kernel 5 stride 2, kernel 3 stride 2, kernel 3 stride 2, ReLU after each), then a
linear layer. A 1-D convolution is a Conv2d of kernel (1, k) on (N, 1, 1, 40).
Each convolution is padded by 1 along the sequence, as in the paper (40 → 19 → 10
→ 5 positions, 125 features). Training is SGD with momentum 0.9 (the paper uses
Adam, lr 0.01, 6,000 steps of batch 100), batch 128, a fixed number of epochs with
lr × `lr_decay` per epoch.

Shuffled: one permutation of the 40 positions for every sequence, train and test
alike. An MLP has no notion of position, so to it this is the same task relabelled;
a CNN loses the locality its kernels assume.

A run is one task (model, shuffled, seed) for tinydeep.experiments.sweep.
"""
import math
import time

from .. import nn
from ..data.mnist1d import PUBLISHED, PUBLISHED_SHUFFLED, SOURCE, mnist1d
from ..rng import manual_seed
from .sweep import paired, run_tasks, summary
from .training import evaluate, fit

MODELS = ("logistic", "mlp", "cnn")
CHANNELS = 25


def make_model(name, length=40, seed=0):
    """The paper's models for sequences (N, 1, 1, length)."""
    manual_seed(seed)
    if name == "logistic":
        return nn.Sequential(nn.Flatten(), nn.Linear(length, 10))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(length, 100), nn.ReLU(),
                             nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    if name == "cnn":
        w = length
        layers = []
        for i, k in enumerate((5, 3, 3)):
            layers += [nn.Conv2d(1 if i == 0 else CHANNELS, CHANNELS, (1, k), stride=(1, 2),
                                 padding=(0, 1)), nn.ReLU()]
            w = (w + 2 - k) // 2 + 1
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(CHANNELS * w, 10))
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def load(shuffled=False, num_samples=5000, data_seed=42):
    """(x, y, x_test, y_test) of MNIST-1D; data_seed 42 is the published set."""
    x, y = mnist1d(True, shuffled, data_seed, num_samples)
    xt, yt = mnist1d(False, shuffled, data_seed, num_samples)
    return x, y, xt, yt


def train_run(model="cnn", shuffled=False, seed=0, epochs=40, lr=0.1, lr_decay=0.97,
              batch_size=128, num_samples=5000, data_seed=42):
    """One task: train `model` from seed `seed` (weights and batch order) and score it."""
    x, y, xt, yt = load(shuffled, num_samples, data_seed)
    net = make_model(model, x.shape[-1], seed=seed)
    t0 = time.perf_counter()
    hist = fit(net, x, y, epochs=epochs, lr=lr, lr_decay=lr_decay, batch_size=batch_size,
               seed=seed, test=(xt, yt), desc=f"{model}{' shuffled' if shuffled else ''} s{seed}")
    train_acc, _ = evaluate(net, x, y)
    test_acc, test_loss = evaluate(net, xt, yt)
    return {"model": model, "shuffled": shuffled, "seed": seed, "epochs": epochs, "lr": lr,
            "lr_decay": lr_decay,
            "parameters": int(sum(math.prod(p.shape) for p in net.parameters())),
            "train_accuracy": train_acc, "test_accuracy": test_acc, "test_loss": test_loss,
            "test_curve": hist["test_acc"], "train_curve": hist["train_acc"],
            "seconds": round(time.perf_counter() - t0, 2)}


DEFAULT = dict(models=MODELS, seeds=(0, 1, 2), epochs=40)
QUICK = dict(models=("mlp", "cnn"), seeds=(0, 1), epochs=3, num_samples=1000)


def run(models=MODELS, seeds=(0, 1, 2), epochs=40, lr=0.1, lr_decay=0.97, num_samples=5000,
        sweep=None, out=None):
    """Every (model, shuffled or not, seed) as a task; the table rows with mean ± std over
    seeds beside the published numbers, and the paired shuffled − plain difference."""
    tasks = [dict(model=m, shuffled=s, seed=seed, epochs=epochs, lr=lr, lr_decay=lr_decay,
                  num_samples=num_samples)
             for m in models for s in (False, True) for seed in seeds]
    tasks.sort(key=lambda t: -MODELS.index(t["model"]))   # the slowest (CNN) first
    t0 = time.perf_counter()
    runs = run_tasks(train_run, tasks, out=out, desc="mnist1d", **(sweep or {}))
    rows = []
    for m in models:
        acc = {s: [r["test_accuracy"] for r in runs if r["model"] == m and r["shuffled"] == s]
               for s in (False, True)}
        rows.append({"model": m, "parameters": next(r["parameters"] for r in runs
                                                     if r["model"] == m),
                     "test_accuracy": summary(acc[False]),
                     "shuffled_test_accuracy": summary(acc[True]),
                     "shuffled_minus_plain": paired(acc[True], acc[False], "shuffled", "plain",
                                                    what=f"{m} test accuracy", scale=100,
                                                    unit=" points"),
                     "published": PUBLISHED.get(m), "published_shuffled": PUBLISHED_SHUFFLED.get(m)})
    cnn_vs_mlp = None
    if "cnn" in models and "mlp" in models:
        by = lambda m, s: [r["test_accuracy"] for r in runs if r["model"] == m and r["shuffled"] == s]
        cnn_vs_mlp = {s: paired(by("cnn", s), by("mlp", s), "CNN", "MLP",
                                what=("shuffled" if s else "plain") + " test accuracy",
                                scale=100, unit=" points") for s in (False, True)}
        cnn_vs_mlp = {"plain": cnn_vs_mlp[False], "shuffled": cnn_vs_mlp[True]}
    return {"config": {"models": list(models), "seeds": list(seeds), "epochs": epochs, "lr": lr,
                       "lr_decay": lr_decay, "momentum": 0.9, "batch_size": 128,
                       "num_samples": num_samples, "data_seed": 42},
            "source": SOURCE, "runs": runs, "rows": rows, "cnn_minus_mlp": cnn_vs_mlp,
            "seconds": round(time.perf_counter() - t0, 1)}
