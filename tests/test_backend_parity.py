"""Every kernel of the numba CPU backend against the NumPy reference backend,
then the reference itself against independent sources (an adjoint identity,
scipy's logsumexp, a hand-unrolled recurrence, PyTorch where installed); the
contract of backends/base.py (every backend implements all of it, with its
signatures and return types); and every member of the elementwise families
(scalar_ops.py) on every backend -- CPU and, in the simulator, CUDA against the
reference, derivatives against finite differences, values and gradients
against PyTorch.

Tolerances: float32 results agree to rtol = atol = 1e-5 (values are O(1);
the two backends may round differently, e.g. float64 vs float32 accumulation),
float64 results to rtol = atol = 1e-12. Integer results (argmax) agree exactly.
"""
import inspect
import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydeep import backends
from tinydeep.backends import CONTRACT, KERNELS, Backend, module
from tinydeep.backends.scalar_ops import BINARY, UNARY

ref = module("reference")
cpu = module("cpu")
BACKENDS = {"reference": ref, "cpu": cpu}

DTYPES = (np.float32, np.float64)
TOL = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5),
       np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12)}
LAYOUTS = ("C", "F", "strided")
HYPOTHESIS = settings(deadline=None, max_examples=25)


# --- helpers -----------------------------------------------------------------------------

def arrange(a, layout):
    """The same values as `a` in another memory layout: 'C' contiguous, 'F' (a
    transposed view, for 2-D and up) or 'strided' (every other element of a bigger array)."""
    a = np.asarray(a)
    if layout == "C" or a.ndim == 0:
        return np.array(a, order="C")      # (np.ascontiguousarray would make a 0-d array 1-d)
    if layout == "F" and a.ndim >= 2:
        return np.asfortranarray(a)
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    view = big[..., ::2]
    assert not view.flags.c_contiguous or a.size <= 1
    return view


class Maker:
    """Random inputs of one dtype and one layout."""

    def __init__(self, rng, dtype, layout="C"):
        self.rng, self.dtype, self.layout = rng, np.dtype(dtype), layout

    def normal(self, *shape, scale=1.0):
        return arrange((scale * self.rng.standard_normal(shape)).astype(self.dtype), self.layout)

    def uniform(self, low, high, *shape):
        return arrange(self.rng.uniform(low, high, shape).astype(self.dtype), self.layout)

    def away_from_zero(self, *shape):
        """|value| in [0.5, 2], random sign: safe divisors."""
        mag = self.rng.uniform(0.5, 2.0, shape) * self.rng.choice([-1.0, 1.0], shape)
        return arrange(mag.astype(self.dtype), self.layout)

    def with_zeros(self, *shape):
        """Normal values with exact zeros sprinkled in (ReLU's kink)."""
        x = self.rng.standard_normal(shape)
        x.reshape(-1)[::7] = 0.0
        return arrange(x.astype(self.dtype), self.layout)

    def ints(self, high, *shape):
        return self.rng.integers(0, high, shape).astype(np.int64)


def copy_args(args):
    """Fresh copies of the array arguments that keep each one's layout (C, F or strided)."""
    def copy(a):
        if a.flags.c_contiguous:
            return a.copy(order="C")
        return a.copy(order="F") if a.flags.f_contiguous else arrange(a, "strided")
    return [copy(a) if isinstance(a, np.ndarray) else a for a in args]


