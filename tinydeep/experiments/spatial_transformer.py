"""Jaderberg et al. 2015, "Spatial Transformer Networks": the RTS experiment.

The claim: a network that first predicts an affine transform of its input and
resamples the input there (a spatial transformer, ST) learns to undo rotation,
scale and translation by itself, from the classification loss alone, and the
same classifier behind it makes fewer errors. Their Table 1 (% test error on
MNIST rotated ±90° on 28×28, "R", and rotated ±45°, scaled 0.7–1.2 and translated
on a 42×42 canvas, "RTS"): FCN 2.1 / 5.2, CNN 1.2 / 0.8, ST-FCN 1.2 / 0.8,
ST-CNN 0.7 / 0.5.

Reproduced on glyph digits drawn the same way (`rts_glyphs`), or on MNIST or
Fashion-MNIST when their files are present (`rts_images`: each 28×28 image turned,
scaled and placed on the canvas by bilinear resampling, with its pose recorded in
glyphs' latent columns so that everything below reads it the same way):

    make_model       FCN or small CNN, optionally behind a SpatialTransformer
    train            SGD with its own learning rate for the localization net
    pose_report      how upright, centred and equally sized the digits are, before
                     and after the ST: from the known latents (through θ) and
                     from the pixels (ink centroid)
    run              plain vs ST for each architecture on one column, over seeds
    run_table        `run` per column (R, RTS): the table, beside the paper's numbers,
                     with the paired differences ST-X − X

What the ST does is read off its θ. A glyph is drawn at normalized input
coordinates z = A p + t (p in the digit's template box, A = (40/28)·M with M =
rotation·shear·aspect·scale, t = 2·shift; see data/glyphs.py). The ST samples
output point o at input point z = θ_A o + θ_t, so the digit appears in the
output at o = θ_A⁻¹ (A p + t − θ_t): its pose there is L = θ_A⁻¹ A and its
centre θ_A⁻¹ (t − θ_t). Rotation is read as the angle of the similarity nearest
to a 2×2 matrix, atan2(L₀₁ − L₁₀, L₀₀ + L₁₁) (positive = counter-clockwise on
screen, glyphs' convention), size as √det L.
"""
import math
import time

import numpy as np
from tqdm.auto import tqdm

from .. import functional as F, nn
from ..data import LATENT_NAMES, Glyphs, glyphs
from ..rng import manual_seed
from ..tensor import no_grad, tensor
from .random_labels import binned, load_data, small_cnn
from .sweep import paired, summary
from .training import evaluate, fit, outputs

NUM_CLASSES = 10
PAPER_TABLE_1 = {"FCN": 5.2, "ST-FCN": 0.8, "CNN": 0.8, "ST-CNN": 0.5}  # % error, RTS
# Jaderberg et al. 2015, Table 1 (% test error on distorted MNIST), both columns run here:
# R = rotated ±90° on 28×28; RTS = rotated ±45°, scaled 0.7–1.2, translated on 42×42.
PAPER_TABLE_1_COLUMNS = {"R": {"FCN": 2.1, "ST-FCN": 1.2, "CNN": 1.2, "ST-CNN": 0.7},
                         "RTS": PAPER_TABLE_1}
DISTORTIONS = {"R": dict(canvas=28, rotation=90.0, scale=(1.0, 1.0)),
               "RTS": dict(canvas=42, rotation=45.0, scale=(0.7, 1.2))}
ARCHS = ("fcn", "cnn")
GLYPH_SIDE = 28          # a digit is drawn as on a 28×28 glyph image, then placed on the canvas
BASE_SCALE = 0.875       # the middle of glyphs' default scale range (0.75, 1.0)
TEMPLATE_HEIGHT = 1.0    # glyph templates span y ∈ [-0.5, 0.5]
DATASETS = ("glyphs", "mnist", "fashion-mnist")
# the sets random_labels.load_data knows that this experiment cannot use, and why
UNFIT = {"mnist1d": "its samples are 1-D signals of 40 values: they cannot be rotated in "
                    "a plane or placed on a 42x42 canvas",
         "cifar10": "its 32x32 colour photos fill their frame: there is no digit on a blank "
                    "background to turn, scale and place on a canvas (the paper distorts MNIST)"}


# --- data ------------------------------------------------------------------------------

