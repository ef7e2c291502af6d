"""Fuzzing the boundary: random Config values and random run() keywords may give a result or
the documented error naming the parameter, nothing else (no other exception type, no
message without the name)."""

import math
import re

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

import signsim
from signsim.config import FIELDS

from .test_fast import OVERLAP

ODD = [0, 1, -1, 2, 7, 2**31, 2**62, 2**63, 2**64, 10**30, -10**30, 0.5, -0.0, 1e-300,
       1e300, math.nan, math.inf, -math.inf, True, False, None, "", "signgd", "fast",
       "random", [1], {"a": 1}, np.int64(3), np.float32(0.25), np.nan, b"x", 3 + 0j]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(FIELDS)), st.sampled_from(ODD), max_size=6))
def test_random_config_values_give_a_config_or_an_error_naming_a_field(values):
    """Property: Config(**values) either is built (every field then holds a plain int, float
    or str) or raises TypeError/ValueError whose message names a field (quoted) and mentions
    one of the fields given (a bound may be another field's: s <= d - 1)."""
    try:
        config = signsim.Config(**values)
    except (TypeError, ValueError) as exc:
        event(f"Config refused: {type(exc).__name__}")
        named = set(re.findall(r"'(\w+)'", str(exc)))
        words = set(re.findall(r"\w+", str(exc)))
        assert named & set(FIELDS), str(exc)  # the error names a field
        assert words & set(values), str(exc)  # ... and mentions one of those given
        return
    event("Config built")
    for name in FIELDS:
        assert type(getattr(config, name)) in (int, float, str), name


def mostly(valid: list, invalid: list):
    """Values of one keyword, valid three times in four (so that all five are valid often)."""
    return st.one_of(*[st.sampled_from(valid)] * 3, st.sampled_from(invalid))


SEEDS = mostly([None, [0, 5], [1, 2], range(2), np.arange(2)],
               [5, "12", [], [-1], [1.5], [2**70], [0, 1, 2]])
VARY = mostly([None, {"lr": [1e-2, 2e-2]}, {"sigma_p": [1.0, 2.0]}, {"sigma_0": [0.0, 0.1]}],
              [{"lr": 1e-2}, ["lr"], {"beta1": [0.5]}, {"lr": []}, {"lr": [-1.0]},
               {"lr": "ab"}, {"lr": [math.nan]}])
RECORD = mostly([None, "summary", ["margin"], "attention", ["test_loss", "margin"]],
                [[], ["nope"], 3])
WORKERS = mostly([None, 1, np.int64(1)], [0, -1, 1.5, True, "2"])
EVERY = mostly([None, 1, 3], [0, 2.5, True])
PARAMETERS = {"seeds", "seed", "vary", "record", "workers", "checkpoint", "checkpoint_every"}


@settings(max_examples=120, deadline=None)
@given(SEEDS, VARY, RECORD, WORKERS, EVERY, st.booleans())
def test_random_run_keywords_give_a_result_or_an_error_naming_the_parameter(
        tmp_path_factory, seeds, vary, record, workers, every, with_checkpoint):
    """Property: run() with any mix of these keywords returns a Result (a batch exactly when
    seeds or vary are given) or raises TypeError/ValueError naming a parameter."""
    kw = {"seeds": seeds, "vary": vary, "record": record, "workers": workers}
    if with_checkpoint:  # (checkpoint_every without a checkpoint: test_checkpoint.py)
        kw["checkpoint"] = tmp_path_factory.mktemp("ckpt") / "c.npz"
        kw["checkpoint_every"] = every
    base = {k: v for k, v in {**OVERLAP, "steps": 3, "n_test": 4}.items()
            if not (isinstance(vary, dict) and k in vary)}  # no conflicting override
    try:
        r = signsim.run(**base, **kw)
    except (TypeError, ValueError) as exc:
        event(f"run() refused: {type(exc).__name__}")
        named = set(re.findall(r"'(\w+)'", str(exc)))
        assert named & (PARAMETERS | set(FIELDS)), str(exc)  # e.g. not "'int' object ..."
        return
    event("run() gave a Result")
    assert r.batched == (seeds is not None or vary is not None)
