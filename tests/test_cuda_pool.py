"""The device-buffer pool (cuda_device.empty): a training step reuses the buffers of the
step before instead of allocating new ones, and a buffer stays out of the pool while any
view of it (a reshape) is alive."""
import gc

import numpy as np
import pytest

from tinydeep import backends

pytestmark = [pytest.mark.skipif(not backends.cuda_available(),
                                 reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set"),
              pytest.mark.usefixtures("fast_cuda_simulator")]


def _cd():
    from tinydeep.backends import cuda_device as cd
    return cd


def test_a_freed_buffer_is_reused_and_a_live_view_keeps_it():
    cd = _cd()
    gc.collect()
    cd.release_pool()                        # start with empty free lists
    a = cd.empty((3, 5), np.float32)
    before = cd.pool_stats()
    view = a.reshape(15)
    del a
    gc.collect()
    b = cd.empty((3, 5), np.float32)        # a's buffer is still viewed: a new one
    assert cd.pool_stats()["allocations"] == before["allocations"] + 1
    b_host = np.arange(15, dtype=np.float32).reshape(3, 5)
    b.copy_to_device(b_host)
    view.copy_to_device(np.full(15, 7, np.float32))
    np.testing.assert_array_equal(b.copy_to_host(), b_host)    # no aliasing
    del view
    gc.collect()
    c = cd.empty((15,), np.float32)          # now a's buffer is back in the pool
    after = cd.pool_stats()
    assert after["allocations"] == before["allocations"] + 1
    assert after["reuses"] == before["reuses"] + 1
    np.testing.assert_array_equal(c.copy_to_host(), np.full(15, 7, np.float32))


def test_training_steps_reuse_buffers():
    import tinydeep as td
    from tinydeep import functional as F
    cd = _cd()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3)).astype(np.float32)
    Y = np.array([0, 1, 1, 0])
    td.manual_seed(0)
    model = td.nn.MLP(3, 4, 1, 2).to("cuda")
    opt = td.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(td.tensor(X, device="cuda")), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    step()
    step()                                    # momentum buffers exist from here on
    gc.collect()
    before = cd.pool_stats()
    for _ in range(2):
        step()
    after = cd.pool_stats()
    assert after["allocations"] == before["allocations"], (before, after)
    assert after["reuses"] - before["reuses"] >= 20
    old = cd.use_pool(False)
    try:
        n = cd.pool_stats()["allocations"]
        step()
        assert cd.pool_stats()["allocations"] == n      # off: numba allocates, not the pool
    finally:
        cd.use_pool(old)
