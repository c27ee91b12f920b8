"""experiments.training.fit/evaluate follow the model to its device: the same seed gives
the same losses on 'cuda' (the simulator when no GPU) as on the CPU."""
import numpy as np
import pytest

from tinydeep import backends, nn
from tinydeep.experiments.training import evaluate, fit
from tinydeep.rng import manual_seed

pytestmark = [pytest.mark.usefixtures("fast_cuda_simulator"),
              pytest.mark.skipif(not backends.cuda_available(),
                                 reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")]


def _run(device):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    manual_seed(0)
    model = nn.MLP(4, 3, 1, 2).to(device)
    hist = fit(model, x, y, epochs=2, lr=0.1, batch_size=6, seed=0)
    return hist, evaluate(model, x, y), model.state_dict()


def test_fit_on_cuda_matches_cpu():
    h_cpu, ev_cpu, w_cpu = _run("cpu")
    h_gpu, ev_gpu, w_gpu = _run("cuda")
    np.testing.assert_allclose(h_gpu["losses"], h_cpu["losses"], rtol=1e-4, atol=1e-5)
    assert h_gpu["train_acc"] == h_cpu["train_acc"]
    assert ev_gpu[0] == ev_cpu[0]
    np.testing.assert_allclose(ev_gpu[1], ev_cpu[1], rtol=1e-4)
    for name in w_cpu:
        np.testing.assert_allclose(w_gpu[name], w_cpu[name], rtol=1e-4, atol=1e-5)
