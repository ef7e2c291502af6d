"""The fast kernel's moment layout (signsim.kernels.fast.moments): Adam-like rules with their
moments per (sample, row), against the dense reference and the per-coordinate layout, replica
independence, and the choice of the layout by declaration (``Optimizer.moments``).

Tolerances are those of tests/test_fast.py (rtol 1e-9, atol 1e-12: rounding only).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import signsim
from signsim import optim
from signsim.data import make_data
from signsim.kernels import make_kernel
from signsim.simulate import run_batch
from signsim.tracker import select

from .test_fast import DISJOINT, OVERLAP, assert_bit_identical, assert_same_run

MOMENT_RULES = ("adam", "rmsprop")
# fig1's shape at d = 600: 900 steps, and n s = 400 slots in 600 coordinates share many
FIG1_SMALL_D = dict(optimizer="adam", d=600, n_test=50)


@pytest.fixture
def undeclared_adam():
    """Adam with its ``moments`` declaration removed, registered for one test."""
    optim.register("adam_undeclared", lambda c: optim.adam(c.lr, c.beta1, c.beta2, c.eps)
                   ._replace(moments=None))
    yield "adam_undeclared"
    optim.unregister("adam_undeclared")


def _layout_of(config) -> str:
    return type(make_kernel([config], select(None)).layout).__name__


def _n_shared(config) -> int:
    train, _ = make_data(config)
    return train.noise_index.size - np.unique(train.noise_index).size


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(MOMENT_RULES), st.integers(1, 8), st.integers(0, 2 ** 31 - 1),
       st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.9, 0.999]),
       st.sampled_from([1e-8, 1e-3, 1.0]))
def test_declared_scales_give_the_rules_own_update_at_a_factorised_coordinate(
        name, steps, seed, beta1, beta2, eps):
    """Property (the declaration, against the rule): for a gradient history C_t x (x fixed,
    per coordinate), the rule's own update equals x A / (|x| B + eps) with (A, B) the declared
    scales of the moments M, V of C_t, to rounding, at every step."""
    c = signsim.Config(optimizer=name, lr=0.3, beta1=beta1, beta2=beta2, rmsprop_alpha=beta2,
                       eps=eps)
    opt = optim.from_config(c)
    rule = opt.moments
    rng = np.random.default_rng(seed)
    x = rng.normal(size=7) * 10.0 ** rng.integers(-3, 3, size=7)
    state, M, V = opt.init(x), 0.0, 0.0
    for t in range(1, steps + 1):
        C = rng.normal() * 10.0 ** rng.integers(-4, 2)
        upd, state = opt.update(C * x, state)
        M = rule.beta1 * M + (1 - rule.beta1) * C
        V = rule.beta2 * V + (1 - rule.beta2) * C * C
        A, B = rule.scales(np.array(M), np.array(V), t)
        assert_allclose(upd, x * A / (np.abs(x) * B + rule.eps), rtol=1e-12, atol=0)


@pytest.mark.parametrize("optimizer", MOMENT_RULES)
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_moment_layout_equals_dense(optimizer, shape, weight_decay):
    """Property: Adam and RMSProp run on the moment layout (chosen by their declaration)
    and agree with the dense reference, shared coordinates and weight decay (E22b) too."""
    config = signsim.Config(optimizer=optimizer, lr=1e-2, weight_decay=weight_decay,
                            steps=60, **{k: v for k, v in shape.items() if k != "steps"})
    assert _layout_of(config) == "MomentLayout"
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config))


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_fig1_shape_with_shared_coordinates_equals_dense_over_900_steps(weight_decay):
    """Property: on fig1's shape at d = 600 (many shared coordinates), 900 Adam steps
    through Stage IV agree with the dense reference, with and without weight decay."""
    fast = signsim.run("fig1", **FIG1_SMALL_D, weight_decay=weight_decay)
    config = fast.config
    assert config.steps == 900 and _n_shared(config) > 50
    assert _layout_of(config) == "MomentLayout"
    assert_same_run(signsim.run(config, kernel="dense"), fast)


def test_fig1_adam_equals_the_per_coordinate_layout_over_900_steps():
    """Property: fig1 with Adam (900 steps, d = 10^4) on the moment layout gives the run of
    the per-coordinate layout (itself checked against the dense reference in
    tests/test_fast.py), every recorded quantity and the final weights."""
    config = signsim.run("fig1", optimizer="adam", steps=0).config.replace(n_test=200)
    a = run_batch([config], select(None), single=True)
    b = run_batch([config], select(None), single=True, layout="coordinate")
    assert_same_run(a, b)


@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_a_replica_is_bit_identical_to_its_run_alone(shape, weight_decay):
    """Property: replicas of one Adam batch on the moment layout that differ in lr, sigma_p
    and seed are each bit-identical to their run alone (weights, history, test metrics)."""
    config = signsim.Config(optimizer="adam", lr=1e-2, weight_decay=weight_decay, **shape)
    seeds, lrs, sigmas = [4, 4, 9, 1], [1e-2, 3e-3, 2e-2, 1e-2], [2.0, 0.7, 5.0, 2.0]
    batch = signsim.run(config, seeds=seeds, vary={"lr": lrs, "sigma_p": sigmas})
    assert _layout_of(batch.configs[0]) == "MomentLayout"
    for r, (seed, lr, sp) in enumerate(zip(seeds, lrs, sigmas)):
        assert_bit_identical(batch.replica(r), signsim.run(config, seed=seed, lr=lr,
                                                           sigma_p=sp))


def test_the_layout_is_chosen_by_declaration(undeclared_adam):
    """A rule that declares moments runs on the moment layout; Adam with its declaration
    removed (registered under another name) takes the per-coordinate layout; so does Adam
    in exact arithmetic with an eps that needs its log form; forcing 'moments' on a rule
    without the declaration is refused naming the parameter."""
    assert _layout_of(signsim.Config(optimizer="adam", **OVERLAP)) == "MomentLayout"
    assert _layout_of(signsim.Config(optimizer="rmsprop", **OVERLAP)) == "MomentLayout"
    assert _layout_of(signsim.Config(optimizer="adam_undeclared", **OVERLAP)) \
        == "CoordinateLayout"
    assert _layout_of(signsim.Config(optimizer="adam", eps=1e-200, **OVERLAP)) \
        == "CoordinateLayout"
    assert _layout_of(signsim.Config(optimizer="signgd", **OVERLAP)) == "SampleLayout"
    with pytest.raises(ValueError, match="'layout'"):
        run_batch([signsim.Config(optimizer="adam_undeclared", **OVERLAP)], select(None),
                  layout="moments")


def test_an_undeclared_copy_of_adam_gives_the_same_run(undeclared_adam):
    """Property: Adam without its declaration (per-coordinate layout) and Adam (moment
    layout) give the same run, in a batch varying lr, to rounding."""
    vary = {"lr": [1e-2, 5e-3]}
    a = signsim.run(signsim.Config(optimizer="adam", **OVERLAP), seeds=[2, 3], vary=vary)
    b = signsim.run(signsim.Config(optimizer="adam_undeclared", **OVERLAP), seeds=[2, 3],
                    vary=vary)
    for r in range(2):
        assert_same_run(a.replica(r), b.replica(r))
