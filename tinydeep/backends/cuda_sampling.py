"""Affine grids and bilinear sampling as CUDA kernels.

The meaning (PyTorch's `affine_grid` / `grid_sample`, bilinear, padding
'zeros' or 'border') is stated in `reference_sampling.py`; in short, for a
normalized x and width W (y likewise with H):

    ix = (x + 1) · s + o      s = W/2, o = -1/2 (align_corners=False);  s = (W-1)/2, o = 0
    x0 = floor(ix), tx = ix - x0,  out = Σ_ab w_ab · v[y0 + a, x0 + b]
    w00 = (1-tx)(1-ty)   w01 = tx(1-ty)   w10 = (1-tx)ty   w11 = tx·ty
    d out/d ix = (1-ty)(v01 - v00) + ty(v11 - v10)
    d out/d iy = (1-tx)(v10 - v00) + tx(v11 - v01)

computed in the grid's dtype, as PyTorch does. 'zeros': a tap outside the
image reads 0 and receives nothing; 'border': ix is clipped to [0, W-1] and
d ix/dx = 0 unless 0 < ix < W-1.

One thread per output point (n, ho, wo): it works out its taps, their weights
and which of them lie inside the image once, then loops over the channels,
stepping a flat offset by one channel plane (H·W) each time instead of
computing a 4-D index per tap; neighbouring threads write neighbouring outputs.
Channels go LAUNCH['sample_channels'] at a time, every tap of the group loaded
before any result is stored: numba cannot know that `out` and `image` never
overlap, so a store would otherwise hold back the next channel's loads, and
the thread would keep only four loads in flight. The backward pass is the same
loop: the grid gradient is private to the point, but four taps of many points
land on the same input pixel, so the image gradient is a scatter done with
`cuda.atomic.add`.
"""
import math

import numpy as np
from numba import cuda

from .cpu_sampling import theta_row_grad, unnormalization
from .cuda_device import LAUNCH, empty, flat, from_host, made, numba_type, zeros
from .cuda_device import grid as grid_for
from .reference_sampling import base_coords, check_padding_mode

_coords = {}


def _base(size, align_corners, dtype):
    """base_coords on the device, uploaded once per (size, convention, dtype) and reused."""
    key = (size, bool(align_corners), np.dtype(dtype).str)
    if key not in _coords:
        _coords[key] = from_host(base_coords(size, align_corners, dtype))
    return _coords[key]


@cuda.jit
def _affine_grid_kernel(theta, xs, ys, out):
    # grid[n, h, w] = theta[n] @ (x_w, y_h, 1)
    N, H, W, _ = out.shape
    for p in range(cuda.grid(1), N * H * W, cuda.gridsize(1)):
        n, h, w = p // (H * W), (p // W) % H, p % W
        for i in range(2):
            out[n, h, w, i] = theta[n, i, 0] * xs[w] + (theta[n, i, 1] * ys[h] + theta[n, i, 2])


_theta_row_grad = cuda.jit(device=True, inline="always")(theta_row_grad)


@cuda.jit
def _affine_grid_backward_kernel(g, xs, ys, d_theta):
    # one thread per (n, i), as the CPU's
    for item in range(cuda.grid(1), g.shape[0] * 2, cuda.gridsize(1)):
        n, i = item // 2, item % 2
        d_theta[n, i, 0], d_theta[n, i, 1], d_theta[n, i, 2] = _theta_row_grad(g, n, i, xs, ys)


