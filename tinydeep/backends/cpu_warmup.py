"""A first run: one line says that kernels compile, and a helper process compiles the
training step's kernels beside this one.

Numba compiles a kernel on its first call and keeps the machine code in its on-disk cache;
only a cache miss compiles (the "numba:compile" event fires then, and not for a kernel
loaded from the cache). With an empty cache, the first training step spends ~10 s
compiling, one kernel after another, and without a word a progress bar would sit frozen.
`install()` (done by the modules that hold kernels: the CPU backend, the glyph renderer)
listens for that event; on the first compile of a tinydeep kernel in the process it

  - prints, through tqdm.write when tqdm is loaded (an open bar is redrawn below it),

        tinydeep: compiling the CPU kernels for this machine (first run only; cached afterwards)...

    (TINYDEEP_QUIET_COMPILE=1 silences it), and
  - calls `start_if_cold`: when the cache holds no packed matmul yet (a first run on this
    machine, or a new NUMBA_CACHE_DIR), it starts `python -m tinydeep.backends.cpu_warmup`.

Numba compiles under a process-wide lock, so a thread cannot help; a second *process* can.
The child runs one float32 step of a tiny MLP, trained with SGD and Adam, with NumPy doing
its matrix products, a whole-tensor sum, and a CNN's pooling and convolution. It compiles
the elementwise, loss, reduction, optimizer, pooling and implicit-GEMM convolution kernels
into the shared cache, while this process compiles what it meets first: the glyph renderer
of a demo's data, then the packed matmul, the largest kernel (~4 s). When the step here
reaches a kernel the child has cached, Numba loads it from the cache instead of compiling
it. A kernel the child has not reached yet is compiled here as usual, so nothing waits on
the child and nothing depends on it finishing.

Sharing the cache is safe only because of one detail. Numba names a new entry's data file
by the first free number in the function's index. Two processes that add different
signatures of one function at the same moment could both take the same number, and then
one signature's index entry would point at the other's machine code. The child therefore
names its data files with a prefix of its own run (`_child_data_names`), so the two
processes never write the same file and no name is ever given twice. A lost index update
(each process rewrites the index whole) only costs a recompile later; an entry whose data
file is not written yet fails to load and is compiled.

TINYDEEP_WARMUP=0 turns the helper off (the tests do, except the one that checks it).
"""
import os
import subprocess
import sys
import uuid

from numba.core import event

CHILD = "TINYDEEP_WARMUP_CHILD"
MESSAGE = ("tinydeep: compiling the CPU kernels for this machine "
           "(first run only; cached afterwards)...")


class _FirstCompile(event.Listener):
    def __init__(self, write, start=None):
        self.write = write
        self.start = start or start_if_cold
        self.done = False

    def on_start(self, ev):
        if self.done:
            return
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.startswith("tinydeep"):
            self.done = True
            if not os.environ.get("TINYDEEP_QUIET_COMPILE"):
                self.write(MESSAGE)
            self.start()

    def on_end(self, ev):
        pass


def _write(line):
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None and hasattr(tqdm, "tqdm"):
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


_listener = None


def install():
    """Listen for the first compile of a tinydeep kernel in this process (idempotent)."""
    global _listener
    if _listener is None:
        _listener = _FirstCompile(_write)
        event.register("numba:compile", _listener)


def _cache_is_cold():
    """True when Numba's cache holds no entry of the packed matmul's driver (its index file
    is missing); False when it does, or when the cache cannot be inspected."""
    from . import cpu_matmul
    try:
        return not os.path.exists(cpu_matmul._gemm_parts._cache._cache_file._index_path)
    except AttributeError:          # another Numba's internals: do nothing
        return False


helper = None       # the helper's Popen, when this process started one


def start_if_cold():
    """Start the helper process when the cache is cold (not in the helper itself, and not
    when TINYDEEP_WARMUP=0). Returns the Popen (also kept in `helper`), or None."""
    global helper
    if os.environ.get("TINYDEEP_WARMUP", "1") == "0" or os.environ.get(CHILD):
        return None
    if helper is not None or not _cache_is_cold() or not _child_data_names(check_only=True):
        return None
    # the child imports this very tinydeep, also when the program put it on sys.path itself
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, **{CHILD: "1", "TINYDEEP_QUIET_COMPILE": "1",
                              "NUMBA_NUM_THREADS": "1", "PYTHONPATH": path})
    try:
        helper = subprocess.Popen([sys.executable, "-m", __name__], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    except OSError:
        return None
    return helper


def _child_data_names(check_only=False):
    """In the child: name new cache data files '<function>.w<run>-<n>.nbc' instead of
    '<function>.<n>.nbc', <run> random for this process (see the module's docstring).
    Returns False where this Numba lacks the method it replaces."""
    from numba.core import caching
    cls = caching.IndexDataCacheFile
    if not hasattr(cls, "_data_name") or not hasattr(cls, "save"):
        return False
    if not check_only:
        run = uuid.uuid4().hex[:8]
        cls._data_name = lambda self, n: self._data_name_pattern.replace(
            "{number:d}", "{number}").format(number=f"w{run}-{n}")
    return True


def warm_up():
    """The kernels of a first training step, in the order a first run needs them most: one
    float32 step of a tiny MLP with SGD (momentum), as experiments.fit takes it (its count
    of hits too), its matrix products done by NumPy, so that every other kernel of an MLP
    step compiles; a CNN's pooling, bias-gradient and implicit-GEMM convolution kernels;
    then a step with Adam."""
    import numpy as np

    import tinydeep as td
    from tinydeep import backends, nn, optim
    from tinydeep import functional as F
    from tinydeep.backends import cpu_conv
    cpu = backends.get("cpu")
    cpu.matmul = lambda a, b, out=None: np.matmul(a, b, out=out)
    cpu.matmul_nt = lambda a, b, out=None: np.matmul(a, b.T, out=out)
    cpu.matmul_tn = lambda a, b, out=None: np.matmul(a.T, b, out=out)
    rng = np.random.default_rng(0)
    x = td.tensor(rng.standard_normal((4, 8)).astype(np.float32))
    y = td.tensor(rng.integers(0, 3, 4))

    def step(make_optimizer):
        model = nn.MLP(8, 8, 2, 3)
        opt = make_optimizer(model.parameters())
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hits = (logits.argmax(1) == y).float().sum()
        (hits + hits).item()

    step(lambda p: optim.SGD(p, lr=0.1, momentum=0.9))
    # a CNN's kernels: 2x2 max pooling both ways, the implicit GEMM's runs and their
    # parallel loop (the other rung's runs, for a thin first layer, the first process
    # meets before this could be ready), and the conv bias gradient
    images = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    pooled, argmax = cpu.max_pool2d(images, (2, 2), (2, 2), (0, 0))
    maps = np.ones((2, 32, 6, 6), np.float32)
    nr = cpu_conv._implicit_width(32, (1, 1), np.float32)
    cpu_conv._implicit(images, (1, 1), np.ones((32, 27), np.float32), maps, (3, 3), nr)
    cpu_conv._implicit_weight(images, maps, (32, 3, 3, 3), (1, 1), nr)
    cpu.max_pool2d_backward(pooled, argmax, images.shape)
    cpu.conv2d_backward_bias(images)
    step(optim.Adam)


if __name__ == "__main__":
    if _child_data_names():
        warm_up()
