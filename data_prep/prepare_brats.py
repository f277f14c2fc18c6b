"""Prepare a BraTS folder as a 2D slice dataset (Sec. 3.1 of the paper).

    python -m data_prep.prepare_brats --brats_dir=DIR --out_dir=DIR \
        [--modalities=t1c] [--regions=tc] [--context_slices=0] [--slices_per_case=20] \
        [--image_size=240] [--seed=0] \
        [--split_file=split.json] [--on_error=fail|skip] [--workers=2] [--overwrite]

Every case is validated before any array is written. The dataset is written
to a temporary folder beside `out_dir` and renamed into place at the end, so
a failed or interrupted run leaves no half-written dataset; an existing
dataset made with other options is kept unless `--overwrite` is given, and
even then only when its folder holds nothing but what preparation wrote (a
user's file there is named and nothing is replaced). The output may not lie
inside the BraTS folder, nor hold it or the split file.

Reference: Hatamizadeh et al. 2019, Sec. 3.1-3.2; docs/data.md.
"""

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from boundary_aware.cli import check_workers, default_workers, exit_on, run_absl
from boundary_aware.data import (MANIFEST_FORMAT, PAPER_CHANNELS, PAPER_REGION, REGIONS,
                                 MAX_CONTEXT_SLICES, SEQUENCES, SPLITS, DataError, Manifest,
                                 case_record, context_channels, dataset_files,
                                 manifest_format, manifest_path,
                                 normalize_channels, parse_modalities, parse_regions,
                                 resize_slices, select_slices, select_tumor_free_slices,
                                 split_paths, stack_context, tumor_free_path)
from boundary_aware.errors import LockedError
from boundary_aware.files import (atomic_folder, check_apart, check_only_ours,
                                  check_writable_folder, exclusive_lock, file_sha256)
from boundary_aware.models import check_image_size  # the registry; Keras is not loaded
from boundary_aware.version import __version__
from data_prep.brats import discover_cases, load_case

SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
_MOVE_THEM = "move them out of it, or prepare into another --out_dir"


