"""The data sets: the synthetic signal-plus-sparse-noise data (spec section 1, E1-E5) and the
general two-token data of real images (spec section 10), behind one interface.

A synthetic data set (``Dataset``) is stored sparsely, in O(n s) memory whatever d is:
labels, the position of the signal token, and each noise patch as s coordinates with their
values. A real-data set (``TokenDataset``) keeps each sample's own signal token (its image)
and noise token densely, (n, d) each: d is a few hundred. Both give the dense views ``X``,
``xi`` and ``mu`` and ``subset``, which is all the dense reference reads.

What the kernels may rely on is *declared* by the data set's class, never read from its
name: ``declares`` lists the facts the fast kernel needs (``SPIKED_SIGNAL``: every signal
token is y_i mu_norm e_1; ``SPARSE_NOISE``: every noise token is s-sparse off coordinate
1), and ``storage`` says how ``signsim.files`` saves it (``"sparse"`` or ``"dense"``).
``SOURCES`` maps ``Config.data`` to the class and the builder of its data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .config import Config
from .rng import streams

__all__ = ["Dataset", "TokenDataset", "Source", "SOURCES", "SPIKED_SIGNAL", "SPARSE_NOISE",
           "dataset_class", "make_data", "sample_dataset"]

SPIKED_SIGNAL = "signal tokens y_i mu_norm e_1 (E1)"
SPARSE_NOISE = "noise tokens s-sparse, off coordinate 1 (E3)"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples X_i = [x^(1), x^(2)] with one signal patch y_i mu and one noise patch xi_i.

    Attributes
    ----------
    y : ndarray of shape (n,), float64 in {+1, -1} (E2)
    signal_position : ndarray of shape (n,), int64 in {0, 1}: the token holding y_i mu (E4)
    noise_index : ndarray of shape (n, s), int64: the support B_i of xi_i, sorted, in [1, d) (E3)
    noise_value : ndarray of shape (n, s), float64: xi_i at those coordinates
    d : int
    mu_norm : float
    """

    y: np.ndarray
    signal_position: np.ndarray
    noise_index: np.ndarray
    noise_value: np.ndarray
    d: int
    mu_norm: float

    declares = frozenset({SPIKED_SIGNAL, SPARSE_NOISE})  # what the fast kernel needs
    storage = "sparse"

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def s(self) -> int:
        return self.noise_index.shape[1]

    @property
    def L(self) -> int:
        return 2

    @property
    def mu(self) -> np.ndarray:
        """The signal vector mu_norm * e_1 (E1), shape (d,)."""
        mu = np.zeros(self.d)
        mu[0] = self.mu_norm
        return mu

    @property
    def xi(self) -> np.ndarray:
        """Dense noise patches, shape (n, d)."""
        xi = np.zeros((self.n, self.d))
        np.put_along_axis(xi, self.noise_index, self.noise_value, axis=1)
        return xi

    @property
    def X(self) -> np.ndarray:
        """Dense inputs, shape (n, d, L): column l of X_i is token l."""
        X = np.zeros((self.n, self.d, 2))
        rows = np.arange(self.n)
        X[rows, 0, self.signal_position] = self.y * self.mu_norm
        noise_pos = 1 - self.signal_position
        X[rows[:, None], self.noise_index, noise_pos[:, None]] = self.noise_value
        return X

    @property
    def noise_l1(self) -> np.ndarray:
        """||xi_i||_1, shape (n,)."""
        return np.abs(self.noise_value).sum(axis=1)

    def subset(self, rows) -> "Dataset":
        """The samples ``rows`` (a slice or an index array) as a Dataset."""
        return Dataset(y=self.y[rows], signal_position=self.signal_position[rows],
                       noise_index=self.noise_index[rows], noise_value=self.noise_value[rows],
                       d=self.d, mu_norm=self.mu_norm)


