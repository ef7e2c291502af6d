"""Stage boundaries T1-T4 of SignGD training (spec section 7), detected from a run's history.

Each boundary is a recorded step (or None when the run never gets there); docs/lemmas.md
gives the exact definitions, repeated here:

- T1: the first step from which, at every later recorded step, every sample's mean value
  noise <v, y_i xi_i> is positive and larger than ``dominance * |<v, mu>|``.
Each boundary is searched from the latest earlier boundary that was found (from step 0 if
none was), so the boundaries found are always ordered T1 <= T2 <= T3 <= T4.

- T2: the first step >= T1 at which query and key noise have the same sign for every (s, i).
  (A crossing, not a lasting state: in Stage IV the "negative" noise flips and the two
  flips are not simultaneous.)
- T3: the first step >= T2 from which every neuron's query signal has the sign of its
  weighted key-noise majority, the driver of R4,
  ``sum_i |l'_i| s11 s12 D^V_i D^K_{s,i}``, and its key signal the opposite sign.
- T4: the first step >= T3 from which s21 < ``s21_threshold`` for every sample and every query
  and key noise has the sign of its neuron's query signal.

Boundaries need the training quantities on every step that matters: record_every = 1 gives
exact steps, a coarser schedule gives the first recorded step at or after the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["StageReport", "Evidence", "detect", "detect_history", "conditions"]


@dataclass(frozen=True)
class Evidence:
    """Why a boundary is where it is: the quantity, the step, and its value there."""

    quantity: str
    step: int | None
    value: float | None


@dataclass(frozen=True)
class StageReport:
    T1: int | None
    T2: int | None
    T3: int | None
    T4: int | None
    evidence: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"T1": self.T1, "T2": self.T2, "T3": self.T3, "T4": self.T4}

    def table(self) -> str:
        """A plain-text table of the boundaries and their evidence."""
        lines = [f"{'boundary':8s} {'step':>6s}  evidence"]
        for name in ("T1", "T2", "T3", "T4"):
            ev = self.evidence[name]
            step = "-" if getattr(self, name) is None else str(getattr(self, name))
            value = "" if ev.value is None else f" = {ev.value:.3g}"
            lines.append(f"{name:8s} {step:>6s}  {ev.quantity}{value}")
        return "\n".join(lines)


def conditions(history: dict, *, dominance: float = 1.0, s21_threshold: float = 0.01) -> dict:
    """The per-step truth of each stage condition (arrays over recorded steps) and the
    quantities behind them, for one run."""
    mvn, mvs = history["mean_value_noise"], history["mean_value_signal"]  # (T, n), (T,)
    qn, kn = history["query_noise"], history["key_noise"]  # (T, m_k, n)
    qs, ks = history["query_signal"], history["key_signal"]  # (T, m_k)
    att, lp = history["attention"], history["loss_derivative"]  # (T, n, 2, 2), (T, n)
    s11, s12, s21 = att[..., 0, 0], att[..., 0, 1], att[..., 1, 0]
    margin_v = mvn - dominance * np.abs(mvs)[:, None]
    DV = mvn - mvs[:, None]  # D^V_i
    DK = kn - ks[:, :, None]  # D^K_{s,i}
    drive = ((np.abs(lp) * s11 * s12 * DV)[:, None, :] * DK).sum(-1)  # (T, m_k), R4 driver
    sq = np.sign(qs)[:, :, None]
    shares = (np.sign(qn) == sq) & (np.sign(kn) == sq)
    return {
        "T1": ((mvn > 0) & (margin_v > 0)).all(axis=1),
        "T2": (np.sign(qn) == np.sign(kn)).all(axis=(1, 2)),
        "T3": ((np.sign(qs) == np.sign(drive)) & (np.sign(ks) == -np.sign(qs))).all(axis=1),
        "T4": (s21.max(axis=1) < s21_threshold) & shares.all(axis=(1, 2)),
        "_values": {
            "T1": margin_v.min(axis=1), "T2": (np.sign(qn) == np.sign(kn)).mean(axis=(1, 2)),
            "T3": ((np.sign(qs) == np.sign(drive)) & (np.sign(ks) == -np.sign(qs))).mean(axis=1),
            "T4": s21.max(axis=1), "T4_shares": shares.mean(axis=(1, 2)),
        },
    }


def _lasting_from(ok: np.ndarray, start: int) -> int | None:
    """First index >= start from which ``ok`` holds to the end, or None."""
    bad = np.flatnonzero(~ok[start:])
    first = start if bad.size == 0 else start + bad[-1] + 1
    return first if first < len(ok) else None


def _first_from(ok: np.ndarray, start: int) -> int | None:
    hit = np.flatnonzero(ok[start:])
    return None if hit.size == 0 else start + int(hit[0])


def _detect_one(steps: np.ndarray, history: dict, dominance: float, s21_threshold: float):
    c = conditions(history, dominance=dominance, s21_threshold=s21_threshold)
    v = c["_values"]
    idx, start = {}, 0
    for name, find in (("T1", _lasting_from), ("T2", _first_from), ("T3", _lasting_from),
                       ("T4", _lasting_from)):
        idx[name] = find(c[name], start)
        start = start if idx[name] is None else idx[name]
    step = {k: None if i is None else int(steps[i]) for k, i in idx.items()}
    at = lambda name, key=None: (None if idx[name] is None  # noqa: E731
                                 else float(v[key or name][idx[name]]))
    evidence = {
        "T1": Evidence(f"min_i (mean_value_noise_i - {dominance:g} |mean_value_signal|)",
                       step["T1"], at("T1")),
        "T2": Evidence("fraction of (s, i) with sign(query_noise) = sign(key_noise)",
                       step["T2"], at("T2")),
        "T3": Evidence("fraction of neurons with query signal on the R4 majority and key "
                       "signal opposite", step["T3"], at("T3")),
        "T4": Evidence(f"max_i s21 (< {s21_threshold:g}), with every noise sharing its "
                       "neuron's query-signal sign", step["T4"], at("T4")),
    }
    return StageReport(**step, evidence=evidence,
                       thresholds={"dominance": dominance, "s21_threshold": s21_threshold})


def detect(result, *, dominance: float = 1.0, s21_threshold: float = 0.01):
    """Stage boundaries of a run (a list of reports, one per replica, for a batched run).

    Parameters
    ----------
    result : Result
    dominance : float
        T1 asks every mean value noise to exceed ``dominance * |mean_value_signal|``.
    s21_threshold : float
        T4 asks every s21 (noise query on signal key) to be below this.
    """
    if not (isinstance(dominance, (int, float)) and dominance >= 0):
        raise ValueError(f"The 'dominance' parameter must be a float >= 0. Got {dominance!r} instead.")
    if not (isinstance(s21_threshold, (int, float)) and 0 < s21_threshold < 1):
        raise ValueError("The 's21_threshold' parameter must be a float in (0, 1). "
                         f"Got {s21_threshold!r} instead.")
    if result.seeds is None:
        return _detect_one(result.steps, result.history, dominance, s21_threshold)
    h = result.history
    return [_detect_one(result.steps, {k: h[k][r] for k in _USED}, dominance, s21_threshold)
            for r in range(len(result.seeds))]


def detect_history(steps, history, *, dominance: float = 1.0, s21_threshold: float = 0.01):
    """``detect`` for one run given as its recorded ``steps`` and ``history`` (name ->
    array, steps first), as a sweep keeps it."""
    return _detect_one(np.asarray(steps), history, dominance, s21_threshold)


# the recorded quantities the stage conditions read (not value_noise, which a fast-kernel
# history builds only on access)
_USED = ("mean_value_noise", "mean_value_signal", "query_noise", "key_noise", "query_signal",
         "key_signal", "attention", "loss_derivative")
