"""The one training loop: it drives any kernel of ``signsim.kernels``, the same for the dense
reference and the fast kernel, for one run or a batch of replicas.

At each step t = 0, 1, ..., steps, with the weights W^(t) in ``state``: report progress,
record the training quantities (on the record schedule), evaluate the test metrics (on the
test schedule), check what was recorded for NaN and inf, hand the state to the checkpoint
hook, then take one optimizer step. A run resumed from a checkpoint starts at its saved
state and records that step again (the same bits: the state determines every record).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .tracker import Recorder, progress_every, schedule

__all__ = ["Hooks", "Start", "NonFiniteError", "drive", "recorder_for", "CHECK_EVERY"]

CHECK_EVERY = 128  # steps between two scans of the new records for NaN and inf (~0.3% of fig1)


class Hooks(NamedTuple):
    """Callbacks of the loop; each may be None."""

    progress: Callable | None = None  # progress(t, steps), about a hundred times a run
    checkpoint: Callable | None = None  # checkpoint(state, recorder, interrupted) at each
    # step (after its records) and, with interrupted=True, when Ctrl-C stops the loop


class Start(NamedTuple):
    """Where a resumed run starts: its State and the records written before it."""

    state: object
    recorder: Recorder


class NonFiniteError(FloatingPointError):
    """A recorded quantity became NaN or inf; ``result`` holds the history up to that step
    (and the weights of the step where the run stopped, up to CHECK_EVERY - 1 later)."""

    def __init__(self, step: int, name: str, result):
        super().__init__(f"The recorded quantity {name!r} is not finite at step {step} "
                         "(NaN or inf): the run was stopped there; the history so far is in "
                         "this error's 'result'. A learning rate, sigma_p, sigma_0 or mu_norm "
                         "this large overflows float64.")
        self.step, self.name, self.result = step, name, result

    def __reduce__(self):  # pickles (from a worker process) with its Result
        return type(self), (self.step, self.name, self.result)


def recorder_for(kernel, config) -> Recorder:
    """Empty storage for what ``kernel`` records under ``config``'s schedule."""
    return Recorder(schedule(config.steps, config.record_every),
                    schedule(config.steps, config.test_every), kernel.storage(), kernel.replicas)


def drive(kernel, config, hooks: Hooks = Hooks(), start: Start | None = None):
    """Train with ``kernel`` for ``config.steps`` steps (from ``start`` if given) and return
    its Result. ``config`` gives the schedule, the same for every replica of a batch."""
    recorder = start.recorder if start else recorder_for(kernel, config)
    record_row, test_row = recorder.rows_of_steps()
    every = progress_every(config.steps)
    state = start.state if start else None
    with np.errstate(**kernel.errstate):  # what the kernel expects of floating point
        try:
            init = kernel.init()
            state = state or init
            checked = 0
            while True:
                t = state.step
                if hooks.progress is not None and t % every == 0:
                    hooks.progress(t, config.steps)
                if t in record_row:
                    kernel.observe(state, recorder.row(record_row[t]))
                if t in test_row:
                    recorder.record_test(test_row[t], *kernel.test_metrics(state))
                if t - checked >= CHECK_EVERY or t == config.steps:
                    _check_finite(kernel, recorder, init, state, checked)
                    checked = t
                if hooks.checkpoint is not None:
                    hooks.checkpoint(state, recorder, False)
                if t == config.steps:
                    break
                state = kernel.step(state)
            return kernel.result(init, state, recorder.arrays(), recorder.steps,
                                 recorder.test_steps)
        except KeyboardInterrupt:  # Ctrl-C (the CLI turns SIGTERM into it too)
            if hooks.checkpoint is not None and state is not None:
                hooks.checkpoint(state, recorder, True)  # records of state.step are redone
            raise


def _check_finite(kernel, recorder: Recorder, init, state, since: int) -> None:
    """Raise NonFiniteError at the first recorded step after ``since`` with a NaN or inf."""
    bad = recorder.first_nonfinite(since, state.step, skip=kernel.deferred)
    if bad is None:
        return
    step, stored = bad
    part = recorder.until(step)
    result = kernel.result(init, state, part.arrays(), part.steps, part.test_steps)
    raise NonFiniteError(step, kernel.quantities_of(stored), result)

