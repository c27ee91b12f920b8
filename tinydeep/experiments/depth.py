"""Depth at equal parameter count: is a deep net better than a fat one, and why could it be?

    seide_table          Seide, Li & Yu 2011 ("Conversational speech transcription using
                         context-dependent deep neural networks"), Table 2 analog: L×W MLPs for
                         L = 1…5 against one-hidden-layer nets with the same number of
                         parameters (within 2 %), same optimizer and epochs, test error per row
    folding_network      depth as paper folding (Telgarsky 2016): a depth-k ReLU net with two
                         units per layer, weights set by hand, that computes the k-fold tent
                         map T^k exactly — 2^k linear pieces from 6k + 1 numbers
    folding_check        that net against the closed form on a dense grid, in float64
    sawtooth_study       deep narrow vs shallow wide nets trained on sawtooth(k), k = 2…6, at
                         equal parameter counts: fit error vs k
    compositional_study  f(x) = 2(2cos²x − 1)² − 1 (Mhaskar, Liao & Poggio 2017): training loss
                         vs number of parameters for 1, 2 and 3 hidden layers
    run                  all of the above as one record, for demos/fat_vs_deep.py

The counting argument behind the sawtooth. One ReLU unit on a line adds at most one kink,
so a one-hidden-layer net with h units is piecewise linear with at most h + 1 pieces. A
layer applied after another can fold: T(u) = 2·relu(u) − 4·relu(u − ½) maps both halves
of [0, 1] onto [0, 1], so whatever follows sees the interval twice, and k layers of two
units each see it 2^k times. T^k has 2^k pieces, so a shallow net needs ≥ 2^k − 1 units
for it — 3·2^k − 2 parameters against the deep net's 6k + 1.

Training differs from representing. Whether SGD from a random start finds the folded
solution is an empirical question; the sawtooth study reports what it finds.

What the default run finds (2026-11-26, MNIST-1D, 3 seeds, every net trained to 100 %
training accuracy, which all reached):
  - Seide analog: depth wins beyond the seed noise at equal parameter count. 2 × 100
    (15,210 parameters) 34.5 ± 0.6 % test error vs 1 × 298: 41.6 ± 0.8 % (shallow − deep
    +7.1 ± 0.7 points, 95 % interval [+5.3, +8.9]); 3 × 100 (25,310) 30.3 ± 1.3 % vs
    1 × 496: 39.9 ± 0.3 % (+9.6 ± 1.5, [+5.8, +13.3]); 4 × 100 (35,410) 29.4 ± 0.5 % vs
    1 × 694: 40.4 ± 1.1 % (+11.0 ± 0.6, [+9.4, +12.6]); 1 × 100: 43.7 ± 1.2 %. Test error
    falls with depth and the shallow nets barely gain from width. Seide's gap (17.1 vs
    22.1 % WER) holds here in kind. On glyphs the same comparison was within the noise:
    the task saturates at 1–3 % error (`--dataset glyphs`).
  - sawtooth: SGD (PyTorch's default init, momentum, 2,000 steps) does not find the
    folded solution: trained deep narrow nets sit at the constant's error for k ≥ 3, and
    so do shallow nets for k ≥ 4 (PyTorch itself does the same); only the hand-set net
    shows depth's advantage. The gap is one of representation, not of trainability.
  - cos 4x (best of two seeds): single runs scatter by up to 10×, so only large ratios
    mean anything. 3 hidden layers reach 0.002 at ≈ 250 and ≈ 500 parameters, 6–10×
    below one hidden layer (0.023, 0.012); 2 hidden layers win at ≈ 120 (0.004 vs 0.19)
    but lose at ≈ 250 and ≈ 500 (0.15, 0.19); below ≈ 120 nothing beats ≈ 0.25.
"""
import contextlib
import functools
import math
import time

import numba
import numpy as np
from tqdm.auto import tqdm

from .. import functional as F, nn
from ..data import compositional, glyphs, mnist1d, sawtooth
from .args import check_dataset
from ..data.toy import tent
from ..rng import manual_seed
from ..tensor import no_grad, tensor
from .sweep import paired, run_tasks, summary
from .training import evaluate, fit

