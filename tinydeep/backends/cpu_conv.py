"""Convolution on the CPU, rungs 2 and 3: image by image, patches kept in cache or never formed.

Rung 1 (cpu.im2col + matmul, in functional.Conv2d) unfolds the patches of the
whole batch into one matrix, N·Ho·Wo x C·kh·kw (80 MB for the second conv of a
LeNet-style net at batch 128), multiplies it, and transposes the result from
(N, Ho, Wo, C_out) to (N, C_out, Ho, Wo); the backward pass transposes the
gradient back and folds an equally large matrix. Every one of those passes goes
through main memory.

This rung does the same arithmetic one image at a time, in the layout the
packed matmul wants, with the image's patch matrix small enough to stay in L2:

    P[(c, i, j), (ho, wo)] = x[n, c, ho·sh - ph + i, wo·sw - pw + j]   (0 outside)
                                                     K = C·kh·kw rows, Ho·Wo columns
    forward          y[n]  = W @ P                   (C_out, K) @ (K, Ho·Wo): already NCHW
    input gradient   dP    = W.T @ g[n],  dx[n] = fold(dP)    (the adjoint of unfolding)
    weight gradient  dW   += g[n] @ P.T              summed over the images

W is the weight viewed as (C_out, C·kh·kw) and g[n] the output gradient of image
n viewed as (C_out, Ho·Wo); both are plain strided views, so no transposes are
copied. The products run on the packed kernel's per-part body
(cpu_matmul._gemm_part, called through its address), which packs P into the
micro-kernel's panels straight from the cached patch matrix. The batch is split
into one run of images per thread of Numba's pool (a prange loop); each thread has
its own patch buffer and, for dW, its own partial sum, added up at the end.

Rung 3, for stride 1 (the implicit GEMM, below): no patch matrix at all. The micro-kernel
reads its operand straight from the zero-framed image through a table of tap offsets, so
the unfold and fold passes and the packing of P disappear; tiles are whole runs of output
pixels by NR channels, so none of a tile is wasted on 14 x 14 maps (forward and input
gradient: y[n].T = P.T @ W.T; weight gradient: dW.T += P @ g[n].T).

prefer_direct(...) says, by shape, where rungs 2 and 3 beat rung 1 (measured:
benchmarks/bench_conv.py, which shows all three).
"""
import numpy as np
from numba import carray, literally, njit, prange, typeof, types
from numba.extending import intrinsic

from . import cpu_matmul as _mm
from .reference import _out_size

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
           "conv2d_backward_bias", "prefer_direct"]


SHORT_BYTES = 64     # one short run: 16 float32 / 8 float64, one AVX-512 register (two AVX2)


# One short run: a masked vector load and store (cpu_matmul._vector_run). Rows of a small
# image (14 or 28 pixels) are too short for LLVM's vectorized loops, which then run
# element by element. (Nothing here is cached on its own: it is built into the runs' C
# functions, whose cache entries carry cpu_matmul.VERSION in their names (_c_run), so an
# edit of the intrinsic there never meets a stale copy.)
_copy_short = _mm._vector_run(SHORT_BYTES)
_add_short = _mm._vector_run(SHORT_BYTES, add=True)


@intrinsic
def _short_lanes(typingctx, x):
    """Elements in one short run for x's dtype, as a compile-time constant."""
    n = SHORT_BYTES * 8 // x.dtype.bitwidth
    return types.intp(x), lambda context, builder, sig, args: context.get_constant(types.intp, n)


@njit(nogil=True, inline="always")
def _rows(src, src_at, src_step, dst, dst_at, dst_step, rows, n, add):
    # dst[dst_at + r*dst_step + t] (+)= src[src_at + r*src_step + t], r < rows, t < n: a
    # block copied (or added) row by row in short vector runs (one masked load and store
    # per 64 bytes: rows of small images are too short for LLVM's vectorized loops)
    L = _short_lanes(src)
    for r in range(rows):
        for t in range(0, n, L):
            m = min(L, n - t)
            if add:
                _add_short(src, src_at + r * src_step + t, dst, dst_at + r * dst_step + t, m, m)
            else:
                _copy_short(src, src_at + r * src_step + t, dst, dst_at + r * dst_step + t, m, m)


