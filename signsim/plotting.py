"""Figures of the stage transitions and the optimizer comparisons, sized and styled for a
paper. This module imports matplotlib (``import signsim`` does not import this module).

Helpers take an ``ax`` and return what they drew; figure builders return a Figure and never
call ``show()``. Each builder draws inside ``paper_style()`` (the package's
``signsim.mplstyle``: TrueType fonts in PDF and PostScript, text of at least 7 pt, thin lines)
and returns a ``PaperFigure``, whose ``savefig`` applies the same style, so a saved PDF embeds
TrueType fonts whatever your rcParams say. Your global rcParams are never changed.
Widths are those of a paper: ``ONE_COLUMN`` (3.4 in) or ``TWO_COLUMNS`` (7.0 in).
"""

from __future__ import annotations

import math
from importlib import resources

import matplotlib.style
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullLocator

from . import stages as _stages
from .tracker import TEST_NAMES

__all__ = ["ONE_COLUMN", "STAGE_COLORS", "TWO_COLUMNS", "PaperFigure", "continuum_figure",
           "data_quality_figure",
           "not_reached", "optimizer_figure", "paper_style", "plot_quantity", "precision_figure",
           "query_sign_share", "real_data_figure", "shade_stages", "stage_figure",
           "stage_spans", "still_share",
           "style_path"]

