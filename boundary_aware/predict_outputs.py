"""What predict writes, and where: file names, label conventions, what may be replaced.

A case's mask is `<case>_<region>.nii.gz` for a model of one region (the
paper's: `<case>_tc.nii.gz`) or `<case>.nii.gz`, a label map, for a model of
several; the maps asked for lie beside it (`<name>_prob.nii.gz`, one per
region for several: `<name>_prob_wt.nii.gz`, ...). A label map is written in
the input's label convention (`output_convention`). An existing file is
replaced only with `--overwrite`, and only when this package wrote it.

Reference: docs/usage.md ("Prediction"); docs/design.md ("Regions: several
outputs, one network", "Files on disk").
"""

from __future__ import annotations

import json
from pathlib import Path

from boundary_aware import postprocess
from boundary_aware.errors import DataError
from boundary_aware.inference.predictor import as_list
from boundary_aware.nifti import is_our_output
from boundary_aware.regions import LAYOUT_CONVENTIONS, check_convention, region_label

# the maps written beside a mask on request: (output key, file name suffix)
EXTRA_OUTPUTS = {"edge": "_edge", "prob": "_prob", "uncertainty": "_uncertainty"}


def beside(output: Path, suffix: str) -> Path:
    """`<name>.nii.gz` -> `<name><suffix>.nii.gz`."""
    name = output.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name
    return output.with_name(f"{stem}{suffix}.nii.gz")


def map_paths(output: Path, suffix: str, names) -> dict:
    """{name: path} of the maps `<output><suffix>` written beside a mask: one file for one
    map, `<suffix>_<name>` for each of several (one per region)."""
    names = list(names)
    if len(names) == 1:
        return {names[0]: beside(output, suffix)}
    return {name: beside(output, f"{suffix}_{name}") for name in names}


def case_output(case_id: str, regions) -> str:
    """A case's file name in an output folder: `<case>_<region>.nii.gz` for one region (the
    paper's: `<case>_tc.nii.gz`), `<case>.nii.gz` for the label map of several (as BraTS
    names its submissions)."""
    return f"{case_id}_{regions[0]}.nii.gz" if len(regions) == 1 else f"{case_id}.nii.gz"


def output_lock(output: Path) -> Path:
    """The lock beside an output file or folder: two predicts writing one output exclude
    each other (the second refuses at once, naming the first)."""
    return output.with_name(f".{output.name}.lock")


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


def is_our_summary(path: Path) -> bool:
    """Whether `path` is a folder prediction's `summary.json`."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"model", "threshold", "cases", "errors"} <= set(summary)
