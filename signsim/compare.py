"""``compare(*results)``: how close runs on the same data and init stay, under different
optimizers (docs/optimizers.md).

What it measures, for every pair (a, b) of the k results given (axes (k, k, ...)):

- **distance** per recorded quantity and step: ||x_a(t) - x_b(t)||_2 over the entries of
  the quantity (its absolute value for a scalar), and ``relative``: that distance over
  max(||x_a(t) - x_a(0)||, ||x_b(t) - x_b(0)||), the larger of the two displacements from
  the common init (0/0 counts as 0), so that 0 is the same trajectory and 1 is as far
  apart as the longer displacement (a run that stays put against one that moves).
  ``trajectory_distance(name)`` is the same ratio over the whole trajectory at once
  (Frobenius norms over every recorded step).
- **update-sign agreement** at each recorded step: the share of coordinates whose updates
  have the same sign in both runs, from consecutive records (``SIGN_QUANTITIES``). At a
  coordinate k of B_i that no other support holds, every built-in rule moves w_{Q,s}[k] by
  -sign(y_i xi_i[k]) times one sign per (s, i) (the gradient there is C xi_i[k] with one C
  per (s, i), and each rule's sign is that of a linear functional of the history), so the
  sign of the change of query_noise_{s,i} = <w_{Q,s}, y_i xi_i> is the common sign of the
  updates of the s coordinates of B_i, relative to y_i xi_i[k]. So each (s, i) entry of
  query_noise and key_noise stands for s coordinates, each entry of mean_value_noise for
  the s value coordinates of B_i (of v), and query_signal, key_signal, mean_value_signal
  for coordinate 1 of their row. The share weighs them so (s, s, 1, 1, s, 1). Exact for
  disjoint supports and record_every = 1; with a coarser schedule it compares the net
  moves between records; with weight decay the changes include the decay.
- **stages**: the boundaries T1-T4 of each run (``signsim.stages.detect``) and
  ``boundary_gaps``: T_b - T_a for each boundary both runs reach.
- **Stage IV flips**: the "negative" noise of a run at step ``flip_from`` (default: the
  first result's T3) is its query and key noise entries (s, i) whose sign opposes the
  neuron's query signal there; such an entry has flipped if at the last step it shares
  the sign of the neuron's query signal. ``flip_share`` is the share flipped per run,
  ``flip_agreement`` the share of entries negative in both runs on which they agree
  (both flipped or neither).

Results must be single runs (``Result.replica(r)`` of a batch) on the same training and
test data and the same init, recorded at the same steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import stages as _stages

__all__ = ["compare", "Comparison", "SIGN_QUANTITIES"]

# recorded quantity -> how many coordinates each entry stands for (module docstring):
# "s" for an entry per (row, sample), 1 for coordinate 1
SIGN_QUANTITIES = {"query_noise": "s", "key_noise": "s", "mean_value_noise": "s",
                   "query_signal": 1, "key_signal": 1, "mean_value_signal": 1}


@dataclass(frozen=True, eq=False)
class Comparison:
    """What ``compare`` returns (module docstring); pair axes (k, k) first everywhere.

    Attributes
    ----------
    labels : tuple of str
        The optimizer of each result (``Config.optimizer``).
    steps, test_steps : ndarray
        The recorded steps the results share.
    distance, relative : dict of str -> ndarray of shape (k, k, T)
        Per recorded quantity (T_test steps for test_loss, test_error).
    trajectories : dict of str -> ndarray of shape (k, k)
        ``trajectory_distance`` of each recorded quantity.
    agreement : ndarray of shape (k, k, T - 1), or None
        Share of coordinates whose updates agree in sign between records t and t + 1;
        None if no quantity of ``SIGN_QUANTITIES`` was recorded.
    reports : tuple of StageReport, or None
        Each run's stage boundaries (None if the stage quantities were not recorded).
    flip_from : int or None
        The step at which the negative noise is taken.
    negative, flipped : ndarray of shape (k, 2, m_k, n), bool, or None
        Query (index 0) and key noise entries negative at ``flip_from``; of those, the ones
        that share their neuron's query-signal sign at the last step.
    """

    labels: tuple
    steps: np.ndarray
    test_steps: np.ndarray
    distance: dict
    relative: dict
    trajectories: dict
    agreement: np.ndarray | None
    reports: tuple | None
    flip_from: int | None
    negative: np.ndarray | None
    flipped: np.ndarray | None

    def trajectory_distance(self, name: str) -> np.ndarray:
        """(k, k): ||X_a - X_b||_F / max(||X_a - X_a(0)||_F, ||X_b - X_b(0)||_F) over the
        whole recorded trajectory of ``name`` (0/0 counts as 0)."""
        if name not in self.trajectories:
            raise ValueError(f"The 'name' parameter must be a quantity every result recorded, "
                             f"one of {sorted(self.trajectories)}. Got {name!r} instead.")
        return self.trajectories[name]

    def mean_agreement(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """(k, k): the update-sign agreement averaged over the moves from the recorded
        steps t in [start, stop) (default: all) to the next record; NaN if there is none."""
        if self.agreement is None:
            raise ValueError("No quantity of SIGN_QUANTITIES was recorded by every result.")
        t = self.steps[:-1]
        keep = (t >= (t[0] if start is None else start)) & (t < (np.inf if stop is None
                                                                    else stop))
        if not keep.any():
            return np.full(self.agreement.shape[:2], np.nan)
        return self.agreement[..., keep].mean(axis=-1)

    def boundary_gaps(self) -> dict:
        """Boundary name -> (k, k) T_b - T_a, NaN where either run does not reach it."""
        if self.reports is None:
            raise ValueError("The stage quantities (stages._USED) were not recorded by every "
                             "result.")
        out = {}
        for name in ("T1", "T2", "T3", "T4"):
            T = np.array([np.nan if getattr(r, name) is None else getattr(r, name)
                          for r in self.reports])
            out[name] = T[None, :] - T[:, None]
        return out

    def flip_share(self) -> np.ndarray:
        """(k,): the share of each run's negative noise at ``flip_from`` flipped by the end
        (NaN where it has none, or without ``flip_from``)."""
        if self.negative is None:
            return np.full(len(self.labels), np.nan)
        count = self.negative.sum(axis=(1, 2, 3))
        return _ratio(self.flipped.sum(axis=(1, 2, 3)), count)

    def flip_agreement(self) -> np.ndarray:
        """(k, k): over the entries negative in both runs at ``flip_from``, the share on
        which both flipped or neither did (NaN where there is none)."""
        k = len(self.labels)
        if self.negative is None:
            return np.full((k, k), np.nan)
        both = self.negative[:, None] & self.negative[None, :]
        same = both & (self.flipped[:, None] == self.flipped[None, :])
        return _ratio(same.sum(axis=(2, 3, 4)), both.sum(axis=(2, 3, 4)))

    def table(self, reference: int = 0, name: str = "query_noise") -> str:
        """A plain-text table of every result against result ``reference``: the trajectory
        distance of ``name``, the mean update-sign agreement, the stage boundaries and the
        share of negative noise flipped."""
        dist = self.trajectory_distance(name)[reference]
        agree = (self.mean_agreement()[reference] if self.agreement is not None
                 else np.full(len(self.labels), np.nan))
        flips = self.flip_share()
        lines = [f"{'optimizer':14s} {'distance':>9s} {'agreement':>9s} "
                 f"{'T1':>5s} {'T2':>5s} {'T3':>5s} {'T4':>5s} {'flipped':>8s}"]
        for j, label in enumerate(self.labels):
            T = (["-"] * 4 if self.reports is None else
                 ["-" if v is None else str(v) for v in self.reports[j].as_dict().values()])
            lines.append(f"{label:14s} {dist[j]:9.3g} {agree[j]:9.3f} "
                         + " ".join(f"{x:>5s}" for x in T) + f" {flips[j]:8.3f}")
        return "\n".join(lines)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den = 0."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan),
                     where=den != 0)


def compare(*results, flip_from: int | None = None) -> Comparison:
    """Compare runs on the same data and init (module docstring).

    Parameters
    ----------
    *results : Result
        Two or more single runs (not batches) on the same training and test data, the same
        init and the same recorded steps; usually under different optimizers.
    flip_from : int, optional
        A recorded step at which the negative noise is taken (default: the first result's
        T3; with no T3 there, the flip measures are NaN).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        For fewer than two results, a batch, results on different data, init or steps.
    """
    _check(results)
    first = results[0]
    steps, test_steps = first.steps, first.test_steps
    names = [n for n in first.history if all(n in list(r.history) for r in results)]
    histories = [{n: np.asarray(r.history[n], float) for n in names} for r in results]
    distance, relative, whole = {}, {}, {}
    for n in names:
        distance[n], relative[n], whole[n] = _distances([h[n] for h in histories])
    reports = None
    if all(q in names for q in _stages._USED):
        reports = tuple(_stages.detect(r) for r in results)
    if flip_from is None and reports is not None:
        flip_from = reports[0].T3
    negative = flipped = None
    if flip_from is not None:
        missing = [q for q in ("query_noise", "key_noise", "query_signal") if q not in names]
        if missing:
            raise ValueError(f"The 'flip_from' parameter needs {missing} recorded by every "
                             "result.")
        negative, flipped = _flips(histories, steps, flip_from)
    return Comparison(labels=tuple(r.config.optimizer for r in results), steps=steps,
                      test_steps=test_steps, distance=distance, relative=relative,
                      trajectories=whole, agreement=_agreement(histories, first.config.s),
                      reports=reports, flip_from=flip_from, negative=negative,
                      flipped=flipped)


def _distances(xs: list):
    """(absolute, relative) per step (k, k, T) and the whole-trajectory ratio (k, k)."""
    X = np.stack([x.reshape(len(x), -1) for x in xs])  # (k, T, entries)
    diff = np.linalg.norm(X[:, None] - X[None, :], axis=-1)  # (k, k, T)
    moved = np.linalg.norm(X - X[:, :1], axis=-1)  # (k, T) displacement from step 0
    scale = np.maximum(moved[:, None], moved[None, :])
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    total = np.sqrt((diff ** 2).sum(-1))
    total_scale = np.sqrt((moved ** 2).sum(-1))
    total_scale = np.maximum(total_scale[:, None], total_scale[None, :])
    whole = np.divide(total, total_scale, out=np.zeros_like(total), where=total_scale > 0)
    return diff, rel, whole


def _agreement(histories: list, s: int):
    """(k, k, T - 1) the weighted share of update signs that agree (module docstring)."""
    signs, weights = [], []
    for name, per in SIGN_QUANTITIES.items():
        if name not in histories[0]:
            continue
        moves = np.stack([np.sign(np.diff(h[name], axis=0)) for h in histories])
        signs.append(moves.reshape(moves.shape[:2] + (-1,)))  # (k, T - 1, entries)
        weights.append(np.full(signs[-1].shape[-1], s if per == "s" else 1, float))
    if not signs:
        return None
    S, w = np.concatenate(signs, axis=-1), np.concatenate(weights)
    same = (S[:, None] == S[None, :]).astype(float)  # (k, k, T - 1, entries)
    return same @ w / w.sum()


def _flips(histories: list, steps: np.ndarray, flip_from: int):
    """(negative, flipped), (k, 2, m_k, n) each (module docstring)."""
    where = np.flatnonzero(steps == flip_from)
    if where.size == 0:
        raise ValueError(f"The 'flip_from' parameter must be a recorded step (in "
                         f"[0, {int(steps[-1])}] on the record schedule). Got {flip_from!r}.")
    t0 = int(where[0])
    negative, flipped = [], []
    for h in histories:
        noise = np.stack([h["query_noise"], h["key_noise"]], axis=1)  # (T, 2, m_k, n)
        qs = np.sign(h["query_signal"])[:, None, :, None]  # (T, 1, m_k, 1)
        neg = np.sign(noise[t0]) != qs[t0]
        negative.append(neg)
        flipped.append(neg & (np.sign(noise[-1]) == qs[-1]))
    return np.stack(negative), np.stack(flipped)


def _check(results: tuple) -> None:
    """Refuse what cannot be compared: fewer than two, batches, other data or init."""
    from .result import Result

    if len(results) < 2 or not all(isinstance(r, Result) for r in results):
        raise ValueError("compare() takes two or more Results (single runs). Got "
                         f"{[type(r).__name__ for r in results]}.")
    if any(r.batched for r in results):
        raise ValueError("compare() takes single runs; pass result.replica(r) for replica r "
                         "of a batch.")
    first = results[0]
    for j, r in enumerate(results[1:], start=1):
        for what, a, b in (("training data", first.dataset, r.dataset),
                           ("test data", first.test_dataset, r.test_dataset)):
            if not _same_dataset(a, b):
                raise ValueError(f"Result {j} was trained on other {what} than result 0: "
                                 "compare() needs runs on the same data and init (the same "
                                 "data fields and seed).")
        if not _same_weights(first.init_params, r.init_params):
            raise ValueError(f"Result {j} starts from another init than result 0: compare() "
                             "needs runs on the same data and init (the same seed, d, m_k, "
                             "m_v and sigma_0).")
        if not (np.array_equal(first.steps, r.steps)
                and np.array_equal(first.test_steps, r.test_steps)):
            raise ValueError(f"Result {j} was recorded at other steps than result 0: "
                             "compare() needs the same steps, record_every and test_every.")


def _same_dataset(a, b) -> bool:
    if type(a) is not type(b):
        return False
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name))
               for f in dataclasses.fields(a))


def _same_weights(a, b) -> bool:
    """The same weights; sparse ones by their init key and active columns (no d-sized
    arrays), dense ones (or a mix) entry by entry."""
    if hasattr(a, "keys") and hasattr(b, "keys"):
        parts = ("coords", "W_Q_active", "W_K_active", "W_V_active", "keys", "sigma_0",
                 "init_scale")
        return a.d == b.d and all(np.array_equal(getattr(a, p), getattr(b, p)) for p in parts)
    return all(np.array_equal(x, y) for x, y in zip(a.to_dense(), b.to_dense()))
