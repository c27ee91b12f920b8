"""The first run: an MLP learns the built-in glyph digits."""
import numpy as np

from .. import nn
from ..data import glyphs
from ..rng import manual_seed
from ..tensor import no_grad, tensor
from .training import evaluate, fit


def run(n_train=12000, n_test=2000, width=256, depth=1, epochs=4, lr=0.05, seed=0):
    """Train MLP(784, width, depth, 10) with SGD + momentum; return a record with the
    loss curve, accuracies and the first 16 test images' predictions."""
    train, test = glyphs(n_train, seed=seed), glyphs(n_test, seed=seed + 1)
    x, xt = train.images.reshape(n_train, -1), test.images.reshape(n_test, -1)
    manual_seed(seed)
    model = nn.MLP(x.shape[1], width, depth, 10)
    hist = fit(model, x, train.labels, epochs=epochs, lr=lr, test=(xt, test.labels), seed=seed,
               desc="quickstart")
    test_acc, test_loss = evaluate(model, xt, test.labels)
    with no_grad():
        preds = model(tensor(xt[:16])).argmax(1).numpy()
    return {"config": {"n_train": n_train, "n_test": n_test, "width": width, "depth": depth,
                       "epochs": epochs, "lr": lr, "seed": seed},
            "history": hist, "test_accuracy": test_acc, "test_loss": test_loss,
            "samples": {"images": test.images[:16, 0].round(3).tolist(),
                        "labels": test.labels[:16].tolist(), "predictions": preds.tolist()}}
