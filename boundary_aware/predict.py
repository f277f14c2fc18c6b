"""Segment T1c NIfTI volumes: `boundary-aware-predict --model=... --input=... --output=...`.

`--model` is a training workdir (the checkpoint its rule scores, final.keras
by default: `boundary_aware.run_directory`), a `.keras` file (loaded with safe
mode on) or an exported SavedModel folder; `.h5` files and pickles are
refused. `--input` is one T1c volume (any orientation) with `--output` a
file, or a folder in BraTS layout (`<case>/<case>_t1ce.nii.gz` or
`<case>-t1c.nii.gz`) with `--output` a folder (one mask per case,
`<case>_tc.nii.gz`, and `summary.json`). Each volume is normalized exactly as
in training, segmented slice by slice over every axial slice (batched),
resized back, thresholded (`--threshold`, 0.5) and written as a uint8 NIfTI
with the input's shape, affine and orientation; `--edge_output` also writes
the boundary probability (float32, `<name>_edge.nii.gz`). Outputs are written
atomically and never replace existing files unless `--overwrite`.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from boundary_aware import runtime
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.data import DataError, normalization_range, normalize, resize_slices
from boundary_aware.files import atomic_write_text, check_writable_folder
from boundary_aware.model_files import REFUSED_SUFFIXES, load_keras_model
from boundary_aware.nifti import is_our_output, load_volume, save_like
from boundary_aware.run_directory import RunDirectory

Predictor = Callable[[np.ndarray], dict]  # (N, H, W, C) float32 -> {output: (N, H, W, 1)}

T1C_SUFFIXES = ("_t1ce.nii.gz", "-t1c.nii.gz")


def load_predictor(model_path: str | os.PathLike, batch_size: int | None = None,
                   trust_model: bool = False) -> tuple[Predictor, tuple[int, ...]]:
    """`(predict_fn, (H, W, C))` for a workdir, a .keras file or a SavedModel folder.

    `predict_fn(images)` takes (N, H, W, C) float32 and returns a dict of
    (N, H, W, 1) float32 probabilities, running `batch_size` slices at a time
    (None: `runtime.inference_batch_size()`).
    A SavedModel whose graph holds operations our own exports never use is
    refused unless `trust_model` (`export.check_saved_model`).
    """
    path = Path(model_path)
    batch_size = batch_size or runtime.inference_batch_size()
    if path.suffix.lower() in REFUSED_SUFFIXES:
        load_keras_model(path)  # raises, naming the reason
    if path.is_dir() and (path / "saved_model.pb").is_file():
        from boundary_aware.export import load_saved_model
        serve, input_shape = load_saved_model(path, trust_model=trust_model)
        return batched(serve, batch_size), input_shape
    if RunDirectory.looks_like_one(path):
        path = RunDirectory(path).checkpoint()
        if not path.is_file():
            raise DataError(f"{path}: no such checkpoint in this training workdir (is training "
                            f"complete?); pass the .keras file to use another one")
    if path.suffix != ".keras" or not path.is_file():
        raise DataError(f"{model_path}: not a .keras file, a training workdir or a SavedModel")
    streams = runtime.inference_streams()
    runtime.share_cores_between(streams)  # before the model's first operation
    model = load_keras_model(path)
    return keras_predictor(model, batch_size, streams), tuple(model.input_shape[1:])


def keras_predictor(model, batch_size: int = 16, streams: int = 1) -> Predictor:
    """`predict_fn(images)` of a Keras model, in the form `segment_volume` takes (`batched`)."""
    return batched(model.predict_on_batch, batch_size, streams)


def batched(run, batch_size: int, streams: int = 1) -> Predictor:
    """`predict_fn(images)` from `run(batch) -> {output: array}`, a model's one forward pass.

    Runs `batch_size` slices per call, `streams` calls at a time (threads;
    `runtime.inference_streams`). The last batch is padded to `batch_size`
    with blank slices whose outputs are dropped, so the model is traced for
    one input shape only; in inference mode every slice's output depends on
    that slice alone.
    """
    def one(batch):
        return {name: np.asarray(value) for name, value in run(batch).items()}

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

    A constant slice (every pixel the same value: above and below the head)
    is segmented once per value, and the others of that value take its
    output; every other slice is its own. The model maps a slice to its
    output one slice at a time, so this gives every slice the output it
    would have had, with fewer forward passes (10-20 of BraTS's 155 slices).
    """
    flat = slices.reshape(len(slices), -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    run, source, first = [], np.empty(len(slices), np.int64), {}
    for i in range(len(slices)):
        if lo[i] == hi[i]:
            if lo[i] in first:
                source[i] = first[lo[i]]
                continue
            first[lo[i]] = len(run)
        source[i] = len(run)
        run.append(i)
    return np.asarray(run, np.int64), source


def segment_volume(predict: Predictor, input_shape: tuple[int, ...], volume: np.ndarray,
                   distinct: bool = True) -> dict[str, np.ndarray]:
    """Probabilities (X, Y, Z) of every output for an LPS-ordered T1c volume.

    With `distinct` (the default), constant slices share one forward pass
    (`distinct_slices`); without, every slice is segmented.
    """
    size = input_shape[0]
    lo, hi = normalization_range(volume)
    slices = np.moveaxis(normalize(volume, lo, hi), 2, 0)  # (Z, X, Y)
    slices = np.clip(resize_slices(slices, size, order=1), 0, 1)[..., None]
    slices = slices.astype(np.float32)
    run, source = (distinct_slices(slices) if distinct
                   else (np.arange(len(slices)), np.arange(len(slices))))
    x, y, _ = volume.shape
    result = {}
    for name, value in predict(slices[run]).items():
        prob = np.asarray(value, np.float32)[source, ..., 0]  # (Z, size, size)
        if prob.shape[1:] != (x, y):
            from scipy import ndimage
            prob = ndimage.zoom(prob, (1, x / size, y / size), order=1, grid_mode=True,
                                mode="nearest")
        result[name] = np.clip(np.moveaxis(prob, 0, 2), 0, 1)
    return result


def _edge_path(output):
    name = output.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name
    return output.with_name(f"{stem}_edge.nii.gz")


def predict_file(predict: Predictor, input_shape: tuple[int, ...], image_path: str | os.PathLike,
                 output: str | os.PathLike, threshold: float = 0.5, edge_output: bool = False,
                 overwrite: bool = False, distinct: bool = True) -> dict:
    """Segment one volume and write its mask (and edge map); returns a summary dict.

    `distinct`: as in `segment_volume`."""
    output = Path(output)
    if not (output.name.endswith(".nii.gz") or output.name.endswith(".nii")):
        raise DataError(f"{output}: the output must end in .nii.gz or .nii")
    targets = [output] + ([_edge_path(output)] if edge_output else [])
    for target in targets:
        check_replaceable(target, overwrite, is_our_output, "a mask written by this package")
    volume, _, _ = load_volume(image_path, "image")
    probs = segment_volume(predict, input_shape, volume, distinct)
    mask = (probs["seg"] > threshold).astype(np.uint8)
    if edge_output and "edge" not in probs:
        raise DataError(f"{image_path}: this model has no edge output (only the boundary-aware one does)")
    output.parent.mkdir(parents=True, exist_ok=True)
    save_like(mask, image_path, output, np.uint8)
    if edge_output:
        save_like(probs["edge"], image_path, targets[1], np.float32)
    return {"input": str(image_path), "output": str(output), "voxels": int(mask.sum()),
            "slices_with_tumor": int(np.count_nonzero(mask.any(axis=(0, 1))))}


def check_replaceable(target: Path, overwrite: bool, ours, what: str) -> None:
    """DataError unless `target` is new, or `overwrite` and `ours(target)` (it is `what`)."""
    if not target.exists():
        return
    if not overwrite:
        raise DataError(f"{target}: already exists; pass --overwrite to replace it")
    if target.is_dir() or not ours(target):
        raise DataError(f"{target}: is not {what}: it is never replaced, not even with "
                        f"--overwrite")


def _is_our_summary(path: Path) -> bool:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"model", "threshold", "cases", "errors"} <= set(summary)


