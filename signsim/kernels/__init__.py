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

Data: the dense reference reads only the dense views of a data set (``X``, ``mu``, ``xi``),
so it runs any data. The fast kernel needs the facts ``FAST_NEEDS`` (a signal token
y_i mu_norm e_1, sparse noise off coordinate 1), which a data set's class declares
(``signsim.data``: ``Dataset.declares``); for data that does not declare them (the real
images of ``signsim.datasets``) ``check_batch`` refuses kernel="fast" and says to pass
kernel="dense", so that ``Config.kernel`` always names the kernel that ran.

Arithmetic (``Config.arithmetic``, E20): both kernels compute gradients either with the
plain float64 formulas or, for ``"exact"``, in sign and log-magnitude form
(``signsim.logspace``) and hand them to the optimizer's ``log_form``; ``log_form_for`` says
which, from what the optimizer declares.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["State", "make_kernel", "check_batch", "check_data", "log_form_for", "FAST_NEEDS"]


class State(NamedTuple):
    step: int  # t: the weights are W^(t)
    params: Any  # the kernel's weights (a NamedTuple of ndarrays)
    opt_state: Any  # the optimizer's state (a NamedTuple)
    forward: Any  # the forward pass at W^(t) (derived from params)


def log_form_for(opt, config):
    """The optimizer's ``LogForm`` when ``config`` asks for exact arithmetic and the plain
    float64 update is not already exact; None for the plain formulas (float64, or float32
    in the dense reference).

    Raises
    ------
    ValueError
        For exact arithmetic and an optimizer that declares neither ``log_form`` nor
        ``float64_exact`` (its float64 steps could be decided by an underflow).
    """
    if config.arithmetic != "exact" or opt.float64_exact:  # float64, float32: plain formulas
        return None
    if opt.log_form is None:
        raise ValueError(
            f"The optimizer {config.optimizer!r} declares neither a log_form nor "
            "float64_exact, so arithmetic='exact' cannot guarantee that no underflow decides "
            "its steps: declare one (signsim.optim docstring) or pass arithmetic='float64'. "
            "The 'arithmetic' parameter must be one of ['exact', 'float64', 'float32'] "
            "(float32 with kernel='dense' only).")
    return opt.log_form


def _fast_needs() -> frozenset:
    from ..data import SPARSE_NOISE, SPIKED_SIGNAL

    return frozenset({SPIKED_SIGNAL, SPARSE_NOISE})


FAST_NEEDS = _fast_needs()  # what the fast kernel assumes of the data (kernels.fast)


def check_data(config) -> None:
    """Refuse kernel="fast" on data whose class does not declare ``FAST_NEEDS``."""
    from ..data import dataset_class

    lacking = FAST_NEEDS - dataset_class(config).declares
    if config.kernel == "fast" and lacking:
        raise ValueError(
            f"The 'kernel' parameter must be 'dense' for data={config.data!r}: the fast "
            f"kernel assumes {' and '.join(sorted(lacking))}, which this data does not "
            "declare (signsim.data). The dense reference runs one configuration at a time: "
            "loop over seeds instead of passing 'seeds' or 'vary'. Got kernel='fast' instead.")


def check_batch(configs: list) -> None:
    """What every replica of one batch must share beyond its Config's own checks (run()
    asks before it splits a batch across processes, each kernel again), and that the
    kernel serves the data (``check_data``)."""
    from ..optim import from_config

    check_data(configs[0])
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