def assert_close(got, want, dtype, what=""):
    """Results of the two backends agree: same type, shape, dtype, and values to TOL."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, dtype, f"{what}[{i}]")
    elif want is None:
        assert got is None, what
    elif type(got) is float:  # a loss read back to the host (test_cuda_backend.py)
        assert isinstance(want, np.ndarray) and want.shape == (), f"{what}: got a float"
        tol = TOL[np.dtype(dtype)]
        assert got == pytest.approx(float(want), rel=tol["rtol"], abs=tol["atol"]), what
    else:
        assert isinstance(got, np.ndarray), f"{what}: expected an ndarray, got {type(got)}"
        assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
        if want.dtype.kind in "iub":
            np.testing.assert_array_equal(got, want, err_msg=what)
        else:
            np.testing.assert_allclose(got, want, err_msg=what, **TOL[want.dtype])


def run_both(name, args, kwargs, dtype):
    """Run kernel `name` on both backends with copies of the same inputs and compare the
    results and the inputs afterwards (which also compares in-place updates)."""
    results, after = {}, {}
    for backend, mod in BACKENDS.items():
        mine = copy_args(args)
        results[backend] = getattr(mod, name)(*mine, **kwargs)
        after[backend] = mine
    assert_close(results["cpu"], results["reference"], dtype, name)
    for i, (a_cpu, a_ref, a_in) in enumerate(zip(after["cpu"], after["reference"], args)):
        if isinstance(a_in, np.ndarray):
            assert_close(a_cpu, a_ref, dtype, f"{name} argument {i} after the call")
            if name not in ("sgd_update", "adam_update"):  # only the optimizers update inputs
                np.testing.assert_array_equal(a_cpu, a_in, err_msg=f"{name} changed argument {i}")
    return results["cpu"]


# --- the cases: every kernel, odd sizes included -----------------------------------------

SHAPES = [(), (1,), (1, 1), (7,), (33, 65, 17), (3, 1, 5, 2)]
MATMUL_SIZES = [(1, 1, 1), (33, 65, 17), (64, 129, 31)]        # (M, K, N)
# (N, C, H, W, kh, kw, (sh, sw), (ph, pw)): square and rectangular
CONV_GEOMETRIES = [(1, 1, 1, 1, 1, 1, (1, 1), (0, 0)), (2, 3, 9, 8, 3, 3, (1, 1), (1, 1)),
                   (2, 3, 10, 7, 3, 2, (2, 1), (1, 0)), (1, 2, 11, 13, 5, 5, (3, 2), (2, 1)),
                   (3, 4, 6, 6, 2, 2, (2, 2), (0, 0)), (1, 1, 4, 5, 3, 3, (1, 1), (2, 2)),
                   (1, 2, 6, 6, 3, 1, (2, 1), (0, 1))]
# (N, C, H, W, (kh, kw), (sh, sw), (ph, pw)) with ph <= kh // 2, pw <= kw // 2
POOL_GEOMETRIES = [(1, 1, 1, 1, (1, 1), (1, 1), (0, 0)), (2, 3, 9, 8, (3, 3), (2, 2), (1, 1)),
                   (2, 2, 8, 8, (2, 2), (2, 2), (0, 0)), (1, 3, 11, 13, (3, 2), (1, 2), (1, 1)),
                   (2, 1, 7, 7, (5, 3), (3, 1), (2, 0)), (1, 2, 5, 9, (4, 2), (3, 2), (2, 1)),
                   (1, 1, 6, 6, (2, 3), (2, 1), (0, 1))]
SGD_SETTINGS = [(0.0, False, 0.0), (0.0, False, 1e-2), (0.9, False, 0.0), (0.9, True, 5e-4)]
ADAM_SETTINGS = [(0.0, False), (0.1, False), (0.1, True)]   # (weight decay, decoupled: AdamW)


def _nonnegative(a):
    """|a| in place (its layout kept, a 0-d array stays an array): Adam's second moments."""
    np.abs(a, out=a)
    return a


def _elementwise_binary(mk):
    return [((mk.normal(*s), mk.normal(*s)), {}) for s in SHAPES]


def _conv_out(g):
    N, C, H, W, kh, kw, (sh, sw), (ph, pw) = g
    return N, C, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def _pool_out(g):
    N, C, H, W, (kh, kw), (sh, sw), (ph, pw) = g
    return N, C, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def _pool_input(mk, N, C, H, W):
    """Half the cases draw from {0, 1, 2} so that windows hold ties."""
    if mk.rng.random() < 0.5:
        return arrange(mk.rng.integers(0, 3, (N, C, H, W)).astype(mk.dtype), mk.layout)
    return mk.normal(N, C, H, W)


SAMPLING_SIZES = [(1, 1, 1, 1, 2, 3), (2, 3, 7, 9, 5, 4)]  # (N, C, H, W, H_out, W_out)


def _sampling_cases(mk, with_grad, sizes=SAMPLING_SIZES):
    """(image, grid[, grad], padding_mode, align_corners); some grid points fall outside."""
    cases = []
    for n, c, h, w, ho, wo in sizes:
        for padding_mode in ("zeros", "border"):
            for align_corners in (False, True):
                args = (mk.normal(n, c, h, w), mk.uniform(-1.2, 1.2, n, ho, wo, 2))
                if with_grad:
                    args += (mk.normal(n, c, ho, wo),)
                cases.append((args + (padding_mode, align_corners), {}))
    return cases


