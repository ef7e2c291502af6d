"""The continuum between SignGD and Adam (issue 15, item 3): Adam over a grid of (beta1,
beta2, eps) on fig1 data, each run compared with SignGD and with the GD that Adam becomes
for a large eps, and Signum, Lion and RMSProp placed on the same map (docs/optimizers.md).

Every run shares the data and init of ``base`` (the preset fig1 by default) and its lr. For
eps > 0 the GD reference is GD at lr / eps: once eps dominates sqrt(v_hat), Adam's step
lr m_hat / (sqrt(v_hat) + eps) is lr m_hat / eps, which for beta1 = 0 is GD's step at
lr / eps (for beta1 > 0 a GD on a running mean of the gradients).

The study is written on ``signsim.run`` over a list of Configs (``plan().configs()``), so
that the same list can be handed to a sweep engine (issue 13's had not landed when this was
written); ``study`` runs the references first and then one run at a time, keeping only its
``Row``, so that memory stays that of a few runs.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Callable, NamedTuple

import numpy as np

from .compare import compare
from .config import Config, preset
from .loop import NonFiniteError
from .stages import _USED as STAGE_QUANTITIES

__all__ = ["BETA1", "BETA2", "EPS", "OTHERS", "QUANTITY", "RECORD", "Plan", "Row",
           "Continuum", "plan", "gd_reference", "run_one", "study", "summarize", "for_figure",
           "from_runs"]

BETA1 = (0.0, 0.5, 0.9)
BETA2 = (0.0, 0.9, 0.99, 0.999)
# from exact sign steps (0) past the size of the gradients (at fig1's init: query/key
# entries ~3e-4, value entries ~2e-2) to eps = 1, where every step is GD's to within ~7%
EPS = (0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 1.0)
OTHERS = ("signum", "lion", "rmsprop")  # at their own defaults (Config fields)
QUANTITY = "query_noise"  # whose trajectory distance the table reports
RECORD = STAGE_QUANTITIES + ("train_loss", "test_loss")  # what each run records
# GD reads none of Adam's fields: its references keep their defaults, one run per lr
_ADAM_DEFAULTS = {f.name: f.default for f in fields(Config) if f.name in ("beta1", "beta2", "eps")}


class Plan(NamedTuple):
    """The runs of the study by role (``plan``); ``configs()`` is the flat list to run."""

    signgd: Config  # the reference every run is compared with
    adam: tuple  # the grid, beta1-major, then beta2, then eps
    others: tuple  # Signum, Lion, RMSProp
    gd: tuple  # the GD references, one per eps > 0 (``gd_reference``)

    def configs(self) -> list:
        """Every Config, SignGD first (what ``study`` or a sweep engine runs)."""
        return [self.signgd, *self.adam, *self.others, *self.gd]

    def role(self, config: Config) -> str:
        """"signgd", "adam", "other" or "gd": what ``config`` is in the study."""
        for role, configs in (("signgd", (self.signgd,)), ("adam", self.adam),
                              ("other", self.others), ("gd", self.gd)):
            if config in configs:
                return role
        return "other"


class Row(NamedTuple):
    """One run of the continuum against the references (``compare``)."""

    config: Config
    role: str  # "signgd", "adam" or "other" (Plan.role)
    to_signgd: float  # trajectory distance of QUANTITY to SignGD (compare module docstring)
    to_gd: float  # the same to GD at lr / eps; NaN without one (eps = 0, or it diverged)
    agreement: float  # update-sign agreement with SignGD, mean over the steps
    agreement_to_T3: float  # the same over the steps before SignGD's T3 (Stages I-III)
    agreement_from_T3: float  # and from it on (Stage IV)
    train_loss: float  # at the last step
    test_loss: float
    flipped: float  # share of its negative noise at SignGD's T3 flipped by the end
    boundaries: dict  # T1..T4 (None: not reached)
    diverged: bool  # the run stopped (NonFiniteError or FloatingPointError): NaN elsewhere

    @property
    def label(self) -> str:
        """How the table names the run: Adam with (beta1, beta2, eps), else the label the
        optimizer declares (its hyperparameters are the Config defaults, docs/optimizers.md)."""
        c = self.config
        if self.role == "adam":
            return f"Adam({c.beta1:g}, {c.beta2:g}, {c.eps:g})"
        from .optim import from_config

        return from_config(c).label or c.optimizer


class Continuum(NamedTuple):
    """The rows of the study: SignGD first, then the Adam grid and the other optimizers."""

    rows: tuple

    def markdown(self) -> str:
        """The table of docs/optimizers.md."""
        lines = ["| run | to SignGD | to GD(lr/eps) | agreement to T3 | from T3 | "
                 "train loss | test loss | flipped | T1 | T2 | T3 | T4 |", "|" + "---|" * 12]
        for r in self.rows:
            if r.diverged:
                lines.append(f"| {r.label} | diverged |" + " |" * 10)
                continue
            T = ["-" if v is None else str(v) for v in r.boundaries.values()]
            lines.append(f"| {r.label} | {r.to_signgd:.3f} | {_num(r.to_gd)} | "
                         f"{_num(r.agreement_to_T3)} | {_num(r.agreement_from_T3)} | "
                         f"{r.train_loss:.3g} | {r.test_loss:.3g} | "
                         f"{_num(r.flipped)} | " + " | ".join(T) + " |")
        return "\n".join(lines)

    def adam(self, beta1: float, beta2: float) -> list:
        """The Adam rows at (beta1, beta2), in eps order."""
        rows = [r for r in self.rows if r.role == "adam"
                and (r.config.beta1, r.config.beta2) == (beta1, beta2)]
        return sorted(rows, key=lambda r: r.config.eps)


def _num(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:.3f}"


def gd_reference(config: Config) -> Config | None:
    """GD at lr / eps on the data and init of the Adam run ``config``, Adam's large-eps
    limit (module docstring); None for eps = 0."""
    if config.eps == 0.0:
        return None
    return config.replace(optimizer="gd", lr=config.lr / config.eps, **_ADAM_DEFAULTS)


def plan(base: Config | None = None, *, beta1=BETA1, beta2=BETA2, eps=EPS) -> Plan:
    """Every run of the study, on the data and init of ``base`` (default: preset fig1):
    SignGD, the Adam grid (beta1, beta2, eps), Signum, Lion and RMSProp at ``base``'s
    values of their fields, and the GD references (``gd_reference``), one per eps > 0."""
    base = preset("fig1") if base is None else base
    adam = tuple(base.replace(optimizer="adam", beta1=b1, beta2=b2, eps=e)
                 for b1 in beta1 for b2 in beta2 for e in eps)
    gds = tuple(gd_reference(base.replace(optimizer="adam", eps=e)) for e in eps if e > 0.0)
    return Plan(base.replace(optimizer="signgd"), adam,
                tuple(base.replace(optimizer=o) for o in OTHERS), gds)


def run_one(config: Config, run: Callable | None = None):
    """The Result of ``config`` recording ``RECORD``, or None if it diverged."""
    if run is None:
        from .simulate import run
    try:
        return run(config, record=list(RECORD))
    except (NonFiniteError, FloatingPointError):
        return None


def _row(config: Config, role: str, result, signgd, gd) -> Row:
    """The Row of one run (``result`` None: diverged) against SignGD and its GD."""
    if result is None:
        nan = float("nan")
        return Row(config, role, nan, nan, nan, nan, nan, nan, nan, nan, {}, True)
    c = compare(signgd, result) if gd is None else compare(signgd, result, gd)
    to_gd = np.nan if gd is None else float(c.trajectory_distance(QUANTITY)[1, 2])
    h, t3 = result.history, c.flip_from  # SignGD's T3 (None: not reached)
    early, late = ((np.nan, np.nan) if t3 is None else
                   (c.mean_agreement(stop=t3)[0, 1], c.mean_agreement(start=t3)[0, 1]))
    return Row(config, role, float(c.trajectory_distance(QUANTITY)[0, 1]), to_gd,
               float(c.mean_agreement()[0, 1]), float(early), float(late),
               float(h["train_loss"][-1]), float(h["test_loss"][-1]),
               float(c.flip_share()[1]), c.reports[1].as_dict(), False)


def _reference(role: str, config: Config):
    """The GD reference of an Adam run (None for the other roles)."""
    return gd_reference(config) if role == "adam" else None


def study(runs: Plan, *, run: Callable | None = None, progress=None) -> Continuum:
    """Run the study ``runs`` (``plan()``) and compare each run with the references.

    Parameters
    ----------
    runs : Plan
        Its ``configs()`` are what is run: the references (SignGD, the GDs) first, then one
        run at a time, keeping only its Row.
    run : callable, optional
        ``run(config, record=...) -> Result`` (default ``signsim.run``).
    progress : callable, optional
        ``progress(done, total, label)`` after each run.

    Returns
    -------
    Continuum
        One Row for SignGD, each Adam run and each other optimizer, in that order.
    """
    signgd = run_one(runs.signgd, run)
    if signgd is None:
        raise ValueError("The SignGD reference diverged; the study needs it.")
    gds = {g: run_one(g, run) for g in runs.gd}
    todo = [(runs.signgd, "signgd")] + [(c, "adam") for c in runs.adam] + [
        (c, "other") for c in runs.others]
    rows = []
    for k, (config, role) in enumerate(todo):
        result = signgd if k == 0 else run_one(config, run)
        rows.append(_row(config, role, result, signgd, gds.get(_reference(role, config))))
        if progress is not None:
            progress(k + 1, len(todo), rows[-1].label)
    return Continuum(tuple(rows))


def summarize(results: list, runs: Plan | None = None) -> Continuum:
    """The Continuum of saved runs (``Result.save``, ``signsim.load``), SignGD first; each
    run's role is the one ``runs`` gives it (default: ``plan`` on the SignGD run's data),
    and an Adam run's GD reference is the saved GD run at its lr / eps, if any."""
    if not results:
        raise ValueError("The 'results' parameter must hold the SignGD run first. Got none.")
    runs = plan(results[0].config) if runs is None else runs
    if results[0].config != runs.signgd:
        raise ValueError("The 'results' parameter must start with the SignGD run of the "
                         "plan (continuum.plan).")
    by_config = {r.config: r for r in results}
    rows = []
    for r in results:
        role = runs.role(r.config)
        if role != "gd":
            gd = by_config.get(_reference(role, r.config))
            rows.append(_row(r.config, role, r, results[0], gd))
    return Continuum(tuple(rows))


def for_figure(progress=None) -> Continuum:
    """What ``signsim figure adam-continuum`` runs: ``study(plan())``, with
    ``progress(done, total)`` after each run."""
    on_run = None if progress is None else (lambda done, total, label: progress(done, total))
    return study(plan(), progress=on_run)


def from_runs(results: list) -> Continuum:
    """The Continuum of ``figures.build``'s runs: ``[Continuum]`` as ``for_figure`` gives
    it (in a list), or saved Results, SignGD first (``summarize``)."""
    if len(results) == 1 and isinstance(results[0], Continuum):
        return results[0]
    return summarize(list(results))
