"""Figures show axial slices as radiology viewers do, checked on a real BraTS sample, and
say on the image when their data is synthetic."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from boundary_aware.nifti import load_volume, to_brats_transform
from experiments.figures import data_label, radiological

CASE = Path(__file__).parent / "data" / "brats_samples" / "BraTS2013_pat0005"


def test_radiological_display_on_a_real_scan():
    path = CASE / "BraTS2013_pat0005_t1ce.nii.gz"
    volume, _, _ = load_volume(path, "image")
    img = nib.load(str(path))
    lps_affine = img.as_reoriented(to_brats_transform(img.affine)).affine  # array -> RAS mm
    z = volume.shape[2] // 2
    shown = radiological(volume[..., z])
    rows, cols = shown.shape
    assert shown[3, 7] == volume[7, 3, z]  # row = posterior index, column = left index

    def world(row, col):  # RAS millimetres of a displayed pixel
        return lps_affine @ np.array([col, row, z, 1.0])
    top, bottom = world(0, cols // 2), world(rows - 1, cols // 2)
    left, right = world(rows // 2, 0), world(rows // 2, cols - 1)
    assert top[1] > bottom[1]  # anterior (RAS +y) is up
    assert left[0] > right[0]  # the patient's right (RAS +x) is on the image's left


def test_figures_from_synthetic_runs_say_so(tmp_path):
    assert data_label(tmp_path) is None  # the user's BraTS: no label
    record = tmp_path / "synthetic_brats" / ".complete"
    record.parent.mkdir()
    record.write_text(json.dumps({"phantom": "confirmation", "seed": 1}))
    assert data_label(tmp_path) == ("SYNTHETIC data (the confirmation phantom, generator seed "
                                    "1): not BraTS")
    record.write_text("ok\n")  # a record that names no phantom
    assert "SYNTHETIC" in data_label(tmp_path)
