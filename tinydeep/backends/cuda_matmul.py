"""Matrix products on the GPU, two rungs of the ladder side by side.

C = A B with C[i, j] = Σ_k A[i, k] B[k, j]. The layer also needs A Bᵀ (x Wᵀ)
and Aᵀ B (gᵀ x); rather than transposing in memory, each kernel reads its
operands through a flag: A(i, k) is a[k, i] when `ta`, B(k, j) is b[j, k]
when `tb`. Both flags are compile-time constants of a kernel factory.

Rung 1, `tiled` (for readers). A block of T×T threads owns a T×T tile of C,
one entry per thread. It walks k in steps of T: the block copies a T×T tile
of A and one of B into shared memory (each global element is read once per
block instead of once per thread), synchronizes, and every thread adds its
row of the A tile times its column of the B tile. Global traffic falls by T,
but each multiply-add still needs two shared-memory loads.

Rung 2, `register_tiled`. A block owns a BM×BN tile of C with
(BM/TM)·(BN/TN) threads; each thread keeps a TM×TN patch of C in registers.
Per step of k the thread loads TM values of A and TN of B from shared memory
into registers and does TM·TN multiply-adds with them: an outer product, TM·TN
FMAs per TM + TN shared loads. A thread's rows are trow + BM/TM·r and its
columns tcol + BN/TN·c (interleaved, not a contiguous patch), so the threads
of a warp read neighbouring shared-memory words (no bank conflicts) and write
neighbouring columns of C (coalesced stores). The A tile is kept k-major,
sA[k, i], so the inner loop reads rows of both tiles.

Rung 3, `block_tiled` (128×128). The same outer product with bigger tiles:
a block of 256 threads owns a BM×BN = 128×128 tile of C, each thread an 8×8
patch (64 accumulators in registers: 64 FMAs per 16 shared loads). Shared
memory is double-buffered: at each step the block first issues the loads of
the step k0 + BK tiles into one buffer, then multiplies the step-k0 tiles out
of the other; one syncthreads per step instead of two, and the global loads'
latency hides behind the other warps' FMAs. `launch_bounds` tells ptxas the
block size and asks for two resident blocks per SM (fp32), so it keeps a
thread within 128 registers.
Wide (128-bit) loads are not used: numba.cuda has no portable way to read a
float32 array as float4, so each thread issues scalar loads of neighbouring
addresses (still coalesced across the warp).

Split K. A block walks all of K for its tile, so a product with few output tiles
and a long K leaves the GPU idle: a convolution's weight gradient gᵀ·cols is 16×9
with K = N·Ho·Wo = 100,352, one tile, one block walking 100,352 k alone. When the
tiles are fewer than LAUNCH['fill_blocks'], rung 2 cuts K into S chunks, the
third grid dimension: block z sums its chunk into partial products c[z], and one
more kernel adds the S partials (in a fixed order: the result does not depend on
which block finished first). With S = 1, c is the output itself.

`matmul`, `matmul_nt` and `matmul_tn` take rung 3 when the output has at least
LAUNCH['rung3_tiles'] of its 128×128 tiles, else rung 2 (its 64×64 tiles make more
blocks of a small output).

Sizes are parameters (cuda_device.LAUNCH): the simulator runs 2×2 tiles.
Out-of-range rows and columns load zeros and are not stored, so any M, K, N work.
"""
import numpy as np
from numba import cuda, uint64

from .cuda_device import LAUNCH, SIMULATING, empty, flat, grid, made, numba_type


def _tiled_factory(T, ta, tb, dtype):
    nb_dtype = numba_type(dtype)

    @cuda.jit
    def kernel(a, b, c):
        sA = cuda.shared.array((T, T), nb_dtype)
        sB = cuda.shared.array((T, T), nb_dtype)
        acc = cuda.local.array(1, nb_dtype)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        i = cuda.blockIdx.y * T + ty
        j = cuda.blockIdx.x * T + tx
        M, N = c.shape
        K = a.shape[0] if ta else a.shape[1]
        acc[0] = 0
        for k0 in range(0, K, T):
            ka, kb = k0 + tx, k0 + ty
            if i < M and ka < K:
                sA[ty, tx] = a[ka, i] if ta else a[i, ka]
            else:
                sA[ty, tx] = 0
            if kb < K and j < N:
                sB[ty, tx] = b[j, kb] if tb else b[kb, j]
            else:
                sB[ty, tx] = 0
            cuda.syncthreads()
            for kk in range(T):
                acc[0] += sA[ty, kk] * sB[kk, tx]
            cuda.syncthreads()
        if i < M and j < N:
            c[i, j] = acc[0]
    return kernel


