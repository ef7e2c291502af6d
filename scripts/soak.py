"""Soak test: many short random valid configurations for a fixed time, each result checked.

    python scripts/soak.py --seconds 300            # prints counts by outcome, exits 1 on a failure

Checks on every run: every recorded quantity finite; each attention row sums to 1
(s11 + s12 = s21 + s22 = 1, to rounding); under SignGD every weight has moved from its init
by a whole number of learning-rate steps (E20: each step moves a coordinate by 0 or lr);
the weights off U equal their init; and a batch's replicas equal their runs alone, bit for
bit. A run that stops on NaN or inf (``signsim.NonFiniteError``) counts as its own outcome.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import signsim


def random_config(rng: np.random.Generator) -> signsim.Config:
    d = int(rng.choice([8, 40, 500, 10_000, 10**9]))
    optimizer = str(rng.choice(signsim.optim.available()))
    return signsim.Config(
        n=int(rng.integers(1, 9)), d=d, s=int(rng.integers(1, min(8, d - 1) + 1)),
        sigma_p=float(rng.choice([0.1, 1.0, 5.0, 20.0])),
        mu_norm=float(rng.choice([0.0, 1.0, 3.0])),
        n_test=int(rng.integers(1, 40)), m_k=int(rng.integers(1, 5)), m_v=int(rng.integers(1, 5)),
        sigma_0=float(rng.choice([0.0, 0.005, 0.1, 1.0])), optimizer=optimizer,
        lr=float(rng.choice([1e-4, 1e-2, 0.3] if optimizer != "gd" else [1e-2, 1.0])),
        beta1=float(rng.choice([0.0, 0.9])), beta2=float(rng.choice([0.5, 0.999])),
        eps=float(rng.choice([1e-8, 1.0])), steps=int(rng.integers(0, 60)),
        seed=int(rng.integers(0, 2**63 - 1)), record_every=int(rng.integers(1, 4)),
        test_every=int(rng.integers(1, 9)),
        signal_position=str(rng.choice(["random", "first"])),
        kernel="dense" if d <= 500 and rng.random() < 0.2 else "fast")


def check(config: signsim.Config) -> None:
    """Raise AssertionError if a result breaks an invariant."""
    r = signsim.run(config)
    for name, value in r.history.items():
        assert np.isfinite(value).all(), f"{name} not finite"
    att = r.history["attention"]
    assert np.allclose(att.sum(-1), 1.0, rtol=0, atol=1e-12), "attention rows"
    if config.optimizer == "signgd" and config.steps:  # soak: a check of one named rule
        moved = np.concatenate([(a - b).ravel() for a, b in
                                zip(_weights(r.params), _weights(r.init_params))])
        k = moved / config.lr
        assert np.abs(k - np.round(k)).max() < 1e-6 * max(1, config.steps), "SignGD steps"
    if config.kernel == "fast":
        batch = signsim.run(config, seeds=[config.seed, config.seed ^ 1])
        alone = batch.replica(0)
        for name in r.history:
            assert np.array_equal(alone.history[name], r.history[name]), f"replica {name}"


def _weights(params) -> tuple:
    """The blocks that can move: the active columns of SparseParams, else every column."""
    if hasattr(params, "W_Q_active"):
        return params.W_Q_active, params.W_K_active, params.W_V_active
    return tuple(params)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    outcomes, failures = collections.Counter(), []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        config = random_config(rng)
        try:
            with np.errstate(all="ignore"):
                check(config)
            outcomes["ok"] += 1
        except signsim.NonFiniteError:
            outcomes["stopped on NaN/inf (NonFiniteError)"] += 1
        except FloatingPointError as exc:  # Adam eps = 0 over a zero denominator (E21)
            outcomes[f"FloatingPointError: {str(exc)[:40]}"] += 1
        except AssertionError as exc:
            outcomes["FAILED"] += 1
            failures.append((config, str(exc)))
    for outcome, count in outcomes.most_common():
        print(f"{count:7d}  {outcome}")
    for config, what in failures[:5]:
        print(f"FAILED ({what}): {config}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
