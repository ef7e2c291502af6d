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
``decoupled_decay`` (bool, default False)
    The kernels may apply ``Config.weight_decay`` to this rule the decoupled way (E22b):
    W <- (1 - lr wd) W + update, every weight, on U and off it, after the update was
    computed from W^(t-1) (``decay_factor``). Every built-in rule declares it (AdamW is
    ``adam`` with ``weight_decay > 0``); a rule registered from outside that does not is
    refused a nonzero weight decay (it might decay its weights itself).
``moments`` (Moments or None)
    The state is, per coordinate, m an EMA of g (rate beta1; beta1 = 0: m = g) and v an
    EMA of g^2 (rate beta2), and the update is computed from (m, v, t) alone, in the form
    x A / (|x| B + eps) with (A, B) = ``scales(M, V, t)`` whenever m = x M and v = x^2 V
    (the moments of a gradient history C x, per unit of C). The fast kernel then keeps
    M, V per (sample, row) instead of m, v per coordinate (``kernels.fast.moments``).
    Declared by Adam and RMSProp for eps > 0.

The built-in rules (docs/optimizers.md): ``signgd`` (E20), ``signum`` (E20a), ``lion``
(E20b), ``adam`` (E21), ``rmsprop`` (E21a), ``gd`` (E22), ``normalized_gd`` (E22a).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .logspace import signed_add, signed_sum

__all__ = ["Optimizer", "LogForm", "Moments", "AdamLogState", "ADAM_FLOAT64_EPS", "SignGDState",
           "AdamState", "GDState", "MomentumState", "MomentumLogState", "RMSPropState",
           "RMSPropLogState", "sign_gd", "adam", "gd", "signum", "lion", "rmsprop",
           "normalized_gd", "apply_updates", "decay_factor", "from_config", "register",
           "unregister", "available", "registration"]


