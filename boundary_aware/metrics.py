"""Evaluation metrics on binary masks (numpy/scipy): Dice, Jaccard, Hausdorff.

Surface distances follow `medpy.metric.binary` exactly (border = mask minus
its erosion with the connectivity-1 structure; Euclidean distance transform
with the voxel spacing), so `hd`/`hd95` agree with medpy's to float precision.
They are computed on the masks' joint bounding box (plus a one-voxel margin),
which gives the same distances far faster than the whole image.

Empty masks (docs/design.md, "Evaluation"; as the BraTS challenge scores them): both
empty -> Dice = Jaccard = 1, HD = HD95 = 0; exactly one empty -> Dice =
Jaccard = 0, HD = HD95 = the image diagonal in mm.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 3.2 and Table 1; medpy.metric.binary.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

Spacing = Sequence[float] | None  # voxel size in mm per axis; None: 1

EMPTY_NONE, EMPTY_BOTH, EMPTY_PRED, EMPTY_REF = "none", "both", "pred", "ref"


def _binary_pair(pred, ref):
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref must have the same shape, got {pred.shape} and {ref.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"masks must be 2D or 3D, got {pred.ndim}D of shape {pred.shape}")
    # contiguous copies of strided views (a slice of a volume) are much faster to scan
    return np.ascontiguousarray(pred, dtype=bool), np.ascontiguousarray(ref, dtype=bool)


def _spacing(spacing, ndim):
    if spacing is None:
        return np.ones(ndim)
    spacing = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if spacing.size != ndim or np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise ValueError(f"spacing must be {ndim} positive numbers, got {spacing.tolist()}")
    return spacing


def image_diagonal(shape: Sequence[int], spacing: Spacing = None) -> float:
    """Length of the image diagonal in mm (the one-empty-mask Hausdorff value)."""
    extent = np.asarray(shape, dtype=np.float64) * _spacing(spacing, len(shape))
    return float(np.sqrt(np.sum(extent ** 2)))


def _crop_to_union(pred, ref):
    """Both masks cropped to their joint bounding box; (None, None) if both are empty.

    Every metric here is unchanged by the crop (nothing lies outside the box),
    and a one-voxel False margin keeps the border erosion identical to the
    full image's (scipy's erosion treats the outside as False too).
    """
    union = pred | ref
    box = []
    for axis in range(union.ndim):
        others = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(union.any(axis=others))
        if hits.size == 0:
            return None, None
        box.append(slice(hits[0], hits[-1] + 1))
    box = tuple(box)
    return np.pad(pred[box], 1), np.pad(ref[box], 1)


def _status(pred, ref):
    p, r = pred.any(), ref.any()
    if p and r:
        return EMPTY_NONE
    return EMPTY_BOTH if not (p or r) else EMPTY_PRED if not p else EMPTY_REF


def _overlap(pred, ref):
    """(Dice, Jaccard) of two boolean arrays; 1.0 for both when both are empty."""
    inter = np.count_nonzero(pred & ref)
    total = np.count_nonzero(pred) + np.count_nonzero(ref)
    if total == 0:
        return 1.0, 1.0
    return 2.0 * inter / total, inter / (total - inter)


def dice_score(pred: ArrayLike, ref: ArrayLike) -> float:
    """Dice coefficient 2|P & R| / (|P| + |R|); 1.0 when both are empty."""
    pred, ref = _crop_to_union(*_binary_pair(pred, ref))
    return 1.0 if pred is None else _overlap(pred, ref)[0]


def jaccard_index(pred: ArrayLike, ref: ArrayLike) -> float:
    """Jaccard index |P & R| / |P | R|; 1.0 when both are empty."""
    pred, ref = _crop_to_union(*_binary_pair(pred, ref))
    return 1.0 if pred is None else _overlap(pred, ref)[1]


def _border(mask, structure):
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1)


def _surface_distances(pred, ref, spacing):
    """Directed distances of two cropped, non-empty masks (medpy's definition)."""
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    pred_border, ref_border = _border(pred, structure), _border(ref, structure)
    to_ref = ndimage.distance_transform_edt(~ref_border, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)
    return to_ref[pred_border], to_pred[ref_border]


def hausdorff_distance(pred: ArrayLike, ref: ArrayLike, spacing: Spacing = None,
                       percentile: float = 100) -> float:
    """Symmetric Hausdorff distance in mm (voxels without `spacing`).

    `percentile=100` is the maximum (medpy's `hd`); `percentile=95` is HD95
    (medpy's `hd95`: the 95th percentile of both directed distance sets
    together). Empty masks follow the policy in the module docstring.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    result = segmentation_metrics(pred, ref, spacing, (percentile,))
    return result["hd" if percentile == 100 else f"hd{percentile:g}"]


def _hausdorff(d_pr, d_rp, percentile):
    if percentile == 100:
        return float(max(d_pr.max(), d_rp.max()))
    return float(np.percentile(np.hstack((d_pr, d_rp)), percentile))


METRIC_NAMES = ("dice", "jaccard", "hd", "hd95")  # what `segmentation_metrics` returns


def segmentation_metrics(pred: ArrayLike, ref: ArrayLike, spacing: Spacing = None,
                         percentiles: Sequence[float] = (100, 95)) -> dict:
    """All metrics at once: the crop and the surface distances are computed once.

    Returns a dict with dice, jaccard, `empty` ("none", "both", "pred": only the
    prediction is empty, or "ref": only the reference) and one Hausdorff value
    per percentile: "hd" for 100, "hd95" for 95 ("hdP" for P).
    """
    pred, ref = _binary_pair(pred, ref)
    spacing_mm = _spacing(spacing, pred.ndim)
    status = _status(pred, ref)
    names = ["hd" if p == 100 else f"hd{p:g}" for p in percentiles]
    result = {"empty": status}
    if status == EMPTY_BOTH:
        result.update(dice=1.0, jaccard=1.0, **{n: 0.0 for n in names})
        return result
    if status != EMPTY_NONE:
        diagonal = image_diagonal(pred.shape, spacing_mm)
        result.update(dice=0.0, jaccard=0.0, **{n: diagonal for n in names})
        return result
    pred, ref = _crop_to_union(pred, ref)
    result["dice"], result["jaccard"] = _overlap(pred, ref)
    d_pr, d_rp = _surface_distances(pred, ref, spacing_mm)
    for name, p in zip(names, percentiles):
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {p}")
        result[name] = _hausdorff(d_pr, d_rp, p)
    return result
