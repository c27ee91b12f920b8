"""The CUDA backend against cuBLAS, a device copy and PyTorch CUDA; one MLP epoch GPU vs CPU.

    python benchmarks/bench_cuda.py [--repeats 5] [--json PATH]     (needs an NVIDIA GPU)
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --tiny   (any machine: runs every
        code path on tiny sizes in numba's CUDA simulator; its timings mean nothing)

Without a GPU (and without --tiny under the simulator) it prints why and exits 0.

What is measured (median of timed rounds, each round synchronized, warm-up and
compilation untimed; every contender's result is checked against the baseline's first):

    matmul      C = A B, float32, 4096³: GFLOP/s = 2 M K N / time of the register-tiled kernel
                (at two tile configurations) and the plain tiled rung, vs cuBLAS fp32 through
                PyTorch (TF32 off) or CuPy. Issue target: >= 0.5x cuBLAS.
    relu        y = max(x, 0) on 2^26 float32: GB/s = 8 bytes per element / time, vs a
                device-to-device copy of the same array. Target: >= 0.8x the copy.
    grid_sample bilinear forward + backward (image and grid gradients) at image
                (256, 32, 64, 64), grid (256, 64, 64, 2), vs PyTorch CUDA. Target: >= 1.0x.
    mlp epoch   MLP(784 -> 512 -> 512 -> 10), batch 128, 60000 random examples, SGD with
                momentum; seconds per epoch on 'cuda' vs on the numba CPU kernels (one batch up
                and one loss down per step on the GPU).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

try:
    import tinydeep  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tinydeep as td  # noqa: E402
from tinydeep import backends  # noqa: E402

FULL = dict(matmul=4096, relu=1 << 26, sample=(256, 32, 64, 64), mlp=(60000, 784, 512, 10, 128))
TINY = dict(matmul=12, relu=64, sample=(2, 2, 5, 4), mlp=(64, 12, 8, 3, 16))
# Register-tiled matmul configurations (bm, bn, bk, tm, tn) to try on the GPU.
MATMUL_CONFIGS = {"register 64x64 (4x4)": (64, 64, 8, 4, 4),
                  "register 128x128 (8x8)": (128, 128, 8, 8, 8)}


def sync():
    from numba import cuda
    cuda.synchronize()
    torch = _torch()
    if torch is not None:
        torch.cuda.synchronize()


def timed(fn, repeats, min_s=0.05):
    """Median seconds per call: warm up (compiles), calibrate a loop of >= min_s, time rounds."""
    fn()
    sync()
    t = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t, 1e-7)
    loops = max(1, int(min_s / once))
    samples = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        sync()
        samples.append((time.perf_counter() - t) / loops)
    return statistics.median(samples)


def _torch():
    """PyTorch with a usable CUDA device, or None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _cupy():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:
        return None


def check(name, got, want, tol):
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
    if not err < tol:
        raise AssertionError(f"{name}: relative error {err:.2e} >= {tol:.0e}")


# --- matmul ----------------------------------------------------------------------------------

def bench_matmul(n, repeats, tiny):
    from tinydeep.backends import cuda_device as cd
    from tinydeep.backends import cuda_matmul
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    da, db = cd.from_host(a), cd.from_host(b)
    out = cd.empty((n, n), np.float32)
    calls = {}
    torch, cupy = _torch(), _cupy()
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False       # cuBLAS fp32, not TF32
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        tout = torch.empty((n, n), device="cuda")
        calls["cuBLAS (torch)"] = (lambda: torch.matmul(ta, tb, out=tout),
                                   lambda: tout.cpu().numpy())
    elif cupy is not None:
        ca, cb = cupy.asarray(a), cupy.asarray(b)
        cout = cupy.empty((n, n), np.float32)
        calls["cuBLAS (cupy)"] = (lambda: cupy.matmul(ca, cb, out=cout), lambda: cout.get())

    configs = ({"register (simulator)": None} if tiny else MATMUL_CONFIGS)
    for label, cfg in configs.items():
        def run(cfg=cfg):
            old = cd.configure(**dict(zip(("bm", "bn", "bk", "tm", "tn"), cfg))) if cfg else None
            try:
                cuda_matmul.matmul_register_tiled(da, db, out)
            finally:
                if old:
                    cd.configure(**old)
        calls[label] = (run, lambda: out.copy_to_host())
    calls["tiled (rung 1)"] = (lambda: cuda_matmul.matmul_tiled(da, db, out),
                               lambda: out.copy_to_host())

    want = a.astype(np.float64) @ b.astype(np.float64)
    flop = 2.0 * n ** 3
    result = {}
    for name, (fn, read) in calls.items():
        fn()
        sync()
        check(f"matmul {name}", read(), want, 1e-4)
        result[name] = flop / timed(fn, repeats) / 1e9
    return {"n": n, "gflops": result}


