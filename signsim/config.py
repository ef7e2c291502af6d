"""Run configuration: one frozen dataclass, validated once at construction, and presets.

Every field maps to a symbol of the spec (docs/model.md); the presets are the reference
configurations of spec section 9.

The constraints are declared once, in the table ``FIELDS``: field name -> (constraint,
meaning). A constraint (``Constraint``: an ``Int``, ``Float`` or ``Choice``) can

- ``check`` a value (the only validation ``Config`` does, field by field in table order, so
  that ``s`` sees the validated ``d`` through ``Ref("d", -1)``),
- ``describe`` itself (the "constraint" column of docs/usage.md, built by ``field_table``),
- list ``invalid_examples`` (tests/test_config.py makes one test of each).

The defaults stay on the dataclass. After changing the table, regenerate the docs with
``python -c "import signsim.config as c; print(c.field_table())"``; a test checks that
docs/usage.md holds ``field_table()`` verbatim.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, NamedTuple, Protocol

__all__ = ["Config", "PRESETS", "preset", "KERNELS", "ARITHMETICS", "SIGNAL_POSITIONS", "FIELDS",
           "field_table", "Constraint", "Int", "Float", "Choice", "Ref", "Share", "Needs",
           "Pattern", "DATA_SOURCES", "NOISES", "DATA_FIELDS", "OPTIMIZER_FIELDS"]

SIGNAL_POSITIONS = ("random", "first")
DATA_SOURCES = ("synthetic", "digits", "mnist")  # signsim.data.SOURCES builds each
NOISES = ("sparse", "dense")
# fields added with real data (issue 14): a saved config without them is the synthetic data
DATA_FIELDS = ("data", "task", "data_path", "noise")
KERNELS = ("fast", "dense")
ARITHMETICS = ("exact", "float64", "float32")
DENSE_ONLY_ARITHMETICS = ("float32",)  # the float32 comparison runs on the dense reference


class Constraint(Protocol):
    """What every entry of ``FIELDS`` provides (``Int``, ``Float``, ``Choice``)."""

    def check(self, name: str, value: Any, resolved: Mapping[str, Any]) -> Any:
        """Validate one field.

        Parameters
        ----------
        name : str
            The field, named in the error message.
        value
            The value given.
        resolved : mapping
            The fields already validated (those above ``name`` in ``FIELDS``), for ``Ref``.

        Returns
        -------
        int, float or str
            ``value`` as a plain Python scalar (NumPy scalars are converted).

        Raises
        ------
        TypeError
            For a value of the wrong type (the message names the type).
        ValueError
            For a value out of range, NaN or infinite, or not among the choices.
        """

    def describe(self) -> str:
        """The constraint in words, as docs/usage.md's "constraint" column shows it."""

    def invalid_examples(self, resolved: Mapping[str, Any] | None = None) -> list:
        """Values ``check`` refuses, as ``(value, exception type)`` pairs.

        Parameters
        ----------
        resolved : mapping, optional
            The other fields, for ``Ref`` bounds; default the Config defaults.

        Returns
        -------
        list of (object, type)
            Values just outside each bound and of wrong types (str, bool, None; NaN and
            infinities for floats), with the exception ``check`` raises for each.
        """


class Ref(NamedTuple):
    """A bound given by an earlier field: the validated value of ``field`` plus ``offset``."""

    field: str
    offset: int = 0

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def resolve(self, resolved: Mapping[str, Any]) -> int:
        return resolved[self.field] + self.offset

    def __str__(self) -> str:
        return f"{self.field}{self.offset:+d}" if self.offset else self.field


class Share(NamedTuple):
    """A bound given by earlier fields: ``total // per`` (the validated value of the field
    ``per``) minus the fields ``minus``, plus ``offset``; written ``total_text//per-...``.
    What is left of a budget ``total`` shared by every unit of ``per``: with
    ``Share(2**63, "2**63", "d", ("m_k",))``, m_v <= 2**63 // d - m_k is d (m_k + m_v) <= 2**63."""

    total: int
    total_text: str
    per: str
    minus: tuple[str, ...] = ()
    offset: int = 0

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.per,) + tuple(self.minus)

    def resolve(self, resolved: Mapping[str, Any]) -> int:
        return (self.total // resolved[self.per] - sum(resolved[f] for f in self.minus)
                + self.offset)

    def __str__(self) -> str:
        text = f"{self.total_text}//{self.per}" + "".join(f"-{f}" for f in self.minus)
        return text + (f"{self.offset:+d}" if self.offset else "")


