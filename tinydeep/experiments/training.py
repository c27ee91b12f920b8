"""One training loop for every experiment: mini-batch SGD with a progress bar.

Faults end a run without losing what it had: with `checkpoint=path`, the
parameters are written (atomically, .npz as `nn.save` writes them) before the
first step and after every epoch, and the history beside them as JSON. A loss
that turns NaN or ±Inf stops training with `TrainingDiverged`, naming the step;
the checkpoint on disk is then the last one whose losses were all finite.
Ctrl-C (KeyboardInterrupt), SIGTERM and SIGHUP also write the history so far and,
unless the signal struck in the middle of an SGD update, the parameters after the last
whole step; then the exception goes on up, carrying the history as `.history`:
KeyboardInterrupt for Ctrl-C, `Terminated` (a SystemExit with code 128 + the signal's
number: 143 for SIGTERM, as a shell reports a process the signal killed) for the others.
Everything about the data and the arguments is checked once, before the first step
and before anything is written: a bad label or a NaN pixel in the test set is found
in the first second, not after an epoch.
"""
import contextlib
import math
import numbers
import os
import signal

import numpy as np
from tqdm.auto import tqdm

from .. import functional as F, nn, optim
from ..data import DataLoader
from ..signals import Terminated, signals_at_checkpoints, signals_raise
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




