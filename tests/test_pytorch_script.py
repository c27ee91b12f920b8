"""docs/pytorch_script.py, a plain PyTorch script (an MLP and a CNN on glyphs with Adam,
BatchNorm, Dropout and a cosine schedule), runs under tinydeep with only its import line
changed, and learns there as it does under PyTorch (issue 16)."""
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "pytorch_script.py"


def run(library):
    src = SCRIPT.read_text()
    assert src.count("\nimport torch\n") == 1     # the one line that names the library
    if library == "tinydeep":
        src = src.replace("\nimport torch\n", "\nimport tinydeep as torch\n")
    namespace = {"__name__": "pytorch_script"}
    exec(compile(src, str(SCRIPT), "exec"), namespace)
    return namespace["main"](n_train=500, n_test=200, epochs=4)


def learned(history):
    first, last = history[0], history[-1]
    assert last["loss"] < 0.8 * first["loss"], history
    assert last["test_acc"] > 0.3, history          # chance is 0.1
    assert last["lr"] < 1e-12 and history[1]["lr"] == pytest.approx(5e-3), history  # the cosine


@pytest.fixture
def one_thread():
    """One thread for numba and torch: 32 steps of small batches are dominated by waking
    threads on a busy machine, and this is a test of meaning, not of speed."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("library", ["tinydeep", "torch"])
def test_script_trains(library, one_thread):
    if library == "torch":
        pytest.importorskip("torch").set_num_threads(1)
    results = run(library)
    assert set(results) == {"mlp", "cnn"}
    for history in results.values():
        assert len(history) == 4
        learned(history)
