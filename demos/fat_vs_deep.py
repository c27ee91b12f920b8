"""Fat vs deep at equal parameter count (Seide et al. 2011), depth as folding (Telgarsky
2016), and a compositional function (Mhaskar, Liao & Poggio 2017).

    python demos/fat_vs_deep.py [--quick] [--out results/] [--width 128] [--n-train 10000]
                                [--epochs 10] [--seeds 1]

Prints the tables as Markdown, writes fat_vs_deep_seide.png, fat_vs_deep_folding.png,
fat_vs_deep_compositional.png and fat_vs_deep.json to --out.
"""
import argparse
import os
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments import depth as dp  # noqa: E402
from tinydeep.experiments.args import out_dir, positive_int  # noqa: E402
from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402

DEPTH_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}


def pct(v):
    return f"{100 * v:.2f}%"


def print_tables(rec):
    cfg, s = rec["config"], rec["seide"]
    print(f"\n### 1. Seide et al. 2011 analog: L x {cfg['width']} vs one hidden layer, "
          f"same parameters\n")
    print(f"glyphs, {cfg['n_train']} training / {cfg['n_test']} test images (784 inputs, 10 "
          f"classes); SGD momentum 0.9, lr {cfg['lr']}, batch 128, {cfg['epochs']} epochs for "
          f"every net; mean over seeds {s['seeds']}.\n")
    rows = []
    for r in s["rows"]:
        rows.append([f"{r['depth']} x {r['width']}", f"{r['parameters']:,}",
                     pct(r["deep_train_error"]), pct(r["deep_test_error"]),
                     f"1 x {r['shallow_width']}", f"{r['shallow_parameters']:,}",
                     f"{100 * r['relative_gap']:.2f}%", pct(r["shallow_train_error"]),
                     pct(r["shallow_test_error"]),
                     "—" if r["deep_wins"] is None else ("deep" if r["deep_wins"] else "shallow")])
    print(table(["L x W", "# params", "train err", "test err", "1 x W'", "# params",
                 "count gap", "train err", "test err", "lower test error"], rows))
    v = s["verdict"]
    print(f"\nDeep beats its same-size shallow twin in {v['deep_beats_shallow_rows']} of "
          f"{v['rows_compared']} rows; test error "
          f"{'falls' if v['error_falls_with_depth'] else 'does not fall'} monotonically with "
          f"depth (best depth {v['best_deep_depth']}).")
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
          f"evenly spaced points; SGD momentum 0.9, lr {sw['lr']} decaying x0.1 over "
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
          f"decaying x0.1 over {c['steps']} steps, batch 128; best of seeds {c['seeds']}. "
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
    fig, ax = plt.subplots(figsize=(7, 4.5))
    params = [r["parameters"] for r in s["rows"]]
    ax.plot(params, [100 * r["deep_test_error"] for r in s["rows"]], "o-", color="tab:red",
            label=f"deep: L x {cfg['width']}, L = 1…{s['rows'][-1]['depth']}")
    ax.plot([r["shallow_parameters"] for r in s["rows"]],
            [100 * r["shallow_test_error"] for r in s["rows"]], "s--", color="tab:blue",
            label="shallow: 1 x W' with the same parameter count")
    for r in s["rows"]:
        ax.annotate(f"{r['depth']}x{r['width']}", (r["parameters"], 100 * r["deep_test_error"]),
                    textcoords="offset points", xytext=(4, -12), fontsize=8, color="tab:red")
        if r["depth"] > 1:
            ax.annotate(f"1x{r['shallow_width']}",
                        (r["shallow_parameters"], 100 * r["shallow_test_error"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=8,
                        color="tab:blue")
    ax.set(xlabel="number of parameters", ylabel="test error (%)",
           title=f"Seide et al. 2011 analog on glyphs ({cfg['n_train']} training images, "
                 f"{cfg['epochs']} epochs)")
    ax.legend()
    ax.grid(alpha=0.3)
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small run (< 60 s), for a smoke test")
    ap.add_argument("--out", type=out_dir, default="results",
                    help="folder for the PNGs and JSON (default results/)")
    ap.add_argument("--width", type=positive_int, help="width W of the deep L x W nets (default 128)")
    ap.add_argument("--n-train", type=positive_int, help="glyph training images (default 10000)")
    ap.add_argument("--epochs", type=positive_int, help="epochs for every glyph net (default 10)")
    ap.add_argument("--seeds", type=positive_int, default=1, help="seeds per glyph net (default 1)")
    args = ap.parse_args(argv)
    cfg = dict(dp.QUICK if args.quick else dp.DEFAULT)
    for key in ("width", "n_train", "epochs"):
        if getattr(args, key) is not None:
            if getattr(args, key) < 1:
                ap.error(f"--{key.replace('_', '-')} must be at least 1")
            cfg[key] = getattr(args, key)
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    cfg["seide_seeds"] = tuple(range(args.seeds))
    t0 = time.perf_counter()
    rec = dp.run(**cfg)
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)

    stem = os.path.join(args.out, "fat_vs_deep")
    save_results(stem, (("_seide", plot_seide), ("_folding", plot_folding),
                        ("_compositional", plot_compositional)), rec)
    return rec


if __name__ == "__main__":
    main()
