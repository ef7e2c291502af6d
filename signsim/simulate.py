"""``run(config) -> Result``: the arguments checked once, the replicas' Configs, a kernel
(``signsim.kernels``), the one loop (``signsim.loop``), and worker processes where asked
(``signsim.parallel``)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from . import budget
from .checkpoint import Checkpointer, finish
from .config import Config, preset
from .kernels import check_batch, make_kernel
from .loop import Hooks, NonFiniteError, drive
from .result import Result
from .tracker import select

__all__ = ["run", "run_batch", "resolve_config", "replica_configs", "VARIABLE"]

# what the replicas of one batch may differ in besides the seed: the fast kernel builds each
# replica's data, init and test set from its own Config, and scales each replica's step by
# its own lr (for optimizers that declare proportional_to_lr)
VARIABLE = ("lr", "sigma_p", "sigma_0")


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


def run(config=None, *, seeds=None, vary=None, record=None, progress=None, workers=None,
        checkpoint=None, checkpoint_every=None, **overrides) -> Result:
    """Train the two-layer transformer of the spec and record its dynamics.

    Parameters
    ----------
    config : Config, str or None
        A Config, the name of a preset (``"fig1"``, ``"fig2"``, ``"data_quality"``), or None
        for the defaults.
    seeds : sequence of int, optional
        Run one replica per seed in one vectorised pass (fast kernel only); every history
        array then gains a leading replica axis. ``result.replica(r)`` equals
        ``run(config, seed=seeds[r])`` bit for bit.
    vary : dict, optional
        Per-replica values of ``lr``, ``sigma_p`` and/or ``sigma_0`` (``VARIABLE``;
        sequences of one length R), batched like ``seeds`` (all replicas use
        ``config.seed`` unless ``seeds`` gives R seeds). ``result.configs[r]`` is the
        Config replica r ran.
    record : None, "summary" or sequence of str
        What to record: everything (None), the train and test loss and error
        (``"summary"``), or these names of ``tracker.DIMS``. The final weights are always
        kept; work for names not asked (the test set, most records) is skipped.
    progress : callable, optional
        Called as ``progress(t, steps)`` about a hundred times over the run (for a bar).
    workers : int, optional
        Worker processes for a batch: its replicas are split among them (``parallel``).
        The default, 1, runs everything in the calling thread. Results do not depend on it.
    checkpoint : str or Path, optional
        A .npz file to write the run's State and records to, atomically, every
        ``checkpoint_every`` steps, at the end, and when Ctrl-C stops the run;
        ``signsim.resume(checkpoint)`` continues it, bit for bit (``signsim.checkpoint``).
    checkpoint_every : int, optional
        Steps between two checkpoints; None (the default) writes one only when Ctrl-C
        stops the run.
    **overrides
        Config fields to replace, e.g. ``lr=2e-4, optimizer="adam"``.

    Returns
    -------
    Result
    """
    if seeds is not None and "seed" in overrides:
        raise ValueError("Give either the 'seed' parameter (one run) or 'seeds' (a batch), "
                         f"not both. Got seed={overrides['seed']!r} and seeds={seeds!r}.")
    vary = _checked_vary(vary, overrides)
    base = resolve_config(config, **overrides)
    names = select(record)
    workers = _checked_workers(workers)
    single = seeds is None and vary is None
    if single and workers != 1:
        raise ValueError("The 'workers' parameter splits the replicas of a batch; a single "
                         f"run has one. Got workers={workers} without seeds/vary.")
    configs = [base] if single else replica_configs(base, seeds, vary)
    check_batch(configs)  # the whole batch, before any split across processes
    vary = tuple(vary or ())
    if checkpoint is None and checkpoint_every is not None:
        raise ValueError("The 'checkpoint_every' parameter needs a 'checkpoint' file. "
                         f"Got checkpoint_every={checkpoint_every!r} without one.")
    if workers == 1:
        hook = None if checkpoint is None else Checkpointer(checkpoint, checkpoint_every,
                                                            configs, names, vary, single)
        return run_batch(configs, names, progress=progress, vary=vary, single=single,
                         checkpoint=hook)
    if checkpoint is not None:
        raise ValueError("The 'checkpoint' parameter needs workers=1: a batch split across "
                         f"processes is not checkpointed. Got workers={workers}.")
    from .parallel import run_in_processes

    budget.check(configs, names, workers=workers)
    return run_in_processes(configs, names, workers, progress=progress, vary=vary)


def run_batch(configs: list, names: tuple, *, progress=None, vary=(), single=False,
              layout=None, checkpoint=None) -> Result:
    """The replicas ``configs`` (a list of Configs that share everything but ``VARIABLE``
    and the seed) in one kernel and one loop, in the calling thread. ``single`` returns
    the one replica as a single-run Result; ``layout`` forces the fast kernel's layout;
    ``checkpoint`` is the loop's checkpoint hook."""
    budget.check(configs, names)  # before anything is allocated
    kernel = make_kernel(configs, names, layout=layout)
    if checkpoint is not None:  # a state it cannot write: now, not hours in
        with np.errstate(**kernel.errstate):
            checkpoint.check(kernel.init())
    try:
        result = drive(kernel, configs[0], Hooks(progress=progress, checkpoint=checkpoint))
    except NonFiniteError as error:
        error.result = finish(error.result, single, vary)
        raise
    return finish(result, single, vary)


def replica_configs(config: Config, seeds, vary) -> list[Config]:
    """One validated Config per replica of a batch."""
    vary = dict(vary or {})
    lengths = {k: len(v) for k, v in vary.items()}
    if seeds is not None:
        if isinstance(seeds, (str, bytes, Mapping)) or not hasattr(seeds, "__len__"):
            raise ValueError("The 'seeds' parameter must be a non-empty sequence of ints. "
                             f"Got {seeds!r} instead.")
        seeds = list(seeds)
        lengths["seeds"] = len(seeds)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"The 'seeds' and 'vary' sequences must have one length. Got {lengths}.")
    R = next(iter(lengths.values()), 0)
    if R == 0:
        raise ValueError("The 'seeds' parameter must be a non-empty sequence of ints. Got [].")
    if config.kernel == "dense":
        raise ValueError("The 'seeds' and 'vary' parameters need kernel='fast'; the dense "
                         "reference runs one configuration at a time. Got kernel='dense'.")
    seeds = seeds if seeds is not None else [config.seed] * R
    return [config.replace(seed=seeds[r], **{k: v[r] for k, v in vary.items()})
            for r in range(R)]


def _checked_vary(vary, overrides: dict) -> dict | None:
    if vary is None:
        return None
    if not isinstance(vary, Mapping):
        raise ValueError(f"The 'vary' parameter must be a dict mapping fields of {list(VARIABLE)} "
                         f"to sequences of per-replica values. Got {vary!r} instead.")
    for key, values in vary.items():
        if key not in VARIABLE:
            raise ValueError(f"The 'vary' parameter may set {list(VARIABLE)} per replica. "
                             f"Got {key!r} instead.")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise ValueError(f"The 'vary' parameter must map {key!r} to a sequence of "
                             f"per-replica values. Got {values!r} instead.")
        if key in overrides:
            raise ValueError(f"The {key!r} override ({overrides[key]!r}) conflicts with "
                             f"vary[{key!r}]: give the per-replica values in 'vary' only.")
    return dict(vary)


def _checked_workers(workers) -> int:
    if workers is None:
        return 1
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"The 'workers' parameter must be a positive int or None. "
                         f"Got {workers!r} instead.")
    return int(workers)
