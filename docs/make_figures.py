"""Regenerate docs/figures/: run every demo and keep its key plots, and draw the
autograd graph of a small example.

    python docs/make_figures.py [--quick] [--only NAME ...] [--list]
                                [--demos DIR] [--figures DIR] [--from DIR]

Each demo in demos/ runs as `python demos/NAME.py --out TMP [--quick]` in a
temporary folder (full size unless --quick is given); its key PNGs (KEY_FIGURES,
or every PNG it wrote for a demo not listed there) are then copied into
docs/figures/, each written to a temporary name and renamed, so a failed or
interrupted run leaves the previous figures whole. docs/figures/README.md lists
every figure with the command that made it (from docs/figures/figures.json).
A demo that fails is reported and skipped; the exit status is then 1.
`--from DIR` runs nothing: it takes the PNGs that full demo runs already wrote
into DIR (e.g. `results/`; a demo's PNG names start with the demo's name).
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMOS = os.path.join(ROOT, "demos")
FIGURES = os.path.join(ROOT, "docs", "figures")
MANIFEST = os.path.join(FIGURES, "figures.json")
sys.path.insert(0, ROOT)  # the checkout's tinydeep, even when it is not installed

# The plots worth showing from each demo; a demo not named here gives all its PNGs.
KEY_FIGURES = {
    "quickstart": ["quickstart.png"],
    "random_labels": ["random_labels_fig1a.png", "random_labels_fig1bc.png",
                      "random_labels_theorem1.png", "random_labels_batchnorm.png"],
    "random_labels_mnist1d": ["random_labels_mnist1d_fig1a.png"],
}
# Runs of a demo with other arguments, as name: (demo, its extra arguments).
VARIANTS = {"random_labels_mnist1d": ("random_labels", ["--dataset", "mnist1d"])}
ORDER = ["quickstart", "mnist_1d", "random_labels", "random_labels_mnist1d", "time_to_fit",
         "fat_vs_deep", "spatial_transformer", "manifold", "primes"]   # the rest follow in alphabetical order


def demos():
    names = [f[:-3] for f in os.listdir(DEMOS) if f.endswith(".py") and not f.startswith("_")]
    names += [v for v, (demo, _) in VARIANTS.items() if demo in names]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def copy_atomic(src, dst):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=os.path.dirname(dst))
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def png_size(path):
    """(width, height) in pixels, from the PNG header."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def looks_malformed(path):
    """A sentence if the PNG's shape suggests a broken layout (e.g. a stray label far off the
    axes stretching a tight bounding box), else None."""
    w, h = png_size(path)
    if h > 2.5 * w or w > 6 * h:
        return f"{os.path.basename(path)} is {w}x{h} pixels: look at it, the layout may be broken"
    return None


def run_demo(name, quick):
    """Run one demo into a temporary folder; returns {png name: source path} and the
    temporary folder (the caller removes it), or raises CalledProcessError."""
    out = tempfile.mkdtemp(prefix=f"tinydeep-{name}-")
    demo, extra = VARIANTS.get(name, (name, []))
    cmd = [sys.executable, os.path.join(DEMOS, f"{demo}.py"), "--out", out, *extra]
    if quick:
        cmd.append("--quick")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    try:
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        written = sorted(f for f in os.listdir(out) if f.endswith(".png"))
        wanted = KEY_FIGURES.get(name, written)
        missing = [f for f in wanted if f not in written]
        if missing:
            raise FileNotFoundError(f"demos/{name}.py did not write {missing} (it wrote {written})")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return {f: os.path.join(out, f) for f in wanted}, out


def collect(name, source):
    """The key PNGs of demo `name` from a folder its full run wrote into."""
    written = sorted(f for f in os.listdir(source) if f.startswith(name) and f.endswith(".png"))
    wanted = KEY_FIGURES.get(name, written)
    missing = [f for f in wanted if f not in written]
    if missing or not wanted:
        raise FileNotFoundError(f"{source} holds no {missing or 'PNGs'} from demos/{name}.py")
    return {f: os.path.join(source, f) for f in wanted}, None


def autograd_example():
    """The loss of a 3-4-2 MLP plus a hand-written L2 penalty on its first weight."""
    import numpy as np

    import tinydeep as td
    from tinydeep import functional as F, nn

    td.manual_seed(0)
    model = nn.MLP(3, 4, 1, 2)
    x = td.tensor(np.ones((5, 3)))
    y = td.tensor(np.array([0, 1, 0, 1, 1]))
    loss = F.cross_entropy(model(x), y) + 1e-3 * (model[0].weight ** 2).sum()
    return loss, dict(model.named_parameters(), x=x)