def affine_grid(theta, H, W, align_corners):
    """theta (N,2,3) -> grid (N,H,W,2)."""
    out = empty((theta.shape[0], H, W, 2), theta.dtype)
    if out.size:
        _affine_grid_kernel[grid_for(out.size // 2)](theta, _base(W, align_corners, theta.dtype),
                                                 _base(H, align_corners, theta.dtype), out)
    return out


def affine_grid_backward(grad_grid, align_corners):
    """grad_grid (N,H,W,2) -> d theta (N,2,3)."""
    N, H, W, _ = grad_grid.shape
    d_theta = empty((N, 2, 3), grad_grid.dtype)
    _affine_grid_backward_kernel[grid_for(2 * N)](grad_grid, _base(W, align_corners, np.float64),
                                              _base(H, align_corners, np.float64), d_theta)
    return d_theta


def _sampling_factory(dtype, CB):
    """The forward and backward kernels for one dtype T: every constant is a T, so float32
    grids are unnormalized and weighted in float32, as in PyTorch (and the reference).
    CB channels go per pass: their taps are all loaded before any result is written."""
    T = numba_type(dtype)

    @cuda.jit(device=True)
    def unnormalize(x, s, o, size, border):
        # (pixel coordinate, d pixel / d x)
        ix = (x + T(1)) * s + o
        d = s
        if border:
            if not (ix > T(0) and ix < T(size - 1)):
                d = T(0)
            if ix < T(0):
                ix = T(0)
            if ix > T(size - 1):
                ix = T(size - 1)
        elif ix < T(-2):                    # 'zeros': far outside, every tap reads 0 either
            ix = T(-2)                      # way; the clamp keeps int(floor(ix)) in range
        elif ix > T(size):
            ix = T(size)
        return ix, d

    @cuda.jit(device=True)
    def point(grid_, p, Ho, Wo, sx, ox, sy, oy, H, W, border):
        # output point p -> (n, ho, wo) and its pixel coordinates with their derivatives
        n, ho, wo = p // (Ho * Wo), (p // Wo) % Ho, p % Wo
        ix, dix = unnormalize(grid_[n, ho, wo, 0], sx, ox, W, border)
        iy, diy = unnormalize(grid_[n, ho, wo, 1], sy, oy, H, border)
        return n, ho, wo, ix, dix, iy, diy

    @cuda.jit(device=True)
    def inside(y0, x0, H, W):
        # which of the taps (y0 + a, x0 + b) lie in the image: (in00, in01, in10, in11)
        y_in, y1_in = y0 >= 0 and y0 < H, y0 + 1 >= 0 and y0 + 1 < H
        x_in, x1_in = x0 >= 0 and x0 < W, x0 + 1 >= 0 and x0 + 1 < W
        return y_in and x_in, y_in and x1_in, y1_in and x_in, y1_in and x1_in

    @cuda.jit(device=True)
    def taps(image, t, W, in00, in01, in10, in11):
        # the taps (v00, v01, v10, v11) from flat offset t (0 for one outside the image)
        return (image[t] if in00 else T(0), image[t + 1] if in01 else T(0),
                image[t + W] if in10 else T(0), image[t + W + 1] if in11 else T(0))

    @cuda.jit
    def forward(image, C, H, W, grid_, out, sx, ox, sy, oy, border):
        # image (N·C·H·W) and out (N·C·Ho·Wo) flat: channel c of a tap is c·H·W further on
        N, Ho, Wo = grid_.shape[0], grid_.shape[1], grid_.shape[2]
        v = cuda.local.array((CB, 4), T)
        for p in range(cuda.grid(1), N * Ho * Wo, cuda.gridsize(1)):
            n, ho, wo, ix, _, iy, _ = point(grid_, p, Ho, Wo, sx, ox, sy, oy, H, W, border)
            o = (n * C * Ho + ho) * Wo + wo            # out[n, 0, ho, wo]
            if ix != ix or iy != iy:                   # a NaN coordinate gives a NaN output
                for c in range(C):
                    out[o + c * Ho * Wo] = ix + iy
                continue
            x0, y0 = int(math.floor(ix)), int(math.floor(iy))
            tx, ty = ix - T(x0), iy - T(y0)
            in00, in01, in10, in11 = inside(y0, x0, H, W)
            t = (n * C * H + y0) * W + x0              # image[n, 0, y0, x0] (maybe outside)
            # CB channels a pass, all their loads before any store (k runs to the constant CB,
            # so the loops unroll and v lives in registers)
            for c0 in range(0, C, CB):
                for k in range(CB):
                    if c0 + k < C:
                        v[k, 0], v[k, 1], v[k, 2], v[k, 3] = taps(image, t + k * H * W, W,
                                                                  in00, in01, in10, in11)
                for k in range(CB):
                    if c0 + k < C:
                        out[o + k * Ho * Wo] = ((T(1) - ty) * ((T(1) - tx) * v[k, 0] + tx * v[k, 1])
                                                + ty * ((T(1) - tx) * v[k, 2] + tx * v[k, 3]))
                t += CB * H * W
                o += CB * Ho * Wo

    @cuda.jit
    def backward(image, C, H, W, grid_, grad, d_image, d_grid, sx, ox, sy, oy, border):
        # image, grad, d_image flat as in forward
        N, Ho, Wo = grid_.shape[0], grid_.shape[1], grid_.shape[2]
        v = cuda.local.array((CB, 4), T)
        gs = cuda.local.array(CB, T)
        for p in range(cuda.grid(1), N * Ho * Wo, cuda.gridsize(1)):
            n, ho, wo, ix, dix, iy, diy = point(grid_, p, Ho, Wo, sx, ox, sy, oy, H, W, border)
            if ix != ix or iy != iy:
                d_grid[n, ho, wo, 0] = ix + iy
                d_grid[n, ho, wo, 1] = ix + iy
                continue
            x0, y0 = int(math.floor(ix)), int(math.floor(iy))
            tx, ty = ix - T(x0), iy - T(y0)
            in00, in01, in10, in11 = inside(y0, x0, H, W)
            t = (n * C * H + y0) * W + x0
            o = (n * C * Ho + ho) * Wo + wo
            gx = T(0)
            gy = T(0)
            for c0 in range(0, C, CB):                 # as in forward: loads first
                for k in range(CB):
                    if c0 + k < C:
                        gs[k] = grad[o + k * Ho * Wo]
                        v[k, 0], v[k, 1], v[k, 2], v[k, 3] = taps(image, t + k * H * W, W,
                                                                  in00, in01, in10, in11)
                for k in range(CB):
                    if c0 + k >= C:
                        break
                    g, v00, v01, v10, v11 = gs[k], v[k, 0], v[k, 1], v[k, 2], v[k, 3]
                    gx += g * ((T(1) - ty) * (v01 - v00) + ty * (v11 - v10))
                    gy += g * ((T(1) - tx) * (v10 - v00) + tx * (v11 - v01))
                    tk = t + k * H * W
                    if in00:
                        cuda.atomic.add(d_image, tk, g * ((T(1) - tx) * (T(1) - ty)))
                    if in01:
                        cuda.atomic.add(d_image, tk + 1, g * (tx * (T(1) - ty)))
                    if in10:
                        cuda.atomic.add(d_image, tk + W, g * ((T(1) - tx) * ty))
                    if in11:
                        cuda.atomic.add(d_image, tk + W + 1, g * (tx * ty))
                t += CB * H * W
                o += CB * Ho * Wo
            d_grid[n, ho, wo, 0] = gx * dix
            d_grid[n, ho, wo, 1] = gy * diy

    return forward, backward


def bilinear_sample(image, grid, padding_mode, align_corners):
    """image (N,C,H,W), grid (N,Ho,Wo,2) of normalized (x, y) -> (N,C,Ho,Wo)."""
    check_padding_mode(padding_mode)
    N, C = image.shape[:2]
    Ho, Wo = grid.shape[1:3]
    out = empty((N, C, Ho, Wo), image.dtype)
    if out.size:
        forward, _ = made(_sampling_factory, image.dtype.str, LAUNCH["sample_channels"])
        forward[grid_for(N * Ho * Wo)](
            flat(image), *image.shape[1:], grid, flat(out),
            *unnormalization(*image.shape[2:], align_corners, grid.dtype),
            padding_mode == "border")
    return out


def bilinear_sample_backward(image, grid, grad, padding_mode, align_corners):
    """grad (N,C,Ho,Wo) of the output -> (d image (N,C,H,W), d grid (N,Ho,Wo,2))."""
    check_padding_mode(padding_mode)
    N, _, Ho, Wo = grad.shape
    d_image = zeros(image.shape, image.dtype)
    d_grid = empty(grid.shape, grid.dtype)
    if N * Ho * Wo:
        _, backward = made(_sampling_factory, image.dtype.str, LAUNCH["sample_channels"])
        backward[grid_for(N * Ho * Wo)](
            flat(image), *image.shape[1:], grid, flat(grad), flat(d_image), d_grid,
            *unnormalization(*image.shape[2:], align_corners, grid.dtype),
            padding_mode == "border")
    return d_image, d_grid

