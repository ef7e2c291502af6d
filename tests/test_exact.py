"""Exact arithmetic (E20, docs/model.md section 5): sign steps that no underflow decides.

What is checked, and why each check can fail:

- the sign and log-magnitude sums (``logspace``) against mpmath, on terms whose sizes span
  far more than the float64 range;
- the step of both kernels, deep in saturation (s21 and l' below the float64 range),
  against the sign of the gradient evaluated in mpmath (``tests/highprec.py``): SignGD
  moves each weight by exactly -lr sign(g), and 0 only where g is exactly 0;
- the fast kernel against the dense reference, deep into saturation, on disjoint and
  overlapping supports, for SignGD and for Adam in its log form;
- R1-R5 at every step of fig1 (``theory.exact_rule_predictions``), and float64 freezing
  where exact arithmetic does not, so that the two arithmetics are really different;
- Adam with beta1 = beta2 = eps = 0 taking SignGD's step at every coordinate of every step;
- GD's float64 step (declared ``float64_exact``) agreeing with the mpmath step to rounding.
"""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim import logspace, theory
from signsim.config import Config
from signsim.data import make_data
from signsim.kernels import make_kernel
from signsim.model import Params, log_loss
from signsim.simulate import run_batch
from signsim.tracker import select

from . import highprec
from .test_fast import assert_same_run

# saturated within 100-300 steps: s21 underflows to 0 in float64 by step ~60 and the
# margins pass 745 (l' underflows) by step ~250
FAST_SATURATION = dict(n=6, s=5, sigma_p=2.0, m_k=3, m_v=2, sigma_0=0.05, lr=0.2,
                       steps=300, n_test=30, test_every=50)
SHAPES = {"disjoint": dict(d=5000), "overlapping": dict(d=40)}


# ---------------------------------------------------------------- the arithmetic itself

terms = st.lists(st.tuples(st.sampled_from([-1.0, 0.0, 1.0]),
                           st.floats(-5000.0, 5000.0, allow_nan=False)), min_size=1,
                 max_size=12)


@settings(max_examples=200)
@given(terms)
def test_signed_sum_has_the_sign_and_size_of_the_real_sum(pairs):
    """Property: sum_j s_j e^{l_j}, with l_j far outside the float64 range, has the sign
    of the mpmath sum, and its log to float64 rounding: an error of at most a few units of
    2^-52 times sum_j |term_j| / |sum| (cancellation amplifies rounding) plus the rounding
    of the largest log. Sums that cancel to within 2^-40 of their terms are skipped: there
    rounding decides the sign in any float64 computation."""
    live = [(s, lg) for s, lg in pairs if s != 0]
    sign = np.array([s for s, _ in pairs])
    log = np.array([lg if s != 0 else -np.inf for s, lg in pairs])
    got_sign, got_log = logspace.signed_sum(sign, log)
    exact = mp.fsum(mp.mpf(s) * mp.exp(mp.mpf(lg)) for s, lg in live)
    size = mp.fsum(mp.exp(mp.mpf(lg)) for _, lg in live)
    if not live:
        assert got_sign == 0 and got_log == -np.inf
        return
    if abs(exact) < size * mp.mpf(2) ** -40:
        return
    assert got_sign == highprec.sign(exact)
    largest = max(abs(lg) for _, lg in live)
    bound = 4 * len(live) * 2.0**-52 * float(size / abs(exact)) + 4 * 2.0**-52 * largest
    assert abs(got_log - float(mp.log(abs(exact)))) <= bound


def test_grouped_sum_and_signed_add_agree_with_signed_sum():
    rng = np.random.default_rng(0)
    sign = rng.choice([-1.0, 1.0], size=(7, 3))
    log = rng.uniform(-3000, 3000, size=(7, 3))
    starts = np.array([0, 2, 3])
    s, lg = logspace.grouped_sum(sign, log, starts)
    for g, (a, b) in enumerate(zip(starts, [2, 3, 7])):
        es, el = logspace.signed_sum(sign[a:b], log[a:b], axis=0)
        assert_array_equal(s[g], es)
        assert_allclose(lg[g], el, rtol=1e-15)
    s2, l2 = logspace.signed_add(sign[0], log[0], sign[1], log[1])
    es, el = logspace.signed_sum(sign[:2], log[:2], axis=0)
    assert_array_equal(s2, es)
    assert_allclose(l2, el, rtol=1e-15)


def test_log_loss_is_finite_where_the_loss_underflows():
    """log l(z) against mpmath for margins up to 10^6 (l(z) underflows past ~745)."""
    z = np.array([-30.0, 0.0, 1.0, 29.9, 30.1, 700.0, 745.5, 1e4, 1e6])
    exact = [float(mp.log(mp.log1p(mp.exp(-mp.mpf(x))))) for x in z]
    assert_allclose(log_loss(z), exact, rtol=1e-14)


