"""fit's param_groups (the spatial transformer's own rate for its localization net) and
custom loss (the depth studies' regressions), against closed forms."""
import numpy as np
import pytest

import tinydeep as td
from tinydeep import functional as F, nn
from tinydeep.experiments import fit


def test_a_param_group_with_lr_zero_stays_put_while_the_rest_learns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    td.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    frozen = model[0].weight.numpy().copy()
    last = model[2].weight.numpy().copy()
    fit(model, x, y, epochs=2, lr=0.1, param_groups=[{"params": model[0].parameters(), "lr": 0.0}])
    np.testing.assert_array_equal(model[0].weight.numpy(), frozen)
    assert not np.array_equal(model[2].weight.numpy(), last)


def test_mse_loss_fits_least_squares():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((512, 3)).astype(np.float32)
    w_true = np.array([[1.5], [-2.0], [0.5]], np.float32)
    y = (x @ w_true + 0.3 + 0.01 * rng.standard_normal((512, 1))).astype(np.float32)
    td.manual_seed(0)
    model = nn.Linear(3, 1)
    hist = fit(model, x, y, epochs=60, lr=0.05, loss=F.mse_loss, batch_size=64)
    X = np.hstack([x, np.ones((512, 1), np.float32)]).astype(np.float64)
    coef = np.linalg.lstsq(X, y.astype(np.float64), rcond=None)[0].ravel()
    np.testing.assert_allclose(model.weight.numpy().ravel(), coef[:3], atol=2e-3)
    np.testing.assert_allclose(model.bias.numpy(), coef[3:], atol=2e-3)
    assert hist["train_acc"] == [] and hist["losses"][-1] < 1e-3


def test_custom_loss_refuses_accuracy_options():
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="cross-entropy"):
        fit(nn.Linear(2, 1), x, y, epochs=1, lr=0.1, loss=F.mse_loss, stop_at_accuracy=1.0)


def test_outputs_runs_batches_in_eval_mode_and_restores_training():
    from tinydeep.experiments.training import outputs
    td.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    got = outputs(model, x, batch_size=3)                   # batches of 3, 3, 3, 1
    model.eval()
    with td.no_grad():
        want = model(td.tensor(x)).numpy()                  # dropout off: the layer alone
    model.train()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.shape == (10, 4) and model.training
