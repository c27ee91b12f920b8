"""Affine grids and bilinear sampling as Numba CPU kernels.

The meaning (PyTorch's `affine_grid` / `grid_sample`, bilinear, padding
'zeros' or 'border') is defined and explained in `reference_sampling.py`;
these kernels compute the same numbers.

Both align_corners conventions unnormalize a coordinate the same way, only
scale and offset differ (for x and width W; y uses H):

    ix = (x + 1) * s + o,    s = W / 2,        o = -1/2   (align_corners=False)
                             s = (W - 1) / 2,  o = 0      (align_corners=True)

which is ((x+1)W - 1)/2, resp. (x+1)/2 (W-1), rearranged as PyTorch's CPU
kernel does, in the grid's own dtype: so a point that lands exactly on a pixel
centre (where the derivative jumps) lands there for both; d ix / dx = s.

Bilinear sampling, as in the reference: x0 = floor(ix), tx = ix - x0 (same
for y), v_ab = pixel (y0 + a, x0 + b), out = sum of weight_ab * v_ab with

    weight:   w00 = (1-tx)(1-ty)   w01 = tx(1-ty)   w10 = (1-tx) ty   w11 = tx ty
    d / d ix:     -(1-ty)              (1-ty)           -ty               ty
    d / d iy:     -(1-tx)              -tx              (1-tx)            tx

so  out          = (1-ty) ((1-tx) v00 + tx v01) + ty ((1-tx) v10 + tx v11)
    d out / d ix = (1-ty) (v01 - v00) + ty (v11 - v10)
    d out / d iy = (1-tx) (v10 - v00) + tx (v11 - v01)
and the image gradient sends grad * w_ab to pixel (y0 + a, x0 + b).

Zero frame. The kernels read from a copy of the image with PAD = 2 zero
pixels around each plane, and clamp ix into [-2, W] ('zeros') or [0, W-1]
('border'). Then all four taps of every point lie inside the copy, a tap
outside the image reads 0 -- exactly 'zeros' padding, for the value and for
the derivatives above -- and the inner loops need no bound tests or masks.
A point clamped in 'zeros' mode is more than one pixel outside, so all its
taps read 0 and its derivative is 0, as it should be. 'border' clamps where
PyTorch does and zeroes d ix/dx there, edges included.

Parallel plan. Work items are (sample n, band s of its output rows): one
per sample when there are at least as many samples as threads, else S bands
per sample so that every thread has work. An item frames its sample's image
into a buffer of its own (cache-hot while it samples from it) and handles
its band. The forward pass and the grid gradient write disjoint outputs per
item. The image gradient is a scatter -- two output points may add to the
same input pixel -- so each item adds into a private framed buffer: with
S = 1 the item crops it into d_image itself; with S > 1 the S buffers of a
sample are summed (and cropped) afterwards. One parallel region per call
(two for the backward pass when S > 1): on a busy machine, waking the
thread pool is what costs.
"""
import functools

import numba
import numpy as np
from numba import njit, prange

from .reference_sampling import PADDING_MODES, base_coords, check_padding_mode

__all__ = ["affine_grid", "affine_grid_backward", "bilinear_sample",
           "bilinear_sample_backward", "PADDING_MODES"]


# ---------------------------------------------------------------- affine grid

@njit(parallel=True, cache=True)
def _affine_grid_kernel(theta, xs, ys, grid):
    # grid[n, h, w] = theta[n] @ (x_w, y_h, 1)
    N, H, W, _ = grid.shape
    for row in prange(N * H):
        n, h = row // H, row % H
        for i in range(2):
            a, b, c = theta[n, i, 0], theta[n, i, 1], theta[n, i, 2]
            by = b * ys[h] + c
            for w in range(W):
                grid[n, h, w, i] = a * xs[w] + by


def theta_row_grad(grad_grid, n, i, xs, ys):
    """d theta[n, i] = Σ_{h,w} grad[n, h, w, i] · (x_w, y_h, 1), summed in float64; the
    CPU's and (as a device function) the GPU's affine_grid backward, one (n, i) a call."""
    dx = 0.0
    dy = 0.0
    d1 = 0.0
    for h in range(grad_grid.shape[1]):
        row = 0.0
        for w in range(grad_grid.shape[2]):
            g = grad_grid[n, h, w, i]
            dx += g * xs[w]
            row += g
        dy += row * ys[h]
        d1 += row
    return dx, dy, d1