def rts_glyphs(n, seed=0, canvas=42, rotation=45.0, scale=(0.7, 1.2)):
    """Glyph digits distorted as in the RTS set: each digit is drawn at the size it has on
    a 28×28 glyph, rotated uniformly within ±`rotation` degrees, scaled by a factor uniform
    in `scale`, and placed at a uniformly random position on a `canvas`×`canvas` image
    (its 28×28 box anywhere inside the canvas: a shift of up to ±(canvas−28)/2 pixels).
    Stroke width, shear, aspect, warp and noise keep glyphs' defaults in pixels.
    Returns a Glyphs tuple (images (n, 1, canvas, canvas), labels, latents, names)."""
    if int(canvas) != canvas or canvas < GLYPH_SIDE:
        raise ValueError(f"rts_glyphs: canvas must be an integer >= {GLYPH_SIDE}, got {canvas!r}")
    r = GLYPH_SIDE / canvas   # glyphs measures sizes in fractions of the image side
    lo, hi = scale
    return glyphs(n, seed=seed, size=int(canvas), rotation=rotation,
                  scale=(lo * BASE_SCALE * r, hi * BASE_SCALE * r),
                  shift=(canvas - GLYPH_SIDE) / 2 / canvas, width=(0.06 * r, 0.12 * r))


