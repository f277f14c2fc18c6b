"""Metrics against medpy.metric.binary and the empty-mask policy."""

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage

from boundary_aware import metrics


def random_blob_pair(rng, shape):
    """Two overlapping random blobs (smoothed noise, thresholded)."""
    def blob():
        noise = ndimage.gaussian_filter(rng.random(shape), sigma=rng.uniform(1, 3))
        return noise > np.quantile(noise, rng.uniform(0.6, 0.97))
    return blob(), blob()


def random_cases(n, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        three_d = i % 2 == 1
        shape = tuple(rng.integers(12, 40, size=3 if three_d else 2))
        if i % 4 < 2:
            spacing = None if i % 8 < 4 else (1.0,) * len(shape)
        else:
            spacing = tuple(rng.uniform(0.4, 3.0, size=len(shape)))
        pred, ref = random_blob_pair(rng, shape)
        yield pred, ref, spacing


CASES = list(random_cases(240))


def test_random_cases_cover_what_is_claimed():
    dims = {p.ndim for p, _, _ in CASES}
    anisotropic = [s for _, _, s in CASES if s is not None and len(set(s)) > 1]
    assert dims == {2, 3} and len(anisotropic) >= 100
    assert all(p.any() and r.any() for p, r, _ in CASES)


@pytest.mark.parametrize("start", range(0, 240, 60))
def test_equal_to_medpy_on_random_pairs(start):
    for pred, ref, spacing in CASES[start:start + 60]:
        ours = metrics.segmentation_metrics(pred, ref, spacing)
        assert ours["empty"] == "none"
        assert ours["dice"] == pytest.approx(medpy_binary.dc(pred, ref), abs=1e-6)
        assert ours["jaccard"] == pytest.approx(medpy_binary.jc(pred, ref), abs=1e-6)
        assert ours["hd"] == pytest.approx(medpy_binary.hd(pred, ref, spacing), abs=1e-6)
        assert ours["hd95"] == pytest.approx(medpy_binary.hd95(pred, ref, spacing), abs=1e-6)
        # the single-metric functions agree with the combined one
        assert metrics.hausdorff_distance(pred, ref, spacing) == ours["hd"]
        assert metrics.hausdorff_distance(pred, ref, spacing, 95) == ours["hd95"]
        assert metrics.dice_score(pred, ref) == ours["dice"]
        assert metrics.jaccard_index(pred, ref) == ours["jaccard"]


def test_masks_touching_the_image_border_match_medpy():
    pred = np.zeros((20, 20), bool)
    ref = np.zeros((20, 20), bool)
    pred[0:8, 0:20] = True
    ref[0:10, 3:20] = True
    for spacing in (None, (0.5, 2.0)):
        assert metrics.hausdorff_distance(pred, ref, spacing) == pytest.approx(
            medpy_binary.hd(pred, ref, spacing), abs=1e-9)
        assert metrics.hausdorff_distance(pred, ref, spacing, 95) == pytest.approx(
            medpy_binary.hd95(pred, ref, spacing), abs=1e-9)


def test_hand_computed_values():
    pred = np.zeros((10, 10), bool)
    ref = np.zeros((10, 10), bool)
    pred[2:4, 2:4] = True  # 4 pixels
    ref[2:4, 2:6] = True   # 8 pixels, contains pred
    assert metrics.dice_score(pred, ref) == pytest.approx(2 * 4 / 12)
    assert metrics.jaccard_index(pred, ref) == pytest.approx(4 / 8)
    # farthest ref border pixel (column 5) from pred's border (column 3): 2 px
    assert metrics.hausdorff_distance(pred, ref) == pytest.approx(2.0)
    assert metrics.hausdorff_distance(pred, ref, spacing=(1.0, 3.0)) == pytest.approx(6.0)


def test_empty_mask_policy_2d_and_3d():
    empty2, full2 = np.zeros((240, 240), bool), np.zeros((240, 240), bool)
    full2[100:110, 100:110] = True
    both = metrics.segmentation_metrics(empty2, empty2)
    assert both == {"dice": 1.0, "jaccard": 1.0, "hd": 0.0, "hd95": 0.0, "empty": "both"}
    one = metrics.segmentation_metrics(empty2, full2)
    assert one["empty"] == "pred" and one["dice"] == 0.0 and one["jaccard"] == 0.0
    assert one["hd"] == one["hd95"] == pytest.approx(240 * np.sqrt(2))
    assert metrics.segmentation_metrics(full2, empty2)["empty"] == "ref"
    vol_pred, vol_ref = np.zeros((240, 240, 155), bool), np.zeros((240, 240, 155), bool)
    vol_ref[1, 1, 1] = True
    assert metrics.hausdorff_distance(vol_pred, vol_ref) == pytest.approx(373.13, abs=0.01)
    assert metrics.hausdorff_distance(vol_pred, vol_ref, spacing=(1, 1, 2)) == pytest.approx(
        np.sqrt(240 ** 2 * 2 + 310 ** 2))
    assert metrics.hausdorff_distance(vol_pred, vol_pred, percentile=95) == 0.0


def test_bad_inputs_are_rejected_clearly():
    a = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="same shape"):
        metrics.dice_score(a, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2D or 3D"):
        metrics.jaccard_index(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="spacing must be 2 positive"):
        metrics.hausdorff_distance(a, a, spacing=(1, 0))
    with pytest.raises(ValueError, match="percentile"):
        metrics.hausdorff_distance(a, a, percentile=101)


def test_anisotropic_file_in_another_orientation_gives_lps_spacing(tmp_path):
    """A volume stored (S, L, P) at (3, 1, 1) mm is read as (L, P, S) at (1, 1, 3) mm, so a
    3D distance along S counts 3 mm a voxel."""
    import nibabel as nib

    from boundary_aware.nifti import load_volume
    lps = np.zeros((4, 5, 6), np.uint8)  # (L, P, S)
    lps[1, 1, 1] = 1  # the reference voxel
    stored = np.ascontiguousarray(np.transpose(lps, (2, 0, 1)))  # (S, L, P) on disk
    # file axis 0 runs superior at 3 mm, axis 1 left (RAS x falls), axis 2 posterior (y falls)
    affine = np.array([[0, -1.0, 0, 0], [0, 0, -1.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    path = tmp_path / "sagittal_stack.nii.gz"
    nib.save(nib.Nifti1Image(stored, affine), str(path))
    assert nib.load(str(path)).header.get_zooms() == (3.0, 1.0, 1.0)
    array, _, zooms = load_volume(path, "seg")
    assert array.shape == (4, 5, 6) and np.array_equal(array, lps)
    assert zooms == (1.0, 1.0, 3.0)
    # a prediction two voxels superior of the reference: 2 x 3 mm = 6 mm, by hand
    pred = np.zeros_like(lps)
    pred[1, 1, 3] = 1
    result = metrics.segmentation_metrics(pred > 0, array > 0, zooms)
    assert result["hd95"] == pytest.approx(6.0) and result["hd"] == pytest.approx(6.0)
    assert result["hd95"] == pytest.approx(medpy_binary.hd95(pred, array, voxelspacing=zooms))
