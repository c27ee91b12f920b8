"""Two thread pools on the same cores: tinydeep's matmul when calls to NumPy's BLAS
come between its calls, as in user code that preprocesses with NumPy.

    python benchmarks/bench_interplay.py [--rounds 5] [--json PATH]

OpenBLAS's workers keep spinning for a while after each call, waiting for the next;
a kernel that runs right after one finds the cores busy. Three ways of calling,
each sample a loop of pairs (one NumPy `a @ b`, one tinydeep matmul), only the
tinydeep calls timed:

    blocks       tinydeep's matmul alone, calls back to back (its speed without NumPy)
    alternating  NumPy and tinydeep call by call
    limited      the same, inside tinydeep.threads.blas_limits(1) (threadpoolctl caps
                 OpenBLAS at one thread: no spinning pool)

Figures: alternating / blocks and limited / blocks, as ratios of GFLOP/s in one
run. tinydeep's matmul and its other CPU kernels run on Numba's OpenMP pool, whose
idle workers spin too (the relu row: NumPy's matmul right after tinydeep's relu).
"""
import os
import statistics
import sys
import time

import numpy as np

try:
    import tinydeep  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinydeep import threads  # noqa: E402
from tinydeep.backends import cpu, cpu_matmul  # noqa: E402

try:
    from benchmarks import machine, timing
except ImportError:
    import machine
    import timing

TARGET = 0.8


def _timed_pairs(first, second, pairs):
    """Seconds per call of `second` over `pairs` calls of first(); second()."""
    total = 0.0
    for _ in range(pairs):
        first()
        t = time.perf_counter()
        second()
        total += time.perf_counter() - t
    return total / pairs


def run(n=512, rounds=5, pairs=20, settle_s=0.2):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    x = rng.standard_normal(1 << 20, dtype=np.float32)
    out_np, out_td, y = np.empty((n, n), np.float32), np.empty((n, n), np.float32), np.empty_like(x)
    cpu_matmul.matmul(a, b, out_td)
    np.testing.assert_allclose(out_td, a @ b, rtol=1e-4, atol=1e-3)
    cpu.relu(x, out=y)

    def blas():
        np.matmul(a, b, out=out_np)

    def ours():
        cpu_matmul.matmul(a, b, out_td)

    def relu():
        cpu.relu(x, out=y)

    def nothing():
        pass

    def limited():
        with threads.blas_limits(1):
            return _timed_pairs(blas, ours, pairs)

    modes = {"blocks": lambda: _timed_pairs(nothing, ours, pairs),
             "alternating": lambda: _timed_pairs(blas, ours, pairs),
             "limited": limited,
             "numpy_blocks": lambda: _timed_pairs(nothing, blas, pairs),
             "numpy_after_relu": lambda: _timed_pairs(relu, blas, pairs)}
    times = {k: [] for k in modes}
    names = list(modes)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(settle_s)
            times[name].append(modes[name]())
    t = {k: statistics.median(v) for k, v in times.items()}
    gflops = {k: 2 * n ** 3 / v / 1e9 for k, v in t.items()}
    load = machine.load_average()
    figures = [
        timing.figure(f"matmul {n}³ alternating with NumPy BLAS calls: GFLOP/s / in blocks",
                      t["blocks"] / t["alternating"], TARGET, ">=",
                      note=f"{gflops['alternating']:.0f} vs {gflops['blocks']:.0f} GFLOP/s"),
        timing.figure("the same inside tinydeep.threads.blas_limits(1): GFLOP/s / in blocks",
                      t["blocks"] / t["limited"], TARGET, ">=",
                      note=f"{gflops['limited']:.0f} GFLOP/s; NumPy's matmul right after "
                           f"tinydeep's relu: {t['numpy_blocks'] / t['numpy_after_relu']:.2f} "
                           f"of its speed in blocks; load average {load:.1f}"),
    ]
    return {"benchmark": "interplay", "n": n, "seconds_per_call": t, "gflops": gflops,
            "load_average": load, "figures": figures}


def report(res):
    g = res["gflops"]
    print(f"matmul {res['n']}³, GFLOP/s of tinydeep: in blocks {g['blocks']:.1f}, alternating with "
          f"NumPy {g['alternating']:.1f}, alternating under blas_limits(1) {g['limited']:.1f}; "
          f"NumPy in blocks {g['numpy_blocks']:.1f}, right after tinydeep's relu "
          f"{g['numpy_after_relu']:.1f}")


main = machine.command(__doc__, run, report, rounds=5)   # main(argv=None)


if __name__ == "__main__":
    main()