NUM_CLASSES = 10
# Seide et al. 2011, Table 2 (Switchboard, word error rate %): L×2k deep nets and one-
# hidden-layer nets; the three shallow rows have the parameters of the 2×2k, 3×2k (about)
# and 7×2k nets.
SEIDE_DEEP = {1: 24.2, 2: 20.4, 3: 18.4, 4: 17.8, 5: 17.2, 7: 17.1}
SEIDE_SHALLOW = {3772: 22.5, 4634: 22.6, 16000: 22.1}
MATCH_TOLERANCE = 0.02  # shallow twins have the deep net's parameter count within 2 %


# --- counting parameters -----------------------------------------------------------------

def param_count(in_features, width, depth, out_features):
    """Parameters of nn.MLP(in_features, width, depth, out_features): weights and biases,
        (in + 1)·w + (depth − 1)·(w + 1)·w + (w + 1)·out     (depth ≥ 1)."""
    if depth == 0:
        return (in_features + 1) * out_features
    return ((in_features + 1) * width + (depth - 1) * (width + 1) * width
            + (width + 1) * out_features)


def width_for(params, in_features, depth, out_features):
    """The width w ≥ 1 whose MLP(in, w, depth, out) count is nearest `params`.
    The count is increasing in w, so solve the quadratic (linear for depth 1) and
    compare the integers on either side."""
    if int(depth) != depth or depth < 1:
        raise ValueError(f"width_for: depth must be an integer >= 1, got {depth!r}")
    if params < param_count(in_features, 1, depth, out_features):
        raise ValueError(f"width_for: {params} parameters are fewer than a width-1 "
                         f"MLP({in_features}, 1, {depth}, {out_features}) has")
    a = depth - 1                              # count = a·w² + b·w + out
    b = in_features + 1 + out_features + a
    c = out_features - params
    w = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = {max(1, math.floor(w)), max(1, math.ceil(w))}
    return min(candidates, key=lambda v: (abs(param_count(in_features, v, depth, out_features)
                                              - params), v))


def model_params(model):
    return sum(math.prod(p.shape) for p in model.parameters())


# --- 1. Seide et al. 2011 analog ---------------------------------------------------------------

SEIDE_DATASETS = ("mnist1d", "glyphs", "mnist", "fashion-mnist", "cifar10")


def load_glyphs(n_train, n_test, seed=0):
    """Flattened glyph images (n, 784) float32 and labels: train from `seed`, test from seed+1."""
    train, test = glyphs(n_train, seed=seed), glyphs(n_test, seed=seed + 1)
    return (train.images.reshape(n_train, -1), train.labels,
            test.images.reshape(n_test, -1), test.labels)


@functools.lru_cache(maxsize=2)
def seide_data(dataset="mnist1d", n_train=4000, n_test=1000):
    """(x, y, x_test, y_test), inputs flattened: MNIST-1D (the published set: its first
    n_train of 4,000 training and n_test of 1,000 test sequences, 40 inputs), glyphs
    (784 inputs), or a real set whose files are present (subsampled with seed 0).
    Cached per process: every task of a sweep asks for the same set."""
    check_dataset(dataset, SEIDE_DATASETS)
    if dataset == "glyphs":
        return load_glyphs(n_train, n_test)
    if dataset in ("mnist", "fashion-mnist", "cifar10"):  # when their files are present
        from .random_labels import load_data
        x, y, xt, yt = load_data(dataset, n_train, n_test)
        return x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt
    (x, y), (xt, yt) = mnist1d(), mnist1d(train=False)
    if n_train > len(x) or n_test > len(xt):
        raise ValueError(f"mnist1d has {len(x)} training and {len(xt)} test sequences; asked "
                         f"for {n_train} and {n_test}")
    return (x[:n_train].reshape(n_train, -1), y[:n_train],
            xt[:n_test].reshape(n_test, -1), yt[:n_test])


def seide_pairs(in_features, width, depths=(1, 2, 3, 4, 5), out_features=NUM_CLASSES):
    """For each depth L: (L, W, its parameters, W', the 1×W' parameters, relative gap),
    where 1×W' is the one-hidden-layer net nearest in parameter count."""
    rows = []
    for L in depths:
        p = param_count(in_features, width, L, out_features)
        w1 = width_for(p, in_features, 1, out_features)
        p1 = param_count(in_features, w1, 1, out_features)
        rows.append((L, width, p, w1, p1, abs(p1 - p) / p))
    return rows


