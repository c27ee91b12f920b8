"""float32 matmul: NumPy (BLAS), PyTorch CPU and the three tinydeep rungs.

    python benchmarks/bench_matmul.py [--repeats 7] [--json PATH]

Shapes: two large squares and the matmuls of one training step of a
Linear(784 -> 512) layer on a batch of 128, with PyTorch's weight layout
W (512, 784):

    forward   y  = x @ W.T     matmul_nt   M=128 K=784 N=512
    backward  dx = dy @ W      matmul      M=128 K=512 N=784
              dW = dy.T @ x    matmul_tn   M=512 K=128 N=784

Every contender gets the same operands (the transposes as views; NumPy and
PyTorch get the same views). Each timed sample repeats a call until it lasts
>= 20 ms; in every round each contender takes one sample, in a rotating
order, so that a slow spell of the machine hits all of them alike. Before
each sample the script pauses SETTLE_S and makes one untimed call: OpenBLAS
and OpenMP worker threads keep spinning for up to ~0.1 s after a call and
would otherwise slow down whichever contender runs next (measured: the
first ~4 calls of a 1024^3 Numba matmul right after OpenBLAS ran at half
speed). Warm-up calls (compilation included) are not timed; the median per
call over the rounds is reported as GFLOP/s = 2 M K N / time, and
ratio = GFLOP/s / numpy's. The naive and blocked rungs run fewer rounds on
the large squares.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import tinydeep  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numba  # noqa: E402

from tinydeep.backends import cpu_matmul  # noqa: E402

try:
    from benchmarks import timing
except ImportError:   # run as a script: benchmarks/ is on sys.path
    import timing

try:
    import torch
except ImportError:
    torch = None

# (label, kernel name, M, K, N): the kernel's operands are built by `operands`.
CASES = [
    ("1024^3", "matmul", 1024, 1024, 1024),
    ("2048^3", "matmul", 2048, 2048, 2048),
    ("128x784x512", "matmul", 128, 784, 512),
    ("x@W.T 128x784x512", "matmul_nt", 128, 784, 512),
    ("dy@W 128x512x784", "matmul", 128, 512, 784),
    ("dy.T@x 512x128x784", "matmul_tn", 512, 128, 784),
    ("128x512x512", "matmul", 128, 512, 512),
]
SAMPLE_S = 0.02
SETTLE_S = 0.25


def operands(kind, M, K, N, seed=0):
    """(a, b) in the layout `kind` takes, float32."""
    rng = np.random.default_rng(seed)
    if kind == "matmul":        # a (M,K), b (K,N)
        a, b = rng.standard_normal((M, K)), rng.standard_normal((K, N))
    elif kind == "matmul_nt":   # a (M,K), b (N,K)
        a, b = rng.standard_normal((M, K)), rng.standard_normal((N, K))
    else:                       # matmul_tn: a (K,M), b (K,N)
        a, b = rng.standard_normal((K, M)), rng.standard_normal((K, N))
    return a.astype(np.float32), b.astype(np.float32)


def as_product(kind, a, b):
    """The (M,K) and (K,N) views whose product `kind` computes."""
    if kind == "matmul_nt":
        return a, b.T
    if kind == "matmul_tn":
        return a.T, b
    return a, b


def contenders(kind, a, b):
    """({name: zero-argument callable that computes the product once}, the
    output array they all write)."""
    x, y = as_product(kind, a, b)
    out = np.empty((x.shape[0], y.shape[1]), dtype=np.float32)
    fast = getattr(cpu_matmul, kind)
    calls = {"numpy": lambda: np.matmul(x, y, out=out)}
    if torch is not None:
        tx, ty = torch.from_numpy(a), torch.from_numpy(b)
        tx, ty = as_product(kind, tx, ty)
        tout = torch.from_numpy(out)
        calls["torch"] = lambda: torch.matmul(tx, ty, out=tout)
    calls["naive"] = lambda: cpu_matmul.matmul_naive(x, y, out)
    calls["blocked"] = lambda: cpu_matmul.matmul_blocked(x, y, out)
    calls["fast"] = lambda: fast(a, b, out)
    return calls, out


def check(kind, a, b, calls, out):
    """Every contender must agree with float64 NumPy before it is timed."""
    x, y = as_product(kind, a, b)
    want = x.astype(np.float64) @ y.astype(np.float64)
    scale = np.abs(want).max()
    for name, fn in calls.items():
        out.fill(np.nan)                    # no contender may pass on another's result
        fn()
        err = np.abs(out - want).max() / scale
        if not err < 1e-4:
            raise AssertionError(f"{name} {kind} {x.shape}@{y.shape}: relative error {err:.2e}")


def calibrate(fn):
    """Warm `fn` up and return how many calls make one sample of >= SAMPLE_S."""
    fn()
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, int(SAMPLE_S / max(once, 1e-7)) + 1)


def bench_case(label, kind, M, K, N, repeats):
    a, b = operands(kind, M, K, N)
    calls, out = contenders(kind, a, b)
    check(kind, a, b, calls, out)
    big = M * K * N >= 1024 ** 3
    rounds = {name: (max(2, repeats // 3) if big and name in ("naive", "blocked") else repeats)
              for name in calls}
    loops = {name: calibrate(fn) for name, fn in calls.items()}
    times = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if len(times[name]) >= rounds[name]:
                continue
            fn, n = calls[name], loops[name]
            time.sleep(SETTLE_S)
            fn()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t) / n)
    flop = 2.0 * M * K * N
    gflops = {name: flop / statistics.median(ts) / 1e9 for name, ts in times.items()}
    return {"case": label, "kernel": kind, "M": M, "K": K, "N": N,
            "gflops": gflops,
            "ratio_to_numpy": {name: g / gflops["numpy"] for name, g in gflops.items()},
            "rounds": rounds}


TARGET = 0.90


def figures(results, single=None):
    """One line of the results table per case: the fast kernel's speed / NumPy's (and, where
    measured, the same ratio on one core in thread CPU time)."""
    out = []
    for res in results:
        label = (f"CPU matmul fp32 {res['case']}" if res["case"].endswith("^3") else
                 f"CPU matmul fp32 at a training shape, {res['case']} ({res['kernel']})")
        g = res["gflops"]
        one = (single or {}).get(res["case"])
        out.append(timing.figure(label + ": fast kernel GFLOP/s / numpy's", res["ratio_to_numpy"]["fast"],
                          TARGET, ">=", note=f"{g['fast']:.0f} vs {g['numpy']:.0f} GFLOP/s"
                          + (f"; one core, CPU time: {one:.2f}" if one else "")))
    return out


SINGLE_CORE = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from benchmarks.bench_matmul import CASES, operands, as_product
from tinydeep.backends import cpu_matmul
def per_call(fn, n):
    t = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t) / n
out = {{}}
for label, kind, M, K, N in CASES:
    a, b = operands(kind, M, K, N)
    x, y = as_product(kind, a, b)
    c = np.empty((M, N), np.float32)
    fast = getattr(cpu_matmul, kind)
    calls = {{"numpy": lambda: np.matmul(x, y, out=c), "fast": lambda: fast(a, b, c)}}
    for fn in calls.values():
        fn()
    n = max(1, int(0.05 / max(per_call(calls["numpy"], 1), 1e-6)))
    best = {{k: min(per_call(fn, n) for _ in range({rounds})) for k, fn in calls.items()}}
    out[label] = best["numpy"] / best["fast"]
print(json.dumps(out))
"""


