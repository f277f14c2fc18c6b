"""SavedModel export: `boundary-aware-export --workdir=DIR --out=DIR [--checkpoint=final]`.

Writes a TensorFlow SavedModel of a run's checkpoint with one serving
signature, `serve`, over float32 slices of any batch size: input `images`,
shape (batch, H, W, C), the model's channels (the card names them; T1c for
the paper's models), each normalized as in training (per volume, clipped to
the 0.5 and 99.5 brain-voxel percentiles, scaled to [0, 1], background 0) at
the training size H x W. It returns the float32 probabilities: `seg` (the
tumor core) and, for the boundary-aware model, `edge` (the boundary), also
when the model was trained in mixed precision. Beside it, `model_card.json`:
model, config, data manifest hash, test metrics, input specification (with
the channels), package and library versions, and a SHA-256 of every exported
file. Written to a temporary folder and renamed into place; an
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

from boundary_aware import postprocess
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.channels import input_channels
from boundary_aware.errors import DataError
from boundary_aware.regions import recorded_regions
from boundary_aware.errors import LockedError
from boundary_aware.files import (atomic_folder, check_apart, check_only_ours, exclusive_lock,
                                  file_sha256)
from boundary_aware.model_files import check_contract, load_keras_model
from boundary_aware.models.registry import probability_outputs
from boundary_aware.run_directory import CHECKPOINTS, RunDirectory
from boundary_aware.version import __version__


class ExportError(RuntimeError):
    """The export cannot be written (missing checkpoint, existing output, ...)."""


CARD = "model_card.json"
_MOVE_THEM = "move them out of it, or export to another --out"
CARD_FORMAT = "TensorFlow SavedModel"

# Every operation our own exports hold (the three models, batch/group/no norm, float32 and
# both mixed precisions: tests/test_export_predict.py checks it), plus a few pure tensor ops.
# Nothing here reads or writes files, talks to a network or calls Python.
COMPUTE_OPS = frozenset({
    "Abs", "Add", "AddN", "AddV2", "AvgPool", "BatchToSpaceND", "BiasAdd", "BroadcastTo", "Cast",
    "ConcatV2", "Const", "Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative", "EnsureShape",
    "Exp",
    "ExpandDims", "FusedBatchNormV3", "Identity", "IdentityN", "Maximum", "MaxPool", "Mean",
    "Minimum", "Mul", "Neg", "NoOp", "Pack", "Pad", "PartitionedCall", "Placeholder", "RealDiv",
    "Relu", "Reshape", "ResizeBilinear", "Rsqrt", "Select", "SelectV2", "Shape", "Sigmoid",
    "Softplus", "SpaceToBatchND", "Sqrt", "Square", "SquaredDifference", "Squeeze",
    "StatefulPartitionedCall", "StopGradient", "StridedSlice", "Sub", "Sum", "Tanh", "Transpose",
    # variables (in memory)
    "AssignVariableOp", "ReadVariableOp", "VarHandleOp", "VarIsInitializedOp",
})
# What TensorFlow's own saver functions use (file I/O under TensorFlow's control): allowed
# only in the functions that the SavedModel's saver definition names.
SAVER_OPS = frozenset({"DisableCopyOnRead", "MergeV2Checkpoints", "RestoreV2", "SaveV2",
                       "ShardedFilename", "StaticRegexFullMatch", "StringJoin"})


class UnsafeModelError(DataError):
    """A SavedModel holds operations our exports never use, or cannot be read."""


def _called_functions(nodes):
    """Names of the functions that graph nodes call (function-valued attributes)."""
    names = set()
    for node in nodes:
        for attr in node.attr.values():
            if attr.func.name:
                names.add(attr.func.name)
            names.update(f.name for f in attr.list.func)
    return names


def saved_model_ops(path: str | os.PathLike) -> dict:
    """{function or "<graph>": set of op names} of a SavedModel, read without loading it,
    and the set of functions its saver uses (under the key "<saver>")."""
    from tensorflow.core.protobuf import saved_model_pb2
    from google.protobuf.message import DecodeError
    pb = Path(path) / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except (OSError, DecodeError) as err:
        raise UnsafeModelError(f"{pb}: not a readable SavedModel ({err})") from None
    ops = {}
    saver = set()
    for meta in proto.meta_graphs:
        graph = meta.graph_def
        functions = {f.signature.name: f for f in graph.library.function}
        ops["<graph>"] = ops.get("<graph>", set()) | {n.op for n in graph.node}
        for name, function in functions.items():
            ops[name] = {n.op for n in function.node_def}
        # the saver: the graph nodes its save and restore tensors name, and what they call
        roots = {meta.saver_def.save_tensor_name.split(":")[0], meta.saver_def.restore_op_name}
        pending = _called_functions(n for n in graph.node if n.name in roots)
        while pending:
            name = pending.pop()
            if name in saver or name not in functions:
                continue
            saver.add(name)
            pending |= _called_functions(functions[name].node_def)
        called_elsewhere = _called_functions(
            [n for n in graph.node if n.name not in roots] +
            [n for name, f in functions.items() if name not in saver for n in f.node_def])
        if saver & called_elsewhere:
            saver -= called_elsewhere  # a saver function reachable from the model is not one
    ops["<saver>"] = saver
    return ops


def check_saved_model(path: str | os.PathLike) -> None:
    """UnsafeModelError naming the first operation outside what our exports use."""
    ops = saved_model_ops(path)
    saver = ops.pop("<saver>")
    for function, names in sorted(ops.items()):
        allowed = COMPUTE_OPS | SAVER_OPS if function in saver else COMPUTE_OPS
        unknown = sorted(names - allowed)
        if unknown:
            raise UnsafeModelError(
                f"{path}: refused: the SavedModel runs operations that exports of this package "
                f"never use ({', '.join(unknown)} in {function}); a SavedModel is a program, and "
                f"these can read or write files or run code. If you trust its source, pass "
                f"--trust_model")


def is_export(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder written by `export_model` (its model card and SavedModel)."""
    card = read_card(path)
    return card is not None and card.get("format") == CARD_FORMAT and \
        (Path(path) / "saved_model.pb").is_file()


