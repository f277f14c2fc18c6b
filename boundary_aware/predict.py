"""Segment NIfTI volumes: `boundary-aware-predict --model=... --input=... --output=...`.

`--model` is a training workdir (the checkpoint its rule scores, final.keras
by default: `boundary_aware.run_directory`), a `.keras` file (loaded with safe
mode on) or an exported SavedModel folder; `.h5` files and pickles are
refused. Several, comma-separated, make an ensemble: their probabilities are
averaged, and they must take the same input (a mismatch is refused, naming
both). The model's input channels (MRI sequences; T1c for the paper's
models) come from its run or its export (`boundary_aware.inference`).
`--input` is one volume per channel, comma-separated in the model's channel
order (one T1c file for the paper's models), with `--output` a file; or a
folder in BraTS layout (`<case>/<case>_t1ce.nii.gz` or `<case>-t1c.nii.gz`,
and the other sequences' files where the model takes them:
`data_prep.brats`) with `--output` a folder (one mask per case,
`<case>_tc.nii.gz`, and `summary.json`, rewritten after every case so that a
stopped run says what finished).

Each volume is segmented by `inference.segment_volume`: every axial slice
that holds head, each channel normalized as in training; voxels outside the
head (every channel 0) are never tumor. `--tta` averages over in-plane
mirror flips (`lr`: left-right, `ap`: anterior-posterior, `lr,ap`: all four;
default `inference.DEFAULT_TTA`). The mean probability is thresholded
(`--threshold`, 0.5) and cleaned by the 3D rule recorded with the model
(`boundary_aware.postprocess`, chosen on the validation volumes by
`evaluate`; for an ensemble, the rule its members agree on) unless
`--nopostprocess`, then written as a uint8 NIfTI with the first input's
shape, affine and orientation. Beside the mask, on request (float32):
`--edge_output` the boundary probability (`<name>_edge.nii.gz`),
`--save_probabilities` the tumor probability (`<name>_prob.nii.gz`),
`--save_uncertainty` its standard deviation over the flips and ensemble
members (`<name>_uncertainty.nii.gz`; 0 for one model without flips).
Outputs are written atomically and never replace existing files unless
`--overwrite`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from boundary_aware import postprocess
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.data import DataError
from boundary_aware.files import atomic_write_text, check_writable_folder
from boundary_aware.inference import (DEFAULT_TTA, NO_TTA, TTA_CHOICES, as_list,
                                      load_predictors, segment_volume, tta_flips)
from boundary_aware.nifti import is_our_output, load_channels, save_like
from data_prep.brats import discover_images

# the maps written beside a mask on request: (output key, file name suffix)
EXTRA_OUTPUTS = {"edge": "_edge", "prob": "_prob", "uncertainty": "_uncertainty"}


def beside(output: Path, suffix: str) -> Path:
    """`<name>.nii.gz` -> `<name><suffix>.nii.gz`."""
    name = output.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name
    return output.with_name(f"{stem}{suffix}.nii.gz")


def recorded_rule(predictors) -> dict:
    """The clean-up rule recorded with the model (`Predictor.postprocess`, one region), or
    that every member of an ensemble records alike; `postprocess.NONE` otherwise."""
    rules = [p.postprocess for p in as_list(predictors)]
    if any(not r for r in rules) or any(r != rules[0] for r in rules[1:]):
        return postprocess.NONE
    return next(iter(rules[0].values()))


def predict_file(predictors, image_paths, output: str | os.PathLike,
                 threshold: float = 0.5, edge_output: bool = False, overwrite: bool = False,
                 distinct: bool = True, flips: Sequence[str] = NO_TTA,
                 use_postprocess: bool = True, save_probabilities: bool = False,
                 save_uncertainty: bool = False) -> dict:
    """Segment one case (a path per channel, in the models' order) with one predictor or
    an ensemble's list, and write its mask (and the maps asked for) on the first file's
    grid; returns a summary dict. `distinct`: as in `segment_volume`."""
    predictors = as_list(predictors)
    channels = predictors[0].channels
    output = Path(output)
    paths = [Path(p) for p in ([image_paths] if isinstance(image_paths, (str, os.PathLike))
                               else image_paths)]
    if len(paths) != len(channels):
        raise DataError(f"{', '.join(map(str, paths))}: the model takes "
                        f"{len(channels)} volumes ({', '.join(channels)}), got {len(paths)}")
    if not (output.name.endswith(".nii.gz") or output.name.endswith(".nii")):
        raise DataError(f"{output}: the output must end in .nii.gz or .nii")
    wanted = [k for k, on in (("edge", edge_output), ("prob", save_probabilities),
                              ("uncertainty", save_uncertainty)) if on]
    targets = {"mask": output, **{k: beside(output, EXTRA_OUTPUTS[k]) for k in wanted}}
    for target in targets.values():
        check_replaceable(target, overwrite, is_our_output, "a mask written by this package")
    volume, _, zooms = load_channels(paths, channels)
    probs = segment_volume(predictors, volume, distinct, flips=flips, spread=save_uncertainty)
    if edge_output and "edge" not in probs:
        raise DataError(f"{paths[0]}: this model has no edge output (only the boundary-aware "
                        f"one does)")
    rule = recorded_rule(predictors) if use_postprocess else postprocess.NONE
    mask = postprocess.apply(probs["seg"] > threshold, rule, zooms[:3]).astype(np.uint8)
    maps = {"edge": probs.get("edge"), "prob": probs["seg"],
            "uncertainty": probs.get("seg_spread")}
    output.parent.mkdir(parents=True, exist_ok=True)
    save_like(mask, paths[0], output, np.uint8)
    for key in wanted:
        save_like(maps[key], paths[0], targets[key], np.float32)
    return {"input": ",".join(map(str, paths)), "output": str(output), "voxels": int(mask.sum()),
            "slices_with_tumor": int(np.count_nonzero(mask.any(axis=(0, 1)))),
            "flips": list(flips), "postprocess": postprocess.label(rule),
            **({"maps": {k: str(targets[k]) for k in wanted}} if wanted else {})}


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


def model_list(model) -> list[str]:
    """One model path, or several (comma-separated, or a list): an ensemble."""
    models = (str(model).split(",") if isinstance(model, (str, os.PathLike))
              else [str(m) for m in model])
    models = [m for m in models if m]
    if not models:
        raise DataError("--model names no model")
    return models


def predict_path(model, input_path: str | os.PathLike, output: str | os.PathLike,
                 threshold: float = 0.5, edge_output: bool = False, overwrite: bool = False,
                 batch_size: int | None = None, progress: bool = False,
                 trust_model: bool = False, tta: str | None = DEFAULT_TTA,
                 use_postprocess: bool = True, save_probabilities: bool = False,
                 save_uncertainty: bool = False) -> dict:
    """Segment a case's files or a BraTS folder (see the module docstring). `model` is one
    model or several (comma-separated, or a list: an ensemble). `input_path` is a folder,
    a file, or a comma-separated list of files (or a list of paths), one per model
    channel."""
    models = model_list(model)
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
    flips = tta_flips(tta)
    options = dict(threshold=threshold, edge_output=edge_output, overwrite=overwrite,
                   flips=flips, use_postprocess=use_postprocess,
                   save_probabilities=save_probabilities, save_uncertainty=save_uncertainty)
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
        predictors = load_predictors(models, batch_size, trust_model)
        return predict_file(predictors, inputs, output, **options)
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: must be a folder when --input is a folder")
    check_writable_folder(output)
    summary_path = output / "summary.json"
    check_replaceable(summary_path, overwrite, _is_our_summary,
                      "a summary written by this package")
    predictors = load_predictors(models, batch_size, trust_model)
    cases = discover_images(inputs[0], predictors[0].channels)
    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc="cases", unit="case", file=sys.stderr)
    summary = {"model": ",".join(models), "threshold": threshold, "flips": list(flips),
               "cases": {}, "errors": {}, "pending": [c.case_id for c in cases]}
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    for case in iterator:
        try:
            summary["cases"][case.case_id] = predict_file(
                predictors, case.channel_files(predictors[0].channels),
                output / f"{case.case_id}_tc.nii.gz", **options)
        except DataError as err:
            summary["errors"][case.case_id] = str(err)
            print(f"error: {err}", file=sys.stderr)
        summary["pending"].remove(case.case_id)
        # after every case: a stopped run's summary names what finished
        atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return summary


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(DataError):
        result = predict_path(f.model, f.input, f.output, f.threshold, f.edge_output, f.overwrite,
                              f.batch_size or None, progress=True, trust_model=f.trust_model,
                              tta=f.tta, use_postprocess=f.postprocess,
                              save_probabilities=f.save_probabilities,
                              save_uncertainty=f.save_uncertainty)
    if "cases" in result:
        print(f"{f.output}: {len(result['cases'])} masks written, {len(result['errors'])} errors")
        sys.exit(1 if result["errors"] else 0)
    print(f"{result['output']}: {result['voxels']} tumor-core voxels on "
          f"{result['slices_with_tumor']} slices (flips: {', '.join(result['flips'])}; "
          f"clean-up: {result['postprocess']})")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("model", None, "Workdir, .keras file or SavedModel folder; several, "
                        "comma-separated, for an ensemble (probabilities averaged).")
    flags.DEFINE_string("input", None, "A NIfTI file per model channel (comma-separated, in "
                        "the model's channel order; one T1c file for the paper's models), or a "
                        "folder in BraTS layout.")
    flags.DEFINE_string("output", None, "Output .nii.gz file (or folder for a folder input).")
    flags.DEFINE_float("threshold", 0.5, "Probability threshold for the mask.")
    flags.DEFINE_enum("tta", DEFAULT_TTA, list(TTA_CHOICES), "Test-time mirror axes whose "
                      "flips are averaged: none, lr (left-right), ap (anterior-posterior), "
                      "lr,ap (all four flips).")
    flags.DEFINE_bool("postprocess", True, "Apply the 3D clean-up recorded with the model "
                      "(chosen on validation by evaluate); --nopostprocess: the raw mask.")
    flags.DEFINE_bool("edge_output", False, "Also write the boundary probability map.")
    flags.DEFINE_bool("save_probabilities", False, "Also write the tumor probability map.")
    flags.DEFINE_bool("save_uncertainty", False, "Also write the standard deviation of the "
                      "probability over flips and ensemble members.")
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