def find_t1c(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """(case id, T1c path) of every case in a BraTS-layout folder."""
    found = []
    for suffix in T1C_SUFFIXES:
        for path in sorted(Path(folder).rglob(f"*{suffix}")):
            case_id = path.name[: -len(suffix)]
            if path.parent.name == case_id:
                found.append((case_id, path))
    if not found:
        raise DataError(f"{folder}: no T1c volumes in BraTS layout "
                        f"(<case>/<case>_t1ce.nii.gz or <case>/<case>-t1c.nii.gz)")
    return sorted(found)


def predict_path(model: str | os.PathLike, input_path: str | os.PathLike,
                 output: str | os.PathLike, threshold: float = 0.5, edge_output: bool = False,
                 overwrite: bool = False, batch_size: int | None = None, progress: bool = False,
                 trust_model: bool = False) -> dict:
    """Segment a file or a BraTS folder (see the module docstring)."""
    input_path, output = Path(input_path), Path(output)
    if not input_path.exists():
        raise DataError(f"{input_path}: file not found")
    if not 0 < threshold < 1:
        raise DataError(f"--threshold must be between 0 and 1, got {threshold}")
    if batch_size is not None and batch_size < 1:
        raise DataError(f"--batch_size must be >= 1, got {batch_size}")
    if input_path.is_file():
        if output.resolve() == input_path.resolve():
            raise DataError(f"{output}: is the input; choose another output file")
        if output.is_dir():
            raise DataError(f"{output}: is a folder; --output must name a .nii.gz file when "
                            f"--input is a file")
        check_writable_folder(output.parent)
        predict, input_shape = load_predictor(model, batch_size, trust_model)
        return predict_file(predict, input_shape, input_path, output, threshold, edge_output,
                            overwrite)
    cases = find_t1c(input_path)
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: must be a folder when --input is a folder")
    check_writable_folder(output)
    check_replaceable(output / "summary.json", overwrite, _is_our_summary,
                      "a summary written by this package")
    predict, input_shape = load_predictor(model, batch_size, trust_model)
    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc="cases", unit="case", file=sys.stderr)
    summary = {"model": str(model), "threshold": threshold, "cases": {}, "errors": {}}
    for case_id, path in iterator:
        try:
            summary["cases"][case_id] = predict_file(
                predict, input_shape, path, output / f"{case_id}_tc.nii.gz", threshold,
                edge_output, overwrite)
        except DataError as err:
            summary["errors"][case_id] = str(err)
            print(f"error: {err}", file=sys.stderr)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "summary.json", json.dumps(summary, indent=1))
    return summary


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(DataError):
        result = predict_path(f.model, f.input, f.output, f.threshold, f.edge_output, f.overwrite,
                              f.batch_size or None, progress=True, trust_model=f.trust_model)
    if "cases" in result:
        print(f"{f.output}: {len(result['cases'])} masks written, {len(result['errors'])} errors")
        sys.exit(1 if result["errors"] else 0)
    print(f"{result['output']}: {result['voxels']} tumor-core voxels on "
          f"{result['slices_with_tumor']} slices")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("model", None, "Workdir, .keras file or SavedModel folder.")
    flags.DEFINE_string("input", None, "A T1c NIfTI file, or a folder in BraTS layout.")
    flags.DEFINE_string("output", None, "Output .nii.gz file (or folder for a folder input).")
    flags.DEFINE_float("threshold", 0.5, "Probability threshold for the mask.")
    flags.DEFINE_bool("edge_output", False, "Also write the boundary probability map.")
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
    flags.DEFINE_integer("batch_size", 0, "Slices per forward pass (0: 16 on a GPU, 2 per "
                         "stream on CPUs, runtime.inference_batch_size).")
    flags.DEFINE_bool("trust_model", False, "Run a SavedModel even if its graph holds operations "
                      "this package's exports never use (only for a source you trust).")
    flags.mark_flags_as_required(["model", "input", "output"])


def cli() -> None:
    """Console entry point `boundary-aware-predict`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
