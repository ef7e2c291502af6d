"""The two ways the fast kernel keeps the weights on U, for a batch of R replicas.

What every step needs from the weights is, for each row and training sample i, the inner
product P[i, row] = <w_row, xi_i>, and the weights at coordinate 1 (``sig``). At a coordinate
k of B_i that no other support holds, the gradient of a row is C[i, row] xi_i[k] (E17-E19 on
the noise token): one coefficient per (sample, row).

* **Per sample** (``SampleLayout``), for an optimizer that declares ``homogeneity = p``
  (``signsim.optim``): scaling a coordinate's gradient history by xi_i[k] scales its updates
  by b_i[k] = sign(xi_i[k]) |xi_i[k]|^p, so the rule run on C itself gives
  w_row[k](t) = w_row[k](0) + lr N[i, row](t) b_i[k], with N the sum of its updates, and
  P = P(0) + lr N sum_k b_i[k] xi_i[k]: a step costs O(n m), not O(n s m). A coordinate
  held by several supports keeps its own weight, its gradient summed in sample order.
* **Per coordinate** (``CoordinateLayout``), for any entrywise rule: the weights at each
  sample's support, sample-major, ``theta[r, i, row, a] = w_row[B_i[a]]``, one copy per
  sample of a shared coordinate; its contributions are summed and written to every copy, so
  the copies stay bit-equal.

Both give the optimizer a NamedTuple of gradients with the structure of their params, and
take its updates back; ``state_columns`` is what test predictions multiply (testset.py).

Decoupled weight decay (E22b), ``decay`` a = 1 - lr wd per replica: ``apply`` gives
a state + update. Per coordinate the state is the weights themselves. Per sample,
w(t) = a w(t-1) + lr u b gives w(t) = c_t w(0) + lr N(t) b with c_t = a^t and
N(t) = a N(t-1) + u: the sums decay like the weights and the init part of P is c_t P(0)
(``inner``'s ``init_scale``); the value rows Delta_j and the shared weights decay as state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix

from ...logspace import grouped_sum, split
from .exact import sign_log

__all__ = ["SampleParams", "CoordinateParams", "SampleLayout", "CoordinateLayout",
           "homogeneous_factor", "csr"]


def homogeneous_factor(values: np.ndarray, p: float) -> np.ndarray:
    """b = sign(x) |x|^p: what a rule homogeneous of degree p (``optim`` docstring) makes of
    a gradient C x, per unit of C. sign(x) for p = 0, x itself for p = 1 (exactly)."""
    if p == 0:
        return np.sign(values)
    if p == 1:
        return values.copy()
    return np.sign(values) * np.abs(values) ** p


def _decayed(x: np.ndarray, decay, replica=None) -> np.ndarray:
    """x times its replica's weight-decay factor (E22b); x itself for ``decay`` None.
    ``replica`` gives the replica of each entry of x's first axis (default: it is the
    replica axis)."""
    if decay is None:
        return x
    a = decay if replica is None else decay[replica]
    return x * a.reshape(a.shape + (1,) * (x.ndim - 1))


def csr(values, rows, cols, shape) -> csr_matrix:
    """A sparse matrix whose rows are summed in column order, the same in any batch."""
    m = csr_matrix((values, (rows, cols)), shape=shape)
    m.sort_indices()
    return m


class SampleParams(NamedTuple):
    N: np.ndarray  # (R, n, rows) running sum of the updates of each (sample, row), at lr 1
    sig: np.ndarray  # (R, rows) weights at coordinate 1
    shared: np.ndarray  # (G, rows) weights at the coordinates several supports hold


class SampleLayout:
    """Per-(sample, row) running sums (module docstring)."""

    def __init__(self, supports: list, p: float, decay=None):
        R, (n, s) = len(supports), supports[0].values.shape
        self.R, self.n, self.p, self.decay = R, n, p, decay  # decay: (R,) 1 - lr wd or None
        excl = [~x.shared.reshape(n, s) for x in supports]
        self.b = [np.where(e, homogeneous_factor(x.values, p), 0.0)
                  for x, e in zip(supports, excl)]  # (n, s), 0 at shared slots
        self.P0 = np.stack([np.einsum("kns,ns->nk", x.W0[:, x.slot_col], x.values * e)
                            for x, e in zip(supports, excl)])  # (R, n, rows)
        self.B = np.stack([(b * x.values).sum(-1) for b, x in zip(self.b, supports)])
        groups = [np.flatnonzero(x.count > 1) for x in supports]  # shared columns, U order
        self.groups = groups
        G_r = [len(g) for g in groups]
        self.goff = goff = np.r_[0, np.cumsum(G_r)]  # replica r's groups: goff[r]:goff[r+1]
        self.params = SampleParams(np.zeros_like(self.P0), np.stack([x.W0[:, 0] for x in supports]),
                                   np.concatenate([x.W0[:, g].T for x, g in zip(supports, groups)]))
        # columns of the test state: R n per-sample sums, then the G shared weights
        self.column_replica = np.r_[np.repeat(np.arange(R), n), np.repeat(np.arange(R), G_r)]
        self.group_replica = np.repeat(np.arange(R), G_r)
        self.to_groups = self.to_samples = self.copies = None
        if goff[-1]:  # copy (r, i, group) of a shared coordinate has value xi_i there
            c_r, c_i, c_a, c_g = _copies(supports, groups, goff)
            c_val = np.stack([x.values for x in supports])[c_r, c_i, c_a]
            self.copies = _Copies.of(c_r * n + c_i, c_g, c_val)
            # gradient of a shared weight: sum over its copies of C[r, i] xi_i, in sample order
            self.to_groups = csr(c_val, c_g, c_r * n + c_i, (goff[-1], R * n))
            # its part of P[r, i]: sum over the copies of sample i of weight * xi_i
            self.to_samples = csr(c_val, c_r * n + c_i, c_g, (R * n, goff[-1]))

    def inner(self, params: SampleParams, lrB: np.ndarray, init_scale=None) -> np.ndarray:
        """P (R, n, rows); ``lrB`` is lr B repeated along the rows (see FastKernel);
        ``init_scale`` (R,) the factor c_t of the init under weight decay, or None."""
        P0 = self.P0 if init_scale is None else self.P0 * init_scale[:, None, None]
        P = P0 + params.N * lrB
        if self.to_samples is not None:
            P += (self.to_samples @ params.shared).reshape(P.shape)
        return P

    def gradients(self, C: np.ndarray, grad_sig: np.ndarray) -> SampleParams:
        if self.to_groups is None:
            return SampleParams(C, grad_sig, np.zeros((0, C.shape[-1])))
        return SampleParams(C, grad_sig, self.to_groups @ C.reshape(-1, C.shape[-1]))

    def log_gradients(self, c, magnitudes: bool):
        """``gradients`` of the ``Coefficients`` ``c`` (``exact``) in (sign, log) form: two
        SampleParams, signs and logs (logs None unless ``magnitudes``)."""
        rows = c.part.shape[-1]
        if self.copies is None:
            gs = gl = np.zeros((0, rows))
        else:
            gs, gl = self.copies.sums(c.part.reshape(-1, rows), c.scale.reshape(-1, rows))
        signs = SampleParams(np.sign(c.part), np.sign(c.sig_part), gs)
        if not magnitudes:
            return signs, None
        return signs, SampleParams(*sign_log(c.part, c.scale)[1:],
                                   sign_log(c.sig_part, c.sig_scale)[1], gl)

    def apply(self, params: SampleParams, updates: SampleParams, lr: np.ndarray) -> SampleParams:
        a, shared = self.decay, params.shared
        if self.to_groups is not None:
            shared = (_decayed(shared, a, self.group_replica)
                      + updates.shared * lr[self.group_replica][:, None])
        return SampleParams(_decayed(params.N, a) + updates.N,
                            _decayed(params.sig, a) + updates.sig * lr[:, None], shared)

    def state_columns(self, params: SampleParams, lr: np.ndarray) -> np.ndarray:
        steps = (params.N * lr[:, None, None]).reshape(-1, params.N.shape[-1])
        return np.concatenate([steps, params.shared])

    def test_entries(self, r: int, support, in_U: np.ndarray, col: np.ndarray,
                     values: np.ndarray):
        """The frozen test values (the init of exclusive coordinates stays in the frozen
        part) and the entries (test sample, state column, value) of replica r's test slots
        in U; ``in_U``, ``col`` (column in U) and ``values`` are (n_test, s)."""
        s = support.values.shape[1]
        shared_col = support.count[col] > 1
        frozen = np.where(in_U & shared_col, 0.0, values)
        j, a = np.nonzero(in_U)
        cols, vals, sh = col[j, a], values[j, a], shared_col[j, a]
        i_slot, a_slot = np.divmod(support.first_slot[cols[~sh]], s)
        group = np.searchsorted(self.groups[r], cols[sh])
        entries = (np.r_[j[~sh], j[sh]],
                   np.r_[r * self.n + i_slot, self.R * self.n + self.goff[r] + group],
                   np.r_[self.b[r][i_slot, a_slot] * vals[~sh], vals[sh]])
        return frozen, entries

    def weights_on_U(self, params: SampleParams, r: int, support, lr: float,
                     init_scale: float = 1.0) -> np.ndarray:
        """(rows, u): c_t w(0) + lr N b at a coordinate one support holds (c_t =
        ``init_scale``, 1 without weight decay), the own weight if shared."""
        out = support.W0.copy() if init_scale == 1.0 else support.W0 * init_scale
        out[:, 0] = params.sig[r]
        i, a = support.slot_of_column.T
        out[:, 1:] += (params.N[r, i] * lr).T * self.b[r][i, a]
        out[:, self.groups[r]] = params.shared[self.goff[r]:self.goff[r + 1]].T
        return out


def _copies(supports: list, groups: list, goff: np.ndarray):
    """(replica, sample, slot, global group) of every training slot at a shared coordinate."""
    parts = []
    for r, (x, g) in enumerate(zip(supports, groups)):
        pos = np.flatnonzero(x.shared)
        i, a = np.divmod(pos, x.values.shape[1])
        parts.append((np.full(pos.size, r), i, a, goff[r] + np.searchsorted(g, x.slot_col[i, a])))
    return tuple(np.concatenate(c) for c in zip(*parts))


class _Copies(NamedTuple):
    """The copies (sample row, value there) of each shared coordinate, in group order and
    sample order within a group (the order of ``SampleLayout.to_groups``' sums)."""

    row: np.ndarray  # (c,) r n + i
    sign: np.ndarray  # (c,) sign of xi_i at the coordinate
    log: np.ndarray  # (c,) log|xi_i| there
    starts: np.ndarray  # (groups,) first copy of each group

    @classmethod
    def of(cls, row, group, value) -> "_Copies":
        order = np.lexsort((row, group))
        group = group[order]
        return cls(row[order], *split(value[order]),
                   np.flatnonzero(np.r_[True, group[1:] != group[:-1]]))

    def sums(self, part: np.ndarray, scale: np.ndarray):
        """sum over the copies of C[row] xi, per group, in (sign, log) form, for
        C = part * exp(scale) (``exact.Coefficients``), (R n, rows) each."""
        sign, log = sign_log(part[self.row], scale[self.row])
        return grouped_sum(sign * self.sign[:, None], log + self.log[:, None], self.starts)


class CoordinateParams(NamedTuple):
    noise: np.ndarray  # (R, n, rows, s) weights at each sample's support
    sig: np.ndarray  # (R, rows) weights at coordinate 1


class _Overlap(NamedTuple):
    """Copies of coordinates shared by several supports, sorted by (replica, coordinate, i)."""

    r: np.ndarray  # (c,)
    i: np.ndarray  # (c,)
    a: np.ndarray  # (c,)
    starts: np.ndarray  # (groups,) first copy of each shared coordinate
    group: np.ndarray  # (c,) group of each copy


class CoordinateLayout:
    """Per-coordinate weights (module docstring); exact for any entrywise rule."""

    def __init__(self, supports: list, decay=None):
        R, (n, s) = len(supports), supports[0].values.shape
        self.R, self.n, self.s, self.decay = R, n, s, decay  # decay: (R,) 1 - lr wd or None
        self.vals = np.stack([x.values for x in supports])  # (R, n, s)
        self.val_sign, self.val_log = (a[:, :, None, :] for a in split(self.vals))
        # C order (np.stack would keep the transposed memory order): every later state
        # array follows it, and so does one read back from a checkpoint, so that a resumed
        # run sums in the same order, to the same bits
        self.params = CoordinateParams(
            np.ascontiguousarray(np.stack([x.W0[:, x.slot_col].transpose(1, 0, 2)
                                           for x in supports])),
            np.stack([x.W0[:, 0] for x in supports]))
        self.column_replica = np.repeat(np.arange(R), n * s)  # of the test state's columns
        parts = []
        for r, x in enumerate(supports):
            pos = np.flatnonzero(x.shared)
            parts.append((np.full(pos.size, r), *np.divmod(pos, s), x.slot_col.ravel()[pos]))
        sh_r, sh_i, sh_a, sh_c = (np.concatenate(c) for c in zip(*parts))
        self.overlap = None
        if sh_r.size:
            o = np.lexsort((sh_i, sh_c, sh_r))
            sh_r, sh_i, sh_a, sh_c = sh_r[o], sh_i[o], sh_a[o], sh_c[o]
            new = np.r_[True, (sh_c[1:] != sh_c[:-1]) | (sh_r[1:] != sh_r[:-1])]
            self.overlap = _Overlap(sh_r, sh_i, sh_a, np.flatnonzero(new), np.cumsum(new) - 1)

    def inner(self, params: CoordinateParams, lrB=None, init_scale=None) -> np.ndarray:
        """P (R, n, rows): the state holds the weights themselves (decayed ones too)."""
        return np.einsum("rnks,rns->rnk", params.noise, self.vals)  # (R, n, rows)

    def gradients(self, C: np.ndarray, grad_sig: np.ndarray) -> CoordinateParams:
        grad_noise = C[..., None] * self.vals[:, :, None, :]  # (R, n, rows, s)
        ov = self.overlap
        if ov is not None:  # a coordinate in several supports: sum the contributions
            total = np.add.reduceat(grad_noise[ov.r, ov.i, :, ov.a], ov.starts, axis=0)
            grad_noise[ov.r, ov.i, :, ov.a] = total[ov.group]
        return CoordinateParams(grad_noise, grad_sig)

    def log_gradients(self, c, magnitudes: bool):
        """As ``SampleLayout.log_gradients``: two CoordinateParams."""
        gs = np.sign(c.part)[..., None] * self.val_sign  # (R, n, rows, s)
        sig_sign, sig_log = sign_log(c.sig_part, c.sig_scale)
        if not (magnitudes or self.overlap is not None):
            return CoordinateParams(gs, sig_sign), None
        gl = (np.log(np.abs(c.part)) + c.scale)[..., None] + self.val_log
        ov = self.overlap
        if ov is not None:
            ts, tl = grouped_sum(gs[ov.r, ov.i, :, ov.a], gl[ov.r, ov.i, :, ov.a], ov.starts)
            gs[ov.r, ov.i, :, ov.a], gl[ov.r, ov.i, :, ov.a] = ts[ov.group], tl[ov.group]
        return CoordinateParams(gs, sig_sign), CoordinateParams(gl, sig_log)

    def apply(self, params, updates, lr):
        a = self.decay
        return CoordinateParams(_decayed(params.noise, a) + updates.noise * lr[:, None, None, None],
                                _decayed(params.sig, a) + updates.sig * lr[:, None])

    def state_columns(self, params, lr) -> np.ndarray:
        return params.noise.transpose(0, 1, 3, 2).reshape(-1, params.noise.shape[2])

    def test_entries(self, r: int, support, in_U, col, values):
        """As ``SampleLayout.test_entries``: here every coordinate of U is in the state."""
        j, a = np.nonzero(in_U)
        entries = (j, r * self.n * self.s + support.first_slot[col[j, a]], values[j, a])
        return np.where(in_U, 0.0, values), entries

    def weights_on_U(self, params, r: int, support, lr: float,
                     init_scale: float = 1.0) -> np.ndarray:
        """(rows, u): the state's weights (``init_scale`` is in them already)."""
        out = np.empty_like(support.W0)
        out[:, 0] = params.sig[r]
        i, a = support.slot_of_column.T
        out[:, 1:] = params.noise[r, i, :, a].T
        return out
