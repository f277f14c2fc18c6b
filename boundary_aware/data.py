"""BraTS conventions, intensity normalization, slice selection and the prepared dataset.

Shared by data preparation, training (the `PyDataset` path, which needs no
TensorFlow) and prediction, so that a volume is normalized the same way
everywhere. numpy/scipy/OpenCV/keras only.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 3.1-3.2; docs/data.md.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

# DataError is raised here and imported from here too
from boundary_aware.errors import DataError, FormatError  # noqa: F401
from boundary_aware.files import file_sha256

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
SPLITS = ("train", "val", "test")
BRATS_ORIENTATION = ("L", "P", "S")  # the BraTS 2018 files' axis codes
CLIP_PERCENTILES = (0.5, 99.5)
# The paper's input: axial T1c slices (Sec. 3.1). The prepared data's manifest records its
# channels, and everything downstream takes the channel count from there.
PAPER_CHANNELS = ("t1c",)
SEQUENCES = ("t1", "t1c", "t2", "flair")  # the MRI sequences a case may hold


def _names(value, allowed, what, example) -> tuple[str, ...]:
    """`value` ("a", "a,b": comma-separated, or a sequence of names) as a tuple in the order
    given; ValueError unless they are distinct names of `allowed`."""
    names = tuple(value.split(",")) if isinstance(value, str) else tuple(value or ())
    names = tuple(n.strip() if isinstance(n, str) else n for n in names)
    if not names or any(n not in allowed for n in names) or len(set(names)) != len(names):
        raise ValueError(f"must name distinct {what} among {', '.join(allowed)} in order (for "
                         f"example {example}), got {value!r}")
    return names


def parse_modalities(value) -> tuple[str, ...]:
    """`data.modalities` ("t1c", "t1,t1c,t2,flair") as a tuple of `SEQUENCES` names, in
    channel order; ValueError otherwise."""
    return _names(value, SEQUENCES, "MRI sequences", "t1c or t1,t1c,t2,flair")


# Neighbouring slices as context (2.5D, `data.context_slices` = k): a slice's input holds
# the k axial slices below and above it as well, each with every sequence. A context
# channel is named after its sequence and offset, "t1c[z-1]"; the slice itself keeps the
# sequence's plain name, so that k = 0 names the channels as before.
MAX_CONTEXT_SLICES = 8


def context_channels(sequences, context_slices: int = 0) -> tuple[str, ...]:
    """The input channel names of `sequences` with `context_slices` = k neighbours on each
    side, offset-major: every sequence at z-k, then at z-k+1, ..., then at z+k."""
    k = int(context_slices)
    return tuple(s if o == 0 else f"{s}[z{o:+d}]" for o in range(-k, k + 1) for s in sequences)


def channel_layout(channels, source="the model") -> tuple[tuple[str, ...], int]:
    """(sequences, k) of input channel names made by `context_channels`; DataError naming
    `source` when the names are not such a layout."""
    channels = tuple(channels)
    sequences = tuple(c for c in channels if "[" not in c)
    if not sequences or len(channels) % len(sequences) or \
            (len(channels) // len(sequences)) % 2 != 1:
        raise DataError(f"{source}: input channels {list(channels)} are not sequences with "
                        f"the same neighbouring slices on each side")
    k = len(channels) // len(sequences) // 2
    if context_channels(sequences, k) != channels:
        raise DataError(f"{source}: input channels {list(channels)} are not in the order "
                        f"{list(context_channels(sequences, k))}")
    return sequences, k


def stack_context(slices: np.ndarray, rows, context_slices: int) -> np.ndarray:
    """The input of axial slices `rows` of `slices` ((Z, H, W, S): a volume's slices, every
    sequence as a channel) with `context_slices` = k neighbours on each side as channels
    (`context_channels` order); (len(rows), H, W, S(2k+1)). Neighbours beyond the volume's
    first or last slice are 0, as the background outside the head is."""
    rows = np.asarray(rows, np.int64)
    k = int(context_slices)
    if k == 0:
        return slices[rows]
    z = len(slices)
    out = np.zeros((len(rows),) + slices.shape[1:3] + (slices.shape[3] * (2 * k + 1),),
                   slices.dtype)
    s = slices.shape[3]
    for i, offset in enumerate(range(-k, k + 1)):
        source = rows + offset
        inside = (source >= 0) & (source < z)
        out[inside, ..., i * s:(i + 1) * s] = slices[source[inside]]
    return out


def input_channels(input_shape, recorded=None, source="the model") -> tuple[str, ...]:
    """The channel names of a model with `input_shape` (H, W, C): those `recorded` with it
    (a run's state, an export's card), else the paper's T1c for a one-channel model.
    DataError naming `source` where neither says."""
    count = int(input_shape[-1])
    if recorded:
        recorded = tuple(recorded)
        if len(recorded) != count:
            raise DataError(f"{source}: records channels {list(recorded)} but the model takes "
                            f"{count}")
        return recorded
    if count == len(PAPER_CHANNELS):
        return PAPER_CHANNELS
    raise DataError(f"{source}: takes {count} input channels, but nothing recorded with it "
                    f"names them; use its training workdir or its export")


def parse_regions(value) -> tuple[str, ...]:
    """`data.regions` ("tc", "wt,tc,et") as a tuple of `REGIONS` names, in the order of the
    output maps; ValueError otherwise."""
    return _names(value, REGIONS, "tumor regions", "tc or wt,tc,et")


def detect_convention(layout: str, labels, source) -> str:
    """The label convention of a segmentation in file layout `layout` ("brats2018" or
    "brats2023", `data_prep.brats.LAYOUTS`) holding the label values `labels`: the first of
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


