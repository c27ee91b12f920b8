"""Each benchmark runs end to end on tiny sizes and returns well-formed figures; the
runner turns a record into its Markdown table and PNG. No timing is asserted (speed
lives in the benchmark results, not in tests); what is checked is the plumbing, and
that every contender computes the same numbers (each benchmark compares the results
of tinydeep with its baseline before it times them)."""
import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import bench_coldstart, bench_grid_sample, bench_matmul, bench_relu, bench_train  # noqa: E402,E501
from benchmarks import machine, timing  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def well_formed(figures, n):
    assert len(figures) == n
    for f in figures:
        assert set(f) >= {"figure", "measured", "target", "op", "met", "score", "unit"}
        assert math.isfinite(f["measured"]) and f["measured"] > 0
        assert f["met"] == (f["score"] >= 1 if f["op"] == ">=" else f["measured"] <= f["target"]
                            if f["op"] == "<=" else f["measured"] < f["target"])
        json.dumps(f)


def test_figure_score_is_one_exactly_at_the_target():
    assert timing.figure("a", 2.0, 1.0, ">=")["score"] == 2.0
    assert timing.figure("b", 0.4, 0.8, "<=") == {**timing.figure("b", 0.4, 0.8, "<="), "score": 2.0,
                                                  "met": True}
    assert not timing.figure("c", 6.0, 5.0, "<", unit="s")["met"]
    with pytest.raises(ValueError):
        timing.figure("d", 1.0, 1.0, "==")


def test_interleaved_medians_every_contender():
    calls = {"a": lambda: sum(range(100)), "b": lambda: sum(range(10))}
    t = timing.interleaved(calls, rounds=3, sample_s=1e-4, settle_s=0)
    assert set(t) == {"a", "b"} and all(v > 0 for v in t.values())


def test_machine_info_quick():
    info = machine.info(quick=True)
    assert info["numpy_blas_gflops"] > 0 and info["copy_gbs"] > 0
    assert info["threads"]["cpu_count"] >= 1
    assert "CPUs" in machine.describe(info)


def test_avx2_environment_selects_the_avx2_code_path():
    """--avx2's environment makes tinydeep tile for AVX2 (6 x 64-byte micro-tiles: 16
    accumulator registers, no AVX-512) and the machine line say so, whatever this CPU is."""
    import subprocess
    code = ("from tinydeep.backends import cpu_matmul as m; from benchmarks import machine; "
            "print(m.MR, m.VECTOR_BYTES, m._HAS_AVX512); print(machine.isa())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=runner.ROOT, env={**os.environ, **runner.AVX2_ENV,
                                               "TINYDEEP_WARMUP": "0"}).stdout.splitlines()
    assert out[0] == "6 64 False"
    assert out[1].startswith("; numba compiles for znver3") and "ONEDNN_MAX_CPU_ISA=AVX2" in out[1]


def test_matmul_bench_tiny(monkeypatch):
    monkeypatch.setattr(bench_matmul, "SETTLE_S", 0.0)
    res = bench_matmul.run(repeats=1, cases=[("48^3", "matmul", 48, 48, 48),
                                             ("x@W.T 8x20x12", "matmul_nt", 8, 20, 12)])
    well_formed(res["figures"], 2)
    assert set(res["ladder"]["gflops"]) >= {"numpy", "naive", "blocked", "fast"}


def test_relu_bench_tiny():
    res = bench_relu.run(size=1000, rounds=1, sample_s=1e-4, settle_s=0)
    well_formed(res["figures"], 2)


def test_bench_script_command_line_writes_the_record(tmp_path, capsys):
    """Each bench_*.py main(): --<number> flags passed on to run(), the machine and the
    report printed, the record written where --json says; a bad number refused."""
    path = tmp_path / "relu.json"
    res = bench_relu.main(["--size", "1000", "--rounds", "1", "--json", str(path)])
    out = capsys.readouterr().out
    assert res["size"] == 1000 and "CPUs" in out and "ReLU on 1000 float32" in out
    assert json.loads(path.read_text())["figures"][0]["figure"] == res["figures"][0]["figure"]
    with pytest.raises(SystemExit):
        bench_relu.main(["--rounds", "many"])


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_grid_sample_bench_tiny():
    res = bench_grid_sample.run(repeats=1, shapes=[(2, 1, 5, 6)])
    well_formed(res["figures"], 1)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_train_bench_tiny_checks_against_torch():
    res = bench_train.run(rounds=1, batch=4, size=8, width=16, channels=(2, 3), sample_s=1e-3,
                          settle_s=0)
    well_formed(res["figures"], 3)          # mlp, cnn, and the cnn with BatchNorm (checked too)
    assert all("reduced" in f["figure"] for f in res["figures"])


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_train_check_catches_a_mismatch():
    ours, theirs, check = bench_train.steps("mlp", 4, 8, 16, (2, 3))
    theirs()                       # PyTorch now a step ahead: the two must disagree
    with pytest.raises(AssertionError):
        check()


