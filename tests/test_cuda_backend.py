"""The CUDA backend against the NumPy reference, kernel by kernel.

On a machine without an NVIDIA GPU, conftest.py turns on numba's CUDA
simulator, which runs every simulated thread as a Python thread: then the
launch sizes are tiny (cuda_device.SIM_LAUNCH) and so are the shapes here
(TINY_CASES: odd sizes, edges, ties, padding, as in the CPU parity suite).
On a real GPU the suite runs the CPU suite's own cases (test_backend_parity.CASES).

Inputs are uploaded C-contiguous (device arrays have no other layout in
tinydeep), results read back and compared with the reference to the parity
suite's tolerances; inputs must come back unchanged (sgd_update's are
compared with the reference's in-place results instead).
"""
import inspect
import zlib

import numpy as np
import pytest

from tinydeep import backends
from tinydeep.backends import KERNELS

pytestmark = [pytest.mark.skipif(not backends.cuda_available(),
                                 reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set"),
              pytest.mark.usefixtures("fast_cuda_simulator")]

if backends.cuda_available():
    from numba import cuda, float64  # a kernel's `cuda` must be a global (the simulator swaps it)
    from tinydeep.backends import cuda_device as cd
    from tinydeep.backends import cuda_matmul
    cu = backends.module("cuda")
    SIMULATING = cd.SIMULATING
else:
    SIMULATING = True

from test_backend_parity import CASES, TOL, Maker, _nonnegative, _sampling_cases, assert_close  # noqa: E402

ref = backends.module("reference")
DTYPES = (np.float32, np.float64)

# --- tiny cases for the simulator ---------------------------------------------------------

SHAPES = [(), (1,), (7,), (3, 1, 5, 2)]
MATMUL_SIZES = [(1, 1, 1), (5, 7, 3), (11, 9, 10)]                 # (M, K, N)
# (N, C, H, W, kh, kw, (sh, sw), (ph, pw)) and (N, C, H, W, (kh, kw), (sh, sw), (ph, pw)):
# rectangular kernels, strides and paddings
CONV = [(1, 1, 1, 1, 1, 1, (1, 1), (0, 0)), (1, 2, 5, 4, 3, 3, (1, 1), (1, 1)),
        (2, 1, 5, 4, 3, 2, (2, 1), (1, 0)), (1, 1, 4, 5, 3, 3, (1, 2), (2, 1)),
        (1, 1, 6, 5, 2, 3, (3, 2), (0, 1))]
POOL = [(1, 1, 1, 1, (1, 1), (1, 1), (0, 0)), (1, 2, 5, 4, (3, 2), (2, 1), (1, 1)),
        (2, 1, 4, 4, (2, 2), (2, 2), (0, 0)), (1, 1, 5, 5, (4, 3), (2, 3), (2, 1))]
SGD = [(0.0, False, 0.0), (0.0, False, 1e-2), (0.9, False, 0.0), (0.9, True, 5e-4)]


def _conv_out(g):
    N, C, H, W, kh, kw, (sh, sw), (ph, pw) = g
    return N, C, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def _pool_input(mk, N, C, H, W, ties):
    if ties:  # values from {0, 1, 2}: windows hold ties
        return mk.rng.integers(0, 3, (N, C, H, W)).astype(mk.dtype)
    return mk.normal(N, C, H, W)


def _binary(mk):
    return [((mk.normal(*s), mk.normal(*s)), {}) for s in SHAPES]


def _sampling(mk, with_grad):  # the parity suite's cases at simulator sizes
    return _sampling_cases(mk, with_grad, sizes=[(1, 1, 1, 1, 2, 3), (2, 2, 4, 5, 3, 2)])


TINY_CASES = {
    "matmul": lambda mk: [((mk.normal(m, k), mk.normal(k, n)), {}) for m, k, n in MATMUL_SIZES],
    "matmul_nt": lambda mk: [((mk.normal(m, k), mk.normal(n, k)), {}) for m, k, n in MATMUL_SIZES],
    "matmul_tn": lambda mk: [((mk.normal(k, m), mk.normal(k, n)), {}) for m, k, n in MATMUL_SIZES],
    "add": _binary, "sub": _binary, "mul": _binary,
    "div": lambda mk: [((mk.normal(*s), mk.away_from_zero(*s)), {}) for s in SHAPES],
    "mul_scalar": lambda mk: [((mk.normal(*s), v), {}) for s in SHAPES for v in (-1.0, 0.37)],
    "pow_scalar": lambda mk: ([((mk.uniform(0.1, 3.0, 7), p), {}) for p in (2.0, 0.5, -1.3)]
                              + [((mk.normal(*s), p), {}) for s in SHAPES for p in (2.0, 3.0)]),
    "exp": lambda mk: [((mk.normal(*s, scale=3.0),), {}) for s in SHAPES],
    "add_rowvec": lambda mk: [((mk.normal(m, n), mk.normal(n)), {})
                              for m, n in [(1, 1), (5, 7), (4, 1)]],
    "relu": lambda mk: [((mk.with_zeros(*s),), {}) for s in SHAPES],
    "relu_backward": lambda mk: [((mk.with_zeros(*s), mk.normal(*s)), {}) for s in SHAPES],
    "sum": lambda mk: (
        [((mk.normal(*s),), dict(axis=None, keepdims=kd)) for s in SHAPES for kd in (False, True)]
        + [((mk.normal(3, 4, 5),), dict(axis=a, keepdims=kd))
           for a in (0, 1, -1, (0, 2), (0, 1), (2, 0), ()) for kd in (False, True)]
        + [((mk.normal(2, 3, 2, 3),), dict(axis=a)) for a in ((1, 3), (0, 1, 3))]),
    "log_softmax": lambda mk: [((mk.normal(m, n, scale=sc),), {})
                               for m, n, sc in [(1, 1, 1.0), (3, 7, 1.0), (2, 9, 100.0)]],
    "log_softmax_backward": lambda mk: [((ref.log_softmax(mk.normal(m, n)), mk.normal(m, n)), {})
                                        for m, n in [(1, 1), (3, 7)]],
    "cross_entropy": lambda mk: [((mk.normal(m, n, scale=sc), mk.ints(n, m)), {})
                                 for m, n, sc in [(1, 1, 1.0), (5, 4, 1.0), (3, 10, 1e4)]],
    "cross_entropy_backward": lambda mk: [
        ((ref.log_softmax(mk.normal(m, n)), mk.ints(n, m), gl), {})
        for m, n in [(1, 1), (5, 4)] for gl in (1.0, 0.37)],
    "batch_norm": lambda mk: [((mk.normal(n, c, i, scale=2.0), mk.normal(c), mk.normal(c), 1e-5), {})
                              for n, c, i in [(2, 3, 5), (7, 2, 1)]],
    "batch_norm_backward": lambda mk: [
        ((x, mk.normal(*x.shape), *ref.batch_norm(x, w, w, 1e-5)[1:], w, 1e-5), {})
        for n, c, i in [(2, 3, 5), (7, 2, 1)] for x, w in [(mk.normal(n, c, i), mk.normal(c))]],
    "im2col": lambda mk: [((mk.normal(*g[:4]), *g[4:]), {}) for g in CONV],
    "col2im": lambda mk: [((mk.normal(N * Ho * Wo, C * g[4] * g[5]), g[:4], *g[4:]), {})
                          for g in CONV for N, C, Ho, Wo in [_conv_out(g)]],
    "max_pool2d": lambda mk: [((_pool_input(mk, *g[:4], ties=i % 2 == 1), *g[4:]), {})
                              for i, g in enumerate(POOL)],
    "max_pool2d_backward": lambda mk: [
        ((mk.normal(*out.shape), argmax, g[:4]), {})
        for i, g in enumerate(POOL)
        for out, argmax in [ref.max_pool2d(_pool_input(mk, *g[:4], ties=i % 2 == 1), *g[4:])]],
    "affine_grid": lambda mk: [((mk.normal(n, 2, 3), h, w, ac), {})
                               for n, h, w in [(1, 1, 1), (2, 3, 4)] for ac in (False, True)],
    "affine_grid_backward": lambda mk: [((mk.normal(n, h, w, 2), ac), {})
                                        for n, h, w in [(1, 1, 1), (2, 3, 4)]
                                        for ac in (False, True)],
    "bilinear_sample": lambda mk: _sampling(mk, with_grad=False),
    "bilinear_sample_backward": lambda mk: _sampling(mk, with_grad=True),
    "index_backward": lambda mk: [
        ((mk.normal(4, 5), (np.array([0, 2, 2, 1]),), (3, 5)), {}),
        ((mk.normal(2, 3), (slice(1, 3), slice(None, None, 2)), (4, 6)), {}),
        ((mk.normal(3), (np.array([1, 1, 0]), np.array([2, 2, 2])), (2, 3)), {}),
        ((mk.normal(), (1, 2), (2, 3)), {})],
    "sgd_update": lambda mk: [
        ((mk.normal(*s), mk.normal(*s), mk.normal(*s) if mom else None, 0.1, mom, nest, wd), {})
        for s in [(), (1,), (3, 4)] for mom, nest, wd in SGD],
    "adam_update": lambda mk: [
        ((mk.normal(*s), mk.normal(*s), mk.normal(*s), _nonnegative(mk.normal(*s)), step, 1e-2, 0.9, 0.99,
          1e-8, wd, decoupled), {})
        for s in [(), (3, 4)] for step in (1, 7) for wd, decoupled in ((0.1, False), (0.1, True))],
}
SUITE = TINY_CASES if SIMULATING else CASES


# --- running a kernel on the device --------------------------------------------------------

def upload(a):
    return cd.from_host(a) if isinstance(a, np.ndarray) else a


def download(r):
    """Device results -> NumPy (a 0-d loss -> a Python float, as the reference returns)."""
    if isinstance(r, tuple):
        return tuple(download(x) for x in r)
    if backends.is_device_array(r):
        return cd.to_host(r)
    return r


def run_cuda(name, args, kwargs, dtype):
    want_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    want = getattr(ref, name)(*want_args, **kwargs)
    dev_args = [upload(a) for a in args]
    got = download(getattr(cu, name)(*dev_args, **kwargs))
    if name == "cross_entropy":                 # the loss stays on the device: a 0-d array
        assert isinstance(got[0], np.ndarray) and got[0].shape == ()
        got = (float(got[0]),) + got[1:]
    assert_close(got, want, dtype, name)
    for i, (d, a, w) in enumerate(zip(dev_args, args, want_args)):
        if isinstance(a, np.ndarray):
            after = cd.to_host(d)
            if name in ("sgd_update", "adam_update"):   # in place: vs the reference's update
                assert_close(after, w, dtype, f"{name} argument {i} after the call")
            else:
                np.testing.assert_array_equal(after, a, err_msg=f"{name} changed argument {i}")
    return got


# --- the suite ------------------------------------------------------------------------------

def test_every_kernel_exists_with_the_reference_signature():
    assert set(cu.__all__) == set(KERNELS)
    assert set(TINY_CASES) == set(KERNELS)
    for name in KERNELS:
        assert callable(getattr(cu, name, None)), name
        sig_ref = inspect.signature(getattr(ref, name)).parameters
        sig_cu = inspect.signature(getattr(cu, name)).parameters
        assert list(sig_cu) == list(sig_ref), name
        assert [p.default for p in sig_cu.values()] == [p.default for p in sig_ref.values()], name


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_cuda_matches_reference(name, dtype):
    mk = Maker(np.random.default_rng(zlib.crc32(f"cuda {name}".encode())), dtype, "C")
    for args, kwargs in SUITE[name](mk):
        run_cuda(name, args, kwargs, dtype)


@pytest.mark.parametrize("name", ["add", "relu", "matmul", "add_rowvec"])
def test_out_argument_is_filled_and_returned(name):
    mk = Maker(np.random.default_rng(3), np.float32, "C")
    args, kwargs = SUITE[name](mk)[-1]
    want = getattr(ref, name)(*args, **kwargs)
    out = cd.full(want.shape, np.nan, want.dtype)
    assert getattr(cu, name)(*[upload(a) for a in args], out=out, **kwargs) is out
    np.testing.assert_allclose(cd.to_host(out), want, **TOL[want.dtype])


def test_both_matmul_rungs_at_other_launch_sizes():
    """Tile sizes are parameters: the plain tiled kernel and the register-tiled one with
    rectangular tiles agree with NumPy on sizes that are not multiples of any tile."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 6))
    sizes = dict(tile=3, bm=6, bn=4, bk=3, tm=3, tn=2) if SIMULATING else \
        dict(tile=8, bm=128, bn=64, bk=16, tm=8, tn=4)
    old = cd.configure(**sizes)
    try:
        for fn in (cuda_matmul.matmul_tiled, cu.matmul):
            np.testing.assert_allclose(cd.to_host(fn(upload(a), upload(b))), a @ b,
                                       rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cd.to_host(cu.matmul_nt(upload(a), upload(b.T.copy()))),
                                   a @ b, rtol=1e-12, atol=1e-12)
    finally:
        cd.configure(**old)


@pytest.mark.parametrize("ta, tb", [(False, False), (False, True), (True, False)])
def test_block_tiled_rung_matches_numpy(ta, tb):
    """Rung 3 (double-buffered block tiles) for A B, A Bᵀ and Aᵀ B, on sizes that are not
    multiples of the tiles and with K spanning several double-buffered steps."""
    rng = np.random.default_rng(6)
    M, K, N = (9, 13, 11) if SIMULATING else (300, 77, 129)
    a, b = rng.standard_normal((M, K)), rng.standard_normal((K, N))
    da = upload(a.T.copy() if ta else a)
    db = upload(b.T.copy() if tb else b)
    c = cuda_matmul._product(da, db, None, ta, tb, "block_tiled")
    np.testing.assert_allclose(cd.to_host(c), a @ b, rtol=1e-12, atol=1e-12)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(cd.to_host(cuda_matmul.matmul_block_tiled(upload(a32),
                                                                         upload(b32))),
                               a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ta, tb", [(False, False), (False, True), (True, False)])
def test_split_k_products_match_numpy(ta, tb):
    """Few output tiles and a long K: rung 2 cuts K into chunks (the third grid dimension)
    and adds the partial products; uneven last chunks, and both dtypes."""
    rng = np.random.default_rng(8)
    M, K, N = (3, 37, 5) if SIMULATING else (16, 100_352 // 8, 9)
    fill = 8 if SIMULATING else 512
    old = cd.configure(fill_blocks=fill)
    try:
        S, kc = cuda_matmul._splits(1, K, cd.LAUNCH["bk"])
        assert S > 2 and (S - 1) * kc < K <= S * kc and kc % cd.LAUNCH["bk"] == 0
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-4)):
            a, b = rng.standard_normal((M, K)), rng.standard_normal((K, N))
            da = upload((a.T.copy() if ta else a).astype(dtype))
            db = upload((b.T.copy() if tb else b).astype(dtype))
            c = cuda_matmul._product(da, db, None, ta, tb, "register_tiled")
            np.testing.assert_allclose(cd.to_host(c), a @ b, rtol=tol, atol=tol * np.sqrt(K))
    finally:
        cd.configure(**old)


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_sums_in_two_passes(dtype):
    """sum over the leading axes (a bias gradient) in runs of ~√L rows, then the runs' sums:
    L a square, not a square, and a single row."""
    rng = np.random.default_rng(9)
    for L, R in ((37, 3), (49, 2), (1, 4), (5, 1)):
        x = rng.standard_normal((L, R, 2)).astype(dtype)
        got = cd.to_host(cu.sum(upload(x), axis=(0,)))
        np.testing.assert_allclose(got, x.astype(np.float64).sum(axis=0), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("n", [31, 32, 33, 100, 131])
def test_elementwise_four_at_a_time_and_the_tail(n):
    """The families load four elements a thread per pass, then finish one at a time: sizes
    around and past 4 × the grid's threads, forward and backward, unary and binary."""
    rng = np.random.default_rng(n)
    x, y, g = (rng.standard_normal(n) for _ in range(3))
    for got, want in ((cu.relu(upload(x)), ref.relu(x)),
                      (cu.unary("tanh", upload(x)), ref.unary("tanh", x)),
                      (cu.unary_backward("exp", upload(x), upload(np.exp(x)), upload(g)),
                       ref.unary_backward("exp", x, np.exp(x), g)),
                      (cu.binary("mul", upload(x), upload(y)), ref.binary("mul", x, y))):
        np.testing.assert_allclose(cd.to_host(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels_per_pass", [1, 3])
def test_grid_sample_channel_groups_and_their_tail(channels_per_pass):
    """grid_sample's kernels take channels in groups (all loads, then the stores): 5 channels
    in groups of 1 and of 3 (a short last group), forward and both gradients, 'zeros' and
    'border', against the reference."""
    rng = np.random.default_rng(10)
    image = rng.standard_normal((2, 5, 4, 3))
    grid = rng.uniform(-1.3, 1.3, (2, 3, 2, 2))
    grad = rng.standard_normal((2, 5, 3, 2))
    old = cd.configure(sample_channels=channels_per_pass)
    try:
        for mode in ("zeros", "border"):
            np.testing.assert_allclose(
                cd.to_host(cu.bilinear_sample(upload(image), upload(grid), mode, False)),
                ref.bilinear_sample(image, grid, mode, False), rtol=1e-12, atol=1e-12)
            got = cu.bilinear_sample_backward(upload(image), upload(grid), upload(grad), mode, True)
            for g, w in zip(got, ref.bilinear_sample_backward(image, grid, grad, mode, True)):
                np.testing.assert_allclose(cd.to_host(g), w, rtol=1e-12, atol=1e-12)
    finally:
        cd.configure(**old)


def test_block_tiled_refuses_sizes_that_do_not_split():
    with pytest.raises(ValueError, match="multiples of the block"):
        cuda_matmul._block_tiled_factory(8, 8, 3, 2, 2, False, False, "<f4")


def test_configure_refuses_bad_sizes():
    with pytest.raises(ValueError, match="power of two"):
        cd.configure(reduce_threads=6)
    with pytest.raises(ValueError, match="multiples"):
        cd.configure(bm=5, tm=2)
    with pytest.raises(ValueError, match="unknown"):
        cd.configure(warps=2)


@pytest.mark.skipif(not SIMULATING, reason="a race in numba-cuda's simulator only")
def test_simulated_shared_memory_is_one_array_per_block():
    """Every thread of a block sees the same cuda.shared.array: with numba-cuda's own
    simulated shared.array, 9 of 1000 launches went wrong at this switch interval."""
    import sys

    @cuda.jit
    def gather(x, out):
        a = cuda.shared.array(8, float64)
        b = cuda.shared.array(8, float64)
        t = cuda.threadIdx.x
        a[t], b[t] = x[t], 2 * x[t]
        cuda.syncthreads()
        if t == 0:
            s = 0.0
            for i in range(8):
                s += a[i] + b[i]
            out[0] = s
    x, out = np.arange(8.0), np.zeros(1)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                    # a thread switch between nearly any two steps
    try:
        wrong = 0
        for _ in range(1000):
            gather[1, 8](x, out)
            wrong += out[0] != 3 * x.sum()
    finally:
        sys.setswitchinterval(old)
    assert wrong == 0

def test_array_helpers_match_numpy():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4))
    d = upload(x)
    np.testing.assert_array_equal(cd.to_host(cd.transpose(d, (2, 0, 1))), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(cd.to_host(cd.broadcast_to(upload(x[:, :1]), (5, 2, 3, 4))),
                                  np.broadcast_to(x[:, :1], (5, 2, 3, 4)))
    for index in [(1,), (slice(None), 2), (np.array([1, 0, 1]),), (x > 0,), (0, slice(1, 3), -1)]:
        np.testing.assert_array_equal(cd.to_host(cd.take(d, index)), x[index])
    np.testing.assert_array_equal(cd.to_host(cd.argmax(d, 1)), x.argmax(1))
    np.testing.assert_array_equal(cd.to_host(cd.argmax(d)), x.argmax())
    np.testing.assert_array_equal(cd.to_host(cd.compare(d, 0.5, "greater")), x > 0.5)
    np.testing.assert_array_equal(cd.to_host(cd.compare(d, upload(x[0]), "equal")), x == x[0])
    assert cd.to_host(cd.astype(cd.compare(d, 0.0, "less"), np.float32)).dtype == np.float32
