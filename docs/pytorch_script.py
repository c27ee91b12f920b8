"""A PyTorch script that tinydeep runs with one line changed.

An MLP and a small CNN learn the built-in glyph digits (16x16) with Adam, BatchNorm,
Dropout and a cosine learning-rate schedule, in plain PyTorch. Under tinydeep the
first import line becomes `import tinydeep as torch`; nothing else changes.
tests/test_pytorch_script.py runs it both ways and checks that both learn.

    python docs/pytorch_script.py     # with PyTorch; with `import tinydeep as torch`
                                      # in its first line, under tinydeep
"""
import torch
import numpy as np

from tinydeep.data import glyphs

nn, F, optim = torch.nn, torch.nn.functional, torch.optim


def models():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(64, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2),
                        nn.Linear(64, 10))
    return {"mlp": mlp, "cnn": cnn}


def train(model, x, y, x_test, y_test, epochs=6, batch_size=50, seed=0):
    opt = optim.Adam(model.parameters(), lr=1e-2)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(y))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[i:i + batch_size])
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        history.append({"epoch": epoch, "loss": total / len(y), "test_acc": acc,
                        "lr": sched.get_last_lr()[0]})
    return history


def main(n_train=1000, n_test=500, epochs=6):
    torch.manual_seed(0)
    train_set, test_set = glyphs(n_train, seed=0, size=16), glyphs(n_test, seed=1, size=16)
    x, y = torch.from_numpy(train_set.images), torch.from_numpy(train_set.labels)
    x_test, y_test = torch.from_numpy(test_set.images), torch.from_numpy(test_set.labels)
    return {name: train(m, x, y, x_test, y_test, epochs) for name, m in models().items()}


if __name__ == "__main__":
    for name, history in main().items():
        for h in history:
            print(name, {k: round(v, 4) for k, v in h.items()})