_theta_row_grad = njit(inline="always")(theta_row_grad)


@njit(parallel=True, cache=True)
def _affine_grid_backward_kernel(grad_grid, xs, ys, d_theta):
    for item in prange(grad_grid.shape[0] * 2):
        n, i = item // 2, item % 2
        d_theta[n, i, 0], d_theta[n, i, 1], d_theta[n, i, 2] = _theta_row_grad(grad_grid, n, i,
                                                                                xs, ys)


def affine_grid(theta, H, W, align_corners):
    """theta (N,2,3) -> grid (N,H,W,2)."""
    theta = np.ascontiguousarray(theta)
    grid = np.empty((theta.shape[0], H, W, 2), dtype=theta.dtype)
    _affine_grid_kernel(theta, base_coords(W, align_corners, theta.dtype),
                        base_coords(H, align_corners, theta.dtype), grid)
    return grid


def affine_grid_backward(grad_grid, align_corners):
    """grad_grid (N,H,W,2) -> d theta (N,2,3)."""
    grad_grid = np.ascontiguousarray(grad_grid)
    N, H, W, _ = grad_grid.shape
    d_theta = np.empty((N, 2, 3), dtype=grad_grid.dtype)
    _affine_grid_backward_kernel(grad_grid, base_coords(W, align_corners, np.float64),
                                 base_coords(H, align_corners, np.float64), d_theta)
    return d_theta


# ----------------------------------------------------------- bilinear sample
#
# Output points are done a block at a time (a few output rows of one sample,
# about POINTS_PER_BLOCK points), in two steps. Step 1 (_taps) turns the
# block's grid points into, per point k, the offset of its top-left tap in a
# framed plane and the fractions tx, ty: a loop with no gathers and no
# branches, which LLVM vectorizes (and blocks longer than one short row keep
# the vector part busy). Step 2 walks the channels and, inside, the block:
# four loads and a few multiply-adds per point, one channel plane at a time.
#
# Both sampling kernels compile with fastmath={"contract"} and nothing else:
# LLVM may fuse a * b + c into one multiply-add (one rounding, not two). The
# scalar loops of step 2 are bound by their instruction count; fused, they ran
# about 10% faster here. NaN and inf inputs propagate as before.

PAD = 2                  # zero pixels on each side: taps x0, x0 + 1 for x0 in [-2, W]
POINTS_PER_BLOCK = 512


@njit(inline="always")
def _frame(image_n, framed):
    # framed[c, PAD + h, PAD + w] = image_n[c, h, w]. The frame itself is zeroed
    # once, when the buffer is made (np.zeros), and no item writes there.
    C, H, W = image_n.shape
    for c in range(C):
        for h in range(H):
            src, dst = image_n[c, h], framed[c, PAD + h]
            for w in range(W):
                dst[PAD + w] = src[w]


@njit(parallel=True, cache=True)
def _crop_sum_kernel(parts, out):
    # out[n, c] = sum over s of parts[n * S + s, c] without its zero frame
    N, C, H, W = out.shape
    S = parts.shape[0] // N
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for h in range(H):
            out_row = out[n, c, h]
            out_row[:] = parts[n * S, c, PAD + h, PAD:PAD + W]
            for s in range(1, S):
                out_row += parts[n * S + s, c, PAD + h, PAD:PAD + W]


@njit(inline="always")
def _clamp_keep_nan(x, lo, hi):
    # written as selects, not min/max (Numba's min/max do not vectorize)
    x = lo if x < lo else x
    return hi if x > hi else x


@njit(inline="always")
def _clamp_drop_nan(x, lo, hi):
    x = x if x > lo else lo                      # NaN -> lo
    return x if x < hi else hi


@njit(inline="always")
def _limits(T, size, border):
    """(lo, hi, glo, ghi) in dtype T: the clamp range of a pixel coordinate and
    the open range where it passes gradient (see "Zero frame" above)."""
    if border:
        return T(0), T(size - 1), T(0), T(size - 1)
    return T(-PAD), T(size), T(-np.inf), T(np.inf)


