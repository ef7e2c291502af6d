"""The optimizers between SignGD and Adam, and decoupled weight decay (docs/optimizers.md):
Signum (E20a), Lion (E20b), RMSProp (E21a), normalized GD (E22a), weight decay (E22b).

What is checked, and why each check can fail:

- each rule against a slow scalar loop of its formula written from its paper or PyTorch's
  documentation (normalized GD against mpmath), and its log form against its float64 form;
- the limits, at every step of whole runs: Signum with momentum 0 and Lion with beta1 = 0
  are SignGD bit for bit, Adam with beta1 = 0 and a huge eps is GD at lr / eps to rounding
  (Adam(0, 0, 0) = SignGD is in tests/test_exact.py);
- the fast kernel against the dense reference deep into saturation (exact arithmetic) with
  weight decay, for each entrywise rule, in both layouts, and replicas of a batch;
- exact arithmetic: a saturated run where float64 Signum and Lion freeze (their buffers
  underflow) while exact arithmetic keeps every entry moving;
- weight decay: every weight, on U and off it, scaled by 1 - lr wd before the update, and
  the refusals (lr wd >= 1, a rule that does not declare decoupled decay).
"""

import json
import math
import zipfile

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim import optim
from signsim.config import OPTIMIZER_FIELDS, Config
from signsim.logspace import split
from signsim.model import Params
from signsim.simulate import run_batch
from signsim.tracker import select

from .test_exact import FAST_SATURATION, SHAPES
from .test_fast import assert_bit_identical, assert_same_run

floats = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
histories = st.lists(st.lists(floats, min_size=3, max_size=3), min_size=1, max_size=8)


def run_rule(opt, w0, grads, log=False):
    """W after the gradient rows ``grads`` under ``opt`` (its log form if ``log``)."""
    form = opt.log_form if log else opt
    state, w = form.init(w0), w0
    for g in grads:
        g = g if isinstance(g, Params) else np.asarray(g, float)
        if log:
            parts = ([split(x) for x in g] if isinstance(g, Params) else [split(g)])
            signs, logs = (Params(*(p[0] for p in parts)), Params(*(p[1] for p in parts))) \
                if isinstance(g, Params) else parts[0]
            upd, state = form.update(signs, logs, state)
        else:
            upd, state = form.update(g, state)
        w = optim.apply_updates(w, upd)
    return w


def _sign(x: float) -> float:
    return float((x > 0) - (x < 0))


def signum_by_hand(w, grads, lr, beta):
    """Bernstein et al. (2018), Algorithm 1 (Signum), one coordinate."""
    m = 0.0
    for g in grads:
        m = beta * m + (1 - beta) * g
        w = w - lr * _sign(m)
    return w


def lion_by_hand(w, grads, lr, b1, b2):
    """Chen et al. (2023), Program 1 (Lion, no weight decay), one coordinate."""
    m = 0.0
    for g in grads:
        c = b1 * m + (1 - b1) * g
        w = w - lr * _sign(c)
        m = b2 * m + (1 - b2) * g
    return w


def rmsprop_by_hand(w, grads, lr, alpha, eps):
    """torch.optim.RMSprop's pseudo-code (centered=False, momentum=0), one coordinate."""
    v = 0.0
    for g in grads:
        v = alpha * v + (1 - alpha) * g * g
        w = w - lr * g / (math.sqrt(v) + eps)
    return w


# ---------------------------------------------------------------- each rule, its formula


@given(histories, st.sampled_from([0.0, 0.5, 0.9]))
def test_signum_matches_its_formula(rows, beta):
    """E20a: m <- beta m + (1 - beta) g, W <- W - lr sign(m), bit for bit."""
    w0 = np.array([0.3, -1.0, 2.0])
    got = run_rule(optim.signum(0.01, beta), w0, rows)
    assert_array_equal(got, [signum_by_hand(w0[k], [r[k] for r in rows], 0.01, beta)
                             for k in range(3)])


def test_signum_takes_the_sign_of_the_buffer_not_a_buffer_of_signs():
    """Gradients 10, -1, -1 with momentum 0.9: the buffer is 1, 0.8, 0.62 (positive), so
    Signum steps -lr three times; a momentum of signs (0.1, -0.01, ...) would step back."""
    w = run_rule(optim.signum(0.5, 0.9), np.array([0.0]), [[10.0], [-1.0], [-1.0]])
    assert_array_equal(w, [-1.5])


