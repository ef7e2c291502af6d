"""Figures build on small runs with the Agg backend: panels, labels, stage shading, and what
a paper needs (TrueType fonts, column widths, text of at least 7 pt, mathtext names)."""

import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402

import signsim  # noqa: E402
from signsim import figures, plotting, stages  # noqa: E402

SMALL = {"n_test": 30, "steps": 400}  # fig1 data, enough steps for all four stages
COLUMN_WIDTHS = (3.4, 7.0)  # inches: one and two columns of a paper
DQ = {"steps": 30, "n_test": 20, "record_every": 30, "test_every": 30}  # short runs


@pytest.fixture(scope="module")
def fig1_run():
    return signsim.run("fig1", **SMALL)


@pytest.fixture(scope="module")
def adam_run():
    return signsim.run("fig2", **SMALL)


def _dq_batch(optimizer, lr, snrs, seeds=(0,)):
    """One batch of the data-quality configuration over ``snrs`` x ``seeds``."""
    s = signsim.preset("data_quality").s
    grid = [(snr, seed) for snr in snrs for seed in seeds]
    return signsim.run("data_quality", optimizer=optimizer, lr=lr, seeds=[g[1] for g in grid],
                       vary={"sigma_p": [figures._sigma_p(g[0], s) for g in grid]}, **DQ)


@pytest.fixture(scope="module")
def dq_runs():
    return [_dq_batch(opt, lr, figures.SNRS) for opt, lr in figures.DQ_OPTIMIZERS.items()]


@pytest.fixture(scope="module")
def paper_figures(fig1_run, adam_run, dq_runs):
    """Every named figure, built as ``signsim figure`` builds it."""
    built = {"fig1": figures.build("fig1", [fig1_run]),
             "fig2": figures.build("fig2", [fig1_run, adam_run]),
             "data-quality": figures.build("data-quality", dq_runs)}
    yield built
    for fig in built.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def pdfs(paper_figures):
    """Each figure saved as PDF under a user's Type 3 setting (once: saving takes seconds)."""
    with matplotlib.rc_context({"pdf.fonttype": 3}):
        return {name: _pdf_bytes(fig) for name, fig in paper_figures.items()}


@pytest.fixture(scope="module")
def texts(paper_figures, pdfs):
    """name -> (text, font size) of every visible, non-empty text artist of the figure as
    drawn into its PDF (ticks, labels, titles, legends, stage labels)."""
    out = {}
    for name, fig in paper_figures.items():
        out[name] = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
                     if t.get_visible() and t.get_text().strip()]
    return out


def _shaded_spans(ax):
    return [p for p in ax.patches if isinstance(p, (Polygon, Rectangle))]


def _stage_gids(ax):
    return {p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("stage ")}


def _span_end(span):
    """Right edge, in data coordinates, of an axvspan (a Rectangle, or a Polygon before
    matplotlib 3.9)."""
    if isinstance(span, Rectangle):
        return span.get_x() + span.get_width()
    return float(np.max(span.get_xy()[:, 0]))


def _pdf_bytes(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    return buf.getvalue()


# ------------------------------------------------------------------ the figures' content


def test_stage_figure_has_four_labelled_shaded_panels(fig1_run):
    fig = plotting.stage_figure(fig1_run)
    axes = fig.axes
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    for letter in "abcd":
        assert any(t.startswith(f"({letter})") for t in titles), titles
    report = stages.detect(fig1_run)
    assert None not in report.as_dict().values()
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        assert _shaded_spans(ax), "every panel is shaded by stage"
    # the whole-run panels mark every boundary and name every stage
    for ax in axes[2:]:
        texts = {t.get_text().strip() for t in ax.texts}
        assert {"I", "II", "III", "IV", "$T_1$", "$T_2$", "$T_3$", "$T_4$"} <= texts
        assert _stage_gids(ax) == {"stage I", "stage II", "stage III", "stage IV"}
    # panel (b) draws R1's theory line next to each sample's curve
    assert len(axes[1].lines) >= 2 * fig1_run.config.n
    plt.close(fig)


def test_optimizer_figure_has_both_optimizers_and_a_log_loss(fig1_run, adam_run):
    fig = plotting.optimizer_figure(fig1_run, adam_run)
    ax_s, ax_a, ax_l = fig.axes
    assert ax_s.get_title().startswith("(a) SignGD") and ax_a.get_title().startswith("(b) Adam")
    assert ax_l.get_title().startswith("(c)")
    assert ax_l.get_yscale() == "log"
    handles, labels = ax_l.get_legend_handles_labels()
    assert labels == ["SignGD train", "SignGD test", "Adam train", "Adam test"]
    lines = dict(zip(labels, handles))
    for name in ("SignGD", "Adam"):  # test loss told apart from train loss by colour and style
        train, test = lines[f"{name} train"], lines[f"{name} test"]
        assert train.get_color() != test.get_color()
        assert train.get_linestyle() == "-" and test.get_linestyle() != "-"
    assert len({line.get_color() for line in handles}) == 4
    plt.close(fig)


def test_data_quality_figure_from_batched_runs():
    results = [_dq_batch(opt, lr, (0.5, 2.0), seeds=(0, 1))
               for opt, lr in (("signgd", 1e-3), ("gd", 1.0))]
    fig = figures.build("data-quality", results)
    ax_l, ax_e = fig.axes
    assert "SNR" in ax_l.get_xlabel() and "test loss" in ax_l.get_ylabel()
    assert "test error" in ax_e.get_ylabel() and ax_e.get_title().startswith("(b)")
    for ax in (ax_l, ax_e):  # a line and a band per optimizer in each panel
        assert len(ax.lines) == 2 and len(ax.collections) == 2
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0.5, 2.0])
    errors = np.atleast_2d(results[0].history["test_error"])[:, -1].reshape(2, 2)
    np.testing.assert_allclose(ax_e.lines[0].get_ydata(), np.median(errors, axis=1),
                               rtol=1e-12, atol=0)
    plt.close(fig)


