"""Inference on whole volumes: models' slice predictors, and a volume segmented with them.

The one code path from models to probabilities that `predict` (the command),
`evaluate` (whole-volume scores) and the benchmarks all use:

* `load_predictor`: a training workdir (the checkpoint its rule scores), a
  `.keras` file (safe mode) or an exported SavedModel (its graph checked
  first) as a `Predictor`: the forward pass over slices, with the model's
  input contract (slice size and channels, in order); `load_predictors`:
  several, for an ensemble, refused unless they share that contract;
* `batched`: the forward pass in fixed-size batches (the last one padded,
  so that the model is traced for one input shape), several at a time on
  CPUs (`runtime.inference_streams`);
* `segment_volume`: every axial slice of an LPS-ordered (X, Y, Z, S) volume
  (S: the MRI sequences) that holds any head, each sequence normalized as in
  training, resized to the model's size and back; a model trained with
  neighbouring slices as context (`data.context_channels`) gets them stacked
  as in training (`data.stack_context`). Voxels where every channel is 0 (outside the
  head of a skull-stripped scan) get probability 0, and slices without any
  head are not run through the model at all. With test-time flips
  (`TTA_FLIPS`) and several predictors (an ensemble), the probabilities are
  the mean over every (model, flip), and `spread=True` adds their standard
  deviation (an uncertainty map).
* `twin`: a Keras model rebuilt with the same weights in another precision
  or for another slice size; `in_head_box`: the forward pass run on the box
  around the head alone (`--crop=head`), faster and not the whole slice's
  result for a model that pools over the whole slice, as Ours does.

Only the probability outputs leave a predictor (`registry.probability_outputs`):
the logits some models also output are for their losses.

Reference: docs/design.md ("Evaluation", "Whole volumes"); docs/deployment.md;
nnU-Net (Isensee et al. 2021) for mirroring at test time and ensembles.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from boundary_aware import postprocess, runtime
from boundary_aware.data import (PAPER_REGION, DataError, channel_layout, input_channels,
                                 normalize_channels, recorded_regions, resize_slices,
                                 stack_context)
from boundary_aware.model_files import REFUSED_SUFFIXES, check_contract, load_keras_model
from boundary_aware.models.registry import probability_outputs
from boundary_aware.run_directory import RunDirectory

SliceFunction = Callable[[np.ndarray], dict]  # (N, H, W, C) float32 -> {output: (N, H, W, K)}


@dataclass(frozen=True)
class Predictor:
    """A model's forward pass over slices, and what it takes.

    `predict(images)` maps (N, H, W, C) float32 slices to a dict of (N, H, W, K)
    float32 probabilities (`seg`: K = one map per tumor region); `input_shape` is
    (H, W, C); `channels` names the C input channels in order (MRI sequences, and
    their neighbouring slices where it takes context: `sequences`, `context_slices`);
    `regions` names the maps of `seg` in order; `conventions` are the label
    conventions of the data it was trained on (where recorded); `postprocess` is the
    whole-volume clean-up ({region: rule}, `boundary_aware.postprocess`) recorded
    with the model (its run's choice on validation, or its export's card), None if
    none.
    """

    predict: SliceFunction
    input_shape: tuple[int, int, int]
    channels: tuple[str, ...]
    postprocess: dict | None = None
    regions: tuple[str, ...] = (PAPER_REGION,)
    conventions: tuple[str, ...] = ()

    def __call__(self, images: np.ndarray) -> dict:
        return self.predict(images)

    @property
    def sequences(self) -> tuple[str, ...]:
        """The MRI sequences it reads from a case, in order (one volume each)."""
        return channel_layout(self.channels)[0]

    @property
    def context_slices(self) -> int:
        """The neighbouring slices on each side it takes as context (0: none)."""
        return channel_layout(self.channels)[1]


# The precisions a Keras model can be run in (`--precision`): "float32", the model as
# trained (float32, or the mixed precision a model trained in it computes in), or
# bfloat16 computation (`twin`), faster where the hardware computes in it
# (AVX-512 BF16 or AMX CPUs, recent GPUs) and not voxel for voxel the same masks.
PRECISIONS = ("float32", "bfloat16")
# What a Keras model is run on (`--crop`): the whole slice as trained, or the head's
# box (`in_head_box`), fewer pixels and not voxel for voxel the same masks.
CROPS = ("none", "head")
# What is kept around the head on each side under --crop=head, as a share of the slice's
# side (slices are the whole field of view at the model's size, so the same share at
# any size), before the box's ends are rounded out to the model's size divisor; chosen
# by Dice on development phantoms among 1/32, 1/16 and 1/8 (docs/performance.md, "The
# head's box")
HEAD_BOX_MARGIN = 1 / 32


def load_predictor(model_path: str | os.PathLike, batch_size: int | None = None,
                   trust_model: bool = False, precision: str = "float32",
                   crop: str = "none") -> Predictor:
    """The `Predictor` of a workdir, a .keras file or a SavedModel folder.

    Runs `batch_size` slices per forward pass (None: `runtime.inference_batch_size()`),
    in `precision` (`PRECISIONS`), on `crop` (`CROPS`: "head" runs the model on the
    head's box alone, `in_head_box`); both but their defaults only for a workdir or a
    .keras file. A SavedModel whose graph holds operations our own exports never use
    is refused unless `trust_model` (`export.check_saved_model`).
    """
    if precision not in PRECISIONS:
        raise DataError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if crop not in CROPS:
        raise DataError(f"--crop must be one of {', '.join(CROPS)}; got {crop!r}")
    path = Path(model_path)
    batch_size = batch_size or runtime.inference_batch_size()
    if path.suffix.lower() in REFUSED_SUFFIXES:
        load_keras_model(path)  # raises, naming the reason
    if path.is_dir() and (path / "saved_model.pb").is_file():
        if precision != "float32":
            raise DataError(f"{path}: a SavedModel runs in the precision it was exported in; "
                            f"--precision={precision} needs the training workdir or a .keras "
                            f"file")
        if crop != "none":
            raise DataError(f"{path}: a SavedModel takes the slice size it was exported for; "
                            f"--crop={crop} needs the training workdir or a .keras file")
        from boundary_aware.export import load_saved_model, read_card
        serve, input_shape = load_saved_model(path, trust_model=trust_model)
        card = read_card(path) or {}
        channels = input_channels(input_shape, card.get("input", {}).get("channels"), str(path))
        rules = card.get("postprocess")
        rules = ({r: postprocess.check_rule(v, f"{path} (model card)") for r, v in rules.items()}
                 if isinstance(rules, dict) else None)
        output = card.get("output", {})
        regions = recorded_regions(output.get("regions"), str(path))
        return Predictor(batched(serve, batch_size), input_shape, channels, rules, regions,
                         tuple(output.get("conventions") or ()))
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
    if precision == "bfloat16":
        model = twin(model, "mixed_bfloat16")
    state = (run.read_state() or {}) if run is not None else {}
    regions = recorded_regions(state.get("regions"), str(path))
    outputs = ({name: tensor.shape[-1] for name, tensor in model.output.items()}
               if isinstance(model.output, dict) else {"one unnamed tensor": None})
    check_contract(model.input_shape[1:] if not isinstance(model.input_shape, list) else (),
                   outputs, regions, str(path))
    predictor = keras_predictor(model, batch_size, streams,
                                input_channels(model.input_shape[1:],
                                               state.get("input_channels"), str(path)),
                                regions)
    predictor = replace(predictor, conventions=tuple(state.get("conventions") or ()))
    if crop == "head":
        predictor = replace(predictor, predict=in_head_box(
            sized_passes(model, batch_size, streams), size_divisor_of(model)))
    if run is None:
        return predictor
    return replace(predictor, postprocess=postprocess.read(run.path, path.stem))


def load_predictors(model_paths: Sequence[str | os.PathLike], batch_size: int | None = None,
                    trust_model: bool = False, precision: str = "float32",
                    crop: str = "none") -> list[Predictor]:
    """`load_predictor` of every path, for an ensemble: they must take the same input
    (slice size and channels, in order); a mismatch is refused, naming both models."""
    predictors = [load_predictor(p, batch_size, trust_model, precision, crop)
                  for p in model_paths]
    check_ensemble(predictors, model_paths)
    return predictors


def check_ensemble(predictors: Sequence[Predictor], names: Sequence) -> None:
    """DataError unless every predictor has the first one's input contract."""
    first = predictors[0]
    for name, other in zip(names[1:], predictors[1:]):
        if (other.input_shape, other.channels) != (first.input_shape, first.channels):
            raise DataError(f"{names[0]} and {name}: an ensemble's models must take the same "
                            f"input; one takes {first.input_shape} slices of "
                            f"({', '.join(first.channels)}), the other {other.input_shape} "
                            f"of ({', '.join(other.channels)})")
        if other.regions != first.regions:
            raise DataError(f"{names[0]} and {name}: an ensemble's models must segment the "
                            f"same regions; one gives {', '.join(first.regions)}, the other "
                            f"{', '.join(other.regions)}")


def twin(model, policy: str | None = None, input_size: tuple[int, int] | None = None):
    """A twin of a Keras model with the same weights, computing under dtype `policy`
    (e.g. "mixed_bfloat16"; None: each layer's own) and taking slices of height and
    width `input_size` (None: the model's; a multiple of its size divisor,
    `size_divisor_of`).

    Every layer takes `policy` but the model's output layers, which our models pin to
    float32 (`models.common`): the outputs stay float32 probabilities and logits.
    Built from the model's own configuration (of a model already loaded in safe mode).
    """
    import keras
    config = model.get_config()
    pinned = set(model.output_names)
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            if input_size is not None:
                shape = layer["config"]["batch_shape"]
                layer["config"]["batch_shape"] = [shape[0], *input_size, *shape[3:]]
            continue
        dtype = layer["config"].get("dtype")
        if policy and layer["config"].get("name") not in pinned \
                and isinstance(dtype, dict) and "name" in dtype.get("config", {}):
            dtype["config"]["name"] = policy  # e.g. from float32 or mixed_float16
    before = keras.config.dtype_policy()
    if policy:  # for the sublayers a layer builds itself
        keras.config.set_dtype_policy(policy)
    try:
        rebuilt = model.__class__.from_config(config)
    finally:
        keras.config.set_dtype_policy(before)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def size_divisor_of(model) -> int:
    """What a Keras model's input height must be a multiple of: its input height over
    that of its smallest feature map (its total downsampling)."""
    height = model.input_shape[1]
    smallest = min((shape[1] for layer in model.layers
                    for shape in _output_shapes(layer) if len(shape) == 4 and shape[1]),
                   default=height)
    return max(1, height // smallest)


def _output_shapes(layer) -> list:
    output = layer.output
    outputs = output.values() if isinstance(output, dict) else \
        output if isinstance(output, (list, tuple)) else [output]
    return [tuple(t.shape) for t in outputs]


def head_box(images: np.ndarray, divisor: int, margin: float = HEAD_BOX_MARGIN):
    """The rows and columns of (N, H, W, C) slices that hold all their non-zero pixels,
    `margin` x max(H, W) pixels (rounded up) wider on each side and their ends rounded
    out to multiples of `divisor` (H and W are): ((r0, r1), (c0, c1)), or None where
    that is the whole slice or no pixel is non-zero."""
    spans = []
    margin = int(np.ceil(margin * max(images.shape[1:3])))
    for axis, n in ((1, images.shape[1]), (2, images.shape[2])):
        other = tuple(a for a in range(images.ndim) if a != axis)
        held = np.flatnonzero(np.any(images != 0, axis=other))
        if held.size == 0:
            return None
        start = max(0, held[0] - margin) // divisor * divisor
        stop = min(n, -(-(held[-1] + 1 + margin) // divisor) * divisor)
        spans.append((int(start), int(stop)))
    if spans == [(0, images.shape[1]), (0, images.shape[2])]:
        return None
    return tuple(spans)


def in_head_box(run_at: Callable[[tuple[int, int]], SliceFunction], divisor: int,
                margin: float = HEAD_BOX_MARGIN) -> SliceFunction:
    """A forward pass over slices that runs the model only on the box of them that holds
    every non-zero pixel (`head_box`: one box for every slice of a call, which
    `segment_volume` makes one volume); every probability outside it is 0, as outside
    the head. `run_at((h, w))`: the forward pass for slices of that size.

    Not the whole slice's result: the model sees less background around the head
    (docs/performance.md, "The head's box").
    """
    def predict(images):
        box = head_box(images, divisor, margin)
        if box is None:
            return run_at(images.shape[1:3])(images)
        (r0, r1), (c0, c1) = box
        inside = run_at((r1 - r0, c1 - c0))(images[:, r0:r1, c0:c1])
        result = {}
        for name, value in inside.items():
            full = np.zeros(images.shape[:3] + value.shape[3:], value.dtype)
            full[:, r0:r1, c0:c1] = value
            result[name] = full
        return result
    return predict


def keras_predictor(model, batch_size: int = 16, streams: int = 1,
                    channels: tuple[str, ...] | None = None,
                    regions: tuple[str, ...] = (PAPER_REGION,)) -> Predictor:
    """The `Predictor` of a Keras model (`channels`: default `data.input_channels`;
    `regions`: the regions of its `seg` maps, in order)."""
    input_shape = tuple(model.input_shape[1:])
    return Predictor(batched(model.predict_on_batch, batch_size, streams), input_shape,
                     tuple(channels) if channels else input_channels(input_shape),
                     regions=tuple(regions))


def sized_passes(model, batch_size: int, streams: int = 1, kept: int = 4
                 ) -> Callable[[tuple[int, int]], SliceFunction]:
    """`run_at((h, w))`: the `batched` forward pass of a Keras model over slices of that
    size (a `twin` of it, built on first use; the `kept` most recent are kept)."""
    @functools.lru_cache(maxsize=kept)
    def run_at(size):
        sized = model if tuple(size) == tuple(model.input_shape[1:3]) else \
            twin(model, input_size=tuple(size))
        return batched(sized.predict_on_batch, batch_size, streams)
    return lambda size: run_at(tuple(int(n) for n in size))


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


# Test-time flips, named as the augmentation names them (`augment.FLIP_AXES`): the slice
# axes each one reverses. A flip is its own inverse.
FLIPS = {"none": (), "lr": (0,), "ap": (1,), "lr+ap": (0, 1)}
NO_TTA = ("none",)
TTA_CHOICES = ("none", "lr", "ap", "lr,ap")  # the mirror axes --tta and eval.tta take
# predict's and the experiments' default, chosen on the development phantom
# (docs/reproduction.md, "Whole volumes")
DEFAULT_TTA = "lr,ap"


def tta_flips(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """The flips to average for test-time augmentation over the mirror axes `names`
    ("lr", "ap", a comma-separated string or None/"none"): every combination of them,
    the identity included; e.g. "lr" -> ("none", "lr"), "lr,ap" -> all four."""
    if names is None or names == "none" or names == ():
        return NO_TTA
    axes = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    unknown = [a for a in axes if a not in ("lr", "ap")]
    if unknown or not axes or len(set(axes)) != len(axes):
        raise DataError(f"--tta must be one of {', '.join(TTA_CHOICES)}; got {names!r}")
    combos = ["none"] + [a for a in ("lr", "ap") if a in axes]
    return tuple(combos + (["lr+ap"] if len(axes) == 2 else []))


def flipped(slices: np.ndarray, flip: str) -> np.ndarray:
    """(N, H, W, ...) slices mirrored by `flip` (a key of FLIPS) in their two slice axes."""
    axes = tuple(axis + 1 for axis in FLIPS[flip])
    return np.flip(slices, axes) if axes else slices


class VolumeInput:
    """An LPS-ordered (X, Y, Z, S) volume, made ready once for any number of models.

    `head` (X, Y, Z) is True where any channel is non-zero: BraTS volumes are
    skull-stripped and exactly 0 outside the head, where no tumor can be.
    `rows` are the axial slices that hold any head; only they are run through
    a model, normalized and resized as in training (`slices(size, context)`,
    kept per input size and context). A volume with no zero voxel is all head.
    """

    def __init__(self, volume: np.ndarray):
        self.volume = volume
        self.head = np.any(volume != 0, axis=-1)
        self.rows = np.flatnonzero(self.head.any(axis=(0, 1)))
        self._slices = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volume.shape[:3])

    def slices(self, size: int, context_slices: int = 0) -> np.ndarray:
        """(len(rows), size, size, S(2k+1)): the model input of the slices with head, with
        k = `context_slices` neighbours on each side (`data.stack_context`; a slice
        without head is all 0 once normalized, as one beyond the volume is)."""
        key = (size, context_slices)
        if key not in self._slices:
            own = volume_slices(self.volume[:, :, self.rows], size)
            if context_slices:
                every = np.zeros((self.shape[2],) + own.shape[1:], np.float32)
                every[self.rows] = own
                own = stack_context(every, self.rows, context_slices)
            self._slices[key] = own
        return self._slices[key]


def as_list(predictors) -> list[Predictor]:
    return [predictors] if isinstance(predictors, Predictor) else list(predictors)


def segment_volume(predictors, volume: np.ndarray | VolumeInput, distinct: bool = True,
                   outputs: Sequence[str] | None = None, flips: Sequence[str] = NO_TTA,
                   spread: bool = False) -> dict[str, np.ndarray]:
    """Probabilities of every output (or of `outputs`) for an LPS-ordered (X, Y, Z, S)
    volume (or its `VolumeInput`), whose channels are the predictors' sequences, in order:
    (X, Y, Z) for an output of one map (the paper's tumor core), (X, Y, Z, K) for K maps
    (one per region).

    `predictors`: one `Predictor`, or several of one input contract (an ensemble,
    `load_predictors`); the result is the mean over every predictor and every flip in
    `flips` (`tta_flips`), and with `spread` also `<output>_spread`, the standard
    deviation over them (0 for a single model without flips). Outside the head
    (`VolumeInput`) every probability is 0. With `distinct` (the default), constant
    slices share one forward pass (`distinct_slices`).
    """
    predictors = as_list(predictors)
    data = volume if isinstance(volume, VolumeInput) else VolumeInput(volume)
    sequences = predictors[0].sequences
    if data.volume.ndim != 4 or data.volume.shape[-1] != len(sequences):
        raise DataError(f"the model takes {len(sequences)} sequences "
                        f"({', '.join(sequences)}), got a volume of shape {data.volume.shape}")
    x, y, z = data.shape
    if len(data.rows) == 0:  # no head at all: nothing to segment; one blank slice names
        blank = predictors[0](  # the outputs and their maps
            np.zeros((1,) + tuple(predictors[0].input_shape), np.float32))
        maps = {n: v.shape[-1] for n, v in blank.items() if outputs is None or n in outputs}
        zeros = {n: np.zeros((x, y, z) + ((k,) if k > 1 else ()), np.float32)
                 for n, k in maps.items()}
        return {**zeros, **({f"{n}_spread": v for n, v in zeros.items()} if spread else {})}
    inside = segment_slices(predictors, data.slices(predictors[0].input_shape[0],
                                                    predictors[0].context_slices), (x, y),
                            distinct, outputs, flips, spread)
    result = {}
    for name, value in inside.items():
        full = np.zeros((x, y, z) + value.shape[3:], np.float32)
        full[:, :, data.rows] = value
        head = data.head if value.ndim == 3 else data.head[..., None]
        result[name] = np.where(head, full, np.float32(0))
    return result


def with_map_axis(prob: np.ndarray) -> np.ndarray:
    """A `segment_volume` map with its last axis of maps kept: (X, Y, Z) -> (X, Y, Z, 1);
    (X, Y, Z, K) as it is."""
    return prob[..., None] if prob.ndim == 3 else prob


def segment_slices(predictors, slices: np.ndarray, shape: tuple[int, int],
                   distinct: bool = True, outputs: Sequence[str] | None = None,
                   flips: Sequence[str] = NO_TTA, spread: bool = False) -> dict[str, np.ndarray]:
    """`segment_volume` from the models' input slices (`volume_slices`); `shape`: the
    volume's (X, Y), to which the probabilities are resized back. No head mask here:
    every slice given is segmented. Returns (X, Y, len(slices)) arrays, with a last axis
    of K for an output of K > 1 maps."""
    predictors = as_list(predictors)
    run, source = (distinct_slices(slices) if distinct
                   else (np.arange(len(slices)), np.arange(len(slices))))
    todo = slices[run]
    count, mean, m2 = 0, {}, {}
    for predictor in predictors:
        for flip in flips:
            out = {name: flipped(np.asarray(value, np.float32), flip)
                   for name, value in predictor(flipped(todo, flip)).items()
                   if outputs is None or name in outputs}
            out = {name: v[..., 0] if v.shape[-1] == 1 else v for name, v in out.items()}
            if mean and set(out) != set(mean):
                raise DataError(f"the ensemble's models have different outputs "
                                f"({sorted(mean)} and {sorted(out)})")
            count += 1
            for name, prob in out.items():  # Welford's running mean and squared deviations
                if name not in mean:
                    mean[name], m2[name] = prob.copy(), np.zeros_like(prob)
                    continue
                delta = prob - mean[name]
                mean[name] += delta / count
                m2[name] += delta * (prob - mean[name])
    maps = dict(mean)
    if spread:
        maps.update({f"{name}_spread": np.sqrt(np.maximum(m2[name], 0) / count)
                     for name in mean})
    size = slices.shape[1]
    x, y = shape
    result = {}
    for name, value in maps.items():
        prob = value[source]  # (Z, size, size) or (Z, size, size, K)
        if prob.shape[1:3] != (x, y):
            channels = [prob] if prob.ndim == 3 else [prob[..., k] for k in range(prob.shape[-1])]
            channels = [_resize_back(c, x, y) for c in channels]
            prob = channels[0] if prob.ndim == 3 else np.stack(channels, axis=-1)
        result[name] = np.clip(np.moveaxis(prob, 0, 2), 0, 1)
    return result


def _resize_back(prob, x, y):
    """(Z, size, size) probabilities resized bilinearly to (Z, x, y)."""
    from scipy import ndimage
    size = prob.shape[1]
    return ndimage.zoom(prob, (1, x / size, y / size), order=1, grid_mode=True, mode="nearest")
