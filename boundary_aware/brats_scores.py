"""BraTS scores of one region: whole-volume ("legacy") and lesion-wise Dice and HD95.

Whole volume, as the BraTS challenges scored before 2023 and still report:
Dice and HD95 of the region's masks; both empty: Dice 1, HD95 0; exactly one
empty: Dice 0, HD95 `EMPTY_HD95` (373.13 mm, the diagonal of the BraTS
240 x 240 x 155 grid at 1 mm).

Lesion-wise, as the BraTS 2023 segmentation challenges rank (the rules of the
challenge's published metric code, written anew here):

1. Lesions are 26-connected components. Ground-truth lesions are first
   dilated `dilation` times (3 for gliomas) with the 18-connected 3D
   structure; ground-truth components whose dilations touch count as one
   lesion (the lesion's voxels stay the undilated ones).
2. A predicted component belongs to a ground-truth lesion when it meets that
   lesion's own dilation (same structure and count). Each lesion is scored
   against the union of its predicted components: Dice, and HD95 (a lesion
   no component meets: Dice 0, HD95 `MISSED_HD95` = 374).
3. Lesions of at most `min_volume_mm3` (50 mm^3, i.e. 50 voxels at 1 mm) are
   left out of the score (components that meet them are not false
   positives either).
4. Every predicted component that meets no lesion's dilation is a false
   positive: Dice 0, HD95 374.
5. The score is the mean over the kept lesions and the false positives; with
   neither (nothing to find and nothing found): Dice 1, HD95 0.

HD95 is the package's (`metrics.segmentation_metrics`: medpy's definition, the
95th percentile of both directed surface-distance sets); the challenge's code
weighs surface elements by their area (DeepMind's surface-distance package), so
single HD95 values can differ slightly between the two, while every rule above
is the same.

Reference: Kazerooni et al., "The Brain Tumor Segmentation (BraTS) Challenge
2023"; the BraTS 2023 lesion-wise metrics description (Saluja et al.);
docs/design.md ("BraTS scores").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from boundary_aware.metrics import segmentation_metrics

EMPTY_HD95 = 373.13  # whole volume, exactly one mask empty
MISSED_HD95 = 374.0  # lesion-wise: a missed lesion or a false-positive component
DILATION = 3  # BraTS-GLI (gliomas), also SSA and PED; MEN and MET use 1
MIN_VOLUME_MM3 = 50.0  # BraTS-GLI; lesions of at most this volume are left out
SCORE_NAMES = ("dice", "hd95", "lesion_dice", "lesion_hd95")
_LESION = np.ones((3, 3, 3), bool)  # 26-connected components
_DILATE = ndimage.generate_binary_structure(3, 2)  # 18-connected dilation step


def whole_volume_scores(pred, ref, spacing: Sequence[float] | None = None) -> dict:
    """{"dice", "hd95"} of two binary (X, Y, Z) masks, BraTS's empty-mask values."""
    result = segmentation_metrics(pred, ref, spacing, (95,))
    if result["empty"] in ("pred", "ref"):
        return {"dice": 0.0, "hd95": EMPTY_HD95}
    return {"dice": result["dice"], "hd95": result["hd95"]}


def lesions(ref, dilation: int = DILATION) -> tuple[np.ndarray, int]:
    """(labels, count) of the ground-truth lesions: 26-connected components of `ref`,
    those whose `dilation`-fold dilations touch merged into one (rule 1)."""
    ref = np.asarray(ref, bool)
    if dilation <= 0:
        return ndimage.label(ref, _LESION)
    grown, count = ndimage.label(ndimage.binary_dilation(ref, _DILATE, dilation), _LESION)
    return np.where(ref, grown, 0), count


def _box(mask, margin):
    """The bounding box of `mask`, widened by `margin` voxels (inside the array)."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(hits[0] - margin, 0), min(hits[-1] + 1 + margin, mask.shape[axis])))
    return tuple(box)


def lesion_scores(pred, ref, spacing: Sequence[float] | None = None,
                  dilation: int = DILATION, min_volume_mm3: float = MIN_VOLUME_MM3) -> dict:
    """BraTS lesion-wise scores of two binary (X, Y, Z) masks (module docstring).

    Returns {"lesion_dice", "lesion_hd95", "lesions": kept ground-truth lesions,
    "detected": those met by a component, "false_positives": components meeting
    none, "small_lesions": lesions left out by size}.
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape or pred.ndim != 3:
        raise ValueError(f"pred and ref must be 3D of one shape, got {pred.shape} and {ref.shape}")
    voxel_mm3 = float(np.prod(spacing)) if spacing is not None else 1.0
    components, _ = ndimage.label(pred, _LESION)
    truth, count = lesions(ref, dilation)
    matched, dice, hd95, small, detected = set(), [], [], 0, 0
    for lesion in range(1, count + 1):
        mine = truth == lesion
        if not mine.any():
            continue  # a dilated component without original voxels cannot occur, but be safe
        box = _box(mine, dilation + 1)
        near = ndimage.binary_dilation(mine[box], _DILATE, dilation) if dilation > 0 else mine[box]
        hits = np.unique(components[box][near])
        hits = hits[hits != 0]
        matched.update(hits.tolist())
        if np.count_nonzero(mine) * voxel_mm3 <= min_volume_mm3:
            small += 1
            continue
        if hits.size == 0:
            dice.append(0.0)
            hd95.append(MISSED_HD95)
            continue
        detected += 1
        found = np.isin(components, hits)
        scores = segmentation_metrics(found, mine, spacing, (95,))
        dice.append(scores["dice"])
        hd95.append(scores["hd95"])
    false_positives = len(set(np.unique(components[components != 0]).tolist()) - matched)
    scored = len(dice) + false_positives
    if scored == 0:
        lesion_dice, lesion_hd95 = 1.0, 0.0
    else:
        lesion_dice = float(sum(dice)) / scored
        lesion_hd95 = (float(sum(hd95)) + MISSED_HD95 * false_positives) / scored
    return {"lesion_dice": lesion_dice, "lesion_hd95": lesion_hd95, "lesions": len(dice),
            "detected": detected, "false_positives": false_positives, "small_lesions": small}


def region_scores(pred, ref, spacing: Sequence[float] | None = None,
                  dilation: int = DILATION, min_volume_mm3: float = MIN_VOLUME_MM3) -> dict:
    """Whole-volume and lesion-wise scores of one region: `SCORE_NAMES` and the lesion
    counts of `lesion_scores`."""
    return {**whole_volume_scores(pred, ref, spacing),
            **lesion_scores(pred, ref, spacing, dilation, min_volume_mm3)}