def single_core(rounds=7):
    """{case: fast / numpy} on one core each (OPENBLAS_NUM_THREADS=1, NUMBA_NUM_THREADS=1), in a
    child process, timed in thread CPU time (best of `rounds`): the kernels' own speed, which
    other programs on a shared machine disturb far less than the two-thread wall times."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               TINYDEEP_QUIET_COMPILE="1")
    out = subprocess.run([sys.executable, "-c", SINGLE_CORE.format(root=root, rounds=rounds)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the single-core child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ladder(results):
    """The kernel ladder at the first square case: GFLOP/s per rung and per baseline."""
    res = next(r for r in results if r["case"].endswith("^3"))
    return {"case": res["case"], "gflops": res["gflops"], "ratio_to_numpy": res["ratio_to_numpy"]}


def run(repeats=7, cases=None, one_core=None):
    """Every case of CASES (or `cases`), as a record with its figures and the ladder;
    one_core (default: when all of CASES run) adds the single-core ratios."""
    results = [bench_case(*case, repeats=repeats) for case in (cases or CASES)]
    single = single_core() if (cases is None if one_core is None else one_core) else None
    return {"benchmark": "matmul", "code_path": cpu_matmul.code_path(), "results": results,
            "single_core_ratio": single, "figures": figures(results, single),
            "ladder": ladder(results)}


def cpu_seconds():
    """(CPU seconds used by the whole machine, by this process), or None
    where /proc/stat is missing: their difference over the run says how much
    other programs competed for the cores."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    busy = sum(fields) - fields[3] - fields[4]          # minus idle and iowait
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def thread_info():
    info = {"cpu_count": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": None, "torch_threads": None,
            "openblas_threads": None, "machine": platform.processor() or platform.machine()}
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:          # no parallel kernel has run yet
        pass
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_info
        info["openblas_threads"] = [p["num_threads"] for p in threadpool_info()
                                    if p.get("internal_api") == "openblas"]
    except ImportError:
        pass
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per case")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    start, wall = cpu_seconds(), time.perf_counter()
    results = [bench_case(*case, repeats=args.repeats) for case in CASES]
    end, wall = cpu_seconds(), time.perf_counter() - wall
    info = thread_info()
    if start and end:
        info["other_programs_cpu_fraction"] = max(
            0.0, ((end[0] - start[0]) - (end[1] - start[1])) / (wall * os.cpu_count()))
    print(f"threads: cpu_count={info['cpu_count']} numba={info['numba_threads']} "
          f"({info['numba_threading_layer']}) torch={info['torch_threads']} "
          f"openblas={info['openblas_threads'] or 'n/a (no threadpoolctl)'}; "
          f"{cpu_matmul.code_path()}")
    if "other_programs_cpu_fraction" in info:
        print(f"other programs used {100 * info['other_programs_cpu_fraction']:.0f} % of the "
              f"machine's CPU time during the run (noise in the numbers below)")
    names = list(results[0]["gflops"])
    print("GFLOP/s (ratio to numpy), median of interleaved rounds")
    print(f"{'case':<20} {'kernel':<10}" + "".join(f"{n:>16}" for n in names))
    for res in results:
        cells = []
        for n in names:
            g, q = res["gflops"][n], res["ratio_to_numpy"][n]
            cells.append(f"{g:8.1f} ({q:4.2f})")
        print(f"{res['case']:<20} {res['kernel']:<10}" + "".join(f"{c:>16}" for c in cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": info, "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
