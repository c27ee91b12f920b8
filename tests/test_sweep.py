"""Sweeps: records bit-identical in-process and on a 2-process dask LocalCluster,
finished tasks skipped, and the paired summary against scipy's paired t-test."""
import json
import os

import numpy as np
import pytest

from tinydeep.experiments import mnist1d as m1d
from tinydeep.experiments import sweep

TASKS = [dict(model=m, shuffled=False, seed=s, epochs=2, num_samples=300)
         for m in ("logistic", "mlp") for s in (0, 1)]


def test_local_cluster_gives_the_sequential_records_and_skips_finished(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    seq = sweep.run_tasks(m1d.train_run, TASKS, threads=1)
    # an existing cluster, reached by its address (--scheduler)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        par = sweep.run_tasks(m1d.train_run, TASKS, scheduler=cluster.scheduler_address,
                              threads=1, out=str(tmp_path))
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert strip(par) == strip(seq)           # every float bit for bit
    assert len({r["test_accuracy"] for r in seq}) > 1
    files = sorted(os.listdir(tmp_path))
    assert len(files) == len(TASKS) and all(f.endswith(".json") for f in files)
    # a rerun trains nothing: a record planted in a file comes back as it is
    path = sweep.task_file(m1d.train_run, TASKS[0], str(tmp_path))
    planted = dict(par[0], test_accuracy=-1.0)
    with open(path, "w") as f:
        json.dump(planted, f)
    os.remove(sweep.task_file(m1d.train_run, TASKS[-1], str(tmp_path)))  # this one reruns
    again = sweep.run_tasks(m1d.train_run, TASKS, workers=2, threads=1, out=str(tmp_path))
    assert again[0] == planted and again[1:-1] == par[1:-1]
    assert strip(again[-1:]) == strip(seq[-1:])   # rerun on a new local cluster (--workers)


def test_task_files_differ_per_task_and_function(tmp_path):
    names = {sweep.task_file(m1d.train_run, t, "o") for t in TASKS}
    assert len(names) == len(TASKS)
    assert sweep.task_file(m1d.train_run, TASKS[0], "o") != sweep.task_file(m1d.load, TASKS[0], "o")


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        sweep.run_tasks(m1d.train_run, TASKS, workers=0)
    with pytest.raises(ValueError, match="not both"):
        sweep.run_tasks(m1d.train_run, TASKS, workers=2, scheduler="tcp://localhost:1")
    with pytest.raises(ValueError, match="tcp://"):
        sweep.run_tasks(m1d.train_run, TASKS, scheduler="localhost:8786")
    with pytest.raises(TypeError, match="list of dicts"):
        sweep.run_tasks(m1d.train_run, [1, 2])
    with pytest.raises(TypeError, match="JSON"):
        sweep.run_tasks(m1d.train_run, [dict(model=object())])


@pytest.mark.parametrize("a, b", [([0.91, 0.93, 0.92, 0.95], [0.90, 0.91, 0.915, 0.93]),
                                  ([0.5, 0.7, 0.4], [0.45, 0.5, 0.6])])
def test_paired_matches_scipys_paired_t_test(a, b):
    from scipy.stats import ttest_rel
    p = sweep.paired(a, b, "x", "y")
    d = np.subtract(a, b)
    assert p["mean"] == pytest.approx(d.mean()) and p["std"] == pytest.approx(d.std(ddof=1))
    assert p["beyond_noise"] == (ttest_rel(a, b).pvalue < 0.05)
    assert ("beyond" in p["sentence"]) == p["beyond_noise"]
    s = sweep.summary(a)
    assert s["mean"] == pytest.approx(np.mean(a)) and s["std"] == pytest.approx(np.std(a, ddof=1))


def test_one_seed_has_no_spread():
    assert sweep.paired([0.5], [0.4])["beyond_noise"] is None
    assert sweep.summary([0.3]) == {"mean": 0.3, "std": 0.0, "n": 1, "values": [0.3]}
    assert sweep.mean_std_text([]) == "—"
