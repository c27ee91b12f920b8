"""The data manifold: test accuracy vs its sampling density (with and without
augmentation), and latent-space vs pixel-space interpolation between glyphs.

    python demos/manifold.py [--quick] [--out results/] [--dataset glyphs|mnist1d]

Prints the tables as Markdown, writes manifold_density.png, manifold_interpolation.png
and manifold.json to --out. --dataset mnist1d runs the density part alone (a shift of
the sequence as its augmentation; no interpolation: only glyphs has known latent
factors); mnist, fashion-mnist and cifar10 are refused for that reason.
"""
import os
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402
from tinydeep.experiments.args import dataset_name, demo_parser, positive_int  # noqa: E402
from tinydeep.experiments import manifold as mf  # noqa: E402


def pct(v):
    return f"{100 * v:.1f}%"


def spread(values):
    """'mean ± std (n seeds)' or the one value."""
    if len(values) == 1:
        return pct(values[0])
    return f"{pct(np.mean(values))} ± {100 * np.std(values, ddof=1):.1f} ({len(values)} seeds)"


def lift_text(lp):
    """'+m ± s, beyond/within noise' of a paired difference (accuracy points)."""
    if lp["std"] is None:
        return f"{100 * lp['mean']:+.1f} (one seed)"
    return (f"{100 * lp['mean']:+.1f} ± {100 * lp['std']:.1f}, "
            f"{'beyond' if lp['beyond_noise'] else 'within'} noise")


def print_tables(rec):
    d, cfg = rec["density"], rec["config"]
    print(f"\n### Test accuracy vs training examples per class ({cfg['model']}, "
          f"{cfg['steps']} SGD steps per run, {d['n_test']} test samples)\n")
    rows = [[k, 10 * k, spread(p), spread(a), lift_text(lp), pct(tp), pct(ta)]
            for k, p, a, lp, tp, ta in zip(d["per_class"], d["plain"]["test_accuracy"],
                                            d["augmented"]["test_accuracy"], d["lift_paired"],
                                            d["plain"]["train_accuracy"],
                                            d["augmented"]["train_accuracy"])]
    print(table(["per class", "n train", "test, plain", "test, augmented",
                 "lift, paired (points)", "train, plain", "train, augmented"], rows))
    print()
    for lp in d["lift_paired"]:
        print("- " + lp["sentence"])
    aug = ", ".join(f"{k} {v:g}" for k, v in d["augmentation"].items())
    print(f"\n(augmentation: {d.get('augmentation_name', 'RandomAffine')} {aug}; "
          f"mean ± std over seeds, each seed its own training set and initial weights; "
          f"training accuracy is on the un-augmented images; chance {pct(cfg['chance'])})\n")

    it = rec["interpolation"]
    if it is None:
        print("(no interpolation: only glyphs has the latent factors to walk on)\n")
        return
    m = it["model"]
    print(f"### Interpolation between two glyphs of the same digit ({it['n_pairs']} random "
          f"pairs; model: {m['per_class']}/class, augment={m['augment']}, test "
          f"{pct(m['test_accuracy'])})\n")
    rows = [[f"{t:.3g}", pct(it["latent"]["accuracy"][i]), pct(it["pixel"]["accuracy"][i]),
             f"{it['latent']['mean_p_true'][i]:.3f}", f"{it['pixel']['mean_p_true'][i]:.3f}"]
            for i, t in enumerate(it["t"])]
    print(table(["t", "accuracy, latent path", "accuracy, pixel blend",
                 "mean p(digit), latent", "mean p(digit), pixel"], rows))
    print("\n### The figure's examples: predicted digit (confidence) along each path\n")
    rows = []
    for e in it["examples"]:
        for path in ("latent", "pixel"):
            r = e[path]
            rows.append([f"{e['digits'][0]} → {e['digits'][1]}", path] +
                        [f"{c} ({100 * p:.0f}%)" for c, p in zip(r["predicted"], r["confidence"])])
    print(table(["digits", "path"] + [f"t={t:.2g}" for t in it["t"]], rows))
    print()


