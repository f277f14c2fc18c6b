"""Find BraTS cases on disk and read them, validating every file.

Layouts (DESIGN.md section 4):
* BraTS 2018-2021: `<root>/**/<case>/<case>_t1ce.nii.gz` + `<case>_seg.nii.gz`,
  labels {0, 1, 2, 4};
* BraTS 2023+:     `<root>/**/<case>/<case>-t1c.nii.gz` + `<case>-seg.nii.gz`,
  labels {0, 1, 2, 3}.
Other files in a case folder (flair, t1, t2, ...) are ignored. Every problem
raises `DataError` naming the file and what is wrong.
"""

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from boundary_aware.data import BRATS_ORIENTATION, CONVENTIONS, DataError, region_mask

LAYOUTS = {  # convention: (image suffix, seg suffix)
    "brats2018": ("_t1ce.nii.gz", "_seg.nii.gz"),
    "brats2023": ("-t1c.nii.gz", "-seg.nii.gz"),
}
MAX_VOXELS = 512 ** 3  # a header asking for more is rejected before any read


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


def load_volume(path, kind="image"):
    """Load one NIfTI volume as a float or int array in the BraTS (LPS) axis order.

    Returns `(array, affine, zooms)`; the affine and zooms are those of the
    file (the array is reoriented to LPS when the file is stored otherwise).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for "not a NIfTI"
        raise DataError(f"{path}: not a NIfTI file ({err})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path}: not a NIfTI file (nibabel read it as {type(img).__name__})")
    shape = img.header.get_data_shape()
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3D volume, got {len(shape)}D data of shape {shape}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS or min(shape) < 1:
        raise DataError(f"{path}: header shape {shape} is implausible "
                        f"({voxels:,d} voxels; the limit is {MAX_VOXELS:,d})")
    try:
        data = np.asanyarray(img.dataobj)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as err:
        raise DataError(f"{path}: cannot read the voxel data: truncated or corrupt file ({err})") from None
    if kind == "image" and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise DataError(f"{path}: {int(np.sum(~np.isfinite(data)))} NaN or inf voxels")
    ornt = orientations.ornt_transform(orientations.io_orientation(img.affine),
                                       orientations.axcodes2ornt(BRATS_ORIENTATION))
    data = orientations.apply_orientation(data, ornt)
    return np.ascontiguousarray(data), img.affine, tuple(float(z) for z in img.header.get_zooms())


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
