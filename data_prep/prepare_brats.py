"""Prepare a BraTS folder as a 2D slice dataset (Sec. 3.1 of the paper).

    python -m data_prep.prepare_brats --brats_dir=DIR --out_dir=DIR \
        [--sequences=t1c] [--regions=tc] [--context_slices=0] [--slices_per_case=20] \
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

from boundary_aware.brats_cases import discover_cases, load_case
from boundary_aware.channels import (MAX_CONTEXT_SLICES, PAPER_SEQUENCES, SEQUENCES,
                                     context_channels, parse_sequences, stack_context)
from boundary_aware.cli import check_workers, default_workers, exit_on, run_absl
from boundary_aware.errors import DataError, LockedError
from boundary_aware.files import (atomic_folder, check_apart, check_only_ours,
                                  check_writable_folder, exclusive_lock, file_sha256)
from boundary_aware.intensity import normalized_slices, resize_slices
from boundary_aware.models import MODELS, check_image_size  # the registry; no Keras
from boundary_aware.prepared import (MANIFEST_FORMAT, SPLITS, Manifest, case_record,
                                     dataset_files, manifest_format, manifest_path,
                                     split_paths, tumor_free_path)
from boundary_aware.regions import PAPER_REGION, REGIONS, parse_regions
from boundary_aware.slices import select_slices, select_tumor_free_slices, tumor_free_per_case
from boundary_aware.version import __version__

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


def prepare_case(case, regions, slices_per_case, image_size, root, sequences=PAPER_SEQUENCES,
                 context_slices=0):
    """Load, validate, select, normalize (each sequence on its own) and resize one case.

    Returns (images (N, size, size, C) float32 (C: the `sequences`, with
    `context_slices` neighbours on each side: `channels.context_channels`), masks
    (N, size, size, R) uint8 (one channel per region of `regions`, in order; slices
    selected around their union), manifest record, tumor-free images (M, size, size, C)
    float32); the record names each source file by its path relative to `root` (the
    BraTS folder), so that evaluation can score the whole volumes. The tumor-free images
    are up to `slices.tumor_free_per_case(...)` head slices without tumor
    (`slices.select_tumor_free_slices`), for training's `data.tumor_free_fraction`.
    """
    image, masks, convention, zooms = load_case(case, tuple(regions), sequences)
    mask = masks.max(axis=-1)  # slices are selected around the union of the regions
    indices = select_slices(mask, slices_per_case)
    free = select_tumor_free_slices(mask, np.any(image != 0, axis=-1),
                                    tumor_free_per_case(slices_per_case))
    rows = np.asarray(indices + free, np.int64)
    k = int(context_slices)
    needed = np.unique(np.clip(rows[:, None] + np.arange(-k, k + 1), 0, image.shape[2] - 1)) \
        if len(rows) else rows  # the slices and their neighbours inside the volume
    resized = np.zeros((image.shape[2], image_size, image_size, image.shape[-1]), np.float32)
    resized[needed], ranges = normalized_slices(image, image_size, needed)
    images = stack_context(resized, rows, k)
    masks = np.stack([resize_slices(np.moveaxis(masks[:, :, indices, r], 2, 0), image_size,
                                    order=0) for r in range(masks.shape[-1])], axis=-1)
    files = {kind: (path, path.resolve().relative_to(Path(root).resolve()), file_sha256(path))
             for kind, path in case.files.items()}
    record = case_record(case.case_id, convention, indices, image.shape[:3], zooms[:3],
                         [lo for lo, _ in ranges], [hi for _, hi in ranges], files, free)
    return (images[:len(indices)], masks.astype(np.uint8), record,
            images[len(indices):])


def _prepare_one(args):
    case, options = args
    try:
        return case.case_id, prepare_case(case, options["regions"], options["slices_per_case"],
                                          options["image_size"], options["brats_dir"],
                                          tuple(options["sequences"]),
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
            progress=False, log=print, sequences=PAPER_SEQUENCES, context_slices=0,
            models=()):
    """Prepare the dataset; returns the manifest dict. See the module docstring.
    `sequences`: the MRI sequences, in channel order (`channels.SEQUENCES`);
    `context_slices`: neighbouring slices on each side stacked as channels too
    (`channels.context_channels`; 0 in the paper); `models`: the model families
    (registry names) that will train on the slices, whose size divisors `image_size`
    must suit (none: only its bounds are checked; training checks its own model)."""
    try:
        sequences = parse_sequences(sequences)
    except ValueError as err:
        raise ValueError(f"--sequences {err}") from None
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
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"--models: unknown model(s) {unknown}; choose among {sorted(MODELS)}")
    try:
        check_image_size(image_size, {name: {} for name in models})
    except ValueError as err:
        raise ValueError(f"--image_size: {err}") from None
    out_dir = Path(out_dir)
    check_writable_folder(out_dir)
    if not Path(brats_dir).is_dir():
        raise DataError(f"{brats_dir}: not a directory")
    check_apart(out_dir, {"--brats_dir": brats_dir, "--split_file": split_file})
    options = {"brats_dir": str(Path(brats_dir).resolve()), "sequences": list(sequences),
               "regions": list(regions), "context_slices": context_slices,
               "slices_per_case": slices_per_case, "image_size": image_size, "seed": seed,
               "split_file": str(Path(split_file).resolve()) if split_file else None,
               "on_error": on_error}
    with exclusive_lock(out_dir.with_name(f".{out_dir.name}.lock"), str(out_dir)):
        existing = _existing_dataset(out_dir, options, overwrite)
        if existing is not None:
            log(f"{out_dir}: already prepared with these options; nothing to do")
            return existing
        skipped = {}
        prepared, split = _prepare_cases(brats_dir, options, split_file, workers, progress,
                                         log, skipped)
        manifest = _write_dataset(out_dir, options, prepared, split, skipped)
    counts = {name: len(manifest.slices(name)) for name in SPLITS}
    log(f"{out_dir}: {len(prepared)} cases prepared ({len(skipped)} skipped); slices {counts}")
    return manifest


def _existing_dataset(out_dir: Path, options: dict, overwrite: bool) -> Manifest | None:
    """The dataset in `out_dir` if it was prepared with `options` (and no `overwrite`);
    None where the folder is free to prepare into: absent, empty, or a dataset of this
    package that `overwrite` replaces. DataError otherwise, naming why."""
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
                return existing
            raise DataError(f"{out_dir}: holds a dataset prepared with other options "
                            f"({existing.options}); pass --overwrite to replace it")
        check_only_ours(out_dir, dataset_files(out_dir), "a prepared dataset", _MOVE_THEM)
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir}: exists, is not empty and is not a prepared dataset; "
                        f"it is never replaced (not even with --overwrite)")
    return None


def _prepare_cases(brats_dir, options: dict, split_file, workers: int, progress: bool, log,
                   skipped: dict) -> tuple[dict, dict]:
    """({case id: `prepare_case`'s result}, {split: case ids}) of every case found under
    `brats_dir`, `workers` at a time; what is passed over goes to `skipped`."""
    cases = discover_cases(brats_dir, options["on_error"], skipped, options["sequences"])
    for path, why in skipped.items():
        log(f"skipped {path}: {why}")
    ids = [c.case_id for c in cases]
    split = read_split_file(split_file, ids) if split_file else \
        default_split(ids, options["seed"])
    wanted = {c for name in SPLITS for c in split[name]}
    jobs = [(case, options) for case in cases if case.case_id in wanted]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(_progress(pool.map(_prepare_one, jobs), len(jobs), progress))
    else:
        results = [_prepare_one(job) for job in _progress(jobs, len(jobs), progress)]
    prepared = {}
    for case_id, result, error in results:
        if error is None:
            prepared[case_id] = result
        elif options["on_error"] == "fail":
            raise DataError(error)
        else:
            skipped[case_id] = error
            log(f"skipped case {case_id}: {error}")
    return prepared, {name: [c for c in split[name] if c in prepared] for name in SPLITS}


def _write_dataset(out_dir: Path, options: dict, prepared: dict, split: dict,
                   skipped: dict) -> Manifest:
    """Every split's arrays, the tumor-free pool and the manifest, written to a temporary
    folder and renamed into `out_dir`; returns the manifest."""
    channels = context_channels(options["sequences"], options["context_slices"])
    size, regions = options["image_size"], options["regions"]
    manifest = Manifest.create(__version__, options, channels, split, skipped,
                               {c: prepared[c][2] for c in sorted(prepared)})
    with atomic_folder(out_dir, replace=True, ours=dataset_files(out_dir),
                       what="a prepared dataset", instead=_MOVE_THEM) as tmp:
        for name in SPLITS:
            parts = [prepared[c] for c in split[name]]
            empty = (0, size, size)
            images = np.concatenate([p[0] for p in parts]) if parts else \
                np.zeros(empty + (len(channels),), np.float32)
            masks = np.concatenate([p[1] for p in parts]) if parts else \
                np.zeros(empty + (len(regions),), np.uint8)
            images_path, masks_path = split_paths(tmp, name)
            np.save(images_path, images)
            np.save(masks_path, masks)
        train = [prepared[c][3] for c in split["train"]]
        np.save(tumor_free_path(tmp), np.concatenate(train) if train else
                np.zeros((0, size, size, len(channels)), np.float32))
        manifest["tumor_free"] = {"split": "train",
                                  "per_case": tumor_free_per_case(options["slices_per_case"])}
        manifest["conventions"] = sorted({prepared[c][2]["convention"] for c in prepared})
        # every array's SHA-256: readers refuse an array changed since (`load_prepared`)
        manifest["arrays"] = {path.name: file_sha256(path) for path in sorted(tmp.glob("*.npy"))}
        manifest.write(tmp)
    return manifest


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(DataError, ValueError, LockedError):
        prepare(f.brats_dir, f.out_dir, f.regions, f.slices_per_case, f.image_size, f.seed,
                f.split_file, f.on_error, f.workers, f.overwrite, progress=True,
                sequences=f.sequences, context_slices=f.context_slices, models=f.models)


def define_flags():
    from absl import flags
    flags.DEFINE_string("brats_dir", None, "BraTS root folder (2018-2021 or 2023+ layout).")
    flags.DEFINE_string("out_dir", None, "Where to write the prepared dataset.")
    flags.DEFINE_list("sequences", list(PAPER_SEQUENCES),
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
    flags.DEFINE_list("models", [], f"The model families that will train on the slices "
                      f"(any of {', '.join(sorted(MODELS))}): --image_size must suit each "
                      f"one's downsampling (default: none named; training checks its own).")
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
