"""Primes (no manifold): the data against trial division, the base rate against its
definition, and the must-hold relations of a --quick run of the demo."""
import json
import os
import sys

import numpy as np
import pytest

from tinydeep.experiments import primes as pr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "demos"))
import primes as demo  # noqa: E402


def trial_division(m):
    return m >= 2 and all(m % d for d in range(2, int(m ** 0.5) + 1))


def test_base_rate_is_the_training_majority_share_of_the_test_set():
    assert pr.base_rate(np.array([0, 0, 1]), np.array([0, 1, 1, 1])) == (0, 0.25)
    assert pr.base_rate(np.array([2, 2, 1]), np.array([2, 2, 0])) == (2, pytest.approx(2 / 3))


@pytest.mark.parametrize("odd_only", [True, False])
def test_prime_data_against_trial_division(odd_only):
    bits = 10
    x, y, xt, yt = pr.prime_data(bits, 300, odd_only=odd_only, seed=1)
    assert len(x) == 300 and len(x) + len(xt) == 2 ** bits // (2 if odd_only else 1)
    ints = np.concatenate([x, xt]) @ 2 ** np.arange(bits - 1, -1, -1)
    assert len(set(ints.tolist())) == len(ints)          # train and test do not overlap
    assert np.array_equal(np.concatenate([y, yt]), [trial_division(int(m)) for m in ints])
    if odd_only:
        assert np.all(x[:, -1] == 1) and np.all(xt[:, -1] == 1)
    with pytest.raises(ValueError, match="n_train"):
        pr.prime_data(bits, 2 ** bits, odd_only=odd_only)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("primes")
    return demo.main(["--quick", "--out", str(out)]), out


def test_quick_writes_a_plot_and_a_json_record(quick):
    rec, out = quick
    assert (out / "primes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "primes.json").read_text())
    assert [r["test_accuracy"] for r in saved["rows"]] == \
        [r["test_accuracy"] for r in rec["rows"]]


def test_quick_primes_are_memorized_not_learned(quick):
    rec, _ = quick
    odd, every, glyph = rec["rows"]
    bits, n = pr.QUICK["bits"], pr.QUICK["n_train"]
    assert odd["odd_only"] and not every["odd_only"] and glyph["data"] == "glyphs"
    assert odd["n_test"] == 2 ** (bits - 1) - n and every["n_test"] == 2 ** bits - n
    # base rate: the share of composites among the test integers, counted independently
    _, _, xt, _ = pr.prime_data(bits, n, odd_only=True, seed=rec["config"]["seed"])
    ints = xt @ 2 ** np.arange(bits - 1, -1, -1)
    composite = np.mean([not trial_division(int(m)) for m in ints])
    assert odd["majority_class"] == 0 and odd["base_rate"] == pytest.approx(composite)
    for r in (odd, every):
        assert r["train_accuracy"] == 1.0
        assert r["test_accuracy"] <= r["base_rate"] + 0.02          # no better than "composite"
    # with all integers the test accuracy splits into the evens (the trivial cue) and odds
    _, _, xt_all, _ = pr.prime_data(bits, n, odd_only=False, seed=rec["config"]["seed"])
    share_even = np.mean(xt_all[:, -1] == 0)
    g = every["group_accuracy"]
    assert odd["group_accuracy"] == {}
    assert every["test_accuracy"] == pytest.approx(share_even * g["even"]
                                                   + (1 - share_even) * g["odd"])
    # the same MLP, the same number of examples, on a manifold: far above its base rate
    assert glyph["n_train"] == n and glyph["train_accuracy"] == 1.0
    assert glyph["base_rate"] == pytest.approx(0.1, abs=0.01)
    assert glyph["test_accuracy"] > glyph["base_rate"] + 0.5


def test_quick_over_seeds(quick):
    rec, _ = quick
    assert rec["config"]["seeds"] == list(pr.QUICK["seeds"])
    for r in rec["rows"]:
        o = r["over_seeds"]
        assert o["test_accuracy"]["values"][0] == r["test_accuracy"]   # the table's seed
        diffs = np.subtract(o["test_accuracy"]["values"], o["base_rate"]["values"])
        assert o["test_minus_base_rate"]["mean"] == pytest.approx(diffs.mean())
        assert o["test_minus_base_rate"]["std"] == pytest.approx(diffs.std(ddof=1))
    # glyphs generalize far beyond their base rate on every seed
    assert min(np.subtract(rec["rows"][2]["over_seeds"]["test_accuracy"]["values"],
                           rec["rows"][2]["over_seeds"]["base_rate"]["values"])) > 0.3
