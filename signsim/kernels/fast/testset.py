"""The test set of a batch and its metrics (E12, E15 on the test samples), in O(n_test s m).

<w_row(t), xi> = o_row (a frozen part, computed once) + (M @ Z)[row], with Z the layout's
state (``state_columns``) and M a sparse matrix of the few test slots in U. E13 is drawn at
the test coordinates only (the query/key rows and v(0): ``rng.init_query_key_mean_value``).
Only the "hit" test samples, with a coordinate in U, have an entry in M; they come first in
each replica, so that M has H rows per replica, H the largest number of hits (a replica with
fewer has empty rows there). Test loss and error are means over the test samples, each
computed on its own, so the order changes nothing.

Frozen parts that the logits need times the label y = +-1 are kept multiplied by it: a sign
change is exact, so y (a + b) = y a + y b bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix

from ...rng import init_query_key_mean_value
from .layouts import csr
from .step import sigmoid_of_negative
from .support import unique_inverse

__all__ = ["FrozenTestSet", "build_test_set", "evaluate", "loss", "mean_last"]


class _Part(NamedTuple):
    """One replica's test samples, hits first."""

    y: np.ndarray  # (n_test,)
    v0t: np.ndarray  # (n_test,) <v(0), xi>
    off: np.ndarray  # (n_test, 2 m_k) the frozen parts of <w_Q, xi>, <w_K, xi>
    entries: tuple  # (test sample, state column, value) of the test slots in U
    n_hits: int


class FrozenTestSet(NamedTuple):
    y: np.ndarray  # (R, n_test)
    yoQ: np.ndarray  # (R, n_test, m_k) y times the frozen part of <w_{Q,s}, xi>
    yoK: np.ndarray  # (R, n_test, m_k) y times the frozen part of <w_{K,s}, xi>
    z22: np.ndarray  # (R, n_test) <oQ, oK>: the noise-noise logit without the state
    yv0: np.ndarray  # (R, n_test) y <v(0), xi>
    yM: csr_matrix  # (R H, columns): the test matrix, row j times y_j
    H: int
    yo_hits: np.ndarray  # (R, H, 2 m_k + 3) y times the frozen parts (Q, K) of the first H
    # samples, then three zeros: what the corrections of test_metrics add to
    column_replica: np.ndarray  # (columns,) replica of each column of the state


def _part(config, test, key, support, layout, r: int) -> _Part:
    """Replica r's test samples: E13 at their coordinates, frozen parts and entries."""
    s, nt = config.s, len(test.y)
    values = test.noise_value
    needed, tt = unique_inverse(test.noise_index, config.d)
    tt = tt.reshape(test.noise_index.shape)
    QK, v0 = init_query_key_mean_value(key, needed, config.m_k, config.m_v, config.sigma_0)
    U = support.coords
    where = np.minimum(np.searchsorted(U, needed), len(U) - 1)
    in_U = (U[where] == needed)[tt]  # (n_test, s) is this test slot in U
    col = np.where(U[where] == needed, where, 0)[tt]  # its column in U (0: unused)
    frozen, entries = layout.test_entries(r, support, in_U, col, values)
    X = csr_matrix((frozen.ravel(), tt.ravel(), np.arange(0, nt * s + 1, s)),
                   shape=(nt, len(needed)))
    hit = in_U.any(axis=1)
    order = np.argsort(~hit, kind="stable")  # hits first
    new_row = np.empty_like(order)
    new_row[order] = np.arange(order.size)
    v0t = (v0[tt] * values).sum(-1)
    return _Part(test.y[order], v0t[order], (X @ QK)[order],
                 (new_row[entries[0]],) + tuple(entries[1:]), int(hit.sum()))


def build_test_set(configs: list, tests: list, keys: list, supports: list, layout) -> FrozenTestSet:
    """The test set of a batch (one config, test set, init key and Support per replica)."""
    parts = [_part(c, t, k, x, layout, r)
             for r, (c, t, k, x) in enumerate(zip(configs, tests, keys, supports))]
    R, m_k = len(parts), configs[0].m_k
    H = max(p.n_hits for p in parts)
    rr = np.concatenate([np.full(len(p.entries[0]), r) for r, p in enumerate(parts)])
    j, col, val = (np.concatenate([p.entries[k] for p in parts]) for k in range(3))
    columns = len(layout.column_replica)
    M = csr(val, rr * H + j, col, (R * H, columns))
    off = np.stack([p.off for p in parts])  # (R, n_test, 2 m_k): Q part, K part
    y = np.stack([p.y for p in parts])
    yo = y[..., None] * off
    M.data *= y[:, :H].ravel()[np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))]
    yo_hits = np.zeros((R, H, 2 * m_k + 3))
    yo_hits[..., :2 * m_k] = yo[:, :H]
    return FrozenTestSet(y=y, yoQ=np.ascontiguousarray(yo[..., :m_k]),
                   yoK=np.ascontiguousarray(yo[..., m_k:]),
                   z22=np.einsum("rns,rns->rn", off[..., :m_k], off[..., m_k:]),
                   yv0=y * np.stack([p.v0t for p in parts]), yM=M, H=H, yo_hits=yo_hits,
                   column_replica=layout.column_replica)


