"""The binary task on real images (spec section 10): two tokens per sample, the sample's own
image as its signal token and Gaussian noise as its noise token.

For ``Config(data="digits" or "mnist", task=..., noise=...)``:

- Classes: ``task="a,b"`` labels digit a y = +1 and digit b y = -1; ``"even-odd"`` the
  even digits +1 and the odd ones -1.
- Split (seeded, class-balanced, disjoint): the training set takes ceil(n/2) images of the
  +1 class and floor(n/2) of the -1 class, the test set likewise with n_test. Each class's
  images are permuted by the training stream (``rng.streams``); the training set takes the
  first ones, the test set the last ones of the same permutation (the 8x8 digits: one
  pool) or of a permutation of the test files by the test stream (MNIST: t10k). So the
  training images do not depend on n_test, and no image is in both sets.
- Signal token: the image flattened row-major, centred by the mean image of the training
  set, scaled to norm mu_norm, in coordinates 0..p-1 of R^d (p pixels, d >= p; the others
  0). It is not multiplied by y: the image carries its class.
- Noise token: ``noise="dense"``: xi_k ~ N(0, sigma_p^2) at every coordinate k of R^d;
  ``"sparse"``: at s coordinates drawn uniformly without replacement from all d (E3, but
  no coordinate is the signal's here), 0 elsewhere.
- Signal position: as E4 (``signal_position``).

Draws, in order: training stream: each class's permutation (+1 class first), the order of
the training samples, their signal positions, their noise; test stream: (MNIST: each
class's permutation of the test files), the order, the positions, the noise.
"""

from __future__ import annotations

import numpy as np

from ..data import TokenDataset, _sample_supports
from ..rng import streams
from .digits import ImagePool, load_digits, load_mnist

__all__ = ["task_classes", "build_task", "digits_task", "mnist_task"]

EVEN_ODD = ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9))


