"""Two models of tinydeep's own (not torch.nn's), built of nn's layers and re-exported by
nn.py: MLP, the fully connected net of the depth and memorization studies, and Jaderberg
et al.'s spatial transformer."""
import numpy as np

from . import functional as F
from .nn import Linear, Module, ReLU, Sequential
from .tensor import DEFAULT_DTYPE


class MLP(Sequential):
    """`depth` hidden layers of `width` ReLU units between in_features and out_features."""

    def __init__(self, in_features, width, depth, out_features):
        for what, n, least in (("in_features", in_features, 1), ("width", width, 1),
                               ("depth", depth, 0), ("out_features", out_features, 1)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < least:
                raise ValueError(f"MLP: {what} must be an int >= {least}, got {n!r}")
        layers, n_in = [], in_features
        for _ in range(depth):
            layers += [Linear(n_in, width), ReLU()]
            n_in = width
        super().__init__(*layers, Linear(n_in, out_features))


IDENTITY_THETA = np.array([1, 0, 0, 0, 1, 0], dtype=DEFAULT_DTYPE)


class SpatialTransformer(Module):
    """Jaderberg et al. 2015: a localization net predicts an affine θ (2×3) per
    image; the image is resampled at affine_grid(θ) by bilinear grid_sample.
    The localization net's last layer must be a Linear with 6 outputs; it starts
    at zero weights and the identity bias, so training begins from "do nothing"."""

    def __init__(self, localization, output_size, align_corners=False):
        super().__init__()
        last = [m for m in localization.modules() if isinstance(m, Linear)]
        if not last or last[-1].out_features != 6:
            raise ValueError("SpatialTransformer: the localization net must end in a Linear "
                             "layer with 6 outputs (the affine parameters)")
        last[-1].weight.data[...] = 0.0
        if last[-1].bias is None:
            raise ValueError("SpatialTransformer: the last Linear needs a bias to hold the identity")
        last[-1].bias.data[...] = IDENTITY_THETA
        self.localization = localization
        self.output_size = tuple(output_size)
        self.align_corners = align_corners

    def theta(self, x):
        return self.localization(x).reshape(x.shape[0], 2, 3)

    def forward(self, x):
        n, c = x.shape[:2]
        grid = F.affine_grid(self.theta(x), (n, c) + self.output_size, self.align_corners)
        return F.grid_sample(x, grid, align_corners=self.align_corners)