def default_split(case_ids, seed):
    """Seeded patient-level 70/10/20 split (at least one val and test case from 3 cases)."""
    ids = sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    n = len(ids)
    n_test = max(1, round(SPLIT_FRACTIONS[2] * n)) if n >= 3 else n // 2
    n_val = max(1, round(SPLIT_FRACTIONS[1] * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    return {"train": sorted(shuffled[:n_train]), "val": sorted(shuffled[n_train:n_train + n_val]),
            "test": sorted(shuffled[n_train + n_val:])}


def read_split_file(path, case_ids):
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the split file ({err})") from None
    if not isinstance(split, dict) or set(split) - set(SPLITS) or \
            not all(isinstance(v, list) for v in split.values()):
        raise DataError(f'{path}: expected {{"train": [...], "val": [...], "test": [...]}}')
    odd = [c for v in split.values() for c in v if not isinstance(c, str)]
    if odd:
        raise DataError(f"{path}: case ids must be strings (the case folders' names), got "
                        f"{odd[:5]}")
    split = {name: sorted(split.get(name, [])) for name in SPLITS}
    seen = [c for name in SPLITS for c in split[name]]
    duplicated = sorted({c for c in seen if seen.count(c) > 1})
    if duplicated:
        raise DataError(f"{path}: cases in more than one split (or twice): {duplicated}")
    unknown = sorted(set(seen) - set(case_ids))
    if unknown:
        raise DataError(f"{path}: cases not found in the BraTS folder: {unknown}")
    return split


def prepare_case(case, regions, slices_per_case, image_size, root, channels=PAPER_CHANNELS,
                 context_slices=0):
    """Load, validate, select, normalize (each channel on its own) and resize one case.

    Returns (images (N, size, size, C) float32 (C: the sequences `channels`, with
    `context_slices` neighbours on each side: `data.context_channels`), masks
    (N, size, size, R) uint8 (one channel
    per region of `regions`, in order; slices selected around their union), manifest
    record, tumor-free images (M, size, size, C) float32); the record names each source
    file by its path relative to `root` (the BraTS folder), so that evaluation can score
    the whole volumes. The tumor-free images are up to `tumor_free_per_case(...)` head
    slices without tumor (`data.select_tumor_free_slices`), for training's
    `data.tumor_free_fraction`.
    """
    image, masks, convention, zooms = load_case(case, tuple(regions), channels)
    mask = masks.max(axis=-1)  # slices are selected around the union of the regions
    indices = select_slices(mask, slices_per_case)
    free = select_tumor_free_slices(mask, np.any(image != 0, axis=-1),
                                    tumor_free_per_case(slices_per_case))
    rows = np.asarray(indices + free, np.int64)
    k = int(context_slices)
    needed = np.unique(np.clip(rows[:, None] + np.arange(-k, k + 1), 0, image.shape[2] - 1)) \
        if len(rows) else rows  # the slices and their neighbours inside the volume
    norm, ranges = normalize_channels(image, needed)
    resized = np.zeros((image.shape[2], image_size, image_size, norm.shape[-1]), np.float32)
    resized[needed] = np.clip(np.stack(
        [resize_slices(np.moveaxis(norm[..., c], 2, 0), image_size, order=1)
         for c in range(norm.shape[-1])], axis=-1), 0, 1)
    images = stack_context(resized, rows, k)
    masks = np.stack([resize_slices(np.moveaxis(masks[:, :, indices, r], 2, 0), image_size,
                                    order=0) for r in range(masks.shape[-1])], axis=-1)
    files = {kind: (path, path.resolve().relative_to(Path(root).resolve()), file_sha256(path))
             for kind, path in case.files.items()}
    record = case_record(case.case_id, convention, indices, image.shape[:3], zooms[:3],
                         [lo for lo, _ in ranges], [hi for _, hi in ranges], files, free)
    return (images[:len(indices)], masks.astype(np.uint8), record,
            images[len(indices):])


def tumor_free_per_case(slices_per_case):
    """Tumor-free slices kept per case: half the tumor slices (rounded up), enough for a
    `data.tumor_free_fraction` up to 1/3."""
    return -(-slices_per_case // 2)


def _prepare_one(args):
    case, options = args
    try:
        return case.case_id, prepare_case(case, options["regions"], options["slices_per_case"],
                                          options["image_size"], options["brats_dir"],
                                          tuple(options["modalities"]),
                                          options["context_slices"]), None
    except DataError as err:
        return case.case_id, None, str(err)


def _progress(iterable, total, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc="cases", unit="case", file=sys.stderr)


def prepare(brats_dir, out_dir, regions=(PAPER_REGION,), slices_per_case=20, image_size=240,
            seed=0, split_file=None, on_error="fail", workers=1, overwrite=False,
            progress=False, log=print, modalities=PAPER_CHANNELS, context_slices=0):
    """Prepare the dataset; returns the manifest dict. See the module docstring.
    `modalities`: the MRI sequences, in channel order (`data.SEQUENCES`);
    `context_slices`: neighbouring slices on each side stacked as channels too
    (`data.context_channels`; 0 in the paper)."""
    try:
        modalities = parse_modalities(modalities)
    except ValueError as err:
        raise ValueError(f"--modalities {err}") from None
    try:
        regions = parse_regions(regions)
    except ValueError as err:
        raise ValueError(f"--regions {err}") from None
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if not isinstance(slices_per_case, int) or slices_per_case < 1:
        raise ValueError(f"--slices_per_case must be >= 1, got {slices_per_case!r}")
    if not isinstance(context_slices, int) or not 0 <= context_slices <= MAX_CONTEXT_SLICES:
        raise ValueError(f"--context_slices must be in [0, {MAX_CONTEXT_SLICES}], got "
                         f"{context_slices!r}")
    check_workers(workers)
    try:
        check_image_size(image_size)  # every model must be able to train on the slices
    except ValueError as err:
        raise ValueError(f"--image_size: {err}") from None
    out_dir = Path(out_dir)
    check_writable_folder(out_dir)
    if not Path(brats_dir).is_dir():
        raise DataError(f"{brats_dir}: not a directory")
    check_apart(out_dir, {"--brats_dir": brats_dir, "--split_file": split_file})
    with exclusive_lock(out_dir.with_name(f".{out_dir.name}.lock"), str(out_dir)):
        return _prepare_locked(brats_dir, out_dir, regions, slices_per_case, image_size, seed,
                               split_file, on_error, workers, overwrite, progress, log,
                               modalities, context_slices)


def _prepare_locked(brats_dir, out_dir, regions, slices_per_case, image_size, seed, split_file,
                    on_error, workers, overwrite, progress, log, modalities, context_slices):
    options = {"brats_dir": str(Path(brats_dir).resolve()), "modalities": list(modalities),
               "regions": list(regions), "context_slices": context_slices,
               "slices_per_case": slices_per_case, "image_size": image_size, "seed": seed,
               "split_file": str(Path(split_file).resolve()) if split_file else None,
               "on_error": on_error}
    if manifest_path(out_dir).is_file():
        version = manifest_format(out_dir)
        if version is None:
            raise DataError(f"{manifest_path(out_dir)}: not a manifest of this package; "
                            f"{out_dir} is not replaced")
        if version != MANIFEST_FORMAT and not overwrite:
            raise DataError(f"{out_dir}: holds a dataset prepared by another version of this "
                            f"package (manifest format {version}, this one writes "
                            f"{MANIFEST_FORMAT}); pass --overwrite to prepare it again")
        if not overwrite:
            existing = Manifest.read(out_dir)
            if existing.options == options:
                log(f"{out_dir}: already prepared with these options; nothing to do")
                return existing
            raise DataError(f"{out_dir}: holds a dataset prepared with other options "
                            f"({existing.options}); pass --overwrite to replace it")
        check_only_ours(out_dir, dataset_files(out_dir), "a prepared dataset", _MOVE_THEM)
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir}: exists, is not empty and is not a prepared dataset; "
                        f"it is never replaced (not even with --overwrite)")

    skipped = {}
    cases = discover_cases(brats_dir, on_error, skipped, modalities)
    for path, why in skipped.items():
        log(f"skipped {path}: {why}")
    ids = [c.case_id for c in cases]
    split = read_split_file(split_file, ids) if split_file else default_split(ids, seed)
    wanted = {c for name in SPLITS for c in split[name]}
    cases = [c for c in cases if c.case_id in wanted]

    jobs = [(case, options) for case in cases]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(_progress(pool.map(_prepare_one, jobs), len(jobs), progress))
    else:
        results = [_prepare_one(job) for job in _progress(jobs, len(jobs), progress)]
    prepared = {}
    for case_id, result, error in results:
        if error is None:
            prepared[case_id] = result
        elif on_error == "fail":
            raise DataError(error)
        else:
            skipped[case_id] = error
            log(f"skipped case {case_id}: {error}")

    split = {name: [c for c in split[name] if c in prepared] for name in SPLITS}
    channels = context_channels(modalities, context_slices)
    manifest = Manifest.create(__version__, options, channels, split, skipped,
                               {c: prepared[c][2] for c in sorted(prepared)})
    with atomic_folder(out_dir, replace=True, ours=dataset_files(out_dir),
                       what="a prepared dataset", instead=_MOVE_THEM) as tmp:
        for name in SPLITS:
            parts = [prepared[c] for c in split[name]]
            empty = (0, image_size, image_size)
            images = np.concatenate([p[0] for p in parts]) if parts else \
                np.zeros(empty + (len(channels),), np.float32)
            masks = np.concatenate([p[1] for p in parts]) if parts else \
                np.zeros(empty + (len(regions),), np.uint8)
            images_path, masks_path = split_paths(tmp, name)
            np.save(images_path, images)
            np.save(masks_path, masks)
        train = [prepared[c][3] for c in split["train"]]
        np.save(tumor_free_path(tmp), np.concatenate(train) if train else
                np.zeros((0, image_size, image_size, len(channels)), np.float32))
        manifest["tumor_free"] = {"split": "train",
                                  "per_case": tumor_free_per_case(slices_per_case)}
        manifest["conventions"] = sorted({prepared[c][2]["convention"] for c in prepared})
        # every array's SHA-256: readers refuse an array changed since (`load_prepared`)
        manifest["arrays"] = {path.name: file_sha256(path) for path in sorted(tmp.glob("*.npy"))}
        manifest.write(tmp)
    counts = {name: len(manifest.slices(name)) for name in SPLITS}
    log(f"{out_dir}: {len(prepared)} cases prepared ({len(skipped)} skipped); slices {counts}")
    return manifest


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(DataError, ValueError, LockedError):
        prepare(f.brats_dir, f.out_dir, f.regions, f.slices_per_case, f.image_size, f.seed,
                f.split_file, f.on_error, f.workers, f.overwrite, progress=True,
                modalities=f.modalities, context_slices=f.context_slices)


def define_flags():
    from absl import flags
    flags.DEFINE_string("brats_dir", None, "BraTS root folder (2018-2021 or 2023+ layout).")
    flags.DEFINE_string("out_dir", None, "Where to write the prepared dataset.")
    flags.DEFINE_list("modalities", list(PAPER_CHANNELS),
                      f"MRI sequences as input channels, in order: any of {', '.join(SEQUENCES)} "
                      f"(the paper: t1c).")
    flags.DEFINE_list("regions", [PAPER_REGION], f"Tumor regions to segment, one mask channel "
                      f"each, in order: any of {', '.join(REGIONS)} (the paper: tc).")
    flags.DEFINE_alias("region", "regions")
    flags.DEFINE_integer("context_slices", 0, "Neighbouring axial slices on each side stacked "
                         "as extra input channels (2.5D; the paper: 0).")
    flags.DEFINE_integer("slices_per_case", 20, "Axial slices kept per case.")
    flags.DEFINE_integer("image_size", 240, "Output slice size (square).")
    flags.DEFINE_integer("seed", 0, "Seed of the 70/10/20 patient-level split.")
    flags.DEFINE_string("split_file", None, 'JSON {"train": [...], "val": [...], "test": [...]}.')
    flags.DEFINE_enum("on_error", "fail", ["fail", "skip"], "Stop at a bad case, or skip it.")
    flags.DEFINE_integer("workers", default_workers(),
                         "Parallel worker processes (default one per core, at most twice the "
                         "cores).")
    flags.DEFINE_bool("overwrite", False, "Replace a dataset prepared with other options.")
    flags.mark_flags_as_required(["brats_dir", "out_dir"])


def cli() -> None:
    """Console entry point `boundary-aware-prepare`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
