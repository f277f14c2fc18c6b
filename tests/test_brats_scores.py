"""BraTS whole-volume and lesion-wise scores, each rule checked by hand."""

import numpy as np
import pytest

from boundary_aware import brats_scores
from boundary_aware.brats_scores import EMPTY_HD95, MISSED_HD95, lesion_scores, region_scores

SHAPE = (40, 30, 20)


def cube(volume, corner, size):
    x, y, z = corner
    volume[x:x + size, y:y + size, z:z + size] = True
    return volume


def empty():
    return np.zeros(SHAPE, bool)


def test_both_empty_scores_perfect():
    scores = region_scores(empty(), empty())
    assert (scores["dice"], scores["hd95"]) == (1.0, 0.0)
    assert (scores["lesion_dice"], scores["lesion_hd95"]) == (1.0, 0.0)
    assert scores["lesions"] == scores["false_positives"] == 0


def test_one_empty_whole_volume_and_lesion_penalties():
    pred = cube(empty(), (5, 5, 5), 4)
    scores = region_scores(pred, empty())
    assert (scores["dice"], scores["hd95"]) == (0.0, EMPTY_HD95)
    # nothing to find, one component found: a false positive
    assert (scores["lesion_dice"], scores["lesion_hd95"]) == (0.0, MISSED_HD95)
    assert scores["false_positives"] == 1
    missed = region_scores(empty(), pred)
    assert (missed["dice"], missed["hd95"]) == (0.0, EMPTY_HD95)
    assert (missed["lesion_dice"], missed["lesion_hd95"]) == (0.0, MISSED_HD95)
    assert (missed["lesions"], missed["detected"]) == (1, 0)


def test_missed_lesion_counts_zero_and_374():
    ref = cube(cube(empty(), (2, 2, 2), 5), (25, 20, 10), 5)  # two lesions of 125 voxels
    pred = cube(empty(), (2, 2, 2), 5)  # the first found exactly
    scores = region_scores(pred, ref)
    assert scores["lesion_dice"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["lesion_hd95"] == pytest.approx((0.0 + 374.0) / 2)
    assert (scores["lesions"], scores["detected"], scores["false_positives"]) == (2, 1, 0)
    assert scores["dice"] == pytest.approx(2 * 125 / (125 + 250))


def test_false_positive_component_counts_zero_and_374():
    ref = cube(empty(), (2, 2, 2), 5)
    pred = cube(cube(empty(), (2, 2, 2), 5), (30, 20, 12), 2)  # the lesion + a far 8-voxel blob
    scores = lesion_scores(pred, ref)
    assert (scores["lesions"], scores["false_positives"]) == (1, 1)
    assert scores["lesion_dice"] == pytest.approx(1.0 / 2)
    assert scores["lesion_hd95"] == pytest.approx(374.0 / 2)


def test_component_near_a_lesion_is_not_a_false_positive():
    # a blob 2 voxels beside the lesion meets its 3-fold dilation: it is part of the match
    ref = cube(empty(), (5, 5, 5), 5)
    pred = cube(cube(empty(), (5, 5, 5), 5), (12, 5, 5), 2)
    scores = lesion_scores(pred, ref)
    assert scores["false_positives"] == 0
    assert scores["lesion_dice"] == pytest.approx(2 * 125 / (125 + 125 + 8))


@pytest.mark.parametrize("gap, lesions", [(6, 1), (7, 2)])
def test_ground_truth_lesions_merged_by_dilation(gap, lesions):
    # each lesion grows 3 voxels along x: gaps of up to 6 voxels close, 7 do not
    ref = cube(cube(empty(), (2, 5, 5), 5), (2 + 5 + gap, 5, 5), 5)
    pred = cube(empty(), (2, 5, 5), 5)  # only the first is found
    scores = lesion_scores(pred, ref)
    assert scores["lesions"] == lesions
    if lesions == 1:  # one lesion of 250 voxels, half of it found
        assert scores["lesion_dice"] == pytest.approx(2 * 125 / (125 + 250))
    else:  # two lesions, one found exactly, one missed
        assert scores["lesion_dice"] == pytest.approx(0.5)
        assert scores["lesion_hd95"] == pytest.approx(374.0 / 2)


def test_lesion_under_the_size_limit_is_left_out():
    ref = cube(cube(empty(), (2, 2, 2), 5), (30, 20, 12), 3)  # 125 and 27 voxels
    found_big = lesion_scores(cube(empty(), (2, 2, 2), 5), ref)
    assert (found_big["lesion_dice"], found_big["lesion_hd95"]) == (1.0, 0.0)
    assert (found_big["lesions"], found_big["small_lesions"]) == (1, 1)
    # a component on the small lesion is not a false positive; the big one is missed
    found_small = lesion_scores(cube(empty(), (30, 20, 12), 3), ref)
    assert found_small["false_positives"] == 0
    assert (found_small["lesion_dice"], found_small["lesion_hd95"]) == (0.0, 374.0)
    # the limit is a volume: at 2 mm voxels the 27-voxel lesion holds 216 mm3 and counts
    coarse = lesion_scores(cube(empty(), (2, 2, 2), 5), ref, spacing=(2.0, 2.0, 2.0))
    assert (coarse["lesions"], coarse["small_lesions"]) == (2, 0)
    assert coarse["lesion_dice"] == pytest.approx(0.5)


def test_only_small_lesions_and_nothing_found_scores_perfect():
    ref = cube(empty(), (2, 2, 2), 3)
    scores = lesion_scores(empty(), ref)
    assert (scores["lesion_dice"], scores["lesion_hd95"]) == (1.0, 0.0)


def test_lesion_hd95_is_the_package_hd95_of_the_matched_pair():
    from boundary_aware.metrics import hausdorff_distance
    ref = cube(empty(), (5, 5, 5), 6)
    pred = cube(empty(), (6, 5, 5), 6)  # shifted by one voxel
    scores = lesion_scores(pred, ref, spacing=(1.0, 1.0, 2.0))
    assert scores["lesion_hd95"] == pytest.approx(
        hausdorff_distance(pred, ref, (1.0, 1.0, 2.0), percentile=95))
    assert scores["lesion_hd95"] > 0


def test_no_dilation_keeps_touching_lesions_apart():
    ref = cube(cube(empty(), (2, 5, 5), 5), (9, 5, 5), 5)  # a one-voxel gap
    assert brats_scores.lesions(ref, dilation=0)[1] == 2
    assert brats_scores.lesions(ref, dilation=1)[1] == 1
