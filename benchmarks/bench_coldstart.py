"""Cold start: a fresh Python process that imports tinydeep and takes its first
training step, first with an empty Numba cache, then with the cache it filled.

    python benchmarks/bench_coldstart.py [--rounds 3] [--json PATH]

The child process imports tinydeep, builds the MLP 784-512-512-10, and takes one
SGD-momentum step on a batch of 128 (forward, cross-entropy, backward, update),
which loads every kernel that step needs. Every child runs with NUMBA_CACHE_DIR
set to a new, empty folder of this run, so the project's own cache is neither
used nor touched: the first child compiles every kernel (the cold start a new
user sees, target <= 10 s, aim 5 s) and the next `rounds` children load them from
that folder (warm, target < 5 s). Times are wall seconds from process start to
exit, interpreter start-up included, measured by the parent; the children's CPU
seconds (user + system) are given beside them, as on a shared machine the wall
time also counts the time other programs held the cores.

On the empty cache the cold child starts tinydeep's warm-up helper
(backends/cpu_warmup.py: a second process that compiles the step's other kernels
while the first compiles the matmul); the helper's CPU seconds are not in the
child's. One more cold child, in a cache of its own with TINYDEEP_WARMUP=0, gives
the same run's figure without the helper.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

try:
    from benchmarks import machine, timing
except ImportError:
    import machine
    import timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_S = 5.0        # warm: cache filled
COLD_TARGET_S = 10.0  # cold: empty cache

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


def child(batch, d_in, width, cache_dir, warmup="1"):
    """{'import_s', 'first_step_s', 'loss', 'wall_s', 'cpu_s'} of one fresh process."""
    code = CHILD.format(root=ROOT, batch=batch, d_in=d_in, width=width)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, TINYDEEP_QUIET_COMPILE="1",
               TINYDEEP_WARMUP=warmup)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"the cold-start child failed:\n{out.stderr[-2000:]}")
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["wall_s"] = wall
    rec["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rec


def run(rounds=3, batch=128, d_in=784, width=512, fill_cache=True):
    """The cold child (empty cache) and the median of `rounds` warm children.
    fill_cache=False skips the cold child (for tests: it compiles everything)."""
    with tempfile.TemporaryDirectory(prefix="tinydeep-numba-cache-") as cache_dir:
        cold = child(batch, d_in, width, cache_dir) if fill_cache else None
        runs = [child(batch, d_in, width, cache_dir) for _ in range(rounds)]
    alone = None
    if fill_cache:
        with tempfile.TemporaryDirectory(prefix="tinydeep-numba-cache-") as cache_dir:
            alone = child(batch, d_in, width, cache_dir, warmup="0")
    keys = ("wall_s", "cpu_s", "import_s", "first_step_s")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    reduced = ("" if (batch, d_in, width) == (128, 784, 512)
               else f" [reduced: batch {batch}, in {d_in}, width {width}]")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    figures = []
    if cold:
        figures.append(timing.figure(
            "cold start: new process, import + first MLP step, empty numba cache, seconds" + reduced,
            cold["wall_s"], COLD_TARGET_S, "<=", unit="s",
            note=f"CPU {cold['cpu_s']:.1f} s; import {cold['import_s']:.2f} s, first step "
                 f"{cold['first_step_s']:.2f} s; load average {load:.1f}; without the warm-up "
                 f"helper (TINYDEEP_WARMUP=0) {alone['wall_s']:.2f} s"))
    figures.append(timing.figure(
        "warm start: new process, import + first MLP step, numba cache filled, seconds" + reduced,
        med["wall_s"], TARGET_S, "<", unit="s",
        note=f"CPU {med['cpu_s']:.1f} s; import {med['import_s']:.2f} s, first step "
             f"{med['first_step_s']:.2f} s"))
    return {"benchmark": "coldstart", "cold": cold, "first_child": cold, "runs": runs,
            "cold_without_helper": alone,
            "median": med, "load_average": load, "figures": figures}


def report(res):
    m, c = res["median"], res["cold"]
    if c:
        a = res["cold_without_helper"]
        print(f"cold start (empty numba cache): {c['wall_s']:.2f} s wall, {c['cpu_s']:.2f} s CPU "
              f"= import {c['import_s']:.2f} s + first step {c['first_step_s']:.2f} s + interpreter"
              f"; without the warm-up helper: {a['wall_s']:.2f} s wall")
    print(f"warm start (median of {len(res['runs'])} processes): {m['wall_s']:.2f} s wall, "
          f"{m['cpu_s']:.2f} s CPU = import {m['import_s']:.2f} s + first step "
          f"{m['first_step_s']:.2f} s + interpreter; load average {res['load_average']:.1f}")


main = machine.command(__doc__, run, report, rounds=3)   # main(argv=None)


if __name__ == "__main__":
    main()