def evaluate(test: FrozenTestSet, Z: np.ndarray, qs: np.ndarray, ks: np.ndarray,
             vs: np.ndarray, init_scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Test loss and error (R,) each, from the state Z (columns, rows) and the signal parts
    qs, ks (R, m_k), vs (R,) of the forward pass; ``init_scale`` (R,) is c_t under
    decoupled weight decay (E22b), None without.

    Under weight decay the frozen parts are init values, and every init value is
    c_t W(0) at step t: the frozen parts of <w_Q, xi>, <w_K, xi> and <v, xi> follow as
    c_t times the stored ones, the frozen noise-noise logit z22 as c_t^2 times its own.

    By linearity the state enters each logit and the value only at the hit samples:
    <K part, q_signal> and <Q part, k_signal> are per-column numbers, so one sparse product
    gives every correction. With y folded in (z22 is a sum of products (y a)(y b) = a b, so
    the hits' parts may carry y too): margin = y f = 2 y v + S (<v, mu> - y v) with
    S = S11 + S21, S11 = 1 / (1 + e^(y z12 - z11)), S21 = 1 / (1 + e^(z22 - y z21))
    (E9, E10, E12, L = 2)."""
    R, H, m_k = test.y.shape[0], test.H, qs.shape[1]
    rep = test.column_replica
    Zc = np.empty((Z.shape[0], 2 * m_k + 3))  # the state's Q and K parts, then 3 numbers
    Zc[:, :2 * m_k] = Z[:, :2 * m_k]
    _dot_rows(Z[:, m_k:2 * m_k], qs[rep], out=Zc[:, 2 * m_k])  # <K part, q_signal>
    _dot_rows(Z[:, :m_k], ks[rep], out=Zc[:, 2 * m_k + 1])  # <Q part, k_signal>
    np.subtract(Z[:, 2 * m_k], Z[:, 2 * m_k + 1], out=Zc[:, 2 * m_k + 2])  # Delta_+ - Delta_-
    c = None if init_scale is None else init_scale[:, None]  # (R, 1)
    hits = (test.yM @ Zc).reshape(R, H, 2 * m_k + 3)
    # one contiguous pass: y <w_Q, xi>, y <w_K, xi> of the hits
    hits += test.yo_hits if c is None else test.yo_hits * c[:, :, None]
    aQK, A = hits[..., :2 * m_k], hits[..., 2 * m_k:]
    z12 = np.matmul(test.yoK, qs[:, :, None])[..., 0]  # y z12, y z21 (E9): frozen parts,
    z21 = np.matmul(test.yoQ, ks[:, :, None])[..., 0]  # then the hits' corrections
    if c is not None:
        z12 *= c
        z21 *= c
    z12[:, :H] += A[..., 0]
    z21[:, :H] += A[..., 1]
    z22 = test.z22.copy() if c is None else test.z22 * (c * c)
    np.einsum("rhs,rhs->rh", aQK[..., :m_k], aQK[..., m_k:], out=z22[:, :H])
    yv = test.yv0.copy() if c is None else test.yv0 * c  # y v = y v(0) + y <Delta, xi> (E11)
    yv[:, :H] += A[..., 2]
    z11 = np.einsum("rs,rs->r", qs, ks)[:, None]
    with np.errstate(over="ignore"):  # exp overflow -> inf -> S = 0, the right limit
        S = np.subtract(z12, z11)
        sigmoid_of_negative(S)
        S21 = np.subtract(z22, z21)
        sigmoid_of_negative(S21)
        S += S21
    margin = np.subtract(vs[:, None], yv)
    margin *= S
    yv *= 2.0
    margin += yv
    n_test = margin.shape[-1]
    return mean_last(loss(margin), n_test), mean_last(~(margin > 0), n_test)  # NaN: an error


def _dot_rows(A: np.ndarray, B: np.ndarray, out: np.ndarray) -> None:
    """out[c] = sum_k A[c, k] B[c, k], summed in k order whatever the number of rows.

    np.einsum("cs,cs->c") picks its loop by the shapes, and its sums came out different in
    the last bit between a replica alone and in a batch (the rows are the columns of all
    replicas' states): found by scripts/soak.py."""
    np.multiply(A[:, 0], B[:, 0], out=out)
    term = np.empty_like(out)
    for k in range(1, A.shape[1]):
        np.multiply(A[:, k], B[:, k], out=term)
        out += term


def mean_last(x: np.ndarray, n: int) -> np.ndarray:
    """x.mean(-1) (the same bits: a float64 sum, then a division by n) without np.mean's
    Python-level overhead."""
    return np.add.reduce(x, axis=-1, dtype=np.float64) / n


def loss(margin: np.ndarray) -> np.ndarray:
    """l(z) = log(1 + e^-z) (E14) as log1p(e^-|z|) + max(-z, 0): stable both ways, and
    several times faster than np.logaddexp."""
    out = np.abs(margin)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out -= np.minimum(margin, 0.0)  # + max(-z, 0), the same number
    return out
