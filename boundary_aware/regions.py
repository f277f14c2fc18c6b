"""Tumor regions and the label conventions of BraTS segmentations.

A segmentation holds labels; the network segments nested regions built from
them (the paper: the tumor core TC; BraTS scores WT, TC and ET). The label
values differ between BraTS releases, so every label file is read in the
convention of its file layout, and every label map is written in one.

Reference: Hatamizadeh et al. 2019, Sec. 3.1 (the tumor core); docs/data.md
("Label conventions"); docs/design.md ("Regions: several outputs, one network").
"""

from __future__ import annotations

import numpy as np

from boundary_aware.choices import distinct_names
from boundary_aware.errors import DataError

# Label conventions (docs/data.md): tumor core TC = necrotic/non-enhancing core + enhancing
# tumor ET; whole tumor WT = TC + edema. ET is 4 in BraTS 2018-2021 and 3 from 2023 on;
# BraTS 2024's post-treatment gliomas add 4 = resection cavity, which is in no region.
CONVENTIONS = {
    "brats2018": {"labels": (0, 1, 2, 4), "regions": {"tc": (1, 4), "wt": (1, 2, 4), "et": (4,)}},
    "brats2023": {"labels": (0, 1, 2, 3), "regions": {"tc": (1, 3), "wt": (1, 2, 3), "et": (3,)}},
    "brats2024": {"labels": (0, 1, 2, 3, 4),
                  "regions": {"tc": (1, 3), "wt": (1, 2, 3), "et": (3,)}},
}
# the conventions a file layout can hold, in the order `detect_convention` tries them
LAYOUT_CONVENTIONS = {"brats2018": ("brats2018",), "brats2023": ("brats2023", "brats2024")}
REGIONS = ("tc", "wt", "et")
PAPER_REGION = "tc"  # the paper segments the tumor core
NESTED = ("wt", "tc", "et")  # outermost first: the order regions become labels again


def parse_regions(value) -> tuple[str, ...]:
    """`data.regions` ("tc", "wt,tc,et") as a tuple of `REGIONS` names, in the order of the
    output maps; ValueError otherwise."""
    return distinct_names(value, REGIONS, "tumor regions", "tc or wt,tc,et")


def recorded_regions(regions, source) -> tuple[str, ...]:
    """The regions a run or an export records for its `seg` maps (the paper's TC where
    nothing is recorded), or DataError naming `source`."""
    if not regions:
        return (PAPER_REGION,)
    try:
        return parse_regions(regions)
    except ValueError as err:
        raise DataError(f"{source}: records regions that {err}") from None


def detect_convention(layout: str, labels, source) -> str:
    """The label convention of a segmentation in file layout `layout` ("brats2018" or
    "brats2023", `brats_cases.LAYOUTS`) holding the label values `labels`: the first of
    the layout's conventions that has them all (a 2023-layout file with a label 4 is BraTS
    2024's post-treatment convention). DataError naming `source` and the values that no
    convention of the layout has."""
    found = sorted({int(v) for v in labels})
    for convention in LAYOUT_CONVENTIONS[layout]:
        if set(found) <= set(CONVENTIONS[convention]["labels"]):
            return convention
    allowed = sorted({v for c in LAYOUT_CONVENTIONS[layout] for v in CONVENTIONS[c]["labels"]})
    unknown = [v for v in found if v not in allowed]
    names = " or ".join(LAYOUT_CONVENTIONS[layout])
    raise DataError(f"{source}: label values {unknown} are outside the {names} convention "
                    f"{allowed} of this file layout (found {found})")


def check_convention(convention: str) -> str:
    """`convention`, or DataError unless it is one of `CONVENTIONS`."""
    if convention not in CONVENTIONS:
        raise DataError(f"--convention must be one of {', '.join(CONVENTIONS)}, got "
                        f"{convention!r}")
    return convention


def region_mask(seg, convention, region="tc"):
    """Binary uint8 mask of `region` from a label volume."""
    return np.isin(seg, CONVENTIONS[convention]["regions"][region]).astype(np.uint8)


def region_label(region: str, convention: str) -> int:
    """The label a region's own part carries in `convention` (`label_map`): WT's is
    edema (2), TC's the necrotic/non-enhancing core (1), ET's the enhancing label."""
    if region == "et":
        return CONVENTIONS[convention]["regions"]["et"][0]
    return {"wt": 2, "tc": 1}[region]


def label_map(masks, regions, convention) -> np.ndarray:
    """Per-region binary masks (..., R) of `regions` turned back into one uint8 label map of
    `convention`, in nested order (`NESTED`: WT, then TC over it, then ET over both), so
    that `region_mask` of the result gives each nested region back."""
    masks = np.asarray(masks)
    out = np.zeros(masks.shape[:-1], np.uint8)
    for region in NESTED:
        if region in regions:
            out[masks[..., list(regions).index(region)] > 0] = region_label(region, convention)
    return out