_BOUNDS = (Ref, Share)  # the kinds of bounds that name earlier fields


def _defaults() -> dict:
    """The Config defaults, the context in which ``invalid_examples`` are invalid."""
    return {f.name: f.default for f in fields(Config)}


class Int(NamedTuple):
    """An int (or NumPy integer; not a bool) in [lo, hi]; ``hi=None`` means no upper bound.
    ``why``, if given, ends the message of a value above ``hi`` (what the bound protects)."""

    lo: int
    hi: int | Ref | Share | None = None
    hi_text: str | None = None  # how to write an int ``hi``, e.g. "2**63-1"
    why: str | None = None

    def _bounds(self, hi: int | None) -> str:
        if self.hi is None:
            return f">= {self.lo}"
        if isinstance(self.hi, _BOUNDS):
            return f"in [{self.lo}, {self.hi}] = [{self.lo}, {hi}]"
        return f"in [{self.lo}, {self.hi_text or self.hi}]"

    def check(self, name: str, value, resolved: Mapping[str, Any]) -> int:
        hi = self.hi.resolve(resolved) if isinstance(self.hi, _BOUNDS) else self.hi
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"The {name!r} parameter must be an int {self._bounds(hi)}. "
                f"Got {value!r} of type {type(value).__name__} instead."
            )
        value = int(value)
        if value < self.lo or (hi is not None and value > hi):
            why = f" {self.why}" if self.why and value > hi else ""
            raise ValueError(f"The {name!r} parameter must be an int {self._bounds(hi)}. "
                             f"Got {value} instead.{why}")
        return value

    def describe(self) -> str:
        if self.hi is None:
            return f"int >= {self.lo}"
        return f"int in [{self.lo}, {self.hi_text or self.hi}]"

    def invalid_examples(self, resolved: Mapping[str, Any] | None = None) -> list:
        hi = (self.hi.resolve(resolved or _defaults()) if isinstance(self.hi, _BOUNDS)
              else self.hi)
        out = [(self.lo - 1, ValueError)] + ([(hi + 1, ValueError)] if hi is not None else [])
        return out + [(float(self.lo), TypeError), (str(self.lo), TypeError),
                      (True, TypeError), (None, TypeError)]


class Float(NamedTuple):
    """A finite real (not a bool) above ``lo`` and, if ``hi`` is given, below ``hi``."""

    lo: float
    lo_open: bool
    hi: float | None = None
    hi_open: bool = True

    def _bounds(self, num: Callable[[float], str]) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"in {left}{num(self.lo)}, {num(self.hi)}{right}"

    def check(self, name: str, value, resolved: Mapping[str, Any]) -> float:
        bounds = self._bounds(str)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"The {name!r} parameter must be a finite float {bounds}. "
                f"Got {value!r} of type {type(value).__name__} instead."
            )
        value = float(value)
        ok = math.isfinite(value) and (value > self.lo if self.lo_open else value >= self.lo)
        if self.hi is not None:
            ok = ok and (value < self.hi if self.hi_open else value <= self.hi)
        if not ok:
            raise ValueError(f"The {name!r} parameter must be a finite float {bounds}. "
                             f"Got {value!r} instead.")
        return value

    def describe(self) -> str:
        return f"float {self._bounds(lambda x: f'{x:g}')}"

    def invalid_examples(self, resolved: Mapping[str, Any] | None = None) -> list:
        lo = self.lo if self.lo_open else math.nextafter(self.lo, -math.inf)
        out = [(lo, ValueError)]
        if self.hi is not None:
            out.append((self.hi if self.hi_open else math.nextafter(self.hi, math.inf),
                        ValueError))
        return out + [(math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
                      ("1.0", TypeError), (True, TypeError), (None, TypeError)]


class Choice(NamedTuple):
    """One of the strings ``values``: a tuple, or a function returning one (a registry),
    then written in the docs as ``text``."""

    values: tuple | Callable[[], tuple]
    text: str | None = None

    def allowed(self) -> tuple:
        return self.values() if callable(self.values) else tuple(self.values)

    def check(self, name: str, value, resolved: Mapping[str, Any]) -> str:
        allowed = self.allowed()
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"The {name!r} parameter must be one of {list(allowed)}. "
                             f"Got {value!r} instead.")
        return value

    def describe(self) -> str:
        return self.text or "one of " + ", ".join(f"`{v}`" for v in self.allowed())

    def invalid_examples(self, resolved: Mapping[str, Any] | None = None) -> list:
        allowed = self.allowed()
        other = allowed[0].upper()
        while other in allowed:
            other += "X"
        return [(other, ValueError), (None, ValueError)]


