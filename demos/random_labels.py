"""Random-label memorization (Zhang et al. 2017): Figure 1a/1b/1c, Table 1, Theorem 1.

    python demos/random_labels.py [--quick] [--out results/] [--dataset glyphs]
                                  [--seeds 3] [--cnn] [--download]

Prints the tables as Markdown, writes random_labels_fig1a.png, random_labels_fig1bc.png,
random_labels_theorem1.png and random_labels.json to --out.
"""
import argparse
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinydeep as td  # noqa: E402
from tinydeep.experiments.args import out_dir, positive_int  # noqa: E402
from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402
from tinydeep.experiments import random_labels as rl  # noqa: E402

LABELS = {"true": "true labels", "random_labels": "random labels",
          "shuffled_pixels": "shuffled pixels", "random_pixels": "random pixels",
          "gaussian": "Gaussian"}
COLORS = {"true": "tab:blue", "random_labels": "tab:red", "shuffled_pixels": "tab:green",
          "random_pixels": "tab:orange", "gaussian": "tab:purple"}
ARCH_NAMES = {"mlp1x512": "MLP 1x512", "mlp3x512": "MLP 3x512", "cnn": "small CNN"}


def pct(v):
    return "—" if v is None else f"{100 * v:.1f}%"


def num(v, fmt="{:d}"):
    return "—" if v is None else fmt.format(v)


def seeds_joined(values, fmt):
    return ", ".join(num(v, fmt) for v in values)


def print_tables(rec):
    cfg, a, bc, t1, th = (rec["config"], rec["figure_1a"], rec["figure_1bc"], rec["table_1"],
                          rec["theorem_1"])
    print(f"\n{cfg['dataset']}: {cfg['n_train']} training and {cfg['n_test']} test images "
          f"{tuple(cfg['image_shape'])}; SGD momentum 0.9, lr {cfg['lr']}, {cfg['lr_decay']}, "
          f"batch 128; chance = {pct(cfg['chance'])}\n")

    print("### Figure 1a: every corruption is fitted (MLP 1x512)\n")
    rows = [[LABELS[k], num(r["steps_to_99"]), num(r["steps_to_fit"]),
             pct(r["train_accuracy"]), pct(r["test_accuracy"])]
            for k, r in a["runs"].items()]
    print(table(["data", "steps to 99% train", "steps to 100% train", "train accuracy",
                 "test accuracy"], rows))
    print(f"\nTest sets carry the same pixel corruption and true labels. Shuffled pixels use "
          f"one permutation for every image, train and test alike, and an MLP has no notion of "
          f"pixel order, so to it this is the true task relabelled: it generalizes as well. "
          f"Random pixels keep each image's total ink, and classifying by ink alone scores "
          f"{pct(a['ink_baseline'])} on the test set: that much survives the shuffle.\n")

    print("### Figure 1b: time to fit vs label corruption p (relative to p = 0)\n")
    rows = [[f"{p:g}", pct(np.mean([r["label_noise"] for r in bc["runs"] if r["p"] == p])),
             seeds_joined(s100, "{:d}"), num(m100, "{:.2f}"), seeds_joined(s99, "{:d}"),
             num(m99, "{:.2f}")]
            for p, s100, m100, s99, m99 in zip(bc["p"], bc["steps_to_fit"],
                                               bc["mean_relative_time_to_fit"],
                                               bc["steps_to_99"], bc["mean_relative_time_to_99"])]
    print(table(["p", "labels changed", "steps to 100%", "relative", "steps to 99%",
                 "relative"], rows))
    print(f"\n(seeds: {bc['seeds']}; the relative columns are mean ± std over seeds of "
          f"steps(p) / steps(p = 0) for the same seed: "
          + ", ".join(f"p={p:g}: {num(m, '{:.2f}')} ± {num(sd, '{:.2f}')}"
                      for p, m, sd in zip(bc["p"], bc["mean_relative_time_to_99"],
                                          bc["std_relative_time_to_99"])) + " (to 99%))\n")
    for c in bc.get("corrupted_vs_clean", {}).values():
        print("- " + c["sentence"])
    print(f"\nPaper: Zhang et al. 2017, Figure 1b/1c (CIFAR-10, Inception): the time to fit "
          f"grows with p, by a small constant factor at p = 1; the test error rises to "
          f"chance (90 %) as p → 1. The paper's schedule on MNIST-1D, over seeds: "
          f"demos/time_to_fit.py.\n")

    print("### Figure 1c: test error vs label corruption p\n")
    rows = [[f"{p:g}", seeds_joined(tr, "{:.1%}"), seeds_joined(te, "{:.1%}")]
            for p, tr, te in zip(bc["p"], bc["train_accuracy"], bc["test_error"])]
    print(table(["p", "train accuracy", "test error"], rows))
    print(f"\n(chance-level test error is {pct(1 - cfg['chance'])})\n")

    print("### Table 1 analog: train and test accuracy\n")
    rows = []
    for r in t1["rows"]:
        rows.append([ARCH_NAMES[r["arch"]], f"{r['parameters']:,}",
                     "yes" if r["augment"] else "no", "yes" if r["weight_decay"] else "no",
                     "random" if r["labels"] == "random_labels" else "true",
                     pct(r["train_accuracy"]), pct(r["test_accuracy"]),
                     num(r["steps_to_fit"]) if r["steps_to_fit"] else f"> {r['steps']}"])
    print(table(["model", "# params", "random crop", "weight decay", "labels",
                 "train accuracy", "test accuracy", "steps to 100%"], rows))
    print(f"\n(weight decay {t1['weight_decay']:g}; random crop = {t1['augmentation']}; "
          f"augmented runs stop at {cfg['aug_max_epochs']} epochs, training accuracy "
          f"is measured on the un-augmented images)\n")

    print("### Theorem 1: the exact memorizer (a two-layer ReLU net in closed form)\n")
    rt = th["real_targets"]
    rows = [["Gaussian real numbers", th["n"], th["d"],
             f"{rt['free_weights']:,} (2n+d = {rt['paper_count_2n_plus_d']:,})",
             f"{rt['max_relative_residual']:.1e}", "—", "—"]]
    for name, label in (("random_labels", "one-hot random labels"),
                        ("true_labels", "one-hot true labels")):
        r = th[name]
        rows.append([label, th["n"], th["d"], f"{r['free_weights']:,} (d + n + 10n)",
                     f"{r['max_relative_residual']:.1e}", pct(r["train_accuracy"]),
                     pct(r["test_accuracy"])])
    print(table(["targets", "n", "d", "free weights", "max relative residual",
                 "train accuracy", "test accuracy"], rows))
    print()


