"""The real-data experiment (spec section 10): test accuracy and test loss against sigma_p
for SignGD, Adam and GD on scikit-learn's 8x8 digits, several seeds each.

The learning-rate pilots run one by one (``run_configs``, a loop over ``signsim.run``: each
pilot decides whether the next runs); the experiment itself is one sweep
(``signsim.sweep``: optimizer x sigma_p x seed on the dense reference, which real data needs,
``signsim.kernels.check_data``), so it runs in worker processes or on a Dask cluster when
given an ``executor``, and resumes from a folder when given ``out``.

Learning rates (``choose_lr``): for each optimizer, the smallest rate of its grid
(``LR_GRIDS``, half-decades) whose run at the cleanest noise level (the smallest sigma_p,
seed 0) reaches a training loss below ``TARGET_LOSS`` within the steps; the grid's largest
if none does. The cleanest level is the hardest to fit by memorising noise, so a rate that
fits it fits the noisier levels too (checked in docs/real-data.md's table); the smallest
such rate is the gentlest step that still trains, the same rule for the three optimizers.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from .config import Config
from .loop import NonFiniteError
from .simulate import run

__all__ = ["BASE", "SIGMA_PS", "LR_GRIDS", "TARGET_LOSS", "Plan", "Curve", "base_config",
           "pilot_configs", "choose_lr", "experiment_configs", "run_configs", "plan",
           "experiment", "curves", "markdown_table", "figure_runs", "figure"]

# the CLI default (docs/real-data.md): about 1 s a run on a 2-core machine
BASE = {"data": "digits", "task": "3,8", "noise": "sparse", "d": 1000, "s": 10, "n": 40,
        "n_test": 300, "mu_norm": 1.0, "m_k": 10, "m_v": 10, "sigma_0": 0.01, "steps": 200,
        "kernel": "dense", "signal_position": "random"}
SIGMA_PS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
LR_GRIDS = {"signgd": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1), "adam": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
            "gd": (1.0, 3.0, 10.0, 30.0, 100.0)}
TARGET_LOSS = 1e-2


def base_config(**overrides) -> Config:
    """``BASE`` with ``overrides``, recording the losses and errors at step 0 and the end."""
    fields = {**BASE, **overrides}
    steps = fields["steps"]
    return Config(**{"record_every": max(steps, 1), "test_every": max(steps, 1), **fields})


def pilot_configs(base: Config, optimizer: str, grid, sigma_p: float) -> list[Config]:
    """The runs ``choose_lr`` looks at: seed 0 at ``sigma_p``, one per rate of ``grid``."""
    return [base.replace(optimizer=optimizer, lr=float(lr), sigma_p=float(sigma_p), seed=0)
            for lr in sorted(grid)]


def _final_train_loss(result) -> float:
    return float(np.asarray(result.history["train_loss"])[-1]) if result is not None else math.inf


def choose_lr(pilots: list[Config], results: list, target: float = TARGET_LOSS) -> float:
    """The smallest lr among ``pilots`` whose result's final training loss is below
    ``target`` (a result of None, a run that overflowed, never is); the largest if none."""
    for config, result in sorted(zip(pilots, results), key=lambda pair: pair[0].lr):
        if _final_train_loss(result) < target:
            return config.lr
    return max(c.lr for c in pilots)


def experiment_configs(base: Config, lrs: dict, sigma_ps, seeds) -> list[Config]:
    """One Config per (optimizer, sigma_p, seed), optimizers in ``lrs`` order."""
    return [base.replace(optimizer=opt, lr=float(lr), sigma_p=float(sp), seed=int(seed))
            for opt, lr in lrs.items() for sp in sigma_ps for seed in seeds]


def run_configs(configs: list[Config], *, progress: Callable | None = None,
                done: dict | None = None) -> list:
    """The Result of each Config, in order: a plain loop over ``signsim.run`` (the pilots,
    each of which decides whether the next runs). ``done`` maps Configs already run to
    their Results; a run that overflows (``NonFiniteError``) gives None.
    ``progress(k, total, label)`` is called before each run."""
    done = {} if done is None else done
    out = []
    for k, config in enumerate(configs):
        if progress is not None:
            progress(k, len(configs), f"{config.optimizer} sigma_p={config.sigma_p:g} "
                                      f"seed={config.seed}")
        if config not in done:
            try:
                done[config] = run(config, record="summary")
            except NonFiniteError:
                done[config] = None
        out.append(done[config])
    return out


class Plan(NamedTuple):
    """The experiment: the rates chosen, the pilot runs behind them, and the runs."""

    lrs: dict  # optimizer -> lr
    pilots: dict  # optimizer -> (configs, results)
    configs: list  # experiment_configs(...)


def plan(seeds, *, base: Config | None = None, sigma_ps=SIGMA_PS, grids=None,
         progress: Callable | None = None, done: dict | None = None) -> Plan:
    """Choose each optimizer's lr (``choose_lr``, running its pilots in increasing lr up to
    the first that trains) and list the runs. ``progress(0, 1, label)`` before each pilot."""
    base = base or base_config()
    grids = grids or LR_GRIDS
    lrs, pilots = {}, {}
    for opt, grid in grids.items():
        configs = pilot_configs(base, opt, grid, min(sigma_ps))
        results = []
        for config in configs:
            if progress is not None:
                progress(0, 1, f"choosing the lr of {opt}: {config.lr:g}")
            results += run_configs([config], done=done)
            if _final_train_loss(results[-1]) < TARGET_LOSS:
                break
        lrs[opt] = choose_lr(configs[:len(results)], results)
        pilots[opt] = (configs[:len(results)], results)
    return Plan(lrs, pilots, experiment_configs(base, lrs, sigma_ps, seeds))


def experiment(seeds=(0, 1, 2, 3, 4), *, base: Config | None = None, sigma_ps=SIGMA_PS,
               grids=None, progress: Callable | None = None, executor=None,
               out=None) -> tuple[Plan, list]:
    """The whole experiment: ``plan``, then one sweep of its runs (``signsim.sweep`` with
    ``executor`` and ``out``; a pilot that is also a run of the experiment is computed again
    there, to the same bits). Returns the plan and, in plan order, each run's
    ``sweeps.RunRecord`` (its Config and history; None for a run that failed).
    ``progress(k, total, label)`` is called before each pilot (0 of 1) and as batches end."""
    from .sweeps import sweep

    chosen = plan(seeds, base=base, sigma_ps=sigma_ps, grids=grids, progress=progress)
    base = chosen.configs[0].replace(seed=0)
    grid = {("optimizer", "lr"): list(chosen.lrs.items()),
            "sigma_p": [float(sp) for sp in sigma_ps]}  # rows in plan order: opt, sigma_p, seed
    report = None if progress is None else (lambda k, total: progress(k, total, "sweep"))
    res = sweep(base, grid, seeds=[int(s) for s in seeds], record="summary", progress=report,
                executor=executor, out=out)
    return chosen, [res.record(i) if res.status[i] == "ok" else None for i in range(len(res))]


class Curve(NamedTuple):
    """One optimizer's line of the real-data figure."""

    config: Config  # the first run's: its optimizer, lr and steps are the line's
    sigma_ps: np.ndarray  # (k,)
    test_accuracy: np.ndarray  # (k, seeds), after training
    test_loss: np.ndarray  # (k, seeds)
    train_loss: np.ndarray  # (k, seeds)