def plot_density(rec):
    d, cfg = rec["density"], rec["config"]
    k = np.array(d["per_class"])
    fig, (ax, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for name, color, label in (("plain", "tab:blue", "no augmentation"),
                               ("augmented", "tab:red",
                                f"{d.get('augmentation_name', 'RandomAffine')} augmentation")):
        ax.errorbar(k, d[name]["mean"], yerr=d[name]["std"], fmt="o-", capsize=4,
                    color=color, label=f"{label} (mean ± std)")
        for ki, accs in zip(k, d[name]["test_accuracy"]):
            if len(accs) > 1:
                ax.plot([ki] * len(accs), accs, ".", color=color, alpha=0.35)
    ax.axhline(cfg["chance"], color="gray", ls="--", lw=0.8)
    ax.text(k[0], cfg["chance"] + 0.015, "chance", color="gray", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(k, [str(v) for v in k])
    ax.set(xlabel="training examples per class (log scale)", ylabel="test accuracy",
           ylim=(0, 1), title=f"Density of the {cfg.get('dataset', 'glyphs')} manifold "
                               f"({cfg['model']})")
    ax.grid(alpha=0.3)
    ax.legend(title="dots: single seeds", loc="lower right")
    lift_std = [0.0 if lp["std"] is None else 100 * lp["std"] for lp in d["lift_paired"]]
    ax_l.bar(np.arange(len(k)), 100 * np.array(d["lift"]), yerr=lift_std, capsize=4,
             color=["tab:purple" if lp["beyond_noise"] else "thistle"
                    for lp in d["lift_paired"]])
    for i, (v, e) in enumerate(zip(d["lift"], lift_std)):
        ax_l.text(i, 100 * v + (e + 0.5 if v >= 0 else -e - 2.5), f"{100 * v:+.1f}",
                  ha="center", fontsize=8)
    ax_l.axhline(0, color="black", lw=0.8)
    ax_l.set_xticks(np.arange(len(k)), [str(v) for v in k])
    ax_l.set(xlabel="training examples per class",
             ylabel="augmented − plain (accuracy points)",
             title="what augmentation adds (paired over seeds, ± std;\npale: within the seed noise)")
    fig.tight_layout()
    return fig


def plot_interpolation(rec):
    it = rec["interpolation"]
    ex, t = it["examples"], it["t"]
    cols = len(t)
    fig = plt.figure(figsize=(1.25 * cols, 2.6 * len(ex) + 3.3))
    outer = fig.add_gridspec(len(ex) + 1, 1, height_ratios=[1] * len(ex) + [1.25], hspace=0.35,
                             top=0.94, bottom=0.04)
    for row, e in enumerate(ex):
        a, b = e["digits"]
        cells = outer[row].subgridspec(2, cols, hspace=0.4, wspace=0.08)
        for p, path in enumerate(("latent", "pixel")):
            images, r = e[f"{path}_images"], e[path]
            for c in range(cols):
                ax = fig.add_subplot(cells[p, c])
                ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                pred = r["predicted"][c]
                ax.set_title(f"{pred} ({100 * r['confidence'][c]:.0f}%)", fontsize=9,
                             color="black" if pred in (a, b) else "tab:red")
                if c == 0:
                    ax.set_ylabel(f"{a} → {b}\n" + ("latent" if path == "latent" else
                                                    "pixel blend"), fontsize=9)
    inner = outer[-1].subgridspec(1, 2, wspace=0.3)
    ax_p, ax_a = fig.add_subplot(inner[0]), fig.add_subplot(inner[1])
    for path, color, label in (("latent", "tab:blue", "latent path"),
                               ("pixel", "tab:orange", "pixel blend")):
        ax_p.plot(t, it[path]["mean_p_true"], "o-", color=color, label=label)
        ax_a.plot(t, it[path]["accuracy"], "o-", color=color, label=label)
    # the two curves differ by a few points: zoom in, from a round number below both
    low = lambda key: np.floor(10 * min(it["latent"][key] + it["pixel"][key]) - 0.5) / 10
    ax_p.set(xlabel="t", ylabel="mean p(digit)", ylim=(max(0, low("mean_p_true")), 1.005),
             title=f"{it['n_pairs']} random same-digit pairs: mean p(digit)")
    ax_a.set(xlabel="t", ylabel="accuracy", ylim=(max(0, low("accuracy")), 1.005),
             title="accuracy along the path")
    for ax in (ax_p, ax_a):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower center", fontsize=8)
    m = it["model"]
    fig.suptitle(f"Interpolation: prediction (confidence) of the MLP trained on {m['per_class']}"
                 f" glyphs/class (test {pct(m['test_accuracy'])})\nred: neither endpoint's digit."
                 f" Between two digits the latent path jumps at t = ½ (ten separate sheets)",
                 y=0.99, fontsize=10)
    return fig


def main(argv=None):
    ap = demo_parser(__doc__)
    ap.add_argument("--seeds", type=positive_int, help="seeds at the small sizes (default 5, quick 2)")
    ap.add_argument("--dataset", type=dataset_name(mf.DATASETS, mf.UNFIT), default="glyphs",
                    metavar="{" + ",".join(mf.DATASETS) + "}",
                    help="glyphs (default: both parts), or mnist1d (the density part alone; "
                         "the interpolation needs glyphs' latent factors)")
    args = ap.parse_args(argv)
    cfg = dict(mf.QUICK if args.quick else mf.DEFAULT, dataset=args.dataset)
    if args.dataset == "mnist1d" and not args.quick:
        cfg["per_class"] = mf.PER_CLASS_MNIST1D
    if args.seeds is not None:
        if args.seeds < 1:
            ap.error("--seeds must be at least 1")
        cfg["seeds"] = tuple(range(args.seeds))
    t0 = time.perf_counter()
    rec = mf.run(**cfg)
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)
    stem = os.path.join(args.out, "manifold")
    plots = (("_density", plot_density),) + ((("_interpolation", plot_interpolation),)
                                              if rec["interpolation"] is not None else ())
    save_results(stem, plots, rec)
    return rec


if __name__ == "__main__":
    main()
