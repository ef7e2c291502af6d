"""The named figures (fig1, fig2, data-quality): which runs they need, and how to build them
from fresh runs or from saved ones. Used by ``signsim figure``; no matplotlib at import."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .config import Config, preset
from .result import Result
from .simulate import run

__all__ = ["FIGURES", "PRECISION", "SNRS", "SNRCurve", "build", "runs_for", "save_figure"]

FIGURES = ("fig1", "fig2", "data-quality", "precision", "phase", "adam-continuum",
           "real-data")
SNRS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # spec section 9
# the data-quality figure's SNRs: spec section 9's, and the half-octaves between them, where
# GD (SNR 0.25 to 1) and SignGD (1 to a few) change from memorising to generalising
DQ_SNRS = tuple(2.0 ** (k / 2) for k in range(-4, 7))
PHASE_STEPS = (900, 1800, 3600)  # the phase figure's horizons: lr x steps = 0.9 to 3.6 (SignGD)
DQ_OPTIMIZERS = {"signgd": 1e-3, "adam": 1e-3, "gd": 1.0}  # optimizer -> lr (spec section 9)


def _sweep_for(name: str, seeds, progress):
    """The sweep behind data-quality (SNR x optimizer, 900 steps) or phase (SNR x horizon x
    optimizer), run in this process; ``progress(fraction_done, 1)``."""
    from .sweeps import sweep

    c = preset("data_quality")
    grid = {"snr": list(DQ_SNRS if name == "data-quality" else SNRS)}
    if name == "phase":
        grid["steps"] = list(PHASE_STEPS)
    grid[("optimizer", "lr")] = list(DQ_OPTIMIZERS.items())
    return sweep(c.replace(record_every=c.steps, test_every=c.steps), grid, seeds=list(seeds),
                 progress=progress)


def runs_for(name: str, *, seeds=(0, 1, 2, 3, 4), progress=None) -> list[Result]:
    """Run what figure ``name`` needs. ``progress(done, total, label)`` is called along the way."""
    if name == "fig1":
        plan = [("fig1", lambda p: run("fig1", progress=p))]
    elif name == "fig2":
        plan = [("fig2 SignGD", lambda p: run("fig1", progress=p)),
                ("fig2 Adam", lambda p: run("fig2", progress=p))]
    elif name in ("data-quality", "phase"):  # one sweep (signsim.sweeps)
        plan = [(f"{name} sweep", lambda p: _sweep_for(name, seeds, p))]
    elif name == "precision":
        plan = _precision_plan()
    elif name == "adam-continuum":  # signsim.continuum: about a hundred fig1 runs
        from . import continuum

        plan = [("adam-continuum", continuum.for_figure)]
    elif name == "real-data":  # signsim.realdata: lr pilots, then optimizer x sigma_p x seed
        from . import realdata

        plan = [("real-data", lambda p: realdata.figure_runs(seeds, p))]
    else:
        raise ValueError(f"The figure name must be one of {list(FIGURES)}. Got {name!r} instead.")
    out = []
    for k, (label, job) in enumerate(plan):
        step_progress = None
        if progress is not None:
            step_progress = (lambda t, steps, k=k, label=label:  # noqa: E731
                             progress(k + t / max(steps, 1), len(plan), label))
        out.append(job(step_progress))
    if progress is not None:
        progress(len(plan), len(plan), "done")
    return out


class SNRCurve(NamedTuple):
    """One line of the data-quality figure: an optimizer at one training horizon."""

    config: Config  # the first replica's: its optimizer, lr and steps are the line's
    snrs: np.ndarray  # (k,)
    test_loss: np.ndarray  # (k, seeds), after training
    test_error: np.ndarray  # (k, seeds)


def _final_tests(results: list):
    """(config, final test loss, final test error) of every replica of ``results`` (Results,
    or SweepResults: their finished rows)."""
    for r in results:
        if hasattr(r, "columns"):  # a SweepResult
            t = r.columns()
            ok = [i for i in range(len(r)) if t["status"][i] == "ok"]
            yield from ((r.configs[i], t["test_loss"][i], t["test_error"][i]) for i in ok)
            continue
        loss = np.atleast_2d(r.history["test_loss"])[:, -1]  # (replicas,)
        error = np.atleast_2d(r.history["test_error"])[:, -1]
        yield from zip(r.configs, loss, error)


def _data_quality_table(results: list[Result]) -> list[SNRCurve]:
    """One SNRCurve per (optimizer, lr, steps), from saved or fresh runs (single runs,
    batches over seeds, or batches that vary sigma_p); replicas are grouped by SNR."""
    rows: dict[tuple, dict[float, list]] = {}
    first: dict[tuple, Config] = {}
    for config, loss, error in _final_tests(results):
        key = (config.optimizer, config.lr, config.steps)
        first.setdefault(key, config)
        rows.setdefault(key, {}).setdefault(round(config.snr, 12), []).append((loss, error))
    curves = []
    for key, by_snr in rows.items():
        snrs = sorted(by_snr)
        width = min(len(by_snr[s]) for s in snrs)
        values = np.array([by_snr[s][:width] for s in snrs])  # (k, seeds, 2)
        curves.append(SNRCurve(first[key], np.array(snrs), values[..., 0], values[..., 1]))
    return curves


# ------------------------------------------------------------------ precision

# the precision figure's runs: fig1 in each arithmetic (float32 on the dense reference,
# the only kernel that runs it), as (arithmetic, kernel), in drawing order
PRECISION = (("exact", "fast"), ("float64", "fast"), ("float32", "dense"))


def _precision_plan(config="fig1") -> list:
    """(label, job) of each run of the precision figure."""
    return [(f"precision, {a}", lambda p, a=a, k=k: run(config, arithmetic=a, kernel=k,
                                                         progress=p))
            for a, k in PRECISION]


def _precision_runs(results: list[Result]) -> list[Result]:
    """``results`` in PRECISION order: single runs of one Config but for its arithmetic
    and kernel, one per arithmetic (saved runs may come in any order)."""
    wanted = [a for a, _ in PRECISION]
    if any(r.seeds is not None for r in results):
        raise ValueError("precision takes single runs, not batches.")
    by = {r.config.arithmetic: r for r in results}
    if len(results) != len(wanted) or sorted(by) != sorted(wanted):
        raise ValueError(f"precision takes {len(wanted)} runs, one per arithmetic "
                         f"{wanted}. Got {[r.config.arithmetic for r in results]}.")
    if len({r.config.replace(arithmetic="exact", kernel="fast") for r in results}) > 1:
        raise ValueError("precision takes runs of one configuration, differing only in "
                         "'arithmetic' and 'kernel'.")
    return [by[a] for a in wanted]


def build(name: str, results: list[Result]):
    """The Figure of ``name`` from its runs (as ``runs_for`` returns them, or loaded): fig1,
    fig2 and precision two columns wide (7.0 in), data-quality one column (3.4 in)."""
    from . import plotting

    if name == "fig1":
        if len(results) != 1:
            raise ValueError(f"fig1 takes one run. Got {len(results)}.")
        return plotting.stage_figure(results[0])
    if name == "fig2":
        if len(results) != 2:
            raise ValueError("fig2 takes two runs, the sign method first (SignGD, then Adam). "
                             f"Got {len(results)}.")
        return plotting.optimizer_figure(*results)
    if name == "data-quality":
        return plotting.data_quality_figure(_data_quality_table(results))
    if name == "precision":
        return plotting.precision_figure(_precision_runs(results))
    if name == "adam-continuum":
        from .continuum import from_runs

        return plotting.continuum_figure(from_runs(results))
    if name == "real-data":
        from .realdata import figure

        return figure(results)
    if name == "phase":
        from .sweeps.phase import phase_figure

        if len(results) != 1 or not hasattr(results[0], "columns"):
            raise ValueError("phase takes one sweep (signsim.sweep, or a folder it wrote).")
        return phase_figure(results[0], "snr", "horizon" if "steps" in results[0].grid.names
                            else None)
    raise ValueError(f"The figure name must be one of {list(FIGURES)}. Got {name!r} instead.")


def save_figure(fig, out_dir: Path, name: str, *, overwrite: bool = False) -> list[Path]:
    """Write ``name``.png (150 dpi) and ``name``.pdf (TrueType fonts) into ``out_dir``, in
    signsim's style (``plotting.paper_style``); refuses to replace either file unless
    ``overwrite``."""
    from .plotting import paper_style

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); pass --force to replace")
    with paper_style():
        fig.savefig(paths[0], dpi=150)
        fig.savefig(paths[1])
    return paths