# ---------------------------------------------------------------- both kernels, saturated


def saturated(shape: str, optimizer: str = "signgd", **changes) -> Config:
    extra = dict(beta1=0.9, beta2=0.999, eps=0.0, lr=0.5) if optimizer == "adam" else {}
    return Config(optimizer=optimizer, **{**FAST_SATURATION, **SHAPES[shape], **extra,
                                          **changes})


@pytest.mark.parametrize("optimizer", ["signgd", "adam"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_fast_equals_dense_deep_into_saturation(shape, optimizer):
    """The two kernels agree at the tolerance of tests/test_fast.py on runs where the
    float64 factors s21 s22 (and for SignGD l') underflow to 0, so that only exact
    arithmetic keeps the steps; a flipped sign would show as a difference of lr."""
    config = saturated(shape, optimizer)
    dense = signsim.run(config, kernel="dense")
    assert_same_run(dense, signsim.run(config))
    assert (dense.history["attention"][:, :, 1, 0] == 0.0).any()  # s21 underflowed
    if optimizer == "signgd":
        assert dense.history["margin"][-1].min() > 745  # l' underflowed as well


def _state_after(config: Config, steps: int):
    kernel = make_kernel([config], ("margin",))
    with np.errstate(**kernel.errstate):
        state = kernel.init()
        for _ in range(steps):
            state = kernel.step(state)
        after = kernel.step(state)
    return kernel, state, after


def _dense_weights(kernel, state):
    if hasattr(kernel, "_weights"):  # the fast kernel: weights on U, densified (replica 0)
        return Params(*(w[0] for w in kernel._weights(state).to_dense()))
    return state.params


@pytest.mark.parametrize("kernel", ["dense", "fast"])
def test_a_saturated_signgd_step_moves_every_weight_by_minus_lr_times_the_real_sign(kernel):
    """Against mpmath: at a state where s21 and l' are below the float64 range, every
    weight moves by exactly -lr sign(dL/dw) (0 only where the gradient is exactly 0, off
    the training patches), the gradient evaluated at 60 digits from the same weights."""
    config = Config(n=3, d=14, s=3, sigma_p=2.0, m_k=2, m_v=2, sigma_0=0.05, lr=0.25,
                    n_test=5, kernel=kernel, seed=3)
    k, state, after = _state_after(config, 260)
    W, W1 = _dense_weights(k, state), _dense_weights(k, after)
    train = make_data(config)[0]
    gQ, gK, gV = highprec.gradients(*W, train.X, train.y)
    expect = [np.array([[highprec.sign(g) for g in row] for row in gQ]),
              np.array([[highprec.sign(g) for g in row] for row in gK]),
              np.array([highprec.sign(g) for g in gV])]
    assert_allclose(W1.W_Q - W.W_Q, -config.lr * expect[0], rtol=0, atol=1e-12)
    assert_allclose(W1.W_K - W.W_K, -config.lr * expect[1], rtol=0, atol=1e-12)
    for j, head in ((0, 1.0), (1, -1.0)):
        assert_allclose(W1.W_V[j] - W.W_V[j], -config.lr * head * expect[2][None].repeat(2, 0),
                        rtol=0, atol=1e-12)
    tiny = [abs(g) for row in gQ + gK for g in row if g != 0] + [abs(g) for g in gV if g != 0]
    assert min(tiny) < mp.mpf(10) ** -308  # some real gradients are below float64's range


def test_gd_float64_steps_are_the_exact_steps_to_rounding():
    """GD declares float64_exact: at a saturated state, W - lr g in float64 equals the
    mpmath W - lr g rounded to float64, to one unit in the last place, everywhere."""
    config = Config(n=3, d=14, s=3, sigma_p=2.0, m_k=2, m_v=2, sigma_0=0.05, lr=50.0,
                    n_test=5, kernel="dense", optimizer="gd", seed=3)
    k, state, after = _state_after(config, 60)
    gQ, gK, gV = highprec.gradients(*state.params, k.train.X, k.train.y)
    for W, W1, g in ((state.params.W_Q, after.params.W_Q, gQ),
                     (state.params.W_K, after.params.W_K, gK),
                     (state.params.W_V[0, 0], after.params.W_V[0, 0], [gV])):
        W, W1 = np.atleast_2d(W), np.atleast_2d(W1)
        exact = np.array([[float(mp.mpf(float(w)) - config.lr * gi) for w, gi in zip(wr, gr)]
                          for wr, gr in zip(W, g)])
        assert np.all(np.abs(W1 - exact) <= np.spacing(np.abs(exact)))


# ---------------------------------------------------------------- the rules, every step


def test_rules_hold_at_every_step_of_fig1_in_exact_arithmetic():
    """R1-R5 with signs from log_attention and the margins: on fig1 (900 steps) every entry
    of the 13 samples whose supports are their own, at every step, agrees to 1e-12; the
    checks are not vacuous (every such entry is checked)."""
    r = signsim.run("fig1", n_test=20)
    own = theory.exclusive_samples(r.dataset).sum()
    checked = {}
    for row in range(r.config.steps):
        for name, p in theory.exact_rule_predictions(r.history, row, r.dataset,
                                                     r.config).items():
            actual = r.history[name][row + 1]
            assert_allclose(np.where(p.exact, p.value, actual), actual, rtol=0,
                            atol=1e-12 * (1 + np.abs(actual).max()), err_msg=f"{name} {row}")
            checked[name] = checked.get(name, 0) + int(np.sum(p.exact))
    steps = r.config.steps
    assert checked["query_noise"] == checked["key_noise"] == 10 * own * steps
    assert checked["mean_value_noise"] == own * steps
    assert checked["query_signal"] == checked["key_signal"] == 10 * steps


def test_float64_freezes_the_query_noise_where_exact_arithmetic_moves_it():
    """On fig1, float64 arithmetic stops every query-noise entry by step 900 (s21 s22
    underflows, sign(0) = 0) and breaks R2; exact arithmetic moves every entry at every
    step. Margins: exact keeps growing, float64 pins them once l' underflows."""
    exact = signsim.run("fig1", record=["query_noise"])
    plain = signsim.run("fig1", arithmetic="float64", record=["query_noise"])
    assert np.all(np.diff(exact.history["query_noise"], axis=0) != 0)
    assert np.all(np.diff(plain.history["query_noise"], axis=0)[-1] == 0)
    long = dict(steps=9000, lr=1e-3, record=["margin", "log_train_loss"])
    e, f = signsim.run("fig1", **long), signsim.run("fig1", arithmetic="float64", **long)
    assert f.history["margin"][-1].min() < 746 < e.history["margin"][-1].min()
    assert np.all(np.diff(e.history["log_train_loss"][-100:]) < 0)  # still falling
    assert_allclose(e.history["log_train_loss"][-1], -e.history["margin"][-1].min(), rtol=0.01)


@pytest.mark.parametrize("kernel", ["fast", "dense"])
def test_adam_with_zero_betas_and_eps_is_signgd_at_every_step_in_exact_arithmetic(kernel):
    """E21 with beta1 = beta2 = eps = 0 is SignGD: in exact arithmetic whole runs deep into
    saturation are bit-identical (fast kernel: both in the per-coordinate layout); in
    float64 Adam's g^2 underflows first and the runs part."""
    if kernel == "fast":
        config = signsim.preset("fig1", n_test=50)  # 900 steps: s21 < 1e-308 from ~470
        sign = run_batch([config], select(None), single=True, layout="coordinate")
    else:
        config = saturated("overlapping", kernel="dense")
        sign = signsim.run(config)
    adam = signsim.run(config.replace(optimizer="adam", beta1=0.0, beta2=0.0, eps=0.0))
    for name in sign.history:
        assert_array_equal(sign.history[name], adam.history[name], err_msg=name)


def test_a_config_saved_before_arithmetic_existed_loads_as_float64():
    data = Config().to_dict()
    del data["arithmetic"]
    assert Config.from_dict(data).arithmetic == "float64"
    assert Config().arithmetic == "exact"


def test_a_zero_signal_takes_the_full_log_form_and_still_agrees_with_the_dense_kernel():
    """mu_norm = 0 makes q_s = 0 exactly, the one case where the fast kernel's scaled form
    cannot vouch for a sign (a W_K coefficient is then g2 <w_Q, y xi> alone, with g2 far
    below g1): it must fall back to the full log form and agree with the dense reference
    while s21 is below the float64 range."""
    config = saturated("disjoint", mu_norm=0.0)
    dense = signsim.run(config, kernel="dense")
    assert (dense.history["attention"][:, :, 1, 0] == 0.0).any()
    assert_same_run(dense, signsim.run(config))


@pytest.mark.parametrize("eps", [0.0, 1e-120])
def test_adams_log_form_is_its_float64_form_before_anything_underflows(eps):
    """The log form of Adam (exact arithmetic, eps below ADAM_FLOAT64_EPS) computes E21's
    numbers: on a run too short to leave the float64 range it agrees with the plain form
    to rounding (the relative tolerance of tests/test_fast.py)."""
    config = Config(optimizer="adam", eps=eps, beta1=0.9, beta2=0.99,
                    **{**FAST_SATURATION, **SHAPES["overlapping"], "steps": 40, "lr": 1e-2})
    exact = signsim.run(config)
    assert not signsim.optim.adam(1.0, 0.9, 0.99, eps).float64_exact  # the log form ran
    assert_same_run(exact, signsim.run(config.replace(arithmetic="float64")))
