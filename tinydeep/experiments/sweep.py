"""Sweeps: seeds and grid points as independent tasks, run in-process, on a local
dask.distributed cluster (`workers=N`) or on an existing one (`scheduler="tcp://…"`).

A task is a dict of keyword arguments (numbers, strings, booleans, lists) for a
module-level function `fn(**task) -> record` whose record is JSON. Each task seeds
everything it draws from its own arguments, so where it runs does not change its
result: the records are bit-identical to the sequential run's (every record goes
through a JSON round trip, on every path, so a record read back from disk equals
one just computed). A worker process runs with `threads` Numba/BLAS threads
(default: the machine's cores divided among the workers), so N workers do not
oversubscribe the cores.

With `out`, each finished task is written at once, atomically, to
out/<name>-<hash of fn, its source and task>.json, and a rerun reads those files
back instead of training again: an interrupted sweep resumes where it stopped.
(Delete the folder to rerun after changing code that fn calls.)

`summary` and `paired` turn per-seed numbers into mean ± std and the paired
difference with its spread, and say in words whether it is beyond the seed noise.
"""
import hashlib
import inspect
import json
import os

import numpy as np
from tqdm.auto import tqdm

from ..files import atomic_write
from .args import positive_int
from .records import json_value


# --- running -------------------------------------------------------------------------

def _normal(record):
    """The record as JSON would give it back (tuples -> lists, numpy numbers -> floats)."""
    return json.loads(json.dumps(record, default=json_value))


def _source_digest(fn):
    """A hash of fn's source: a record kept by an older fn is not reused after fn
    changes (changes elsewhere, in what fn calls, are not seen)."""
    try:
        return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
    except (OSError, TypeError):
        return ""


def task_file(fn, task, out):
    """Where the record of fn(**task) is kept under `out`."""
    spec = json.dumps([fn.__module__, fn.__qualname__, _source_digest(fn), task],
                      sort_keys=True, default=json_value)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    short = "-".join(f"{k}={v}" for k, v in sorted(task.items())
                     if isinstance(v, (int, float, str, bool)) and len(str(v)) <= 16)
    name = "".join(c if c.isalnum() or c in "=.-_" else "_" for c in f"{fn.__name__}-{short}")
    return os.path.join(out, f"{name[:120]}-{digest}.json")


def _set_threads(threads):
    """Limit this process's Numba and BLAS threads (each worker calls this for itself)."""
    if threads is None:
        return
    import numba
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    from threadpoolctl import threadpool_limits
    threadpool_limits(int(threads))


def _run_one(fn, task, threads):
    _set_threads(threads)
    return _normal(fn(**task))


def _check(fn, tasks, workers, scheduler, threads):
    if not callable(fn):
        raise TypeError(f"sweep: fn must be a function, got {type(fn).__name__}")
    if not isinstance(tasks, (list, tuple)) or not all(isinstance(t, dict) for t in tasks):
        raise TypeError("sweep: tasks must be a list of dicts of keyword arguments")
    if workers is not None and (int(workers) != workers or workers < 1):
        raise ValueError(f"sweep: workers must be a positive integer, got {workers!r}")
    if workers is not None and scheduler is not None:
        raise ValueError("sweep: give workers (a local cluster) or scheduler (an existing "
                         "cluster), not both")
    if scheduler is not None and not str(scheduler).startswith(("tcp://", "tls://", "inproc://")):
        raise ValueError(f"sweep: scheduler must be an address like tcp://HOST:PORT, got "
                         f"{scheduler!r}")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"sweep: threads must be a positive integer, got {threads!r}")
    for t in tasks:
        json.dumps(t, default=json_value)  # a task must be JSON, to name its file


def _dask_client(workers, scheduler):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("--workers/--scheduler need dask.distributed: "
                          "pip install 'tinydeep[sweeps]'") from None
    if scheduler is not None:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return Client(cluster), cluster


