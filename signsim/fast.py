"""The fast kernel: the same dynamics as the dense reference, on the active coordinates only.

Why it is exact (spec section 5): every gradient row is a combination of the training
patches, so only the coordinates of U = {coordinate 1} + the training supports ever move.

What every step needs from the weights is, for each row (W_Q rows, W_K rows, the value row
Delta below) and each training sample i, the inner product P[i, row] = <w_row, xi_i>, and
the weights at coordinate 1. The gradient at a coordinate k of B_i that no other support
holds is C[i, row] * xi_i[k] (E17-E19, noise token), one coefficient per (sample, row).
Two layouts keep the weights:

* **per sample** (SignGD, GD). Each step moves such a coordinate by
  ``lr * dir(C[i, row]) * b_i[k]`` with ``b = sign(xi)`` and ``dir = -sign`` under SignGD
  (E20) and ``b = xi``, ``dir = -identity`` under GD (E22). So
  ``w_row[k](t) = w_row[k](0) + lr * N[i, row](t) * b_i[k]`` with one running sum N per
  (sample, row), and ``P = P(0) + lr * N * sum_k b_i[k] xi_i[k]``: the work per step is
  O(n m), not O(n s m). Coordinates held by several supports (expected n^2 s^2 / (2 d))
  keep their own weight, with the gradient contributions summed in sample order.
* **per coordinate** (Adam, whose eps does not factor out of the update). The weights at
  each sample's support are stored sample-major, ``theta[r, i, row, a] = w_row[B_i[a]]``
  (R, n, rows, s), with one copy per sample of a shared coordinate; its contributions are
  summed and written to every copy, so the copies stay bit-equal.

The value layer: E19 gives every row w_{V,j,r} the gradient j g (the same g for all r), and
SignGD, Adam and GD all map g -> -g to an opposite update, so
w_{V,j,r}(t) = w_{V,j,r}(0) + j Delta(t) with one trained row Delta (row 2 m_k) and
v = v(0) + 2 Delta (E11). The init products <w_{V,j,r}(0), xi_i> are computed once.

The tokens are handled by role (1 = signal y_i mu, 2 = noise xi_i): the network has no
positional information (E4), so the position of the signal token changes nothing.

Test predictions: <w_row(t), xi> = (a frozen init part, computed once) + (a sparse matrix of
the few test coordinates in U) @ (the state of the layout). The test set is prepared apart
from training (``_replica_test``, ``_test_set``): it draws E13 at the test coordinates (only
the query/key rows and v(0): ``rng.init_query_key_mean_value``), puts the test samples that
touch U first, and can be built by a helper thread while training starts.

Workers (``workers`` > 1): a pool of threads shares the per-replica setup; the test set and
the test evaluations run beside the training loop, in a forked helper process
(``forked.ForkedEvaluations``, Linux, single-threaded caller) or else in a helper thread
"lane", which also fills the history memory. The training loop stays one vectorised pass
in the calling thread. No number depends on where it is computed.

Learning rates: the optimizer runs at lr = 1 and the kernel multiplies by each replica's lr;
``(-1 * x) * lr == (-lr) * x`` exactly, so replicas that differ in lr (``vary``) are
bit-identical to their runs alone.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix

from .config import Config
from .data import make_data
from .forked import ForkedEvaluations, can_fork
from .optim import from_config
from .result import Result
from .rng import init_key, init_mean_value, init_normals, init_query_key_mean_value
from .sparse import SparseParams
from .tracker import History, Tracker, progress_every, schedule

__all__ = ["run_fast", "layout_of", "resolve_workers"]


def layout_of(optimizer: str) -> str:
    """The weight layout the fast kernel uses for an optimizer (module docstring)."""
    return "coordinate" if optimizer == "adam" else "sample"


class _Common(NamedTuple):
    """Constants of a batch of R replicas used by both layouts."""

    y: np.ndarray  # (R, n)
    y_rows: np.ndarray  # (R, n, rows) y repeated along the rows: NumPy runs same-shape
    # products in one long loop, but a product broadcast along the short last axis in n R
    # short ones (several times slower at R = 100)
    yP0V: np.ndarray  # (R, 2, m_v, n) <w_{V,j,r}(0), y_i xi_i>
    S0V: np.ndarray  # (R, 2, m_v) <w_{V,j,r}(0), mu>
    v0n: np.ndarray  # (R, n) <v(0), xi_i>
    v0s: np.ndarray  # (R,) <v(0), mu>


# ---------------------------------------------------------------- setup of one replica

def _replica(config: Config, train, key, layout: str) -> dict:
    """What one replica needs for training, in O(n s m) time and memory: the weights on
    U = {coordinate 1} + the training supports (E13 drawn there only) in ``layout``."""
    m_k, m_v, mu = config.m_k, config.m_v, config.mu_norm
    n, s = train.noise_index.shape
    # U sorted, coordinate 1 (index 0) first; tn: the column in U of each training slot
    U, tn = np.unique(np.concatenate([[0], train.noise_index.ravel()]), return_inverse=True)
    tn = tn[1:].reshape(n, s)
    W_Q, W_K, W_V = init_normals(key, U, m_k, m_v, config.sigma_0)  # (E13)
    W0 = np.concatenate([W_Q, W_K, np.zeros((1, len(U)))])  # (rows, |U|); Delta(0) = 0
    # v(0) (E11) from one normal per coordinate, as at the test coordinates (rng docstring)
    v0 = init_mean_value(key, U, m_k, m_v, config.sigma_0)
    count = np.bincount(tn.ravel(), minlength=len(U))  # training supports holding each column
    slot_of = np.zeros(len(U), np.int64)
    cols, first = np.unique(tn.ravel(), return_index=True)
    slot_of[cols] = first  # the first training slot holding each column of U
    shared = count[tn.ravel()] > 1  # (n s,) slots whose coordinate is in several supports
    out = dict(y=train.y, vals=train.noise_value, P0V=(W_V[:, :, tn] * train.noise_value).sum(-1),
               S0V=W_V[:, :, 0] * mu, v0n=(v0[tn] * train.noise_value).sum(-1),
               v0s=v0[0] * mu, coords=U, rep=np.stack(np.divmod(slot_of[1:], s), axis=1),
               W0_U=W0, W0V_U=W_V, sig=W0[:, 0].copy(), count=count, slot_of=slot_of)
    if layout == "coordinate":
        out.update(theta=W0[:, tn].transpose(1, 0, 2).copy(),  # (n, rows, s)
                   shared=(*np.divmod(np.flatnonzero(shared), s), tn.ravel()[shared]))
        return out
    # per-sample layout
    excl = ~shared.reshape(n, s)
    if config.optimizer == "signgd":
        b = np.sign(train.noise_value)
    else:
        b = train.noise_value.copy()
    b[~excl] = 0.0
    out["b"] = b
    out["B"] = (b * train.noise_value).sum(-1)  # (n,): sum over exclusive k of b_i[k] xi_i[k]
    out["P0"] = np.einsum("kns,ns->nk", W0[:, tn], train.noise_value * excl)  # (n, rows)
    pos = np.flatnonzero(shared)
    group_cols = np.flatnonzero(count > 1)  # one group per shared coordinate, in U order
    group_of = np.zeros(len(U), np.int64)
    group_of[group_cols] = np.arange(len(group_cols))
    out["group_of"] = group_of
    out["copies"] = (*np.divmod(pos, s), group_of[tn.ravel()[pos]])  # (i, a, group)
    out["group_in_U"] = group_cols  # position of each group in U
    out["wsh"] = W0[:, group_cols].T.copy()  # (G, rows)
    return out


def _test_init(config: Config, test, key) -> tuple:
    """The distinct test coordinates, the column of each test slot among them (n_test, s),
    and E13 there by coordinate (the same values as in U): W_Q and W_K (c, 2 m_k), and only
    v(0) of the value block (E11)."""
    needed, tt = _unique_inverse(test.noise_index, config.d)
    QK, v0 = init_query_key_mean_value(key, needed, config.m_k, config.m_v, config.sigma_0)
    return needed, tt.reshape(test.noise_index.shape), QK, v0


def _replica_test(config: Config, test, key, part: dict, layout: str) -> dict:
    """What one replica needs for test metrics, in O(n_test s m): E13 drawn at the test
    coordinates (``_test_init``, unless the setup drew it), the frozen part of each test
    inner product, and the test coordinates in U as entries of the layout's test matrix."""
    s = config.s
    t_val = test.noise_value
    needed, tt, QK, v0 = part.get("test_init") or _test_init(config, test, key)
    U = part["coords"]
    where = np.minimum(np.searchsorted(U, needed), len(U) - 1)
    in_U = U[where] == needed  # (c,) is this test coordinate in U
    u_col = np.where(in_U, where, 0)  # its column in U (0: not in U, never used)
    nt = len(test.y)
    out = dict(yt=test.y, v0t=(v0[tt] * t_val).sum(-1))

    def frozen(values):  # sum over the test slots of values * W_{Q,K}(0): (n_test, 2 m_k)
        X = csr_matrix((values.ravel(), tt.ravel(), np.arange(0, nt * s + 1, s)),
                       shape=(nt, len(needed)))
        return X @ QK

    # test coordinates inside U: (test sample, its slot) -> a training slot holding it
    j_e, a_e = np.nonzero(in_U[tt])
    t_cols = u_col[tt[j_e, a_e]]  # column in U
    t_vals = t_val[j_e, a_e]
    if layout == "coordinate":  # everything in U comes from theta
        out["off_t"] = frozen(np.where(in_U[tt], 0.0, t_val))
        out["test_entries"] = (j_e, part["slot_of"][t_cols], t_vals)
        return _hits_first(out, in_U[tt].any(axis=1), ("test_entries",))
    # per-sample layout: the frozen part keeps the init of exclusive coordinates
    count = part["count"]
    t_shared = count[t_cols] > 1
    out["off_t"] = frozen(np.where(in_U[tt] & (count[u_col[tt]] > 1), 0.0, t_val))
    # exclusive test coordinate: b at its training slot times the test value -> column i;
    # shared: the test value -> column of its group (numbered across the batch later)
    ex = ~t_shared
    i_slot, a_slot = np.divmod(part["slot_of"][t_cols[ex]], s)
    out["test_excl"] = (j_e[ex], i_slot, part["b"][i_slot, a_slot] * t_vals[ex])
    out["test_shared"] = (j_e[t_shared], part["group_of"][t_cols[t_shared]], t_vals[t_shared])
    return _hits_first(out, in_U[tt].any(axis=1), ("test_excl", "test_shared"))


