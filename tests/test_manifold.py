"""Manifold density and interpolation: the paths against their closed forms, the model's
probabilities against a NumPy forward pass, and the must-hold relations of a --quick run."""
import json
import os
import sys

import numpy as np
import pytest

from tinydeep.data import LATENT_NAMES, glyphs, render_glyphs
from tinydeep.experiments import manifold as mf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))
import manifold as demo  # noqa: E402


def test_train_set_holds_exactly_k_of_each_digit():
    x, y = mf.train_set(3, seed=0)
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.float32
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, 3))
    x2, _ = mf.train_set(3, seed=1)
    assert not np.array_equal(x, x2)                  # each seed its own set
    with pytest.raises(ValueError, match="per_class"):
        mf.train_set(0)


def test_latent_path_renders_the_interpolated_latents():
    g = glyphs(2, seed=5)
    z_a, z_b = g.latents
    t = [0.0, 0.25, 0.5, 1.0]
    same = mf.latent_path(6, z_a, 6, z_b, t)
    assert same.shape == (4, 1, 28, 28)
    for ti, img in zip(t, same):
        z = z_a + ti * (z_b - z_a)
        assert np.array_equal(img, render_glyphs(np.array([6]), z[None])[0])
    # between two digits the digit switches at t = ½
    cross = mf.latent_path(3, z_a, 8, z_b, t)
    for ti, img in zip(t, cross):
        digit = 3 if ti < 0.5 else 8
        z = z_a + ti * (z_b - z_a)
        assert np.array_equal(img, render_glyphs(np.array([digit]), z[None])[0])