# --- relu vs copy --------------------------------------------------------------------------------

def _relu_rung1():
    """The readable rung beside cuda_elementwise's kernel: one element a thread per pass."""
    global cuda                       # a kernel's `cuda` must be a global (the simulator swaps it)
    from numba import cuda

    @cuda.jit
    def relu_rung1(x, y):
        for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            y[i] = max(x[i], 0)
    return relu_rung1


def bench_relu(n, repeats):
    from tinydeep.backends import cuda_device as cd
    cu = backends.module("cuda")
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    dx, dy = cd.from_host(x), cd.empty((n,), np.float32)
    cu.relu(dx, out=dy)
    check("relu", dy.copy_to_host(), np.maximum(x, 0), 1e-7)
    rung1 = _relu_rung1()
    launch = cd.grid(n)
    rung1[launch](dx, dy)
    check("relu rung 1", dy.copy_to_host(), np.maximum(x, 0), 1e-7)
    t_relu = timed(lambda: cu.relu(dx, out=dy), repeats)
    t_rung1 = timed(lambda: rung1[launch](dx, dy), repeats)
    t_copy = timed(lambda: dy.copy_to_device(dx), repeats)
    bytes_moved = 2 * 4 * n
    return {"n": n, "relu_gbs": bytes_moved / t_relu / 1e9, "copy_gbs": bytes_moved / t_copy / 1e9,
            "relu_rung1_gbs": bytes_moved / t_rung1 / 1e9}


def bench_launch(calls=2000):
    """Host cost of one kernel launch, µs per call: tinydeep's relu of 256 floats (numba-cuda's
    launch path plus tinydeep's wrapper) against torch.relu, back to back, one sync at the end."""
    from numba import cuda

    from tinydeep.backends import cuda_device as cd
    cu = backends.module("cuda")
    x, y = cd.from_host(np.ones(256, np.float32)), cd.empty((256,), np.float32)
    result = {}
    torch = _torch()
    contenders = {"tinydeep": (lambda: cu.relu(x, out=y), cuda.synchronize)}
    if torch is not None:
        tx = torch.ones(256, device="cuda")
        contenders["torch"] = (lambda: torch.relu(tx), torch.cuda.synchronize)
    for name, (fn, wait) in contenders.items():
        fn()
        wait()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        wait()
        result[name] = 1e6 * (time.perf_counter() - t) / calls
    return result


# --- grid_sample forward + backward --------------------------------------------------------------

def bench_grid_sample(shape, repeats):
    from tinydeep.backends import cuda_device as cd
    cu = backends.module("cuda")
    N, C, H, W = shape
    rng = np.random.default_rng(2)
    image = rng.standard_normal(shape).astype(np.float32)
    theta = (np.tile(np.eye(2, 3), (N, 1, 1)) + 0.1 * rng.standard_normal((N, 2, 3))).astype(np.float32)
    grid = backends.module("reference").affine_grid(theta, H, W, False)
    grad = rng.standard_normal((N, C, H, W)).astype(np.float32)
    d_image, d_grid, d_grad = cd.from_host(image), cd.from_host(grid), cd.from_host(grad)

    def ours():
        cu.bilinear_sample(d_image, d_grid, "zeros", False)
        return cu.bilinear_sample_backward(d_image, d_grid, d_grad, "zeros", False)

    ref = backends.module("cpu")
    want_out = ref.bilinear_sample(image, grid, "zeros", False)
    want_di, want_dg = ref.bilinear_sample_backward(image, grid, grad, "zeros", False)
    check("grid_sample forward", cd.to_host(cu.bilinear_sample(d_image, d_grid, "zeros", False)),
          want_out, 1e-4)
    di, dg = ours()
    check("grid_sample d image", cd.to_host(di), want_di, 1e-4)
    check("grid_sample d grid", cd.to_host(dg), want_dg, 1e-3)
    result = {"shape": list(shape), "tinydeep_ms": 1e3 * timed(ours, repeats),
              "tinydeep_forward_ms": 1e3 * timed(
                  lambda: cu.bilinear_sample(d_image, d_grid, "zeros", False), repeats)}
    torch = _torch()
    if torch is not None:
        F = torch.nn.functional
        ti = torch.from_numpy(image).cuda().requires_grad_()
        tg = torch.from_numpy(grid).cuda().requires_grad_()
        tgrad = torch.from_numpy(grad).cuda()

        def theirs():
            out = F.grid_sample(ti, tg, mode="bilinear", padding_mode="zeros", align_corners=False)
            return torch.autograd.grad(out, (ti, tg), tgrad)
        t_di, t_dg = theirs()
        check("torch grid_sample d image", t_di.cpu().numpy(), want_di, 1e-4)
        result["torch_ms"] = 1e3 * timed(theirs, repeats)
        with torch.no_grad():
            result["torch_forward_ms"] = 1e3 * timed(lambda: F.grid_sample(
                ti, tg, mode="bilinear", padding_mode="zeros", align_corners=False), repeats)
    return result


