"""Living beside NumPy's BLAS threads.

tinydeep's parallel kernels (the packed matmul's parts, the direct convolution's runs
of images, the elementwise families) all run in Numba's one pool of its threading layer
(OpenMP here; Numba takes TBB first where it is installed). OpenMP's workers spin
briefly after each parallel loop, so that they are awake for the next one. (A pool
of parked Python threads for the matmul and the convolution had to wake a sleeping core
for every call and fought the spinning OpenMP workers for the cores: the MLP step ran
1.5-2x slower, the LeNet-style CNN step 1.4x.)

blas_limits(): NumPy's OpenBLAS keeps its idle workers spinning after each call
too. When NumPy matmuls and tinydeep kernels alternate (preprocessing in NumPy,
then a training step), the two pools fight over the cores. `blas_limits(1)`
(threadpoolctl) caps NumPy's BLAS at one thread for a block of code:

    with tinydeep.threads.blas_limits(1):
        for x, y in loader:
            x = np.asarray(x) @ whitening       # one BLAS thread, no spinning pool
            step(x, y)                          # tinydeep has the cores
"""
import contextlib

__all__ = ["blas_limits"]


@contextlib.contextmanager
def blas_limits(threads=1):
    """Cap NumPy's BLAS (OpenBLAS, MKL) at `threads` threads inside the block (threadpoolctl,
    a dependency: where it was missing this was a silent no-op, and the two pools fought)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=threads, user_api="blas"):
        yield
