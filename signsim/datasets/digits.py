"""Handwritten digits that work offline: scikit-learn's bundled 8x8 digits, and MNIST from IDX
files in a folder the user gives. Nothing is ever downloaded.

Both give an ``ImagePool``: flattened images (float64, the pixel values as stored: 0..16
for the 8x8 digits, 0..255 for MNIST) and their digit labels. A pool is read once per
process and kept (read-only), keyed by the files' paths, sizes and modification times.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .idx import read_idx

__all__ = ["ImagePool", "MissingDataError", "load_digits", "load_mnist", "mnist_files",
           "MNIST_SPLITS"]

# split -> the stems of its image and label files (each also with ".gz")
MNIST_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class MissingDataError(FileNotFoundError, ValueError):
    """The data files are not where the Config says (a ValueError too: a bad ``data_path``)."""


class ImagePool(NamedTuple):
    """Images to draw a task from."""

    images: np.ndarray  # (N, p) float64, flattened row-major, read-only
    labels: np.ndarray  # (N,) int64 digits 0..9, read-only
    shape: tuple  # (height, width) of one image
    source: str  # where they came from, for messages


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=1)
def _digits() -> ImagePool:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError("data='digits' needs scikit-learn (its bundled 8x8 digits), an "
                          "optional extra: python -m pip install 'signsim[digits]'") from None
    bunch = sk_load_digits()  # ships inside scikit-learn: no download
    images = np.asarray(bunch.images, dtype=np.float64)
    return ImagePool(_frozen(images.reshape(len(images), -1)),
                     _frozen(np.asarray(bunch.target, dtype=np.int64)), images.shape[1:],
                     "scikit-learn's digits")


def load_digits() -> ImagePool:
    """scikit-learn's 1,797 8x8 digits (``sklearn.datasets.load_digits``, bundled with it).

    Raises
    ------
    ImportError
        Without scikit-learn, naming the extra ``signsim[digits]``.
    """
    return _digits()


def mnist_files(folder, split: str) -> tuple[Path, Path]:
    """The image and label files of ``split`` ("train" or "test") in ``folder``: each
    stem of ``MNIST_SPLITS`` as it is or with ``.gz``.

    Raises
    ------
    MissingDataError
        Naming the folder and the file names expected, when either file is missing.
    """
    folder = Path(folder)
    found, missing = [], []
    for stem in MNIST_SPLITS[split]:
        options = [folder / stem, folder / f"{stem}.gz"]
        hit = next((p for p in options if p.is_file()), None)
        if hit is None:
            missing.append(f"{stem}[.gz]")
        found.append(hit)
    if missing:
        names = [f"{stem}[.gz]" for pair in MNIST_SPLITS.values() for stem in pair]
        raise MissingDataError(
            f"The 'data_path' folder {os.fspath(folder)!r} lacks the MNIST {split} file(s) "
            f"{missing}: data='mnist' reads the IDX files {names} from it (gzipped or not) "
            "and never downloads them.")
    return found[0], found[1]


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def load_mnist(folder, split: str = "train") -> ImagePool:
    """The MNIST images and labels of ``split`` ("train" or "test") from IDX files in
    ``folder`` (``MNIST_SPLITS``; gzipped or not).

    Raises
    ------
    MissingDataError
        When a file is missing (the message names the expected files).
    ValueError
        Naming the file, when one is malformed (``read_idx``), the images are not
        (count, height, width) uint8, the labels not (count,) uint8 digits, or the counts
        of the two files differ.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"The 'split' parameter must be one of {list(MNIST_SPLITS)}. "
                         f"Got {split!r} instead.")
    images, labels = mnist_files(folder, split)
    return _mnist(_stamp(images), _stamp(labels))


@functools.lru_cache(maxsize=4)
def _mnist(image_stamp: tuple, label_stamp: tuple) -> ImagePool:
    image_path, label_path = image_stamp[0], label_stamp[0]
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{image_path}: an MNIST image file holds (count, height, width) "
                         f"uint8 pixels; this one holds {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8 or (labels > 9).any():
        raise ValueError(f"{label_path}: an MNIST label file holds (count,) uint8 digits 0-9; "
                         f"this one holds {labels.dtype} of shape {labels.shape}"
                         + (f" with values up to {labels.max()}" if labels.size else ""))
    if len(images) != len(labels):
        raise ValueError(f"{label_path}: it holds {len(labels)} labels, but the image file "
                         f"{image_path} holds {len(images)} images: the files do not match")
    flat = images.reshape(len(images), -1).astype(np.float64)
    return ImagePool(_frozen(flat), _frozen(labels.astype(np.int64)), images.shape[1:],
                     f"MNIST in {os.path.dirname(image_path)}")
