"""Shared hypothesis strategies: bounded shapes, dense inputs, weights and configs."""

import numpy as np
from hypothesis import strategies as st

from signsim.config import Config
from signsim.model import Params
from signsim.optim import available

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def dense_problems(draw, max_n=4, max_d=8, max_L=4, max_m=3):
    """(params, X, y) with dense Gaussian X (every support overlaps), any L >= 1."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    L = draw(st.integers(1, max_L))
    m_k = draw(st.integers(1, max_m))
    m_v = draw(st.integers(1, max_m))
    scale = draw(st.sampled_from([0.1, 0.5, 1.0]))
    rng = np.random.default_rng(draw(seeds))
    X = rng.standard_normal((n, d, L))
    y = rng.choice([-1.0, 1.0], size=n)
    params = Params(scale * rng.standard_normal((m_k, d)), scale * rng.standard_normal((m_k, d)),
                    scale * rng.standard_normal((2, m_v, d)))
    return params, X, y


@st.composite
def small_configs(draw, optimizer=None, **fixed):
    """Small valid Configs (d small enough that supports often overlap)."""
    d = draw(st.integers(4, 40))
    s = draw(st.integers(1, min(6, d - 1)))
    base = dict(
        n=draw(st.integers(1, 6)), d=d, s=s,
        sigma_p=draw(st.sampled_from([0.5, 1.0, 3.0])),
        mu_norm=draw(st.sampled_from([0.5, 1.0, 2.0])),
        m_k=draw(st.integers(1, 4)), m_v=draw(st.integers(1, 4)),
        sigma_0=draw(st.sampled_from([0.01, 0.1, 0.5])),
        optimizer=optimizer or draw(st.sampled_from(available())),
        lr=draw(st.sampled_from([1e-3, 1e-2, 5e-2])),
        steps=draw(st.integers(0, 6)), n_test=draw(st.integers(1, 8)),
        seed=draw(seeds), signal_position=draw(st.sampled_from(["random", "first"])),
    )
    base.update(fixed)
    return Config(**base)


@st.composite
def signgd_regime_configs(draw, steps=40):
    """SignGD configs inside the regime of the exact rules: noise dominates the signal,
    small init, a few samples (overlaps allowed: the rules mark where they are exact)."""
    return Config(
        n=draw(st.integers(2, 6)), d=draw(st.sampled_from([300, 2000, 50_000])),
        s=draw(st.integers(2, 8)), sigma_p=draw(st.sampled_from([2.0, 5.0])),
        mu_norm=draw(st.sampled_from([0.5, 1.0])), m_k=draw(st.integers(1, 4)),
        m_v=draw(st.integers(1, 4)), sigma_0=draw(st.sampled_from([0.01, 0.03])),
        optimizer="signgd", lr=draw(st.sampled_from([1e-3, 3e-3])), steps=steps,
        n_test=5, test_every=steps, seed=draw(seeds),
        signal_position=draw(st.sampled_from(["random", "first"])))
