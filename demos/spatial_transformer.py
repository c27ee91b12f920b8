"""Spatial transformer networks (Jaderberg et al. 2015) on RTS-distorted glyph digits.

    python demos/spatial_transformer.py [--quick] [--out results/] [--cnn] [--epochs E]
                                        [--n-train N] [--seeds 3] [--distortion R|RTS]
                                        [--dataset glyphs|mnist|fashion-mnist]

--dataset mnist or fashion-mnist (when their files are present, see
tinydeep.data.load_mnist) distorts those 28x28 images the same way; mnist1d and cifar10
are refused: they have no digit on a blank background to turn and place.

Trains a plain FCN and the same FCN behind a spatial transformer (and, with --cnn, a small
CNN and ST-CNN: slow on a CPU) on digits rotated ±45°, scaled 0.7–1.2 and placed anywhere
on a 42×42 canvas. Prints the error table beside the paper's Table 1 and how upright and
centred the transformer's outputs are, as Markdown; writes spatial_transformer.png (input
digits beside the transformer's outputs), spatial_transformer_curves.png and
spatial_transformer.json to --out.
"""
import argparse
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402
from tinydeep.experiments.args import dataset_name, out_dir, positive_int  # noqa: E402
from tinydeep.experiments import spatial_transformer as stx  # noqa: E402

DEFAULT = dict(n_train=10000, n_test=2000, epochs=20, seeds=(0, 1, 2))
QUICK = dict(n_train=1500, n_test=500, epochs=8, seeds=(0, 1))
COLORS = {"FCN": "tab:blue", "ST-FCN": "tab:red", "CNN": "tab:green", "ST-CNN": "tab:purple"}


def err_text(r):
    s = r.get("test_error_over_seeds")
    if not s or s["n"] < 2:
        return f"{100 * r['test_error']:.2f}"
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def rms_spread(d):
    return f"{d['rms']:.1f} / {d['spread']:.1f}"


def print_tables(rec):
    cfg = rec["config"]
    print(f"\n{cfg.get('distortion', 'RTS')} {cfg.get('dataset', 'glyphs')}: {cfg['n_train']} training and {cfg['n_test']} test digits, rotated "
          f"±{cfg['rotation_deg']:g}°, scaled {cfg['scale'][0]}–{cfg['scale'][1]}, placed anywhere "
          f"on a {cfg['canvas']}×{cfg['canvas']} canvas. SGD momentum {cfg['momentum']}, "
          f"batch {cfg['batch_size']}, {cfg['epochs']} epochs, lr {cfg['lr']} (localization net "
          f"{cfg['loc_lr']}), ×{cfg['lr_decay']} per epoch.\n")
    print("### Table 1: % test error, plain vs spatial transformer\n")
    n = len(cfg.get("seeds", [0]))
    rows = [[r["model"], err_text(r), f"{r['paper_error_pct']:.1f}",
             f"{100 * r['train_error']:.2f}", f"{r['parameters']:,}", f"{r['seconds']:.0f}"]
            for r in rec["runs"]]
    print(table(["model", f"test error % (ours, {cfg.get('dataset', 'glyphs')}; mean ± std, {n} seeds)",
                 f"paper % ({cfg.get('distortion', 'RTS')} MNIST)", "train error % (seed 0)", "# params",
                 "seconds (one run)"], rows))
    cols = rec.get("paper_table_1_columns", {})
    print("\nThe paper's Table 1, both columns (% error, R / RTS): " + ", ".join(
        f"{m} {cols['R'][m]} / {cols['RTS'][m]}" for m in cols.get("RTS", {})) + ".")
    print(f"\n(paper: Jaderberg et al. 2015, Table 1, {cfg.get('distortion', 'RTS')} column; "
          "their models, MNIST and "
          "150k steps of batch 256 — ours are smaller runs on synthetic digits; seeds vary "
          "the initial weights and the batch order, the data stay the same)\n")
    for d in rec.get("st_minus_plain", {}).values():
        print("- " + d["sentence"])
    print()
    for name, p in rec["pose"].items():
        print(f"### What the {name} transformer does (test set)\n")
        rows = []
        for label, s in (("input", p["before"]), (f"{name} output", p["after"])):
            rows.append([label,
                         f"{s['rotation_deg']['mean']:+.1f} ± {s['rotation_deg']['std']:.1f}",
                         f"{s['height_px']['mean']:.1f} ± {s['height_px']['std']:.1f} "
                         f"({100 * s['height_px']['std'] / s['height_px']['mean']:.0f} %)",
                         rms_spread(s["centre_offset_px"]), rms_spread(s["ink_centroid_px"])])
        print(table(["images", "rotation ° (mean ± std)", "digit height px (mean ± std)",
                     "digit centre offset px (rms / spread)",
                     "ink centroid offset px (rms / spread)"], rows))
        print(f"\n(rotation, height and centre from the drawn latents pushed through θ; the ink "
              f"centroid from the pixels alone. Correlation of the rotation the transformer "
              f"removes with the drawn rotation: {p['rotation_removed_vs_drawn_corr']:.2f})\n")
        if "rotation_std_by_class" in p:
            b, a = p["rotation_std_by_class"]["before"], p["rotation_std_by_class"]["after"]
            print(table(["digit"] + [str(k) for k in range(10)],
                        [["rotation std ° in"] + [f"{v:.0f}" for v in b],
                         ["rotation std ° out"] + [f"{v:.0f}" for v in a]]))
            print()