def rts_images(images, labels, seed=0, canvas=42, rotation=45.0, scale=(0.7, 1.2)):
    """28×28 images (MNIST, Fashion-MNIST) distorted as `rts_glyphs` distorts glyphs:
    rotated uniformly within ±`rotation` degrees, scaled by a factor uniform in `scale` and
    placed with the 28×28 box anywhere on the `canvas`×`canvas` image, by bilinear
    resampling (zeros outside the source). An MNIST digit fills a 20×20 box, as a glyph
    template of height 1 at scale 1 does on 28×28, so the pose is recorded in glyphs'
    latent columns (rotation, scale = factor·28/canvas, aspect 1, shear 0, shifts as
    fractions of the canvas side), and glyph_pose reads it; the other columns are 0.
    Returns a Glyphs tuple (images (n, 1, canvas, canvas), labels, latents, names)."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != (1, GLYPH_SIDE, GLYPH_SIDE):
        raise ValueError(f"rts_images: images must be (n, 1, {GLYPH_SIDE}, {GLYPH_SIDE}), "
                         f"got {images.shape}")
    if int(canvas) != canvas or canvas < GLYPH_SIDE:
        raise ValueError(f"rts_images: canvas must be an integer >= {GLYPH_SIDE}, got {canvas!r}")
    n, canvas = len(images), int(canvas)
    rng = np.random.default_rng(seed)
    half_shift = (canvas - GLYPH_SIDE) / 2 / canvas
    latents = np.zeros((n, len(LATENT_NAMES)))
    latents[:, 0] = rng.uniform(-rotation, rotation, n)
    factor = rng.uniform(scale[0], scale[1], n)
    latents[:, 1], latents[:, 2] = factor * GLYPH_SIDE / canvas, 1.0
    latents[:, 4:6] = rng.uniform(-half_shift, half_shift, (n, 2))
    # canvas point o = B p + t for source point p (both in [-1, 1] coordinates, y down):
    # B = (28/canvas)·factor·R, R = [[c, s], [-s, c]] (counter-clockwise on screen), t =
    # 2·shift; affine_grid wants o -> p, i.e. θ = [B⁻¹ | -B⁻¹ t]
    rot = np.radians(latents[:, 0])
    c, s = np.cos(rot), np.sin(rot)
    inv = np.empty((n, 2, 2))
    inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 0], inv[:, 1, 1] = c, -s, s, c     # R⁻¹ = Rᵀ
    inv /= (factor * GLYPH_SIDE / canvas)[:, None, None]
    theta = np.concatenate([inv, -inv @ (2 * latents[:, 4:6])[:, :, None]], 2)
    out = np.empty((n, 1, canvas, canvas), np.float32)
    with no_grad():
        for lo in range(0, n, 1000):
            th = tensor(theta[lo:lo + 1000].astype(np.float32))
            grid = F.affine_grid(th, (len(th), 1, canvas, canvas), align_corners=False)
            out[lo:lo + 1000] = F.grid_sample(tensor(images[lo:lo + 1000]), grid,
                                              padding_mode="zeros", align_corners=False).numpy()
    return Glyphs(out, np.asarray(labels), latents, LATENT_NAMES)


def rts_data(dataset, n_train, n_test, seed=0, **distortion):
    """(train, test) Glyphs tuples of `dataset` distorted by `distortion` (canvas,
    rotation, scale): glyphs drawn so (`rts_glyphs`), or a real set's images subsampled
    with `seed` and resampled (`rts_images`). Missing files raise FileNotFoundError."""
    if dataset in UNFIT:
        raise ValueError(f"{dataset} does not fit the spatial-transformer experiment: "
                         f"{UNFIT[dataset]}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "glyphs":
        return (rts_glyphs(n_train, seed=seed, **distortion),
                rts_glyphs(n_test, seed=seed + 1, **distortion))
    x, y, xt, yt = load_data(dataset, n_train, n_test, seed=seed)
    return (rts_images(x, y, seed=seed, **distortion),
            rts_images(xt, yt, seed=seed + 1, **distortion))


# --- models ----------------------------------------------------------------------------

# The CNN's channels. 16 and 32 reached its plateau on RTS (2.7–2.95 % test error, seed 0)
# after 6 epochs of 10,000 digits, but a step took 42× an FCN step (131 ms vs 3.1 ms, batch
# 128, one process, 2 cores), too slow for 4 models × 2 columns × 3 seeds in 10 minutes;
# 8 and 16 took 90 ms.
CNN_CHANNELS = (8, 16)


def classifier(arch, in_shape, width=256, channels=CNN_CHANNELS):
    """The plain model. fcn: two hidden ReLU layers of `width`. cnn: `small_cnn` (two 5×5
    conv + ReLU + 2×2 max-pool blocks of `channels`, then Linear)."""
    c, h, w = in_shape
    if arch == "fcn":
        return nn.Sequential(nn.Flatten(), nn.MLP(c * h * w, width, 2, NUM_CLASSES))
    if arch == "cnn":
        return small_cnn(in_shape, channels, NUM_CLASSES)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def make_model(arch, in_shape, st=False, loc_width=32, seed=0):
    """`classifier(arch)`, alone or behind a SpatialTransformer whose localization net is
    an FCN with two hidden layers of `loc_width` units and whose output has the input's
    size, so the classifier is the same network in both cases. (The paper's ST-FCN uses 32
    units; here 32 learned to centre and zoom but hardly to turn the digits — rotation
    spread 26.8° in, 26.8° out after 15 epochs — while 128 took it to about 14°.)"""
    manual_seed(seed)
    c, h, w = in_shape
    if not st:
        return classifier(arch, in_shape)
    loc = nn.Sequential(nn.Flatten(), nn.MLP(c * h * w, loc_width, 2, 6))
    return nn.Sequential(nn.SpatialTransformer(loc, (h, w)), classifier(arch, in_shape))


def spatial_transformer_of(model):
    first = model[0]
    return first if isinstance(first, nn.SpatialTransformer) else None


# --- training --------------------------------------------------------------------------

def train(model, x, y, xt, yt, epochs, lr, loc_lr, momentum=0.9, lr_decay=1.0, batch_size=128,
          seed=0, desc="train"):
    """SGD with momentum on cross-entropy, through the one training loop (`fit`). The
    localization net of an ST (if any) has its own learning rate `loc_lr`: its output moves
    every sample point of the image at once, so a step that suits the classifier can throw
    θ far off (with loc_lr = lr = 0.05 the test error jumped from 3 % back to 50 % mid-run),
    while a rate 10× smaller than lr learned to centre but not to turn. Both rates are
    multiplied by `lr_decay` per epoch. Returns the history: steps and losses, running
    train accuracy and test error per epoch."""
    st = spatial_transformer_of(model)
    groups = [{"params": st.localization.parameters(), "lr": loc_lr}] if st is not None else None
    hist = fit(model, x, y, epochs=epochs, lr=lr, momentum=momentum, lr_decay=lr_decay,
               batch_size=batch_size, seed=seed, test=(xt, yt), desc=desc, param_groups=groups)
    hist["test_error"] = [1.0 - a for a in hist["test_acc"]]
    return hist


# --- what the transformer does ------------------------------------------------------------

def thetas(st, x, batch_size=1000):
    """θ (n, 2, 3) that the spatial transformer `st` predicts for images x."""
    return outputs(st, x, batch_size, call=st.theta).astype(np.float64)


def transform(st, x, batch_size=1000):
    """The transformer's output images for x."""
    return outputs(st, x, batch_size)


