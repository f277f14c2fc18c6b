"""A run's checkpoints and provenance: what training writes after every epoch.

`new_state` records where a run comes from (package version, git commit,
the prepared data's manifest hash and input channels, backend, precision); `EpochCheckpoint`
writes, after every epoch and each atomically, the validation Dice, the
history (`state.json` and `history.csv`), the last checkpoint (the resume
point) and the best one by validation Dice. File names come from
`boundary_aware.run_directory`.

Verified resumes: `state.json` records the SHA-256 of the checkpoint it
belongs to (`checkpoint_sha256`) and a snapshot of the epoch before
(`previous`). The new `last.keras` is complete before the old one becomes
`previous.keras`, and `state.json` is written last, so after a crash at any
point one of them matches the state (or the snapshot before it), and
`resume_point` finds it; a damaged or missing checkpoint falls back to the
kept one with a message, never silently to other weights.

Reference: Hatamizadeh et al. 2019, Sec. 3.2; docs/design.md ("Which checkpoint").
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

import keras
import numpy as np

from boundary_aware import batch_statistics, metrics, runtime
from boundary_aware.prepared import manifest_path
from boundary_aware.files import atomic_save_model, atomic_write_csv, file_sha256
from boundary_aware.run_directory import RunDirectory
from boundary_aware.version import __version__


def git_commit() -> str | None:
    """The package's git commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def data_fingerprint(prepared) -> str:
    """SHA-256 of a prepared dataset's manifest (it holds every source file's hash)."""
    return file_sha256(manifest_path(prepared))


def new_state(prepared, precision: str, manifest) -> dict:
    """The state of a run before its first epoch, with its provenance, from the prepared
    data's `manifest`: `input_channels` (which prediction reads back:
    `channels.input_channels`), `regions` (the maps of `seg`, in order) and `conventions`
    (the label conventions of the training data, which prediction writes label maps in)."""
    conventions = manifest.get("conventions") or sorted(
        {c["convention"] for c in manifest["cases"].values()})
    return {"epoch": 0, "best_val_dice": -1.0, "best_epoch": 0, "history": [],
            "package_version": __version__, "git_commit": git_commit(),
            "data_manifest_sha256": data_fingerprint(prepared),
            "input_channels": list(manifest.channels), "regions": list(manifest.regions),
            "conventions": list(conventions),
            "backend": keras.backend.backend(), "precision": precision}


ROLLBACK_KEYS = ("epoch", "best_val_dice", "best_epoch", "checkpoint_sha256")


class ResumeError(RuntimeError):
    """No checkpoint in the run directory matches its state."""


def _rolled_back(state: dict) -> dict | None:
    """The state of the epoch before, from the snapshot `state["previous"]`."""
    previous = state.get("previous")
    if not previous:
        return None
    return {**state, **previous, "history": state["history"][:previous["epoch"]], "previous": None}


def resume_point(run: RunDirectory, state: dict) -> tuple[Path | None, dict]:
    """(checkpoint to resume from, the state that goes with it); None: start from epoch 0.

    Tries `last.keras` against the state, then `previous.keras` against the
    state (a crash between the checkpoint and the state write) and against
    the state of the epoch before (`last.keras` damaged or lost), and says so
    when it falls back. Runs written before checksums were recorded resume
    from `last.keras` unverified.
    """
    last = run.checkpoint("last")
    if "checkpoint_sha256" not in state:  # written by an older version
        if not last.is_file():
            raise ResumeError(f"{last}: missing; state.json says {state['epoch']} epochs are done")
        return last, state
    older = _rolled_back(state)
    candidates = [(last, state, None),
                  (run.previous_path, state, "last.keras does not match state.json (a write "
                                             "was interrupted)"),
                  (run.previous_path, older, "last.keras is missing or damaged")]
    for path, candidate, why in candidates:
        if candidate is None:
            continue
        if candidate["epoch"] == 0:
            print(f"{run.path}: {why}; no earlier checkpoint is kept, so training restarts "
                  f"from epoch 0", flush=True)
            return None, candidate
        if path.is_file() and file_sha256(path) == candidate["checkpoint_sha256"]:
            if why:
                print(f"{run.path}: {why}; resuming from {path.name}, the checkpoint of epoch "
                      f"{candidate['epoch']}", flush=True)
            return path, candidate
    raise ResumeError(f"{last}: missing or damaged, and no kept checkpoint matches state.json "
                      f"(epoch {state['epoch']}); this run cannot be resumed exactly: train it "
                      f"in a new --workdir")


def mean_slice_dice(model, images, masks, batch_size: int, threshold: float) -> float:
    """Mean per-slice Dice on a validation set (empty-mask policy of metrics); with several
    regions, the mean over slices and regions."""
    if len(images) == 0:
        return float("nan")
    pred = model.predict(images, batch_size=batch_size, verbose=0)["seg"] > threshold
    return float(np.mean([metrics.dice_score(p[..., r], m[..., r] > 0)
                          for p, m in zip(pred, masks) for r in range(masks.shape[-1])]))


