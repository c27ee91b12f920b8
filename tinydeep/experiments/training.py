"""One training loop for every experiment: mini-batch SGD with a progress bar.

Faults end a run without losing what it had: with `checkpoint=path`, the
parameters are written (atomically, .npz as `nn.save` writes them) before the
first step and after every epoch, and the history beside them as JSON. A loss
that turns NaN or ±Inf stops training with `TrainingDiverged`, naming the step;
the checkpoint on disk is then the last one whose losses were all finite.
Ctrl-C (KeyboardInterrupt) also writes the history so far and, unless it struck
in the middle of an SGD update, the parameters after the last whole step; then it
is re-raised, carrying the history as `.history`.
"""
import os

import numpy as np
from tqdm.auto import tqdm

from .. import functional as F, nn, optim
from ..data import DataLoader
from ..tensor import no_grad, tensor
from .records import save_json


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite. `.step` is the step, `.history` the record so far,
    `.checkpoint` the file holding the last parameters with finite losses (or None)."""

    def __init__(self, message, step, history, checkpoint):
        super().__init__(message)
        self.step, self.history, self.checkpoint = step, history, checkpoint


def history_path(checkpoint):
    """Where fit() writes the history that goes with `checkpoint`: run.npz -> run.history.json."""
    return os.path.splitext(os.fspath(checkpoint))[0] + ".history.json"




def _check_data(x, y, name):
    """Refuse data no step could use, before any kernel runs: empty sets, x and y of
    different lengths, non-finite inputs (they would turn every loss into NaN)."""
    if len(x) == 0:
        raise ValueError(f"{name}: the data set is empty (x has shape {np.shape(x)})")
    if len(x) != len(y):
        raise ValueError(f"{name}: x has {len(x)} rows but y has {len(y)}")
    if np.asarray(x[:1]).dtype.kind == "f":
        for lo in range(0, len(x), 4096):  # in chunks: x may be a memmap bigger than memory
            bad = ~np.isfinite(np.asarray(x[lo:lo + 4096]).reshape(min(4096, len(x) - lo), -1))
            if bad.any():
                row = lo + int(np.argmax(bad.any(axis=1)))
                raise ValueError(f"{name}: x holds NaN or Inf values (the first in row {row}); "
                                 f"clean or impute the data before training")


def _device(model):
    """Where the model's parameters live; batches are sent there."""
    return next((p.device for p in model.parameters()), "cpu")


def evaluate(model, x, y, batch_size=1000):
    """(accuracy, mean cross-entropy) of a classifier on arrays x, y, on the model's device."""
    _check_data(x, y, "evaluate")
    device = _device(model)
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        with no_grad():
            for lo in range(0, len(x), batch_size):
                logits = model(tensor(x[lo:lo + batch_size], device=device))
                yb = tensor(y[lo:lo + batch_size], device=device)
                loss_sum += F.cross_entropy(logits, yb).item() * len(yb)
                correct += int((logits.argmax(1) == yb).float().sum().item())
    finally:
        model.train()
    return correct / len(x), loss_sum / len(x)