CASES = {
    "matmul": lambda mk: [((mk.normal(m, k), mk.normal(k, n)), {}) for m, k, n in MATMUL_SIZES],
    "matmul_nt": lambda mk: [((mk.normal(m, k), mk.normal(n, k)), {}) for m, k, n in MATMUL_SIZES],
    "matmul_tn": lambda mk: [((mk.normal(k, m), mk.normal(k, n)), {}) for m, k, n in MATMUL_SIZES],
    "add": _elementwise_binary,
    "sub": _elementwise_binary,
    "mul": _elementwise_binary,
    "div": lambda mk: [((mk.normal(*s), mk.away_from_zero(*s)), {}) for s in SHAPES],
    "mul_scalar": lambda mk: [((mk.normal(*s), v), {}) for s in SHAPES for v in (-1.0, 0.37)],
    "pow_scalar": lambda mk: (
        [((mk.uniform(0.1, 3.0, *s), p), {}) for s in SHAPES for p in (2.0, 0.5, -1.3, 3.7)]
        + [((mk.normal(*s), p), {}) for s in SHAPES for p in (2.0, 3.0, 1.0)]),
    "exp": lambda mk: [((mk.normal(*s, scale=3.0),), {}) for s in SHAPES],
    "add_rowvec": lambda mk: [((mk.normal(m, n), mk.normal(n)), {})
                              for m, n in [(1, 1), (33, 65), (64, 129), (5, 1)]],
    "relu": lambda mk: [((mk.with_zeros(*s),), {}) for s in SHAPES],
    "relu_backward": lambda mk: [((mk.with_zeros(*s), mk.normal(*s)), {}) for s in SHAPES],
    "sum": lambda mk: (
        [((mk.normal(*s),), dict(axis=None, keepdims=kd)) for s in SHAPES for kd in (False, True)]
        + [((mk.normal(33, 65, 17),), dict(axis=a, keepdims=kd))
           for a in (0, 1, 2, -1, (0, 2), (0, 1), (1, 2), (2, 0), (), (-3, -1))
           for kd in (False, True)]
        + [((mk.normal(4, 3, 5, 6),), dict(axis=a, keepdims=False))
           for a in ((0, 2), (1, 3), (0, 1, 3), (0, 2, 3), 3)]
        + [((mk.normal(2 * 8192 + 3, 3),), dict(axis=0)), ((mk.normal(5, 20001),), dict(axis=1))]),
    "log_softmax": lambda mk: [((mk.normal(m, n, scale=sc),), {})
                               for m, n, sc in [(1, 1, 1.0), (33, 65, 1.0), (5, 1000, 3.0),
                                                (4, 7, 100.0)]],
    "log_softmax_backward": lambda mk: [
        ((arrange(ref.log_softmax(mk.normal(m, n, scale=2.0)), mk.layout), mk.normal(m, n)), {})
        for m, n in [(1, 1), (33, 65), (5, 1000)]],
    "cross_entropy": lambda mk: [((mk.normal(m, n, scale=sc), mk.ints(n, m)), {})
                                 for m, n, sc in [(1, 1, 1.0), (33, 65, 1.0), (7, 10, 1e4),
                                                  (64, 3, 5.0)]],
    "cross_entropy_backward": lambda mk: [
        ((arrange(ref.log_softmax(mk.normal(m, n, scale=2.0)), mk.layout), mk.ints(n, m), gl), {})
        for m, n in [(1, 1), (33, 65), (64, 3)] for gl in (1.0, 0.37)],
    "batch_norm": lambda mk: [((mk.normal(n, c, i, scale=2.0), mk.normal(c), mk.normal(c), 1e-5), {})
                              for n, c, i in [(2, 3, 5), (33, 5, 49), (7, 2, 1), (64, 16, 196)]],
    "batch_norm_backward": lambda mk: [
        ((x, mk.normal(*x.shape), *ref.batch_norm(x, w, w, 1e-5)[1:], w, 1e-5), {})
        for n, c, i in [(2, 3, 5), (33, 5, 49), (7, 2, 1), (64, 16, 196)] for x, w in [(mk.normal(n, c, i), mk.normal(c))]],
    "im2col": lambda mk: [((mk.normal(*g[:4]), *g[4:]), {}) for g in CONV_GEOMETRIES],
    "col2im": lambda mk: [
        ((mk.normal(N * Ho * Wo, C * g[4] * g[5]), g[:4], *g[4:]), {})
        for g in CONV_GEOMETRIES for N, C, Ho, Wo in [_conv_out(g)]],
    "max_pool2d": lambda mk: [((_pool_input(mk, *g[:4]), *g[4:]), {}) for g in POOL_GEOMETRIES],
    "max_pool2d_backward": lambda mk: [
        ((mk.normal(*_pool_out(g)), ref.max_pool2d(_pool_input(mk, *g[:4]), *g[4:])[1], g[:4]), {})
        for g in POOL_GEOMETRIES],
    "affine_grid": lambda mk: [((mk.normal(n, 2, 3), h, w, ac), {})
                               for n, h, w in [(1, 1, 1), (2, 5, 7), (3, 16, 9)]
                               for ac in (False, True)],
    "affine_grid_backward": lambda mk: [((mk.normal(n, h, w, 2), ac), {})
                                        for n, h, w in [(1, 1, 1), (2, 5, 7), (3, 16, 9)]
                                        for ac in (False, True)],
    "bilinear_sample": lambda mk: _sampling_cases(mk, with_grad=False),
    "bilinear_sample_backward": lambda mk: _sampling_cases(mk, with_grad=True),
    "index_backward": lambda mk: [
        ((mk.normal(4, 5), (np.array([0, 2, 2, 1]),), (3, 5)), {}),
        ((mk.normal(2, 3), (slice(1, 3), slice(None, None, 2)), (4, 6)), {}),
        ((mk.normal(3), (np.array([1, 1, 0]), np.array([2, 2, 2])), (2, 3)), {}),
        ((mk.normal(), (1, 2), (2, 3)), {})],
    "sgd_update": lambda mk: [
        ((mk.normal(*s), mk.normal(*s), mk.normal(*s) if mom else None, 0.1, mom, nest, wd), {})
        for s in [(), (1,), (33, 17), (4, 3, 5)] for mom, nest, wd in SGD_SETTINGS],
    "adam_update": lambda mk: [
        ((mk.normal(*s), mk.normal(*s), mk.normal(*s), _nonnegative(mk.normal(*s)), step, 1e-2, 0.9, 0.99,
          1e-8, wd, decoupled), {})
        for s in [(), (1,), (33, 17), (4, 3, 5)] for step in (1, 7)
        for wd, decoupled in ADAM_SETTINGS],
}


