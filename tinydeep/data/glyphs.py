"""Glyphs: an MNIST-like set of ten digits whose latent factors are known.

Each digit is a stroke template: polylines, arcs and quadratic curves in a
template box x ∈ [-0.35, 0.35], y ∈ [-0.5, 0.5] (y points down, as in images),
cut into short straight segments. A sample is the template bent by a smooth
warp, mapped by an affine transform and drawn with a pen of a given width:

    warp   (u, v) → (u·(1 + 2·taper·v) + bend·(1 − 4v²)/2,
                     v + waist·(1 − 4v²)/2)  then u ← u·(1 + bulge·(1 − 4v²))
    affine p → R(rotation) · [[1, shear], [0, 1]] · diag(scale·aspect, scale/aspect) · p
    pixels q = centre + (20/28)·size · p + (shift_x, shift_y)·size

A pixel's ink is the coverage of a pen of width w by distance d from its
centre to the nearest segment: ink = clip(w/2 + 1/2 − d, 0, 1) (in pixels).
That is a one-pixel linear ramp at the stroke edge — cheap anti-aliasing.
Last, Gaussian pixel noise of standard deviation `noise` is added and the
result clipped to [0, 1].

The twelve numbers per sample are returned as `latents`, so an experiment can
ask how densely the data manifold is sampled, or render the path between two
samples with `render_glyphs`.
"""
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ..backends import cpu_warmup
from .augment import _interval

cpu_warmup.install()   # a first run: its first compile says so, and starts the warm-up helper

LATENT_NAMES = ("rotation", "scale", "aspect", "shear", "shift_x", "shift_y", "width",
                "taper", "bend", "waist", "bulge", "noise")
# rotation in degrees, shear as the x-shift per unit of y, shifts and width as
# fractions of the image side, warp coefficients in template units, noise as a std.


class Glyphs(NamedTuple):
    images: np.ndarray        # (n, 1, size, size) float32 in [0, 1]
    labels: np.ndarray        # (n,) int64 in 0..9
    latents: np.ndarray       # (n, 12) float64, columns named by latent_names
    latent_names: tuple


# --- templates ------------------------------------------------------------------

