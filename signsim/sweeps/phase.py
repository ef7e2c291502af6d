"""Phase diagrams: a sweep's test loss and test error over two of its axes, one panel per
value of the rest (typically the optimizer), with the spread over seeds.

``phase_panels`` is the table behind a diagram (NumPy only); ``phase_figure`` draws it
(matplotlib, in signsim's paper style). An axis is a table column (``snr``, ``n``, ...) or
``horizon``, the training horizon lr x steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Panel", "phase_panels", "phase_figure", "AXIS_LABELS"]

AXIS_LABELS = {"snr": r"SNR $= \|\mu\| / (\sigma_p \sqrt{s})$", "n": "training samples $n$",
               "horizon": r"horizon $\mathrm{lr} \times$ steps", "steps": "steps",
               "lr": "learning rate", "sigma_0": r"$\sigma_0$", "s": "noise sparsity $s$"}


class Panel(NamedTuple):
    """One panel: the runs whose other fields are ``fixed``, over ``xs`` x ``ys``."""

    fixed: dict  # the fields that are constant in this panel (e.g. optimizer, lr)
    xs: np.ndarray  # (nx,)
    ys: np.ndarray  # (ny,)
    test_loss: np.ndarray  # (ny, nx) median over seeds (NaN where no run finished)
    test_error: np.ndarray  # (ny, nx) median over seeds
    loss_spread: np.ndarray  # (ny, nx) max - min of the test loss over seeds
    seeds: np.ndarray  # (ny, nx) runs that finished
    config: object  # the Config of the panel's first run (its optimizer labels the panel)


def _values(columns: dict, name: str) -> np.ndarray:
    if name == "horizon":
        return columns["lr"] * columns["steps"]
    return columns[name]


def phase_panels(result, x: str = "snr", y: str | None = None) -> list[Panel]:
    """The panels of the phase diagram of ``result`` (a SweepResult) over ``x`` and ``y``.

    Parameters
    ----------
    result : SweepResult
    x, y : str
        Grid fields, or ``"horizon"`` (lr x steps). ``y`` defaults to the grid's other
        numeric field. The panels are the distinct values of the remaining grid fields.
    """
    columns = _with_fields(result)
    y = y or _other_axis(result, x)
    for name in (x, y):
        if name != "horizon" and name not in result.grid.names:
            raise ValueError(f"The phase axis {name!r} is not a field of this sweep's grid "
                             f"{list(result.grid.names)} (or 'horizon').")
    used = {x, y} | ({"lr", "steps"} if "horizon" in (x, y) else set())
    rest = [n for n in result.grid.names if n not in used]
    ok = columns["status"] == "ok"
    xv, yv = _values(columns, x), _values(columns, y)
    panels = []
    for fixed in _distinct(columns, rest, ok):
        here = ok & np.all([columns[k] == v for k, v in fixed.items()], axis=0) if fixed else ok
        first = result.configs[int(np.flatnonzero(here)[0])]
        panels.append(_panel(fixed, xv, yv, columns, here, first))
    return panels


def _panel(fixed, xv, yv, columns, here, config) -> Panel:
    rows = np.flatnonzero(here)
    xs, ix = np.unique(xv[rows], return_inverse=True)
    ys, iy = np.unique(yv[rows], return_inverse=True)
    shape = (len(ys), len(xs))
    loss, error, spread = (np.full(shape, np.nan) for _ in range(3))
    seeds = np.zeros(shape, np.int64)
    cell = iy * len(xs) + ix  # each row's cell, then the rows of each cell together
    order = np.argsort(cell, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    for group in np.split(order, starts[1:]):
        j, i = divmod(int(cell[group[0]]), len(xs))
        lo = columns["test_loss"][rows[group]]
        loss[j, i], spread[j, i] = np.median(lo), lo.max() - lo.min()
        error[j, i] = np.median(columns["test_error"][rows[group]])
        seeds[j, i] = len(group)
    return Panel(fixed, xs, ys, loss, error, spread, seeds, config)


def _with_fields(result) -> dict:
    """The table's columns, plus every Config field a horizon needs (lr, steps)."""
    columns = result.columns()
    for name in ("lr", "steps"):
        if name not in columns:
            columns[name] = np.array([np.nan if c is None else getattr(c, name)
                                      for c in result.configs], dtype=float)
    return columns