class LogForm(NamedTuple):
    """A rule on gradients in sign and log-magnitude form (``log_form`` above).
    ``magnitudes=False`` declares that ``update`` reads only the signs: the kernels may
    then pass ``logs=None``."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]  # (signs, logs, state)
    magnitudes: bool = True


class Moments(NamedTuple):
    """Moments of g and g^2 combined entrywise (``moments`` above): with m = x M and
    v = x^2 V, the update is x A / (|x| B + eps), (A, B) = scales(M, V, t)."""

    beta1: float  # m <- beta1 m + (1 - beta1) g
    beta2: float  # v <- beta2 v + (1 - beta2) g^2
    eps: float  # > 0
    scales: Callable[[Any, Any, int], tuple[Any, Any]]


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
    decoupled_decay: bool = False
    moments: Moments | None = None


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
                     label="SignGD", log_form=LogForm(init, log_update, magnitudes=False),
                     decoupled_decay=True)


def gd(lr: float) -> Optimizer:
    """Gradient descent (E22): W <- W - lr * g."""

    def init(params):
        return GDState(count=0)

    def update(grads, state):
        return _map(lambda g: -lr * g, grads), GDState(state.count + 1)

    return Optimizer(init, update, homogeneity=1.0, proportional_to_lr=True, label="GD",
                     float64_exact=True, decoupled_decay=True)


def adam(lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam with PyTorch semantics (E21), t = 1, 2, ...::

        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        W <- W - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    With eps = 0 a coordinate whose denominator is 0 has seen only zero gradients, so 0/0
    counts as 0; a nonzero m over a zero denominator (beta2 = 0 < beta1, or g^2 underflowing)
    raises FloatingPointError instead of producing inf. eps does not scale with g, so Adam
    declares no homogeneity (the fast kernel keeps its weights per coordinate); its moments
    factorise on a coordinate one sample holds (``moments``, declared for eps > 0).
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
                     float64_exact=eps >= ADAM_FLOAT64_EPS, decoupled_decay=True,
                     moments=_adam_moments(lr, beta1, beta2, eps))


def _adam_moments(lr: float, beta1: float, beta2: float, eps: float):
    """Adam's ``Moments``: with m = x M, v = x^2 V, E21's update is
    -lr x (M / c1) / (|x| sqrt(V / c2) + eps), c_j = 1 - beta_j^t. None for eps = 0."""

    def scales(M, V, t):
        return -lr * (M / (1.0 - beta1**t)), np.sqrt(V / (1.0 - beta2**t))

    return Moments(beta1, beta2, eps, scales) if eps > 0.0 else None


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


# ---------------------------------------------------------------- between SignGD and Adam


class MomentumState(NamedTuple):
    count: int
    mu: Any  # the momentum buffer m, same structure as params


class MomentumLogState(NamedTuple):
    """A momentum buffer in sign and log-magnitude form (the log forms of Signum, Lion)."""

    count: int
    mu_sign: Any  # sign(m)
    mu_log: Any  # log|m| (-inf where m = 0)


class RMSPropState(NamedTuple):
    count: int
    nu: Any  # the running mean v of g^2


class RMSPropLogState(NamedTuple):
    count: int
    nu_log: Any  # log v (-inf where v = 0)


def _split_leaves(out, like):
    """The per-leaf tuples ``_map`` returned, as one tree per component."""
    if isinstance(like, np.ndarray):
        return out
    return tuple(type(like)(*parts) for parts in zip(*out))


def _empty_log(params):
    """(zero signs, -inf logs) of the structure of ``params``: a buffer that is 0."""
    return _map(np.zeros_like, params), _map(lambda p: np.full_like(p, -np.inf), params)


def _log_ema(lb: float, lc: float):
    """(sign, log) of b m + c g from (sign, log) pairs, with lb = log b, lc = log c: an EMA
    whose sign no underflow decides (``logspace.signed_add``)."""
    return lambda ms, ml, gs, gl: signed_add(ms, ml + lb, gs, gl + lc)


def signum(lr: float, momentum: float = 0.9) -> Optimizer:
    """Signum (Bernstein et al., signSGD, 2018): the sign of a momentum buffer (E20a)::

        m <- momentum m + (1 - momentum) g        (m = 0 before step 1)
        W <- W - lr sign(m)

    The sign of the buffer, not a buffer of signs. momentum = 0 is SignGD (m = g). m is
    linear in the gradient history, so the step is homogeneous of degree 0. The log form
    keeps m as (sign m, log|m|): a gradient or buffer below the float64 range still
    decides the sign it decides in real arithmetic.
    """
    b, c = momentum, 1.0 - momentum
    ema = _log_ema(_log(b), _log(c))

    def init(params):
        return MomentumState(0, _map(np.zeros_like, params))

    def update(grads, state):
        mu = _map(lambda g, m: b * m + c * g, grads, state.mu)
        return _map(lambda m: -lr * np.sign(m), mu), MomentumState(state.count + 1, mu)

    def log_init(params):
        return MomentumLogState(0, *_empty_log(params))

    def log_update(signs, logs, state):
        ms, ml = _split_leaves(_map(lambda gs, gl, s, lg: ema(s, lg, gs, gl), signs, logs,
                                    state.mu_sign, state.mu_log), signs)
        return _map(lambda s: -lr * s, ms), MomentumLogState(state.count + 1, ms, ml)

    return Optimizer(init, update, homogeneity=0.0, proportional_to_lr=True, sign_based=True,
                     label="Signum", log_form=LogForm(log_init, log_update),
                     decoupled_decay=True)


def lion(lr: float, beta1: float = 0.9, beta2: float = 0.99) -> Optimizer:
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023) (E20b)::

        c <- beta1 m + (1 - beta1) g
        W <- W - lr sign(c)
        m <- beta2 m + (1 - beta2) g              (m = 0 before step 1)

    The step direction interpolates with beta1, the buffer decays with beta2 (defaults
    0.9 and 0.99, the paper's, not Adam's). beta1 = 0 is SignGD. c and m are linear in
    the gradient history: homogeneous of degree 0. The log form keeps m and c in sign and
    log-magnitude form.
    """
    b1, c1, b2, c2 = beta1, 1.0 - beta1, beta2, 1.0 - beta2
    direction, buffer = _log_ema(_log(b1), _log(c1)), _log_ema(_log(b2), _log(c2))

    def init(params):
        return MomentumState(0, _map(np.zeros_like, params))

    def update(grads, state):
        upd = _map(lambda g, m: -lr * np.sign(b1 * m + c1 * g), grads, state.mu)
        mu = _map(lambda g, m: b2 * m + c2 * g, grads, state.mu)
        return upd, MomentumState(state.count + 1, mu)

    def log_init(params):
        return MomentumLogState(0, *_empty_log(params))

    def log_update(signs, logs, state):
        m = (state.mu_sign, state.mu_log)
        upd = _map(lambda gs, gl, s, lg: -lr * direction(s, lg, gs, gl)[0], signs, logs, *m)
        ms, ml = _split_leaves(_map(lambda gs, gl, s, lg: buffer(s, lg, gs, gl), signs, logs,
                                    *m), signs)
        return upd, MomentumLogState(state.count + 1, ms, ml)

    return Optimizer(init, update, homogeneity=0.0, proportional_to_lr=True, sign_based=True,
                     label="Lion", log_form=LogForm(log_init, log_update),
                     decoupled_decay=True)