ONE_COLUMN, TWO_COLUMNS = 3.4, 7.0  # figure widths in inches
STAGE_COLORS = ("#e8eef7", "#eaf4e6", "#fbf1dc", "#f6e4e4")  # I, II, III, IV
_COLORS = ("tab:blue", "tab:purple", "tab:green", "tab:orange", "tab:red", "tab:brown")
_TEST_COLORS = ("#6baed6", "#c994c7", "#74c476", "#fdae6b", "#fc9272", "#c49c94")  # lighter
_STAGE_NAMES = ("I", "II", "III", "IV")
_LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.6}
_TEST_STYLES = ("--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))  # one per run
_STEP_LABEL = "step $t$ (linear to 10, then logarithmic)"


def style_path() -> str:
    """Path of the package's matplotlib style file, ``signsim.mplstyle``."""
    return str(resources.files(__package__).joinpath("signsim.mplstyle"))


def paper_style():
    """A context manager in which signsim's style applies (``matplotlib.style.context``);
    the rcParams in force before it are restored on exit."""
    return matplotlib.style.context(style_path())


class PaperFigure(Figure):
    """A Figure whose ``savefig`` runs inside ``paper_style()``: fonts are embedded as
    TrueType when the file is written, whatever the rcParams outside say."""

    def savefig(self, *args, **kwargs):
        with paper_style():
            return super().savefig(*args, **kwargs)


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _subplots(nrows, ncols, width, height, **kw):
    """A PaperFigure of ``width`` x ``height`` inches with a grid of axes."""
    return _plt().subplots(nrows, ncols, figsize=(width, height), FigureClass=PaperFigure,
                           layout="constrained", **kw)


def _tex(x: float) -> str:
    """``x`` for mathtext: 10^{k} for a power of ten outside [0.01, 1000], else %g."""
    if x > 0:
        k = math.log10(x)
        if k == round(k) and not -2 <= k <= 3:
            return f"10^{{{round(k)}}}"
    return f"{x:g}"


def _steps_for(result, name):
    return result.test_steps if name in TEST_NAMES else result.steps


def plot_quantity(result, name: str, *, ax=None, index=(), band=(10, 90), label=None,
                  **line_kw):
    """Plot a recorded quantity over steps.

    ``index`` selects entries of one record (e.g. ``(0, 3)`` for query_noise of neuron 0,
    sample 3); with nothing selected every entry is drawn. For a batched result the median
    over replicas is drawn with a band between the ``band`` percentiles. Returns the artists.
    """
    ax = ax if ax is not None else _plt().gca()
    steps = _steps_for(result, name)
    data = np.asarray(result.history[name])
    batched = result.seeds is not None
    if batched:
        if index != ():
            data = data[(slice(None), slice(None)) + tuple(np.atleast_1d(index))]
        flat = data.reshape(data.shape[0], data.shape[1], -1)  # (R, T, k)
        mid = np.median(flat, axis=0)
        lo, hi = np.percentile(flat, band, axis=0)
        lines = ax.plot(steps, mid, label=label, **line_kw)
        for k, line in enumerate(lines):
            ax.fill_between(steps, lo[:, k], hi[:, k], color=line.get_color(), alpha=0.25,
                            linewidth=0)
        return lines
    data = data[(slice(None),) + tuple(np.atleast_1d(index))] if index != () else data
    return ax.plot(steps, data.reshape(len(steps), -1), label=label, **line_kw)


# ------------------------------------------------------------------ stages


def stage_spans(report, t_max) -> list[tuple[str, float, float]]:
    """(stage, start, end) of each stage ``report`` reached, up to ``t_max``.

    Stage I opens at 0, II at T1, III at T2, IV at T3. A stage is reached only when its
    opening boundary and every earlier one were (a boundary that was not reached is None),
    so a run without T2 has no Stage III or IV even where a later condition holds; a
    stage whose closing boundary was not reached runs to ``t_max``.
    """
    opens = (0, report.T1, report.T2, report.T3)
    spans = []
    for k, name in enumerate(_STAGE_NAMES):
        start = opens[k]
        if start is None or start >= t_max:
            break
        end = opens[k + 1] if k < 3 else None
        spans.append((name, start, t_max if end is None else min(end, t_max)))
    return spans


def not_reached(report) -> str:
    """The boundaries ``report`` did not reach, as mathtext ("$T_2$, $T_4$ not reached"),
    or "" when it reached all four."""
    missing = [f"$T_{k}$" for k, b in enumerate(report.as_dict().values(), start=1)
               if b is None]
    return f"{', '.join(missing)} not reached" if missing else ""


def shade_stages(ax, report, *, t_max=None, labels=True):
    """Shade the stages ``report`` (a StageReport) reached: I = [0, T1], II = [T1, T2],
    III = [T2, T3], IV = [T3, end] (``stage_spans``; no shading for a stage that was not
    reached). Mark every boundary found with a dashed line (T4: the Stage IV flips are
    done) and, with ``labels``, name the stages and the boundaries. Each span's gid is
    "stage I" ... "stage IV". Returns the artists."""
    t_max = ax.get_xlim()[1] if t_max is None else t_max
    artists = []
    for name, start, end in stage_spans(report, t_max):
        span = ax.axvspan(start, end, color=STAGE_COLORS[_STAGE_NAMES.index(name)], zorder=0,
                          linewidth=0)
        span.set_gid(f"stage {name}")
        artists.append(span)
        if labels and end > start:
            linear = ax.get_xscale() == "linear"
            mid = (start + end) / 2 if linear else np.sqrt(max(start, 1.0) * end)
            artists.append(ax.text(mid, 0.985, name, transform=ax.get_xaxis_transform(),
                                   ha="center", va="top", fontsize=7, color="0.3"))
    for k, b in enumerate(report.as_dict().values(), start=1):
        if b is not None and b <= t_max:
            artists.append(ax.axvline(b, color="0.45", linestyle="--", linewidth=0.6, zorder=1))
            if labels:
                artists.append(ax.text(b, 0.015, f"$T_{k}$", transform=ax.get_xaxis_transform(),
                                       ha="left", va="bottom", fontsize=7, color="0.3",
                                       zorder=4, bbox=_LABEL_BOX))
    return artists


def _symlog_steps(ax, t_max):
    ax.set_xscale("symlog", linthresh=10, linscale=0.6)
    ax.set_xlim(0, t_max)
    ax.set_xlabel(_STEP_LABEL)


def _label(config) -> str:
    """How the optimizer of a Config calls itself (its declared label, else its name)."""
    from .optim import from_config

    return from_config(config).label or config.optimizer


# ------------------------------------------------------------------ fig1


def _early_key_noise(ax, result, rows):
    """Panel (a): key noise of every (neuron, sample) over the first steps."""
    steps = result.steps[rows]
    ax.plot(steps, result.history["key_noise"][rows].reshape(rows.sum(), -1),
            color="tab:orange", linewidth=0.5, alpha=0.6)
    ax.set_title("(a) Stage I: key noise, first steps")
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"key noise $\langle w_{K,s}, y_i\xi_i\rangle$")


def _early_value_noise(ax, result, rows):
    """Panel (b): mean value noise of every sample with R1's slope from its start."""
    tt, lr = result.steps[rows], result.config.lr
    mvn = result.history["mean_value_noise"][rows]
    ax.plot(tt, mvn, color="tab:green", linewidth=0.8, alpha=0.8)
    ax.plot(tt, mvn[0][None, :] + 2 * lr * result.dataset.noise_l1[None, :] * tt[:, None],
            color="black", linestyle=":", linewidth=0.8)
    ax.plot([], [], color="tab:green", label="simulated, one line per sample")
    ax.plot([], [], color="black", linestyle=":", label=r"R1: slope $2\,\mathrm{lr}\,\|\xi_i\|_1$")
    ax.legend(loc="upper left")
    ax.set_title("(b) Stage I: mean value noise, first steps")
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"mean value noise $\langle v, y_i\xi_i\rangle$")