def test_both_modules_offer_every_kernel_with_the_same_signature():
    names = set(KERNELS)
    for mod in (ref, cpu):
        missing = [n for n in KERNELS if not callable(getattr(mod, n, None))]
        assert not missing, f"{mod.__name__} lacks {missing}"
        odd = set(mod.__all__) ^ names
        assert not odd, f"{mod.__name__}.__all__ differs from KERNELS by {odd}"
    for name in sorted(names):
        sig_ref = inspect.signature(getattr(ref, name)).parameters
        sig_cpu = inspect.signature(getattr(cpu, name)).parameters
        assert list(sig_cpu) == list(sig_ref), name
        assert [p.default for p in sig_cpu.values()] == [p.default for p in sig_ref.values()], name


def test_every_kernel_has_parity_cases():
    assert set(CASES) == set(KERNELS)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_matches_reference(name, dtype, layout):
    mk = Maker(np.random.default_rng(zlib.crc32(f"{name} {layout}".encode())), dtype, layout)
    for args, kwargs in CASES[name](mk):
        run_both(name, args, kwargs, dtype)


def _has_out(name):
    return "out" in inspect.signature(getattr(ref, name)).parameters


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", [n for n in sorted(CASES) if _has_out(n)])
def test_out_argument_is_filled_and_returned(name, dtype):
    mk = Maker(np.random.default_rng(7), dtype, "strided")
    for args, kwargs in CASES[name](mk):
        want = getattr(ref, name)(*args, **kwargs)
        for backend, mod in BACKENDS.items():
            out = np.full(want.shape, np.nan, dtype=want.dtype)
            got = getattr(mod, name)(*args, out=out, **kwargs)
            assert got is out, f"{backend}.{name} did not return its out array"
            np.testing.assert_allclose(out, want, err_msg=f"{backend}.{name}",
                                       **TOL[np.dtype(dtype)])


def test_add_rowvec_in_place():
    """Linear and Conv2d call add_rowvec(y, b, out=y)."""
    rng = np.random.default_rng(3)
    y, b = rng.standard_normal((9, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    want = y + b
    assert cpu.add_rowvec(y, b, out=y) is y
    np.testing.assert_allclose(y, want, rtol=1e-6)


# --- hypothesis: random shapes ---------------------------------------------------------

dtypes = st.sampled_from(DTYPES)
layouts = st.sampled_from(LAYOUTS)
seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 9), min_size=0, max_size=4).map(tuple)


@HYPOTHESIS
@given(shape=shapes, op=st.sampled_from(["add", "sub", "mul", "relu_backward"]),
       dtype=dtypes, layout=layouts, seed=seeds)
def test_elementwise_random_shapes(shape, op, dtype, layout, seed):
    mk = Maker(np.random.default_rng(seed), dtype, layout)
    run_both(op, (mk.with_zeros(*shape), mk.normal(*shape)), {}, dtype)
    run_both("relu", (mk.with_zeros(*shape),), {}, dtype)


# (full shape, the broadcast operand's own shape): a bias, a column, a per-channel scale,
# trailing and middle blocks, a scalar, and one on the general path (kept axes not adjacent)
BROADCASTS = [((5, 7), (7,)), ((6, 5), (6, 1)), ((3, 4, 5, 6), (1, 4, 1, 1)),
              ((2, 3, 4, 5), (4, 5)), ((2, 3, 4, 5), (1, 3, 4, 1)), ((3, 4), ()),
              ((3, 1, 5), (3, 1, 1)), ((4, 5), (1, 1)), ((2, 3, 4), (2, 1, 4))]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_of_a_broadcast_view(op, dtype):
    """Tensor ops pass broadcast views (np.broadcast_to, zero strides) to the kernels, and
    the CPU backend reads an operand broadcast from a vector in place
    (cpu_elementwise._vector): checked against the reference on the same views, with the
    broadcast operand first and second."""
    mk = Maker(np.random.default_rng(zlib.crc32(f"broadcast {op}".encode())), dtype)
    for shape, small in BROADCASTS:
        a, b = binary_inputs(mk, op, *shape, ties=False)
        a_small, b_small = binary_inputs(mk, op, *small, ties=False)
        for x, y in ((a, np.broadcast_to(b_small, shape)), (np.broadcast_to(a_small, shape), b)):
            got, want = cpu.binary(op, x, y), ref.binary(op, x, y)
            assert got.shape == want.shape == shape
            assert_close(got, want, dtype, f"{op} of a broadcast view, {shape} and {small}")


@HYPOTHESIS
@given(data=st.data(), shape=st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple),
       dtype=dtypes, layout=layouts, keepdims=st.booleans(), seed=seeds)
def test_sum_random_axes(data, shape, dtype, layout, keepdims, seed):
    nd = len(shape)
    axis = data.draw(st.one_of(
        st.none(), st.integers(-nd, nd - 1),
        st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).map(
            lambda axes: tuple(a - nd if a % 2 else a for a in axes))), label="axis")
    mk = Maker(np.random.default_rng(seed), dtype, layout)
    x = mk.normal(*shape)
    got = run_both("sum", (x,), dict(axis=axis, keepdims=keepdims), dtype)
    np.testing.assert_allclose(got, np.sum(x.astype(np.float64), axis=axis, keepdims=keepdims),
                               **TOL[np.dtype(dtype)])


def _pairs(lo, hi):
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


