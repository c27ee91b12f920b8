"""Run every benchmark and write benchmarks/results.json, results.png and README_TABLE.md.

    python -m benchmarks [--quick] [--only matmul conv relu grid_sample train interplay coldstart cuda]
                         [--out FOLDER] [--avx2]

Each benchmark runs in turn in this process (the cold start in child processes);
one that fails is recorded with its error and the others still run. Every
figure is a ratio of two medians from interleaved rounds in one run (see
timing.py). --quick takes fewer rounds: for a look, not for the README.

--avx2 runs the same benchmarks on the code path of a CPU without AVX-512 (AMD Zen 3, older
Intel), on whatever x86 this is: tinydeep compiles for Zen 3 (NUMBA_CPU_NAME=znver3: AVX2 and
FMA, tiles of 6 x 16), and the baselines are held to AVX2 too (PyTorch's ATen, oneDNN, MKL
and OpenBLAS by their environment variables, AVX2_ENV), so each ratio compares two AVX2
codes. The caches are still this machine's, and so is the core that runs the instructions:
a stand-in for such a CPU, not a measurement on one.
"""
import argparse
import datetime
import importlib
import os
import subprocess
import sys
import textwrap
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import machine  # noqa: E402

# the environment of --avx2: every library in the run on its AVX2 code path
AVX2_ENV = {"NUMBA_CPU_NAME": "znver3", "ATEN_CPU_CAPABILITY": "avx2",
            "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell"}

NAMES = ("matmul", "conv", "relu", "grid_sample", "train", "interplay", "coldstart", "cuda")
COMMAND = "python -m benchmarks"


# name -> (module, the argument that sets its rounds, rounds with --quick, rounds without)
ROUNDS = {"matmul": ("bench_matmul", "repeats", 3, 5), "conv": ("bench_conv", "rounds", 3, 5),
          "relu": ("bench_relu", "rounds", 3, 7), "grid_sample": ("bench_grid_sample", "repeats", 3, 9),
          "train": ("bench_train", "rounds", 3, 9), "interplay": ("bench_interplay", "rounds", 3, 7),
          "coldstart": ("bench_coldstart", "rounds", 1, 3)}


def run_one(name, quick):
    """The record of one benchmark: {'figures': [...], ...}, or None when it does not apply."""
    if name == "cuda":
        return run_cuda(quick)
    if name not in ROUNDS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(NAMES)}")
    module, rounds, few, many = ROUNDS[name]
    return importlib.import_module(f"benchmarks.{module}").run(**{rounds: few if quick else many})


def run_cuda(quick):
    """benchmarks/bench_cuda.py where it exists and a GPU is usable; None otherwise."""
    if not os.path.exists(os.path.join(HERE, "bench_cuda.py")):
        return None
    from benchmarks import bench_cuda
    from benchmarks.timing import figure
    res = bench_cuda.main(["--repeats", "2" if quick else "5"])
    if res is None:      # it printed why (no GPU)
        return None
    figs = []
    mm = res.get("matmul", {}).get("gflops", {})
    base = next((v for k, v in mm.items() if k.lower().startswith("cublas")), None)
    ours = [v for k, v in mm.items() if not k.lower().startswith("cublas")]
    if base and ours:
        figs.append(figure(f"CUDA matmul fp32 {res['matmul']['n']}³: best kernel / cuBLAS",
                           max(ours) / base, 0.5, ">="))
    r = res.get("relu", {})
    if r.get("copy_gbs"):
        figs.append(figure("CUDA ReLU 2^26 fp32: GB/s / device copy", r["relu_gbs"] / r["copy_gbs"],
                           0.8, ">="))
    s = res.get("grid_sample", {})
    if s.get("torch_ms"):
        figs.append(figure(f"CUDA grid_sample fwd+bwd {tuple(s['shape'])}: speed-up vs PyTorch CUDA",
                           s["torch_ms"] / s["tinydeep_ms"], 1.0, ">="))
    res["figures"] = figs
    return res


def commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=ROOT, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --- the three outputs ------------------------------------------------------------------------

def _fmt(f):
    unit = " s" if f["unit"] == "s" else "×"
    return f"{f['measured']:.2f}{unit}", f"{f['op']} {f['target']:g}{unit}"