def fit(model, x, y, epochs, lr, momentum=0.9, weight_decay=0.0, lr_decay=1.0, batch_size=128,
        transform=None, seed=0, test=None, desc="train", stop_at_accuracy=None, log_every=1,
        eval_train=False, checkpoint=None):
    """Train `model` with SGD on (x, y) with cross-entropy; lr is multiplied by
    `lr_decay` after every epoch. Returns a history record:
        steps, losses          (one entry per `log_every` steps)
        train_acc, test_acc    (running training accuracy and test accuracy per epoch)
        steps_to_fit           first step at which an epoch's running training accuracy
                               reached `stop_at_accuracy` (then training stops), or None.
    With eval_train, the whole training set is also scored after every epoch (one more
    forward pass over x, without `transform`) into `eval_train_acc`, and the stop rule
    uses that accuracy instead of the running one, which lags behind while the model
    still changes within the epoch.
    A batch_size larger than the data gives one batch of all of it per epoch.
    checkpoint: a path (.npz); see the module docstring. Raises TrainingDiverged at the
    first non-finite loss (before that step's update), ValueError for unusable data."""
    _check_data(x, y, "fit")
    device = _device(model)  # batches go where the parameters are
    if test is not None:
        _check_data(*test, "fit (test set)")
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        nn.save(model, checkpoint)  # also proves, before any step, that it can be written
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = optim.ExponentialLR(opt, lr_decay)
    loader = DataLoader(x, y, batch_size, shuffle=True, seed=seed, transform=transform)
    hist = {"steps": [], "losses": [], "train_acc": [], "test_acc": [], "steps_to_fit": None}
    if eval_train:
        hist["eval_train_acc"] = []
    step, updating = 0, False
    bar = tqdm(total=epochs * len(loader), desc=desc, leave=False, mininterval=0.5)
    try:
        for epoch in range(epochs):
            correct, seen = None, 0
            for xb, yb in loader:
                logits = model(tensor(xb, device=device))
                target = tensor(yb, device=device)
                loss = F.cross_entropy(logits, target)
                value = loss.item()  # the one number a step reads back from the device
                if not np.isfinite(value):
                    raise _diverged(value, step + 1, epoch, hist, checkpoint)
                opt.zero_grad()
                loss.backward()
                updating = True   # from here to the end of opt.step() parameters are half-updated
                opt.step()
                updating = False
                step += 1
                with no_grad():  # hits stay on the device until the epoch ends
                    hits = (logits.argmax(1) == target).float().sum()
                    correct = hits if correct is None else correct + hits
                seen += len(yb)
                if step % log_every == 0:
                    hist["steps"].append(step)
                    hist["losses"].append(value)
                bar.update()
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            sched.step()
            acc = correct.item() / seen
            hist["train_acc"].append(acc)
            bar.set_postfix(loss=f"{value:.3f}", acc=f"{acc:.3f}", refresh=False)
            if test is not None:
                hist["test_acc"].append(evaluate(model, *test)[0])
            if eval_train:
                acc = evaluate(model, x, y)[0]
                hist["eval_train_acc"].append(acc)
            if checkpoint is not None:
                nn.save(model, checkpoint)
                save_json(dict(hist, epochs_done=epoch + 1), history_path(checkpoint))
            if stop_at_accuracy is not None and acc >= stop_at_accuracy:
                hist["steps_to_fit"] = step
                break
    except KeyboardInterrupt as e:
        _interrupted(e, model, step, updating, hist, checkpoint)
        raise
    finally:
        bar.close()
    return hist


def _diverged(value, step, epoch, hist, checkpoint):
    where = (f"; {checkpoint} holds the parameters from the end of the last whole epoch "
             f"(all its losses finite)" if checkpoint else "")
    if checkpoint is not None:
        save_json(dict(hist, diverged_at_step=step), history_path(checkpoint))
    return TrainingDiverged(f"training stopped: the loss became {value} at step {step} "
                            f"(epoch {epoch + 1}), before that step's update{where}. "
                            f"Try a smaller learning rate.", step, hist, checkpoint)


def _interrupted(e, model, step, updating, hist, checkpoint):
    """Save what a Ctrl-C would otherwise lose, then let it go on up."""
    e.history = hist
    if checkpoint is None:
        return
    record = dict(hist, interrupted_after_step=step)
    if not updating:  # the parameters are exactly those after `step` whole steps
        nn.save(model, checkpoint)
        record["checkpoint_after_step"] = step
    save_json(record, history_path(checkpoint))
    tqdm.write(f"interrupted after step {step}: history in {history_path(checkpoint)}, "
               f"parameters in {checkpoint}"
               + ("" if not updating else " (from the last epoch: Ctrl-C struck mid-update)"))
