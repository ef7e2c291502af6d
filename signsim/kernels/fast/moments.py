"""Per-coordinate weights with the moments of an Adam-like rule kept per (sample, row).

For an optimizer that declares ``moments`` (``signsim.optim.Moments``: m an EMA of g, v an
EMA of g^2, the update a function of (m, v, t)), at a coordinate k that only sample i's
support holds the gradient of a row is C[i, row] x_k (x = xi_i, E17-E19 on the noise
token), so m_k = x_k M[i, row] and v_k = x_k^2 V[i, row] with M, V the moments of C itself.
E21's update is then

    u_k = -lr x_k Mhat / (|x_k| sqrt(Vhat) + eps) = x_k A / (|x_k| B + eps)

with (A, B) = ``scales(M, V, t)`` per (sample, row). eps > 0 keeps |x_k| in it, so the
weights stay per coordinate (those of ``CoordinateLayout``, theta[r, i, row, a]), but a
step is one pass over them instead of m, v per coordinate and some 20 passes. The state
holds them with the sign of x folded in, phi = sigma theta with sigma = sign(x) (+1 where
x >= 0 and at shared slots), so that the pass is phi += (lr A) / (B + eps / |x|) and
P = <phi, sigma x> (the same products as <theta, x>, to the bit); the test state and the
weights unfold it. Coordinate 1 and the coordinates several supports hold keep their own
m, v: the optimizer's own rule runs on them (``Own``); their copies in phi are written
from it (eps / |x| = inf there makes the pass add 0).

Decoupled weight decay (E22b): phi, coordinate 1 and the shared weights are multiplied
by each replica's a = 1 - lr wd before the update is added, as in ``layouts``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .layouts import CoordinateLayout, CoordinateParams, _decayed

__all__ = ["MomentLayout", "Own", "MomentGrads", "MomentUpdates", "MomentState"]


class Own(NamedTuple):
    """The weights that keep their own moments: what the optimizer's rule runs on."""

    sig: np.ndarray  # (R, rows) coordinate 1
    shared: np.ndarray  # (c, rows) each copy of a shared coordinate (copies stay equal)


class MomentGrads(NamedTuple):
    C: np.ndarray  # (R, n, rows) gradient per unit of x at an exclusive slot
    sig: np.ndarray  # (R, rows)
    shared: np.ndarray  # (c, rows) the summed gradient of a shared coordinate, per copy


class MomentUpdates(NamedTuple):
    A: np.ndarray  # (R, n, rows) u = x A / (|x| B + eps) at an exclusive slot
    B: np.ndarray  # (R, n, rows)
    own: Own  # the rule's updates of coordinate 1 and the shared copies


class MomentState(NamedTuple):
    count: int
    M: np.ndarray  # (R, n, rows) EMA of C (rate beta1)
    V: np.ndarray  # (R, n, rows) EMA of C^2 (rate beta2)
    own: Any  # the optimizer's state on ``Own``


class MomentLayout(CoordinateLayout):
    """``CoordinateLayout``'s weights, moments per (sample, row) (module docstring)."""

    def __init__(self, supports: list, moments, decay=None):
        super().__init__(supports, decay)
        if not moments.eps > 0.0:
            raise ValueError("The 'eps' parameter must be > 0 for the moment layout (it "
                             f"divides by |x| B + eps). Got {moments.eps!r} instead.")
        self.eps = moments.eps
        exclusive = np.stack([~x.shared.reshape(x.values.shape) for x in supports])
        # (R, n, 1, s): sigma (module docstring), and eps / |x| (inf at shared slots)
        self.sigma = np.where(exclusive & (self.vals < 0.0), -1.0, 1.0)[:, :, None, :]
        self.folded_vals = self.sigma[:, :, 0, :] * self.vals  # (R, n, s): |x| if exclusive
        with np.errstate(divide="ignore"):  # x = 0: inf, no step, as u = 0 there
            self.x_eps = np.where(exclusive, self.eps / np.abs(self.vals),
                                  np.inf)[:, :, None, :]
        ov = self.overlap
        self.copies = (np.zeros(0, int),) * 3 if ov is None else (ov.r, ov.i, ov.a)
        self.params = self.params._replace(noise=self.params.noise * self.sigma)

    def optimizer(self, opt):
        """``opt`` with init and update acting on this layout's gradients (``MomentGrads``):
        M, V per (sample, row) by ``opt.moments``, ``opt`` itself on ``Own``."""
        rule = opt.moments
        b1, c1, b2, c2 = rule.beta1, 1.0 - rule.beta1, rule.beta2, 1.0 - rule.beta2

        def init(params: CoordinateParams):
            r, i, a = self.copies
            own = Own(params.sig, params.noise[r, i, :, a])
            shape = params.noise.shape[:3]
            return MomentState(0, np.zeros(shape), np.zeros(shape), opt.init(own))

        def update(grads: MomentGrads, state: MomentState):
            t = state.count + 1
            M = b1 * state.M + c1 * grads.C
            V = b2 * state.V + c2 * (grads.C * grads.C)
            own, own_state = opt.update(Own(grads.sig, grads.shared), state.own)
            A, B = rule.scales(M, V, t)
            return MomentUpdates(A, B, own), MomentState(t, M, V, own_state)

        return opt._replace(init=init, update=update)

    def gradients(self, C: np.ndarray, grad_sig: np.ndarray) -> MomentGrads:
        r, i, a = self.copies
        shared = C[r, i] * self.vals[r, i, a][:, None]  # (c, rows) each copy's contribution
        ov = self.overlap
        if ov is not None:  # summed in sample order, as CoordinateLayout sums them
            shared = np.add.reduceat(shared, ov.starts, axis=0)[ov.group]
        return MomentGrads(C, grad_sig, shared)

    def inner(self, params: CoordinateParams, lrB=None, init_scale=None) -> np.ndarray:
        """P (R, n, rows) = <phi, sigma x> = <theta, x>."""
        return np.einsum("rnks,rns->rnk", params.noise, self.folded_vals)

    def _unfolded(self, params: CoordinateParams) -> CoordinateParams:
        """The weights theta = sigma phi (as ``CoordinateLayout`` keeps them)."""
        return params._replace(noise=params.noise * self.sigma)

    def state_columns(self, params, lr) -> np.ndarray:
        return super().state_columns(self._unfolded(params), lr)

    def weights_on_U(self, params, r: int, support, lr: float,
                     init_scale: float = 1.0) -> np.ndarray:
        one = CoordinateParams(params.noise[r:r + 1] * self.sigma[r:r + 1], params.sig[r:r + 1])
        return super().weights_on_U(one, 0, support, lr, init_scale)

    def apply(self, params: CoordinateParams, updates: MomentUpdates, lr: np.ndarray):
        """phi + (lr A) / (B + eps / |x|): the one pass over the weights."""
        step = updates.B[..., None] + self.x_eps  # (R, n, rows, s)
        np.divide((updates.A * lr[:, None, None])[..., None], step, out=step)
        a = self.decay
        noise = np.add(_decayed(params.noise, a), step, out=step)
        r, i, k = self.copies
        if r.size:
            noise[r, i, :, k] = (_decayed(params.noise[r, i, :, k], a, r)
                                 + updates.own.shared * lr[r][:, None])
        return CoordinateParams(noise, _decayed(params.sig, a) + updates.own.sig * lr[:, None])
