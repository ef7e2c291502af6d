"""The named figures (fig1, fig2, data-quality): which runs they need, and how to build them
from fresh runs or from saved ones. Used by ``signsim figure``; no matplotlib at import."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .config import Config, preset
from .result import Result
from .simulate import run

__all__ = ["FIGURES", "SNRS", "SNRCurve", "build", "runs_for", "save_figure"]

FIGURES = ("fig1", "fig2", "data-quality")
SNRS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # spec section 9
DQ_OPTIMIZERS = {"signgd": 1e-3, "adam": 1e-3, "gd": 1.0}  # optimizer -> lr (spec section 9)


def _data_quality_config(optimizer: str):
    c = preset("data_quality")
    return c.replace(optimizer=optimizer, lr=DQ_OPTIMIZERS[optimizer], record_every=c.steps,
                     test_every=c.steps)


def _sigma_p(snr: float, s: int) -> float:
    """sigma_p = 1 / (SNR sqrt(s)) with mu_norm = 1 (E5)."""
    return 1.0 / (snr * np.sqrt(s))


def runs_for(name: str, *, seeds=(0, 1, 2, 3, 4), progress=None) -> list[Result]:
    """Run what figure ``name`` needs. ``progress(done, total, label)`` is called along the way."""
    if name == "fig1":
        plan = [("fig1", lambda p: run("fig1", progress=p))]
    elif name == "fig2":
        plan = [("fig2 SignGD", lambda p: run("fig1", progress=p)),
                ("fig2 Adam", lambda p: run("fig2", progress=p))]
    elif name == "data-quality":  # one batch per optimizer: every (SNR, seed) a replica
        s = preset("data_quality").s
        grid = [(snr, seed) for snr in SNRS for seed in seeds]
        plan = [(f"{opt}, {len(grid)} replicas",
                 lambda p, opt=opt: run(_data_quality_config(opt), seeds=[g[1] for g in grid],
                                        vary={"sigma_p": [_sigma_p(g[0], s) for g in grid]},
                                        progress=p))
                for opt in DQ_OPTIMIZERS]
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


def _final_tests(results: list[Result]):
    """(config, final test loss, final test error) of every replica of ``results``."""
    for r in results:
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


def build(name: str, results: list[Result]):
    """The Figure of ``name`` from its runs (as ``runs_for`` returns them, or loaded): fig1
    and fig2 two columns wide (7.0 in), data-quality one column (3.4 in)."""
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