def task_classes(task: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The digits of the y = +1 class and of the y = -1 class (``Config.task``)."""
    if task == "even-odd":
        return EVEN_ODD
    a, b = task.split(",")
    return (int(a),), (int(b),)


def digits_task(config):
    """(train, test) TokenDatasets of ``config`` on scikit-learn's 8x8 digits (one pool)."""
    pool = load_digits()
    return build_task(config, pool, pool, same_pool=True)


def mnist_task(config):
    """(train, test) TokenDatasets of ``config`` on MNIST: training images from the train
    files of ``config.data_path``, test images from its t10k files."""
    if not config.data_path:
        raise ValueError("The 'data_path' parameter must name the folder of the MNIST IDX "
                         "files for data='mnist' (signsim never downloads them). Got '' "
                         "instead.")
    return build_task(config, load_mnist(config.data_path, "train"),
                      load_mnist(config.data_path, "test"), same_pool=False)


def _counts(n: int) -> tuple[int, int]:
    """Samples of the +1 and of the -1 class: ceil(n/2), floor(n/2)."""
    return (n + 1) // 2, n // 2


def _pick(train_rng, test_rng, train_pool: ImagePool, test_pool: ImagePool, same_pool: bool,
          config) -> tuple[list, list]:
    """The (pool rows, label) of the training and of the test samples, class by class."""
    picked = ([], [])
    for c, (digits, label) in enumerate(zip(task_classes(config.task), (1.0, -1.0))):
        want = _counts(config.n)[c], _counts(config.n_test)[c]
        rows = train_rng.permutation(np.flatnonzero(np.isin(train_pool.labels, digits)))
        test_rows = rows if same_pool else test_rng.permutation(
            np.flatnonzero(np.isin(test_pool.labels, digits)))
        short = (sum(want) > len(rows)) if same_pool else (want[1] > len(test_rows)
                                                           or want[0] > len(rows))
        if short:
            raise ValueError(
                f"The 'n' and 'n_test' parameters ask for {want[0]} training and {want[1]} "
                f"test images of digit(s) {list(digits)}, but {train_pool.source} has "
                f"{len(rows)}" + ("" if same_pool else f" and {len(test_rows)} for testing")
                + f" (n={config.n}, n_test={config.n_test}): lower n or n_test.")
        picked[0].append((rows[:want[0]], label))
        picked[1].append((test_rows[len(test_rows) - want[1]:], label))
    return picked


def _signal_tokens(pixels: np.ndarray, mean: np.ndarray, d: int, mu_norm: float) -> np.ndarray:
    """Centred images scaled to norm mu_norm, in coordinates 0..p-1 of R^d: (count, d).
    An image equal to the mean (norm 0 once centred) stays 0."""
    centred = pixels - mean
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    out = np.zeros((len(pixels), d))
    np.divide(mu_norm * centred, norms, out=out[:, :pixels.shape[1]], where=norms > 0)
    return out


def _noise_tokens(rng: np.random.Generator, count: int, config) -> np.ndarray:
    """Gaussian noise tokens of strength sigma_p, dense or s-sparse: (count, d)."""
    d = config.d
    if config.noise == "dense":
        return config.sigma_p * rng.standard_normal((count, d))
    index = _sample_supports(rng, count, d + 1, config.s) - 1  # s-subsets of {0, ..., d-1}
    out = np.zeros((count, d))
    np.put_along_axis(out, index, config.sigma_p * rng.standard_normal((count, config.s)), 1)
    return out


def _samples(rng, pool: ImagePool, picked: list, mean: np.ndarray, config) -> TokenDataset:
    """The samples ``picked`` ((rows, label) per class) in an order drawn from ``rng``."""
    rows = np.concatenate([r for r, _ in picked])
    y = np.concatenate([np.full(len(r), label) for r, label in picked])
    order = rng.permutation(len(rows))
    rows, y = rows[order], y[order]
    position = rng.integers(0, 2, size=len(rows))  # (E4), always drawn
    if config.signal_position == "first":
        position = np.zeros(len(rows), dtype=np.int64)
    signal = _signal_tokens(pool.images[rows], mean, config.d, config.mu_norm)
    return TokenDataset(y=y, signal_position=position.astype(np.int64), signal=signal,
                        noise=_noise_tokens(rng, len(rows), config), image=rows.astype(np.int64),
                        mu_norm=config.mu_norm)


def build_task(config, train_pool: ImagePool, test_pool: ImagePool, *,
               same_pool: bool) -> tuple[TokenDataset, TokenDataset]:
    """The training set (n samples) and test set (n_test) of ``config``'s task.

    Parameters
    ----------
    config : Config
        Its ``task``, ``n``, ``n_test``, ``d``, ``s``, ``sigma_p``, ``mu_norm``, ``noise``,
        ``signal_position`` and ``seed`` are read.
    train_pool, test_pool : ImagePool
        Where the training and the test images come from (the same pool, or two).
    same_pool : bool
        Whether they are one pool, whose images the two sets then share out.

    Raises
    ------
    ValueError
        When ``d`` is below the pixels of an image, or a class has fewer images than asked.
    """
    p = train_pool.images.shape[1]
    if test_pool.shape != train_pool.shape:
        raise ValueError(f"The training images ({train_pool.source}) are "
                         f"{train_pool.shape}, the test images ({test_pool.source}) "
                         f"{test_pool.shape}: one task needs images of one size.")
    if config.d < p:
        raise ValueError(f"The 'd' parameter must be at least {p}, the pixels of one "
                         f"{'x'.join(map(str, train_pool.shape))} image of "
                         f"{train_pool.source} (the signal token holds the image in "
                         f"coordinates 0..{p - 1}). Got {config.d} instead.")
    train_rng, test_rng, _ = streams(config.seed)
    train_picked, test_picked = _pick(train_rng, test_rng, train_pool, test_pool, same_pool,
                                      config)
    mean = train_pool.images[np.concatenate([r for r, _ in train_picked])].mean(axis=0)
    train = _samples(train_rng, train_pool, train_picked, mean, config)
    return train, _samples(test_rng, test_pool, test_picked, mean, config)
