"""Matrix multiply on the CPU: a ladder of three Numba kernels.

Every rung computes the same thing,

    c[i, j] = sum over k of a[i, k] * b[k, j]        a (M,K), b (K,N), c (M,N)

and differs only in the order it visits (i, j, k) and where the operands
sit while they are used. `python benchmarks/bench_matmul.py` shows what each
rung buys next to NumPy's BLAS.

    matmul_naive    i-k-j loops, rows of c split over the cores
    matmul_blocked  the same loops, cut into tiles that stay in cache
    matmul_packed   GotoBLAS/BLIS style: operands copied ("packed") into the
                    order a register-tile micro-kernel reads them; the micro-
                    kernel is written as LLVM vector FMA code

`matmul`, `matmul_nt` and `matmul_tn` (the backend contract) run the packed
kernel. Packing reads its input through the strides, so a transposed
operand costs nothing extra: a.T @ b is the packed kernel applied to the
view a.T, and one compiled kernel per dtype serves every layout.

All kernels compile lazily on first call and are cached on disk (cache=True).
The packed kernel's parts run in a `prange` loop, one part per thread of Numba's
pool; it keeps one packing workspace per calling thread, of about
(threads * MC + N) * KC elements, and runs products smaller than SERIAL_BELOW
on the calling thread alone.
"""
import os
import sys
import threading
import zlib
from pathlib import Path

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numpy.lib.stride_tricks import as_strided
from numba import carray, cfunc, get_num_threads, njit, prange, types
from numba.core import cgutils, config
from numba.extending import intrinsic
from numba.np.ufunc import parallel as _numba_parallel

from . import cpu_warmup

cpu_warmup.install()   # a first run: one line on stderr, and a helper process compiles too

__all__ = ["matmul", "matmul_nt", "matmul_tn",
           "matmul_naive", "matmul_blocked", "matmul_packed", "matmul_batched"]


# Big results are recycled. A fresh array of tens of MB comes from the OS as
# untouched pages, and the first write to each page traps into the kernel, which
# zeroes it: for the 40 MB im2col matrix of a small CNN that costs about as much
# as filling it. So up to _KEEP arrays of at least _BIG bytes are remembered, and
# one is handed out again once nothing else refers to it (it or a view of it) —
# which the reference count tells: a tensor that still holds it keeps it busy.
_BIG, _KEEP = 4 << 20, 8
_recycled = []
_recycled_lock = threading.Lock()


def empty(shape, dtype):
    """np.empty(shape, dtype), from the recycled big arrays where one is free."""
    dtype = np.dtype(dtype)
    n = 1
    for d in shape:
        n *= d
    if n * dtype.itemsize < _BIG:
        return np.empty(shape, dtype=dtype)
    with _recycled_lock:      # two threads must not both take the same free array
        for i in range(len(_recycled)):
            # references: the list, and getrefcount's argument; any view or holder adds one
            if (_recycled[i].size == n and _recycled[i].dtype == dtype
                    and sys.getrefcount(_recycled[i]) == 2):
                return _recycled[i].reshape(shape)
        a = np.empty(n, dtype=dtype)
        _recycled.append(a)
        if len(_recycled) > _KEEP:
            _recycled.pop(0)
        return a.reshape(shape)


def _result(a, b, out):
    """The (M, N) result array: `out` when given, else a new one of a's dtype."""
    shape = (a.shape[0], b.shape[1])
    if out is None:
        if shape[0] * shape[1] * a.itemsize < _BIG:      # the common case, without empty()'s checks
            return np.empty(shape, dtype=a.dtype)
        return empty(shape, a.dtype)
    if out.shape != shape or out.dtype != a.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {a.dtype} array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    return out


# ------------------------------------------------- rung 1: naive i-k-j loops

@njit(parallel=True, fastmath=True, cache=True)
def _naive_kernel(a, b, c):
    # c[i, :] = sum over k of a[i, k] * b[k, :]. Buys: the inner loop runs
    # along rows of b and c, so it vectorizes; rows of c split over the cores.
    M, K = a.shape
    N = b.shape[1]
    for i in prange(M):
        for j in range(N):
            c[i, j] = 0.0
        for k in range(K):
            aik = a[i, k]
            for j in range(N):
                c[i, j] += aik * b[k, j]


def matmul_naive(a, b, out=None):
    """a (M,K) @ b (K,N), naive i-k-j loops."""
    c = _result(a, b, out)
    _naive_kernel(a, b, c)
    return c


# ------------------------------------------- rung 2: blocked for the cache

BLOCK_M, BLOCK_K, BLOCK_N = 64, 64, 1024


