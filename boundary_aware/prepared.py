"""A prepared dataset: its manifest, and reading its slices.

`boundary-aware-prepare` writes a folder of arrays (`{train,val,test}_images.npy`
(N, H, W, C), `{train,val,test}_masks.npy` (N, H, W, R), the training cases'
tumor-free slices) and `manifest.json`, which records how they were made and
every array's SHA-256. `Manifest` is the one place that spells the manifest's
keys; `load_prepared` reads a split and refuses arrays that disagree with it.

Reference: docs/data.md; docs/design.md ("Files on disk").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from boundary_aware.channels import PAPER_SEQUENCES, channel_layout
from boundary_aware.errors import DataError, FormatError
from boundary_aware.files import file_sha256
from boundary_aware.intensity import CLIP_PERCENTILES
from boundary_aware.regions import PAPER_REGION

SPLITS = ("train", "val", "test")


MANIFEST = "manifest.json"
# 2: channels recorded, every source file by path (format 1, without them, is refused)
MANIFEST_FORMAT = 2


class Manifest(dict):
    """A prepared dataset's `manifest.json`: the one place that spells its keys.

    Written by `data_prep.prepare_brats` (`Manifest.create`), read by
    training, evaluation and `load_prepared`. A dict underneath (so it
    serializes as it is), with named accessors above. `format_version`
    (`MANIFEST_FORMAT`) is checked on every read: a dataset of another format
    is refused with the command that prepares it again.
    """

    @classmethod
    def create(cls, package_version: str, options: dict, channels, split: dict, skipped: dict,
               cases: dict) -> "Manifest":
        """A new manifest; `channels` names the image channels in array order, `cases` maps
        case ids to `case_record` dicts."""
        return cls(format_version=MANIFEST_FORMAT, package_version=package_version,
                   options=options, channels=list(channels), split=split, skipped=skipped,
                   cases=cases,
                   slices={name: [{"case": c, "slice": z} for c in split[name]
                                  for z in cases[c]["slices"]] for name in SPLITS})

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "Manifest":
        path = manifest_path(folder)
        if not path.is_file():
            raise DataError(f"{path}: no prepared dataset here (prepare one with boundary-aware-prepare)")
        try:
            manifest = cls(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise DataError(f"{path}: not a readable manifest ({err})") from None
        version = manifest.get("format_version", 1)
        if version != MANIFEST_FORMAT:
            older = isinstance(version, int) and version < MANIFEST_FORMAT
            raise FormatError(
                f"{path}: a dataset of manifest format {version}, "
                f"{'written by an older version' if older else 'not one'} of this package (it "
                f"reads format {MANIFEST_FORMAT}); prepare it again: "
                f"{prepare_command(manifest.get('options'), folder)}")
        manifest["options"] = current_options(manifest.get("options"))
        return manifest

    def write(self, folder: str | os.PathLike) -> None:
        manifest_path(folder).write_text(json.dumps(self, indent=1, sort_keys=True))

    @property
    def options(self) -> dict:
        """The preparation options (brats_dir, sequences, regions, slices_per_case, ...)."""
        return self["options"]

    @property
    def image_size(self) -> int:
        return int(self["options"]["image_size"])

    @property
    def channels(self) -> tuple[str, ...]:
        """The image channels (MRI sequences) in the order of the arrays' last axis."""
        return tuple(self["channels"])

    @property
    def sequences(self) -> tuple[str, ...]:
        """The MRI sequences the channels hold (each case's source files), in order."""
        return channel_layout(self.channels, "the prepared data")[0]

    @property
    def context_slices(self) -> int:
        """Neighbouring slices on each side stacked as channels (`context_channels`)."""
        return channel_layout(self.channels, "the prepared data")[1]

    @property
    def regions(self) -> tuple[str, ...]:
        """The tumor regions, in the order of the masks' last axis."""
        return tuple(self["options"]["regions"])

    def split(self, name: str) -> list[str]:
        """The case ids of split `name`."""
        return self["split"][name]

    def slices(self, name: str) -> list[dict]:
        """One {"case", "slice"} record per prepared slice of split `name`, in array order."""
        return self["slices"][name]

    def convention(self, case_id: str) -> str:
        return self["cases"][case_id]["convention"]

    def spacing(self, case_id: str) -> tuple[float, float, float]:
        """The source volume's voxel spacing (mm)."""
        return tuple(self["cases"][case_id]["spacing"][:3])

    def slice_spacing(self, case_id: str) -> tuple[float, float]:
        """In-plane spacing (mm) of a prepared slice: the source spacing times the resize factor."""
        shape, spacing = self["cases"][case_id]["shape"], self["cases"][case_id]["spacing"]
        size = self.image_size
        return (spacing[0] * shape[0] / size, spacing[1] * shape[1] / size)

    def source_file(self, case_id: str, kind: str) -> tuple[Path, str]:
        """(path, recorded SHA-256) of a case's source file: a channel's name or "seg"."""
        record = self["cases"][case_id]["files"][kind]
        return Path(self["options"]["brats_dir"]) / record["path"], record["sha256"]


