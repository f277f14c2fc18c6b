"""The training config checked whole, before anything is written.

`check_config` looks at every key that training reads (`experiments/table1.py`
builds such a config) and at nothing else: a key it does not know, a value
outside what is allowed, a model keyword the model does not take, an
augmentation setting out of range, a loss term the model has no output for.
The first problem raises `ConfigError` naming the key, the value and what is
allowed, so `boundary-aware-train` prints one `error:` line and exits before
it creates the run directory.

Reference: docs/design.md ("Files on disk"); docs/usage.md ("Training and evaluation").
"""

from __future__ import annotations

import math
from typing import Any, Callable

from boundary_aware import losses, runtime
from boundary_aware.augment import AugmentConfig
from boundary_aware.data import MAX_CONTEXT_SLICES, parse_modalities, parse_regions
from boundary_aware.errors import ConfigError
from boundary_aware.inference import TTA_CHOICES
from boundary_aware.models import MODELS, check_image_size, spec
from boundary_aware.run_directory import CHECKPOINTS


MAX_BATCH = 1024  # slices per batch: beyond it, a batch only spends memory


def _int(low=None, high=None):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or \
                (low is not None and value < low) or (high is not None and value > high):
            bounds = (f" from {low} to {high}" if high is not None else
                      f" >= {low}" if low is not None else "")
            return f"must be an integer{bounds}"
    return check


def _positive_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        return "must be a number > 0"


def _probability_threshold(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        return "must be a number between 0 and 1"


def _one_of(allowed):
    def check(value):
        if isinstance(value, bool) or value not in allowed:
            return f"must be one of {tuple(allowed)}"
    return check


def _boolean(value):
    if not isinstance(value, bool):
        return "must be true or false"


def _string(value):
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"


def _tumor_free_fraction(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        return "must be a number in [0, 1): the share of training slices without tumor"


def _context_slices(value):
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 0 <= value <= MAX_CONTEXT_SLICES:
        return (f"must be an integer in [0, {MAX_CONTEXT_SLICES}]: the neighbouring slices on "
                f"each side stacked as channels")


def _modalities(value):
    try:
        parse_modalities(value)
    except ValueError as err:
        return str(err)


def _regions(value):
    try:
        parse_regions(value)
    except ValueError as err:
        return str(err)


def _verbosity(value):
    if value != "auto" and (isinstance(value, bool) or value not in (0, 1, 2)):
        return f"must be one of {runtime.VERBOSITY}"


# Every key training reads and its check (None: checked as a whole below).
SCHEMA: dict[str, dict[str, Callable[[Any], str | None] | None]] = {
    "": {"variant": _string, "profile": _string},
    "model": {"name": _one_of(sorted(MODELS)), "kwargs": None},
    "loss": {"weights": None, "generalized_dice": _boolean, "edge_width": _int(1),
             "edge_bce_reduction": _one_of(losses.BCE_REDUCTIONS),
             "edge_target": _one_of(losses.EDGE_TARGETS)},
    "data": {"prepared_dir": _string, "image_size": _int(1), "modalities": _modalities,
             "regions": _regions, "context_slices": _context_slices,
             "augment": None,
             "pipeline": _one_of(runtime.PIPELINES), "tumor_free_fraction": _tumor_free_fraction},
    "train": {"epochs": _int(1), "batch_size": _int(1, MAX_BATCH),
              "learning_rate": _positive_number,
              "poly_power": _positive_number, "seed": _int(0),
              "precision": _one_of(runtime.PRECISIONS),
              "jit_compile": _one_of(sorted(runtime.JIT_COMPILE)),
              "steps_per_execution": _int(1), "bn_statistics_batches": _int(0, 10_000), "deterministic": _boolean,
              "verbose": _verbosity},
    "eval": {"threshold": _probability_threshold, "batch_size": _int(1, MAX_BATCH),
             "checkpoint": _one_of(CHECKPOINTS), "tta": _one_of(TTA_CHOICES), "postprocess": _boolean},
}


def _fail(key, value, problem):
    raise ConfigError(f"config: {key} = {value!r}: {problem}")


def check_config(config) -> None:
    """ConfigError for the first key of `config` (a ConfigDict or a dict) that training
    cannot use (module docstring); nothing else is read or written."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    for section, keys in SCHEMA.items():
        table = values if not section else values.get(section)
        if not isinstance(table, dict):
            _fail(section, table, f"must be a group of settings {sorted(keys)}")
        known = set(keys) | (set(SCHEMA) - {""} if not section else set())
        for key in sorted(set(table) - known):
            _fail(f"{section}.{key}".lstrip("."), table[key],
                  f"unknown setting; {section or 'the config'} takes {sorted(keys)}")
        for key, check in keys.items():
            name = f"{section}.{key}".lstrip(".")
            if key not in table:
                _fail(name, None, "missing")
            problem = check(table[key]) if check else None
            if problem:
                _fail(name, table[key], problem)
    model = values["model"]
    family = spec(model["name"])
    kwargs = model["kwargs"]
    if not isinstance(kwargs, dict):
        _fail("model.kwargs", kwargs, "must be a group of model keywords")
    try:
        family.check(kwargs)
    except ValueError as err:
        _fail("model.kwargs", kwargs, f"{model['name']}: {err}")
    try:
        check_image_size(values["data"]["image_size"], {model["name"]: kwargs})
    except ValueError as err:
        _fail("data.image_size", values["data"]["image_size"], str(err))
    weights = values["loss"]["weights"]
    if not isinstance(weights, dict):
        _fail("loss.weights", weights, f"must give a weight to each term of "
                                       f"{list(losses.TERM_NAMES)}")
    try:
        losses.check_weights(weights, family.outputs)
    except ValueError as err:
        _fail("loss.weights", weights, str(err))
    try:
        AugmentConfig.from_dict(values["data"]["augment"])
    except (ValueError, TypeError) as err:
        _fail("data.augment", values["data"]["augment"], str(err))
