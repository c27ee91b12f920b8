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
