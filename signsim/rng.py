"""Random streams: one integer seed, three independent streams, and an addressable init.

``streams(seed)`` splits the seed with ``numpy.random.SeedSequence.spawn`` into the training
data, test data and initialisation streams, so that changing ``n_test`` changes neither the
training set nor the initial weights.

The initial weights (E13) are drawn by coordinate, not in one sequential pass: entry
(block, row, k) is ``sigma_0 * Phi^{-1}(u)`` with ``u`` the SplitMix64 output at a counter
that depends only on (block, row, k). SplitMix64 is counter-based (its i-th output is a
bijective mix of ``key + i * golden``), so any set of coordinates can be drawn without the
rest: the dense reference kernel draws all d columns, the fast kernel only the columns it
needs, and both see the same values. Each value is N(0, sigma_0^2) to the resolution of a
53-bit uniform (tails cut at about 8.3 sigma_0).

The value block at a coordinate is an orthogonal map of its 2 m_v normals, chosen so that the
mean value v(0) = mean_r w_{V,+1,r} - mean_r w_{V,-1,r} (E11) is one of them times
sqrt(2 / m_v): test predictions need v(0) at every test coordinate but never the value rows,
so a test coordinate costs 2 m_k + 1 normals instead of 2 m_k + 2 m_v.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["streams", "init_key", "init_normals", "init_query_key_mean_value",
           "init_mean_value", "value_rotation", "BLOCKS"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

# Order of the parameter blocks inside one coordinate's column of the init counter.
BLOCKS = ("Q", "K", "V+", "V-")


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.SeedSequence]:
    """Training-data generator, test-data generator and the init seed sequence."""
    train, test, init = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(train), np.random.default_rng(test), init


def init_key(seed: int) -> np.uint64:
    """The 64-bit key of the init stream of ``seed``."""
    return streams(seed)[2].generate_state(1, dtype=np.uint64)[0]


def _splitmix64(key: np.uint64, counter: np.ndarray) -> np.ndarray:
    """SplitMix64 output number ``counter`` of the stream with state ``key`` (uint64 arrays).
    Works in place on one new array (the same arithmetic as the textbook form)."""
    z = np.multiply(np.add(counter, np.uint64(1)), _GOLDEN)
    z = np.add(z, key)  # broadcasts keys (R, 1, 1) against counters
    t = np.empty_like(z)
    for shift, mix in ((30, _MIX1), (27, _MIX2)):
        np.right_shift(z, np.uint64(shift), out=t)
        z ^= t
        z *= mix
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    return z


def _normals(keys: np.ndarray, coords: np.ndarray, rows: np.ndarray, per_coord: int,
             sigma_0: float, coords_first: bool = False) -> np.ndarray:
    """sigma_0 * Phi^{-1}(u) at counters coords * per_coord + rows: (R, len(rows), c), or
    (R, c, len(rows)) with ``coords_first`` (the same values)."""
    if coords_first:
        counter = coords[:, None] * np.uint64(per_coord) + rows[None, :]  # (c, rows)
    else:
        counter = coords[None, :] * np.uint64(per_coord) + rows[:, None]  # (rows, c)
    bits = _splitmix64(keys[:, None, None], counter[None])  # (R, rows, c)
    bits >>= np.uint64(11)
    w = bits.astype(np.float64)
    w += 0.5
    w *= 2.0**-53  # u in (0, 1)
    ndtri(w, out=w)
    w *= sigma_0
    return w


def value_rotation(m_v: int) -> np.ndarray:
    """The orthogonal (2 m_v, 2 m_v) Householder matrix H with H e_1 = c / ||c||, where
    c = (1/m_v) (1, ..., 1, -1, ..., -1) is the mean-value contrast of E11 (rows j = +1
    first). H is symmetric, so H c = ||c|| e_1."""
    u = np.r_[np.ones(m_v), -np.ones(m_v)] / np.sqrt(2.0 * m_v)
    w = -u
    w[0] += 1.0  # w = e_1 - u, never 0 (u has 2 m_v >= 2 nonzero entries)
    return np.eye(2 * m_v) - 2.0 * np.outer(w, w) / (w @ w)


def init_normals(key, coords: np.ndarray, m_k: int, m_v: int, sigma_0: float):
    """Initial weights of the given coordinates: (W_Q, W_K, W_V) of shapes
    (m_k, c), (m_k, c), (2, m_v, c) for ``c = len(coords)`` (E13).

    At coordinate k the value block is W_V[:, :, k] = H z_k (``value_rotation``) with z_k
    the 2 m_v normals of its counters: an orthogonal map of i.i.d. N(0, sigma_0^2) values,
    so the entries are again i.i.d. N(0, sigma_0^2), and the mean value
    v(0)[k] = c . W_V[:, :, k] = ||c|| z_k[0] needs only one of them (``init_mean_value``).

    ``key`` is one key (uint64) or an array of keys of shape (R,), which adds a leading
    replica axis to every output.
    """
    coords = np.asarray(coords, dtype=np.uint64)
    keys = np.atleast_1d(np.asarray(key, dtype=np.uint64))
    per_coord = 2 * m_k + 2 * m_v  # counters per coordinate column
    w = _normals(keys, coords, np.arange(per_coord, dtype=np.uint64), per_coord, sigma_0)
    W_Q = np.ascontiguousarray(w[:, :m_k])
    W_K = np.ascontiguousarray(w[:, m_k:2 * m_k])
    z = w[:, 2 * m_k:]  # (R, 2 m_v, c)
    H = value_rotation(m_v)
    W_V = H[:, 0, None] * z[:, None, 0]  # (R, 2 m_v, c): sum over b in a fixed order, so
    for b in range(1, 2 * m_v):  # any set of columns gets the same bits
        W_V += H[:, b, None] * z[:, None, b]
    W_V = W_V.reshape(len(keys), 2, m_v, -1)
    if np.ndim(key) == 0:
        return W_Q[0], W_K[0], W_V[0]
    return W_Q, W_K, W_V


def init_query_key_mean_value(key, coords: np.ndarray, m_k: int, m_v: int, sigma_0: float):
    """(QK, v(0)) at the given coordinates: QK of shape (c, 2 m_k) holds the W_Q then the W_K
    entries of each coordinate (one row per coordinate, the transpose of ``init_normals``'
    W_Q and W_K stacked), v(0) of shape (c,) the mean value. Draws 2 m_k + 1 normals per
    coordinate instead of 2 m_k + 2 m_v: v(0)[k] = sqrt(2 / m_v) z_k[0] (see
    ``init_normals``), equal to E11 applied to ``init_normals``' W_V up to rounding. For
    coordinates where only the mean value matters (test coordinates outside the training
    supports)."""
    coords = np.asarray(coords, dtype=np.uint64)
    keys = np.atleast_1d(np.asarray(key, dtype=np.uint64))
    per_coord = 2 * m_k + 2 * m_v
    w = _normals(keys, coords, np.arange(2 * m_k + 1, dtype=np.uint64), per_coord, sigma_0,
                 coords_first=True)  # (R, c, 2 m_k + 1)
    out = (np.ascontiguousarray(w[..., :2 * m_k]), np.sqrt(2.0 / m_v) * w[..., 2 * m_k])
    if np.ndim(key) == 0:
        return tuple(x[0] for x in out)
    return out


def init_mean_value(key, coords: np.ndarray, m_k: int, m_v: int, sigma_0: float):
    """v(0) alone at the given coordinates, one normal each (``init_query_key_mean_value``)."""
    coords = np.asarray(coords, dtype=np.uint64)
    keys = np.atleast_1d(np.asarray(key, dtype=np.uint64))
    w = _normals(keys, coords, np.array([2 * m_k], dtype=np.uint64), 2 * m_k + 2 * m_v,
                 sigma_0)[:, 0]
    out = np.sqrt(2.0 / m_v) * w
    return out[0] if np.ndim(key) == 0 else out