class Needs(NamedTuple):
    """A ``Choice`` some of whose values (``only``) need an earlier field ``field`` to be
    ``value``: ``arithmetic="float32"`` needs ``kernel="dense"``."""

    choice: Choice
    only: tuple
    field: str
    value: str

    def check(self, name: str, value, resolved: Mapping[str, Any]) -> str:
        value = self.choice.check(name, value, resolved)
        if value in self.only and resolved[self.field] != self.value:
            rest = [v for v in self.choice.allowed() if v not in self.only]
            raise ValueError(
                f"The {name!r} parameter can be {value!r} only with {self.field}="
                f"{self.value!r}: with {self.field}={resolved[self.field]!r} it must be one of "
                f"{rest}; with {self.field}={self.value!r} one of "
                f"{list(self.choice.allowed())}. Got {name}={value!r} with "
                f"{self.field}={resolved[self.field]!r} instead.")
        return value

    def describe(self) -> str:
        only = ", ".join(f"`{v}`" for v in self.only)
        return f"{self.choice.describe()} ({only} with {self.field} `{self.value}` only)"

    def invalid_examples(self, resolved: Mapping[str, Any] | None = None) -> list:
        other = (resolved or _defaults())[self.field] != self.value
        return self.choice.invalid_examples(resolved) + [(v, ValueError) for v in self.only
                                                          if other]


class Pattern(NamedTuple):
    """A str that ``regex`` matches in full, written in the docs as ``text``; ``bad`` lists
    strings it refuses (for ``invalid_examples``)."""

    regex: str
    text: str
    bad: tuple = ()

    def check(self, name: str, value, resolved: Mapping[str, Any]) -> str:
        if not isinstance(value, str):
            raise TypeError(f"The {name!r} parameter must be {self.text}. "
                            f"Got {value!r} of type {type(value).__name__} instead.")
        if re.fullmatch(self.regex, value) is None:
            raise ValueError(f"The {name!r} parameter must be {self.text}. Got {value!r} instead.")
        return value

    def describe(self) -> str:
        return self.text

    def invalid_examples(self, resolved: Mapping[str, Any] | None = None) -> list:
        return [(b, ValueError) for b in self.bad] + [(None, TypeError), (3, TypeError)]


def _optimizers() -> tuple:
    from .optim import available  # lazy: optim imports this module

    return available()


class FieldSpec(NamedTuple):
    constraint: Constraint
    meaning: str  # docs/usage.md's "meaning (spec equation)" column


