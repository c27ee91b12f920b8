"""Train an MLP on the built-in glyph digits (no network needed).

    python demos/quickstart.py [--quick] [--out results/] [--dataset glyphs|mnist1d|...]
"""
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments import save_figure, save_json  # noqa: E402
from tinydeep.experiments.args import demo_parser  # noqa: E402
from tinydeep.experiments.quickstart import run  # noqa: E402
from tinydeep.experiments.random_labels import DATASETS  # noqa: E402


def main(argv=None):
    ap = demo_parser(__doc__, quick="a smaller run, for a smoke test")
    ap.add_argument("--dataset", default="glyphs", choices=DATASETS,
                    help="glyphs (built in, default), mnist1d, or a real set whose files are "
                         "present")
    ap.add_argument("--download", action="store_true",
                    help="fetch a missing real data set instead of stopping")
    args = ap.parse_args(argv)
    cfg = dict(n_train=3000, n_test=1000, epochs=2) if args.quick else {}
    if args.dataset == "mnist1d":  # its 4,000 training and 1,000 test sequences
        cfg.update(n_train=4000, n_test=1000, epochs=20 if not args.quick else 5)
    try:
        rec = run(dataset=args.dataset, download=args.download, **cfg)
    except FileNotFoundError as e:
        sys.exit(f"--dataset {args.dataset}: its files are not there.\n{e}\n"
                 f"Run again with --download to fetch them, or use --dataset glyphs or mnist1d.")
    h = rec["history"]
    print(f"test accuracy after {rec['config']['epochs']} epochs: {rec['test_accuracy']:.3f} "
          f"(train accuracy in the last epoch {h['train_acc'][-1]:.3f})")

    fig, axes = plt.subplot_mosaic([["loss"] * 4 + ["s0", "s1", "s2", "s3"],
                                    ["loss"] * 4 + ["s4", "s5", "s6", "s7"]], figsize=(11, 3.6))
    axes["loss"].plot(h["steps"], h["losses"], lw=0.6, color="tab:blue", alpha=0.5)
    k = max(1, len(h["losses"]) // 50)
    smooth = np.convolve(h["losses"], np.ones(k) / k, mode="valid")
    axes["loss"].plot(h["steps"][k - 1:], smooth, color="tab:blue", label=f"mean of {k} steps")
    axes["loss"].set(xlabel="SGD step", ylabel="cross-entropy", yscale="log",
                     title=f"MLP on {rec['config']['dataset']}: test accuracy {rec['test_accuracy']:.1%}")
    axes["loss"].legend()
    s = rec["samples"]
    for i in range(8):
        ax = axes[f"s{i}"]
        img = np.asarray(s["images"][i])
        if img.shape[0] == 1:  # a sequence (MNIST-1D): draw it as a curve
            ax.plot(img[0], color="black", lw=1)
            ax.set_ylim(img.min() - 0.3, img.max() + 0.3)
        else:
            ax.imshow(img, cmap="gray_r")
        ok = s["predictions"][i] == s["labels"][i]
        ax.set_title(f"pred {s['predictions'][i]}", color="green" if ok else "red", fontsize=9)
        ax.axis("off")
    js = save_json(rec, os.path.join(args.out, "quickstart.json"))  # the numbers first
    png = save_figure(fig, os.path.join(args.out, "quickstart.png"))
    print(f"wrote {png} and {js}")
    return rec


if __name__ == "__main__":
    main()
