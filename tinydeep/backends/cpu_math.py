"""exp, tanh and erf for float32 in the CPU's compiled loops, written so that LLVM vectorizes them.

In a Numba loop, math.exp on a float32 is a call to glibc's expf, one element at a
time (~4 ns each on the machines of benchmarks/RESULTS.md), where NumPy and PyTorch
evaluate 8 or 16 lanes at once. Written with arithmetic, compares and integer shifts
only, exp is a few vector instructions per 8 lanes instead:

    exp(x) = 2^n · e^r,  n = round(x / ln 2),  r = x - n·ln 2 in [-ln2/2, ln2/2]

with ln 2 in two parts (Cody and Waite: n·C1 is exact, so r loses no bits) and e^r
by Cephes' degree-7 minimax polynomial for expf; 2^n is built from its exponent bits,
in two halves so that results down to the subnormals come out (gradual underflow).
tanh(x) is Cephes' tanhf: an odd polynomial where |x| < 0.625, else
sign(x)·(1 - 2/(e^{2|x|} + 1)). erf(x) is Norbert Juffa's erff: x + x·q(x²) where
|x| <= 0.9277, else sign(x)·(1 - e^{p(|x|)}). Errors against the correctly rounded
values, over every 61st float32: at most 1.003 ulp for exp, 1.30 for tanh, 1.003 for
erf (NumPy's float32 exp and tanh there: 2.37 and 1.36); tests/test_cpu_math.py holds
them to 1.5, 2 and 1.5.

These overload scalar_ops.exp, .tanh and .erf on the CPU target, inlined into the
calling loop (Numba IR: LLVM would not inline erf's two branches, and a call stops the
loop's vectorization): the elementwise families and the softmax kernels pick them up,
and compile with fastmath 'contract' for them. float64 keeps libm's functions (and the
GPU its own).
"""
import math
import zlib
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import scalar_ops

F = np.float32
# In the elementwise loops' cache key. (cpu.py's softmax kernels are cached by cpu.py's own
# date, as Numba does: after an edit here, touch cpu.py, or they keep the old code.)
VERSION = f"{zlib.crc32(Path(__file__).read_bytes()):08x}"


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """a where cond, else b: one LLVM select. (A branch, `a if cond else b`, inlined into a
    parallel loop made Numba print NumbaIRAssumptionWarning at the first compile.)"""
    def codegen(context, builder, signature, args):
        return builder.select(*args)
    return a(types.boolean, a, a), codegen


@intrinsic
def maxnum(typingctx, a, b):
    """max(a, b), the other one where one is NaN: LLVM's maxnum, whose reductions LLVM
    vectorizes (a row's max by `max(m, r[n])` ran one element per compare's latency, ~15x
    slower at rows of 1000 floats: the compare-and-select loop is not a reduction it knows)."""
    def codegen(context, builder, signature, args):
        t = args[0].type
        name = "llvm.maxnum.f64" if isinstance(t, ir.DoubleType) else "llvm.maxnum.f32"
        return builder.call(cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(t, [t, t]), name), args)
    return a(a, a), codegen


@njit(inline="always")
def exp32(x):
    v = _select(x > F(-104.0), x, F(-104.0))       # e^-104 < the smallest subnormal: 0
    v = _select(v < F(89.0), v, F(89.0))           # e^89 > the largest float32: inf
    n = (v * F(1.4426950408889634) + F(12582912.0)) - F(12582912.0)   # round(v/ln2): 1.5·2^23
    r = (v - n * F(0.693359375)) + n * F(2.12194440e-4)
    p = ((((F(1.9875691500e-4) * r + F(1.3981999507e-3)) * r + F(8.3334519073e-3)) * r
          + F(4.1665795894e-2)) * r + F(1.6666665459e-1)) * r + F(5.0000001201e-1)
    p = (p * r) * r + r + F(1.0)
    k = np.int32(n)
    h = k >> 1                                     # 2^n = 2^h · 2^(n-h), each a normal float
    y = p * _float_from_bits((h + 127) << 23) * _float_from_bits((k - h + 127) << 23)
    return _select(x == x, y, x)                   # NaN in, NaN out


@njit(inline="always")
def tanh32(x):
    a = abs(x)
    z = x * x
    p = (((F(-5.70498872745e-3) * z + F(2.06390887954e-2)) * z + F(-5.37397155531e-2)) * z
         + F(1.33314422036e-1)) * z + F(-3.33332819422e-1)
    small = p * z * x + x
    small = _select(small != F(0.0), small, x)     # tanh(±0) = ±0
    e = exp32(a + a)
    large = F(1.0) - F(2.0) / (e + F(1.0))
    large = _select(x >= F(0.0), large, -large)
    return _select(a < F(0.625), small, _select(x == x, large, x))


@njit(inline="always")
def erf32(x):
    t = abs(x)
    s = x * x
    q = ((((F(-5.96761703e-4) * s + F(4.99119423e-3)) * s + F(-2.67681349e-2)) * s
          + F(1.12819925e-1)) * s + F(-3.76125336e-1)) * s + F(1.28379166e-1)
    small = q * x + x
    p = (F(-1.72853470e-5) * t + F(3.83197126e-4)) * s + (F(-3.88396438e-3) * t
                                                         + F(2.42546219e-2))
    p = ((p * t + F(-1.06777877e-1)) * t + F(-6.34846687e-1)) * t + F(-1.28717512e-1)
    large = F(1.0) - exp32(p * t - t)
    large = _select(x >= F(0.0), large, -large)
    return _select(t <= F(0.927734375), small, _select(x == x, large, x))


def _float32_or_libm(fast, libm):
    def typer(x):
        return (lambda x: fast(x)) if x == types.float32 else (lambda x: libm(x))
    return typer


overload(scalar_ops.exp, target="cpu", inline="always")(_float32_or_libm(exp32, math.exp))
overload(scalar_ops.tanh, target="cpu", inline="always")(_float32_or_libm(tanh32, math.tanh))
overload(scalar_ops.erf, target="cpu", inline="always")(_float32_or_libm(erf32, math.erf))
