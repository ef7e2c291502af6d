"""The fast kernel: the dynamics of the dense reference on the active coordinates only.

Why it is exact (spec section 5): every gradient row is a combination of the training
patches, so only the coordinates of U = {coordinate 1} + the training supports ever move.
The kernel keeps the weights there (``support``), in one of two layouts (``layouts``): per
(sample, row) running sums for an optimizer that declares its homogeneity, per coordinate
for any other entrywise rule. A step (``step``) is the forward pass by token role and the
gradient coefficients in the spec's factors; the test set (``testset``) is a frozen part
computed once plus a sparse product with the layout's state; records are compact
(``records``).

Learning rates: an optimizer that declares ``proportional_to_lr`` runs at lr = 1 and the
kernel multiplies by each replica's lr; ``(-1 * x) * lr == (-lr) * x`` exactly, so replicas
that differ in lr (``vary``) are bit-identical to their runs alone. The tokens are handled
by role (1 = signal y_i mu, 2 = noise xi_i): the network has no positional information
(E4), so the position of the signal token changes nothing.

Decoupled weight decay (E22b, W <- a W + update with a = 1 - lr wd): the layout multiplies
its state by each replica's a before adding the update (``layouts``), and every weight's
init enters as c_t W(0) with c_t = a^t, one scalar per replica: the frozen weights off U,
the init parts of P (per-sample layout), v(0) and the value rows' init, and the test set's
frozen parts (``testset.evaluate``). So the cost stays independent of d.
"""

from __future__ import annotations

import numpy as np

from ...data import make_data
from ...optim import decay_factor, from_config
from ...result import Result
from ...rng import init_key
from ...sparse import SparseParams
from .. import State, check_batch, log_form_for
from . import records
from .layouts import CoordinateLayout, SampleLayout
from .moments import MomentLayout
from .exact import exact_coefficients, log_attention
from .step import Constants, coefficients, decayed_values, forward
from .support import rows_of, support_of
from .testset import build_test_set, evaluate

__all__ = ["FastKernel", "LAYOUTS"]

LAYOUTS = ("sample", "coordinate", "moments")