def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise (ValueError if isinstance(value, numbers.Real) and not isinstance(value, bool)
               else TypeError)(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_data(x, y, name, labels=True):
    """Refuse data no step could use, before any kernel runs: x and y that are not arrays,
    of different lengths or empty; x that is not floating point; y that is not a vector of
    integer class indices, or holds negative ones; non-finite inputs (they would turn
    every loss into NaN). Returns y's largest label (or None)."""
    for what, a in (("x", x), ("y", y)):
        if not hasattr(a, "shape") or not hasattr(a, "dtype") or np.ndim(a) == 0:
            raise TypeError(f"{name}: {what} must be a NumPy array with one row per example, "
                            f"got {type(a).__name__}")
    if len(x) == 0:
        raise ValueError(f"{name}: the data set is empty (x has shape {np.shape(x)})")
    if len(x) != len(y):
        raise ValueError(f"{name}: x has {len(x)} rows but y has {len(y)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: x must hold floating-point values, got dtype {x.dtype}; "
                        f"convert with x.astype(np.float32) (and scale images to [0, 1])")
    if labels and (y.ndim != 1 or y.dtype.kind not in "iu"):  # labels=False: a custom loss
        raise TypeError(f"{name}: y must be a vector of integer class indices, got dtype "
                        f"{y.dtype} and shape {y.shape}")
    if labels and y.min() < 0:
        raise ValueError(f"{name}: labels must be class indices >= 0, got {y.min()} "
                         f"(row {int(np.argmin(y))})")
    for lo in range(0, len(x), 4096):  # in chunks: x may be a memmap bigger than memory
        bad = ~np.isfinite(np.asarray(x[lo:lo + 4096]).reshape(min(4096, len(x) - lo), -1))
        if bad.any():
            row = lo + int(np.argmax(bad.any(axis=1)))
            raise ValueError(f"{name}: x holds NaN or Inf values (the first in row {row}); "
                             f"clean or impute the data before training")
    return int(y.max()) if labels else None


def _check_labels(model, transform, place, sets):
    """One forward pass of one example of each set tells how many classes the model
    predicts (and that it accepts the set's shape); every label of every set must be
    below that. Checked here, before the first step, on every device: cross_entropy's own
    check would find a bad test label only after an epoch, and not at all on 'cuda'."""
    classes = None
    model.eval()  # one example: BatchNorm in training would refuse it (and move its statistics)
    for i, (name, x, y, top) in enumerate(sets):
        xb = np.asarray(x[:1])
        if i == 0 and transform is not None:  # the training set goes through the transform
            xb = transform(xb, np.random.default_rng(0))
        with no_grad():
            out = model(_batch(xb, place))
        if len(out.shape) != 2:
            raise ValueError(f"{name}: the model's output has shape {tuple(out.shape)}; "
                             f"cross-entropy needs logits of shape (batch, classes)")
        classes = out.shape[1] if classes is None else classes
        if top >= classes:
            row = int(np.argmax(np.asarray(y) >= classes))
            raise ValueError(f"{name}: label {top} is out of range for a model with {classes} "
                             f"outputs (labels must lie in [0, {classes}); the first bad one "
                             f"is in row {row})")
    model.train()


def _place(model):
    """(device, dtype) of the model's parameters: batches are sent there, float ones in that
    dtype (a float64 model gets float64 batches; integer inputs such as token ids stay)."""
    p = next(iter(model.parameters()), None)
    return ("cpu", None) if p is None else (p.device, p.dtype)


def _batch(xb, place):
    device, dtype = place
    return tensor(xb, device=device, dtype=dtype if np.asarray(xb).dtype.kind == "f" else None)


@contextlib.contextmanager
def _eval_mode(model):
    """model.eval() inside the block; after it, every module's mode as it was before."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def evaluate(model, x, y, batch_size=1000):
    """(accuracy, mean cross-entropy) of a classifier on arrays x, y, on the model's device."""
    _check_data(x, y, "evaluate")
    batch_size = _positive_int(batch_size, "evaluate: batch_size")
    place = _place(model)
    correct, loss_sum = 0, 0.0
    with _eval_mode(model), no_grad():
        for lo in range(0, len(x), batch_size):
            logits = model(_batch(x[lo:lo + batch_size], place))
            yb = tensor(y[lo:lo + batch_size], device=place[0])
            loss_sum += F.cross_entropy(logits, yb).item() * len(yb)
            correct += int((logits.argmax(1) == yb).float().sum().item())
    return correct / len(x), loss_sum / len(x)


def outputs(model, x, batch_size=1000, call=None):
    """call(batch) (model(batch) by default) over x batch by batch, on the model's device, in
    eval mode and without gradients, as one NumPy array."""
    call, place = call or model, _place(model)
    with _eval_mode(model), no_grad():
        return np.concatenate([call(_batch(x[lo:lo + batch_size], place)).numpy()
                               for lo in range(0, len(x), batch_size)])


def fit(model, x, y, epochs, lr, momentum=0.9, weight_decay=0.0, lr_decay=1.0, batch_size=128,
        transform=None, seed=0, test=None, desc="train", stop_at_accuracy=None, log_every=1,
        eval_train=False, checkpoint=None, param_groups=None, loss=None):
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
    first non-finite loss (before that step's update), ValueError for unusable data.
    param_groups: SGD param groups (dicts with 'params' and their own 'lr', ...) for
    parameters trained unlike the rest, e.g. a spatial transformer's localization net;
    the model's other parameters form the first group, with lr, momentum, weight_decay.
    loss: loss(output, target) -> scalar Tensor instead of cross-entropy (e.g.
    F.mse_loss for a regression); y is then used as it is, and no accuracy is kept
    (train_acc stays empty; stop_at_accuracy, eval_train and test need cross-entropy)."""
    if loss is not None and (stop_at_accuracy is not None or eval_train or test is not None):
        raise ValueError("fit: stop_at_accuracy, eval_train and test score accuracy, which "
                         "needs the default cross-entropy loss, not a custom `loss`")
    epochs = _positive_int(epochs, "fit: epochs")
    batch_size = _positive_int(batch_size, "fit: batch_size")
    log_every = _positive_int(log_every, "fit: log_every")
    for what, v in (("lr", lr), ("lr_decay", lr_decay), ("momentum", momentum),
                    ("weight_decay", weight_decay)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"fit: {what} must be a real number, got {v!r}")
        if not math.isfinite(v):
            raise ValueError(f"fit: {what} must be finite, got {v!r}")
    if not 0 < lr_decay <= 1:
        raise ValueError(f"fit: lr_decay must lie in (0, 1] (the factor applied to lr after "
                         f"every epoch; 1 keeps it), got {lr_decay!r}: a negative factor would "
                         f"turn descent into ascent")
    if lr < 0 or momentum < 0 or weight_decay < 0:
        raise ValueError(f"fit: lr, momentum and weight_decay must be >= 0, got "
                         f"{lr!r}, {momentum!r}, {weight_decay!r}")
    if stop_at_accuracy is not None and not (isinstance(stop_at_accuracy, numbers.Real)
                                             and 0 <= stop_at_accuracy <= 1):
        raise ValueError(f"fit: stop_at_accuracy must be None or a number in [0, 1], "
                         f"got {stop_at_accuracy!r}")
    if not isinstance(model, nn.Module) or not model.parameters():
        raise TypeError(f"fit: model must be an nn.Module with parameters, got {model!r}")
    sets = [("fit", x, y, _check_data(x, y, "fit", labels=loss is None))]
    if test is not None:
        if not isinstance(test, (tuple, list)) or len(test) != 2:
            raise TypeError(f"fit: test must be a pair (x_test, y_test), got {type(test).__name__}")
        sets.append(("fit (test set)", test[0], test[1], _check_data(*test, "fit (test set)")))
    place = _place(model)  # batches go where the parameters are, in their dtype
    params = model.parameters()
    if param_groups:  # the rest of the model first, then the groups with their own settings
        own = {id(p) for g in param_groups for p in g["params"]}
        params = [{"params": [p for p in params if id(p) not in own]}] + list(param_groups)
    opt = optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = optim.ExponentialLR(opt, lr_decay)
    loader = DataLoader(x, y, batch_size, shuffle=True, seed=seed, transform=transform)
    if loss is None:
        _check_labels(model, transform, place, sets)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        nn.save(model, checkpoint)  # also proves, before any step, that it can be written
    with signals_raise(), signals_at_checkpoints() as stop_here:
        return _train(model, x, y, epochs, opt, sched, loader, place, test, desc,
                      stop_at_accuracy, log_every, eval_train, checkpoint, stop_here, loss)


def _train(model, x, y, epochs, opt, sched, loader, place, test, desc, stop_at_accuracy,
           log_every, eval_train, checkpoint, stop_here, loss_fn=None):
    hist = {"steps": [], "losses": [], "train_acc": [], "test_acc": [], "steps_to_fit": None}
    if eval_train:
        hist["eval_train_acc"] = []
    step, updating = 0, False
    bar = tqdm(total=epochs * len(loader), desc=desc, leave=False, mininterval=0.5)
    try:
        for epoch in range(epochs):
            correct, seen = None, 0
            for xb, yb in loader:
                stop_here()  # Ctrl-C, SIGTERM, SIGHUP take effect here, between whole steps
                logits = model(_batch(xb, place))
                target = tensor(yb, device=place[0])
                loss = F.cross_entropy(logits, target) if loss_fn is None else \
                    loss_fn(logits, target)
                value = loss.item()  # the one number a step reads back from the device
                if not np.isfinite(value):
                    raise _diverged(value, step + 1, epoch, hist, checkpoint)
                opt.zero_grad()
                loss.backward()
                updating = True   # until the step is counted and logged (only where
                opt.step()        # signals cannot be held can one arrive in between)
                step += 1
                if step % log_every == 0:
                    hist["steps"].append(step)
                    hist["losses"].append(value)
                updating = False
                if loss_fn is None:
                    with no_grad():  # hits stay on the device until the epoch ends
                        hits = (logits.argmax(1) == target).float().sum()
                        correct = hits if correct is None else correct + hits
                seen += len(yb)
                bar.update()
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            sched.step()
            if loss_fn is None:
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
        stop_here()  # a signal that came during the last step still saves what it must
    except (KeyboardInterrupt, Terminated) as e:
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
    """Save what a Ctrl-C, SIGTERM or SIGHUP would otherwise lose, then let it go on up.
    Signals are still held here (signals_at_checkpoints), so a second one waits."""
    e.history = hist
    if checkpoint is None:
        return
    what = "interrupted" if isinstance(e, KeyboardInterrupt) else \
        f"stopped by {signal.Signals(e.signum).name}"
    record = dict(hist, interrupted_after_step=step)
    if isinstance(e, Terminated):
        record["signal"] = signal.Signals(e.signum).name
    if not updating:  # the parameters are exactly those after `step` whole steps
        nn.save(model, checkpoint)
        record["checkpoint_after_step"] = step
    save_json(record, history_path(checkpoint))
    tqdm.write(f"{what} after step {step}: history in {history_path(checkpoint)}, "
               f"parameters in {checkpoint}"
               + ("" if not updating else " (from the last epoch: the signal struck mid-update)"))