def _unique_inverse(index: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
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


def _hits_first(out: dict, hit: np.ndarray, entries: tuple) -> dict:
    """Reorder the test samples so that those with a coordinate in U ("hits") come first.

    Test loss and error are means over the test samples, and each sample is computed on its
    own, so the order changes nothing but lets a batch handle the hits as one (R, H) block.
    The Result keeps the test set in its drawn order."""
    order = np.argsort(~hit, kind="stable")
    new_row = np.empty_like(order)
    new_row[order] = np.arange(order.size)
    for name in ("yt", "v0t", "off_t"):
        out[name] = out[name][order]
    for name in entries:
        out[name] = (new_row[out[name][0]],) + tuple(out[name][1:])
    out["n_hits"] = int(hit.sum())
    return out


# ---------------------------------------------------------------- the two layouts

class _Overlap(NamedTuple):
    """Copies of coordinates shared by several supports, sorted by (replica, coordinate, i)."""

    r: np.ndarray  # (c,)
    i: np.ndarray  # (c,)
    a: np.ndarray  # (c,)
    starts: np.ndarray  # (groups,) first copy of each shared coordinate
    group: np.ndarray  # (c,) group of each copy


class CoordinateParams(NamedTuple):
    noise: np.ndarray  # (R, n, rows, s): weights at each sample's support
    sig: np.ndarray  # (R, rows): weights at coordinate 1


class _CoordinateLayout:
    """Per-coordinate weights (module docstring); any optimizer, used for Adam."""

    def __init__(self, config: Config, parts: list, R: int):
        n, s = config.n, config.s
        self.vals = np.stack([p["vals"] for p in parts])[:, :, None, :]  # (R, n, 1, s)
        self.params = CoordinateParams(np.stack([p["theta"] for p in parts]),
                                       np.stack([p["sig"] for p in parts]))
        self.column_replica = np.repeat(np.arange(R), n * s)  # of the test state's columns
        self.n, self.s, self.R = n, s, R
        sh = [p["shared"] for p in parts]
        sh_r = np.concatenate([np.full(len(x[0]), r) for r, x in enumerate(sh)])
        sh_i, sh_a, sh_c = (np.concatenate([x[k] for x in sh]) for k in range(3))
        self.overlap = None
        if sh_r.size:
            o = np.lexsort((sh_i, sh_c, sh_r))
            sh_r, sh_i, sh_a, sh_c = sh_r[o], sh_i[o], sh_a[o], sh_c[o]
            new = np.r_[True, (sh_c[1:] != sh_c[:-1]) | (sh_r[1:] != sh_r[:-1])]
            self.overlap = _Overlap(sh_r, sh_i, sh_a, np.flatnonzero(new), np.cumsum(new) - 1)

    def test_matrix(self, tparts: list) -> tuple[csr_matrix, int]:
        """The active test entries of all replicas, one block-diagonal sparse matrix with H
        rows per replica (the largest number of hits), and H."""
        n, s, R = self.n, self.s, self.R
        H = max(p["n_hits"] for p in tparts)
        rr = np.concatenate([np.full(len(p["test_entries"][0]), r)
                             for r, p in enumerate(tparts)])
        j, slot, val = (np.concatenate([p["test_entries"][k] for p in tparts]) for k in range(3))
        return _csr(val, rr * H + j, rr * n * s + slot, (R * H, R * n * s)), H

    def inner(self, params: CoordinateParams) -> np.ndarray:
        return np.einsum("rnks,rns->rnk", params.noise, self.vals[:, :, 0])  # (R, n, rows)

    def gradients(self, C: np.ndarray, grad_sig: np.ndarray) -> CoordinateParams:
        grad_noise = C[..., None] * self.vals  # (R, n, rows, s)
        ov = self.overlap
        if ov is not None:  # a coordinate in several supports: sum the contributions
            total = np.add.reduceat(grad_noise[ov.r, ov.i, :, ov.a], ov.starts, axis=0)
            grad_noise[ov.r, ov.i, :, ov.a] = total[ov.group]
        return CoordinateParams(grad_noise, grad_sig)

    def apply(self, params, direction, lr):
        return CoordinateParams(params.noise + direction.noise * lr[:, None, None, None],
                                params.sig + direction.sig * lr[:, None])

    def test_state(self, params, lr) -> np.ndarray:
        return params.noise.transpose(0, 1, 3, 2).reshape(-1, params.noise.shape[2])

    def weights_on_U(self, params, r: int, rep: np.ndarray, W0_U: np.ndarray) -> np.ndarray:
        out = np.empty_like(W0_U)
        out[:, 0] = params.sig[r]
        out[:, 1:] = params.noise[r, rep[:, 0], :, rep[:, 1]].T
        return out


class SampleParams(NamedTuple):
    N: np.ndarray  # (R, n, rows): running sum of update directions of each (sample, row)
    sig: np.ndarray  # (R, rows): weights at coordinate 1
    shared: np.ndarray  # (G, rows): weights at the coordinates in several supports


class _SampleLayout:
    """Per-(sample, row) running sums (module docstring); SignGD and GD."""

    def __init__(self, config: Config, parts: list, R: int):
        n = config.n
        self.P0 = np.stack([p["P0"] for p in parts])  # (R, n, rows)
        self.B = np.stack([p["B"] for p in parts])[:, :, None]  # (R, n, 1)
        G_r = [len(p["wsh"]) for p in parts]
        self.goff = goff = np.r_[0, np.cumsum(G_r)]  # replica r's groups: goff[r]:goff[r+1]
        self.params = SampleParams(np.zeros_like(self.P0), np.stack([p["sig"] for p in parts]),
                                   np.concatenate([p["wsh"] for p in parts]))
        cat = lambda key, k: np.concatenate([p[key][k] for p in parts])  # noqa: E731
        rep = lambda key: np.concatenate(  # noqa: E731
            [np.full(len(p[key][0]), r) for r, p in enumerate(parts)])
        # columns of the test state: R n per-sample sums, then the G shared weights
        self.column_replica = np.r_[np.repeat(np.arange(R), n), np.repeat(np.arange(R), G_r)]
        self.n, self.R = n, R
        # coordinates in several supports: G weights; copy (r, i, group) has value xi_i there
        self.shared = None
        c_r = rep("copies")
        if c_r.size:
            c_i, c_g = cat("copies", 0), cat("copies", 2) + goff[c_r]
            c_val = np.stack([p["vals"] for p in parts])[c_r, c_i, cat("copies", 1)]
            # gradient of a shared weight: sum over its copies of C[r, i] xi_i, in sample order
            self.to_groups = _csr(c_val, c_g, c_r * n + c_i, (goff[-1], R * n))
            # its part of P[r, i]: sum over the copies of sample i of weight * xi_i
            self.to_samples = _csr(c_val, c_r * n + c_i, c_g, (R * n, goff[-1]))
            self.shared = True
            self.group_replica = np.repeat(np.arange(R), G_r)

    def test_matrix(self, tparts: list) -> tuple[csr_matrix, int]:
        """The active test entries of all replicas, one block-diagonal sparse matrix with H
        rows per replica (the largest number of hits), and H."""
        n, R, goff = self.n, self.R, self.goff
        cat = lambda key, k: np.concatenate([p[key][k] for p in tparts])  # noqa: E731
        rep = lambda key: np.concatenate(  # noqa: E731
            [np.full(len(p[key][0]), r) for r, p in enumerate(tparts)])
        ex_r, sh_r = rep("test_excl"), rep("test_shared")
        H = max(p["n_hits"] for p in tparts)
        rows = np.r_[ex_r * H + cat("test_excl", 0), sh_r * H + cat("test_shared", 0)]
        cols = np.r_[ex_r * n + cat("test_excl", 1), R * n + goff[sh_r] + cat("test_shared", 1)]
        vals = np.r_[cat("test_excl", 2), cat("test_shared", 2)]
        return _csr(vals, rows, cols, (R * H, R * n + goff[-1])), H

    def inner(self, params: SampleParams, lrB: np.ndarray) -> np.ndarray:
        P = self.P0 + params.N * lrB
        if self.shared is not None:
            P += (self.to_samples @ params.shared).reshape(P.shape)
        return P

    def gradients(self, C: np.ndarray, grad_sig: np.ndarray) -> SampleParams:
        if self.shared is None:
            g_sh = np.zeros((0, C.shape[-1]))
        else:
            g_sh = self.to_groups @ C.reshape(-1, C.shape[-1])
        return SampleParams(C, grad_sig, g_sh)

    def apply(self, params, direction, lr):
        shared = params.shared
        if self.shared is not None:
            shared = shared + direction.shared * lr[self.group_replica][:, None]
        return SampleParams(params.N + direction.N, params.sig + direction.sig * lr[:, None],
                            shared)

    def test_state(self, params, lr) -> np.ndarray:
        steps = (params.N * lr[:, None, None]).reshape(-1, params.N.shape[-1])
        return np.concatenate([steps, params.shared])


def _csr(values, rows, cols, shape) -> csr_matrix:
    m = csr_matrix((values, (rows, cols)), shape=shape)
    m.sort_indices()  # rows summed in column order, the same in any batch
    return m


# ---------------------------------------------------------------- forward and gradients

class _Attention(NamedTuple):
    S: np.ndarray  # (4, R, N): S11, S12, S21, S22 (the fields below are its rows)
    S11: np.ndarray  # (R, N) signal query on signal key
    S12: np.ndarray
    S21: np.ndarray  # noise query on signal key
    S22: np.ndarray
    V1: np.ndarray  # (R, N) value of the signal token, y_i <v, mu>
    V2: np.ndarray  # (R, N) value of the noise token, <v, xi_i>
    f: np.ndarray  # (R, N)


def _attend(qs, ks, Qn, Kn, vs, vn, y) -> _Attention:
    """E8-E12 for two tokens by role; qs, ks (R, m_k); Qn, Kn (R, N, m_k); vs (R,); vn, y (R, N)."""
    # einsum fuses each product with its sum over s (no (R, N, m_k) temporary)
    z11 = np.einsum("rs,rs->r", qs, ks)[:, None]  # (R, 1): y_i^2 = 1         (E9)
    z12 = y * np.einsum("rns,rs->rn", Kn, qs)  # (R, N)
    z21 = y * np.einsum("rns,rs->rn", Qn, ks)
    z22 = np.einsum("rns,rns->rn", Qn, Kn)
    # two-way softmax (E10): S11 = 1 / (1 + e^(z12 - z11)), S12 = 1 / (1 + e^(z11 - z12)),
    # likewise S21, S22; the four in one pass (fl(b - a) = -fl(a - b) exactly). NumPy's exp
    # is vectorised, several times faster than scipy's expit here; an overflow to inf gives
    # S = 0, the right limit (the caller ignores overflow warnings)
    S = np.empty((4,) + z12.shape)
    np.subtract(z12, z11, out=S[0])
    np.negative(S[0], out=S[1])
    np.subtract(z22, z21, out=S[2])
    np.negative(S[2], out=S[3])
    _sigmoid_of_negative(S)
    S11, S12, S21, S22 = S
    V1 = y * vs[:, None]  # (E12)
    f = (S11 + S21) * V1 + (S12 + S22) * vn
    return _Attention(S, S11, S12, S21, S22, V1, vn, f)


class _Forward(NamedTuple):
    """The forward pass at the current weights, by role (what gradients and records need)."""

    P: np.ndarray  # (R, n, rows) <w_row, xi_i>: Qn, Kn and Dn are its parts
    sig: np.ndarray  # (R, rows)  <w_row, mu>: qs, ks and Ds are its parts
    Qn: np.ndarray  # (R, n, m_k) <w_{Q,s}, xi_i>                          (E8)
    Kn: np.ndarray  # (R, n, m_k) <w_{K,s}, xi_i>
    Dn: np.ndarray  # (R, n)      <Delta, xi_i>
    qs: np.ndarray  # (R, m_k)    <w_{Q,s}, mu>
    ks: np.ndarray  # (R, m_k)    <w_{K,s}, mu>
    Ds: np.ndarray  # (R,)        <Delta, mu>
    vn: np.ndarray  # (R, n)      <v, xi_i>                                 (E11)
    vs: np.ndarray  # (R,)        <v, mu>
    at: _Attention
    margin: np.ndarray  # (R, n)  y_i f_i
    lp: np.ndarray  # (R, n)      l'_i                                      (E14)


def _forward(common: _Common, P: np.ndarray, sig: np.ndarray, m_k: int, mu: float) -> _Forward:
    """E8-E15 from P[r, i, row] = <w_row, xi_i> and the weights at coordinate 1."""
    Qn, Kn, Dn = P[..., :m_k], P[..., m_k:2 * m_k], P[..., 2 * m_k]
    sig = sig * mu
    qs, ks, Ds = sig[:, :m_k], sig[:, m_k:2 * m_k], sig[:, 2 * m_k]
    vn = common.v0n + 2.0 * Dn  # v = v(0) + 2 Delta
    vs = common.v0s + 2.0 * Ds
    at = _attend(qs, ks, Qn, Kn, vs, vn, common.y)
    margin = common.y * at.f
    lp = np.exp(margin)  # l' = -1 / (1 + e^margin)                              (E14)
    lp += 1.0
    np.divide(-1.0, lp, out=lp)
    return _Forward(P, sig, Qn, Kn, Dn, qs, ks, Ds, vn, vs, at, margin, lp)


SIGMOID_FLOOR = -40.0  # 1 / (1 + e^x) is exactly 1.0 for every x below this (and at it)


def _sigmoid_of_negative(x: np.ndarray) -> None:
    """x <- 1 / (1 + e^x) in place (= expit(-x)); e^x = inf gives 0.

    Arguments below SIGMOID_FLOOR are raised to it first. That changes no result: for
    x <= -37, e^x < 2^-53, so 1 + e^x rounds to 1 and the sigmoid is exactly 1. It spares
    exp its slow path for results that underflow (several times slower per element here),
    which the saturated attention of Stage IV hits at every step."""
    np.maximum(x, SIGMOID_FLOOR, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)


def _coefficients(common: _Common, fw: _Forward, C: np.ndarray, grad_sig: np.ndarray,
                  config: Config, dk: np.ndarray, e: np.ndarray) -> None:
    """E16-E19 by role: G_11 = -G_12 = g1, G_21 = -G_22 = g2 (docs/model.md, section 4).

    Fills ``C`` (R, n, rows), the gradient of each row at a coordinate of B_i held by no
    other support divided by xi_i there, and ``grad_sig`` (R, rows), the gradient at
    coordinate 1; ``dk`` and ``e`` (R, n, m_k) are scratch space."""
    m_k, mu, at = config.m_k, config.mu_norm, fw.at
    y = common.y
    c = fw.lp * y / config.n
    Dv = at.V1 - at.V2
    g1 = c * at.S11 * at.S12 * Dv  # (R, n)                                  (E16)
    g2 = c * at.S21 * at.S22 * Dv
    np.multiply(y[:, :, None], fw.ks[:, None], out=dk)
    dk -= fw.Kn  # k_{s,1} - k_{s,2}  (R, n, m_k)
    g1y = g1 * y
    CQ, CK = C[..., :m_k], C[..., m_k:2 * m_k]
    np.multiply(g1y[..., None], fw.qs[:, None], out=e)
    np.multiply(g2[..., None], fw.Qn, out=CK)
    e += CK  # g1 y q_s + g2 q_{s,2}  (R, n, m_k)
    np.multiply(g2[..., None], dk, out=CQ)  # W_Q, noise token                  (E17)
    np.negative(e, out=CK)  # W_K, noise token                                (E18)
    cv = c / config.m_v
    np.multiply(cv, at.S12 + at.S22, out=C[..., 2 * m_k])  # w_{V,+1,r}, noise (E19)
    # coordinate 1: the signal token y_i mu of every sample
    grad_sig[:, :m_k] = np.einsum("rn,rns->rs", g1y, dk) * mu
    grad_sig[:, m_k:2 * m_k] = np.einsum("rn,rns->rs", y, e) * mu
    grad_sig[:, 2 * m_k] = (cv * (at.S11 + at.S21) * y).sum(-1) * mu


# ---------------------------------------------------------------- the run

def run_fast(config: Config, seeds=None, vary=None, progress=None, workers=None,
             layout=None) -> Result:
    """``run`` with the fast kernel; ``seeds`` and ``vary`` batch replicas (leading axis R).

    With ``workers`` > 1 threads share the per-replica setup, and the test set and its
    evaluations run in a helper while the main thread goes on training: a forked process
    where ``forked.can_fork()`` (no shared interpreter lock), else a thread (NumPy releases
    the lock inside its loops). The training loop itself stays one vectorised pass over all
    replicas. Every number is computed by the same operations either way, so ``workers``
    changes no bit of the result. ``layout`` ("sample" or "coordinate") overrides
    ``layout_of(config.optimizer)``, for tests."""
    single = seeds is None and vary is None
    configs = [config] if single else _replica_configs(config, seeds, vary)
    kind = layout or layout_of(config.optimizer)
    if kind not in ("sample", "coordinate") or (kind == "sample" and config.optimizer == "adam"):
        raise ValueError(f"The 'layout' parameter must be 'sample' (SignGD, GD) or "
                         f"'coordinate'. Got {layout!r} with optimizer={config.optimizer!r}.")
    n_workers = resolve_workers(workers, len(configs))
    if n_workers == 1:
        return _run(config, configs, kind, progress, None, single, vary)
    from concurrent.futures import ThreadPoolExecutor

    fork = can_fork()  # asked before this function starts threads of its own
    with ThreadPoolExecutor(n_workers) as pool, ThreadPoolExecutor(1) as lane:
        return _run(config, configs, kind, progress, (pool, lane), single, vary, fork)


# by default, batches of at least this many replicas get 2 workers: with a helper process
# (docs/performance.md: 4 replicas of fig1 0.28 s -> 0.24 s), or else with a helper thread
WORKERS_FROM = {"process": 4, "thread": 32}


def resolve_workers(workers, R: int) -> int:
    """Workers for a batch of R replicas: ``workers`` if given; else 2 (one helper) from
    WORKERS_FROM replicas on, at most the available CPUs, and 1 below."""
    if workers is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        start = WORKERS_FROM["process" if can_fork() else "thread"]
        return max(1, min(cpus, 2 if R >= start else 1))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"The 'workers' parameter must be a positive int or None. "
                         f"Got {workers!r} instead.")
    return workers


