"""Reading and writing NIfTI volumes safely, in the BraTS (LPS) axis order.

Every problem raises `DataError` naming the file. Arrays are handed out in
the BraTS axis order (L, P, S: axial slices along the last axis) whatever
the file's orientation, and written back in the file's own orientation.

Reference: docs/data.md; NIfTI-1 (nibabel).
"""

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from boundary_aware.errors import DataError
from boundary_aware.files import atomic_file

BRATS_ORIENTATION = ("L", "P", "S")  # the BraTS 2018 files' axis codes

MAX_VOXELS = 512 ** 3  # a header asking for more is rejected before any read
MAX_BYTES = 1 << 29  # and so is one whose voxel data would need more than 512 MiB


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

    The affine is the file's; `zooms` are the voxel sizes along the returned
    array's axes (the file's zooms permuted as its axes were, so a file stored
    (S, L, P) at (3, 1, 1) mm gives an (L, P, S) array and zooms (1, 1, 3)).
    `kind="image"` also rejects NaN/inf. A file with axes of length 1 beyond the
    third (one time point or channel) is read as the 3D volume it holds.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: cannot read this file (permission denied)")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for "not a NIfTI"
        raise DataError(f"{path}: not a NIfTI file ({err})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path}: not a NIfTI file (nibabel read it as {type(img).__name__})")
    stored = img.header.get_data_shape()
    shape = stored[:3]  # a 4D file of one time point or channel, (X, Y, Z, 1), is 3D
    if len(stored) < 3 or any(n != 1 for n in stored[3:]):
        raise DataError(f"{path}: expected a 3D volume, got {len(stored)}D data of shape "
                        f"{stored}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS or min(shape) < 1:
        raise DataError(f"{path}: header shape {shape} is implausible "
                        f"({voxels:,d} voxels; the limit is {MAX_VOXELS:,d})")
    dtype = img.header.get_data_dtype()
    if dtype.kind not in "biuf":
        raise DataError(f"{path}: voxel type {dtype} is not an image or label type")
    # bytes in memory: the stored type, or float64 where the header scales the values
    slope, inter = img.header.get_slope_inter()
    itemsize = 8 if slope not in (None, 1) or inter not in (None, 0) else dtype.itemsize
    if voxels * itemsize > MAX_BYTES:
        raise DataError(f"{path}: header shape {shape} of {dtype} needs "
                        f"{voxels * itemsize / 2**20:,.0f} MiB in memory; the limit is "
                        f"{MAX_BYTES / 2**20:,.0f} MiB")
    if not path.name.endswith(".gz"):
        needed = int(img.header.get_data_offset()) + voxels * dtype.itemsize
        if path.stat().st_size < needed:
            raise DataError(f"{path}: cannot read the voxel data: truncated file "
                            f"({path.stat().st_size:,d} bytes, the header needs {needed:,d})")
    try:
        data = np.asanyarray(img.dataobj).reshape(shape)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as err:
        raise DataError(f"{path}: cannot read the voxel data: truncated or corrupt file ({err})") from None
    if kind == "image" and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise DataError(f"{path}: {int(np.sum(~np.isfinite(data)))} NaN or inf voxels")
    affine = np.asarray(img.affine, np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise DataError(f"{path}: its affine (voxel-to-world transform) is degenerate or not "
                        f"finite ({np.round(affine, 3).tolist()}); fix the header's sform/qform")
    zooms = img.header.get_zooms()[:3]
    if not all(np.isfinite(z) and z > 0 for z in zooms):
        raise DataError(f"{path}: voxel sizes {tuple(float(z) for z in zooms)} in the header "
                        f"are not positive numbers; fix the header's pixdim")
    transform = to_brats_transform(img.affine)
    data = orientations.apply_orientation(data, transform)
    return np.ascontiguousarray(data), img.affine, lps_zooms(img.header.get_zooms(), transform)


def lps_zooms(zooms, transform) -> tuple[float, ...]:
    """The file's voxel sizes in the LPS axis order of `transform` (nibabel's: row i says
    which output axis the file's axis i becomes, and whether it is flipped)."""
    out = [0.0] * len(transform)
    for axis, (target, _) in enumerate(transform):
        out[int(target)] = float(zooms[axis])
    return tuple(out)


def load_channels(paths, names):
    """Read the channel volumes of one case and stack them: `(image (X, Y, Z, C), affine,
    zooms)` in LPS axis order, the affine and zooms of the first file. Every volume
    must lie on the first one's grid (shape and affine); `names` name the channels in
    the error messages."""
    volumes, first = [], None
    for path, name in zip(paths, names):
        volume, affine, zooms = load_volume(path, "image")
        if first is None:
            first = (path, name, volume.shape, affine, zooms)
        else:
            check_same_grid(first[0], first[1], first[2], first[3], path, volume.shape, affine)
        volumes.append(volume)
    if first is None:
        raise ValueError("load_channels needs at least one file")
    return np.stack(volumes, axis=-1), first[3], first[4]


def check_same_grid(reference, name, shape, affine, path, other_shape, other_affine):
    """DataError naming `path` unless its shape and affine are those of `reference` (the
    `name` volume)."""
    if tuple(other_shape) != tuple(shape):
        raise DataError(f"{path}: shape {tuple(other_shape)} differs from the {name}'s "
                        f"{tuple(shape)} ({reference})")
    if not np.allclose(affine, other_affine, atol=1e-3):
        raise DataError(f"{path}: affine differs from the {name}'s ({reference}): "
                        f"{np.round(other_affine, 3).tolist()} vs {np.round(affine, 3).tolist()}")


OUTPUT_MARK = b"boundary-aware output"  # in the header's descrip field of what we write
SYNTHETIC_MARK = b"boundary-aware synthetic"  # and of the synthetic cases we generate


def has_mark(path, mark: bytes) -> bool:
    """Whether `path` is a NIfTI file whose header's description starts with `mark`."""
    try:
        header = nib.load(str(path)).header
        return bytes(header["descrip"]).startswith(mark)
    except Exception:  # unreadable, not NIfTI: not ours
        return False


def is_our_output(path) -> bool:
    """Whether `path` is a NIfTI file this package wrote (`save_like` marks its header)."""
    return has_mark(path, OUTPUT_MARK)


def save_like(array_lps, reference_path, out_path, dtype):
    """Write an LPS-ordered array as NIfTI in the reference file's orientation,
    with its affine and header, atomically (a temporary file, then a rename).
    The header's description says the file is this package's output."""
    reference = nib.load(str(reference_path))
    data = orientations.apply_orientation(array_lps, from_brats_transform(reference.affine))
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    header["descrip"] = OUTPUT_MARK
    img = nib.Nifti1Image(np.ascontiguousarray(data).astype(dtype), reference.affine, header)
    img.set_sform(reference.affine, code=int(reference.header["sform_code"]) or 1)
    img.set_qform(reference.affine, code=int(reference.header["qform_code"]) or 1)
    img.header.set_slope_inter(1, 0)
    with atomic_file(out_path) as tmp:
        nib.save(img, str(tmp))
