"""stages.detect: definitions on constructed histories, batched results, parameters."""

import numpy as np
import pytest

import signsim
from signsim import stages


def toy_history(T=6, m_k=2, n=3):
    """A history in which each stage condition is switched on at a chosen step."""
    h = {
        "mean_value_noise": np.full((T, n), -1.0), "mean_value_signal": np.zeros(T),
        "query_noise": np.ones((T, m_k, n)), "key_noise": -np.ones((T, m_k, n)),
        "query_signal": np.ones((T, m_k)), "key_signal": np.ones((T, m_k)),
        "attention": np.full((T, n, 2, 2), 0.5), "loss_derivative": np.full((T, n), -0.5),
    }
    h["mean_value_noise"][1:] = 1.0  # Stage I from step 1
    h["key_noise"][2:] = 1.0  # aligned from step 2
    h["key_signal"][3:] = -0.1  # majority (+) = sign(query signal), key signal opposite: from 3
    h["attention"][4:, :, 1, 0] = 1e-3  # s21 small from step 4; every noise shares sign (+)
    return h


def test_boundaries_follow_their_definitions():
    c = stages.conditions(toy_history())
    np.testing.assert_array_equal(c["T1"], [0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(c["T2"], [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(c["T3"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(c["T4"], [0, 0, 0, 0, 1, 1])


def test_lasting_conditions_must_hold_to_the_end_and_t2_is_a_crossing():
    h = toy_history()
    h["mean_value_noise"][3] = -1.0  # Stage I condition fails again at step 3
    h["key_noise"][4, 0, 0] = -1.0  # alignment breaks at 4 (Stage IV flip) and returns
    steps = np.arange(6)
    rep = stages._detect_one(steps, h, 1.0, 0.01)
    assert rep.T1 == 4  # lasting: from step 4 on
    assert rep.T2 == 5  # first aligned step at or after T1 (4 is broken)
    assert rep.T3 == 5 and rep.T4 == 5  # searched from T2; T4 needs the flip done
    assert rep.evidence["T1"].step == rep.T1


def test_fig1_shows_the_spec_stage_iv_timing():
    """Spec section 9: in fig1 s21 ~ 0 while s11 ~ 1/2 at t = 150, and every noise shares its
    neuron's query-signal sign by t ~ 350."""
    r = signsim.run("fig1", n_test=50)
    rep = stages.detect(r)
    assert 250 <= rep.T4 <= 450
    att = r.history["attention"][150]
    assert att[:, 1, 0].max() < 1e-3 and 0.3 < att[:, 0, 0].mean() < 0.6
    assert "T4" in rep.table() and str(rep.T4) in rep.table()


def test_batched_results_give_one_report_per_replica():
    r = signsim.run("fig1", seeds=[0, 3], n_test=20, steps=400)
    reports = stages.detect(r)
    assert len(reports) == 2
    alone = stages.detect(signsim.run("fig1", seed=3, n_test=20, steps=400))
    assert reports[1].as_dict() == alone.as_dict()


@pytest.mark.parametrize("kw", [{"s21_threshold": 0.0}, {"s21_threshold": 1.5},
                                {"dominance": -1.0}])
def test_bad_thresholds_are_rejected(kw):
    r = signsim.run("fig1", steps=2, n_test=5)
    with pytest.raises(ValueError, match=repr(next(iter(kw)))):
        stages.detect(r, **kw)


def test_unreached_stages_are_none():
    rep = stages.detect(signsim.run("fig1", steps=3, n_test=5))
    assert rep.T4 is None and rep.evidence["T4"].value is None