def step_back_to(run: RunDirectory, start_from: Path | None, state: dict,
                 epoch: int) -> tuple[Path | None, dict]:
    """The resume point of `epoch`, for a run at `state` (resumed from `start_from`) whose
    fellow processes stopped one epoch earlier (one was killed while it wrote its files):
    the kept checkpoint of the epoch before (`previous.keras`) and the state that goes with
    it. `ResumeError` where that epoch's checkpoint is not kept."""
    if epoch == state["epoch"]:
        return start_from, state
    older = _rolled_back(state) if epoch == state["epoch"] - 1 else None
    if older is None:
        raise ResumeError(f"{run.path}: is at epoch {state['epoch']}, another process of this "
                          f"training at epoch {epoch}, and no checkpoint of that epoch is kept "
                          f"here; train in new --workdir folders")
    if epoch == 0:
        return None, older
    path = run.previous_path
    if not (path.is_file() and file_sha256(path) == older["checkpoint_sha256"]):
        raise ResumeError(f"{path}: missing or damaged, and another process of this training "
                          f"stopped at epoch {epoch}; train in new --workdir folders")
    print(f"{run.path}: another process of this training stopped after epoch {epoch}; "
          f"resuming with it from {path.name}", flush=True)
    return path, older


def write_history_csv(path, history: list[dict]) -> None:
    """The history as CSV: epoch first, then the other columns in name order."""
    fields = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    atomic_write_csv(path, history, fields)


class EpochCheckpoint(keras.callbacks.Callback):
    """Per epoch: validation Dice, history, best and last checkpoints, state (module docstring).

    A non-finite loss stops training at the end of its batch (`nan_batch`
    says where); that epoch writes nothing, so the previous epoch's
    checkpoint stays the resume point.
    """

    def __init__(self, run: RunDirectory, val_images, val_masks, batch_size: int,
                 threshold: float, state: dict, statistics=None):
        """`statistics`: `(train_images, batches, batch_size, seed)` to recompute the
        batch-norm statistics from before every validation (`batch_statistics`); None:
        the moving averages of training stay."""
        super().__init__()
        self.statistics = statistics
        self.run = run
        self.val = (val_images, val_masks)
        self.batch_size = batch_size
        self.threshold = threshold
        self.state = state
        self.nan_batch = None
        self.epoch_start = None
        self.local_copy = None  # with several processes: the model on this one's devices

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_batch = (self.state["epoch"], batch, float(loss))
            self.model.stop_training = True

    def validation_dice(self) -> float:
        """`mean_slice_dice` on the validation slices. Where several processes train the
        model, each validates all of them on a copy of the model on its own devices (the
        same weights give every process the same number, so each keeps the same files)."""
        if runtime.process_shard()[1] == 1:
            return mean_slice_dice(self.model, *self.val, self.batch_size, self.threshold)
        with runtime.without_distribution():
            if self.local_copy is None:
                self.local_copy = keras.models.clone_model(self.model)
            self.local_copy.set_weights(self.model.get_weights())
            return mean_slice_dice(self.local_copy, *self.val, self.batch_size, self.threshold)

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_batch is not None:
            return  # keep the previous epoch's checkpoint: it is the backup
        logs = dict(logs or {})
        self.state["previous"] = {k: self.state.get(k) for k in ROLLBACK_KEYS}
        if self.statistics is not None:
            images, batches, batch_size, seed = self.statistics
            batch_statistics.recompute(self.model, images, batches, batch_size, (seed, epoch))
        val_dice = self.validation_dice()
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, "learning_rate": lr, "val_dice": val_dice,
               "seconds": round(time.time() - self.epoch_start, 3),
               **{k: float(v) for k, v in sorted(logs.items()) if k != "learning_rate"}}
        improved = math.isfinite(val_dice) and val_dice > self.state["best_val_dice"]
        best = self.run.checkpoint("best")
        if improved or not best.exists():
            atomic_save_model(self.model, best)
            self.state["best_val_dice"] = val_dice if math.isfinite(val_dice) else -1.0
            self.state["best_epoch"] = epoch + 1
        self.state["checkpoint_sha256"] = atomic_save_model(
            self.model, self.run.checkpoint("last"), previous=self.run.previous_path)
        self.state["epoch"] = epoch + 1
        self.state["history"].append(row)
        self.run.write_state(self.state)
        write_history_csv(self.run.history_path, self.state["history"])
        print(f"epoch {epoch + 1}: loss {row.get('loss', float('nan')):.4f}, "
              f"val Dice {val_dice:.4f}, lr {lr:.2e}, {row['seconds']:.1f} s", flush=True)