def recorded_regions(regions, source) -> tuple[str, ...]:
    """The regions a run or an export records for its `seg` maps (the paper's TC where
    nothing is recorded: made before regions were), or DataError naming `source`."""
    if not regions:
        return (PAPER_REGION,)
    try:
        return parse_regions(regions)
    except ValueError as err:
        raise DataError(f"{source}: records regions that {err}") from None


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


def normalization_range(volume):
    """(lo, hi): the 0.5 and 99.5 percentiles of the brain (nonzero) voxels."""
    brain = volume[volume != 0]
    if brain.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(brain.astype(np.float64), CLIP_PERCENTILES)
    return float(lo), float(hi)


def normalize(volume, lo, hi):
    """Clip to [lo, hi], scale to [0, 1]; background (exactly 0) stays 0. float32."""
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    out = (np.clip(volume.astype(np.float32), lo, hi) - np.float32(lo)) * np.float32(scale)
    out[volume == 0] = 0.0
    return out.astype(np.float32)


def normalize_channels(volume, indices=None):
    """Every channel of an (X, Y, Z, C) volume normalized on its own: `normalize` with
    the `normalization_range` of that channel's whole volume, for the axial slices
    `indices` (None: all). Returns ((X, Y, Z', C) float32, [(lo, hi) per channel])."""
    ranges = [normalization_range(volume[..., c]) for c in range(volume.shape[-1])]
    part = volume if indices is None else volume[:, :, indices]
    channels = [normalize(part[..., c], lo, hi) for c, (lo, hi) in enumerate(ranges)]
    return np.stack(channels, axis=-1), ranges


def resize_slices(stack, size, order):
    """Resize a (N, H, W) stack to (N, size, size); identity when already that size."""
    n, h, w = stack.shape
    if (h, w) == (size, size):
        return stack
    factors = (1, size / h, size / w)
    out = ndimage.zoom(stack, factors, order=order, mode="nearest", grid_mode=True)
    return out.astype(stack.dtype)


def select_slices(mask, slices_per_case):
    """Axial slice indices (axis 2) with tumor, at most `slices_per_case` nearest the
    slice of largest area (ties: the lower index first). Sorted ascending."""
    area = mask.reshape(-1, mask.shape[2]).sum(axis=0)
    candidates = np.flatnonzero(area)
    if candidates.size == 0:
        return []
    peak = int(np.argmax(area))  # first maximum
    order = sorted(candidates.tolist(), key=lambda z: (abs(z - peak), z))
    return sorted(order[:slices_per_case])


def select_tumor_free_slices(mask, head, count):
    """Axial slice indices (axis 2) that hold head (`head`: (X, Y, Z) bool, any channel
    non-zero) and no tumor in `mask`: `count` of them evenly spread from the lowest to the
    highest (all when fewer). Sorted ascending."""
    area = mask.reshape(-1, mask.shape[2]).sum(axis=0)
    candidates = np.flatnonzero(head.reshape(-1, head.shape[2]).any(axis=0) & (area == 0))
    if candidates.size <= count:
        return candidates.tolist()
    picks = np.unique(np.round(np.linspace(0, candidates.size - 1, count)).astype(int))
    return candidates[picks].tolist()


def tumor_free_path(folder: str | os.PathLike) -> Path:
    """The training split's pool of tumor-free slices (`data.tumor_free_fraction`)."""
    return Path(folder) / "train_tumor_free_images.npy"


