"""Fat vs deep at equal parameter count (Seide et al. 2011), depth as folding (Telgarsky
2016), and a compositional function (Mhaskar, Liao & Poggio 2017).

    python demos/fat_vs_deep.py [--quick] [--out results/] [--dataset mnist1d|glyphs]
                                [--width 100] [--n-train 4000] [--epochs 300] [--seeds 3]
                                [--workers N | --scheduler tcp://HOST:PORT] [--threads T]

Prints the tables as Markdown, writes fat_vs_deep_seide.png, fat_vs_deep_folding.png,
fat_vs_deep_compositional.png and fat_vs_deep.json to --out, and one JSON per
finished Seide net under --out/fat_vs_deep_runs/ (a rerun skips those).
"""
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments import depth as dp, sweep  # noqa: E402
from tinydeep.experiments.args import demo_parser, positive_int  # noqa: E402
from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402

DEPTH_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}


def pct(v):
    return f"{100 * v:.2f}%"


def ms(mean, std):
    return f"{100 * mean:.1f} ± {100 * std:.1f}%"


# Seide et al. 2011, Table 2: WER % of L x 2k nets and of the one-hidden-layer net with
# (about) the same parameters, where the paper has one.
PAPER_PAIRS = {2: (20.4, "1x3772", 22.5), 3: (18.4, "1x4634", 22.6), 7: (17.1, "1x16k", 22.1)}