def _replica_for(config: Config, kind: str, test_init: bool = False):
    """Data and training setup of one replica (in a worker thread when there is a pool);
    with ``test_init``, also E13 at the test coordinates (``_test_init``)."""
    key = init_key(config.seed)
    train, test = make_data(config)  # each replica its own seed and sigma_p
    part = _replica(config, train, key, kind)
    if test_init:
        part["test_init"] = _test_init(config, test, key)
    return (train, test), key, part


def _run(config: Config, configs: list, kind: str, progress, threads, single: bool, vary,
         fork: bool = False):
    """The kernel. ``threads`` is None or (pool, lane): the pool shares the per-replica
    setup; the lane (one helper thread, jobs in order) fills the history memory meanwhile.

    Then the test set and the test evaluations go to a helper beside the training loop:
    with ``fork``, a forked process (``forked.ForkedEvaluations``; the threads are stopped
    first), else the lane, which builds the test set while training starts (its replicas
    shared among the pool); evaluations queue behind it in the lane, and once it is built go
    to the pool. Nothing waits on an unfinished job but the lane's own, so this cannot
    deadlock."""
    pool, lane = threads or (None, None)
    R, rows = len(configs), 2 * config.m_k + 1
    # value_noise is kept as y_i <Delta, xi_i> (R, n) per step and built on access
    make_tracker = lambda background=False: Tracker(  # noqa: E731
        config, replicas=R, shape_of=_compact_shapes(config), background=background)
    # the history memory: filled by the lane during the setup; with a fork, after it (the
    # parent's writes to memory it shares with the child would each copy a page), by a
    # thread beside the training loop
    tracker = lane.submit(make_tracker) if lane is not None and not fork else None
    # with a fork, the pool also draws the test init (its normals run without the lock),
    # which leaves the helper process less to do before its first evaluation
    setups = (list(pool.map(lambda c: _replica_for(c, kind, fork), configs)) if pool is not None
              else [_replica_for(c, kind) for c in configs])
    if tracker is not None:  # filled in the lane while the pool did the setup
        tracker = tracker.result()
    data, keys, parts = (list(x) for x in zip(*setups))
    layout = (_SampleLayout if kind == "sample" else _CoordinateLayout)(config, parts, R)
    job = (config, configs, data, keys, parts, layout)
    lr = np.array([c.lr for c in configs])
    n_evals = len(schedule(config.steps, config.test_every))
    forked = None
    try:  # from the fork on: the child is stopped if anything fails
        if fork:
            pool.shutdown()  # no thread of ours may be running at the fork
            lane.shutdown()
            pool = lane = None
            if can_fork():
                forked = ForkedEvaluations(lambda: _test_set(*job), _test_metrics_of, n_evals,
                                           layout.test_state(layout.params, lr).shape, R,
                                           config.m_k)
        if tracker is None:
            tracker = make_tracker(background=forked is not None)
        if forked is not None:
            test = None
        elif lane is not None:
            test = lane.submit(_test_set, *job, pool)
        else:
            test = _test_set(*job)
        st = lambda k: np.stack([p[k] for p in parts])  # noqa: E731
        y = st("y")
        common = _Common(y=y, y_rows=np.repeat(y[:, :, None], rows, axis=2),
                         yP0V=y[:, None, None, :] * st("P0V"), S0V=st("S0V"), v0n=st("v0n"),
                         v0s=st("v0s"))
        params = init = layout.params
        inner = layout.inner
        if kind == "sample":
            lrB = np.repeat(lr[:, None, None] * layout.B, rows, axis=2)  # (R, n, rows), as y_rows
            inner = lambda p: layout.inner(p, lrB)  # noqa: E731
        opt = from_config(config.replace(lr=1.0))  # directions; the kernel scales by lr
        state = opt.init(params)
        record_row = {int(t): k for k, t in enumerate(tracker.steps)}
        test_row = {int(t): k for k, t in enumerate(tracker.test_steps)}
        pending = []  # test evaluations: (row, future) with a lane, (row, result) without
        C = np.empty((R, config.n, rows))  # noise-token gradient coefficient of (sample, row)
        grad_sig = np.empty((R, rows))
        scratch = (np.empty((R, config.n, config.m_k)), np.empty((R, config.n, config.m_k)))
        every = progress_every(config.steps)
        with np.errstate(over="ignore"):  # sigmoids: e^x = inf gives the right limit 0
            for t in range(config.steps + 1):
                if progress is not None and t % every == 0:
                    progress(t, config.steps)
                fw = _forward(common, inner(params), params.sig, config.m_k,
                              config.mu_norm)  # W^(t)
                if t in record_row:  # here: handing it to the lane measured no faster
                    _record(tracker.row(record_row[t]), common, fw)
                if t in test_row:
                    # contiguous signal parts: the same bits in every kind of helper
                    snap = (layout.test_state(params, lr), np.ascontiguousarray(fw.qs),
                            np.ascontiguousarray(fw.ks), fw.vs)
                    if forked is not None:  # rows are submitted in order 0, 1, ...
                        forked.submit(*snap)
                    elif lane is None:
                        pending.append((test_row[t], _test_metrics_of(test, *snap)))
                    else:  # behind the test set in the lane; once built, on any pool thread
                        pending.append((test_row[t], (pool if test.done() else lane).submit(
                            _evaluate, test, *snap)))
                if t == config.steps:
                    break
                _coefficients(common, fw, C, grad_sig, config, *scratch)
                direction, state = opt.update(layout.gradients(C, grad_sig), state)
                params = layout.apply(params, direction, lr)
        tracker.finish()
        _train_metrics(tracker.history)
        if forked is not None:
            for row, (loss, error) in enumerate(forked.results()):
                tracker.record_test(row, loss, error)
    finally:
        if forked is not None:
            forked.abort()  # nothing left to do if results() ran
    for row, metrics in pending:
        tracker.record_test(row, *(metrics.result() if lane is not None else metrics))
    reps = []
    for r, p in enumerate(parts):
        weights = {}
        for name, now in (("final", params), ("init", init)):
            if kind == "sample":
                W = _sample_weights_on_U(config, layout, now, r, p, lr[r])
            else:
                W = layout.weights_on_U(now, r, p["rep"], p["W0_U"])
            weights[name] = (W, p["W0V_U"] + _J[:, None, None] * W[2 * config.m_k])
        reps.append(dict(coords=p["coords"], **weights))
    history = _history(tracker.history, common, config.m_k, single)
    keys = np.array(keys, dtype=np.uint64)
    train, test = [d[0] for d in data], [d[1] for d in data]
    return Result(config=config, steps=tracker.steps, test_steps=tracker.test_steps,
                  history=history, params=_sparse_params(config, reps, "final", keys, single),
                  init_params=_sparse_params(config, reps, "init", keys, single),
                  dataset=train[0] if single else train, test_dataset=test[0] if single else test,
                  seeds=None if single else tuple(c.seed for c in configs),
                  varied={} if not vary else {k: np.array([getattr(c, k) for c in configs])
                                              for k in vary})


