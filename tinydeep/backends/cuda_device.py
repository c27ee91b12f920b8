"""What every CUDA kernel file shares: launch sizes, and the array helpers that
let a Tensor live on the GPU.

Imported only when a tensor asks for device 'cuda' (see backends.get), so
`import tinydeep` never touches numba.cuda. Kernels are `@cuda.jit` with no
signature: nothing compiles until the first launch, and a machine without a
GPU can import this file under the simulator (NUMBA_ENABLE_CUDASIM=1).

Device arrays. Every array tinydeep keeps on the GPU is C-contiguous, so a
flat view (`flat(a)`) is free and a kernel can index it as 1-D. Views NumPy
would give for free (transpose, broadcast_to, indexing) are made here by a
copy kernel instead; they are rare outside the hot loop.

Launch sizes are parameters (`LAUNCH`, `configure`): the simulator runs every
simulated thread as a Python thread, so under it the defaults are tiny; the
kernels are written grid-stride or with bounds checks, so any size is right.
"""
import ctypes
import math
import os
import sys
import threading
import weakref

import numpy as np
from numba import cuda

from numba.core import config as _numba_config

SIMULATING = bool(_numba_config.ENABLE_CUDASIM)


def _simulator_shared_array(self, shape, dtype, alignment=None):
    """numba-cuda's simulated `cuda.shared.array` (0.30.4) with its race closed. The
    simulator runs a block's threads as Python threads; each thread's call looks up the
    block's array by the calling line and makes it when missing. Two threads that both find
    it missing made two arrays, so one block's threads worked in different "shared" memory
    (seen: a 12-step training run off by 4e-4 once in three CI runs; a reduction wrong in 1
    of 300 launches at sys.setswitchinterval(1e-6)). Here the look-up-or-make is under a lock.
    The calling line is read from the caller's frame, not a whole extracted stack."""
    if alignment is not None or shape == 0:        # refused / dynamic: no race there
        return _SIMULATOR_SHARED_ARRAY(self, shape, dtype, alignment)
    caller = sys._getframe(1)
    key = (caller.f_code.co_filename, caller.f_lineno)
    with _SIMULATOR_SHARED_LOCK:
        if key not in self._allocations:
            self._allocations[key] = np.empty(shape, numpy_support.as_dtype(dtype)
                                              if isinstance(dtype, types.Type) else dtype)
        return self._allocations[key]


if SIMULATING:
    from numba.core import types
    from numba.np import numpy_support
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    _SIMULATOR_SHARED_ARRAY, _SIMULATOR_SHARED_LOCK = FakeCUDAShared.array, threading.Lock()
    FakeCUDAShared.array = _simulator_shared_array

# Threads per block and a cap on blocks for grid-stride kernels; the matmul tiles.
# fill_blocks: about two blocks per SM of a 132-SM H100/H200, the least a product should
# launch before its K is split (split_k_min: the shortest chunk of K); rung3_tiles: the
# least number of 128×128 output tiles for which matmul takes rung 3 (cuda_matmul.py);
# sample_channels: channels per pass of grid_sample's kernels (cuda_sampling.py)
GPU_LAUNCH = dict(threads=256, max_blocks=4096, reduce_threads=256,
                  tile=16, bm=64, bn=64, bk=8, tm=4, tn=4,
                  bm3=128, bn3=128, bk3=8, tm3=8, tn3=8,
                  fill_blocks=256, split_k_min=256, rung3_tiles=128, sample_channels=2)
# Under the simulator every block costs thread start-ups and every syncthreads a
# polling barrier, so: few blocks, big register tiles, few k-steps (still > 1 thread).
SIM_LAUNCH = dict(threads=4, max_blocks=2, reduce_threads=2,
                  tile=2, bm=8, bn=8, bk=4, tm=4, tn=4,
                  bm3=8, bn3=8, bk3=4, tm3=4, tn3=4,
                  fill_blocks=2, split_k_min=4, rung3_tiles=4, sample_channels=2)
LAUNCH = dict(SIM_LAUNCH if SIMULATING else GPU_LAUNCH)


