"""Compile every CUDA kernel for a real GPU architecture, without a GPU.

`tinydeep kernels --cuda-arch sm_90` builds each kernel of the CUDA backend
for each dtype it runs with, at the real launch sizes (cuda_device.GPU_LAUNCH),
through numba.cuda.compile_ptx (NVVM, no driver needed), assembles the PTX
with `ptxas -v` and prints one row per kernel: registers per thread, spill
bytes, static shared memory, and the theoretical occupancy those allow.

Why each number matters. An SM has 64 K 32-bit registers and at most 2048
resident threads (64 warps); a block of 256 threads using R registers each
takes 256·R (rounded up to 256 per warp), so R ≤ 128 keeps two such blocks
resident and R ≤ 32 allows the full 2048 threads. Spills are registers that
did not fit and went to (slow) local memory. Shared memory per block also
caps the blocks per SM.

Needs the CUDA toolkit wheels (the `gpu-tools` extra: NVVM, NVRTC, ptxas),
pinned to the CUDA version of the target driver: a newer NVVM writes a PTX ISA
version that an older ptxas and driver reject.

Device functions. numba-cuda compiles a `@cuda.jit(device=True)` helper for
"the current device", asking the driver for its compute capability. With no
driver, `stand_in_device(cc)` gives numba, during compilation only, a current
device that reports the target capability (the helper is typed and lowered
to LLVM IR; the final PTX is still made for `cc` by compile_ptx).
"""
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np

ARCHS = {  # registers per SM, max threads per SM, max blocks per SM, shared bytes per SM
    "sm_80": (65536, 2048, 32, 164 * 1024),
    "sm_86": (65536, 1536, 16, 100 * 1024),
    "sm_89": (65536, 1536, 24, 100 * 1024),
    "sm_90": (65536, 2048, 32, 228 * 1024),
}
FLOATS = ("float32", "float64")


def find_ptxas():
    """ptxas from the nvidia-cuda-nvcc wheel, else from PATH; None if neither."""
    for base in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for sub in ("cu13", "cu12", "cuda_nvcc"):
            path = os.path.join(base, "nvidia", sub, "bin", "ptxas")
            if os.path.exists(path):
                return path
    return shutil.which("ptxas")


@contextlib.contextmanager
def stand_in_device(cc):
    """While compiling, numba's current device reports compute capability `cc`."""
    from numba.cuda import dispatcher

    class StandIn:
        compute_capability = cc

    real = dispatcher.get_current_device
    dispatcher.get_current_device = StandIn
    try:
        yield
    finally:
        dispatcher.get_current_device = real