def _attention(ax, result):
    """Panel (c): s11 and s21 of every sample over the whole run."""
    att, steps = result.history["attention"], result.steps
    ax.plot(steps, att[:, :, 0, 0], color="tab:blue", linewidth=0.5, alpha=0.5)
    ax.plot(steps, att[:, :, 1, 0], color="tab:red", linewidth=0.5, alpha=0.5)
    ax.plot([], [], color="tab:blue", label="$s_{11}$: signal query, signal key")
    ax.plot([], [], color="tab:red", label="$s_{21}$: noise query, signal key")
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.9))
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("attention on the signal key")
    ax.set_title("(c) attention, every sample")


def _split_row(result, report, split_step):
    """The step at which noise is split by sign (default T3, else the last) and its row."""
    steps = result.steps
    split = split_step if split_step is not None else (
        report.T3 if report.T3 is not None else int(steps[-1]))
    return split, int(np.searchsorted(steps, split))


def _neuron(ax, result, report, neuron, split_step):
    """Panel (d): query and key noise of one neuron, solid or dotted by their sign at the
    split step, and its query signal."""
    h, steps, cfg = result.history, result.steps, result.config
    split, row = _split_row(result, report, split_step)
    qn, kn = h["query_noise"][:, neuron], h["key_noise"][:, neuron]  # (T, n)
    pos = qn[row] * np.sign(h["query_signal"][row, neuron]) > 0
    s = neuron
    for data, color, w in ((qn, "tab:blue", "Q"), (kn, "tab:orange", "K")):
        ax.plot(steps, data[:, pos], color=color, linewidth=0.6, alpha=0.7)
        ax.plot(steps, data[:, ~pos], color=color, linewidth=0.8, alpha=0.7, linestyle=":")
        ax.plot([], [], color=color, label=rf"$\langle w_{{{w},{s}}}, y_i\xi_i\rangle$")
    ax.plot(steps, h["query_signal"][:, neuron] / cfg.mu_norm * 10, color="black",
            linewidth=1.3, label=rf"$10\,\langle w_{{Q,{s}}}, \mu\rangle/\|\mu\|$")
    ax.plot([], [], color="0.3", label=f"solid: query-signal sign at $t={split}$")
    ax.plot([], [], color="0.3", linestyle=":", label="dotted: opposite sign")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), ncol=2)
    ax.set_ylabel(f"neuron $s={neuron}$")
    ax.set_title(f"(d) query and key noise, query signal of neuron $s={neuron}$")


def _stage_title(cfg, report) -> str:
    bounds = ", ".join(f"$T_{k}={v}$" for k, v in enumerate(report.as_dict().values(), 1)
                       if v is not None)
    missing = not_reached(report)
    found = "; ".join(x for x in (bounds, missing) if x)
    return (rf"Stages of {_label(cfg)} training ($n={cfg.n}$, $d={_tex(cfg.d)}$, $s={cfg.s}$, "
            rf"$\mathrm{{lr}}={_tex(cfg.lr)}$, $\sigma_0={_tex(cfg.sigma_0)}$): {found}")


def stage_figure(result, *, early=2, split_step=None, neuron=0, report=None):
    """The four-panel stage figure of one run (spec section 7), two columns wide (7.0 in).

    (a) key noise and (b) mean value noise over steps 0..``early`` with the R1 slope
    2 lr ||xi_i||_1 as the theory line; (c) s11 and s21 over the whole run; (d) query noise,
    key noise and query signal of one neuron over the whole run, the noise curves solid or
    dotted by their sign at ``split_step`` (default: T3, else the last step). Every panel is
    shaded by the stages ``stages.detect`` finds (those reached only).
    """
    if result.seeds is not None:
        raise ValueError("stage_figure takes a single run; pick one replica of a batched result")
    report = report or _stages.detect(result)
    t_max = int(result.steps[-1])
    with paper_style():
        fig, axes = _subplots(2, 2, TWO_COLUMNS, 5.0)
        (ax_a, ax_b), (ax_c, ax_d) = axes
        rows = result.steps <= early
        _early_key_noise(ax_a, result, rows)
        _early_value_noise(ax_b, result, rows)
        for ax in (ax_a, ax_b):
            ax.set_xlim(0, early)
            shade_stages(ax, report, t_max=early)
        _attention(ax_c, result)
        _neuron(ax_d, result, report, neuron, split_step)
        for ax in (ax_c, ax_d):
            _symlog_steps(ax, t_max)
            shade_stages(ax, report, t_max=t_max)
        fig.suptitle(_stage_title(result.config, report))
    return fig