# --- plots -------------------------------------------------------------------------------

def plot_1a(rec):
    a = rec["figure_1a"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    for k, r in a["runs"].items():
        c = r["curve"]
        label = f"{LABELS[k]} (test {pct(r['test_accuracy'])})"
        # true labels drawn wide underneath: shuffled pixels often run right on top of it
        style = dict(lw=4, alpha=0.45) if k == "true" else dict(lw=1.3)
        ax_loss.plot(c["steps"], c["loss"], color=COLORS[k], label=label, **style)
        ax_acc.plot(c["epoch_end_steps"], c["train_acc"], color=COLORS[k], label=LABELS[k],
                    **style)
        if r["steps_to_fit"]:
            ax_loss.axvline(r["steps_to_fit"], color=COLORS[k], lw=0.8, ls=":")
    cfg = rec["config"]
    steps = a["runs"]["true"]["curve"]["steps"]
    block = steps[1] - steps[0] if len(steps) > 1 else 1
    ax_loss.set(xlabel="SGD step",
                ylabel=f"training loss (cross-entropy, mean of {block} steps)",
                title=f"Figure 1a: MLP 1x512 on {cfg['n_train']} {cfg['dataset']} images",
                ylim=(0, None))
    ax_loss.legend(title="data (test accuracy)", fontsize=8)
    ax_acc.axhline(rec["config"]["chance"], color="gray", ls="--", lw=0.8)
    last = max(r["curve"]["epoch_end_steps"][-1] for r in a["runs"].values())
    ax_acc.text(last, rec["config"]["chance"] + 0.02, "chance", ha="right", color="gray",
                fontsize=8)
    ax_acc.set(xlabel="SGD step", ylabel="accuracy on the whole training set",
               title="training accuracy after each epoch (dotted: steps to 100%)", ylim=(0, 1.02))
    ax_acc.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig


def plot_1bc(rec):
    bc = rec["figure_1bc"]
    p = np.array(bc["p"])
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    for key, mean_key, color, label in (
            ("relative_time_to_fit", "mean_relative_time_to_fit", "tab:red", "to 100% train"),
            ("relative_time_to_99", "mean_relative_time_to_99", "tab:blue", "to 99% train")):
        mean = np.array([np.nan if v is None else v for v in bc[mean_key]])
        std = np.array([0.0 if v is None else v
                        for v in bc.get(key.replace("relative", "std_relative"),
                                        [None] * len(p))])
        ax_t.errorbar(p, mean, yerr=std, fmt="o-", capsize=4, color=color,
                      label=label + (" (mean ± std over seeds)" if len(bc["seeds"]) > 1 else ""))
        if len(bc["seeds"]) > 1:
            for pi, vals in zip(p, bc[key]):
                ax_t.plot([pi] * len(vals), [np.nan if v is None else v for v in vals], ".",
                          color=color, alpha=0.4)
    ax_t.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax_t.set(xlabel="label corruption p", ylabel="steps to fit / steps at p = 0",
             title="Figure 1b: time to fit (MLP 1x512)", ylim=(0, None))
    ax_t.legend()
    err = np.array([np.nan if v is None else v for v in bc["mean_test_error"]])
    ax_e.errorbar(p, err, yerr=bc.get("std_test_error"), fmt="o-", capsize=4, color="tab:red",
                  label="test error" + (" (mean ± std)" if len(bc["seeds"]) > 1 else ""))
    train_err = 1 - np.array([np.mean(v) for v in bc["train_accuracy"]])
    ax_e.plot(p, train_err, "s-", color="tab:blue", label="training error")
    chance_err = 1 - rec["config"]["chance"]
    ax_e.axhline(chance_err, color="gray", ls="--", lw=0.8)
    ax_e.text(0.0, chance_err + 0.015, "chance", color="gray", fontsize=8)
    ax_e.set(xlabel="label corruption p", ylabel="error", ylim=(-0.02, 1.0),
             title="Figure 1c: test error rises to chance as p → 1")
    ax_e.legend(loc="center right")
    fig.tight_layout()
    return fig


def plot_theorem1(rec):
    th = rec["theorem_1"]
    c = th["curve"]
    fig, (ax_f, ax_b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    ax_f.plot(c["line"], c["f"], color="tab:blue", label="f(x) = Σⱼ wⱼ relu(⟨a, x⟩ − bⱼ)")
    ax_f.plot(c["z"], c["targets"], "o", color="tab:red", label="targets yᵢ at zᵢ = ⟨a, xᵢ⟩")
    for i, b in enumerate(c["knots"]):
        ax_f.axvline(b, color="gray", lw=0.6, ls=":",
                     label="knots bⱼ (each just right of a zᵢ)" if i == 0 else None)
    ax_f.set(xlabel="projection ⟨a, x⟩ on the random direction a", ylabel="network output",
             title=f"Theorem 1: n = {len(c['z'])} random targets for points in d = 2\n"
                   f"fitted exactly by 2n + d = {2 * len(c['z']) + 2} weights")
    ax_f.legend(fontsize=8)
    names = ["random labels", "true labels"]
    train = [th["random_labels"]["train_accuracy"], th["true_labels"]["train_accuracy"]]
    test = [th["random_labels"]["test_accuracy"], th["true_labels"]["test_accuracy"]]
    xs = np.arange(2)
    ax_b.bar(xs - 0.18, train, 0.36, label="train", color="tab:blue")
    ax_b.bar(xs + 0.18, test, 0.36, label="test", color="tab:red")
    for x, v in zip(list(xs - 0.18) + list(xs + 0.18), train + test):
        ax_b.text(x, v + 0.01, pct(v), ha="center", fontsize=8)
    ax_b.axhline(rec["config"]["chance"], color="gray", ls="--", lw=0.8)
    ax_b.text(0.5, rec["config"]["chance"] + 0.015, "chance", ha="center", color="gray",
              fontsize=8)
    ax_b.set_xticks(xs, names)
    ax_b.set(ylabel="accuracy", ylim=(0, 1.1),
             title=f"the memorizer on n = {th['n']} {rec['config']['dataset']} images\n"
                   f"(one-hot targets; test on {rec['config']['n_test']} new images)")
    ax_b.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small run (< 60 s), for a smoke test")
    ap.add_argument("--out", type=out_dir, default="results", help="folder for the PNGs and JSON (default results/)")
    ap.add_argument("--dataset", default="glyphs", choices=rl.DATASETS,
                    help="glyphs (built in, default) or a real set whose files are present")
    ap.add_argument("--download", action="store_true",
                    help="fetch a missing real data set instead of stopping")
    ap.add_argument("--seeds", type=positive_int, default=None,
                    help="seeds for Figure 1b/1c (default 3, quick 1; each adds 4 runs, "
                         "about 90 s)")
    ap.add_argument("--cnn", action="store_true",
                    help="add a small CNN to Table 1 (slow on a CPU: tens of minutes)")
    ap.add_argument("--n-train", type=positive_int, help="training-set size (default 4000, quick 500)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="where the models train (cuda needs a GPU or NUMBA_ENABLE_CUDASIM=1)")
    args = ap.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    try:  # a missing device raises a ValueError that says why and what to install
        td.tensor(0.0, device=args.device)
    except ValueError as e:
        ap.error(str(e))
    cfg = dict(rl.QUICK if args.quick else rl.DEFAULT)
    if args.cnn:
        cfg["archs"] = tuple(cfg["archs"]) + ("cnn",)
    if args.n_train:
        cfg["n_train"] = args.n_train
    t0 = time.perf_counter()
    try:
        rec = rl.run(dataset=args.dataset, seeds=tuple(range(args.seeds)),
                     download=args.download, device=args.device, **cfg)
    except FileNotFoundError as e:
        sys.exit(f"--dataset {args.dataset}: its files are not there.\n{e}\n"
                 f"Run again with --download to fetch them, or use the built-in --dataset glyphs.")
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)

    stem = os.path.join(args.out, "random_labels")
    save_results(stem, (("_fig1a", plot_1a), ("_fig1bc", plot_1bc), ("_theorem1", plot_theorem1)),
                 rec)
    return rec


if __name__ == "__main__":
    main()
