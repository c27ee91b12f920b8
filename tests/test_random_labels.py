"""Zhang et al. 2017 reproduction: the exact memorizer against its closed form, and the
structure and must-hold relations of a --quick run of the demo."""
import json
import os
import sys

import numpy as np
import pytest

import tinydeep as td
from tinydeep import nn
from tinydeep.experiments import fit, evaluate
from tinydeep.experiments import random_labels as rl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))
import random_labels as demo  # noqa: E402


# --- Theorem 1 ------------------------------------------------------------------------

def closed_form(info, X):
    """f(x) = Σⱼ wⱼ relu(⟨a, x⟩ − bⱼ), in NumPy, from the memorizer's numbers."""
    z = X.reshape(len(X), -1) @ info["direction"]
    return np.maximum(z[:, None] - info["biases"][None, :], 0.0) @ info["output_weights"]


@pytest.mark.parametrize("n, d", [(200, 784), (1000, 784), (1000, 3)])
def test_exact_memorizer_fits_random_real_targets(n, d):
    rng = np.random.default_rng(n + d)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)   # any scale
    model, info = rl.exact_memorizer(X, y, seed=1)
    f = rl.memorizer_predict(model, X)[:, 0]
    assert f.dtype == np.float64
    assert np.abs(f - y).max() <= 1e-6 * np.abs(y).max()
    assert rl.max_relative_residual(model, X, y) <= 1e-6
    # the tinydeep network computes the paper's formula
    np.testing.assert_allclose(f, closed_form(info, X)[:, 0], rtol=0, atol=1e-7 * np.abs(y).max())


def test_exact_memorizer_has_the_papers_shape():
    rng = np.random.default_rng(0)
    n, d = 50, 7
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    model, info = rl.exact_memorizer(X, y)
    assert info["free_weights"] == info["paper_count_2n_plus_d"] == 2 * n + d
    proj, knots, relu, out = list(model)
    assert isinstance(relu, nn.ReLU)
    assert proj.weight.shape == (1, d) and proj.bias is None
    assert knots.weight.shape == (n, 1) and np.all(knots.weight.numpy() == 1.0)  # fixed ones
    assert out.weight.shape == (1, n) and out.bias is None
    assert all(p.dtype == np.float64 for p in model.parameters())
    # free numbers: a (d), b (n), w (n)
    assert proj.weight.numel() + knots.bias.numel() + out.weight.numel() == 2 * n + d
    # b₁ < z₍₁₎ < b₂ < z₍₂₎ < … < bₙ < z₍ₙ₎, so A is lower triangular with a positive diagonal
    z = np.sort(X @ info["direction"])
    b = info["biases"]
    assert np.all(b < z) and np.all(z[:-1] < b[1:])
    A = np.maximum(z[:, None] - b[None, :], 0.0)
    assert np.all(np.triu(A, 1) == 0) and np.all(np.diag(A) > 0)


def test_exact_memorizer_several_outputs_and_images():
    rng = np.random.default_rng(3)
    X = rng.random((120, 1, 6, 6)).astype(np.float32)       # images are flattened
    labels = rng.integers(0, 10, 120)
    Y = np.eye(10)[labels]
    model, info = rl.exact_memorizer(X, Y)
    assert info["free_weights"] == 36 + 120 + 120 * 10
    assert info["paper_count_2n_plus_d"] is None
    assert rl.max_relative_residual(model, X, Y) <= 1e-6
    assert np.array_equal(rl.memorizer_predict(model, X).argmax(1), labels)


def test_exact_memorizer_refuses_repeated_samples():
    X = np.random.default_rng(0).standard_normal((10, 4))
    X[7] = X[2]
    with pytest.raises(ValueError, match="not distinct"):
        rl.exact_memorizer(X, np.arange(10.0))
    with pytest.raises(ValueError, match="rows"):
        rl.exact_memorizer(X, np.arange(9.0))


# --- the training loop's full-set stop rule ----------------------------------------------

def test_fit_eval_train_scores_the_whole_set_and_stops_on_it():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    td.manual_seed(0)
    model = nn.MLP(20, 64, 1, 3)
    plain = fit(nn.MLP(20, 8, 1, 3), x, y, epochs=1, lr=0.01)
    assert "eval_train_acc" not in plain           # off by default: old records unchanged
    hist = fit(model, x, y, epochs=200, lr=0.1, stop_at_accuracy=1.0, eval_train=True)
    accs = hist["eval_train_acc"]
    assert len(accs) == len(hist["train_acc"])
    assert hist["steps_to_fit"] is not None and accs[-1] == 1.0 and max(accs[:-1]) < 1.0
    assert hist["steps_to_fit"] == len(accs) * 3    # 3 batches of ≤ 128 per epoch
    assert evaluate(model, x, y)[0] == accs[-1]


