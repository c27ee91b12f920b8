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
                 "random_labels_theorem1.png", "random_labels_batchnorm.png"):
        with open(out / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "random_labels.json").read_text())
    assert set(saved) >= {"config", "figure_1a", "figure_1bc", "table_1", "table_1_batchnorm",
                          "theorem_1"}
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


# --- Table 1's BatchNorm contrast -------------------------------------------------------------

def test_with_batchnorm_sits_between_each_hidden_layer_and_its_relu():
    kinds = lambda m: [type(layer).__name__ for layer in m]     # with_batchnorm's is flat
    plain = rl.make_model("mlp3x512", (1, 1, 40), seed=3)
    bn = rl.make_model("mlp3x512_bn", (1, 1, 40), seed=3)
    assert kinds(bn) == ["Flatten"] + ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear"]
    # the same initial weights: BatchNorm's ones and zeros take no random numbers
    lin = lambda m: [layer for layer in m.modules() if isinstance(layer, nn.Linear)]
    for a, b in zip(lin(plain), lin(bn)):
        assert np.array_equal(a.weight.numpy(), b.weight.numpy())
        assert np.array_equal(a.bias.numpy(), b.bias.numpy())
    norms = [layer for layer in list(bn) if isinstance(layer, nn.BatchNorm1d)]
    assert [n.num_features for n in norms] == [512] * 3
    for n in norms:
        assert np.all(n.weight.numpy() == 1) and np.all(n.bias.numpy() == 0)
        assert np.all(n.running_mean.numpy() == 0) and np.all(n.running_var.numpy() == 1)
    # two parameters per normalized feature, nothing else
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(bn) - count(plain) == 2 * 3 * 512
    # convolutions get BatchNorm2d over their channels, images and sequences alike
    assert kinds(rl.make_model("cnn_bn", (1, 28, 28)))[:4] == \
        ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    seq = [layer for layer in list(rl.make_model("cnn_bn", (1, 1, 40)))
           if isinstance(layer, nn.BatchNorm2d)]
    assert [n.num_features for n in seq] == [25, 25, 25]
    with pytest.raises(ValueError, match="_bn"):
        rl.make_model("resnet", (1, 28, 28))


def test_batchnorm_net_trains_and_scores_in_eval_mode_like_the_closed_form():
    """After fit, the net in eval mode is the NumPy formula with the running statistics;
    fit and evaluate move those statistics once per SGD step and never otherwise (the
    label check's one-example forward runs in eval mode)."""
    x, y, xt, yt = rl.load_data("mnist1d", 300, 100)
    model = rl.make_model("mlp1x512_bn", x.shape[1:], seed=1)
    hist = fit(model, x, y, epochs=2, lr=0.05, test=(xt, yt), eval_train=True, desc="bn")
    steps = hist["steps"][-1]
    assert steps == 2 * 3                                    # 3 batches of ≤ 128 per epoch
    norm = [layer for layer in list(model) if isinstance(layer, nn.BatchNorm1d)][0]
    assert int(norm.num_batches_tracked.numpy()) == steps
    rm, rv = norm.running_mean.numpy().copy(), norm.running_var.numpy().copy()
    acc, _ = evaluate(model, xt, yt)
    assert np.array_equal(norm.running_mean.numpy(), rm)
    assert int(norm.num_batches_tracked.numpy()) == steps
    assert not np.allclose(rm, 0) and not np.allclose(rv, 1)   # they did move
    lin1, _, _, lin2 = list(model)[1:]
    h = x.reshape(len(x), -1).astype(np.float64) @ lin1.weight.numpy().T + lin1.bias.numpy()
    h = (h - rm) / np.sqrt(rv + norm.eps) * norm.weight.numpy() + norm.bias.numpy()
    logits = np.maximum(h, 0) @ lin2.weight.numpy().T + lin2.bias.numpy()
    model.eval()
    with td.no_grad():
        out = model(td.tensor(x)).numpy()
    np.testing.assert_allclose(out, logits, rtol=1e-4, atol=1e-4)
    assert evaluate(model, x, y)[0] == np.mean(out.argmax(1) == y)   # evaluate: eval mode


