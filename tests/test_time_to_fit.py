"""Zhang Fig 1b on MNIST-1D (demos/time_to_fit.py --quick): the summaries against the
runs they summarize, the trend against NumPy's least squares, the schedules as asked."""
import json
import os
import sys

import numpy as np
import pytest

from tinydeep.experiments import time_to_fit as ttf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import time_to_fit as demo
    out = tmp_path_factory.mktemp("time_to_fit")
    return demo.main(["--quick", "--out", str(out), "--threads", "1"]), out


def test_quick_record(quick):
    rec, out = quick
    assert (out / "time_to_fit.png").stat().st_size > 10_000
    saved = json.loads((out / "time_to_fit.json").read_text())
    assert saved["schedules"] == json.loads(json.dumps(rec["schedules"]))
    cfg = rec["config"]
    assert cfg["schedules"] == {"paper": 0.95, "constant": 1.0}
    assert len(rec["runs"]) == 2 * len(cfg["p"]) * len(cfg["seeds"])
    for r in rec["runs"]:
        assert r["lr"] == 0.01 and r["lr_decay_per_epoch"] == ttf.SCHEDULES[r["schedule"]]
        assert r["epochs"] <= (cfg["paper_epochs"] if r["schedule"] == "paper" else cfg["max_epochs"])
        if r["steps_to_fit"] is not None:
            assert r["train_accuracy"] == 1.0
    for sch, res in rec["schedules"].items():
        for row in res["rows"]:
            runs = sorted((r for r in rec["runs"] if r["schedule"] == sch and r["p"] == row["p"]),
                          key=lambda r: r["seed"])
            assert row["steps_to_fit"] == [r["steps_to_fit"] for r in runs]
            assert row["fitted"] == sum(r["steps_to_fit"] is not None for r in runs)
            acc = [r["train_accuracy"] for r in runs]
            assert row["train_accuracy"]["mean"] == pytest.approx(np.mean(acc))
        assert res["rows"][0]["label_noise"] == 0.0 and res["rows"][-1]["label_noise"] > 0.8


def test_trend_is_least_squares():
    runs = [{"p": p, "steps_to_fit": s} for p, s in
            [(0, 100), (0, 120), (0.5, 300), (0.5, 280), (1, 500), (1, None), (1, 530)]]
    t = ttf.trend(runs)
    pts = np.array([(r["p"], r["steps_to_fit"]) for r in runs if r["steps_to_fit"]], float)
    slope, intercept = np.polyfit(pts[:, 0], pts[:, 1], 1)
    assert t["slope_steps_per_unit_p"] == pytest.approx(slope)
    assert t["intercept"] == pytest.approx(intercept)
    assert t["runs"] == 6 and t["grows"] and t["ci95"][0] < slope < t["ci95"][1]
    assert ttf.trend(runs[:2]) is None


# --- --dataset ------------------------------------------------------------------------------

def mlp_parameters(inputs, width=512, classes=10):
    return inputs * width + width + width * classes + classes


def test_glyphs_quick_run_flattens_28x28_images(tmp_path):
    import time_to_fit as demo
    rec = demo.main(["--quick", "--dataset", "glyphs", "--seeds", "1", "--out", str(tmp_path),
                     "--threads", "1"])
    assert rec["config"]["dataset"] == "glyphs"
    assert json.loads((tmp_path / "time_to_fit.json").read_text())["config"]["dataset"] == "glyphs"
    assert len(rec["runs"]) == 2 * len(rec["config"]["p"])
    for r in rec["runs"]:
        assert r["parameters"] == mlp_parameters(28 * 28)
    # p = 0 keeps every label; the glyphs' 200 images are fitted at a constant rate
    const = rec["schedules"]["constant"]["rows"]
    assert const[0]["label_noise"] == 0.0 and const[0]["fitted"] == 1


def test_a_real_set_from_its_files(tmp_path, monkeypatch):
    from test_data_formats import mnist_set, write_mnist_gz
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path))
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_mnist_gz(tmp_path / "mnist", prefix, *mnist_set(rng, n))
    rec = ttf.run(dataset="mnist", n_train=40, n_test=20, p_levels=(0.0, 1.0), seeds=(0,),
                  schedules=("constant",), max_epochs=3)
    assert rec["config"]["dataset"] == "mnist" and rec["config"]["n_test"] == 20
    assert [r["parameters"] for r in rec["runs"]] == [mlp_parameters(784)] * 2
    assert [r["epochs"] for r in rec["runs"]] == [3, 3]   # random pixels: not fitted in 3


def test_mnist1d_model_takes_40_values(quick):
    rec, _ = quick
    assert rec["config"]["dataset"] == "mnist1d"
    assert {r["parameters"] for r in rec["runs"]} == {mlp_parameters(40)}


def test_missing_files_and_unknown_sets_stop_before_anything_runs(tmp_path, monkeypatch, capsys):
    import time_to_fit as demo
    monkeypatch.setenv("TINYDEEP_DATA", str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match="--dataset fashion-mnist: its files are not there"):
        demo.main(["--quick", "--dataset", "fashion-mnist", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        demo.main(["--dataset", "svhn", "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "invalid choice: 'svhn'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
