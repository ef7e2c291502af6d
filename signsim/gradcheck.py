"""Central finite differences of L_S (E15) against the closed-form gradients (E16-E19).

Used by the tests and by ``scripts/gradcheck.py``; works on any dense X of shape (n, d, L).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .grads import gradients
from .model import Params, forward, loss

__all__ = ["BlockError", "training_loss", "check_gradients"]


class BlockError(NamedTuple):
    block: str
    shape: tuple
    worst_abs: float  # max |finite difference - closed form| over the checks
    worst_rel: float  # that error over max(|closed form|, |finite difference|, 1e-300)
    where: str  # the direction or entry of the worst relative error


def training_loss(params: Params, X: np.ndarray, y: np.ndarray) -> float:
    """L_S(W) = (1/n) sum_i l(y_i f(W, X_i)) (E15)."""
    return float(loss(y * forward(params, X).f).mean())


def check_gradients(params: Params, X: np.ndarray, y: np.ndarray, *, h: float = 1e-5,
                    directions: int = 4, coordinatewise: bool = False,
                    rng: np.random.Generator | None = None) -> list[BlockError]:
    """Compare <grad, D> with (L(W + hD) - L(W - hD)) / 2h for each block W_Q, W_K, W_V.

    ``directions`` random unit directions per block; with ``coordinatewise`` every entry of
    every block as well (for tiny shapes).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    grads, _ = gradients(params, X, y)
    report = []
    for b, name in enumerate(Params._fields):
        W, g = params[b], grads[b]
        checks = []
        for k in range(directions):
            D = rng.standard_normal(W.shape)
            checks.append((f"random direction {k}", D / np.linalg.norm(D)))
        if coordinatewise:
            for idx in np.ndindex(W.shape):
                D = np.zeros(W.shape)
                D[idx] = 1.0
                checks.append((f"entry {idx}", D))
        worst_abs, worst_rel, where = 0.0, 0.0, ""
        for label, D in checks:
            plus = params._replace(**{name: W + h * D})
            minus = params._replace(**{name: W - h * D})
            fd = (training_loss(plus, X, y) - training_loss(minus, X, y)) / (2 * h)
            an = float(np.sum(g * D))
            err = abs(fd - an)
            rel = err / max(abs(an), abs(fd), 1e-300)
            worst_abs = max(worst_abs, err)
            if rel >= worst_rel:
                worst_rel, where = rel, label
        report.append(BlockError(name, W.shape, worst_abs, worst_rel, where))
    return report
