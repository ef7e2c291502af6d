"""Full-batch optimizers as pairs of pure functions (E20-E22), and the registry of them.

An optimizer is ``Optimizer(init, update, ...)``::

    state = opt.init(params)
    updates, state = opt.update(grads, state)   # step t = state.count after the call
    params = apply_updates(params, updates)     # W^(t) = W^(t-1) + updates

``params`` and ``grads`` are one ndarray or a NamedTuple of ndarrays (such as ``Params``);
every rule acts **entrywise**: the update of a coordinate depends only on that coordinate's
own gradients so far (and on the hyperparameters), on all blocks at once, from the same
W^(t-1). States are immutable NamedTuples; nothing is changed in place.

The registry maps a name to a factory ``factory(config) -> Optimizer``; ``Config.optimizer``
accepts any registered name, and ``from_config`` builds the optimizer a Config names::

    signsim.optim.register("half_sign", lambda c: Optimizer(init, update))
    signsim.run("fig1", optimizer="half_sign")

What the fast kernel may rely on is *declared* by the optimizer, never read from its name
(``signsim.kernels.fast``):

``homogeneity`` (float or None)
    p such that scaling a coordinate's whole gradient history by any real c != 0 scales its
    updates by sign(c) |c|^p, whatever the history: 0 for a sign step (SignGD, and Signum's
    sign of a momentum), 1 for a rule linear in the gradients (GD, heavy-ball momentum).
    The fast kernel then keeps one running sum per (sample, row) instead of a weight per
    coordinate. None (the default) declares nothing: the general per-coordinate layout,
    exact for any entrywise rule, is used.
``proportional_to_lr`` (bool)
    The update is ``lr`` times what the same rule gives at ``lr = 1`` (same gradients, same
    state). Then the kernel runs the rule at lr = 1 and scales by each replica's lr, so that
    replicas of one batch may differ in lr. False (the default): the rule runs at
    ``config.lr`` and a batch cannot vary lr.
``sign_based`` (bool)
    Informational, read by no kernel: the rule is a sign method or close to one (Adam), the
    regime of the paper's four stages (``signsim.theory.regime``).
``label`` (str)
    How figures name it (mathtext allowed).
``log_form`` (LogForm or None)
    The rule on gradients given in sign and log-magnitude form (``signsim.logspace``):
    ``LogForm(init, update)`` with ``update(signs, logs, state) -> (updates, state)``, where
    the gradient is signs * exp(logs) leaf by leaf. Under ``Config.arithmetic = "exact"``
    the kernels hand it gradients no underflow has touched (a sign step then moves by
    +-lr wherever the real gradient is nonzero, E20).
``float64_exact`` (bool)
    The rule's plain float64 update already is the exact one to rounding, up to steps
    below the float range (docs/model.md, "Exact arithmetic"): GD, and Adam with
    eps >= ``ADAM_FLOAT64_EPS``. In exact arithmetic a rule that declares neither this nor
    a ``log_form`` is refused (``signsim.kernels.log_form_for``).
``entrywise`` (bool, default True)
    The contract above. A rule that is not entrywise (a norm over a block, clipping, a
    factored second moment) must say ``entrywise=False``: the fast kernel refuses it (its
    layouts are exact for entrywise rules only) and the dense reference runs it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .logspace import signed_add

__all__ = ["Optimizer", "LogForm", "AdamLogState", "ADAM_FLOAT64_EPS", "SignGDState",
           "AdamState", "GDState", "sign_gd", "adam", "gd", "apply_updates", "from_config", "register", "unregister", "available", "registration"]


class LogForm(NamedTuple):
    """A rule on gradients in sign and log-magnitude form (``log_form`` above).
    ``magnitudes=False`` declares that ``update`` reads only the signs: the kernels may
    then pass ``logs=None``."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]  # (signs, logs, state)
    magnitudes: bool = True


class Optimizer(NamedTuple):
    init: Callable[[Any], Any]
    update: Callable[[Any, Any], tuple[Any, Any]]
    homogeneity: float | None = None
    proportional_to_lr: bool = False
    sign_based: bool = False
    label: str = ""
    entrywise: bool = True
    log_form: LogForm | None = None
    float64_exact: bool = False