@njit(nogil=True)
def _unfold(x, n, kh, kw, sh, sw, ph, pw, Ho, Wo, p, frame):
    # p[(c, i, j), ho*Wo + wo] = x[n, c, ho*sh - ph + i, wo*sw - pw + j], 0 outside the image.
    # Each channel is first copied into `frame`, a zero-bordered (H + 2ph) x (W + 2pw)
    # canvas (its border is zeroed once by the caller and never written), so that every
    # tap (i, j) reads frame[ho*sh + i, wo*sw + j]: whole rows, no bounds, no zero runs.
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wf, P = W + 2 * pw, Ho * Wo
    xf = x.reshape(-1)
    for c in range(C):
        _rows(xf, (n * C + c) * H * W, W, frame, ph * Wf + pw, Wf, H, W, False)
        for i in range(kh):
            for j in range(kw):
                row = ((c * kh + i) * kw + j) * P
                if sw == 1:
                    _rows(frame, i * Wf + j, sh * Wf, p, row, Wo, Ho, Wo, False)
                else:
                    for ho in range(Ho):
                        at = (ho * sh + i) * Wf + j
                        for wo in range(Wo):
                            p[row + ho * Wo + wo] = frame[at + wo * sw]


@njit(nogil=True)
def _fold(dp, n, kh, kw, sh, sw, ph, pw, Ho, Wo, dx, frame):
    # dx[n, c, h, w] = sum of dp[(c, i, j), ho*Wo + wo] over h = ho*sh - ph + i, w = wo*sw - pw + j:
    # the adjoint of _unfold. Each channel's taps are summed on the framed canvas, whose
    # interior is then copied into dx (the border collects what fell on the padding).
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    Wf, P = W + 2 * pw, Ho * Wo
    df = dx.reshape(-1)
    for c in range(C):
        frame[:] = 0
        for i in range(kh):
            for j in range(kw):
                row = ((c * kh + i) * kw + j) * P
                if sw == 1:
                    _rows(dp, row, Wo, frame, i * Wf + j, sh * Wf, Ho, Wo, True)
                else:
                    for ho in range(Ho):
                        at = (ho * sh + i) * Wf + j
                        for wo in range(Wo):
                            frame[at + wo * sw] += dp[row + ho * Wo + wo]
        _rows(frame, ph * Wf + pw, Wf, df, (n * C + c) * H * W, W, H, W, False)


def _geometry(x_shape, w_shape, stride, padding):
    (N, C, H, W), (C_out, _, kh, kw) = x_shape, w_shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    return N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo


