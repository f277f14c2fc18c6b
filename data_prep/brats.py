"""Find BraTS cases on disk and read them, validating every file.

Layouts (docs/data.md):
* BraTS 2018-2021: `<root>/**/<case>/<case>_t1ce.nii.gz` + `<case>_seg.nii.gz`,
  labels {0, 1, 2, 4};
* BraTS 2023+:     `<root>/**/<case>/<case>-t1c.nii.gz` + `<case>-seg.nii.gz`,
  labels {0, 1, 2, 3}.
Other files in a case folder (flair, t1, t2, ...) are ignored. Every problem
raises `DataError` naming the file and what is wrong.
"""

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


def discover_cases(root):
    """All cases under `root` (either layout), sorted by id.

    A folder that has a seg file but no T1c (or the reverse) is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    cases = {}
    for convention, (img_suffix, seg_suffix) in LAYOUTS.items():
        for path in sorted(root.rglob(f"*{img_suffix}")) + sorted(root.rglob(f"*{seg_suffix}")):
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
