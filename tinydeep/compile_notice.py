"""One line on stderr when tinydeep's kernels compile for the first time.

Numba compiles a kernel on its first call and keeps the machine code in its
on-disk cache; only a cache miss compiles (the "numba:compile" event fires
then, and not for a kernel loaded from the cache). A first run on a new
machine therefore spends a few seconds compiling before the first training
step, and without a word a progress bar would sit frozen at 0. `install()`
(done when the CPU kernels are imported) prints, on the first compile of a
tinydeep kernel in the process,

    tinydeep: compiling the CPU kernels for this machine (first run only; cached afterwards)...

through tqdm.write when tqdm is loaded (so an open bar is redrawn below it).
Set TINYDEEP_QUIET_COMPILE=1 to silence it.
"""
import os
import sys

from numba.core import event

MESSAGE = ("tinydeep: compiling the CPU kernels for this machine "
           "(first run only; cached afterwards)...")


class _FirstCompile(event.Listener):
    def __init__(self, write):
        self.write = write
        self.said = False

    def on_start(self, ev):
        if self.said:
            return
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.startswith("tinydeep"):
            self.said = True
            self.write(MESSAGE)

    def on_end(self, ev):
        pass


def _write(line):
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None and hasattr(tqdm, "tqdm"):
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


_listener = None


def install(write=_write):
    """Say MESSAGE once, on the first compile of a tinydeep kernel in this process (idempotent).
    Returns the listener (`uninstall` removes it)."""
    global _listener
    if _listener is None and not os.environ.get("TINYDEEP_QUIET_COMPILE"):
        _listener = _FirstCompile(write)
        event.register("numba:compile", _listener)
    return _listener


def uninstall():
    global _listener
    if _listener is not None:
        event.unregister("numba:compile", _listener)
        _listener = None