def print_tables(rec):
    cfg, s = rec["config"], rec["seide"]
    print(f"\n### 1. Seide et al. 2011 analog: L x {cfg['width']} vs one hidden layer, "
          f"same parameters\n")
    print(f"{cfg['dataset']}, {cfg['n_train']} training / {cfg['n_test']} test samples; SGD "
          f"momentum 0.9, lr {cfg['lr']}, batch 128; every net trained until 100 % training "
          f"accuracy (at most {cfg['max_epochs']} epochs); mean ± std over seeds {s['seeds']}. "
          f"Paper: Seide, Li & Yu 2011, Table 2 (Switchboard word error rate, L x 2k vs one "
          f"hidden layer of the same size).\n")
    rows = []
    for r in s["rows"]:
        paper = PAPER_PAIRS.get(r["depth"])
        d = r["shallow_minus_deep"]
        rows.append([f"{r['depth']} x {r['width']}", f"{r['parameters']:,}",
                     ms(r["deep_test_error"], r["deep_test_error_std"]),
                     f"1 x {r['shallow_width']}", f"{100 * r['relative_gap']:.2f}%",
                     ms(r["shallow_test_error"], r["shallow_test_error_std"]),
                     "—" if d is None else f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f}",
                     "—" if d is None else ("beyond noise" if d["beyond_noise"] else "within noise"),
                     "yes" if r["all_converged"] else "no",
                     f"{paper[0]} vs {paper[2]}" if paper else
                     f"{dp.SEIDE_DEEP[r['depth']]} vs —" if r["depth"] in dp.SEIDE_DEEP else "—"])
    print(table(["L x W", "# params", "test err (deep)", "1 x W'", "count gap",
                 "test err (shallow)", "shallow − deep (points)", "vs seed noise",
                 "all at 100 % train", "paper WER deep vs shallow"], rows))
    v = s["verdict"]
    print(f"\nDeep beats its same-size shallow twin beyond the seed noise in "
          f"{v['deep_beats_shallow_rows']} of {v['rows_compared']} rows (shallow beats deep in "
          f"{v['shallow_beats_deep_rows']}); test error "
          f"{'falls' if v['error_falls_with_depth'] else 'does not fall'} monotonically with "
          f"depth (best depth {v['best_deep_depth']}); "
          f"{'every net reached' if v['all_converged'] else 'NOT every net reached'} 100 % "
          f"training accuracy.")
    for r in s["rows"][1:]:
        print("- " + r["shallow_minus_deep"]["sentence"])
    paper = rec["seide_paper"]
    print("Seide et al. (Switchboard WER): "
          + ", ".join(f"{L}x2k {e}" for L, e in paper["deep"].items()) + " vs "
          + ", ".join(f"1x{w} {e}" for w, e in paper["shallow"].items()) + ".\n")

    print("### 2a. The folding network computes T^k exactly (float64)\n")
    rows = [[f["k"], f["parameters"], f["points"], f"{f['max_abs_error']:.1e}",
             f"{f['max_abs_error_dyadic']:.1e}",
             f"{f['pieces_network']} / {f['pieces_closed_form']} / {f['pieces_expected']}"]
            for f in rec["folding"]]
    print(table(["k", "# params (6k+1)", "grid points", "max abs error", "max abs error at "
                 "x = i/2^(k+8)", "pieces: net / closed form / 2^k"], rows))
    print("\n(Error on the even grid: its points are not dyadic, so the net and the closed "
          "form round once each, and each fold doubles that difference; on dyadic points both "
          "are exact.)\n")

    sw = rec["sawtooth"]
    print(f"### 2b. Trained on sawtooth(k): deep narrow vs shallow wide, same parameters\n")
    print(f"{sw['n_train']} evenly spaced training points; fit error = MSE on {sw['n_eval']} "
          f"evenly spaced points; SGD momentum 0.9, lr {sw['lr']} decaying x0.1 (per epoch) over "
          f"{sw['steps']} steps, batch 128; best of seeds {sw['seeds']}. Predicting the "
          f"constant 1/2 gives {sw['constant_mse']:.3f}.\n")
    rows = []
    for r in sw["rows"]:
        rows.append([r["k"], r["pieces"],
                     f"{r['k']} x {r['deep_width']} ({r['deep_parameters']})",
                     f"{r['deep_eval_mse']:.4f}",
                     f"1 x {r['shallow_width']} ({r['shallow_parameters']})",
                     f"{r['shallow_eval_mse']:.4f}",
                     f"1 x {2 * r['k']} ({r['folding_parameters']})",
                     f"{r['shallow_as_folding_eval_mse']:.4f}",
                     f"{r['folding_eval_mse']:.1e}"])
    print(table(["k", "pieces", "deep (params)", "deep MSE", "shallow (params)",
                 "shallow MSE", "shallow, folding's count", "its MSE", "folding net MSE "
                 "(float32)"], rows))
    print()

    c = rec["compositional"]
    print(f"### 3. f(x) = 2(2cos^2 x - 1)^2 - 1 = cos 4x: training MSE vs parameters\n")
    print(f"{c['n_train']} evenly spaced points on [-pi, pi]; SGD momentum 0.9, lr {c['lr']} "
          f"decaying x0.1 (per epoch) over {c['steps']} steps, batch 128; best of seeds {c['seeds']}. "
          f"Predicting 0 gives {c['constant_mse']}.\n")
    header = ["budget"] + [f"{d} hidden: width (params) MSE" for d in c["depths"]]
    rows = []
    for i, b in enumerate(c["budgets"]):
        row = [b]
        for d in c["depths"]:
            p = c["curves"][str(d)][i]
            row.append(f"{p['width']} ({p['parameters']}) {p['train_mse']:.4f}")
        rows.append(row)
    print(table(header, rows))
    print()


# --- plots ---------------------------------------------------------------------------------

