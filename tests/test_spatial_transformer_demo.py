"""Spatial transformer reproduction (Jaderberg et al. 2015): gradients reach θ through
grid_sample (finite differences in float64, PyTorch when installed), the pose arithmetic
against the glyph renderer, and a --quick run of the demo (Table 1 against the paper's
numbers, parameter counts in closed form, the paired differences redone by hand).

Runtime: 26 s wall for the file on the 2-core machine at load 0.6 with NUMBA_NUM_THREADS=1,
18 s of it the --quick demo run (both columns, all four models, two seeds); 104 s under
load 5.7."""
import json
import os
import sys

import numpy as np
import pytest

import tinydeep as td
from tinydeep import nn
from tinydeep.data import render_glyphs
from tinydeep.experiments import spatial_transformer as stx
from tinydeep.gradcheck import gradcheck

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))
import spatial_transformer as demo  # noqa: E402


def tiny_st(seed=0):
    """A float64 ST on 4×5 images: Flatten → Linear(20, 3) → ReLU → Linear(3, 6), its last
    layer moved off the identity so θ rotates, scales and shifts, and sample points fall
    between pixels."""
    td.manual_seed(seed)
    loc = nn.Sequential(nn.Flatten(), nn.Linear(20, 3), nn.ReLU(), nn.Linear(3, 6))
    st = nn.SpatialTransformer(loc, (3, 5))
    rng = np.random.default_rng(seed)
    loc[3].weight.data = rng.normal(0, 0.3, (6, 3))
    loc[3].bias.data = np.array([0.8, 0.3, 0.1, -0.25, 0.9, -0.05])
    for p in st.parameters():
        p.data = p.data.astype(np.float64)
    x = td.tensor(rng.random((2, 1, 4, 5)), dtype=np.float64)
    return st, x


def test_gradients_reach_the_localization_net_through_grid_sample():
    st, x = tiny_st()
    params = st.parameters()
    assert len(params) == 4 and all(p.dtype == np.float64 for p in params)
    # every parameter of the localization net influences the output only through θ
    assert gradcheck(lambda *ps: st(x), params, eps=1e-6, atol=1e-7, rtol=1e-5)
    # and the gradient is not zero: the classification loss can move θ
    out = st(x)
    (out * td.tensor(np.random.default_rng(1).standard_normal(out.shape),
                     dtype=np.float64)).sum().backward()
    assert all(np.abs(p.grad).max() > 1e-3 for p in params)


def test_gradient_of_the_input_image_counts_both_paths():
    st, x = tiny_st(seed=2)
    x.requires_grad = True   # x is sampled and also read by the localization net
    assert gradcheck(lambda x: st(x), [x], eps=1e-6, atol=1e-7, rtol=1e-5)


