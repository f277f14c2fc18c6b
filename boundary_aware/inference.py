"""Inference on whole volumes: a model's slice predictor, and a volume segmented with it.

The one code path from a model to probabilities that `predict` (the command),
`evaluate` (whole-volume scores) and the benchmarks all use:

* `load_predictor`: a training workdir (the checkpoint its rule scores), a
  `.keras` file (safe mode) or an exported SavedModel (its graph checked
  first) as a `Predictor`: the forward pass over slices, with the model's
  input contract (slice size and channels, in order);
* `batched`: the forward pass in fixed-size batches (the last one padded,
  so that the model is traced for one input shape), several at a time on
  CPUs (`runtime.inference_streams`);
* `segment_volume`: every axial slice of an LPS-ordered (X, Y, Z, C) volume,
  each channel normalized as in training, resized to the model's size and
  back; constant slices (outside the head) share one forward pass.

Only the probability outputs leave a predictor (`registry.probability_outputs`):
the logits some models also output are for their losses.

Reference: docs/design.md ("Evaluation"); docs/deployment.md.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from boundary_aware import runtime
from boundary_aware.data import DataError, input_channels, normalize_channels, resize_slices
from boundary_aware.model_files import REFUSED_SUFFIXES, load_keras_model
from boundary_aware.models.registry import probability_outputs
from boundary_aware.run_directory import RunDirectory

SliceFunction = Callable[[np.ndarray], dict]  # (N, H, W, C) float32 -> {output: (N, H, W, 1)}


@dataclass(frozen=True)
class Predictor:
    """A model's forward pass over slices, and what it takes.

    `predict(images)` maps (N, H, W, C) float32 slices to a dict of (N, H, W, 1)
    float32 probabilities; `input_shape` is (H, W, C); `channels` names the C
    input channels (MRI sequences) in order.
    """

    predict: SliceFunction
    input_shape: tuple[int, int, int]
    channels: tuple[str, ...]

    def __call__(self, images: np.ndarray) -> dict:
        return self.predict(images)


def load_predictor(model_path: str | os.PathLike, batch_size: int | None = None,
                   trust_model: bool = False) -> Predictor:
    """The `Predictor` of a workdir, a .keras file or a SavedModel folder.

    Runs `batch_size` slices per forward pass (None: `runtime.inference_batch_size()`).
    A SavedModel whose graph holds operations our own exports never use is
    refused unless `trust_model` (`export.check_saved_model`).
    """
    path = Path(model_path)
    batch_size = batch_size or runtime.inference_batch_size()
    if path.suffix.lower() in REFUSED_SUFFIXES:
        load_keras_model(path)  # raises, naming the reason
    if path.is_dir() and (path / "saved_model.pb").is_file():
        from boundary_aware.export import load_saved_model, read_card
        serve, input_shape = load_saved_model(path, trust_model=trust_model)
        card = read_card(path) or {}
        channels = input_channels(input_shape, card.get("input", {}).get("channels"), str(path))
        return Predictor(batched(serve, batch_size), input_shape, channels)
    run = None
    if RunDirectory.looks_like_one(path):
        run = RunDirectory(path)
        path = run.checkpoint()
        if not path.is_file():
            raise DataError(f"{path}: no such checkpoint in this training workdir (is training "
                            f"complete?); pass the .keras file to use another one")
    elif RunDirectory.looks_like_one(path.parent):
        run = RunDirectory(path.parent)  # a checkpoint inside its run: the run knows its input
    if path.suffix != ".keras" or not path.is_file():
        raise DataError(f"{model_path}: not a .keras file, a training workdir or a SavedModel")
    streams = runtime.inference_streams()
    runtime.share_cores_between(streams)  # before the model's first operation
    model = load_keras_model(path)
    recorded = (run.read_state() or {}).get("input_channels") if run is not None else None
    return keras_predictor(model, batch_size, streams,
                           input_channels(model.input_shape[1:], recorded, str(path)))


def keras_predictor(model, batch_size: int = 16, streams: int = 1,
                    channels: tuple[str, ...] | None = None) -> Predictor:
    """The `Predictor` of a Keras model (`channels`: default `data.input_channels`)."""
    input_shape = tuple(model.input_shape[1:])
    return Predictor(batched(model.predict_on_batch, batch_size, streams), input_shape,
                     tuple(channels) if channels else input_channels(input_shape))


def batched(run, batch_size: int, streams: int = 1) -> SliceFunction:
    """`predict(images)` from `run(batch) -> {output: array}`, a model's one forward pass.

    Runs `batch_size` slices per call, `streams` calls at a time (threads;
    `runtime.inference_streams`). The last batch is padded to `batch_size`
    with blank slices whose outputs are dropped, so the model is traced for
    one input shape only; in inference mode every slice's output depends on
    that slice alone.
    """
    def one(batch):
        result = run(batch)
        return {name: np.asarray(result[name]) for name in probability_outputs(result)}

    def predict(images):
        n = len(images)
        if n == 0:
            raise DataError("no slices to segment")
        padded = np.concatenate([images, np.zeros((-n % batch_size,) + images.shape[1:],
                                                  images.dtype)])
        batches = [padded[i:i + batch_size] for i in range(0, len(padded), batch_size)]
        outputs = [one(batches[0])]  # first alone: it traces the function
        if streams > 1 and len(batches) > 1:
            with ThreadPoolExecutor(streams) as pool:
                outputs += list(pool.map(one, batches[1:]))
        else:
            outputs += [one(batch) for batch in batches[1:]]
        return {name: np.concatenate([o[name] for o in outputs])[:n] for name in outputs[0]}
    return predict


def distinct_slices(slices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(run, source)`: the slices to segment, and for every slice its row among them.

    A constant slice (every pixel of every channel the same value per channel:
    above and below the head) is segmented once per value, and the others of
    that value take its output; every other slice is its own. The model maps
    a slice to its output one slice at a time, so this gives every slice the
    output it would have had, with fewer forward passes (10-20 of BraTS's 155
    slices).
    """
    flat = slices.reshape(len(slices), -1, slices.shape[-1])
    lo, hi = flat.min(axis=1), flat.max(axis=1)  # (Z, C)
    run, source, first = [], np.empty(len(slices), np.int64), {}
    for i in range(len(slices)):
        if np.array_equal(lo[i], hi[i]):
            key = tuple(lo[i].tolist())
            if key in first:
                source[i] = first[key]
                continue
            first[key] = len(run)
        source[i] = len(run)
        run.append(i)
    return np.asarray(run, np.int64), source