def prepare_command(options, out_dir) -> str:
    """The `boundary-aware-prepare` command that prepares `out_dir` again with `options`
    (a manifest's; what is missing is left for the user to fill in)."""
    options = options if isinstance(options, dict) else {}
    flags = [f"--brats_dir={options.get('brats_dir') or '...'}", f"--out_dir={Path(out_dir)}"]
    options = current_options(options)
    for key, paper in (("sequences", list(PAPER_SEQUENCES)), ("regions", [PAPER_REGION])):
        if options[key] != paper:
            flags.append(f"--{key}={','.join(options[key])}")
    if options["context_slices"]:
        flags.append(f"--context_slices={options['context_slices']}")
    for key in ("slices_per_case", "image_size", "seed", "split_file"):
        if options.get(key) is not None:
            flags.append(f"--{key}={options[key]}")
    return "boundary-aware-prepare " + " ".join(flags + ["--overwrite"])


def current_options(options) -> dict:
    """A manifest's preparation options under the names this package writes: one
    `region` reads as `regions` of it, `modalities` as `sequences`; options a manifest
    does not name read as the paper's (T1c, TC, no context slices)."""
    options = dict(options) if isinstance(options, dict) else {}
    for old, new, wrap in (("region", "regions", True), ("modalities", "sequences", False)):
        if old in options and new not in options:
            value = options.pop(old)
            options[new] = [value] if wrap else value
    options.setdefault("regions", [PAPER_REGION])
    options.setdefault("sequences", list(PAPER_SEQUENCES))
    options.setdefault("context_slices", 0)
    return options


def case_record(case_id: str, convention: str, slices: list[int], shape, spacing, lo,
                hi, files: dict, tumor_free_slices: list[int] = ()) -> dict:
    """A manifest's record of one prepared case. `lo` and `hi` are the normalization
    range of each channel (lists in channel order); `files` maps each channel and "seg"
    to (path, path relative to the BraTS folder, SHA-256)."""
    return {"case": case_id, "convention": convention, "slices": list(slices),
            "tumor_free_slices": list(tumor_free_slices), "shape": list(shape),
            "spacing": list(spacing),
            "normalization": {"lo": list(lo), "hi": list(hi),
                              "percentiles": list(CLIP_PERCENTILES)},
            "files": {kind: {"name": path.name, "bytes": path.stat().st_size, "sha256": sha,
                             "path": str(relative)}
                      for kind, (path, relative, sha) in files.items()}}


def manifest_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / MANIFEST


