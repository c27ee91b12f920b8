"""tinydeep's benchmarks: every kernel beside its baseline, and training steps
against PyTorch CPU, reported as ratios measured in one process run.

    python -m benchmarks            all of them (a few minutes); writes results.json,
                                    results.png and README_TABLE.md here
    python benchmarks/bench_X.py    one of them, with its own options

See timing.py for how a figure is measured and machine.py for the machine line.
"""
