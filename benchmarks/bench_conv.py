"""The convolution ladder: im2col + one big matmul (rung 1), image by image with a patch
matrix kept in cache (rung 2) and the implicit GEMM that forms no patch matrix (rung 3; both
in tinydeep/backends/cpu_conv.py), against PyTorch's conv2d.

    python benchmarks/bench_conv.py [--rounds 5] [--json PATH]

Each contender does a training step's convolution work for one layer, batch 128:
forward, weight gradient, and the input gradient except for a first layer (whose
input needs none, as in training):

    im2col   cols = im2col(x); y = (cols @ W.T) as NCHW; dW = g2.T @ cols;
             dx = col2im(g2 @ W), g2 = g as (N·Ho·Wo, C_out)   (what functional.Conv2d does)
    patches  cpu_conv.conv2d_forward, conv2d_backward_weight, conv2d_backward_input
             with cpu_conv.IMPLICIT = False
    implicit the same as the library runs them (the implicit GEMM where it fits)
    torch    torch.nn.functional.conv2d forward + autograd backward (oneDNN on x86)

The layers are the convolutions of the LeNet-style net (conv5 1->32, pool, conv5
32->64) and of the benchmark's small CNN (conv5 1->16, pool, conv5 16->32), all
5x5 with padding 2 on 28x28 and 14x14 inputs. Every contender's results are checked
against the im2col rung before timing. Figures: each rung's speed-up over the one below.
"""
import os
import sys

import numpy as np

try:
    import tinydeep  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinydeep.backends import cpu, cpu_conv, cpu_matmul  # noqa: E402

try:
    from benchmarks import machine, timing
except ImportError:
    import machine
    import timing

try:
    import torch
except ImportError:
    torch = None

# (label, x shape, w shape, input gradient needed)
LAYERS = [
    ("LeNet conv1 1->32 28x28", (128, 1, 28, 28), (32, 1, 5, 5), False),
    ("LeNet conv2 32->64 14x14", (128, 32, 14, 14), (64, 32, 5, 5), True),
    ("small CNN conv1 1->16 28x28", (128, 1, 28, 28), (16, 1, 5, 5), False),
    ("small CNN conv2 16->32 14x14", (128, 16, 14, 14), (32, 16, 5, 5), True),
]
STRIDE, PADDING = (1, 1), (2, 2)


def contenders(x, w, g, input_grad):
    """{name: zero-argument callable returning (y, dw, dx or None)}."""
    C_out, C, kh, kw = w.shape
    N, _, Ho, Wo = g.shape
    w2 = w.reshape(C_out, -1)
    g2 = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, C_out)

    def im2col():
        cols = cpu.im2col(x, kh, kw, STRIDE, PADDING)
        y = np.ascontiguousarray(cpu_matmul.matmul_nt(cols, w2).reshape(N, Ho, Wo, C_out)
                                 .transpose(0, 3, 1, 2))
        gt = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, C_out)
        dw = cpu_matmul.matmul_tn(gt, cols).reshape(w.shape)
        dx = (cpu.col2im(cpu_matmul.matmul(gt, w2), x.shape, kh, kw, STRIDE, PADDING)
              if input_grad else None)
        return y, dw, dx

    def direct(implicit):
        def layer():
            cpu_conv.IMPLICIT = implicit
            try:
                y = cpu_conv.conv2d_forward(x, w, STRIDE, PADDING)
                dw = cpu_conv.conv2d_backward_weight(g, x, w.shape, STRIDE, PADDING)
                dx = (cpu_conv.conv2d_backward_input(g, w, x.shape, STRIDE, PADDING)
                      if input_grad else None)
            finally:
                cpu_conv.IMPLICIT = True
            return y, dw, dx
        return layer

    calls = {"im2col": im2col, "patches": direct(False), "implicit": direct(True)}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(input_grad)
        tw = torch.from_numpy(w).requires_grad_(True)
        tg = torch.from_numpy(g)

        def theirs():
            tw.grad = None
            tx.grad = None
            y = torch.nn.functional.conv2d(tx, tw, stride=STRIDE, padding=PADDING)
            y.backward(tg)
            return (y.detach().numpy(), tw.grad.numpy(),
                    tx.grad.numpy() if input_grad else None)
        calls["torch"] = theirs
    del g2
    return calls


def check(calls):
    want = calls["im2col"]()
    want = [None if a is None else a.copy() for a in want]
    for name, fn in calls.items():
        for got, ref, what in zip(fn(), want, ("y", "dw", "dx")):
            if ref is None:
                continue
            err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
            if not err < 1e-4:
                raise AssertionError(f"{name}: {what} differs from the im2col rung by {err:.2e}")


def run(rounds=5, layers=LAYERS, sample_s=0.05, settle_s=0.1):
    rng = np.random.default_rng(0)
    res = {"benchmark": "conv", "ms": {}, "figures": []}
    for label, x_shape, w_shape, input_grad in layers:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
        Ho = (x_shape[2] + 2 * PADDING[0] - w_shape[2]) // STRIDE[0] + 1
        Wo = (x_shape[3] + 2 * PADDING[1] - w_shape[3]) // STRIDE[1] + 1
        g = rng.standard_normal((x_shape[0], w_shape[0], Ho, Wo), dtype=np.float32)
        calls = contenders(x, w, g, input_grad)
        check(calls)
        t = timing.interleaved(calls, rounds, sample_s, settle_s)
        res["ms"][label] = {k: 1e3 * v for k, v in t.items()}
        direct_rule = cpu_conv.prefer_direct(x_shape, w_shape, STRIDE, PADDING)
        for low, high in (("im2col", "patches"), ("patches", "implicit")):
            res["figures"].append(timing.figure(
                f"conv ladder {low} -> {high}, {label}, batch {x_shape[0]}, fwd+bwd: "
                f"{low} time / {high} time",
                t[low] / t[high], 1.0, ">=",
                note=f"{1e3 * t[low]:.1f} vs {1e3 * t[high]:.1f} ms; prefer_direct: {direct_rule}"
                     + (f"; PyTorch {1e3 * t['torch']:.1f} ms" if "torch" in t else "")))
    return res


def report(res):
    print("convolution fwd + bwd per layer, median ms of interleaved rounds")
    print("| layer | im2col | patches | implicit | PyTorch |\n|---|---|---|---|---|")
    for label, ms in res["ms"].items():
        print(f"| {label} | {ms['im2col']:.1f} | {ms['patches']:.1f} | {ms['implicit']:.1f} | "
              f"{ms.get('torch', float('nan')):.1f} |")


main = machine.command(__doc__, run, report, rounds=5)   # main(argv=None)


if __name__ == "__main__":
    main()
