"""The `tinydeep` command (also `python -m tinydeep`).

    tinydeep demo list                       the demos, one line each
    tinydeep demo NAME [--quick] [--device cpu|cuda] [--out DIR] [more args for the demo]
    tinydeep bench [all | list | NAME] [args]   all benchmarks (python -m benchmarks), or one
    tinydeep info                            versions, threads, caches, GPU status

Demos and benchmarks are the scripts in demos/ and benchmarks/ beside the package
(an editable install from a clone: `pip install -e .`); they are found by their file
names, and a demo's one-line description is the first line of its docstring. A script
runs in this process, as `python demos/NAME.py ARGS` would run it.
"""
import argparse
import ast
import contextlib
import os
import platform
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the source tree of an editable install

from .experiments.args import out_dir  # noqa: E402  (argparse types; imports nothing heavy)


# --- finding the scripts ------------------------------------------------------------

def _folder(name):
    """ROOT/name, or a SystemExit that says where it was looked for and why it may be missing."""
    folder = ROOT / name
    if not folder.is_dir():
        raise SystemExit(f"tinydeep: no {name}/ folder at {folder}. The {name} ship with the "
                         f"source tree, not the package: clone the repository and install it "
                         f"with `pip install -e .`, then run the command again.")
    return folder


def describe(path):
    """First line of a script's module docstring, read without importing it."""
    try:
        doc = ast.get_docstring(ast.parse(Path(path).read_text(encoding="utf-8")))
    except (SyntaxError, OSError, ValueError):
        doc = None
    return doc.strip().splitlines()[0] if doc and doc.strip() else "(no description)"


def demos():
    """{name: path} of demos/*.py (files starting with '_' are helpers, not demos)."""
    return {p.stem: p for p in sorted(_folder("demos").glob("*.py")) if not p.name.startswith("_")}


def benches():
    """{name: path} of benchmarks/bench_*.py, named without the 'bench_' prefix."""
    return {p.stem[len("bench_"):]: p for p in sorted(_folder("benchmarks").glob("bench_*.py"))}


def _pick(kind, name, table):
    for key in (name, name.removesuffix(".py"), name.removesuffix(".py").removeprefix("bench_")):
        if key in table:
            return key
    raise SystemExit(f"tinydeep: unknown {kind} {name!r}; choose one of: {', '.join(table)}"
                     f" (or 'list')")


def _listing(table):
    width = max((len(n) for n in table), default=0)
    return "\n".join(f"  {n:<{width}}  {describe(p)}" for n, p in table.items())


@contextlib.contextmanager
def _as_main(argv0, args, path_entry):
    """Run code as if `python argv0 args...` had started it: sys.argv, and the script's
    folder first on sys.path (so it imports its neighbours)."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(argv0), *args]
    sys.path.insert(0, str(path_entry))
    try:
        yield
    finally:
        sys.argv[:], sys.path[:] = saved_argv, saved_path


def run_script(path, args):
    with _as_main(path, args, Path(path).parent):
        runpy.run_path(str(path), run_name="__main__")


# --- demo ------------------------------------------------------------------------

def _check_device(device):
    """Refuse 'cuda' up front, with the backend's own reason, when it cannot be used."""
    if device == "cpu":
        return
    import tinydeep
    available = getattr(tinydeep, "cuda_available", None)
    try:
        if available is not None and available():
            return
        from . import backends
        backends.get(device)  # raises, saying why ('cuda' absent, no GPU, simulator hint, ...)
    except (ValueError, ImportError, RuntimeError) as e:
        raise SystemExit(f"tinydeep: cannot run on {device!r}: {e}") from None
    raise SystemExit(f"tinydeep: cannot run on {device!r}: tinydeep.cuda_available() is False "
                     f"(no CUDA GPU; NUMBA_ENABLE_CUDASIM=1 runs the CUDA kernels in a simulator)")


