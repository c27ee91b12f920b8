"""The CPU matmul kernels against float64 NumPy.

Tolerance: rounding errors of a sum of K products of size up to |a||b| grow
like eps * sqrt(K) * |a||b| on random data, so we allow

    |got - want| <= rtol * sqrt(K) * max|a| * max|b|,
    rtol = 1e-5 for float32 (eps 6e-8), 1e-13 for float64 (eps 1.1e-16),

40x (float32) and 200x (float64) the largest error seen; a float64 product
computed in float32 would miss it by a factor of ~1e6.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydeep.backends import cpu_matmul as cm

RUNGS = [cm.matmul_naive, cm.matmul_blocked, cm.matmul_packed]
RTOL = {np.float32: 1e-5, np.float64: 1e-13}

# Shapes (M, K, N): degenerate, odd, smaller than a micro-tile (MR x 16),
# straddling every block size (MR, 16, KC = 256, MC, BLOCK_*).
SHAPES = [
    (1, 1, 1), (33, 65, 17), (7, 1, 5), (1, 40, 3), (5, 40, 1), (2, 3, 300),
    (cm.MR - 1, 15, 17), (cm.MR + 1, 17, 33),
    # bottom edges of 4 and 8 rows (their own micro-kernels), over 1 and 3 k-blocks
    (4, 7, 32), (8, cm.KC + 5, 96), (cm.MR + 4, 2 * cm.KC + 3, 64), (2 * cm.MR + 8, 33, 32),
    (128, 40, 10), (cm.MC + 7, cm.KC + 9, 3),        # few columns: computed as c.T
    (cm.MC + 7, cm.KC + 1, 50), (70, 2 * cm.KC + 3, 129), (3, cm.BLOCK_K + 6, cm.BLOCK_N + 5),
    # b read in place (few rows; the last sliver packed), just too many rows, 512-byte rows
    (cm.DIRECT_B_TILES * cm.MR, cm.KC + 3, 200), (cm.DIRECT_B_TILES * cm.MR + 1, 40, 200),
    (5, 40, 128),
]


def check(got, a, b):
    """`got` equals a @ b (computed here in float64) within the stated tolerance."""
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert got.shape == want.shape
    assert got.dtype == a.dtype
    K = a.shape[1]
    scale = np.sqrt(max(K, 1)) * max(np.abs(a).max(initial=0), 1e-30) \
        * max(np.abs(b).max(initial=0), 1e-30)
    err = np.abs(got - want).max(initial=0)
    allowed = RTOL[a.dtype.type] * scale
    assert err <= allowed, f"max error {err:.3g}, allowed {allowed:.3g}"


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("rung", RUNGS, ids=lambda f: f.__name__)
def test_rungs_match_numpy(rung, shape, dtype, rng):
    M, K, N = shape
    a, b = rand(rng, (M, K), dtype), rand(rng, (K, N), dtype)
    check(rung(a, b), a, b)


@pytest.mark.parametrize("rung", RUNGS, ids=lambda f: f.__name__)
def test_rungs_read_strided_views(rung, rng):
    a = rand(rng, (40, 66), np.float32)[:, ::2]      # (40, 33), row stride 66
    b = rand(rng, (21, 34), np.float32).T             # (34, 21), column-major
    check(rung(a, b[:33]), a, b[:33])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (33, 65, 17), (cm.MC + 7, cm.KC + 1, 50)],
                         ids=lambda s: "x".join(map(str, s)))
def test_nt_tn_match_numpy(shape, dtype, rng):
    M, K, N = shape
    a, b_t = rand(rng, (M, K), dtype), rand(rng, (N, K), dtype)
    check(cm.matmul_nt(a, b_t), a, b_t.T)
    a_t, b = rand(rng, (K, M), dtype), rand(rng, (K, N), dtype)
    check(cm.matmul_tn(a_t, b), a_t.T, b)


@pytest.mark.parametrize("parts", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1), (1, 5)])
def test_every_split_of_c_over_threads(parts, monkeypatch, rng):
    # c is cut into m_parts x n_parts rectangles of micro-tiles, one per
    # thread; force each split (even ones that leave some parts empty)
    monkeypatch.setattr(cm, "_split", lambda *args: parts)
    monkeypatch.setattr(cm, "SERIAL_BELOW", 0)
    for M, K, N in [(2 * cm.MC + 5, 300, 3 * 16 + 7), (5, 20, 40)]:
        a, b = rand(rng, (M, K), np.float32), rand(rng, (K, N), np.float32)
        check(cm.matmul(a, b), a, b)
        check(cm.matmul_nt(a, np.ascontiguousarray(b.T)), a, b)


def layouts(x):
    """x and copies of it laid out as: transposed view, stepped slice, reversed rows."""
    big = np.zeros((2 * x.shape[0], 3 * x.shape[1]), dtype=x.dtype)
    big[::2, ::3] = x
    return {
        "C": x,
        "F": np.asfortranarray(x),
        "T-view": np.ascontiguousarray(x.T).T,
        "step": big[::2, ::3],
        "reversed": x[::-1].copy()[::-1],
    }


@pytest.mark.parametrize("layout_a", ["C", "F", "step", "reversed"])
@pytest.mark.parametrize("layout_b", ["C", "T-view", "step"])
def test_any_layout(layout_a, layout_b, rng):
    a = layouts(rand(rng, (23, 37), np.float32))[layout_a]
    b = layouts(rand(rng, (37, 19), np.float32))[layout_b]
    check(cm.matmul(a, b), a, b)
    check(cm.matmul_nt(a, layouts(np.ascontiguousarray(b.T))[layout_b]), a, b)
    check(cm.matmul_tn(layouts(np.ascontiguousarray(a.T))[layout_a], b), a, b)


@pytest.mark.parametrize("kernel", ["matmul", "matmul_nt", "matmul_tn"])
def test_out_is_filled_and_returned(kernel, rng):
    a, b = rand(rng, (45, 300), np.float32), rand(rng, (300, 70), np.float32)
    args = {"matmul": (a, b), "matmul_nt": (a, b.T.copy()), "matmul_tn": (a.T.copy(), b)}
    out = np.full((45, 70), np.nan, dtype=np.float32)     # stale values must not leak in
    got = getattr(cm, kernel)(*args[kernel], out=out)
    assert got is out
    check(out, a, b)


@pytest.mark.parametrize("rung", RUNGS, ids=lambda f: f.__name__)
def test_rungs_take_out(rung, rng):
    a, b = rand(rng, (9, 20), np.float64), rand(rng, (20, 30), np.float64)
    out = np.full((9, 30), np.nan)
    assert rung(a, b, out=out) is out
    check(out, a, b)


def test_bad_out_is_a_value_error():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="shape"):
        cm.matmul(a, a.T.copy(), out=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError):
        cm.matmul(a, a.T.copy(), out=np.empty((3, 3), np.float64))


@pytest.mark.parametrize("shape", [(0, 5, 4), (3, 5, 0), (3, 0, 4), (0, 0, 0)])
@pytest.mark.parametrize("kernel", ["matmul", "matmul_nt", "matmul_tn"])
def test_zero_size(kernel, shape):
    M, K, N = shape
    a, b = np.ones((M, K), np.float32), np.ones((K, N), np.float32)
    args = {"matmul": (a, b), "matmul_nt": (a, b.T), "matmul_tn": (a.T, b)}
    out = np.full((M, N), np.nan, np.float32)
    got = getattr(cm, kernel)(*args[kernel], out=out)
    assert got.shape == (M, N) and np.all(got == 0)


def test_float64_is_computed_in_float64(rng):
    # entries of size 1 whose products cancel: float32 would keep only ~7 digits
    a = 1 + 1e-9 * rand(rng, (20, 50), np.float64)
    b = rand(rng, (50, 20), np.float64)
    got = cm.matmul(a, b)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, a @ b, rtol=0, atol=1e-12)


@settings(deadline=None, max_examples=25)
@given(M=st.integers(0, 40), K=st.integers(0, 300), N=st.integers(0, 40),
       kernel=st.sampled_from(["matmul", "matmul_nt", "matmul_tn"]),
       dtype=st.sampled_from([np.float32, np.float64]),
       layout_a=st.sampled_from(["C", "F", "step"]),
       layout_b=st.sampled_from(["C", "F", "step"]),
       seed=st.integers(0, 2 ** 16))
def test_hypothesis_shapes(M, K, N, kernel, dtype, layout_a, layout_b, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, (M, K), dtype)
    b = rand(rng, (K, N), dtype)
    if kernel == "matmul":
        got = cm.matmul(layouts(a)[layout_a], layouts(b)[layout_b])
    elif kernel == "matmul_nt":
        got = cm.matmul_nt(layouts(a)[layout_a], layouts(np.ascontiguousarray(b.T))[layout_b])
    else:
        got = cm.matmul_tn(layouts(np.ascontiguousarray(a.T))[layout_a], layouts(b)[layout_b])
    check(got, a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("P, M, K, N", [(5, 3, 4, 7), (3, 1, 1, 1), (7, 33, 17, 65), (0, 4, 5, 6),
                                        (3, 2, 0, 4), (2, 64, 64, 64), (5, 70, 65, 66),
                                        (1, 40, 30, 50), (2, 260, 256, 257)])
def test_batched_products(P, M, K, N, dtype):
    """matmul_batched, whole products per thread (and, the last two, a product at a time on
    all threads: fewer products than threads, a large product), on C-ordered and transposed
    (swapped-axes) operands, as backward passes hand them."""
    rng = np.random.default_rng(P * M + K * N)
    a, b = rng.standard_normal((P, M, K)).astype(dtype), rng.standard_normal((P, K, N)).astype(dtype)
    at, bt = np.ascontiguousarray(a.swapaxes(1, 2)), np.ascontiguousarray(b.swapaxes(1, 2))
    for x, y in ((a, b), (at.swapaxes(1, 2), b), (a, bt.swapaxes(1, 2))):
        got = cm.matmul_batched(x, y)
        assert got.shape == (P, M, N) and got.dtype == dtype
        for p in range(P):
            check(got[p], a[p], b[p])