def test_localization_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    st, x = tiny_st(seed=3)
    out = st(x)
    v = np.random.default_rng(4).standard_normal(out.shape)
    (out * td.tensor(v, dtype=np.float64)).sum().backward()

    lin1, lin2 = st.localization[1], st.localization[3]
    W1, b1, W2, b2 = (torch.tensor(p.data, requires_grad=True)
                      for p in (lin1.weight, lin1.bias, lin2.weight, lin2.bias))
    xt = torch.tensor(x.data)
    theta = torch.relu(xt.flatten(1) @ W1.T + b1) @ W2.T + b2
    grid = torch.nn.functional.affine_grid(theta.view(-1, 2, 3), (2, 1, 3, 5), align_corners=False)
    ref = torch.nn.functional.grid_sample(xt, grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    (ref * torch.tensor(v)).sum().backward()
    for ours, theirs in ((lin1.weight, W1), (lin1.bias, b1), (lin2.weight, W2), (lin2.bias, b2)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


# --- RTS data and the pose arithmetic ----------------------------------------------------

def test_rts_glyphs_ranges():
    g = stx.rts_glyphs(400, seed=5, canvas=42)
    assert g.images.shape == (400, 1, 42, 42) and g.images.dtype == np.float32
    rot, scale, shift = g.latents[:, 0], g.latents[:, 1], g.latents[:, 4:6]
    assert np.abs(rot).max() <= 45 and np.abs(rot).max() > 40
    r = 28 / 42 * stx.BASE_SCALE
    assert scale.min() >= 0.7 * r and scale.max() <= 1.2 * r
    assert np.abs(shift).max() <= 7 / 42 and np.abs(shift).max() > 6 / 42   # ±7 px on 42
    # digits are as tall (in pixels) as on a 28×28 glyph, scaled by 0.7–1.2
    A, _ = stx.glyph_pose(g.latents)
    height = np.sqrt(np.linalg.det(A)) * 21
    assert 0.7 * 17.5 * 0.99 <= height.min() and height.max() <= 1.2 * 17.5 * 1.01
    with pytest.raises(ValueError, match="canvas"):
        stx.rts_glyphs(10, canvas=20)


def test_pose_matches_the_renderer():
    """θ built from the drawn latents to undo rotation and shift must turn each rendered
    digit into the digit the renderer draws upright and centred: the sign of the angle, the
    40/28 factor and y pointing down all have to agree with glyphs._render."""
    g = stx.rts_glyphs(40, seed=6)
    clean = render_glyphs(g.labels, g.latents, size=42)
    upright = g.latents.copy()
    upright[:, 0] = 0.0
    upright[:, 4:6] = 0.0
    target = render_glyphs(g.labels, upright, size=42)
    A, t = stx.glyph_pose(g.latents)
    A0, _ = stx.glyph_pose(upright)
    # θ maps the upright pose o = A0 p to the drawn one z = A p + t
    theta = np.concatenate([A @ np.linalg.inv(A0), t[:, :, None]], axis=2)
    with td.no_grad():
        grid = td.functional.affine_grid(td.tensor(theta), clean.shape)
        out = td.functional.grid_sample(td.tensor(clean), grid).numpy()
    for o, tg in zip(out, target):
        assert np.corrcoef(o.ravel(), tg.ravel())[0, 1] > 0.9
    # the pose arithmetic says the same: upright (the upright glyph's own angle) and centred
    L, c = stx.pose_after(theta, A, t)
    np.testing.assert_allclose(L, A0, atol=1e-12)
    np.testing.assert_allclose(c, 0, atol=1e-12)


def test_pose_report_of_a_fixed_transform():
    """An ST stuck at one θ (zero weights, bias = θ): rotating by φ and zooming by s must
    show up as rotation − φ and height / s, and its shift as a move of the ink centroid."""
    loc = nn.Sequential(nn.Flatten(), nn.Linear(42 * 42, 6))
    st = nn.SpatialTransformer(loc, (42, 42))
    phi, s, tx = np.radians(20.0), 0.8, 0.1
    c, si = np.cos(phi), np.sin(phi)
    theta = np.array([[s * c, s * si, tx], [-s * si, s * c, 0.0]])   # glyphs' rotation convention
    loc[1].bias.data = theta.ravel().astype(np.float32)
    g = stx.rts_glyphs(300, seed=7)
    p = stx.pose_report(st, g.images, g.latents, g.labels)
    b, a = p["before"], p["after"]
    assert a["rotation_deg"]["mean"] == pytest.approx(b["rotation_deg"]["mean"] - 20, abs=0.5)
    assert a["rotation_deg"]["std"] == pytest.approx(b["rotation_deg"]["std"], rel=0.05)
    assert a["height_px"]["mean"] == pytest.approx(b["height_px"]["mean"] / s, rel=1e-6)
    assert p["rotation_removed_vs_drawn_corr"] == pytest.approx(0.0, abs=0.2)
    assert len(p["per_image"]["rotation_after"]) == 300
    assert len(p["rotation_std_by_class"]["after"]) == 10


def test_ink_centroid_closed_form():
    img = np.zeros((2, 1, 10, 8), np.float32)
    img[0, 0, 0, 0] = 1.0                  # the top-left pixel's centre: (0.5 − 4, 0.5 − 5)
    img[1, 0, 4:6, 3:5] = 1.0              # a block around the centre
    np.testing.assert_allclose(stx.ink_centroid(img), [[-3.5, -4.5], [0.0, 0.0]], atol=1e-9)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="architecture"):
        stx.make_model("resnet", (1, 42, 42))
    with pytest.raises(ValueError, match="architecture"):
        stx.run(archs=("mlp",))


# --- a --quick run of the demo ---------------------------------------------------------------

# Jaderberg et al. 2015, Table 1 (% test error on distorted MNIST), typed from the paper
PAPER = {"R": {"FCN": 2.1, "CNN": 1.2, "ST-FCN": 1.2, "ST-CNN": 0.7},
         "RTS": {"FCN": 5.2, "CNN": 0.8, "ST-FCN": 0.8, "ST-CNN": 0.5}}


def loc_params(side, w):
    """Flatten → Linear(side², w) → ReLU → Linear(w, w) → ReLU → Linear(w, 6)."""
    return side * side * w + w + w * w + w + w * 6 + 6


def cnn_params(side, c1, c2):
    """5×5 conv (1→c1), 5×5 conv (c1→c2), two 2×2 pools, Linear to 10 classes."""
    return 25 * c1 + c1 + 25 * c1 * c2 + c2 + c2 * (side // 4) ** 2 * 10 + 10


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("st")
    rec = demo.main(["--quick", "--out", str(out)])
    return rec, out


def test_quick_writes_plots_and_a_json_record(quick):
    rec, out = quick
    for name in ("spatial_transformer.png", "spatial_transformer_table.png",
                 "spatial_transformer_curves.png"):
        assert (out / name).stat().st_size > 10_000
    saved = json.loads((out / "spatial_transformer.json").read_text())
    assert list(saved["columns"]) == ["R", "RTS"]        # both columns and all four models
    for c, col in saved["columns"].items():
        assert [r["model"] for r in col["runs"]] == ["FCN", "ST-FCN", "CNN", "ST-CNN"]
        assert [r["paper_error_pct"] for r in col["runs"]] == [
            PAPER[c][m] for m in ("FCN", "ST-FCN", "CNN", "ST-CNN")]
        assert "inputs" not in col["examples"] and len(col["examples"]["index"]) == 10
    assert saved["paper_table_1_columns"] == PAPER
    assert len(saved["table"]) == 8


def test_quick_run_records(quick):
    rec, _ = quick
    cfg = rec["config"]
    assert cfg["epochs"] == demo.QUICK["epochs"] and cfg["columns"] == ["R", "RTS"]
    for c, col in rec["columns"].items():
        side = stx.DISTORTIONS[c]["canvas"]
        runs = {r["model"]: r for r in col["runs"]}
        for r in runs.values():
            ep = cfg["epochs"][r["arch"]]
            assert len(r["curve"]["test_error"]) == ep
            assert r["steps"] == ep * -(-cfg["n_train"] // 128)
            # seeds: the first seed's run is the record's; mean and sample std over seeds
            errs = [x["test_error"] for x in r["seed_runs"]]
            assert [x["seed"] for x in r["seed_runs"]] == cfg["seeds"] and errs[0] == r["test_error"]
            assert r["test_error_over_seeds"]["mean"] == pytest.approx(np.mean(errs))
            assert r["test_error_over_seeds"]["std"] == pytest.approx(np.std(errs, ddof=1))
            row = next(x for x in rec["table"] if x["model"] == r["model"] and x["column"] == c)
            assert row["test_error"] == r["test_error_over_seeds"]
            assert row["paper_error_pct"] == PAPER[c][r["model"]]
        assert runs["FCN"]["test_error"] < 0.9 - 0.05   # beats chance (0.9); the CNN pair
        # gets 2 quick epochs (16 steps): too few to promise that
        # the same classifier: the ST adds exactly the localization net's parameters
        w = cfg["loc_width"]
        assert runs["FCN"]["parameters"] == side * side * 256 + 256 + 256 * 256 + 256 + 2570
        assert runs["CNN"]["parameters"] == cnn_params(side, *stx.CNN_CHANNELS)
        for arch in ("FCN", "CNN"):
            assert runs["ST-" + arch]["parameters"] - runs[arch]["parameters"] == loc_params(side, w)
        ex = col["examples"]
        assert ex["inputs"].shape == ex["outputs"]["ST-CNN"].shape == (10, 1, side, side)
        assert sorted(ex["labels"]) == list(range(10))


def test_paired_differences_are_the_seed_by_seed_arithmetic(quick):
    """ST-X − X: per-seed differences, their mean and sample std, and a 95 % t interval
    (t quantile from scipy) whose exclusion of 0 is what 'beyond the seed noise' means."""
    t = pytest.importorskip("scipy.stats").t
    rec, _ = quick
    for c, col in rec["columns"].items():
        runs = {r["model"]: r for r in col["runs"]}
        for arch in ("fcn", "cnn"):
            d = rec["st_minus_plain"][c][arch]
            st = [x["test_error"] for x in runs["ST-" + arch.upper()]["seed_runs"]]
            plain = [x["test_error"] for x in runs[arch.upper()]["seed_runs"]]
            diff = np.subtract(st, plain)
            assert d["n"] == len(diff) == 2
            assert d["mean"] == pytest.approx(diff.mean(), abs=1e-12)
            assert d["std"] == pytest.approx(abs(diff[0] - diff[1]) / np.sqrt(2), abs=1e-12)
            half = t.ppf(0.975, 1) * d["std"] / np.sqrt(2)
            assert d["ci95"] == pytest.approx([diff.mean() - half, diff.mean() + half])
            assert d["beyond_noise"] == (not d["ci95"][0] <= 0 <= d["ci95"][1])
            assert d["paper_pct"] == pytest.approx(PAPER[c]["ST-" + arch.upper()]
                                                   - PAPER[c][arch.upper()])
            assert ("beyond" if d["beyond_noise"] else "within") in d["sentence"]


def test_quick_transformers_moved(quick):
    rec, _ = quick
    # θ left the identity it started from: the loss gradient reached it through grid_sample
    for c in ("R", "RTS"):
        theta = np.array(rec["columns"][c]["pose"]["ST-FCN"]["theta_mean"])
        assert np.abs(theta - np.array([[1, 0, 0], [0, 1, 0]])).max() > 0.01


def test_command_line_choices():
    """--models and --columns narrow the run; the old --distortion (one column) and --cnn
    (now the default) are still accepted; --epochs sets every architecture, --cnn-epochs
    the CNN pair alone."""
    _, cfg, models, cols = demo.settings([])
    assert models == ["fcn", "cnn"] and cols == ["R", "RTS"] and cfg == dict(demo.DEFAULT)
    _, cfg, models, cols = demo.settings(["--distortion", "R", "--cnn"])
    assert models == ["fcn", "cnn"] and cols == ["R"]
    _, cfg, models, cols = demo.settings(["--models", "fcn", "--columns", "RTS", "--epochs", "5"])
    assert models == ["fcn"] and cols == ["RTS"] and cfg["epochs"] == {"fcn": 5}
    assert cfg["loc_lr"] == {"fcn": demo.LOC_LR["fcn"]}
    _, cfg, _, _ = demo.settings(["--cnn-epochs", "2", "--seeds", "4"])
    assert cfg["epochs"] == {"fcn": demo.DEFAULT["epochs"]["fcn"], "cnn": 2}
    assert cfg["seeds"] == (0, 1, 2, 3)
    with pytest.raises(SystemExit):
        demo.settings(["--models", "resnet"])
    with pytest.raises(ValueError, match="distortion"):
        stx.run_table(columns=("RT",))


def test_r_distortion_is_the_papers_r_column():
    g = stx.rts_glyphs(50, seed=0, **stx.DISTORTIONS["R"])
    assert g.images.shape == (50, 1, 28, 28)
    rot = g.latents[:, list(g.latent_names).index("rotation")]
    assert np.abs(rot).max() <= 90 and np.abs(rot).max() > 45   # ±90°, wider than RTS
    assert stx.PAPER_TABLE_1_COLUMNS["R"] == {"FCN": 2.1, "ST-FCN": 1.2, "CNN": 1.2, "ST-CNN": 0.7}
    with pytest.raises(ValueError, match="distortion"):
        stx.run(distortion="RT")


# --- --dataset: MNIST-like images distorted the same way, and the sets that do not fit -------

def test_rts_images_place_a_digit_where_the_renderer_draws_it():
    """A clean glyph drawn on 28×28 at scale 1 (a 20-pixel digit, as MNIST's), then turned,
    scaled and placed by rts_images, against the renderer drawing the recorded pose
    directly on the canvas (stroke width kept in pixels): the same image up to resampling,
    so the rotation sense, the scale and the shift all mean what glyph_pose reads."""
    labels = np.arange(10)
    z = np.zeros((10, 12))
    z[:, 1], z[:, 2], z[:, 6] = 1.0, 1.0, 0.09
    out = stx.rts_images(render_glyphs(labels, z, 28), labels, seed=3)
    assert out.images.shape == (10, 1, 42, 42) and np.array_equal(out.labels, labels)
    lat = out.latents
    assert np.all(np.abs(lat[:, 0]) <= 45) and np.all(lat[:, 2] == 1.0) and np.all(lat[:, 3] == 0)
    assert np.all((lat[:, 1] >= 0.7 * 28 / 42) & (lat[:, 1] <= 1.2 * 28 / 42))
    assert np.all(np.abs(lat[:, 4:6]) <= 7 / 42)
    drawn = render_glyphs(labels, np.column_stack([lat[:, :6], np.full(10, 0.09 * 28 / 42),
                                                   lat[:, 7:]]), 42)
    for a, b in zip(out.images, drawn):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(stx.ink_centroid(out.images) - stx.ink_centroid(drawn)).max() < 0.3
    # the R column: ±90° on 28×28, no scale or shift
    r = stx.rts_images(render_glyphs(labels, z, 28), labels, seed=1, **stx.DISTORTIONS["R"])
    assert r.images.shape == (10, 1, 28, 28) and np.all(r.latents[:, 4:6] == 0)
    assert np.allclose(r.latents[:, 1], 1.0)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    from test_data_formats import mnist_set, write_mnist_gz
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path))
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", demo.QUICK["n_test"])):
        write_mnist_gz(tmp_path / "mnist", prefix, *mnist_set(rng, n))
    return tmp_path


def test_a_real_set_runs_distorted_on_the_canvas(fake_mnist, capsys):
    rec = demo.main(["--quick", "--dataset", "mnist", "--n-train", "60", "--epochs", "1", "--seeds", "1",
                     "--models", "fcn", "--distortion", "RTS", "--out", str(fake_mnist / "out")])
    cfg = rec["config"]
    assert cfg["dataset"] == "mnist" and cfg["n_train"] == 60 and cfg["columns"] == ["RTS"]
    col = rec["columns"]["RTS"]
    assert col["config"]["canvas"] == 42 and col["examples"]["inputs"].shape[1:] == (1, 42, 42)
    assert [r["model"] for r in col["runs"]] == ["FCN", "ST-FCN"]
    fcn = col["runs"][0]
    assert fcn["parameters"] == 42 * 42 * 256 + 256 + 256 * 256 + 256 + 2570
    assert "mnist: 60 training" in capsys.readouterr().out
    saved = json.loads((fake_mnist / "out" / "spatial_transformer.json").read_text())
    assert saved["config"]["dataset"] == "mnist"


@pytest.mark.parametrize("name, why", [("mnist1d", "cannot be rotated in a plane"),
                                       ("cifar10", "no digit on a blank background"),
                                       ("svhn", "unknown dataset 'svhn'")])
def test_sets_that_do_not_fit_are_refused_before_anything_runs(name, why, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(["--dataset", name, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --dataset" in err and why in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=why):
        stx.run(dataset=name)


def test_missing_files_stop_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match="--dataset fashion-mnist: its files are not there"):
        demo.main(["--dataset", "fashion-mnist", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