class FastKernel:
    """The kernel interface of ``signsim.kernels`` for a batch of replicas (leading axis R)."""

    deferred = ("train_loss", "train_error", "log_train_loss")  # from the margins, by result()
    errstate = {"over": "ignore"}  # sigmoids: e^x = inf gives the right limit 0

    def __init__(self, configs: list, names: tuple, layout: str | None = None):
        config = configs[0]
        opt = from_config(config)
        if not opt.entrywise:
            raise ValueError(f"The optimizer {config.optimizer!r} declares entrywise=False: "
                             "the fast kernel keeps shared coordinates and the value rows in "
                             "a form only an entrywise rule updates exactly; use "
                             "kernel='dense'.")
        check_batch(configs)
        self.configs, self.names = configs, names
        self.R = self.replicas = len(configs)
        self.rows = rows = rows_of(config.m_k)
        self.keys = [init_key(c.seed) for c in configs]
        self.data = [make_data(c) for c in configs]  # each replica its own seed and sigma_p
        self.supports = [support_of(c, train, k)
                         for c, (train, _), k in zip(configs, self.data, self.keys)]
        # (R,) the factors 1 - lr wd of decoupled weight decay (E22b); None: no decay
        self.decay = _decay_factors(opt, configs)
        self.layout = self._layout(opt, layout)
        lr = np.array([c.lr for c in configs])
        self.lr = lr if opt.proportional_to_lr else np.ones(self.R)
        self.opt = from_config(config.replace(lr=1.0)) if opt.proportional_to_lr else opt
        self.log_form = log_form_for(self.opt, config)  # None: the plain float64 formulas
        if isinstance(self.layout, MomentLayout):  # the rule's moments per (sample, row)
            self.opt = self.layout.optimizer(self.opt)
        y = np.stack([x.y for x in self.supports])
        self.k = Constants(y=y, neg_y=-y, y3=y[:, :, None], neg_y3=-y[:, :, None],
                           y_rows=np.repeat(y[:, :, None], rows, axis=2),
                           v0n=np.stack([x.v0n for x in self.supports]),
                           v0s=np.array([x.v0s for x in self.supports]), m_k=config.m_k,
                           n=config.n, m_v=config.m_v, mu=config.mu_norm)
        self.lrB = None
        if isinstance(self.layout, SampleLayout):  # (R, n, rows), at full shape as y_rows
            self.lrB = np.repeat(self.lr[:, None, None] * self.layout.B[:, :, None], rows, axis=2)
        if self.log_form is not None:  # log 0 = -inf is expected in exact arithmetic; a
            # NaN (from weights that overflowed) is reported by the loop's scan instead
            self.errstate = {"over": "ignore", "divide": "ignore", "invalid": "ignore"}
        shape = (self.R, config.n, config.m_k)
        self._DK, self._aEQ = np.empty(shape), np.empty(shape)
        self.test = None
        if "test_loss" in names or "test_error" in names:
            self.test = build_test_set(configs, [d[1] for d in self.data], self.keys,
                                       self.supports, self.layout)

    def _layout(self, opt, layout):
        """The layout the optimizer's declarations allow (``layout`` forces one, for tests)."""
        if layout not in (None,) + LAYOUTS:
            raise ValueError(f"The 'layout' parameter must be one of {list(LAYOUTS)} or None. "
                             f"Got {layout!r} instead.")
        if layout == "sample" and opt.homogeneity is None:
            raise ValueError(f"The 'layout' parameter can be 'sample' only for an optimizer "
                             f"that declares its homogeneity; {self.configs[0].optimizer!r} "
                             "declares none.")
        # moments per (sample, row) for a rule that declares them, in plain float64 only
        moments = opt.moments if log_form_for(opt, self.configs[0]) is None else None
        if layout == "moments" and moments is None:
            raise ValueError("The 'layout' parameter can be 'moments' only for an optimizer "
                             "that declares its moments, in plain float64 arithmetic; "
                             f"{self.configs[0].optimizer!r} does not here.")
        if layout == "moments" or (layout is None and opt.homogeneity is None
                                   and moments is not None):
            return MomentLayout(self.supports, moments, self.decay)
        if layout == "coordinate" or opt.homogeneity is None:
            return CoordinateLayout(self.supports, self.decay)
        return SampleLayout(self.supports, opt.homogeneity, self.decay)

    def _state(self, t: int, params, opt_state) -> State:
        """The State at W^(t) (run inside ``np.errstate(**self.errstate)``: the loop's)."""
        c = self._init_scale(t)
        fw = forward(self.k, self.layout.inner(params, self.lrB, c), params.sig, c)
        return State(t, params, opt_state, fw)

    def _init_scale(self, t):
        """(R,) c_t = (1 - lr wd)^t, the factor of every weight's init at step t under
        decoupled weight decay (E22b): the frozen weights off U are c_t W(0); None without
        weight decay. A function of t alone, so a resumed run computes the same bits."""
        return None if self.decay is None else self.decay ** t

    def init(self) -> State:
        params = self.layout.params
        opt_init = self.opt.init if self.log_form is None else self.log_form.init
        return self._state(0, params, opt_init(params))

    def restore(self, step: int, params, opt_state) -> State:
        """The State of a checkpoint (its forward pass recomputed: the same bits)."""
        return self._state(step, params, opt_state)

    def step(self, state: State) -> State:
        if self.log_form is not None:
            return self._log_step(state)
        C = np.empty((self.R, self.configs[0].n, self.rows))  # fresh: an optimizer may keep g
        grad_sig = np.empty((self.R, self.rows))
        coefficients(self.k, state.forward, C, grad_sig, self._DK, self._aEQ)
        updates, opt_state = self.opt.update(self.layout.gradients(C, grad_sig), state.opt_state)
        return self._state(state.step + 1, self.layout.apply(state.params, updates, self.lr),
                           opt_state)

    def _log_step(self, state: State) -> State:
        """A step in exact arithmetic: the coefficients and gradients in (sign, log) form."""
        fw = state.forward
        c = exact_coefficients(self.k, fw, self._log_attention(fw))
        signs, logs = self.layout.log_gradients(c, self.log_form.magnitudes)
        updates, opt_state = self.log_form.update(signs, logs, state.opt_state)
        return self._state(state.step + 1, self.layout.apply(state.params, updates, self.lr),
                           opt_state)

    _log_S_of = (None, None)  # (an Attention, its log_attention)

    def _log_attention(self, fw):
        """``exact.log_attention`` of ``fw``, once per forward pass: the records of step t
        and the step from t read the same one."""
        if self._log_S_of[0] is not fw.at:
            self._log_S_of = (fw.at, log_attention(fw.at))
        return self._log_S_of[1]

    def observe(self, state: State, out: dict) -> None:
        log_S = self._log_attention(state.forward) if "log_attention" in out else None
        records.observe(out, self.k.y_rows, state.forward, log_S)

    def test_metrics(self, state: State):
        fw = state.forward
        return evaluate(self.test, self.layout.state_columns(state.params, self.lr),
                        np.ascontiguousarray(fw.qs), np.ascontiguousarray(fw.ks), fw.vs,
                        self._init_scale(state.step))

    def storage(self) -> dict:
        return records.storage(self.names, self.configs[0], self.rows)

    def quantities_of(self, stored: str) -> str:
        """The recorded quantities a stored name holds (for messages)."""
        return records.QUANTITIES_OF.get(stored, stored)

    def result(self, init: State, final: State, arrays: dict, steps, test_steps) -> Result:
        """The batch Result (replica axis first everywhere)."""
        P0V = np.stack([x.P0V for x in self.supports])
        yP0V, S0V = self.k.y[:, None, None, :] * P0V, np.stack([x.S0V for x in self.supports])
        products = arrays.get("noise_products"), arrays.get("signal_products")
        history = records.history(arrays, self.names, self.configs[0].m_k, yP0V, S0V)
        if self.decay is not None:  # the value rows' init decays too (E22b)
            history = decayed_values(history, yP0V, S0V, *products,
                                     self.decay[:, None] ** np.asarray(steps)[None, :])
        return Result(configs=tuple(self.configs), steps=steps, test_steps=test_steps,
                      history=history, params=self._weights(final), init_params=self._weights(init),
                      dataset=[d[0] for d in self.data], test_dataset=[d[1] for d in self.data])

    def _weights(self, state: State) -> SparseParams:
        """Weights on U of every replica, one column per coordinate (padded with -1)."""
        c = self.configs[0]
        m_k, R = c.m_k, self.R
        u = max(len(x.coords) for x in self.supports)
        coords = np.full((R, u), -1, dtype=np.int64)
        WQK = np.zeros((R, 2 * m_k, u))
        WV = np.zeros((R, 2, c.m_v, u))
        scale = self._init_scale(state.step)
        init = np.ones(R) if scale is None else scale
        for r, x in enumerate(self.supports):
            k = len(x.coords)
            W = self.layout.weights_on_U(state.params, r, x, self.lr[r], init[r])
            coords[r, :k] = x.coords
            WQK[r, :, :k] = W[:2 * m_k]
            W0V = x.W0V if scale is None else x.W0V * scale[r]
            WV[r, :, :, :k] = W0V + W[2 * m_k:, None, :]  # c_t w_{V,j,r}(0) + Delta_j
        return SparseParams(coords=coords, W_Q_active=WQK[:, :m_k], W_K_active=WQK[:, m_k:],
                            W_V_active=WV, keys=np.array(self.keys, dtype=np.uint64), d=c.d,
                            sigma_0=np.array([x.sigma_0 for x in self.configs]),
                            **({} if scale is None else {"init_scale": scale}))


def _decay_factors(opt, configs: list):
    """(R,) each replica's 1 - lr wd (E22b, ``optim.decay_factor``), or None when no
    replica decays (then nothing is multiplied: the same bits as before weight decay)."""
    factors = np.array([decay_factor(opt, c) for c in configs])
    return None if np.all(factors == 1.0) else factors