def _arc(cx, cy, rx, ry, deg0, deg1, pieces=16):
    t = np.radians(np.linspace(deg0, deg1, pieces + 1))  # y down: 270° is the top
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _curve(p0, p1, p2, pieces=8):
    """Quadratic Bézier: (1−t)²p0 + 2t(1−t)p1 + t²p2."""
    t = np.linspace(0, 1, pieces + 1)[:, None]
    p0, p1, p2 = (np.array(p, float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t ** 2 * p2


def _line(*points):
    return np.array(points, float)


TEMPLATES = {  # digit -> strokes, each stroke a polyline (k, 2)
    0: [_arc(0, 0, 0.3, 0.5, 0, 360, 24)],
    1: [_line((-0.15, -0.32), (0.02, -0.5), (0.02, 0.5))],
    2: [np.concatenate([_arc(0, -0.22, 0.28, 0.27, 200, 390), _line((-0.3, 0.5), (0.32, 0.5))])],
    3: [_arc(0, -0.25, 0.25, 0.25, 200, 450), _arc(0, 0.25, 0.28, 0.25, 270, 520)],
    4: [_line((0.15, -0.5), (-0.3, 0.2), (0.32, 0.2)), _line((0.15, -0.5), (0.15, 0.5))],
    5: [np.concatenate([_line((0.28, -0.5), (-0.2, -0.5)), _arc(0, 0.18, 0.29, 0.3, 215, 500)])],
    6: [_curve((0.22, -0.5), (-0.3, -0.2), (-0.28, 0.25)), _arc(0, 0.22, 0.28, 0.28, 0, 360)],
    7: [_line((-0.3, -0.5), (0.32, -0.5), (-0.05, 0.5))],
    8: [_arc(0, -0.25, 0.22, 0.25, 0, 360), _arc(0, 0.24, 0.28, 0.26, 0, 360)],
    9: [_arc(0, -0.22, 0.27, 0.28, 0, 360), _curve((0.27, -0.22), (0.27, 0.2), (0.05, 0.5))],
}


def _segments(max_len=0.12):
    """All templates as one (S, 4) array of segments (x0, y0, x1, y1) and the
    start of each digit's run; long segments are split so that the warp can bend them."""
    segs, starts = [], [0]
    for digit in range(10):
        for stroke in TEMPLATES[digit]:
            for a, b in zip(stroke[:-1], stroke[1:]):
                k = max(1, int(np.ceil(np.linalg.norm(b - a) / max_len)))
                t = np.linspace(0, 1, k + 1)[:, None]
                pts = a + t * (b - a)
                segs.append(np.concatenate([pts[:-1], pts[1:]], axis=1))
        starts.append(sum(len(s) for s in segs))
    return np.concatenate(segs), np.array(starts, np.int64)


SEGMENTS, STARTS = _segments()


# --- the kernel -----------------------------------------------------------------

@njit(cache=True, inline="always")
def _to_pixels(u, v, m00, m01, m10, m11, cx, cy, unit, taper, bend, waist, bulge):
    e = 1.0 - 4.0 * v * v            # 1 at the middle row, 0 at top and bottom
    u = u * (1.0 + 2.0 * taper * v) + 0.5 * bend * e
    u = u * (1.0 + bulge * e)
    v = v + 0.5 * waist * e
    return cx + unit * (m00 * u + m01 * v), cy + unit * (m10 * u + m11 * v)


@njit(parallel=True, cache=True, fastmath=True)
def _render(segments, starts, labels, latents, out):
    n, size = out.shape[0], out.shape[1]
    for i in prange(n):
        rot = np.radians(latents[i, 0])
        scale, aspect, shear = latents[i, 1], latents[i, 2], latents[i, 3]
        c, s = np.cos(rot), np.sin(rot)
        ax, ay = scale * aspect, scale / aspect
        # M = R · Shear · diag(ax, ay); with y down, a positive angle turns counter-clockwise on screen
        m00, m01 = c * ax, (c * shear + s) * ay
        m10, m11 = -s * ax, (-s * shear + c) * ay
        unit = size * 20.0 / 28.0                      # MNIST digits fill a 20×20 box of 28×28
        cx = 0.5 * size + latents[i, 4] * size
        cy = 0.5 * size + latents[i, 5] * size
        reach = 0.5 * latents[i, 6] * size + 0.5       # ink > 0 only closer than this
        lab = labels[i]
        for k in range(starts[lab], starts[lab + 1]):
            x0, y0 = _to_pixels(segments[k, 0], segments[k, 1], m00, m01, m10, m11, cx, cy, unit,
                                latents[i, 7], latents[i, 8], latents[i, 9], latents[i, 10])
            x1, y1 = _to_pixels(segments[k, 2], segments[k, 3], m00, m01, m10, m11, cx, cy, unit,
                                latents[i, 7], latents[i, 8], latents[i, 9], latents[i, 10])
            dx, dy = x1 - x0, y1 - y0
            len2 = dx * dx + dy * dy + 1e-12
            # only pixels whose centre can be within `reach` of the segment
            c0 = max(0, int(np.floor(min(x0, x1) - reach)))
            c1 = min(size - 1, int(np.ceil(max(x0, x1) + reach)))
            r0 = max(0, int(np.floor(min(y0, y1) - reach)))
            r1 = min(size - 1, int(np.ceil(max(y0, y1) + reach)))
            for r in range(r0, r1 + 1):
                py = r + 0.5
                for col in range(c0, c1 + 1):
                    px = col + 0.5
                    # nearest point of the segment: x0 + t·(x1 − x0), t clamped to [0, 1]
                    t = ((px - x0) * dx + (py - y0) * dy) / len2
                    t = min(1.0, max(0.0, t))
                    ex, ey = px - x0 - t * dx, py - y0 - t * dy
                    ink = reach - np.sqrt(ex * ex + ey * ey)
                    if ink > 1.0:
                        ink = 1.0
                    if ink > out[i, r, col]:
                        out[i, r, col] = ink


# --- public functions ----------------------------------------------------------

def _range(name, value):
    """A symmetric half-width h → (−h, h); a pair → itself."""
    return _interval(f"glyphs: range for {name}", value)


def render_glyphs(labels, latents, size=28, noise_seed=None):
    """Draw digits `labels` (n,) with latent factors `latents` (n, 12), columns as in
    LATENT_NAMES. Without `noise_seed` the images are clean (the noise column is
    ignored); with it, pixel noise is drawn exactly as `glyphs(n, seed=noise_seed)` draws it.
    Returns (n, 1, size, size) float32 in [0, 1]."""
    if int(size) != size or size < 8:
        raise ValueError(f"render_glyphs: size must be an integer >= 8, got {size!r}")
    size = int(size)
    labels = np.asarray(labels)
    latents = np.ascontiguousarray(latents, dtype=np.float64)
    if labels.ndim != 1 or latents.shape != (len(labels), len(LATENT_NAMES)):
        raise ValueError(f"render_glyphs: need labels (n,) and latents (n, {len(LATENT_NAMES)}), "
                         f"got {labels.shape} and {latents.shape}")
    if labels.dtype.kind not in "iu" or len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"render_glyphs: labels must be integer digits 0..9, got {labels.dtype}")
    if not np.isfinite(latents).all() or (latents[:, [1, 2]] <= 0).any() or (latents[:, 6] < 0).any():
        raise ValueError("render_glyphs: latents must be finite, with scale, aspect > 0 and width >= 0")
    n = len(labels)
    out = np.zeros((n, size, size), np.float32)
    if n:
        _render(SEGMENTS, STARTS, labels.astype(np.int64), latents, out)
    images = out.reshape(n, 1, size, size)
    if noise_seed is not None:
        rng = np.random.default_rng([noise_seed, 1])  # a stream apart from the latents' one
        sigma = latents[:, 11].astype(np.float32).reshape(n, 1, 1, 1)
        images += sigma * rng.standard_normal(images.shape, dtype=np.float32)
        np.clip(images, 0.0, 1.0, out=images)
    return images


def glyphs(n, seed=0, size=28, rotation=20.0, scale=(0.75, 1.0), aspect=(0.85, 1.15),
           shear=0.3, shift=0.08, width=(0.06, 0.12), warp=0.25, noise=(0.0, 0.1)):
    """n digit images drawn from `seed`. Each range is a half-width h, meaning
    uniform on (−h, h), or a pair (low, high); `shift` is in fractions of the
    image side and applies to x and y, `warp` to all four warp coefficients.
    Classes are balanced: each digit appears n//10 or n//10 + 1 times.

    Returns Glyphs(images (n, 1, size, size) float32 in [0, 1], labels (n,) int64,
    latents (n, 12) float64, latent_names). A test set is another seed."""
    if int(n) != n or n < 0:
        raise ValueError(f"glyphs: n must be a non-negative integer, got {n!r}")
    if int(size) != size or size < 8:
        raise ValueError(f"glyphs: size must be an integer >= 8, got {size!r}")
    n = int(n)
    ranges = [_range("rotation", rotation), _range("scale", scale), _range("aspect", aspect),
              _range("shear", shear), _range("shift", shift), _range("shift", shift),
              _range("width", width)] + [_range("warp", warp)] * 4 + [_range("noise", noise)]
    if ranges[1][0] <= 0 or ranges[2][0] <= 0 or ranges[6][0] < 0 or ranges[11][0] < 0:
        raise ValueError("glyphs: scale and aspect must be > 0, width and noise >= 0")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    lo, hi = np.array(ranges).T
    latents = lo + (hi - lo) * rng.random((n, len(LATENT_NAMES)))
    images = render_glyphs(labels, latents, size, noise_seed=seed)
    return Glyphs(images, labels, latents, LATENT_NAMES)