def cmd_demo(opts, extra):
    table = demos()
    if opts.name is None or opts.name == "list":
        print("demos (tinydeep demo NAME [--quick] [--device cpu|cuda] [--out DIR]):")
        print(_listing(table))
        return 0
    name = _pick("demo", opts.name, table)
    # options given after NAME arrive in `extra`: read them too, and pass everything on
    late, rest = _demo_options().parse_known_args(extra)
    quick = opts.quick or late.quick
    device = late.device or opts.device
    out = late.out if late.out is not None else opts.out
    args = (["--quick"] if quick else []) + rest
    if "-h" not in rest and "--help" not in rest:
        if device is not None:
            _check_device(device)
            if "--device" in table[name].read_text(encoding="utf-8"):
                args += ["--device", device]
            elif device != "cpu":
                raise SystemExit(f"tinydeep: demo {name!r} has no --device option: "
                                 f"it runs on the CPU only")
        from .experiments.records import check_writable
        try:  # fail now, not after minutes of training, if the results cannot be saved
            check_writable("results" if out is None else out)  # creates nothing
        except OSError as e:
            raise SystemExit(f"tinydeep: {e}") from None
    if out is not None:
        args += ["--out", out]
    from .signals import signals_raise
    with signals_raise():  # SIGTERM/SIGHUP unwind like Ctrl-C: temporary files are removed
        run_script(table[name], args)
    return 0


def _demo_options():
    p = argparse.ArgumentParser(prog="tinydeep demo", add_help=False)
    p.add_argument("--quick", action="store_true", default=False,
                   help="a small, fast run (a smoke test)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where the demo trains (default: the demo's own, cpu)")
    p.add_argument("--out", default=None, metavar="DIR", type=out_dir,
                   help="folder for the demo's PNG and JSON (default: results/)")
    return p


# --- bench -------------------------------------------------------------------------

def cmd_bench(opts, extra):
    folder = _folder("benchmarks")
    table = benches()
    if opts.name == "list":
        print("benchmarks (tinydeep bench NAME [args]; 'all' or no NAME runs them all):")
        print(_listing(table))
        return 0
    if opts.name in (None, "all"):
        if (folder / "__main__.py").is_file():  # the suite's own runner: python -m benchmarks
            # run the file, not the module: a `benchmarks` imported earlier may be another tree's
            with _as_main("python -m benchmarks", extra, folder.parent):
                runpy.run_path(str(folder / "__main__.py"), run_name="__main__")
            return 0
        for name, path in table.items():
            print(f"\n## {name}: {describe(path)}\n", flush=True)
            run_script(path, extra)
        return 0
    run_script(table[_pick("benchmark", opts.name, table)], extra)
    return 0


# --- info --------------------------------------------------------------------------

def _version(distribution):
    """The installed version, read from the package metadata (importing torch takes seconds)."""
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _blas():
    import numpy as np
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config differs between numpy versions
        return "unknown"


def _threading():
    """(threads, threading layer): the layer is only known after a parallel kernel ran,
    so a tiny one runs here (from numba's cache after the first time)."""
    import numba
    import numpy as np
    from .backends import cpu
    cpu.relu(np.ones(64, np.float32))
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialized"
    return numba.get_num_threads(), layer


def gpu_status():
    """One line: what 'cuda' means on this machine. Never raises."""
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    import tinydeep
    available = getattr(tinydeep, "cuda_available", None)
    try:
        ours = available() if available is not None else None
    except Exception as e:  # a broken driver must not break `tinydeep info`
        ours = f"error ({type(e).__name__}: {e})"
    try:
        from numba import cuda
    except Exception as e:
        return f"numba.cuda cannot be imported ({e}); pip install 'tinydeep[cuda]'"
    try:
        if sim:
            gpu = "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run as Python threads, slowly"
        elif cuda.is_available():
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
            gpu = f"{name}, compute capability {'.'.join(map(str, dev.compute_capability))}"
        else:
            gpu = "no CUDA GPU found (NUMBA_ENABLE_CUDASIM=1 runs the CUDA kernels in a simulator)"
    except Exception as e:
        gpu = f"CUDA check failed ({type(e).__name__}: {e})"
    if ours is None:
        return f"{gpu}; this tinydeep has no 'cuda' device (no tinydeep.cuda_available)"
    return f"{gpu}; tinydeep.cuda_available() = {ours}"