def occupancy(arch, threads, regs, shared):
    """(blocks per SM, fraction of the SM's warps resident) for one kernel."""
    reg_file, max_threads, max_blocks, smem = ARCHS[arch]
    warps = -(-threads // 32)
    regs_per_warp = -(-regs * 32 // 256) * 256
    by_regs = reg_file // (regs_per_warp * warps) if regs else max_blocks
    by_smem = smem // shared if shared else max_blocks
    blocks = min(max_threads // (warps * 32), max_blocks, by_regs, by_smem)
    return blocks, blocks * warps / (max_threads // 32)


def catalog():
    """[(name, kernel, numba argument types, threads per block)] for every kernel the CUDA
    backend launches, every dtype, at the GPU launch sizes."""
    from numba import boolean, float64, int64
    from numba.core.types import Array, UniTuple

    from .backends import cuda as K
    from .backends import cuda_device as D
    from .backends import cuda_matmul as MM
    from .backends import cuda_sampling as S

    L = D.GPU_LAUNCH
    T = L["threads"]

    def arr(dtype, nd):
        return Array(D.numba_type(dtype), nd, "C")

    rows = []

    def add(name, kernel, args, threads=T):
        # kernel: a dispatcher, or a function making one (resolved when compiled, so a
        # kernel that moved shows as that row's error instead of stopping the report)
        rows.append((name, kernel, tuple(args), threads))

    # the elementwise families (cuda_elementwise: one kernel per scalar op of scalar_ops.py,
    # forward and backward): (row name, factory getter, number of array arguments)
    try:
        from .backends.scalar_ops import BINARY, UNARY
    except ImportError:
        UNARY = BINARY = {}

    def family(attr):
        def get():
            from .backends import cuda_elementwise
            return getattr(cuda_elementwise, attr)
        return get
    elementwise = ([(f"{op}", family("_map_kernel"), 2) for op in UNARY]
                   + [(f"{op} backward", family("_map_backward_kernel"), 4) for op in UNARY]
                   + [(f"{op}", family("_zip_kernel"), 3) for op in BINARY]
                   + [(f"{op} backward", family("_zip_backward_kernel"), 6) for op in BINARY])

    every = FLOATS + ("int64", "bool")
    for dt in every:
        add(f"fill[{dt}]", D._fill_kernel, [arr(dt, 1), D.numba_type(dt)])
    for src in every:
        for dst in every:
            if src != dst:
                add(f"cast[{src}->{dst}]", D._cast_kernel, [arr(src, 1), arr(dst, 1)])
    for dt in every:
        for nd in (1, 2, 3, 4):
            add(f"gather{nd}d[{dt}]", D._gather_kernel,
                [arr(dt, 1), arr(dt, 1), UniTuple(int64, nd), UniTuple(int64, nd), int64])
        add(f"take[{dt}]", D._take_kernel, [arr(dt, 1), arr("int64", 1), arr(dt, 1)])
        add(f"compare[{dt}]", D._compare_kernel,
            [arr(dt, 1), arr(dt, 1), arr("bool", 1), int64])
    for dt in FLOATS:
        f = D.numba_type(dt)
        add(f"scatter_add[{dt}]", D._scatter_add_kernel,
            [arr(dt, 1), arr("int64", 1), arr(dt, 1)])
        add(f"argmax_rows[{dt}]", D._argmax_rows_kernel, [arr(dt, 2), arr("int64", 1)])
        for name, fam, arity in elementwise:
            add(f"{name}[{dt}]", lambda fam=fam, op=name.split(" ")[0]: fam()(op),
                [arr(dt, 1)] * arity)
        add(f"mul_scalar[{dt}]", lambda: K._mul_scalar_kernel, [arr(dt, 1), f, arr(dt, 1)])
        add(f"pow_scalar[{dt}]", lambda: K._pow_scalar_kernel, [arr(dt, 1), f, boolean, arr(dt, 1)])
        add(f"add_rowvec[{dt}]", lambda: K._add_rowvec_kernel, [arr(dt, 1), arr(dt, 1), arr(dt, 1)])
        RT = L["reduce_threads"]
        def rk(name, RT=RT):
            return lambda: K._row_factory(RT)[name]
        add(f"sum_rows[{dt}]", rk("sum_rows"), [arr(dt, 2), arr(dt, 1), float64], RT)
        add(f"log_softmax[{dt}]", rk("log_softmax"), [arr(dt, 2)] * 2, RT)
        add(f"cross_entropy[{dt}]", rk("cross_entropy"),
            [arr(dt, 2), arr("int64", 1), arr(dt, 2), arr("float64", 1)], RT)
        add(f"log_softmax_backward[{dt}]", rk("log_softmax_backward"), [arr(dt, 2)] * 3, RT)
        for part, (x, y) in (("", (dt, "float64")), ("_partials", ("float64", dt))):  # 2 passes
            add(f"sum_cols{part}[{dt}]", lambda: K._sum_cols_kernel, [arr(x, 2), int64, arr(y, 2)])
        add(f"cross_entropy_backward[{dt}]", lambda: K._cross_entropy_backward_kernel,
            [arr(dt, 2), arr("int64", 1), arr(dt, 1), boolean, f, arr(dt, 2)])
        ints = [int64] * 8
        add(f"im2col[{dt}]", lambda: K._im2col_kernel, [arr(dt, 4)] + ints + [arr(dt, 2)])
        add(f"col2im[{dt}]", lambda: K._col2im_kernel, [arr(dt, 2)] + ints + [arr(dt, 4)])
        add(f"max_pool[{dt}]", lambda: K._max_pool_kernel,
            [arr(dt, 4)] + [int64] * 6 + [arr(dt, 4), arr("int64", 4)])
        add(f"max_pool_backward[{dt}]", lambda: K._max_pool_backward_kernel,
            [arr(dt, 1), arr("int64", 1), int64, arr(dt, 1)])
        add(f"sgd[{dt}]", lambda: K._sgd_kernel,
            [arr(dt, 1), arr(dt, 1), arr(dt, 1), boolean, f, f, boolean, f])
        add(f"adam[{dt}]", lambda: K._adam_kernel, [arr(dt, 1)] * 4 + [f] * 8)
        add(f"affine_grid[{dt}]", S._affine_grid_kernel,
            [arr(dt, 3), arr(dt, 1), arr(dt, 1), arr(dt, 4)])
        add(f"affine_grid_backward[{dt}]", S._affine_grid_backward_kernel,
            [arr(dt, 4), arr("float64", 1), arr("float64", 1), arr(dt, 3)])
        chw = [arr(dt, 1), int64, int64, int64]        # the flat image and its C, H, W
        sampling = S._sampling_factory(np.dtype(dt).str, L["sample_channels"])
        add(f"grid_sample[{dt}]", sampling[0], chw + [arr(dt, 4), arr(dt, 1)] + [f] * 4 + [boolean])
        add(f"grid_sample_backward[{dt}]", sampling[1],
            chw + [arr(dt, 4), arr(dt, 1), arr(dt, 1), arr(dt, 4)] + [f] * 4 + [boolean])
        add(f"matmul_sum_splits[{dt}]", MM._sum_splits_kernel, [arr(dt, 2), arr(dt, 1)])
        for ta, tb, tag in ((False, False, "nn"), (False, True, "nt"), (True, False, "tn")):
            mm = [arr(dt, 2)] * 3
            add(f"matmul_tiled_{tag}[{dt}]",
                MM._tiled_factory(L["tile"], ta, tb, np.dtype(dt).str), mm, L["tile"] ** 2)
            mm = [arr(dt, 2), arr(dt, 2), arr(dt, 3)]      # c: (splits of K, M, N)
            add(f"matmul_register_tiled_{tag}[{dt}]",
                MM._register_tiled_factory(L["bm"], L["bn"], L["bk"], L["tm"], L["tn"],
                                           ta, tb, np.dtype(dt).str),
                mm + [int64], (L["bm"] // L["tm"]) * (L["bn"] // L["tn"]))
            add(f"matmul_block_tiled_{tag}[{dt}]",
                MM._block_tiled_factory(L["bm3"], L["bn3"], L["bk3"], L["tm3"], L["tn3"],
                                        ta, tb, np.dtype(dt).str),
                mm, (L["bm3"] // L["tm3"]) * (L["bn3"] // L["tn3"]))
    extra = getattr(K, "ptx_catalog", None)     # kernels a backend module lists itself
    if extra is not None:
        for name, kernel, args, threads in extra(arr, L):
            add(name, kernel, args, threads)
    return rows


def _ptxas(ptxas, ptx, arch):
    """(registers, spill bytes, shared bytes) from `ptxas -v` for one PTX module."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as fh:
            fh.write(ptx)
        run = subprocess.run([ptxas, f"-arch={arch}", "-v", src, "-o", os.path.join(tmp, "k.o")],
                             capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stderr.strip() or run.stdout.strip())
    text = run.stdout + run.stderr
    regs = max((int(r) for r in re.findall(r"Used (\d+) registers", text)), default=0)
    spills = sum(int(b) for b in re.findall(r"(\d+) bytes spill (?:stores|loads)", text))
    smem = max((int(s) for s in re.findall(r"(\d+) bytes smem", text)), default=0)
    return regs, spills, smem


def report(arch="sm_90", names=None):
    """One dict per kernel: name, threads, registers, spill_bytes, shared_bytes,
    blocks_per_sm, occupancy, error (None when it compiled)."""
    from numba import cuda
    if arch not in ARCHS:
        raise ValueError(f"unknown --cuda-arch {arch!r}; choose from {sorted(ARCHS)}")
    ptxas = find_ptxas()
    if ptxas is None:
        raise RuntimeError("ptxas not found: pip install 'tinydeep[gpu-tools]'")
    cc = (int(arch[3:-1]), int(arch[-1]))
    out = []
    with stand_in_device(cc):
        for name, kernel, args, threads in catalog():
            if names and not any(n in name for n in names):
                continue
            row = dict(name=name, threads=threads, registers=None, spill_bytes=None,
                       shared_bytes=None, blocks_per_sm=None, occupancy=None, error=None)
            try:
                if not hasattr(kernel, "py_func"):
                    kernel = kernel()
                opts = kernel.targetoptions
                ptx, _ = cuda.compile_ptx(kernel.py_func, args, cc=cc,
                                          fastmath=bool(opts.get("fastmath")),
                                          launch_bounds=opts.get("launch_bounds"))
                regs, spills, smem = _ptxas(ptxas, ptx, arch)
                blocks, occ = occupancy(arch, threads, regs, smem)
                row.update(registers=regs, spill_bytes=spills, shared_bytes=smem,
                           blocks_per_sm=blocks, occupancy=occ)
            except Exception as exc:                      # noqa: BLE001 - reported per row
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()   # no terminal colours
                row["error"] = f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:200]}"
            out.append(row)
    return out


def markdown(rows, arch):
    lines = [f"| kernel ({arch}) | threads | registers | spill bytes | shared bytes | "
             "blocks/SM | occupancy |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['name']} | {r['threads']} | FAILED: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['name']} | {r['threads']} | {r['registers']} | "
                         f"{r['spill_bytes']} | {r['shared_bytes']} | {r['blocks_per_sm']} | "
                         f"{r['occupancy']:.0%} |")
    return "\n".join(lines)


def summary(rows, arch):
    """One Markdown row per kernel: how many variants (dtypes, casts) were compiled, and for
    its float32 variant (or the worst of its variants when it has none): registers
    (min-max), spill bytes, shared bytes, blocks/SM and occupancy."""
    groups = {}
    for r in rows:
        groups.setdefault(r["name"].split("[")[0], []).append(r)
    lines = [f"| kernel ({arch}, float32) | variants | registers | spills | shared bytes | "
             "blocks/SM | occupancy |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, rs in groups.items():
        ok = [r for r in rs if not r["error"]]
        bad = len(rs) - len(ok)
        if not ok:
            lines.append(f"| {name} | {len(rs)} | FAILED: {rs[0]['error'][:80]} | | | | |")
            continue
        ok = [r for r in ok if r["name"].endswith("[float32]")] or ok   # fp32 where it has one
        regs = sorted(r["registers"] for r in ok)
        lines.append(f"| {name} | {len(rs)}{f' ({bad} FAILED)' if bad else ''} | "
                     f"{regs[0]}{'' if regs[0] == regs[-1] else f'-{regs[-1]}'} | "
                     f"{sum(r['spill_bytes'] for r in ok)} | "
                     f"{max(r['shared_bytes'] for r in ok)} | "
                     f"{min(r['blocks_per_sm'] for r in ok)} | "
                     f"{min(r['occupancy'] for r in ok):.0%} |")
    return "\n".join(lines)


def versions():
    import numba
    try:
        from importlib.metadata import version
        nvvm = version("nvidia-nvvm")
    except Exception:                                     # noqa: BLE001
        nvvm = "?"
    try:
        import numba_cuda
        nc = numba_cuda.__version__
    except ImportError:
        nc = "not installed"
    return f"numba {numba.__version__}, numba-cuda {nc}, nvidia-nvvm {nvvm}"


def main(argv=None):
    """`tinydeep kernels [--cuda-arch sm_90] [--only NAME ...] [--json PATH]`; exit 1 when a
    kernel fails to compile or spills."""
    import argparse
    import json
    p = argparse.ArgumentParser(prog="tinydeep kernels", description=__doc__.splitlines()[0])
    p.add_argument("--cuda-arch", default="sm_90", choices=sorted(ARCHS))
    p.add_argument("--only", nargs="*", help="kernels whose name contains one of these")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--summary", action="store_true",
                   help="one row per kernel (dtypes grouped) instead of one per variant")
    args = p.parse_args(argv)
    from numba.core import config
    if config.ENABLE_CUDASIM:
        # the simulator has no compiler: compile in a child process with it off
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
        return subprocess.call([sys.executable, "-m", "tinydeep.cuda_compile",
                                *(argv if argv is not None else sys.argv[1:])], env=env)
    rows = report(args.cuda_arch, args.only)
    print(f"# {len(rows)} kernels for {args.cuda_arch} ({versions()})")
    print(summary(rows, args.cuda_arch) if args.summary else markdown(rows, args.cuda_arch))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(arch=args.cuda_arch, versions=versions(), rows=rows), fh, indent=1)
    bad = [r["name"] for r in rows if r["error"] or r["spill_bytes"]]
    if bad:
        print(f"FAILED or spilled: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