@given(histories, st.sampled_from([(0.9, 0.99), (0.0, 0.99), (0.5, 0.0), (0.99, 0.9)]))
def test_lion_matches_its_formula(rows, betas):
    """E20b: the step is the sign of beta1 m + (1 - beta1) g with the buffer *before* it is
    updated by beta2, bit for bit."""
    w0 = np.array([0.3, -1.0, 2.0])
    got = run_rule(optim.lion(0.01, *betas), w0, rows)
    assert_array_equal(got, [lion_by_hand(w0[k], [r[k] for r in rows], 0.01, *betas)
                             for k in range(3)])


@given(histories, st.sampled_from([(0.99, 1e-8), (0.9, 1e-3), (0.0, 1e-8), (0.5, 1.0)]))
def test_rmsprop_matches_the_pytorch_rule(rows, hyper):
    """E21a: no bias correction, eps added after the square root (to rounding)."""
    w0 = np.array([0.3, -1.0, 2.0])
    got = run_rule(optim.rmsprop(0.01, *hyper), w0, rows)
    want = [rmsprop_by_hand(w0[k], [r[k] for r in rows], 0.01, *hyper) for k in range(3)]
    assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_rmsprops_first_step_shows_where_eps_goes_and_that_v_is_not_corrected():
    """At t = 1, v = (1 - alpha) g^2: the step is -lr g / (sqrt(1 - alpha) |g| + eps), 10
    lr for alpha = 0.99 and a small eps (Adam's bias correction would give lr)."""
    g = np.array([1e-3, -5.0])
    upd, _ = optim.rmsprop(0.1, 0.99, 1e-6).update(g, optim.rmsprop(0.1).init(g))
    assert_allclose(upd, [-0.1 * 1e-3 / (0.1 * 1e-3 + 1e-6), 0.1 * 5 / (0.1 * 5 + 1e-6)],
                    rtol=1e-14)


def test_rmsprop_with_zero_eps_counts_zero_over_zero_and_refuses_a_vanished_square():
    w = run_rule(optim.rmsprop(0.1, 0.9, 0.0), np.array([1.0, 2.0]), [[0.0, 1.0]] * 3)
    assert w[0] == 1.0 and w[1] < 2.0
    with pytest.raises(FloatingPointError, match="eps"):  # (1e-200)^2 underflows to 0
        run_rule(optim.rmsprop(0.1, 0.9, 0.0), np.array([1.0]), [[1e-200]])


def _blocks(rng, scale=1.0):
    return Params(rng.normal(size=(2, 5)) * scale, np.zeros((2, 5)),
                  rng.normal(size=(2, 3, 5)) * scale)


def test_normalized_gd_moves_each_block_by_lr_in_frobenius_norm():
    """E22a against mpmath: W_B - lr g_B / ||g_B||_F per block (W_V's two heads one block);
    a zero block stays; a block of gradients ~1e-300 (whose squares underflow) moves by lr."""
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e-300):
        g, w0 = _blocks(rng, scale), _blocks(rng)
        w = run_rule(optim.normalized_gd(0.25), w0, [g])
        for block, (gb, wb, w0b) in enumerate(zip(g, w, w0)):
            norm = mp.sqrt(mp.fsum(mp.mpf(float(x)) ** 2 for x in gb.ravel()))
            want = (w0b if norm == 0 else
                    np.array([float(mp.mpf(float(a)) - mp.mpf(0.25) * mp.mpf(float(x)) / norm)
                              for a, x in zip(w0b.ravel(), gb.ravel())]).reshape(gb.shape))
            assert_allclose(wb, want, rtol=1e-14, atol=1e-16, err_msg=str(block))
        assert_array_equal(w.W_K, w0.W_K)  # its gradient is 0


