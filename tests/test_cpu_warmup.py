"""backends/cpu_warmup.py: on a cold kernel cache a helper process compiles the MLP step's
kernels (not the matmul) into the shared cache while the first process compiles the matmul.
What a user must be able to rely on: the step's numbers are the same with and without the
helper, also in a later run that loads the helper's cached machine code; the helper's cache
files carry names of their own; TINYDEEP_WARMUP=0 and a warm cache start no helper."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

STEP = r"""
import json, sys
import numpy as np
import tinydeep as td
from tinydeep import functional as F, nn, optim
from tinydeep.backends import cpu_warmup
td.manual_seed(0)
rng = np.random.default_rng(0)
x = td.tensor(rng.standard_normal((16, 20)).astype(np.float32))
y = td.tensor(rng.integers(0, 5, 16))
model = nn.MLP(20, 12, 2, 5)
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for _ in range(2):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
started = cpu_warmup.helper is not None
if started:
    cpu_warmup.helper.wait(timeout=240)
print(json.dumps({"loss": float(loss.item()), "started": started,
                  "helper_rc": cpu_warmup.helper.returncode if started else None,
                  "params": [p.data.astype(float).ravel().tolist() for p in model.parameters()]}))
"""


def _step(cache_dir, warmup):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), TINYDEEP_WARMUP=warmup,
               TINYDEEP_QUIET_COMPILE="1", PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    run = subprocess.run([sys.executable, "-c", STEP], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_helper_compiles_beside_the_first_run_and_changes_no_number(tmp_path):
    with_helper, without = tmp_path / "with", tmp_path / "without"
    first = _step(with_helper, "1")
    assert first["started"] and first["helper_rc"] == 0
    helper_files = [f for f in with_helper.rglob("*.nbc") if ".w" in f.name]
    assert helper_files, "the helper cached no kernel"
    assert len({f.name.split(".w")[1].split("-")[0] for f in helper_files}) == 1   # one run
    alone = _step(without, "0")
    assert not alone["started"]
    assert not [f for f in without.rglob("*.nbc") if ".w" in f.name]
    again = _step(with_helper, "1")          # warm cache: no helper, kernels loaded
    assert not again["started"]
    for run in (first, again):
        assert run["loss"] == alone["loss"]
        for got, want in zip(run["params"], alone["params"]):
            np.testing.assert_array_equal(got, want)


def test_helper_data_names_are_its_own():
    """The helper's cache data files get '.w<run>-<n>.nbc' names, a fresh <run> each time."""
    code = ("from tinydeep.backends import cpu_warmup as w\n"
            "from numba.core import caching\n"
            "assert w._child_data_names()\n"
            "class F(caching.IndexDataCacheFile):\n"
            "    def __init__(self): self._data_name_pattern = 'f-1.py311.{number:d}.nbc'\n"
            "print(F()._data_name(3))\n")
    names = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True
                            ).stdout.strip() for _ in range(2)]
    for name in names:
        assert name.startswith("f-1.py311.w") and name.endswith("-3.nbc"), name
    assert names[0] != names[1]
