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
                       vary={"sigma_p": [1.0 / (g[0] * np.sqrt(s)) for g in grid]}, **DQ)


@pytest.fixture(scope="module")
def dq_runs():
    return [_dq_batch(opt, lr, figures.SNRS) for opt, lr in figures.DQ_OPTIMIZERS.items()]


@pytest.fixture(scope="module")
def phase_sweep():
    """A small SNR x horizon x optimizer sweep, as the phase figure's (short runs)."""
    grid = {"snr": [0.5, 2.0], "steps": [10, 20],
            ("optimizer", "lr"): list(figures.DQ_OPTIMIZERS.items())}
    return signsim.sweep("data_quality", grid, seeds=2, n_test=20, record_every=10,
                         test_every=10)


PRECISION_STEPS = {"n_test": 30, "steps": 250, "test_every": 250}  # float32 freezes by 250


@pytest.fixture(scope="module")
def precision_runs():
    """fig1 in each arithmetic of the precision figure, shorter (float32: the dense kernel)."""
    return [signsim.run("fig1", arithmetic=a, kernel=k, **PRECISION_STEPS)
            for a, k in figures.PRECISION]


@pytest.fixture(scope="module")
def real_data_runs():
    """The real-data experiment in small (signsim.realdata): two noise levels, two seeds."""
    from signsim import realdata

    base = realdata.base_config(n=20, n_test=40, d=100, steps=30)
    return realdata.experiment((0, 1), base=base, sigma_ps=(0.1, 0.8),
                               grids={"signgd": (1e-2,), "adam": (1e-2,), "gd": (10.0,)})[1]


@pytest.fixture(scope="module")
def continuum_table():
    """The Adam continuum in small (signsim.continuum): 200 steps, a 2 x 2 x 3 Adam grid."""
    from signsim import continuum

    base = signsim.preset("fig1", steps=200, n_test=30)
    return continuum.study(continuum.plan(base, beta1=(0.0, 0.9), beta2=(0.0, 0.999),
                                          eps=(0.0, 1e-4, 1.0)))


@pytest.fixture(scope="module")
def paper_figures(fig1_run, adam_run, dq_runs, phase_sweep, precision_runs, real_data_runs,
                  continuum_table):
    """Every named figure, built as ``signsim figure`` builds it."""
    built = {"fig1": figures.build("fig1", [fig1_run]),
             "fig2": figures.build("fig2", [fig1_run, adam_run]),
             "data-quality": figures.build("data-quality", dq_runs),
             "phase": figures.build("phase", [phase_sweep]),
             "precision": figures.build("precision", precision_runs[::-1]),  # any order
             "real-data": figures.build("real-data", real_data_runs),
             "adam-continuum": figures.build("adam-continuum", [continuum_table])}
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