def rmsprop(lr: float, alpha: float = 0.99, eps: float = 1e-8) -> Optimizer:
    """RMSProp with PyTorch semantics (``torch.optim.RMSprop``, not centered, no momentum)
    (E21a)::

        v <- alpha v + (1 - alpha) g^2            (v = 0 before step 1)
        W <- W - lr g / (sqrt(v) + eps)

    eps is added after the square root, as PyTorch does (and Adam, E21); there is no bias
    correction. So it is Adam with beta1 = 0 and beta2 = alpha without Adam's division of
    v by 1 - beta2^t. With eps = 0, 0/0 counts as 0 and a nonzero g over v = 0 (g^2
    underflowing in float64) raises FloatingPointError. Like Adam it is float64-exact for
    eps >= ADAM_FLOAT64_EPS (docs/model.md section 5) and has a log form below.
    """
    la, lc = _log(alpha), _log(1.0 - alpha)

    def init(params):
        return RMSPropState(0, _map(np.zeros_like, params))

    def step(g, v, t):
        v = alpha * v + (1.0 - alpha) * (g * g)
        denom = np.sqrt(v) + eps
        zero = denom == 0.0
        if eps == 0.0 and np.any(zero & (g != 0.0)):
            raise FloatingPointError(
                f"RMSProp with eps=0 met a nonzero gradient over a zero second moment at "
                f"step {t} (g^2 underflowed); use eps > 0 or arithmetic='exact'.")
        return -lr * np.divide(g, denom, out=np.zeros_like(g), where=~zero), v

    def update(grads, state):
        t = state.count + 1
        upd, nu = _split_leaves(_map(lambda g, v: step(g, v, t), grads, state.nu), grads)
        return upd, RMSPropState(t, nu)

    def log_init(params):
        return RMSPropLogState(0, _empty_log(params)[1])

    def log_step(gs, gl, vl):
        vl = np.logaddexp(vl + la, 2.0 * gl + lc)  # > -inf wherever g != 0 (alpha < 1)
        log_denom = np.logaddexp(0.5 * vl, _log(eps)) if eps > 0.0 else 0.5 * vl
        moving = gs != 0.0
        ratio = np.exp(np.where(moving, gl - np.where(moving, log_denom, 0.0), -np.inf))
        return -lr * (gs * ratio), vl

    def log_update(signs, logs, state):
        upd, nu = _split_leaves(_map(log_step, signs, logs, state.nu_log), signs)
        return upd, RMSPropLogState(state.count + 1, nu)

    return Optimizer(init, update, proportional_to_lr=True, sign_based=True, label="RMSProp",
                     log_form=LogForm(log_init, log_update),
                     float64_exact=eps >= ADAM_FLOAT64_EPS, decoupled_decay=True,
                     moments=_rmsprop_moments(lr, alpha, eps))