def volume_slices(volume: np.ndarray, size: int) -> np.ndarray:
    """The model's input for every axial slice of an (X, Y, Z, C) volume: each channel
    normalized on its own as in training, resized to `size`; (Z, size, size, C) float32."""
    normalized, _ = normalize_channels(volume)
    slices = np.stack([resize_slices(np.moveaxis(normalized[..., c], 2, 0), size, order=1)
                       for c in range(normalized.shape[-1])], axis=-1)
    return np.clip(slices, 0, 1).astype(np.float32)


def segment_volume(predictor: Predictor, volume: np.ndarray, distinct: bool = True,
                   outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Probabilities (X, Y, Z) of every output (or of `outputs`) for an LPS-ordered
    (X, Y, Z, C) volume, whose channels are the predictor's, in its order.

    With `distinct` (the default), constant slices share one forward pass
    (`distinct_slices`); without, every slice is segmented.
    """
    if volume.ndim != 4 or volume.shape[-1] != len(predictor.channels):
        raise DataError(f"the model takes {len(predictor.channels)} channels "
                        f"({', '.join(predictor.channels)}), got a volume of shape {volume.shape}")
    slices = volume_slices(volume, predictor.input_shape[0])
    return segment_slices(predictor, slices, volume.shape[:2], distinct, outputs)


def segment_slices(predictor: Predictor, slices: np.ndarray, shape: tuple[int, int],
                   distinct: bool = True,
                   outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """`segment_volume` from the model's input slices (`volume_slices`, made once where
    several models of one input size segment the same volume); `shape`: the volume's
    (X, Y), to which the probabilities are resized back."""
    run, source = (distinct_slices(slices) if distinct
                   else (np.arange(len(slices)), np.arange(len(slices))))
    size = slices.shape[1]
    x, y = shape
    result = {}
    for name, value in predictor(slices[run]).items():
        if outputs is not None and name not in outputs:
            continue
        prob = np.asarray(value, np.float32)[source, ..., 0]  # (Z, size, size)
        if prob.shape[1:] != (x, y):
            from scipy import ndimage
            prob = ndimage.zoom(prob, (1, x / size, y / size), order=1, grid_mode=True,
                                mode="nearest")
        result[name] = np.clip(np.moveaxis(prob, 0, 2), 0, 1)
    return result
