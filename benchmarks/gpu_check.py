"""One run on a real GPU: the CUDA test suite at real launch sizes, then the issue's targets.

    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py --out results/gpu_check.md
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_check.py --tiny --out /tmp/x.md   (any machine)

Runs from a source tree (tinydeep need not be installed: the tree's root goes first on
sys.path). Sections, each under its own time limit, each recorded even when it fails
(with the exception text), so one failure never hides the rest:

    info        device, driver, CUDA / numba / numba-cuda / torch / cupy versions, date, commit
    pool        kernels write into pooled device buffers and read back right, a freed buffer is
                reused (if not, the pool is switched off for the rest of the run)
    tests       pytest on the CUDA test files with NUMBA_ENABLE_CUDASIM=0 (real launch sizes)
    matmul      fp32 4096³, each rung (tiled, register_tiled, block_tiled) vs cuBLAS with TF32
                off (PyTorch, else CuPy); target >= 0.5x cuBLAS for the best rung
    relu        y = max(x, 0) on 2^26 fp32 vs a device-to-device copy; target >= 0.8x its GB/s
    grid_sample bilinear forward + backward at (256, 32, 64, 64) vs PyTorch CUDA; target >= 1.0x
    products    the training steps' products (conv weight gradients, the MLP's) with K split
                and unsplit, and cuBLAS
    mlp, cnn    one epoch on 10,000 glyphs (28x28), batch 128, on 'cuda' vs the CPU kernels;
                the buffer pool's reuse counts during the GPU epoch
    profile     one CNN and one MLP step on 'cuda' with every backend call synchronized and
                timed: where the step's time goes

Writes a Markdown table (--out) that can be pasted into benchmarks/RESULTS.md, the same as
JSON beside it (.json), the test log (.tests.log), and prints the table. --tiny runs every
section on tiny sizes (under the simulator its timings mean nothing).
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

# The lent GPU machines' image (2026-11) pairs a numba-cuda that still calls np.row_stack with
# NumPy 2.5, which removed it: every CUDA compile fails there. Give the alias back (also in
# tests/conftest.py, for the test run on the device).
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

CUDA_TESTS = ["tests/test_cuda_backend.py", "tests/test_cuda_tensor.py",
              "tests/test_training_device.py", "tests/test_cuda_pool.py"]
# image side, MLP width and depth, CNN channels: the GPU sizes, and tiny ones for the simulator
FULL = dict(matmul=4096, relu=1 << 26, sample=(256, 32, 64, 64), n_train=10000, batch=128,
            side=28, width=512, depth=2, channels=(16, 32),
            limits=dict(info=30, pool=30, tests=200, matmul=70, relu=25, grid_sample=60,
                        products=40, mlp=60, cnn=80, profile=60))
TINY = dict(matmul=12, relu=64, sample=(2, 2, 5, 4), n_train=8, batch=4,
            side=8, width=4, depth=1, channels=(1, 2),
            limits=dict(info=30, pool=30, tests=60, matmul=60, relu=30, grid_sample=60,
                        products=60, mlp=60, cnn=90, profile=90))
RESERVE_S = 25      # each section not yet run keeps this much of the --budget


def say(*a):
    print(*a, flush=True)


class SectionTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise SectionTimeout("section time limit reached")


# --- info -------------------------------------------------------------------------------------

def git_commit():
    if os.environ.get("GPU_CHECK_COMMIT"):      # a tree copied to the GPU machine without
        return os.environ["GPU_CHECK_COMMIT"]   # its history: the caller names the commit
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:                                            # no git binary: read .git by hand
        gitdir = os.path.join(ROOT, ".git")
        head = open(os.path.join(gitdir, "HEAD")).read().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        path = os.path.join(gitdir, ref)
        if os.path.exists(path):
            return open(path).read().strip()[:12]
        for line in open(os.path.join(gitdir, "packed-refs")):
            if line.strip().endswith(ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "unknown"


def _version(mod):
    try:
        return __import__(mod).__version__
    except Exception as exc:                              # noqa: BLE001
        return f"n/a ({type(exc).__name__})"


def section_info(ctx):
    from numba import cuda
    from numba.core import config
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "python": platform.python_version(),
            "host": platform.node(), "simulator": bool(config.ENABLE_CUDASIM),
            "numpy": np.__version__, "numba": _version("numba"),
            "numba_cuda": _version("numba_cuda"), "torch": _version("torch"),
            "cupy": _version("cupy")}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        info["driver"] = smi.stdout.split(",")[1].strip() if smi.stdout.count(",") >= 1 else "?"
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia_smi"], info["driver"] = f"n/a ({exc})", "?"
    if not config.ENABLE_CUDASIM:
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        info["device"] = name
        info["compute_capability"] = "%d.%d" % dev.compute_capability
        try:
            from numba.cuda.cudadrv.driver import driver
            v = driver.get_version()
            info["cuda_driver_api"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception as exc:                          # noqa: BLE001
            info["cuda_driver_api"] = f"n/a ({exc})"
        try:
            info["cuda_runtime"] = ".".join(map(str, cuda.runtime.get_version()))
        except Exception as exc:                          # noqa: BLE001
            info["cuda_runtime"] = f"n/a ({exc})"
        try:
            from numba.cuda.cudadrv import nvvm
            info["nvvm"] = ".".join(map(str, nvvm.NVVM().get_version()))
        except Exception as exc:                          # noqa: BLE001
            info["nvvm"] = f"n/a ({type(exc).__name__}: {exc})"
    else:
        info["device"] = "CUDA simulator"
    ctx["info"] = info
    for k, v in info.items():
        say(f"  {k}: {v}")
    return [("device", info["device"], "", None), ("driver", info["driver"], "", None)]


# --- the buffer pool, before anything leans on it --------------------------------------------

def section_pool(ctx):
    """Kernels write into pooled buffers and read back right; a freed buffer is reused. If
    this fails, the pool is switched off so that the other sections still measure."""
    import gc

    from tinydeep import backends
    from tinydeep.backends import cuda_device as cd
    cu = backends.module("cuda")
    try:
        x = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100)
        y = cu.relu(cd.from_host(x))
        np.testing.assert_array_equal(cd.to_host(y.reshape(1000)).reshape(10, 100),
                                      np.maximum(x, 0))
        before = cd.pool_stats()
        del y
        gc.collect()
        z = cu.relu(cd.from_host(x))
        after = cd.pool_stats()
        np.testing.assert_array_equal(cd.to_host(z), np.maximum(x, 0))
        reused = after["reuses"] - before["reuses"]
        if reused < 1:
            raise AssertionError(f"no buffer reused: {before} -> {after}")
    except Exception:
        cd.use_pool(False)
        say("  the pool failed: switched off for the other sections")
        raise
    return [("pooled buffers: relu into a pooled buffer, read back; freed buffer reused",
             f"ok ({reused} reused)", "works", True)]


# --- the test suite on the device ---------------------------------------------------------------

def section_tests(ctx):
    limit = ctx["limits"]["tests"] - 5
    files = [f for f in CUDA_TESTS if os.path.exists(os.path.join(ROOT, f))]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", *files]
    env = dict(os.environ)
    if ctx["tiny"]:
        cmd += ["-k", "relu and not backward"]
    else:
        env["NUMBA_ENABLE_CUDASIM"] = "0"
    say(f"  {' '.join(cmd[2:])}  (limit {limit} s)")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    seconds = time.perf_counter() - t
    with open(ctx["out_base"] + ".tests.log", "w") as fh:
        fh.write(out)
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else "(no output)"
    if timed_out:
        summary = f"TIMED OUT after {limit} s; last line: {summary}"
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    ctx["tests"] = dict(summary=summary, seconds=seconds, failed=failed[:50],
                        tail="\n".join(lines[-40:]))
    say("  " + "\n  ".join(lines[-25:]))
    ok = proc.returncode == 0 and not timed_out
    return [("CUDA test suite on the device", f"{summary} ({seconds:.0f} s)", "all pass", ok)]


# --- timings ------------------------------------------------------------------------------------

def section_matmul(ctx):
    import bench_cuda as B
    from tinydeep.backends import cuda_device as cd
    from tinydeep.backends import cuda_matmul as mm
    n = ctx["sizes"]["matmul"]
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    da, db = cd.from_host(a), cd.from_host(b)
    out = cd.empty((n, n), np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    flop = 2.0 * n ** 3
    rows, gflops = [], {}
    base = None
    torch, cupy = B._torch(), B._cupy()
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        tout = torch.empty((n, n), device="cuda")
        s = B.timed(lambda: torch.matmul(ta, tb, out=tout), ctx["repeats"])
        B.check("cuBLAS", tout.cpu().numpy(), want, 1e-4)
        base = gflops["cuBLAS fp32 (torch, TF32 off)"] = flop / s / 1e9
    elif cupy is not None:
        ca, cb = cupy.asarray(a), cupy.asarray(b)
        cout = cupy.empty((n, n), np.float32)
        s = B.timed(lambda: cupy.matmul(ca, cb, out=cout), ctx["repeats"])
        base = gflops["cuBLAS fp32 (cupy)"] = flop / s / 1e9
    for label, fn in (("tiled (rung 1)", mm.matmul_tiled),
                      ("register_tiled 64x64, 4x4 (rung 2)", mm.matmul_register_tiled),
                      ("block_tiled 128x128, 8x8, double-buffered (rung 3)",
                       mm.matmul_block_tiled)):
        try:
            fn(da, db, out)
            B.sync()
            B.check(f"matmul {label}", out.copy_to_host(), want, 1e-4)
            gflops[label] = flop / B.timed(lambda fn=fn: fn(da, db, out), ctx["repeats"]) / 1e9
        except SectionTimeout:
            raise
        except Exception as exc:                          # noqa: BLE001
            rows.append((f"matmul {n}³ {label}", f"FAILED: {_short(exc)}", "", False))
        say(f"  {label}: {gflops.get(label, float('nan')):.0f} GFLOP/s")
    ctx["matmul"] = dict(n=n, gflops=gflops)
    for label, g in gflops.items():
        if base and not label.startswith("cuBLAS"):
            rows.append((f"matmul {n}³ fp32 {label}", f"{g:.0f} GFLOP/s = {g / base:.2f}x cuBLAS",
                         ">= 0.5x" if "rung 3" in label else "", g / base >= 0.5 if "rung 3" in label
                         else None))
        else:
            rows.append((f"matmul {n}³ fp32 {label}", f"{g:.0f} GFLOP/s", "", None))
    return rows


def section_relu(ctx):
    import bench_cuda as B
    r = B.bench_relu(ctx["sizes"]["relu"], ctx["repeats"])
    ctx["relu"] = r
    ratio = r["relu_gbs"] / r["copy_gbs"]
    return [(f"relu {r['n']} fp32 vs device copy",
             f"{r['relu_gbs']:.0f} vs {r['copy_gbs']:.0f} GB/s = {ratio:.2f}x", ">= 0.8x",
             ratio >= 0.8),
            ("relu rung 1 (one element a thread per pass) vs device copy",
             f"{r['relu_rung1_gbs']:.0f} GB/s = {r['relu_rung1_gbs'] / r['copy_gbs']:.2f}x", "",
             None)] + _launch_row(ctx)


def _launch_row(ctx):
    import bench_cuda as B
    r = ctx["launch"] = B.bench_launch(20 if ctx["tiny"] else 2000)
    return [("host cost of one launch (relu of 256 floats, back to back): tinydeep / torch",
             f"{r['tinydeep']:.1f} / {r.get('torch', float('nan')):.1f} µs", "", None)]


def section_grid_sample(ctx):
    import bench_cuda as B
    r = B.bench_grid_sample(ctx["sizes"]["sample"], ctx["repeats"])
    ctx["grid_sample"] = r
    if "torch_ms" not in r:
        return [(f"grid_sample fwd+bwd {tuple(r['shape'])}", f"{r['tinydeep_ms']:.2f} ms "
                 "(no PyTorch CUDA to compare)", ">= 1.0x", None)]
    speed = r["torch_ms"] / r["tinydeep_ms"]
    return [(f"grid_sample fwd+bwd {tuple(r['shape'])} vs PyTorch CUDA",
             f"{r['tinydeep_ms']:.2f} vs {r['torch_ms']:.2f} ms = {speed:.2f}x", ">= 1.0x",
             speed >= 1.0),
            ("grid_sample forward alone vs PyTorch CUDA",
             f"{r['tinydeep_forward_ms']:.3f} vs {r['torch_forward_ms']:.3f} ms", "", None)]


def section_products(ctx):
    import bench_cuda as B
    rows = []
    ctx["products"] = B.bench_training_products(ctx["repeats"], ctx["tiny"])
    for r in ctx["products"]:
        rows.append((f"product {r['product']}: split K / unsplit / cuBLAS",
                     f"{r['split_ms']:.3f} / {r['unsplit_ms']:.3f} / "
                     f"{r.get('cublas_ms', float('nan')):.3f} ms", "", None))
    return rows


def _glyph_data(ctx):
    if "glyphs" not in ctx:
        from tinydeep.data.glyphs import glyphs
        g = glyphs(ctx["sizes"]["n_train"], seed=0, size=ctx["sizes"]["side"])
        ctx["glyphs"] = (g.images, g.labels)
    return ctx["glyphs"]


def _cnn(sizes):
    from tinydeep import nn
    c1, c2 = sizes["channels"]
    side = sizes["side"] // 4
    return lambda: nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(c2 * side * side, 10))


def _mlp(sizes):
    from tinydeep import nn
    return lambda: nn.MLP(sizes["side"] ** 2, sizes["width"], sizes["depth"], 10)


def epoch_seconds(make, X, Y, device, batch):
    """Seconds for one epoch of SGD (momentum 0.9) after one untimed warm-up step; the last
    loss (one readback per step, as fit does)."""
    import tinydeep as td
    from tinydeep import functional as F
    td.manual_seed(0)
    model = make().to(device)
    opt = td.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(i):
        loss = F.cross_entropy(model(td.tensor(X[i:i + batch], device=device)), Y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    step(0)
    t = time.perf_counter()
    for i in range(0, len(X), batch):
        loss = step(i)
    return time.perf_counter() - t, loss


def _epoch_section(ctx, name, make, flatten):
    from tinydeep.backends import cuda_device as cd
    X, Y = _glyph_data(ctx)
    X = X.reshape(len(X), -1) if flatten else X
    before = cd.pool_stats() if hasattr(cd, "pool_stats") else None
    t_gpu, l_gpu = epoch_seconds(make, X, Y, "cuda", ctx["sizes"]["batch"])
    after = cd.pool_stats() if hasattr(cd, "pool_stats") else None
    say(f"  {name} cuda: {t_gpu:.2f} s (loss {l_gpu:.3f})")
    t_cpu, l_cpu = epoch_seconds(make, X, Y, "cpu", ctx["sizes"]["batch"])
    say(f"  {name} cpu: {t_cpu:.2f} s (loss {l_cpu:.3f})")
    rec = dict(n=len(X), batch=ctx["sizes"]["batch"], gpu_s=t_gpu, cpu_s=t_cpu,
               last_loss_gpu=l_gpu, last_loss_cpu=l_cpu, pool_before=before, pool_after=after)
    ctx[name] = rec
    rows = [(f"{name} epoch, {len(X)} glyphs, batch {rec['batch']}: cuda vs cpu",
             f"{t_gpu:.2f} vs {t_cpu:.2f} s = {t_cpu / t_gpu:.2f}x", "faster on cuda",
             t_gpu < t_cpu)]
    if before and after:
        new = after["allocations"] - before["allocations"]
        reused = after["reuses"] - before["reuses"]
        rows.append((f"{name} epoch: device allocations (cudaMalloc) / buffers reused",
                     f"{new} / {reused}", "allocations << reuses", new < reused))
    return rows


def section_mlp(ctx):
    return _epoch_section(ctx, "mlp", _mlp(ctx["sizes"]), True)


def section_cnn(ctx):
    return _epoch_section(ctx, "cnn", _cnn(ctx["sizes"]), False)


def kernel_times(make, X, Y, batch, steps):
    """(ms per step with a synchronize around every outermost backend call, {kernel: ms per
    step}) over `steps` training steps on 'cuda' after one warm-up step."""
    from numba import cuda

    import tinydeep as td
    from tinydeep import backends
    from tinydeep import functional as F
    from tinydeep.backends.base import CONTRACT
    be = backends.get("cuda")
    td.manual_seed(0)
    model = make().to("cuda")
    opt = td.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(i):
        loss = F.cross_entropy(model(td.tensor(X[i:i + batch], device="cuda")), Y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    step(0)
    totals, depth = {}, [0]

    def timing(name, fn):
        def call(*args, **kwargs):
            if depth[0]:                       # a kernel called inside another: counted there
                return fn(*args, **kwargs)
            depth[0] += 1
            cuda.synchronize()
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cuda.synchronize()
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - t
                depth[0] -= 1
        return call

    names = [n for n in CONTRACT if callable(getattr(be, n, None))]
    for n in names:
        setattr(be, n, timing(n, getattr(be, n)))
    try:
        t = time.perf_counter()
        for s in range(steps):
            step((s * batch) % max(len(X) - batch, 1))
        wall = time.perf_counter() - t
    finally:
        for n in names:
            delattr(be, n)
    return 1e3 * wall / steps, {k: 1e3 * v / steps for k, v in totals.items()}


def section_profile(ctx):
    """Where a GPU step's time goes: each backend call synchronized and timed (the sync
    makes the step slower than unprofiled; the split is what counts)."""
    X, Y = _glyph_data(ctx)
    rows = []
    for name, make, x in (("cnn", _cnn(ctx["sizes"]), X),
                          ("mlp", _mlp(ctx["sizes"]), X.reshape(len(X), -1))):
        step_ms, per = kernel_times(make, x, Y, ctx["sizes"]["batch"], 10 if not ctx["tiny"] else 2)
        ctx.setdefault("profile", {})[name] = dict(step_ms=step_ms, kernels=per)
        top = sorted(per.items(), key=lambda kv: -kv[1])[:8]
        rows.append((f"{name} step on cuda, profiled: ms in kernels / ms per step",
                     f"{sum(per.values()):.2f} / {step_ms:.2f}", "", None))
        rows.append((f"{name} step: the 8 slowest kernels, ms per step",
                     ", ".join(f"{k} {v:.3f}" for k, v in top), "", None))
    return rows


SECTIONS = [("info", section_info), ("pool", section_pool), ("tests", section_tests), ("matmul", section_matmul),
            ("relu", section_relu), ("grid_sample", section_grid_sample),
            ("products", section_products), ("mlp", section_mlp), ("cnn", section_cnn),
            ("profile", section_profile)]


def _short(exc):
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"


# --- report ---------------------------------------------------------------------------------------

def markdown(ctx, rows):
    info = ctx.get("info", {})
    head = (f"GPU check: {info.get('device', '?')}, driver {info.get('driver', '?')}, "
            f"CUDA runtime {info.get('cuda_runtime', '?')}, numba {info.get('numba', '?')}, "
            f"numba-cuda {info.get('numba_cuda', '?')}, torch {info.get('torch', '?')}, "
            f"{info.get('date', '?')}, commit {info.get('commit', '?')}"
            + (" (tiny: simulator timings mean nothing)" if ctx["tiny"] else ""))
    lines = [head, "", "| section | figure | value | target | met? |", "|---|---|---|---|---|"]
    for sec, fig, value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "**no**")
        value = str(value).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {sec} | {fig} | {value} | {target} | {mark} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "results", "gpu_check.md"))
    p.add_argument("--tiny", action="store_true", help="tiny sizes (for the CUDA simulator)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", nargs="*", help="run only these sections (info always runs)")
    p.add_argument("--budget", type=float, default=450,
                   help="seconds for the whole run: a section's limit shrinks so that every "
                        "later section keeps %d s" % RESERVE_S)
    args = p.parse_args(argv)
    if not args.tiny:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "0")
    sizes = TINY if args.tiny else FULL
    out_base = os.path.splitext(args.out)[0]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    ctx = dict(tiny=args.tiny, sizes=sizes, limits=sizes["limits"], out_base=out_base,
               repeats=1 if args.tiny else args.repeats)
    from numba.core import config
    if config.ENABLE_CUDASIM:
        sys.setswitchinterval(1e-4)    # simulated threads meet at barriers: switch often
    rows, t_start = [], time.perf_counter()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    todo = [(n, f) for n, f in SECTIONS if not args.only or n == "info" or n in args.only]
    for i, (name, fn) in enumerate(todo):
        left = args.budget - (time.perf_counter() - t_start) - RESERVE_S * (len(todo) - i - 1)
        limit = max(10, int(min(ctx["limits"].get(name, 60), left)))
        ctx["limits"] = dict(ctx["limits"], **{name: limit})
        say(f"\n== {name} (limit {limit} s, {time.perf_counter() - t_start:.0f} s so far)")
        t = time.perf_counter()
        signal.alarm(limit)
        try:
            for fig, value, target, met in fn(ctx):
                rows.append((name, fig, value, target, met))
        except BaseException as exc:                      # noqa: BLE001 - recorded, go on
            if isinstance(exc, KeyboardInterrupt):
                raise
            say(traceback.format_exc())
            rows.append((name, "FAILED", _short(exc), "", False))
            ctx.setdefault("errors", {})[name] = traceback.format_exc()
        finally:
            signal.alarm(0)
        ctx.setdefault("seconds", {})[name] = time.perf_counter() - t
        say(f"   {name}: {ctx['seconds'][name]:.1f} s")
    signal.signal(signal.SIGALRM, old_handler)
    table = markdown(ctx, rows)
    total = time.perf_counter() - t_start
    with open(args.out, "w") as fh:
        fh.write(table + f"\n\n(total {total:.0f} s)\n")
    record = {k: v for k, v in ctx.items() if k not in ("glyphs",)}
    record["rows"] = [dict(section=s, figure=f, value=v, target=t, met=m)
                      for s, f, v, t, m in rows]
    record["total_s"] = total
    with open(out_base + ".json", "w") as fh:
        json.dump(record, fh, indent=1, default=str)
    say("\n" + table + f"\n\n(total {total:.0f} s; wrote {args.out}, {out_base}.json, "
        f"{out_base}.tests.log)")
    return record


if __name__ == "__main__":
    main()