def _rmsprop_moments(lr: float, alpha: float, eps: float):
    """RMSProp's ``Moments`` (beta1 = 0: m = g): with g = x M, v = x^2 V, E21a's update
    is -lr x M / (|x| sqrt(V) + eps). None for eps = 0."""

    def scales(M, V, t):
        return -lr * M, np.sqrt(V)

    return Moments(0.0, alpha, eps, scales) if eps > 0.0 else None


def normalized_gd(lr: float) -> Optimizer:
    """Normalized gradient descent, block by block (E22a)::

        W_B <- W_B - lr g_B / ||g_B||_F           for each block B: W_Q, W_K, W_V

    ||.||_F is the Frobenius norm of the whole block (for W_V: both heads, every value
    row); a block whose gradient is 0 stays put (0/0 counts as 0). Every moving block
    moves by exactly lr in Frobenius norm. The norm couples a block's coordinates, so the
    rule is not entrywise (``entrywise=False``: the dense reference runs it). The float64
    form divides by the largest |g| first (no overflow or underflow of g^2); the log form
    takes the norm from log|g| (``logspace.signed_sum``), so a block whose every gradient
    entry is below the float64 range still moves by lr.
    """

    def init(params):
        return GDState(count=0)

    def step(g):
        top = np.max(np.abs(g))
        if top == 0.0:
            return np.zeros_like(g)
        unit = g / top
        return -lr * (unit / np.sqrt(np.sum(unit * unit)))

    def update(grads, state):
        return _map(step, grads), GDState(state.count + 1)

    def log_step(gs, gl):
        top = np.max(gl)  # log of the largest |g|: divided out first, as in float64
        if top == -np.inf:
            return np.zeros_like(gl)
        rel = gl - top  # log(|g| / max|g|) <= 0, without the size of the logs
        _, log_sq = signed_sum(np.abs(gs).ravel(), 2.0 * rel.ravel())  # log sum (g/max)^2
        return -lr * (gs * np.exp(rel - 0.5 * log_sq))

    def log_update(signs, logs, state):
        return _map(log_step, signs, logs), GDState(state.count + 1)

    return Optimizer(init, update, proportional_to_lr=True, label="normalized GD",
                     entrywise=False, log_form=LogForm(init, log_update), decoupled_decay=True)


def decay_factor(opt: Optimizer, config) -> float:
    """The factor 1 - lr wd of decoupled weight decay (E22b, ``wd = config.weight_decay``):
    each step W <- factor W + update, every weight. Exactly 1.0 without weight decay.

    Raises
    ------
    ValueError
        If weight_decay > 0 and the optimizer does not declare ``decoupled_decay``, or if
        lr * weight_decay >= 1 (a factor <= 0 would erase or flip every weight).
    """
    wd = config.weight_decay
    if wd == 0.0:
        return 1.0
    if not opt.decoupled_decay:
        raise ValueError(f"The optimizer {config.optimizer!r} does not declare "
                         "decoupled_decay, so the 'weight_decay' parameter must be 0 for it "
                         f"(signsim.optim docstring). Got weight_decay={wd!r}.")
    factor = 1.0 - config.lr * wd
    if not factor > 0.0:
        raise ValueError("The 'weight_decay' parameter times 'lr' must be below 1 (the "
                         f"decay factor 1 - lr weight_decay in (0, 1]). Got weight_decay={wd!r}"
                         f" with lr={config.lr!r}.")
    return factor


# ---------------------------------------------------------------- the registry

_REGISTRY: dict[str, Callable[[Any], Optimizer]] = {}
_BUILT_IN = ("signgd", "adam", "gd", "signum", "lion", "rmsprop", "normalized_gd")


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
register("signum", lambda c: signum(c.lr, c.momentum))
register("lion", lambda c: lion(c.lr, c.lion_beta1, c.lion_beta2))
register("rmsprop", lambda c: rmsprop(c.lr, c.rmsprop_alpha, c.eps))
register("normalized_gd", lambda c: normalized_gd(c.lr))