# --- the products of training steps: split K or not ------------------------------------------------

# (label, M, K, N, ta, tb): the small CNN's conv weight gradients gᵀ·cols, the MLP's x·Wᵀ and
# its weight gradient gᵀ·x, batch 128
TRAINING_PRODUCTS = [("conv1 dW 16x9, K=100352 (tn)", 16, 100352, 9, True, False),
                     ("conv2 dW 32x144, K=25088 (tn)", 32, 25088, 144, True, False),
                     ("mlp x@W.T 128x784x512 (nt)", 128, 784, 512, False, True),
                     ("mlp dW 512x128x784 (tn)", 512, 128, 784, True, False)]


def bench_training_products(repeats, tiny):
    """ms of each product as training calls it (split K where the output has few tiles),
    the same with the split turned off (fill_blocks=1), and cuBLAS (TF32 off)."""
    from tinydeep.backends import cuda_device as cd
    from tinydeep.backends import cuda_matmul as mm
    rng = np.random.default_rng(4)
    torch = _torch()
    rows = []
    for label, M, K, N, ta, tb in TRAINING_PRODUCTS:
        if tiny:
            M, K, N = max(1, M // 16), max(1, K // 4096), max(1, N // 64)
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        da, db = cd.from_host(a), cd.from_host(b)
        fn = {(False, True): mm.matmul_nt, (True, False): mm.matmul_tn}[(ta, tb)]
        check(f"product {label}", cd.to_host(fn(da, db)), want, 1e-4)
        row = {"product": label, "split_ms": 1e3 * timed(lambda: fn(da, db), repeats)}
        old = cd.configure(fill_blocks=1)
        try:
            row["unsplit_ms"] = 1e3 * timed(lambda: fn(da, db), repeats)
        finally:
            cd.configure(**old)
        if torch is not None:
            torch.backends.cuda.matmul.allow_tf32 = False
            ta_, tb_ = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            x, y = (ta_.T if ta else ta_), (tb_.T if tb else tb_)
            row["cublas_ms"] = 1e3 * timed(lambda: torch.matmul(x, y), repeats)
        rows.append(row)
    return rows


# --- one MLP epoch ---------------------------------------------------------------------------------

def mlp_epoch_seconds(device, n, d_in, width, n_out, batch, seed=0):
    from tqdm import tqdm
    from tinydeep import functional as F
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in)).astype(np.float32)
    Y = rng.integers(0, n_out, n)
    td.manual_seed(seed)
    model = td.nn.MLP(d_in, width, 2, n_out).to(device)
    opt = td.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(i):
        xb = td.tensor(X[i:i + batch], device=device)
        loss = F.cross_entropy(model(xb), Y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    step(0)                                                    # compile / warm up
    t = time.perf_counter()
    for i in tqdm(range(0, n, batch), desc=f"epoch on {device}", leave=False):
        loss = step(i)
    return time.perf_counter() - t, loss


def bench_mlp(cfg):
    n, d_in, width, n_out, batch = cfg
    t_gpu, loss_gpu = mlp_epoch_seconds("cuda", n, d_in, width, n_out, batch)
    t_cpu, loss_cpu = mlp_epoch_seconds("cpu", n, d_in, width, n_out, batch)
    return {"config": dict(n=n, d_in=d_in, width=width, out=n_out, batch=batch),
            "gpu_s": t_gpu, "cpu_s": t_cpu, "last_loss_gpu": loss_gpu, "last_loss_cpu": loss_cpu}


# --- report ------------------------------------------------------------------------------------------

def device_info(simulating):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "simulator": simulating}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        info["commit"] = None
    if not simulating:
        from numba import cuda
        dev = cuda.get_current_device()
        info["device"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        info["compute_capability"] = list(dev.compute_capability)
    torch = _torch()
    info["torch"] = torch.__version__ if torch is not None else None
    return info


def print_tables(res):
    mm = res["matmul"]
    base = next((v for k, v in mm["gflops"].items() if k.startswith("cuBLAS")), None)
    print(f"\n### matmul {mm['n']}³ float32\n\n| kernel | GFLOP/s | / cuBLAS |\n|---|---|---|")
    for name, g in mm["gflops"].items():
        print(f"| {name} | {g:.1f} | {g / base:.2f} |" if base else f"| {name} | {g:.1f} | n/a |")
    r = res["relu"]
    print(f"\n### relu, {r['n']} float32\n\n| op | GB/s | / copy |\n|---|---|---|")
    print(f"| device-to-device copy | {r['copy_gbs']:.1f} | 1.00 |")
    print(f"| tinydeep relu | {r['relu_gbs']:.1f} | {r['relu_gbs'] / r['copy_gbs']:.2f} |")
    s = res["grid_sample"]
    print(f"\n### grid_sample forward + backward {tuple(s['shape'])}\n\n"
          "| implementation | ms | speed vs torch |\n|---|---|---|")
    if "torch_ms" in s:
        print(f"| PyTorch CUDA | {s['torch_ms']:.2f} | 1.00 |")
        print(f"| tinydeep | {s['tinydeep_ms']:.2f} | {s['torch_ms'] / s['tinydeep_ms']:.2f} |")
    else:
        print(f"| tinydeep | {s['tinydeep_ms']:.2f} | n/a (no PyTorch CUDA) |")
    m = res["mlp"]
    print(f"\n### one MLP epoch {m['config']}\n\n| device | s | speed-up |\n|---|---|---|")
    print(f"| cpu (numba) | {m['cpu_s']:.2f} | 1.00 |")
    print(f"| cuda | {m['gpu_s']:.2f} | {m['cpu_s'] / m['gpu_s']:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per contender")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes (to run the code paths under NUMBA_ENABLE_CUDASIM=1)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    if not backends.cuda_available():
        print("bench_cuda skipped: no CUDA GPU usable by numba.cuda "
              "(or NUMBA_ENABLE_CUDASIM=1 with --tiny to exercise the code on the CPU)")
        return None
    from tinydeep.backends import cuda_device as cd
    if cd.SIMULATING and not args.tiny:
        print("bench_cuda skipped: NUMBA_ENABLE_CUDASIM=1 simulates the GPU on the CPU, so timings "
              "would mean nothing; pass --tiny to run every code path on tiny sizes")
        return None
    if cd.SIMULATING:   # simulated threads meet at barriers: a short GIL interval speeds them
        sys.setswitchinterval(1e-4)
    sizes = TINY if args.tiny else FULL
    repeats = 1 if args.tiny else args.repeats
    res = {"info": device_info(cd.SIMULATING), "launch": dict(cd.LAUNCH), "tiny": args.tiny}
    res["matmul"] = bench_matmul(sizes["matmul"], repeats, args.tiny)
    res["relu"] = bench_relu(sizes["relu"], repeats)
    res["grid_sample"] = bench_grid_sample(sizes["sample"], repeats)
    res["mlp"] = bench_mlp(sizes["mlp"])
    print(f"device: {res['info'].get('device', 'CUDA simulator')}, {res['info']['date']}, "
          f"commit {res['info']['commit']}" + ("  (simulator: timings mean nothing)"
                                               if cd.SIMULATING else ""))
    print_tables(res)
    if args.json:
        from tinydeep.experiments.records import save_json
        save_json(res, args.json)
        print(f"\nwrote {args.json}")
    return res


if __name__ == "__main__":
    main()
