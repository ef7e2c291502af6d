"""Config: validation at the boundary (every bad value names field, range and value), presets."""

import dataclasses
import math

import pytest

import signsim
from signsim.config import Config, preset

BAD_VALUES = [
    # (field, value, error type, text the message must contain)
    ("n", 0, ValueError, ">= 1"), ("n", -3, ValueError, "-3"), ("n", 2.0, TypeError, "float"),
    ("n", True, TypeError, "bool"), ("d", 1, ValueError, ">= 2"),
    ("s", 0, ValueError, "[1, d-1]"), ("s", 10_000, ValueError, "10000"),
    ("sigma_p", 0.0, ValueError, "> 0"), ("sigma_p", math.nan, ValueError, "nan"),
    ("sigma_p", math.inf, ValueError, "inf"), ("sigma_p", "10", TypeError, "str"),
    ("mu_norm", -1.0, ValueError, ">= 0"), ("n_test", 0, ValueError, "0"),
    ("signal_position", "last", ValueError, "['random', 'first']"),
    ("m_k", 0, ValueError, "m_k"), ("m_v", 1.5, TypeError, "m_v"),
    ("sigma_0", -0.1, ValueError, ">= 0"), ("optimizer", "sgd", ValueError, "['signgd', 'adam', 'gd']"),
    ("optimizer", None, ValueError, "None"), ("lr", 0.0, ValueError, "> 0"),
    ("lr", -1e-3, ValueError, "-0.001"), ("beta1", 1.0, ValueError, "[0.0, 1.0)"),
    ("beta1", -0.1, ValueError, "[0.0, 1.0)"), ("beta2", 1.5, ValueError, "1.5"),
    ("eps", -1e-8, ValueError, ">= 0"), ("steps", -1, ValueError, "steps"),
    ("seed", -1, ValueError, "seed"), ("seed", 2**63, ValueError, "2**63-1"),
    ("record_every", 0, ValueError, "record_every"), ("test_every", 0, ValueError, "test_every"),
    ("kernel", "gpu", ValueError, "['fast', 'dense']"),
]


@pytest.mark.parametrize("field,value,exc,text", BAD_VALUES)
def test_bad_value_names_field_range_and_value(field, value, exc, text):
    with pytest.raises(exc) as info:
        Config(**{field: value})
    message = str(info.value)
    assert repr(field) in message, message
    assert text in message, message


def test_message_shape_matches_sklearn_style():
    with pytest.raises(ValueError, match=r"The 's' parameter must be an int in \[1, d-1\] = "
                                         r"\[1, 9999\]\. Got 0 instead\."):
        Config(s=0)


def test_numpy_scalars_are_accepted_and_normalised():
    import numpy as np

    c = Config(n=np.int64(5), lr=np.float32(0.5))
    assert type(c.n) is int and type(c.lr) is float and c.n == 5


def test_config_is_frozen_and_replace_validates():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]
    assert c.replace(lr=2e-4).lr == 2e-4 and c.lr == 1e-4
    with pytest.raises(ValueError, match="'lr'"):
        c.replace(lr=-1.0)
    with pytest.raises(TypeError, match="Unknown Config field"):
        c.replace(learning_rate=1.0)


def test_json_round_trip_is_exact():
    c = Config(lr=1 / 3, sigma_p=math.pi, optimizer="adam", eps=0.0)
    assert Config.from_json(c.to_json()) == c


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
    with pytest.raises(ValueError, match="'preset'"):
        preset("fig3")


def test_run_rejects_a_config_of_the_wrong_type():
    with pytest.raises(TypeError, match="'config'"):
        signsim.run(42)