def test_continuum_figure_draws_the_tables_numbers(paper_figures, continuum_table):
    """One panel per beta1 in each of the first two rows, one line per beta2 whose points
    are the table's agreement (first row) and flipped share (second row) in eps order."""
    fig = paper_figures["adam-continuum"]
    panels = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is None]
    assert len(panels) == 2 * 2 + 2
    for ax, field in ((panels[0], "agreement"), (panels[3], "flipped")):
        b1 = 0.0 if ax in (panels[0], panels[2]) else 0.9
        assert len(ax.lines) == 2
        for line, b2 in zip(ax.lines, (0.0, 0.999)):
            want = [getattr(r, field) for r in continuum_table.adam(b1, b2)]
            np.testing.assert_array_equal(line.get_ydata(), want)


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
    titles = [ax.get_title() for ax in paper_figures[name].axes
              if getattr(ax, "_colorbar", None) is None]  # colour bars are not panels
    assert [t[:3] for t in titles] == [f"({c})" for c in "abcdefghijkl"[:len(titles)]]


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

    code = ("import sys, signsim; signsim.run('fig1', steps=2, n_test=5); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("snr", figures.DQ_SNRS)
def test_data_quality_noise_levels_give_the_snrs_they_are_named_for(snr):
    """The data-quality sweep's cell at each SNR runs the sigma_p whose E5 SNR is that SNR,
    sigma_p = 1 / (SNR sqrt(s)) with mu_norm = 1 (spec section 9)."""
    from signsim.sweeps.grid import cell_config

    config = cell_config(signsim.preset("data_quality"), {"snr": snr}, 0)
    assert config.snr == pytest.approx(snr, rel=1e-12)
    assert config.sigma_p == pytest.approx(1.0 / (snr * np.sqrt(config.s)), rel=1e-12)


# ------------------------------------------------------------------ precision


def _slow_shares(result):
    """The precision figure's two shares by explicit loops over steps, neurons and samples:
    query noise with its neuron's query-signal sign, and query noise equal to its value
    at the previous recorded step."""
    qn, qs = result.history["query_noise"], result.history["query_signal"]
    T, m_k, n = qn.shape
    same, still = np.zeros(T), np.zeros(T - 1)
    for t in range(T):
        for s in range(m_k):
            for i in range(n):
                same[t] += np.sign(qn[t, s, i]) == np.sign(qs[t, s])
                if t:
                    still[t - 1] += qn[t, s, i] == qn[t - 1, s, i]
    return same / (m_k * n), still / (m_k * n)


def _panels(fig):
    return {ax.get_title()[1]: ax for ax in fig.axes}  # "(a) ..." -> "a"


def test_precision_figure_plots_the_shares_of_a_slow_loop(paper_figures, precision_runs):
    """Panels (a) and (b) draw, for each arithmetic in the order exact, float64, float32,
    exactly the shares the slow loop counts, at the recorded steps."""
    axes = _panels(paper_figures["precision"])
    assert [line.get_label() for line in axes["a"].lines] == ["exact", "float64",
                                                              "float32 (dense)"]
    for k, run in enumerate(precision_runs):
        same, still = _slow_shares(run)
        np.testing.assert_array_equal(axes["a"].lines[k].get_xdata(), run.steps)
        np.testing.assert_allclose(axes["a"].lines[k].get_ydata(), same, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(axes["b"].lines[k].get_xdata(), run.steps[1:])
        np.testing.assert_allclose(axes["b"].lines[k].get_ydata(), still, rtol=0, atol=1e-15)


def test_precision_figure_tells_when_each_arithmetic_froze(paper_figures, precision_runs):
    """Each trace panel names its arithmetic and the first step at which, by the slow loop,
    some query noise did not move (exact arithmetic: never); float32 has frozen by step
    250 of fig1 while exact arithmetic has not."""
    axes = _panels(paper_figures["precision"])
    for letter, run in zip("cde", precision_runs):
        title = axes[letter].get_title()
        _, still = _slow_shares(run)
        assert run.config.arithmetic in title
        if still.any():
            assert f"first at $t={int(run.steps[1:][still > 0][0])}$" in title
        else:
            assert "never frozen" in title
    assert "never frozen" in axes["c"].get_title() and "frozen: first" in axes["e"].get_title()


def test_precision_takes_one_run_per_arithmetic_of_one_configuration(precision_runs):
    """Two runs of one arithmetic, a missing one, or runs of different configurations are
    refused (a saved run may come in any order, but not from another experiment)."""
    exact, float64, float32 = precision_runs
    for runs in ([exact, float64], [exact, exact, float32], [exact, float64, float32] * 2):
        with pytest.raises(ValueError, match="one per arithmetic"):
            figures.build("precision", runs)
    other = signsim.run("fig1", arithmetic="float64", seed=1, n_test=30, steps=5)
    with pytest.raises(ValueError, match="one configuration"):
        figures.build("precision", [exact, other, float32])


def test_real_data_figure_draws_each_optimizers_median_over_seeds(paper_figures,
                                                                   real_data_runs, tmp_path):
    """Panel (a) is the median test accuracy (1 - test error) over seeds at each sigma_p,
    one line per optimizer; built from saved runs of the same Configs (``--from``) it is the
    same figure, bit for bit."""
    ax_a, ax_l = paper_figures["real-data"].axes
    assert ax_l.get_yscale() == "log" and "sigma_p" in ax_a.get_xlabel()
    assert len(ax_a.lines) == len(ax_l.lines) == 3
    for line, opt in zip(ax_a.lines, ("signgd", "adam", "gd")):
        np.testing.assert_array_equal(line.get_xdata(), [0.1, 0.8])
        acc = [[1 - r.history["test_error"][-1] for r in real_data_runs
                if r.config.optimizer == opt and r.config.sigma_p == s] for s in (0.1, 0.8)]
        np.testing.assert_allclose(line.get_ydata(), np.median(acc, axis=1), rtol=1e-12, atol=0)
    saved = [signsim.run(r.config, record="summary").save(tmp_path / f"r{k}")
             for k, r in enumerate(real_data_runs)]  # the runs as a user saves them
    loaded = [signsim.load(path) for path in saved]
    again = figures.build("real-data", loaded)
    for a, b in zip(again.axes[0].lines, ax_a.lines):
        np.testing.assert_array_equal(a.get_ydata(), b.get_ydata())
    plt.close(again)


def test_data_quality_lines_are_the_median_over_seeds():
    """Each data-quality line is, at each SNR, the median of the final test loss (panel a)
    and test error (panel b) over the seeds (three seeds: the median is not the mean)."""
    batch = _dq_batch("signgd", 1e-3, (0.5, 2.0), seeds=(0, 1, 2))
    fig = figures.build("data-quality", [batch])
    loss = np.asarray(batch.history["test_loss"])[:, -1].reshape(2, 3)
    error = np.asarray(batch.history["test_error"])[:, -1].reshape(2, 3)
    assert not np.allclose(np.median(loss, axis=1), loss.mean(axis=1))
    (line_l,), (line_e,) = fig.axes[0].lines, fig.axes[1].lines
    np.testing.assert_array_equal(line_l.get_ydata(), np.median(loss, axis=1))
    np.testing.assert_array_equal(line_e.get_ydata(), np.median(error, axis=1))
    plt.close(fig)