_J = np.array([1.0, -1.0])  # value heads j = +1, -1


def _compact_shapes(config: Config) -> dict:
    """What the fast kernel records instead of six of the quantities (see _history)."""
    rows = 2 * config.m_k + 1
    return {"noise_products": (config.n, rows), "signal_products": (rows,),
            **dict.fromkeys(_FROM_PRODUCTS)}


_FROM_PRODUCTS = ("query_signal", "key_signal", "query_noise", "key_noise", "value_signal",
                  "value_noise")


def _history(arrays: dict, common: _Common, m_k: int, single: bool) -> History:
    """The recorded arrays, six quantities built on first access from two compact records.

    The run records y_i <w_row, xi_i> (R, T, n, rows) and <w_row, mu> (R, T, rows) for the
    rows W_Q, W_K, Delta. query_noise and key_noise are views of the first; and E19 gives
    every value row the same update up to j, so
    <w_{V,j,r}(t), y_i xi_i> = <w_{V,j,r}(0), y_i xi_i> + j y_i <Delta(t), xi_i>: one number
    per sample and step instead of 2 m_v (274 MB of 100 fig1 replicas)."""
    noise = arrays.pop("noise_products")  # (R, T, n, rows)
    signal = arrays.pop("signal_products")  # (R, T, rows)
    pick = (lambda x: x[0]) if single else (lambda x: x)  # noqa: E731
    built = {
        "query_signal": lambda: pick(signal[..., :m_k]),
        "key_signal": lambda: pick(signal[..., m_k:2 * m_k]),
        "query_noise": lambda: pick(np.swapaxes(noise[..., :m_k], -1, -2)),
        "key_noise": lambda: pick(np.swapaxes(noise[..., m_k:2 * m_k], -1, -2)),
        "value_signal": lambda: pick(common.S0V[:, None]
                                     + _J[:, None] * signal[:, :, None, None, 2 * m_k]),
        "value_noise": lambda: pick(common.yP0V[:, None]
                                    + _J[:, None, None] * noise[:, :, None, None, :, 2 * m_k]),
    }
    if single:
        arrays = {k: v[0] for k, v in arrays.items()}
    return History(arrays, built)