def seide_task(dataset, depth, width, seed, max_epochs, lr, n_train, n_test):
    """One net of the Seide analog, trained to measured convergence: SGD (momentum 0.9,
    batch 128, constant lr) until the whole training set is classified correctly (scored
    after every epoch), or `max_epochs`; `converged` says which. Every net, deep or
    shallow, stops at the same point (zero training error), so their test errors compare
    like with like, not one net half-trained against another fully trained."""
    x, y, xt, yt = seide_data(dataset, n_train, n_test)
    manual_seed(seed)
    model = nn.MLP(x.shape[1], width, depth, NUM_CLASSES)
    t0 = time.perf_counter()
    hist = fit(model, x, y, epochs=max_epochs, lr=lr, seed=seed, stop_at_accuracy=1.0,
               eval_train=True, desc=f"{depth}x{width} seed {seed}")
    train_acc, train_loss = evaluate(model, x, y)
    test_acc, test_loss = evaluate(model, xt, yt)
    return {"depth": depth, "width": width, "parameters": model_params(model), "seed": seed,
            "train_error": 1 - train_acc, "train_loss": train_loss,
            "test_error": 1 - test_acc, "test_loss": test_loss,
            "epochs": len(hist["train_acc"]), "steps_to_fit": hist["steps_to_fit"],
            "converged": hist["steps_to_fit"] is not None,
            "seconds": round(time.perf_counter() - t0, 2)}


def seide_table(dataset="mnist1d", width=100, depths=(1, 2, 3, 4), max_epochs=300, lr=0.05,
                seeds=(0, 1, 2), n_train=4000, n_test=1000, sweep=None, out=None,
                verbose=True):
    """Test error of L×W MLPs and of their one-hidden-layer twins (same parameter count
    within 2 %), every net trained to zero training error (seide_task), over seeds. The
    1×W net is its own twin and is trained once per seed. Per row: the runs, mean ± std
    of both test errors, and the paired difference shallow − deep over seeds with its
    95 % interval; `deep_wins` is True/False only where that difference is beyond the seed
    noise, None where it is not (or for L = 1)."""
    in_features = seide_data(dataset, n_train, n_test)[0].shape[1]
    pairs = seide_pairs(in_features, width, depths)
    for L, w, p, w1, p1, gap in pairs:
        if gap > MATCH_TOLERANCE:
            raise ValueError(f"seide_table: no one-hidden-layer width matches {L}x{w} "
                             f"({p} parameters) within {MATCH_TOLERANCE:.0%}")
    nets = sorted({(L, w) for L, w, *_ in pairs} | {(1, w1) for _, _, _, w1, _, _ in pairs})
    tasks = [dict(dataset=dataset, depth=L, width=w, seed=s, max_epochs=max_epochs, lr=lr,
                  n_train=n_train, n_test=n_test) for L, w in nets for s in seeds]
    runs = run_tasks(seide_task, tasks, out=out, desc="seide", **(sweep or {}))
    of = lambda L, w: sorted((r for r in runs if r["depth"] == L and r["width"] == w),
                             key=lambda r: r["seed"])
    rows = []
    for L, w, p, w1, p1, gap in pairs:
        deep, shallow = of(L, w), of(1, w1)
        d_err, s_err = [r["test_error"] for r in deep], [r["test_error"] for r in shallow]
        diff = paired(s_err, d_err, f"1x{w1}", f"{L}x{w}", what="test error", scale=100,
                      unit=" points")
        rows.append({"depth": L, "width": w, "parameters": p,
                     "shallow_width": w1, "shallow_parameters": p1, "relative_gap": gap,
                     "deep_runs": deep, "shallow_runs": shallow,
                     "deep_test_error": summary(d_err)["mean"],
                     "deep_test_error_std": summary(d_err)["std"],
                     "shallow_test_error": summary(s_err)["mean"],
                     "shallow_test_error_std": summary(s_err)["std"],
                     "deep_train_error": float(np.mean([r["train_error"] for r in deep])),
                     "shallow_train_error": float(np.mean([r["train_error"] for r in shallow])),
                     "all_converged": all(r["converged"] for r in deep + shallow),
                     "shallow_minus_deep": diff if L > 1 else None,
                     "deep_wins": (None if L == 1 or not diff["beyond_noise"]
                                   else diff["mean"] > 0)})
        if verbose:
            tqdm.write(f"  {L}x{w:<4} {p:>8,} params  test error "
                       f"{100 * rows[-1]['deep_test_error']:5.1f} ± "
                       f"{100 * rows[-1]['deep_test_error_std']:.1f} %   1x{w1:<5} {p1:>8,} "
                       f"params  {100 * rows[-1]['shallow_test_error']:5.1f} ± "
                       f"{100 * rows[-1]['shallow_test_error_std']:.1f} %")
    deep_errs = [r["deep_test_error"] for r in rows]
    verdict = {
        # Seide's two orderings: error falls with depth, and beats the same-size shallow net
        "deep_beats_shallow_rows": sum(r["deep_wins"] is True for r in rows[1:]),
        "shallow_beats_deep_rows": sum(r["deep_wins"] is False for r in rows[1:]),
        "rows_compared": len(rows) - 1,
        "error_falls_with_depth": bool(np.all(np.diff(deep_errs) < 0)),
        "best_deep_depth": rows[int(np.argmin(deep_errs))]["depth"],
        "all_converged": all(r["all_converged"] for r in rows),
    }
    return {"dataset": dataset, "n_train": n_train, "n_test": n_test, "width": width,
            "depths": list(depths), "max_epochs": max_epochs, "lr": lr, "seeds": list(seeds),
            "rows": rows, "verdict": verdict}


