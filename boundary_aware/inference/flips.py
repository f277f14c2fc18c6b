"""Test-time flips: a volume segmented mirrored as well, the mirrored copies averaged.

Two names, two things: `tta` is the setting, the in-plane mirror axes whose
combinations are averaged (`--tta`, `eval.tta`: "none", "lr", "ap" or
"lr,ap"); `flips` are the mirrored copies that setting gives, the identity
included ("none", "lr", "ap", and "lr+ap", both axes at once). Each flip is
named as the augmentation names it (`augment.FLIP_AXES`: `lr` exchanges the
hemispheres, `ap` front and back) and undone exactly before averaging, as
nnU-Net mirrors.

Reference: Isensee et al., "nnU-Net", Nature Methods 2021 (test-time mirroring);
docs/design.md ("Whole volumes").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from boundary_aware.errors import DataError

# every flip, by the slice axes it reverses; a flip is its own inverse
FLIPS = {"none": (), "lr": (0,), "ap": (1,), "lr+ap": (0, 1)}
NO_FLIPS = ("none",)
TTA_CHOICES = ("none", "lr", "ap", "lr,ap")  # the mirror axes --tta and eval.tta take
# predict's and the experiments' default, chosen on the development phantom
# (docs/reproduction.md, "Whole volumes")
DEFAULT_TTA = "lr,ap"


def tta_flips(tta: str | Sequence[str] | None) -> tuple[str, ...]:
    """The flips to average for the mirror axes `tta` ("lr", "ap", a comma-separated
    string, or None/"none"): every combination of them, the identity included; e.g.
    "lr" -> ("none", "lr"), "lr,ap" -> all four."""
    if tta is None or tta == "none" or tta == ():
        return NO_FLIPS
    axes = [n.strip() for n in tta.split(",")] if isinstance(tta, str) else list(tta)
    unknown = [a for a in axes if a not in ("lr", "ap")]
    if unknown or not axes or len(set(axes)) != len(axes):
        raise DataError(f"--tta must be one of {', '.join(TTA_CHOICES)}; got {tta!r}")
    combos = ["none"] + [a for a in ("lr", "ap") if a in axes]
    return tuple(combos + (["lr+ap"] if len(axes) == 2 else []))


def flipped(slices: np.ndarray, flip: str) -> np.ndarray:
    """(N, H, W, ...) slices mirrored by `flip` (a key of FLIPS) in their two slice axes."""
    axes = tuple(axis + 1 for axis in FLIPS[flip])
    return np.flip(slices, axes) if axes else slices