conv_geometries = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9),
                            st.integers(1, 9), st.integers(1, 4), st.integers(1, 4),
                            _pairs(1, 3), _pairs(0, 2)).filter(
    lambda g: g[2] + 2 * g[7][0] >= g[4] and g[3] + 2 * g[7][1] >= g[5])


@HYPOTHESIS
@given(g=conv_geometries, dtype=dtypes, layout=layouts, seed=seeds)
def test_im2col_col2im_random_geometry(g, dtype, layout, seed):
    mk = Maker(np.random.default_rng(seed), dtype, layout)
    N, C, Ho, Wo = _conv_out(g)
    run_both("im2col", (mk.normal(*g[:4]), *g[4:]), {}, dtype)
    run_both("col2im", (mk.normal(N * Ho * Wo, C * g[4] * g[5]), g[:4], *g[4:]), {}, dtype)


pool_geometries = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9),
                            st.integers(1, 9), _pairs(1, 4), _pairs(1, 3), _pairs(0, 2)).filter(
    lambda g: all(g[6][d] <= g[4][d] // 2 and g[2 + d] + 2 * g[6][d] >= g[4][d] for d in (0, 1)))


@HYPOTHESIS
@given(g=pool_geometries, dtype=dtypes, layout=layouts, seed=seeds)
def test_max_pool_random_geometry(g, dtype, layout, seed):
    mk = Maker(np.random.default_rng(seed), dtype, layout)
    out, argmax = run_both("max_pool2d", (_pool_input(mk, *g[:4]), *g[4:]), {}, dtype)
    run_both("max_pool2d_backward", (mk.normal(*out.shape), argmax, g[:4]), {}, dtype)


@HYPOTHESIS
@given(m=st.integers(1, 9), n=st.integers(1, 17), scale=st.sampled_from([0.1, 1.0, 30.0]),
       dtype=dtypes, layout=layouts, seed=seeds)
def test_softmax_family_random_shapes(m, n, scale, dtype, layout, seed):
    mk = Maker(np.random.default_rng(seed), dtype, layout)
    x, t = mk.normal(m, n, scale=scale), mk.ints(n, m)
    logp = run_both("log_softmax", (x,), {}, dtype)
    run_both("log_softmax_backward", (arrange(logp, layout), mk.normal(m, n)), {}, dtype)
    _, logp = run_both("cross_entropy", (x, t), {}, dtype)
    run_both("cross_entropy_backward", (logp, t, 0.5), {}, dtype)



@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_log_softmax_rows_with_nan_and_inf(dtype):
    """The row kernel's max is a vectorized reduction (maxnum, which passes over a NaN): a
    NaN anywhere in a row (first, in the vector body, in the remainder), an inf, and a row of
    -inf give the reference's values, NaN where it has NaN."""
    x = np.random.default_rng(5).standard_normal((7, 37)).astype(dtype)
    x[0, 0] = x[1, 20] = x[2, 36] = np.nan
    x[3, 5], x[4, 9] = np.inf, -np.inf
    x[5] = -np.inf
    assert_close(BACKENDS["cpu"].log_softmax(x), ref.log_softmax(x), dtype, "log_softmax")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (3, 1, 7), (2, 7, 300), (1, 33, 513), (4, 10, 2)])
def test_log_softmax_over_a_middle_axis(shape, dtype):
    """The CPU's kernels beside the contract, over axis 1 of (O, K, I) (softmax over a dim
    that is not last, with no moving of axes), against the reference's row kernels on the
    axis moved last: values, the backward, and a NaN and an inf column."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x[0, 0, 1], x[-1, -1, 0] = np.nan, np.inf
    g = rng.standard_normal(shape).astype(dtype)

    def rows(a):
        return np.ascontiguousarray(np.moveaxis(a, 1, -1)).reshape(-1, shape[1])

    def back(r):
        return np.moveaxis(r.reshape(shape[0], shape[2], shape[1]), -1, 1)

    cpu = BACKENDS["cpu"]
    logp = cpu.log_softmax_middle(x)
    assert_close(logp, back(ref.log_softmax(rows(x))), dtype, "log_softmax_middle")
    assert_close(cpu.log_softmax_middle_backward(logp, g),
                 back(ref.log_softmax_backward(rows(logp), rows(g))), dtype,
                 "log_softmax_middle_backward")


# --- independent checks of the meaning ---------------------------------------------------

@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("g", CONV_GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(backend, g):
    """<im2col(x), c> = <x, col2im(c)> for all x, c: col2im is im2col's transpose."""
    k = BACKENDS[backend]
    rng = np.random.default_rng(11)
    x = rng.standard_normal(g[:4])
    N, C, Ho, Wo = _conv_out(g)
    c = rng.standard_normal((N * Ho * Wo, C * g[4] * g[5]))
    lhs = np.vdot(k.im2col(x, *g[4:]), c)
    rhs = np.vdot(x, k.col2im(c, g[:4], *g[4:]))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cross_entropy_against_logsumexp(backend, dtype):
    from scipy.special import logsumexp, softmax
    k = BACKENDS[backend]
    rng = np.random.default_rng(5)
    z = (3 * rng.standard_normal((9, 6))).astype(dtype)
    t = rng.integers(0, 6, 9)
    z64 = z.astype(np.float64)
    want = np.mean(logsumexp(z64, axis=1) - z64[np.arange(9), t])
    loss, logp = k.cross_entropy(z, t)
    rel = 1e-6 if dtype == np.float32 else 1e-12
    assert isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype == dtype
    assert float(loss) == pytest.approx(want, rel=rel)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(logp, z64 - logsumexp(z64, axis=1, keepdims=True), **tol)
    onehot = np.eye(6)[t]
    np.testing.assert_allclose(k.cross_entropy_backward(logp, t, 0.3),
                               (softmax(z64, axis=1) - onehot) * 0.3 / 9, **tol)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_cross_entropy_does_not_overflow(backend):
    k = BACKENDS[backend]
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0], [1e4, 1e4, -1e4]], dtype=np.float32)
    loss, logp = k.cross_entropy(z, np.array([0, 0, 1]))
    assert np.isfinite(logp).all()
    assert loss == pytest.approx((0.0 + 1e4 + math.log(2)) / 3, rel=1e-6)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("momentum,nesterov,wd", SGD_SETTINGS)