# --- 2. depth as folding ------------------------------------------------------------------

def folding_network(k, dtype=np.float64):
    """A depth-k ReLU net with two units per hidden layer that computes T^k on [0, 1],
    T(u) = 1 − |2u − 1| the tent map, exactly — its weights set by hand:

        layer 1      h = relu([u, u − ½])               u = x
        layers 2…k   h = relu([t, t − ½]),  t = 2·h₁ − 4·h₂   (= T of the previous u)
        output       T^k(x) = 2·h₁ − 4·h₂

    Why it works: for u ∈ [0, 1], 2·relu(u) − 4·relu(u − ½) is 2u on [0, ½] and 2 − 2u
    on [½, 1], i.e. T(u), and T maps [0, 1] onto itself, so every layer sees an input
    in [0, 1] again. Every weight and bias (1, 2, −4, −½) is a power of two or a sum of two,
    so in float64 the only rounding is in the data. An nn.Sequential of k + 1 nn.Linear
    layers with k nn.ReLU between them; 6k + 1 parameters."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"folding_network: k must be an integer >= 1, got {k!r}")
    fold_w = np.array([[2.0, -4.0], [2.0, -4.0]])   # both units read t = 2h₁ − 4h₂
    split_b = np.array([0.0, -0.5])                 # … and cut it at 0 and at ½
    layers = []
    for i in range(int(k)):
        lin = nn.Linear(1 if i == 0 else 2, 2)
        lin.weight = nn.Parameter(np.ones((2, 1)) if i == 0 else fold_w, dtype=dtype)
        lin.bias = nn.Parameter(split_b, dtype=dtype)
        layers += [lin, nn.ReLU()]
    out = nn.Linear(2, 1)
    out.weight = nn.Parameter(fold_w[:1], dtype=dtype)
    out.bias = nn.Parameter(np.zeros(1), dtype=dtype)
    return nn.Sequential(*layers, out)


def tent_power(x, k):
    """The closed form T^k(x), T(u) = 1 − |2u − 1| applied k times (tinydeep.data's tent)."""
    y = np.asarray(x, dtype=np.float64)
    for _ in range(int(k)):
        y = tent(y)
    return y


def predict(model, x, dtype=np.float64):
    """A 1-D regression model's outputs at points x (n,) or (n, 1), as a flat array."""
    x = np.asarray(x, dtype=dtype).reshape(-1, 1)
    with no_grad():
        return model(tensor(x, dtype=dtype)).numpy().reshape(-1)


def count_pieces(f, k, per_piece=8):
    """The number of linear pieces of f on [0, 1], for an f whose kinks can only lie at
    multiples of 2^−k (T^k and the folding net): slopes on a grid of step 2^−k/per_piece,
    every grid cell inside one piece, and a new piece wherever the slope changes."""
    x = np.arange(2 ** k * per_piece + 1) / (2 ** k * per_piece)  # exact dyadic points
    slopes = np.diff(f(x)) / np.diff(x)
    return int(1 + np.sum(~np.isclose(slopes[1:], slopes[:-1], rtol=1e-9, atol=1e-9)))


def folding_check(k, n=100_001, dyadic_bits=8):
    """folding_network(k) in float64 against T^k on n evenly spaced points of [0, 1] plus
    every breakpoint j/2^k: max |net − T^k|, and both functions' numbers of linear pieces.
    Also the error on the dyadic grid i/2^(k + dyadic_bits): there every intermediate value
    is a multiple of 2^−(k + dyadic_bits) below 4, so net and closed form are both exact
    and the error must be 0. On the even grid a point x is not dyadic, the two round
    differently (ulp-sized), and each later fold doubles that: error ≲ 2^k·eps."""
    net = folding_network(k)
    x = np.union1d(np.linspace(0.0, 1.0, n), np.arange(2 ** k + 1) / 2 ** k)
    err = np.abs(predict(net, x) - tent_power(x, k))
    xd = np.arange(2 ** (k + dyadic_bits) + 1) / 2 ** (k + dyadic_bits)
    err_d = np.abs(predict(net, xd) - tent_power(xd, k))
    return {"k": k, "points": len(x), "parameters": model_params(net),
            "max_abs_error": float(err.max()), "max_abs_error_dyadic": float(err_d.max()),
            "dyadic_points": len(xd),
            "pieces_network": count_pieces(lambda t: predict(net, t), k),
            "pieces_closed_form": count_pieces(lambda t: tent_power(t, k), k),
            "pieces_expected": 2 ** k}


# --- training a 1-D regression ----------------------------------------------------------------

@contextlib.contextmanager
def one_thread():
    """Run numba's parallel kernels on one thread inside the block. The 1-D nets here hold
    at most a few hundred numbers per layer: splitting such a kernel over cores costs more
    (a fork and join per kernel, and a stall whenever another process holds a core) than
    the arithmetic it shares."""
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def fit_regression(model, x, y, steps, lr, momentum=0.9, batch_size=128, lr_final=0.1,
                   seed=0, desc="fit"):
    """Mean-squared error by SGD with momentum through the one training loop (`fit` with
    loss=F.mse_loss), for at least `steps` mini-batch steps in whole epochs, the learning
    rate decaying geometrically per epoch from lr to lr·lr_final at the end. Returns the
    losses, one per step, and the final MSE over the whole (x, y)."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"fit_regression: steps must be a positive integer, got {steps!r}")
    if np.shape(x)[0] != np.shape(y)[0] or np.ndim(y) != 2 or np.shape(y)[1] != 1:
        raise ValueError(f"fit_regression: need x (n, d) and y (n, 1), got {np.shape(x)} "
                         f"and {np.shape(y)}")
    epochs = -(-int(steps) // -(-len(x) // batch_size))
    hist = fit(model, x, y, epochs=epochs, lr=lr, momentum=momentum,
               lr_decay=lr_final ** (1 / epochs), batch_size=batch_size, seed=seed, desc=desc,
               loss=F.mse_loss)
    mse = float(np.mean((predict(model, x, np.float32) - y.reshape(-1)) ** 2))
    return {"losses": hist["losses"], "mse": mse}


def _binned(losses, bins=100):
    """Mean loss over consecutive blocks of steps (≤ `bins` points) as (step, mean) lists."""
    k = max(1, -(-len(losses) // bins))
    n = len(losses) // k * k
    means = np.asarray(losses[:n]).reshape(-1, k).mean(1)
    return list(range(k, n + 1, k)), [float(f"{m:.4g}") for m in means]


def _regression_run(x, y, depth, width, steps, lr, seed, desc, x_eval=None, y_eval=None):
    manual_seed(seed)
    model = nn.MLP(1, width, depth, 1)
    t0 = time.perf_counter()
    r = fit_regression(model, x, y, steps, lr, seed=seed, desc=desc)
    out = {"depth": depth, "width": width, "parameters": model_params(model), "seed": seed,
           "train_mse": r["mse"], "seconds": round(time.perf_counter() - t0, 2)}
    out["curve_steps"], out["curve_loss"] = _binned(r["losses"])
    if x_eval is not None:
        out["eval_mse"] = float(np.mean((predict(model, x_eval, np.float32)
                                         - y_eval.reshape(-1)) ** 2))
        out["eval_prediction"] = predict(model, x_eval, np.float32).round(5).tolist()
    return out


def _best(runs, key):
    return min(runs, key=lambda r: r[key])


def sawtooth_study(ks=(2, 3, 4, 5, 6), deep_width=8, n_train=1024, n_eval=2049, steps=2000,
                   lr=0.1, seeds=(0, 1), verbose=True):
    """On sawtooth(k) (x on an even grid of [0, 1], y = T^k(x)), for each k:

        deep      MLP(1, deep_width, k, 1): depth k, trained from a random start
        shallow   MLP(1, h, 1, 1), h chosen for the deep net's parameter count
        folding   folding_network(k), set by hand: 6k + 1 parameters, error 0
        shallow_as_folding   MLP(1, 2k, 1, 1): 6k + 1 parameters like the folding net,
                  at most 2k + 1 pieces against T^k's 2^k

    Fit error is the mean squared error on n_eval evenly spaced points (a denser grid than
    the training one, so it measures the function, not the training points). With several
    seeds a net's error is the best over seeds (a restart is a fair part of training
    either way); every run is kept. The constant ½ has error Var(T^k) = 1/12 ≈ 0.083."""
    x_eval = np.linspace(0, 1, n_eval).astype(np.float32)
    rows = []
    for k in ks:
        x, y = sawtooth(k, n_train)
        y_eval = tent_power(x_eval.astype(np.float64), k).astype(np.float32)
        p_deep = param_count(1, deep_width, k, 1)
        h = width_for(p_deep, 1, 1, 1)
        fold = folding_network(k, np.float32)
        row = {"k": k, "pieces": 2 ** k, "deep_width": deep_width, "shallow_width": h,
               "deep_parameters": p_deep, "shallow_parameters": param_count(1, h, 1, 1),
               "folding_parameters": model_params(fold),
               "folding_eval_mse": float(np.mean((predict(fold, x_eval, np.float32)
                                                  - y_eval) ** 2))}
        for name, depth, width in (("deep", k, deep_width), ("shallow", 1, h),
                                   ("shallow_as_folding", 1, 2 * k)):
            runs = [_regression_run(x, y, depth, width, steps, lr, s,
                                    f"k={k} {name} {depth}x{width} seed {s}", x_eval, y_eval)
                    for s in seeds]
            best = _best(runs, "eval_mse")
            row[name + "_runs"] = runs
            row[name + "_eval_mse"] = best["eval_mse"]
            row[name + "_train_mse"] = best["train_mse"]
        if verbose:
            tqdm.write(f"  k={k}  deep {k}x{deep_width} ({p_deep} params) mse "
                       f"{row['deep_eval_mse']:.2e}   shallow 1x{h} ({row['shallow_parameters']}) "
                       f"mse {row['shallow_eval_mse']:.2e}   1x{2 * k} "
                       f"({row['folding_parameters']}) mse {row['shallow_as_folding_eval_mse']:.2e}")
        rows.append(row)
    return {"ks": list(ks), "deep_width": deep_width, "n_train": n_train, "n_eval": n_eval,
            "steps": steps, "lr": lr, "seeds": list(seeds), "x_eval": x_eval.tolist(),
            "constant_mse": 1 / 12, "rows": rows}


# --- 3. a compositional function -----------------------------------------------------------

def compositional_study(depths=(1, 2, 3), budgets=(16, 32, 64, 128, 256, 512), n_train=1024,
                        steps=2000, lr=0.02, seeds=(0,), verbose=True):
    """Training MSE on f(x) = 2(2cos²x − 1)² − 1 = cos 4x, x ∈ [−π, π] (evenly spaced),
    of MLPs with 1, 2, 3 hidden layers whose widths give parameter counts nearest each
    budget. Same SGD, steps and learning rate for all; best over seeds.
    The constant 0 has MSE ½ (the mean of cos² 4x)."""
    x, y = compositional(n_train)
    curves = {}
    for depth in depths:
        points = []
        for budget in budgets:
            w = width_for(budget, 1, depth, 1)
            runs = [_regression_run(x, y, depth, w, steps, lr, s, f"depth {depth} width {w}")
                    for s in seeds]
            best = _best(runs, "train_mse")
            points.append({"budget": budget, "width": w, "parameters": best["parameters"],
                           "train_mse": best["train_mse"], "runs": runs})
            if verbose:
                tqdm.write(f"  {depth} hidden x {w:<3} ({best['parameters']:>4} params)  "
                           f"training mse {best['train_mse']:.2e}")
        curves[str(depth)] = points
    return {"depths": list(depths), "budgets": list(budgets), "n_train": n_train,
            "steps": steps, "lr": lr, "seeds": list(seeds), "constant_mse": 0.5,
            "curves": curves}


# --- everything, for the demo ------------------------------------------------------------------

DEFAULT = dict(dataset="mnist1d", n_train=4000, n_test=1000, width=100, depths=(1, 2, 3, 4),
               max_epochs=300, lr=0.05, seide_seeds=(0, 1, 2),
               saw_steps=2000, saw_seeds=(0, 1), comp_steps=2000, comp_seeds=(0, 1),
               ks=(2, 3, 4, 5, 6), budgets=(16, 32, 64, 128, 256, 512))
QUICK = dict(dataset="mnist1d", n_train=600, n_test=400, width=16, depths=(1, 2, 3),
             max_epochs=3, lr=0.05, seide_seeds=(0, 1),
             saw_steps=60, saw_seeds=(0,), comp_steps=60, comp_seeds=(0,),
             ks=(2, 3, 4, 5, 6), budgets=(16, 64))


def run(dataset="mnist1d", n_train=4000, n_test=1000, width=100, depths=(1, 2, 3, 4),
        max_epochs=300, lr=0.05, seide_seeds=(0, 1, 2), ks=(2, 3, 4, 5, 6), deep_width=8,
        saw_steps=2000, saw_lr=0.1, saw_seeds=(0, 1), budgets=(16, 32, 64, 128, 256, 512),
        comp_steps=2000, comp_lr=0.02, comp_seeds=(0, 1), seed=0, sweep=None, out=None,
        verbose=True):
    """The three parts on MNIST-1D (or glyphs) and the toy sets; one record. sweep and
    out go to the Seide part's run_tasks (workers, scheduler, threads; a folder of runs)."""
    t0 = time.perf_counter()
    if verbose:
        tqdm.write(f"1. Seide et al. analog: {dataset}, {n_train} training and {n_test} test "
                   f"samples; L x {width} vs one hidden layer, SGD momentum 0.9, lr {lr}, "
                   f"batch 128, each net until 100 % training accuracy (at most {max_epochs} "
                   f"epochs); seeds {list(seide_seeds)}")
    seide = seide_table(dataset, width, depths, max_epochs, lr, seide_seeds, n_train, n_test,
                        sweep=sweep, out=out, verbose=verbose)
    t1 = time.perf_counter()
    folding = [folding_check(k) for k in ks]
    if verbose:
        tqdm.write("2. folding networks: max |net - T^k| = "
                   + ", ".join(f"{f['max_abs_error']:.1e}" for f in folding))
    with one_thread():
        saw = sawtooth_study(ks, deep_width, steps=saw_steps, lr=saw_lr, seeds=saw_seeds,
                             verbose=verbose)
        t2 = time.perf_counter()
        if verbose:
            tqdm.write("3. compositional function: training loss vs parameters")
        comp = compositional_study(budgets=budgets, steps=comp_steps, lr=comp_lr,
                                   seeds=comp_seeds, verbose=verbose)
    t3 = time.perf_counter()
    return {"config": {"dataset": dataset, "n_train": n_train, "n_test": n_test,
                       "width": width, "depths": list(depths), "max_epochs": max_epochs,
                       "lr": lr,
                       "momentum": 0.9, "batch_size": 128, "seed": seed,
                       "seide_seeds": list(seide_seeds), "ks": list(ks),
                       "deep_width": deep_width, "saw_steps": saw_steps, "saw_lr": saw_lr,
                       "saw_seeds": list(saw_seeds), "budgets": list(budgets),
                       "comp_steps": comp_steps, "comp_lr": comp_lr,
                       "comp_seeds": list(comp_seeds)},
            "seide": seide, "seide_paper": {"deep": SEIDE_DEEP, "shallow": SEIDE_SHALLOW},
            "folding": folding, "sawtooth": saw, "compositional": comp,
            "seconds": {"seide": round(t1 - t0, 1), "sawtooth": round(t2 - t1, 1),
                        "compositional": round(t3 - t2, 1), "total": round(t3 - t0, 1)}}
