"""A training run's folder: the one place that knows its file names.

    WORKDIR/
        config.json    the resolved experiment config (written once, checked on resume)
        state.json     epochs done, best epoch, history and provenance (after every epoch)
        history.csv    the history as a table
        last.keras     the resume point (after every epoch)
        previous.keras the resume point before it, kept until the next one is complete
        best.keras     highest validation Dice so far
        final.keras    the weights after the last epoch (once training completes)
        metrics.json   the test scores (`boundary_aware.evaluate`; format `METRICS_FORMAT`)
        tensorboard/   TensorBoard logs (TensorFlow backend)
        .lock          held by the process that trains or evaluates the run
        run.log        the run's messages, when an executor runs it away from the console

Which checkpoint is scored, exported and used for prediction: the paper names
no rule. Ours, `config.eval.checkpoint`, is "final" by default: with Eq. 6 the
learning rate ends near zero and the batch-norm moving statistics have
settled, whereas a "best" checkpoint chosen on a small validation split can
come from an early epoch whose statistics have not. "best" stays available,
and `evaluate` scores both (docs/design.md, "Which checkpoint").

Reference: Hatamizadeh et al. 2019, Sec. 3.2 (Eq. 6); docs/design.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from boundary_aware.errors import FormatError
from boundary_aware.files import atomic_write_text, exclusive_lock

CHECKPOINTS = ("final", "best", "last")
DEFAULT_RULE = "final"
# The scores' format: sample standard deviations (ddof = 1), the other checkpoint's slice
# and volume records under `checkpoints`, how the whole volumes were segmented
# (`whole_volume`: inside the head, the run's flips, the clean-up chosen on validation),
# and per volume each region's BraTS scores (`regions`). Readers refuse any other format
# (a file without `format_version` counts as 1).
METRICS_FORMAT = 5


def _read_record(path: Path, what: str, remedy: str) -> dict[str, Any]:
    """A JSON object a run keeps (its config, its state); FormatError naming the file, what
    it is and what to do when it cannot be read or is damaged."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: {what} is damaged or unreadable ({err}); {remedy}") from None
    if not isinstance(record, dict):
        raise FormatError(f"{path}: {what} is not a JSON object; {remedy}")
    return record


def read_metrics_file(path: str | os.PathLike) -> dict[str, Any]:
    """A run's `metrics.json`, checked to be of `METRICS_FORMAT` (`FormatError` otherwise,
    with the command that writes it again)."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: cannot read the scores ({err}); score the run again: "
                          f"boundary-aware-evaluate --workdir={path.parent}") from None
    version = metrics.get("format_version", 1) if isinstance(metrics, dict) else None
    if version != METRICS_FORMAT:
        raise FormatError(f"{path}: scores of format {version}, written by another version of "
                          f"this package (it reads format {METRICS_FORMAT}); score the run again: "
                          f"boundary-aware-evaluate --workdir={path.parent}")
    return metrics


def scored_checkpoint(config: dict) -> str:
    """The checkpoint name ("final", "best" or "last") that a run's config (a dict) asks to
    score."""
    name = config.get("eval", {}).get("checkpoint", DEFAULT_RULE)
    if name not in CHECKPOINTS:
        raise ValueError(f"eval.checkpoint must be one of {CHECKPOINTS}, got {name!r}")
    return name


class RunDirectory:
    """Paths and records of one training run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.state_path = self.path / "state.json"
        self.metrics_path = self.path / "metrics.json"
        self.history_path = self.path / "history.csv"
        self.tensorboard_path = self.path / "tensorboard"
        self.previous_path = self.path / "previous.keras"
        self.lock_path = self.path / ".lock"
        self.log_path = self.path / "run.log"

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @staticmethod
    def looks_like_one(path: str | os.PathLike) -> bool:
        """Whether `path` is a folder holding any checkpoint of a run."""
        return Path(path).is_dir() and any((Path(path) / f"{c}.keras").is_file()
                                           for c in CHECKPOINTS)

    def lock(self):
        """Context manager: this process alone trains or evaluates the run (`LockedError`
        names the holder otherwise)."""
        return exclusive_lock(self.lock_path, str(self.path))

    def has_checkpoints(self) -> bool:
        return any(self.checkpoint(c).is_file() for c in CHECKPOINTS) or self.previous_path.is_file()

    def checkpoint(self, name: str | None = None) -> Path:
        """Path of checkpoint `name`; None: the one the run's rule names (module docstring)."""
        if name is None:
            name = scored_checkpoint(self.read_config() if self.config_path.is_file() else {})
        if name not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {name!r}")
        return self.path / f"{name}.keras"

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.config_path}: not found; is {self.path} a training "
                                    f"run directory?")
        return _read_record(self.config_path, "the run's config", "it cannot be trusted: train "
                            "again in a new --workdir")

    def threshold(self) -> float:
        """The probability threshold of the run's config (`eval.threshold`)."""
        return float(self.read_config()["eval"]["threshold"])

    def read_state(self) -> dict[str, Any] | None:
        """The training state, or None before the first epoch completes."""
        if not self.state_path.is_file():
            return None
        return _read_record(self.state_path, "the training state",
                            f"remove it and rerun training with --restart to train {self.path} "
                            f"from epoch 0, or train in a new --workdir")

    def read_metrics(self) -> dict[str, Any] | None:
        """The test scores (`read_metrics_file`), or None before evaluation."""
        return read_metrics_file(self.metrics_path) if self.metrics_path.is_file() else None

    def is_complete(self) -> bool:
        """Whether training has run to its last epoch and written final.keras."""
        return bool((self.read_state() or {}).get("completed"))

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.config_path, json.dumps(config, indent=1, sort_keys=True))

    def write_state(self, state: dict) -> None:
        atomic_write_text(self.state_path, json.dumps(state, indent=1))

    def write_metrics(self, metrics: dict) -> dict:
        """Write `metrics.json`, stamped with `METRICS_FORMAT`; returns what was written."""
        stamped = {"format_version": METRICS_FORMAT, **metrics}
        atomic_write_text(self.metrics_path, json.dumps(stamped, indent=1))
        return stamped

    def needs_evaluation(self) -> bool:
        """No metrics yet, metrics older than the scored checkpoint, or of another format."""
        if not self.metrics_path.exists():
            return True
        scored = self.checkpoint()
        if scored.exists() and self.metrics_path.stat().st_mtime < scored.stat().st_mtime:
            return True
        try:
            self.read_metrics()
        except FormatError:
            return True
        return False