def test_sgd_matches_two_unrolled_steps(backend, momentum, nesterov, wd):
    """PyTorch's SGD with dampening 0, written out for two steps from buf = 0."""
    k = BACKENDS[backend]
    rng = np.random.default_rng(9)
    p0, g1, g2 = rng.standard_normal((3, 5, 4))
    lr, mu = 0.1, momentum
    d1 = g1 + wd * p0
    b1 = d1                                                  # μ·0 + d1
    p1 = p0 - lr * ((d1 + mu * b1 if nesterov else b1) if mu else d1)
    d2 = g2 + wd * p1
    b2 = mu * b1 + d2
    p2 = p1 - lr * ((d2 + mu * b2 if nesterov else b2) if mu else d2)

    param, buf = p0.copy(), np.zeros_like(p0) if mu else None
    assert k.sgd_update(param, g1.copy(), buf, lr, mu, nesterov, wd) is None
    k.sgd_update(param, g2.copy(), buf, lr, mu, nesterov, wd)
    np.testing.assert_allclose(param, p2, rtol=1e-12, atol=1e-12)
    if mu:
        np.testing.assert_allclose(buf, b2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape,axes", [((16, 8, 9, 7), (0, 2, 3)), ((3, 5, 600), (0, 2)),
                                        ((2, 3, 4, 5, 6), (0, 1, 4)), ((1, 2, 1), (0, 2))])
def test_sum_of_every_axis_but_a_middle_run(shape, axes, dtype):
    """Batch-norm statistics and per-channel gradients (cpu._sum_middle_kernel, lanes of
    _SUM_COLS: a 600-long run takes three) against NumPy's float64 sum."""
    x = Maker(np.random.default_rng(7), dtype).normal(*shape)
    for keepdims in (False, True):
        got = run_both("sum", (x,), dict(axis=axes, keepdims=keepdims), dtype)
        np.testing.assert_allclose(got, np.sum(x.astype(np.float64), axis=axes,
                                               keepdims=keepdims), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0])
def test_pow_scalar_fast_exponents_are_pow_to_the_bit(p, dtype):
    """The CPU's x² and x¹ are products, not pow calls: the same bits as NumPy's power,
    infinities, NaN and -0 included (x³ stays a pow call: checked to rounding)."""
    x = Maker(np.random.default_rng(11), dtype).normal(1000)
    x[:6] = [np.inf, -np.inf, np.nan, -0.0, 0.0, 1e30]
    got, want = cpu.pow_scalar(x, p), np.power(x, x.dtype.type(p))
    if p < 3:
        assert np.array_equal(got, want, equal_nan=True)
        assert (np.signbit(got) == np.signbit(want)).all()
    else:
        assert_close(got, want, dtype, "pow_scalar")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_sum_of_a_million_float32(backend):
    k = BACKENDS[backend]
    x = np.random.default_rng(2).standard_normal(1_000_003).astype(np.float32)
    exact = math.fsum(x.astype(np.float64))
    got = k.sum(x)
    assert got.dtype == np.float32 and got.shape == ()
    assert float(got) == pytest.approx(exact, rel=1e-6)
    x2 = x[:1_000_000].reshape(1000, 1000)
    np.testing.assert_allclose(k.sum(x2, axis=0), x2.astype(np.float64).sum(0),
                               rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_max_pool_ties_go_to_the_first_maximum(backend):
    k = BACKENDS[backend]
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)            # every window is one big tie
    _, argmax = k.max_pool2d(x, 3, 1, 1)
    # first real element of each window in row-major order (padding never wins)
    want = [[max(h - 1, 0) * 4 + max(w - 1, 0) for w in range(4)] for h in range(4)]
    np.testing.assert_array_equal(argmax[0, 0], want)
    x[:] = -np.inf                                          # real -inf ties with the padding
    out, argmax = k.max_pool2d(x, 3, 1, 1)
    np.testing.assert_array_equal(argmax[0, 0], want)
    assert (out == -np.inf).all()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_nan_passes_through_relu_and_max_pool(backend):
    k = BACKENDS[backend]
    x = np.array([[[[1.0, np.nan], [2.0, 0.5]]]], dtype=np.float32)
    assert np.isnan(k.relu(x)[0, 0, 0, 1])
    out, argmax = k.max_pool2d(x, 2, 2, 0)
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("g", POOL_GEOMETRIES)
def test_max_pool_matches_torch(backend, g):
    torch = pytest.importorskip("torch")
    k = BACKENDS[backend]
    rng = np.random.default_rng(13)
    x = rng.standard_normal(g[:4])                          # continuous values: no ties
    kk, s, p = g[4:]
    out, argmax = k.max_pool2d(x, kk, s, p)
    xt = torch.tensor(x, requires_grad=True)
    out_t, idx_t = torch.nn.functional.max_pool2d(xt, kk, s, p, return_indices=True)
    np.testing.assert_array_equal(argmax, idx_t.numpy())
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    grad = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(grad))
    np.testing.assert_allclose(k.max_pool2d_backward(grad, argmax, x.shape), xt.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("g", CONV_GEOMETRIES[1:])
def test_conv_as_im2col_matmul_matches_torch(backend, dtype, g):
    torch = pytest.importorskip("torch")
    k = BACKENDS[backend]
    rng = np.random.default_rng(17)
    N, C, H, W, kh, kw, s, p = g
    c_out = 4
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((c_out, C, kh, kw)).astype(dtype)
    _, _, Ho, Wo = _conv_out(g)
    cols = k.im2col(x, kh, kw, s, p)
    y = k.matmul_nt(cols, w.reshape(c_out, -1)).reshape(N, Ho, Wo, c_out).transpose(0, 3, 1, 2)
    xt = torch.tensor(x, requires_grad=True)
    y_t = torch.nn.functional.conv2d(xt, torch.tensor(w), stride=s, padding=p)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **tol)
    # backward: dx = col2im(g2 · W2), the adjoint path
    grad = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.tensor(grad))
    g2 = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, c_out)
    dx = k.col2im(k.matmul(g2, w.reshape(c_out, -1)), x.shape, kh, kw, s, p)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)




