"""Scores of segmentations: per-slice and per-volume records, and their summaries.

A record holds one item's metrics (a slice, a case's selected slices, a whole
volume): Dice, Jaccard, HD and HD95 in mm with the empty-mask policy
(`EMPTY_POLICY`, `boundary_aware.metrics`), and for a whole volume its
false-positive slices and the BraTS scores of each region
(`boundary_aware.brats_scores`). With several regions an item's record is the
mean over the regions, each region's own record under `regions`. `summarize`
gives each metric's mean and standard deviation over records, with the
honest-Hausdorff figures.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1; docs/design.md ("Evaluation").
"""

from __future__ import annotations

import numpy as np

from boundary_aware import brats_scores, metrics
from boundary_aware.comparison import mean_std
from boundary_aware.metrics import METRIC_NAMES

EMPTY_POLICY = ("both empty: Dice = Jaccard = 1, HD = HD95 = 0; exactly one empty: Dice = "
                "Jaccard = 0, HD = HD95 = the image diagonal in mm (373.13 for a 240 x 240 x 155 "
                "volume at 1 mm)")


def summarize(records):
    """Each metric's mean and standard deviation, and the honest-Hausdorff figures.

    For hd and hd95 also: the median, and the mean and count over records
    where both masks are non-empty (`nonempty_mean`, `nonempty_n`). `empty`
    counts the records where both, only the prediction or only the reference
    are empty. Volume records also add up their false-positive slices.
    """
    summary = {"n": len(records),
               "empty": {k: sum(r["empty"] == k for r in records) for k in ("both", "pred", "ref")}}
    nonempty = [r for r in records if r["empty"] == metrics.EMPTY_NONE]
    for name in METRIC_NAMES:
        summary[name] = dict(zip(("mean", "std"), mean_std([r[name] for r in records])))
        if name.startswith("hd"):
            values = [r[name] for r in records]
            summary[name]["median"] = float(np.median(values)) if values else float("nan")
            summary[name]["nonempty_mean"] = mean_std([r[name] for r in nonempty])[0]
            summary[name]["nonempty_n"] = len(nonempty)
    if records and "fp_slices" in records[0]:
        summary["fp_slices"] = int(sum(r["fp_slices"] for r in records))
    if records and "regions" in records[0]:
        summary["regions"] = {
            region: {name: dict(zip(("mean", "std"),
                                    mean_std([r["regions"][region][name] for r in records])))
                     for name, value in entry.items() if isinstance(value, (int, float))}
            for region, entry in records[0]["regions"].items()}
    return summary


def merge_regions(regions, per: dict) -> dict:
    """One record from the records `per` ({region: record}) of the same item: for one region
    (the paper) its record; for several, the mean of every metric over the regions
    (`empty`: theirs where they agree, else "none"), with each region's own record under
    `regions` (a record that carries `regions`, as `score_volume`'s, gives that entry)."""
    if len(regions) == 1:
        return per[regions[0]]
    first = per[regions[0]]
    record = {k: float(np.mean([per[r][k] for r in regions])) for k, v in first.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
    states = {per[r]["empty"] for r in regions}
    record["empty"] = states.pop() if len(states) == 1 else metrics.EMPTY_NONE
    record["regions"] = {r: per[r]["regions"][r] if "regions" in per[r] else
                         {k: v for k, v in per[r].items() if k != "empty"} for r in regions}
    return record


def region_metrics(pred, ref, spacing, regions) -> dict:
    """`merge_regions` of the segmentation metrics of (..., R) masks of `regions`."""
    return merge_regions(regions, {r: metrics.segmentation_metrics(pred[..., i], ref[..., i],
                                                                   spacing)
                                   for i, r in enumerate(regions)})


def slice_records(predictions, masks, meta, manifest):
    """Per-slice and selected-slices records from binary predictions (N, H, W, R), one map
    per region of the manifest (`merge_regions`)."""
    regions = manifest.regions
    slice_records, by_case = [], {}
    for pred, ref, info in zip(predictions, masks, meta):
        spacing = manifest.slice_spacing(info["case"])
        record = {"case": info["case"], "slice": info["slice"],
                  **region_metrics(pred, ref, spacing, regions)}
        slice_records.append(record)
        by_case.setdefault(info["case"], []).append((info["slice"], pred, ref))
    case_records = []
    for case_id, items in by_case.items():
        items.sort(key=lambda item: item[0])
        pred = np.stack([p for _, p, _ in items], axis=-2)  # (H, W, Z, R)
        ref = np.stack([r for _, _, r in items], axis=-2)
        spacing = manifest.slice_spacing(case_id) + manifest.spacing(case_id)[2:]
        case_records.append({"case": case_id, "slices": len(items),
                             **region_metrics(pred, ref, spacing, regions)})
    return slice_records, case_records


def score_volume(pred, ref, spacing, region):
    """3D metrics of one whole volume (X, Y, Z) of `region`, its axial false-positive slices,
    and its BraTS scores (`regions`: {region: `brats_scores.region_scores`})."""
    pred_slices, ref_slices = pred.any(axis=(0, 1)), ref.any(axis=(0, 1))
    return {**metrics.segmentation_metrics(pred, ref, spacing),
            "slices": int(pred.shape[2]), "tumor_slices": int(ref_slices.sum()),
            "pred_slices": int(pred_slices.sum()),
            "fp_slices": int(np.count_nonzero(pred_slices & ~ref_slices)),
            "regions": {region: brats_scores.region_scores(pred, ref, spacing)}}


def volume_record(pred, ref, spacing, regions):
    """The whole-volume record of (X, Y, Z, R) masks of `regions`: `merge_regions` of each
    region's `score_volume`."""
    return merge_regions(regions, {r: score_volume(pred[..., i], ref[..., i], spacing, r)
                                   for i, r in enumerate(regions)})


def brats_summary(per_volume) -> dict | None:
    """{region: {dice, hd95, lesion_dice, lesion_hd95}}: the BraTS scores' means over the
    volumes (None without whole-volume scores)."""
    if not per_volume or "regions" not in per_volume:
        return None
    return {region: {name: scores[name]["mean"] for name in brats_scores.SCORE_NAMES}
            for region, scores in per_volume["regions"].items()}


def whole_volume_record(flips, rules):
    """How the whole volumes were segmented: the flips and the clean-up rule per region."""
    return {"flips": list(flips), "postprocess": rules or None}
