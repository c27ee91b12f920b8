"""Spatial transformer networks (Jaderberg et al. 2015), Table 1: FCN, CNN, ST-FCN and
ST-CNN on glyph digits distorted as the paper's R and RTS columns.

    python demos/spatial_transformer.py [--quick] [--out results/] [--models fcn cnn]
                                        [--columns R RTS] [--epochs E] [--cnn-epochs E]
                                        [--n-train N] [--seeds 3]
                                        [--dataset glyphs|mnist|fashion-mnist]

By default all four models are trained on both columns, each over 3 seeds: R (rotated
±90° on 28×28) and RTS (rotated ±45°, scaled 0.7–1.2 and placed anywhere on a 42×42
canvas). `--models fcn` and `--columns RTS` narrow it; the older `--distortion R|RTS`
(one column) and `--cnn` (now the default) are still accepted. --dataset mnist or
fashion-mnist (when their files are present, see tinydeep.data.load_mnist) distorts those
28x28 images the same way; mnist1d and cifar10 are refused: they have no digit on a
blank background to turn and place.

Prints Table 1 (mean ± std over seeds beside the paper's numbers), the paired
differences ST-X − X with their spread, and how upright and centred each transformer's
outputs are, as Markdown; writes spatial_transformer.png (input digits beside the
transformers' outputs), spatial_transformer_table.png (the table with error bars and the
paper's values), spatial_transformer_curves.png and spatial_transformer.json to --out.
"""
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402
from tinydeep.experiments.args import dataset_name, demo_parser, positive_int  # noqa: E402
from tinydeep.experiments import spatial_transformer as stx  # noqa: E402

# epochs per architecture: EPOCHS_NOTE says why these counts
# loc_lr: the localization net's learning rate. Behind the CNN, 0.02 threw θ off in 3 of 6
# runs (RTS test error 13.8 / 7.0 / 90.0 %, R 13.6 % for one seed of three: the ST shrank and
# pushed the digits aside); 0.005 gave RTS 0.85 / 1.2 / 1.25 % and R 1.0 % on those seeds.
LOC_LR = {"fcn": 0.02, "cnn": 0.005}
DEFAULT = dict(n_train=10000, n_test=2000, epochs={"fcn": 20, "cnn": 6}, seeds=(0, 1, 2),
               loc_lr=LOC_LR)
QUICK = dict(n_train=1000, n_test=500, epochs={"fcn": 8, "cnn": 2}, seeds=(0, 1), loc_lr=LOC_LR)
EPOCHS_NOTE = ("CNN epochs: a 16/32-channel CNN's RTS test error by epoch was 58.8, 15.3, 6.2, "
               "4.1, 3.4, 2.7, 2.9, 3.0 % (seed 0), flat from epoch 6; the 8/16-channel CNN "
               "run here, 6 epochs to fit 10 minutes, was still improving at epoch 6 on RTS "
               "(6.5, 5.0, 4.2 %, seed 0 of the 2026-11-26 run): its CNN rows are an upper "
               "bound; the curves plot shows where each model ended")
COLORS = {"FCN": "tab:blue", "ST-FCN": "tab:red", "CNN": "tab:green", "ST-CNN": "tab:purple"}
MODELS = ("FCN", "CNN", "ST-FCN", "ST-CNN")   # the paper's row order


def err_text(s):
    """'mean ± std' in % of a summary over seeds (one seed: its value)."""
    if s["n"] < 2:
        return f"{100 * s['mean']:.2f}"
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def rms_spread(d):
    return f"{d['rms']:.1f} / {d['spread']:.1f}"


def epochs_text(epochs):
    if isinstance(epochs, dict):
        return ", ".join(f"{n} {a.upper()}" for a, n in epochs.items())
    return str(epochs)