# Indices known to be ≥ 0 are cast to unsigned: numba then skips the negative-index
# wrap-around select on each access, and ptxas can address the shared tiles as one base
# register plus constant offsets (without it, in rung 3: 16 more 64-bit address registers, spills).
U = uint64


def _tile_copier(BX, BK, THREADS, kmajor, nb_dtype):
    """Rung 3's copy of the step-k0 tile of operand X by the block's threads, k-major:
    sX[buf, k, x] = X(x0 + x, k0 + k), 0 outside. X is stored (K, X) when `kmajor` (a when
    ta, b unless tb), else (X, K); consecutive threads read consecutive addresses. (Rung 2
    keeps its own strided loop: through this one it needs 94 registers, not 80, in fp64.)"""
    @cuda.jit(device=True, inline="always")
    def copy(src, sX, buf, tid, x0, k0, X, K):
        for l in range(BX * BK // THREADS):
            e = tid + l * THREADS
            if kmajor:
                kk, xx = e // BX, e % BX
            else:
                xx, kk = e // BK, e % BK
            gx, gk = x0 + xx, k0 + kk
            v = nb_dtype(0)
            if gx < X and gk < K:
                v = src[U(gk), U(gx)] if kmajor else src[U(gx), U(gk)]
            sX[buf, U(kk), U(xx)] = v
    return copy


def _tile_storer(TM, TN, ROWS, COLS):
    """c[z, i, j] = acc[r, s] for i = row0 + trow + ROWS·r, j = col0 + tcol + COLS·s inside C
    (z: the block's chunk of K)."""
    @cuda.jit(device=True, inline="always")
    def store(c, z, acc, row0, col0, trow, tcol, M, N):
        for r in range(TM):
            i = row0 + trow + r * ROWS
            if i < M:
                for s in range(TN):
                    j = col0 + tcol + s * COLS
                    if j < N:
                        c[U(z), U(i), U(j)] = acc[r, s]
    return store


@cuda.jit(device=True, inline="always")
def _k_chunk(a, ta, kc):
    """The block's chunk of K, [k_begin, k_end): chunk z = blockIdx.z, of length kc."""
    K = a.shape[0] if ta else a.shape[1]
    k_begin = cuda.blockIdx.z * kc
    return k_begin, min(K, k_begin + kc)


def _register_tiled_factory(BM, BN, BK, TM, TN, ta, tb, dtype):
    nb_dtype = numba_type(dtype)
    ROWS, COLS = BM // TM, BN // TN          # threads along i and along j
    THREADS = ROWS * COLS
    store = _tile_storer(TM, TN, ROWS, COLS)

    @cuda.jit
    def kernel(a, b, c, kc):
        sA = cuda.shared.array((BK, BM), nb_dtype)       # sA[k, i] = A(row0 + i, k0 + k)
        sB = cuda.shared.array((BK, BN), nb_dtype)       # sB[k, j] = B(k0 + k, col0 + j)
        acc = cuda.local.array((TM, TN), nb_dtype)
        ra = cuda.local.array(TM, nb_dtype)
        rb = cuda.local.array(TN, nb_dtype)
        tid = cuda.threadIdx.x
        trow, tcol = tid // COLS, tid % COLS
        row0, col0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
        M, N = c.shape[1], c.shape[2]
        k_begin, K = _k_chunk(a, ta, kc)                 # this block's k: [k_begin, K)
        for r in range(TM):
            for s in range(TN):
                acc[r, s] = 0
        for k0 in range(k_begin, K, BK):
            # Copy the tiles; consecutive threads take consecutive addresses of a and b.
            for e in range(tid, BM * BK, THREADS):
                if ta:                                   # a is (K, M): walk along i
                    kk, ii = e // BM, e % BM
                else:                                    # a is (M, K): walk along k
                    ii, kk = e // BK, e % BK
                gi, gk = row0 + ii, k0 + kk
                if gi < M and gk < K:
                    sA[kk, ii] = a[gk, gi] if ta else a[gi, gk]
                else:
                    sA[kk, ii] = 0
            for e in range(tid, BN * BK, THREADS):
                if tb:                                   # b is (N, K): walk along k
                    jj, kk = e // BK, e % BK
                else:                                    # b is (K, N): walk along j
                    kk, jj = e // BN, e % BN
                gj, gk = col0 + jj, k0 + kk
                if gj < N and gk < K:
                    sB[kk, jj] = b[gj, gk] if tb else b[gk, gj]
                else:
                    sB[kk, jj] = 0
            cuda.syncthreads()
            # acc += (column k of the A tile) ⊗ (row k of the B tile), from registers
            for kk in range(BK):
                for r in range(TM):
                    ra[r] = sA[kk, trow + r * ROWS]
                for s in range(TN):
                    rb[s] = sB[kk, tcol + s * COLS]
                for r in range(TM):
                    for s in range(TN):
                        acc[r, s] += ra[r] * rb[s]
            cuda.syncthreads()
        store(c, cuda.blockIdx.z, acc, row0, col0, trow, tcol, M, N)
    return kernel


def _block_tiled_factory(BM, BN, BK, TM, TN, ta, tb, dtype):
    nb_dtype = numba_type(dtype)
    ROWS, COLS = BM // TM, BN // TN          # threads along i and along j
    THREADS = ROWS * COLS
    if (BM * BK) % THREADS or (BN * BK) % THREADS:
        raise ValueError(f"block_tiled: BM·BK ({BM * BK}) and BN·BK ({BN * BK}) must be "
                         f"multiples of the block's {THREADS} threads")
    copy_a = _tile_copier(BM, BK, THREADS, ta, nb_dtype)
    copy_b = _tile_copier(BN, BK, THREADS, not tb, nb_dtype)
    store = _tile_storer(TM, TN, ROWS, COLS)

    @cuda.jit(device=True, inline="always")
    def multiply(sA, sB, buf, acc, rb, trow, tcol):
        # acc += Σ_kk (column kk of the A tile) ⊗ (row kk of the B tile), from buffer `buf`
        for kk in range(BK):
            for s in range(TN):
                rb[s] = sB[buf, kk, U(tcol + s * COLS)]
            for r in range(TM):            # one A value live at a time: fewer registers
                av = sA[buf, kk, U(trow + r * ROWS)]
                for s in range(TN):
                    acc[r, s] += av * rb[s]

    # fp32: ask ptxas for 2 resident blocks per SM (≤ 128 registers a thread); fp64 needs
    # twice the registers for the same tile and gets 1
    MIN_BLOCKS = 2 if np.dtype(dtype).itemsize <= 4 else 1

    bounds = {} if SIMULATING else dict(launch_bounds=(THREADS, MIN_BLOCKS))  # sim: no such option

    @cuda.jit(**bounds)
    def kernel(a, b, c):
        # c is (1, M, N): rung 3 serves outputs of many tiles and never splits K (the
        # split's two registers would spill it past its 128)
        sA = cuda.shared.array((2, BK, BM), nb_dtype)
        sB = cuda.shared.array((2, BK, BN), nb_dtype)
        acc = cuda.local.array((TM, TN), nb_dtype)
        rb = cuda.local.array(TN, nb_dtype)
        tid = cuda.threadIdx.x
        trow, tcol = tid // COLS, tid % COLS
        row0, col0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
        M, N = c.shape[1], c.shape[2]
        K = a.shape[0] if ta else a.shape[1]
        for r in range(TM):
            for s in range(TN):
                acc[r, s] = 0
        copy_a(a, sA, 0, tid, row0, 0, M, K)              # the first tiles -> buffer 0
        copy_b(b, sB, 0, tid, col0, 0, N, K)
        cuda.syncthreads()
        buf = 0
        for k0 in range(0, K, BK):
            if k0 + BK < K:
                # fill the other buffer with the next tiles while this one is used: it was
                # last read before the syncthreads that ended the previous step
                copy_a(a, sA, 1 - buf, tid, row0, k0 + BK, M, K)
                copy_b(b, sB, 1 - buf, tid, col0, k0 + BK, N, K)
            multiply(sA, sB, buf, acc, rb, trow, tcol)
            cuda.syncthreads()
            buf = 1 - buf
        store(c, 0, acc, row0, col0, trow, tcol, M, N)
    return kernel


@cuda.jit
def _sum_splits_kernel(parts, c):
    # c[e] = Σ_z parts[z, e], z in order: the split-K partial products added up
    for e in range(cuda.grid(1), c.size, cuda.gridsize(1)):
        acc = parts[0, e]
        for z in range(1, parts.shape[0]):
            acc += parts[z, e]
        c[e] = acc


def _splits(tiles, K, BK):
    """(S, kc): K cut into S chunks of kc (a multiple of BK) so that S·tiles blocks fill
    the GPU (LAUNCH['fill_blocks']), each chunk at least LAUNCH['split_k_min'] long."""
    S = min(-(-LAUNCH["fill_blocks"] // tiles), K // LAUNCH["split_k_min"])
    if S <= 1:
        return 1, max(K, 1)
    kc = -(-K // S)
    kc = -(-kc // BK) * BK
    return -(-K // kc), kc


def _product(a, b, out, ta, tb, method):
    M = a.shape[1] if ta else a.shape[0]
    N = b.shape[0] if tb else b.shape[1]
    c = empty((M, N), a.dtype) if out is None else out
    if M == 0 or N == 0:
        return c
    if method == "tiled":
        T = LAUNCH["tile"]
        kernel = made(_tiled_factory, T, ta, tb, a.dtype.str)
        kernel[(-(-N // T), -(-M // T)), (T, T)](a, b, c)
        return c
    if method == "auto":
        tiles3 = -(-M // LAUNCH["bm3"]) * -(-N // LAUNCH["bn3"])
        method = "block_tiled" if tiles3 >= LAUNCH["rung3_tiles"] else "register_tiled"
    if method == "block_tiled":
        bm, bn, bk, tm, tn = (LAUNCH[k] for k in ("bm3", "bn3", "bk3", "tm3", "tn3"))
        kernel = made(_block_tiled_factory, bm, bn, bk, tm, tn, ta, tb, a.dtype.str)
        kernel[(-(-N // bn), -(-M // bm)), (bm // tm) * (bn // tn)](a, b, c.reshape(1, M, N))
        return c
    bm, bn, bk, tm, tn = (LAUNCH[k] for k in ("bm", "bn", "bk", "tm", "tn"))
    K = a.shape[0] if ta else a.shape[1]
    S, kc = _splits(-(-N // bn) * -(-M // bm), K, bk)
    parts = c.reshape(1, M, N) if S == 1 else empty((S, M, N), c.dtype)
    kernel = made(_register_tiled_factory, bm, bn, bk, tm, tn, ta, tb, a.dtype.str)
    kernel[(-(-N // bn), -(-M // bm), S), (bm // tm) * (bn // tn)](a, b, parts, kc)
    if S > 1:
        _sum_splits_kernel[grid(M * N)](parts.reshape(S, M * N), flat(c))
    return c


def matmul(a, b, out=None):
    """C = A B with A (M,K), B (K,N): rung 3 for a big output, else rung 2; K split when
    the output has few tiles."""
    return _product(a, b, out, False, False, "auto")


def matmul_register_tiled(a, b, out=None):
    """C = A B by the 64×64 register-tiled kernel (rung 2)."""
    return _product(a, b, out, False, False, "register_tiled")


def matmul_tiled(a, b, out=None):
    """C = A B by the plain shared-memory tiled kernel (rung 1, for readers and benchmarks)."""
    return _product(a, b, out, False, False, "tiled")


def matmul_block_tiled(a, b, out=None):
    """C = A B by the 128×128 double-buffered kernel (rung 3)."""
    return _product(a, b, out, False, False, "block_tiled")


def matmul_nt(a, b, out=None):
    """C = A Bᵀ with A (M,K), B (N,K)."""
    return _product(a, b, out, False, True, "auto")


def matmul_tn(a, b, out=None):
    """C = Aᵀ B with A (K,M), B (K,N)."""
    return _product(a, b, out, True, False, "auto")

