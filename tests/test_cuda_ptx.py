"""Every CUDA kernel compiles for real GPUs (sm_80, sm_90) without one, and does not spill.

`tinydeep kernels` compiles each kernel of the CUDA backend, every dtype, at the GPU launch
sizes, through numba.cuda.compile_ptx (NVVM) and `ptxas -v`; the simulator the other CUDA
tests use does no type inference, so only this shows the kernels compile at all. Needs the
`gpu-tools` extra (NVVM, NVRTC, ptxas); skipped without it. It runs in a child process
because the compiler is off while numba's CUDA simulator is on.
"""
import json
import os
import subprocess
import sys

import pytest

from tinydeep.cuda_compile import ARCHS, find_ptxas, occupancy


def _have_nvvm():
    code = ("from numba.cuda.cudadrv import nvvm; nvvm.NVVM(); "
            "from numba.cuda.cudadrv import nvrtc; nvrtc.get_supported_ccs()")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0


needs_toolchain = pytest.mark.skipif(find_ptxas() is None or not _have_nvvm(),
                                     reason="no ptxas/NVVM: pip install -e '.[gpu-tools]'")


@needs_toolchain
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_kernel_compiles_without_spills(arch, tmp_path):
    out = tmp_path / f"{arch}.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    run = subprocess.run([sys.executable, "-m", "tinydeep.cuda_compile", "--cuda-arch", arch,
                          "--json", str(out)], env=env, capture_output=True, text=True,
                         timeout=1200)
    rows = json.loads(out.read_text())["rows"]
    failed = [f"{r['name']}: {r['error']}" for r in rows if r["error"]]
    spilled = [f"{r['name']}: {r['spill_bytes']} bytes" for r in rows if r["spill_bytes"]]
    assert not failed, "did not compile:\n" + "\n".join(failed)
    assert not spilled, "spilled:\n" + "\n".join(spilled)
    assert run.returncode == 0, run.stderr[-2000:]
    names = {r["name"] for r in rows}
    for kernel in ("relu", "sum_rows", "grid_sample_backward", "matmul_block_tiled_nn",
                   "im2col", "max_pool", "sgd"):
        assert f"{kernel}[float32]" in names
    rung3 = next(r for r in rows if r["name"] == "matmul_block_tiled_nn[float32]")
    assert rung3["blocks_per_sm"] >= 2, rung3          # the bar for rung 3


def test_occupancy_matches_the_cuda_occupancy_rules():
    # 256 threads = 8 warps. 32 registers: 8 blocks fill the 64 warps of an sm_90 SM;
    # 128 registers: 65536 / (128·256) = 2 blocks; 64 KiB of shared memory: 228/64 = 3.
    assert occupancy("sm_90", 256, 32, 0) == (8, 1.0)
    assert occupancy("sm_90", 256, 128, 0) == (2, 0.25)
    assert occupancy("sm_90", 256, 32, 64 * 1024) == (3, 3 * 8 / 64)
    # registers round up to 256 per warp: 33 registers take 40 per thread -> 6 blocks
    assert occupancy("sm_80", 256, 33, 0)[0] == 65536 // (40 * 32 * 8)
    assert set(ARCHS) >= {"sm_80", "sm_90"}