def _record(out: dict, common: _Common, fw: _Forward) -> None:
    """Spec section 6 at the current step, written into ``out`` (Tracker.row views, each
    with a leading replica axis); six quantities in the compact form of _history."""
    y = common.y
    np.multiply(common.y_rows, fw.P, out=out["noise_products"])
    out["signal_products"][...] = fw.sig
    out["mean_value_signal"][...] = fw.vs
    np.multiply(y, fw.vn, out=out["mean_value_noise"])
    attention = out["attention"].reshape(y.shape + (4,))
    for k in range(4):  # four strided writes: faster than one copy of a moved axis
        attention[..., k] = fw.at.S[k]
    out["margin"][...] = fw.margin
    out["loss_derivative"][...] = fw.lp
    # train_loss and train_error follow from the margins after the loop (_train_metrics)


def _train_metrics(history: dict, rows: int = 1024) -> None:
    """train_loss and train_error (E15) of every record from the recorded margins, in one
    pass after the loop instead of eight NumPy calls per step inside it; ``rows`` records
    at a time, so that the temporary stays small. The same numbers as computing them at
    each step: elementwise l(z), then a sum over the n samples of each record."""
    margin, n = history["margin"], history["margin"].shape[-1]
    for start in range(0, margin.shape[-2], rows):
        part = margin[..., start:start + rows, :]  # ([R,] rows, n)
        history["train_loss"][..., start:start + rows] = _mean_last(_loss(part), n)
        history["train_error"][..., start:start + rows] = _mean_last(part <= 0, n)


