"""Cold start: a fresh Python process that imports tinydeep and takes its first
training step, with numba's on-disk cache already filled.

    python benchmarks/bench_coldstart.py [--rounds 3] [--json PATH]

The child process imports tinydeep, builds the MLP 784-512-512-10, and takes one
SGD-momentum step on a batch of 128 (forward, cross-entropy, backward, update),
which loads every kernel that step needs. The first child fills numba's cache
(kernels compile only if the cache is cold or stale) and is not counted; the
next `rounds` children are timed from the parent: wall seconds from process
start to exit, interpreter start-up included. Target: < 5 s.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

try:
    from benchmarks import machine, timing
except ImportError:
    import machine
    import timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_S = 5.0

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np
import tinydeep as td
from tinydeep import functional as F, nn, optim
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.standard_normal(({batch}, {d_in}), dtype=np.float32)
y = rng.integers(0, 10, {batch})
model = nn.MLP({d_in}, {width}, 2, 10)
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss = F.cross_entropy(model(td.tensor(x)), td.tensor(y))
opt.zero_grad()
loss.backward()
opt.step()
loss = loss.item()
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "first_step_s": t2 - t1, "loss": loss}}))
"""


def child(batch, d_in, width):
    code = CHILD.format(root=ROOT, batch=batch, d_in=d_in, width=width)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"the cold-start child failed:\n{out.stderr[-2000:]}")
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["wall_s"] = wall
    return rec


def run(rounds=3, batch=128, d_in=784, width=512, fill_cache=True):
    """fill_cache=False skips the first, untimed child (for tests: then a cold cache is
    timed too)."""
    warm = child(batch, d_in, width) if fill_cache else None
    runs = [child(batch, d_in, width) for _ in range(rounds)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "import_s", "first_step_s")}
    label = "cold start: new process, import + first MLP step (numba cache warm), seconds"
    if (batch, d_in, width) != (128, 784, 512):
        label += f" [reduced: batch {batch}, in {d_in}, width {width}]"
    return {"benchmark": "coldstart", "first_child": warm, "runs": runs, "median": med,
            "figures": [timing.figure(label, med["wall_s"], TARGET_S, "<", unit="s",
                                      note=f"import {med['import_s']:.2f} s, first step "
                                           f"{med['first_step_s']:.2f} s" + (
                                               f"; the cache-filling first process took "
                                               f"{warm['wall_s']:.1f} s" if warm else ""))]}


def report(res):
    m = res["median"]
    print(f"cold start (median of {len(res['runs'])} processes): {m['wall_s']:.2f} s wall = "
          f"import {m['import_s']:.2f} s + first step {m['first_step_s']:.2f} s + interpreter; "
          + (f"the first (cache-filling) process: {res['first_child']['wall_s']:.2f} s"
             if res["first_child"] else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    print(machine.describe(machine.info()))
    res = run(args.rounds)
    report(res)
    if args.json:
        sys.path.insert(0, ROOT)
        from tinydeep.experiments.records import save_json
        save_json(res, args.json)
    return res


if __name__ == "__main__":
    main()
