"""Segment NIfTI volumes: `boundary-aware-predict --model=... --input=... --output=...`.

`--model` is a training workdir (the checkpoint its rule scores, final.keras
by default: `boundary_aware.run_directory`), a `.keras` file (loaded with safe
mode on) or an exported SavedModel folder; `.h5` files and pickles are
refused. Several, comma-separated, make an ensemble: their probabilities are
averaged, and they must take the same input (a mismatch is refused, naming
both). The model's input channels (MRI sequences; T1c for the paper's
models; with context slices, each sequence's neighbouring slices too) come
from its run or its export (`boundary_aware.inference`). `--input` is one
volume per sequence, comma-separated in the model's order (one T1c file for
the paper's models), with `--output` a file; or a
folder in BraTS layout (`<case>/<case>_t1ce.nii.gz` or `<case>-t1c.nii.gz`,
and the other sequences' files where the model takes them:
`data_prep.brats`) with `--output` a folder (one mask per case,
`<case>_tc.nii.gz`, or `<case>.nii.gz` for a model of several regions, and
`summary.json`, rewritten after every case so that a stopped run says what
finished, and lists under `skipped` what discovery passed over, with the
reason). A case that lacks a sequence the model takes is refused, naming
the file; two cases of one id are refused, naming both.

The paper's models write the tumor core as 1. A model of several regions
(`data.regions`, e.g. WT, TC and ET as separate sigmoid maps) writes one
label map, its regions turned back into labels in nested order (WT as edema
2, then TC as 1 over it, then ET as the convention's enhancing label:
`data.label_map`), in the input's label convention: a BraTS folder's layout
says it (2018-2021: ET = 4; 2023 on: ET = 3), else the one of the data the
model was trained on (recorded in its run or export), else `--convention`.

Each volume is segmented by `inference.segment_volume`: every axial slice
that holds head, each channel normalized as in training; voxels outside the
head (every channel 0) are never tumor. `--tta` averages over in-plane
mirror flips (`lr`: left-right, `ap`: anterior-posterior, `lr,ap`: all four;
default `inference.DEFAULT_TTA`). Off by default, for speed and not the same
masks: `--precision=bfloat16` computes in bfloat16, `--crop=head` runs the
model on the head's box alone (`inference.in_head_box`). The mean
probability is thresholded
(`--threshold`, 0.5) and cleaned by the 3D rule recorded with the model
(`boundary_aware.postprocess`, chosen per region on the validation volumes
by `evaluate`; for an ensemble, the rules its members agree on) unless
`--nopostprocess`, then written as a uint8 NIfTI with the first input's
shape, affine and orientation. Beside the mask, on request (float32):
`--edge_output` the boundary probability (`<name>_edge.nii.gz`),
`--save_probabilities` the tumor probability (`<name>_prob.nii.gz`; one per
region for a model of several: `<name>_prob_wt.nii.gz`, ...),
`--save_uncertainty` its standard deviation over the flips and ensemble
members (`<name>_uncertainty.nii.gz`, per region likewise; 0 for one model
without flips).
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
from boundary_aware.data import (CONVENTIONS, LAYOUT_CONVENTIONS, DataError, label_map,
                                 region_label)
from boundary_aware.errors import LockedError
from boundary_aware.files import atomic_write_text, check_writable_folder, exclusive_lock
from boundary_aware.inference import (CROPS, DEFAULT_TTA, NO_TTA, PRECISIONS, TTA_CHOICES,
                                      VolumeInput, as_list, load_predictors, segment_volume,
                                      tta_flips, with_map_axis)
from boundary_aware.nifti import is_our_output, load_channels, save_like
from data_prep.brats import discover_images

# the maps written beside a mask on request: (output key, file name suffix)
EXTRA_OUTPUTS = {"edge": "_edge", "prob": "_prob", "uncertainty": "_uncertainty"}
MAX_BATCH = 512  # slices per forward pass: beyond a whole volume, only memory is spent


def beside(output: Path, suffix: str) -> Path:
    """`<name>.nii.gz` -> `<name><suffix>.nii.gz`."""
    name = output.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name
    return output.with_name(f"{stem}{suffix}.nii.gz")


def recorded_rules(predictors) -> dict:
    """{region: clean-up rule} recorded with the model (`Predictor.postprocess`), or that
    every member of an ensemble records alike; `postprocess.NONE` where none is."""
    predictors = as_list(predictors)
    rules = [p.postprocess for p in predictors]
    regions = predictors[0].regions
    if any(not r for r in rules) or any(r != rules[0] for r in rules[1:]):
        return {region: postprocess.NONE for region in regions}
    return {region: rules[0].get(region, postprocess.NONE) for region in regions}


def output_convention(predictors, layout: str | None = None,
                      convention: str | None = None) -> str:
    """The label convention a label map is written in: `convention` if given; else the
    input's, from its file layout (a BraTS folder: the 2018 layout holds ET = 4, the 2023
    layout ET = 3); else the one the model was trained on (recorded in its run or
    export); else BraTS 2023's. BraTS 2024's post-treatment convention writes as 2023's
    (the cavity is no region)."""
    if convention:
        return check_convention(convention)
    if layout:
        return LAYOUT_CONVENTIONS[layout][0]
    recorded = {c for p in as_list(predictors) for c in p.conventions}
    et_labels = {region_label("et", c) for c in recorded}
    if len(et_labels) > 1:
        raise DataError("the model was trained on data of several label conventions "
                        f"({', '.join(sorted(recorded))}); pass --convention")
    return sorted(recorded)[0] if recorded else "brats2023"


def check_convention(convention: str) -> str:
    """`convention`, or DataError unless it is one of `data.CONVENTIONS`."""
    if convention not in CONVENTIONS:
        raise DataError(f"--convention must be one of {', '.join(CONVENTIONS)}, got "
                        f"{convention!r}")
    return convention


def map_paths(output: Path, suffix: str, names) -> dict:
    """{name: path} of the maps `<output><suffix>` written beside a mask: one file for one
    map, `<suffix>_<name>` for each of several (one per region)."""
    names = list(names)
    if len(names) == 1:
        return {names[0]: beside(output, suffix)}
    return {name: beside(output, f"{suffix}_{name}") for name in names}


# Below this share of zero voxels a scan is not skull-stripped with a background of 0
# (BraTS's: 80-90%; a scan cropped close to the brain still has its box's corners).
BACKGROUND_EXPECTED = 0.01


def predict_file(predictors, image_paths, output: str | os.PathLike,
                 threshold: float = 0.5, edge_output: bool = False, overwrite: bool = False,
                 distinct: bool = True, flips: Sequence[str] = NO_TTA,
                 use_postprocess: bool = True, save_probabilities: bool = False,
                 save_uncertainty: bool = False, convention: str | None = None) -> dict:
    """Segment one case (a path per sequence, in the models' order) with one predictor or
    an ensemble's list, and write its mask (and the maps asked for) on the first file's
    grid; returns a summary dict. `distinct`: as in `segment_volume`. A model of several
    regions writes a label map in `convention` (`output_convention`; one region: its
    label, 1 for the paper's tumor core)."""
    predictors = as_list(predictors)
    sequences, regions = predictors[0].sequences, predictors[0].regions
    output = Path(output)
    paths = [Path(p) for p in ([image_paths] if isinstance(image_paths, (str, os.PathLike))
                               else image_paths)]
    if len(paths) != len(sequences):
        raise DataError(f"{', '.join(map(str, paths))}: the model takes "
                        f"{len(sequences)} volumes ({', '.join(sequences)}), got {len(paths)}")
    if not (output.name.endswith(".nii.gz") or output.name.endswith(".nii")):
        raise DataError(f"{output}: the output must end in .nii.gz or .nii")
    convention = output_convention(predictors, None, convention)
    targets = {"mask": {"mask": output}}
    if save_probabilities:
        targets["prob"] = map_paths(output, EXTRA_OUTPUTS["prob"], regions)
    if save_uncertainty:
        targets["uncertainty"] = map_paths(output, EXTRA_OUTPUTS["uncertainty"], regions)
    check_targets(targets, overwrite)
    volume, _, zooms = load_channels(paths, sequences)
    volume = VolumeInput(volume)  # its head mask serves the check and the segmentation
    background = 1.0 - float(np.mean(volume.head))
    if background < BACKGROUND_EXPECTED:
        print(f"warning: {paths[0]}: {background:.1%} of its voxels are 0; the models expect "
              f"skull-stripped scans whose background (outside the head) is 0, as BraTS's "
              f"are, and may mark tumor outside the brain of this one", file=sys.stderr)
    probs = segment_volume(predictors, volume, distinct, flips=flips, spread=save_uncertainty)
    if edge_output:
        if "edge" not in probs:
            raise DataError(f"{paths[0]}: this model has no edge output (only the boundary-aware "
                            f"one does)")
        edges = probs["edge"].shape[3] if probs["edge"].ndim == 4 else 1
        targets["edge"] = map_paths(output, EXTRA_OUTPUTS["edge"],
                                    regions if edges == len(regions) else ["union"])
        check_targets({"edge": targets["edge"]}, overwrite)
    rules = recorded_rules(predictors) if use_postprocess else \
        {r: postprocess.NONE for r in regions}
    maps = {"prob": probs["seg"], "uncertainty": probs.get("seg_spread"), "edge": probs.get("edge")}
    maps = {k: None if v is None else with_map_axis(v) for k, v in maps.items()}
    masks = np.stack([postprocess.apply(maps["prob"][..., i] > threshold, rules[r], zooms[:3])
                      for i, r in enumerate(regions)], axis=-1)
    mask = label_map(masks, regions, convention)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_like(mask, paths[0], output, np.uint8)
    for key, files in targets.items():
        if key != "mask":
            for k, (name, path) in enumerate(files.items()):
                save_like(maps[key][..., k], paths[0], path, np.float32)
    written = {k: {n: str(p) for n, p in files.items()} if len(files) > 1 else
               str(next(iter(files.values()))) for k, files in targets.items() if k != "mask"}
    labels = {r: postprocess.label(rules[r]) for r in regions}
    return {"input": ",".join(map(str, paths)), "output": str(output),
            "voxels": int(np.count_nonzero(mask)),
            "slices_with_tumor": int(np.count_nonzero(mask.any(axis=(0, 1)))),
            "flips": list(flips),
            "postprocess": labels[regions[0]] if len(regions) == 1 else labels,
            **({"regions": {r: int(masks[..., i].sum()) for i, r in enumerate(regions)},
                "convention": convention} if len(regions) > 1 else {}),
            **({"maps": written} if written else {})}


def check_targets(targets: dict, overwrite: bool) -> None:
    """`check_replaceable` of every path in `targets` ({kind: {name: path}})."""
    for files in targets.values():
        for target in files.values():
            check_replaceable(target, overwrite, is_our_output, "a mask written by this package")


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
                 save_uncertainty: bool = False, convention: str | None = None,
                 precision: str = "float32", crop: str = "none") -> dict:
    """Segment a case's files or a BraTS folder (see the module docstring). `model` is one
    model or several (comma-separated, or a list: an ensemble). `input_path` is a folder,
    a file, or a comma-separated list of files (or a list of paths), one per model
    channel. `precision`: the models' computation (`inference.PRECISIONS`); `crop`: what
    they run on (`inference.CROPS`)."""
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
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH:
        raise DataError(f"--batch_size must be from 1 to {MAX_BATCH} slices per forward pass "
                        f"(a BraTS volume has 155), got {batch_size}")
    flips = tta_flips(tta)
    if convention:
        check_convention(convention)
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
        with exclusive_lock(output_lock(output), str(output)):
            predictors = load_predictors(models, batch_size, trust_model, precision, crop)
            return predict_file(predictors, inputs, output, convention=convention, **options)
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: must be a folder when --input is a folder")
    check_writable_folder(output)
    with exclusive_lock(output_lock(output), str(output)):
        return _predict_folder(models, inputs[0], output, overwrite, batch_size, progress,
                               trust_model, convention, flips, options, precision, crop)


def output_lock(output: Path) -> Path:
    """The lock beside an output file or folder: two predicts writing one output exclude
    each other (the second refuses at once, naming the first)."""
    return output.with_name(f".{output.name}.lock")


def _predict_folder(models, folder, output, overwrite, batch_size, progress, trust_model,
                    convention, flips, options, precision, crop) -> dict:
    """`predict_path` for a BraTS folder, under the output's lock."""
    summary_path = output / "summary.json"
    check_replaceable(summary_path, overwrite, _is_our_summary,
                      "a summary written by this package")
    predictors = load_predictors(models, batch_size, trust_model, precision, crop)
    skipped = {}
    cases = discover_images(folder, predictors[0].sequences, skipped)
    for path, why in skipped.items():
        print(f"skipped {path}: {why}", file=sys.stderr)
    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc="cases", unit="case", file=sys.stderr)
    summary = {"model": ",".join(models), "threshold": options["threshold"],
               "flips": list(flips), "precision": precision, "crop": crop,
               "cases": {}, "errors": {}, "pending": [c.case_id for c in cases],
               "skipped": skipped}
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    for case in iterator:
        try:
            summary["cases"][case.case_id] = predict_file(
                predictors, case.channel_files(predictors[0].sequences),
                output / case_output(case.case_id, predictors[0].regions),
                convention=output_convention(predictors, case.layout, convention), **options)
        except DataError as err:
            summary["errors"][case.case_id] = str(err)
            print(f"error: {err}", file=sys.stderr)
        summary["pending"].remove(case.case_id)
        # after every case: a stopped run's summary names what finished
        atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return summary