def _mean_last(x: np.ndarray, n: int) -> np.ndarray:
    """x.mean(-1) (the same bits: a float64 sum, then a division by n) without np.mean's
    Python-level overhead."""
    return np.add.reduce(x, axis=-1, dtype=np.float64) / n


def _loss(margin: np.ndarray) -> np.ndarray:
    """l(z) = log(1 + e^-z) (E14) as log1p(e^-|z|) + max(-z, 0): stable both ways, and
    several times faster than np.logaddexp."""
    out = np.abs(margin)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out -= np.minimum(margin, 0.0)  # + max(-z, 0), the same number
    return out


class _TestSet(NamedTuple):
    """The test set of a batch: frozen parts computed once, and where the state enters.

    <w_row(t), xi> = o_row (frozen) + (M @ Z)[row] with Z the layout's state (columns of
    its test matrix M). Only the "hit" test samples, with a coordinate in U, have an entry
    in M; they come first in each replica (``_hits_first``), so M has H rows per replica,
    H the largest number of hits (a replica with fewer has empty rows there).

    Frozen parts that the logits need times the label y = +-1 are kept multiplied by it: a
    sign change is exact, so y (a + b) = y a + y b bit for bit."""

    y: np.ndarray  # (R, n_test)
    yoQ: np.ndarray  # (R, n_test, m_k) y times the frozen part of <w_{Q,s}, xi>
    yoK: np.ndarray  # (R, n_test, m_k) y times the frozen part of <w_{K,s}, xi>
    z22: np.ndarray  # (R, n_test) <oQ, oK>: the noise-noise logit without the state
    yv0: np.ndarray  # (R, n_test) y <v(0), xi>
    yM: csr_matrix  # (R H, columns): the test matrix, row j times y_j
    H: int
    yo_hits: np.ndarray  # (R, H, 2 m_k + 3) y times the frozen parts (Q part, K part) of the
    # first H samples, then three zeros: what the corrections of _test_metrics add to
    column_replica: np.ndarray  # (columns,) replica of each column of the state


