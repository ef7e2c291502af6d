"""How the stage boundaries T1-T4 move when lr, sigma_0, s or m_v change (spec section 7).

    python scripts/scaling.py            # about two minutes (one process, one core)

The spec predicts, as orders of magnitude, T1 ~ sigma_0 / (lr sqrt(s m_v)),
T2 ~ sigma_0 / (lr sqrt(s)), T3 ~ sigma_0 / lr, and that halving lr doubles every boundary.
So from a baseline: halving lr multiplies T1, T2, T3 (and T4) by 2; doubling sigma_0
multiplies T1, T2, T3 by 2; doubling s multiplies T1 and T2 by 1/sqrt(2) = 0.71 and leaves T3;
doubling m_v multiplies T1 by 0.71 and leaves T2 and T3. No prediction is made for T4
except under lr.

Two baselines, each with seeds 0-9 and each change applied alone:

- fig1 (spec section 9);
- "n10": n=10, d=20000, s=10, sigma_p=3, m_k=m_v=5, lr=2e-5, sigma_0=0.01, the
  configuration of tests/test_lemmas.py::test_doubling_sigma0_doubles_stage_I_and_II.

Every run lasts 36 sigma_0/lr steps of its own config (fig1: 1800, twice its preset's 900;
n10: 18000), so each change keeps the horizon in units of the predicted Stage III scale.
T1, T3 and T4 are lasting conditions ("from which ... to the end"), so they can depend on the
horizon: in n10 the T3 condition is met and lost again for thousands of steps (seed 0: a
1200-step run finds T3 = 528, an 18000-step run finds 5869).

Table 1 gives the boundaries of `signsim.stages.detect` (each searched from the latest earlier
boundary found). Table 2 gives the stage conditions of `signsim.stages.conditions` found
independently of one another, each from step 0 (as in
tests/test_lemmas.py::test_stage_conditions_are_reached_in_order), with the largest share of
(s, i) query/key noise pairs of equal sign at any step up to the one from which the T3
condition lasts (1 when the T2 crossing comes before it).
Each cell is the median [min, max] over the seeds where the boundary is reached ("k/10" when
not all are, "not reached" when none is); the ratio line is the median [min, max] over seeds
of T(changed)/T(baseline), seed by seed, over the seeds where both are reached. The last lines
count, per n10 config, the seeds whose T3 is at most 6 sigma_0/lr, and, per baseline, the
seeds where doubling sigma_0 and halving lr (the same sigma_0/lr) give the same boundary.
"""

from __future__ import annotations

import math
import time

import numpy as np

import signsim
from signsim import stages

SEEDS = list(range(10))
NAMES = ("T1", "T2", "T3", "T4")
# the quantities the stage conditions read (signsim.stages), nothing else is recorded
RECORD = ["mean_value_noise", "mean_value_signal", "query_noise", "key_noise",
          "query_signal", "key_signal", "attention", "loss_derivative"]
HORIZON = 36  # run length in units of sigma_0 / lr

BASELINES = {
    "fig1": signsim.preset("fig1"),
    "n10": signsim.Config(n=10, d=20_000, s=10, sigma_p=3.0, m_k=5, m_v=5, n_test=20,
                          test_every=500, lr=2e-5, sigma_0=0.01),
}
# (label, change, predicted factor on T1, T2, T3, T4; None = no prediction)
R2 = 1 / math.sqrt(2)
CHANGES = [
    ("baseline", lambda c: {}, (1, 1, 1, 1)),
    ("lr / 2", lambda c: {"lr": c.lr / 2}, (2, 2, 2, 2)),
    ("sigma_0 x 2", lambda c: {"sigma_0": 2 * c.sigma_0}, (2, 2, 2, None)),
    ("s x 2", lambda c: {"s": 2 * c.s}, (R2, R2, 1, None)),
    ("m_v x 2", lambda c: {"m_v": 2 * c.m_v}, (R2, 1, 1, None)),
]


def _lasting(ok: np.ndarray):
    bad = np.flatnonzero(~ok)
    return 0 if bad.size == 0 else (int(bad[-1]) + 1 if bad[-1] + 1 < len(ok) else None)


