"""The kernels that train the network, behind one small interface that ``signsim.loop`` drives.

A kernel is built for a batch of replicas (one Config each; the dense reference takes one)
and the names to record, and provides::

    state = kernel.init()                 # State at step 0: W^(0)
    state = kernel.restore(t, params, opt_state)   # the State of a checkpoint
    state = kernel.step(state)            # one optimizer step: W^(t) -> W^(t+1)
    kernel.observe(state, out)            # records at state.step into `out` (views, (R, ...))
    loss, error = kernel.test_metrics(state)   # (R,) each, at state.step
    kernel.storage()                      # name -> record shape of what observe writes
    kernel.deferred                       # stored names filled by result(), not the loop
    kernel.quantities_of(stored)          # the recorded names a stored name holds
    kernel.replicas                       # R
    kernel.errstate                       # np.errstate keywords the loop runs it under
    kernel.result(init, final, arrays, steps, test_steps) -> Result

``State`` is immutable: ``step`` (t), the kernel's ``params`` and the optimizer's
``opt_state`` are everything needed to continue a run (with the kernel, which rebuilds its
constants from the Configs); ``forward`` is the forward pass at W^(t), kept because the
records, the test metrics and the next step's gradients all read it.

``dense`` is the reference (dense (m, d) weights, the readable functions of ``model`` and
``grads``); ``fast`` works on the active coordinates only. ``make_kernel`` chooses by
``Config.kernel``.

Arithmetic (``Config.arithmetic``, E20): both kernels compute gradients either with the
plain float64 formulas or, for ``"exact"``, in sign and log-magnitude form
(``signsim.logspace``) and hand them to the optimizer's ``log_form``; ``log_form_for`` says
which, from what the optimizer declares.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["State", "make_kernel", "check_batch", "log_form_for"]


class State(NamedTuple):
    step: int  # t: the weights are W^(t)
    params: Any  # the kernel's weights (a NamedTuple of ndarrays)
    opt_state: Any  # the optimizer's state (a NamedTuple)
    forward: Any  # the forward pass at W^(t) (derived from params)


def log_form_for(opt, config):
    """The optimizer's ``LogForm`` when ``config`` asks for exact arithmetic and the plain
    float64 update is not already exact; None for the plain float64 path.

    Raises
    ------
    ValueError
        For exact arithmetic and an optimizer that declares neither ``log_form`` nor
        ``float64_exact`` (its float64 steps could be decided by an underflow).
    """
    if config.arithmetic == "float64" or opt.float64_exact:
        return None
    if opt.log_form is None:
        raise ValueError(
            f"The optimizer {config.optimizer!r} declares neither a log_form nor "
            "float64_exact, so arithmetic='exact' cannot guarantee that no underflow decides "
            "its steps: declare one (signsim.optim docstring) or pass arithmetic='float64'. "
            "The 'arithmetic' parameter must be one of ['exact', 'float64'].")
    return opt.log_form


def check_batch(configs: list) -> None:
    """What every replica of one batch must share beyond its Config's own checks (run()
    asks before it splits a batch across processes, each kernel again)."""
    from ..optim import from_config

    opt = from_config(configs[0])
    if not opt.proportional_to_lr and len({c.lr for c in configs}) > 1:
        raise ValueError(f"The optimizer {configs[0].optimizer!r} does not declare "
                         "proportional_to_lr, so the replicas of one batch cannot differ in "
                         "'lr'; run one batch per lr.")
    log_form_for(opt, configs[0])


def make_kernel(configs: list, names: tuple, layout: str | None = None):
    """The kernel ``configs[0].kernel`` names, for these replicas and recorded names."""
    if configs[0].kernel == "dense":
        from .dense import DenseKernel

        if len(configs) != 1 or layout is not None:
            raise ValueError("The dense reference runs one configuration at a time, on dense "
                             "weights: 'seeds', 'vary', 'workers' > 1 and 'layout' need "
                             "kernel='fast'. Got kernel='dense'.")
        return DenseKernel(configs[0], names)
    from .fast import FastKernel

    return FastKernel(configs, names, layout=layout)