def test_data_quality_legend_is_off_the_data_and_states_the_horizon(paper_figures):
    fig = paper_figures["data-quality"]
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [r"SignGD: $\mathrm{lr}=10^{-3}$, 30 steps",
                      r"Adam: $\mathrm{lr}=10^{-3}$, 30 steps", r"GD: $\mathrm{lr}=1$, 30 steps"]


def test_data_quality_snr_axis_is_ticked_in_plain_numbers(paper_figures):
    for ax in paper_figures["data-quality"].axes:
        np.testing.assert_array_equal(ax.get_xticks(), figures.SNRS)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.25", "0.5", "1", "2", "4", "8"]
        assert len(ax.get_xticks(minor=True)) == 0


def test_data_quality_keeps_apart_the_horizons_of_one_optimizer():
    runs = [_dq_batch("signgd", lr, (1.0, 2.0)) for lr in (1e-3, 2e-3)]
    curves = figures._data_quality_table(runs)
    assert [c.config.lr for c in curves] == [1e-3, 2e-3]
    fig = plotting.data_quality_figure(curves)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [r"SignGD: $\mathrm{lr}=10^{-3}$, 30 steps",
                      r"SignGD: $\mathrm{lr}=0.002$, 30 steps"]
    plt.close(fig)


# ------------------------------------------------------------------ stages not reached


ADAM_LIKE = stages.StageReport(T1=7, T2=None, T3=142, T4=None)  # fig2's Adam, seed 0


def _shaded(report, t_max=900):
    fig, ax = plt.subplots()
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, t_max)
    plotting.shade_stages(ax, report, t_max=t_max)
    return fig, ax


@pytest.mark.parametrize("report, shaded, last_end", [
    (ADAM_LIKE, ["I", "II"], 900),  # no T2: no Stage III or IV, though T3's condition holds
    (stages.StageReport(T1=7, T2=36, T3=103, T4=None), ["I", "II", "III", "IV"], 900),
    (stages.StageReport(T1=7, T2=36, T3=None, T4=None), ["I", "II", "III"], 900),
    (stages.StageReport(T1=None, T2=None, T3=None, T4=None), ["I"], 900),
    (stages.StageReport(T1=7, T2=36, T3=103, T4=361), ["I", "II", "III", "IV"], 900),
])
def test_only_the_stages_reached_are_shaded(report, shaded, last_end):
    fig, ax = _shaded(report)
    spans = [p for p in ax.patches if (p.get_gid() or "").startswith("stage ")]
    assert [p.get_gid() for p in spans] == [f"stage {s}" for s in shaded]
    assert _span_end(spans[-1]) == pytest.approx(last_end)
    names = {t.get_text() for t in ax.texts} & {"I", "II", "III", "IV"}
    assert names == set(shaded)
    found = {f"$T_{k}$" for k, b in enumerate(report.as_dict().values(), 1) if b is not None}
    assert {t.get_text() for t in ax.texts if t.get_text().startswith("$T")} == found
    plt.close(fig)


