"""The one training loop: it drives any kernel of ``signsim.kernels``, the same for the dense
reference and the fast kernel, for one run or a batch of replicas.

At each step t = 0, 1, ..., steps, with the weights W^(t) in ``state``: report progress,
record the training quantities (on the record schedule), evaluate the test metrics (on the
test schedule), hand the state to the checkpoint hook, then take one optimizer step.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .tracker import Recorder, TEST_NAMES, progress_every, schedule

__all__ = ["Hooks", "drive"]


class Hooks(NamedTuple):
    """Callbacks of the loop; each may be None."""

    progress: Callable | None = None  # progress(t, steps), about a hundred times a run
    checkpoint: Callable | None = None  # checkpoint(state) at every step, before it is taken


def drive(kernel, config, hooks: Hooks = Hooks()):
    """Train with ``kernel`` for ``config.steps`` steps and return its Result.

    ``config`` gives the schedule (steps, record_every, test_every), the same for every
    replica of a batch."""
    steps = schedule(config.steps, config.record_every)
    test_steps = schedule(config.steps, config.test_every)
    storage = kernel.storage()
    recorder = Recorder(steps, test_steps, storage, kernel.replicas)
    train_names = [name for name in storage if name not in TEST_NAMES]
    record_row = {int(t): k for k, t in enumerate(steps)} if train_names else {}
    test_row = {int(t): k for k, t in enumerate(test_steps)} if "test_loss" in storage else {}
    every = progress_every(config.steps)
    state = init = kernel.init()
    while True:
        t = state.step
        if hooks.progress is not None and t % every == 0:
            hooks.progress(t, config.steps)
        if t in record_row:
            kernel.observe(state, recorder.row(record_row[t]))
        if t in test_row:
            recorder.record_test(test_row[t], *kernel.test_metrics(state))
        if hooks.checkpoint is not None:
            hooks.checkpoint(state)
        if t == config.steps:
            break
        state = kernel.step(state)
    return kernel.result(init, state, recorder.arrays(), steps, test_steps)