def run_tasks(fn, tasks, workers=None, scheduler=None, threads=None, out=None, desc="sweep"):
    """[fn(**task) for task in tasks], as JSON-normal records in task order.
    workers: run on a new local dask cluster of that many processes; scheduler: the
    address of an existing one; neither: here, one after another. threads: Numba/BLAS
    threads per worker (default: cores // workers, at least 1). out: a folder where each
    record is kept; tasks whose record is there are not run again."""
    _check(fn, tasks, workers, scheduler, threads)
    results = [None] * len(tasks)
    files = [task_file(fn, t, out) for t in tasks] if out is not None else [None] * len(tasks)
    todo = []
    for i, path in enumerate(files):
        if path is not None and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                results[i] = json.load(f)
        else:
            todo.append(i)
    if out is not None and len(todo) < len(tasks):
        tqdm.write(f"{desc}: {len(tasks) - len(todo)} of {len(tasks)} tasks already done "
                   f"in {out}; running {len(todo)}")

    def keep(i, record):
        results[i] = record
        if files[i] is not None:
            text = json.dumps(record, indent=1).encode()
            atomic_write(files[i], lambda f: f.write(text))

    bar = tqdm(total=len(todo), desc=desc, leave=False)
    try:
        if workers is None and scheduler is None:
            for i in todo:
                keep(i, _run_one(fn, tasks[i], threads))
                bar.update()
        elif todo:
            if threads is None and workers is not None:
                threads = max(1, (os.cpu_count() or 1) // int(workers))
            client, cluster = _dask_client(workers, scheduler)
            try:
                from dask.distributed import as_completed
                futures = {client.submit(_run_one, fn, tasks[i], threads, pure=False): i
                           for i in todo}
                for fut in as_completed(futures):
                    keep(futures[fut], fut.result())
                    bar.update()
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    finally:
        bar.close()
    return results


def add_arguments(parser):
    """--workers, --scheduler and --threads for a demo's argparse parser."""
    g = parser.add_argument_group("sweeps (seeds and grid points as tasks)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help="run the tasks on a local dask cluster of N worker processes")
    g.add_argument("--scheduler", default=None,
                   help="run the tasks on an existing dask cluster, e.g. tcp://HOST:8786")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="Numba/BLAS threads per worker (default: cores / workers)")
    return parser


def options(args):
    """The sweep keywords from parsed --workers/--scheduler/--threads."""
    return {"workers": args.workers, "scheduler": args.scheduler, "threads": args.threads}


# --- summarizing over seeds -----------------------------------------------------------

def summary(values):
    """{"mean", "std" (sample, ddof=1; 0 for one value), "n", "values"} of per-seed numbers."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size), "values": v.tolist()}


def paired(a, b, name_a="A", name_b="B", what="", scale=1.0, unit=""):
    """The paired difference a − b over seeds (a[i] and b[i] share seed i): its mean,
    std, and a 95 % t confidence interval of the mean. `beyond_noise` is True when that
    interval excludes 0 (a paired t-test at 5 %); `sentence` says so in words, with the
    numbers multiplied by `scale` and followed by `unit` (e.g. 100, " points")."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    d = np.array([x - y for x, y in pairs], dtype=np.float64)
    label = f"{name_a} − {name_b}" + (f" ({what})" if what else "")
    if d.size < 2:
        return {"mean": float(d.mean()) if d.size else None, "std": None, "n": int(d.size),
                "ci95": None, "beyond_noise": None,
                "sentence": f"{label}: fewer than 2 paired seeds, so no spread to judge by."}
    from scipy.stats import t as student_t
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = float(student_t.ppf(0.975, d.size - 1)) * std / np.sqrt(d.size)
    lo, hi = mean - half, mean + half
    beyond = bool(lo > 0 or hi < 0)
    f = lambda v: f"{v * scale:+.2f}{unit}"
    verdict = ("beyond the seed noise (the 95 % interval excludes 0)" if beyond else
               "within the seed noise (the 95 % interval includes 0)")
    return {"mean": mean, "std": std, "n": int(d.size), "ci95": [lo, hi], "beyond_noise": beyond,
            "sentence": f"{label} = {f(mean)} ± {abs(std * scale):.2f}{unit} (std over "
                        f"{d.size} paired seeds; 95 % interval [{f(lo)}, {f(hi)}]): {verdict}."}


def mean_std_text(values, scale=100.0, digits=1, unit="%"):
    """'m ± s%' of per-seed numbers (scaled), or '—' when there are none."""
    s = summary(values)
    if s["mean"] is None:
        return "—"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}{unit}"