def plot_examples(rec):
    """Input digits in one row, each transformer's outputs of them in the rows below."""
    ex = rec["examples"]
    names = list(ex["outputs"])
    k = len(ex["index"])
    per_row = min(10, k)
    blocks = -(-k // per_row)
    rows = blocks * (1 + len(names))
    fig, axes = plt.subplots(rows, per_row, figsize=(1.25 * per_row, 1.35 * rows))
    axes = np.atleast_2d(axes)
    for b in range(blocks):
        for j in range(per_row):
            i = b * per_row + j
            stack = [("input", ex["inputs"])] + [(n, ex["outputs"][n]) for n in names]
            for s, (label, imgs) in enumerate(stack):
                ax = axes[b * (1 + len(names)) + s, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if i >= k:
                    ax.axis("off")
                    continue
                ax.imshow(imgs[i, 0], cmap="gray", vmin=0, vmax=1)
                if j == 0:
                    ax.set_ylabel(label, fontsize=9)
    cfg = rec["config"]
    fig.suptitle(f"{cfg.get('distortion', 'RTS')} {cfg.get('dataset', 'glyphs')} ({cfg['canvas']}×{cfg['canvas']}, test set): inputs and what the "
                 f"spatial transformer hands the classifier", fontsize=11)
    fig.tight_layout()
    return fig


def plot_curves(rec):
    pose = rec["pose"]
    n = 2 + len(pose)
    ncols = 3 if n == 3 else 2
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.axis("off")
    ax_l, ax_e = axes[0], axes[1]
    for r in rec["runs"]:
        c = COLORS[r["model"]]
        ax_l.plot(r["curve"]["steps"], r["curve"]["loss"], color=c, label=r["model"])
        ep = np.arange(1, len(r["curve"]["test_error"]) + 1)
        err = 100 * np.array(r["curve"]["test_error"])
        ax_e.plot(ep, np.where(err > 0, err, np.nan), "o-", ms=3, color=c,
                  label=f"{r['model']} ({100 * r['test_error']:.2f} %)")
        ax_e.axhline(r["paper_error_pct"], color=c, ls=":", lw=1)
        s = r.get("test_error_over_seeds")
        if s and s["n"] > 1:  # the final error over seeds, at the last epoch
            ax_e.errorbar([ep[-1] + 0.6], [100 * s["mean"]], yerr=[100 * s["std"]], fmt="s",
                          capsize=4, color=c, ms=5)
    ax_l.set(xlabel="SGD step", ylabel="training loss (cross-entropy)", yscale="log",
             title="training loss")
    ax_l.legend()
    ax_e.set(xlabel="epoch", ylabel="test error % (log scale)", yscale="log",
             title="test error, seed 0 (square: final mean ± std over seeds;\n"
                   f"dotted: the paper's {rec['config'].get('distortion', 'RTS')} numbers)")
    ax_e.legend()
    for ax, (name, p) in zip(axes[2:n], pose.items()):
        before = np.array(p["per_image"]["rotation_before"])
        after = np.array(p["per_image"]["rotation_after"])
        ax.plot(before, after, ".", ms=2, alpha=0.4, color=COLORS[name])
        lim = rec["config"]["rotation_deg"] + 5
        ax.plot([-lim, lim], [-lim, lim], color="gray", lw=0.8, ls="--", label="no correction")
        ax.axhline(0, color="black", lw=0.8, label="upright")
        sd_in, sd_out = p["before"]["rotation_deg"]["std"], p["after"]["rotation_deg"]["std"]
        ax.set(xlabel="drawn rotation of the input digit (°)",
               ylabel=f"rotation left in the {name} output (°)", xlim=(-lim, lim), ylim=(-lim - 10, lim + 10),
               title=f"{name}: rotation before vs after (std {sd_in:.0f}° → {sd_out:.0f}°)")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def json_record(rec):
    """The record without the example images (they are in the PNG; the run regenerates them)."""
    out = dict(rec)
    out["examples"] = {k: v for k, v in rec["examples"].items() if k not in ("inputs", "outputs")}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small run (< 60 s), for a smoke test")
    ap.add_argument("--out", type=out_dir, default="results", help="folder for the PNGs and JSON (default results/)")
    ap.add_argument("--cnn", action="store_true",
                    help="add CNN and ST-CNN (slow on a CPU: roughly 3x the FCN pair's time)")
    ap.add_argument("--epochs", type=positive_int, help=f"epochs per model (default {DEFAULT['epochs']})")
    ap.add_argument("--n-train", type=positive_int, help=f"training digits (default {DEFAULT['n_train']})")
    ap.add_argument("--seeds", type=positive_int, help="seeds per model (default 3)")
    ap.add_argument("--distortion", choices=tuple(stx.DISTORTIONS), default="RTS",
                    help="the paper's R (rotated ±90°, 28x28) or RTS column (default)")
    ap.add_argument("--dataset", type=dataset_name(stx.DATASETS, stx.UNFIT), default="glyphs",
                    metavar="{" + ",".join(stx.DATASETS) + "}",
                    help="glyphs (built in, default), or mnist / fashion-mnist when their "
                         "files are present (mnist1d and cifar10 do not fit: no digit to turn)")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else DEFAULT)
    if args.seeds:
        cfg["seeds"] = tuple(range(args.seeds))
    if args.epochs:
        cfg["epochs"] = args.epochs
    if args.n_train:
        cfg["n_train"] = args.n_train
    archs = ("fcn", "cnn") if args.cnn else ("fcn",)
    t0 = time.perf_counter()
    try:
        rec = stx.run(archs=archs, distortion=args.distortion, dataset=args.dataset, **cfg)
    except FileNotFoundError as e:
        sys.exit(f"--dataset {args.dataset}: its files are not there.\n{e}\n"
                 f"Use the built-in --dataset glyphs.")
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)

    stem = os.path.join(args.out, "spatial_transformer")
    save_results(stem, (("", plot_examples), ("_curves", plot_curves)), rec, json_record(rec))
    return rec


if __name__ == "__main__":
    main()