def glyph_pose(latents):
    """(A (n, 2, 2), t (n, 2)): where each glyph's template sits in normalized image
    coordinates, z = A p + t (warp left out). Independent of the canvas size."""
    rot = np.radians(latents[:, 0])
    scale, aspect, shear = latents[:, 1], latents[:, 2], latents[:, 3]
    c, s = np.cos(rot), np.sin(rot)
    ax, ay = scale * aspect, scale / aspect
    M = np.empty((len(latents), 2, 2))
    M[:, 0, 0], M[:, 0, 1] = c * ax, (c * shear + s) * ay      # as in glyphs._render
    M[:, 1, 0], M[:, 1, 1] = -s * ax, (-s * shear + c) * ay
    return (2 * 20 / 28) * M, 2 * latents[:, 4:6]


def pose_after(theta, A, t):
    """The glyph's pose in the ST's output: L = θ_A⁻¹ A and centre θ_A⁻¹ (t − θ_t)."""
    inv = np.linalg.inv(theta[:, :, :2])
    return inv @ A, np.einsum("nij,nj->ni", inv, t - theta[:, :, 2])


def _angle(L):
    return np.degrees(np.arctan2(L[:, 0, 1] - L[:, 1, 0], L[:, 0, 0] + L[:, 1, 1]))


def ink_centroid(images):
    """Ink-weighted mean pixel position (x, y) relative to the image centre, in pixels."""
    n, _, h, w = images.shape
    ink = images.reshape(n, h, w).astype(np.float64)
    total = ink.sum((1, 2)) + 1e-12
    ys, xs = np.arange(h) + 0.5 - h / 2, np.arange(w) + 0.5 - w / 2
    return np.stack([(ink.sum(1) * xs).sum(1) / total, (ink.sum(2) * ys).sum(1) / total], 1)


def _summary(angle, height, centre_px, ink_px):
    def ms(v):
        return {"mean": float(np.mean(v)), "std": float(np.std(v))}
    return {"rotation_deg": ms(angle), "height_px": ms(height),
            "centre_offset_px": {"rms": float(np.sqrt(np.mean(np.sum(centre_px ** 2, 1)))),
                                 "spread": float(np.sqrt(np.mean(np.sum(
                                     (centre_px - centre_px.mean(0)) ** 2, 1))))},
            "ink_centroid_px": {"rms": float(np.sqrt(np.mean(np.sum(ink_px ** 2, 1)))),
                                "spread": float(np.sqrt(np.mean(np.sum(
                                    (ink_px - ink_px.mean(0)) ** 2, 1))))}}


def pose_report(st, x, latents, labels=None):
    """How the digits sit before (the input) and after (the ST's output): rotation (°),
    height (pixels) and centre offset from the image centre (pixels), each as a mean and a
    spread over the images; plus the ink centroid measured from the pixels, which does not
    rely on θ or the latents. Upright, centred and equal-sized means small spreads after.
    Also the correlation between the rotation the ST removes and the drawn rotation, the
    spread of the rotation after per class (given labels), and the per-image rotations."""
    side_in, side_out = x.shape[-1], st.output_size[-1]
    A, t = glyph_pose(latents)
    theta = thetas(st, x)
    L, c = pose_after(theta, A, t)
    half_in, half_out = side_in / 2, side_out / 2
    rot_before, rot_after = _angle(A), _angle(L)
    before = _summary(rot_before, np.sqrt(np.linalg.det(A)) * TEMPLATE_HEIGHT * half_in,
                      t * half_in, ink_centroid(x))
    after = _summary(rot_after, np.sqrt(np.abs(np.linalg.det(L))) * TEMPLATE_HEIGHT * half_out,
                     c * half_out, ink_centroid(transform(st, x)))
    rec = {"before": before, "after": after,
           "rotation_removed_vs_drawn_corr": float(np.corrcoef(rot_before - rot_after,
                                                               rot_before)[0, 1]),
           "theta_mean": theta.mean(0).round(4).tolist(),
           "per_image": {"rotation_before": rot_before.round(2).tolist(),
                         "rotation_after": rot_after.round(2).tolist()}}
    if labels is not None:
        rec["rotation_std_by_class"] = {
            "before": [float(np.std(rot_before[labels == k])) for k in range(NUM_CLASSES)],
            "after": [float(np.std(rot_after[labels == k])) for k in range(NUM_CLASSES)]}
        rec["per_image"]["labels"] = np.asarray(labels).tolist()
    return rec


