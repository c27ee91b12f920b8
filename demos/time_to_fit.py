"""Time to fit vs label corruption (Zhang et al. 2017, Figure 1b) on MNIST-1D, with the
paper's lr schedule and with a constant rate that isolates it, over seeds.

    python demos/time_to_fit.py [--quick] [--out results/] [--seeds 3]
                                [--dataset mnist1d|glyphs|mnist|fashion-mnist|cifar10]
                                [--workers N | --scheduler tcp://HOST:PORT] [--threads T]

Prints the table as Markdown; writes time_to_fit.png and time_to_fit.json to --out, and
one JSON per finished run under --out/time_to_fit_runs/ (a rerun skips those).
"""
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydeep.experiments import sweep, time_to_fit as ttf  # noqa: E402
from tinydeep.experiments.args import demo_parser, positive_int  # noqa: E402
from tinydeep.experiments.random_labels import DATASETS  # noqa: E402
from tinydeep.experiments.records import markdown_table, save_results  # noqa: E402

COLORS = {"paper": "tab:red", "constant": "tab:blue"}
NAMES = {"paper": "paper: lr x0.95 per epoch", "constant": "constant lr (isolates the decay)"}


def ms(s, fmt="{:.0f}", scale=1.0):
    if s["mean"] is None:
        return "—"
    return f"{fmt.format(s['mean'] * scale)} ± {fmt.format(s['std'] * scale)}"


def print_tables(rec):
    cfg = rec["config"]
    print(f"\n{cfg['model']} on {cfg['dataset']}, {cfg['n_train']} training samples; SGD momentum "
          f"0.9, lr {cfg['lr']}, batch 128; until 100 % training accuracy (paper schedule: at "
          f"most {cfg['paper_epochs']} epochs, constant: {cfg['max_epochs']}); mean ± std over "
          f"seeds {cfg['seeds']}.\n")
    for sch, res in rec["schedules"].items():
        print(f"### {NAMES[sch]}\n")
        rows = [[f"{r['p']:g}", f"{100 * r['label_noise']:.0f}%",
                 f"{r['fitted']}/{len(r['steps_to_fit'])}", ms(r["steps"]),
                 ms(r["relative"], "{:.2f}"), ms(r["train_accuracy"], "{:.1f}", 100),
                 ms(r["test_accuracy"], "{:.1f}", 100)] for r in res["rows"]]
        print(markdown_table(["p", "labels changed", "runs fitted", "steps to 100% train",
                              "relative to p=0", "final train acc %", "test acc %"], rows))
        t = res["trend"]
        if t is None:
            print("\nTrend: too few runs reached 100 % training accuracy to fit a line.")
        else:
            print(f"\nTrend over the {t['runs']} runs that fitted: "
                  f"{t['slope_steps_per_unit_p']:+.0f} steps per unit of p (95 % interval "
                  f"[{t['ci95'][0]:+.0f}, {t['ci95'][1]:+.0f}]): time to fit "
                  f"{'grows with p beyond the seed noise' if t['grows'] else 'does not grow beyond the seed noise'}.")
        print("- " + res["train_accuracy_p_last_minus_p0"]["sentence"] + "\n")
    print(f"Paper: {rec['source']}: the time to fit grows with the corruption level; random "
          f"labels take a small constant factor longer than true labels.\n")


def plot(rec):
    dataset = rec["config"]["dataset"]
    fig, (ax_s, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
    for sch, res in rec["schedules"].items():
        p = np.array([r["p"] for r in res["rows"]])
        mean = np.array([np.nan if r["steps"]["mean"] is None else r["steps"]["mean"]
                         for r in res["rows"]])
        std = np.array([0 if r["steps"]["std"] is None else r["steps"]["std"]
                        for r in res["rows"]])
        ax_s.errorbar(p, mean, yerr=std, fmt="o-", capsize=4, color=COLORS[sch],
                      label=NAMES[sch])
        for r in res["rows"]:
            vals = [v for v in r["steps_to_fit"] if v]
            ax_s.plot([r["p"]] * len(vals), vals, ".", color=COLORS[sch], alpha=0.4)
            if r["fitted"] < len(r["steps_to_fit"]):
                ax_s.annotate(f"{len(r['steps_to_fit']) - r['fitted']} not fitted",
                              (r["p"], 0), textcoords="offset points",
                              xytext=(0, 8 if sch == "paper" else 20), ha="center",
                              fontsize=7, color=COLORS[sch])
        t = res["trend"]
        if t is not None:
            xs = np.linspace(0, 1, 20)
            ax_s.plot(xs, t["intercept"] + t["slope_steps_per_unit_p"] * xs, ":",
                      color=COLORS[sch], lw=1)
        acc = [r["train_accuracy"] for r in res["rows"]]
        ax_a.errorbar(p, [a["mean"] for a in acc], yerr=[a["std"] for a in acc], fmt="o-",
                      capsize=4, color=COLORS[sch], label=NAMES[sch])
    ax_s.set(xlabel="label corruption p", ylabel="SGD steps to 100 % training accuracy",
             xlim=(-0.05, 1.05),
             title=f"Figure 1b on {dataset} (mean ± std; dots: seeds; dotted: trend)",
             ylim=(0, None))
    ax_s.legend(fontsize=8, loc="upper left")
    ax_a.axhline(1.0, color="gray", ls="--", lw=0.8)
    ax_a.set(xlabel="label corruption p", ylabel="final training accuracy",
             title="where the paper's schedule stops: the decayed rate freezes\n"
                   "the net before the training set is fitted, even at p = 0", ylim=(0, 1.05))
    ax_a.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = demo_parser(__doc__)
    ap.add_argument("--seeds", type=positive_int, default=None, help="seeds per p (default 3)")
    ap.add_argument("--dataset", default="mnist1d", choices=DATASETS,
                    help="mnist1d (default), glyphs (both built in), or mnist, fashion-mnist, "
                         "cifar10 when their files are present; the MLP takes each flattened")
    sweep.add_arguments(ap)
    args = ap.parse_args(argv)
    cfg = dict(ttf.QUICK if args.quick else ttf.DEFAULT, dataset=args.dataset)
    if args.seeds:
        cfg["seeds"] = tuple(range(args.seeds))
    t0 = time.perf_counter()
    try:
        rec = ttf.run(sweep=sweep.options(args), out=os.path.join(args.out, "time_to_fit_runs"),
                      **cfg)
    except FileNotFoundError as e:
        sys.exit(f"--dataset {args.dataset}: its files are not there.\n{e}\n"
                 f"Use the built-in --dataset mnist1d or glyphs.")
    rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(rec)
    save_results(os.path.join(args.out, "time_to_fit"), (("", plot),), rec)
    return rec


if __name__ == "__main__":
    main()
