"""Random-label memorization (Zhang et al. 2017): Figure 1a/1b/1c, Table 1, Theorem 1.

    python demos/random_labels.py [--quick] [--out results/] [--dataset glyphs]
                                  [--seeds 3] [--cnn] [--download]

Prints the tables as Markdown, writes random_labels_fig1a.png, random_labels_fig1bc.png,
random_labels_theorem1.png, random_labels_batchnorm.png (Table 1's BatchNorm contrast) and
random_labels.json to --out; with --dataset other than glyphs the names carry the set's
name (random_labels_mnist1d_fig1a.png, ...).
"""
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinydeep as td  # noqa: E402
from tinydeep.experiments.args import demo_parser, positive_int  # noqa: E402
from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402
from tinydeep.experiments.sweep import mean_std_text  # noqa: E402
from tinydeep.experiments import random_labels as rl  # noqa: E402

LABELS = {"true": "true labels", "random_labels": "random labels",
          "shuffled_pixels": "shuffled pixels", "random_pixels": "random pixels",
          "gaussian": "Gaussian"}
COLORS = {"true": "tab:blue", "random_labels": "tab:red", "shuffled_pixels": "tab:green",
          "random_pixels": "tab:orange", "gaussian": "tab:purple"}
ARCH_NAMES = {"mlp1x512": "MLP 1x512", "mlp3x512": "MLP 3x512", "cnn": "small CNN"}


PAPER = ("Zhang, Bengio, Hardt, Recht, Vinyals 2017, \"Understanding deep learning requires "
         "rethinking generalization\" (ICLR), Table 1: CIFAR-10, 50,000 training images")
# (model, labels, weight decay, random crop) -> (train %, test %), the paper's Table 1. Its MLPs
# ran without crop only; "inception" has BatchNorm, "inception_no_bn" is the same net without.
PAPER_TABLE_1 = {(m, lab, wd, False): v for m, rows in {
    "mlp1x512": ((100.0, 50.51), (99.80, 50.39), (99.34, 10.61)),
    "mlp3x512": ((100.0, 52.39), (100.0, 53.35), (100.0, 10.48)),
    "inception": ((100.0, 85.75), (100.0, 86.03), (100.0, 9.78)),
    "inception_no_bn": ((100.0, 82.00), (100.0, 83.00), (100.0, 10.12))}.items()
    for (lab, wd), v in zip((("true", False), ("true", True), ("random_labels", False)), rows)}
PLACEMENT = ("Linear -> BatchNorm1d -> ReLU in every hidden layer (PyTorch's defaults: "
             "momentum 0.1, eps 1e-5); scored in eval mode, with the running statistics")


def add_paper(rec):
    """The paper's numbers beside ours in the record: each Table 1 row's (None where the
    paper has no such row), Inception's beside the BatchNorm net and Inception w/o
    BatchNorm's beside its plain twin, and the paper's test-accuracy difference."""
    t1, bn = rec["table_1"], rec.get("table_1_batchnorm")
    t1["paper"] = PAPER
    for r in t1["rows"]:
        r["paper"] = PAPER_TABLE_1.get((r["arch"], r["labels"], bool(r["weight_decay"]),
                                        bool(r["augment"])))
    if bn:
        bn.update(paper=PAPER, placement=PLACEMENT)
        for g in bn["groups"]:
            for v in g["variants"]:
                v["paper"] = PAPER_TABLE_1.get(("inception" if v["batchnorm"] else
                                                "inception_no_bn", g["labels"], False, False))
            pb, pp = (v["paper"] for v in g["variants"])
            g["paper_test_difference"] = round(pb[1] - pp[1], 2) if pb and pp else None
    return rec


def fig_arch(cfg):
    """The name of Figures 1a-1c's net (records before it was chosen per set: MLP 1x512)."""
    return ARCH_NAMES[cfg.get("figure_arch", "mlp1x512")]


def examples(cfg):
    return "sequences" if cfg["image_shape"][1] == 1 else "images"


def pct(v):
    return "—" if v is None else f"{100 * v:.1f}%"


def num(v, fmt="{:d}"):
    return "—" if v is None else fmt.format(v)


def seeds_joined(values, fmt):
    return ", ".join(num(v, fmt) for v in values)


def print_tables(rec):
    cfg, a, bc, t1, th = (rec["config"], rec["figure_1a"], rec["figure_1bc"], rec["table_1"],
                          rec["theorem_1"])
    print(f"\n{cfg['dataset']}: {cfg['n_train']} training and {cfg['n_test']} test "
          f"{examples(cfg)} {tuple(cfg['image_shape'])}; SGD momentum 0.9, lr {cfg['lr']}, "
          f"{cfg['lr_decay']}, "
          f"batch 128; chance = {pct(cfg['chance'])}\n")

    print(f"### Figure 1a: every corruption is fitted ({fig_arch(cfg)})\n")
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
                     num(r["steps_to_fit"]) if r["steps_to_fit"] else f"> {r['steps']}",
                     paper_cell(r.get("paper"))])
    print(table(["model", "# params", "random crop", "weight decay", "labels",
                 "train accuracy", "test accuracy", "steps to 100%", "paper train / test"],
                rows))
    print(f"\n(seed {cfg['seeds'][0]}; weight decay {t1['weight_decay']:g}; random crop = "
          f"{t1['augmentation']}; augmented runs stop at {cfg['aug_max_epochs']} epochs, "
          f"training accuracy is measured on the un-augmented images. Paper: "
          f"{t1['paper']}; it ran no MLP with crop.)\n")
    if rec.get("table_1_batchnorm"):
        print_batchnorm(rec["table_1_batchnorm"], cfg)

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


