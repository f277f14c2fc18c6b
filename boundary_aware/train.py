"""Training: `boundary-aware-train --config=experiments/table1.py:ours --workdir=DIR`.

The loop: builds the input pipeline (tf.data, or a PyDataset where TensorFlow
is absent), the model and optimizer (in the scope `boundary_aware.runtime`
chooses), and trains with the per-output losses of Eq. 3 and the poly
learning rate of Eq. 6. After every epoch `checkpointing.EpochCheckpoint`
records the validation Dice, the history, the last state and the best model,
each written atomically. Rerunning the same command resumes from the last
completed epoch, from a checkpoint verified against the state
(`checkpointing.resume_point`). The run directory is locked while training.
A NaN loss or a full disk stops training with an error; the last completed
epoch's files are kept. Also `python -m boundary_aware.train`.

Reference: Hatamizadeh et al. 2019, Sec. 2.3 (Eq. 3) and 3.2 (Eq. 6).
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from boundary_aware import losses, runtime
from boundary_aware.augment import AugmentConfig
from boundary_aware.batches import edge_kind, plain_batch
from boundary_aware.channels import parse_sequences
from boundary_aware.checkpointing import (EpochCheckpoint, ResumeError, data_fingerprint,
                                          new_state, resume_point, step_back_to)
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.config import check_config, upgrade
from boundary_aware.epochs import EpochClock
from boundary_aware.errors import ConfigError, DataError, LockedError
from boundary_aware.prepared import Manifest, load_prepared, load_tumor_free
from boundary_aware.regions import parse_regions
from boundary_aware.slices import with_tumor_free
from boundary_aware.files import atomic_file, atomic_save_model
from boundary_aware.model_files import load_keras_model
from boundary_aware.models import build_model, spec
from boundary_aware.run_directory import RunDirectory

# Keras warns, at every trace, that the edge head of a run without edge loss
# gets no gradient. That is what the "no edge loss" row means (the shape
# stream is then unsupervised); `train` says so once instead.
_EDGE_HEAD_WARNING = re.escape("Gradients do not exist for variables ['edge_projection/")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, a workdir made by another config, ...)."""


def poly_learning_rate(epoch: int, lr0: float, epochs: int, power: float = 0.9) -> float:
    """Eq. 6: lr0 * (1 - e / N) ** power, for the 0-based epoch e."""
    return float(lr0 * (1.0 - epoch / epochs) ** power)


def loss_setup(config, output_names) -> tuple[dict, dict]:
    """`(losses, targets)` of Eq. 3 for a model with `output_names` under the config
    (`losses.compile_losses`): the loss dict for `compile`, and the data's `y` keys (the
    edge target of the regions' union under `loss.edge_target = "union"`)."""
    options = losses.LossOptions(config.loss.generalized_dice, config.loss.edge_bce_reduction)
    loss, targets = losses.compile_losses(output_names, config.loss.weights.to_dict(), options)
    if config.loss.edge_target == "union":
        targets = {k: "edge_union" if kind == "edge" else kind for k, kind in targets.items()}
    return loss, targets


def output_keywords(config) -> dict:
    """The model keywords that follow from the data: `regions` (one map per region of
    `data.regions`) and, for a model with an edge output, `edge_maps` (one per region, or
    one for their union: `loss.edge_target`)."""
    regions = len(parse_regions(config.data.regions))
    keywords = {"regions": regions}
    if "edge" in spec(config.model.name).outputs:
        keywords["edge_maps"] = 1 if config.loss.edge_target == "union" else regions
    return keywords


def make_inputs(config, images, masks, initial_epoch: int, targets: dict):
    """`(batches, callbacks)`: training batches, tf.data or a PyDataset as
    `runtime.uses_tf_data` says (where several processes train one model, this
    process's share of every batch), and the callbacks `fit` needs for them (the
    `EpochClock` that tells them each epoch)."""
    kwargs = dict(batch_size=config.train.batch_size, targets=targets, seed=config.train.seed,
                  shuffle=True, augment=AugmentConfig.from_dict(config.data.augment.to_dict()),
                  edge_width=config.loss.edge_width, initial_epoch=initial_epoch,
                  sequences=len(parse_sequences(config.data.sequences)),
                  shard=runtime.process_shard())
    clock = EpochClock(initial_epoch)
    if runtime.uses_tf_data(config.data.pipeline):
        from boundary_aware.data_pipeline import make_dataset
        return make_dataset(images, masks, **kwargs, clock=clock), [clock]
    from boundary_aware.pydataset import SliceDataset
    return SliceDataset(images, masks, **kwargs, clock=clock), [clock]