# ------------------------------------------------------------------ fig2


def _query_noise_panel(ax, result, neuron, letter):
    """One optimizer's query noise of one neuron, split by sign at T3 (else the last step);
    the title counts the noise of opposite sign there and at the end."""
    h, steps = result.history, result.steps
    report = _stages.detect(result)
    split, row = _split_row(result, report, None)
    qn = h["query_noise"][:, neuron]  # (T, n)
    neg = qn[row] * np.sign(h["query_signal"][row, neuron]) < 0
    left = qn[-1] * np.sign(h["query_signal"][-1, neuron]) < 0
    ax.plot(steps, qn[:, ~neg], color="tab:blue", linewidth=0.6)
    ax.plot(steps, qn[:, neg], color="tab:red", linewidth=0.8, linestyle=":")
    head = f"({letter}) {_label(result.config)}, neuron $s={neuron}$"
    missing = not_reached(report)
    counts = f"{int(neg.sum())} opposite at $t={split}$, {int((neg & left).sum())} at the end"
    ax.set_title(f"{head} ({missing})\n{counts}" if missing else f"{head}\n{counts}")
    ax.set_ylabel(rf"query noise $\langle w_{{Q,{neuron}}}, y_i\xi_i\rangle$")
    _symlog_steps(ax, int(steps[-1]))
    shade_stages(ax, report)


def _sign_legend(fig):
    """One legend for the sign split of panels (a) and (b), below the figure."""
    handles = [Line2D([], [], color="tab:blue", linewidth=0.8),
               Line2D([], [], color="tab:red", linewidth=0.8, linestyle=":")]
    solid = ("(a), (b) solid: query noise with its neuron's query-signal sign at $T_3$ "
             "(at the last step if $T_3$ is not reached)")
    labels = [solid, "dotted: the opposite sign"]
    return fig.legend(handles, labels, loc="outside lower center", ncol=2)


def _loss_panel(ax, results):
    """Train loss (solid) and test loss (a lighter colour, dashed for the first run and
    dash-dotted for the second) of each run, on a log scale."""
    for result, color, light, dashes in zip(results, _COLORS, _TEST_COLORS, _TEST_STYLES):
        name = _label(result.config)
        ax.semilogy(result.steps, result.history["train_loss"], color=color,
                    label=f"{name} train")
        ax.semilogy(result.test_steps, result.history["test_loss"], color=light,
                    linestyle=dashes, linewidth=1.2, label=f"{name} test")
    ax.set_xlabel("step $t$")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("(c) train and test loss")
    ax.legend(loc="center right")


def optimizer_figure(first, second, *, neuron=0):
    """Query-noise dynamics of one neuron under two optimizers side by side (SignGD, then
    Adam, in fig2), and the train and test loss of both on a log scale (spec sections 8-9).
    Two columns wide (7.0 in); panels (a), (b), (c)."""
    with paper_style():
        fig, axes = _subplots(1, 3, TWO_COLUMNS, 2.9, width_ratios=(1.15, 1.15, 1))
        for ax, result, letter in ((axes[0], first, "a"), (axes[1], second, "b")):
            _query_noise_panel(ax, result, neuron, letter)
        _loss_panel(axes[2], (first, second))
        _sign_legend(fig)
    return fig


# ------------------------------------------------------------------ data quality


def _snr_axis(ax, snrs):
    """A log2 SNR axis ticked in plain numbers (0.25, 0.5, 1, 2, 4, 8) at the powers of two
    that span the SNRs drawn (SNRs between them, a finer grid, are drawn unlabelled)."""
    drawn = {float(x) for c in snrs for x in c}
    ticks = []
    if drawn:
        lo, hi = math.floor(math.log2(min(drawn))), math.ceil(math.log2(max(drawn)))
        ticks = [2.0 ** k for k in range(lo, hi + 1)]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, labels=[f"{x:g}" for x in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(r"SNR $= \|\mu\| / (\sigma_p \sqrt{s})$")


def _horizon(config) -> str:
    return rf"{_label(config)}: $\mathrm{{lr}}={_tex(config.lr)}$, {config.steps} steps"


def _band_title(curves, band) -> str:
    seeds = min((np.shape(c.test_loss)[1] for c in curves), default=0)
    spread = "min to max" if tuple(band) == (0, 100) else f"{band[0]}-{band[1]} percentile"
    return f"after training; median over {seeds} seeds, band: {spread}"


def _median_band_lines(x, panels, color, label: str, band) -> None:
    """On each (ax, values (k, seeds)) of ``panels``: the median over seeds against ``x``
    and a band between the ``band`` percentiles; the first panel's line is labelled."""
    for k, (ax, values) in enumerate(panels):
        values = np.asarray(values)
        ax.plot(x, np.median(values, axis=1), marker="o", color=color,
                label=label if k == 0 else None)
        lo, hi = np.percentile(values, band, axis=1)
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)


