"""Segment NIfTI volumes: `boundary-aware-predict --model=... --input=... --output=...`.

`--model` is a training workdir (the checkpoint its rule scores, final.keras
by default: `boundary_aware.run_directory`), a `.keras` file (loaded with safe
mode on) or an exported SavedModel folder (`inference.sources`); `.h5` files
and pickles are refused. Several, comma-separated, make an ensemble: their
probabilities are averaged, and they must take the same input (a mismatch is
refused, naming both). The model's input channels (MRI sequences; T1c for the
paper's models; with context slices, each sequence's neighbouring slices too)
come from its run or its export. `--input` is one volume per sequence,
comma-separated in the model's order (one T1c file for the paper's models),
with `--output` a file; or a folder in BraTS layout (`<case>/<case>_t1ce.nii.gz`
or `<case>-t1c.nii.gz`, and the other sequences' files where the model takes
them: `boundary_aware.brats_cases`) with `--output` a folder (one mask per
case, and `summary.json`, rewritten after every case so that a stopped run
says what finished, and lists under `skipped` what discovery passed over,
with the reason). A case that lacks a sequence the model takes is refused,
naming the file; two cases of one id are refused, naming both.

The paper's models write the tumor core as 1. A model of several regions
(`data.regions`, e.g. WT, TC and ET as separate sigmoid maps) writes one
label map, its regions turned back into labels in nested order (WT as edema
2, then TC as 1 over it, then ET as the convention's enhancing label:
`regions.label_map`), in the input's label convention: a BraTS folder's
layout says it (2018-2021: ET = 4; 2023 on: ET = 3), else the one of the
data the model was trained on (recorded in its run or export), else
`--convention` (`predict_outputs`).

Each volume is segmented inside the head, each sequence normalized as in
training, as the flags say (`inference.options.InferenceOptions`: flips,
precision, crop, threshold, clean-up, batch size, the maps written beside
the mask), by `predict_cases.predict_file`. Outputs are written atomically
and never replace existing files unless `--overwrite`, and then only files
this package wrote.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from boundary_aware.cli import exit_on, run_absl
from boundary_aware.errors import DataError, LockedError
from boundary_aware.files import check_writable_folder, exclusive_lock
from boundary_aware.inference.flips import TTA_CHOICES
from boundary_aware.inference.options import CROPS, PRECISIONS, InferenceOptions
from boundary_aware.inference.sources import load_predictors
from boundary_aware.predict_cases import predict_file, predict_folder
from boundary_aware.predict_outputs import output_lock
from boundary_aware.regions import CONVENTIONS, check_convention

DEFAULTS = InferenceOptions()  # the flags' defaults


def model_list(model) -> list[str]:
    """One model path, or several (comma-separated, or a list): an ensemble."""
    models = (str(model).split(",") if isinstance(model, (str, os.PathLike))
              else [str(m) for m in model])
    models = [m for m in models if m]
    if not models:
        raise DataError("--model names no model")
    return models


def predict_path(model, input_path: str | os.PathLike, output: str | os.PathLike,
                 options: InferenceOptions = InferenceOptions(), overwrite: bool = False,
                 convention: str | None = None, progress: bool = False) -> dict:
    """Segment a case's files or a BraTS folder (see the module docstring) as `options`
    say. `model` is one model or several (comma-separated, or a list: an ensemble).
    `input_path` is a folder, a file, or a comma-separated list of files (or a list of
    paths), one per model channel. `convention`: the label convention of a label map
    (None: the input's, `predict_outputs.output_convention`)."""
    models = model_list(model)
    if isinstance(input_path, (str, os.PathLike)):
        input_path = str(input_path).split(",")
    inputs = [Path(p) for p in input_path]
    output = Path(output)
    for path in inputs:
        if not path.exists():
            raise DataError(f"{path}: file not found")
    if convention:
        check_convention(convention)
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
        with exclusive_lock(output_lock(output), str(output)):
            predictors = load_predictors(models, options)
            return predict_file(predictors, inputs, output, options, overwrite, convention)
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: must be a folder when --input is a folder")
    check_writable_folder(output)
    with exclusive_lock(output_lock(output), str(output)):
        return predict_folder(models, inputs[0], output, options, overwrite, convention,
                              progress)


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(DataError, LockedError):
        options = InferenceOptions.from_flags(f)
        result = predict_path(f.model, f.input, f.output, options, f.overwrite,
                              convention=None if f.convention == "auto" else f.convention,
                              progress=True)
    if "cases" in result:
        print(f"{f.output}: {len(result['cases'])} masks written, {len(result['errors'])} errors")
        sys.exit(1 if result["errors"] else 0)
    what = (", ".join(f"{n} {r}" for r, n in result["regions"].items()) + " voxels, label map "
            f"in the {result['convention']} convention" if "regions" in result else
            f"{result['voxels']} tumor voxels")
    print(f"{result['output']}: {what}, on {result['slices_with_tumor']} slices (flips: "
          f"{', '.join(result['flips'])}; clean-up: {result['postprocess']})")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("model", None, "Workdir, .keras file or SavedModel folder; several, "
                        "comma-separated, for an ensemble (probabilities averaged).")
    flags.DEFINE_string("input", None, "A NIfTI file per model channel (comma-separated, in "
                        "the model's channel order; one T1c file for the paper's models), or a "
                        "folder in BraTS layout.")
    flags.DEFINE_string("output", None, "Output .nii.gz file (or folder for a folder input).")
    flags.DEFINE_float("threshold", DEFAULTS.threshold, "Probability threshold for the mask.")
    flags.DEFINE_enum("tta", DEFAULTS.tta, list(TTA_CHOICES), "Test-time mirror axes whose "
                      "flips are averaged: none, lr (left-right), ap (anterior-posterior), "
                      "lr,ap (all four flips).")
    flags.DEFINE_bool("postprocess", DEFAULTS.postprocess, "Apply the 3D clean-up recorded "
                      "with the model (chosen on validation by evaluate); --nopostprocess: "
                      "the raw mask.")
    flags.DEFINE_bool("edge_output", DEFAULTS.edge_output,
                      "Also write the boundary probability map.")
    flags.DEFINE_bool("save_probabilities", DEFAULTS.save_probabilities, "Also write the "
                      "tumor probability map (one per region for a model of several).")
    flags.DEFINE_bool("save_uncertainty", DEFAULTS.save_uncertainty, "Also write the "
                      "standard deviation of the probability over flips and ensemble members.")
    flags.DEFINE_enum("convention", "auto", ["auto", *CONVENTIONS], "Label convention of the "
                      "label map a model of several regions writes; auto: the input folder's "
                      "layout, else the model's training data.")
    flags.DEFINE_enum("precision", DEFAULTS.precision, list(PRECISIONS), "The models' "
                      "computation: float32: as trained (a model trained in mixed precision "
                      "computes in it), or bfloat16 (a workdir or .keras model), faster on "
                      "CPUs with AVX-512 BF16 or AMX and on recent GPUs; its masks differ from "
                      "float32's in a few voxels.")
    flags.DEFINE_enum("crop", DEFAULTS.crop, list(CROPS), "What the models run on: the whole "
                      "slice, as trained, or the head's box alone (a workdir or .keras model), "
                      "fewer pixels; its masks can be far from the whole slice's (a fifth to a "
                      "third of the tumor voxels on phantoms, docs/deployment.md).")
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
    flags.DEFINE_integer("batch_size", 0, "Slices per forward pass (0: 16 on a GPU, 2 per "
                         "stream on CPUs, runtime.inference_batch_size).")
    flags.DEFINE_bool("trust_model", DEFAULTS.trust_model, "Run a SavedModel even if its graph "
                      "holds operations this package's exports never use (only for a source "
                      "you trust).")
    flags.mark_flags_as_required(["model", "input", "output"])


def cli() -> None:
    """Console entry point `boundary-aware-predict`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