def build_and_compile(config, precision: str, channels: int) -> keras.Model:
    """The config's model for `channels` input channels under dtype policy `precision`,
    compiled with Eq. 3's losses and Adam."""
    keras.config.set_dtype_policy(precision)
    size = config.data.image_size
    model = build_model(config.model.name, input_shape=(size, size, channels),
                        **config.model.kwargs.to_dict(), **output_keywords(config))
    loss, _ = loss_setup(config, model.output_names)
    model.compile(keras.optimizers.Adam(config.train.learning_rate), loss=loss,
                  jit_compile=runtime.jit_compile_setting(config.train.jit_compile),
                  steps_per_execution=config.train.steps_per_execution)
    return model


def build_training_state(model, images, masks, config, targets: dict) -> None:
    """Create the optimizer's and the compiled loss's variables now, eagerly.

    Otherwise Keras on TensorFlow creates them while tracing the train step,
    and tf.function then traces the step a second time: for the
    boundary-aware network that doubled the first step (~40 s instead of ~20 s
    on 2 CPU cores). Builds on one unaugmented batch, with training=False, so
    no weight, statistic or random state changes.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    rows = np.arange(min(len(images), int(config.train.batch_size)))
    x, y = plain_batch(images, masks, rows, config.loss.edge_width, targets)
    model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)


def check_data(config, manifest: Manifest, prepared) -> None:
    """TrainingError unless the prepared data is what the config asks for (slice size,
    channels and regions in order)."""
    if manifest.image_size != config.data.image_size:
        raise TrainingError(f"{prepared}: slices are {manifest.image_size} px, "
                            f"the config asks for {config.data.image_size}")
    for what, held, key, parse in (("sequences", manifest.sequences, "sequences", parse_sequences),
                                   ("regions", manifest.regions, "regions", parse_regions)):
        wanted = parse(config.data[key])
        if held != wanted:
            raise TrainingError(f"{prepared}: holds the {what} {','.join(held)}, the config asks "
                                f"for data.{key} = {','.join(wanted)}; prepare the data with "
                                f"--{key}={','.join(wanted)}")
    wanted = int(config.data.context_slices)
    if manifest.context_slices != wanted:  # the sequences agree: the context differs
        raise TrainingError(f"{prepared}: holds {manifest.context_slices} neighbouring slices on "
                            f"each side as context, the config asks for data.context_slices = "
                            f"{wanted}; prepare the data with --context_slices={wanted}")


def statistics_from(config, images, processes: int):
    """`EpochCheckpoint`'s `statistics`: the training slices and `train.bn_statistics_batches`
    to recompute batch-norm statistics from at every epoch's end (None: 0 batches, the
    moving averages stay)."""
    batches = int(config.train.bn_statistics_batches)
    if batches == 0:
        return None
    if processes > 1:
        raise TrainingError("train.bn_statistics_batches is not offered with several processes; "
                            "set it to 0")
    return images, batches, int(config.train.batch_size), int(config.train.seed)


def _start_or_check(run: RunDirectory, config, manifest: Manifest, prepared: Path) -> None:
    """Write the run's config, or check that an existing run was made with this one (its
    stored config read under today's keys, `config.upgrade`). A config left by a start
    that never finished an epoch (no state, no checkpoint: nothing was trained under it,
    e.g. a first start that failed) is replaced."""
    resolved = json.loads(config.to_json())
    nothing_trained = not run.state_path.exists() and not run.has_checkpoints()
    if run.config_path.exists() and not nothing_trained:
        stored = run.read_config()
        if upgrade(stored) != resolved:
            made_by = (run.read_state() or {}).get("package_version")
            by = f" (made by boundary-aware {made_by})" if made_by else ""
            raise TrainingError(f"{run.path}: holds a run made with another config{by}; "
                                f"use a new --workdir (see {run.config_path})")
    else:
        run.write_config(resolved)


def train(config, workdir, callbacks: Sequence[keras.callbacks.Callback] = (),
          restart: bool = False) -> dict:
    """Train (or resume) one run in `workdir`; returns the final state dict.

    `callbacks` are added to Keras's `fit` after the package's own. The run
    directory is locked while training (a second training there refuses).
    A workdir holding checkpoints but no `state.json` cannot be resumed
    exactly and is refused unless `restart` (train again from epoch 0).
    """
    check_config(config)  # ConfigError naming the key, before anything is created
    manifest = Manifest.read(config.data.prepared_dir)  # before anything is created
    check_data(config, manifest, config.data.prepared_dir)
    run = RunDirectory(workdir)
    if run.path.exists() and not run.path.is_dir():
        raise TrainingError(f"{run.path}: exists and is not a folder")
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        return _train_locked(run, config, manifest, callbacks, restart)


def _resume(run: RunDirectory, manifest: Manifest, prepared: Path, precision: str,
            restart: bool) -> tuple[Path | None, dict]:
    """(checkpoint to resume from or None, state): a new run's first state, or the
    verified resume point of one that trained before, at the epoch every process
    completed."""
    state = run.read_state()
    if state is None:
        if run.has_checkpoints() and not restart:
            raise TrainingError(f"{run.path}: holds checkpoints but no state.json, so it cannot "
                                f"be resumed exactly; pass --restart to train it again from "
                                f"epoch 0 (its checkpoints are then replaced)")
        state = new_state(prepared, precision, manifest)
    if state["data_manifest_sha256"] != data_fingerprint(prepared):
        raise TrainingError(f"{prepared}: the prepared data changed since this run started "
                            f"(manifest hash differs); use a new --workdir")
    start_from = None
    try:
        if state["epoch"] > 0:
            start_from, state = resume_point(run, state)
        # several processes resume together from the epoch all of them completed
        common = min(runtime.gather_from_processes(state["epoch"]))
        return step_back_to(run, start_from, state, common)
    except ResumeError as err:
        raise TrainingError(str(err)) from None


def _already_trained(run: RunDirectory, state: dict, start_from: Path | None) -> dict:
    """The state of a run that has trained every epoch, completed on disk."""
    if not run.checkpoint("final").exists():  # stopped between the last two writes
        with atomic_file(run.checkpoint("final")) as tmp:
            shutil.copyfile(start_from, tmp)
    if not state.get("completed"):
        state["completed"] = True
        run.write_state(state)
    print(f"{run.path}: already trained for {state['epoch']} epochs", flush=True)
    return state


def _training_slices(config, prepared: Path, processes: int):
    """(images, masks, validation images, validation masks) of the prepared data, with the
    run's tumor-free slices (fixed for the run by its seed) among the training ones."""
    if config.train.batch_size % processes:
        raise TrainingError(f"train.batch_size = {config.train.batch_size} cannot be split "
                            f"across {processes} processes; give a multiple of {processes}")
    images, masks, _ = load_prepared(prepared, "train")
    val_images, val_masks, _ = load_prepared(prepared, "val")
    if len(images) == 0:
        raise TrainingError(f"{prepared}: the train split is empty")
    fraction = float(config.data.tumor_free_fraction)
    if fraction > 0:
        images, masks = with_tumor_free(images, masks, load_tumor_free(prepared), fraction,
                                        config.train.seed)
    return images, masks, val_images, val_masks


