"""3D clean-up of whole-volume masks: connected components, kept only where validation says so.

A 2D network segments every axial slice on its own, so its whole-volume
masks carry small islands (false positives on slices without tumor) and,
less often, a true second lesion. The clean-up removes 3D connected
components (26-connectivity, `scipy.ndimage.label`) by one of these rules:

* `none`: the mask as predicted;
* `largest`: keep the largest component only;
* `min_size` with `mm3`: drop every component smaller than that volume, in
  mm^3 at the volume's spacing (so the rule means the same at any
  resolution); candidates `MIN_SIZES_MM3`.

`choose` picks, per region, the rule with the highest mean whole-volume Dice
on the validation volumes, and keeps it only if it beats `none` there
(otherwise `none`): nnU-Net's rule of post-processing only what helps on
held-out data. The test volumes never take part in the choice. The choice is
stored in the run (`postprocess.json`, written by `evaluate`) and in an
export's model card, and `predict` and `evaluate` apply it unless
`--nopostprocess`.

Reference: Isensee et al., "nnU-Net", Nature Methods 2021 (post-processing
chosen by cross-validation); docs/design.md ("Whole volumes").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

from boundary_aware.errors import DataError
from boundary_aware.metrics import dice_score

NONE = {"rule": "none"}
MIN_SIZES_MM3 = (10, 30, 100, 300, 1000, 3000, 10000)
FILE = "postprocess.json"
FORMAT = 1
_CONNECTIVITY = np.ones((3, 3, 3), bool)  # 26-connected, as BraTS counts lesions


def candidates() -> list[dict]:
    """Every rule `choose` tries, in order of preference on a tie."""
    return [NONE, {"rule": "largest"}] + [{"rule": "min_size", "mm3": v} for v in MIN_SIZES_MM3]


def label(rule: Mapping) -> str:
    """A rule in words: "none", "largest", "min_size 100 mm3"."""
    return rule["rule"] + (f" {rule['mm3']:g} mm3" if rule["rule"] == "min_size" else "")


def check_rule(rule, source="the post-processing rule") -> dict:
    """The rule, or DataError naming `source` when it is not one `apply` knows."""
    if not isinstance(rule, Mapping) or rule.get("rule") not in ("none", "largest", "min_size"):
        raise DataError(f"{source}: unknown post-processing rule {rule!r}")
    if rule["rule"] == "min_size":
        mm3 = rule.get("mm3")
        if isinstance(mm3, bool) or not isinstance(mm3, (int, float)) or not mm3 >= 0:
            raise DataError(f"{source}: min_size needs mm3 >= 0, got {mm3!r}")
    return dict(rule)


def apply(mask: np.ndarray, rule: Mapping, spacing: Sequence[float] = (1.0, 1.0, 1.0)
          ) -> np.ndarray:
    """The (X, Y, Z) boolean `mask` cleaned by `rule` (see the module docstring)."""
    return Components(mask, spacing).kept(rule)


class Components:
    """A mask's 26-connected components, labelled once, kept or dropped by any rule."""

    def __init__(self, mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)):
        self.mask = np.asarray(mask, bool)
        self.labels, n = ndimage.label(self.mask, structure=_CONNECTIVITY)
        self.sizes = np.bincount(self.labels.ravel(), minlength=n + 1)[1:]
        self.voxel_mm3 = float(np.prod(spacing))

    def kept(self, rule: Mapping) -> np.ndarray:
        """The mask with the components `rule` keeps."""
        kind = check_rule(rule)["rule"]
        if kind == "none" or not self.sizes.size:
            return self.mask
        if kind == "largest":
            keep = np.zeros(self.sizes.size + 1, bool)
            keep[1 + int(np.argmax(self.sizes))] = True
        else:
            keep = np.concatenate([[False], self.sizes * self.voxel_mm3 >= float(rule["mm3"])])
        return keep[self.labels]


def candidate_dice(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> dict:
    """{label: Dice} of every candidate rule applied to one predicted mask."""
    components = Components(pred, spacing)
    return {label(rule): dice_score(components.kept(rule), ref) for rule in candidates()}


def choose(per_case: Iterable[Mapping[str, float]]) -> dict:
    """The rule to keep, from validation cases' `candidate_dice`.

    Returns {"rule": the chosen rule, "validation_dice": {label: mean Dice} of every
    candidate, "n": cases}. The chosen rule has the highest mean Dice and beats
    `none`; on a tie, the earlier candidate. No cases: `none`.
    """
    per_case = list(per_case)
    options = candidates()
    means = {label(r): (float(np.mean([c[label(r)] for c in per_case])) if per_case
                        else float("nan")) for r in options}
    best = NONE
    for rule in options[1:]:
        if per_case and means[label(rule)] > means[label(best)]:
            best = rule
    return {"rule": dict(best), "validation_dice": means, "n": len(per_case)}


def write(folder: str | Path, choices: Mapping[str, Mapping], default: str, split: str,
          flips: Sequence[str]) -> Path:
    """Write `postprocess.json`: per checkpoint {"regions": {region: choose(...)}} and
    which checkpoint is the run's `default`; `split` and `flips` say how it was chosen."""
    from boundary_aware.files import atomic_write_text
    record = {"format": FORMAT, "default": default, "split": split, "flips": list(flips),
              "checkpoints": {name: {"regions": {r: c["rule"] for r, c in regions.items()},
                                     "validation": regions} for name, regions in choices.items()}}
    path = Path(folder) / FILE
    atomic_write_text(path, json.dumps(record, indent=1))
    return path


def read(folder: str | Path, checkpoint: str | None = None) -> dict | None:
    """{region: rule} a run folder records for `checkpoint` (None: the file's own
    `default`), or None when it records none. DataError for a damaged file."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        entry = record["checkpoints"][checkpoint or record["default"]]
        return {region: check_rule(rule, str(path)) for region, rule in entry["regions"].items()}
    except KeyError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: not a post-processing record of this package ({err})") from None
