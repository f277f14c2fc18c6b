"""Find BraTS cases on disk and read them, validating every file.

The one place that knows BraTS file names (docs/data.md). Layouts:
* BraTS 2018-2021: `<root>/**/<case>/<case>_t1.nii.gz`, `_t1ce`, `_t2`, `_flair`
  and `_seg.nii.gz`; labels {0, 1, 2, 4};
* BraTS 2023+:     `<root>/**/<case>/<case>-t1n.nii.gz`, `-t1c`, `-t2w`, `-t2f`
  and `-seg.nii.gz`; labels {0, 1, 2, 3}.
A case is found by the files of the sequences asked for (`sequences`, default
the paper's T1c); other files in its folder are ignored. Symbolic links to
folders are followed inside the given folder only; what is passed over (a
link leading outside it, a broken link, a BraTS-named file outside a folder
of its case's name, a folder that cannot be read with `on_error="skip"`) is
recorded with the reason in `skipped`. Two cases of one id are refused,
naming both. Every problem raises `DataError` naming the file and what is
wrong. Data preparation reads training cases with it, and prediction the
cases to segment.

Reference: docs/data.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boundary_aware.channels import PAPER_SEQUENCES, parse_sequences
from boundary_aware.errors import DataError
from boundary_aware.nifti import check_same_grid, load_channels, load_volume
from boundary_aware.regions import detect_convention, region_mask

SEQUENCE_NAMES = {"t1": "T1", "t1c": "T1c", "t2": "T2", "flair": "FLAIR", "seg": "segmentation"}
LAYOUTS = {  # layout: the file-name suffix of each sequence and of the segmentation
    "brats2018": {"t1": "_t1.nii.gz", "t1c": "_t1ce.nii.gz", "t2": "_t2.nii.gz",
                  "flair": "_flair.nii.gz", "seg": "_seg.nii.gz"},
    "brats2023": {"t1": "-t1n.nii.gz", "t1c": "-t1c.nii.gz", "t2": "-t2w.nii.gz",
                  "flair": "-t2f.nii.gz", "seg": "-seg.nii.gz"},
}


@dataclass(frozen=True)
class Case:
    """One case's files: `files` maps each sequence (and "seg", where asked for) to its
    path; `layout` is the naming scheme they were found under (`LAYOUTS`)."""

    case_id: str
    files: dict
    layout: str

    def sequence_files(self, sequences):
        """The files of `sequences`, in that order."""
        return [self.files[s] for s in sequences]


def _files(root, unreadable, skipped):
    """Every file under `root`; folders that cannot be listed go to `unreadable`.

    A symbolic link to a folder is followed when the folder lies inside `root` (and was
    not reached before: no loops); one that leads outside `root`, or nowhere, goes to
    `skipped` ({path: why}) and is not followed."""
    def note(err):
        unreadable[str(err.filename)] = err.strerror or str(err)
    top = Path(root).resolve()
    seen = {top}
    found = []
    for folder, dirs, names in os.walk(root, onerror=note, followlinks=True):
        here = Path(folder)
        for name in list(dirs):
            path = here / name
            target = path.resolve()
            if path.is_symlink() and (top not in target.parents or target in seen):
                why = ("a link to a folder outside the given folder; not followed"
                       if top not in target.parents else "a link to a folder reached before; "
                       "not followed again")
                skipped[str(path)] = why
                dirs.remove(name)
            else:
                seen.add(target)
        for name in names:
            path = here / name
            if path.is_symlink() and not path.exists():
                skipped[str(path)] = "a broken symbolic link"
            else:
                found.append(path)
    return sorted(found)


def _scan(root, kinds, on_error="fail", skipped=None):
    """{case id: Case} of every case folder under `root` with a file of any of `kinds`
    (sequences, and "seg"), every one of them required."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    unreadable = {}
    skipped = {} if skipped is None else skipped
    files = _files(root, unreadable, skipped)
    for folder, why in unreadable.items():
        if on_error != "skip":
            raise DataError(f"{folder}: cannot read this folder ({why}); fix its permissions, "
                            f"or pass --on_error=skip to leave it out")
        skipped[folder] = f"cannot read this folder ({why})"
    cases = {}
    for layout, suffixes in LAYOUTS.items():
        for kind in kinds:
            for path in (p for p in files if p.name.endswith(suffixes[kind])):
                case_id = path.name[: -len(suffixes[kind])]
                if path.parent.name != case_id:  # not in its own case folder: not taken
                    skipped[str(path)] = (f"not in a folder named {case_id} (the BraTS layout: "
                                          f"{case_id}/{path.name})")
                    continue
                found = {k: path.parent / (case_id + suffixes[k]) for k in kinds}
                for needed, path_needed in found.items():
                    if not path_needed.is_file():
                        raise DataError(f"{path_needed}: missing {SEQUENCE_NAMES[needed]} file "
                                        f"of case {case_id}")
                other = cases.get(case_id)
                if other and _resolved(other.files) == _resolved(found):
                    continue  # the same files reached through a link
                if other and other.files != found:
                    raise DataError(f"{found[kinds[0]]}: case id {case_id} also found at "
                                    f"{other.files[kinds[0]]}")
                cases[case_id] = Case(case_id, found, layout)
    return cases


