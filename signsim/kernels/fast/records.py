"""What the fast kernel records (spec section 6), in a compact form, and the History built
from it.

Six quantities are stored as two arrays: y_i <w_row, xi_i> (``noise_products``,
(n, rows)) and <w_row, mu> (``signal_products``, (rows,)) for the rows W_Q, W_K, Delta_+,
Delta_-. query/key noise and signal are views of them, and the value quantities follow from
w_{V,j,r}(t) = w_{V,j,r}(0) + Delta_j(t): one number per sample, step and head instead of
m_v (274 MB of 100 fig1 replicas). train_loss and train_error follow from the margins after
the loop.
"""

from __future__ import annotations

import numpy as np

from ...model import log_mean_loss
from ...tracker import Derived, History
from .exact import log_attention
from .testset import loss, mean_last

__all__ = ["storage", "observe", "history"]

_FROM_NOISE = ("query_noise", "key_noise", "value_noise")
_FROM_SIGNAL = ("query_signal", "key_signal", "value_signal")
QUANTITIES_OF = {"noise_products": ", ".join(_FROM_NOISE),
                 "signal_products": ", ".join(_FROM_SIGNAL)}  # what a compact record holds


def storage(names: tuple, config, rows: int) -> dict:
    """name -> record shape (one replica) of what to store for the asked ``names``."""
    n, out = config.n, {}
    if any(x in names for x in _FROM_NOISE):
        out["noise_products"] = (n, rows)
    if any(x in names for x in _FROM_SIGNAL):
        out["signal_products"] = (rows,)
    for name, shape in (("mean_value_signal", ()), ("mean_value_noise", (n,)),
                        ("attention", (n, 2, 2)), ("log_attention", (n, 2, 2)),
                        ("loss_derivative", (n,))):
        if name in names:
            out[name] = shape
    if {"margin", "train_loss", "train_error", "log_train_loss"} & set(names):
        out["margin"] = (n,)
    if "train_loss" in names or "train_error" in names:
        out["train_loss"] = out["train_error"] = ()
    if "log_train_loss" in names:
        out["log_train_loss"] = ()
    if "test_loss" in names or "test_error" in names:
        out["test_loss"] = out["test_error"] = ()
    return out


def observe(out: dict, y_rows: np.ndarray, fw, log_S: np.ndarray | None = None) -> None:
    """The records at the current step, written into ``out`` (views of one record, each
    with a leading replica axis) for the names it holds; ``log_S`` is
    ``log_attention(fw.at)`` if the caller has it."""
    if "noise_products" in out:
        np.multiply(y_rows, fw.P, out=out["noise_products"])
    if "signal_products" in out:
        out["signal_products"][...] = fw.sig
    if "mean_value_signal" in out:
        out["mean_value_signal"][...] = fw.vs
    if "mean_value_noise" in out:
        out["mean_value_noise"][...] = fw.yvn
    if "attention" in out:
        attention = out["attention"].reshape(fw.margin.shape + (4,))
        for k in range(4):  # four strided writes: faster than one copy of a moved axis
            attention[..., k] = fw.at.S[k]
    if "log_attention" in out:
        log_S = log_attention(fw.at) if log_S is None else log_S
        attention = out["log_attention"].reshape(fw.margin.shape + (4,))
        for k in range(4):
            attention[..., k] = log_S[k]
    if "margin" in out:
        out["margin"][...] = fw.margin
    if "loss_derivative" in out:
        out["loss_derivative"][...] = fw.lp


def train_metrics(arrays: dict, rows: int = 1024) -> None:
    """train_loss and train_error (E15), and log_train_loss where stored, of every record
    from the recorded margins, in one
    pass after the loop instead of eight NumPy calls per step inside it; ``rows`` records
    at a time, so that the temporary stays small. The same numbers as computing them at
    each step: elementwise l(z), then a sum over the n samples of each record."""
    margin, n = arrays["margin"], arrays["margin"].shape[-1]
    for start in range(0, margin.shape[-2], rows):
        part = margin[..., start:start + rows, :]  # (R, rows, n)
        if "train_loss" in arrays:  # stored with train_error
            arrays["train_loss"][..., start:start + rows] = mean_last(loss(part), n)
            arrays["train_error"][..., start:start + rows] = mean_last(~(part > 0), n)  # NaN: error
        if "log_train_loss" in arrays:
            arrays["log_train_loss"][..., start:start + rows] = log_mean_loss(part)


def history(arrays: dict, names: tuple, m_k: int, yP0V: np.ndarray, S0V: np.ndarray) -> History:
    """The History of the asked ``names`` from the stored ``arrays`` (R, T, ...);
    ``yP0V`` (R, 2, m_v, n) and ``S0V`` (R, 2, m_v) are the value rows' init products."""
    if "margin" in arrays and {"train_loss", "log_train_loss"} & set(arrays):
        train_metrics(arrays)
    noise, signal = arrays.pop("noise_products", None), arrays.pop("signal_products", None)
    R = len(S0V)
    Q, K = np.tile([[0, m_k]], (R, 1)), np.tile([[m_k, 2 * m_k]], (R, 1))  # rows, per replica
    derived = {
        "query_signal": Derived(_rows, (signal, Q)),
        "key_signal": Derived(_rows, (signal, K)),
        "query_noise": Derived(_noise_rows, (noise, Q)),
        "key_noise": Derived(_noise_rows, (noise, K)),
        "value_signal": Derived(_value_signal, (S0V, signal)),
        "value_noise": Derived(_value_noise, (yP0V, noise)),
    }
    kept = {k: v for k, v in arrays.items() if k in names}
    return History(kept, {k: v for k, v in derived.items() if k in names}, batched=True)


def _span(bounds: np.ndarray) -> slice:
    """The rows bounds[r] = (first, end), the same for every replica r."""
    return slice(int(bounds[0, 0]), int(bounds[0, 1]))


def _rows(signal: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """<w_row, mu> of rows bounds[0]:bounds[1] (R, T, m_k): a view."""
    return signal[..., _span(bounds)]


def _noise_rows(noise: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """y_i <w_row, xi_i> of rows bounds[0]:bounds[1], as (R, T, m_k, n): a view."""
    return np.swapaxes(noise[..., _span(bounds)], -1, -2)


def _value_signal(S0V: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """<w_{V,j,r}(t), mu> = <w_{V,j,r}(0), mu> + <Delta_j(t), mu>: (R, T, 2, m_v)."""
    rows = signal.shape[-1]
    return S0V[:, None] + signal[:, :, rows - 2:, None]


def _value_noise(yP0V: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """<w_{V,j,r}(t), y_i xi_i> = y_i <w_{V,j,r}(0), xi_i> + y_i <Delta_j(t), xi_i>:
    (R, T, 2, m_v, n)."""
    rows = noise.shape[-1]
    return yP0V[:, None] + np.moveaxis(noise[..., rows - 2:], -1, -2)[:, :, :, None, :]