def _train_locked(run: RunDirectory, config, manifest: Manifest, callbacks,
                  restart: bool) -> dict:
    prepared = Path(config.data.prepared_dir)
    _start_or_check(run, config, manifest, prepared)
    precision = runtime.resolve_precision(config.train.precision)
    runtime.seed_everything(config.train.seed, config.train.deterministic)
    start_from, state = _resume(run, manifest, prepared, precision, restart)
    epochs = int(config.train.epochs)
    if state["epoch"] >= epochs:
        return _already_trained(run, state, start_from)
    _, processes = runtime.process_shard()
    images, masks, val_images, val_masks = _training_slices(config, prepared, processes)
    with runtime.distribution_scope():
        if start_from is not None:
            keras.config.set_dtype_policy(precision)
            model = load_keras_model(start_from, compile=True)
            print(f"{run.path}: resuming after epoch {state['epoch']}", flush=True)
        else:
            model = build_and_compile(config, precision, len(manifest.channels))
        # the edge target only where a loss uses it (not for U-Net, V-Net, "no edge loss")
        _, targets = loss_setup(config, model.output_names)
        build_training_state(model, images, masks, config, targets)
    inputs, input_callbacks = make_inputs(config, images, masks, state["epoch"], targets)
    checkpoint = EpochCheckpoint(run, val_images, val_masks, config.eval.batch_size,
                                 config.eval.threshold, state,
                                 statistics_from(config, images, processes))
    schedule = keras.callbacks.LearningRateScheduler(
        lambda e: poly_learning_rate(e, config.train.learning_rate, epochs, config.train.poly_power))
    all_callbacks = [*input_callbacks, schedule, checkpoint]
    if keras.backend.backend() == "tensorflow":
        all_callbacks.append(keras.callbacks.TensorBoard(run.tensorboard_path, write_graph=False))
    all_callbacks += list(callbacks)
    try:
        _fit(run, model, inputs, config, state, targets, all_callbacks)
        if checkpoint.nan_batch is not None:
            epoch, batch, loss = checkpoint.nan_batch
            raise TrainingError(f"{run.path}: loss became {loss} in epoch {epoch + 1}, batch "
                                f"{batch}; stopped. The checkpoint of the last completed epoch "
                                f"({state['epoch']}) is kept in last.keras")
        atomic_save_model(model, run.checkpoint("final"))
        state["completed"] = True
        run.write_state(state)
    except OSError as err:  # a full or failing disk: every file written so far is whole
        raise TrainingError(f"{run.path}: cannot write ({err}); the files of the last completed "
                            f"epoch ({state['epoch']}) are intact: rerun the same command to "
                            f"resume once the disk is fixed") from None
    return state


