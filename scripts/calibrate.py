"""Recompute the numbers docs/lemmas.md quotes: stage boundaries, and the 30-seed calibration
of every statistical test in tests/test_lemmas.py (the same statistics, on more seeds).

    python scripts/calibrate.py            # about a minute

Run it after any change that alters the runs (data, init, kernel numerics) and copy the
figures into docs/lemmas.md and the test docstrings; the tests' thresholds must keep a margin
against the extremes printed here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import signsim  # noqa: E402
from signsim import stages, theory  # noqa: E402
from tests.test_lemmas import _lasting, _log_linear_r2, _negative_noise_left  # noqa: E402

SEEDS = list(range(30))
NAMES = ("T1", "T2", "T3", "T4")


def spread(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.min():.4g} / {np.median(v):.4g} / {v.max():.4g}"


def boundaries(reports) -> dict:
    return {n: [getattr(r, n) for r in reports] for n in NAMES}


def slope_ratio(steps, loss, T3) -> float:
    t, y = steps[T3:], np.log(loss[T3:])
    k = len(t) // 3
    middle = np.polyfit(t[k:2 * k], y[k:2 * k], 1)[0]
    return np.polyfit(t[2 * k:], y[2 * k:], 1)[0] / middle


def main() -> None:
    print("## seed 0, full presets")
    for name in ("fig1", "fig2"):
        print(f"{name}: {stages.detect(signsim.run(name)).table()}\n")

    print("## fig1, 30 seeds, n_test=200 (as in tests/test_lemmas.py)")
    fig1 = signsim.run("fig1", seeds=SEEDS, n_test=200)
    fig2 = signsim.run("fig2", seeds=SEEDS, n_test=200)
    r1, r2 = stages.detect(fig1), stages.detect(fig2)
    for n, values in boundaries(r1).items():
        print(f"SignGD {n} min/median/max: {spread(values)}")
    ordered = 0
    for r in range(len(SEEDS)):
        c = stages.conditions({k: v[r] for k, v in fig1.history.items()})
        t1, t3, t4 = _lasting(c["T1"]), _lasting(c["T3"]), _lasting(c["T4"])
        t2 = int(np.flatnonzero(c["T2"])[0])
        ordered += None not in (t1, t3, t4) and t1 <= t2 <= t3 <= t4
    print(f"conditions reached in order I-IV: {ordered}/{len(SEEDS)} seeds")

    half = stages.detect(signsim.run("fig1", seeds=SEEDS, n_test=200, lr=5e-5, steps=1800))
    for n in NAMES:
        ratios = [getattr(y, n) / getattr(x, n) for x, y in zip(r1, half)]
        print(f"T(lr/2)/T(lr) {n}: min/median/max {spread(ratios)}")

    r2s, final_train, final_test, sign_ratio = [], [], [], []
    for r, rep in enumerate(r1):
        keep = fig1.steps >= rep.T3
        r2s.append(_log_linear_r2(fig1.steps[keep], fig1.history["train_loss"][r][keep])[0])
        final_train.append(fig1.history["train_loss"][r][-1])
        final_test.append(fig1.history["test_loss"][r][-1])
        sign_ratio.append(slope_ratio(fig1.steps, fig1.history["train_loss"][r], rep.T3))
    print(f"SignGD after T3: R^2 min {min(r2s):.5f}; final train loss max {max(final_train):.2g}; "
          f"final test loss min {min(final_test):.3f}")
    adam_ratio = [slope_ratio(fig2.steps, fig2.history["train_loss"][r], rep.T3)
                  for r, rep in enumerate(r2)]
    print(f"log-loss slope, last third / middle third after T3: Adam {spread(adam_ratio)}; "
          f"SignGD {spread(sign_ratio)}")
    left1 = [_negative_noise_left(fig1, r, rep)[0] for r, rep in enumerate(r1)]
    left2 = [_negative_noise_left(fig2, r, rep)[0] for r, rep in enumerate(r2)]
    print(f"negative query noise left at the end: SignGD max {max(left1):.0%}; "
          f"Adam {min(left2):.0%}-{max(left2):.0%}; Adam T4 reached: "
          f"{sum(rep.T4 is not None for rep in r2)}/{len(SEEDS)}")

    print("\n## sigma_0 scaling")
    base = signsim.Config(n=10, d=20_000, s=10, sigma_p=3.0, m_k=5, m_v=5, n_test=20,
                          test_every=500, lr=2e-5, sigma_0=0.01, steps=1200)
    a = stages.detect(signsim.run(base, seeds=[0, 1, 2]))
    b = stages.detect(signsim.run(base.replace(sigma_0=0.02, steps=2400), seeds=[0, 1, 2]))
    for n in ("T1", "T2"):
        print(f"n=10 config, T(2 sigma_0)/T(sigma_0) {n}: "
              f"{[round(getattr(y, n) / getattr(x, n), 3) for x, y in zip(a, b)]}")
    for factor in (0.5, 2.0):
        rep = stages.detect(signsim.run("fig1", sigma_0=0.005 * factor, n_test=200))
        print(f"fig1 seed 0, sigma_0 x {factor}: {[getattr(rep, n) for n in NAMES]}")

    print("\n## R1-R5 on fig1 (seed 0, every step): worst |rule - run| where exact")
    r = signsim.run("fig1", n_test=20)
    worst = {}
    for row in range(len(r.steps) - 1):
        for name, pred in theory.rule_predictions(r.history, row, r.dataset, r.config).items():
            diff = np.abs(np.where(pred.exact, pred.value - r.history[name][row + 1], 0.0))
            worst[name] = max(worst.get(name, 0.0), float(diff.max()))
    print({k: f"{v:.2g}" for k, v in worst.items()})

    print("\n## data quality: mean test loss over seeds 0-2 (n_test=300)")
    for optimizer, lr in (("signgd", 1e-3), ("adam", 1e-3), ("gd", 1.0)):
        row = []
        for snr in (0.25, 0.5, 1, 2, 4, 8):
            res = signsim.run("data_quality", sigma_p=1 / (snr * np.sqrt(20)),
                              optimizer=optimizer, lr=lr, seeds=[0, 1, 2], n_test=300,
                              record_every=900, test_every=900)
            row.append(f"{res.history['test_loss'][:, -1].mean():.3f}")
        print(f"| {optimizer} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
