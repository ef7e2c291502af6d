"""Benchmark signsim: fig1 against the dense reference and PyTorch autograd, cost against d,
and batched replicas. Prints tables; every ratio is measured within this one run.

    python scripts/benchmark.py                 # everything (about 2-4 minutes)
    python scripts/benchmark.py --skip-torch --repeat 3

Time is wall-clock (median of --repeat runs, after one warm-up run); peak memory is the
resident set size of a fresh child process that runs one configuration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

import signsim


def timed(fn, repeat: int) -> float:
    fn()  # warm-up: imports, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_fig1(config: signsim.Config):
    """A straightforward PyTorch version of fig1: dense float64 weights, autograd, SignGD,
    every spec-section-6 quantity each step and test metrics every test_every steps."""
    import torch

    train, test = signsim.make_data(config)
    X = torch.from_numpy(train.X)  # (n, d, 2)
    y = torch.from_numpy(train.y)
    mu = torch.from_numpy(train.mu)
    yxi = torch.from_numpy(train.y[:, None] * train.xi)
    Xt = torch.from_numpy(test.X)
    yt = torch.from_numpy(test.y)
    init = signsim.model.init_params(config.seed, config.d, config.m_k, config.m_v,
                                     config.sigma_0)
    W = [torch.tensor(w, requires_grad=True) for w in init]

    def output(W_Q, W_K, W_V, X):
        Q = W_Q @ X
        K = W_K @ X
        S = torch.softmax(torch.einsum("nsl,nsa->nla", Q, K), dim=-1)
        v = W_V[0].mean(0) - W_V[1].mean(0)
        return torch.einsum("nla,na->n", S, v @ X), S, v

    rows = []
    for t in range(config.steps + 1):
        f, S, v = output(*W, X)
        loss = torch.nn.functional.softplus(-y * f).mean()
        with torch.no_grad():
            rows.append([W[0] @ mu, W[1] @ mu, W[0] @ yxi.T, W[1] @ yxi.T, W[2] @ mu,
                         W[2] @ yxi.T, v @ mu, yxi @ v, S, y * f, loss])
            if t % config.test_every == 0 or t == config.steps:
                ft, _, _ = output(*W, Xt)
                torch.nn.functional.softplus(-yt * ft).mean()
        if t == config.steps:
            break
        for w in W:
            w.grad = None
        loss.backward()
        with torch.no_grad():
            for w in W:
                w -= config.lr * torch.sign(w.grad)
    return rows


def peak_rss_mib() -> float:
    """Peak resident set size of this process (VmHWM). Not getrusage's ru_maxrss: on Linux
    that survives execve, so a child would report its parent's peak."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunk_peak(configs: list, names: tuple) -> float:
    """In a worker: run one chunk of a batch as signsim.parallel does; its peak RSS."""
    from signsim.simulate import run_batch

    run_batch(configs, names)
    return peak_rss_mib()


def worker_peak(seeds: list, overrides: dict) -> float:
    """The largest peak RSS of the worker processes of ``run(fig1, seeds, **overrides)``
    (measured inside each worker, running the same chunks)."""
    from signsim import parallel
    from signsim.simulate import replica_configs
    from signsim.tracker import select

    configs = replica_configs(signsim.preset("fig1"), seeds, None)
    names = select(overrides.get("record"))
    parts = parallel.chunks(len(configs), overrides["workers"])
    with parallel.executor(len(parts)) as pool:
        return max(pool.map(_chunk_peak, [[configs[r] for r in p] for p in parts],
                            [names] * len(parts)))


def child(spec: dict) -> None:
    """Run one configuration and print its wall time and peak RSS (MiB) as JSON."""
    overrides = spec.get("overrides", {})
    t0 = time.perf_counter()
    signsim.run("fig1", seeds=spec.get("seeds"), **overrides)
    wall = time.perf_counter() - t0
    out = {"wall": wall, "rss_mib": peak_rss_mib()}
    if "workers" in overrides:
        out["worker_rss_mib"] = worker_peak(spec["seeds"], overrides)
    print(json.dumps(out))