# --- data ----------------------------------------------------------------------------------

def test_corrupted_keeps_true_test_labels_and_one_pixel_permutation():
    x, y, xt, yt = rl.load_data("glyphs", 60, 40, seed=0)
    xc, yc, xtc, ytc = rl.corrupted(x, y, xt, yt, "random_labels", seed=0)
    assert xc is x and xtc is xt and ytc is yt and not np.array_equal(yc, y)
    # images whose pixel values name their positions show where each pixel went
    ramp = np.repeat(np.arange(784, dtype=np.float32).reshape(1, 1, 28, 28), 3, axis=0)
    labels = np.array([0, 1, 2])
    for kind in ("shuffled_pixels", "random_pixels"):
        xc, yc, xtc, ytc = rl.corrupted(ramp, labels, ramp, labels, kind, seed=0)
        assert np.array_equal(yc, labels) and ytc is labels
        for img in (*xc, *xtc):
            assert np.array_equal(np.sort(img.ravel()), ramp[0].ravel())  # a permutation
            assert not np.array_equal(img, ramp[0])
        one_permutation = all(np.array_equal(img, xc[0]) for img in (*xc, *xtc))
        assert one_permutation == (kind == "shuffled_pixels")


def test_load_data_subsamples_a_real_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mnist"):
        rl.load_data("mnist", 10, 5)
    with pytest.raises(SystemExit, match="--download"):
        demo.main(["--dataset", "mnist", "--out", str(tmp_path / "out")])
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + b"".join(s.to_bytes(4, "big") for s in images.shape)
            + images.tobytes())
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.tobytes())
    x, y, xt, yt = rl.load_data("mnist", 10, 5, seed=0)
    assert x.shape == (10, 1, 28, 28) and xt.shape == (5, 1, 28, 28)
    assert len(set(map(bytes, x))) == 10             # drawn without replacement
    with pytest.raises(ValueError, match="asked for"):
        rl.load_data("mnist", 31, 5)


# --- a --quick run of the demo -----------------------------------------------------------------

@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("random_labels")
    rec = demo.main(["--quick", "--out", str(out)])
    return rec, out


def test_quick_writes_plots_and_a_json_record(quick):
    rec, out = quick
    for name in ("random_labels_fig1a.png", "random_labels_fig1bc.png",
                 "random_labels_theorem1.png"):
        with open(out / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "random_labels.json").read_text())
    assert set(saved) >= {"config", "figure_1a", "figure_1bc", "table_1", "theorem_1"}
    assert saved["figure_1a"]["runs"]["random_labels"]["steps_to_fit"] == \
        rec["figure_1a"]["runs"]["random_labels"]["steps_to_fit"]


def test_quick_figure_1a_every_kind_is_fitted(quick):
    rec, _ = quick
    a, chance = rec["figure_1a"], rec["config"]["chance"]
    assert list(a["runs"]) == list(rl.KINDS_1A)
    for kind, r in a["runs"].items():
        c = r["curve"]
        assert len(c["steps"]) == len(c["loss"]) > 5 and np.all(np.diff(c["steps"]) > 0)
        assert np.all(np.isfinite(c["loss"])) and c["loss"][-1] < c["loss"][0]
        assert len(c["train_acc"]) == len(c["epoch_end_steps"]) == r["epochs"]
        assert r["train_accuracy"] >= 0.99, kind
        if r["steps_to_fit"] is not None:
            assert r["steps_to_fit"] == c["epoch_end_steps"][-1]
            assert c["train_acc"][-1] >= r["fit_threshold"]
            assert r["steps_to_99"] <= r["steps_to_fit"]
    tests = {k: r["test_accuracy"] for k, r in a["runs"].items()}
    assert tests["true"] > chance + 0.4
    for kind in ("random_labels", "gaussian"):
        assert abs(tests[kind] - chance) <= 0.03, kind
    # an MLP does not see a fixed permutation of its inputs; a per-image one destroys the
    # images but not their ink
    assert abs(tests["shuffled_pixels"] - tests["true"]) < 0.06
    assert tests["random_pixels"] < tests["true"] - 0.3
    assert chance < a["ink_baseline"] < tests["true"]


