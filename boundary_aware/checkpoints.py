"""Which checkpoint of a training run is scored, exported and used for prediction.

A run directory holds `best.keras` (highest validation Dice so far),
`last.keras` (the resume point) and, once training completes, `final.keras`
(the weights after the last epoch). The paper names no selection rule. The
rule, `config.eval.checkpoint`, is "final" by default: with Eq. 6 the learning
rate ends near zero, and the batch-norm moving statistics have settled by
then, whereas a "best" checkpoint chosen on a small validation split can come
from an early epoch whose statistics have not (the measurement behind this
choice is in the README, "Which checkpoint the table scores"). "best" stays
available, and `evaluate` scores both.
"""

import json
from pathlib import Path

CHECKPOINTS = ("final", "best", "last")
DEFAULT_RULE = "final"


def scored_checkpoint(config):
    """The checkpoint name ("final" or "best") that a run's config (a dict) asks to score."""
    name = config.get("eval", {}).get("checkpoint", DEFAULT_RULE)
    if name not in CHECKPOINTS:
        raise ValueError(f"eval.checkpoint must be one of {CHECKPOINTS}, got {name!r}")
    return name


def checkpoint_path(workdir, name=None):
    """Path of checkpoint `name` in a run directory; None: the run's rule (see module)."""
    workdir = Path(workdir)
    if name is None:
        config_path = workdir / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        name = scored_checkpoint(config)
    if name not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {name!r}")
    return workdir / f"{name}.keras"
