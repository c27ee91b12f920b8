"""Affine grids and bilinear sampling in plain NumPy: the meaning of the kernels.

These follow PyTorch's `F.affine_grid` and `F.grid_sample(mode='bilinear')`
exactly, so results can be checked against it.

Coordinates. A grid holds normalized points (x, y) in [-1, 1]: x = -1 is the
left edge of the image and x = +1 the right edge. Two conventions say which
"edge" is meant (for a width W; y works the same with H):

    align_corners=True :  -1 and +1 are the centres of the corner pixels
                          ix = (x + 1) / 2 * (W - 1)    = (x + 1) s          s = (W - 1) / 2
    align_corners=False:  -1 and +1 are the outer edges of the corner pixels
                          ix = ((x + 1) * W - 1) / 2    = (x + 1) s - 1/2    s = W / 2

and d ix/dx = s. The right-hand forms are the ones PyTorch's CPU kernel
evaluates; using the same rounding matters for points that land exactly on a
pixel centre, where the derivative below jumps.

Bilinear interpolation at a pixel position (ix, iy), with x0 = floor(ix),
y0 = floor(iy), tx = ix - x0, ty = iy - y0, mixes four taps:

    out = (1-tx)(1-ty) v[y0, x0]  +  tx(1-ty) v[y0, x0+1]
        + (1-tx) ty    v[y0+1, x0] +  tx ty    v[y0+1, x0+1]

    d out / d ix = (1-ty) (v[y0, x0+1] - v[y0, x0]) + ty (v[y0+1, x0+1] - v[y0+1, x0])
    d out / d iy = (1-tx) (v[y0+1, x0] - v[y0, x0]) + tx (v[y0+1, x0+1] - v[y0, x0+1])

Padding says what lies outside the image:
    'zeros' : a tap outside the image reads 0 (and so passes no gradient);
    'border': ix is first clipped to [0, W-1] (iy to [0, H-1]), so outside points
              repeat the edge. The clip passes no gradient to the grid where it
              acts, and PyTorch counts the edge itself as clipped: d clip/d ix = 1
              only for 0 < ix < W-1.
At an integer ix the derivative above is the one-sided (right) one, as in PyTorch.
"""
import numpy as np

PADDING_MODES = ("zeros", "border")


def check_padding_mode(padding_mode):
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")


def base_coords(size, align_corners, dtype):
    """The normalized coordinates of `size` pixel centres: linspace(-1, 1, size),
    shrunk by (size-1)/size when align_corners=False; a single pixel sits at 0."""
    if size <= 1:
        return np.zeros(size, dtype=dtype)
    coords = np.linspace(-1.0, 1.0, size)
    if not align_corners:
        coords = coords * (size - 1) / size
    return coords.astype(dtype)


def affine_grid(theta, H, W, align_corners):
    """theta (N,2,3) -> grid (N,H,W,2):  grid[n,h,w] = theta[n] @ (x_w, y_h, 1)."""
    xs = base_coords(W, align_corners, theta.dtype)          # (W,)
    ys = base_coords(H, align_corners, theta.dtype)          # (H,)
    t = theta[:, :, None, None, :]                           # (N,2,1,1,3)
    grid = t[..., 0] * xs[None, :] + t[..., 1] * ys[:, None] + t[..., 2]   # (N,2,H,W)
    return np.ascontiguousarray(grid.transpose(0, 2, 3, 1))


def affine_grid_backward(grad_grid, align_corners):
    """grad_grid (N,H,W,2) -> d theta (N,2,3):
    d theta[n] = sum over h, w of outer(grad[n,h,w], (x_w, y_h, 1))."""
    N, H, W, _ = grad_grid.shape
    xs = base_coords(W, align_corners, grad_grid.dtype)
    ys = base_coords(H, align_corners, grad_grid.dtype)
    d_theta = np.empty((N, 2, 3), dtype=grad_grid.dtype)
    d_theta[:, :, 0] = np.einsum("nhwi,w->ni", grad_grid, xs)
    d_theta[:, :, 1] = np.einsum("nhwi,h->ni", grad_grid, ys)
    d_theta[:, :, 2] = grad_grid.sum(axis=(1, 2))
    return d_theta


