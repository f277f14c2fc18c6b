"""Synthetic BraTS-like cases: NIfTI files in a BraTS layout.

    python -m data_prep.synthetic --out_dir=DIR --num_cases=N --seed=S [--shape=240,240,155]
        [--border=0] [--nodistractors] [--sequences=t1c] [--convention=brats2018] [--overwrite]

Each case is `<out_dir>/<case>/<case>_t1ce.nii.gz` (int16) and
`<case>_seg.nii.gz` (uint8, labels {0, 1, 2, 4}), 1 mm voxels, BraTS
orientation (LPS, affine diag(-1, -1, 1)). The T1c looks like a head: a
skull and background, grey and white matter, CSF around the brain, two
ventricles, and a tumor with a dark necrotic core (label 1), a bright
enhancing rim (label 4) and hypointense edema (label 2), irregular and
different in every case; a smooth bias field and noise on top. The same seed
gives the same files. It stands in for BraTS (which needs registration) in the
demo and the tests; its numbers are not BraTS numbers.

Four sequences (`--sequences=t1,t1c,t2,flair`, any ordered subset; the
default is the paper's T1c alone): every voxel's tissue is recorded, and each
sequence is rendered from it with its own contrasts (`CONTRASTS`), so that each
sequence matters: edema is bright on FLAIR and T2 and hardly visible on T1c,
the enhancing rim is bright on T1c only, necrosis dark on T1c and T1 and bright
on T2; the look-alikes differ too (vessels bright on T1c, dark flow voids on
T2; white-matter hyperintensities, unlabelled, bright on FLAIR and T2 only).
The T1c of a case is the same with or without the other sequences: they come
from a random stream of their own.

Label conventions (`--convention`): `brats2018` writes the 2018-2021 layout
(`_t1`, `_t1ce`, `_t2`, `_flair`, `_seg`) with enhancing tumor 4;
`brats2023` the 2023 layout (`-t1n`, `-t1c`, `-t2w`, `-t2f`, `-seg`) with
enhancing tumor 3; `brats2024` the 2023 layout with BraTS 2024's
post-treatment label 4, a resection cavity (fluid: dark on T1, T1c and FLAIR,
bright on T2) carved beside the tumor, in no tumor region.

Every file's header says it is a synthetic case of this package. Existing
files are never replaced without `--overwrite`, and with it only files of a
synthetic case of this package (nothing else in a case folder is touched); a
file of another origin under a case's file name is refused. Both checks come
before anything is written.

Distractors (on by default, `distractors=False` for the plain phantom): what
makes real T1c scans hard is not the tumor but what looks like it. Bright,
enhancing, unlabelled structures far from the tumor: tortuous vessels, the
falx on the midline and a patchy dura under the skull, choroid plexus in the
ventricles, a bright scalp-fat layer outside the skull; a stronger intensity
inhomogeneity; and in about a third of the cases a tumor placed near the
midline, touching a ventricle. They are drawn from their own random stream,
so a seed gives the same anatomy (and, unless it is moved beside a
ventricle, the same tumor) with or without them, and they never change a
labelled voxel: the labels stay exact.
"""

import contextlib
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from boundary_aware.brats_cases import LAYOUTS
from boundary_aware.channels import PAPER_SEQUENCES, parse_sequences
from boundary_aware.cli import default_workers
from boundary_aware.errors import DataError
from boundary_aware.files import atomic_file
from boundary_aware.nifti import SYNTHETIC_MARK, has_mark
from data_prep.phantom import CONVENTION_LAYOUT, make_sequences

BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])


def case_files(out_dir, case_id, kinds, layout="brats2018") -> list[Path]:
    """The paths `write_case` writes for a case with the files `kinds` (sequences, "seg")."""
    return [Path(out_dir) / case_id / f"{case_id}{LAYOUTS[layout][kind]}" for kind in kinds]


def check_targets(paths, overwrite: bool) -> None:
    """DataError naming the first path that may not be written: one that exists, without
    `overwrite`; with it, one that is not a synthetic case file of this package (or is a
    folder)."""
    for path in paths:
        if path.parent.exists() and not path.parent.is_dir():
            raise DataError(f"{path.parent}: exists and is not a folder")
        if not (path.exists() or path.is_symlink()):
            continue
        if not overwrite:
            raise DataError(f"{path}: already exists; pass --overwrite to replace the "
                            f"synthetic cases (only files this generator wrote are replaced)")
        if path.is_symlink() or not path.is_file() or not has_mark(path, SYNTHETIC_MARK):
            raise DataError(f"{path}: is not a synthetic case file of this package: it is "
                            f"never replaced, not even with --overwrite")


def write_case(out_dir, case_id, volumes, seg, layout="brats2018"):
    """Write one case's files in `layout` (`brats_cases.LAYOUTS`): `volumes` maps
    sequence names to arrays (a bare array: the T1c). Each file is written to a temporary
    name and renamed, so an interrupted run leaves no truncated file under a case's name."""
    if not isinstance(volumes, dict):
        volumes = {"t1c": volumes}
    case_dir = Path(out_dir) / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    for kind, array in (*volumes.items(), ("seg", seg)):
        img = nib.Nifti1Image(array, BRATS_AFFINE)
        img.header.set_zooms((1.0, 1.0, 1.0))
        img.header.set_xyzt_units("mm")
        img.header["descrip"] = SYNTHETIC_MARK
        with atomic_file(case_dir / f"{case_id}{LAYOUTS[layout][kind]}") as tmp:
            nib.save(img, str(tmp))


