"""SIGTERM and SIGHUP as exceptions, as Python makes SIGINT one (KeyboardInterrupt).

The default action of SIGTERM/SIGHUP ends the process on the spot: no `finally` block
runs, so a temporary file being written stays forever and fit() cannot save what it has.
Inside `signals_raise()` they raise `Terminated` instead, a SystemExit with code 128 + the
signal's number (143 for SIGTERM), so cleanup runs and, if nothing catches it, the
process still exits with the status a shell reports for that signal, without a
traceback. `signals_at_checkpoints()` holds all three signals (SIGINT too) except at the
points where a loop says it can stop (between training steps).
"""
import contextlib
import signal
import threading


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived; `.code` is 128 + the signal number (the exit status a
    shell expects), `.signum` the signal, `.history` (set by fit) the record so far."""

    def __init__(self, signum):
        super().__init__(128 + signum)
        self.signum = signum
        self.history = None


raised = []   # the signals whose Terminated was raised in this process (see cli.main)


def _raise_terminated(signum, frame):
    raised.append(signum)   # C code it unwinds through may replace it (matplotlib's does)
    raise Terminated(signum)


CATCH_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def signals_raise():
    """While the block runs, SIGTERM and SIGHUP raise `Terminated` (as SIGINT raises
    KeyboardInterrupt), so cleanup code and `finally` blocks run and temporary files go.
    A handler someone else installed is left alone; outside the main thread (where
    Python cannot set handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for s in CATCH_SIGNALS:
        if signal.getsignal(s) == signal.SIG_DFL:
            saved[s] = signal.signal(s, _raise_terminated)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_at_checkpoints():
    """Hold SIGINT, SIGTERM and SIGHUP for the whole block and deliver them only where the
    block calls the function this yields (between training steps): a handler's exception
    then never starts inside a kernel launch, a CUDA call holding a driver lock, or half an
    SGD update, so what fit() saves afterwards is whole and the saving cannot deadlock.

    The holding is done by Python handlers that only note the signal, not by a thread
    signal mask: the kernel sends a process's signal to any thread that does not block it
    (a BLAS or Numba worker started before the block), and Python then runs the handler
    in the main thread at whatever bytecode it has reached. Held signals are delivered
    in order of arrival by calling the handler that was installed before the block (the
    one that raises); one still pending when the block ends is delivered then. Outside
    the main thread (where Python cannot set handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    pending = []

    def note(signum, frame):
        pending.append(signum)
    # (a handler installed from C reads as None and could not be put back: left alone)
    before = {s: signal.signal(s, note) for s in (signal.SIGINT,) + CATCH_SIGNALS
              if signal.getsignal(s) is not None}

    def deliver():
        while pending:
            signum = pending.pop(0)
            handler = before[signum]
            if callable(handler):
                handler(signum, None)     # raises KeyboardInterrupt or Terminated
            elif handler == signal.SIG_DFL:
                restore()
                signal.raise_signal(signum)   # the default action: the process ends

    def restore():      # (not over a handler set since: a later block's, or the program's)
        for s, handler in before.items():
            if signal.getsignal(s) is note:
                signal.signal(s, handler)
    try:
        yield deliver
    except BaseException:
        restore()
        for signum in pending:        # not lost with the error: sent again, to the handlers
            signal.raise_signal(signum)   # put back (a caller that catches the error still
        raise                             # gets its KeyboardInterrupt or Terminated)
    restore()
    deliver()
