"""``signsim.compare``: trajectory distances, update-sign agreement, stage boundaries and
Stage IV flips of runs on the same data and init (signsim/compare.py's docstring).

Expected values come from definitions, not from the code: identical runs are at distance 0
and agree everywhere; at step 0 every optimizer of the family starts from the same state,
so SignGD's, GD's and Adam's first updates share the sign of the gradient at every
coordinate (E20-E22); a run that reaches T4 has flipped all its negative noise (T4's
definition); and the distances and agreement of two different runs equal slow loops over
steps and entries.
"""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim import grads
from signsim.compare import SIGN_QUANTITIES

SMALL = {"n_test": 30, "steps": 400}  # fig1 data; SignGD reaches T4 (361)


@pytest.fixture(scope="module")
def signgd():
    return signsim.run("fig1", **SMALL)


@pytest.fixture(scope="module")
def adam():
    return signsim.run("fig2", **SMALL)


@pytest.fixture(scope="module")
def gd():
    return signsim.run("fig1", optimizer="gd", lr=0.01, **SMALL)


def test_identical_runs_are_at_distance_zero_and_agree_everywhere(signgd):
    """Two runs of one Config (bit-identical, not the same object): every distance is 0,
    every update sign agrees, the boundaries coincide and every flip is shared."""
    again = signsim.run("fig1", **SMALL)
    c = signsim.compare(signgd, again)
    assert set(c.distance) == set(signgd.history)
    for name in c.distance:
        assert_array_equal(c.distance[name], 0.0)
        assert_array_equal(c.relative[name], 0.0)
        assert_array_equal(c.trajectory_distance(name), 0.0)
    assert_array_equal(c.agreement, 1.0)
    for gap in c.boundary_gaps().values():
        assert_array_equal(gap, 0.0)
    assert c.reports[0].T4 is not None
    assert c.flip_from == c.reports[0].T3
    assert_array_equal(c.flip_share(), 1.0)  # T4 reached: every negative noise flipped
    assert_array_equal(c.flip_agreement(), 1.0)
    assert c.negative.sum() > 0  # the flips are not vacuous


def test_first_updates_share_the_gradients_signs():
    """At step 0 the three runs stand at one state, and sign(-lr sign(g)) = sign(-lr g) =
    sign(-lr m_hat / (sqrt(v_hat) + eps)) with m_hat = g, v_hat = g^2 at t = 1: on
    disjoint supports (d = 10^8) the agreement of the first move is 1, the records' moves
    standing for the coordinates' (compare's docstring); later moves part."""
    runs = [signsim.run("fig1", d=10**8, n_test=30, steps=40, **kw)
            for kw in ({}, dict(optimizer="adam"), dict(optimizer="gd", lr=0.01))]
    index = runs[0].dataset.noise_index
    assert len(np.unique(index)) == index.size  # disjoint
    c = signsim.compare(*runs)
    assert_array_equal(c.agreement[..., 0], 1.0)
    assert (c.agreement[0, 1, 1:] < 1).any() and (c.agreement[0, 2, 1:] < 1).any()


def test_the_first_distance_is_the_difference_of_the_first_steps(signgd, gd):
    """query_signal_s moves by -lr mu_norm sign(g_s) under SignGD (E20) and by
    -lr' mu_norm g_s under GD (E22), g_s the gradient at coordinate 1 of w_{Q,s} at the
    common init: the distance at step 1 is mu_norm ||lr sign(g) - lr' g||."""
    data = signgd.dataset
    fw = signsim.model.forward(signgd.init_params, data.X)
    g = grads.grad_W_Q(fw, grads.logit_grad(fw, data.y), data.X)[:, 0]
    want = data.mu_norm * np.linalg.norm(signgd.config.lr * np.sign(g) - gd.config.lr * g)
    c = signsim.compare(signgd, gd)
    assert_allclose(c.distance["query_signal"][0, 1, 1], want, rtol=1e-9)
    assert c.distance["query_signal"][1, 0, 1] == c.distance["query_signal"][0, 1, 1]


def _slow_relative(a, b):
    """max over steps is not needed: per step ||a - b|| / max(||a - a0||, ||b - b0||)."""
    out = []
    for t in range(len(a)):
        diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(a[t].ravel(), b[t].ravel())))
        da = math.sqrt(sum((x - y) ** 2 for x, y in zip(a[t].ravel(), a[0].ravel())))
        db = math.sqrt(sum((x - y) ** 2 for x, y in zip(b[t].ravel(), b[0].ravel())))
        out.append(0.0 if max(da, db) == 0 else diff / max(da, db))
    return np.array(out)