def test_pixel_path_is_the_linear_blend():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, 5, 5)).astype(np.float32)
    p = mf.pixel_path(a, b, [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(p[0], a)
    np.testing.assert_array_equal(p[2], b)
    np.testing.assert_allclose(p[1], 0.75 * a + 0.25 * b, rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        mf.pixel_path(a, b[:, :4], [0.5])


def test_style_names_every_latent():
    z = mf.style(**mf.STYLE_A)
    assert z.shape == (len(LATENT_NAMES),) and z[0] == mf.STYLE_A["rotation"]
    with pytest.raises(ValueError, match="missing"):
        mf.style(rotation=1.0)


def test_predict_is_the_softmax_of_the_mlp():
    model = mf.make_model(seed=3, width=32)
    x = glyphs(7, seed=2).images
    p = mf.predict(model, x)
    W1, b1, W2, b2 = (t.numpy().astype(np.float64) for t in model.parameters())
    h = np.maximum(x.reshape(7, -1) @ W1.T + b1, 0) @ W2.T + b2
    q = np.exp(h - h.max(1, keepdims=True))
    np.testing.assert_allclose(p, q / q.sum(1, keepdims=True), atol=1e-5)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("manifold")
    return demo.main(["--quick", "--out", str(out)]), out


def test_quick_writes_plots_and_a_json_record(quick):
    rec, out = quick
    for name in ("manifold_density.png", "manifold_interpolation.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "manifold.json").read_text())
    assert saved["density"]["plain"]["mean"] == rec["density"]["plain"]["mean"]


def test_quick_density(quick):
    rec, _ = quick
    d, cfg = rec["density"], mf.QUICK
    k = list(cfg["per_class"])
    assert d["per_class"] == k
    for name, augment in (("plain", False), ("augmented", True)):
        for ki, accs, mean in zip(k, d[name]["test_accuracy"], d[name]["mean"]):
            runs = [r for r in d["runs"] if r["per_class"] == ki and r["augment"] == augment]
            assert len(runs) == (len(cfg["seeds"]) if ki <= cfg["many_seeds_up_to"] else 1)
            assert all(r["n_train"] == 10 * ki and r["steps"] >= cfg["steps"] for r in runs)
            assert accs == [r["test_accuracy"] for r in runs]
            assert mean == pytest.approx(np.mean(accs))
    plain, aug = d["plain"]["mean"], d["augmented"]["mean"]
    assert d["plain"]["train_accuracy"][0] == 1.0          # ten images are memorized
    assert plain[-1] > plain[0] + 0.3                      # density helps
    assert all(0.1 < a <= 1 for a in plain + aug)          # all above chance
    assert aug[0] > plain[0] + 0.05                        # augmentation helps most at
    assert d["lift"][0] > d["lift"][-1]                    # the thin end
    for ki, lp, a, p in zip(k, d["lift_paired"], d["augmented"]["test_accuracy"],
                            d["plain"]["test_accuracy"]):
        if len(a) > 1:   # paired over seeds: the mean of the per-seed differences
            diffs = np.subtract(a, p)
            assert lp["mean"] == pytest.approx(diffs.mean())
            assert lp["std"] == pytest.approx(diffs.std(ddof=1))
            assert ("beyond" in lp["sentence"]) == lp["beyond_noise"]


def test_quick_interpolation(quick):
    rec, _ = quick
    it = rec["interpolation"]
    t = np.array(it["t"])
    assert t[0] == 0 and t[-1] == 1 and len(t) == 9
    for e in it["examples"]:
        # both paths start and end at the same two images, so with the same predictions
        for end in (0, -1):
            np.testing.assert_array_equal(e["latent_images"][end], e["pixel_images"][end])
            assert e["latent"]["predicted"][end] == e["pixel"]["predicted"][end]
    lat, pix = it["latent"], it["pixel"]
    assert lat["mean_p_true"][0] == pytest.approx(pix["mean_p_true"][0])
    assert lat["mean_p_true"][-1] == pytest.approx(pix["mean_p_true"][-1])
    mid = len(t) // 2
    # off the manifold the model is less sure of the digit than on it
    assert pix["mean_p_true"][mid] < lat["mean_p_true"][mid]
    assert it["n_pairs"] > 0.8 * mf.QUICK["n_pairs"] / 2


# --- --dataset mnist1d: the density part alone; sets without latents refused -----------------

def test_mnist1d_train_set_picks_k_of_each_class_from_its_training_set():
    from tinydeep.data import mnist1d
    x_all, y_all = mnist1d()
    x, y = mf.train_set(3, seed=0, dataset="mnist1d")
    assert x.shape == (30, 1, 1, 40) and np.array_equal(np.bincount(y, minlength=10), [3] * 10)
    rows = [np.flatnonzero((x_all == xi).all(axis=(1, 2, 3))) for xi in x]
    assert all(len(r) == 1 for r in rows)                         # each a training sequence,
    idx = [r[0] for r in rows]
    assert len(set(idx)) == 30 and np.array_equal(y_all[idx], y)  # distinct, with its label
    assert not np.array_equal(x, mf.train_set(3, seed=1, dataset="mnist1d")[0])
    most = np.bincount(y_all).min()
    with pytest.raises(ValueError, match=f"holds {most}"):
        mf.train_set(most + 1, dataset="mnist1d")
    assert max(mf.PER_CLASS_MNIST1D) <= most


def test_mnist1d_augmentation_shifts_the_sequence():
    ramp = np.arange(1, 41, dtype=np.float32).reshape(1, 1, 1, 40).repeat(50, 0)
    out = mf.augmentation("mnist1d")(ramp, np.random.default_rng(0))
    shifts = set()
    for row in out[:, 0, 0]:
        s = int(row[row > 0][0]) - 1 - int(np.flatnonzero(row > 0)[0])   # value - position
        np.testing.assert_array_equal(row[row > 0], np.arange(1, 41)[max(s, 0):40 + min(s, 0)])
        shifts.add(s)
    assert shifts <= set(range(-5, 6)) and len(shifts) > 5


def test_mnist1d_quick_run_is_the_density_part_alone(tmp_path, monkeypatch):
    # a smaller --quick (two sizes, one seed, 150 steps: ~15 s on a loaded machine)
    monkeypatch.setattr(mf, "QUICK", dict(mf.QUICK, per_class=(1, 30), seeds=(0,), steps=150))
    rec = demo.main(["--quick", "--dataset", "mnist1d", "--out", str(tmp_path)])
    assert rec["interpolation"] is None and rec["config"]["dataset"] == "mnist1d"
    assert (tmp_path / "manifold_density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "manifold_interpolation.png").exists()
    saved = json.loads((tmp_path / "manifold.json").read_text())
    assert saved["interpolation"] is None and saved["density"]["augmentation"] == {"shift": 5}
    d = rec["density"]
    assert d["n_test"] == 1000 and d["augmentation_name"] == "Shift1d"
    assert [r["n_train"] for r in d["runs"] if not r["augment"]][-1] == 10 * d["per_class"][-1]
    plain = d["plain"]["mean"]
    assert plain[-1] > plain[0] and plain[-1] > 0.2        # density helps, above chance


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_sets_without_latent_factors_are_refused(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(["--dataset", name, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --dataset" in err and "latent factors" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="latent factors"):
        mf.run(dataset=name)
    with pytest.raises(SystemExit) as e:
        demo.main(["--dataset", "svhn"])
    assert e.value.code == 2 and "unknown dataset 'svhn'" in capsys.readouterr().err