@dataclass(frozen=True, eq=False)
class TokenDataset:
    """Samples X_i = [x^(1), x^(2)] with the sample's own signal token (a real image) and a
    noise token, both stored densely (spec section 10).

    Attributes
    ----------
    y : ndarray of shape (n,), float64 in {+1, -1}
    signal_position : ndarray of shape (n,), int64 in {0, 1}: the token holding the signal
    signal : ndarray of shape (n, d), float64: sample i's signal token x_i (not multiplied
        by y_i: the image carries its class)
    noise : ndarray of shape (n, d), float64: sample i's noise token xi_i
    image : ndarray of shape (n,), int64: the row of sample i's image in the pool it came
        from (``datasets.ImagePool``: the 8x8 digits, or MNIST's train or t10k file)
    mu_norm : float
        The norm of every signal token.
    """

    y: np.ndarray
    signal_position: np.ndarray
    signal: np.ndarray
    noise: np.ndarray
    image: np.ndarray
    mu_norm: float

    declares = frozenset()  # neither a spiked signal nor sparse noise: the dense reference
    storage = "dense"

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def d(self) -> int:
        return self.signal.shape[1]

    @property
    def L(self) -> int:
        return 2

    @property
    def mu(self) -> np.ndarray:
        """The label-signed mean signal token (1/n) sum_i y_i x_i, shape (d,): what the
        signal records project on (on the synthetic data, where x_i = y_i mu, it is mu)."""
        return self.y @ self.signal / self.n

    @property
    def xi(self) -> np.ndarray:
        """The noise tokens, shape (n, d)."""
        return self.noise

    @property
    def X(self) -> np.ndarray:
        """Dense inputs, shape (n, d, L): column l of X_i is token l."""
        X = np.empty((self.n, self.d, 2))
        rows = np.arange(self.n)
        X[rows, :, self.signal_position] = self.signal
        X[rows, :, 1 - self.signal_position] = self.noise
        return X

    @property
    def noise_l1(self) -> np.ndarray:
        """||xi_i||_1, shape (n,)."""
        return np.abs(self.noise).sum(axis=1)

    def subset(self, rows) -> "TokenDataset":
        """The samples ``rows`` (a slice or an index array) as a TokenDataset."""
        return TokenDataset(y=self.y[rows], signal_position=self.signal_position[rows],
                            signal=self.signal[rows], noise=self.noise[rows],
                            image=self.image[rows], mu_norm=self.mu_norm)


