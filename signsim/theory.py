"""What the theory predicts for a configuration or a recorded state (spec sections 1, 6-8).

- ``time_scales``: the orders of magnitude of the stage boundaries (spec section 7);
- ``snr``, ``expected_shared_coordinates``: E5 and the overlap of the training supports;
- ``regime``: which of the assumptions behind the exact rules and the stages a config meets;
- ``rule_predictions``: the exact one-step SignGD rules R1-R5 applied to a recorded step
  (``exact_rule_predictions``: the same with signs no underflow decides, for
  ``arithmetic="exact"``).

docs/lemmas.md states each claim with its assumptions and the test that checks it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .config import Config
from .logspace import signed_add, signed_sum, split
from .optim import from_config
from .tracker import TRAIN_NAMES

__all__ = ["time_scales", "snr", "expected_shared_coordinates", "Assumption", "regime",
           "Prediction", "rule_predictions", "exact_rule_predictions", "exclusive_samples"]


def time_scales(config: Config) -> dict[str, float]:
    """Predicted ends of Stages I-III in steps (orders of magnitude, spec section 7):
    T1 ~ sigma_0 / (lr sqrt(s m_v)), T2 ~ sigma_0 / (lr sqrt(s)), T3 ~ sigma_0 / lr."""
    c = config
    return {"T1": c.sigma_0 / (c.lr * math.sqrt(c.s * c.m_v)),
            "T2": c.sigma_0 / (c.lr * math.sqrt(c.s)),
            "T3": c.sigma_0 / c.lr}


def snr(config: Config) -> float:
    """mu_norm / (sigma_p sqrt(s)) (E5)."""
    return config.snr


def expected_shared_coordinates(config: Config) -> float:
    """Expected number of coordinates that lie in two or more of the n training supports.

    Each coordinate of {2..d} is in a given support with probability p = s / (d - 1),
    independently across samples, so the expectation is
    (d - 1) (1 - (1 - p)^n - n p (1 - p)^(n - 1)) (about n^2 s^2 / (2 d) when small).
    """
    n, p = config.n, config.s / (config.d - 1)
    return (config.d - 1) * (1 - (1 - p) ** n - n * p * (1 - p) ** (n - 1))


class Assumption(NamedTuple):
    name: str
    holds: bool
    detail: str


def regime(config: Config) -> list[Assumption]:
    """The regime assumptions (docs/lemmas.md, "Regime"), each with whether ``config`` meets it."""
    c = config
    shared = expected_shared_coordinates(c)
    z0 = c.sigma_0**2 * c.sigma_p**2 * c.s * math.sqrt(c.m_k)
    scales = time_scales(c)
    return [
        Assumption("disjoint supports", shared < 0.5,
                   f"expected shared coordinates {shared:.3g} (< 0.5 wanted); R1-R3 are exact "
                   "only for samples whose support is their own"),
        Assumption("noise dominates signal", c.sigma_p * math.sqrt(c.s) >= 10 * c.mu_norm,
                   f"sigma_p sqrt(s) / mu_norm = {1 / c.snr if c.snr else math.inf:.3g} (>= 10 wanted)"),
        Assumption("small init", z0 <= 1.0,
                   f"typical initial noise-noise logit sigma_0^2 sigma_p^2 s sqrt(m_k) = {z0:.3g} "
                   "(<= 1 wanted: attention starts near uniform)"),
        Assumption("stages resolved by the step size", scales["T1"] >= 1.0,
                   f"sigma_0 / (lr sqrt(s m_v)) = {scales['T1']:.3g} steps (>= 1 wanted)"),
        Assumption("sign-based optimizer", from_config(c).sign_based,
                   f"optimizer = {c.optimizer!r}; the four stages are a SignGD (and Adam) "
                   "result (the optimizer's own declaration, signsim.optim)"),
    ]


class Prediction(NamedTuple):
    """Value at the next step predicted by a rule, and where the rule is exact."""

    value: np.ndarray
    exact: np.ndarray  # bool, same shape: the rule's assumptions hold for this entry


def exclusive_samples(dataset) -> np.ndarray:
    """(n,) bool: sample i shares no support coordinate with another training sample."""
    idx = dataset.noise_index
    coords, counts = np.unique(idx, return_counts=True)
    shared = np.isin(idx, coords[counts > 1])
    return ~shared.any(axis=1)


def rule_predictions(history: dict, row: int, dataset, config: Config,
                     tiny: float = 1e-250) -> dict[str, Prediction]:
    """R1-R5 (spec section 6): the SignGD state at the recorded step after ``row`` (which must
    be the next step, record_every = 1), predicted from the quantities recorded at ``row``.

    An entry is marked exact where the rule's assumptions hold: the sample's support is its
    own (R1 noise, R2, R3) and the factors the rule divides out are nonzero, i.e. not 0 or
    below ``tiny`` in magnitude (where float64 products can underflow).
    """
    h = {k: history[k][row] for k in TRAIN_NAMES}
    lr, mu = config.lr, config.mu_norm
    l1 = dataset.noise_l1  # (n,)
    own = exclusive_samples(dataset)
    att = h["attention"]
    s11, s12, s21, s22 = att[:, 0, 0], att[:, 0, 1], att[:, 1, 0], att[:, 1, 1]
    lp = np.abs(h["loss_derivative"])
    DV = h["mean_value_noise"] - h["mean_value_signal"]  # (n,)
    DK = h["key_noise"] - h["key_signal"][:, None]  # (m_k, n)
    EQ = s11 * s12 * h["query_signal"][:, None] + s21 * s22 * h["query_noise"]  # (m_k, n)
    r2 = DV * DK
    r3 = DV * EQ
    r4 = (lp * s11 * s12 * r2).sum(axis=1)  # (m_k,)
    r5 = (lp * DV * EQ).sum(axis=1)
    g2 = lp * s21 * s22 * np.abs(r2)  # magnitude of the noise-token gradient factor
    e = lp * np.abs(r3)
    full = lambda shape: np.ones(shape, dtype=bool)  # noqa: E731
    return {
        "mean_value_noise": Prediction(h["mean_value_noise"] + 2 * lr * l1, own & (lp > tiny)),
        "mean_value_signal": Prediction(h["mean_value_signal"] + 2 * lr * mu,
                                        full(()) & bool((lp > tiny).any())),
        "query_noise": Prediction(h["query_noise"] + lr * l1 * np.sign(r2), own & (g2 > tiny)),
        "key_noise": Prediction(h["key_noise"] + lr * l1 * np.sign(r3), own & (e > tiny)),
        "query_signal": Prediction(h["query_signal"] + lr * mu * np.sign(r4), np.abs(r4) > tiny),
        "key_signal": Prediction(h["key_signal"] - lr * mu * np.sign(r5), np.abs(r5) > tiny),
    }


def exact_rule_predictions(history: dict, row: int, dataset, config: Config) -> dict:
    """R1-R5 as ``rule_predictions``, with the rules' signs taken in sign and log-magnitude
    form (``signsim.logspace``) from ``log_attention`` and the margins, so that no factor
    underflows: the rules of exact arithmetic (E20), which hold at every step, however
    saturated. An entry is exact where the sample's support is its own (R1 noise, R2, R3)
    and the rule's sign is not an exact 0. Needs ``log_attention``, ``margin`` and the
    signal and noise quantities recorded at every step."""
    h = {k: history[k][row] for k in ("log_attention", "margin", "mean_value_noise",
                                      "mean_value_signal", "key_noise", "key_signal",
                                      "query_noise", "query_signal")}
    lr, mu, l1 = config.lr, config.mu_norm, dataset.noise_l1
    own = exclusive_samples(dataset)
    la = h["log_attention"]  # (n, 2, 2)
    log_s11_s12, log_s21_s22 = la[:, 0, 0] + la[:, 0, 1], la[:, 1, 0] + la[:, 1, 1]
    log_lp = -np.logaddexp(0.0, h["margin"])  # log|l'_i|                              (E14)
    sDV, lDV = split(h["mean_value_noise"] - h["mean_value_signal"])
    sDK, lDK = split(h["key_noise"] - h["key_signal"][:, None])  # (m_k, n)
    s_q, l_q = split(h["query_signal"][:, None])
    s_Q, l_Q = split(h["query_noise"])
    sEQ, lEQ = signed_add(s_q, log_s11_s12 + l_q, s_Q, log_s21_s22 + l_Q)  # E^Q
    r2, r3 = sDV * sDK, sDV * sEQ
    r4, _ = signed_sum(r2, log_lp + log_s11_s12 + lDV + lDK, axis=1)
    r5, _ = signed_sum(r3, log_lp + lDV + lEQ, axis=1)
    return {
        "mean_value_noise": Prediction(h["mean_value_noise"] + 2 * lr * l1, own.copy()),
        "mean_value_signal": Prediction(h["mean_value_signal"] + 2 * lr * mu, np.array(True)),
        "query_noise": Prediction(h["query_noise"] + lr * l1 * r2, own & (r2 != 0)),
        "key_noise": Prediction(h["key_noise"] + lr * l1 * r3, own & (r3 != 0)),
        "query_signal": Prediction(h["query_signal"] + lr * mu * r4, r4 != 0),
        "key_signal": Prediction(h["key_signal"] - lr * mu * r5, r5 != 0),
    }
