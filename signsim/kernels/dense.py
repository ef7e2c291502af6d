"""The dense reference kernel: (m, d) weights and every quantity from its definition, written
to be read next to docs/model.md (``model`` for E6-E15, ``grads`` for E16-E19), not to be fast.

``arithmetic="float32"`` (this kernel only) runs the same plain formulas on float32 arrays:
inputs, labels and weights (the init rounded to float32) are float32, so the forward pass,
E16-E19 and the optimizer's step are evaluated in float32, as a float32 program computes
them. The records of the weights (<w, mu>, <w, y_i xi_i>) are their inner products with the
data evaluated in float64 from the float32 weights; those of the forward pass (attention,
margins, l') are its float32 values; the test metrics are the float32 forward pass.
"""

from __future__ import annotations

import numpy as np

from ..data import Dataset, make_data
from ..grads import grad_W_K, grad_W_Q, grad_W_V, logit_grad
from ..loggrads import log_gradients, patches
from scipy.special import log_softmax

from ..model import (Forward, Params, forward, init_params, log_mean_loss, loss,
                     loss_derivative)
from ..optim import apply_updates, decay_factor, from_config
from ..result import Result
from ..tracker import History, shapes
from . import State, log_form_for

__all__ = ["DenseKernel", "reference_quantities", "attention_by_role", "dense_test_metrics"]


class DenseKernel:
    """The kernel interface of ``signsim.kernels`` for one Config (a batch of one)."""

    deferred = ()  # every stored name is written in the loop
    errstate = {}  # NumPy's defaults: the reference expects no overflow

    def __init__(self, config, names: tuple):
        self.config, self.names, self.replicas = config, names, 1
        self.train, self.test = make_data(config)
        self.dtype = np.float32 if config.arithmetic == "float32" else np.float64
        self.X = self.train.X.astype(self.dtype, copy=False)  # (n, d, L)
        self.y = self.train.y.astype(self.dtype, copy=False)  # (n,)
        self.opt = from_config(config)
        self.log_form = log_form_for(self.opt, config)  # None: the plain float64 formulas
        self.decay = decay_factor(self.opt, config)  # 1 - lr wd (E22b); exactly 1.0: none
        self.patches = patches(self.X) if self.log_form is not None else None

    def init(self) -> State:
        c = self.config
        params = init_params(c.seed, c.d, c.m_k, c.m_v, c.sigma_0)  # (E13)
        params = Params(*(w.astype(self.dtype, copy=False) for w in params))
        opt_init = self.opt.init if self.log_form is None else self.log_form.init
        return State(0, params, opt_init(params), forward(params, self.X))

    def restore(self, step: int, params, opt_state) -> State:
        """The State of a checkpoint (its forward pass recomputed: the same bits)."""
        return State(step, params, opt_state, forward(params, self.X))

    def step(self, state: State) -> State:
        fw, y = state.forward, self.y
        if self.log_form is not None:  # exact arithmetic: gradients in (sign, log) form
            signs, logs = log_gradients(state.params, fw, y, self.patches)
            updates, opt_state = self.log_form.update(signs, logs, state.opt_state)
        else:
            G = logit_grad(fw, y)  # (E16)
            grads = Params(grad_W_Q(fw, G, self.X), grad_W_K(fw, G, self.X),
                           grad_W_V(fw, y, self.X, self.config.m_v))  # (E17-E19)
            updates, opt_state = self.opt.update(grads, state.opt_state)
            if self.dtype == np.float32:
                _check_float32(updates, self.config.optimizer)
        params = apply_updates(self._decayed(state.params), updates)
        return State(state.step + 1, params, opt_state, forward(params, self.X))

    def _decayed(self, params: Params) -> Params:
        """W^(t-1) times the decoupled weight decay's factor 1 - lr wd (E22b), every
        weight, before the update (computed from W^(t-1)) is added."""
        if self.decay == 1.0:
            return params
        return Params(*(w * self.decay for w in params))

    def observe(self, state: State, out: dict) -> None:
        quantities = reference_quantities(state.params, state.forward, self.train)
        for name, view in out.items():
            view[0] = quantities[name]

    def test_metrics(self, state: State):
        loss_, error = dense_test_metrics(state.params, self.test, dtype=self.dtype)
        return np.array([loss_]), np.array([error])

    def quantities_of(self, stored: str) -> str:
        return stored  # stored as recorded

    def storage(self) -> dict:
        names = set(self.names)
        if names & {"test_loss", "test_error"}:  # evaluated together
            names |= {"test_loss", "test_error"}
        return {k: v for k, v in shapes(self.config).items() if k in names}

    def result(self, init: State, final: State, arrays: dict, steps, test_steps) -> Result:
        return Result(configs=(self.config,), steps=steps, test_steps=test_steps,
                      history=History({k: v[0] for k, v in arrays.items() if k in self.names}),
                      params=_float64(final.params), init_params=_float64(init.params),
                      dataset=self.train,
                      test_dataset=self.test, batched=False)


