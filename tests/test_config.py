"""Config: validation at the boundary (every bad value names field, range and value), presets.

The invalid-value tests are generated from ``signsim.config.FIELDS``, the one table that also
drives validation and the docs; the exact-message tests below are written by hand.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import signsim
from signsim.config import FIELDS, Config, Ref, field_table, preset

DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}
INVALID = [(name, value, exc) for name, spec in FIELDS.items()
           for value, exc in spec.constraint.invalid_examples()]


@pytest.mark.parametrize("field,value,exc", INVALID,
                         ids=[f"{name}={value!r}" for name, value, _ in INVALID])
def test_invalid_value_names_field_and_value(field, value, exc):
    with pytest.raises(exc) as info:
        Config(**{field: value})
    message = str(info.value)
    assert type(info.value) is exc
    assert repr(field) in message and repr(value) in message, message


def test_every_field_has_an_entry_and_every_default_satisfies_it():
    assert list(FIELDS) == list(DEFAULTS)  # same fields, same order
    resolved = {}
    for name, spec in FIELDS.items():
        resolved[name] = spec.constraint.check(name, DEFAULTS[name], resolved)
        assert resolved[name] == DEFAULTS[name] and type(resolved[name]) is type(DEFAULTS[name])
        assert spec.meaning and spec.constraint.describe()


def test_references_point_to_earlier_fields():
    names = list(FIELDS)
    for i, spec in enumerate(FIELDS.values()):
        for bound in spec.constraint:
            if isinstance(bound, Ref):
                assert bound.field in names[:i]


def test_every_kind_of_bad_value_is_generated():
    def examples(name):  # repr tells True from 1 and compares NaN
        return [(repr(v), exc) for v, exc in FIELDS[name].constraint.invalid_examples()]

    V, T = ValueError, TypeError
    assert examples("s") == [("0", V), ("10000", V), ("1.0", T), ("'1'", T), ("True", T),
                             ("None", T)]
    assert examples("beta1") == [("-5e-324", V), ("1.0", V), ("nan", V), ("inf", V),
                                 ("-inf", V), ("'1.0'", T), ("True", T), ("None", T)]
    assert examples("sigma_p")[0] == ("0.0", V)
    assert examples("kernel") == [("'FAST'", V), ("None", V)]


def test_message_shape_matches_sklearn_style():
    with pytest.raises(ValueError, match=r"^The 's' parameter must be an int in \[1, d-1\] = "
                                         r"\[1, 9999\]\. Got 0 instead\.$"):
        Config(s=0)
    with pytest.raises(ValueError, match=r"^The 's' parameter must be an int in \[1, d-1\] = "
                                         r"\[1, 4\]\. Got 5 instead\.$"):
        Config(d=5, s=5)
    with pytest.raises(TypeError, match=r"^The 'n' parameter must be an int >= 1\. "
                                        r"Got 2\.0 of type float instead\.$"):
        Config(n=2.0)
    with pytest.raises(ValueError, match=r"^The 'beta1' parameter must be a finite float in "
                                         r"\[0\.0, 1\.0\)\. Got 1\.0 instead\.$"):
        Config(beta1=1.0)
    with pytest.raises(ValueError, match=r"^The 'seed' parameter must be an int in "
                                         r"\[0, 2\*\*63-1\]\. Got 9223372036854775808 instead\.$"):
        Config(seed=2**63)
    with pytest.raises(ValueError, match=r"^The 'kernel' parameter must be one of "
                                         r"\['fast', 'dense'\]\. Got 'gpu' instead\.$"):
        Config(kernel="gpu")


def test_bounds_are_inclusive_where_the_table_says_so():
    c = Config(d=5, s=4, mu_norm=0.0, sigma_0=0.0, beta1=0.0, eps=0.0, steps=0,
               seed=2**63 - 1)
    assert (c.s, c.beta1, c.eps, c.seed) == (4, 0.0, 0.0, 2**63 - 1)
    assert Config(beta2=math.nextafter(1.0, 0.0)).beta2 < 1.0


def test_optimizer_choices_come_from_the_registry():
    for name in signsim.optim.available():
        assert Config(optimizer=name).optimizer == name
    with pytest.raises(ValueError, match=r"must be one of \[.*'signgd'.*\]\. Got 'sgd'"):
        Config(optimizer="sgd")


def test_constraint_texts():
    text = {name: spec.constraint.describe() for name, spec in FIELDS.items()}
    assert (text["n"], text["s"], text["seed"]) == ("int >= 1", "int in [1, d-1]",
                                                    "int in [0, 2**63-1]")
    assert (text["sigma_p"], text["mu_norm"], text["beta1"]) == ("float > 0", "float >= 0",
                                                                 "float in [0, 1)")
    assert text["kernel"] == "one of `fast`, `dense`"
    assert text["optimizer"] == "a registered optimizer name (`signsim.optim.available()`)"


def test_docs_hold_the_field_table_verbatim():
    usage = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    assert field_table() in usage, (
        "docs/usage.md is out of date: paste the output of "
        "python -c \"import signsim.config as c; print(c.field_table())\" under '## Config fields'")


def test_numpy_scalars_are_accepted_and_normalised():
    c = Config(n=np.int64(5), s=np.int32(3), lr=np.float32(0.5), sigma_p=np.float64(2.0))
    assert type(c.n) is int and type(c.s) is int and c.n == 5 and c.s == 3
    assert type(c.lr) is float and type(c.sigma_p) is float and c.lr == 0.5


def test_config_is_frozen_and_replace_validates():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]
    assert c.replace(lr=2e-4).lr == 2e-4 and c.lr == 1e-4
    with pytest.raises(ValueError, match="'lr'"):
        c.replace(lr=-1.0)
    with pytest.raises(TypeError, match="Unknown Config field"):
        c.replace(learning_rate=1.0)


def test_preset_refuses_an_unknown_override_like_replace():
    with pytest.raises(TypeError) as from_preset:
        preset("fig2", lrr=1.0)
    with pytest.raises(TypeError) as from_replace:
        Config().replace(lrr=1.0)
    assert str(from_preset.value) == str(from_replace.value) == (
        f"Unknown Config field(s) ['lrr']; known fields are {list(DEFAULTS)}.")


def test_json_round_trip_is_exact():
    c = Config(lr=1 / 3, sigma_p=math.pi, optimizer="adam", eps=0.0)
    assert Config.from_json(c.to_json()) == c
    with pytest.raises(ValueError, match=r"Unknown Config field\(s\) \['lrr'\]"):
        Config.from_dict({**c.to_dict(), "lrr": 1.0})


def test_snr_is_e5():
    c = Config(mu_norm=2.0, sigma_p=0.5, s=16)
    assert c.snr == 2.0 / (0.5 * 4)


def test_presets_follow_spec_section_9():
    fig1 = preset("fig1")
    assert (fig1.n, fig1.d, fig1.s, fig1.sigma_p, fig1.mu_norm, fig1.m_k, fig1.m_v) == (
        20, 10_000, 20, 10.0, 1.0, 10, 10)
    assert (fig1.sigma_0, fig1.optimizer, fig1.lr, fig1.steps, fig1.n_test) == (
        0.005, "signgd", 1e-4, 900, 1000)
    fig2 = preset("fig2")
    assert (fig2.optimizer, fig2.beta1, fig2.beta2, fig2.eps) == ("adam", 0.9, 0.999, 1e-8)
    dq = preset("data_quality")
    assert dq.sigma_0 == 0.01 and dq.lr == 1e-3 and math.isclose(dq.snr, 1.0)
    assert preset("fig1", lr=2e-4).lr == 2e-4
    with pytest.raises(ValueError, match="'preset'"):
        preset("fig3")


def test_run_rejects_a_config_of_the_wrong_type():
    with pytest.raises(TypeError, match="'config'"):
        signsim.run(42)


def test_share_bounds_point_to_earlier_fields():
    from signsim.config import Share

    names = list(FIELDS)
    shares = [(i, b) for i, spec in enumerate(FIELDS.values()) for b in spec.constraint
              if isinstance(b, Share)]
    assert shares
    for i, bound in shares:
        assert set(bound.fields) <= set(names[:i])


COUNTER_LIMIT = 2**64  # the init counter k (2 m_k + 2 m_v) + row is a uint64 (signsim.rng)


@pytest.mark.parametrize("d,m_k,m_v", [(2**62, 1, 1), (10**17, 10, 82), (10**17, 91, 1),
                                       (2**61, 1, 3), (2**61, 2, 2),
                                       (3, 2**61, 2**63 // 3 - 2**61)])
def test_the_largest_init_counter_that_fits_is_accepted(d, m_k, m_v):
    """d (2 m_k + 2 m_v) <= 2**64, and one more value neuron or query/key neuron exceeds it."""
    assert d * (2 * m_k + 2 * m_v) <= COUNTER_LIMIT < d * (2 * m_k + 2 * m_v + 2)
    c = Config(d=d, m_k=m_k, m_v=m_v, s=1)
    # the largest counter, of coordinate d - 1 and the last row, is still a uint64
    assert (c.d - 1) * (2 * c.m_k + 2 * c.m_v) + 2 * c.m_k + 2 * c.m_v - 1 < 2**64


@pytest.mark.parametrize("d,m_k,m_v,field", [(2**62 + 1, 1, 1, "d"), (2**62, 1, 2, "m_v"),
                                             (2**62, 2, 1, "m_k"), (10**17, 10, 83, "m_v"),
                                             (10**17, 92, 1, "m_k"), (2**61 + 1, 1, 3, "m_v")])
def test_one_past_the_init_counter_limit_is_refused_naming_the_fields(d, m_k, m_v, field):
    assert d * (2 * m_k + 2 * m_v) > COUNTER_LIMIT
    with pytest.raises(ValueError) as info:
        Config(d=d, m_k=m_k, m_v=m_v, s=1)
    message = str(info.value)
    assert message.startswith(f"The {field!r} parameter must be an int in [")
    assert f"Got {locals()[field]} instead." in message
    assert "d (2 m_k + 2 m_v) must not exceed 2**64" in message
    assert all(f in message for f in ("d", "m_k", "m_v"))


def test_init_counter_bound_messages():
    with pytest.raises(ValueError, match=r"^The 'm_v' parameter must be an int in "
                                         r"\[1, 2\*\*63//d-m_k\] = \[1, 82\]\. Got 83 instead\. "
                                         r"\(The init counter d \(2 m_k \+ 2 m_v\) must not "
                                         r"exceed 2\*\*64: the fields d, m_k and m_v bound "
                                         r"each other, see signsim\.rng\.\)$"):
        Config(d=10**17, m_v=83)
    with pytest.raises(ValueError, match=r"^The 'd' parameter must be an int in \[2, 2\*\*62\]\. "
                                         r"Got 4611686018427387905 instead\. \(The init"):
        Config(d=2**62 + 1)
    with pytest.raises(ValueError, match=r"^The 'm_k' parameter must be an int in "
                                         r"\[1, 2\*\*63//d-1\] = \[1, 91\]\. Got 92 instead\."):
        Config(d=10**17, m_k=92, m_v=1)
    with pytest.raises(ValueError, match=r"^The 'd' parameter must be an int in \[2, 2\*\*62\]\. "
                                         r"Got 1 instead\.$"):  # no reason below the bound
        Config(d=1)
    text = {name: FIELDS[name].constraint.describe() for name in ("d", "m_k", "m_v", "steps")}
    assert text == {"d": "int in [2, 2**62]", "m_k": "int in [1, 2**63//d-1]",
                    "m_v": "int in [1, 2**63//d-m_k]", "steps": "int in [0, 10**9]"}


@given(st.integers(2, 2**62 + 1), st.integers(-1, 1), st.floats(0.0, 1.0))
def test_init_counter_bound_is_exactly_no_wrap(d, delta, split):
    """Config accepts (d, m_k, m_v) exactly when d (2 m_k + 2 m_v) <= 2**64, at the edge:
    m_k + m_v = 2**63 // d + delta, split between m_k and m_v."""
    total = max(2, 2**63 // d + delta)
    m_k = min(total - 1, max(1, int(split * total)))
    m_v = total - m_k
    fits = d * (2 * m_k + 2 * m_v) <= COUNTER_LIMIT
    try:
        Config(d=d, m_k=m_k, m_v=m_v, s=1)
        accepted = True
    except ValueError as e:
        accepted = False
        assert "2**64" in str(e)
    assert accepted == fits


def test_steps_are_bounded_with_the_reason():
    assert Config(steps=10**9, record_every=10**9, test_every=10**9).steps == 10**9
    with pytest.raises(ValueError, match=r"^The 'steps' parameter must be an int in "
                                         r"\[0, 10\*\*9\]\. Got 1000000000000 instead\. "
                                         r"\(At ~0\.2 ms a step, 10\*\*9 steps take days"):
        Config(steps=10**12, record_every=10**11, test_every=10**11)