# --- the experiment ---------------------------------------------------------------------

def name_of(arch, st):
    return ("ST-" if st else "") + arch.upper()


def train_run(arch, st, data, epochs, lr, loc_lr, lr_decay=1.0, loc_width=32, seed=0,
              distortion="RTS"):
    """Train one model from scratch; returns its record (and the model)."""
    x, y, xt, yt = data
    model = make_model(arch, x.shape[1:], st=st, loc_width=loc_width, seed=seed)
    t0 = time.perf_counter()
    hist = train(model, x, y, xt, yt, epochs, lr, loc_lr, lr_decay=lr_decay, seed=seed,
                 desc=name_of(arch, st))
    seconds = time.perf_counter() - t0
    train_acc, _ = evaluate(model, x, y)
    test_acc, test_loss = evaluate(model, xt, yt)
    steps, losses = binned(hist["steps"], hist["losses"], bins=200)
    rec = {"model": name_of(arch, st), "arch": arch, "st": st,
           "parameters": sum(math.prod(p.shape) for p in model.parameters()),
           "test_error": 1.0 - test_acc, "train_error": 1.0 - train_acc, "test_loss": test_loss,
           "paper_error_pct": PAPER_TABLE_1_COLUMNS[distortion][name_of(arch, st)],
           "seconds": round(seconds, 1), "steps": len(hist["losses"]),
           "curve": {"steps": steps, "loss": losses, "test_error": hist["test_error"],
                     "train_acc": hist["train_acc"]}}
    return rec, model


def per_arch(value, arch):
    """A setting for `arch`: `value` itself, or its entry when it is a dict per architecture."""
    return value[arch] if isinstance(value, dict) else value


def _check_choices(archs, columns):
    for what, given, known in (("architecture", archs, ARCHS), ("distortion", columns, DISTORTIONS)):
        for a in set(given) - set(known):
            raise ValueError(f"unknown {what} {a!r}; choose one of {', '.join(known)}")