def _passed_over(skipped) -> str:
    """The end of a "no cases found" message: what discovery passed over, and why."""
    if not skipped:
        return ""
    path, why = next(iter(skipped.items()))
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    return f"; passed over {path}: {why}{more}"


def _resolved(files):
    return {kind: path.resolve() for kind, path in files.items()}


def _layout_hint(kinds):
    """The file names of `kinds` in each layout, for an error message."""
    return " or ".join("<case>/" + ", ".join(f"<case>{LAYOUTS[c][k]}" for k in kinds)
                       for c in LAYOUTS)


def discover_cases(root, on_error="fail", skipped=None, sequences=PAPER_SEQUENCES):
    """All cases under `root` (either layout) with the `sequences` and a segmentation,
    sorted by id.

    A folder that has a segmentation but misses a sequence (or the reverse)
    is an error. A folder that cannot be read is an error naming it, or with
    `on_error="skip"` it is left out and recorded in `skipped` (folder: why).
    """
    kinds = parse_sequences(sequences) + ("seg",)
    skipped = {} if skipped is None else skipped
    cases = _scan(root, kinds, on_error, skipped)
    if not cases:
        raise DataError(f"{root}: no BraTS cases found (expected {_layout_hint(kinds)})"
                        f"{_passed_over(skipped)}")
    return [cases[k] for k in sorted(cases)]


def discover_images(root, sequences=PAPER_SEQUENCES, skipped=None):
    """All cases under `root` (either layout) with every one of `sequences` (no
    segmentation needed: the cases to segment), sorted by id; what was passed over goes
    to `skipped` ({path: why})."""
    kinds = parse_sequences(sequences)
    skipped = {} if skipped is None else skipped
    cases = _scan(root, kinds, skipped=skipped)
    if not cases:
        raise DataError(f"{root}: no {' + '.join(SEQUENCE_NAMES[k] for k in kinds)} volumes in "
                        f"BraTS layout ({_layout_hint(kinds)}){_passed_over(skipped)}")
    return [cases[k] for k in sorted(cases)]


def load_case(case, regions=("tc",), sequences=PAPER_SEQUENCES):
    """Read and validate one case: `(image (X, Y, Z, S), masks (X, Y, Z, R), convention,
    zooms)` in LPS axis order, one volume per sequence of `sequences` and one uint8 mask
    per region of `regions`, in those orders, and the label convention detected from the
    layout and the label values (`regions.detect_convention`)."""
    sequences = parse_sequences(sequences)
    names = [SEQUENCE_NAMES[s] for s in sequences]
    image, affine, zooms = load_channels(case.sequence_files(sequences), names)
    for c, (path, name) in enumerate(zip(case.sequence_files(sequences), names)):
        volume = image[..., c]
        if volume.size and volume.min() == volume.max():
            raise DataError(f"{path}: the {name} is constant (every voxel is {volume.flat[0]}): "
                            f"it holds no image")
    seg_path = case.files["seg"]
    seg, seg_affine, _ = load_volume(seg_path, "seg")
    check_same_grid(case.files[sequences[0]], names[0], image.shape[:3], affine, seg_path,
                    seg.shape, seg_affine)
    if np.issubdtype(seg.dtype, np.floating):
        if not np.all(np.isfinite(seg)):
            raise DataError(f"{seg_path}: NaN or inf labels")
        if np.any(seg != np.round(seg)):
            raise DataError(f"{seg_path}: non-integer labels")
    labels = np.unique(seg)
    convention = detect_convention(case.layout, labels, seg_path)
    masks = np.stack([region_mask(seg, convention, r) for r in regions], axis=-1)
    if not masks.any():
        what = f"the {regions[0].upper()} region is" if len(regions) == 1 else \
            f"the {', '.join(r.upper() for r in regions)} regions are all"
        raise DataError(f"{seg_path}: {what} empty (labels found: {[int(v) for v in labels]})")
    return image, masks, convention, zooms