# --- the contract: every backend offers all of it, with the base's signatures ---------------

def _backends():
    return ["reference", "cpu"] + (["cuda"] if backends.cuda_available() else [])


@pytest.mark.parametrize("backend", _backends())
def test_sgd_with_momentum_and_no_buffer_is_refused(backend):
    """A clear ValueError before any kernel runs, on every backend (one check, in reference.py)."""
    mod = backends.module(backend)
    p, g = np.ones(3, np.float32), np.ones(3, np.float32)
    if backend == "cuda":
        from tinydeep.backends import cuda_device as cd
        p, g = cd.from_host(p), cd.from_host(g)
    with pytest.raises(ValueError, match="needs a momentum buffer"):
        mod.BACKEND.sgd_update(p, g, None, 0.1, 0.9, False, 0.0)


@pytest.mark.parametrize("name", _backends())
def test_every_backend_implements_the_contract(name):
    k = module(name).BACKEND
    assert isinstance(k, Backend) and backends.get("cpu") is backends.arrays("cpu")
    for n in CONTRACT:
        impl = getattr(k, n)
        assert not getattr(impl, "declared_only", False), f"{name} lacks {n}"
        if n in KERNELS or n in ("unary", "unary_backward", "binary", "binary_backward"):
            want = list(inspect.signature(getattr(Backend, n)).parameters)[1:]
            assert list(inspect.signature(impl).parameters) == want, f"{name}.{n}"


@pytest.mark.parametrize("name", _backends())
def test_a_loss_is_a_0d_array_on_every_backend(name):
    k = module(name).BACKEND
    z = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
    loss, logp = k.cross_entropy(k.from_host(z), k.from_host(np.array([0, 2, 1, 1, 0])))
    assert k.is_array(loss) and loss.shape == () and loss.dtype == np.float32
    np.testing.assert_allclose(k.to_host(loss), ref.cross_entropy(z, np.array([0, 2, 1, 1, 0]))[0],
                               rtol=1e-6)


# --- elementwise families: each op of scalar_ops.py on every backend ---------------------

POSITIVE = {"log", "sqrt", "log1p"}    # domains where the op is smooth and finite


def unary_input(mk, op, *shape):
    if op in POSITIVE:
        return mk.uniform(0.2, 3.0, *shape)
    return mk.away_from_zero(*shape) if op == "reciprocal" else mk.with_zeros(*shape)


