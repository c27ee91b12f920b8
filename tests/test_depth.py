"""Fat vs deep (issue 5): the folding network against the closed form of the tent map,
parameter counting against the arrays of real models, and the structure of a --quick run."""
import math
import json
import os
import sys

import numpy as np
import pytest

from tinydeep import nn
from tinydeep.data import sawtooth
from tinydeep.data.toy import tent
from tinydeep.experiments import depth as dp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))
import fat_vs_deep as demo  # noqa: E402

EPS = np.finfo(np.float64).eps


def closed_form(x, k):
    y = np.asarray(x, dtype=np.float64)
    for _ in range(k):
        y = tent(y)
    return y


# --- the folding network -------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_folding_network_computes_the_k_fold_tent_map(k):
    net = dp.folding_network(k)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    relus = [m for m in net if isinstance(m, nn.ReLU)]
    assert len(linears) == k + 1 and len(relus) == k                 # depth k
    assert all(m.out_features == 2 for m in linears[:-1])           # two units per layer
    assert sum(math.prod(p.shape) for p in net.parameters()) == 6 * k + 1
    assert all(p.dtype == np.float64 for p in net.parameters())
    # on dyadic points every value is exact in both: equality, not closeness
    xd = np.arange(2 ** (k + 6) + 1) / 2 ** (k + 6)
    assert np.array_equal(dp.predict(net, xd), closed_form(xd, k))
    # a dense even grid: one rounding of x, doubled by each later fold
    x = np.linspace(0.0, 1.0, 20_001)
    assert np.abs(dp.predict(net, x) - closed_form(x, k)).max() <= 2 ** k * EPS
    # and the data module's float32 sawtooth
    xs, ys = sawtooth(k, 4097)
    np.testing.assert_allclose(dp.predict(net, xs), ys[:, 0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [1, 4, 7])
def test_folding_network_has_2_to_the_k_pieces(k):
    net = dp.folding_network(k)
    assert dp.count_pieces(lambda t: dp.predict(net, t), k) == 2 ** k
    # the counter itself, on functions with known pieces
    assert dp.count_pieces(lambda t: 3 * t - 1, k) == 1
    assert dp.count_pieces(lambda t: np.abs(t - 0.5), k) == 2
    rec = dp.folding_check(k, n=5001)
    assert rec["max_abs_error_dyadic"] == 0.0
    assert rec["max_abs_error"] <= 2 ** k * EPS
    assert rec["pieces_network"] == rec["pieces_closed_form"] == rec["pieces_expected"] == 2 ** k


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_folding_network_refuses_bad_k(bad):
    with pytest.raises((ValueError, TypeError)):
        dp.folding_network(bad)


# --- counting and matching parameters ------------------------------------------------------------

@pytest.mark.parametrize("n_in, width, depth, n_out", [(784, 128, 1, 10), (784, 128, 5, 10),
                                                       (1, 4, 6, 1), (3, 7, 2, 2), (5, 1, 3, 4)])
def test_param_count_matches_the_arrays_of_an_mlp(n_in, width, depth, n_out):
    model = nn.MLP(n_in, width, depth, n_out)
    assert dp.param_count(n_in, width, depth, n_out) == sum(math.prod(p.shape) for p in model.parameters())
    assert dp.model_params(model) == sum(math.prod(p.shape) for p in model.parameters())


@pytest.mark.parametrize("n_in, depth, n_out", [(784, 1, 10), (1, 1, 1), (1, 2, 1), (1, 3, 1),
                                                (20, 4, 3)])
def test_width_for_is_the_nearest_width(n_in, depth, n_out):
    for params in (30, 97, 500, 12_345, 167_818):
        if params < dp.param_count(n_in, 1, depth, n_out):
            with pytest.raises(ValueError, match="fewer"):
                dp.width_for(params, n_in, depth, n_out)
            continue
        w = dp.width_for(params, n_in, depth, n_out)
        widths = np.arange(1, 200_000)                # every width, counted at once
        best_gap = np.abs(dp.param_count(n_in, widths, depth, n_out) - params).min()
        assert abs(dp.param_count(n_in, w, depth, n_out) - params) == best_gap


def test_seide_pairs_match_within_two_percent():
    for width in (32, 128, 512, 2048):
        for L, w, p, w1, p1, gap in dp.seide_pairs(784, width):
            if width <= 128:
                assert p == dp.model_params(nn.MLP(784, w, L, 10))
            assert p1 == dp.param_count(784, w1, 1, 10)
            assert gap == abs(p1 - p) / p <= dp.MATCH_TOLERANCE
            if L == 1:
                assert (w1, p1, gap) == (width, p, 0.0)


# --- a --quick run of the demo -------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("fat_vs_deep")
    return demo.main(["--quick", "--out", str(out)]), out


def test_quick_writes_plots_and_a_json_record(quick):
    rec, out = quick
    for name in ("fat_vs_deep_seide.png", "fat_vs_deep_folding.png",
                 "fat_vs_deep_compositional.png"):
        with open(out / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "fat_vs_deep.json").read_text())
    assert set(saved) >= {"config", "seide", "folding", "sawtooth", "compositional"}
    assert saved["seide"]["rows"][2]["deep_test_error"] == rec["seide"]["rows"][2]["deep_test_error"]