def paper_cell(paper):
    return "—" if paper is None else f"{paper[0]:.2f} / {paper[1]:.2f}%"


def print_batchnorm(bn, cfg):
    """Table 1's BatchNorm contrast: mean ± std over seeds, the paired differences and the
    paper's Inception with / without BatchNorm beside them."""
    print(f"### Table 1, BatchNorm contrast: {ARCH_NAMES[bn['arch']]} with and without "
          f"BatchNorm ({seeds_text(bn['seeds'])}; no crop, no weight decay)\n")
    rows = []
    for g in bn["groups"]:
        lab = "random" if g["labels"] == "random_labels" else "true"
        for v in g["variants"]:
            name = ARCH_NAMES[bn["arch"]] + (" + BatchNorm" if v["batchnorm"] else "")
            paper_name = "Inception" if v["batchnorm"] else "Inception w/o BatchNorm"
            s = v["steps_to_fit"]
            steps = ("—" if s["mean"] is None else mean_std(s, 1.0, "", 0)
                     + (f" ({v['fitted']} of {len(bn['seeds'])} fitted)"
                        if v["fitted"] < len(bn["seeds"]) else ""))
            rows.append([name, f"{v['parameters']:,}", lab, mean_std(v["train_accuracy"]),
                         mean_std(v["test_accuracy"]), steps,
                         f"{paper_name}: {paper_cell(v['paper'])}"])
        d, st = g["test_accuracy_difference"], g["steps_to_fit_difference"]
        rows.append(["difference BatchNorm − plain (paired)", "", lab,
                     diff_cell(g["train_accuracy_difference"]), diff_cell(d),
                     diff_cell(st, 1.0, "{:+.0f}", ""),
                     "—" if g["paper_test_difference"] is None else
                     f"test {g['paper_test_difference']:+.2f} points"])
    print(table(["model", "# params", "labels", "train accuracy", "test accuracy",
                 "steps to 100%", "paper (CIFAR-10) train / test"], rows))
    print(f"\n(mean ± std over seeds {bn['seeds']}; differences are paired by seed: the "
          f"two nets start from the same weights, see the same batches and the same random "
          f"labels; ✓ marks a difference whose 95 % t interval excludes 0. {bn['placement']}. "
          f"Paper: {bn['paper']}.)\n")
    for g in bn["groups"]:
        for key in ("test_accuracy_difference", "steps_to_fit_difference"):
            print("- " + g[key]["sentence"])
    for g in bn["groups"]:
        print("- " + verdict(g, len(bn["seeds"])))
    print()


def verdict(g, seeds):
    """One sentence: what the paper found for these labels, and whether it holds here."""
    d, fitted = g["test_accuracy_difference"], [v["fitted"] for v in g["variants"]]
    if g["labels"] == "random_labels":
        return (f"Random labels: the paper's Inception fits them with and without BatchNorm "
                f"(train 100 %, test 9.78 / 10.12 %); here {fitted[0]} of {seeds} seeds with "
                f"BatchNorm and {fitted[1]} of {seeds} without reach 100 % training accuracy.")
    paper = g["paper_test_difference"]
    if d["beyond_noise"] is None:
        return (f"True labels: the paper's BatchNorm gain is {paper:+.2f} points; one seed "
                f"here cannot say whether {100 * d['mean']:+.1f} points is more than noise.")
    holds = d["beyond_noise"] and (d["mean"] > 0) == (paper > 0)
    return (f"True labels: the paper's BatchNorm gain is {paper:+.2f} points of test accuracy; "
            f"here it is {100 * d['mean']:+.1f} ± {100 * d['std']:.1f} points, "
            + ("beyond the seed noise: the claim holds here." if holds else
               "against the paper's sign." if d["beyond_noise"] else
               "within the seed noise: not shown here."))


def seeds_text(seeds):
    return f"{len(seeds)} seed" + "s" * (len(seeds) != 1)


def mean_std(s, scale=100.0, unit="%", digits=1):
    """'mean ± std' of a summary over seeds."""
    return mean_std_text(s["values"], scale, digits, unit)


