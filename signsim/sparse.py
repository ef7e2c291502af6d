"""Weights stored by their active coordinates: the form the fast kernel returns.

Only the coordinates in U (coordinate 1 and the training supports) ever move (spec section 5);
every other coordinate keeps its initial value, which ``signsim.rng`` can redraw exactly at
any coordinate. So a SparseParams holds the active columns and the init key, and builds the
dense (m, d) arrays only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .model import Params
from .rng import init_normals

__all__ = ["SparseParams"]


@dataclass(frozen=True, eq=False)
class SparseParams:
    """Weights equal to their init except on ``coords``.

    Attributes
    ----------
    coords : ndarray of shape ([R,] u), int64, sorted; -1 pads replicas with fewer coordinates
    W_Q_active, W_K_active : ndarray of shape ([R,] m_k, u)
    W_V_active : ndarray of shape ([R,] 2, m_v, u)
    keys : ndarray of shape ([R,]), uint64: init keys (``signsim.rng.init_key``)
    d : int
    sigma_0 : float, or ndarray of shape (R,): the init scale of each replica
    init_scale : float, or ndarray of shape (R,): the weights off ``coords`` are
        ``init_scale`` times their init (c_t = (1 - lr wd)^t under decoupled weight decay,
        E22b; 1.0 without)
    """

    coords: np.ndarray
    W_Q_active: np.ndarray
    W_K_active: np.ndarray
    W_V_active: np.ndarray
    keys: np.ndarray
    d: int
    sigma_0: float | np.ndarray
    init_scale: float | np.ndarray = 1.0

    @property
    def batched(self) -> bool:
        return self.coords.ndim == 2

    def to_dense(self) -> Params:
        """Dense weights (m, d); allocates O(m d) memory (with a leading R when batched)."""
        m_k, m_v = self.W_Q_active.shape[-2], self.W_V_active.shape[-2]
        coords = np.atleast_2d(self.coords)
        blocks = [[], [], []]
        for r in range(coords.shape[0]):
            dense = init_normals(np.atleast_1d(self.keys)[r], np.arange(self.d), m_k, m_v,
                                 float(np.atleast_1d(self.sigma_0)[r]))
            scale = float(np.broadcast_to(self.init_scale, coords.shape[:1])[r])
            if scale != 1.0:
                dense = [w * scale for w in dense]
            keep = coords[r] >= 0
            for b, active in enumerate((self.W_Q_active, self.W_K_active, self.W_V_active)):
                act = active[r] if self.batched else active
                dense[b][..., coords[r][keep]] = act[..., keep]
                blocks[b].append(dense[b])
        out = [np.stack(b) if self.batched else b[0] for b in blocks]
        return Params(*out)

    def replica(self, r: int) -> "SparseParams":
        """Replica r of batched weights, without the padding columns."""
        u = int((self.coords[r] >= 0).sum())  # padding (-1) comes last
        return SparseParams(coords=self.coords[r, :u], W_Q_active=self.W_Q_active[r, :, :u],
                            W_K_active=self.W_K_active[r, :, :u],
                            W_V_active=self.W_V_active[r, ..., :u], keys=self.keys[r],
                            d=self.d, sigma_0=float(self.sigma_0[r]),
                            init_scale=float(np.broadcast_to(self.init_scale, len(self.keys))[r]))

    @classmethod
    def concat(cls, parts: list) -> "SparseParams":
        """Batched weights one after the other along the replicas, padded to one width."""
        u = max(p.coords.shape[1] for p in parts)

        def pad(a, value):
            return np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, u - a.shape[-1])],
                          constant_values=value)

        return cls(coords=np.concatenate([pad(p.coords, -1) for p in parts]),
                   W_Q_active=np.concatenate([pad(p.W_Q_active, 0.0) for p in parts]),
                   W_K_active=np.concatenate([pad(p.W_K_active, 0.0) for p in parts]),
                   W_V_active=np.concatenate([pad(p.W_V_active, 0.0) for p in parts]),
                   keys=np.concatenate([p.keys for p in parts]), d=parts[0].d,
                   sigma_0=np.concatenate([p.sigma_0 for p in parts]),
                   init_scale=np.concatenate([np.broadcast_to(p.init_scale, len(p.keys))
                                              for p in parts]))

    @cached_property
    def _dense(self) -> Params:
        return self.to_dense()

    @property
    def W_Q(self) -> np.ndarray:
        """Dense (m_k, d) query weights, built on first access and kept."""
        return self._dense.W_Q

    @property
    def W_K(self) -> np.ndarray:
        return self._dense.W_K

    @property
    def W_V(self) -> np.ndarray:
        return self._dense.W_V

    def to_arrays(self) -> dict:
        return {"coords": self.coords, "W_Q_active": self.W_Q_active,
                "W_K_active": self.W_K_active, "W_V_active": self.W_V_active,
                "keys": np.asarray(self.keys, dtype=np.uint64), "d": np.array(self.d),
                "sigma_0": np.array(self.sigma_0),
                **({"init_scale": np.array(self.init_scale)}
                   if np.any(np.asarray(self.init_scale) != 1.0) else {})}

    @classmethod
    def from_arrays(cls, a: dict) -> "SparseParams":
        return cls(coords=a["coords"], W_Q_active=a["W_Q_active"], W_K_active=a["W_K_active"],
                   W_V_active=a["W_V_active"], keys=a["keys"], d=int(a["d"]),
                   sigma_0=float(a["sigma_0"]) if a["sigma_0"].ndim == 0 else a["sigma_0"],
                   init_scale=a.get("init_scale", 1.0))