def _workspace(dtype, *sizes):
    """(work, offsets): one row of work per thread, holding segments of the given sizes,
    segment s at offsets[s]:offsets[s + 1], each vector-aligned (the packs are read with
    aligned loads)."""
    step = _mm.VECTOR_BYTES // np.dtype(dtype).itemsize
    offsets, row = [], 0
    for size in sizes:
        offsets.append(row)
        row += -(-size // step) * step
    offsets.append(row)
    runs = _mm._threads()
    return _mm._buffer(runs * row, dtype)[:runs * row].reshape(runs, row), offsets


def _frame_size(x_shape, ph, pw):
    return (x_shape[2] + 2 * ph) * (x_shape[3] + 2 * pw)     # the zero-bordered canvas


FORWARD, INPUT_GRAD, WEIGHT_GRAD = 0, 1, 2


@njit(nogil=True)
def _image_run(t, part, step, image, grad, w2, bias, out, kh, kw, sh, sw, ph, pw, Ho, Wo,
               i_hi, j_hi, kc, work, at):
    # Run t of the batch cut into one run of images per thread (see _runs); image by
    # image, one call of the packed kernel's per-part body (_mm._gemm_call: the whole of c
    # as one part), its operands flat arrays with (row, column) strides. W = w2 (C_out, K),
    # P = unfold(x[n]):
    #   FORWARD      out = y (flat):  y[n] (C_out, HoWo) = W @ P (+ bias[c_out])    image = x
    #   INPUT_GRAD   image = dx:      dP = W.T @ g[n],  dx[n] = fold(dP)
    #   WEIGHT_GRAD  out = one (C_out, Kp) partial sum per run: += g[n] @ P.T      image = x
    # where Kp = j_hi is K rounded up to whole slivers, P's rows K..Kp zero: every sliver
    # of P.T is then packed whole, by vector transposes (a first layer's K = 25 taps
    # would otherwise all go through the element-by-element edge path: 3-4x the time).
    N, C_out, K, P = image.shape[0], w2.shape[0], w2.shape[1], Ho * Wo
    runs, wf = work.shape[0], w2.reshape(-1)
    Kp = j_hi if step == WEIGHT_GRAD else K
    p, a_pack, b_pack = work[t, at[0]:at[0] + Kp * P], work[t, at[1]:], work[t, at[2]:]
    frame = work[t, at[3]:at[4]]
    for i in range(frame.size):
        frame[i] = 0
    for i in range(K * P, Kp * P):
        p[i] = 0
    n0 = t * N // runs
    for n in range(n0, (t + 1) * N // runs):
        keep = 1 if n == n0 else 2          # W's packed slivers: made once, then reused
        if step == INPUT_GRAD:
            _mm._gemm_call(part, wf, 1, K, grad[n].reshape(-1), P, 1, p, K, C_out, P,
                           0, i_hi, 0, j_hi, kc, a_pack, b_pack, False, keep)
            _fold(p, n, kh, kw, sh, sw, ph, pw, Ho, Wo, image, frame)
            continue
        _unfold(image, n, kh, kw, sh, sw, ph, pw, Ho, Wo, p, frame)
        if step == FORWARD:
            yn = out[n * C_out * P:(n + 1) * C_out * P]
            _mm._gemm_call(part, wf, K, 1, p, P, 1, yn, C_out, K, P, 0, i_hi, 0, j_hi, kc,
                           a_pack, b_pack, False, keep)
            if bias.size == C_out:      # per channel: no division per element
                for c in range(C_out):
                    yc, b = yn[c * P:(c + 1) * P], bias[c]
                    for i in range(P):
                        yc[i] += b
        else:
            _mm._gemm_call(part, grad[n].reshape(-1), P, 1, p, 1, P,
                           out[t * C_out * Kp:(t + 1) * C_out * Kp], C_out, P, Kp,
                           0, i_hi, 0, j_hi, kc, a_pack, b_pack, n > n0, 0)


# ------------------------------------------------ implicit GEMM: no patch matrix
#
# For stride 1 the patch matrix need not exist. With the image framed by its padding
# (channel c at c·F in one buffer, F = Hf·Wf), tap k = (c, i, j) of output pixel (ho, wo)
# sits at frame[k's offset + ho·Wf + wo], offset[k] = c·F + i·Wf + j. So the product
#     y[n].T (Ho·Wo, C_out) = P.T (Ho·Wo, K) @ W.T (K, C_out)
# runs on a micro-kernel that reads its a-rows, R neighbouring pixels of one output row,
# in the frame itself through the offset table (cpu_matmul._offset_kernel_rows), with
# W.T packed once into slivers of NR output channels (NR/2 where those fit the channels
# better: 16 of them). Tiles are R pixels by NR channels: an output row of 14 is two tiles
# of 7, C_out = 64 two slivers, so no row or column of a tile is wasted (y = W @ P, NR
# pixels a tile, wastes 224/196 at 14x14). The tiles' sums
# gather in a (Ho·Wr, Cp) scratch that is transposed into y[n], adding the bias.
# The input gradient is the same computation: dx[n] = the valid correlation of g[n],
# framed by (kh-1-ph, kw-1-pw), with the weights flipped and their channels swapped.

ROWS = tuple(r for r in (_mm.MR, 8, 7, 5, 4) if r <= _mm.MR)      # tile heights on offer
IMPLICIT_KC = 128       # W.T slivers (KC x NR, 16 KiB at float32) stay in L1 (256: 3-10 % slower)
IMPLICIT_MIN_K = 64     # below, the transpose of the sums costs as much as the product
IMPLICIT = True         # False: every shape on the patch-matrix path (the ladder's middle rung)


def _tiles(vector_bytes):
    """tile(R, ...): the offset micro-kernel of R rows (R in ROWS), vector_bytes wide."""
    k_mr, k_8, k_7, k_5, k_4 = (_mm._offset_kernel_rows(r, vector_bytes)
                                for r in (_mm.MR, 8, 7, 5, 4))

    @njit(nogil=True, inline="always")
    def tile(R, kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more):
        if R == _mm.MR:
            k_mr(kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)
        elif R == 8:
            k_8(kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)
        elif R == 7:
            k_7(kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)
        elif R == 5:
            k_5(kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)
        else:
            k_4(kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)
    return tile


_tile_full, _tile_half = _tiles(_mm.VECTOR_BYTES), _tiles(_mm.VECTOR_BYTES // 2)


@njit(nogil=True, inline="always")
def _tile(R, nr, kc, frame, a_at, table, w_pack, b_at, sums, c_at, ldc, more):
    # a tile of R rows by nr channels: NR (a kernel vector), or NR/2
    if nr == _mm._nr(sums):
        _tile_full(R, kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)
    else:
        _tile_half(R, kc, frame, a_at, table, w_pack, b_at, nr, sums, c_at, ldc, more)


def cut(width):
    """A row of `width` (output pixels, or a kernel row's taps) cut into tiles of heights in
    ROWS, as rows (start, R): the cut whose tiles cost least, a tile of R costing R + 2 (its
    sums' loads and stores); the last may run past the row (what it adds there is dropped)."""
    best = {0: (0, ())}
    for w in range(width):
        if w in best:
            for r in ROWS:
                end, cost = min(w + r, width), best[w][0] + r + 2
                if end not in best or cost < best[end][0]:
                    best[end] = (cost, best[w][1] + ((w, r),))
    return np.array(best[width][1], dtype=np.intp)


@njit(nogil=True)
def _implicit_run(t, src, qh, qw, offsets, w_pack, nr, kc, cuts, bias, out, work, at):
    # run t: out[n] = valid correlation of src[n] framed by (qh, qw) zeros, as above,
    # for the run's images; w_pack holds W.T (K, Cp) cut into k-blocks of kc and slivers
    # of nr channels: block k0, sliver s, element (p, lane) at k0·Cp + s·kb·nr + p·nr + lane.
    N, Cs, Hs, Ws = src.shape
    C_out, Ho, Wo = out.shape[1], out.shape[2], out.shape[3]
    Hf, Wf, K = Hs + 2 * qh, Ws + 2 * qw, offsets.size
    F, Cp = Hf * Wf, w_pack.size // offsets.size
    Wr = cuts[-1, 0] + cuts[-1, 1]              # pixels a row of tiles covers (>= Wo)
    runs, sf, of = work.shape[0], src.reshape(-1), out.reshape(-1)
    frame, sums = work[t, at[0]:at[1]], work[t, at[1]:at[2]]
    for i in range(frame.size):     # the border (and the tail the last tile reads past)
        frame[i] = 0
    for n in range(t * N // runs, (t + 1) * N // runs):
        _frame(sf, n, Cs, Hs, Ws, frame, qh, qw)
        for k0 in range(0, K, kc):
            kb = min(kc, K - k0)
            table, more = offsets[k0:k0 + kb], k0 > 0
            for ho in range(Ho):
                for s in range(cuts.shape[0]):
                    wo, R = cuts[s, 0], cuts[s, 1]
                    a_at, c_at = ho * Wf + wo, (ho * Wr + wo) * Cp
                    for j in range(0, Cp, nr):
                        _tile(R, nr, kb, frame, a_at, table, w_pack, k0 * Cp + j * kb, sums,
                              c_at + j, Cp, more)
        _transpose_sums(sums, Cp, Wr, of, n, C_out, Ho, Wo, bias)


@njit(nogil=True, inline="always")
def _frame(sf, n, Cs, Hs, Ws, frame, qh, qw):
    # image n's channels into their frames (channel c at c·F), inside a border of (qh, qw)
    Wf = Ws + 2 * qw
    F = (Hs + 2 * qh) * Wf
    for c in range(Cs):
        _rows(sf, (n * Cs + c) * Hs * Ws, Ws, frame, c * F + qh * Wf + qw, Wf, Hs, Ws, False)


@njit(nogil=True)
def _implicit_weight_run(t, src, qh, qw, g, pixels, nr, kc, cuts, partial, work, at):
    # run t: partial[t] (C·kh·Wk, Cp) = sum over the run's images n and pixels q of
    #     frame_n[c·F + i·Wf + j + pixels[q]] * g[n, o, q]  at row (c·kh + i)·Wk + j, column o:
    # the weight gradient, transposed (dW.T = P @ g[n].T), its a-rows R neighbouring taps j
    # of one kernel row (c, i) read in the frame through the pixels' offset table, b = g[n].T
    # packed into slivers of nr channels (Q x nr each). Each kernel row of width kw is cut
    # into tiles `cuts` covering Wk >= kw taps (rows j >= kw are dropped afterwards).
    N, Cs, Hs, Ws = src.shape
    C_out, Q, Cp = g.shape[1], pixels.size, partial.shape[2]
    Wf = Ws + 2 * qw
    F, Wk = (Hs + 2 * qh) * Wf, cuts[-1, 0] + cuts[-1, 1]
    kh = partial.shape[1] // (Cs * Wk)
    runs, sf, gf = work.shape[0], src.reshape(-1), g.reshape(-1)
    frame, gp, pt = work[t, at[0]:at[1]], work[t, at[1]:at[2]], partial[t].reshape(-1)
    for i in range(frame.size):     # borders, and channels past C_out: zero
        frame[i] = 0
    for i in range(gp.size):
        gp[i] = 0
    for i in range(pt.size):
        pt[i] = 0
    for n in range(t * N // runs, (t + 1) * N // runs):
        _frame(sf, n, Cs, Hs, Ws, frame, qh, qw)
        for o in range(0, C_out, nr):       # g[n] (C_out, Q) -> slivers of nr channels
            _transpose(gf, (n * C_out + o) * Q, Q, min(nr, C_out - o), Q, gp, o * Q, nr)
        for q0 in range(0, Q, kc):
            kb = min(kc, Q - q0)
            table = pixels[q0:q0 + kb]
            for c in range(Cs):
                for i in range(kh):
                    for s in range(cuts.shape[0]):
                        j, R = cuts[s, 0], cuts[s, 1]
                        for o in range(0, Cp, nr):
                            _tile(R, nr, kb, frame, c * F + i * Wf + j, table, gp,
                                  o * Q + q0 * nr, pt, ((c * kh + i) * Wk + j) * Cp + o, Cp, True)


@njit(nogil=True, inline="always")
def _transpose(x, at_x, ld, rows, cols, dst, at, step):
    # dst[at + q·step + r] = x[at_x + r·ld + q] for r < rows, q < cols: L x L in-register
    # transposes (L = NR/2; _mm._transpose_tile), the edges element by element
    L = _mm._nr(dst) // 2
    r_full, q_full = rows - rows % L, cols - cols % L
    for r in range(0, r_full, L):
        for q in range(0, q_full, L):
            _mm._transpose_tile(x, at_x + r * ld + q, ld, dst, at + q * step + r, step)
    for r in range(rows):
        for q in range(q_full if r < r_full else 0, cols):
            dst[at + q * step + r] = x[at_x + r * ld + q]


@njit(nogil=True)
def _transpose_sums(sums, Cp, Wr, of, n, C_out, Ho, Wo, bias):
    # out[n, c, ho, wo] = sums[(ho·Wr + wo)·Cp + c] (+ bias[c]), along runs of pixels that
    # lie in order in both (the whole image where Wr = Wo, else each row)
    P, y = Ho * Wo, n * C_out * Ho * Wo
    run, count = (P, 1) if Wr == Wo else (Wo, Ho)
    for h in range(count):
        _transpose(sums, h * Wr * Cp, Cp, run, C_out, of, y + h * Wo, P)
    for c in range(C_out if bias.size else 0):
        yc, b = of[y + c * P:y + (c + 1) * P], bias[c]
        for i in range(P):          # (indices from 0: vectorized, no wrap-around checks)
            yc[i] += b


# The runs in parallel. Each run above is a plain serial function, compiled once per dtype
# as a C function (through an adapter of flat pointers), which one small parallel loop,
# _runs, calls through its address. (As the parallel loop's own body, Numba's parallel
# passes took 4-5 s more to compile each, and would compile again whatever it calls.)
# An adapter's arguments: t, six float arrays, three intp arrays and z, an intp array of
# the run's sizes and scalars in the order its line of comment gives.

def _implicit_c(t, src, w_pack, bias, out, work, f5, offsets, cuts, at, z):
    # z: N, Cs, Hs, Ws, C_out, Ho, Wo, qh, qw, kc, K, w_pack size, cuts, bias size, runs,
    #    row, nr
    s = carray(z, 17)
    _implicit_run(t, carray(src, (s[0], s[1], s[2], s[3])), s[7], s[8], carray(offsets, s[10]),
                  carray(w_pack, s[11]), s[16], s[9], carray(cuts, (s[12], 2)),
                  carray(bias, s[13]), carray(out, (s[0], s[4], s[5], s[6])),
                  carray(work, (s[14], s[15])), carray(at, 3))


def _implicit_weight_c(t, src, g, partial, work, f4, f5, pixels, cuts, at, z):
    # z: N, Cs, Hs, Ws, C_out, Q, qh, qw, kc, cuts, runs, rows of partial, Cp, row, nr
    s = carray(z, 15)
    _implicit_weight_run(t, carray(src, (s[0], s[1], s[2], s[3])), s[6], s[7],
                         carray(g, (s[0], s[4], s[5])), carray(pixels, s[5]), s[14], s[8],
                         carray(cuts, (s[9], 2)), carray(partial, (s[10], s[11], s[12])),
                         carray(work, (s[10], s[13])), carray(at, 3))


def _image_c(t, image, grad, w2, bias, out, work, at, i1, i2, z):
    # z: part, step, N, C, H, W, (grad's shape) Ng, Cg, Hg, Wg, C_out, K, bias size, out
    #    size, kh, kw, sh, sw, ph, pw, Ho, Wo, i_hi, j_hi, kc, runs, row
    s = carray(z, 27)
    _image_run(t, s[0], s[1], carray(image, (s[2], s[3], s[4], s[5])),
               carray(grad, (s[6], s[7], s[8], s[9])), carray(w2, (s[10], s[11])),
               carray(bias, s[12]), carray(out, s[13]), s[14], s[15], s[16], s[17], s[18],
               s[19], s[20], s[21], s[22], s[23], s[24], carray(work, (s[25], s[26])),
               carray(at, 5))


def _c_signature(dtype):
    """An adapter's C signature: (t, six dtype*, four intp*) -> void."""
    f, i = types.CPointer(dtype), types.CPointer(types.intp)
    return types.void(types.intp, *[f] * 6, *[i] * 4)


_run_at = _mm.function_at(_c_signature)

# The adapters' cache entries carry cpu_matmul.VERSION in their names: the intrinsics
# built into them come from there, and Numba's cache notices edits to this file only.
for _adapter in (_implicit_c, _implicit_weight_c, _image_c):
    _adapter.__qualname__ = f"{_adapter.__name__}_{_mm.VERSION}"


@njit(parallel=True, cache=True, nogil=True)
def _runs(version, run, runs, f0, f1, f2, f3, f4, f5, i0, i1, i2, z):
    # runs t = 0 .. runs-1 of the C function at `run`, one per thread of Numba's pool (the
    # matmul's and the elementwise kernels' pool, awake between kernels). version:
    # cpu_matmul.VERSION as a literal type (this too builds in intrinsics from there).
    literally(version)
    for t in prange(runs):
        _run_at(run, f0)(np.intp(t), _mm._data(f0), _mm._data(f1), _mm._data(f2),
                         _mm._data(f3), _mm._data(f4), _mm._data(f5), _mm._data(i0),
                         _mm._data(i1), _mm._data(i2), _mm._data(z))


def _start(adapter, runs, floats, ints, z):
    """Runs 0 .. runs-1 of adapter (its C function) in parallel by _runs: floats and ints
    its float and intp arrays, C-contiguous (padded to six and three with empty ones), z
    its sizes and scalars. Every array goes flat: one compiled loop per dtype."""
    dtype = floats[0].dtype
    floats = [a.reshape(-1) for a in floats] + [np.empty(0, dtype)] * (6 - len(floats))
    ints = [a.reshape(-1) for a in ints] + [np.empty(0, np.intp)] * (3 - len(ints))
    args = (_mm.c_address(adapter, _c_signature, dtype), runs, *floats, *ints,
            np.array(z, dtype=np.intp))
    # _runs compiled for these argument types, found by a key that is cheap to make
    # (numba.typeof takes ~10 us an array: most of a small convolution's Python cost)
    key = tuple((a.dtype, a.flags.writeable) if isinstance(a, np.ndarray) else type(a)
                for a in args)
    loop = _compiled.get(key)
    if loop is None:       # compiled (or loaded from the cache) once per signature
        sig = (types.literal(_mm.VERSION),) + tuple(typeof(a) for a in args)
        loop = _compiled[key] = _runs.compile(sig)
    loop(_mm.VERSION, *args)


_compiled = {}


def _implicit(src, pads, w2, out, window, nr, bias=None):
    """out = the valid correlation of src framed by pads with the weights w2 (C_out,
    C_src·kh·kw), stride 1, by _implicit_run in tiles nr channels wide, with its workspace."""
    (kh, kw), (qh, qw) = window, pads
    N, Cs, Hs, Ws = src.shape
    C_out, K = w2.shape
    Hf, Wf = Hs + 2 * qh, Ws + 2 * qw
    Cp, kc = -(-C_out // nr) * nr, -(-K // -(-K // IMPLICIT_KC))      # K in equal blocks
    cuts = cut(out.shape[3])
    wide = np.zeros((Cp, K), src.dtype)
    wide[:C_out] = w2
    w_pack = np.concatenate([wide[:, k0:k0 + kc].reshape(Cp // nr, nr, -1).transpose(0, 2, 1)
                             .reshape(-1) for k0 in range(0, K, kc)])
    c, i, j = np.ogrid[:Cs, :kh, :kw]
    offsets = (c * Hf * Wf + i * Wf + j).reshape(-1).astype(np.intp)
    Wr = int(cuts[-1, 0] + cuts[-1, 1])
    work, at = _workspace(src.dtype, Cs * Hf * Wf + Wr - out.shape[3], out.shape[2] * Wr * Cp)
    bias = np.zeros(0, src.dtype) if bias is None else np.ascontiguousarray(bias, src.dtype)
    _start(_implicit_c, work.shape[0], (src, w_pack, bias, out, work),
           (offsets, cuts, np.array(at)), (*src.shape, C_out, *out.shape[2:], qh, qw, kc, K,
                                           w_pack.size, len(cuts), bias.size, *work.shape, nr))


def _implicit_weight(x, g, w_shape, padding, nr):
    """d loss / d w (C_out, C, kh, kw) for stride 1 by _implicit_weight_run, nr channels
    a tile."""
    (C_out, C, kh, kw), (N, _, Ho, Wo), (qh, qw) = w_shape, g.shape, padding
    Hf, Wf, Q = x.shape[2] + 2 * qh, x.shape[3] + 2 * qw, Ho * Wo
    Cp, kc, cuts = -(-C_out // nr) * nr, -(-Q // -(-Q // IMPLICIT_KC)), cut(kw)
    Wk = int(cuts[-1, 0] + cuts[-1, 1])
    ho, wo = np.ogrid[:Ho, :Wo]
    pixels = (ho * Wf + wo).reshape(-1).astype(np.intp)
    partial = np.empty((_mm._threads(), C * kh * Wk, Cp), g.dtype)       # one per run
    work, at = _workspace(g.dtype, C * Hf * Wf + Wk - kw, Cp * Q)
    _start(_implicit_weight_c, work.shape[0], (x, g, partial, work), (pixels, cuts, np.array(at)),
           (*x.shape, C_out, Q, qh, qw, kc, len(cuts), *partial.shape, work.shape[1], nr))
    dw_t = partial.sum(axis=0).reshape(C, kh, Wk, Cp)[:, :, :kw, :C_out]
    return np.ascontiguousarray(dw_t.transpose(3, 0, 1, 2))


def _implicit_width(channels, stride, dtype):
    """The tiles' width (channels) for the implicit GEMM of a product of `channels` output
    channels (the output's, or the input's for dx): NR, else NR/2, the first whose slivers
    the channels fill to >= 80 %; 0 where neither does or the stride is not 1. (The callers
    add: forward and dx K >= IMPLICIT_MIN_K taps, dx a frame of padding >= 0, dW kernel
    rows cut with <= 25 % of the taps dropped.)"""
    nr = _mm.VECTOR_BYTES // np.dtype(dtype).itemsize
    for width in (nr, nr // 2) if IMPLICIT and tuple(stride) == (1, 1) else ():
        if 5 * channels >= 4 * -(-channels // width) * width:
            return width
    return 0


def _run(step, image, grad, w2, out, window, stride, padding, Ho, Wo, bias=None):
    """_image_run with its workspace: per thread the patch matrix P (K x Ho·Wo), the two
    packs (their sizes follow the step's product) and the zero-bordered canvas."""
    C_out, K = w2.shape
    (sh, sw), (ph, pw), P = stride, padding, Ho * Wo
    M, inner, cols = {FORWARD: (C_out, K, P), INPUT_GRAD: (K, C_out, P),
                      WEIGHT_GRAD: (C_out, P, K)}[step]
    i_hi, j_hi = _mm.tiles(M, cols, image.dtype)
    kc = _mm.kc_for(inner)
    a_size = _mm.MC * kc if step == WEIGHT_GRAD else i_hi * inner      # W's slivers kept whole
    p_rows = j_hi if step == WEIGHT_GRAD else K                   # see _image_run
    work, at = _workspace(image.dtype, p_rows * P, a_size, j_hi * kc,
                          _frame_size(image.shape, ph, pw))
    bias = np.zeros(0, image.dtype) if bias is None else np.ascontiguousarray(bias, image.dtype)
    _start(_image_c, work.shape[0], (image, grad, w2, bias, out, work), (np.array(at),),
           (_mm._part_address(image.dtype), step, *image.shape, *grad.shape, C_out, K,
            bias.size, out.size, *window, sh, sw, ph, pw, Ho, Wo, i_hi, j_hi, kc, *work.shape))


def conv2d_forward(x, w, stride, padding, bias=None):
    """x (N,C,H,W) * w (C_out,C,kh,kw) (+ bias (C_out,)) -> y (N,C_out,Ho,Wo), stride and
    padding as (h, w) pairs."""
    N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x.shape, w.shape, stride, padding)
    x = np.ascontiguousarray(x)
    y = _mm.empty((N, C_out, Ho, Wo), x.dtype)
    nr = _implicit_width(C_out, stride, x.dtype)
    if nr and C * kh * kw >= IMPLICIT_MIN_K:
        _implicit(x, padding, _weights(w, x.dtype), y, (kh, kw), nr, bias)
    else:
        _run(FORWARD, x, x[:0], _weights(w, x.dtype), y, (kh, kw), stride, padding, Ho, Wo,
             bias)
    return y


def conv2d_backward_input(g, w, x_shape, stride, padding):
    """d loss / d x (N,C,H,W) from g = d loss / d y (N,C_out,Ho,Wo)."""
    N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x_shape, w.shape, stride, padding)
    g = np.ascontiguousarray(g)
    dx = np.empty(x_shape, dtype=g.dtype)        # every pixel is written once
    flipped = (kh - 1 - ph, kw - 1 - pw)         # g's frame for the transposed correlation
    nr = _implicit_width(C, stride, g.dtype)
    if nr and C_out * kh * kw >= IMPLICIT_MIN_K and min(flipped) >= 0:
        w_t = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]        # W'[c, o, i, j] = W[o, c, -i, -j]
        _implicit(g, flipped, w_t.reshape(C, -1), dx, (kh, kw), nr)
    else:
        _run(INPUT_GRAD, dx, g, _weights(w, g.dtype), dx[:0], (kh, kw), stride, padding, Ho, Wo)
    return dx


def conv2d_backward_weight(g, x, w_shape, stride, padding):
    """d loss / d w (C_out,C,kh,kw) from g (N,C_out,Ho,Wo) and the input x (N,C,H,W)."""
    N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x.shape, w_shape, stride, padding)
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x, g.dtype)
    K = C * kh * kw
    nr = _implicit_width(C_out, stride, g.dtype)
    if nr and cut(kw)[-1].sum() * 4 <= kw * 5:
        return _implicit_weight(x, g, w_shape, padding, nr)
    Kp = _mm.tiles(C_out, K, g.dtype)[1]         # K in whole slivers (see _image_run)
    partial = np.zeros((_mm._threads(), C_out, Kp), dtype=g.dtype)   # one per run
    _run(WEIGHT_GRAD, x, g, np.empty((C_out, K), g.dtype), partial, (kh, kw),
         stride, padding, Ho, Wo)
    dw = np.empty(w_shape, g.dtype)        # its own memory (not a view): backward adopts it
    partial[:, :, :K].sum(axis=0, out=dw.reshape(C_out, -1))
    return dw


def _weights(w, dtype):
    return np.ascontiguousarray(w, dtype).reshape(w.shape[0], -1)     # (C_out, C·kh·kw)


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _bias_grad_kernel(g, db):
    # db[c] = sum over n, p of g[n, c, p], channels split over the threads: each run of
    # Ho*Wo summed in g's dtype (fastmath lets LLVM split it over vector lanes), the runs'
    # sums added in float64 (a channel can gather 10^5-10^6 terms)
    N, C, P = g.shape
    for c in prange(C):
        total = 0.0
        for n in range(N if P else 0):
            run = g[n, c, 0] * 0
            for p in range(P):
                run += g[n, c, p]
            total += run
        db[c] = total


def conv2d_backward_bias(g):
    """d loss / d bias (C_out,) from g (N,C_out,Ho,Wo): g summed over the batch and pixels."""
    N, C_out = g.shape[:2]
    db = np.empty(C_out, dtype=g.dtype)
    _bias_grad_kernel(np.ascontiguousarray(g).reshape(N, C_out, -1), db)
    return db


def prefer_direct(x_shape, w_shape, stride, padding, itemsize=4):
    """True where conv2d_forward & co. are the better rung for this shape.

    Measured (benchmarks/bench_conv.py, Sapphire Rapids, 2 threads, batch 128, 5x5 convs
    on 28x28 and 14x14 inputs with 1-32 channels in, 16-64 out): fwd+bwd 1.2-2.1x faster
    than im2col + matmul. The rule keeps what those runs cover: every thread gets at
    least one image (the batch is what this rung splits), and one image's patch matrix
    (C*kh*kw x Ho*Wo) fits in a few L2s (it is meant to stay in cache; LeNet's second
    conv: 627 KiB). Elsewhere, e.g. batch 1 or large images, rung 1 runs."""
    N, C, H, W = x_shape
    _, _, kh, kw = w_shape
    Ho, Wo = _out_size(H, W, kh, kw, stride, padding)
    patch_bytes = C * kh * kw * Ho * Wo * itemsize
    return N >= _mm._threads() and patch_bytes <= 4 * _mm.L2_BYTES
