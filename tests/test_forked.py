"""The forked helper process of the test evaluations (signsim.forked): it returns exactly
what the parent would compute, in order, through a ring of shared-memory slots; and a
failure on either side ends in an exception, never in a hang or a stray process."""

import os
import signal

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import signsim
from signsim import fast, forked
from signsim.forked import ForkedEvaluations, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="no fork() here, or several threads")

R, M_K, SHAPE = 3, 2, (5, 4)


def _evaluate(test, Z, qs, ks, vs):
    """Depends on every value handed over, bit for bit."""
    return Z[:R, 0] * test + qs[:, 0], ks[:, 1] - vs


def _states(n):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=SHAPE), rng.normal(size=(R, M_K)), rng.normal(size=(R, M_K)),
             rng.normal(size=R)) for _ in range(n)]


def _no_children_left():
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.mark.parametrize("ring_bytes", [forked.RING_BYTES, 1])
def test_results_equal_direct_evaluation_in_order(ring_bytes, monkeypatch):
    """With room for every state, and with the smallest ring (8 slots for 30 states, so the
    parent waits for slots to be freed), each result is the direct evaluation of its state."""
    monkeypatch.setattr(forked, "RING_BYTES", ring_bytes)
    states = _states(30)
    helper = ForkedEvaluations(lambda: 3.0, _evaluate, len(states), SHAPE, R, M_K)
    assert helper.slots == (30 if ring_bytes > 1 else 8)
    for state in states:
        helper.submit(*state)
    out = helper.results()
    for k, state in enumerate(states):
        loss, error = _evaluate(3.0, *state)
        assert_array_equal(out[k, 0], loss)
        assert_array_equal(out[k, 1], error)
    _no_children_left()


def test_an_exception_in_the_child_is_raised_in_the_parent():
    def broken(test, Z, qs, ks, vs):
        raise ValueError("deliberately broken evaluation")

    helper = ForkedEvaluations(lambda: 0.0, broken, 2, SHAPE, R, M_K)
    for state in _states(2):
        helper.submit(*state)
    with pytest.raises(RuntimeError, match="deliberately broken evaluation"):
        helper.results()
    _no_children_left()


def test_a_killed_child_is_an_error_not_a_hang():
    def killed(test, Z, qs, ks, vs):
        os.kill(os.getpid(), signal.SIGKILL)

    helper = ForkedEvaluations(lambda: 0.0, killed, 1, SHAPE, R, M_K)
    helper.submit(*_states(1)[0])
    with pytest.raises(RuntimeError, match="ended without finishing"):
        helper.results()
    _no_children_left()


def test_a_failing_run_stops_its_helper_process():
    """An exception in the training loop (here from the progress callback) reaches the
    caller, and the helper process is stopped and reaped."""
    def progress(t, steps):
        if t >= 10:
            raise KeyboardInterrupt

    config = signsim.Config(n=4, d=200, s=5, m_k=2, m_v=2, steps=40, n_test=20, test_every=2)
    with pytest.raises(KeyboardInterrupt):
        fast.run_fast(config, seeds=[0, 1], workers=2, progress=progress)
    _no_children_left()