def configure(**sizes):
    """Change launch sizes (threads, max_blocks, reduce_threads, tile, bm, bn, bk, tm, tn,
    bm3 ... tn3 for matmul rung 3, fill_blocks, split_k_min, rung3_tiles, sample_channels);
    returns the previous values so a caller can restore them. reduce_threads must be a
    power of two (tree reduction); bm, bn must be multiples of tm, tn."""
    unknown = set(sizes) - set(LAUNCH)
    if unknown:
        raise ValueError(f"unknown launch sizes {sorted(unknown)}; choose from {sorted(LAUNCH)}")
    new = {**LAUNCH, **sizes}
    if new["reduce_threads"] & (new["reduce_threads"] - 1):
        raise ValueError(f"reduce_threads must be a power of two, got {new['reduce_threads']}")
    for m, t in (("bm", "tm"), ("bn", "tn"), ("bm3", "tm3"), ("bn3", "tn3")):
        if new[m] % new[t]:
            raise ValueError(f"bm, bn, bm3, bn3 must be multiples of tm, tn, tm3, tn3; "
                             f"got {m}={new[m]}, {t}={new[t]}")
    old = dict(LAUNCH)
    LAUNCH.update(sizes)
    return old


def grid(n):
    """(blocks, threads) for a grid-stride loop over n items."""
    threads = LAUNCH["threads"]
    return max(1, min(LAUNCH["max_blocks"], -(-n // threads))), threads


_made = {}


def made(factory, *key):
    """factory(*key), built once per key: kernels whose shared-memory sizes or dtypes
    are compile-time constants come from factories (still lazy: no compile here)."""
    if (factory, key) not in _made:
        _made[(factory, key)] = factory(*key)
    return _made[(factory, key)]


def numba_type(dtype):
    from numba import from_dtype
    return from_dtype(np.dtype(dtype))


# --- moving and making arrays -------------------------------------------------------

def is_array(a):
    """A device array (numba's, or the simulator's stand-in)."""
    return not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host")


def from_host(a):
    """Upload a NumPy array (C order on the device)."""
    a = np.asarray(a)
    if not a.flags.c_contiguous:
        a = np.array(a, order="C")
    out = empty(a.shape, a.dtype)
    if a.size:
        out.copy_to_device(a)
    return out


def to_host(a):
    return a.copy_to_host()


# --- the device-buffer pool ---------------------------------------------------------------
# A training step makes the same output shapes every step. Instead of a cudaMalloc (and a
# later cudaFree) per kernel output, `empty` hands out a buffer from a free list keyed by its
# size rounded up to POOL_ROUND bytes, and the buffer goes back to that list when the last
# array viewing it is garbage-collected (a reshape or slice of it keeps it out). All kernels
# run on the default stream, so a buffer reused after its last host reference is gone is
# only written by kernels queued after every kernel that read it: no synchronization needed.
# The pool is tinydeep's only: numba's own allocations (cuda.to_device, device_array) are
# not affected. Each handed-out array gets its own "lease" object as its memory's owner;
# its finalizer returns the raw buffer.

POOL_ROUND = 512                     # bytes: size classes are multiples of this
# TINYDEEP_CUDA_POOL=0 turns it off (every output a fresh cudaMalloc), e.g. to rule it out
POOL = dict(enabled=os.environ.get("TINYDEEP_CUDA_POOL", "1") != "0", free={}, allocations=0,
            reuses=0, returns=0, cached_bytes=0)


class _Lease:
    """Owner of one handed-out buffer; alive as long as any array viewing the buffer."""
    __slots__ = ("__weakref__",)


def _give_back(key, raw):
    POOL["free"].setdefault(key, []).append(raw)
    POOL["returns"] += 1
    POOL["cached_bytes"] += key


def _raw_buffer(nbytes):
    """(raw buffer of nbytes, reused?) from the free list, else newly allocated."""
    stack = POOL["free"].get(nbytes)
    if stack:
        try:
            raw = stack.pop()
            POOL["cached_bytes"] -= nbytes
            POOL["reuses"] += 1
            return raw
        except IndexError:           # emptied by another thread in between
            pass
    POOL["allocations"] += 1
    if SIMULATING:
        return bytearray(nbytes)
    try:
        return cuda.device_array(nbytes, dtype=np.uint8)
    except Exception:                # out of memory: drop what the pool holds and try again
        release_pool()
        return cuda.device_array(nbytes, dtype=np.uint8)


def _view(raw, nbytes, shape, dtype):
    """An array of (shape, dtype) on raw's memory whose owner is a fresh lease; the lease's
    finalizer puts raw back on the free list."""
    if SIMULATING:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        lease = (ctypes.c_char * nbytes).from_buffer(raw)        # numpy views keep it alive
        arr = FakeCUDAArray(np.frombuffer(lease, dtype, math.prod(shape)).reshape(shape))
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        from numba.cuda.cudadrv.driver import MemoryPointer
        lease = _Lease()
        # the EMM interface's MemoryPointer: no finalizer (raw owns the memory), owner =
        # the lease, so reshapes (same pointer) and slices (owner = lease) keep it alive
        ptr = MemoryPointer(raw.gpu_data.context, raw.gpu_data.device_pointer, nbytes,
                            owner=lease)
        strides = tuple(s * dtype.itemsize for s in c_strides(shape))
        arr = DeviceNDArray(shape, strides, dtype, gpu_data=ptr)
    fin = weakref.finalize(lease, _give_back, nbytes, raw)
    fin.atexit = False
    return arr


def empty(shape, dtype):
    """An uninitialized C-contiguous device array, from the buffer pool."""
    shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    size = math.prod(shape)
    if not POOL["enabled"] or size == 0:
        return cuda.device_array(shape, dtype=dtype)
    nbytes = -(-size * dtype.itemsize // POOL_ROUND) * POOL_ROUND
    return _view(_raw_buffer(nbytes), nbytes, shape, dtype)


def pool_stats():
    """Counts since start: allocations (new device buffers), reuses, returns; cached_bytes
    held in the free lists now."""
    return {k: POOL[k] for k in ("allocations", "reuses", "returns", "cached_bytes")}


def release_pool():
    """Free every buffer the pool holds (arrays in use are not affected)."""
    POOL["free"] = {}
    POOL["cached_bytes"] = 0


def use_pool(enabled=True):
    """Turn the pool on or off (off: every `empty` is a fresh allocation); returns the old
    setting."""
    old = POOL["enabled"]
    POOL["enabled"] = bool(enabled)
    if not enabled:
        release_pool()
    return old


def flat(a):
    """The 1-D view of a C-contiguous device array (a 0-d array becomes shape (1,))."""
    return a.reshape(max(a.size, 1)) if a.ndim != 1 else a


def c_strides(shape):
    """Element strides of a C-ordered array of `shape`."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


@cuda.jit
def _fill_kernel(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda.jit
def _cast_kernel(src, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[i]


@cuda.jit
def _gather_kernel(src, out, shape, strides, offset):
    # out.flat[i] = src[offset + Σ_d idx_d · strides[d]] with idx the multi-index of i in
    # `shape`: a transpose (permuted strides) or a broadcast (stride 0) made contiguous.
    nd = len(shape)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        rem = i
        pos = offset
        for d in range(nd - 1, -1, -1):
            pos += (rem % shape[d]) * strides[d]
            rem //= shape[d]
        out[i] = src[pos]


@cuda.jit
def _take_kernel(src, index, out):
    # out[i] = src[index[i]]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[index[i]]


@cuda.jit
def _scatter_add_kernel(src, index, out):
    # out[index[i]] += src[i]; an index can repeat, hence the atomic add
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        cuda.atomic.add(out, index[i], src[i])


def full(shape, value, dtype):
    out = empty(shape, dtype)
    if out.size:
        _fill_kernel[grid(out.size)](flat(out), np.dtype(dtype).type(value))
    return out


def zeros(shape, dtype):
    return full(shape, 0, dtype)


def astype(a, dtype):
    """a converted to dtype (a itself when it already has it)."""
    if a.dtype == np.dtype(dtype):
        return a
    out = empty(a.shape, dtype)
    if out.size:
        _cast_kernel[grid(out.size)](flat(a), flat(out))
    return out


def contiguous(a):
    return a  # every device array tinydeep makes is C-contiguous


def _gather(a, shape, strides, offset=0):
    out = empty(shape, a.dtype)
    if out.size:
        shape1 = tuple(int(n) for n in shape) or (1,)
        strides1 = tuple(int(s) for s in strides) or (0,)
        _gather_kernel[grid(out.size)](flat(a), flat(out), shape1, strides1, offset)
    return out


def transpose(a, axes=None):
    """np.transpose(a, axes), as a new contiguous array."""
    axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(ax % a.ndim for ax in axes)
    if axes == tuple(range(a.ndim)):
        return a
    st = c_strides(a.shape)
    return _gather(a, [a.shape[ax] for ax in axes], [st[ax] for ax in axes])


def broadcast_to(a, shape):
    """np.broadcast_to(a, shape), made contiguous (a itself when the shape already fits)."""
    shape = tuple(shape)
    if a.shape == shape:
        return a
    np.broadcast_shapes(a.shape, shape)            # raises ValueError when it does not fit
    lead = len(shape) - a.ndim
    st = c_strides(a.shape)
    strides = [0] * lead + [0 if a.shape[d] == 1 else st[d] for d in range(a.ndim)]
    return _gather(a, shape, strides)


def _flat_index(index, shape):
    """Where the elements of x[index] sit in x.flat, worked out on the host from the
    index and the shape alone (no device data is read): then any NumPy index works."""
    positions = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)[index]
    return np.asarray(positions)


def take(a, index):
    """a[index] for any NumPy index (ints, slices, integer or bool arrays on the host)."""
    positions = _flat_index(index, a.shape)
    out = empty(positions.shape, a.dtype)
    if out.size:
        _take_kernel[grid(out.size)](flat(a), flat(from_host(positions)), flat(out))
    return out


def scatter_add(grad, index, shape):
    """zeros(shape) with grad added at index (the adjoint of take)."""
    positions = _flat_index(index, shape)
    out = zeros(shape, grad.dtype)
    if positions.size:
        grad = broadcast_to(grad, positions.shape)
        _scatter_add_kernel[grid(positions.size)](flat(grad), flat(from_host(positions)),
                                                  flat(out))
    return out


# --- comparisons and argmax (metrics: no gradient) ---------------------------------------

COMPARISONS = {"equal": 0, "not_equal": 1, "less": 2, "less_equal": 3, "greater": 4,
               "greater_equal": 5}


@cuda.jit
def _compare_kernel(a, b, out, op):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x, y = a[i], b[i]
        if op == 0:
            r = x == y
        elif op == 1:
            r = x != y
        elif op == 2:
            r = x < y
        elif op == 3:
            r = x <= y
        elif op == 4:
            r = x > y
        else:
            r = x >= y
        out[i] = r


def compare(a, b, op):
    """np.<op>(a, b) with op in COMPARISONS; b is a device array or a number."""
    if not is_array(b):
        b = full((), b, np.result_type(a.dtype, np.min_scalar_type(b)))
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = broadcast_to(a, shape), broadcast_to(b, shape)
    if a.dtype != b.dtype:
        common = np.result_type(a.dtype, b.dtype)
        a, b = astype(a, common), astype(b, common)
    out = empty(shape, np.bool_)
    if out.size:
        _compare_kernel[grid(out.size)](flat(a), flat(b), flat(out), COMPARISONS[op])
    return out


@cuda.jit
def _argmax_rows_kernel(x, out):
    # out[r] = the first j with x[r, j] maximal; a NaN counts as the maximum (np.argmax)
    for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        best = x[r, 0]
        where = 0
        for j in range(1, x.shape[1]):
            v = x[r, j]
            if best == best and (v > best or v != v):
                best = v
                where = j
        out[r] = where


def argmax(a, axis=None):
    """np.argmax(a, axis) (int64)."""
    if a.size == 0:
        raise ValueError("argmax of an empty tensor")
    if axis is None:
        rows, out_shape = a.reshape(1, a.size), ()
    else:
        axis = axis % a.ndim
        moved = transpose(a, [d for d in range(a.ndim) if d != axis] + [axis])
        out_shape = moved.shape[:-1]
        rows = moved.reshape(math.prod(out_shape), a.shape[axis])
    out = empty(out_shape, np.int64)
    _argmax_rows_kernel[grid(rows.shape[0])](rows, flat(out))
    return out
