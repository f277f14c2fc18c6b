"""SavedModel export: `boundary-aware-export --workdir=DIR --out=DIR [--checkpoint=final]`.

Writes a TensorFlow SavedModel of a run's checkpoint with one serving
signature, `serve`, over float32 slices of any batch size: input `images`,
shape (batch, H, W, 1), T1c slices normalized as in training (per volume,
clipped to the 0.5 and 99.5 brain-voxel percentiles, scaled to [0, 1],
background 0) at the training size H x W. It returns float32 `seg` (the
tumor-core probability) and, for the boundary-aware model, `edge` (the
boundary probability), also when the model was trained in mixed precision.
Beside it, `model_card.json`: model, config, data manifest hash, test
metrics, input specification, package and library versions, and a SHA-256 of
every exported file. Written to a temporary folder and renamed into place; an
existing export is never replaced unless --overwrite.

This module imports TensorFlow (with the data pipeline and `boundary_aware.runtime`, the
only ones that do).

Reference: Hatamizadeh et al. 2019 (the model); TensorFlow SavedModel format.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

import boundary_aware.layers  # noqa: F401  (registers the custom layers for loading)
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.files import atomic_folder, file_sha256
from boundary_aware.run_directory import CHECKPOINTS, RunDirectory
from boundary_aware.version import __version__


class ExportError(RuntimeError):
    """The export cannot be written (missing checkpoint, existing output, ...)."""


def export_model(model, out: str | os.PathLike, card: dict | None = None,
                 overwrite: bool = False) -> dict:
    """Export `model` as a SavedModel with a `serve` signature; returns the card."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: already exists; pass --overwrite to replace it")
    _, height, width, channels = model.input_shape
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        outputs = model(images, training=False)
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}
    archive.add_endpoint("serve", serve, input_signature=[
        tf.TensorSpec((None, height, width, channels), tf.float32, name="images")])
    with atomic_folder(out, replace=overwrite) as tmp:
        archive.write_out(str(tmp), verbose=False)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        card = dict(card or {})
        card.update({
            "format": "TensorFlow SavedModel",
            "signature": "serve",
            "input": {"name": "images", "dtype": "float32", "shape": [None, height, width, channels],
                      "description": "axial T1c slices, per-volume clipped to the 0.5/99.5 "
                                     "percentiles of the nonzero voxels, scaled to [0, 1], "
                                     "background 0, resized to the training size"},
            "outputs": {name: {"dtype": "float32", "shape": [None, height, width, 1]}
                        for name in model.output_names},
            "versions": {"boundary_aware": __version__, "keras": keras.__version__,
                         "tensorflow": tf.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "files": {str(p.relative_to(tmp)): file_sha256(p) for p in files},
        })
        (tmp / "model_card.json").write_text(json.dumps(card, indent=1, sort_keys=True))
    return card


def export_run(workdir: str | os.PathLike, out: str | os.PathLike, checkpoint: str | None = None,
               overwrite: bool = False) -> dict:
    """Export a training run's checkpoint (default: the one its rule scores, see
    `boundary_aware.run_directory`), with a model card built from the run."""
    run = RunDirectory(workdir)
    path = run.checkpoint(checkpoint)
    if not path.is_file():
        raise ExportError(f"{path}: no such checkpoint (train the run first)")
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    config = run.read_config()
    state = run.read_state() or {}
    m = run.read_metrics()
    test_metrics = None
    if m is not None:
        test_metrics = {key: m.get(key) for key in ("checkpoint", "per_slice", "per_volume",
                                                     "selected_slices")}
    card = {"model": config["model"]["name"], "variant": config["variant"],
            "checkpoint": path.name, "config": config,
            "data_manifest_sha256": state.get("data_manifest_sha256"),
            "trained_epochs": state.get("epoch"), "training_precision": state.get("precision"),
            "test_metrics": test_metrics}
    return export_model(model, out, card, overwrite)


def load_saved_model(path: str | os.PathLike) -> tuple[Callable, tuple[int, ...]]:
    """Load an exported SavedModel; returns a function images -> dict of numpy arrays."""
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serve"]

    def predict(images):
        outputs = serve(images=tf.convert_to_tensor(images, tf.float32))
        return {name: value.numpy() for name, value in outputs.items()}
    input_shape = tuple(serve.structured_input_signature[1]["images"].shape[1:])
    return predict, input_shape


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(ExportError):
        card = export_run(f.workdir, f.out, f.checkpoint, f.overwrite)
    print(f"{f.out}: SavedModel of {card['model']} ({card['checkpoint']}), signature 'serve', "
          f"input {card['input']['shape']}")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("workdir", None, "A training run directory.")
    flags.DEFINE_string("out", None, "Where to write the SavedModel (a new folder).")
    flags.DEFINE_enum("checkpoint", None, list(CHECKPOINTS),
                      "Which model to export (default: the run's eval.checkpoint rule, 'final').")
    flags.DEFINE_bool("overwrite", False, "Replace an existing export.")
    flags.mark_flags_as_required(["workdir", "out"])


def cli() -> None:
    """Console entry point `boundary-aware-export`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