def test_coldstart_bench_tiny():
    res = bench_coldstart.run(rounds=1, batch=4, d_in=12, width=8, fill_cache=False)
    well_formed(res["figures"], 1)
    assert res["median"]["wall_s"] > res["median"]["first_step_s"]


def test_runner_writes_table_json_and_png(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_matmul, "SETTLE_S", 0.0)
    real = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda name, quick: (
        bench_relu.run(size=1000, rounds=1, sample_s=1e-4, settle_s=0) if name == "relu" else
        bench_matmul.run(repeats=1, cases=[("32^3", "matmul", 32, 32, 32)]) if name == "matmul"
        else real(name, quick)))
    quick_info = machine.info
    monkeypatch.setattr(runner.machine, "info", lambda quick=False: quick_info(quick=True))
    record = runner.main(["--only", "matmul", "relu", "--out", str(tmp_path)])
    names = {p.name for p in tmp_path.iterdir()}
    assert {"results.json", "results.png", "README_TABLE.md"} <= names
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["figures"]) == 3 and saved["figures"] == json.loads(json.dumps(record["figures"]))
    table = (tmp_path / "README_TABLE.md").read_text()
    assert table.count("\n| ") >= 3 + 1 + 4          # header + 3 figures; ladder header + 3 rungs
    assert "python -m benchmarks" in table and "kernel ladder" in table
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recycled_big_results_never_alias_a_live_array():
    """The recycling of big results (cpu_matmul.empty, used by matmul and im2col for the
    speed of the CNN step) must never hand out memory that an array or a view still uses.
    (A kernel test that lives here because the recycling was added for the benchmarks.)"""
    import numpy as np
    from tinydeep.backends import cpu, cpu_matmul

    shape = (1024, 1025)                       # 4.1 MB of float32: recycled
    a = cpu_matmul.empty(shape, np.float32)
    b = cpu_matmul.empty(shape, np.float32)
    assert not np.shares_memory(a, b)
    view = a[::3]
    address = a.__array_interface__["data"][0]
    del a
    c = cpu_matmul.empty(shape, np.float32)    # a's memory is still seen through `view`
    assert not np.shares_memory(c, view) and not np.shares_memory(c, b)
    del view
    d = cpu_matmul.empty(shape, np.float32)    # now it is free again, and is reused
    assert d.__array_interface__["data"][0] == address
    # results of the kernels that use it keep their values while later calls run
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64, 40, 40), dtype=np.float32)
    cols = cpu.im2col(x, 3, 3, 1, 1)
    want = cols.copy()
    for _ in range(3):
        cpu.im2col(x[:, ::-1].copy(), 3, 3, 1, 1)
    np.testing.assert_array_equal(cols, want)


def test_interplay_bench_tiny():
    from benchmarks import bench_interplay
    res = bench_interplay.run(n=32, rounds=1, pairs=2, settle_s=0)
    well_formed(res["figures"], 2)
    assert set(res["gflops"]) == {"blocks", "alternating", "limited", "numpy_blocks",
                                  "numpy_after_relu"}


def test_conv_bench_tiny_checks_every_rung():
    from benchmarks import bench_conv       # 32 output channels: the implicit GEMM's forward and dW
    res = bench_conv.run(rounds=1, layers=[("tiny", (2, 4, 6, 6), (32, 4, 5, 5), True)],
                         sample_s=1e-3, settle_s=0)
    well_formed(res["figures"], 2)
    assert set(res["ms"]["tiny"]) >= {"im2col", "patches", "implicit"}


def test_plot_speed_puts_tinydeep_faster_right_of_parity():
    speed_up = timing.figure("a", 2.0, 1.5, ">=")
    time_ratio = timing.figure("b", 0.5, 0.8, "<=")      # half the baseline's time: 2x the speed
    seconds = timing.figure("c", 4.0, 8.0, "<=", unit="s")
    assert runner.speed(speed_up) == (2.0, 1.5)
    assert runner.speed(time_ratio) == (2.0, 1.25)
    assert runner.speed(seconds) == (2.0, 1.0)
