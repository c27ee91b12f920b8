"""The first run: an MLP learns the built-in glyph digits."""
import numpy as np

from .. import nn
from ..rng import manual_seed
from ..tensor import no_grad, tensor
from .training import evaluate, fit


def run(n_train=12000, n_test=2000, width=256, depth=1, epochs=4, lr=0.05, seed=0,
        dataset="glyphs", download=False):
    """Train MLP(inputs, width, depth, 10) with SGD + momentum on `dataset` (glyphs,
    mnist1d, or mnist / fashion-mnist / cifar10 when their files are present; sizes are
    capped at what the set has); return a record with the loss curve, accuracies and the
    first 16 test images' predictions."""
    from .random_labels import load_data          # (refuses an unknown dataset)
    images, y, test_images, yt = load_data(dataset, n_train, n_test, seed=seed,
                                           download=download)
    x, xt = images.reshape(len(images), -1), test_images.reshape(len(test_images), -1)
    manual_seed(seed)
    model = nn.MLP(x.shape[1], width, depth, 10)
    hist = fit(model, x, y, epochs=epochs, lr=lr, test=(xt, yt), seed=seed, desc="quickstart")
    test_acc, test_loss = evaluate(model, xt, yt)
    with no_grad():
        preds = model(tensor(xt[:16])).argmax(1).numpy()
    sample = test_images[:16].mean(axis=1)   # (16, H, W): channels averaged for the picture
    return {"config": {"dataset": dataset, "n_train": len(x), "n_test": len(xt), "width": width,
                       "depth": depth, "epochs": epochs, "lr": lr, "seed": seed},
            "history": hist, "test_accuracy": test_acc, "test_loss": test_loss,
            "samples": {"images": sample.round(3).tolist(),
                        "labels": yt[:16].tolist(), "predictions": preds.tolist()}}