RULES = {"signum": lambda: optim.signum(0.1, 0.9), "lion": lambda: optim.lion(0.1),
         "rmsprop eps 0": lambda: optim.rmsprop(0.1, 0.9, 0.0),
         "rmsprop eps 1e-3": lambda: optim.rmsprop(0.1, 0.9, 1e-3),
         "normalized_gd": lambda: optim.normalized_gd(0.1)}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_log_form_computes_its_float64_rule_in_range(rule):
    """On gradients spanning 12 orders of magnitude but inside the float64 range, the log
    form (exact arithmetic) takes the float64 steps: sign rules bit for bit, the others
    to rounding."""
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(3, 4)) * 10.0 ** rng.uniform(-6, 6, size=(3, 4))
             for _ in range(12)]
    opt = RULES[rule]()
    w0 = Params(np.zeros((3, 4)), np.ones((3, 4)), np.zeros((1, 3, 4)))
    params = [Params(g, -g, g[None]) for g in grads]
    plain, logged = run_rule(opt, w0, params), run_rule(opt, w0, params, log=True)
    for a, b in zip(plain, logged):
        if opt.homogeneity == 0.0:
            assert_array_equal(a, b)
        else:
            assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_log_forms_keep_the_signs_of_gradients_below_the_float64_range():
    """Gradients e^-2000 then -e^-1990 (both below the float64 range): the real buffer of
    Signum (momentum 0.9) is then 0.09 e^-2000 - 0.1 e^-1990 < 0, so the second step is
    +lr; Lion's direction 0.9 m + 0.1 g has the same sign; normalized GD moves a block of
    such gradients by lr."""
    signs, logs = [np.array([1.0]), np.array([-1.0])], [np.array([-2000.0]), np.array([-1990.0])]
    for opt in (optim.signum(1.0, 0.9), optim.lion(1.0, 0.9, 0.99)):
        state, moves = opt.log_form.init(np.zeros(1)), []
        for s, lg in zip(signs, logs):
            upd, state = opt.log_form.update(s, lg, state)
            moves.append(float(upd[0]))
        assert moves == [-1.0, 1.0]
    form = optim.normalized_gd(0.5).log_form
    upd, _ = form.update(np.array([1.0, -1.0]), np.array([-2000.0, -2000.0]), form.init(None))
    assert_allclose(upd, [-0.5 / math.sqrt(2), 0.5 / math.sqrt(2)], rtol=1e-15)


def test_declarations_say_what_is_true():
    """Sign-of-buffer rules are homogeneous of degree 0 and keep a log form; RMSProp is
    float64-exact exactly when Adam is (eps >= ADAM_FLOAT64_EPS); normalized GD is not
    entrywise; every built-in rule accepts decoupled weight decay."""
    for opt in (optim.signum(1.0), optim.lion(1.0)):
        assert opt.homogeneity == 0.0 and opt.log_form is not None and not opt.float64_exact
    assert optim.rmsprop(1.0, eps=optim.ADAM_FLOAT64_EPS).float64_exact
    assert not optim.rmsprop(1.0, eps=1e-101).float64_exact
    assert not optim.normalized_gd(1.0).entrywise
    for name in ("signgd", "signum", "lion", "adam", "rmsprop", "gd", "normalized_gd"):
        assert optim.from_config(Config(optimizer=name)).decoupled_decay, name


# ---------------------------------------------------------------- limits, every step


def _saturated(shape="disjoint", **changes) -> Config:
    return Config(**{**FAST_SATURATION, **SHAPES[shape], **changes})


@pytest.mark.parametrize("arithmetic", ["exact", "float64"])
@pytest.mark.parametrize("kernel", ["fast", "dense"])
@pytest.mark.parametrize("limit", [dict(optimizer="signum", momentum=0.0),
                                   dict(optimizer="lion", lion_beta1=0.0, lion_beta2=0.9)],
                         ids=["signum-momentum-0", "lion-beta1-0"])
def test_sign_of_buffer_rules_without_a_buffer_are_signgd_at_every_step(limit, kernel,
                                                                         arithmetic):
    """Signum with momentum 0 and Lion with beta1 = 0 step by sign(g) (m = 0 m + 1 g = g
    exactly): every record of a run deep into saturation equals SignGD's bit for bit."""
    config = _saturated("overlapping", kernel=kernel, arithmetic=arithmetic)
    sign = signsim.run(config)
    other = signsim.run(config.replace(**limit))
    for name in sign.history:
        assert_array_equal(sign.history[name], other.history[name], err_msg=name)


@pytest.mark.parametrize("kernel", ["fast", "dense"])
def test_adam_with_a_huge_eps_is_gd_at_lr_over_eps_at_every_step(kernel):
    """E21 with beta1 = 0 (m_hat = g) and eps = 1e16: sqrt(v_hat) + eps rounds to eps for
    every |g| < 1, so the step lr g / eps is GD's at lr / eps = 0.1 up to the rounding of
    one product. Every record agrees to 1e-13 of its largest entry over 200 steps."""
    base = _saturated(steps=200, kernel=kernel)
    gd = signsim.run(base.replace(optimizer="gd", lr=0.1))
    adam = signsim.run(base.replace(optimizer="adam", beta1=0.0, beta2=0.99, eps=1e16,
                                    lr=0.1 * 1e16))
    for name in gd.history:
        x = gd.history[name]
        assert_allclose(adam.history[name], x, rtol=0, atol=1e-13 * np.abs(x).max(),
                        err_msg=name)
    assert np.ptp(gd.history["margin"][:, 0]) > 1.0  # GD really moved