def load_tumor_free(folder: str | os.PathLike) -> np.ndarray:
    """The prepared training cases' tumor-free head slices (M, H, W, C) float32; DataError
    naming the folder where it has none (prepared by an older version)."""
    path = tumor_free_path(folder)
    manifest = Manifest.read(folder)
    if "tumor_free" not in manifest or not path.is_file():
        raise DataError(f"{folder}: holds no tumor-free slices (prepared by an older version); "
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


def with_tumor_free(images, masks, pool, fraction, seed):
    """The training slices with tumor-free ones added, so that `fraction` of the result
    holds no tumor: round(fraction * N / (1 - fraction)) slices of `pool` drawn without
    replacement (numpy generator seeded by `seed`; fixed for the whole run), with empty
    masks, after the N tumor slices. DataError when the pool is too small."""
    if not 0 <= fraction < 1:
        raise DataError(f"data.tumor_free_fraction must be in [0, 1), got {fraction}")
    count = int(round(fraction * len(images) / (1 - fraction)))
    if count == 0:
        return images, masks
    if count > len(pool):
        raise DataError(f"data.tumor_free_fraction = {fraction} asks for {count} tumor-free "
                        f"slices beside the {len(images)} with tumor, but the prepared data "
                        f"holds {len(pool)}; lower the fraction")
    rows = np.sort(np.random.default_rng(seed).choice(len(pool), count, replace=False))
    empty = np.zeros((count,) + masks.shape[1:], masks.dtype)
    return np.concatenate([images, pool[rows]]), np.concatenate([masks, empty])


def edge_target_numpy(masks, width=2):
    """numpy/OpenCV twin of `boundary_aware.losses.edge_target` for (B, H, W, 1) masks.

    Returns float32 in {0, 1}; see `edge_band`.
    """
    m = (np.asarray(masks) > 0.5).astype(np.uint8)
    edge = np.empty(m.shape, np.float32)
    for i in range(m.shape[0]):
        edge_band(m[i, ..., 0], width, out=edge[i, ..., 0])
    return edge


def edge_band(mask, width=2, out=None):
    """Boundary band of one uint8 {0, 1} (H, W) mask, written into `out` if given.

    The morphological gradient with square windows: dilation by `width // 2`
    minus erosion by `width - width // 2` pixels; beyond the image border the
    mask counts as 0 for the dilation and 1 for the erosion, so the border is
    not an edge (OpenCV's default border values for both).
    """
    width = int(width)
    if width < 1:
        raise ValueError(f"edge width must be >= 1, got {width}")
    outer, inner = width // 2, width - width // 2
    if outer == inner:
        band = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, _square(inner))
    else:
        dilated = mask if outer == 0 else cv2.dilate(mask, _square(outer))
        band = cv2.subtract(dilated, cv2.erode(mask, _square(inner)))
    if out is None:
        return band
    np.copyto(out, band, casting="unsafe")
    return out


def _square(radius):
    return np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)


def epoch_order(n, seed, epoch):
    """The shuffled sample order of one epoch: the same in every pipeline."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def num_batches(n, batch_size, drop_remainder):
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def shard_positions(n, batch_size, shard):
    """The positions of an epoch's n samples that process `index` of `count` trains on, for
    `shard = (index, count)`: its consecutive share of every global batch of `batch_size`
    (divisible by count), so that the processes' batches put together are the batch one
    process would train on. The last incomplete global batch is left out when several
    processes share the data (each process must give the same number of rows)."""
    index, count = shard
    if count == 1:
        return np.arange(n)
    if batch_size % count:
        raise ValueError(f"a batch of {batch_size} cannot be split across {count} processes")
    full = (n // batch_size) * batch_size
    return np.arange(full).reshape(-1, count, batch_size // count)[:, index].reshape(-1)


MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2  # 2: channels recorded, every source file by path; 1: before


class Manifest(dict):
    """A prepared dataset's `manifest.json`: the one place that spells its keys.

    Written by `data_prep.prepare_brats` (`Manifest.create`), read by
    training, evaluation and `load_prepared`. A dict underneath (so it
    serializes as it is), with named accessors above. `format_version`
    (`MANIFEST_FORMAT`) is checked on every read: a dataset prepared by an
    older version is refused with the command that prepares it again.
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
        """The preparation options (brats_dir, modalities, regions, slices_per_case, ...)."""
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
    for key, paper in (("modalities", list(PAPER_CHANNELS)), ("regions", [PAPER_REGION])):
        if options[key] != paper:
            flags.append(f"--{key}={','.join(options[key])}")
    if options["context_slices"]:
        flags.append(f"--context_slices={options['context_slices']}")
    for key in ("slices_per_case", "image_size", "seed", "split_file"):
        if options.get(key) is not None:
            flags.append(f"--{key}={options[key]}")
    return "boundary-aware-prepare " + " ".join(flags + ["--overwrite"])


def current_options(options) -> dict:
    """A manifest's preparation options as this version writes them: datasets prepared
    before the sequences and regions were lists name one `region` and imply the T1c;
    those prepared before context slices have none."""
    options = dict(options) if isinstance(options, dict) else {}
    if "region" in options and "regions" not in options:
        options["regions"] = [options.pop("region")]
    options.setdefault("regions", [PAPER_REGION])
    options.setdefault("modalities", list(PAPER_CHANNELS))
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
    recorded (`arrays` in the manifest; datasets prepared before it are not checked)."""
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
