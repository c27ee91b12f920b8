"""No manifold: an MLP learns to tell primes from the binary digits of the training
integers, and on new integers does no better than always answering "composite";
the same MLP on the same number of glyphs generalizes.

    python demos/primes.py [--quick] [--out results/] [--bits 16] [--n-train 4000]

Prints the table as Markdown, writes primes.png and primes.json to --out.
"""
import os
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments.records import markdown_table as table, save_results  # noqa: E402
from tinydeep.experiments.args import demo_parser, positive_int  # noqa: E402
from tinydeep.experiments import primes as pr  # noqa: E402


def pct(v):
    return "—" if v is None else f"{100 * v:.1f}%"


def ms(s):
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}%"


def majority_name(r):
    if r["data"] == "primes":
        return "composite" if r["majority_class"] == 0 else "prime"
    return f"digit {r['majority_class']}"


def print_tables(rec):
    cfg = rec["config"]
    print(f"\n### {cfg['model']}, SGD momentum 0.9, lr {cfg['lr']}, batch 128, trained to 100% "
          f"training accuracy (at most {cfg['max_epochs']} epochs), {cfg['n_train']} training "
          f"examples each\n")
    rows = [[r["task"], r["n_train"], r["n_test"], pct(r["train_accuracy"]),
             pct(r["test_accuracy"]), f"{pct(r['base_rate'])} ({majority_name(r)})",
             f"{100 * r['lift_over_base_rate']:+.1f}", pct(r["minority_recall"]), r["epochs"]]
            for r in rec["rows"]]
    print(table(["task", "n train", "n test", "train accuracy", "test accuracy",
                 "base rate (majority class)", "test − base rate (points)",
                 "recall of the other classes", "epochs"], rows))
    print(f"\n(main case: {cfg['main_choice']}; the test set is every other integer below "
          f"2^{cfg['bits']} — of the same parity set — for primes, and new glyphs for glyphs; "
          f"base rate = test accuracy of always predicting the training set's majority class)\n")
    print(f"Over seeds {cfg.get('seeds', [cfg['seed']])} (each its own split and initial "
          f"weights; the table shows the first):\n")
    for r in rec["rows"]:
        if "over_seeds" in r:
            o = r["over_seeds"]
            print(f"- {r['task']}: test {ms(o['test_accuracy'])}, base rate "
                  f"{ms(o['base_rate'])}; " + o["test_minus_base_rate"]["sentence"])
    print()
    for r in rec["rows"]:
        if r.get("group_accuracy"):
            parts = ", ".join(f"{k} {pct(v)}" for k, v in r["group_accuracy"].items())
            print(f"{r['task']}: test accuracy on {parts} integers — the even ones are the "
                  f"trivial cue (all composite but 2), the odd ones the real question.\n")


def plot(rec):
    rows = rec["rows"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    xs = np.arange(len(rows))
    w = 0.26
    for off, key, color, label in ((-w, "train_accuracy", "tab:blue", "train"),
                                   (0, "test_accuracy", "tab:red", "test"),
                                   (w, "base_rate", "tab:gray", "base rate (majority class)")):
        vals = [r[key] for r in rows]
        o = [r.get("over_seeds", {}).get(key) for r in rows]
        if all(o):  # mean ± std over seeds where there are several
            vals, err = [s["mean"] for s in o], [s["std"] for s in o]
            label += f" (mean ± std, {o[0]['n']} seeds)"
        else:
            err = None
        ax.bar(xs + off, vals, w, color=color, label=label, yerr=err, capsize=4)
        for x, v in zip(xs + off, vals):
            ax.text(x, v + 0.01, pct(v), ha="center", fontsize=8)
    ax.set_xticks(xs, [r["task"].replace(" (", "\n(") for r in rows], fontsize=9)
    cfg = rec["config"]
    ax.set(ylabel="accuracy", ylim=(0, 1.25),
           title=f"No manifold: {cfg['model']} on {cfg['n_train']} examples — memorized primes "
                 f"do not generalize, glyphs do")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = demo_parser(__doc__)
    ap.add_argument("--bits", type=positive_int, help="integers below 2^bits (default 16, quick 12)")
    ap.add_argument("--n-train", type=positive_int, help="training-set size (default 4000, quick 1000)")
    args = ap.parse_args(argv)
    cfg = dict(pr.QUICK if args.quick else pr.DEFAULT)
    if args.bits is not None:
        cfg["bits"] = args.bits
    if args.n_train is not None:
        cfg["n_train"] = args.n_train
    t0 = time.perf_counter()
    try:
        rec = pr.run(**cfg)
    except ValueError as e:
        ap.error(str(e))
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)
    stem = os.path.join(args.out, "primes")
    save_results(stem, (("", plot),), rec)
    return rec


if __name__ == "__main__":
    main()
