"""arithmetic="float32" (the dense reference only): the plain formulas evaluated in float32,
for the precision figure (docs/figures.md), and its refusals.

What is checked, and why each check can fail:

- a float32 run is a normal Result (float64 arrays holding float32 values) that saves and
  loads, and its weights are float32 numbers: a float64 step anywhere would leave weights
  that float32 cannot hold;
- each SignGD step moves a weight from W to one of W, fl32(W - lr32), fl32(W + lr32)
  (lr32 = float32(lr), fl32 the float32 sum): the step of E20 taken in float32, and in the
  direction -sign of the gradient wherever that gradient, evaluated in float64 at the same
  weights, is far above float32 rounding (so the float32 gradient is E16-E19, not noise);
- float32 freezes: on a configuration that saturates, query-noise entries stop moving in
  float32 while every one keeps moving in exact arithmetic;
- the fast kernel refuses float32 (Config validates the pair), naming 'arithmetic' and
  'kernel', and the dense kernel refuses an optimizer whose step leaves float32.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import signsim
from signsim import optim
from signsim.config import Config
from signsim.grads import gradients
from signsim.kernels import make_kernel
from signsim.model import Params

# saturates within a few hundred steps (as tests/test_exact.py's FAST_SATURATION), dense
SMALL = dict(n=6, d=400, s=5, sigma_p=2.0, m_k=3, m_v=2, sigma_0=0.05, lr=0.2, n_test=30,
             test_every=50, kernel="dense")


def _steps(config: Config, steps: int):
    """The dense kernel's states 0..steps (weights and the kernel)."""
    kernel = make_kernel([config], ("margin",))
    with np.errstate(**kernel.errstate):
        states = [kernel.init()]
        for _ in range(steps):
            states.append(kernel.step(states[-1]))
    return kernel, states


def test_a_float32_run_is_a_normal_result_of_float32_values(tmp_path):
    """The Result holds float64 arrays (history, weights) whose values are float32 numbers,
    and survives save/load bit for bit."""
    result = signsim.run(Config(arithmetic="float32", steps=40, **SMALL))
    assert result.config.arithmetic == "float32"
    for w in result.params:
        assert w.dtype == np.float64
        assert_array_equal(w.astype(np.float32).astype(np.float64), w)  # float32 values
    for name in ("query_noise", "attention", "margin", "train_loss", "test_loss"):
        assert np.asarray(result.history[name]).dtype == np.float64
    again = signsim.load(result.save(tmp_path / "f32.npz"))
    for name in result.history:
        assert_array_equal(again.history[name], result.history[name])


@pytest.mark.parametrize("optimizer", ["signgd", "adam", "gd"])
def test_the_built_in_rules_keep_float32(optimizer):
    """Weights and optimizer state stay float32 through the steps of every built-in rule
    (their updates from float32 gradients are float32)."""
    kernel, states = _steps(Config(arithmetic="float32", optimizer=optimizer, **SMALL), 3)
    for state in states:
        assert all(w.dtype == np.float32 for w in state.params)
        arrays = [x for x in state.opt_state if isinstance(x, Params)]
        assert all(w.dtype == np.float32 for tree in arrays for w in tree)


def test_a_float32_signgd_step_moves_by_exactly_0_or_lr_in_float32():
    """Every weight goes from W to W, fl32(W - lr32) or fl32(W + lr32); it stays exactly
    where the float64 gradient at the same weights is 0 (off the training patches), and
    moves against its sign wherever |g| > 1e-4 max|g| of its block (a thousand times
    float32's relative rounding of 6e-8), over the first steps of an unsaturated run."""
    config = Config(arithmetic="float32", **{**SMALL, "lr": 1e-3})
    kernel, states = _steps(config, 6)
    lr32 = np.float32(config.lr)
    X64, y64 = kernel.train.X, kernel.train.y
    for before, after in zip(states, states[1:]):
        grads, _ = gradients(Params(*(w.astype(np.float64) for w in before.params)), X64, y64)
        for W0, W1, g in zip(before.params, after.params, grads):
            down, up = W0 - lr32, W0 + lr32  # float32 sums
            assert down.dtype == np.float32 and W1.dtype == np.float32
            step = np.where(W1 == down, -1, np.where(W1 == up, 1, 0))
            assert np.all((W1 == W0) | (step != 0))
            assert_array_equal(step[g == 0], 0)
            clear = np.abs(g) > 1e-4 * np.abs(g).max()
            assert clear.sum() >= 0.9 * (g != 0).sum()  # the check is not vacuous
            assert_array_equal(step[clear], -np.sign(g[clear]))


def test_float32_freezes_the_query_noise_where_exact_arithmetic_does_not():
    """On a run that saturates, float32 query-noise entries stop moving (s21 s22 rounds
    to 0, R2) long before the end; in exact arithmetic every entry moves at every step."""
    moved = {}
    for arithmetic in ("float32", "exact"):
        r = signsim.run(Config(arithmetic=arithmetic, steps=300, **SMALL),
                        record=["query_noise"])
        qn = r.history["query_noise"]
        moved[arithmetic] = qn[1:] != qn[:-1]  # (steps, m_k, n)
    assert moved["exact"].all()
    assert not moved["float32"][-50:].any()


@pytest.mark.parametrize("make", [
    lambda: Config(arithmetic="float32"),
    lambda: Config(arithmetic="float32", kernel="dense").replace(kernel="fast"),
    lambda: signsim.run("fig1", arithmetic="float32", steps=2),
])
def test_the_fast_kernel_refuses_float32_naming_both_parameters(make):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    for text in ("'arithmetic'", "'float32'", "kernel='dense'", "kernel='fast'",
                 "['exact', 'float64']"):
        assert text in message, message


@pytest.fixture
def upcasting():
    """A sign rule that returns float64 updates whatever its gradients' dtype."""

    def update(grads, state):
        return Params(*(-np.sign(g).astype(np.float64) for g in grads)), state

    optim.register("float64_sign_test", lambda c: optim.Optimizer(
        lambda p: optim.SignGDState(0), update, float64_exact=True))
    yield "float64_sign_test"
    optim.unregister("float64_sign_test")


def test_float32_refuses_an_optimizer_whose_step_leaves_float32(upcasting):
    """Its float64 updates would make the run float64: refused at the first step, naming
    the optimizer and the arithmetic; the same rule runs in float64."""
    config = Config(arithmetic="float32", optimizer=upcasting, steps=3, **SMALL)
    with pytest.raises(ValueError, match=r"'float64_sign_test' returned float64 .*"
                                         r"arithmetic='float32' cannot be honoured"):
        signsim.run(config)
    signsim.run(config.replace(arithmetic="float64"))