def measure(config) -> dict:
    """Per-seed boundaries: detected (sequential) and independent, plus the aligned share."""
    result = signsim.run(config, seeds=SEEDS, record=RECORD)
    seq = {n: [getattr(rep, n) for rep in stages.detect(result)] for n in NAMES}
    ind = {n: [] for n in NAMES}
    ind["aligned"] = []
    for r in range(len(SEEDS)):
        c = stages.conditions({k: result.history[k][r] for k in RECORD})
        hit = np.flatnonzero(c["T2"])
        idx = {"T1": _lasting(c["T1"]), "T2": None if hit.size == 0 else int(hit[0]),
               "T3": _lasting(c["T3"]), "T4": _lasting(c["T4"])}
        for n in NAMES:
            ind[n].append(None if idx[n] is None else int(result.steps[idx[n]]))
        ind["aligned"].append(None if idx["T3"] is None
                              else float(c["_values"]["T2"][:idx["T3"] + 1].max()))
    return {"seq": seq, "ind": ind}


def cell(values) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "not reached"
    text = f"{np.median(v):g} [{min(v):g}, {max(v):g}]"
    return text if len(v) == len(values) else f"{text} ({len(v)}/{len(values)})"


def ratio_cell(new, old) -> str:
    r = [a / b for a, b in zip(new, old) if a is not None and b is not None and b > 0]
    if not r:
        return "-"
    text = f"x{np.median(r):.3g} [{min(r):.3g}, {max(r):.3g}]"
    return text if len(r) == len(new) else f"{text} ({len(r)}/{len(new)})"


def predicted(factors) -> str:
    return " / ".join("-" if f is None else f"{f:.2g}" for f in factors)


def table(title: str, runs: dict, key: str) -> None:
    print(f"\n## {title}\n")
    cols = list(NAMES) + (["max aligned share up to T3"] if key == "ind" else [])
    print("| config | change | steps | predicted T1 / T2 / T3 / T4 | " + " | ".join(cols) + " |")
    print("|---" * (4 + len(cols)) + "|")
    for (base, label), (config, factors, data) in runs.items():
        values = data[key]
        ref = runs[(base, "baseline")][2][key]
        row = [cell(values[n]) for n in NAMES]
        if key == "ind":
            a = [x for x in values["aligned"] if x is not None]
            row.append("-" if not a else f"{np.median(a):.3f} [{min(a):.3f}, {max(a):.3f}]")
        print(f"| {base} | {label} | {config.steps} | {predicted(factors)} | " + " | ".join(row) + " |")
        if label != "baseline":
            ratios = [ratio_cell(values[n], ref[n]) for n in NAMES]
            print("| | ratio | | | " + " | ".join(ratios) + (" |" if key == "seq" else " | |"))


def main() -> None:
    start = time.perf_counter()
    runs = {}
    for base, config in BASELINES.items():
        for label, change, factors in CHANGES:
            c = config.replace(**change(config))
            c = c.replace(steps=round(HORIZON * c.sigma_0 / c.lr))
            t = time.perf_counter()
            runs[(base, label)] = (c, factors, measure(c))
            print(f"ran {base} {label}: {c.steps} steps x {len(SEEDS)} seeds in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)

    table("Table 1: stages.detect (sequential), seeds 0-9", runs, "seq")
    table("Table 2: stage conditions found independently, seeds 0-9", runs, "ind")

    print("\n## n10: T3 (stages.detect) at most 6 sigma_0/lr steps\n")
    for (base, label), (config, _, data) in runs.items():
        if base != "n10":
            continue
        limit = 6 * config.sigma_0 / config.lr
        t3 = data["seq"]["T3"]
        within = [s for s, t in zip(SEEDS, t3) if t is not None and t <= limit]
        print(f"{label}: {len(within)} of {len(SEEDS)} seeds within {limit:.0f} steps "
              f"(seeds {within}); T3 per seed {t3}")
    print("\n## sigma_0 x 2 against lr / 2 (the same sigma_0/lr), seed by seed\n")
    for base in BASELINES:
        a, b = runs[(base, "sigma_0 x 2")][2]["seq"], runs[(base, "lr / 2")][2]["seq"]
        same = ", ".join(f"{n} equal in {sum(x == y for x, y in zip(a[n], b[n]))}/{len(SEEDS)}"
                         for n in NAMES)
        print(f"{base}: {same}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
