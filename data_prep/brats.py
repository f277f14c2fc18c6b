"""Find BraTS cases on disk and read them, validating every file.

Layouts (docs/data.md):
* BraTS 2018-2021: `<root>/**/<case>/<case>_t1ce.nii.gz` + `<case>_seg.nii.gz`,
  labels {0, 1, 2, 4};
* BraTS 2023+:     `<root>/**/<case>/<case>-t1c.nii.gz` + `<case>-seg.nii.gz`,
  labels {0, 1, 2, 3}.
Other files in a case folder (flair, t1, t2, ...) are ignored. Every problem
raises `DataError` naming the file and what is wrong.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boundary_aware.data import CONVENTIONS, DataError, region_mask
from boundary_aware.nifti import load_volume

LAYOUTS = {  # convention: (image suffix, seg suffix)
    "brats2018": ("_t1ce.nii.gz", "_seg.nii.gz"),
    "brats2023": ("-t1c.nii.gz", "-seg.nii.gz"),
}


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    seg: Path
    convention: str


def _files(root, unreadable):
    """Every file under `root`; folders that cannot be listed go to `unreadable`."""
    def note(err):
        unreadable[str(err.filename)] = err.strerror or str(err)
    found = []
    for folder, _, names in os.walk(root, onerror=note):
        found += [Path(folder) / name for name in names]
    return sorted(found)


def discover_cases(root, on_error="fail", skipped=None):
    """All cases under `root` (either layout), sorted by id.

    A folder that has a seg file but no T1c (or the reverse) is an error. A
    folder that cannot be read is an error naming it, or with
    `on_error="skip"` it is left out and recorded in `skipped` (folder: why).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    unreadable = {}
    files = _files(root, unreadable)
    for folder, why in unreadable.items():
        if on_error != "skip":
            raise DataError(f"{folder}: cannot read this folder ({why}); fix its permissions, "
                            f"or pass --on_error=skip to leave it out")
        if skipped is not None:
            skipped[folder] = f"cannot read this folder ({why})"
    cases = {}
    for convention, (img_suffix, seg_suffix) in LAYOUTS.items():
        matching = [p for p in files if p.name.endswith(img_suffix)] + \
            [p for p in files if p.name.endswith(seg_suffix)]
        for path in matching:
            suffix = img_suffix if path.name.endswith(img_suffix) else seg_suffix
            case_id = path.name[: -len(suffix)]
            if path.parent.name != case_id:
                continue  # not in its own case folder: not a BraTS file
            image, seg = path.parent / (case_id + img_suffix), path.parent / (case_id + seg_suffix)
            for needed, what in ((image, "T1c"), (seg, "segmentation")):
                if not needed.is_file():
                    raise DataError(f"{needed}: missing {what} file of case {case_id}")
            other = cases.get(case_id)
            if other and other.image != image:
                raise DataError(f"{image}: case id {case_id} also found at {other.image}")
            cases[case_id] = Case(case_id, image, seg, convention)
    if not cases:
        raise DataError(f"{root}: no BraTS cases found (expected <case>/<case>_t1ce.nii.gz "
                        f"and <case>_seg.nii.gz, or <case>-t1c.nii.gz and <case>-seg.nii.gz)")
    return [cases[k] for k in sorted(cases)]


def load_case(case, region="tc"):
    """Read and validate one case: `(image, mask, zooms)` in LPS axis order."""
    image, affine, zooms = load_volume(case.image, "image")
    if image.size and image.min() == image.max():
        raise DataError(f"{case.image}: the T1c is constant (every voxel is {image.flat[0]}): "
                        f"it holds no image")
    seg, seg_affine, _ = load_volume(case.seg, "seg")
    if image.shape != seg.shape:
        raise DataError(f"{case.seg}: shape {seg.shape} differs from the T1c's {image.shape} "
                        f"({case.image})")
    if not np.allclose(affine, seg_affine, atol=1e-3):
        raise DataError(f"{case.seg}: affine differs from the T1c's ({case.image}): "
                        f"{np.round(seg_affine, 3).tolist()} vs {np.round(affine, 3).tolist()}")
    if np.issubdtype(seg.dtype, np.floating):
        if not np.all(np.isfinite(seg)):
            raise DataError(f"{case.seg}: NaN or inf labels")
        if np.any(seg != np.round(seg)):
            raise DataError(f"{case.seg}: non-integer labels")
    labels = np.unique(seg)
    allowed = CONVENTIONS[case.convention]["labels"]
    unknown = sorted(set(labels.tolist()) - set(allowed))
    if unknown:
        raise DataError(f"{case.seg}: labels {[int(v) for v in unknown]} are outside the "
                        f"{case.convention} convention {list(allowed)} "
                        f"(found {[int(v) for v in labels]})")
    mask = region_mask(seg, case.convention, region)
    if not mask.any():
        raise DataError(f"{case.seg}: the {region.upper()} region is empty "
                        f"(labels found: {[int(v) for v in labels]})")
    return image, mask, zooms