def diff_cell(d, scale=100.0, fmt="{:+.1f}", unit=" pts"):
    """'mean ± std' of a paired difference, ✓ when beyond the seed noise."""
    if d["mean"] is None:
        return "—"
    spread = "" if d["std"] is None else f" ± {d['std'] * scale:.{0 if unit == '' else 1}f}"
    return fmt.format(d["mean"] * scale) + spread + unit + (" ✓" if d["beyond_noise"] else "")


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
                title=f"Figure 1a: {fig_arch(cfg)} on {cfg['n_train']} {cfg['dataset']} "
                      f"{examples(cfg)}",
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
             title=f"Figure 1b: time to fit ({fig_arch(rec['config'])})", ylim=(0, None))
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
             title=f"the memorizer on n = {th['n']} {rec['config']['dataset']} "
                   f"{examples(rec['config'])}\n(one-hot targets; test on "
                   f"{rec['config']['n_test']} new ones)")
    ax_b.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_batchnorm(rec):
    """Test accuracy and steps to fit, with and without BatchNorm: mean ± std over seeds
    (bars), each seed (dots, lines joining a seed's pair), the paper's Inception numbers (×)."""
    bn = rec["table_1_batchnorm"]
    fig, (ax_acc, ax_steps) = plt.subplots(1, 2, figsize=(11, 4.2))
    width, colors = 0.38, {False: "tab:gray", True: "tab:blue"}
    for gi, g in enumerate(bn["groups"]):
        per_seed = {}
        for v in g["variants"]:
            dx = (width / 2) * (1 if v["batchnorm"] else -1)
            for ax, key, scale in ((ax_acc, "test_accuracy", 100), (ax_steps, "steps_to_fit", 1)):
                s = v[key]
                if s["mean"] is None:
                    continue
                label = ("with BatchNorm" if v["batchnorm"] else "without") if gi == 0 else None
                ax.bar(gi + dx, s["mean"] * scale, width, yerr=s["std"] * scale, capsize=5,
                       color=colors[v["batchnorm"]], alpha=0.75, label=label)
                ax.plot([gi + dx] * len(s["values"]), np.array(s["values"]) * scale, "k.",
                        ms=4)
                per_seed.setdefault(key, []).append((gi + dx, np.array(s["values"]) * scale))
            if v["paper"]:
                ax_acc.plot(gi + dx, v["paper"][1], "x", color="tab:red", ms=9, mew=2,
                            label="paper (Inception, CIFAR-10)"
                            if gi == 0 and v["batchnorm"] else None)
        for key, ax in (("test_accuracy", ax_acc), ("steps_to_fit", ax_steps)):
            pts = per_seed.get(key, [])
            if len(pts) == 2 and len(pts[0][1]) == len(pts[1][1]):
                for a, b in zip(pts[0][1], pts[1][1]):
                    ax.plot([pts[0][0], pts[1][0]], [a, b], color="k", lw=0.5, alpha=0.5)
        d = g["test_accuracy_difference"]
        if d["mean"] is not None:
            tops = [v["test_accuracy"]["mean"] + (v["test_accuracy"]["std"] or 0)
                    for v in g["variants"]]
            ax_acc.text(gi, 100 * max(tops) + 3, f"Δ {100 * d['mean']:+.1f} pts"
                        + ("" if d["std"] is None else f" ± {100 * d['std']:.1f}")
                        + (" (beyond noise)" if d["beyond_noise"] else
                           " (within noise)" if d["beyond_noise"] is False else ""),
                        ha="center", fontsize=8)
    names = ["random labels" if g["labels"] == "random_labels" else "true labels"
             for g in bn["groups"]]
    chance = 100 * rec["config"]["chance"]
    ax_acc.axhline(chance, color="gray", ls="--", lw=0.8)
    ax_acc.text(-0.45, chance + 1.5, "chance", color="gray", fontsize=8)
    arch = ARCH_NAMES[bn["arch"]]
    for ax in (ax_acc, ax_steps):
        ax.set_xticks(range(len(names)), names)
    ax_acc.set(ylabel="test accuracy (%), eval mode", ylim=(0, 112),
               title=f"Table 1 BatchNorm contrast: {arch}, {seeds_text(bn['seeds'])}\n"
                     f"(mean ± std; dots: seeds; lines pair a seed)")
    ax_acc.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1, 0.78))
    ax_steps.set(ylabel="SGD steps to 100 % training accuracy",
                 title=f"time to fit ({rec['config']['n_train']} {rec['config']['dataset']} "
                       f"examples)")
    ax_steps.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = demo_parser(__doc__)
    ap.add_argument("--dataset", default="glyphs", choices=rl.DATASETS,
                    help="glyphs (built in, default) or a real set whose files are present")
    ap.add_argument("--download", action="store_true",
                    help="fetch a missing real data set instead of stopping")
    ap.add_argument("--seeds", type=positive_int, default=None,
                    help="seeds for Figure 1b/1c and Table 1's BatchNorm contrast (default 3, "
                         "quick 1; each adds runs of about 90 s and 35 s on 2 idle cores)")
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
    add_paper(rec)
    print_tables(rec)

    # glyphs keep the plain names; another set's outputs carry its name beside them
    stem = os.path.join(args.out, "random_labels" + ("" if args.dataset == "glyphs" else
                                                     "_" + args.dataset.replace("-", "")))
    plots = [("_fig1a", plot_1a), ("_fig1bc", plot_1bc), ("_theorem1", plot_theorem1)]
    if rec.get("table_1_batchnorm"):
        plots.append(("_batchnorm", plot_batchnorm))
    save_results(stem, plots, rec)
    return rec


if __name__ == "__main__":
    main()
