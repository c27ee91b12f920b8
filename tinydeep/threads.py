"""Threads for tinydeep's packed kernels, and living beside NumPy's BLAS threads.

Team: the direct convolution cuts its batch into runs of images and runs each run
as Python code calling `nogil` Numba functions. A team of plain Python threads runs
them: the caller takes part 0, one parked worker per extra core takes the others.
Parked threads wait on a lock and cost nothing while idle, but waking one costs a
sleeping core's wake-up, paid per call: worth it for a convolution's milliseconds,
not for a matmul's. The packed matmul runs its parts in a `prange` loop instead
(cpu_matmul._gemm_parts), in the pool the elementwise kernels keep awake; moving
it onto the team made the MLP step 1.5-2x slower.

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
import os
import threading

__all__ = ["Team", "team", "blas_limits"]


class _Worker:
    """One parked thread: `go` is released to hand it work, `done` when it finishes."""

    def __init__(self):
        self.go = threading.Lock()
        self.done = threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.tasks = ()
        self.error = None
        self.thread = threading.Thread(target=self._loop, daemon=True, name="tinydeep-team")
        self.thread.start()

    def _loop(self):
        while True:
            self.go.acquire()                   # parked here (no spinning) until handed work
            try:
                for task in self.tasks:
                    task()
            except BaseException as e:          # re-raised in the caller
                self.error = e
            self.done.release()


class Team:
    """Run a list of zero-argument callables on up to `threads` threads (the caller is one
    of them) and return when all are done. Tasks must release the GIL (Numba nogil=True) to
    run at the same time."""

    def __init__(self):
        self._workers = []
        self._lock = threading.Lock()       # one run at a time; a nested or concurrent run goes serial

    def run(self, tasks, threads):
        n = min(len(tasks), max(1, threads))
        if n <= 1 or not self._lock.acquire(blocking=False):
            for task in tasks:
                task()
            return
        try:
            while len(self._workers) < n - 1:
                self._workers.append(_Worker())
            workers = self._workers[:n - 1]
            for w, worker in enumerate(workers):     # worker w: tasks w+1, w+1+n, ...
                worker.tasks = tasks[w + 1::n]
                worker.error = None
                worker.go.release()
            error = None
            try:
                for task in tasks[::n]:
                    task()
            except BaseException as e:
                error = e
            for worker in workers:
                worker.done.acquire()
                error = error or worker.error
                worker.tasks = ()
            if error is not None:
                raise error
        finally:
            self._lock.release()


team = Team()


def _after_fork():
    # a forked child has none of the parent's threads: start a fresh team
    global team
    team = Team()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@contextlib.contextmanager
def blas_limits(threads=1):
    """Cap NumPy's BLAS (OpenBLAS, MKL) at `threads` threads inside the block (threadpoolctl);
    a no-op where threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield
