"""``run(config) -> Result``: data, init, then forward -> record -> gradients -> update.

``kernel="dense"`` runs the reference below: dense (m, d) weights and the readable
functions of ``model``/``grads``. ``kernel="fast"`` (the default) runs ``signsim.fast``,
which works on the active coordinates only; both return the same kind of Result.
"""

from __future__ import annotations

import numpy as np

from .config import Config, preset
from .data import Dataset, make_data
from .grads import gradients
from .model import Params, forward, init_params, loss
from .optim import apply_updates, from_config
from .result import Result
from .tracker import Tracker, progress_every, reference_quantities

__all__ = ["run", "resolve_config"]


def resolve_config(config=None, **overrides) -> Config:
    """A Config from a Config, a preset name or None (the defaults), with overrides."""
    if config is None:
        return Config(**overrides)
    if isinstance(config, str):
        return preset(config, **overrides)
    if isinstance(config, Config):
        return config.replace(**overrides) if overrides else config
    raise TypeError(f"The 'config' parameter must be a Config, a preset name or None. "
                    f"Got {type(config).__name__} instead.")


def run(config=None, *, seeds=None, vary=None, progress=None, workers=None,
        **overrides) -> Result:
    """Train the two-layer transformer of the spec and record its dynamics.

    Parameters
    ----------
    config : Config, str or None
        A Config, the name of a preset (``"fig1"``, ``"fig2"``, ``"data_quality"``), or None
        for the defaults.
    seeds : sequence of int, optional
        Run one replica per seed in one vectorised pass (fast kernel only); every history
        array then gains a leading replica axis. Replica r equals ``run(config, seed=seeds[r])``.
    vary : dict, optional
        Per-replica values of ``lr`` and/or ``sigma_p`` (sequences of one length R), batched
        like ``seeds`` (fast kernel only; all replicas use ``config.seed`` unless ``seeds``
        gives R seeds). Replica r equals ``run(config, seed=..., lr=vary["lr"][r], ...)``
        bit for bit; ``Result.varied`` keeps the values.
    progress : callable, optional
        Called as ``progress(t, steps)`` about a hundred times over the run (for a bar).
    workers : int, optional
        Parallel workers for a batch (fast kernel): threads share the per-replica setup,
        and the test set and its evaluations run beside training, in a forked helper process
        (Linux, when the calling process has one thread) or else in a helper thread. The
        default is 2 (at most the available CPUs) for batches of 4 replicas or more where a
        helper process can be forked, of 32 or more elsewhere, else 1. Results do not
        depend on it.
    **overrides
        Config fields to replace, e.g. ``lr=2e-4, optimizer="adam"``.

    Returns
    -------
    Result
    """
    config = resolve_config(config, **overrides)
    if config.kernel == "dense":
        if seeds is not None or vary is not None or workers is not None:
            raise ValueError("The 'seeds', 'vary' and 'workers' parameters need kernel='fast'; "
                             "the dense reference runs one configuration at a time. "
                             "Got kernel='dense'.")
        return _run_dense(config, progress)
    from .fast import run_fast

    return run_fast(config, seeds=seeds, vary=vary, progress=progress, workers=workers)


def dense_test_metrics(params: Params, test: Dataset, chunk: int = 100) -> tuple[float, float]:
    """Test loss and error with dense weights, over the test set in chunks."""
    margins = []
    for start in range(0, test.n, chunk):
        part = _subset(test, slice(start, start + chunk))
        margins.append(part.y * forward(params, part.X).f)
    margin = np.concatenate(margins)
    return float(loss(margin).mean()), float(np.mean(margin <= 0))


def _subset(data: Dataset, rows: slice) -> Dataset:
    return Dataset(y=data.y[rows], signal_position=data.signal_position[rows],
                   noise_index=data.noise_index[rows], noise_value=data.noise_value[rows],
                   d=data.d, mu_norm=data.mu_norm)


def _run_dense(config: Config, progress=None) -> Result:
    """The reference loop: dense weights, every quantity from its definition."""
    train, test = make_data(config)
    X = train.X  # (n, d, L)
    params = init_params(config.seed, config.d, config.m_k, config.m_v, config.sigma_0)
    init = params
    opt = from_config(config)
    state = opt.init(params)
    tracker = Tracker(config)
    record_row = {int(t): i for i, t in enumerate(tracker.steps)}
    test_row = {int(t): i for i, t in enumerate(tracker.test_steps)}
    every = progress_every(config.steps)
    for t in range(config.steps + 1):
        if progress is not None and t % every == 0:
            progress(t, config.steps)
        # W = W^(t) here
        if t < config.steps:
            grads, fw = gradients(params, X, train.y)
        else:
            fw = forward(params, X)
        if t in record_row:
            tracker.record(record_row[t], reference_quantities(params, fw, train))
        if t in test_row:
            tracker.record_test(test_row[t], *dense_test_metrics(params, test))
        if t < config.steps:
            updates, state = opt.update(grads, state)
            params = apply_updates(params, updates)
    return Result(config=config, steps=tracker.steps, test_steps=tracker.test_steps,
                  history=tracker.history, params=params, init_params=init, dataset=train,
                  test_dataset=test)
