"""ReLU forward and backward on 2^26 float32 against NumPy's best one-liners.

    python benchmarks/bench_relu.py [--size 67108864] [--rounds 7] [--json PATH]

forward   y  = max(x, 0)       tinydeep relu(x, out=y)     vs np.maximum(x, 0, out=y)
backward  dx = g · [x > 0]     relu_backward(x, g, out=dx) vs NumPy's own backward,
                               np.multiply(g, x > 0, out=dx)

Both are memory-bound: GB/s counts the bytes read and written (8 per element
forward, 12 backward). Forward: speed-up = NumPy time / tinydeep time (> 1:
tinydeep is faster). Backward moves 1.5x the bytes of np.maximum, so the issue's
single baseline is applied per byte: tinydeep's backward GB/s / np.maximum's GB/s;
the time ratio to NumPy's backward is printed beside it. Preallocated outputs on every side, so no contender pays for page faults.
"""
import os
import sys

import numpy as np

try:
    import tinydeep  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinydeep.backends import cpu  # noqa: E402

try:
    from benchmarks import machine, timing
except ImportError:
    import machine
    import timing

SIZE = 1 << 26
TARGET = 1.3


def run(size=SIZE, rounds=7, sample_s=0.05, settle_s=0.1):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(size, dtype=np.float32)
    g = rng.standard_normal(size, dtype=np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    cpu.relu(x, out=y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    cpu.relu_backward(x, g, out=dx)
    np.testing.assert_array_equal(dx, g * (x > 0))
    calls = {"numpy_maximum": lambda: np.maximum(x, 0, out=y),
             "numpy_backward": lambda: np.multiply(g, x > 0, out=dx),
             "relu": lambda: cpu.relu(x, out=y),
             "relu_backward": lambda: cpu.relu_backward(x, g, out=dx)}
    t = timing.interleaved(calls, rounds, sample_s, settle_s)
    nbytes = {"numpy_maximum": 8, "relu": 8, "numpy_backward": 12, "relu_backward": 12}
    gbs = {k: nbytes[k] * size / t[k] / 1e9 for k in t}
    fwd = t["numpy_maximum"] / t["relu"]
    bwd = gbs["relu_backward"] / gbs["numpy_maximum"]
    figures = [
        timing.figure("ReLU forward, 2^26 fp32: speed-up vs np.maximum(x, 0, out=y)", fwd, TARGET, ">="),
        timing.figure("ReLU backward, 2^26 fp32: GB/s vs np.maximum's GB/s", bwd, TARGET, ">=",
                      note=f"time vs NumPy's backward g*(x>0): "
                           f"{t['numpy_backward'] / t['relu_backward']:.2f}x faster"),
    ]
    return {"benchmark": "relu", "size": size, "ms": {k: 1e3 * v for k, v in t.items()},
            "gbs": gbs, "figures": figures}


def report(res):
    print(f"ReLU on {res['size']} float32, median of interleaved rounds")
    print("| op | ms | GB/s |\n|---|---|---|")
    for k in res["ms"]:
        print(f"| {k} | {res['ms'][k]:.2f} | {res['gbs'][k]:.1f} |")
    for f in res["figures"]:
        print(f"{f['figure']}: {f['measured']:.2f} (target {f['op']} {f['target']}) "
              f"{'met' if f['met'] else 'NOT met'} {f['note']}")


main = machine.command(__doc__, run, report, size=SIZE, rounds=7)   # main(argv=None)


if __name__ == "__main__":
    main()