class SignGDState(NamedTuple):
    count: int


class GDState(NamedTuple):
    count: int


class AdamState(NamedTuple):
    count: int  # t, the index of the last step taken
    mu: Any  # first moment m, same structure as params
    nu: Any  # second moment v


class AdamLogState(NamedTuple):
    """Adam's moments in sign and log-magnitude form (``adam``'s log form)."""

    count: int
    mu_sign: Any  # sign(m)
    mu_log: Any  # log|m| (-inf where m = 0)
    nu_log: Any  # log v


# Adam with eps at least this is exact in float64 (docs/model.md, "Exact arithmetic"): an
# underflow changes m or v by less than about 2^-1022 times the other factors of the
# gradient, which moves the update by less than lr 1e-200 or so, far below the rounding of
# W + update; below it the log form is used.
ADAM_FLOAT64_EPS = 1e-100


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

    def log_update(signs, logs, state):  # only the sign of the real gradient matters
        return update(signs, state)

    return Optimizer(init, update, homogeneity=0.0, proportional_to_lr=True, sign_based=True,
                     label="SignGD", log_form=LogForm(init, log_update, magnitudes=False))


def gd(lr: float) -> Optimizer:
    """Gradient descent (E22): W <- W - lr * g."""

    def init(params):
        return GDState(count=0)

    def update(grads, state):
        return _map(lambda g: -lr * g, grads), GDState(state.count + 1)

    return Optimizer(init, update, homogeneity=1.0, proportional_to_lr=True, label="GD",
                     float64_exact=True)