# ---------------------------------------------------------------- fast == dense


def _decaying(optimizer: str, shape: str, **changes) -> Config:
    """A saturated run (300 steps, exact arithmetic) with lr wd = 0.005: the init ends
    scaled by 0.995^300 ~ 0.22."""
    extra = {"adam": dict(lr=0.5, eps=0.0), "rmsprop": dict(lr=0.5, eps=0.0),
             "gd": dict(lr=0.5)}.get(optimizer, {})
    lr = extra.get("lr", FAST_SATURATION["lr"])
    return _saturated(shape, optimizer=optimizer, **{**extra, "weight_decay": 0.005 / lr,
                                                     **changes})


@pytest.mark.parametrize("optimizer", ["signgd", "signum", "lion", "adam", "rmsprop", "gd"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_fast_equals_dense_with_weight_decay_deep_into_saturation(optimizer, shape):
    """The fast kernel (off U one scalar factor per replica, the frozen test offsets
    scaled by it) against the dense reference (every weight times 1 - lr wd each step),
    at tests/test_fast.py's tolerance, records, test metrics and dense weights alike."""
    config = _decaying(optimizer, shape)
    dense = signsim.run(config, kernel="dense")
    assert_same_run(dense, signsim.run(config))
    if optimizer != "gd":
        assert (dense.history["attention"][:, :, 1, 0] == 0.0).any()  # s21 underflowed


@pytest.mark.parametrize("optimizer", ["signgd", "signum", "lion"])
@pytest.mark.parametrize("arithmetic", ["exact", "float64"])
def test_both_layouts_decay_alike(optimizer, arithmetic):
    """The per-coordinate layout, forced, agrees with the per-sample one a homogeneous rule
    gets (its running sums decay, the init part of P follows c_t)."""
    config = _decaying(optimizer, "overlapping", steps=120, arithmetic=arithmetic)
    names = select(None)
    sample = run_batch([config], names, single=True)
    coordinate = run_batch([config], names, single=True, layout="coordinate")
    assert_same_run(sample, coordinate)


def test_replicas_that_decay_at_their_own_lr_equal_their_runs_alone():
    """A batch varying lr (so 1 - lr wd too) gives each replica its single run bit for
    bit: one decay factor per replica."""
    config = _decaying("signum", "disjoint", steps=80)
    lrs = [0.1, 0.2, 0.05]
    batch = signsim.run(config, vary={"lr": lrs})
    for r, lr in enumerate(lrs):
        assert_bit_identical(batch.replica(r), signsim.run(config.replace(lr=lr)))


def test_normalized_gd_runs_on_the_dense_reference_only():
    config = _saturated(optimizer="normalized_gd", steps=5)
    with pytest.raises(ValueError, match="entrywise=False"):
        signsim.run(config)
    assert np.isfinite(signsim.run(config, kernel="dense").history["margin"]).all()


# ---------------------------------------------------------------- exact arithmetic


@pytest.mark.parametrize("rule", [dict(optimizer="signum", momentum=0.1),
                                  dict(optimizer="lion", lion_beta1=0.5, lion_beta2=0.1)],
                         ids=["signum", "lion"])
def test_float64_buffers_underflow_and_freeze_where_exact_ones_keep_moving(rule):
    """Deep in saturation the float64 gradient is 0 and a buffer decaying by 0.1 per step
    underflows within a few hundred steps: float64 Signum and Lion then stand still
    (sign(0) = 0). In exact arithmetic the buffers keep their real, nonzero values, so
    every query, key and value-noise entry still moves at the last of 600 steps."""
    config = _saturated(steps=600, **rule)
    names = ["query_noise", "key_noise", "mean_value_noise", "margin"]
    plain = signsim.run(config.replace(arithmetic="float64"), record=names)
    exact = signsim.run(config, record=names)
    for name in names[:3]:
        assert np.all(np.diff(plain.history[name][-2:], axis=0) == 0), name
        assert np.all(np.diff(exact.history[name][-2:], axis=0) != 0), name
    assert exact.history["margin"][-1].min() > plain.history["margin"][-1].min()


# ---------------------------------------------------------------- weight decay itself


def test_decoupled_decay_scales_every_weight_before_the_update():
    """E22b on the dense reference, one SignGD step: W(1) = (1 - lr wd) W(0) - lr sign(g),
    so off the training patches (g = 0) W(1) = (1 - lr wd) W(0) bit for bit, and on them
    W(1) - (1 - lr wd) W(0) is -lr sign(g(W(0))): the decay does not enter the gradient."""
    config = Config(n=3, d=30, s=3, sigma_p=2.0, m_k=2, m_v=2, sigma_0=0.05, lr=0.1,
                    weight_decay=2.0, steps=1, n_test=5, kernel="dense")
    r, plain = signsim.run(config), signsim.run(config.replace(weight_decay=0.0))
    a = 1.0 - 0.1 * 2.0
    used = np.zeros(config.d, bool)
    used[0] = True
    used[r.dataset.noise_index.ravel()] = True
    for w1, w0, p1 in zip(r.params, r.init_params, plain.params):
        assert_array_equal(w1[..., ~used], a * w0[..., ~used])
        assert_allclose(w1 - a * w0, p1 - w0, rtol=0, atol=1e-15)


def test_the_fast_kernel_keeps_the_init_factor_off_U():
    """The final weights of a fast run hold c_T = (1 - lr wd)^T for the coordinates off U
    (SparseParams.init_scale); its dense weights there are c_T times the init."""
    config = _decaying("signgd", "disjoint", steps=50)
    r = signsim.run(config)
    c = (1.0 - config.lr * config.weight_decay) ** 50
    assert r.params.init_scale == pytest.approx(c, rel=1e-15)
    off = np.setdiff1d(np.arange(config.d), r.params.coords)
    assert_allclose(r.params.W_Q[:, off], c * r.init_params.W_Q[:, off], rtol=1e-15)


@pytest.mark.parametrize("changes, match", [
    (dict(lr=0.5, weight_decay=2.0), "below 1"),
    (dict(lr=0.5, weight_decay=2.5), "below 1"),
])
def test_weight_decay_that_would_erase_or_flip_weights_is_refused(changes, match):
    config = _saturated(steps=2, **changes)
    for kernel in ("fast", "dense"):
        with pytest.raises(ValueError, match=match) as info:
            signsim.run(config, kernel=kernel)
        assert "'weight_decay'" in str(info.value)


def test_a_rule_that_does_not_declare_decoupled_decay_is_refused_weight_decay():
    optim.register("plain_sign", lambda c: optim.sign_gd(c.lr)._replace(decoupled_decay=False))
    try:
        config = _saturated(optimizer="plain_sign", steps=2, weight_decay=0.1)
        with pytest.raises(ValueError, match="decoupled_decay"):
            signsim.run(config)
        signsim.run(config.replace(weight_decay=0.0))  # no decay: runs
    finally:
        optim.unregister("plain_sign")


def test_runs_with_weight_decay_save_and_load_bit_for_bit(tmp_path):
    config = _decaying("lion", "disjoint", steps=30)
    for r in (signsim.run(config), signsim.run(config, seeds=[0, 1])):
        again = signsim.load(r.save(tmp_path / f"{r.batched}.npz"))
        assert_bit_identical(r, again)


def test_configs_saved_before_these_fields_existed_load_with_their_defaults(tmp_path):
    """A config (JSON, or in a result file) without the fields of issue 15 ran no Signum,
    Lion or RMSProp and no weight decay: it loads with the defaults, which reproduce it."""
    data = Config().to_dict()
    for name in OPTIMIZER_FIELDS:
        del data[name]
    assert Config.from_dict(data) == Config()
    r = signsim.run("fig1", steps=3, n_test=5)
    path = r.save(tmp_path / "new.npz")
    with zipfile.ZipFile(path) as z:
        members = {k: z.read(k) for k in z.namelist()}
    old = np.load(path)
    configs = [{k: v for k, v in c.items() if k not in OPTIMIZER_FIELDS}
               for c in json.loads(str(old["configs"]))]
    arrays = {k[:-4]: old[k[:-4]] for k in members}
    arrays["configs"] = np.array(json.dumps(configs))
    np.savez(tmp_path / "old.npz", **arrays)
    assert_bit_identical(signsim.load(tmp_path / "old.npz"), r)