def binary_inputs(mk, op, *shape, ties=True):
    a = mk.uniform(0.2, 3.0, *shape) if op == "pow" else mk.normal(*shape)
    b = mk.away_from_zero(*shape) if op == "div" else mk.normal(*shape)
    if ties and op in ("maximum", "minimum", "clamp_min", "clamp_max") and a.size:
        b = np.array(b)
        b.reshape(-1)[::3] = np.asarray(a).reshape(-1)[::3]   # ties split the gradient
        b = arrange(b, mk.layout)
    return a, b


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_family_cpu_matches_reference(op, dtype, layout):
    mk = Maker(np.random.default_rng(zlib.crc32(f"unary {op} {layout}".encode())), dtype, layout)
    for shape in SHAPES:
        x = unary_input(mk, op, *shape)
        y = run_both("unary", (op, x), {}, dtype)
        run_both("unary_backward", (op, x, arrange(y, layout), mk.normal(*shape)), {}, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_family_cpu_matches_reference(op, dtype, layout):
    mk = Maker(np.random.default_rng(zlib.crc32(f"binary {op} {layout}".encode())), dtype, layout)
    for shape in SHAPES:
        a, b = binary_inputs(mk, op, *shape)
        y = run_both("binary", (op, a, b), {}, dtype)
        run_both("binary_backward", (op, a, b, arrange(y, layout), mk.normal(*shape)), {}, dtype)


@pytest.mark.parametrize("name", ["reference", "cpu"])
@pytest.mark.parametrize("op", sorted(UNARY) + sorted(BINARY))
def test_family_derivatives_match_finite_differences(name, op):
    """float64, central differences, inputs away from kinks and ties: every element's
    derivative at once, since the ops are elementwise."""
    k, h = module(name).BACKEND, 1e-6
    mk = Maker(np.random.default_rng(zlib.crc32(f"fd {op}".encode())), np.float64)
    g = mk.normal(4, 5)
    if op in UNARY:
        x = mk.uniform(0.2, 3.0, 4, 5) if op in POSITIVE else mk.away_from_zero(4, 5)
        numeric = [(k.unary(op, x + h) - k.unary(op, x - h)) / (2 * h) * g]
        analytic = [k.unary_backward(op, x, k.unary(op, x), g)]
    else:
        a, b = binary_inputs(mk, op, 4, 5, ties=False)
        numeric = [(k.binary(op, a + h, b) - k.binary(op, a - h, b)) / (2 * h) * g,
                   (k.binary(op, a, b + h) - k.binary(op, a, b - h)) / (2 * h) * g]
        analytic = list(k.binary_backward(op, a, b, k.binary(op, a, b), g))
    for num, ana in zip(numeric, analytic):
        np.testing.assert_allclose(ana, num, rtol=1e-6, atol=1e-7, err_msg=op)


@pytest.mark.parametrize("op", sorted(UNARY) + sorted(BINARY))
def test_family_matches_torch_values_and_gradients(op):
    """At the kinks too: relu'(0) = |x|'(0) = 0, ties of maximum/minimum split the
    gradient, pow's gradients where a or b is 0."""
    torch = pytest.importorskip("torch")
    mk = Maker(np.random.default_rng(zlib.crc32(f"torch {op}".encode())), np.float64)
    g = mk.normal(6, 5)
    if op in UNARY:
        inputs = [unary_input(mk, op, 6, 5)]
    else:
        inputs = list(binary_inputs(mk, op, 6, 5))
        if op == "pow":
            inputs[0][0, :3], inputs[1][0, :3] = 0.0, [0.0, 2.0, 1.5]
    ts = [torch.tensor(v, requires_grad=True) for v in inputs]
    torch_op = {"pick": lambda a, m: torch.where(m != 0, a, 0.0),
                "gelu": torch.nn.functional.gelu,
                "softplus": torch.nn.functional.softplus}.get(op, getattr(torch, op, None))
    y_t = torch_op(*ts)
    y_t.backward(torch.tensor(g))
    for name in _backends():
        k = module(name).BACKEND
        dev = [k.from_host(v) for v in inputs]
        if op in UNARY:
            y = k.unary(op, *dev)
            grads = [k.unary_backward(op, *dev, y, k.from_host(g))]
        else:
            y = k.binary(op, *dev)
            grads = k.binary_backward(op, *dev, y, k.from_host(g))
        np.testing.assert_allclose(k.to_host(y), y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
        for got, t in zip(grads, ts):   # (no grad: the input only chose, as pick's mask)
            want = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
            np.testing.assert_allclose(k.to_host(got), want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{name} {op}")


@pytest.mark.skipif(not backends.cuda_available(), reason="no CUDA GPU or simulator")
@pytest.mark.usefixtures("fast_cuda_simulator")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_families_on_cuda_match_reference(dtype):
    """Small shapes: under the simulator every thread is a Python thread."""
    cu = module("cuda").BACKEND
    mk = Maker(np.random.default_rng(8), dtype)
    for shape in [(), (7,), (3, 1, 2, 2)]:
        g = mk.normal(*shape)
        for op in UNARY:
            x = unary_input(mk, op, *shape)
            y = cu.unary(op, cu.from_host(x))
            assert_close(cu.to_host(y), ref.unary(op, x), dtype, op)
            dx = cu.unary_backward(op, cu.from_host(x), y, cu.from_host(g))
            assert_close(cu.to_host(dx), ref.unary_backward(op, x, ref.unary(op, x), g), dtype, op)
        for op in BINARY:
            a, b = binary_inputs(mk, op, *shape)
            y = cu.binary(op, cu.from_host(a), cu.from_host(b))
            assert_close(cu.to_host(y), ref.binary(op, a, b), dtype, op)
            got = cu.binary_backward(op, cu.from_host(a), cu.from_host(b), y, cu.from_host(g))
            want = ref.binary_backward(op, a, b, ref.binary(op, a, b), g)
            assert_close(tuple(cu.to_host(d) for d in got), want, dtype, op)


def test_an_unknown_elementwise_op_is_refused_by_name():
    for name in ("reference", "cpu"):
        with pytest.raises(ValueError, match="sigmoid"):
            module(name).BACKEND.unary("sigmod", np.ones(3))