def adam(lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam with PyTorch semantics (E21), t = 1, 2, ...::

        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        W <- W - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    With eps = 0 a coordinate whose denominator is 0 has seen only zero gradients, so 0/0
    counts as 0; a nonzero m over a zero denominator (beta2 = 0 < beta1, or g^2 underflowing)
    raises FloatingPointError instead of producing inf. eps does not scale with g, so Adam
    declares no homogeneity (the fast kernel keeps its weights per coordinate).
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

    return Optimizer(init, update, proportional_to_lr=True, sign_based=True, label="Adam",
                     log_form=_adam_log_form(lr, beta1, beta2, eps),
                     float64_exact=eps >= ADAM_FLOAT64_EPS)


def _log(x: float) -> float:
    """log x for a hyperparameter in [0, 1]: -inf at 0."""
    return float(np.log(x)) if x > 0.0 else -np.inf


def _adam_log_form(lr: float, beta1: float, beta2: float, eps: float) -> LogForm:
    """Adam (E21) with g, m and v in sign and log-magnitude form::

        (sign m, log|m|) <- signed sum of beta1 m and (1 - beta1) g
        log v            <- logaddexp(log beta2 + log v, log(1 - beta2) + 2 log|g|)
        W <- W - lr sign(m) exp(log|m_hat| - log(sqrt(v_hat) + eps))

    The ratio m_hat / (sqrt(v_hat) + eps) is at most about 1 in size, so it is computed
    from logs without overflow, and no underflow of g, g^2 or m decides a step. With
    beta1 = beta2 = eps = 0 the ratio is exp(log|g| - 0.5 (2 log|g|)) = exp(0) = 1 exactly:
    SignGD's step. 0/0 (m = 0) counts as 0; a nonzero m over v = 0 (possible only with
    beta2 = 0 < beta1 and g = 0) raises FloatingPointError, as the float64 form does.
    """
    lb1, lc1, lb2, lc2 = _log(beta1), _log(1.0 - beta1), _log(beta2), _log(1.0 - beta2)

    def init(params):
        zero = _map(np.zeros_like, params)
        empty = _map(lambda p: np.full_like(p, -np.inf), params)
        return AdamLogState(count=0, mu_sign=zero, mu_log=empty, nu_log=empty)

    def step(gs, gl, ms, ml, vl, t):
        ms, ml = signed_add(ms, ml + lb1, gs, gl + lc1)
        vl = np.logaddexp(vl + lb2, 2.0 * gl + lc2)
        log_m_hat = ml - _log(1.0 - beta1**t)
        log_sqrt_v_hat = 0.5 * (vl - _log(1.0 - beta2**t))
        log_denom = np.logaddexp(log_sqrt_v_hat, _log(eps)) if eps > 0.0 else log_sqrt_v_hat
        moving = ms != 0.0
        if np.any(moving & np.isneginf(log_denom)):
            raise FloatingPointError(
                f"Adam with eps=0 met a nonzero first moment over a zero second moment at "
                f"step {t} (beta1={beta1}, beta2={beta2}); use eps > 0 or beta2 > 0.")
        ratio = np.exp(np.where(moving, log_m_hat - np.where(moving, log_denom, 0.0), -np.inf))
        return -lr * (ms * ratio), ms, ml, vl

    def update(signs, logs, state):
        t = state.count + 1
        out = _map(lambda *leaves: step(*leaves, t), signs, logs, state.mu_sign,
                   state.mu_log, state.nu_log)
        if isinstance(signs, np.ndarray):
            upd, ms, ml, vl = out
        else:
            upd, ms, ml, vl = (type(signs)(*parts) for parts in zip(*out))
        return upd, AdamLogState(t, ms, ml, vl)

    return LogForm(init, update)


# ---------------------------------------------------------------- the registry

_REGISTRY: dict[str, Callable[[Any], Optimizer]] = {}
_BUILT_IN = ("signgd", "adam", "gd")


def register(name: str, factory: Callable[[Any], Optimizer], *, replace: bool = False) -> None:
    """Make ``factory(config) -> Optimizer`` available as ``Config(optimizer=name)``.

    Parameters
    ----------
    name : str
        A new name (lower case letters, digits and ``_``); an existing one only with
        ``replace=True``, and never a built-in one.
    factory : callable
        Called with the run's Config (a batch calls it once, with replica 0's Config at
        ``lr = 1`` when the optimizer declares ``proportional_to_lr``).
    """
    if not isinstance(name, str) or not name or not all(
            ch.islower() or ch.isdigit() or ch == "_" for ch in name):
        raise ValueError("The 'name' parameter must be a non-empty str of lower case letters, "
                         f"digits and '_'. Got {name!r} instead.")
    if not callable(factory):
        raise TypeError(f"The 'factory' parameter must be callable (config -> Optimizer). "
                        f"Got {type(factory).__name__} instead.")
    if name in _BUILT_IN and name in _REGISTRY:
        raise ValueError(f"The optimizer {name!r} is built in and cannot be replaced.")
    if name in _REGISTRY and not replace:
        raise ValueError(f"An optimizer {name!r} is registered already; pass replace=True "
                         "to replace it.")
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    """Remove an optimizer registered with ``register`` (built-in ones stay)."""
    if name in _BUILT_IN:
        raise ValueError(f"The optimizer {name!r} is built in and cannot be removed.")
    if name not in _REGISTRY:
        raise ValueError(f"The 'name' parameter must be a registered optimizer, one of "
                         f"{list(available())}. Got {name!r} instead.")
    del _REGISTRY[name]


def registration(name: str):
    """(factory, built_in) of a registered optimizer (what a worker process needs to
    register it as well)."""
    if name not in _REGISTRY:
        raise ValueError(f"The 'name' parameter must be a registered optimizer, one of "
                         f"{list(available())}. Got {name!r} instead.")
    return _REGISTRY[name], name in _BUILT_IN


def available() -> tuple[str, ...]:
    """The registered optimizer names, built-in ones first."""
    return tuple(_REGISTRY)


def from_config(config) -> Optimizer:
    """The optimizer a Config names, with its hyperparameters."""
    if config.optimizer not in _REGISTRY:
        raise ValueError(f"The 'optimizer' parameter must be one of {list(available())}. "
                         f"Got {config.optimizer!r} instead.")
    opt = _REGISTRY[config.optimizer](config)
    if not isinstance(opt, Optimizer):
        raise TypeError(f"The factory registered as {config.optimizer!r} must return an "
                        f"Optimizer. Got {type(opt).__name__} instead.")
    return opt


register("signgd", lambda c: sign_gd(c.lr))
register("adam", lambda c: adam(c.lr, c.beta1, c.beta2, c.eps))
register("gd", lambda c: gd(c.lr))
