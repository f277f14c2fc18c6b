"""Segment NIfTI volumes: `boundary-aware-predict --model=... --input=... --output=...`.

`--model` is a training workdir (the checkpoint its rule scores, final.keras
by default: `boundary_aware.run_directory`), a `.keras` file (loaded with safe
mode on) or an exported SavedModel folder; `.h5` files and pickles are
refused. The model's input channels (MRI sequences; T1c for the paper's
models) come from its run or its export (`boundary_aware.inference`).
`--input` is one volume per channel, comma-separated in the model's channel
order (one T1c file for the paper's models), with `--output` a file; or a
folder in BraTS layout (`<case>/<case>_t1ce.nii.gz` or `<case>-t1c.nii.gz`,
and the other sequences' files where the model takes them:
`data_prep.brats`) with `--output` a folder (one mask per case,
`<case>_tc.nii.gz`, and `summary.json`). Each volume is segmented by
`inference.segment_volume` (every axial slice, each channel normalized as in
training), thresholded (`--threshold`, 0.5) and written as a uint8 NIfTI with
the first input's shape, affine and orientation; `--edge_output` also writes
the boundary probability (float32, `<name>_edge.nii.gz`). Outputs are written
atomically and never replace existing files unless `--overwrite`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from boundary_aware.cli import exit_on, run_absl
from boundary_aware.data import DataError
from boundary_aware.files import atomic_write_text, check_writable_folder
from boundary_aware.inference import Predictor, load_predictor, segment_volume
from boundary_aware.nifti import is_our_output, load_channels, save_like
from data_prep.brats import discover_images


def _edge_path(output):
    name = output.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name
    return output.with_name(f"{stem}_edge.nii.gz")


def predict_file(predictor: Predictor, image_paths, output: str | os.PathLike,
                 threshold: float = 0.5, edge_output: bool = False, overwrite: bool = False,
                 distinct: bool = True) -> dict:
    """Segment one case (a path per channel, in the predictor's order) and write its mask
    (and edge map) on the first file's grid; returns a summary dict.

    `distinct`: as in `segment_volume`."""
    output = Path(output)
    paths = [Path(p) for p in ([image_paths] if isinstance(image_paths, (str, os.PathLike))
                               else image_paths)]
    if len(paths) != len(predictor.channels):
        raise DataError(f"{', '.join(map(str, paths))}: the model takes "
                        f"{len(predictor.channels)} volumes ({', '.join(predictor.channels)}), "
                        f"got {len(paths)}")
    if not (output.name.endswith(".nii.gz") or output.name.endswith(".nii")):
        raise DataError(f"{output}: the output must end in .nii.gz or .nii")
    targets = [output] + ([_edge_path(output)] if edge_output else [])
    for target in targets:
        check_replaceable(target, overwrite, is_our_output, "a mask written by this package")
    volume, _, _ = load_channels(paths, predictor.channels)
    probs = segment_volume(predictor, volume, distinct)
    mask = (probs["seg"] > threshold).astype(np.uint8)
    if edge_output and "edge" not in probs:
        raise DataError(f"{paths[0]}: this model has no edge output (only the boundary-aware "
                        f"one does)")
    output.parent.mkdir(parents=True, exist_ok=True)
    save_like(mask, paths[0], output, np.uint8)
    if edge_output:
        save_like(probs["edge"], paths[0], targets[1], np.float32)
    return {"input": ",".join(map(str, paths)), "output": str(output), "voxels": int(mask.sum()),
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


def predict_path(model: str | os.PathLike, input_path: str | os.PathLike,
                 output: str | os.PathLike, threshold: float = 0.5, edge_output: bool = False,
                 overwrite: bool = False, batch_size: int | None = None, progress: bool = False,
                 trust_model: bool = False) -> dict:
    """Segment a case's files or a BraTS folder (see the module docstring). `input_path`
    is a folder, a file, or a comma-separated list of files (or a list of paths), one
    per model channel."""
    if isinstance(input_path, (str, os.PathLike)):
        input_path = str(input_path).split(",")
    inputs = [Path(p) for p in input_path]
    output = Path(output)
    for path in inputs:
        if not path.exists():
            raise DataError(f"{path}: file not found")
    if not 0 < threshold < 1:
        raise DataError(f"--threshold must be between 0 and 1, got {threshold}")
    if batch_size is not None and batch_size < 1:
        raise DataError(f"--batch_size must be >= 1, got {batch_size}")
    if len(inputs) > 1 or inputs[0].is_file():
        for path in inputs:
            if not path.is_file():
                raise DataError(f"{path}: not a file (give a folder alone, or one file per "
                                f"channel)")
            if output.resolve() == path.resolve():
                raise DataError(f"{output}: is the input; choose another output file")
        if output.is_dir():
            raise DataError(f"{output}: is a folder; --output must name a .nii.gz file when "
                            f"--input names files")
        check_writable_folder(output.parent)
        predictor = load_predictor(model, batch_size, trust_model)
        return predict_file(predictor, inputs, output, threshold, edge_output, overwrite)
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: must be a folder when --input is a folder")
    check_writable_folder(output)
    check_replaceable(output / "summary.json", overwrite, _is_our_summary,
                      "a summary written by this package")
    predictor = load_predictor(model, batch_size, trust_model)
    cases = discover_images(inputs[0], predictor.channels)
    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc="cases", unit="case", file=sys.stderr)
    summary = {"model": str(model), "threshold": threshold, "cases": {}, "errors": {}}
    for case in iterator:
        try:
            summary["cases"][case.case_id] = predict_file(
                predictor, case.channel_files(predictor.channels),
                output / f"{case.case_id}_tc.nii.gz", threshold, edge_output, overwrite)
        except DataError as err:
            summary["errors"][case.case_id] = str(err)
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
    flags.DEFINE_string("input", None, "A NIfTI file per model channel (comma-separated, in "
                        "the model's channel order; one T1c file for the paper's models), or a "
                        "folder in BraTS layout.")
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