def run(n_train=10000, n_test=2000, epochs=20, lr=0.05, loc_lr=0.02, lr_decay=0.92, loc_width=128,
        canvas=None, archs=("fcn",), n_examples=20, seed=0, seeds=(0,), distortion="RTS",
        dataset="glyphs", verbose=True):
    """Plain vs ST for each architecture in `archs` on `dataset` (glyphs, or mnist or
    fashion-mnist when their files are present) distorted so (one column of Table 1).
    `epochs` and `loc_lr`: one number, or a dict per architecture ({"fcn": 20, "cnn": 6}).
    Returns a record: config, runs (one per model: errors, curve, time), pose (per ST
    model: pose_report on the test set) and examples (test images and each ST's outputs,
    as arrays, `n_examples` // 10 per class; the demo plots them and leaves them out of
    the JSON)."""
    _check_choices(archs, (distortion,))
    for name, v in (("epochs", epochs), ("loc_lr", loc_lr)):
        if isinstance(v, dict) and any(a not in v for a in archs):
            raise ValueError(f"{name} {v!r} names no value for every architecture in {archs}")
    dist = dict(DISTORTIONS[distortion], **({} if canvas is None else {"canvas": canvas}))
    canvas = dist["canvas"]
    train_set, test_set = rts_data(dataset, n_train, n_test, seed=seed, **dist)
    data = (train_set.images, train_set.labels, test_set.images, test_set.labels)
    rng = np.random.default_rng(seed)
    show = np.concatenate([rng.choice(np.flatnonzero(test_set.labels == k), n_examples // 10,
                                      replace=False) for k in range(NUM_CLASSES)])
    rec = {"config": dict(dataset=dataset, n_train=n_train, n_test=n_test, epochs=epochs, lr=lr, loc_lr=loc_lr,
                          lr_decay=lr_decay, loc_width=loc_width, momentum=0.9, batch_size=128,
                          canvas=canvas, archs=list(archs), seed=seed, distortion=distortion,
                          rotation_deg=dist["rotation"], scale=list(dist["scale"]), seeds=list(seeds)),
           "paper_table_1_pct": PAPER_TABLE_1_COLUMNS[distortion],
           "paper_table_1_columns": PAPER_TABLE_1_COLUMNS, "runs": [], "pose": {},
           "examples": {"index": show.tolist(), "labels": test_set.labels[show].tolist(),
                        "inputs": test_set.images[show], "outputs": {}}}
    for arch in archs:
        for st in (False, True):
            ep, llr = int(per_arch(epochs, arch)), per_arch(loc_lr, arch)
            one = lambda s: train_run(arch, st, data, ep, lr, llr, lr_decay=lr_decay,  # noqa: E731
                                      loc_width=loc_width, seed=s, distortion=distortion)
            # more seeds (initial weights and batch order; the same data): errors only
            (r, model), others = one(seeds[0]), [one(s)[0] for s in seeds[1:]]
            r["seed_runs"] = [{"seed": s, **{k: x[k] for k in ("test_error", "train_error", "seconds")}}
                              for s, x in zip(seeds, [r] + others)]
            r["test_error_over_seeds"] = summary([x["test_error"] for x in r["seed_runs"]])
            rec["runs"].append(r)
            if st:
                sp = spatial_transformer_of(model)
                rec["pose"][r["model"]] = pose_report(sp, test_set.images, test_set.latents,
                                                     test_set.labels)
                rec["examples"]["outputs"][r["model"]] = transform(sp, test_set.images[show])
            if verbose:
                tqdm.write(f"  {r['model']:<7} test error {100 * r['test_error']:5.2f} %  "
                           f"train error {100 * r['train_error']:5.2f} %  ({r['seconds']:.0f} s)")
    rec["st_minus_plain"] = {}
    for arch in archs:
        plain, st_run = (next(r for r in rec["runs"] if r["arch"] == arch and r["st"] == st)
                         for st in (False, True))
        rec["st_minus_plain"][arch] = paired(
            [x["test_error"] for x in st_run["seed_runs"]],
            [x["test_error"] for x in plain["seed_runs"]], st_run["model"], plain["model"],
            what=f"test error, {distortion}", scale=100, unit=" points")
        p = PAPER_TABLE_1_COLUMNS[distortion]
        rec["st_minus_plain"][arch]["paper_pct"] = round(p[st_run["model"]] - p[plain["model"]], 2)
    return rec


def run_table(columns=tuple(DISTORTIONS), archs=ARCHS, verbose=True, **kw):
    """The paper's Table 1 as far as `columns` (R, RTS) and `archs` (fcn, cnn) reach: `run`
    once per column with the same settings `kw`. Returns {config (the shared settings,
    columns, archs), columns: {column: run's record}, table: one row per model and column
    (test error over seeds as `summary` gives it, beside the paper's %), st_minus_plain:
    {column: {arch: the paired difference}}, paper_table_1_columns}."""
    _check_choices(archs, columns)
    if not columns or not archs:
        raise ValueError("run_table needs at least one column and one architecture")
    rec = {"columns": {}, "paper_table_1_columns": PAPER_TABLE_1_COLUMNS, "table": [],
           "st_minus_plain": {}}
    for c in columns:
        if verbose:
            d = DISTORTIONS[c]
            tqdm.write(f"column {c}: rotated ±{d['rotation']:g}°, scaled "
                       f"{d['scale'][0]}–{d['scale'][1]}, on {d['canvas']}×{d['canvas']}")
        rec["columns"][c] = col = run(archs=archs, distortion=c, verbose=verbose, **kw)
        rec["st_minus_plain"][c] = col["st_minus_plain"]
    per_column = ("canvas", "distortion", "rotation_deg", "scale")
    first = rec["columns"][columns[0]]["config"]
    rec["config"] = dict({k: v for k, v in first.items() if k not in per_column},
                         columns=list(columns), archs=list(archs))
    for arch in archs:
        for st in (False, True):
            for c in columns:
                r = next(x for x in rec["columns"][c]["runs"] if x["model"] == name_of(arch, st))
                rec["table"].append({"model": r["model"], "column": c,
                                     "test_error": r["test_error_over_seeds"],
                                     "paper_error_pct": r["paper_error_pct"],
                                     "parameters": r["parameters"],
                                     "seconds": [x["seconds"] for x in r["seed_runs"]]})
    return rec