def _other_axis(result, x: str) -> str:
    others = [n for n in result.grid.names if n != x
              and result.columns()[n].dtype.kind in "if" and n not in ("lr",)]
    if not others:
        raise ValueError(f"The sweep's grid {list(result.grid.names)} has no numeric field "
                         f"besides {x!r} to plot against; give 'y'.")
    return others[0]


def _distinct(columns: dict, names: list, ok: np.ndarray) -> list[dict]:
    """The distinct combinations of ``names`` among finished rows, in table order."""
    seen, out = set(), []
    for r in np.flatnonzero(ok):
        combo = tuple(columns[n][r].item() for n in names)
        if combo not in seen:
            seen.add(combo)
            out.append(dict(zip(names, combo)))
    return out


# ------------------------------------------------------------------ the figure


def phase_figure(result, x: str = "snr", y: str | None = None):
    """Test loss, test error and the seed spread of the test loss over ``x`` x ``y``, one
    column per panel of ``phase_panels``. Two columns wide (7.0 in)."""
    from .. import plotting

    panels = phase_panels(result, x, y)
    y = y or _other_axis(result, x)
    rows = (("test_loss", "test loss (median over seeds)", (0.0, 0.7)),
            ("test_error", "test error (median)", (0.0, 0.5)),
            ("loss_spread", "test loss: max $-$ min over seeds", (0.0, None)))
    with plotting.paper_style():
        fig, axes = plotting._subplots(len(rows), len(panels), plotting.TWO_COLUMNS,
                                       1.55 * len(rows) + 0.5, squeeze=False)
        for col, panel in enumerate(panels):
            for row, (name, title, (lo, hi)) in enumerate(rows):
                ax = axes[row, col]
                top = max(hi or 0.0, _row_max(panels, name))  # one colour scale per row
                image = _heatmap(ax, panel, getattr(panel, name), lo, top)
                ax.set_title(f"({chr(97 + row * len(panels) + col)}) "
                             f"{_panel_label(panel)}")
                ax.set_xlabel(AXIS_LABELS.get(x, x) if row == len(rows) - 1 else "")
                ax.set_ylabel(AXIS_LABELS.get(y, y) if col == 0 else "")
                if col == len(panels) - 1:
                    fig.colorbar(image, ax=axes[row, :], label=title.split(" (")[0], shrink=0.9)
        fig.suptitle(f"{_seed_note(panels)}; rows: {', '.join(r[1] for r in rows)}")
    return fig


def _row_max(panels: list, name: str) -> float:
    """The largest finite value of ``name`` over every panel (1 if there is none)."""
    values = np.concatenate([getattr(p, name).ravel() for p in panels])
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size and values.max() > 0 else 1.0


def _heatmap(ax, panel: Panel, values, lo, hi):
    image = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis", vmin=lo, vmax=hi)
    ax.set_xticks(range(len(panel.xs)), labels=[f"{v:g}" for v in panel.xs])
    ax.set_yticks(range(len(panel.ys)), labels=[f"{v:g}" for v in panel.ys])
    return image


def _panel_label(panel: Panel) -> str:
    """The panel's fixed fields in words: the optimizer by its declared label."""
    from ..plotting import _label, _tex

    fixed = dict(panel.fixed)
    parts = []
    if fixed.pop("optimizer", None) is not None:
        parts.append(_label(panel.config))
    for k, v in fixed.items():
        shown = AXIS_LABELS.get(k, k).split(" $")[0] if k in AXIS_LABELS else k
        if k == "lr":
            shown = r"$\mathrm{lr}$"
        parts.append(f"{shown} $= {_tex(v)}$" if isinstance(v, (int, float)) else f"{shown}: {v}")
    return ", ".join(parts) or "all runs"


def _seed_note(panels: list) -> str:
    counts = np.concatenate([p.seeds.ravel() for p in panels])
    counts = counts[counts > 0]
    if counts.size == 0:
        return "no finished runs"
    lo, hi = counts.min(), counts.max()
    return f"{lo} seeds per cell" if lo == hi else f"{lo}-{hi} seeds per cell"