@njit(inline="always")
def _taps(g, Wf, sx, ox, sy, oy, xlim, ylim, off, tx, ty, dx, dy, slopes):
    # Step 1. g holds grid points flattened (x, y, x, y, ...). For point k:
    #   off[k]  = offset of tap (y0, x0) in a framed plane (row length Wf)
    #   tx, ty  = ix - x0, iy - y0
    #   dx, dy  = d ix/dx, d iy/dy (0 where 'border' clamps); only if slopes
    # All arithmetic stays in the grid's dtype T (8 float32 lanes per AVX2
    # instruction), the offset too: whole numbers below Hf * Wf, exact in T
    # (see _taps_grid). A NaN coordinate gives tx or ty = NaN (so a NaN
    # output) and a safe offset.
    T = g.dtype.type
    xlo, xhi, xglo, xghi = xlim
    ylo, yhi, yglo, yghi = ylim
    for k in range(g.shape[0] // 2):
        ix = (g[2 * k] + T(1)) * sx + ox
        iy = (g[2 * k + 1] + T(1)) * sy + oy
        if slopes:                                   # a compile-time constant
            dx[k] = sx if (ix > xglo) & (ix < xghi) else T(0)
            dy[k] = sy if (iy > yglo) & (iy < yghi) else T(0)
        ix, iy = _clamp_keep_nan(ix, xlo, xhi), _clamp_keep_nan(iy, ylo, yhi)
        x0, y0 = np.floor(ix), np.floor(iy)
        tx[k], ty[k] = ix - x0, iy - y0
        col = _clamp_drop_nan(x0, T(-PAD), xhi) + T(PAD)
        row = _clamp_drop_nan(y0, T(-PAD), yhi) + T(PAD)
        off[k] = np.uint32(np.int32(row * T(Wf) + col))


@njit(parallel=True, cache=True, fastmath={"contract"})
def _sample_kernel(image, grid, sx, ox, sy, oy, border, S, rows_per_block, n_chunks, out):
    # out[n,c,h,w] = (1-ty)((1-tx) v00 + tx v01) + ty((1-tx) v10 + tx v11)
    N, C, H, W = image.shape
    Hf, Wf = H + 2 * PAD, W + 2 * PAD
    Ho, Wo = grid.shape[1], grid.shape[2]
    points = grid.reshape(N, Ho * Wo * 2)
    out_planes = out.reshape(N, C, Ho * Wo)
    T = grid.dtype.type
    xlim, ylim = _limits(T, W, border), _limits(T, H, border)
    block = max(rows_per_block * Wo, 1)               # points per block (>= 1: a range step)
    items = N * S
    for chunk in prange(n_chunks):
        # tap indices unsigned (no negative-index checks) and made here, in
        # the loop body, so that LLVM sees them as constants
        one, down = np.uint64(1), np.uint64(Wf)
        framed = np.zeros((C, Hf, Wf), dtype=image.dtype)
        planes = framed.reshape(C, Hf * Wf)
        off = np.empty(block, dtype=np.uint32)
        txs, tys = np.empty(block, dtype=T), np.empty(block, dtype=T)
        for item in range(chunk * items // n_chunks, (chunk + 1) * items // n_chunks):
            n, s = item // S, item % S
            _frame(image[n], framed)
            band_start, band_stop = (s * Ho // S) * Wo, ((s + 1) * Ho // S) * Wo
            for start in range(band_start, band_stop, block):
                stop = min(start + block, band_stop)
                _taps(points[n, 2 * start:2 * stop], Wf, sx, ox, sy, oy, xlim, ylim,
                      off, txs, tys, txs, tys, False)
                for c in range(C):
                    plane, out_c = planes[c], out_planes[n, c, start:stop]
                    for k in range(np.uint64(stop - start)):
                        i, tx, ty = np.uint64(off[k]), txs[k], tys[k]
                        j = i + down
                        out_c[k] = ((T(1) - ty) * ((T(1) - tx) * plane[i] + tx * plane[i + one])
                                    + ty * ((T(1) - tx) * plane[j] + tx * plane[j + one]))


@njit(inline="always")
def _backward_plane(plane, d_plane, grad_c, off, txs, tys, P, down, gx, gy, first):
    # Step 2 of the backward pass for one channel plane: the image gradient
    # (four scatters) and this channel's term of gx, gy, which the first
    # channel writes and the others add (`first` is a compile-time constant)
    T = plane.dtype.type
    one = np.uint64(1)
    for k in range(P):
        i, tx, ty, g = np.uint64(off[k]), txs[k], tys[k], grad_c[k]
        j = i + down
        v00, v01 = plane[i], plane[i + one]
        v10, v11 = plane[j], plane[j + one]
        ex = g * ((T(1) - ty) * (v01 - v00) + ty * (v11 - v10))
        ey = g * ((T(1) - tx) * (v10 - v00) + tx * (v11 - v01))
        if first:
            gx[k], gy[k] = ex, ey
        else:
            gx[k] += ex
            gy[k] += ey
        g0, g1 = (T(1) - ty) * g, ty * g       # w_ab * g, factored
        d_plane[i] += (T(1) - tx) * g0
        d_plane[i + one] += tx * g0
        d_plane[j] += (T(1) - tx) * g1
        d_plane[j + one] += tx * g1


@njit(parallel=True, cache=True, fastmath={"contract"})
def _sample_backward_kernel(image, grid, grad, sx, ox, sy, oy, border, S, rows_per_block,
                            n_chunks, parts, d_image, d_grid):
    # d image[n, c, y0 + a, x0 + b] += grad[n,c,h,w] * w_ab
    # d grid[n, h, w, 0] = dx * sum over c of grad * ((1-ty)(v01 - v00) + ty(v11 - v10))
    # d grid[n, h, w, 1] = dy * sum over c of grad * ((1-tx)(v10 - v00) + tx(v11 - v01))
    # (dx = d ix/dx: the chain rule through the unnormalization)
    # The image gradient goes to the framed buffer parts[chunk] (S = 1), cropped
    # into d_image here, or to parts[item] (S > 1), summed by _crop_sum_kernel.
    N, C, H, W = image.shape
    Hf, Wf = H + 2 * PAD, W + 2 * PAD
    Ho, Wo = grid.shape[1], grid.shape[2]
    grads = grad.reshape(N, C, Ho * Wo)
    points = grid.reshape(N, Ho * Wo * 2)
    d_points = d_grid.reshape(N, Ho * Wo * 2)
    T = grid.dtype.type
    xlim, ylim = _limits(T, W, border), _limits(T, H, border)
    block = max(rows_per_block * Wo, 1)
    items = N * S
    for chunk in prange(n_chunks):
        down = np.uint64(Wf)                       # as in _sample_kernel
        framed = np.zeros((C, Hf, Wf), dtype=image.dtype)
        planes = framed.reshape(C, Hf * Wf)
        off = np.empty(block, dtype=np.uint32)
        txs, tys = np.empty(block, dtype=T), np.empty(block, dtype=T)
        dxs, dys = np.empty(block, dtype=T), np.empty(block, dtype=T)
        gx, gy = np.empty(block, dtype=T), np.empty(block, dtype=T)   # sums over c
        for item in range(chunk * items // n_chunks, (chunk + 1) * items // n_chunks):
            n, s = item // S, item % S
            _frame(image[n], framed)
            d_framed = parts[chunk] if S == 1 else parts[item]
            d_framed[:] = 0
            d_planes = d_framed.reshape(C, Hf * Wf)
            band_start, band_stop = (s * Ho // S) * Wo, ((s + 1) * Ho // S) * Wo
            for start in range(band_start, band_stop, block):
                stop = min(start + block, band_stop)
                P = np.uint64(stop - start)
                _taps(points[n, 2 * start:2 * stop], Wf, sx, ox, sy, oy, xlim, ylim,
                      off, txs, tys, dxs, dys, True)
                if C == 0:
                    gx[:] = 0
                    gy[:] = 0
                for c in range(C):
                    plane, d_plane, grad_c = planes[c], d_planes[c], grads[n, c, start:stop]
                    if c == 0:                  # the channel sums start here
                        _backward_plane(plane, d_plane, grad_c, off, txs, tys, P, down, gx, gy, True)
                    else:
                        _backward_plane(plane, d_plane, grad_c, off, txs, tys, P, down, gx, gy, False)
                d_xy = d_points[n, 2 * start:2 * stop]
                for k in range(P):
                    d_xy[2 * k], d_xy[2 * k + 1] = gx[k] * dxs[k], gy[k] * dys[k]
            if S == 1:
                for c in range(C):
                    for h in range(H):
                        src, dst = d_framed[c, PAD + h], d_image[n, c, h]
                        for w in range(W):
                            dst[w] = src[PAD + w]


@functools.lru_cache(maxsize=256)
def unnormalization(H, W, align_corners, dtype):
    """(sx, ox, sy, oy) of ix = (x + 1) sx + ox, iy = (y + 1) sy + oy, in `dtype`."""
    t = np.dtype(dtype).type
    if align_corners:
        return t((W - 1) / 2), t(0), t((H - 1) / 2), t(0)
    return t(W / 2), t(-0.5), t(H / 2), t(-0.5)


def _dynamic(kernel, *args):
    """kernel(*args), its prange iterations handed out one at a time to whichever
    thread is free. (By default each thread gets an equal share up front, and one
    thread that the OS pauses -- on a busy machine -- holds up the whole call.)
    Set here, not in the kernels: there it would keep them out of the cache."""
    old = numba.set_parallel_chunksize(1)
    try:
        kernel(*args)
    finally:
        numba.set_parallel_chunksize(old)


def _taps_grid(grid, H, W):
    """The grid in a dtype that holds every tap offset exactly (whole numbers
    below the framed plane's size, computed by _taps in the grid's dtype):
    float32 does up to 2**24 (a 4092 x 4092 image), beyond that: float64."""
    if (H + 2 * PAD) * (W + 2 * PAD) > 2 ** (np.finfo(grid.dtype).nmant + 1):
        return grid.astype(np.float64)
    return grid


def _rows_per_block(Wo):
    return max(1, POINTS_PER_BLOCK // max(Wo, 1))


def _work_split(N):
    """(S, n_chunks): S bands per sample so that there are at least as many
    (n, band) items as threads, and the items grouped into a few chunks per
    thread (each chunk allocates its buffers once)."""
    threads = numba.get_num_threads()
    S = 1 if N >= threads else -(-threads // N)
    return S, max(1, min(N * S, 4 * threads))


def bilinear_sample(image, grid, padding_mode, align_corners):
    """image (N,C,H,W), grid (N,Ho,Wo,2) of normalized (x, y) -> (N,C,Ho,Wo)."""
    check_padding_mode(padding_mode)
    image, grid = np.ascontiguousarray(image), np.ascontiguousarray(grid)
    N, C, H, W = image.shape
    Ho, Wo = grid.shape[1:3]
    out = np.empty((N, C, Ho, Wo), dtype=image.dtype)
    S, n_chunks = _work_split(N)
    grid = _taps_grid(grid, H, W)
    _dynamic(_sample_kernel, image, grid, *unnormalization(H, W, align_corners, grid.dtype),
             padding_mode == "border", S, _rows_per_block(Wo), n_chunks, out)
    return out


def bilinear_sample_backward(image, grid, grad, padding_mode, align_corners):
    """grad (N,C,Ho,Wo) of the output -> (d image (N,C,H,W), d grid (N,Ho,Wo,2))."""
    check_padding_mode(padding_mode)
    image, grid = np.ascontiguousarray(image), np.ascontiguousarray(grid)
    grad = np.ascontiguousarray(grad)
    N, C, H, W = image.shape
    S, n_chunks = _work_split(N)
    parts = np.empty((n_chunks if S == 1 else N * S, C, H + 2 * PAD, W + 2 * PAD),
                     dtype=image.dtype)
    d_image = np.empty((N, C, H, W), dtype=image.dtype)
    d_grid = np.empty(grid.shape, dtype=image.dtype)
    grid = _taps_grid(grid, H, W)
    _dynamic(_sample_backward_kernel, image, grid, grad,
             *unnormalization(H, W, align_corners, grid.dtype), padding_mode == "border", S,
             _rows_per_block(grid.shape[2]), n_chunks, parts, d_image, d_grid)
    if S > 1:
        _dynamic(_crop_sum_kernel, parts, d_image)
    return d_image, d_grid
