"""Setup of one replica on U = {coordinate 1} + the training supports (spec section 5).

Everything here is O(n s m) in time and memory, whatever d is: E13 is drawn at the columns
of U only (``signsim.rng`` draws any set of coordinates exactly as the dense reference does).
The rows of the weights on U are the kernel's rows: W_Q (m_k), W_K (m_k), then one trained
row per value head, Delta_+ and Delta_- (``VALUE_ROWS``): E19 gives every w_{V,j,r} the
same gradient up to j, so an entrywise rule moves all rows of head j alike and
w_{V,j,r}(t) = w_{V,j,r}(0) + Delta_j(t), v(t) = v(0) + Delta_+(t) - Delta_-(t) (E11).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...rng import init_mean_value, init_normals

__all__ = ["Support", "support_of", "unique_inverse", "rows_of"]


def rows_of(m_k: int) -> int:
    """Rows of the kernel's weights: W_Q, W_K, Delta_+, Delta_-."""
    return 2 * m_k + 2


class Support(NamedTuple):
    """One replica's training data on U and the init there."""

    y: np.ndarray  # (n,) labels
    values: np.ndarray  # (n, s) xi_i at the slots of its support
    coords: np.ndarray  # (u,) U sorted, coordinate 1 (index 0) first
    slot_col: np.ndarray  # (n, s) the column in U of each training slot
    count: np.ndarray  # (u,) how many training supports hold each column
    first_slot: np.ndarray  # (u,) the first training slot (i s + a) holding each column
    W0: np.ndarray  # (rows, u) W_Q, W_K at U, then Delta_+(0) = Delta_-(0) = 0
    W0V: np.ndarray  # (2, m_v, u) the value rows at U
    P0V: np.ndarray  # (2, m_v, n) <w_{V,j,r}(0), xi_i>
    S0V: np.ndarray  # (2, m_v) <w_{V,j,r}(0), mu>
    v0n: np.ndarray  # (n,) <v(0), xi_i>
    v0s: float  # <v(0), mu>

    @property
    def shared(self) -> np.ndarray:
        """(n s,) True at the training slots whose coordinate several supports hold."""
        return self.count[self.slot_col.ravel()] > 1

    @property
    def slot_of_column(self) -> np.ndarray:
        """(u - 1, 2) (sample, slot) of the first training slot holding each column of U
        but coordinate 1."""
        return np.stack(np.divmod(self.first_slot[1:], self.values.shape[1]), axis=1)


def support_of(config, train, key) -> Support:
    """The Support of one replica with training set ``train`` and init key ``key``."""
    m_k, m_v = config.m_k, config.m_v
    n, s = train.noise_index.shape
    U, col = np.unique(np.concatenate([[0], train.noise_index.ravel()]), return_inverse=True)
    slot_col = col[1:].reshape(n, s)
    W_Q, W_K, W_V = init_normals(key, U, m_k, m_v, config.sigma_0)  # (E13)
    W0 = np.concatenate([W_Q, W_K, np.zeros((2, len(U)))])
    # v(0) (E11) from one normal per coordinate, as at the test coordinates (rng docstring)
    v0 = init_mean_value(key, U, m_k, m_v, config.sigma_0)
    first_slot = np.zeros(len(U), np.int64)
    cols, first = np.unique(slot_col.ravel(), return_index=True)
    first_slot[cols] = first
    values = train.noise_value
    return Support(y=train.y, values=values, coords=U, slot_col=slot_col,
                   count=np.bincount(slot_col.ravel(), minlength=len(U)), first_slot=first_slot,
                   W0=W0, W0V=W_V, P0V=(W_V[:, :, slot_col] * values).sum(-1),
                   S0V=W_V[:, :, 0] * config.mu_norm, v0n=(v0[slot_col] * values).sum(-1),
                   v0s=v0[0] * config.mu_norm)


def unique_inverse(index: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(index, return_inverse=True)`` for coordinates in [0, d): by marking a
    length-d table when d is at most 8 times the number of entries (memory still O(entries),
    several times faster than sorting), else by sorting."""
    flat = index.ravel()
    if d > 8 * flat.size:
        return np.unique(flat, return_inverse=True)
    mark = np.zeros(d, bool)
    mark[flat] = True
    values = np.flatnonzero(mark)
    position = np.empty(d, np.int64)
    position[values] = np.arange(values.size)
    return values, position[flat]