def test_not_reached_names_the_missing_boundaries():
    assert plotting.not_reached(ADAM_LIKE) == "$T_2$, $T_4$ not reached"
    assert plotting.not_reached(stages.StageReport(T1=1, T2=2, T3=3, T4=4)) == ""


def test_adams_panel_shades_no_stage_it_did_not_reach(paper_figures, adam_run):
    report = stages.detect(adam_run)
    assert report.T2 is None and report.T4 is None  # the case the figure must show right
    ax = paper_figures["fig2"].axes[1]
    assert _stage_gids(ax) == {"stage I", "stage II"}
    assert "$T_2$, $T_4$ not reached" in ax.get_title()


# ------------------------------------------------------------------ fit for a paper


@pytest.mark.parametrize("name", figures.FIGURES)
def test_pdf_embeds_truetype_fonts_whatever_the_rcparams(pdfs, name):
    assert b"/Type3" not in pdfs[name]
    assert b"/CIDFontType2" in pdfs[name] or b"/TrueType" in pdfs[name]


@pytest.mark.parametrize("name", figures.FIGURES)
def test_figure_prints_at_one_or_two_columns(paper_figures, pdfs, name):
    width = paper_figures[name].get_size_inches()[0]
    assert any(width == pytest.approx(w) for w in COLUMN_WIDTHS), width
    box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", pdfs[name])
    assert float(box.group(1)) == pytest.approx(72 * width)


@pytest.mark.parametrize("name", figures.FIGURES)
def test_no_text_is_smaller_than_7_points(texts, name):
    assert len(texts[name]) > 20  # ticks, labels, titles, legends, stage labels
    assert not [(text, size) for text, size in texts[name] if size < 7]


RAW = re.compile(r"\b(signgd|adam|gd|sgd)\b|(?<!\\)sigma_|mu_norm|neuron s=|\bT[1-4]\b")


@pytest.mark.parametrize("name", figures.FIGURES)
def test_labels_use_mathtext_not_raw_names(texts, name):
    assert not [text for text, _ in texts[name] if RAW.search(text)]


@pytest.mark.parametrize("name", figures.FIGURES)
def test_multi_panel_figures_letter_their_panels(paper_figures, name):
    titles = [ax.get_title() for ax in paper_figures[name].axes]
    assert [t[:3] for t in titles] == [f"({c})" for c in "abcd"[:len(titles)]]


def test_building_and_saving_leave_the_global_rcparams_alone(dq_runs):
    before = dict(matplotlib.rcParams)
    fig = figures.build("data-quality", dq_runs)
    _pdf_bytes(fig)
    plt.close(fig)
    assert dict(matplotlib.rcParams) == before


def test_the_style_file_ships_with_the_package():
    style = matplotlib.rc_params_from_file(plotting.style_path(), use_default_template=False)
    assert style["pdf.fonttype"] == 42 and style["ps.fonttype"] == 42
    sizes = [style[k] for k in ("font.size", "axes.titlesize", "axes.labelsize",
                                "xtick.labelsize", "ytick.labelsize", "legend.fontsize")]
    assert min(float(s) for s in sizes) >= 7


# ------------------------------------------------------------------ helpers and refusals


def test_plot_quantity_draws_entries_and_replica_bands():
    single = signsim.run("fig1", steps=20, n_test=10)
    fig, ax = plt.subplots()
    assert len(plotting.plot_quantity(single, "mean_value_noise", ax=ax)) == 20
    assert len(plotting.plot_quantity(single, "query_noise", ax=ax, index=(0, 3))) == 1
    assert len(plotting.plot_quantity(single, "test_loss", ax=ax)) == 1
    batch = signsim.run("fig1", steps=20, n_test=10, seeds=[0, 1, 2])
    before = len(ax.collections)
    lines = plotting.plot_quantity(batch, "train_loss", ax=ax)
    assert len(lines) == 1 and len(ax.collections) == before + 1
    plt.close(fig)


def test_stage_figure_rejects_batched_runs():
    batch = signsim.run("fig1", steps=5, n_test=5, seeds=[0, 1])
    with pytest.raises(ValueError, match="single run"):
        plotting.stage_figure(batch)


def test_importing_signsim_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, signsim; signsim.run('fig1', steps=2, n_test=5); print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("snr", figures.SNRS)
def test_data_quality_noise_levels_give_the_snrs_they_are_named_for(snr):
    """sigma_p = 1 / (SNR sqrt(s)) (spec section 9) is the sigma_p whose E5 SNR is SNR."""
    base = signsim.preset("data_quality")
    config = base.replace(sigma_p=float(figures._sigma_p(snr, base.s)))
    assert config.snr == pytest.approx(snr, rel=1e-12)