def manifest_format(folder: str | os.PathLike) -> int | None:
    """The format version of the manifest in `folder` if this package wrote it (any
    version), else None."""
    try:
        manifest = json.loads(manifest_path(folder).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not {"options", "split", "cases"} <= set(manifest):
        return None
    version = manifest.get("format_version", 1)
    return version if isinstance(version, int) else None


def dataset_files(folder: str | os.PathLike) -> set[str]:
    """The names of the files preparation writes into a dataset folder: the manifest, every
    split's arrays, the tumor-free pool, and whatever arrays the folder's manifest records
    (what `--overwrite` may replace there)."""
    names = {MANIFEST, tumor_free_path(".").name}
    names |= {p.name for split in SPLITS for p in split_paths(".", split)}
    try:
        recorded = json.loads(manifest_path(folder).read_text()).get("arrays") or {}
    except (OSError, ValueError, AttributeError):
        recorded = {}
    return names | {str(name) for name in recorded if "/" not in str(name)}


def split_paths(folder: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """(images, masks) .npy paths of one split of a prepared dataset."""
    return Path(folder) / f"{split}_images.npy", Path(folder) / f"{split}_masks.npy"


def check_array_files(manifest: Manifest, *paths) -> None:
    """DataError naming the first array file whose SHA-256 is not the one preparation
    recorded (`arrays` in the manifest; a manifest without that record checks none)."""
    recorded = manifest.get("arrays") or {}
    for path in paths:
        if path.name in recorded and file_sha256(path) != recorded[path.name]:
            raise DataError(f"{path}: changed since the data was prepared (its SHA-256 is not "
                            f"the one in the manifest); prepare the data again: "
                            f"{prepare_command(manifest.options, Path(path).parent)}")


def load_prepared(out_dir: str | os.PathLike,
                  split: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Load one split of a prepared dataset.

    Returns `(images, masks, meta)`: images float32 (N, H, W, C) in [0, 1]
    (C: the manifest's channels), masks uint8 (N, H, W, R) in {0, 1} (R: its
    regions), and
    `meta`, one dict per slice with its "case" and "slice" (axial index in
    the source volume). Arrays that disagree with the manifest (count, size,
    channels) are refused, naming the file.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out_dir = Path(out_dir)
    manifest = Manifest.read(out_dir)
    images_path, masks_path = split_paths(out_dir, split)
    check_array_files(manifest, images_path, masks_path)
    images, masks = np.load(images_path), np.load(masks_path)
    meta = manifest.slices(split)
    if not (len(images) == len(masks) == len(meta)):
        raise DataError(f"{out_dir}: {split} arrays and manifest disagree "
                        f"({len(images)} images, {len(masks)} masks, {len(meta)} records)")
    size = manifest.image_size
    expected = ((images_path, images, len(manifest.channels),
                 f"channels {', '.join(manifest.channels)}"),
                (masks_path, masks, len(manifest.regions),
                 f"mask channels {', '.join(manifest.regions)}"))
    for path, array, channels, what in expected:
        if array.ndim != 4 or array.shape[1:] != (size, size, channels):
            raise DataError(f"{path}: shape {array.shape}, but the manifest says "
                            f"(N, {size}, {size}, {channels}): {size} px slices, {what}")
    return images, masks, meta


def tumor_free_path(folder: str | os.PathLike) -> Path:
    """The training split's pool of tumor-free slices (`data.tumor_free_fraction`)."""
    return Path(folder) / "train_tumor_free_images.npy"


def load_tumor_free(folder: str | os.PathLike) -> np.ndarray:
    """The prepared training cases' tumor-free head slices (M, H, W, C) float32; DataError
    naming the folder where it has none."""
    path = tumor_free_path(folder)
    manifest = Manifest.read(folder)
    if "tumor_free" not in manifest or not path.is_file():
        raise DataError(f"{folder}: holds no tumor-free slices; "
                        f"prepare it again: {prepare_command(manifest.options, folder)}")
    expected = sum(len(manifest["cases"][c]["tumor_free_slices"])
                   for c in manifest.split("train"))
    check_array_files(manifest, path)
    images = np.load(path)
    size = manifest.image_size
    if images.shape != (expected, size, size, len(manifest.channels)):
        raise DataError(f"{path}: shape {images.shape}, but the manifest says ({expected}, "
                        f"{size}, {size}, {len(manifest.channels)})")
    return images