def draw_autograd_graph():
    import matplotlib
    matplotlib.use("Agg")
    from tinydeep.experiments import save_figure
    from tinydeep.graph import draw, to_dot

    loss, names = autograd_example()
    fig = draw(loss, names, title="cross_entropy(MLP(x), y) + 1e-3 · sum(W₀²)\n"
                                  "blue: parameters (get .grad) · grey: input · "
                                  "white: ops · green: the result")
    png = save_figure(fig, os.path.join(FIGURES, "autograd_graph.png"))
    write_atomic(os.path.join(FIGURES, "autograd_graph.dot"), to_dot(loss, names))
    return png


def write_index(manifest):
    rank = ["graph"] + demos()
    lines = ["# Figures", "",
             "Made by `python docs/make_figures.py` (add `--quick` for a fast, smaller run;",
             "figures marked *quick* below came from one). Do not edit by hand.", ""]
    for png, info in sorted(manifest.items(), key=lambda kv: (
            rank.index(kv[1].get("demo")) if kv[1].get("demo") in rank else len(rank), kv[0])):
        quick = " — *quick*" if info.get("quick") else ""
        lines += [f"## {png}", "",
                  f"`{info['command']}`{quick}, {info['date']}", "",
                  f"![{png}]({png})", ""]
    write_atomic(os.path.join(FIGURES, "README.md"), "\n".join(lines))


def main(argv=None):
    global DEMOS, FIGURES, MANIFEST
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="run each demo with --quick")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="only these demos ('graph' for the autograd graph alone)")
    ap.add_argument("--list", action="store_true", help="list the demos and exit")
    ap.add_argument("--demos", default=DEMOS, help="folder of demo scripts (default demos/)")
    ap.add_argument("--figures", default=FIGURES, help="where the figures go (default docs/figures/)")
    ap.add_argument("--from", dest="source", metavar="DIR",
                    help="take the PNGs full demo runs wrote into DIR instead of running them")
    args = ap.parse_args(argv)
    DEMOS, FIGURES = os.path.abspath(args.demos), os.path.abspath(args.figures)
    MANIFEST = os.path.join(FIGURES, "figures.json")
    available = demos()
    if args.list:
        print("\n".join(available + ["graph"]))
        return 0
    chosen = available + ["graph"] if args.only is None else args.only
    unknown = [n for n in chosen if n not in available + ["graph"]]
    if unknown:
        ap.error(f"unknown demo(s) {unknown}; choose from {available + ['graph']}")

    os.makedirs(FIGURES, exist_ok=True)
    manifest = {}
    if os.path.exists(MANIFEST):
        with open(MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    today = datetime.date.today().isoformat()
    failed = []
    for i, name in enumerate(chosen):
        t0 = time.time()
        print(f"[{i + 1}/{len(chosen)}] {name}" + (" (--quick)" if args.quick and name != "graph"
                                                   else ""), flush=True)
        try:
            if name == "graph":
                draw_autograd_graph()
                made = {"autograd_graph.png": "python docs/make_figures.py --only graph"}
                quick = False
            else:
                pngs, tmp = (collect(name, args.source) if args.source
                             else run_demo(name, args.quick))
                try:
                    for png, src in pngs.items():
                        copy_atomic(src, os.path.join(FIGURES, png))
                        warning = looks_malformed(src)
                        if warning:
                            print(f"    WARNING: {warning}", flush=True)
                finally:
                    if tmp:
                        shutil.rmtree(tmp, ignore_errors=True)
                demo, extra = VARIANTS.get(name, (name, []))
                cmd = " ".join([f"python demos/{demo}.py", *extra]) + (" --quick" if args.quick
                                                                        else "")
                made = dict.fromkeys(pngs, cmd)
                quick = args.quick
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"    FAILED: {e}", flush=True)
            failed.append(name)
            continue
        for png, cmd in made.items():
            manifest[png] = {"demo": name, "command": cmd, "quick": quick, "date": today}
        print(f"    {', '.join(made)} -> docs/figures/ ({time.time() - t0:.0f} s)", flush=True)
        write_atomic(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_index(manifest)
    if failed:
        print(f"failed: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