def plot_seide(rec):
    s, cfg = rec["seide"], rec["config"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rows = s["rows"]
    xs = np.arange(len(rows))
    n = len(s["seeds"])
    for off, key, color, label in ((-0.18, "deep", "tab:red", f"deep: L x {cfg['width']}"),
                                   (0.18, "shallow", "tab:blue",
                                    "shallow: 1 x W' with the same parameter count")):
        mean = [100 * r[f"{key}_test_error"] for r in rows]
        std = [100 * r[f"{key}_test_error_std"] for r in rows]
        ax.bar(xs + off, mean, 0.36, yerr=std, capsize=5, color=color, alpha=0.75,
               label=f"{label} (mean ± std, {n} seeds)")
        for x, r in zip(xs + off, rows):
            vals = [100 * run["test_error"] for run in r[f"{key}_runs"]]
            ax.plot([x] * len(vals), vals, "k.", ms=4)
    for x, r in zip(xs, rows):
        d = r["shallow_minus_deep"]
        if d is not None:
            ax.annotate(f"shallow − deep\n{100 * d['mean']:+.1f} ± {100 * d['std']:.1f} "
                        f"points,\n{'beyond' if d['beyond_noise'] else 'within'} the noise",
                        (x, 0.98), xycoords=("data", "axes fraction"), va="top", ha="center",
                        fontsize=8)
    ax.set_xticks(xs, [f"{r['depth']}x{r['width']} / 1x{r['shallow_width']}\n"
                       f"{r['parameters']:,} params" for r in rows])
    top = max(100 * (r["shallow_test_error"] + r["shallow_test_error_std"]) for r in rows)
    ax.set(ylabel="test error (%)", ylim=(0, top * 1.35),
           title=f"Seide et al. 2011 analog on {cfg['dataset']}: every net trained to 100 % "
                 f"training accuracy\n(at most {cfg['max_epochs']} epochs; dots: seeds)")
    ax2 = ax.twinx()  # the paper's numbers, on their own scale (Switchboard WER)
    deep_wer = rec["seide_paper"]["deep"]
    for i, r in enumerate(rows):
        L = r["depth"]
        if str(L) in deep_wer or L in deep_wer:
            ax2.plot([i - 0.18], [deep_wer.get(str(L), deep_wer.get(L))], "v", color="darkred",
                     ms=9, label="paper WER, L x 2k" if i == 0 else None)
        if L in PAPER_PAIRS:
            ax2.plot([i + 0.18], [PAPER_PAIRS[L][2]], "v", color="navy", ms=9,
                     label="paper WER, same-size 1 hidden layer" if L == 2 else None)
    ax2.set(ylabel="Seide et al. WER (%), triangles", ylim=(0, 30))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2)
    fig.tight_layout()
    return fig