def _float64(params: Params) -> Params:
    """float64 weights (exact copies of float32 ones): what a Result holds and saves."""
    return Params(*(w.astype(np.float64, copy=False) for w in params))


def _check_float32(updates: Params, optimizer: str) -> None:
    """Refuse an optimizer whose step from float32 gradients is not float32 (it would
    not be the float32 run that ``arithmetic="float32"`` promises)."""
    wrong = sorted({str(u.dtype) for u in updates if u.dtype != np.float32})
    if wrong:
        raise ValueError(
            f"The optimizer {optimizer!r} returned {', '.join(wrong)} updates from float32 "
            "gradients, so arithmetic='float32' cannot be honoured: its rule must keep "
            "float32 arrays float32 (signgd, adam and gd do). Use arithmetic='float64' or "
            "'exact' for it.")


def attention_by_role(S: np.ndarray, signal_position: np.ndarray) -> np.ndarray:
    """S_{i,la} rearranged by role, [[s11, s12], [s21, s22]] with 1 = signal, 2 = noise."""
    rows = np.arange(len(signal_position))
    roles = np.stack([signal_position, 1 - signal_position], axis=1)  # (n, 2): token of role
    return S[rows[:, None, None], roles[:, :, None], roles[:, None, :]]


def reference_quantities(params: Params, fw: Forward, data: Dataset) -> dict:
    """Every training quantity of spec section 6 from dense weights (the reference); on real
    data ``data.mu`` is the label-signed mean signal token (``data.TokenDataset.mu``)."""
    mu = data.mu
    yxi = data.y[:, None] * data.xi  # (n, d): y_i xi_i
    margin = data.y * fw.f
    return {
        "query_signal": params.W_Q @ mu,
        "key_signal": params.W_K @ mu,
        "query_noise": params.W_Q @ yxi.T,
        "key_noise": params.W_K @ yxi.T,
        "value_signal": params.W_V @ mu,
        "value_noise": params.W_V @ yxi.T,
        "mean_value_signal": fw.v @ mu,
        "mean_value_noise": yxi @ fw.v,
        "attention": attention_by_role(fw.S, data.signal_position),
        "log_attention": attention_by_role(log_softmax(fw.z, axis=-1), data.signal_position),
        "margin": margin,
        "loss_derivative": loss_derivative(margin),
        "train_loss": loss(margin).mean(),
        "train_error": np.mean(~(margin > 0)),  # NaN counts as an error
        "log_train_loss": log_mean_loss(margin),
    }


def dense_test_metrics(params: Params, test: Dataset, chunk: int = 100,
                       dtype=np.float64) -> tuple[float, float]:
    """Test loss and error with dense weights, over the test set in chunks, the forward
    pass evaluated in ``dtype`` (float32 for ``arithmetic="float32"``)."""
    margins = []
    for start in range(0, test.n, chunk):
        part = _subset(test, slice(start, start + chunk))
        X = part.X.astype(dtype, copy=False)
        margins.append(part.y.astype(dtype, copy=False) * forward(params, X).f)
    margin = np.concatenate(margins)
    return float(loss(margin).mean()), float(np.mean(~(margin > 0)))


def _subset(data: Dataset, rows: slice) -> Dataset:
    return data.subset(rows)  # synthetic or real (signsim.data): the same dense views