def data_quality_figure(curves, *, band=(0, 100)):
    """Test loss (a) and test error (b) after training against SNR, one line per optimizer
    (spec section 9): the median over seeds with a band between the ``band`` percentiles
    (default: min to max). One column wide (3.4 in); the legend, below the panels, names each
    optimizer's training horizon (lr and steps).

    Parameters
    ----------
    curves : sequence of figures.SNRCurve
        Each with ``config`` (the optimizer, lr and steps of the line), ``snrs`` of shape
        (k,), ``test_loss`` and ``test_error`` of shape (k, seeds).
    """
    with paper_style():
        fig, (ax_l, ax_e) = _subplots(1, 2, ONE_COLUMN, 2.9)
        for curve, color in zip(curves, _COLORS):
            _median_band_lines(curve.snrs, ((ax_l, curve.test_loss), (ax_e, curve.test_error)),
                               color, _horizon(curve.config), band)
        for ax, name, letter in ((ax_l, "test loss", "a"), (ax_e, "test error", "b")):
            _snr_axis(ax, [c.snrs for c in curves])
            ax.set_ylabel(name)
            ax.set_title(f"({letter}) {name}")
        fig.legend(loc="outside lower center", title=_band_title(curves, band))
    return fig


# ------------------------------------------------------------------ precision

# how each arithmetic is drawn: colour, line style, width (exact wide, under the others)
_ARITHMETIC_STYLES = {"exact": ("tab:blue", "-", 2.4), "float64": ("tab:orange", "--", 1.1),
                      "float32": ("tab:red", "-.", 1.1)}


def query_sign_share(result) -> np.ndarray:
    """(T,) the share of query-noise entries (neuron s, sample i) whose sign is that of
    their neuron's query signal: sign <w_{Q,s}, y_i xi_i> = sign <w_{Q,s}, mu> (spec
    section 7, Stage IV), at each recorded step."""
    h = result.history
    same = np.sign(h["query_noise"]) == np.sign(h["query_signal"])[:, :, None]
    return same.mean(axis=(1, 2))


def still_share(result) -> np.ndarray:
    """(T - 1,) the share of query-noise entries that did not move since the previous
    recorded step (0 where every entry moved), at the recorded steps after the first."""
    qn = result.history["query_noise"]
    return (qn[1:] == qn[:-1]).mean(axis=(1, 2))


def _freezing(result) -> str:
    """When the query noise stopped moving, in words (mathtext): "never frozen", or the
    first step with an entry that did not move and the step from which none moves."""
    still, steps = still_share(result), result.steps[1:]
    if not still.any():
        return "never frozen"
    first = int(steps[np.flatnonzero(still > 0)[0]])
    moving = np.flatnonzero(still < 1)
    if moving.size and moving[-1] == len(still) - 1:
        return f"frozen: first at $t={first}$"
    last = int(steps[moving[-1]]) if moving.size else int(result.steps[0])
    return f"frozen: first at $t={first}$, all at $t>{last}$"


def _opposite(result) -> np.ndarray:
    """(m_k, n) query noise whose sign is not its neuron's query-signal sign, at the end."""
    h = result.history
    return np.sign(h["query_noise"][-1]) != np.sign(h["query_signal"][-1])[:, None]


def _arithmetic_name(result) -> str:
    a = result.config.arithmetic
    return f"{a} (dense)" if result.config.kernel == "dense" else a


def _share_panels(ax_share, ax_still, results):
    """Panels (a) and (b): the two shares over steps, one line per arithmetic."""
    for r in results:
        color, dashes, width = _ARITHMETIC_STYLES[r.config.arithmetic]
        style = dict(color=color, linestyle=dashes, linewidth=width, label=_arithmetic_name(r))
        ax_share.plot(r.steps, query_sign_share(r), **style)
        ax_still.plot(r.steps[1:], still_share(r), **style)
    ax_share.set_title("(a) query noise with its neuron's query-signal sign")
    ax_still.set_title("(b) query noise that did not move in the step (frozen)")
    ax_still.set_ylim(-0.03, 1.03)
    for ax, where in ((ax_share, "lower right"), (ax_still, "center right")):
        ax.set_xlabel("step $t$")
        ax.set_ylabel(r"share of the $(s, i)$")
        ax.set_xlim(0, max(int(r.steps[-1]) for r in results))
        ax.legend(loc=where)