def test_quick_figure_1bc_consistency(quick):
    rec, _ = quick
    bc, chance = rec["figure_1bc"], rec["config"]["chance"]
    p = bc["p"]
    assert p[0] == 0.0 and p[-1] == 1.0 and len(bc["runs"]) == len(p) * len(bc["seeds"])
    noise = [r["label_noise"] for r in bc["runs"]]
    assert noise[0] == 0.0 and np.all(np.diff(noise) > 0) and abs(noise[-1] - 0.9) < 0.05
    # p = 0 is the true-label set and p = 1 the random-label set: the same runs as 1a
    runs_1a = rec["figure_1a"]["runs"]
    assert bc["runs"][0]["steps_to_fit"] == runs_1a["true"]["steps_to_fit"]
    assert bc["runs"][-1]["test_accuracy"] == runs_1a["random_labels"]["test_accuracy"]
    assert bc["mean_relative_time_to_fit"][0] == 1.0
    for rel, steps in zip(bc["mean_relative_time_to_fit"], bc["steps_to_fit"]):
        s0 = bc["steps_to_fit"][0][0]
        assert rel == pytest.approx(steps[0] / s0)
    err = [e[0] for e in bc["test_error"]]
    assert err[0] < 0.5 and abs(err[-1] - (1 - chance)) <= 0.03 and err[-1] > err[0]
    assert all(acc >= 0.99 for accs in bc["train_accuracy"] for acc in accs)


def test_quick_table_1_rows(quick):
    rec, _ = quick
    rows = rec["table_1"]["rows"]
    assert [(r["arch"], r["labels"], r["weight_decay"] > 0, r["augment"]) for r in rows] == \
        [(a, *row) for a in rec["config"]["archs"] for row in rl.TABLE_1_ROWS]
    for r in rows:
        assert r["parameters"] == 784 * 512 + 512 + 512 * 10 + 10
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["train_accuracy"] <= 1
        if r["labels"] == "random_labels":
            assert r["train_accuracy"] >= 0.99
            assert abs(r["test_accuracy"] - rec["config"]["chance"]) <= 0.03
        elif not r["augment"]:
            assert r["train_accuracy"] >= 0.99 and r["test_accuracy"] > 0.5


def test_quick_theorem_1(quick):
    rec, _ = quick
    th, chance = rec["theorem_1"], rec["config"]["chance"]
    n, d = th["n"], th["d"]
    assert th["real_targets"]["free_weights"] == 2 * n + d
    for key in ("real_targets", "random_labels", "true_labels"):
        assert th[key]["max_relative_residual"] <= 1e-6
    assert th["random_labels"]["train_accuracy"] == 1.0
    assert abs(th["random_labels"]["test_accuracy"] - chance) <= 0.04
    c = th["curve"]
    assert len(c["line"]) == len(c["f"]) and len(c["z"]) == len(c["knots"])


# --- seeds, MNIST-1D ------------------------------------------------------------------------

def test_figure_1bc_pairs_corrupted_with_clean_by_seed():
    data = rl.load_data("mnist1d", 200, 200)
    bc = rl.figure_1bc(data, p_levels=(0.0, 1.0), seeds=(0, 1), verbose=False, max_epochs=3,
                       fit_threshold=0.3)
    c = bc["corrupted_vs_clean"]
    err = {(r["seed"], r["p"]): 1 - r["test_accuracy"] for r in bc["runs"]}
    diffs = [err[(s, 1.0)] - err[(s, 0.0)] for s in (0, 1)]
    assert c["test_error"]["mean"] == pytest.approx(np.mean(diffs))
    assert c["test_error"]["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert bc["std_test_error"][0] == pytest.approx(np.std([err[(0, 0.0)], err[(1, 0.0)]], ddof=1))


def test_mnist1d_as_a_random_labels_set():
    x, y, xt, yt = rl.load_data("mnist1d", 300, 5000)
    assert x.shape == (300, 1, 1, 40) and xt.shape == (1000, 1, 1, 40)   # all its tests
    with pytest.raises(ValueError, match="4000"):
        rl.load_data("mnist1d", 5000, 10)
    cnn = rl.make_model("cnn", x.shape[1:])
    assert cnn(td.tensor(x[:3])).shape == (3, 10)
    shifted = rl.Shift1d(5)(x[:50], np.random.default_rng(0))
    assert shifted.shape == x[:50].shape
    # each row is its sequence moved by at most 5 positions, zeros filling in
    for a, b in zip(x[:50, 0, 0], shifted[:, 0, 0]):
        assert any(np.array_equal(np.pad(a, 5)[5 - s:45 - s], b) for s in range(-5, 6))