def export_files(path: str | os.PathLike) -> set[str]:
    """The files an export folder holds by its own card (the card and every file it lists):
    what `--overwrite` may replace there."""
    card = read_card(path) or {}
    files = card.get("files") if isinstance(card.get("files"), dict) else {}
    return {CARD} | {str(name) for name in files}


def read_card(path: str | os.PathLike) -> dict | None:
    """The model card of an export folder, or None where it has none (or not a readable one)."""
    try:
        card = json.loads((Path(path) / CARD).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def check_backend(out) -> None:
    """ExportError unless Keras runs on TensorFlow: the serving function is TensorFlow code,
    which a JAX-traced export cannot run. A run trained on JAX exports the same on
    TensorFlow (a .keras file loads on either)."""
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"{out}: a SavedModel is exported on the TensorFlow backend, and "
                          f"Keras runs on {keras.backend.backend()}; rerun with "
                          f"KERAS_BACKEND=tensorflow (runs trained on any backend export the "
                          f"same)")


def export_model(model, out: str | os.PathLike, card: dict | None = None,
                 overwrite: bool = False, channels=None, regions=None, conventions=()) -> dict:
    """Export `model` as a SavedModel with a `serve` signature; returns the card.

    `channels` names the input channels (default: `channels.input_channels`); `regions` the
    maps of its `seg` output (default: the paper's TC); `conventions` the label
    conventions of its training data (what predict writes label maps in)."""
    out = Path(out)
    check_backend(out)
    channels = input_channels(model.input_shape[1:], channels, str(out))
    regions = recorded_regions(regions, str(out))
    with exclusive_lock(out.with_name(f".{out.name}.lock"), str(out)):
        return _export_locked(model, out, card, overwrite, channels, regions, conventions)


