"""Convolution on the CPU, second rung: image by image, patches kept in cache.

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
(cpu_matmul._gemm_part), which packs P into the micro-kernel's panels straight
from the cached patch matrix. The batch is split into one run of images per
thread (tinydeep.threads.team); each thread has its own patch buffer and, for
dW, its own partial sum, added up at the end.

prefer_direct(...) says, by shape, where this rung beats rung 1 (measured:
benchmarks/bench_conv.py).
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import threads as _threads_module
from . import cpu_matmul as _mm

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
           "conv2d_backward_bias", "prefer_direct", "output_size"]


def output_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


SHORT_BYTES = 64     # one short run: 16 float32 / 8 float64, one AVX-512 register (two AVX2)


def _short_run(add):
    """An intrinsic for dst[dst_at + t] (+)= src[src_at + t], t < n <= one 64-byte run, as one
    masked vector load and store (llvm.masked.load/store). Rows of a small image (14 or 28
    pixels) are too short for LLVM's vectorized loops, which then run element by element."""
    @intrinsic
    def run(typingctx, src, src_at, dst, dst_at, n):
        sig = types.void(src, types.intp, dst, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            src, src_at, dst, dst_at, n = args
            src_type, _, dst_type, _, _ = signature.args
            bits = src_type.dtype.bitwidth
            lanes = SHORT_BYTES * 8 // bits
            vec = ir.VectorType(context.get_value_type(src_type.dtype), lanes)
            index = ir.VectorType(n.type, lanes)
            i32 = ir.IntType(32)
            one = builder.insert_element(ir.Constant(index, ir.Undefined), n, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(one, ir.Constant(index, ir.Undefined),
                                           ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
            mask = builder.icmp_signed("<", ir.Constant(index, list(range(lanes))), splat)
            vp = vec.as_pointer()
            name = f"v{lanes}f{bits}.p0v{lanes}f{bits}"
            load = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vp, i32, mask.type, vec]),
                f"llvm.masked.load.{name}")
            store = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [vec, vp, i32, mask.type]),
                f"llvm.masked.store.{name}")
            align = ir.Constant(i32, bits // 8)
            zero = ir.Constant(vec, [0.0] * lanes)
            s_ptr = builder.bitcast(builder.gep(
                context.make_array(src_type)(context, builder, src).data, [src_at]), vp)
            d_ptr = builder.bitcast(builder.gep(
                context.make_array(dst_type)(context, builder, dst).data, [dst_at]), vp)
            value = builder.call(load, [s_ptr, align, mask, zero])
            if add:
                value = builder.fadd(value, builder.call(load, [d_ptr, align, mask, zero]))
            builder.call(store, [value, d_ptr, align, mask])
            return context.get_dummy_value()

        return sig, codegen
    return run


_copy_short = _short_run(add=False)
_add_short = _short_run(add=True)


@intrinsic
def _short_lanes(typingctx, x):
    """Elements in one short run for x's dtype, as a compile-time constant."""
    n = SHORT_BYTES * 8 // x.dtype.bitwidth
    return types.intp(x), lambda context, builder, sig, args: context.get_constant(types.intp, n)


@njit(cache=True, nogil=True)
def _unfold(x, n, kh, kw, sh, sw, ph, pw, Ho, Wo, p):
    # p[(c, i, j), ho*Wo + wo] = x[n, c, ho*sh - ph + i, wo*sw - pw + j], 0 outside the image.
    # For each tap (c, i, j) the output columns wo whose input column lies inside the
    # image form one range [lo, hi): zeros, a strided (stride 1: contiguous) copy, zeros.
    # Flat unsigned indices: no slices and no wrap-around checks in the inner loops.
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    xf, pf = x.reshape(-1), p.reshape(-1)
    P, L = Ho * Wo, _short_lanes(x)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                row = ((c * kh + i) * kw + j) * P
                lo = max(0, (pw - j + sw - 1) // sw)            # first wo with wo*sw - pw + j >= 0
                hi = max(lo, min(Wo, (W - 1 + pw - j) // sw + 1))   # past the last with it < W
                for ho in range(Ho):
                    h = ho * sh - ph + i
                    dst = np.uint64(row + ho * Wo)
                    if h < 0 or h >= H:
                        for wo in range(np.uint64(Wo)):
                            pf[dst + wo] = 0
                        continue
                    at = ((n * C + c) * H + h) * W + lo * sw - pw + j
                    src = np.uint64(at)
                    for wo in range(np.uint64(lo)):
                        pf[dst + wo] = 0
                    if sw == 1:
                        for t in range(0, hi - lo, L):
                            _copy_short(xf, at + t, pf, row + ho * Wo + lo + t,
                                        min(L, hi - lo - t))
                    else:
                        for wo in range(np.uint64(hi - lo)):
                            pf[dst + lo + wo] = xf[src + wo * sw]
                    for wo in range(np.uint64(hi), np.uint64(Wo)):
                        pf[dst + wo] = 0


@njit(cache=True, nogil=True)
def _fold(dp, n, kh, kw, sh, sw, ph, pw, Ho, Wo, dx):
    # dx[n, c, h, w] += dp[(c, i, j), ho*Wo + wo] wherever h = ho*sh - ph + i, w = wo*sw - pw + j:
    # the adjoint of _unfold (same ranges, add instead of copy).
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    df, pf = dx.reshape(-1), dp.reshape(-1)
    P, L = Ho * Wo, _short_lanes(dx)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                row = ((c * kh + i) * kw + j) * P
                lo = max(0, (pw - j + sw - 1) // sw)
                hi = max(lo, min(Wo, (W - 1 + pw - j) // sw + 1))
                for ho in range(Ho):
                    h = ho * sh - ph + i
                    if h < 0 or h >= H:
                        continue
                    at_p = row + ho * Wo + lo
                    at_x = ((n * C + c) * H + h) * W + lo * sw - pw + j
                    src, dst = np.uint64(at_p), np.uint64(at_x)
                    if sw == 1:
                        for t in range(0, hi - lo, L):
                            _add_short(pf, at_p + t, df, at_x + t, min(L, hi - lo - t))
                    else:
                        for wo in range(np.uint64(hi - lo)):
                            df[dst + wo * sw] += pf[src + wo]


def _geometry(x_shape, w_shape, stride, padding):
    (N, C, H, W), (C_out, _, kh, kw) = x_shape, w_shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    return N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo


def _image_runs(N, threads):
    """[(n0, n1), ...]: the batch cut into at most `threads` runs of whole images."""
    parts = max(1, min(N, threads))
    return [(t * N // parts, (t + 1) * N // parts) for t in range(parts)]


class _Product:
    """The packed kernel's per-part call for c (M,N) (+)= a (M,K) @ b (K,N), over the whole
    of c, on this thread (its own workspace). keep_a: a is the same in every call (the
    weights): its packed slivers are made in the first call and reused after."""

    def __init__(self, M, K, N, dtype, keep_a=False):
        self.M, self.K, self.N = M, K, N
        nr = _mm.VECTOR_BYTES // np.dtype(dtype).itemsize
        self.kc = -(-K // -(-K // _mm.KC))
        self.i_hi, self.j_hi = -(-M // _mm.MR) * _mm.MR, -(-N // nr) * nr
        a_size = self.i_hi * K if keep_a else _mm.MC * self.kc
        work = np.empty(a_size + self.j_hi * self.kc + _mm.VECTOR_BYTES, dtype=dtype)
        skip = (-work.ctypes.data % _mm.VECTOR_BYTES) // work.itemsize    # vector-aligned
        self.a_pack = work[skip:skip + a_size]
        self.b_pack = work[skip + a_size:skip + a_size + self.j_hi * self.kc]
        self.a_mode = 1 if keep_a else 0

    def __call__(self, a, b, c, add=False):
        a_flat, a_rs, a_cs = _mm._flat(a)
        b_flat, b_rs, b_cs = _mm._flat(b)
        _mm._gemm_call(_mm._part_address(c.dtype), a_flat, a_rs, a_cs, b_flat, b_rs, b_cs,
                       c.reshape(-1), self.M, self.K, self.N, 0, self.i_hi, 0, self.j_hi,
                       self.kc, self.a_pack, self.b_pack, add, self.a_mode)
        if self.a_mode == 1:
            self.a_mode = 2


def conv2d_forward(x, w, stride, padding, bias=None):
    """x (N,C,H,W) * w (C_out,C,kh,kw) (+ bias (C_out,)) -> y (N,C_out,Ho,Wo), stride and
    padding as (h, w) pairs."""
    N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x.shape, w.shape, stride, padding)
    x = np.ascontiguousarray(x)
    w2 = np.ascontiguousarray(w).reshape(C_out, C * kh * kw)
    y = _mm.empty((N, C_out, Ho, Wo), x.dtype)
    K, P = C * kh * kw, Ho * Wo

    def run(n0, n1):
        p = np.empty((K, P), dtype=x.dtype)
        product = _Product(C_out, K, P, x.dtype, keep_a=True)
        for n in range(n0, n1):
            _unfold(x, n, kh, kw, sh, sw, ph, pw, Ho, Wo, p)
            product(w2, p, y[n].reshape(C_out, P))
            if bias is not None:
                y[n] += bias[:, None, None]

    _run(run, N)
    return y


def conv2d_backward_input(g, w, x_shape, stride, padding):
    """d loss / d x (N,C,H,W) from g = d loss / d y (N,C_out,Ho,Wo)."""
    N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x_shape, w.shape, stride, padding)
    g = np.ascontiguousarray(g)
    w2t = np.ascontiguousarray(w).reshape(C_out, C * kh * kw).T      # (K, C_out) view
    dx = np.zeros(x_shape, dtype=g.dtype)
    K, P = C * kh * kw, Ho * Wo

    def run(n0, n1):
        dp = np.empty((K, P), dtype=g.dtype)
        product = _Product(K, C_out, P, g.dtype, keep_a=True)
        for n in range(n0, n1):
            product(w2t, g[n].reshape(C_out, P), dp)
            _fold(dp, n, kh, kw, sh, sw, ph, pw, Ho, Wo, dx)

    _run(run, N)
    return dx


def conv2d_backward_weight(g, x, w_shape, stride, padding):
    """d loss / d w (C_out,C,kh,kw) from g (N,C_out,Ho,Wo) and the input x (N,C,H,W)."""
    N, C, C_out, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x.shape, w_shape, stride, padding)
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    K, P = C * kh * kw, Ho * Wo
    runs = _image_runs(N, _mm._threads())
    partial = np.zeros((len(runs), C_out, K), dtype=g.dtype)

    def run(n0, n1, out):
        p = np.empty((K, P), dtype=x.dtype)
        product = _Product(C_out, P, K, g.dtype)
        for n in range(n0, n1):
            _unfold(x, n, kh, kw, sh, sw, ph, pw, Ho, Wo, p)
            product(g[n].reshape(C_out, P), p.T, out, add=n > n0)

    _threads_module.team.run([lambda r=r, out=out: run(r[0], r[1], out)
                              for r, out in zip(runs, partial)], len(runs))
    dw = partial[0]
    for more in partial[1:]:
        dw += more
    return dw.reshape(w_shape)


@njit(cache=True, nogil=True, fastmath=True)
def _bias_grad_kernel(g, db):
    # db[c] = sum over n, p of g[n, c, p]: each run of Ho*Wo summed in g's dtype (fastmath
    # lets LLVM split it over vector lanes), the runs' sums added in float64 (a channel
    # can gather 10^5-10^6 terms)
    N, C, P = g.shape
    db[:] = 0
    if P == 0:
        return
    for c in range(C):
        total = 0.0
        for n in range(N):
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


def _run(run, N):
    runs = _image_runs(N, _mm._threads())
    _threads_module.team.run([lambda r=r: run(*r) for r in runs], len(runs))


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
    Ho = output_size(H, kh, stride[0], padding[0])
    Wo = output_size(W, kw, stride[1], padding[1])
    patch_bytes = C * kh * kw * Ho * Wo * itemsize
    return N >= _mm._threads() and patch_bytes <= 4 * _mm.L2_BYTES