def case_output(case_id: str, regions) -> str:
    """A case's file name in an output folder: `<case>_<region>.nii.gz` for one region (the
    paper's: `<case>_tc.nii.gz`), `<case>.nii.gz` for the label map of several (as BraTS
    names its submissions)."""
    return f"{case_id}_{regions[0]}.nii.gz" if len(regions) == 1 else f"{case_id}.nii.gz"


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(DataError, LockedError):
        result = predict_path(f.model, f.input, f.output, f.threshold, f.edge_output, f.overwrite,
                              f.batch_size or None, progress=True, trust_model=f.trust_model,
                              tta=f.tta, use_postprocess=f.postprocess,
                              save_probabilities=f.save_probabilities,
                              save_uncertainty=f.save_uncertainty,
                              convention=None if f.convention == "auto" else f.convention,
                              precision=f.precision, crop=f.crop)
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
    flags.DEFINE_float("threshold", 0.5, "Probability threshold for the mask.")
    flags.DEFINE_enum("tta", DEFAULT_TTA, list(TTA_CHOICES), "Test-time mirror axes whose "
                      "flips are averaged: none, lr (left-right), ap (anterior-posterior), "
                      "lr,ap (all four flips).")
    flags.DEFINE_bool("postprocess", True, "Apply the 3D clean-up recorded with the model "
                      "(chosen on validation by evaluate); --nopostprocess: the raw mask.")
    flags.DEFINE_bool("edge_output", False, "Also write the boundary probability map.")
    flags.DEFINE_bool("save_probabilities", False, "Also write the tumor probability map (one "
                      "per region for a model of several).")
    flags.DEFINE_bool("save_uncertainty", False, "Also write the standard deviation of the "
                      "probability over flips and ensemble members.")
    flags.DEFINE_enum("convention", "auto", ["auto", *CONVENTIONS], "Label convention of the "
                      "label map a model of several regions writes; auto: the input folder's "
                      "layout, else the model's training data.")
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "The models' computation: "
                      "float32: as trained (a model trained in mixed precision computes in it), "
                      "or bfloat16 (a workdir or .keras model), faster on "
                      "CPUs with AVX-512 BF16 or AMX and on recent GPUs; its masks differ from "
                      "float32's in a few voxels.")
    flags.DEFINE_enum("crop", "none", list(CROPS), "What the models run on: the whole slice, "
                      "as trained, or the head's box alone (a workdir or .keras model), "
                      "fewer pixels; its masks can be far from the whole slice's (a fifth to a "
                      "third of the tumor voxels on phantoms, docs/deployment.md).")
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