def test_quick_seide_table(quick):
    rec, _ = quick
    s, cfg = rec["seide"], rec["config"]
    assert [r["depth"] for r in s["rows"]] == list(cfg["depths"])
    assert s["dataset"] == "mnist1d" and len(s["seeds"]) >= 2
    for r in s["rows"]:
        assert r["parameters"] == dp.param_count(40, cfg["width"], r["depth"], 10)
        assert [run["seed"] for run in r["deep_runs"]] == s["seeds"]
        d_err = [run["test_error"] for run in r["deep_runs"]]
        s_err = [run["test_error"] for run in r["shallow_runs"]]
        assert r["deep_test_error"] == pytest.approx(np.mean(d_err))
        assert r["deep_test_error_std"] == pytest.approx(np.std(d_err, ddof=1))
        assert r["all_converged"] == all(run["converged"] for run in r["deep_runs"] + r["shallow_runs"])
        for run in r["deep_runs"] + r["shallow_runs"]:  # converged means 100 % on the training set
            if run["converged"]:
                assert run["train_error"] == 0.0 and run["steps_to_fit"] > 0
        assert r["parameters"] == r["deep_runs"][0]["parameters"]
        assert r["shallow_parameters"] == r["shallow_runs"][0]["parameters"]
        assert r["shallow_runs"][0]["depth"] == 1
        assert abs(r["shallow_parameters"] - r["parameters"]) / r["parameters"] <= 0.02
        for run in r["deep_runs"] + r["shallow_runs"]:
            assert 0.0 <= run["test_error"] <= 1.0 and 0.0 <= run["train_error"] <= 1.0
        if r["depth"] == 1:
            assert r["deep_wins"] is None and r["shallow_minus_deep"] is None
        else:
            diff = r["shallow_minus_deep"]
            assert diff["mean"] == pytest.approx(np.mean(np.subtract(s_err, d_err)))
            assert r["deep_wins"] == (diff["mean"] > 0 if diff["beyond_noise"] else None)
    v = s["verdict"]
    assert v["deep_beats_shallow_rows"] == sum(r["deep_wins"] is True for r in s["rows"])
    errs = [r["deep_test_error"] for r in s["rows"]]
    assert v["best_deep_depth"] == 1 + int(np.argmin(errs))


def test_quick_folding_and_sawtooth(quick):
    rec, _ = quick
    assert [f["k"] for f in rec["folding"]] == [2, 3, 4, 5, 6]
    for f in rec["folding"]:
        assert f["max_abs_error_dyadic"] == 0.0
        assert f["max_abs_error"] <= 2 ** f["k"] * EPS
        assert f["pieces_network"] == f["pieces_closed_form"] == 2 ** f["k"]
        assert f["parameters"] == 6 * f["k"] + 1
    sw = rec["sawtooth"]
    for r in sw["rows"]:
        k = r["k"]
        assert r["deep_parameters"] == dp.param_count(1, sw["deep_width"], k, 1)
        assert abs(r["shallow_parameters"] - r["deep_parameters"]) <= 1   # 3h + 1 vs P
        assert r["folding_eval_mse"] == 0.0     # float32, dyadic grid: exact
        for name in ("deep", "shallow", "shallow_as_folding"):
            runs = r[name + "_runs"]
            assert r[name + "_eval_mse"] == min(q["eval_mse"] for q in runs)
            assert all(np.isfinite(q["eval_mse"]) and np.isfinite(q["train_mse"]) for q in runs)
            assert len(runs[0]["eval_prediction"]) == sw["n_eval"]
        assert r["deep_runs"][0]["depth"] == k and r["shallow_runs"][0]["depth"] == 1
        assert r["shallow_as_folding_runs"][0]["parameters"] == 6 * k + 1


def test_quick_compositional(quick):
    rec, _ = quick
    c = rec["compositional"]
    assert list(c["curves"]) == ["1", "2", "3"]
    for d, pts in c["curves"].items():
        assert len(pts) == len(c["budgets"])
        for p in pts:
            assert p["parameters"] == dp.param_count(1, p["width"], int(d), 1)
            assert np.isfinite(p["train_mse"]) and p["train_mse"] >= 0
            assert len(p["runs"][0]["curve_loss"]) > 0