def markdown(record):
    """README material: the results table, the matmul kernel ladder, and what was not met."""
    lines = ["## Measured on this machine", "",
             f"`{record['command']}` on {record['machine_line']} — {record['date']}"
             f"{', commit ' + record['commit'] if record.get('commit') else ''}"
             f"{' (--quick: fewer rounds)' if record.get('quick') else ''}.", "",
             "Every figure is a ratio of two medians measured in the same process run "
             "(interleaved rounds, warm-up excluded); ratios > 1 in a speed-up column mean "
             "tinydeep is faster, ratios of times < 1 mean tinydeep takes less time.", "",
             "| figure | target | measured | met? |", "|---|---|---|---|"]
    for f in record["figures"]:
        measured, target = _fmt(f)
        note = f" ({f['note']})" if f.get("note") else ""
        lines.append(f"| {f['figure']} | {target} | {measured}{note} | "
                     f"{'yes' if f['met'] else '**no**'} |")
    for name, err in record.get("errors", {}).items():
        lines.append(f"| {name} | — | failed: {err.splitlines()[-1][:120]} | **no** |")
    for name in record.get("skipped", []):
        lines.append(f"| {name} | — | skipped (not available on this machine) | — |")
    lad = record.get("results", {}).get("matmul", {}).get("ladder")
    if lad:
        g, q = lad["gflops"], lad["ratio_to_numpy"]
        rungs = [("naive", "1. naive i-k-j loops, rows split over the cores"),
                 ("blocked", "2. cache-blocked i-k-j (tiles of a and b stay in cache)"),
                 ("fast", "3. packed panels + LLVM vector FMA micro-kernel "
                          "(`tinydeep/backends/cpu_matmul.py`)"),
                 ("numpy", "NumPy `a @ b` (OpenBLAS)"), ("torch", "PyTorch CPU `a @ b`")]
        path = record["results"]["matmul"].get("code_path")
        lines += ["", f"### Matmul kernel ladder (fp32 {lad['case'].replace('^3', '³')}, same run)", ""]
        lines += [f"Code path: {path}.", ""] if path else []
        lines += ["| rung | GFLOP/s | / numpy |", "|---|---|---|"]
        lines += [f"| {label} | {g[k]:.1f} | {q[k]:.2f} |" for k, label in rungs if k in g]
    conv = record.get("results", {}).get("conv", {}).get("ms")
    if conv:
        lines += ["", "### Convolution ladder (fp32, batch 128, fwd + bwd of one layer, same run)", "",
                  "| layer | 1. im2col + matmul, ms | 2. image by image, patch matrix in cache, ms "
                  "| 3. implicit GEMM, no patch matrix, ms | PyTorch, ms |",
                  "|---|---|---|---|---|"]
        lines += [f"| {label} | {ms['im2col']:.1f} | {ms['patches']:.1f} | {ms['implicit']:.1f} | "
                  + (f"{ms['torch']:.1f} |" if "torch" in ms else "— |") for label, ms in conv.items()]
    missed = [f for f in record["figures"] if not f["met"]]
    lines += ["", "### Not met" if missed else "### Every target met", ""]
    for f in missed:
        measured, target = _fmt(f)
        off = (f"{100 * (1 - f['measured'] / f['target']):.0f} % below" if f["op"] == ">=" else
               f"{100 * (f['measured'] / f['target'] - 1):.0f} % above")
        lines.append(f"- {f['figure']}: {measured} against {target}, {off} the target.")
    return "\n".join(lines) + "\n"


def speed(f):
    """A figure as tinydeep's speed relative to its baseline (> 1: tinydeep is faster), and
    its target on the same scale. Speed-ups ('>=') are that already; time ratios ('<=') are
    inverted; a time in seconds (the cold start) has no baseline, so it is shown as
    target / measured (> 1: inside the target)."""
    if f["unit"] == "s":
        return f["target"] / f["measured"], 1.0
    if f["op"] == ">=":
        return f["measured"], f["target"]
    return 1.0 / f["measured"], 1.0 / f["target"]