def test_batchnorm_training_step_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((16, 1, 1, 40)).astype(np.float32)
    model = rl.make_model("mlp1x512_bn", xb.shape[1:], seed=2)
    flat, lin1, norm, _, lin2 = list(model)
    ref = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 512),
                              torch.nn.BatchNorm1d(512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 10))
    with torch.no_grad():
        for ours, theirs in ((lin1, ref[1]), (lin2, ref[4])):
            theirs.weight.copy_(torch.from_numpy(ours.weight.numpy()))
            theirs.bias.copy_(torch.from_numpy(ours.bias.numpy()))
    for _ in range(3):                                     # training mode: batch statistics
        with td.no_grad():
            out = model(td.tensor(xb)).numpy()
        with torch.no_grad():
            want = ref(torch.from_numpy(xb)).numpy()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
        xb = xb * 1.5 + 0.25
    np.testing.assert_allclose(norm.running_mean.numpy(), ref[2].running_mean.numpy(),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(norm.running_var.numpy(), ref[2].running_var.numpy(),
                               rtol=1e-4, atol=1e-6)
    model.eval(), ref.eval()                               # eval mode: running statistics
    with td.no_grad():
        out = model(td.tensor(xb)).numpy()
    np.testing.assert_allclose(out, ref(torch.from_numpy(xb)).detach().numpy(), rtol=1e-4,
                               atol=1e-5)


def test_batchnorm_table_pairs_the_nets_by_seed():
    from scipy.stats import t as student_t
    data = rl.load_data("mnist1d", 200, 200)
    fake = {"arch": "mlp1x512", "seed": 0, "parameters": 26122, "steps_to_fit": None,
            "train_accuracy": 0.25, "test_accuracy": 0.125, "steps": 4}
    bn = rl.batchnorm_table(data, "mlp1x512", seeds=(0, 1), verbose=False, max_epochs=2,
                            fit_threshold=0.3, reuse={("mlp1x512", "true", 0): fake})
    assert bn["batchnorm_arch"] == "mlp1x512_bn" and [g["labels"] for g in bn["groups"]] == \
        ["true", "random_labels"]
    assert len(bn["runs"]) == 2 * 2 * 2
    assert fake["test_accuracy"] in [r["test_accuracy"] for r in bn["runs"]]  # taken, not rerun
    for g in bn["groups"]:
        runs = {(r["batchnorm"], r["seed"]): r for r in bn["runs"] if r["labels"] == g["labels"]}
        with_bn, plain = g["variants"]
        assert with_bn["batchnorm"] and not plain["batchnorm"]
        assert with_bn["parameters"] - plain["parameters"] == 2 * 512
        for key in ("test_accuracy", "train_accuracy"):
            a = [runs[(True, s)][key] for s in (0, 1)]
            b = [runs[(False, s)][key] for s in (0, 1)]
            assert with_bn[key]["mean"] == pytest.approx(np.mean(a))
            assert plain[key]["std"] == pytest.approx(np.std(b, ddof=1))
            d = np.subtract(a, b)
            diff = g[f"{key}_difference"]
            assert diff["mean"] == pytest.approx(d.mean())
            assert diff["std"] == pytest.approx(np.std(d, ddof=1))
            half = student_t.ppf(0.975, 1) * np.std(d, ddof=1) / np.sqrt(2)
            assert diff["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
            assert diff["beyond_noise"] == (abs(d.mean()) > half)
    # the paper's Inception with / without BatchNorm beside ours
    demo.add_paper({"table_1": {"rows": []}, "table_1_batchnorm": bn})
    true, rand = bn["groups"]
    assert (true["variants"][0]["paper"], true["variants"][1]["paper"]) == ((100.0, 85.75),
                                                                            (100.0, 82.00))
    assert true["paper_test_difference"] == pytest.approx(85.75 - 82.00)
    assert rand["paper_test_difference"] == pytest.approx(9.78 - 10.12)


def test_quick_table_1_batchnorm(quick, capsys):
    rec, out = quick
    bn, cfg = rec["table_1_batchnorm"], rec["config"]
    assert bn["arch"] == cfg["bn_arch"] and bn["seeds"] == cfg["seeds"]
    (g,) = bn["groups"]
    with_bn, plain = g["variants"]
    # the plain net's run is Table 1's (same seed, same net), not a second training
    row = next(r for r in rec["table_1"]["rows"] if r["arch"] == bn["arch"] and
               r["labels"] == "true" and not r["weight_decay"] and not r["augment"])
    assert plain["test_accuracy"]["values"] == [row["test_accuracy"]]
    assert tuple(row["paper"]) == demo.PAPER_TABLE_1[(bn["arch"], "true", False, False)]
    assert [tuple(r["paper"]) if r["paper"] else None for r in rec["table_1"]["rows"]] == \
        [(100.0, 50.51), (99.80, 50.39), None, None, (99.34, 10.61)]   # MLP 1x512, no crop
    assert with_bn["train_accuracy"]["mean"] >= 0.99 and with_bn["test_accuracy"]["mean"] > 0.5
    assert (out / "random_labels_batchnorm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    demo.print_batchnorm(bn, cfg)
    text = capsys.readouterr().out
    assert "Inception: 100.00 / 85.75%" in text
    assert "Inception w/o BatchNorm: 100.00 / 82.00%" in text
    assert "fewer than 2 paired seeds" in text
