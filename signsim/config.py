"""Run configuration: one frozen dataclass, validated once at construction, and presets.

Every field maps to a symbol of the spec (docs/model.md); the presets are the reference
configurations of spec section 9.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, fields

__all__ = ["Config", "PRESETS", "preset", "OPTIMIZERS", "KERNELS"]

OPTIMIZERS = ("signgd", "adam", "gd")
SIGNAL_POSITIONS = ("random", "first")
KERNELS = ("fast", "dense")
_MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Config:
    """Everything that determines a run; the same Config gives bit-identical results.

    Defaults are the ``fig1`` reference configuration (spec section 9). See docs/usage.md
    for each field's constraint.
    """

    # data (E1-E5)
    n: int = 20  # training samples
    d: int = 10_000  # ambient dimension; costs nothing with kernel="fast"
    s: int = 20  # noise sparsity: coordinates in each noise support, from {2..d}
    sigma_p: float = 10.0  # noise standard deviation on the support (E3)
    mu_norm: float = 1.0  # signal strength, mu = mu_norm * e_1 (E1)
    n_test: int = 1000  # fresh test samples, own random stream
    signal_position: str = "random"  # which token holds the signal: "random" per sample or "first"
    # network (E6-E13)
    m_k: int = 10  # query/key neurons
    m_v: int = 10  # value neurons per head
    sigma_0: float = 0.005  # init scale: every weight ~ N(0, sigma_0^2) (E13)
    # optimizer (E20-E22)
    optimizer: str = "signgd"  # "signgd" | "adam" | "gd"
    lr: float = 1e-4
    beta1: float = 0.9  # Adam only
    beta2: float = 0.999  # Adam only
    eps: float = 1e-8  # Adam only; 0 allowed (0/0 counts as 0)
    steps: int = 900  # full-batch updates
    seed: int = 0  # one integer seeds data, test data and init through independent streams
    # schedule: what is recorded when
    record_every: int = 1  # training quantities at steps 0, k, 2k, ... and the last step
    test_every: int = 10  # test loss/error at steps 0, k, 2k, ... and the last step
    kernel: str = "fast"  # "fast" (active coordinates only) or "dense" (the reference)

    def __post_init__(self) -> None:
        for name, value in _validated(self).items():
            object.__setattr__(self, name, value)

    def replace(self, **changes) -> "Config":
        """Return a copy with ``changes`` applied (validated like a new Config)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"Unknown Config field(s) {unknown}; known fields are "
                f"{[f.name for f in fields(self)]}."
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"Unknown Config field(s) {unknown} in saved config.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    @property
    def snr(self) -> float:
        """Signal-to-noise ratio mu_norm / (sigma_p sqrt(s)) (E5)."""
        return self.mu_norm / (self.sigma_p * math.sqrt(self.s))


def _int(name: str, value, lo: int, hi: int | None = None, hi_text: str | None = None) -> int:
    bounds = f"in [{lo}, {hi_text or hi}]" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"The {name!r} parameter must be an int {bounds}. "
            f"Got {value!r} of type {type(value).__name__} instead."
        )
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"The {name!r} parameter must be an int {bounds}. Got {value} instead.")
    return value


def _float(name: str, value, lo: float, *, lo_open: bool, hi: float | None = None,
           hi_open: bool = True) -> float:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    bounds = f"in {left}{lo}, {hi}{right}" if hi is not None else (
        f"> {lo}" if lo_open else f">= {lo}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"The {name!r} parameter must be a finite float {bounds}. "
            f"Got {value!r} of type {type(value).__name__} instead."
        )
    value = float(value)
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo)
    if hi is not None:
        ok = ok and (value < hi if hi_open else value <= hi)
    if not ok:
        raise ValueError(f"The {name!r} parameter must be a finite float {bounds}. "
                         f"Got {value!r} instead.")
    return value


def _choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"The {name!r} parameter must be one of {list(allowed)}. "
                         f"Got {value!r} instead.")
    return value


def _validated(c: Config) -> dict:
    """Check every field once; return the normalised values (plain int/float/str)."""
    out = {}
    out["n"] = _int("n", c.n, 1)
    out["d"] = _int("d", c.d, 2)
    out["s"] = _int("s", c.s, 1, out["d"] - 1, hi_text=f"d-1] = [1, {out['d'] - 1}")
    out["sigma_p"] = _float("sigma_p", c.sigma_p, 0.0, lo_open=True)
    out["mu_norm"] = _float("mu_norm", c.mu_norm, 0.0, lo_open=False)
    out["n_test"] = _int("n_test", c.n_test, 1)
    out["signal_position"] = _choice("signal_position", c.signal_position, SIGNAL_POSITIONS)
    out["m_k"] = _int("m_k", c.m_k, 1)
    out["m_v"] = _int("m_v", c.m_v, 1)
    out["sigma_0"] = _float("sigma_0", c.sigma_0, 0.0, lo_open=False)
    out["optimizer"] = _choice("optimizer", c.optimizer, OPTIMIZERS)
    out["lr"] = _float("lr", c.lr, 0.0, lo_open=True)
    out["beta1"] = _float("beta1", c.beta1, 0.0, lo_open=False, hi=1.0)
    out["beta2"] = _float("beta2", c.beta2, 0.0, lo_open=False, hi=1.0)
    out["eps"] = _float("eps", c.eps, 0.0, lo_open=False)
    out["steps"] = _int("steps", c.steps, 0)
    out["seed"] = _int("seed", c.seed, 0, _MAX_SEED, hi_text="2**63-1")
    out["record_every"] = _int("record_every", c.record_every, 1)
    out["test_every"] = _int("test_every", c.test_every, 1)
    out["kernel"] = _choice("kernel", c.kernel, KERNELS)
    return out


# Spec section 9. fig2 runs the fig1 data under Adam (the figure pairs it with SignGD);
# data_quality is its SNR = 1 point (sigma_p = 1/(SNR sqrt(s))) under SignGD.
PRESETS: dict[str, dict] = {
    "fig1": {},
    "fig2": {"optimizer": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "data_quality": {"sigma_0": 0.01, "sigma_p": 1.0 / math.sqrt(20), "lr": 1e-3},
}


def preset(name: str, **overrides) -> Config:
    """The named reference configuration (spec section 9), with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"The 'preset' parameter must be one of {sorted(PRESETS)}. "
                         f"Got {name!r} instead.")
    return Config(**{**PRESETS[name], **overrides})
