"""benchmarks/gpu_check.py, the script for a GPU run, in its tiny mode under the CUDA
simulator: every section runs and lands in the table; a failing section is recorded with
its exception and the sections after it still run."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
SECTIONS = ["info", "pool", "tests", "matmul", "relu", "grid_sample", "products", "mlp", "cnn",
            "profile"]


def test_tiny_run_fills_every_section(tmp_path):
    out = tmp_path / "gc.md"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONUNBUFFERED="1")
    run = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = out.read_text()
    record = json.loads((tmp_path / "gc.json").read_text())
    assert table.startswith("GPU check: CUDA simulator")
    assert {r["section"] for r in record["rows"]} == set(SECTIONS)
    failed = [r for r in record["rows"] if r["figure"] == "FAILED"]
    assert not failed, failed
    for s in SECTIONS:
        assert f"| {s} |" in table
    tests = next(r for r in record["rows"] if r["section"] == "tests")
    assert tests["met"] is True and " passed" in tests["value"]
    assert (tmp_path / "gc.tests.log").read_text().strip()
    assert record["info"]["commit"] not in ("", None)


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_failing_section_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    pytest.importorskip("numba")
    gc = _module()

    def boom(ctx):
        raise RuntimeError("boom in relu")

    def fine(ctx):
        return [("a figure", "42", ">= 1", True)]
    monkeypatch.setattr(gc, "SECTIONS", [("info", gc.section_info), ("relu", boom),
                                         ("grid_sample", fine)])
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    record = gc.main(["--tiny", "--out", str(tmp_path / "r.md")])
    rows = {(r["section"], r["figure"]): r for r in record["rows"]}
    assert rows[("relu", "FAILED")]["value"] == "RuntimeError: boom in relu"
    assert rows[("relu", "FAILED")]["met"] is False
    assert rows[("grid_sample", "a figure")]["value"] == "42"
    assert "| relu | FAILED | RuntimeError: boom in relu |  | **no** |" in \
        (tmp_path / "r.md").read_text()