@njit(parallel=True, fastmath=True, cache=True)
def _blocked_kernel(a, b, c):
    # The naive sum, one (BLOCK_M x BLOCK_K) tile of a times one (BLOCK_K x
    # BLOCK_N) tile of b at a time. Buys: a tile of b (256 KiB at float32)
    # serves BLOCK_M rows of c from L2 instead of coming from memory per row.
    # Indices are unsigned: signed ones that do not start at 0 make Numba
    # check every access for a negative (wrap-around) index, and LLVM then
    # does not vectorize the inner loop (about 8x slower).
    M, K = a.shape
    N = b.shape[1]
    for i in prange(M):
        for j in range(N):
            c[i, j] = 0.0
    for ib in prange((M + BLOCK_M - 1) // BLOCK_M):
        i0 = np.uint64(ib * BLOCK_M)
        i1 = np.uint64(min(M, ib * BLOCK_M + BLOCK_M))
        for k0 in range(0, K, BLOCK_K):
            k1 = np.uint64(min(K, k0 + BLOCK_K))
            for j0 in range(0, N, BLOCK_N):
                j1 = np.uint64(min(N, j0 + BLOCK_N))
                for i in range(i0, i1):
                    for k in range(np.uint64(k0), k1):
                        aik = a[i, k]
                        for j in range(np.uint64(j0), j1):
                            c[i, j] += aik * b[k, j]


def matmul_blocked(a, b, out=None):
    """a (M,K) @ b (K,N), cache-blocked i-k-j loops."""
    c = _result(a, b, out)
    _blocked_kernel(a, b, c)
    return c


# ------------------------------------ rung 3: packed panels + micro-kernel
#
# The work is cut in three levels (Goto & van de Geijn, "Anatomy of
# high-performance matrix multiplication", 2008):
#
#   micro-tile  MR x NR block of c, held in vector registers while k runs
#               over a block of at most KC; per k it costs one vector load of
#               b, MR broadcasts of a and MR vector FMAs.
#   sliver      the MR x kc part of a (kc x NR part of b) that one micro-tile
#               reads, copied ("packed") contiguously in k order, so the
#               micro-kernel walks both with unit stride.
#   part        the rectangle of c one thread computes.
#
# Each thread runs this loop nest (_gemm_part) on its own part, packing into its
# own workspace, so the threads never wait for each other:
#
#   for k0 in steps of KC:
#       pack b[k0:k0+KC, part's columns] into b-slivers      (KC x NR each, L1/L2;
#                                   read in place instead for a part of few rows)
#       for ic in steps of MC over the part's rows:
#           pack a[ic:ic+MC, k0:k0+KC] into a-slivers        (MC x KC in all, L2)
#           for each b-sliver j0, for each a-sliver i0:
#               c[i0:i0+MR, j0:j0+NR] (+)= a-sliver @ b-sliver    (micro-kernel)
#
# NR is one kernel vector of VECTOR_BYTES (below: 128 bytes = 32 float32 with
# AVX-512, 64 bytes with AVX2). LLVM splits it into whatever registers the CPU
# has, so the code is correct on any x86; only the tile shape is tuned, for the
# CPU Numba compiles for (NUMBA_CPU_NAME, else the host) and the host's caches.

def _target_has_avx512():
    """Whether Numba compiles for a CPU with AVX-512 (the host, unless
    NUMBA_CPU_NAME names another)."""
    if config.CPU_NAME and config.CPU_NAME != "host":
        return "+avx512f" in (config.CPU_FEATURES or "")
    return bool(llvm.get_host_cpu_features().get("avx512f", False))


def _cache_bytes(level, default):
    """Size in bytes of this CPU's level-1 data or level-2 cache (per core), read from
    /sys or sysconf; `default` where neither says."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in sorted(os.listdir(base)):
            path = os.path.join(base, index)
            with open(os.path.join(path, "level")) as f:
                if int(f.read()) != level:
                    continue
            with open(os.path.join(path, "type")) as f:
                if f.read().strip() not in ("Data", "Unified"):
                    continue
            with open(os.path.join(path, "size")) as f:
                text = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    try:
        size = os.sysconf("SC_LEVEL1_DCACHE_SIZE" if level == 1 else "SC_LEVEL2_CACHE_SIZE")
        if size > 0:
            return size
    except (ValueError, OSError, AttributeError):
        pass
    return default


def _blocking(l1_bytes, l2_bytes, mr, vector_bytes):
    """(KC, MC) from the cache sizes. KC: a b-sliver (KC rows of one kernel vector) takes
    2/3 of L1, leaving room for the a-sliver streaming past it; where L2 is large (>= 1 MiB)
    KC is 512 whatever L1 holds: the b-sliver then streams from L2, which keeps up with
    the micro-kernel, and c is read and written half as often (K/KC passes over c: at
    2048³ on Sapphire Rapids KC 256 -> 512 took fast/OpenBLAS 0.77-0.82 -> 0.88-0.92).
    MC: the MC x KC block of a-slivers takes a quarter of L2, half where L2 is large.
    KC is a multiple of 64, MC of MR. Sapphire Rapids (48 KiB L1, 2 MiB L2, 128-byte
    kernel vector): 512, 504. Zen 3 (32 KiB, 512 KiB, 64 bytes): 320, 102."""
    big_l2 = l2_bytes >= 1 << 20
    kc = 512 if big_l2 else max(128, min(512, (l1_bytes * 2 // 3 // vector_bytes) // 64 * 64))
    mc = (l2_bytes // (2 if big_l2 else 4)) // (kc * 4) // mr * mr
    return kc, max(4 * mr, min(mc, 96 * mr))


# The micro-tile is MR rows by one "kernel vector" of VECTOR_BYTES. LLVM splits a
# vector type wider than the CPU's registers into several registers, so the tile is
# MR x (VECTOR_BYTES/register bytes) registers of accumulators:
#   AVX-512 (32 zmm of 64 bytes): 12 x 128 bytes = 24 accumulators, + 2 for b. Per k:
#       2 loads of b, 12 broadcast loads of a, 24 FMAs -- 14 loads per 24 FMAs, inside
#       the two load ports' budget (a 16 x 64-byte tile needs 17 loads per 16 FMAs and
#       ran at ~0.7 of OpenBLAS on Sapphire Rapids; this one at ~0.9-1.0).
#   AVX2 (16 ymm of 32 bytes): 6 x 64 bytes = 12 accumulators, + 2 for b, + 1 broadcast.
_HAS_AVX512 = _target_has_avx512()
MR = 12 if _HAS_AVX512 else 6                  # rows of a micro-tile
VECTOR_BYTES = 128 if _HAS_AVX512 else 64      # NR = VECTOR_BYTES // itemsize columns
L1_BYTES = _cache_bytes(1, 32 << 10)
L2_BYTES = _cache_bytes(2, 512 << 10)
KC, MC = _blocking(L1_BYTES, L2_BYTES, MR, VECTOR_BYTES)


def code_path():
    """One line: the CPU Numba compiles for, and the tile and block sizes chosen for it."""
    target = config.CPU_NAME if config.CPU_NAME and config.CPU_NAME != "host" else llvm.get_host_cpu_name()
    return (f"{'AVX-512' if _HAS_AVX512 else 'AVX2'} path for '{target}': micro-tile {MR} x "
            f"{VECTOR_BYTES // 4} fp32, KC {KC}, MC {MC} (L1d {L1_BYTES >> 10} KiB, "
            f"L2 {L2_BYTES >> 10} KiB)")


SERIAL_BELOW = 2 ** 19           # M*K*N under which one thread beats waking two (a 64³ product
                                 # stays on one thread; an output layer's 128x512x10 takes two)
DIRECT_B_TILES = 6               # parts of at most this many rows of tiles read b in place
PACK_FLOPS = 32                  # packing one element takes about as long as 32 flops


def _micro_kernel_rows(R):
    """The micro-kernel for the first R <= MR rows of a packed sliver of a."""
    def micro_kernel(typingctx, kc, a_pack, a_at, b_pack, b_at, b_step, c, c_at, ldc,
                     accumulate):
        return _micro_kernel_typed(R, kc, a_pack, a_at, b_pack, b_at, b_step, c, c_at, ldc,
                                   accumulate)
    return intrinsic(micro_kernel)


def _offset_kernel_rows(R, vector_bytes=VECTOR_BYTES):
    """The micro-kernel for R rows of an a read in place: a[r, p] = a[a_at + offsets[p] + r]
    (a convolution's input, R neighbouring pixels of one row, tap p at offsets[p]), its
    rows vector_bytes wide (half a kernel vector for a layer of 16 channels)."""
    def micro_kernel(typingctx, kc, a, a_at, offsets, b_pack, b_at, b_step, c, c_at, ldc,
                     accumulate):
        return _micro_kernel_typed(R, kc, a, a_at, b_pack, b_at, b_step, c, c_at, ldc,
                                   accumulate, offsets, vector_bytes)
    return intrinsic(micro_kernel)


def _micro_kernel_typed(R, kc, a_pack, a_at, b_pack, b_at, b_step, c, c_at, ldc, accumulate,
                        offsets=None, vector_bytes=VECTOR_BYTES):
    """c[c_at + r*ldc + j] (+)= sum over p < kc of
           a_pack[a_at + p*MR + r] * b_pack[b_at + p*b_step + j]    for r < R, j < NR

    (= instead of += when `accumulate` is False), emitted as LLVM IR: R
    accumulators of type <NR x float> that stay in registers for the whole
    k loop, then one vector add and store per row of c. b_step is NR for a packed
    sliver of b, or b's row length where its rows are read in place. R is MR but at the bottom
    edge of c, where a tile of 4 or 8 rows covers what is left with fewer wasted
    rows (a convolution's 16 or 32 output channels: 12 + 4 and 12 + 12 + 8). With
    `offsets` (an integer array), a[r, p] is a_pack[a_at + offsets[p] + r]: a read in place.
    """
    tail = (b_pack, types.intp, types.intp, c, types.intp, types.intp, types.boolean)
    sig = types.void(types.intp, a_pack, types.intp, *((offsets,) if offsets else ()), *tail)

    def codegen(context, builder, signature, args):
        if offsets:
            table = context.make_array(offsets)(context, builder, args[3]).data
            args = args[:3] + args[4:]
        kc, a_pack, a_at, b_pack, b_at, b_step, c, c_at, ldc, accumulate = args
        a_type, b_type, c_type = signature.args[1], signature.args[-7], signature.args[-4]
        a_ptr = context.make_array(a_type)(context, builder, a_pack).data
        b_ptr = context.make_array(b_type)(context, builder, b_pack).data
        c_ptr = context.make_array(c_type)(context, builder, c).data
        nr = vector_bytes * 8 // c_type.dtype.bitwidth
        vec = ir.VectorType(context.get_value_type(c_type.dtype), nr)
        i32, i8_ptr = ir.IntType(32), ir.IntType(8).as_pointer()

        def const(n):
            return ir.Constant(ldc.type, n)

        def vector_at(ptr, index):               # &ptr[index] as <nr x float>*
            return builder.bitcast(builder.gep(ptr, [index], inbounds=True), vec.as_pointer())

        def broadcast(x):                        # x -> <x, x, ..., x>
            one = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                          ir.Constant(ir.VectorType(i32, nr), [0] * nr))

        # Ask for the rows of c now (prefetch for writing); they are needed after the k loop.
        c_rows = [vector_at(c_ptr, builder.add(c_at, builder.mul(const(r), ldc)))
                  for r in range(R)]
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8_ptr, i32, i32, i32]),
            "llvm.prefetch.p0")
        for c_r in c_rows:
            builder.call(prefetch, [builder.bitcast(c_r, i8_ptr), ir.Constant(i32, 1),
                                    ir.Constant(i32, 3), ir.Constant(i32, 1)])

        # acc[r] += a[r, p] * b[p, :] for p < kc. The allocas become registers
        # (LLVM's mem2reg); 'contract' lets LLVM fuse the multiply-add into one
        # FMA instruction where the CPU has one.
        acc = [cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * nr)) for _ in range(R)]
        with cgutils.for_range(builder, kc) as loop:
            p = loop.index
            b_p = builder.load(vector_at(b_ptr, builder.add(b_at, builder.mul(p, b_step))),
                               align=4)
            if offsets:
                a_p = builder.add(a_at, builder.load(builder.gep(table, [p], inbounds=True)))
            else:
                a_p = builder.add(a_at, builder.mul(p, const(MR)))
            for r in range(R):
                a_rp = builder.load(builder.gep(a_ptr, [builder.add(a_p, const(r))], inbounds=True))
                product = builder.fmul(broadcast(a_rp), b_p, flags=["contract"])
                total = builder.fadd(product, builder.load(acc[r]), flags=["contract"])
                builder.store(total, acc[r])

        for r, c_r in enumerate(c_rows):
            total = builder.load(acc[r])
            with builder.if_else(accumulate) as (add, store):
                with add:
                    builder.store(builder.fadd(builder.load(c_r, align=4), total), c_r, align=4)
                with store:
                    builder.store(total, c_r, align=4)
        return context.get_dummy_value()

    return sig, codegen


_micro_kernel = _micro_kernel_rows(MR)
_micro_kernel_8 = _micro_kernel_rows(8)
_micro_kernel_4 = _micro_kernel_rows(4)


@intrinsic
def _nr(typingctx, x):
    """NR for x's dtype (elements in one kernel vector) as a compile-time constant."""
    n = VECTOR_BYTES * 8 // x.dtype.bitwidth
    return types.intp(x), lambda context, builder, sig, args: context.get_constant(types.intp, n)


@intrinsic
def _mr(typingctx, x):
    """MR as a plain (not literal) integer, so that the packing routine compiles
    once for both of its callers (a with MR rows, b with NR)."""
    return types.intp(x), lambda context, builder, sig, args: context.get_constant(types.intp, MR)


def _vector_run(nbytes, add=False):
    """An intrinsic run(x, at_x, dst, at, n, width): dst[at + t] (+)= x[at_x + t] for t < n,
    dst[at + t] = 0 for n <= t < width (0 <= n <= width <= lanes = nbytes / itemsize), as
    one masked vector load of x (lanes >= n are not read), for add one of dst, and one
    masked store (lanes >= width are not written), llvm.masked.load/store. LLVM will not
    vectorize such a short scalar loop itself (it cannot rule out that x and dst overlap;
    rows of a small image are too short for its vector loops); where n = width = lanes
    are constants, the masks fold away into a plain load and store."""
    @intrinsic
    def run(typingctx, x, at_x, dst, at, n, width):
        sig = types.void(x, types.intp, dst, types.intp, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            x, at_x, dst, at, n, width = args
            x_type, bits = signature.args[0], signature.args[0].dtype.bitwidth
            lanes = nbytes * 8 // bits
            vec = ir.VectorType(context.get_value_type(x_type.dtype), lanes)
            i32, index = ir.IntType(32), ir.VectorType(n.type, lanes)

            def below(count):                   # the mask lane < count
                splat = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(index, ir.Undefined), count,
                                           ir.Constant(i32, 0)),
                    ir.Constant(index, ir.Undefined),
                    ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
                return builder.icmp_signed("<", ir.Constant(index, list(range(lanes))), splat)

            name = f"v{lanes}f{bits}.p0v{lanes}f{bits}"
            vp, masks = vec.as_pointer(), ir.VectorType(ir.IntType(1), lanes)
            load = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vp, i32, masks, vec]),
                f"llvm.masked.load.{name}")
            store = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [vec, vp, i32, masks]),
                f"llvm.masked.store.{name}")
            align, zero = ir.Constant(i32, bits // 8), ir.Constant(vec, [0.0] * lanes)
            src = builder.bitcast(builder.gep(
                context.make_array(x_type)(context, builder, x).data, [at_x]), vp)
            to = builder.bitcast(builder.gep(
                context.make_array(signature.args[2])(context, builder, dst).data, [at]), vp)
            value = builder.call(load, [src, align, below(n), zero])
            if add:
                value = builder.fadd(value, builder.call(load, [to, align, below(width), zero]))
            builder.call(store, [value, to, align, below(width)])
            return context.get_dummy_value()

        return sig, codegen
    return run


_copy_vector = _vector_run(VECTOR_BYTES)      # one kernel vector: a b-sliver's row


def _transposer(rows=None):
    """An intrinsic for dst[at + q*step + r] = x[at_x + r*ld + q], r < R, q < L, where
    L = NR/2 (one 32-byte vector) and R = `rows` (L if None; R <= L): R vector loads
    along rows of x, an in-register transpose, L stores of R elements. This packs a
    sliver whose rows run along k (b = W.T in matmul_nt: R = L, twice a sliver; a
    row-major a: R = MR) without reading one element at a time.

    The transpose swaps the off-diagonal d x d blocks of every 2d x 2d block,
    for d = 1, 2, ..., L/2: 2 shuffles per pair of rows per step, L log2(L) in
    all (24 for an 8 x 8 float32 tile), which LLVM turns into unpack, shuffle
    and cross-lane permute instructions. Rows R..L-1 of the tile are zeros, never stored."""
    @intrinsic
    def transpose(typingctx, x, at_x, ld, dst, at, step):
        sig = types.void(x, types.intp, types.intp, dst, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            x, at_x, ld, dst, at, step = args
            x_type, dst_type = signature.args[0], signature.args[3]
            lanes = VECTOR_BYTES * 8 // x_type.dtype.bitwidth // 2
            R = min(rows or lanes, lanes)      # (R > L only in a branch _pack never takes)
            vec = ir.VectorType(context.get_value_type(x_type.dtype), lanes)
            mask = ir.VectorType(ir.IntType(32), lanes)
            x_ptr = context.make_array(x_type)(context, builder, x).data
            dst_ptr = context.make_array(dst_type)(context, builder, dst).data
            tile = [ir.Constant(vec, [0.0] * lanes)] * lanes
            for r in range(R):
                at_r = builder.add(at_x, builder.mul(ir.Constant(ld.type, r), ld))
                row = builder.bitcast(builder.gep(x_ptr, [at_r]), vec.as_pointer())
                tile[r] = builder.load(row, align=4)
            d = 1
            while d < lanes:
                for r in range(lanes):
                    if r & d:
                        continue
                    lo_mask = [j if not j & d else lanes + j - d for j in range(lanes)]
                    hi_mask = [j + d if not j & d else lanes + j for j in range(lanes)]
                    a, b = tile[r], tile[r + d]
                    tile[r] = builder.shuffle_vector(a, b, ir.Constant(mask, lo_mask))
                    tile[r + d] = builder.shuffle_vector(a, b, ir.Constant(mask, hi_mask))
                d *= 2
            out = ir.VectorType(vec.element, R)
            for q in range(lanes):
                value = tile[q] if R == lanes else builder.shuffle_vector(
                    tile[q], ir.Constant(vec, ir.Undefined),
                    ir.Constant(ir.VectorType(ir.IntType(32), R), list(range(R))))
                to = builder.add(at, builder.mul(ir.Constant(at.type, q), step))
                builder.store(value, builder.bitcast(builder.gep(dst_ptr, [to]), out.as_pointer()),
                              align=4)
            return context.get_dummy_value()

        return sig, codegen
    return transpose


_transpose_tile = _transposer()
_transpose_mr = _transposer(MR)


# The packed kernel reads a, b and writes c through flat 1-D views plus element
# strides: x[i, k] is x_flat[i*rs + k*cs]. So one compiled kernel per dtype serves
# every layout (C, F, transposed views, slices with steps) -- compiling a variant
# per layout was most of a cold start's 35 s. The layout is a run-time branch in
# the packing loops below, which is where it matters.

@njit(cache=True)
def _pack(x, rs, cs, r_lo, r_hi, rows, R, k0, kc, dst):
    # Slivers of R rows: for r0 = r_lo, r_lo + R, ... < r_hi,
    #     dst[(r0 - r_lo)*kc + p*R + r] = x[(r0 + r)*rs + (k0 + p)*cs]   p < kc, r < R,
    # zero where r0 + r >= rows. Indices are unsigned: signed ones make Numba
    # check each access for a negative (wrap-around) index.
    nr = _nr(dst)
    full_hi = max(r_lo, min(r_hi, r_lo + (rows - r_lo) // R * R))   # slivers inside x end here
    if rs == 1 and R <= nr:
        # each sliver row x[r0:r0+R, k] is contiguous (b row-major, a.T): one vector copy,
        # walking along x's memory (R = MR < NR: a masked one); past the edge, masked too
        for p in range(kc):
            for r0 in range(r_lo, full_hi, R):
                if R == nr:     # (constants: plain load and store; masked stores are slow on AMD)
                    _copy_vector(x, r0 + (k0 + p) * cs, dst, (r0 - r_lo) * kc + p * R, nr, nr)
                else:
                    _copy_vector(x, r0 + (k0 + p) * cs, dst, (r0 - r_lo) * kc + p * R, R, R)
        for r0 in range(full_hi, r_hi, R):
            n = max(0, min(R, rows - r0))
            for p in range(kc):
                _copy_vector(x, min(r0, rows - 1) + (k0 + p) * cs, dst,
                             (r0 - r_lo) * kc + p * R, n, R)
        full_hi = r_hi
    elif R == nr and cs == 1:
        # rows of x run along k (b = W.T in matmul_nt, row-major a when MR = NR):
        # L x L in-register transposes, L = R/2; the k left over element by element
        half = R // 2
        k_tiles = kc - kc % half
        for r0 in range(r_lo, full_hi, R):
            at = (r0 - r_lo) * kc
            for p in range(0, k_tiles, half):
                _transpose_tile(x, r0 * rs + k0 + p, rs, dst, at + p * R, R)
                _transpose_tile(x, (r0 + half) * rs + k0 + p, rs, dst, at + p * R + half, R)
            for p in range(k_tiles, kc):
                for r in range(R):
                    dst[np.uint64(at + p * R + r)] = x[np.uint64((r0 + r) * rs + k0 + p)]
    elif R == MR and cs == 1:
        # rows of x run along k (row-major a): MR x L transposes where MR <= L = NR/2
        # (float32), the rest per k one element from each of the MR rows (MR is a
        # constant here, so the r loop unrolls into MR streams read in order)
        half = nr // 2
        k_tiles = kc - kc % half if MR <= half else 0
        for r0 in range(r_lo, full_hi, R):
            at = (r0 - r_lo) * kc
            base = r0 * rs + k0
            for p in range(0, k_tiles, half):
                _transpose_mr(x, base + p, rs, dst, at + p * MR, MR)
            for p in range(k_tiles, kc):
                for r in range(MR):
                    dst[np.uint64(at + p * MR + r)] = x[np.uint64(base + r * rs + p)]
    else:
        full_hi = r_lo
    for r0 in range(full_hi, r_hi, R):         # the general case, and slivers past the edge
        at = (r0 - r_lo) * kc
        n = max(0, min(R, rows - r0))
        for p in range(kc):     # dst in order (x's n rows are n streams read in order)
            src = r0 * rs + (k0 + p) * cs
            for r in range(R):
                dst[np.uint64(at + p * R + r)] = x[np.uint64(src + r * rs)] if r < n else 0.0


@njit(inline="always")
def _edge_tile(kc, a_pack, a_at, b_src, b_at, b_step, c, c_at, ldc, accumulate, rows):
    # the micro-kernel with the fewest rows (4, 8 or MR) that covers `rows` rows
    if rows <= 4 and MR > 4:
        _micro_kernel_4(kc, a_pack, a_at, b_src, b_at, b_step, c, c_at, ldc, accumulate)
    elif rows <= 8 and MR > 8:
        _micro_kernel_8(kc, a_pack, a_at, b_src, b_at, b_step, c, c_at, ldc, accumulate)
    else:
        _micro_kernel(kc, a_pack, a_at, b_src, b_at, b_step, c, c_at, ldc, accumulate)


@njit(cache=True, nogil=True)
def _gemm_part(a, a_rs, a_cs, b, b_rs, b_cs, c, M, K, N, i_lo, i_hi, j_lo, j_hi,
               kc_max, a_pack, b_pack, add, a_mode):
    # c[i, j] = sum over k of a[i, k] * b[k, j] for rows [i_lo, i_hi) and columns
    # [j_lo, j_hi) of c (whole micro-tiles; they may run past M and N), by the loop
    # nest above. c is C-contiguous (row length N). A micro-tile that sticks out
    # past the edge of c runs into a scratch tile, and only the part inside is copied.
    # add=True adds the product to c (c += a @ b) instead of overwriting it.
    # a_mode 0: a's slivers are packed block by block into the start of a_pack (MC x KC);
    # 1: packed, and kept, every block at its own place (a_pack holds (i_hi - i_lo) x K);
    # 2: a_pack already holds them so (a reused over calls, as a convolution's weights).
    nr = _nr(c)
    scratch = np.empty(MR * nr, dtype=c.dtype)
    # b read in place: where b's rows are contiguous and the part has few rows of a
    # (packing a b-sliver costs about as much as one micro-tile's work on it), the
    # micro-kernel reads b's rows where they lie; only a sliver that runs past N is
    # packed. Not where a row of b is a multiple of 512 bytes long: its rows would all
    # fall into a few cache sets.
    j_direct = j_lo
    if b_cs == 1 and i_hi - i_lo <= DIRECT_B_TILES * MR and b_rs * (VECTOR_BYTES // nr) % 512:
        j_direct = max(j_lo, min(j_hi, j_lo + (N - j_lo) // nr * nr))
    for k0 in range(0, K, kc_max):
        kc = min(kc_max, K - k0)
        accumulate = add or k0 > 0
        # b's columns are the rows of b.T: element (j, k) at j*b_cs + k*b_rs
        _pack(b, b_cs, b_rs, j_direct, j_hi, N, nr, k0, kc, b_pack)
        for ic in range(i_lo, i_hi, MC):
            i_end = min(ic + MC, i_hi)
            a_at = 0 if a_mode == 0 else k0 * (i_hi - i_lo) + (ic - i_lo) * kc
            if a_mode != 2:
                _pack(a, a_rs, a_cs, ic, i_end, M, _mr(c), k0, kc, a_pack[a_at:])
            for j0 in range(j_lo, j_hi, nr):
                if j0 < j_direct:
                    b_src, b_at, b_step = b, k0 * b_rs + j0, b_rs
                else:
                    b_src, b_at, b_step = b_pack, (j0 - j_direct) * kc, nr
                for i0 in range(ic, i_end, MR):
                    rows = min(MR, M - i0)
                    at = a_at + (i0 - ic) * kc
                    if j0 + nr <= N and rows == MR:
                        _micro_kernel(kc, a_pack, at, b_src, b_at, b_step, c, i0 * N + j0, N,
                                      accumulate)
                    elif j0 + nr <= N and rows in (4, 8) and MR > rows:
                        _edge_tile(kc, a_pack, at, b_src, b_at, b_step, c, i0 * N + j0, N,
                                   accumulate, rows)
                    else:
                        _edge_tile(kc, a_pack, at, b_src, b_at, b_step, scratch, 0, nr, False,
                                   rows)
                        for r in range(rows):
                            for j in range(min(nr, N - j0)):
                                if accumulate:
                                    c[(i0 + r) * N + j0 + j] += scratch[r * nr + j]
                                else:
                                    c[(i0 + r) * N + j0 + j] = scratch[r * nr + j]


# _gemm_part's body is the largest a cold start compiles (~3 s of machine code). Numba
# builds a jitted callee's machine code again inside every jitted caller, so the parts'
# prange loop, the serial path and the convolution would each pay for it. Compiled once
# per dtype as a C function (cfunc) of pointers and sizes instead, it is called through
# its address (a first-class function value) and never built twice.

def _part_c(a, b, c, a_pack, b_pack, a_len, b_len, c_len, a_pack_len, b_pack_len,
            a_rs, a_cs, b_rs, b_cs, M, K, N, i_lo, i_hi, j_lo, j_hi, kc_max, add, a_mode):
    _gemm_part(carray(a, a_len), a_rs, a_cs, carray(b, b_len), b_rs, b_cs, carray(c, c_len),
               M, K, N, i_lo, i_hi, j_lo, j_hi, kc_max, carray(a_pack, a_pack_len),
               carray(b_pack, b_pack_len), add != 0, a_mode)


_C_FUNCTIONS = {}


def c_address(py_func, c_signature, dtype):
    """The address of py_func compiled for dtype as a C function of signature
    c_signature(dtype) (on first use: a cfunc compiles, or loads from the cache, when it
    is made). An address, not the cfunc object: Numba types an int in ~0.1 us, a cfunc
    object in ~15 us, on every call."""
    address = _C_FUNCTIONS.get((py_func, dtype))
    if address is None:
        address = _C_FUNCTIONS[py_func, dtype] = cfunc(
            c_signature(numba.from_dtype(dtype)), cache=True)(py_func).address
    return address


def _part_signature(dtype):
    pointer = types.CPointer(dtype)
    return types.void(*[pointer] * 5, *[types.intp] * 19)


def _part_address(dtype):
    """The address of _part_c compiled for dtype."""
    return c_address(_part_c, _part_signature, dtype)


def function_at(c_signature):
    """An intrinsic f(address, like): the C function at `address` whose signature is
    c_signature(like's dtype), as a first-class function value that jitted code calls."""
    @intrinsic
    def at(typingctx, address, like):
        fnty = types.FunctionType(c_signature(like.dtype))

        def codegen(context, builder, signature, args):
            value = cgutils.create_struct_proxy(fnty)(context, builder)
            value.c_addr = builder.inttoptr(args[0], value.c_addr.type)
            return value._getvalue()
        return fnty(types.intp, like), codegen
    return at


_function_at = function_at(_part_signature)       # _part_c for like's dtype


@intrinsic
def _data(typingctx, x):
    """x's data pointer, typed as a pointer to x's dtype (what _part_c takes)."""
    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data
    return types.CPointer(x.dtype)(x), codegen


@njit(cache=True, nogil=True)
def _gemm_call(part, a, a_rs, a_cs, b, b_rs, b_cs, c, M, K, N, i_lo, i_hi, j_lo, j_hi,
               kc_max, a_pack, b_pack, add, a_mode):
    # _gemm_part's arguments, passed to its C function at `part` (_part_address)
    _function_at(part, c)(_data(a), _data(b), _data(c), _data(a_pack), _data(b_pack),
                          a.size, b.size, c.size, a_pack.size, b_pack.size, a_rs, a_cs,
                          b_rs, b_cs, M, K, N, i_lo, i_hi, j_lo, j_hi, kc_max, add, a_mode)


# Numba's on-disk cache notices edits to a function's own file only. A jitted caller of
# _gemm_call in another file (the direct convolution's loop) carries this in its type
# signature, so that an edit here never meets a stale copy of _gemm_call compiled there.
VERSION = f"{zlib.crc32(Path(__file__).read_bytes()):08x}"


@njit(parallel=True, cache=True, nogil=True)
def _gemm_parts(part, a, a_rs, a_cs, b, b_rs, b_cs, c, M, K, N, kc, m_parts, n_parts,
                workspace, part_size):
    # c cut into m_parts x n_parts parts of whole micro-tiles (as even as whole tiles
    # allow), one per thread of Numba's pool, the same pool as the elementwise kernels':
    # its workers spin briefly after each parallel loop, so they are awake for the next
    # one (a pool of its own had to wake a sleeping core for every product: 1.5-2x the
    # MLP step's time). Part p packs into workspace[p*part_size:(p+1)*part_size].
    nr = _nr(c)
    m_slivers = (M + MR - 1) // MR
    n_slivers = (N + nr - 1) // nr
    a_size = MC * kc
    if m_parts * n_parts == 1:      # a small product: this thread alone, no pool wakes up
        _gemm_call(part, a, a_rs, a_cs, b, b_rs, b_cs, c, M, K, N, 0, m_slivers * MR,
                   0, n_slivers * nr, kc, workspace[:a_size], workspace[a_size:part_size],
                   False, 0)
        return
    for p in prange(m_parts * n_parts):
        pm = p // n_parts
        pn = p - pm * n_parts
        at = p * part_size
        _gemm_call(part, a, a_rs, a_cs, b, b_rs, b_cs, c, M, K, N,
                   pm * m_slivers // m_parts * MR, (pm + 1) * m_slivers // m_parts * MR,
                   pn * n_slivers // n_parts * nr, (pn + 1) * n_slivers // n_parts * nr,
                   kc, workspace[at:at + a_size], workspace[at + a_size:at + part_size],
                   False, 0)


def _split(m_slivers, n_slivers, threads, nr):
    """(m_parts, n_parts), m_parts * n_parts = threads, that gives the busiest
    thread the least work. Per unit of K a part of rows x cols costs
    2*rows*cols flops plus packing rows + cols elements (every part packs all
    of its a-rows and b-columns), each worth ~PACK_FLOPS flops of the micro-
    kernel's time. Ties go to splitting columns."""
    best = None
    for m_parts in range(1, threads + 1):
        if threads % m_parts == 0:
            n_parts = threads // m_parts
            rows = -(-m_slivers // m_parts) * MR
            cols = -(-n_slivers // n_parts) * nr
            cost = 2 * rows * cols + PACK_FLOPS * (rows + cols)
            if best is None or cost < best[0]:
                best = (cost, m_parts, n_parts)
    return best[1], best[2]


_workspace = threading.local()


def _buffer(size, dtype):
    """A reusable VECTOR_BYTES-aligned 1-D buffer of at least `size` elements (one
    per calling thread and dtype), so that repeated calls do not page-fault
    fresh memory."""
    try:
        buffers = _workspace.buffers
    except AttributeError:
        buffers = _workspace.buffers = {}
    aligned = buffers.get(dtype)
    if aligned is None or aligned.size < size:
        dtype = np.dtype(dtype)
        pad = VECTOR_BYTES // dtype.itemsize
        raw = np.empty(size + pad, dtype=dtype)
        skip = (-raw.ctypes.data % VECTOR_BYTES) // dtype.itemsize
        aligned = buffers[dtype] = raw[skip:skip + size]
    return aligned


def _threads():
    """numba.get_num_threads(), without its cost once the thread pool is up:
    the public call takes two locks (~2 us, paid on every matmul); the
    thread-local count it then reads is what _get_num_threads returns."""
    if _numba_parallel._is_initialized:
        return _numba_parallel._get_num_threads()
    return get_num_threads()


# (M, K, N, itemsize, threads, _split, SERIAL_BELOW) -> how matmul_packed runs that
# product. A training loop multiplies the same few shapes over and over; the plan is
# a few us of Python. (_split and SERIAL_BELOW are in the key so that replacing them,
# as the tests do, takes effect.)
_plans = {}
_MAX_PLANS = 1024


def kc_for(K):
    """The depth of one block of K: K cut into equal blocks of <= KC."""
    return -(-K // -(-K // KC))


def tiles(M, N, dtype):
    """M and N rounded up to whole micro-tiles (MR rows, NR columns)."""
    nr = VECTOR_BYTES // np.dtype(dtype).itemsize
    return -(-M // MR) * MR, -(-N // nr) * nr


def _few_columns(M, N, dtype):
    """True when c.T = b.T @ a.T fills micro-tiles at least twice as well as c = a @ b: c
    has far fewer columns than a tile's NR lanes (an output layer's 10 classes fill 10 of
    32) and many rows. Packing reads the transposed views in place."""
    m, n = tiles(M, N, dtype)
    n_t, m_t = tiles(N, M, dtype)
    return 2 * n_t * m_t <= m * n


def _plan(M, K, N, itemsize, threads):
    """(kc, m_parts, n_parts, part_size) for an (M,K) @ (K,N) product."""
    key = (M, K, N, itemsize, threads, _split, SERIAL_BELOW)
    plan = _plans.get(key)
    if plan is None:
        nr = VECTOR_BYTES // itemsize
        kc = kc_for(K)
        serial = threads == 1 or M * K * N < SERIAL_BELOW
        m_parts, n_parts = _split(-(-M // MR), -(-N // nr), 1 if serial else threads, nr)
        part_size = MC * kc + -(-N // (nr * n_parts)) * nr * kc    # a- and b-slivers
        plan = (kc, m_parts, n_parts, part_size)
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        _plans[key] = plan
    return plan


def _flat(x):
    """(x_flat, rs, cs): a 1-D view of x's memory and x's strides in elements, so that
    x[i, k] is x_flat[i*rs + k*cs]. Any layout with non-negative strides that are whole
    elements is read in place; anything else (reversed rows) is copied first."""
    flags = x.flags
    if flags.c_contiguous:                       # the common cases, as plain views (fast)
        return x.reshape(-1), x.shape[1], 1
    if flags.f_contiguous:
        return x.T.reshape(-1), 1, x.shape[0]
    size = x.itemsize
    rs, cs = x.strides
    if rs < 0 or cs < 0 or rs % size or cs % size:
        x = np.ascontiguousarray(x)
        rs, cs = x.strides
    rs, cs = rs // size, cs // size
    span = (x.shape[0] - 1) * rs + (x.shape[1] - 1) * cs + 1
    return as_strided(x, shape=(span,), strides=(size,)), rs, cs


def matmul_packed(a, b, out=None):
    """a (M,K) @ b (K,N) with packed slivers and a vector micro-kernel."""
    c = _result(a, b, out)
    (M, K), N = a.shape, b.shape[1]
    if M == 0 or N == 0:
        return c
    if K == 0:
        c[...] = 0
        return c
    if b.dtype != a.dtype:
        b = b.astype(a.dtype)
    if _few_columns(M, N, a.dtype):
        c[...] = matmul_packed(b.T, a.T).T
        return c
    a_flat, a_rs, a_cs = _flat(a)
    b_flat, b_rs, b_cs = _flat(b)
    c_flat = c.reshape(-1)
    threads = _threads()
    kc, m_parts, n_parts, part_size = _plan(M, K, N, a.itemsize, threads)
    workspace = _buffer(m_parts * n_parts * part_size, a.dtype)
    _gemm_parts(_part_address(a.dtype), a_flat, a_rs, a_cs, b_flat, b_rs, b_cs, c_flat, M, K, N,
                kc, m_parts, n_parts, workspace, part_size)
    return c


# ------------------------------------------------------ the backend contract

def matmul(a, b, out=None):
    """a (M,K) @ b (K,N) -> (M,N)."""
    return matmul_packed(a, b, out)


def matmul_nt(a, b, out=None):
    """a (M,K) @ b (N,K).T -> (M,N); b.T is a view, packing reads it in place."""
    return matmul_packed(a, b.T, out)


def matmul_tn(a, b, out=None):
    """a (K,M).T @ b (K,N) -> (M,N); a.T is a view, packing reads it in place."""
    return matmul_packed(a.T, b, out)


# ------------------------------------------- batches of matrices (torch.matmul's N-D case)

LARGE_PRODUCT = 256 ** 3   # from this many multiply-adds a product keeps both threads busy on
                           # its own; below, a thread does whole products (no split per product)


@njit(parallel=True, cache=True, nogil=True)
def _batched_parts(part, a, b, c, kc, workspace, part_size):
    # c[p] = a[p] @ b[p] for C-contiguous a (P,M,K), b (P,K,N), c (P,M,N): a run of whole
    # products per thread of the pool, each one part of the packed kernel's per-part body
    # (_gemm_call) on that thread's piece of the workspace. (A row of c summed in memory, one
    # k at a time, ran at ~15 GFLOP/s: each k waits for the last k's stores.)
    P, M, K = a.shape
    N = b.shape[2]
    nr = _nr(c)
    runs = workspace.size // part_size
    a_size = MC * kc
    for t in prange(runs):
        at = t * part_size
        for p in range(t * P // runs, (t + 1) * P // runs):
            _gemm_call(part, a[p].reshape(-1), K, 1, b[p].reshape(-1), N, 1, c[p].reshape(-1),
                       M, K, N, 0, (M + MR - 1) // MR * MR, 0, (N + nr - 1) // nr * nr, kc,
                       workspace[at:at + a_size], workspace[at + a_size:at + part_size],
                       False, 0)


def matmul_batched(a, b):
    """c[p] = a[p] @ b[p] for a (P,M,K), b (P,K,N) of any layout: a run of whole products per
    thread, or, for large products or fewer than threads, the packed kernel one product
    after another (each on all threads)."""
    (P, M, K), N = a.shape, b.shape[2]
    c = np.empty((P, M, N), dtype=a.dtype)
    if M * N * K >= LARGE_PRODUCT or P < _threads():
        for p in range(P):
            matmul_packed(a[p], b[p], c[p])
    elif c.size:
        if K == 0:
            c[...] = 0
            return c
        kc, _, _, part_size = _plan(M, K, N, a.itemsize, 1)    # one part: a whole product
        runs = min(P, _threads())
        _batched_parts(_part_address(a.dtype), np.ascontiguousarray(a),
                       np.ascontiguousarray(b, dtype=a.dtype), c, kc,
                       _buffer(runs * part_size, a.dtype), part_size)
    return c
