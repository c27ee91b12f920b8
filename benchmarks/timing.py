"""Interleaved timing: every figure in these benchmarks is a ratio of two medians
taken in the same process run.

In each round every contender takes one sample, in a rotating order, so that a
slow spell of the machine (other programs, frequency changes) hits all of them
alike. Each sample repeats a call until it lasts at least `sample_s`; before
it the script pauses `settle_s` and makes one untimed call, because OpenMP and
OpenBLAS worker threads keep spinning for ~0.1 s after a parallel call and
would otherwise slow whichever contender runs next. Warm-up calls (compilation
included) are never timed. The result is the median seconds per call.
"""
import statistics
import time


def calls_per_sample(fn, sample_s):
    """Warm `fn` up (compiling it) and return how many calls make one sample of >= sample_s."""
    fn()
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, int(sample_s / max(once, 1e-7)) + 1)


def interleaved(calls, rounds, sample_s=0.02, settle_s=0.1):
    """{name: zero-argument callable} -> {name: median seconds per call} over `rounds`
    interleaved rounds (see the module docstring)."""
    loops = {name: calls_per_sample(fn, sample_s) for name, fn in calls.items()}
    times = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, n = calls[name], loops[name]
            if settle_s:
                time.sleep(settle_s)
            fn()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}


def figure(name, measured, target, op, unit="x", note=""):
    """One line of the results table: `measured` against `target` with op '>=', '<=' or '<'.
    `score` is >= 1 exactly when the target is met (measured/target for '>=', the inverse
    otherwise), which is what the summary plot shows."""
    if op not in (">=", "<=", "<"):
        raise ValueError(f"op must be '>=', '<=' or '<', got {op!r}")
    met = measured >= target if op == ">=" else (measured <= target if op == "<=" else measured < target)
    score = measured / target if op == ">=" else target / measured
    return {"figure": name, "measured": float(measured), "target": float(target), "op": op,
            "unit": unit, "met": bool(met), "score": float(score), "note": note}
