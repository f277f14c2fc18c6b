"""Training: `python -m boundary_aware.train --config=experiments/table1.py:ours --workdir=DIR`.

Builds the input pipeline (tf.data, or a PyDataset where TensorFlow is
absent), the model and optimizer (inside a tf.distribute strategy on the
TensorFlow backend, or Keras's distribution API on JAX with several devices),
and trains with the per-output losses of Eq. 3 and the poly learning rate of
Eq. 6. After every epoch it records the validation Dice, the history, the
last state (`last.keras` + `state.json`) and the best model by validation
Dice (`best.keras`), each written atomically. Rerunning the same command
resumes from the last completed epoch. A NaN loss stops training with an
error; the last completed epoch's checkpoint is kept.

Reference: Hatamizadeh et al. 2019, Sec. 2.3 (Eq. 3) and 3.2 (Eq. 6).
"""

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from boundary_aware import losses, metrics
from boundary_aware.augment import AugmentConfig, sample_params
from boundary_aware.batches import assemble_batch
from boundary_aware.cli import exit_on
from boundary_aware.data import load_prepared, read_manifest
from boundary_aware.files import atomic_write_text, file_sha256
from boundary_aware.models import build_model
from boundary_aware.version import __version__

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, a workdir made by another config, ...)."""


def poly_learning_rate(epoch, lr0, epochs, power=0.9):
    """Eq. 6: lr0 * (1 - e / N) ** power, for the 0-based epoch e."""
    return float(lr0 * (1.0 - epoch / epochs) ** power)


def has_gpu():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "tensorflow":
        from boundary_aware.data_pipeline import tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch
        return torch.cuda.is_available()
    return False


def resolve_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "mixed_float16" if has_gpu() else "float32"
    return precision


def tensorflow_available():
    """Whether TensorFlow is installed (probed without importing it)."""
    import importlib.util
    return importlib.util.find_spec("tensorflow") is not None


def atomic_save_model(model, path):
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp-{os.getpid()}.keras")
    model.save(tmp)
    os.replace(tmp, path)


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def mean_slice_dice(model, images, masks, batch_size, threshold=0.5):
    """Mean per-slice Dice on a validation set (empty-mask policy of metrics)."""
    if len(images) == 0:
        return float("nan")
    pred = model.predict(images, batch_size=batch_size, verbose=0)["seg"] > threshold
    return float(np.mean([metrics.dice_score(p[..., 0], m[..., 0] > 0)
                          for p, m in zip(pred, masks)]))


class EpochCheckpoint(keras.callbacks.Callback):
    """Per epoch: validation Dice, history CSV, best and last checkpoints, state.json."""

    def __init__(self, workdir, val_images, val_masks, batch_size, state):
        super().__init__()
        self.workdir = Path(workdir)
        self.val = (val_images, val_masks)
        self.batch_size = batch_size
        self.state = state
        self.nan_batch = None
        self.epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_batch = (self.state["epoch"], batch, float(loss))
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_batch is not None:
            return  # keep the previous epoch's checkpoint: it is the backup
        logs = dict(logs or {})
        val_dice = mean_slice_dice(self.model, *self.val, self.batch_size)
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, "learning_rate": lr, "val_dice": val_dice,
               "seconds": round(time.time() - self.epoch_start, 3),
               **{k: float(v) for k, v in sorted(logs.items()) if k != "learning_rate"}}
        improved = math.isfinite(val_dice) and val_dice > self.state["best_val_dice"]
        if improved or not (self.workdir / "best.keras").exists():
            atomic_save_model(self.model, self.workdir / "best.keras")
            self.state["best_val_dice"] = val_dice if math.isfinite(val_dice) else -1.0
            self.state["best_epoch"] = epoch + 1
        atomic_save_model(self.model, self.workdir / "last.keras")
        self.state["epoch"] = epoch + 1
        self.state["history"].append(row)
        atomic_write_text(self.workdir / "state.json", json.dumps(self.state, indent=1))
        write_history_csv(self.workdir / "history.csv", self.state["history"])
        print(f"epoch {epoch + 1}: loss {row.get('loss', float('nan')):.4f}, "
              f"val Dice {val_dice:.4f}, lr {lr:.2e}, {row['seconds']:.1f} s", flush=True)


class KillSwitch(keras.callbacks.Callback):
    """Fault injection for the resume tests: SIGKILL this process at "EPOCH:BATCH".

    Enabled only by the environment variable BOUNDARY_AWARE_KILL_AT (1-based epoch,
    0-based batch); it simulates a crash in the middle of an epoch.
    """

    def __init__(self, spec):
        super().__init__()
        epoch, batch = spec.split(":")
        self.at = (int(epoch), int(batch))
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            import signal
            os.kill(os.getpid(), signal.SIGKILL)


def write_history_csv(path, history):
    fields = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


def make_inputs(config, images, masks, initial_epoch, with_edge):
    """Training batches: tf.data where TensorFlow is installed (or asked), else PyDataset."""
    pipeline = config.data.pipeline
    if pipeline not in ("auto", "tf", "pydataset"):
        raise ValueError(f"data.pipeline must be auto, tf or pydataset, got {pipeline!r}")
    if pipeline == "auto":  # tf.data on the TensorFlow backend, PyDataset on the others
        use_tf = keras.backend.backend() == "tensorflow" and tensorflow_available()
    else:
        use_tf = pipeline == "tf"
    kwargs = dict(batch_size=config.train.batch_size, seed=config.train.seed, shuffle=True,
                  augment=AugmentConfig.from_dict(config.data.augment.to_dict()),
                  edge_width=config.loss.edge_width, initial_epoch=initial_epoch,
                  with_edge=with_edge)
    if use_tf:
        from boundary_aware.data_pipeline import make_dataset
        return make_dataset(images, masks, **kwargs)
    from boundary_aware.pydataset import SliceDataset
    return SliceDataset(images, masks, **kwargs)


def _scope():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from boundary_aware.data_pipeline import distribution_strategy
        return distribution_strategy().scope()
    if backend == "jax":
        import jax
        if len(jax.devices()) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
    import contextlib
    return contextlib.nullcontext()


def jit_compile_setting(value):
    """Config string ("auto", "on", "off") to Keras's `jit_compile` argument."""
    settings = {"auto": "auto", "on": True, "off": False}
    if value not in settings:
        raise ValueError(f"train.jit_compile must be one of {sorted(settings)}, got {value!r}")
    return settings[value]