def print_tables(rec):
    cfg = rec["config"]
    cols = cfg["columns"]
    n = len(cfg["seeds"])
    print(f"\n{cfg['dataset']}: {cfg['n_train']} training and {cfg['n_test']} test digits per "
          f"column. SGD momentum {cfg['momentum']}, batch {cfg['batch_size']}, epochs "
          f"{epochs_text(cfg['epochs'])}, lr {cfg['lr']} (localization net "
          f"{epochs_text(cfg['loc_lr'])}), "
          f"×{cfg['lr_decay']} per epoch; {n} seeds (initial weights and batch order; the "
          f"data stay the same).\n")
    for c in cols:
        d = rec["columns"][c]["config"]
        print(f"- {c}: rotated ±{d['rotation_deg']:g}°, scaled {d['scale'][0]}–{d['scale'][1]}, "
              f"placed anywhere on a {d['canvas']}×{d['canvas']} canvas")
    print("\n### Table 1: % test error (ours: mean ± std over seeds; paper: Jaderberg et al. "
          "2015, Table 1, MNIST)\n")
    rows = []
    for m in MODELS:
        cells = [x for x in rec["table"] if x["model"] == m]
        if not cells:
            continue
        row = [m]
        for c in cols:
            x = next(x for x in cells if x["column"] == c)
            row += [err_text(x["test_error"]), f"{x['paper_error_pct']:.1f}"]
        row += [f"{cells[0]['parameters']:,}" + ("" if len(cols) < 2 else " (" + cols[0] + ")"),
                " / ".join(f"{np.mean(x['seconds']):.0f}" for x in cells)]
        rows.append(row)
    head = ["model"]
    for c in cols:
        head += [f"{c} ours", f"{c} paper"]
    print(table(head + ["# params", "seconds per run (" + " / ".join(cols) + ")"], rows))
    print(f"\n(the paper's models are larger and trained on MNIST for 150k steps of batch 256; "
          f"ours are small runs on {cfg['dataset']}; {EPOCHS_NOTE})\n")
    print("### Paired differences ST-X − X (test error, percentage points; the same seeds)\n")
    for c in cols:
        for arch, d in rec["st_minus_plain"][c].items():
            print(f"- {d['sentence']} Paper: {d['paper_pct']:+.1f} points.")
    print()
    for c in cols:
        col = rec["columns"][c]
        print(f"### Column {c}, seed by seed\n")
        print(table(["model", "test error % per seed", "train error % per seed"],
                    [[r["model"], " / ".join(f"{100 * x['test_error']:.2f}" for x in r["seed_runs"]),
                      " / ".join(f"{100 * x['train_error']:.2f}" for x in r["seed_runs"])]
                     for r in col["runs"]]))
        print()
        print_pose(col["pose"], c)


