"""One training step, tinydeep against PyTorch CPU, on the same weights and batch.

    python benchmarks/bench_train.py [--rounds 7] [--json PATH]

A step is what a training loop does per batch: wrap the batch in tensors,
forward, cross-entropy, zero_grad, backward, SGD with momentum 0.9 (lr 0.01).
Two models at batch 128, float32:

    mlp   MLP 784-512-512-10 (two hidden ReLU layers) on flattened 28x28 images
    cnn   conv 5x5 (1->16, pad 2) -> ReLU -> max-pool 2 -> conv 5x5 (16->32, pad 2)
          -> ReLU -> max-pool 2 -> linear (32·7·7 -> 10), the small CNN of
          tinydeep.experiments.random_labels
    lenet the same with 1->32 and 32->64 channels (a LeNet-style net)
    bn    the small CNN with BatchNorm2d after each conv (before its ReLU), in training mode

Before timing, both frameworks take one step from the same weights and the
losses and updated weights are compared (they must agree to 1e-4), so the two
sides are known to compute the same thing. ratio = tinydeep time / PyTorch time
(< 1: tinydeep is faster); interleaved rounds, medians (see timing.py).
"""
import os
import sys

import numpy as np

try:
    import tinydeep  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tinydeep as td  # noqa: E402
from tinydeep import functional as F  # noqa: E402
from tinydeep import nn, optim  # noqa: E402
from tinydeep.experiments.random_labels import small_cnn, with_batchnorm  # noqa: E402

try:
    from benchmarks import machine, timing
except ImportError:
    import machine
    import timing

try:
    import torch
except ImportError:
    torch = None

TARGETS = {"mlp": 0.8, "cnn": 1.0, "lenet": 1.0, "bn": 1.0}
LENET = (32, 64)   # the LeNet-style net's channels: conv5 1->32, pool, conv5 32->64, pool, linear
LR, MOMENTUM = 0.01, 0.9


def tinydeep_model(kind, size, width, channels):
    td.manual_seed(0)
    if kind == "mlp":
        return nn.MLP(size * size, width, 2, 10)
    cnn = small_cnn((1, size, size), channels, 10)
    return with_batchnorm(cnn) if kind == "bn" else cnn


def torch_model(kind, size, width, channels):
    tn = torch.nn
    if kind == "mlp":
        return tn.Sequential(tn.Linear(size * size, width), tn.ReLU(), tn.Linear(width, width),
                             tn.ReLU(), tn.Linear(width, 10))
    cnn = small_cnn((1, size, size), channels, 10, layers=tn)
    return with_batchnorm(cnn, layers=tn) if kind == "bn" else cnn


def copy_weights(model, tmodel):
    """PyTorch's parameters in the same order and layout as tinydeep's."""
    ours = list(model.parameters())
    theirs = list(tmodel.parameters())
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for p, q in zip(ours, theirs):
            assert tuple(p.shape) == tuple(q.shape), (p.shape, q.shape)
            q.copy_(torch.from_numpy(p.data))


def steps(kind, batch, size, width, channels, seed=0):
    """(tinydeep step, PyTorch step or None, check) for one model; check() runs one
    step of each from the same weights and raises if they disagree."""
    rng = np.random.default_rng(seed)
    shape = (batch, size * size) if kind == "mlp" else (batch, 1, size, size)
    x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, 10, batch)
    model = tinydeep_model(kind, size, width, channels)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def ours():
        loss = F.cross_entropy(model(td.tensor(x)), td.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    if torch is None:
        return ours, None, None
    tmodel = torch_model(kind, size, width, channels)
    copy_weights(model, tmodel)
    topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def theirs():
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        topt.zero_grad()
        loss.backward()
        topt.step()
        return loss

    def check():
        a, b = ours().item(), theirs().item()
        if not abs(a - b) <= 1e-4 * max(1.0, abs(b)):
            raise AssertionError(f"{kind}: tinydeep loss {a} != PyTorch loss {b}")
        for p, q in zip(model.parameters(), tmodel.parameters()):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{kind}: weights after one step")
    return ours, theirs, check


def run(rounds=7, batch=128, size=28, width=512, channels=(16, 32), sample_s=0.05, settle_s=0.1):
    results = {"benchmark": "train", "batch": batch, "size": size, "width": width,
               "channels": list(channels), "torch": getattr(torch, "__version__", None),
               "ms": {}, "figures": []}
    for kind in ("mlp", "cnn", "lenet", "bn"):
        if kind == "lenet" and tuple(channels) != (16, 32):
            continue                    # reduced runs (tests) time the two others only
        ours, theirs, check = steps("cnn" if kind == "lenet" else kind, batch, size, width,
                                    LENET if kind == "lenet" else channels)
        calls = {"tinydeep": ours}
        if theirs is not None:
            check()
            calls["torch"] = theirs
        t = timing.interleaved(calls, rounds, sample_s, settle_s)
        results["ms"][kind] = {k: 1e3 * v for k, v in t.items()}
        if theirs is None:
            continue
        label = {"mlp": "MLP 784-512-512-10 step, batch 128: time / PyTorch's",
                 "cnn": "small CNN step (conv5 1->16, pool, conv5 16->32, pool, linear), "
                        "batch 128: time / PyTorch's",
                 "lenet": "LeNet-style CNN step (conv5 1->32, pool, conv5 32->64, pool, "
                          "linear), batch 128: time / PyTorch's",
                 "bn": "small CNN with BatchNorm2d after each conv, batch 128: "
                       "time / PyTorch's"}[kind]
        if (batch, size, width, tuple(channels)) != (128, 28, 512, (16, 32)):
            label += f" [reduced: batch {batch}, size {size}, width {width}, channels {channels}]"
        results["figures"].append(timing.figure(
            label, t["tinydeep"] / t["torch"], TARGETS[kind], "<=",
            note=f"{1e3 * t['tinydeep']:.2f} ms vs {1e3 * t['torch']:.2f} ms"))
    return results


def report(res):
    print(f"one SGD-momentum training step, batch {res['batch']}, median ms of interleaved rounds")
    print("| model | tinydeep ms | PyTorch ms | ratio |\n|---|---|---|---|")
    for kind, ms in res["ms"].items():
        ours, theirs = ms["tinydeep"], ms.get("torch")
        if theirs is None:
            print(f"| {kind} | {ours:.2f} | - | - |")
        else:
            print(f"| {kind} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |")
    if torch is None:
        print("PyTorch is not installed: no ratios")


main = machine.command(__doc__, run, report, rounds=7)   # main(argv=None)


if __name__ == "__main__":
    main()
