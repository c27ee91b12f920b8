"""cpu_memory: freed arrays are reused by malloc, not given back to the OS and faulted in
again each step. Page faults are counted (getrusage), not timed."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's mallopt: Linux only")

FAULTS_PER_STEP = """
import resource
import numpy as np
import tinydeep as td
from tinydeep import nn, functional as F
td.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(16 * 14 * 14, 10))
opt = td.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = td.tensor(np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32))
y = td.tensor(np.arange(64) % 10)
def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def faults_per_step(tuning):
    env = dict(os.environ, TINYDEEP_MALLOC_TUNING=tuning)
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], env=env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    return float(out.split()[-1])


def test_training_steps_reuse_freed_memory():
    from tinydeep.backends import cpu_memory
    if not cpu_memory.TUNED and os.environ.get("TINYDEEP_MALLOC_TUNING") != "0":
        pytest.skip("no glibc mallopt here")
    tuned, untuned = faults_per_step("1"), faults_per_step("0")
    assert untuned > 500           # 3 MB activations given back and faulted in every step ...
    assert tuned < untuned / 10    # ... and reused from the heap once the thresholds are up


def test_switch_off_leaves_malloc_alone():
    env = dict(os.environ, TINYDEEP_MALLOC_TUNING="0")
    out = subprocess.run([sys.executable, "-c", "from tinydeep.backends import cpu_memory; "
                          "print(cpu_memory.TUNED)"], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.split()[-1] == "False"