def _trace_panel(ax, result, neuron, letter):
    """One arithmetic's query noise of one neuron, solid or dotted by its sign against the
    query signal at the last step, the query signal (x10), and T4 if reached."""
    h, steps, cfg = result.history, result.steps, result.config
    qn, qs = h["query_noise"][:, neuron], h["query_signal"][:, neuron]  # (T, n), (T,)
    same = ~_opposite(result)[neuron]
    ax.plot(steps, qn[:, same], color="tab:blue", linewidth=0.6, alpha=0.8)
    ax.plot(steps, qn[:, ~same], color="tab:red", linewidth=0.9, linestyle=":")
    ax.plot(steps, qs / cfg.mu_norm * 10, color="black", linewidth=1.2)
    report = _stages.detect(result)
    T4 = report.T4
    if T4 is not None:
        ax.axvline(T4, color="0.45", linestyle="--", linewidth=0.6)
    reached = f"$T_4={T4}$" if T4 is not None else "$T_4$ not reached"
    opposite = _opposite(result)
    ax.set_title(f"({letter}) {_arithmetic_name(result)}, {reached}\n{_freezing(result)}\n"
                 f"{int(opposite.sum())} of {opposite.size} opposite at the end")
    ax.set_xlabel("step $t$")
    ax.set_xlim(0, int(steps[-1]))


def _trace_legend(fig, neuron):
    """One legend for the trace panels, below the figure."""
    handles = [Line2D([], [], color="tab:blue", linewidth=0.8),
               Line2D([], [], color="tab:red", linewidth=0.9, linestyle=":"),
               Line2D([], [], color="black", linewidth=1.2)]
    labels = [rf"(c)-(e) $\langle w_{{Q,{neuron}}}, y_i\xi_i\rangle$ with the query-signal "
              "sign at the last step", "dotted: the opposite sign",
              rf"$10\,\langle w_{{Q,{neuron}}}, \mu\rangle/\|\mu\|$"]
    return fig.legend(handles, labels, loc="outside lower center", ncol=3)


def precision_figure(results, *, neuron=None):
    """One configuration under several arithmetics (``Config.arithmetic``; issue 11): fig1
    under exact, float64 and float32 in ``figures``. Two columns wide (7.0 in).

    (a) the share of query-noise entries whose sign is their neuron's query-signal sign
    (``query_sign_share``) and (b) the share that did not move in the step
    (``still_share``), one line per arithmetic; then, one panel per run, the query noise of
    neuron ``neuron`` with its query signal, titled with T4 (or that it was not reached) and
    when the entries stopped moving, and how many of all (s, i) end opposite.

    Parameters
    ----------
    results : sequence of Result
        Single runs, drawn in this order (at most three trace panels fit a row).
    neuron : int, optional
        The neuron of the trace panels; default: the one with the most query noise of the
        sign opposite to its query signal at the end, summed over the runs (the first such).
    """
    if not 1 <= len(results) <= 3 or any(r.seeds is not None for r in results):
        raise ValueError("precision_figure takes one to three single runs (one per "
                         f"arithmetic). Got {len(results)} result(s).")
    if neuron is None:
        neuron = int(np.argmax(sum(_opposite(r).sum(axis=1) for r in results)))
    letters = "cde"[:len(results)]
    top = ["a"] * len(results) + ["b"] * len(results)
    with paper_style():
        fig = _plt().figure(figsize=(TWO_COLUMNS, 4.9), FigureClass=PaperFigure,
                            layout="constrained")
        axes = fig.subplot_mosaic([top, [c for c in letters for _ in range(2)]],
                                  sharey=False)
        _share_panels(axes["a"], axes["b"], results)
        for letter, result in zip(letters, results):
            _trace_panel(axes[letter], result, neuron, letter)
            if letter != "c":
                axes[letter].sharey(axes["c"])
        axes["c"].set_ylabel(rf"query noise, neuron $s={neuron}$")
        _trace_legend(fig, neuron)
        cfg = results[0].config
        fig.suptitle(rf"{_label(cfg)} ($n={cfg.n}$, $d={_tex(cfg.d)}$, $s={cfg.s}$, "
                     rf"$\mathrm{{lr}}={_tex(cfg.lr)}$, {cfg.steps} steps) in each arithmetic")
    return fig


# ------------------------------------------------------------------ the Adam continuum

