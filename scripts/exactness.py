"""What exact arithmetic changes on fig1, measured (issue 11; docs/model.md section 5).

    python scripts/exactness.py            # everything (about 10 minutes on 2 cores)
    python scripts/exactness.py --quick    # without the 10^4-step dense run

Prints, for fig1:

- the share of query-noise entries that did not move at steps 500, 700 and 900, under
  arithmetic "exact" and "float64", and the first step at which the two runs differ;
- the run time of fig1 in both arithmetics (median of 5 interleaved runs) and their ratio;
- the worst deviation from R1-R5 (``theory.exact_rule_predictions``, relative to
  1 + max |quantity|) over every step of a 10^5-step exact run, with the number of entries
  checked, and its final margins and log train loss against the float64 run's;
- the worst relative difference between the fast kernel and the dense reference in exact
  arithmetic, per recorded quantity, over 900 and 10^4 steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import signsim
from signsim import theory

RULES = ("query_noise", "key_noise", "query_signal", "key_signal", "mean_value_noise",
         "mean_value_signal", "log_attention", "margin", "log_train_loss")


def frozen_shares(steps=(500, 700, 900)) -> None:
    runs = {a: signsim.run("fig1", arithmetic=a, record=["query_noise"]) for a in
            ("exact", "float64")}
    for a, r in runs.items():
        moved = np.diff(r.history["query_noise"], axis=0)  # row t-1: step t-1 -> t
        print(f"{a:8s} share of query noise that did not move at steps {steps}: "
              + ", ".join(f"{np.mean(moved[t - 1] == 0):.2f}" for t in steps))
    differ = np.any(runs["exact"].history["query_noise"] != runs["float64"].history[
        "query_noise"], axis=(1, 2))
    first = np.flatnonzero(differ)
    print("first step where exact and float64 differ:", int(first[0]) if first.size else None)


def timing(repeats: int = 5) -> None:
    times = {"float64": [], "exact": []}
    for _ in range(repeats):
        for a in times:
            start = time.perf_counter()
            signsim.run("fig1", arithmetic=a)
            times[a].append(time.perf_counter() - start)
    med = {a: float(np.median(v)) for a, v in times.items()}
    print(f"fig1 time: float64 {med['float64']:.3f} s, exact {med['exact']:.3f} s, "
          f"ratio {med['exact'] / med['float64']:.2f} (median of {repeats})")


def long_rules(steps: int = 10**5) -> None:
    start = time.perf_counter()
    r = signsim.run("fig1", steps=steps, record=list(RULES))
    print(f"{steps}-step exact run: {time.perf_counter() - start:.0f} s")
    worst, checked = {}, {}
    for row in range(steps):
        for name, p in theory.exact_rule_predictions(r.history, row, r.dataset,
                                                     r.config).items():
            actual = r.history[name][row + 1]
            dev = np.abs(np.where(p.exact, p.value - actual, 0.0)).max()
            worst[name] = max(worst.get(name, 0.0), dev / (1 + np.abs(actual).max()))
            checked[name] = checked.get(name, 0) + int(np.sum(p.exact))
    for name in worst:
        print(f"  {name:18s} worst deviation {worst[name]:.2e} over {checked[name]} entries")
    f = signsim.run("fig1", steps=steps, arithmetic="float64", record=["margin",
                                                                       "log_train_loss"])
    for label, x in (("exact", r), ("float64", f)):
        m = x.history["margin"][-1]
        print(f"  {label:8s} final margins {m.min():.1f} .. {m.max():.1f}, log train loss "
              f"{x.history['log_train_loss'][-1]:.1f}")


def fast_vs_dense(steps: int) -> None:
    start = time.perf_counter()
    config = signsim.preset("fig1", steps=steps, n_test=100, test_every=max(1, steps // 10))
    names = [n for n in signsim.tracker.DIMS if n not in ("value_noise",)]
    d = signsim.run(config, kernel="dense", record=names)
    f = signsim.run(config, record=names)
    worst = {n: float(np.max(np.abs(d.history[n] - f.history[n]))
                      / max(np.max(np.abs(d.history[n])), 1e-300)) for n in names}
    name = max(worst, key=worst.get)
    s21 = float(np.min(d.history["attention"][:, :, 1, 0]))
    print(f"fast vs dense, exact, {steps} steps ({time.perf_counter() - start:.0f} s): worst "
          f"relative difference {worst[name]:.1e} ({name}); min s21 {s21:.1e}, min log s21 "
          f"{d.history['log_attention'][:, :, 1, 0].min():.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10^4-step dense run")
    args = parser.parse_args()
    frozen_shares()
    timing()
    long_rules()
    fast_vs_dense(900)
    if not args.quick:
        fast_vs_dense(10**4)


if __name__ == "__main__":
    main()
