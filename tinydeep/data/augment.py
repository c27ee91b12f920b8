"""Augmentations of a batch (N, C, H, W) float32. Each transform is a callable
t(x, rng) -> x' drawing its randomness from the NumPy Generator it is given,
so a DataLoader with a seed replays the same augmented batches.

RandomAffine goes through the engine's own affine_grid + grid_sample — the
bilinear kernel a spatial transformer uses — under no_grad.
"""
import numpy as np


def _interval(name, value, symmetric_about=0.0):
    """h -> (c − h, c + h); a pair -> itself; None -> (c, c). (Also glyphs' ranges.)"""
    if value is None:
        return symmetric_about, symmetric_about
    pair = (symmetric_about - value, symmetric_about + value) if np.isscalar(value) else value
    if (len(pair) != 2 or not all(isinstance(v, (int, float, np.number)) for v in pair)
            or not -np.inf < pair[0] <= pair[1] < np.inf):
        raise ValueError(f"{name}: need a number h >= 0 or a pair (low, high) of finite "
                         f"numbers with low <= high, got {value!r}")
    return float(pair[0]), float(pair[1])


def _batch(name, x):
    x = np.asarray(x)
    if x.ndim != 4 or not x.size:
        raise ValueError(f"{name}: expected a non-empty batch (N, C, H, W), got shape {x.shape}")
    return x


class RandomAffine:
    """Per image, a uniform draw of rotation (degrees, counter-clockwise on screen),
    scale, translate (fractions of width and height) and shear (degrees, x slides by
    tan(shear)·y), applied about the centre. A number h means (−h, h) (scale: (1−h, 1+h));
    a pair (low, high) is used as is.

    In centred pixel coordinates the image is moved by
        A = T(t) · R(rotation) · Shear · scale
    and affine_grid wants the map from output to input points in [−1, 1] coordinates:
        θ = D⁻¹ A⁻¹ D,  D = diag(W/2, H/2)  (so a rotation of a non-square image stays a rotation).
    Points that land outside the input read zeros."""

    def __init__(self, rotation=0.0, scale=None, translate=None, shear=0.0):
        self.rotation = _interval("RandomAffine rotation", rotation)
        self.scale = _interval("RandomAffine scale", scale, 1.0)
        if self.scale[0] <= 0:
            raise ValueError(f"RandomAffine: scale must stay > 0, got {scale!r}")
        self.translate = _interval("RandomAffine translate", translate)
        self.shear = _interval("RandomAffine shear", shear)
        if max(abs(s) for s in self.shear) >= 90:
            raise ValueError(f"RandomAffine: shear must be within (−90, 90) degrees, got {shear!r}")

    def thetas(self, n, h, w, rng):
        """The (n, 2, 3) float32 θ for n images of size h×w."""
        u = lambda r: rng.uniform(r[0], r[1], n)
        angle, scale = np.radians(u(self.rotation)), u(self.scale)
        tx, ty, shear = u(self.translate), u(self.translate), np.tan(np.radians(u(self.shear)))
        c, s = np.cos(angle), np.sin(angle)
        # y points down, so a counter-clockwise turn on screen is [[c, s], [−s, c]]
        A = np.zeros((n, 3, 3))
        A[:, 0, 0], A[:, 0, 1] = c * scale, (c * shear + s) * scale
        A[:, 1, 0], A[:, 1, 1] = -s * scale, (-s * shear + c) * scale
        A[:, 0, 2], A[:, 1, 2], A[:, 2, 2] = tx * w, ty * h, 1.0
        D = np.diag([w / 2, h / 2, 1.0])
        theta = np.linalg.inv(D) @ np.linalg.inv(A) @ D
        return theta[:, :2].astype(np.float32)

    def __call__(self, x, rng=None):
        import tinydeep as td              # the engine, imported late: data does not need it otherwise
        from tinydeep import functional as F
        x = _batch("RandomAffine", x)
        rng = np.random.default_rng() if rng is None else rng
        theta = self.thetas(x.shape[0], x.shape[2], x.shape[3], rng)
        with td.no_grad():
            grid = F.affine_grid(td.tensor(theta), x.shape, align_corners=False)
            out = F.grid_sample(td.tensor(np.ascontiguousarray(x, np.float32)), grid,
                                padding_mode="zeros", align_corners=False)
        return out.numpy()


class RandomCrop:
    """Pad by `padding` zeros on each side, then cut a random window of the original
    size: a random whole-pixel shift of up to ±padding in each direction."""

    def __init__(self, padding):
        if not (isinstance(padding, (int, float, np.number)) and 0 <= padding < np.inf
                and int(padding) == padding):
            raise ValueError(f"RandomCrop: padding must be a non-negative integer, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, x, rng=None):
        x = _batch("RandomCrop", x)
        rng = np.random.default_rng() if rng is None else rng
        n, _, h, w = x.shape
        p = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        top, left = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
        return np.stack([padded[i, :, t:t + h, l:l + w] for i, (t, l) in enumerate(zip(top, left))])


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        for t in self.transforms:
            x = t(x, rng)
        return x
