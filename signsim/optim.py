"""Full-batch optimizers as pairs of pure functions (E20-E22).

An optimizer is ``Optimizer(init, update)``::

    state = opt.init(params)
    updates, state = opt.update(grads, state)   # step t = state.count after the call
    params = apply_updates(params, updates)     # W^(t) = W^(t-1) + updates

``params`` and ``grads`` are one ndarray or a NamedTuple of ndarrays (such as ``Params``);
every rule acts entrywise, on all blocks at once, from the same W^(t-1). States are
immutable NamedTuples; nothing is changed in place.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .config import Config

__all__ = ["Optimizer", "SignGDState", "AdamState", "GDState", "sign_gd", "adam", "gd",
           "apply_updates", "from_config"]


class Optimizer(NamedTuple):
    init: Callable[[Any], Any]
    update: Callable[[Any, Any], tuple[Any, Any]]


class SignGDState(NamedTuple):
    count: int


class GDState(NamedTuple):
    count: int


class AdamState(NamedTuple):
    count: int  # t, the index of the last step taken
    mu: Any  # first moment m, same structure as params
    nu: Any  # second moment v


def _map(fn, *trees):
    """Apply ``fn`` leaf by leaf to ndarrays or NamedTuples of ndarrays."""
    if isinstance(trees[0], np.ndarray):
        return fn(*trees)
    return type(trees[0])(*(_map(fn, *leaves) for leaves in zip(*trees)))


def apply_updates(params, updates):
    """W + updates, leaf by leaf."""
    return _map(np.add, params, updates)


def sign_gd(lr: float) -> Optimizer:
    """SignGD (E20): W <- W - lr * sign(g), with sign(0) = 0 (so a coordinate moves by 0 or lr)."""

    def init(params):
        return SignGDState(count=0)

    def update(grads, state):
        return _map(lambda g: -lr * np.sign(g), grads), SignGDState(state.count + 1)

    return Optimizer(init, update)


def gd(lr: float) -> Optimizer:
    """Gradient descent (E22): W <- W - lr * g."""

    def init(params):
        return GDState(count=0)

    def update(grads, state):
        return _map(lambda g: -lr * g, grads), GDState(state.count + 1)

    return Optimizer(init, update)


def adam(lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam with PyTorch semantics (E21), t = 1, 2, ...::

        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        W <- W - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    With eps = 0 a coordinate whose denominator is 0 has seen only zero gradients, so 0/0
    counts as 0; a nonzero m over a zero denominator (beta2 = 0 < beta1, or g^2 underflowing)
    raises FloatingPointError instead of producing inf.
    """

    def init(params):
        zeros = _map(np.zeros_like, params)
        return AdamState(count=0, mu=zeros, nu=zeros)

    def step(g, m, v, t):
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * (g * g)
        m_hat = m / (1.0 - beta1**t)
        denom = np.sqrt(v / (1.0 - beta2**t)) + eps
        if eps > 0.0:
            return -lr * (m_hat / denom), m, v
        zero = denom == 0.0
        if np.any(zero & (m_hat != 0.0)):
            raise FloatingPointError(
                f"Adam with eps=0 met a nonzero first moment over a zero second moment at "
                f"step {t} (beta1={beta1}, beta2={beta2}); use eps > 0 or beta2 > 0.")
        ratio = np.divide(m_hat, denom, out=np.zeros_like(m_hat), where=~zero)
        return -lr * ratio, m, v

    def update(grads, state):
        t = state.count + 1
        out = _map(lambda g, m, v: step(g, m, v, t), grads, state.mu, state.nu)
        if isinstance(grads, np.ndarray):
            upd, mu, nu = out
        else:
            upd, mu, nu = (type(grads)(*parts) for parts in zip(*out))
        return upd, AdamState(count=t, mu=mu, nu=nu)

    return Optimizer(init, update)


def from_config(config: Config) -> Optimizer:
    """The optimizer a Config names, with its hyperparameters."""
    if config.optimizer == "signgd":
        return sign_gd(config.lr)
    if config.optimizer == "adam":
        return adam(config.lr, config.beta1, config.beta2, config.eps)
    return gd(config.lr)