def _export_locked(model, out: Path, card: dict | None, overwrite: bool, channels, regions,
                   conventions) -> dict:
    if out.exists():
        if not overwrite:
            raise ExportError(f"{out}: already exists; pass --overwrite to replace it")
        if not is_export(out):
            raise ExportError(f"{out}: is not an export of this package (no {CARD} and "
                              f"saved_model.pb): it is never replaced, not even with --overwrite")
        check_only_ours(out, export_files(out), "an export", _MOVE_THEM)
    if not out.parent.is_dir() and out.parent.exists():
        raise ExportError(f"{out.parent}: is not a folder")
    _, height, width, depth = model.input_shape
    outputs = probability_outputs(model.output_names)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        # the signature alone does not check sizes at run time: say which one is expected
        images = tf.ensure_shape(images, (None, height, width, depth))
        result = model(images, training=False)
        return {name: tf.cast(result[name], tf.float32) for name in outputs}
    archive.add_endpoint("serve", serve, input_signature=[
        tf.TensorSpec((None, height, width, depth), tf.float32, name="images")])
    with atomic_folder(out, replace=overwrite, ours=export_files(out), what="an export",
                       instead=_MOVE_THEM) as tmp:
        archive.write_out(str(tmp), verbose=False)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        card = dict(card or {})
        card.update({
            "format": CARD_FORMAT,
            "signature": "serve",
            "input": {"name": "images", "dtype": "float32", "shape": [None, height, width, depth],
                      "channels": list(channels),
                      "description": f"axial slices, channels {', '.join(channels)} in this "
                                     f"order, each per-volume clipped to the 0.5/99.5 "
                                     f"percentiles of its nonzero voxels, scaled to [0, 1], "
                                     f"background 0, resized to the training size" +
                                     ("; s[z-k] / s[z+k]: sequence s on the axial slice k "
                                      "below / above, 0 beyond the volume"
                                      if any("[" in c for c in channels) else "")},
            "outputs": {name: {"dtype": "float32",
                               "shape": [None, height, width, int(model.outputs[
                                   list(model.output_names).index(name)].shape[-1])]}
                        for name in outputs},
            "output": {"regions": list(regions), "conventions": list(conventions or ()),
                       "description": f"seg: one sigmoid probability per region "
                                      f"({', '.join(regions)}) in this order"},
            "versions": {"boundary_aware": __version__, "keras": keras.__version__,
                         "tensorflow": tf.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "files": {str(p.relative_to(tmp)): file_sha256(p) for p in files},
        })
        (tmp / CARD).write_text(json.dumps(card, indent=1, sort_keys=True))
    return card


def export_run(workdir: str | os.PathLike, out: str | os.PathLike, checkpoint: str | None = None,
               overwrite: bool = False) -> dict:
    """Export a training run's checkpoint (default: the one its rule scores, see
    `boundary_aware.run_directory`), with a model card built from the run."""
    run = RunDirectory(workdir)
    check_backend(out)
    check_apart(out, {"--workdir": workdir})
    config = run.read_config()  # the run's records first: each names itself when damaged
    state = run.read_state() or {}
    path = run.checkpoint(checkpoint)
    if not path.is_file():
        raise ExportError(f"{path}: no such checkpoint (train the run first)")
    model = load_keras_model(path)
    m = run.read_metrics()
    test_metrics = None
    if m is not None:
        test_metrics = {key: m.get(key) for key in ("checkpoint", "per_slice", "per_volume",
                                                     "selected_slices")}
    card = {"model": config["model"]["name"], "variant": config["variant"],
            "checkpoint": path.name, "config": config,
            "data_manifest_sha256": state.get("data_manifest_sha256"),
            "trained_epochs": state.get("epoch"), "training_precision": state.get("precision"),
            "test_metrics": test_metrics,
            # the whole-volume clean-up chosen on the validation volumes for this checkpoint
            "postprocess": postprocess.read(run.path, path.stem)}
    return export_model(model, out, card, overwrite, state.get("input_channels"),
                        state.get("regions"), state.get("conventions") or ())


def load_saved_model(path: str | os.PathLike,
                     trust_model: bool = False) -> tuple[Callable, tuple[int, ...]]:
    """Load an exported SavedModel; returns (images -> dict of numpy arrays, (H, W, C)).

    The graph is inspected first (`check_saved_model`) unless `trust_model`.
    The function refuses slices of another size than the signature's, saying
    which size it expects.
    """
    if not trust_model:
        check_saved_model(path)
    try:
        loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serve"]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as err:
        raise UnsafeModelError(f"{path}: cannot load this SavedModel (it needs a 'serve' "
                               f"signature): {str(err).strip().splitlines()[0]}") from None
    inputs = serve.structured_input_signature[1]
    if list(inputs) != ["images"]:
        raise DataError(f"{path}: its 'serve' signature takes {sorted(inputs) or 'no named input'}; "
                        f"a model of this package takes one input named 'images'")
    input_shape = tuple(inputs["images"].shape[1:])
    outputs = {name: spec.shape[-1] for name, spec in serve.structured_outputs.items()}
    check_contract(input_shape, outputs, recorded_regions(
        ((read_card(path) or {}).get("output") or {}).get("regions"), str(path)), str(path))

    def predict(images):
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != input_shape:
            raise DataError(f"{path}: expects slices of shape (N, {', '.join(map(str, input_shape))})"
                             f" (normalized T1c at the training size), got {images.shape}")
        outputs = serve(images=tf.convert_to_tensor(images, tf.float32))
        return {name: value.numpy() for name, value in outputs.items()}
    return predict, input_shape


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(ExportError, DataError, LockedError, FileNotFoundError):
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