def in_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--skip-dense", action="store_true")
    p.add_argument("--only", choices=["fig1", "d", "replicas"], help="run one section")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    fig1 = signsim.preset("fig1")
    print(f"numpy {np.__version__}, signsim {signsim.__version__}, fig1: n={fig1.n}, d={fig1.d}, "
          f"s={fig1.s}, m_k=m_v={fig1.m_k}, steps={fig1.steps}, n_test={fig1.n_test}, "
          f"record_every={fig1.record_every}, test_every={fig1.test_every}\n")

    if args.only in (None, "fig1"):
        fast = [timed(lambda: signsim.run(fig1), 1) for _ in range(args.repeat)]
        fig1_section(fig1, fast, args)
    if args.only in (None, "d"):
        d_section(args)
    if args.only in (None, "replicas"):
        replica_section(fig1, args.repeat)


def fig1_section(fig1, fast, args) -> None:
    """The fast kernel is timed before and after the slow rows (median of both sets), so a
    slow spell of the machine during one set does not decide the ratios."""
    print("1. fig1, one run (median wall time)")
    table = []
    if not args.skip_dense:
        table.append(("signsim dense reference", timed(lambda: signsim.run(fig1, kernel="dense"), 1)))
    if not args.skip_torch:
        try:
            import torch

            torch.set_num_threads(2)
            table.append((f"PyTorch {torch.__version__} autograd, float64",
                          timed(lambda: torch_fig1(fig1), 1)))
        except ImportError:
            print("   (torch not installed: row skipped; pip install torch==2.13.0)")
    after = [timed(lambda: signsim.run(fig1), 1) for _ in range(args.repeat)]
    runs = fast + after
    fast = statistics.median(runs)
    print(f"   {'signsim (fast kernel)':40s} {fast:9.3f} s        1.0 x fast   "
          f"(min {min(runs):.3f} s)")
    for name, sec in table:
        print(f"   {name:40s} {sec:9.3f} s   {sec / fast:8.1f} x fast")


def d_section(args) -> None:
    print("\n2. fig1 against d (fresh process each; time of run(), peak RSS of the process)")
    base = None
    for d in (10**3, 10**4, 10**5, 10**6, 10**7):
        rec = [in_child({"overrides": {"d": d}}) for _ in range(max(1, args.repeat // 2))]
        wall = statistics.median(r["wall"] for r in rec)
        rss = max(r["rss_mib"] for r in rec)
        base = wall if d == 10**4 else base
        ratio = f"{wall / base:6.2f} x d=1e4" if base else ""
        print(f"   d = 1e{int(np.log10(d))}: {wall:7.3f} s  peak RSS {rss:7.1f} MiB  {ratio}")


def replica_section(fig1, repeat: int) -> None:
    """100 replicas of fig1 in one process, split over 2 worker processes, and with
    record="summary". Each batch runs in a fresh process (its wall time and peak memory),
    in turn with a single run (A B A B ...), so that each ratio compares measurements taken
    seconds apart; the machine's speed drifts."""
    print("\n3. 100 replicas of fig1, run(fig1, seeds=range(100), ...) in a fresh process "
          "each, paired with run(fig1) in a fresh process\n"
          "   (ratio = median over pairs of batch / single; peak RSS of the calling process, "
          "and of the largest worker)")
    cases = [("in one process", {}), ("over 2 worker processes", {"workers": 2}),
             ("record='summary', one process", {"record": "summary"}),
             ("record='summary', 2 workers", {"record": "summary", "workers": 2})]
    for label, kw in cases:
        one, many = [], []
        for _ in range(repeat):
            one.append(in_child({}))
            many.append(in_child({"seeds": list(range(100)), "overrides": kw}))
        ratio = statistics.median(m["wall"] / o["wall"] for m, o in zip(many, one))
        worker = max(m.get("worker_rss_mib", 0.0) for m in many)
        print(f"   {label:32s} {statistics.median(m['wall'] for m in many):7.3f} s "
              f"(min {min(m['wall'] for m in many):.3f})  {ratio:5.1f} x one run "
              f"({statistics.median(o['wall'] for o in one):.3f} s)  peak RSS "
              f"{max(m['rss_mib'] for m in many):6.1f} MiB"
              + (f", worker {worker:6.1f} MiB" if kw.get("workers") else ""))

if __name__ == "__main__":
    main()
