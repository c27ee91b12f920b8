"""One training loop for every experiment: mini-batch SGD with a progress bar."""
import numpy as np
from tqdm.auto import tqdm

from .. import functional as F, optim
from ..data import DataLoader
from ..tensor import no_grad, tensor


def evaluate(model, x, y, batch_size=1000):
    """(accuracy, mean cross-entropy) of a classifier on arrays x, y."""
    model.eval()
    correct, loss_sum = 0, 0.0
    with no_grad():
        for lo in range(0, len(x), batch_size):
            logits = model(tensor(x[lo:lo + batch_size]))
            yb = tensor(y[lo:lo + batch_size])
            loss_sum += F.cross_entropy(logits, yb).item() * len(yb)
            correct += int((logits.argmax(1) == yb).numpy().sum())
    model.train()
    return correct / len(x), loss_sum / len(x)


def fit(model, x, y, epochs, lr, momentum=0.9, weight_decay=0.0, lr_decay=1.0, batch_size=128,
        transform=None, seed=0, test=None, desc="train", stop_at_accuracy=None, log_every=1,
        eval_train=False):
    """Train `model` with SGD on (x, y) with cross-entropy; lr is multiplied by
    `lr_decay` after every epoch. Returns a history record:
        steps, losses          (one entry per `log_every` steps)
        train_acc, test_acc    (running training accuracy and test accuracy per epoch)
        steps_to_fit           first step at which an epoch's running training accuracy
                               reached `stop_at_accuracy` (then training stops), or None.
    With eval_train, the whole training set is also scored after every epoch (one more
    forward pass over x, without `transform`) into `eval_train_acc`, and the stop rule
    uses that accuracy instead of the running one, which lags behind while the model
    still changes within the epoch."""
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = optim.ExponentialLR(opt, lr_decay)
    loader = DataLoader(x, y, batch_size, shuffle=True, seed=seed, transform=transform)
    hist = {"steps": [], "losses": [], "train_acc": [], "test_acc": [], "steps_to_fit": None}
    if eval_train:
        hist["eval_train_acc"] = []
    step = 0
    bar = tqdm(total=epochs * len(loader), desc=desc, leave=False, mininterval=0.5)
    for epoch in range(epochs):
        correct = seen = 0
        for xb, yb in loader:
            logits = model(tensor(xb))
            target = tensor(yb)
            loss = F.cross_entropy(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            correct += int((logits.argmax(1) == target).numpy().sum())
            seen += len(yb)
            if step % log_every == 0:
                hist["steps"].append(step)
                hist["losses"].append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        sched.step()
        hist["train_acc"].append(correct / seen)
        if test is not None:
            hist["test_acc"].append(evaluate(model, *test)[0])
        acc = correct / seen
        if eval_train:
            acc = evaluate(model, x, y)[0]
            hist["eval_train_acc"].append(acc)
        if stop_at_accuracy is not None and acc >= stop_at_accuracy:
            hist["steps_to_fit"] = step
            break
    bar.close()
    return hist
