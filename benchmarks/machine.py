"""The machine's figures, printed at the top of every benchmark: threads, NumPy's
BLAS speed and the memory bandwidth, so that a reader can tell a slow machine
from a slow kernel, and how busy the machine was while the numbers were taken."""
import argparse
import os
import platform
import sys
import time

import numpy as np

try:
    import numba
except ImportError:   # numba is a dependency of tinydeep; keep this module importable anyway
    numba = None


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_of(fn, rounds):
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def blas_gflops(n=1024, rounds=5):
    """float32 n³ matmul through NumPy's BLAS: 2n³ / best time, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    return 2.0 * n ** 3 / _best_of(lambda: np.matmul(a, b, out=out), rounds) / 1e9


def copy_bandwidth(n=1 << 25, rounds=5):
    """np.copyto of n float32 (128 MiB by default): bytes read + written / best time, GB/s."""
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    return 2.0 * src.nbytes / _best_of(lambda: np.copyto(dst, src), rounds) / 1e9


def threads():
    info = {"cpu_count": os.cpu_count(), "numba": None, "numba_layer": None, "torch": None}
    if numba is not None:
        info["numba"] = numba.get_num_threads()
        try:
            info["numba_layer"] = numba.threading_layer()
        except ValueError:       # no parallel kernel has run yet in this process
            pass
    try:
        import torch
        info["torch"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def info(quick=False):
    """All of the above as one record (quick: small sizes, for tests)."""
    return {"cpu": cpu_name(), "threads": threads(), "load_average": load_average(),
            "numpy_blas_gflops": blas_gflops(128 if quick else 1024, 2 if quick else 5),
            "copy_gbs": copy_bandwidth(1 << 16 if quick else 1 << 25, 2 if quick else 5),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": getattr(numba, "__version__", None)}


def describe(m):
    """One line for the top of a report."""
    t = m["threads"]
    load = f", load average {m['load_average']:.1f}" if m.get("load_average") is not None else ""
    return (f"{m['cpu']}: {t['cpu_count']} CPUs, numba {t['numba']} threads"
            f"{' (' + t['numba_layer'] + ')' if t.get('numba_layer') else ''}, torch {t['torch']}; "
            f"numpy BLAS {m['numpy_blas_gflops']:.0f} GFLOP/s (fp32 1024³), "
            f"copy {m['copy_gbs']:.1f} GB/s{load}{isa()}")


def isa():
    """', numba compiles for <cpu>' where NUMBA_CPU_NAME names a CPU other than this one
    (benchmarks --avx2), with the baselines' own instruction-set caps; '' otherwise."""
    name = os.environ.get("NUMBA_CPU_NAME", "host")
    if name == "host":
        return ""
    caps = [f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                             "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE")
            if k in os.environ]
    return f"; numba compiles for {name}" + (f", baselines held by {', '.join(caps)}" if caps else "")


def command(doc, run, report, **numbers):
    """main(argv=None) of a benchmark script: --<name> N for each of `numbers` (name=default,
    passed on to run) and --json PATH; it prints the machine, runs, reports, and writes the
    record atomically where --json says."""
    def main(argv=None):
        ap = argparse.ArgumentParser(description=doc.splitlines()[0])
        for name, default in numbers.items():
            ap.add_argument("--" + name, type=int, default=default, help=f"default {default}")
        ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
        args = vars(ap.parse_args(argv))
        path = args.pop("json")
        print(describe(info()))
        res = run(**args)
        report(res)
        if path:
            try:
                from tinydeep.experiments.records import save_json
            except ImportError:     # run from a checkout without installing: its tinydeep
                sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                from tinydeep.experiments.records import save_json
            save_json(res, path)
        return res
    return main

if __name__ == "__main__":
    print(describe(info()))
