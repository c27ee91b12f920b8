"""Bilinear grid_sample: forward and forward+backward times, side by side.

    python benchmarks/bench_grid_sample.py [--repeats 15] [--threads N] [--json PATH]

For each image shape (N,C,H,W) the grid is an identity-ish random affine
grid of the same output size (theta = identity + 0.1 * noise), padding
'zeros', align_corners=False, float32. Implementations: PyTorch CPU (when
installed), the NumPy reference and the Numba CPU kernels. Each timed sample
runs a call enough times to last >= ~20 ms; samples of the implementations
are interleaved, warm-up calls are excluded, and the median per call is
reported. ratio = torch time / cpu time (> 1: the Numba kernel is faster).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numba  # noqa: E402

from tinydeep.backends import cpu_sampling, reference_sampling  # noqa: E402

try:
    from benchmarks import timing
except ImportError:   # run as a script: benchmarks/ is on sys.path
    import timing

SHAPES = [(128, 1, 28, 28), (64, 32, 64, 64), (1, 3, 512, 512)]
PADDING, ALIGN = "zeros", False


def make_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    N, C, H, W = shape
    image = rng.standard_normal(shape).astype(np.float32)
    theta = np.tile(np.eye(2, 3), (N, 1, 1)) + 0.1 * rng.standard_normal((N, 2, 3))
    grid = reference_sampling.affine_grid(theta.astype(np.float32), H, W, ALIGN)
    grad = rng.standard_normal(shape).astype(np.float32)
    return image, grid, grad


def numpy_impl(mod, image, grid, grad):
    def fwd():
        mod.bilinear_sample(image, grid, PADDING, ALIGN)

    def fwd_bwd():
        mod.bilinear_sample(image, grid, PADDING, ALIGN)
        mod.bilinear_sample_backward(image, grid, grad, PADDING, ALIGN)
    return fwd, fwd_bwd


def torch_impl(image, grid, grad):
    import torch
    import torch.nn.functional as F
    ti, tg, tgrad = torch.from_numpy(image), torch.from_numpy(grid), torch.from_numpy(grad)
    ti_r, tg_r = ti.clone().requires_grad_(), tg.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            F.grid_sample(ti, tg, mode="bilinear", padding_mode=PADDING, align_corners=ALIGN)

    def fwd_bwd():
        out = F.grid_sample(ti_r, tg_r, mode="bilinear", padding_mode=PADDING, align_corners=ALIGN)
        torch.autograd.grad(out, (ti_r, tg_r), tgrad)
    return fwd, fwd_bwd


def calibrate(fn, target_s=0.02):
    """Warm up `fn` and return how many calls make one timed sample."""
    fn()
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, int(target_s / max(once, 1e-7)))


def bench_shape(shape, repeats, ref_repeats, use_torch):
    image, grid, grad = make_inputs(shape)
    impls = {}
    if use_torch:
        impls["torch"] = torch_impl(image, grid, grad)
    if ref_repeats > 0:
        impls["reference"] = numpy_impl(reference_sampling, image, grid, grad)
    impls["cpu"] = numpy_impl(cpu_sampling, image, grid, grad)
    jobs = [(name, kind, fn) for name, fns in impls.items()
            for kind, fn in zip(("fwd", "fwd_bwd"), fns)]
    number = {(name, kind): calibrate(fn) for name, kind, fn in jobs}
    samples = {key: [] for key in number}
    for r in range(repeats):                      # interleaved: one sample of each per round
        for name, kind, fn in jobs:
            if name == "reference" and r >= ref_repeats:
                continue
            k = number[name, kind]
            t = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name, kind].append((time.perf_counter() - t) / k)
    row = {"shape": list(shape)}
    for (name, kind), ts in samples.items():
        row[f"{name}_{kind}_ms"] = 1e3 * statistics.median(ts)
    if use_torch:
        for kind in ("fwd", "fwd_bwd"):
            row[f"ratio_{kind}"] = row[f"torch_{kind}_ms"] / row[f"cpu_{kind}_ms"]
    return row


TARGET = 1.5


def run(repeats=15, ref_repeats=0, shapes=SHAPES):
    """Every shape, forward+backward against PyTorch; figures only where PyTorch is installed."""
    try:
        import torch  # noqa: F401
        use_torch = True
    except ImportError:
        use_torch = False
    rows = [bench_shape(shape, repeats, ref_repeats, use_torch) for shape in shapes]
    figs = [timing.figure(f"grid_sample forward+backward {tuple(r['shape'])}: speed-up vs PyTorch CPU",
                   r["ratio_fwd_bwd"], TARGET, ">=",
                   note=f"{r['cpu_fwd_bwd_ms']:.2f} ms vs {r['torch_fwd_bwd_ms']:.2f} ms")
            for r in rows if "ratio_fwd_bwd" in r]
    return {"benchmark": "grid_sample", "results": rows, "figures": figs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15, help="timed samples per implementation")
    ap.add_argument("--ref-repeats", type=int, default=3,
                    help="timed samples of the (slow) NumPy reference; 0 skips it")
    ap.add_argument("--threads", type=int, help="threads for Numba and PyTorch (default: all)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)

    if args.threads:
        numba.set_num_threads(args.threads)
    use_torch = not args.no_torch
    torch_threads = None
    if use_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: skipping it")
            use_torch = False
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            torch_threads = torch.get_num_threads()
    load = os.getloadavg()[0]
    print(f"threads: numba {numba.get_num_threads()}, torch {torch_threads}, "
          f"cpu_count {os.cpu_count()}; load average {load:.2f} (other work skews timings)")
    print(f"grid_sample bilinear, padding={PADDING}, align_corners={ALIGN}, float32; "
          f"median ms per call; ratio = torch / cpu")

    cols = ["torch_fwd", "torch_fwd_bwd", "reference_fwd", "reference_fwd_bwd",
            "cpu_fwd", "cpu_fwd_bwd"]
    header = f"{'shape':>18} " + " ".join(f"{c:>17}" for c in cols) + \
        f" {'ratio fwd':>9} {'ratio f+b':>9}"
    print(header)
    rows = []
    for shape in SHAPES:
        row = bench_shape(shape, args.repeats, args.ref_repeats, use_torch)
        rows.append(row)
        cells = [f"{row[c + '_ms']:17.3f}" if c + "_ms" in row else f"{'-':>17}" for c in cols]
        ratios = [f"{row[k]:9.2f}" if k in row else f"{'-':>9}"
                  for k in ("ratio_fwd", "ratio_fwd_bwd")]
        print(f"{str(tuple(shape)):>18} " + " ".join(cells) + " " + " ".join(ratios), flush=True)

    if args.json:
        record = {"benchmark": "grid_sample", "padding_mode": PADDING, "align_corners": ALIGN,
                  "dtype": "float32", "numba_threads": numba.get_num_threads(),
                  "torch_threads": torch_threads, "cpu_count": os.cpu_count(),
                  "load_average_at_start": load, "results": rows}
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