def _fit(run: RunDirectory, model, inputs, config, state: dict, targets: dict,
         callbacks) -> None:
    """`model.fit` from the state's epoch to the last, saying once (and not at every
    trace) that an edge head without a loss is not trained."""
    with warnings.catch_warnings():
        if "edge" in model.output_names and edge_kind(targets) is None:
            print(f"{run.path}: no edge loss in this run; the edge head is not trained "
                  f"(the shape stream is unsupervised)", flush=True)
            warnings.filterwarnings("ignore", message=_EDGE_HEAD_WARNING)
        model.fit(inputs, epochs=int(config.train.epochs), initial_epoch=state["epoch"],
                  callbacks=callbacks, verbose=runtime.fit_verbosity(config.train.verbose),
                  shuffle=False)  # the pipeline shuffles


def define_flags() -> None:
    from absl import flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "Experiment config file (and variant).")
    flags.DEFINE_string("workdir", None, "Run directory (created; reruns resume).")
    flags.DEFINE_bool("restart", False, "Train from epoch 0 in a workdir that holds checkpoints "
                      "but no state.json (its checkpoints are replaced).")
    flags.DEFINE_string("coordinator", None, "Several processes, one model (JAX): process 0's "
                        "host:port, the same in every process (docs/cluster.md).")
    flags.DEFINE_integer("num_processes", 1, "Processes that train this model together.")
    flags.DEFINE_integer("process_id", 0, "This process's number, 0 to --num_processes - 1.")
    flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
    from absl import flags
    del argv
    f = flags.FLAGS
    try:
        with exit_on(TrainingError, ConfigError, DataError, LockedError, runtime.ProcessError):
            runtime.join_processes(f.coordinator, f.num_processes, f.process_id)
            with runtime.stop_with_peers(f.workdir):
                train(f.config, f.workdir, restart=f.restart)
    except SystemExit as stop:
        runtime.leave_processes(stop.code, f.num_processes)
        raise


def cli() -> None:
    """Console entry point `boundary-aware-train`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
