"""Figures of the stage transitions and the optimizer comparisons (matplotlib, imported here
only). Helpers take an ``ax`` and return what they drew; figure builders return a Figure and
never call ``show()``.
"""

from __future__ import annotations

import numpy as np

from . import stages as _stages
from .tracker import TEST_NAMES

__all__ = ["plot_quantity", "shade_stages", "stage_figure", "optimizer_figure",
           "data_quality_figure", "STAGE_COLORS"]

STAGE_COLORS = ("#e8eef7", "#eaf4e6", "#fbf1dc", "#f6e4e4")  # I, II, III, IV
_COLORS = ("tab:blue", "tab:purple", "tab:green", "tab:orange", "tab:red", "tab:brown")
_STAGE_NAMES = ("I", "II", "III", "IV")


def _plt():
    import matplotlib.pyplot as plt

    return plt


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
        data = data[(slice(None), slice(None)) + tuple(np.atleast_1d(index))] if index != () else data
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


def shade_stages(ax, report, *, t_max=None, labels=True):
    """Shade the stages of ``report`` (a StageReport): I = [0, T1], II = [T1, T2],
    III = [T2, T3], IV = [T3, end]; mark T1-T4 with dashed lines (T4: the Stage IV flips are
    done) and label stages and boundaries."""
    t_max = ax.get_xlim()[1] if t_max is None else t_max
    T = [getattr(report, k) for k in ("T1", "T2", "T3", "T4")]
    starts = [0, T[0], T[1], T[2]]
    artists = []
    for k in range(4):
        start = starts[k]
        if start is None or start >= t_max:
            continue
        end = next((b for b in T[k:3] if b is not None), t_max) if k < 3 else t_max
        end = min(end, t_max)
        artists.append(ax.axvspan(start, end, color=STAGE_COLORS[k], zorder=0, linewidth=0))
        if labels and end > start:
            linear = ax.get_xscale() == "linear"
            mid = (start + end) / 2 if linear else np.sqrt(max(start, 1.0) * end)
            artists.append(ax.text(mid, 0.985, _STAGE_NAMES[k], transform=ax.get_xaxis_transform(),
                                   ha="center", va="top", fontsize=8, color="0.3"))
    for k, b in enumerate(T, start=1):
        if b is not None and b <= t_max:
            artists.append(ax.axvline(b, color="0.45", linestyle="--", linewidth=0.8, zorder=1))
            if labels:
                artists.append(ax.text(b, 0.015, f" T{k}", transform=ax.get_xaxis_transform(),
                                       ha="left", va="bottom", fontsize=7, color="0.3"))
    return artists


def _symlog_steps(ax, t_max):
    ax.set_xscale("symlog", linthresh=10, linscale=0.6)
    ax.set_xlim(0, t_max)
    ax.set_xlabel("step t (linear to 10, then logarithmic)")


def stage_figure(result, *, early=2, split_step=None, neuron=0, report=None):
    """The four-panel stage figure of one run (spec section 7).

    (a) key noise and (b) mean value noise over steps 0..``early`` with the R1 slope
    2 lr ||xi_i||_1 as the theory line; (c) s11 and s21 over the whole run; (d) query noise,
    key noise and query signal of one neuron over the whole run, the noise curves solid or
    dotted by their sign at ``split_step`` (default: T3, else the last step). Every panel is
    shaded by the stages ``stages.detect`` finds.
    """
    plt = _plt()
    if result.seeds is not None:
        raise ValueError("stage_figure takes a single run; pick one replica of a batched result")
    h, cfg = result.history, result.config
    report = report or _stages.detect(result)
    steps = result.steps
    t_max = int(steps[-1])
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    (ax_a, ax_b), (ax_c, ax_d) = axes
    early_rows = steps <= early

    # (a) key noise, early steps
    ax_a.plot(steps[early_rows], h["key_noise"][early_rows].reshape(early_rows.sum(), -1),
              color="tab:orange", linewidth=0.7, alpha=0.6)
    ax_a.set_title("(a) key noise $\\langle w_{K,s}, y_i\\xi_i\\rangle$, first steps")
    ax_a.set_xlabel("step t")
    ax_a.set_ylabel("key noise")

    # (b) mean value noise, early steps, with R1's slope from each sample's start
    l1 = result.dataset.noise_l1
    tt = steps[early_rows]
    mvn = h["mean_value_noise"][early_rows]
    ax_b.plot(tt, mvn, color="tab:green", linewidth=1.0, alpha=0.8)
    theory = mvn[0][None, :] + 2 * cfg.lr * l1[None, :] * tt[:, None]
    ax_b.plot(tt, theory, color="black", linestyle=":", linewidth=1.0)
    ax_b.plot([], [], color="tab:green", label="simulated, one line per sample")
    ax_b.plot([], [], color="black", linestyle=":", label="R1: slope $2\\,lr\\,\\|\\xi_i\\|_1$")
    ax_b.legend(loc="upper left", fontsize=8)
    ax_b.set_title("(b) mean value noise $\\langle v, y_i\\xi_i\\rangle$, first steps")
    ax_b.set_xlabel("step t")
    ax_b.set_ylabel("mean value noise")
    for ax in (ax_a, ax_b):
        ax.set_xlim(0, early)
        shade_stages(ax, report, t_max=early)

    # (c) attention by role over the run
    att = h["attention"]
    ax_c.plot(steps, att[:, :, 0, 0], color="tab:blue", linewidth=0.6, alpha=0.5)
    ax_c.plot(steps, att[:, :, 1, 0], color="tab:red", linewidth=0.6, alpha=0.5)
    ax_c.plot([], [], color="tab:blue", label="$s_{11}$: signal query on signal key")
    ax_c.plot([], [], color="tab:red", label="$s_{21}$: noise query on signal key")
    ax_c.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92), fontsize=8)
    ax_c.set_ylim(-0.02, 1.02)
    ax_c.set_ylabel("attention")
    ax_c.set_title("(c) attention on the signal key, every sample")

    # (d) query/key noise of one neuron split by sign at split_step, and its query signal
    split = split_step if split_step is not None else (report.T3 if report.T3 is not None else t_max)
    row = int(np.searchsorted(steps, split))
    qn, kn = h["query_noise"][:, neuron], h["key_noise"][:, neuron]  # (T, n)
    pos = qn[row] * np.sign(h["query_signal"][row, neuron]) > 0
    for data, color, name in ((qn, "tab:blue", "query"), (kn, "tab:orange", "key")):
        ax_d.plot(steps, data[:, pos], color=color, linewidth=0.7, alpha=0.7)
        ax_d.plot(steps, data[:, ~pos], color=color, linewidth=0.9, alpha=0.7, linestyle=":")
        ax_d.plot([], [], color=color, label=f"{name} noise")
    ax_d.plot(steps, h["query_signal"][:, neuron] / cfg.mu_norm * 10, color="black", linewidth=1.6,
              label="query signal x 10 / mu_norm")
    ax_d.plot([], [], color="0.3", label=f"solid: sign of query signal at t={split}")
    ax_d.plot([], [], color="0.3", linestyle=":", label="dotted: opposite sign (negative noise)")
    ax_d.legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), fontsize=7, ncol=2)
    ax_d.set_ylabel(f"neuron s={neuron}")
    ax_d.set_title(f"(d) query and key noise, query signal of neuron {neuron}")
    for ax in (ax_c, ax_d):
        _symlog_steps(ax, t_max)
        shade_stages(ax, report, t_max=t_max)

    bounds = ", ".join(f"{k}={v}" for k, v in report.as_dict().items())
    fig.suptitle(f"Stages of {cfg.optimizer} training (n={cfg.n}, d={cfg.d}, s={cfg.s}, "
                 f"lr={cfg.lr:g}, sigma_0={cfg.sigma_0:g}); detected {bounds}", fontsize=10)
    return fig


