"""The IDX file format of MNIST, read with every header field checked; gzipped or not.

An IDX file is a 4-byte magic number, ``0x00 0x00 T N`` (T the element type, N the number
of dimensions), then N big-endian uint32 sizes, then the elements, big-endian, row-major:
``train-images-idx3-ubyte`` is (60000, 28, 28) uint8, ``train-labels-idx1-ubyte`` (60000,)
uint8. A file whose first two bytes are gzip's (``1f 8b``) is decompressed first, whatever
its name.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

__all__ = ["read_idx", "IDX_TYPES"]

# the element type byte T -> big-endian dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP = b"\x1f\x8b"


def _raw(path) -> bytes:
    """The bytes of ``path``, decompressed when they are gzip's."""
    with open(path, "rb") as fh:
        data = fh.read()
    if not data.startswith(_GZIP):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{os.fspath(path)}: not a valid gzip file ({exc}); a gzipped IDX "
                         "file was expected") from None


def _header(path, data: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, offset of the elements) from an IDX header."""
    name = os.fspath(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_TYPES:
        raise ValueError(f"{name}: not an IDX file: its magic number is {data[:4].hex() or 'empty'}"
                         ", but 0000TTNN is expected (TT an element type in "
                         f"{[f'{k:02x}' for k in IDX_TYPES]}, NN the number of dimensions)")
    ndim = data[3]
    if ndim == 0:
        raise ValueError(f"{name}: its IDX header claims 0 dimensions (at least 1 expected)")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(f"{name}: truncated: its header claims {ndim} dimensions "
                         f"({offset} bytes), but the file has {len(data)} bytes")
    shape = tuple(int(x) for x in np.frombuffer(data, ">u4", ndim, offset=4))
    return np.dtype(IDX_TYPES[data[2]]), shape, offset


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz``; gzip is recognised by its first
        bytes, not by the name.

    Returns
    -------
    ndarray
        The elements in the shape the header gives, in native byte order (uint8 for MNIST).

    Raises
    ------
    ValueError
        Naming the file, when it is not gzip it claims to be, its magic number is not an
        IDX one (two zero bytes, a known element type, at least one dimension), or it holds
        fewer or more bytes than its header claims (truncated, or trailing data).
    FileNotFoundError
        If there is no file at ``path``.
    """
    data = _raw(path)
    dtype, shape, offset = _header(path, data)
    want = math.prod(shape) * dtype.itemsize
    held = len(data) - offset
    if held != want:
        what = "truncated" if held < want else "longer than its header says"
        raise ValueError(f"{os.fspath(path)}: {what}: its header claims shape {shape} of "
                         f"{dtype.name} ({want} bytes of data), but the file holds {held}")
    out = np.frombuffer(data, dtype, math.prod(shape), offset=offset).reshape(shape)
    return out.astype(dtype.newbyteorder("="))