def _pixel_coords(coord, size, padding_mode, align_corners):
    """Normalized coordinate -> (pixel coordinate, d pixel / d normalized)."""
    if align_corners:
        scale = (size - 1) / 2
        pix = (coord + 1) * scale
    else:
        scale = size / 2
        pix = (coord + 1) * scale - 0.5
    d_pix = np.full(coord.shape, scale, dtype=coord.dtype)
    if padding_mode == "border":
        inside = (pix > 0) & (pix < size - 1)       # the edge itself counts as clipped
        pix = np.clip(pix, 0, size - 1)
        d_pix = d_pix * inside
    return pix, d_pix


def _corners(image, grid, padding_mode, align_corners):
    """Everything both passes need: corner indices, weights, tap values.

    Returns (d_ix, d_iy, taps, tx, ty): taps lists, for the corners (y0,x0),
    (y0,x0+1), (y0+1,x0), (y0+1,x0+1), a tuple (y index, x index, in-image
    mask, weight, value (N,C,Ho,Wo)); a tap outside the image has value 0."""
    N, C, H, W = image.shape
    ix, d_ix = _pixel_coords(grid[..., 0], W, padding_mode, align_corners)  # (N,Ho,Wo)
    iy, d_iy = _pixel_coords(grid[..., 1], H, padding_mode, align_corners)
    x0, y0 = np.floor(ix), np.floor(iy)
    tx, ty = ix - x0, iy - y0
    n = np.arange(N)[:, None, None]
    image_nhwc = image.transpose(0, 2, 3, 1)
    taps = []
    for dy, wy in ((0, 1 - ty), (1, ty)):
        for dx, wx in ((0, 1 - tx), (1, tx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1)
            # out-of-image taps read pixel (0, 0) and are then zeroed by the mask
            xi = np.where(inside, xi, 0).astype(np.intp)
            yi = np.where(inside, yi, 0).astype(np.intp)
            value = image_nhwc[n, yi, xi] * inside[..., None]          # (N,Ho,Wo,C)
            taps.append((yi, xi, inside, wy * wx, value.transpose(0, 3, 1, 2)))
    return d_ix, d_iy, taps, tx, ty


def bilinear_sample(image, grid, padding_mode, align_corners):
    """image (N,C,H,W), grid (N,Ho,Wo,2) of normalized (x, y) -> (N,C,Ho,Wo)."""
    check_padding_mode(padding_mode)
    _, _, taps, _, _ = _corners(image, grid, padding_mode, align_corners)
    out = sum(weight[:, None] * value for _, _, _, weight, value in taps)
    return out.astype(image.dtype, copy=False)


def bilinear_sample_backward(image, grid, grad, padding_mode, align_corners):
    """grad (N,C,Ho,Wo) of the output -> (d image (N,C,H,W), d grid (N,Ho,Wo,2))."""
    check_padding_mode(padding_mode)
    N, C, H, W = image.shape
    d_ix, d_iy, taps, tx, ty = _corners(image, grid, padding_mode, align_corners)
    v00, v01, v10, v11 = (value for *_, value in taps)

    # Image: each output point scatters grad * weight onto its four taps.
    d_image_nhwc = np.zeros((N, H, W, C), dtype=image.dtype)
    n = np.broadcast_to(np.arange(N)[:, None, None], tx.shape)
    grad_nhwc = grad.transpose(0, 2, 3, 1)
    for yi, xi, inside, weight, _ in taps:
        contribution = grad_nhwc * (weight * inside)[..., None]
        np.add.at(d_image_nhwc, (n, yi, xi), contribution)

    # Grid: the derivatives of the four weights (see the module docstring),
    # summed over channels, times d pixel / d normalized.
    tx, ty = tx[:, None], ty[:, None]
    d_out_d_ix = (1 - ty) * (v01 - v00) + ty * (v11 - v10)
    d_out_d_iy = (1 - tx) * (v10 - v00) + tx * (v11 - v01)
    d_grid = np.stack([(grad * d_out_d_ix).sum(axis=1) * d_ix,
                       (grad * d_out_d_iy).sum(axis=1) * d_iy], axis=-1)
    return (np.ascontiguousarray(d_image_nhwc.transpose(0, 3, 1, 2)),
            d_grid.astype(image.dtype, copy=False))