def _label(result) -> str:
    """How the optimizer of a run calls itself (its declared label, else its name)."""
    from .optim import from_config

    return from_config(result.config).label or result.config.optimizer


def optimizer_figure(first, second, *, neuron=0):
    """Query-noise dynamics of one neuron under two optimizers side by side (SignGD, then
    Adam, in fig2), and the training loss of both on a log scale (spec sections 8-9)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    for ax, result in ((axes[0], first), (axes[1], second)):
        name = _label(result)
        h, steps = result.history, result.steps
        report = _stages.detect(result)
        split = report.T3 if report.T3 is not None else int(steps[-1])
        row = int(np.searchsorted(steps, split))
        qn = h["query_noise"][:, neuron]  # (T, n)
        neg = qn[row] * np.sign(h["query_signal"][row, neuron]) < 0
        left = qn[-1] * np.sign(h["query_signal"][-1, neuron]) < 0
        ax.plot(steps, qn[:, ~neg], color="tab:blue", linewidth=0.7)
        ax.plot(steps, qn[:, neg], color="tab:red", linewidth=0.9, linestyle=":")
        ax.plot([], [], color="tab:blue", label=f"shares the query-signal sign at t={split}")
        ax.plot([], [], color="tab:red", linestyle=":", label="opposes it (negative noise)")
        ax.set_title(f"{name}, neuron {neuron}: {int(neg.sum())} negative at t={split}, "
                     f"{int((neg & left).sum())} still negative at the end", fontsize=10)
        ax.set_ylabel("query noise")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), fontsize=8)
        _symlog_steps(ax, int(steps[-1]))
        shade_stages(ax, report)
    ax = axes[2]
    for result, color in ((first, "tab:blue"), (second, "tab:purple")):
        name = _label(result)
        ax.semilogy(result.steps, result.history["train_loss"], color=color, label=f"{name} train")
        ax.semilogy(result.test_steps, result.history["test_loss"], color=color, linestyle="--",
                    label=f"{name} test")
    ax.set_xlabel("step t")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("training loss: linear rate (SignGD) vs sublinear (Adam)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def data_quality_figure(table: dict, *, band=(0, 100)):
    """Test loss against SNR for each optimizer (spec section 9), the median over seeds with
    a band between the ``band`` percentiles (default: min to max).

    ``table`` maps optimizer name -> (snrs of shape (k,), test losses of shape (k, seeds)).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 4.2), constrained_layout=True)
    for (name, (snrs, losses)), color in zip(table.items(), _COLORS):
        losses = np.asarray(losses)
        ax.plot(snrs, np.median(losses, axis=1), marker="o", color=color, label=name)
        lo, hi = np.percentile(losses, band, axis=1)
        ax.fill_between(snrs, lo, hi, color=color, alpha=0.2, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("SNR = mu_norm / (sigma_p sqrt(s))")
    ax.set_ylabel("test loss after training")
    ax.set_title("Data quality: sign-based optimizers need cleaner data", fontsize=10)
    ax.legend(loc="center", bbox_to_anchor=(0.45, 0.72), title=f"median, band: {band[0]}-{band[1]} percentile over seeds", fontsize=8,
              title_fontsize=8)
    return fig