def print_pose(pose, column):
    for name, p in pose.items():
        print(f"### What the {name} transformer does ({column}, test set, seed 0)\n")
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
    """Per column: the input digits in one row, each transformer's outputs of them below."""
    cols = list(rec["columns"])
    blocks = []
    for c in cols:
        ex = rec["columns"][c]["examples"]
        blocks.append([(f"{c} input", ex["inputs"])] + [(f"{c} {n}", o) for n, o in
                                                         ex["outputs"].items()])
    k = max(len(b[0][1]) for b in blocks)
    per_row = min(10, k)
    rows = sum(len(b) * -(-len(b[0][1]) // per_row) for b in blocks)
    fig, axes = plt.subplots(rows, per_row, figsize=(1.25 * per_row, 1.35 * rows), squeeze=False)
    r = 0
    for stack in blocks:
        n = len(stack[0][1])
        for lo in range(0, n, per_row):
            for label, imgs in stack:
                for j in range(per_row):
                    ax = axes[r, j]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if lo + j >= n:
                        ax.axis("off")
                        continue
                    ax.imshow(imgs[lo + j, 0], cmap="gray", vmin=0, vmax=1)
                    if j == 0:
                        ax.set_ylabel(label, fontsize=9)
                r += 1
    fig.suptitle(f"{rec['config']['dataset']} test digits ({' and '.join(cols)}): inputs and "
                 f"what each spatial transformer hands its classifier", fontsize=11)
    fig.tight_layout()
    return fig


def plot_table(rec):
    """Table 1 as points: our mean ± std over seeds (seeds as dots) beside the paper's value
    (a black bar), per column; and the paired differences ST-X − X with their 95 % interval
    beside the paper's difference."""
    cols = rec["config"]["columns"]
    fig, axes = plt.subplots(1, len(cols) + 1, figsize=(4.6 * (len(cols) + 1), 4.4),
                             squeeze=False)
    axes = axes[0]
    for ax, c in zip(axes, cols):
        cells = [x for m in MODELS for x in rec["table"] if x["model"] == m and x["column"] == c]
        for i, x in enumerate(cells):
            s, color = x["test_error"], COLORS[x["model"]]
            v = 100 * np.array(s["values"])
            ax.plot(np.full(len(v), i - 0.12), v, ".", color=color, alpha=0.5, ms=5)
            ax.errorbar([i], [100 * s["mean"]], yerr=[100 * s["std"]], fmt="o", color=color,
                        capsize=5, ms=7, label="ours: mean ± std" if i == 0 else None)
            ax.plot([i + 0.1, i + 0.35], [x["paper_error_pct"]] * 2, color="black", lw=2.5,
                    label="paper (MNIST)" if i == 0 else None)
        ax.set_xticks(range(len(cells)), [x["model"] for x in cells])
        ax.set(yscale="log", ylabel="test error % (log scale)", xlim=(-0.6, len(cells) - 0.4),
               title=f"{c}: {len(cells[0]['test_error']['values'])} seeds (dots), "
                     f"paper's value (bar)")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    labels = []
    for i, (c, arch) in enumerate((c, a) for c in cols for a in rec["st_minus_plain"][c]):
        d = rec["st_minus_plain"][c][arch]
        color = COLORS["ST-" + arch.upper()]
        lo, hi = (100 * np.array(d["ci95"])) if d["ci95"] else (np.nan, np.nan)
        m = 100 * d["mean"]
        ax.errorbar([i], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=color, capsize=5, ms=7,
                    label="ours: mean, 95 % interval" if i == 0 else None)
        if d["std"] is not None:
            ax.errorbar([i - 0.15], [m], yerr=[100 * d["std"]], fmt="none", color=color,
                        alpha=0.5, capsize=3, label="± std" if i == 0 else None)
        ax.plot([i + 0.1, i + 0.35], [d["paper_pct"]] * 2, color="black", lw=2.5,
                label="paper" if i == 0 else None)
        labels.append(f"{c}\nST-{arch.upper()} − {arch.upper()}")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set(ylabel="paired difference, % points", title="ST-X − X over the same seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(rec):
    """Per column (one row each): training loss, test error per epoch (seed 0) and, per ST,
    the rotation left in its output against the drawn rotation."""
    cols = rec["config"]["columns"]
    n_st = max(len(rec["columns"][c]["pose"]) for c in cols)
    ncols = 2 + n_st
    fig, axes = plt.subplots(len(cols), ncols, figsize=(4.8 * ncols, 4.0 * len(cols)),
                             squeeze=False)
    for row, c in zip(axes, cols):
        col = rec["columns"][c]
        ax_l, ax_e = row[0], row[1]
        for r in col["runs"]:
            color = COLORS[r["model"]]
            ax_l.plot(r["curve"]["steps"], r["curve"]["loss"], color=color, label=r["model"])
            ep = np.arange(1, len(r["curve"]["test_error"]) + 1)
            err = 100 * np.array(r["curve"]["test_error"])
            ax_e.plot(ep, np.where(err > 0, err, np.nan), "o-", ms=3, color=color,
                      label=f"{r['model']} ({100 * r['test_error']:.2f} %)")
            ax_e.axhline(r["paper_error_pct"], color=color, ls=":", lw=1)
            s = r["test_error_over_seeds"]
            if s["n"] > 1:  # the final error over seeds, at the last epoch
                ax_e.errorbar([ep[-1] + 0.4], [100 * s["mean"]], yerr=[100 * s["std"]], fmt="s",
                              capsize=4, color=color, ms=5)
        ax_l.set(xlabel="SGD step", ylabel="training loss (cross-entropy)", yscale="log",
                 title=f"{c}: training loss (seed 0)")
        ax_l.legend(fontsize=8)
        ax_e.set(xlabel="epoch", ylabel="test error % (log scale)", yscale="log",
                 title=f"{c}: test error per epoch, seed 0\n(square: final mean ± std over "
                       f"seeds; dotted: paper)")
        ax_e.legend(fontsize=8)
        for ax in row[2 + len(col["pose"]):]:
            ax.axis("off")
        for ax, (name, p) in zip(row[2:], col["pose"].items()):
            before = np.array(p["per_image"]["rotation_before"])
            after = np.array(p["per_image"]["rotation_after"])
            ax.plot(before, after, ".", ms=2, alpha=0.4, color=COLORS[name])
            lim = col["config"]["rotation_deg"] + 5
            ax.plot([-lim, lim], [-lim, lim], color="gray", lw=0.8, ls="--", label="no correction")
            ax.axhline(0, color="black", lw=0.8, label="upright")
            sd_in, sd_out = p["before"]["rotation_deg"]["std"], p["after"]["rotation_deg"]["std"]
            ax.set(xlabel="drawn rotation of the input digit (°)",
                   ylabel="rotation left in the output (°)", xlim=(-lim, lim),
                   ylim=(-lim - 10, lim + 10),
                   title=f"{c} {name}: rotation std {sd_in:.0f}° → {sd_out:.0f}°")
            ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def json_record(rec):
    """The record without the example images (they are in the PNG; the run regenerates them)."""
    out = dict(rec, columns={})
    for c, col in rec["columns"].items():
        out["columns"][c] = dict(col, examples={k: v for k, v in col["examples"].items()
                                                if k not in ("inputs", "outputs")})
    return out


def settings(argv=None):
    """(args, cfg for stx.run_table, models, columns) from the command line."""
    ap = demo_parser(__doc__)
    ap.add_argument("--models", nargs="+", choices=stx.ARCHS, default=list(stx.ARCHS),
                    help="architectures, each run plain and behind an ST (default: fcn cnn)")
    ap.add_argument("--columns", nargs="+", choices=tuple(stx.DISTORTIONS),
                    default=list(stx.DISTORTIONS),
                    help="the paper's R (rotated ±90°, 28x28) and RTS columns (default: both)")
    ap.add_argument("--distortion", choices=tuple(stx.DISTORTIONS),
                    help="one column only (the same as --columns R or --columns RTS)")
    ap.add_argument("--cnn", action="store_true",
                    help="kept for older command lines: CNN and ST-CNN now run by default")
    ap.add_argument("--epochs", type=positive_int,
                    help=f"epochs per model, every architecture (default "
                         f"{epochs_text(DEFAULT['epochs'])})")
    ap.add_argument("--cnn-epochs", type=positive_int, help="epochs of CNN and ST-CNN alone")
    ap.add_argument("--n-train", type=positive_int, help=f"training digits (default {DEFAULT['n_train']})")
    ap.add_argument("--seeds", type=positive_int, help="seeds per model (default 3)")
    ap.add_argument("--dataset", type=dataset_name(stx.DATASETS, stx.UNFIT), default="glyphs",
                    metavar="{" + ",".join(stx.DATASETS) + "}",
                    help="glyphs (built in, default), or mnist / fashion-mnist when their "
                         "files are present (mnist1d and cifar10 do not fit: no digit to turn)")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else DEFAULT)
    if args.seeds:
        cfg["seeds"] = tuple(range(args.seeds))
    if args.epochs:
        cfg["epochs"] = dict.fromkeys(stx.ARCHS, args.epochs)
    if args.cnn_epochs:
        cfg["epochs"] = dict(cfg["epochs"], cnn=args.cnn_epochs)
    if args.n_train:
        cfg["n_train"] = args.n_train
    models = [a for a in stx.ARCHS if a in args.models]   # fcn before cnn, each once
    columns = [args.distortion] if args.distortion else \
        [c for c in stx.DISTORTIONS if c in args.columns]
    cfg["epochs"] = {a: cfg["epochs"][a] for a in models}
    cfg["loc_lr"] = {a: cfg["loc_lr"][a] for a in models}
    return args, cfg, models, columns


def main(argv=None):
    args, cfg, models, columns = settings(argv)
    t0 = time.perf_counter()
    try:
        rec = stx.run_table(columns=tuple(columns), archs=tuple(models), dataset=args.dataset,
                            n_examples=10, **cfg)
    except FileNotFoundError as e:
        sys.exit(f"--dataset {args.dataset}: its files are not there.\n{e}\n"
                 f"Use the built-in --dataset glyphs.")
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)
    print(f"wall time {rec['wall_seconds']:.0f} s")

    stem = os.path.join(args.out, "spatial_transformer")
    save_results(stem, (("", plot_examples), ("_table", plot_table), ("_curves", plot_curves)),
                 rec, json_record(rec))
    return rec


if __name__ == "__main__":
    main()