def test_distances_and_agreement_of_two_runs_match_slow_loops(signgd, adam):
    """SignGD against Adam: the relative distance per step, the whole-trajectory ratio and
    the weighted update-sign agreement (each (s, i) entry weighs s, coordinate 1 weighs
    1) against loops over steps and entries."""
    c = signsim.compare(signgd, adam)
    a, b = signgd.history["query_noise"], adam.history["query_noise"]
    assert_allclose(c.relative["query_noise"][0, 1], _slow_relative(a, b), rtol=1e-12)
    total = math.sqrt(((a - b) ** 2).sum())
    moved = max(math.sqrt(((x - x[0]) ** 2).sum()) for x in (a, b))
    assert_allclose(c.trajectory_distance("query_noise")[0, 1], total / moved, rtol=1e-12)
    s = signgd.config.s
    for t in (0, 50, 200, 399):
        agree = weight = 0.0
        for name, per in SIGN_QUANTITIES.items():
            da = np.sign(signgd.history[name][t + 1] - signgd.history[name][t]).ravel()
            db = np.sign(adam.history[name][t + 1] - adam.history[name][t]).ravel()
            w = s if per == "s" else 1
            agree += w * sum(x == y for x, y in zip(da, db))
            weight += w * len(da)
        assert c.agreement[0, 1, t] == pytest.approx(agree / weight, rel=1e-12)
    assert 0.5 < c.mean_agreement()[0, 1] < 1.0  # Adam is close to a sign method, not one


def test_mean_agreement_over_a_range_of_steps(signgd, adam):
    """The mean over the moves from steps in [start, stop) only."""
    c = signsim.compare(signgd, adam)
    assert c.mean_agreement(stop=100)[0, 1] == pytest.approx(c.agreement[0, 1, :100].mean())
    assert c.mean_agreement(start=100)[0, 1] == pytest.approx(c.agreement[0, 1, 100:].mean())
    assert np.isnan(c.mean_agreement(start=10_000)).all()


def test_flips_are_counted_from_the_negative_noise_at_flip_from(signgd, adam):
    """negative: query/key noise opposing its neuron's query signal at flip_from; flipped:
    those sharing it at the last step; shares and agreement as counted by hand."""
    c = signsim.compare(signgd, adam, flip_from=150)
    for k, r in enumerate((signgd, adam)):
        h = r.history
        qs0, qsT = np.sign(h["query_signal"][150]), np.sign(h["query_signal"][-1])
        for j, name in enumerate(("query_noise", "key_noise")):
            neg = np.sign(h[name][150]) != qs0[:, None]
            assert_array_equal(c.negative[k, j], neg)
            assert_array_equal(c.flipped[k, j], neg & (np.sign(h[name][-1]) == qsT[:, None]))
    both = c.negative[0] & c.negative[1]
    same = both & (c.flipped[0] == c.flipped[1])
    assert c.flip_agreement()[0, 1] == pytest.approx(same.sum() / both.sum())
    shares = c.flip_share()
    assert shares[0] == 1.0 and shares[1] < 1.0  # Adam's negative noise does not all flip


def test_stage_gaps_and_the_table(signgd, adam):
    c = signsim.compare(signgd, adam)
    gaps = c.boundary_gaps()
    T = [signsim.stages.detect(r).as_dict() for r in (signgd, adam)]
    for name, gap in gaps.items():
        if T[1][name] is None:
            assert np.isnan(gap[0, 1])
        else:
            assert gap[0, 1] == T[1][name] - T[0][name]
    text = c.table()
    assert text.splitlines()[1].startswith("signgd") and "adam" in text.splitlines()[2]


def test_refuses_runs_on_other_data_or_init_or_steps(signgd):
    short = dict(n_test=30, steps=20)
    base = signsim.run("fig1", **short)
    for other, match in ((signsim.run("fig1", seed=1, **short), "training data"),
                         (signsim.run("fig1", sigma_0=0.01, **short), "init"),
                         (signsim.run("fig1", n_test=31, steps=20), "test data"),
                         (signsim.run("fig1", record_every=2, **short), "steps")):
        with pytest.raises(ValueError, match=match):
            signsim.compare(base, other)
    with pytest.raises(ValueError, match="replica"):
        signsim.compare(base, signsim.run("fig1", seeds=[0, 1], **short))
    with pytest.raises(ValueError, match="two or more"):
        signsim.compare(base)
    with pytest.raises(ValueError, match="flip_from"):
        signsim.compare(base, base, flip_from=7.5)


def test_runs_of_both_kernels_compare_and_differ_by_rounding_only():
    """The dense reference and the fast kernel start from the same init (counter-based
    E13): compare() accepts them, and they agree to rounding."""
    config = signsim.Config(n=4, d=300, s=6, sigma_p=2.0, m_k=3, m_v=3, sigma_0=0.05,
                            lr=1e-2, steps=30, n_test=20)
    c = signsim.compare(signsim.run(config), signsim.run(config, kernel="dense"))
    assert max(c.trajectory_distance(n)[0, 1] for n in c.trajectories) < 1e-9
    assert_array_equal(c.agreement, 1.0)