_BETA2_COLORS = ("tab:red", "tab:orange", "tab:green", "tab:blue", "tab:purple", "tab:brown")
_OTHER_MARKERS = ("s", "D", "^", "v", "P", "X")  # the other optimizers, in table order


def _eps_axis(ax, eps):
    """A categorical eps axis: 0 first, then the values in increasing order."""
    ax.set_xticks(range(len(eps)), labels=["0" if e == 0 else f"${_tex(e)}$" for e in eps],
                  rotation=45)
    ax.set_xlabel(r"Adam's $\epsilon$")


def _adam_values(table, beta1, beta2, field):
    """(eps, values) of the Adam rows at (beta1, beta2); NaN where a run diverged."""
    rows = table.adam(beta1, beta2)
    return [r.config.eps for r in rows], np.array([getattr(r, field) for r in rows], float)


def _continuum_row(axes, table, grid, field, ylabel, letters):
    """One row of panels, one per beta1: ``field`` against eps, one line per beta2."""
    beta1s, beta2s, eps = grid
    for ax, b1, letter in zip(axes, beta1s, letters):
        for b2, color in zip(beta2s, _BETA2_COLORS):
            e, y = _adam_values(table, b1, b2, field)
            ax.plot([eps.index(x) for x in e], y, marker="o", color=color,
                    label=rf"$\beta_2={b2:g}$")
        _eps_axis(ax, eps)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(rf"({letter}) Adam, $\beta_1={b1:g}$")
    axes[0].set_ylabel(ylabel)


def _continuum_map(ax, table, eps, letter):
    """Every run at (update-sign agreement with SignGD, share of negative noise flipped):
    Adam coloured by eps, the other optimizers marked and named."""
    cmap = _plt().get_cmap("viridis", len(eps))
    adam = [r for r in table.rows if r.role == "adam" and not r.diverged]
    points = ax.scatter([r.agreement for r in adam], [r.flipped for r in adam],
                        c=[eps.index(r.config.eps) for r in adam], cmap=cmap, s=9,
                        vmin=-0.5, vmax=len(eps) - 0.5, linewidths=0)
    marked = [r for r in table.rows if r.role != "adam" and not r.diverged]
    markers = iter(_OTHER_MARKERS)
    for r in marked:
        marker = "*" if r.role == "signgd" else next(markers, "o")
        ax.scatter([r.agreement], [r.flipped], marker=marker, s=30, facecolor="none",
                   edgecolor="black", linewidths=0.8)
        ax.annotate(r.label, (r.agreement, r.flipped), xytext=(4, 3),
                    textcoords="offset points", fontsize=7)
    bar = ax.figure.colorbar(points, ax=ax, ticks=range(len(eps)), pad=0.01)
    bar.ax.set_yticklabels(["0" if e == 0 else f"${_tex(e)}$" for e in eps])
    bar.set_label(r"Adam's $\epsilon$")
    ax.set_xlabel("update-sign agreement with SignGD (mean over steps)")
    ax.set_ylabel("negative noise flipped")
    ax.set_title(f"({letter}) every run on one map")


def _continuum_distances(ax, table, grid, letter):
    """Trajectory distance of query noise to SignGD (solid) and to GD at lr/eps (dashed)
    against eps, at the largest beta1, one colour per beta2."""
    beta1s, beta2s, eps = grid
    for b2, color in zip(beta2s, _BETA2_COLORS):
        for field, style in (("to_signgd", "-"), ("to_gd", "--")):
            e, y = _adam_values(table, beta1s[-1], b2, field)
            ax.plot([eps.index(x) for x in e], y, linestyle=style, marker="o", color=color)
    _eps_axis(ax, eps)
    ax.set_ylabel("query-noise distance")
    ax.set_title(rf"({letter}) distances, $\beta_1={beta1s[-1]:g}$")