def curves(results: list) -> list[Curve]:
    """One Curve per (optimizer, lr, steps) of ``results`` (single runs, fresh or loaded;
    None entries, runs that overflowed, are skipped), its runs grouped by sigma_p."""
    rows: dict[tuple, dict[float, list]] = {}
    first: dict[tuple, Config] = {}
    for r in results:
        if r is None:
            continue
        c, h = r.config, r.history
        key = (c.optimizer, c.lr, c.steps)
        first.setdefault(key, c)
        rows.setdefault(key, {}).setdefault(c.sigma_p, []).append(
            (1.0 - h["test_error"][-1], h["test_loss"][-1], h["train_loss"][-1]))
    out = []
    for key, by_sigma in rows.items():
        sigmas = sorted(by_sigma)
        width = min(len(by_sigma[s]) for s in sigmas)
        values = np.array([by_sigma[s][:width] for s in sigmas])  # (k, seeds, 3)
        out.append(Curve(first[key], np.array(sigmas), values[..., 0], values[..., 1],
                         values[..., 2]))
    return out


def _cell(values: np.ndarray, digits: int) -> str:
    """mean +- standard deviation over seeds (ddof 1), or the value for one seed."""
    mean = float(np.mean(values))
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def markdown_table(found: list[Curve]) -> str:
    """Test accuracy and test loss by sigma_p (rows) and optimizer (columns): mean ±
    standard deviation over the seeds; the largest final training loss in the last column."""
    head = ["sigma_p"] + [f"{c.config.optimizer} (lr {c.config.lr:g}) {what}"
                          for c in found for what in ("accuracy", "loss")] + ["max train loss"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, sigma in enumerate(found[0].sigma_ps):
        cells = [f"{sigma:g}"]
        for c in found:
            cells += [_cell(c.test_accuracy[k], 3), _cell(c.test_loss[k], 3)]
        cells.append(f"{max(float(np.max(c.train_loss[k])) for c in found):.0e}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure_runs(seeds=(0, 1, 2, 3, 4), progress: Callable | None = None) -> list:
    """The runs of ``signsim figure real-data``: ``experiment(seeds)``'s Results (None for
    a run that overflowed). ``progress(k, total)`` before each run (0 of 1 for a pilot)."""
    report = None if progress is None else (lambda k, total, label: progress(k, total))
    return experiment(tuple(seeds), progress=report)[1]


def _flat(results) -> list:
    """Results from a list that may nest lists of them (``figures.runs_for``'s)."""
    out = []
    for r in results:
        out += _flat(r) if isinstance(r, list) or type(r) is tuple else [r]  # not a RunRecord
    return out


def figure(results):
    """The real-data figure (``plotting.real_data_figure``) of single-run Results, fresh
    (``figure_runs``) or loaded; None entries (runs that overflowed) are skipped."""
    from .plotting import real_data_figure

    runs = [r for r in _flat(results) if r is not None]
    if not runs or any(getattr(r, "batched", False) for r in runs):
        raise ValueError("real-data takes single runs (one per optimizer, sigma_p and seed), "
                         f"not batches. Got {len(runs)} run(s).")
    return real_data_figure(curves(runs))
