"""Figures build on small runs with the Agg backend: panels, labels, stage shading."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

import signsim  # noqa: E402
from signsim import figures, plotting, stages  # noqa: E402

SMALL = dict(n_test=30, steps=400)  # fig1 data, enough steps for all four stages


@pytest.fixture(scope="module")
def fig1_run():
    return signsim.run("fig1", **SMALL)


def _shaded_spans(ax):
    return [p for p in ax.patches if isinstance(p, (Polygon, Rectangle))]


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
        assert {"I", "II", "III", "IV", "T1", "T2", "T3", "T4"} <= texts
    # panel (b) draws R1's theory line next to each sample's curve
    assert len(axes[1].lines) >= 2 * fig1_run.config.n
    plt.close(fig)


def test_optimizer_figure_has_both_optimizers_and_a_log_loss(fig1_run):
    adam = signsim.run("fig2", **SMALL)
    fig = plotting.optimizer_figure(fig1_run, adam)
    ax_s, ax_a, ax_l = fig.axes
    assert "SignGD" in ax_s.get_title() and "Adam" in ax_a.get_title()
    assert ax_l.get_yscale() == "log"
    labels = [t.get_text() for t in ax_l.get_legend().get_texts()]
    assert labels == ["SignGD train", "SignGD test", "Adam train", "Adam test"]
    plt.close(fig)


def test_data_quality_figure_from_batched_runs():
    results = [signsim.run("data_quality", optimizer=opt, lr=lr, sigma_p=1 / (snr * np.sqrt(20)),
                           steps=30, n_test=20, seeds=[0, 1], record_every=30, test_every=30)
               for opt, lr in (("signgd", 1e-3), ("gd", 1.0)) for snr in (0.5, 2.0)]
    fig = figures.build("data-quality", results)
    ax = fig.axes[0]
    assert "SNR" in ax.get_xlabel() and "test loss" in ax.get_ylabel()
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # a line and a band per optimizer
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0.5, 2.0])
    plt.close(fig)


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