# Why the integer bounds. The init counter of coordinate k, row r is k (2 m_k + 2 m_v) + r in
# uint64 (signsim.rng): d (2 m_k + 2 m_v) <= 2**64 keeps the counters of distinct weights
# distinct (beyond, coordinates k and k + 2**64 / (2 m_k + 2 m_v) would get the same
# weights), i.e. d (m_k + m_v) <= 2**63: d <= 2**62 (m_k, m_v >= 1), m_k <= 2**63//d - 1,
# m_v <= 2**63//d - m_k. It also keeps d - 1 an int64 coordinate (data._sample_supports).
# n, n_test and s only size arrays (an index such as i s + a is below n s, the size of an
# allocated array), so they need no bound here: signsim.budget refuses the memory first.
# steps: the loop takes ~0.2 ms a step (1 ms for 100 replicas, docs/performance.md), so
# 10**9 steps is days and 10**12 years; 10**9 is also far inside what keeps the schedules
# int64 (steps + 1 < 2**63) and SignGD's per-sample running sums exact integers (< 2**53).
_COUNTER = ("(The init counter d (2 m_k + 2 m_v) must not exceed 2**64: the fields d, m_k "
            "and m_v bound each other, see signsim.rng.)")
_STEPS = ("(At ~0.2 ms a step, 10**9 steps take days: lower 'steps'; a longer run "
          "would not finish.)")

# fields added with issue 15 (Signum, Lion, RMSProp, weight decay): a saved config without
# them ran none of those optimizers and no weight decay, which their defaults reproduce
OPTIMIZER_FIELDS = ("momentum", "lion_beta1", "lion_beta2", "rmsprop_alpha", "weight_decay")

# Ordered like the dataclass: a field may refer (Ref, Share) to the fields above it.
FIELDS: dict[str, FieldSpec] = {
    "n": FieldSpec(Int(1), "training samples"),
    "d": FieldSpec(Int(2, 2**62, "2**62", _COUNTER),
                   "dimension; the fast kernel's cost does not depend on it; real data: at "
                   "least the pixels of an image (64, 784)"),
    "s": FieldSpec(Int(1, Ref("d", -1)), "noise support size (E3)"),
    "sigma_p": FieldSpec(Float(0.0, lo_open=True), "noise standard deviation on the support (E3)"),
    "mu_norm": FieldSpec(Float(0.0, lo_open=False), "signal strength, mu = mu_norm e_1 (E1); "
                         "real data: the norm of every signal token"),
    "n_test": FieldSpec(Int(1), "test samples (own random stream)"),
    "signal_position": FieldSpec(Choice(SIGNAL_POSITIONS), "which token is the signal (E4)"),
    # real data (spec section 10, docs/real-data.md)
    "data": FieldSpec(Choice(DATA_SOURCES),
                      "`synthetic` (E1-E5), `digits` (scikit-learn's 8x8 images, "
                      "`signsim[digits]`) or `mnist` (IDX files in `data_path`)"),
    "task": FieldSpec(Pattern(r"(\d),(?!\1)\d|even-odd",
                              "a digit pair `a,b` (two distinct digits) or `even-odd`",
                              ("3,3", "3-8", "even")),
                      "real data: the binary task; y = +1 for digit a (or the even digits)"),
    "data_path": FieldSpec(Pattern(r"[^\x00]*", "a folder path (a str, may be empty)",
                                   ("a\x00b",)),
                           "data `mnist`: the folder of the IDX files (`train-images-idx3-ubyte`"
                           "[.gz], ...); never downloaded"),
    "noise": FieldSpec(Choice(NOISES), "noise token: `sparse`, s coordinates (E3), or `dense`, "
                       "every coordinate (real data only)"),
    "m_k": FieldSpec(Int(1, Share(2**63, "2**63", "d", offset=-1), why=_COUNTER),
                     "query/key neurons (E8, E9)"),
    "m_v": FieldSpec(Int(1, Share(2**63, "2**63", "d", ("m_k",)), why=_COUNTER),
                     "value neurons per head (E6)"),
    "sigma_0": FieldSpec(Float(0.0, lo_open=False), "init standard deviation (E13)"),
    "optimizer": FieldSpec(
        Choice(_optimizers, "a registered optimizer name (`signsim.optim.available()`)"),
        "update rule; built in: `signgd` (E20), `signum` (E20a), `lion` (E20b), `adam` "
        "(E21), `rmsprop` (E21a), `gd` (E22), `normalized_gd` (E22a)"),
    "lr": FieldSpec(Float(0.0, lo_open=True), "learning rate (E20-E22)"),
    "beta1": FieldSpec(Float(0.0, lo_open=False, hi=1.0), "Adam first-moment decay (E21)"),
    "beta2": FieldSpec(Float(0.0, lo_open=False, hi=1.0), "Adam second-moment decay (E21)"),
    "eps": FieldSpec(Float(0.0, lo_open=False),
                     "Adam and RMSProp epsilon, added after the square root; 0 allowed "
                     "(E21, E21a)"),
    # Task C (issue 15): the optimizers between SignGD and Adam, and weight decay
    "momentum": FieldSpec(Float(0.0, lo_open=False, hi=1.0),
                          "Signum momentum: decay of the buffer whose sign is the step (E20a)"),
    "lion_beta1": FieldSpec(Float(0.0, lo_open=False, hi=1.0),
                            "Lion: weight of the buffer in the step direction (E20b)"),
    "lion_beta2": FieldSpec(Float(0.0, lo_open=False, hi=1.0),
                            "Lion: decay of its buffer (E20b)"),
    "rmsprop_alpha": FieldSpec(Float(0.0, lo_open=False, hi=1.0),
                               "RMSProp (PyTorch's alpha): decay of the mean of g^2 (E21a)"),
    "weight_decay": FieldSpec(Float(0.0, lo_open=False),
                              "decoupled weight decay: W <- (1 - lr wd) W + update, every "
                              "weight; lr wd < 1 (E22b)"),
    "steps": FieldSpec(Int(0, 10**9, "10**9", _STEPS), "full-batch updates"),
    "seed": FieldSpec(Int(0, 2**63 - 1, "2**63-1"),
                      "seeds training data, test data and init (independent streams)"),
    "record_every": FieldSpec(Int(1),
                              "training quantities at steps 0, k, 2k, ... and the last step"),
    "test_every": FieldSpec(Int(1), "test metrics at steps 0, k, 2k, ... and the last step"),
    "kernel": FieldSpec(Choice(KERNELS), "fast: active coordinates only; dense: the reference"),
    "arithmetic": FieldSpec(Needs(Choice(ARITHMETICS), DENSE_ONLY_ARITHMETICS, "kernel", "dense"),
                            "exact: sign steps from the real gradient's sign, never stopped by "
                            "an underflow (E20); float64: the plain formulas; float32: the "
                            "plain formulas in float32 (dense reference, for comparison)"),
}


