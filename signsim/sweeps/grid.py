"""A sweep's grid: axes of Config values, validated once, expanded into cells.

A grid maps a Config field to the list of its values, or a tuple of fields to a list of
tuples (one zipped axis: the fields move together)::

    {"snr": [0.5, 1, 2], ("optimizer", "lr"): [("signgd", 1e-3), ("gd", 1.0)]}

The cells are the product of the axes, the last axis varying fastest. Besides Config fields
an axis may name a derived field (``DERIVED``): ``snr`` sets sigma_p = mu_norm / (snr
sqrt(s)) (E5) from the cell's own mu_norm and s.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import NamedTuple

from ..config import Config

__all__ = ["Axis", "Grid", "DERIVED", "cell_config"]

# derived field -> (the Config field it sets, what it means)
DERIVED = {"snr": ("sigma_p", "signal-to-noise ratio; sets sigma_p = mu_norm / (snr sqrt(s)) (E5)")}
_NOT_AN_AXIS = {"seed": "seeds are given by the 'seeds' parameter, not the grid"}


class Axis(NamedTuple):
    """One axis of a grid: ``names`` (one field, or several that move together) and its
    ``values`` (one tuple per point, aligned with ``names``)."""

    names: tuple
    values: tuple

    @property
    def label(self) -> str:
        """The axis name: its field, or its fields joined by commas."""
        return ",".join(self.names)


class Grid:
    """The validated axes of a sweep (module docstring).

    Parameters
    ----------
    grid : mapping
        Field (or tuple of fields) -> non-empty list of values (or of tuples).

    Raises
    ------
    ValueError
        For an unknown field, ``seed``, a field on two axes, ``snr`` with ``sigma_p``, an
        empty or non-list axis, or a tuple of the wrong length.
    """

    def __init__(self, grid: Mapping):
        if not isinstance(grid, Mapping) or not grid:
            raise ValueError("The 'grid' parameter must be a non-empty dict mapping Config "
                             f"fields to lists of values. Got {grid!r} instead.")
        self.axes = tuple(_axis(key, values) for key, values in grid.items())
        _check_fields([n for a in self.axes for n in a.names])

    @property
    def names(self) -> tuple:
        """Every field the grid sets, in axis order."""
        return tuple(n for a in self.axes for n in a.names)

    @property
    def shape(self) -> tuple:
        return tuple(len(a.values) for a in self.axes)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def cells(self) -> list[dict]:
        """Every cell as a dict field -> value, the last axis varying fastest."""
        out = []
        for point in itertools.product(*(a.values for a in self.axes)):
            out.append({n: v for names, vals in zip((a.names for a in self.axes), point)
                        for n, v in zip(names, vals)})
        return out

    def to_json(self) -> list:
        """The axes as JSON-ready lists ``[[names...], [[values...], ...]]``."""
        return [[list(a.names), [list(v) for v in a.values]] for a in self.axes]

    @classmethod
    def from_json(cls, data: list) -> "Grid":
        return cls({tuple(names) if len(names) > 1 else names[0]:
                    [tuple(v) if len(names) > 1 else v[0] for v in values]
                    for names, values in data})


def _axis(key, values) -> Axis:
    names = (key,) if isinstance(key, str) else key
    if hasattr(values, "tolist") and getattr(values, "ndim", 0) == 1:  # a NumPy array
        values = values.tolist()
    if isinstance(key, tuple) and len(key) == 1 and isinstance(values, (list, tuple)):
        names, values = names, [v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v
                                for v in values]  # a 1-tuple key is its one field
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("A grid key must be a field name or a tuple of field names. "
                         f"Got {key!r} instead.")
    label = ",".join(names)
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise ValueError(f"The grid axis {label!r} must be a list of values. Got {values!r}.")
    if len(values) == 0:
        raise ValueError(f"The grid axis {label!r} is empty: give it at least one value.")
    if len(names) == 1:
        return Axis(names, tuple((_plain(v, label),) for v in values))
    points = []
    for v in values:
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) != len(names):
            raise ValueError(f"Each value of the zipped grid axis {label!r} must be a tuple "
                             f"of {len(names)} values. Got {v!r}.")
        points.append(tuple(_plain(x, label) for x in v))
    return Axis(names, tuple(points))


def _plain(value, label: str):
    """A grid value as a plain str, bool, int or float (NumPy scalars converted), so that
    cells compare and serialise plainly; anything else is refused."""
    if hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:  # a NumPy scalar
        value = value.item()
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)  # numpy.str_ too
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise ValueError(f"The grid axis {label!r} takes str, bool, int or float values. "
                     f"Got {value!r} ({type(value).__name__}) instead.")


def _check_fields(names: list) -> None:
    known = [f.name for f in fields(Config)]
    for name in names:
        if name in _NOT_AN_AXIS:
            raise ValueError(f"The grid may not set {name!r}: {_NOT_AN_AXIS[name]}.")
        if name not in known and name not in DERIVED:
            raise ValueError(f"Unknown grid field {name!r}. The grid may set Config fields "
                             f"{[k for k in known if k != 'seed']} and derived fields "
                             f"{list(DERIVED)}.")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"The grid sets {twice} on more than one axis; give each field once.")
    for derived, (target, _) in DERIVED.items():
        if derived in names and target in names:
            raise ValueError(f"The grid sets both {derived!r} and {target!r}, which {derived!r} "
                             f"determines; give one of them.")


def cell_config(base: Config, cell: Mapping, seed: int) -> Config:
    """The Config of one cell and seed: ``base`` with the cell's fields, then the derived
    ones (``snr`` -> sigma_p by E5, with the cell's mu_norm and s)."""
    plain = {k: v for k, v in cell.items() if k not in DERIVED}
    if "snr" not in cell:
        return base.replace(seed=seed, **plain)
    snr = cell["snr"]
    if isinstance(snr, bool) or not isinstance(snr, numbers.Real) or not snr > 0 \
            or not math.isfinite(snr):
        raise ValueError(f"The grid field 'snr' must be a finite float > 0. Got {snr!r}.")
    config = base.replace(seed=seed, **plain)  # validates mu_norm and s first
    return config.replace(sigma_p=config.mu_norm / (snr * math.sqrt(config.s)))
