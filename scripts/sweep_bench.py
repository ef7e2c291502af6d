"""Sweep benchmarks (issue 13): run in one process, so every ratio compares runs made on
the same machine at the same time.

    python scripts/sweep_bench.py            # everything (several minutes)
    python scripts/sweep_bench.py executors  # one part: ceiling, executors, data-quality,
                                             # phase10k

- ceiling: how much faster 2 processes run two independent pure-Python loops than one
  (what "2 cores" give here: the bound for every ratio below).
- executors: cells per second of a 200-cell sweep of small configurations (4 values of n,
  which cannot share a batch, x 10 SNRs x 5 learning rates; SignGD, 300 steps, summaries)
  in this process, on 2 local processes and on a 2-worker Dask LocalCluster (best of 3
  each, after a warm-up).
- data-quality: the wall time of the data-quality study (6 SNRs x 3 optimizers x 10 seeds,
  900 steps, summaries), in this process and on 2 processes.
- phase10k: time and peak memory of a 10,000-cell phase diagram (100 SNRs x 100 values of n,
  SignGD, 100 steps, summaries), in a fresh process (its peak RSS is the sweep's own).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

import signsim

SMALL = dict(d=1000, s=10, m_k=5, m_v=5, n_test=200, steps=300, record_every=300,
             test_every=300)
EXECUTOR_GRID = {"n": [8, 12, 16, 20], "snr": list(np.geomspace(0.25, 8, 10)),
                 "lr": [5e-4, 1e-3, 2e-3, 4e-3, 8e-3]}
DQ_GRID = {"snr": [0.25, 0.5, 1, 2, 4, 8],
           ("optimizer", "lr"): [("signgd", 1e-3), ("adam", 1e-3), ("gd", 1.0)]}


def _timed(repeats: int = 3, **kw):
    """The best of ``repeats`` wall times of one sweep, and its result."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = signsim.sweep(**kw)
        best = min(best, time.perf_counter() - t0)
    return best, res


def executors() -> None:
    from distributed import Client, LocalCluster

    base = signsim.Config(**SMALL)
    cells = 4 * 10 * 5
    signsim.sweep(base=base, grid={"lr": [1e-3]})  # imports and caches warm
    t1, here = _timed(base=base, grid=EXECUTOR_GRID)
    t2, procs = _timed(base=base, grid=EXECUTOR_GRID, executor=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("signsim"))  # workers warm, as on a running cluster
        t3, dask = _timed(base=base, grid=EXECUTOR_GRID, executor=client)
    same = all(np.array_equal(here.columns()[k], r.columns()[k])
               for r in (procs, dask) for k in ("train_loss", "test_loss", "test_error"))
    print(f"200-cell sweep ({cells} cells, 1 seed): in-process {cells / t1:.1f} cells/s, "
          f"2 processes {cells / t2:.1f} cells/s ({t1 / t2:.2f}x), 2-worker Dask "
          f"LocalCluster {cells / t3:.1f} cells/s ({t1 / t3:.2f}x); same numbers: {same}")


def data_quality() -> None:
    base = signsim.preset("data_quality", record_every=900, test_every=900)
    t1, here = _timed(base=base, grid=DQ_GRID, seeds=10)
    t2, procs = _timed(base=base, grid=DQ_GRID, seeds=10, executor=2)
    per = {opt: here.table[here.table.optimizer == opt].run_time.sum()
           for opt in ("signgd", "adam", "gd")}
    print(f"data-quality study (180 runs, 900 steps): in-process {t1:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in per.items())}), 2 processes {t2:.1f} s")


_PHASE = """
import json, resource, sys, tempfile, time
import numpy as np, signsim
base = signsim.preset("data_quality", steps=100, record_every=100, test_every=100, n_test=200)
grid = {"snr": list(np.geomspace(0.25, 8, 100)), "n": list(range(10, 110))}
with tempfile.TemporaryDirectory() as out:
    t0 = time.perf_counter()
    res = signsim.sweep(base, grid, out=out, executor=int(sys.argv[1]) or None)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = signsim.sweeps.load(out)
    reload = time.perf_counter() - t1
    import os
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
print(json.dumps({"cells": len(res), "ok": int((res.status == "ok").sum()), "seconds": seconds,
                  "reload_seconds": reload, "folder_MB": size / 2**20,
                  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def phase10k() -> None:
    for workers in (0, 2):
        out = subprocess.run([sys.executable, "-c", _PHASE, str(workers)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        where = "in-process" if workers == 0 else f"{workers} processes"
        print(f"10,000-cell phase diagram ({where}; 100 SNRs x 100 n, SignGD, 100 steps): "
              f"{r['seconds']:.1f} s ({r['cells'] / r['seconds']:.0f} cells/s), peak RSS "
              f"{r['peak_rss_MB']:.0f} MB (main process), folder {r['folder_MB']:.1f} MB, "
              f"reload {r['reload_seconds']:.2f} s")


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def ceiling() -> None:
    """What 2 processes give on this machine for work with nothing shared (pure Python)."""
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    _spin(20_000_000), _spin(20_000_000)
    serial = time.perf_counter() - t0
    with ProcessPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(_spin, [20_000_000] * 2))
        both = time.perf_counter() - t0
    print(f"this machine's ceiling: 2 processes run 2 pure-Python loops {serial / both:.2f}x "
          "as fast as one process")


PARTS = {"ceiling": ceiling, "executors": executors, "data-quality": data_quality, "phase10k": phase10k}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(PARTS):
        PARTS[name]()