def _test_set(config: Config, configs: list, data: list, keys: list, parts: list,
              layout, pool=None) -> _TestSet:
    """The test set of a batch (in the lane while training starts, its replicas shared
    among the pool's threads)."""
    kind = "sample" if isinstance(layout, _SampleLayout) else "coordinate"
    work = lambda r: _replica_test(configs[r], data[r][1], keys[r], parts[r], kind)  # noqa
    tparts = list((pool.map if pool is not None else map)(work, range(len(configs))))
    m_k = config.m_k
    M, H = layout.test_matrix(tparts)
    off = np.stack([p["off_t"] for p in tparts])  # (R, n_test, 2 m_k): Q part, K part
    y = np.stack([p["yt"] for p in tparts])
    yo = y[..., None] * off
    M.data *= y[:, :H].ravel()[np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))]
    yo_hits = np.zeros((len(configs), H, 2 * m_k + 3))
    yo_hits[..., :2 * m_k] = yo[:, :H]
    return _TestSet(y=y, yoQ=np.ascontiguousarray(yo[..., :m_k]),
                    yoK=np.ascontiguousarray(yo[..., m_k:]),
                    z22=np.einsum("rns,rns->rn", off[..., :m_k], off[..., m_k:]),
                    yv0=y * np.stack([p["v0t"] for p in tparts]), yM=M, H=H,
                    yo_hits=yo_hits, column_replica=layout.column_replica)


def _evaluate(test, Z: np.ndarray, qs: np.ndarray, ks: np.ndarray, vs: np.ndarray):
    """_test_metrics_of once the test set is ready (``test`` may be a Future of it)."""
    return _test_metrics_of(test.result() if hasattr(test, "result") else test, Z, qs, ks, vs)


def _test_metrics_of(test: _TestSet, Z: np.ndarray, qs: np.ndarray, ks: np.ndarray,
                     vs: np.ndarray):
    """_test_metrics from the state Z and the signal parts qs, ks (R, m_k), vs (R,) of the
    forward pass (what a helper process is handed)."""
    return _test_metrics(test, Z, _Signal(qs, ks, vs), qs.shape[1])