def case_id(index: int) -> str:
    """The id of the `index`-th generated case."""
    return f"Synth_{index:04d}"


def with_border(volume: np.ndarray, border: int) -> np.ndarray:
    """`volume` with `border` zero voxels added on each in-plane side (X and Y)."""
    return np.pad(volume, ((border, border), (border, border), (0, 0))) if border else volume


def _write_one(args):
    out_dir, i, seed, shape, distractors, sequences, convention, border = args
    name = case_id(i)
    volumes, seg = make_sequences(np.random.SeedSequence([seed, i]).generate_state(1)[0],
                                  shape, distractors, sequences, convention)
    volumes = {kind: with_border(v, border) for kind, v in volumes.items()}
    seg = with_border(seg, border)
    write_case(out_dir, name, volumes, seg, CONVENTION_LAYOUT[convention])
    return name


def generate(out_dir, num_cases, seed=0, shape=(240, 240, 155), progress=False,
             distractors=True, sequences=PAPER_SEQUENCES, convention="brats2018",
             overwrite=False, workers=1, border=0):
    """Write `num_cases` cases named `Synth_XXXX` with the sequences `sequences`, in
    `convention`'s layout and labels; returns their ids. Existing files: `check_targets`,
    for every case before the first is written. Each case is drawn from its own seed
    (`seed`, its number), so `workers` processes write the same files as one. `border`:
    zero voxels added on each in-plane side of a case drawn at `shape` (a head that
    fills less of the slice, as BraTS's do; `shape` 176 x 176 with a border of 32 gives
    240 x 240 slices, about half of them head)."""
    if not isinstance(border, int) or border < 0:
        raise ValueError(f"border must be a whole number of voxels >= 0, got {border!r}")
    sequences = parse_sequences(sequences)
    if convention not in CONVENTION_LAYOUT:
        raise ValueError(f"convention must be one of {sorted(CONVENTION_LAYOUT)}, "
                         f"got {convention!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    check_targets([path for i in range(num_cases) for path in case_files(
        out_dir, case_id(i), (*sequences, "seg"), CONVENTION_LAYOUT[convention])], overwrite)
    jobs = [(out_dir, i, seed, shape, distractors, sequences, convention, border)
            for i in range(num_cases)]
    with contextlib.ExitStack() as stack:
        if workers > 1 and num_cases > 1:
            from concurrent.futures import ProcessPoolExecutor
            pool = stack.enter_context(ProcessPoolExecutor(min(workers, num_cases)))
            names = pool.map(_write_one, jobs)
        else:
            names = map(_write_one, jobs)
        if progress:
            from tqdm import tqdm
            names = tqdm(names, total=num_cases, desc="synthetic cases", unit="case",
                         file=sys.stderr)
        return list(names)


def main(argv):
    from absl import flags
    from boundary_aware.cli import check_workers, exit_on
    del argv
    f = flags.FLAGS
    shape = tuple(int(s) for s in f.shape.split(","))
    with exit_on(ValueError):
        ids = generate(f.out_dir, f.num_cases, f.seed, shape, progress=True,
                       distractors=f.distractors, sequences=f.sequences,
                       convention=f.convention, overwrite=f.overwrite,
                       workers=check_workers(f.workers), border=f.border)
    written = tuple(n + 2 * f.border if axis < 2 else n for axis, n in enumerate(shape))
    print(f"{f.out_dir}: wrote {len(ids)} synthetic cases of shape {written}")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("out_dir", None, "Output folder (a BraTS layout).")
    flags.DEFINE_integer("num_cases", 10, "Number of cases.")
    flags.DEFINE_integer("workers", default_workers(), "Processes writing cases at once "
                         "(the same files for any number).")
    flags.DEFINE_integer("seed", 0, "Seed: the same seed gives the same files.")
    flags.DEFINE_string("shape", "240,240,155", "Volume shape X,Y,Z.")
    flags.DEFINE_integer("border", 0, "Zero voxels added on each in-plane side: a head that "
                         "fills less of the slice, as BraTS's (--shape=176,176,155 "
                         "--border=32: 240 x 240 slices, about half of them head).")
    flags.DEFINE_bool("distractors", True, "Add bright unlabelled look-alikes of the tumor rim.")
    flags.DEFINE_list("sequences", list(PAPER_SEQUENCES),
                      "MRI sequences to write: any of t1, t1c, t2, flair.")
    flags.DEFINE_enum("convention", "brats2018", sorted(CONVENTION_LAYOUT),
                      "Label convention and file layout: brats2018 (ET = 4), brats2023 "
                      "(ET = 3), brats2024 (ET = 3, 4 = resection cavity).")
    flags.DEFINE_bool("overwrite", False, "Replace existing synthetic case files (only files "
                      "this generator wrote).")
    flags.mark_flag_as_required("out_dir")


def cli() -> None:
    """Console entry point `boundary-aware-synthetic`."""
    from boundary_aware.cli import run_absl
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
