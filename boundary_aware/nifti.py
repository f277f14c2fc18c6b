"""Reading and writing NIfTI volumes safely, in the BraTS (LPS) axis order.

Every problem raises `DataError` naming the file. Arrays are handed out in
the BraTS axis order (L, P, S: axial slices along the last axis) whatever
the file's orientation, and written back in the file's own orientation.
"""

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from boundary_aware.data import BRATS_ORIENTATION, DataError
from boundary_aware.files import atomic_file

MAX_VOXELS = 512 ** 3  # a header asking for more is rejected before any read


def to_brats_transform(affine):
    """nibabel orientation transform from the file's axes to LPS."""
    return orientations.ornt_transform(orientations.io_orientation(affine),
                                       orientations.axcodes2ornt(BRATS_ORIENTATION))


def from_brats_transform(affine):
    """The inverse: from LPS back to the file's axes."""
    return orientations.ornt_transform(orientations.axcodes2ornt(BRATS_ORIENTATION),
                                       orientations.io_orientation(affine))


def load_volume(path, kind="image"):
    """Load one 3D NIfTI volume in LPS axis order: `(array, affine, zooms)`.

    The affine and zooms are the file's. `kind="image"` also rejects NaN/inf.
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
    data = orientations.apply_orientation(data, to_brats_transform(img.affine))
    return np.ascontiguousarray(data), img.affine, tuple(float(z) for z in img.header.get_zooms())


def save_like(array_lps, reference_path, out_path, dtype):
    """Write an LPS-ordered array as NIfTI in the reference file's orientation,
    with its affine and header, atomically (a temporary file, then a rename)."""
    reference = nib.load(str(reference_path))
    data = orientations.apply_orientation(array_lps, from_brats_transform(reference.affine))
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(np.ascontiguousarray(data).astype(dtype), reference.affine, header)
    img.set_sform(reference.affine, code=int(reference.header["sform_code"]) or 1)
    img.set_qform(reference.affine, code=int(reference.header["qform_code"]) or 1)
    img.header.set_slope_inter(1, 0)
    with atomic_file(out_path) as tmp:
        nib.save(img, str(tmp))
