"""Real numbers in sign and log-magnitude form, x = sign * exp(log), for exact arithmetic.

A gradient coordinate of the model is a sum of products of factors (E16-E19) whose product
may be far below the float64 range (s21 s22 and l'_i underflow in Stage IV) while each
factor, and the logarithm of the product, is representable. Carrying every such number as a
pair ``(sign, log)`` of float64 arrays (sign in {-1, 0, +1}, log = log|x|, -inf exactly
where the sign is 0) keeps its sign right whatever its size: a product adds the logs and
multiplies the signs; a sum scales its terms by the largest one before adding them
(``signed_sum``), so only terms smaller than the largest by a factor below 2^-1074 are lost,
which changes the sum by less than its rounding.

Conventions: functions take and return ``(sign, log)`` pairs of arrays of one shape, with
log = -inf exactly where sign = 0; none of them warns (a log of 0 is written as -inf).
"""

from __future__ import annotations

import numpy as np

__all__ = ["split", "log_abs", "log_sigmoid", "signed_sum", "signed_add", "grouped_sum"]

NEG_INF = -np.inf


def log_abs(x: np.ndarray) -> np.ndarray:
    """log|x|, with -inf at 0 (no warning)."""
    a = np.abs(x)
    out = np.full(a.shape, NEG_INF)
    np.log(a, out=out, where=a > 0.0)
    return out


def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sign(x), log|x|) of a float64 array: exact, since x is representable."""
    return np.sign(x), log_abs(x)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(1 / (1 + e^-x)) = -log(1 + e^-x), finite for every finite x (no underflow)."""
    return -np.logaddexp(0.0, -x)


# Every pair keeps log = -inf exactly where sign = 0 (``split`` makes it so, a product adds
# a -inf, a sum that cancels exactly takes the log of 0), so the largest log along an axis
# is that of the largest nonzero term; where every term is 0 it is -inf and is raised to
# FLOOR, which no log of a float64 number (>= -745) or of a product of a few reaches, so
# that log - top stays -inf (not NaN) there.
FLOOR = -1e300


def _scale(log: np.ndarray, axis) -> np.ndarray:
    """The largest log along ``axis`` (kept), at least FLOOR."""
    top = np.max(log, axis=axis, keepdims=True)
    return np.maximum(top, FLOOR, out=top)


def _finish(total: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sign(total), top + log_abs(total)


def signed_sum(sign: np.ndarray, log: np.ndarray, axis=-1) -> tuple[np.ndarray, np.ndarray]:
    """The sum along ``axis`` of the terms sign * exp(log), as (sign, log).

    Each term is divided by the largest (exactly representable ratios in [0, 1]), the
    ratios are added in float64 in axis order, and the log of the largest is added back:
    the result has float64's relative rounding, whatever the magnitude of the terms.
    """
    top = _scale(log, axis)
    total = np.sum(sign * np.exp(log - top), axis=axis)
    return _finish(total, np.squeeze(top, axis=axis))


def signed_add(s1, l1, s2, l2) -> tuple[np.ndarray, np.ndarray]:
    """x1 + x2 for two (sign, log) pairs of one shape (``signed_sum`` of two terms)."""
    top = np.maximum(l1, l2)
    np.maximum(top, FLOOR, out=top)
    return _finish(s1 * np.exp(l1 - top) + s2 * np.exp(l2 - top), top)


def grouped_sum(sign: np.ndarray, log: np.ndarray, starts: np.ndarray):
    """Sums along axis 0 over consecutive groups beginning at ``starts`` (as
    ``np.add.reduceat``), as (sign, log); every group must be non-empty."""
    top = np.maximum.reduceat(log, starts, axis=0)
    np.maximum(top, FLOOR, out=top)
    sizes = np.concatenate((starts[1:], [len(sign)])) - starts  # (np.r_ costs 5x more)
    ratio = sign * np.exp(log - np.repeat(top, sizes, axis=0))
    return _finish(np.add.reduceat(ratio, starts, axis=0), top)

