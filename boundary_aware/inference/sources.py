"""Where a model comes from: one table of model sources, each saying what it can run.

`SOURCES` lists every kind of model `predict` and `evaluate` read, in the
order they are recognized:

* a SavedModel folder written by `boundary-aware-export` (its graph checked
  before it is loaded, `export.check_saved_model`), fixed to the precision and
  slice size it was exported in;
* a training workdir: the checkpoint its rule scores (`run_directory`), with
  the channels, regions and label conventions its state records and the
  clean-up its `postprocess.json` records;
* a `.keras` file (loaded in safe mode, `model_files.load_keras_model`); one
  inside its run reads that run's records as a workdir does.

Each entry names the values of the options that vary between sources
(`--precision`, `--crop`) that it can run, and why it cannot run the others,
so that every refusal comes from the table. A new source (ONNX, say) is one
more entry: how it is recognized, how it loads into a `Predictor`, what it
supports.

Reference: docs/deployment.md ("What is safe to load"); docs/design.md ("Whole volumes").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from boundary_aware import postprocess, runtime
from boundary_aware.channels import input_channels
from boundary_aware.errors import DataError
from boundary_aware.inference.head_box import in_head_box
from boundary_aware.inference.options import CROPS, PRECISIONS, InferenceOptions
from boundary_aware.inference.predictor import (Predictor, batched, check_ensemble,
                                                keras_predictor)
from boundary_aware.inference.rebuild import rebuild, rebuilt_passes, size_divisor_of
from boundary_aware.model_files import REFUSED_SUFFIXES, check_contract, load_keras_model
from boundary_aware.regions import recorded_regions
from boundary_aware.run_directory import RunDirectory

# the options whose values differ between sources: option -> every value it takes
VARYING = {"precision": PRECISIONS, "crop": CROPS}


@dataclass(frozen=True)
class ModelSource:
    """One kind of model (module docstring).

    name: how messages name it ("a SavedModel").
    recognizes: whether a path is one.
    load: (path, options) -> `Predictor`.
    supports: {option of `VARYING`: the values it can run}; an option not named runs
        only its default.
    limits: {option: why it runs no other value}, for the refusal.
    """

    name: str
    recognizes: Callable[[Path], bool]
    load: Callable[[Path, InferenceOptions], Predictor]
    supports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)

    def runs(self, option: str) -> tuple[str, ...]:
        """The values of `option` (a key of `VARYING`) this source can run."""
        return self.supports.get(option, (getattr(InferenceOptions(), option),))

    def check(self, path: Path, options: InferenceOptions) -> None:
        """DataError naming the path, why, and which sources can, for the first option of
        `VARYING` this source cannot run at the value `options` gives."""
        for option in VARYING:
            value = getattr(options, option)
            if value not in self.runs(option):
                able = " or ".join(s.name for s in SOURCES if value in s.runs(option))
                raise DataError(f"{path}: {self.name} {self.limits[option]}; --{option}={value} "
                                f"needs {able}")


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def _load_saved_model(path: Path, options: InferenceOptions) -> Predictor:
    from boundary_aware.export import load_saved_model, read_card
    serve, input_shape = load_saved_model(path, trust_model=options.trust_model)
    card = read_card(path) or {}
    channels = input_channels(input_shape, card.get("input", {}).get("channels"), str(path))
    rules = card.get("postprocess")
    rules = ({r: postprocess.check_rule(v, f"{path} (model card)") for r, v in rules.items()}
             if isinstance(rules, dict) else None)
    output = card.get("output", {})
    regions = recorded_regions(output.get("regions"), str(path))
    batch_size = options.batch_size or runtime.inference_batch_size()
    return Predictor(batched(serve, batch_size), input_shape, channels, rules, regions,
                     tuple(output.get("conventions") or ()))


def _load_workdir(path: Path, options: InferenceOptions) -> Predictor:
    run = RunDirectory(path)
    checkpoint = run.checkpoint()
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: no such checkpoint in this training workdir (is "
                        f"training complete?); pass the .keras file to use another one")
    return _load_keras(checkpoint, options, run)


def _load_keras_file(path: Path, options: InferenceOptions) -> Predictor:
    # a checkpoint inside its run: the run knows its input
    run = RunDirectory(path.parent) if RunDirectory.looks_like_one(path.parent) else None
    return _load_keras(path, options, run)


def _load_keras(path: Path, options: InferenceOptions, run: RunDirectory | None) -> Predictor:
    """The predictor of a `.keras` file, with its run's records where it has a run."""
    streams = options.streams or runtime.inference_streams()
    runtime.share_cores_between(streams)  # before the model's first operation
    batch_size = options.batch_size or runtime.inference_batch_size()
    model = load_keras_model(path)
    if options.precision == "bfloat16":
        model = rebuild(model, "mixed_bfloat16")
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
    if options.crop == "head":
        predictor = replace(predictor, predict=in_head_box(
            rebuilt_passes(model, batch_size, streams), size_divisor_of(model)))
    if run is None:
        return predictor
    return replace(predictor, postprocess=postprocess.read(run.path, path.stem))


SOURCES = (
    ModelSource("a SavedModel", _is_saved_model, _load_saved_model,
                limits={"precision": "runs in the precision it was exported in",
                        "crop": "takes the slice size it was exported for"}),
    ModelSource("a training workdir", RunDirectory.looks_like_one, _load_workdir,
                supports=dict(VARYING)),
    ModelSource("a .keras file", lambda path: path.suffix == ".keras", _load_keras_file,
                supports=dict(VARYING)),
)


def source_of(path: str | os.PathLike) -> ModelSource:
    """The entry of `SOURCES` that recognizes `path`; DataError naming the kinds otherwise
    (a pickle or an HDF5 file is refused, saying why)."""
    path = Path(path)
    if path.suffix.lower() in REFUSED_SUFFIXES:
        load_keras_model(path)  # raises, naming the reason
    for source in SOURCES:
        if source.recognizes(path):
            return source
    names = [s.name for s in SOURCES]
    raise DataError(f"{path}: not {', '.join(names[:-1])} or {names[-1]}")


def load_predictor(model_path: str | os.PathLike,
                   options: InferenceOptions = InferenceOptions()) -> Predictor:
    """The `Predictor` of a model of any source in `SOURCES`, run as `options` say."""
    path = Path(model_path)
    source = source_of(path)
    source.check(path, options)
    return source.load(path, options)


def load_predictors(model_paths: Sequence[str | os.PathLike],
                    options: InferenceOptions = InferenceOptions()) -> list[Predictor]:
    """`load_predictor` of every path, for an ensemble: they must take the same input
    (slice size and channels, in order); a mismatch is refused, naming both models."""
    predictors = [load_predictor(p, options) for p in model_paths]
    check_ensemble(predictors, model_paths)
    return predictors
