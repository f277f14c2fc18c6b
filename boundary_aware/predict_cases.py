"""Segment cases to files: one case's volumes to a mask, a BraTS folder to a folder of masks.

`predict_file` segments one case (`inference.volume.segment_volume`), applies
the threshold and the clean-up recorded with the model, and writes the mask
(a label map for a model of several regions) and the maps asked for on the
first input file's grid. `predict_folder` does it for every case a BraTS
folder holds (`brats_cases.discover_images`), rewriting `summary.json` after
every case so that a stopped run says what finished.

Reference: docs/usage.md ("Prediction"); docs/design.md ("Whole volumes").
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from boundary_aware import postprocess
from boundary_aware.brats_cases import discover_images
from boundary_aware.errors import DataError
from boundary_aware.files import atomic_write_text
from boundary_aware.inference.ensemble import UNCERTAINTY
from boundary_aware.inference.options import InferenceOptions
from boundary_aware.inference.predictor import as_list
from boundary_aware.inference.sources import load_predictors
from boundary_aware.inference.volume import VolumeInput, segment_volume, with_map_axis
from boundary_aware.nifti import load_channels, save_like
from boundary_aware.predict_outputs import (EXTRA_OUTPUTS, case_output, check_replaceable,
                                            check_targets, is_our_summary, map_paths,
                                            output_convention, recorded_rules)
from boundary_aware.regions import label_map

# Below this share of zero voxels a scan is not skull-stripped with a background of 0
# (BraTS's: 80-90%; a scan cropped close to the brain still has its box's corners).
BACKGROUND_EXPECTED = 0.01


def _case_paths(image_paths, sequences, output: Path) -> list[Path]:
    """The case's files as paths, one per sequence; DataError for another count or an
    output that is not a NIfTI name."""
    paths = [Path(p) for p in ([image_paths] if isinstance(image_paths, (str, os.PathLike))
                               else image_paths)]
    if len(paths) != len(sequences):
        raise DataError(f"{', '.join(map(str, paths))}: the model takes "
                        f"{len(sequences)} volumes ({', '.join(sequences)}), got {len(paths)}")
    if not (output.name.endswith(".nii.gz") or output.name.endswith(".nii")):
        raise DataError(f"{output}: the output must end in .nii.gz or .nii")
    return paths


def _read_case(paths, sequences) -> tuple[VolumeInput, tuple]:
    """(the case's `VolumeInput`, its voxel spacing), warning on stderr where the scan has
    almost no background of 0 (the head mask then keeps nothing out)."""
    volume, _, zooms = load_channels(paths, sequences)
    volume = VolumeInput(volume)  # its head mask serves the check and the segmentation
    background = 1.0 - float(np.mean(volume.head))
    if background < BACKGROUND_EXPECTED:
        print(f"warning: {paths[0]}: {background:.1%} of its voxels are 0; the models expect "
              f"skull-stripped scans whose background (outside the head) is 0, as BraTS's "
              f"are, and may mark tumor outside the brain of this one", file=sys.stderr)
    return volume, zooms


def _edge_targets(probs: dict, output: Path, regions, paths) -> dict:
    """{name: path} of the boundary maps of `probs`' edge output (one per region, or one
    for their union); DataError for a model without one."""
    if "edge" not in probs:
        raise DataError(f"{paths[0]}: this model has no edge output (only the boundary-aware "
                        f"one does)")
    edges = probs["edge"].shape[3] if probs["edge"].ndim == 4 else 1
    return map_paths(output, EXTRA_OUTPUTS["edge"],
                     regions if edges == len(regions) else ["union"])


def predict_file(predictors, image_paths, output: str | os.PathLike,
                 options: InferenceOptions = InferenceOptions(), overwrite: bool = False,
                 convention: str | None = None, distinct: bool = True) -> dict:
    """Segment one case (a path per sequence, in the models' order) with one predictor or
    an ensemble's list, as `options` say, and write its mask (and the maps asked for) on
    the first file's grid; returns a summary dict. A model of several regions writes a
    label map in `convention` (`predict_outputs.output_convention`; one region: its
    label, 1 for the paper's tumor core). `distinct`: as in `segment_volume`."""
    predictors = as_list(predictors)
    sequences, regions = predictors[0].sequences, predictors[0].regions
    output = Path(output)
    paths = _case_paths(image_paths, sequences, output)
    convention = output_convention(predictors, None, convention)
    targets = {"mask": {"mask": output}}
    if options.save_probabilities:
        targets["prob"] = map_paths(output, EXTRA_OUTPUTS["prob"], regions)
    if options.save_uncertainty:
        targets["uncertainty"] = map_paths(output, EXTRA_OUTPUTS["uncertainty"], regions)
    check_targets(targets, overwrite)
    volume, zooms = _read_case(paths, sequences)
    probs = segment_volume(predictors, volume, distinct, flips=options.flips,
                           uncertainty=options.save_uncertainty)
    if options.edge_output:
        targets["edge"] = _edge_targets(probs, output, regions, paths)
        check_targets({"edge": targets["edge"]}, overwrite)
    rules = recorded_rules(predictors) if options.postprocess else \
        {r: postprocess.NONE for r in regions}
    maps = {"prob": probs["seg"], "uncertainty": probs.get("seg" + UNCERTAINTY),
            "edge": probs.get("edge")}
    maps = {k: None if v is None else with_map_axis(v) for k, v in maps.items()}
    masks = np.stack([postprocess.apply(maps["prob"][..., i] > options.threshold, rules[r],
                                        zooms[:3]) for i, r in enumerate(regions)], axis=-1)
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
            "flips": list(options.flips),
            "postprocess": labels[regions[0]] if len(regions) == 1 else labels,
            **({"regions": {r: int(masks[..., i].sum()) for i, r in enumerate(regions)},
                "convention": convention} if len(regions) > 1 else {}),
            **({"maps": written} if written else {})}


def predict_folder(models, folder: Path, output: Path, options: InferenceOptions,
                   overwrite: bool = False, convention: str | None = None,
                   progress: bool = False) -> dict:
    """Every case of a BraTS `folder` segmented by `predict_file` with the `models` (paths:
    one, or an ensemble's several) into the folder `output` (under the output's lock), with
    `summary.json` rewritten after every case. A case that fails is recorded under
    `errors` and the others go on."""
    summary_path = output / "summary.json"
    check_replaceable(summary_path, overwrite, is_our_summary,
                      "a summary written by this package")
    predictors = load_predictors(models, options)
    skipped = {}
    cases = discover_images(folder, predictors[0].sequences, skipped)
    for path, why in skipped.items():
        print(f"skipped {path}: {why}", file=sys.stderr)
    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc="cases", unit="case", file=sys.stderr)
    summary = {"model": ",".join(models), "threshold": options.threshold,
               "flips": list(options.flips), "precision": options.precision,
               "crop": options.crop, "cases": {}, "errors": {},
               "pending": [c.case_id for c in cases], "skipped": skipped}
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    for case in iterator:
        try:
            summary["cases"][case.case_id] = predict_file(
                predictors, case.sequence_files(predictors[0].sequences),
                output / case_output(case.case_id, predictors[0].regions), options, overwrite,
                output_convention(predictors, case.layout, convention))
        except DataError as err:
            summary["errors"][case.case_id] = str(err)
            print(f"error: {err}", file=sys.stderr)
        summary["pending"].remove(case.case_id)
        # after every case: a stopped run's summary names what finished
        atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return summary