def cmd_info(opts, extra):
    import numba
    import numpy as np
    import tinydeep
    from .data import data_dir
    threads, layer = _threading()
    torch = _version("torch")
    rows = [("tinydeep", f"{tinydeep.__version__} ({Path(tinydeep.__file__).parent})"),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("numpy", f"{np.__version__} (BLAS: {_blas()})"),
            ("numba", numba.__version__),
            ("torch", torch or "not installed (optional: the tests' oracle, the benchmarks' baseline)"),
            ("cpu", f"{platform.machine()}, {os.cpu_count()} logical cores"),
            ("threads", f"{threads} numba threads (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})"),
            ("threading layer", f"{layer} (asked for: {numba.config.THREADING_LAYER})"),
            ("numba cache", numba.config.CACHE_DIR or "__pycache__ beside each kernel module "
                                                      "(set NUMBA_CACHE_DIR to move it)"),
            ("data folder", f"{data_dir()} (set TINYDEEP_DATA to move it)"),
            ("demos", _found("demos", "*.py")),
            ("benchmarks", _found("benchmarks", "bench_*.py")),
            ("gpu", gpu_status())]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _found(name, pattern):
    folder = ROOT / name
    if not folder.is_dir():
        return f"not found (looked in {folder})"
    return f"{folder} ({len(list(folder.glob(pattern)))} scripts)"


# --- the command -------------------------------------------------------------------------

def parser():
    p = argparse.ArgumentParser(prog="tinydeep", description="tinydeep: demos, benchmarks and "
                                "facts about this machine. `tinydeep COMMAND --help` for more.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    d = sub.add_parser("demo", parents=[_demo_options()], help="list or run a demo",
                       description="Run a demo from demos/: `tinydeep demo list` lists them. "
                                   "Arguments after NAME go to the demo (`tinydeep demo NAME "
                                   "--help` shows its own options).")
    d.add_argument("name", nargs="?", metavar="LIST|NAME", help="'list', or a demo's name")
    d.set_defaults(run=cmd_demo)
    b = sub.add_parser("bench", help="run the benchmarks, or one of them",
                       description="Run benchmarks/: all of them (as `python -m benchmarks`), "
                                   "or one by name; `tinydeep bench list` lists them. Arguments "
                                   "after NAME (or 'all') go to the benchmark (or the suite).")
    b.add_argument("name", nargs="?", metavar="all|list|NAME",
                   help="'all' (the default), 'list', or a benchmark's name")
    b.set_defaults(run=cmd_bench)
    i = sub.add_parser("info", help="versions, threads, caches and GPU status",
                       description="Versions (tinydeep, python, numpy, numba, torch), threads, "
                                   "numba's threading layer and cache, the data folder, GPU status.")
    i.set_defaults(run=cmd_info)
    k = sub.add_parser("kernels", add_help=False, help="compile every CUDA kernel for a GPU "
                       "architecture and print ptxas's registers/spills table (no GPU needed)")
    k.set_defaults(run=lambda opts, extra: __import__("tinydeep.cuda_compile").cuda_compile
                   .main(extra))
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    # Everything after a demo's or benchmark's NAME belongs to that script, --help included.
    head, tail = argv, []
    if argv[:1] in (["demo"], ["bench"]):
        i = 1
        while i < len(argv):
            if argv[i] in ("--device", "--out"):  # an option and its value, before NAME
                i += 2
            elif argv[i].startswith("-"):
                i += 1
            else:
                if argv[i] != "list":
                    head, tail = argv[:i + 1], argv[i + 1:]
                break
    opts, extra = p.parse_known_args(head)
    extra += tail
    if opts.command == "info" and extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return opts.run(opts, extra)
    except KeyboardInterrupt:
        print("\ntinydeep: interrupted (results already written are complete: files are "
              "written under a temporary name and renamed)", file=sys.stderr)
        return 130
    except SystemExit as e:
        if getattr(e, "signum", None) is None:  # argparse, or a demo's own exit
            raise
        return _stopped(e.signum)
    except Exception as e:
        from .signals import raised
        if raised:   # a SIGTERM's Terminated that C code (matplotlib's) turned into its own error
            return _stopped(raised[-1])
        # user faults, each with a sentence naming the file, the folder, the step or the
        # value: a full disk, a read-only folder, a missing or corrupt data file, a
        # diverged run, a bad argument. TINYDEEP_TRACEBACK=1 shows the traceback instead.
        if (not isinstance(e, (OSError, FloatingPointError, ValueError, TypeError))
                or os.environ.get("TINYDEEP_TRACEBACK") == "1"):
            raise
        print(f"tinydeep: {e}", file=sys.stderr)
        return 1


def _stopped(signum):
    import signal
    print(f"\ntinydeep: stopped by {signal.Signals(signum).name} (results already written are "
          f"complete: files are written under a temporary name and renamed)", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