def continuum_figure(table):
    """The Adam continuum (issue 15; ``signsim.continuum``, docs/optimizers.md). Two
    columns wide (7.0 in).

    One panel per beta1 in each of the first two rows, eps along the x axis, one line per
    beta2: (first row) the update-sign agreement with SignGD, mean over the steps
    (``signsim.compare``); (second row) the share of the negative noise at SignGD's T3
    that flipped by the end. Then every run at (agreement, flipped), Adam coloured by eps
    and Signum, Lion, RMSProp and SignGD marked; and the trajectory distances of the query
    noise to SignGD and to GD at lr / eps for the largest beta1.

    Parameters
    ----------
    table : continuum.Continuum
    """
    adam = [r.config for r in table.rows if r.role == "adam"]
    if not adam:
        raise ValueError("continuum_figure needs Adam runs in the table. Got none.")
    grid = (sorted({c.beta1 for c in adam}), sorted({c.beta2 for c in adam}),
            sorted({c.eps for c in adam}))
    k = len(grid[0])
    letters = iter("abcdefghijkl")
    with paper_style():
        fig = _plt().figure(figsize=(TWO_COLUMNS, 7.4), FigureClass=PaperFigure,
                            layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[2, 1.1])
        rows = top.subplots(2, k, sharey=True, squeeze=False)
        _continuum_row(rows[0], table, grid, "agreement", "update-sign agreement\nwith SignGD",
                       [next(letters) for _ in range(k)])
        _continuum_row(rows[1], table, grid, "flipped", "negative noise flipped",
                       [next(letters) for _ in range(k)])
        ax_map, ax_dist = bottom.subplots(1, 2, width_ratios=[1.3, 1])
        _continuum_map(ax_map, table, grid[2], next(letters))
        _continuum_distances(ax_dist, table, grid, next(letters))
        handles = [Line2D([], [], color=c, marker="o", label=rf"$\beta_2={b:g}$")
                   for b, c in zip(grid[1], _BETA2_COLORS)]
        handles += [Line2D([], [], color="grey", linestyle="-", label="to SignGD"),
                    Line2D([], [], color="grey", linestyle="--",
                           label=r"to GD at $\mathrm{lr}/\epsilon$")]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
        cfg = table.rows[0].config
        fig.suptitle(rf"Adam between SignGD and GD on fig1's data ($n={cfg.n}$, "
                     rf"$d={_tex(cfg.d)}$, $\mathrm{{lr}}={_tex(cfg.lr)}$, {cfg.steps} steps)")
    return fig


# ------------------------------------------------------------------ real data


def _sigma_axis(ax, sigmas):
    """A log2 sigma_p axis ticked in plain numbers at the noise levels drawn."""
    ticks = sorted({float(x) for c in sigmas for x in c})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, labels=[f"{x:g}" for x in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(r"noise strength $\sigma_p$")


def _task_title(config) -> str:
    """What the runs were trained on, e.g. "8x8 digits, 3 vs 8 ($n=40$, $d=1000$, $s=10$)"."""
    source = {"digits": "8x8 digits", "mnist": "MNIST"}.get(config.data, config.data)
    task = "even vs odd" if config.task == "even-odd" else " vs ".join(config.task.split(","))
    noise = rf"$s={config.s}$" if config.noise == "sparse" else "dense noise"
    return f"{source}, {task} ($n={config.n}$, $d={_tex(config.d)}$, {noise})"


def _plain(value, _pos=None) -> str:
    return f"{value:g}"


def _plain_235(value, _pos=None) -> str:
    """A minor log tick's label: the value at 2, 3 and 5 times a power of ten, else none."""
    mantissa = value / 10.0 ** math.floor(math.log10(value)) if value > 0 else 0.0
    return f"{value:g}" if any(math.isclose(mantissa, m) for m in (2, 3, 5)) else ""


def real_data_figure(curves, *, band=(0, 100)):
    """Test accuracy (a) and test loss (b, log scale) after training against the noise
    strength sigma_p on real digits (spec section 10), one line per optimizer: the median
    over seeds with a band between the ``band`` percentiles (default: min to max). One
    column wide (3.4 in); the legend, below the panels, names each optimizer's lr and steps.

    Parameters
    ----------
    curves : sequence of realdata.Curve
        Each with ``config``, ``sigma_ps`` of shape (k,), ``test_accuracy`` and
        ``test_loss`` of shape (k, seeds).
    """
    with paper_style():
        fig, (ax_a, ax_l) = _subplots(1, 2, ONE_COLUMN, 3.1)
        for curve, color in zip(curves, _COLORS):
            _median_band_lines(curve.sigma_ps, ((ax_a, curve.test_accuracy),
                                                (ax_l, curve.test_loss)),
                               color, _horizon(curve.config), band)
        ax_l.set_yscale("log")
        ax_l.yaxis.set_major_formatter(FuncFormatter(_plain))  # 0.1, 1: not 10^-1
        ax_l.yaxis.set_minor_formatter(FuncFormatter(_plain_235))
        for ax, name, letter in ((ax_a, "test accuracy", "a"), (ax_l, "test loss", "b")):
            _sigma_axis(ax, [c.sigma_ps for c in curves])
            ax.set_ylabel(name)
            ax.set_title(f"({letter}) {name}")
        fig.suptitle(_task_title(curves[0].config))
        fig.legend(loc="outside lower center", title=_band_title(curves, band))
    return fig