def figure_png(record, path):
    """One bar per figure on a log axis: tinydeep's speed relative to its baseline, from the
    parity line at 1x (right: tinydeep faster), with the target marked on each bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)
    from tinydeep.experiments.records import save_figure
    figs = record["figures"]
    if not figs:
        return None
    labels = ["\n".join(textwrap.wrap(f["figure"].split(":")[0]
                                      + (" (target / seconds)" if f["unit"] == "s" else ""), 52))
              for f in figs]
    values = [speed(f) for f in figs]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(figs) + 1.8))
    y = list(range(len(figs)))[::-1]
    colors = ["#2a9d47" if f["met"] else "#d1493f" for f in figs]
    ax.barh(y, [v - 1.0 for v, _ in values], left=1.0, color=colors, height=0.6)
    ax.axvline(1.0, color="black", lw=1.2)
    for yi, f, (v, target) in zip(y, figs, values):
        ax.plot([target, target], [yi - 0.38, yi + 0.38], color="black", lw=1.5, ls=":")
        measured, goal = _fmt(f)
        text = (f"{v:.2f}×" if f["op"] == ">=" and f["unit"] != "s" else
                f"{v:.2f}× (time ratio {measured})" if f["unit"] != "s" else f"{v:.2f}× ({measured})")
        ax.text(max(v, 1.0, target) * 1.06, yi, f"{text}, target {goal}", va="center", fontsize=8)
    ax.set_xscale("log")
    lo = min(min(v for v, _ in values), min(t for _, t in values), 1.0)
    hi = max(max(v for v, _ in values), max(t for _, t in values), 1.0)
    ax.set_xlim(lo / 1.4, hi * 3.0)              # room for the labels on the right
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo / 1.4 <= t <= hi * 3.0]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{t:g}×" for t in ticks]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7.5)
    ax.set_xlabel("tinydeep's speed relative to the baseline, log scale "
                  "(1x = parity line; right of it tinydeep is faster; dotted: the target)")
    path_note = " (--avx2: AVX2 code paths)" if record["command"].endswith("--avx2") else ""
    ax.set_title(f"tinydeep benchmarks{path_note} — {record['machine']['cpu']}, "
                 f"{record['machine']['threads']['cpu_count']} CPUs, {record['date'][:10]}; "
                 f"green: target met", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a look, not for the README)")
    ap.add_argument("--only", nargs="+", choices=NAMES, help="run only these benchmarks")
    ap.add_argument("--out", default=HERE, help="folder for results.json, results.png, "
                                                "README_TABLE.md (default: benchmarks/)")
    ap.add_argument("--avx2", action="store_true",
                    help="tinydeep and the baselines on their AVX2 code paths (see above)")
    args = ap.parse_args(argv)
    if args.avx2 and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        # the libraries read these variables when they load: run again in a child that has them
        argv = sys.argv[1:] if argv is None else list(argv)
        done = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT,
                              env={**os.environ, **AVX2_ENV})
        raise SystemExit(done.returncode)
    from tinydeep.experiments.records import atomic_write, check_writable, save_json
    check_writable(args.out)

    t0 = time.perf_counter()
    info = machine.info()
    print(machine.describe(info), flush=True)
    record = {"command": COMMAND + (" --quick" if args.quick else "") +
              (" --avx2" if args.avx2 else ""), "commit": commit(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "quick": args.quick, "machine": info, "results": {}, "figures": [], "errors": {},
              "skipped": []}
    names = args.only or NAMES
    try:
        from tqdm import tqdm
        bar = tqdm(names, desc="benchmarks", unit="bench")
    except ImportError:
        bar = names
    for name in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(name)
        t = time.perf_counter()
        try:
            res = run_one(name, args.quick)
        except Exception:   # noqa: BLE001 -- one broken benchmark must not lose the others
            record["errors"][name] = traceback.format_exc()
            print(f"\n{name} failed:\n{record['errors'][name]}", file=sys.stderr)
            continue
        if res is None:
            record["skipped"].append(name)
            continue
        res["seconds"] = time.perf_counter() - t
        record["results"][name] = res
        record["figures"] += res["figures"]
    # the machine line after the run too: the numba threading layer is known only now
    info["threads"] = machine.threads()
    info["load_average_after"] = machine.load_average()
    record["machine_line"] = machine.describe(info)
    record["seconds"] = time.perf_counter() - t0

    text = markdown(record)
    save_json(record, os.path.join(args.out, "results.json"))
    figure_png(record, os.path.join(args.out, "results.png"))
    atomic_write(os.path.join(args.out, "README_TABLE.md"), lambda f: f.write(text.encode()))
    print("\n" + text)
    print(f"wrote results.json, results.png, README_TABLE.md to {args.out} "
          f"({record['seconds']:.0f} s)")
    return record


if __name__ == "__main__":
    main()
