"""The line budget: tinydeep stays small enough to read in an afternoon.

Two numbers, printed on every test run and bounded:

  core      tensor.py + functional.py + nn.py + optim.py: the autograd, the ops
            and the layers. Budget: CORE_BUDGET = 2,400 lines (issue 16).
  API       the PyTorch-named conveniences built on the core (tensor_api.py,
            creation.py, nn_layers.py, lr_scheduler.py): compositions of core ops.
            Bounded on their own, API_BUDGET = 840 (800 until the eleventh session's
            argument checks in creation.py and the containers, and torch's edge semantics:
            785 -> 811 lines; 820 until the twelfth session gave torch's module-level
            functions and x.type/any/all, torch.max(out, 1), ...: 818 -> 837), and reported with
            the core.
  readable  all of tinydeep/ except the kernels' fast variants, i.e. without the
            Numba kernels in backends/cpu*.py and backends/cuda*.py, whose meaning
            backends/reference*.py states in NumPy. Budget: READABLE_BUDGET = 9,500 (was 7,000
            until the session of 2026-11-26 added the PyTorch API files, the fault policy,
            signals, MNIST-1D, sweeps and the GPU compile report; 9,000 until the ninth
            session gave `@` torch.matmul's 1-D sides and batches of matrices, +38 lines,
            and batch norm two contract kernels with their meaning in base.py, +45; 9,100
            until the eleventh session (9,055 -> 9,193 lines): checks of bad input and
            PyTorch's edge semantics found by differential fuzzes (class-weight and channel
            lengths, BCE's range, containers that dropped non-Modules, cat/where/arange/
            full/randn arguments, max/min/std/var at inf, NaN and 0; a checkpoint writer
            that keeps parameters named like np.savez's keywords; fit/evaluate in the
            model's dtype and mode; loader and gradcheck checks) and a SIGTERM that C code
            turns into another error); 9,200 until the twelfth session (9,194 -> 9,258):
            `x += y` and the other in-place operators, whose absence let the hand-written
            update `p -= lr * p.grad` under no_grad() leave every parameter unchanged, and
            a fourth fuzz's checks (layer_norm's weight shape, pad's crops, softmax's
            implicit dim, ceil-mode pools) and nn.Conv2d's torch arguments (dilation,
            padding strings and modes)); 9,300 until the same session's third fuzz
            (9,273 -> 9,326): Module's torch semantics (a reassigned layer kept in place,
            a Tensor over a parameter refused, del, register_buffer's checks, float()/
            double() keeping gradients, no_grad as a bare decorator) and nn_models.py, the
            home of MLP and SpatialTransformer (out of nn.py: tinydeep's own models, not
            torch.nn's layers; the core count fell by their 48 lines); 9,350 until PyTorch
            tutorials ran with the import changed (9,349 -> 9,355: tinydeep.save/load of a
            state_dict, torch's module paths, f-string formats, inplace=); 9,400 until
            nn.init (nn_init.py, 9,375 -> 9,468: torch.nn.init's fills, fans and gains,
            which `model.apply(init_fn)` in PyTorch code calls).

Lines are physical lines (as `wc -l` counts them), docstrings and comments included:
they are part of what a reader reads.
"""
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinydeep"
CORE = ("tensor.py", "functional.py", "nn.py", "optim.py")
API = ("tensor_api.py", "creation.py", "nn_layers.py", "lr_scheduler.py")
CORE_BUDGET = 2400
API_BUDGET = 840
READABLE_BUDGET = 9500


def is_fast_variant(path):
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] == "backends" and rel.name.startswith(("cpu", "cuda"))


def count(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def line_counts():
    files = {p.relative_to(PACKAGE).as_posix(): count(p) for p in sorted(PACKAGE.rglob("*.py"))
             if "__pycache__" not in p.parts}
    core = {f: files[f] for f in CORE}
    fast = {f: n for f, n in files.items() if is_fast_variant(PACKAGE / f)}
    readable = {f: n for f, n in files.items() if f not in fast}
    return core, readable, fast


def report(core, readable, fast):
    groups = {}
    for f, n in readable.items():
        group = f.split("/")[0] if "/" in f else ("core" if f in CORE else "other top-level")
        groups[group] = groups.get(group, 0) + n
    rows = [f"core (tensor + functional + nn + optim): {sum(core.values()):>6,} lines "
            f"(budget {CORE_BUDGET:,})  " + ", ".join(f"{f} {n}" for f, n in core.items()),
            f"API on the core (PyTorch's names):        {sum(readable[f] for f in API):>6,} lines "
            f"(budget {API_BUDGET:,})  " + ", ".join(f"{f} {readable[f]}" for f in API)
            + f"; core + API {sum(core.values()) + sum(readable[f] for f in API):,}",
            f"tinydeep/ without fast kernel variants:  {sum(readable.values()):>6,} lines "
            f"(budget {READABLE_BUDGET:,})  "
            + ", ".join(f"{g} {n}" for g, n in sorted(groups.items())),
            f"fast kernel variants (cpu*, cuda*):      {sum(fast.values()):>6,} lines "
            f"(not budgeted)  " + ", ".join(f"{f.split('/')[-1]} {n}" for f, n in fast.items())]
    return "\n".join(rows)


def test_line_budget(capsys):
    core, readable, fast = line_counts()
    with capsys.disabled():
        print("\n" + report(core, readable, fast))
    assert all(n > 0 for n in core.values())
    assert sum(core.values()) <= CORE_BUDGET, (
        f"the core is {sum(core.values())} lines, over its budget of {CORE_BUDGET}: "
        f"move what is not autograd, ops or layers elsewhere, or raise the budget on purpose")
    api = sum(readable[f] for f in API)
    assert api <= API_BUDGET, f"the API files are {api} lines, over their budget of {API_BUDGET}"
    assert sum(readable.values()) <= READABLE_BUDGET, (
        f"tinydeep/ without its fast kernels is {sum(readable.values())} lines, over "
        f"its budget of {READABLE_BUDGET}")


def test_counting_counts_every_line(tmp_path):
    """Blank lines count, and so does a last line without a newline (which wc -l skips)."""
    p = tmp_path / "f.py"
    p.write_bytes(b"a\n\nb\nc\n")
    assert count(p) == 4
    p.write_bytes(b"a\n\nb\nc")
    assert count(p) == 4


if __name__ == "__main__":
    print(report(*line_counts()))
