"""Every config key training reads: its default, what it allows, how an older run reads.

`KEYS` is the one place a config key is defined. Each `Key` gives the
library's default (the paper's setting: experiment files such as
`experiments/table1.py` only override), its check, and the value that a run's
stored `config.json` without the key means (`absent`: the behaviour from before
the key existed; `REQUIRED` where every run has it). `default_config` builds
the config from the defaults; `check_config` checks a config whole before
anything is written: a key it does not know, a value outside what is allowed,
a model keyword the model does not take, an augmentation setting out of range,
a loss term the model has no output for. The first problem raises
`ConfigError` naming the key, the value and what is allowed, so
`boundary-aware-train` prints one `error:` line and exits before it creates the
run directory. `upgrade` reads a stored config under today's keys (renamed
keys under their new names, absent keys at their `absent` value), for
resuming and scoring older runs.

Reference: docs/design.md ("The config, checked whole"); docs/usage.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from boundary_aware import losses, runtime
from boundary_aware.augment import AugmentConfig
from boundary_aware.channels import MAX_CONTEXT_SLICES, PAPER_SEQUENCES, parse_sequences
from boundary_aware.errors import ConfigError
from boundary_aware.inference.flips import DEFAULT_TTA, TTA_CHOICES
from boundary_aware.inference.options import MAX_BATCH as MAX_INFERENCE_BATCH
from boundary_aware.models import MODELS, check_image_size, spec
from boundary_aware.regions import PAPER_REGION, parse_regions
from boundary_aware.run_directory import CHECKPOINTS, DEFAULT_RULE

MAX_BATCH = 1024  # slices per training batch: beyond it, a batch only spends memory
REQUIRED = object()  # `Key.absent` of a key every stored config has


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


def _parsed_by(parse):
    def check(value):
        try:
            parse(value)
        except ValueError as err:
            return str(err)
    return check


def _verbosity(value):
    if value != "auto" and (isinstance(value, bool) or value not in (0, 1, 2)):
        return f"must be one of {runtime.VERBOSITY}"


@dataclass(frozen=True)
class Key:
    """One config key (module docstring). `check(value)` returns what is wrong, or None;
    None for a group checked as a whole by `check_config`."""

    default: Any
    check: Callable[[Any], str | None] | None
    absent: Any = REQUIRED
    renamed_from: str | None = None


KEYS: dict[str, dict[str, Key]] = {
    "": {"variant": Key("ours", _string), "profile": Key("paper", _string)},
    "model": {
        "name": Key("ours", _one_of(sorted(MODELS))),
        "kwargs": Key({}, None),  # keywords of the registry's builder (models/registry.py)
    },
    "loss": {
        "weights": Key(dict(losses.PAPER_WEIGHTS), None),  # {term: weight} of Eq. 3
        "generalized_dice": Key(False, _boolean),
        "edge_width": Key(2, _int(1)),
        "edge_bce_reduction": Key(losses.DEFAULT_BCE_REDUCTION,
                                  _one_of(losses.BCE_REDUCTIONS)),  # Eq. 5's reduction
        # several regions: an edge target per region or one of their union
        "edge_target": Key(losses.DEFAULT_EDGE_TARGET, _one_of(losses.EDGE_TARGETS),
                           absent=losses.DEFAULT_EDGE_TARGET),
    },
    "data": {
        "prepared_dir": Key("data/prepared", _string),
        "image_size": Key(240, _int(1)),
        # input sequences, in channel order (the paper: T1c)
        "sequences": Key(",".join(PAPER_SEQUENCES), _parsed_by(parse_sequences),
                         renamed_from="modalities"),
        # output maps, one per tumor region (the paper: TC)
        "regions": Key(PAPER_REGION, _parsed_by(parse_regions), absent=PAPER_REGION),
        # neighbouring slices on each side as channels (the paper: none)
        "context_slices": Key(0, _context_slices, absent=0),
        "augment": Key(AugmentConfig().to_dict(), None),
        # auto (tf.data on the TensorFlow backend, else PyDataset), tf, pydataset
        "pipeline": Key("auto", _one_of(runtime.PIPELINES)),
        # share of training slices without tumor (the paper: none)
        "tumor_free_fraction": Key(0.0, _tumor_free_fraction, absent=0.0),
    },
    "train": {
        "epochs": Key(100, _int(1)),  # the paper does not give the number
        "batch_size": Key(8, _int(1, MAX_BATCH)),
        "learning_rate": Key(1e-3, _positive_number),  # alpha_0 of Eq. 6
        "poly_power": Key(0.9, _positive_number),
        "seed": Key(0, _int(0)),
        # auto: bf16 on GPUs that have it, else fp16; float32 on a CPU
        "precision": Key("auto", _one_of(runtime.PRECISIONS)),
        "jit_compile": Key("auto", _one_of(sorted(runtime.JIT_COMPILE))),  # auto, on, off
        "steps_per_execution": Key(1, _int(1)),
        # batch-norm statistics recomputed at each epoch's end from this many unaugmented
        # training batches (batch_statistics.py); 0: the moving averages (the paper)
        "bn_statistics_batches": Key(0, _int(0, 10_000), absent=0),
        "deterministic": Key(True, _boolean),  # op determinism (TensorFlow), exact resumes
        # Keras progress bar on a terminal, one line per epoch otherwise
        "verbose": Key("auto", _verbosity),
    },
    "eval": {
        "threshold": Key(0.5, _probability_threshold),
        "batch_size": Key(16, _int(1, MAX_INFERENCE_BATCH)),
        # the scored checkpoint: final, best or last (run_directory)
        "checkpoint": Key(DEFAULT_RULE, _one_of(CHECKPOINTS), absent=DEFAULT_RULE),
        # whole volumes: test-time mirror axes (inference.flips), and the clean-up chosen
        # on the validation volumes (boundary_aware.postprocess)
        "tta": Key(DEFAULT_TTA, _one_of(TTA_CHOICES), absent="none"),
        "postprocess": Key(True, _boolean, absent=True),
    },
}


def default_config():
    """The config of every key's default, as an `ml_collections.ConfigDict` (experiment
    files override its values)."""
    import ml_collections
    values = {}
    for section, keys in KEYS.items():
        table = values if not section else values.setdefault(section, {})
        for name, key in keys.items():
            table[name] = json.loads(json.dumps(key.default))  # a copy: defaults stay
    config = ml_collections.ConfigDict(values)
    return config


def upgrade(stored: dict) -> dict:
    """A run's stored config under today's keys: a renamed key under its new name, and
    a key it lacks at the value that means the behaviour from before the key
    (`Key.absent`). Keys it has are kept as they are."""
    config = json.loads(json.dumps(stored))
    for section, keys in KEYS.items():
        table = config if not section else config.get(section)
        if not isinstance(table, dict):
            continue
        for name, key in keys.items():
            if key.renamed_from and key.renamed_from in table and name not in table:
                table[name] = table.pop(key.renamed_from)
            if name not in table and key.absent is not REQUIRED:
                table[name] = key.absent
    return config


def read_run_config(run) -> dict:
    """A `RunDirectory`'s `config.json`, `upgrade`d."""
    return upgrade(run.read_config())


def _fail(key, value, problem):
    raise ConfigError(f"config: {key} = {value!r}: {problem}")


def _check_keys(values: dict) -> None:
    """ConfigError for the first key missing, unknown or of a value its check refuses."""
    for section, keys in KEYS.items():
        table = values if not section else values.get(section)
        if not isinstance(table, dict):
            _fail(section, table, f"must be a group of settings {sorted(keys)}")
        known = set(keys) | (set(KEYS) - {""} if not section else set())
        for name in sorted(set(table) - known):
            renamed = [k for k, key in keys.items() if key.renamed_from == name]
            hint = (f"renamed {section}.{renamed[0]}" if renamed else
                    f"unknown setting; {section or 'the config'} takes {sorted(keys)}")
            _fail(f"{section}.{name}".lstrip("."), table[name], hint)
        for name, key in keys.items():
            label = f"{section}.{name}".lstrip(".")
            if name not in table:
                _fail(label, None, "missing")
            problem = key.check(table[name]) if key.check else None
            if problem:
                _fail(label, table[name], problem)


def check_config(config) -> None:
    """ConfigError for the first key of `config` (a ConfigDict or a dict) that training
    cannot use (module docstring); nothing else is read or written."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    _check_keys(values)
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