@dataclass(frozen=True)
class Config:
    """Everything that determines a run; the same Config gives bit-identical results.

    Defaults are the ``fig1`` reference configuration (spec section 9); each field's
    constraint is in ``FIELDS`` (docs/usage.md shows the table).
    """

    # data (E1-E5)
    n: int = 20  # training samples
    d: int = 10_000  # ambient dimension; costs nothing with kernel="fast"
    s: int = 20  # noise sparsity: coordinates in each noise support (E3)
    sigma_p: float = 10.0  # noise standard deviation on the support (E3)
    mu_norm: float = 1.0  # signal strength, mu = mu_norm * e_1 (E1)
    n_test: int = 1000  # fresh test samples, own random stream
    signal_position: str = "random"  # which token holds the signal: "random" per sample or "first"
    # real data (spec section 10): the synthetic data above unless `data` says otherwise
    data: str = "synthetic"  # "synthetic", "digits" (scikit-learn's) or "mnist" (data_path)
    task: str = "3,8"  # real data: digit pair "a,b" (y = +1 for a) or "even-odd"
    data_path: str = ""  # data="mnist": the folder holding the IDX files
    noise: str = "sparse"  # "sparse" (s coordinates, E3) or "dense" (real data only)
    # network (E6-E13)
    m_k: int = 10  # query/key neurons
    m_v: int = 10  # value neurons per head
    sigma_0: float = 0.005  # init scale: every weight ~ N(0, sigma_0^2) (E13)
    # optimizer (E20-E22)
    optimizer: str = "signgd"  # a name in signsim.optim.available()
    lr: float = 1e-4
    beta1: float = 0.9  # Adam only
    beta2: float = 0.999  # Adam only
    eps: float = 1e-8  # Adam and RMSProp; 0 allowed (0/0 counts as 0)
    # Task C (issue 15): each optimizer its own fields, at its own defaults
    momentum: float = 0.9  # Signum only (E20a)
    lion_beta1: float = 0.9  # Lion only (E20b): its paper's defaults, not Adam's
    lion_beta2: float = 0.99  # Lion only (E20b)
    rmsprop_alpha: float = 0.99  # RMSProp only (E21a), PyTorch's default
    weight_decay: float = 0.0  # decoupled, every optimizer (E22b); 0: none
    steps: int = 900  # full-batch updates
    seed: int = 0  # one integer seeds data, test data and init through independent streams
    # schedule: what is recorded when
    record_every: int = 1  # training quantities at steps 0, k, 2k, ... and the last step
    test_every: int = 10  # test loss/error at steps 0, k, 2k, ... and the last step
    kernel: str = "fast"  # "fast" (active coordinates only) or "dense" (the reference)
    arithmetic: str = "exact"  # "exact" (E20, docs/model.md section 5), "float64", or
    # "float32" (kernel="dense" only: what a float32 program computes, for comparison)

    def __post_init__(self) -> None:
        resolved: dict[str, Any] = {}
        for name, spec in FIELDS.items():
            resolved[name] = spec.constraint.check(name, getattr(self, name), resolved)
            object.__setattr__(self, name, resolved[name])

    def replace(self, **changes) -> "Config":
        """Return a copy with ``changes`` applied (validated like a new Config)."""
        _refuse_unknown(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """The Config saved as ``to_dict()``. A config saved before the ``arithmetic`` field
        existed (signsim 0.1) ran the plain float64 formulas, so it loads as
        ``arithmetic="float64"``: it reproduces the run that was saved."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"Unknown Config field(s) {unknown} in saved config.")
        if "arithmetic" not in data:
            data = {**data, "arithmetic": "float64"}
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    @property
    def snr(self) -> float:
        """Signal-to-noise ratio mu_norm / (sigma_p sqrt(s)) (E5)."""
        return self.mu_norm / (self.sigma_p * math.sqrt(self.s))


def _refuse_unknown(changes: Mapping[str, Any]) -> None:
    names = [f.name for f in fields(Config)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise TypeError(f"Unknown Config field(s) {unknown}; known fields are {names}.")


def field_table() -> str:
    """The Markdown table of the Config fields, as docs/usage.md shows it.

    Returns
    -------
    str
        A header, a rule and one row per field (no trailing newline): the field, its
        default (the fig1 value, as JSON), ``describe()`` of its constraint and its meaning.
    """
    rows = ["| field | default (fig1) | constraint | meaning (spec equation) |",
            "|---|---|---|---|"]
    for f in fields(Config):
        spec = FIELDS[f.name]
        rows.append(f"| `{f.name}` | {json.dumps(f.default)} | {spec.constraint.describe()} "
                    f"| {spec.meaning} |")
    return "\n".join(rows)


# Spec section 9. fig2 runs the fig1 data under Adam (the figure pairs it with SignGD);
# data_quality is its SNR = 1 point (sigma_p = 1/(SNR sqrt(s))) under SignGD.
PRESETS: dict[str, dict] = {
    "fig1": {},
    "fig2": {"optimizer": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "data_quality": {"sigma_0": 0.01, "sigma_p": 1.0 / math.sqrt(20), "lr": 1e-3},
}


def preset(name: str, **overrides) -> Config:
    """The named reference configuration (spec section 9), with ``overrides`` applied.

    Parameters
    ----------
    name : str
        A key of ``PRESETS``.
    **overrides
        Config fields replacing the preset's values.

    Returns
    -------
    Config

    Raises
    ------
    ValueError
        If ``name`` is not a preset (or an override is out of range).
    TypeError
        If an override is not a Config field (or has a wrong type).
    """
    Choice(tuple(sorted(PRESETS))).check("preset", name, {})
    _refuse_unknown(overrides)
    return Config(**{**PRESETS[name], **overrides})