def plot_folding(rec):
    sw = rec["sawtooth"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [4, 4, 5]})
    ax = axes[0]
    x = np.linspace(0, 1, 2001)
    for k, color in ((1, "tab:gray"), (2, "tab:blue"), (3, "tab:green"), (4, "tab:red")):
        ax.plot(x, dp.predict(dp.folding_network(k), x) + 1.2 * (k - 1), color=color,
                label=f"k = {k}: {2 ** k} pieces, {6 * k + 1} params")
    ax.set(xlabel="x", ylabel="folding_network(k)(x), shifted up by 1.2(k−1)",
           title="hand-set depth-k, width-2 nets = T^k", ylim=(-0.1, 6.6))
    ax.legend(fontsize=8, loc="upper center", ncol=2)

    ax = axes[1]
    ks = [r["k"] for r in sw["rows"]]
    ax.semilogy(ks, [r["deep_eval_mse"] for r in sw["rows"]], "o-", color="tab:red",
                label=f"deep k x {sw['deep_width']}, trained")
    ax.semilogy(ks, [r["shallow_eval_mse"] for r in sw["rows"]], "s--", color="tab:blue",
                label="shallow, same params, trained")
    ax.semilogy(ks, [r["shallow_as_folding_eval_mse"] for r in sw["rows"]], "^:",
                color="tab:purple", label="shallow 1 x 2k (6k+1 params), trained")
    fold = [max(r["folding_eval_mse"], 1e-12) for r in sw["rows"]]
    ax.semilogy(ks, fold, "*-", color="black", ms=10,
                label="folding net (6k+1 params), set by hand:\nerror 0, drawn at 1e-12")
    ax.axhline(sw["constant_mse"], color="gray", ls="--", lw=0.8)
    ax.text(ks[0], sw["constant_mse"] * 1.3, "constant 1/2", color="gray", fontsize=8)
    ax.set(xlabel="k (T^k has 2^k pieces)", ylabel="fit error (MSE, log scale)",
           title="sawtooth(k): fit error vs k", xticks=ks, ylim=(min(fold) / 3, 1.0))
    ax.legend(fontsize=8, loc="center right")

    ax = axes[2]  # what the trained nets drew for the largest k
    r = sw["rows"][-1]
    xe = np.array(sw["x_eval"])
    ax.plot(xe, dp.tent_power(xe, r["k"]), color="lightgray", lw=3, label=f"T^{r['k']}")
    for name, color, label in (("deep", "tab:red", f"deep {r['k']}x{r['deep_width']}"),
                               ("shallow", "tab:blue", f"shallow 1x{r['shallow_width']}")):
        best = min(r[name + "_runs"], key=lambda q: q["eval_mse"])
        ax.plot(xe, best["eval_prediction"], color=color, lw=1.2,
                label=f"{label} (MSE {best['eval_mse']:.3f})")
    ax.set(xlabel="x", ylabel="output", title=f"trained nets on sawtooth({r['k']}), "
                                               f"{r['deep_parameters']} parameters each")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_compositional(rec):
    c = rec["compositional"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for d in c["depths"]:
        pts = c["curves"][str(d)]
        ax.loglog([p["parameters"] for p in pts], [p["train_mse"] for p in pts], "o-",
                  color=DEPTH_COLORS.get(d), label=f"{d} hidden layer{'s' if d > 1 else ''}")
    ax.axhline(c["constant_mse"], color="gray", ls="--", lw=0.8)
    ax.set_ylim(top=c["constant_mse"] * 1.6)
    ax.text(0.01, c["constant_mse"] * 1.08, "predicting 0", color="gray", fontsize=8,
            transform=ax.get_yaxis_transform())  # x in axes fractions, y in data
    ax.set_xticks(c["budgets"], [str(b) for b in c["budgets"]])
    ax.minorticks_off()
    ax.set(xlabel="number of parameters (ticks: the budgets each width is chosen for)", ylabel="training MSE (log scale)",
           title="f(x) = 2(2cos²x − 1)² − 1 on [−π, π]: loss vs size")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = demo_parser(__doc__)
    ap.add_argument("--dataset", choices=dp.SEIDE_DATASETS, default=None,
                    help="data for the Seide part (default mnist1d; mnist, fashion-mnist and "
                         "cifar10 need their files, see tinydeep.data.load_mnist)")
    ap.add_argument("--width", type=positive_int, help="width W of the deep L x W nets (default 100)")
    ap.add_argument("--n-train", type=positive_int, help="training samples (default 4000)")
    ap.add_argument("--epochs", type=positive_int,
                    help="most epochs per net; each stops at 100%% training accuracy (default 300)")
    ap.add_argument("--seeds", type=positive_int, default=None, help="seeds per net (default 3)")
    sweep.add_arguments(ap)
    args = ap.parse_args(argv)
    cfg = dict(dp.QUICK if args.quick else dp.DEFAULT)
    for key, name in (("width", "width"), ("n_train", "n_train"), ("epochs", "max_epochs"),
                      ("dataset", "dataset")):
        if getattr(args, key) is not None:
            cfg[name] = getattr(args, key)
    if cfg["dataset"] != "mnist1d" and not args.n_train:
        cfg["n_train"], cfg["n_test"] = (1000, 1000) if args.quick else (4000, 4000)
    if cfg["dataset"] != "mnist1d" and not args.width:  # images: a one-unit step of the
        cfg["width"] = 64 if args.quick else 128        # shallow twin is ~800+ parameters
    if args.seeds:
        cfg["seide_seeds"] = tuple(range(args.seeds))
    cfg["sweep"] = sweep.options(args)
    cfg["out"] = os.path.join(args.out, "fat_vs_deep_runs")
    t0 = time.perf_counter()
    try:
        rec = dp.run(**cfg)
    except FileNotFoundError as e:
        sys.exit(f"--dataset {cfg['dataset']}: its files are not there.\n{e}")
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)

    stem = os.path.join(args.out, "fat_vs_deep")
    save_results(stem, (("_seide", plot_seide), ("_folding", plot_folding),
                        ("_compositional", plot_compositional)), rec)
    return rec


if __name__ == "__main__":
    main()