def _sample_supports(rng: np.random.Generator, count: int, d: int, s: int) -> np.ndarray:
    """``count`` uniform s-subsets of {1, ..., d-1} (E3), sorted, in O(count s log s) for
    every s <= d - 1.

    Sparse regime (s^2 <= d - 1): draw s coordinates with replacement and redraw the rows
    that repeat one; conditioning i.i.d. draws on being distinct gives a uniform subset.
    These are the draws of every documented number: keep this branch as it is.

    Dense regime (s^2 > d - 1, repeats likely): the first s distinct values of i.i.d. draws
    (``_distinct``) while s <= (d - 1) / 8; above, the s smallest of d - 1 uniform keys, in
    row chunks (O(d) = O(s) per row there, and faster than ``_distinct``). Both are exactly
    uniform. For s > (d - 1) / 8 these are the keys drawn before; for
    sqrt(d - 1) < s <= (d - 1) / 8 ``_distinct`` replaced them (the keys cost O(d) per row:
    1.1 s a row at d = 10^8, s = 10^4; ``_distinct`` ~1 ms).
    """
    pop = d - 1
    if s * s <= pop:  # a row repeats with probability < 1 - exp(-1/2): few redraws
        idx = rng.integers(1, d, size=(count, s))
        idx.sort(axis=1)
        bad = np.flatnonzero((idx[:, 1:] == idx[:, :-1]).any(axis=1))
        while bad.size:
            redraw = rng.integers(1, d, size=(bad.size, s))
            redraw.sort(axis=1)
            idx[bad] = redraw
            bad = bad[(redraw[:, 1:] == redraw[:, :-1]).any(axis=1)]
        return idx
    if 8 * s <= pop:  # repeats still rare: O(s) draws
        out = _distinct(rng, count, pop, s)
        out.sort(axis=1)
        out += 1
        return out
    out = np.empty((count, s), dtype=np.int64)  # O(d) = O(s) keys per row
    chunk = max(1, 4_000_000 // pop)
    for start in range(0, count, chunk):
        keys = rng.random((min(chunk, count - start), pop))
        part = np.argpartition(keys, s - 1, axis=1)[:, :s] + 1
        part.sort(axis=1)
        out[start:start + chunk] = part
    return out


def _distinct(rng: np.random.Generator, count: int, pop: int, k: int,
              m: int | None = None) -> np.ndarray:
    """``count`` uniform k-subsets of {0, ..., pop-1}, unsorted, (count, k), in O(k log k)
    per row for k <= pop / 8 (m <= 1.08 k + 2 sqrt(k) + 7 draws).

    Each row is the first k distinct values of a block of ``m`` i.i.d. uniform draws; a row
    whose block has fewer than k distinct values is drawn again. Both the rule and the event
    are unchanged by any relabelling of {0, ..., pop-1}, so the subset is uniform. ``m`` is
    the expected number of draws to see k distinct values plus 6 standard deviations (so a
    row is rarely drawn again), bounded in integer arithmetic so that it is the
    same on every machine: with j = 0..k-1 values seen, a draw repeats one with probability
    j / pop, so the repeats expected are sum j / (pop - j) <= k^2 / (2 f), their variance
    sum pop j / (pop - j)^2 <= pop k^2 / (2 f^2), with f = pop - k + 1: k + 7 draws when
    k^2 ~ pop. (Tests pass a smaller ``m`` to make rows be drawn again.)
    """
    out = np.empty((count, k), dtype=np.int64)
    if k == 0:
        return out
    free = pop - k + 1
    if m is None:
        m = k + (k * k) // (2 * free) + 6 * math.isqrt((pop * k * k) // (2 * free * free)) + 7
    chunk = max(1, 4_000_000 // m)
    todo = np.arange(count)
    while todo.size:
        for start in range(0, todo.size, chunk):
            rows = todo[start:start + chunk].copy()
            draws = rng.integers(0, pop, size=(rows.size, m))
            first = _first_draws(draws, pop)
            seen = np.cumsum(first, axis=1, dtype=np.int64)
            done = seen[:, -1] >= k
            take = first[done] & (seen[done] <= k)  # the first k first draws, row-major
            out[rows[done]] = draws[done][take].reshape(-1, k)
            todo[start:start + chunk][done] = -1
        todo = todo[todo >= 0]
    return out


def _first_draws(draws: np.ndarray, pop: int) -> np.ndarray:
    """(rows, m) bool: True where a row's draw (values in [0, pop)) is the first of its value."""
    rows, m = draws.shape
    if pop * m < 2**63:  # sort (value, position) as one int64 key: ~8x a stable argsort
        key = draws * m
        key += np.arange(m)
        key.sort(axis=1)
        value, position = np.divmod(key, m)
    else:
        position = np.argsort(draws, axis=1, kind="stable")  # equal values: first first
        value = np.take_along_axis(draws, position, axis=1)
    new = np.empty(value.shape, dtype=bool)
    new[:, 0] = True
    np.not_equal(value[:, 1:], value[:, :-1], out=new[:, 1:])
    first = np.zeros((rows, m), dtype=bool)
    first[np.nonzero(new)[0], position[new]] = True
    return first


def sample_dataset(rng: np.random.Generator, count: int, config: Config) -> Dataset:
    """Draw ``count`` samples from ``rng`` in a fixed order: labels, signal positions,
    supports, noise values. Signal positions are always drawn, so ``signal_position`` does
    not change labels or noise."""
    y = 2.0 * rng.integers(0, 2, size=count) - 1.0  # (E2)
    position = rng.integers(0, 2, size=count)  # (E4)
    if config.signal_position == "first":
        position = np.zeros(count, dtype=np.int64)
    index = _sample_supports(rng, count, config.d, config.s)  # (E3)
    value = config.sigma_p * rng.standard_normal((count, config.s))
    return Dataset(y=y, signal_position=position.astype(np.int64), noise_index=index,
                   noise_value=value, d=config.d, mu_norm=config.mu_norm)


def _synthetic(config: Config) -> tuple[Dataset, Dataset]:
    """The synthetic training and test sets (E1-E5) from independent streams."""
    if config.noise != "sparse":
        raise ValueError("The 'noise' parameter must be 'sparse' for data='synthetic' (E3: "
                         "s-sparse noise; s = d - 1 fills every coordinate but the signal's); "
                         "'dense' is for real data ('digits', 'mnist'). "
                         f"Got noise={config.noise!r} instead.")
    train_rng, test_rng, _ = streams(config.seed)
    train = sample_dataset(train_rng, config.n, config)
    return train, sample_dataset(test_rng, config.n_test, config)


def _digits(config: Config):
    from .datasets.task import digits_task  # real data: imported only when asked for

    return digits_task(config)


def _mnist(config: Config):
    from .datasets.task import mnist_task

    return mnist_task(config)


class Source(NamedTuple):
    """A kind of data: the class of its data sets and ``build(config) -> (train, test)``."""

    cls: type
    build: Callable


SOURCES = {"synthetic": Source(Dataset, _synthetic), "digits": Source(TokenDataset, _digits),
           "mnist": Source(TokenDataset, _mnist)}


def dataset_class(config: Config) -> type:
    """The class of the data sets ``config`` makes (its ``declares`` and ``storage``)."""
    return SOURCES[config.data].cls


def make_data(config: Config):
    """Training set (n samples) and test set (n_test samples) of the data ``config.data``
    names: independent random streams (``rng.streams``), see ``SOURCES``."""
    return SOURCES[config.data].build(config)
