"""MNIST-1D (Greydanus 2020): logistic, MLP and CNN, plain and with shuffled positions,
over seeds, beside the published numbers.

(Named mnist_1d, not mnist1d, so that it does not hide the `mnist1d` package.)
    python demos/mnist_1d.py [--quick] [--out results/] [--seeds 3] [--epochs 40]
                            [--workers N | --scheduler tcp://HOST:PORT] [--threads T]

Prints the table as Markdown; writes mnist_1d.png and mnist_1d.json to --out, and one
JSON per finished run under --out/mnist_1d_runs/ (a rerun skips those).
"""
import os
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments import mnist1d as m1d  # noqa: E402
from tinydeep.experiments import sweep  # noqa: E402
from tinydeep.experiments.args import demo_parser, positive_int  # noqa: E402
from tinydeep.experiments.records import markdown_table, save_results  # noqa: E402

NAMES = {"logistic": "logistic regression", "mlp": "MLP 40-100-100-10", "cnn": "CNN 3 conv x 25"}


def pct(v):
    return "—" if v is None else f"{100 * v:.0f}%"


def ms(s):
    return "—" if s["mean"] is None else f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}%"


def print_table(rec):
    cfg = rec["config"]
    print(f"\nMNIST-1D: {int(cfg['num_samples'] * 0.8)} training, "
          f"{cfg['num_samples'] - int(cfg['num_samples'] * 0.8)} test sequences of 40; SGD momentum "
          f"0.9, lr {cfg['lr']} x{cfg['lr_decay']} per epoch, batch 128, {cfg['epochs']} epochs; "
          f"seeds {cfg['seeds']} (mean ± std over seeds)\n")
    rows = [[NAMES[r["model"]], f"{r['parameters']:,}", ms(r["test_accuracy"]), pct(r["published"]),
             ms(r["shuffled_test_accuracy"]), pct(r["published_shuffled"])] for r in rec["rows"]]
    print(markdown_table(["model", "# params", "test accuracy (ours)", "published",
                          "shuffled positions (ours)", "published shuffled"], rows))
    print(f"\nPublished: {rec['source']}.\n")
    for r in rec["rows"]:
        print("- " + r["shuffled_minus_plain"]["sentence"])
    for v in (rec["cnn_minus_mlp"] or {}).values():
        print("- " + v["sentence"])
    print()


def plot(rec):
    rows = rec["rows"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    xs = np.arange(len(rows))
    for off, key, pub, color, label in ((-0.2, "test_accuracy", "published", "tab:blue", "plain"),
                                        (0.2, "shuffled_test_accuracy", "published_shuffled",
                                         "tab:orange", "shuffled positions")):
        mean = [r[key]["mean"] for r in rows]
        std = [r[key]["std"] for r in rows]
        ax.bar(xs + off, mean, 0.4, yerr=std, capsize=5, color=color, alpha=0.8,
               label=f"{label} (ours, mean ± std over {len(rec['config']['seeds'])} seeds)")
        for x, r in zip(xs + off, rows):
            ax.plot(x + np.zeros(len(r[key]["values"])), r[key]["values"], "k.", ms=4)
            if r[pub] is not None:
                ax.plot([x - 0.2, x + 0.2], [r[pub]] * 2, color="black", lw=2.5,
                        label="published (Greydanus 2020)" if (x == xs[0] + off and off < 0) else None)
    ax.axhline(0.1, color="gray", ls="--", lw=0.8)
    ax.text(xs[-1] + 0.45, 0.11, "chance", color="gray", fontsize=8, ha="right")
    ax.set_xticks(xs, [NAMES[r["model"]] for r in rows])
    ax.set(ylabel="test accuracy", ylim=(0, 1.05),
           title="MNIST-1D: a CNN needs the order of the positions, an MLP does not")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = demo_parser(__doc__)
    ap.add_argument("--seeds", type=positive_int, default=None,
                    help="seeds per row (default 3)")
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help="epochs per run (default 40, quick 4)")
    sweep.add_arguments(ap)
    args = ap.parse_args(argv)
    cfg = dict(m1d.QUICK if args.quick else m1d.DEFAULT)
    if args.seeds:
        cfg["seeds"] = tuple(range(args.seeds))
    if args.epochs:
        cfg["epochs"] = args.epochs
    t0 = time.perf_counter()
    rec = m1d.run(sweep=sweep.options(args), out=os.path.join(args.out, "mnist_1d_runs"), **cfg)
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_table(rec)
    save_results(os.path.join(args.out, "mnist_1d"), (("", plot),), rec)
    return rec


if __name__ == "__main__":
    main()