class _Signal(NamedTuple):
    """The parts of a forward pass that test predictions need."""

    qs: np.ndarray  # (R, m_k) <w_{Q,s}, mu>
    ks: np.ndarray  # (R, m_k)
    vs: np.ndarray  # (R,) <v, mu>


def _test_metrics(test: _TestSet, Z: np.ndarray, fw: _Signal, m_k: int):
    """Test loss and error (E12, E15) from the frozen parts and the state Z (columns, rows).

    By linearity the state enters each logit and the value only at the hit samples:
    <K part, q_signal> and <Q part, k_signal> are per-column numbers, so one sparse product
    gives every correction. Written with y folded in (exact, see _TestSet; z22 is a sum of
    products (y a)(y b) = a b, so the hits' parts may carry y too):
    margin = y f = 2 y v + S (<v, mu> - y v) with S = S11 + S21 and
    S11 = 1 / (1 + e^(y z12 - z11)), S21 = 1 / (1 + e^(z22 - y z21))  (E9, E10, E12, L = 2)."""
    R, H = test.y.shape[0], test.H
    rep = test.column_replica
    # the state's columns and two per-column numbers, then one sparse product for all the
    # corrections (a product costs mostly its R H rows, not its columns), y folded in
    Zc = np.empty((Z.shape[0], 2 * m_k + 3))
    Zc[:, :2 * m_k] = Z[:, :2 * m_k]
    np.einsum("cs,cs->c", Z[:, m_k:2 * m_k], fw.qs[rep], out=Zc[:, 2 * m_k])  # <K part, q_signal>
    np.einsum("cs,cs->c", Z[:, :m_k], fw.ks[rep], out=Zc[:, 2 * m_k + 1])  # <Q part, k_signal>
    Zc[:, 2 * m_k + 2] = Z[:, 2 * m_k]  # Delta
    hits = (test.yM @ Zc).reshape(R, H, 2 * m_k + 3)
    hits += test.yo_hits  # one contiguous pass: y <w_Q, xi>, y <w_K, xi> of the hits
    aQK, A = hits[..., :2 * m_k], hits[..., 2 * m_k:]
    # y z12, y z21 (E9): the frozen parts, then the hits' corrections
    z12 = np.matmul(test.yoK, fw.qs[:, :, None])[..., 0]  # (R, n_test)
    z21 = np.matmul(test.yoQ, fw.ks[:, :, None])[..., 0]
    z12[:, :H] += A[..., 0]
    z21[:, :H] += A[..., 1]
    z22 = test.z22.copy()
    np.einsum("rhs,rhs->rh", aQK[..., :m_k], aQK[..., m_k:], out=z22[:, :H])
    yv = test.yv0.copy()  # y v = y v(0) + 2 y (Delta part)                     (E11)
    yv[:, :H] += 2.0 * A[..., 2]
    z11 = np.einsum("rs,rs->r", fw.qs, fw.ks)[:, None]
    with np.errstate(over="ignore"):  # exp overflow -> inf -> S = 0, the right limit
        S = np.subtract(z12, z11)
        _sigmoid_of_negative(S)
        S21 = np.subtract(z22, z21)
        _sigmoid_of_negative(S21)
        S += S21
    margin = np.subtract(fw.vs[:, None], yv)
    margin *= S
    yv *= 2.0
    margin += yv
    n_test = margin.shape[-1]
    return _mean_last(_loss(margin), n_test), _mean_last(margin <= 0, n_test)


def _sparse_params(config: Config, reps: list, which: str, keys, single: bool):
    """Weights on U of every replica, one column per coordinate (padded with -1)."""
    m_k = config.m_k
    u = max(len(x["coords"]) for x in reps)
    R = len(reps)
    coords = np.full((R, u), -1, dtype=np.int64)
    WQK = np.zeros((R, 2 * m_k + 1, u))
    WV = np.zeros((R, 2, config.m_v, u))
    for r, x in enumerate(reps):
        k = len(x["coords"])
        coords[r, :k] = x["coords"]
        WQK[r, :, :k], WV[r, :, :, :k] = x[which]
    if single:
        return SparseParams(coords=coords[0], W_Q_active=WQK[0, :m_k],
                            W_K_active=WQK[0, m_k:2 * m_k], W_V_active=WV[0], keys=keys[0],
                            d=config.d, sigma_0=config.sigma_0)
    return SparseParams(coords=coords, W_Q_active=WQK[:, :m_k], W_K_active=WQK[:, m_k:2 * m_k],
                        W_V_active=WV, keys=keys, d=config.d, sigma_0=config.sigma_0)


def _sample_weights_on_U(config, layout, params, r, part, lr):
    """w(t) = w(0) + lr N b at a coordinate held by one support, the own weight if shared."""
    out = part["W0_U"].copy()
    out[:, 0] = params.sig[r]
    vals = part["vals"]
    b = np.sign(vals) if config.optimizer == "signgd" else vals
    i, a = part["rep"][:, 0], part["rep"][:, 1]
    out[:, 1:] += (params.N[r, i] * lr).T * b[i, a]
    out[:, part["group_in_U"]] = params.shared[layout.goff[r]:layout.goff[r + 1]].T
    return out


VARIABLE = ("lr", "sigma_p")  # what replicas of one batch may differ in, besides the seed


def _replica_configs(config: Config, seeds, vary) -> list[Config]:
    """One validated Config per replica of a batch."""
    vary = dict(vary or {})
    unknown = sorted(set(vary) - set(VARIABLE))
    if unknown:
        raise ValueError(f"The 'vary' parameter may set {list(VARIABLE)} per replica. "
                         f"Got {unknown} instead.")
    lengths = {k: len(v) for k, v in vary.items()}
    if seeds is not None:
        seeds = list(seeds)
        lengths["seeds"] = len(seeds)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"The 'seeds' and 'vary' sequences must have one length. Got {lengths}.")
    R = next(iter(lengths.values()), 0)
    if R == 0:
        raise ValueError("The 'seeds' parameter must be a non-empty sequence of ints. Got [].")
    seeds = seeds if seeds is not None else [config.seed] * R
    return [config.replace(seed=seeds[r], **{k: v[r] for k, v in vary.items()})
            for r in range(R)]