def build_and_compile(config, precision):
    keras.config.set_dtype_policy(precision)
    model = build_model(config.model.name,
                        input_shape=(config.data.image_size, config.data.image_size, 1),
                        **config.model.kwargs.to_dict())
    loss, loss_weights = losses.compile_losses(model.output_names, tuple(config.loss.weights),
                                               config.loss.generalized_dice,
                                               config.loss.edge_bce_reduction)
    model.compile(keras.optimizers.Adam(config.train.learning_rate), loss=loss,
                  loss_weights=loss_weights, jit_compile=jit_compile_setting(config.train.jit_compile),
                  steps_per_execution=config.train.steps_per_execution)
    return model


def build_training_state(model, images, masks, config, with_edge):
    """Create the optimizer's and the compiled loss's variables now, eagerly.

    Otherwise Keras on TensorFlow creates them while tracing the train step,
    and tf.function then traces the step a second time: for the
    boundary-aware network that doubled the first step (~40 s instead of ~20 s
    on 2 CPU cores). Builds on one unaugmented batch, with training=False, so
    no weight, statistic or random state changes.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    n = min(len(images), int(config.train.batch_size))
    identity = sample_params(n, 0, 0, AugmentConfig(enabled=False))
    x, seg, edge = assemble_batch(images, masks, np.arange(n), identity,
                                  config.loss.edge_width, with_edge)
    y = {"seg": seg, "edge": edge} if with_edge else {"seg": seg}
    model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)


def _verbose(setting):
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 0
    return int(setting)


def train(config, workdir):
    """Train (or resume) one run in `workdir`; returns the final state dict."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = Path(config.data.prepared_dir)
    manifest = read_manifest(prepared)
    if manifest["options"]["image_size"] != config.data.image_size:
        raise TrainingError(f"{prepared}: slices are {manifest['options']['image_size']} px, "
                            f"the config asks for {config.data.image_size}")
    resolved = json.loads(config.to_json())
    config_path = workdir / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != resolved:
            raise TrainingError(f"{workdir}: holds a run made with another config; "
                                f"use a new --workdir (see {config_path})")
    else:
        atomic_write_text(config_path, json.dumps(resolved, indent=1, sort_keys=True))

    precision = resolve_precision(config.train.precision)
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic and keras.backend.backend() == "tensorflow":
        from boundary_aware.data_pipeline import enable_determinism
        enable_determinism()

    state_path = workdir / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text())
    else:
        state = {"epoch": 0, "best_val_dice": -1.0, "best_epoch": 0, "history": [],
                 "package_version": __version__, "git_commit": git_commit(),
                 "data_manifest_sha256": file_sha256(prepared / "manifest.json"),
                 "backend": keras.backend.backend(), "precision": precision}
    if state["data_manifest_sha256"] != file_sha256(prepared / "manifest.json"):
        raise TrainingError(f"{prepared}: the prepared data changed since this run started "
                            f"(manifest hash differs); use a new --workdir")
    epochs = int(config.train.epochs)
    if state["epoch"] >= epochs:
        if not (workdir / "final.keras").exists():  # stopped between the last two writes
            shutil.copyfile(workdir / "last.keras", workdir / "final.keras")
        print(f"{workdir}: already trained for {state['epoch']} epochs", flush=True)
        return state

    images, masks, _ = load_prepared(prepared, "train")
    val_images, val_masks, _ = load_prepared(prepared, "val")
    if len(images) == 0:
        raise TrainingError(f"{prepared}: the train split is empty")
    with _scope():
        if state["epoch"] > 0:
            keras.config.set_dtype_policy(precision)
            model = keras.saving.load_model(workdir / "last.keras", safe_mode=True)
            print(f"{workdir}: resuming after epoch {state['epoch']}", flush=True)
        else:
            model = build_and_compile(config, precision)
        # the edge target only where a loss uses it (not for U-Net, V-Net, "no edge loss")
        with_edge = "edge" in model.output_names and any(config.loss.weights[1:])
        build_training_state(model, images, masks, config, with_edge)
    inputs = make_inputs(config, images, masks, state["epoch"], with_edge)
    checkpoint = EpochCheckpoint(workdir, val_images, val_masks, config.eval.batch_size, state)
    schedule = keras.callbacks.LearningRateScheduler(
        lambda e: poly_learning_rate(e, config.train.learning_rate, epochs, config.train.poly_power))
    callbacks = [schedule, checkpoint]
    if os.environ.get("BOUNDARY_AWARE_KILL_AT"):
        callbacks.append(KillSwitch(os.environ["BOUNDARY_AWARE_KILL_AT"]))
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(workdir / "tensorboard", write_graph=False))
    model.fit(inputs, epochs=epochs, initial_epoch=state["epoch"], callbacks=callbacks,
              verbose=_verbose(config.train.verbose), shuffle=False)  # the pipeline shuffles
    if checkpoint.nan_batch is not None:
        epoch, batch, loss = checkpoint.nan_batch
        raise TrainingError(f"{workdir}: loss became {loss} in epoch {epoch + 1}, batch {batch}; "
                            f"stopped. The checkpoint of the last completed epoch "
                            f"({state['epoch']}) is kept in last.keras")
    atomic_save_model(model, workdir / "final.keras")
    state["completed"] = True
    atomic_write_text(state_path, json.dumps(state, indent=1))
    return state


def main(argv):
    from absl import flags
    del argv
    with exit_on(TrainingError):
        train(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "Experiment config file (and variant).")
    flags.DEFINE_string("workdir", None, "Run directory (created; reruns resume).")
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
