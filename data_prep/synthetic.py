"""Synthetic BraTS-like cases: NIfTI files in a BraTS layout.

    python -m data_prep.synthetic --out_dir=DIR --num_cases=N --seed=S [--shape=240,240,155]
        [--border=0] [--nodistractors] [--modalities=t1c] [--convention=brats2018] [--overwrite]

Each case is `<out_dir>/<case>/<case>_t1ce.nii.gz` (int16) and
`<case>_seg.nii.gz` (uint8, labels {0, 1, 2, 4}), 1 mm voxels, BraTS
orientation (LPS, affine diag(-1, -1, 1)). The T1c looks like a head: a
skull and background, grey and white matter, CSF around the brain, two
ventricles, and a tumor with a dark necrotic core (label 1), a bright
enhancing rim (label 4) and hypointense edema (label 2), irregular and
different in every case; a smooth bias field and noise on top. The same seed
gives the same files. It stands in for BraTS (which needs registration) in the
demo and the tests; its numbers are not BraTS numbers.

Four sequences (`--modalities=t1,t1c,t2,flair`, any ordered subset; the
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
from scipy import ndimage

from boundary_aware.cli import default_workers
from boundary_aware.data import CONVENTIONS, PAPER_CHANNELS, DataError, parse_modalities
from boundary_aware.files import atomic_file
from boundary_aware.nifti import SYNTHETIC_MARK, has_mark
from data_prep.brats import LAYOUTS

BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
# Mean T1c intensities (arbitrary units, like raw BraTS int16 values).
INTENSITY = {"csf": 25.0, "gm": 70.0, "wm": 95.0, "skull": 120.0, "edema": 55.0,
             "necrosis": 30.0, "enhancing": 165.0, "fat": 150.0}
NEAR_VENTRICLE_P = 0.35  # share of cases (with distractors) whose tumor touches a ventricle
# Every voxel's tissue, from which the sequences are rendered (0: background).
TISSUES = ("background", "gm", "wm", "csf", "skull", "edema", "necrosis", "enhancing",
           "non_enhancing", "fat", "falx", "dura", "plexus", "vessel", "wmh", "cavity")
# Mean intensities of the other sequences per tissue (T1c: `INTENSITY` and the rules of
# `make_case`): T1 without contrast, T2, FLAIR (fluid-attenuated T2).
CONTRASTS = {
    "t1": {"gm": 70, "wm": 95, "csf": 25, "skull": 120, "edema": 55, "necrosis": 35,
           "enhancing": 72, "non_enhancing": 60, "fat": 150, "falx": 70, "dura": 75,
           "plexus": 40, "vessel": 65, "wmh": 85, "cavity": 22},
    "t2": {"gm": 100, "wm": 70, "csf": 180, "skull": 30, "edema": 150, "necrosis": 170,
           "enhancing": 110, "non_enhancing": 130, "fat": 120, "falx": 45, "dura": 45,
           "plexus": 120, "vessel": 20, "wmh": 140, "cavity": 185},
    "flair": {"gm": 90, "wm": 70, "csf": 20, "skull": 30, "edema": 170, "necrosis": 60,
              "enhancing": 125, "non_enhancing": 150, "fat": 130, "falx": 70, "dura": 70,
              "plexus": 40, "vessel": 55, "wmh": 160, "cavity": 25},
}
CONVENTION_LAYOUT = {"brats2018": "brats2018", "brats2023": "brats2023", "brats2024": "brats2023"}


def _linear_upsampler(n_out, n_in):
    """(n_out, n_in) matrix of linear-interpolation weights across the same extent."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    weights = np.zeros((n_out, n_in), np.float32)
    weights[np.arange(n_out), lo] = 1 - frac
    weights[np.arange(n_out), lo + 1] = frac
    return weights


def smooth_noise(rng, shape, cell):
    """Zero-mean, unit-scale noise that varies over about `cell` voxels.

    Gaussian noise on a coarse grid, linearly interpolated up one axis at a
    time (three small matrix products instead of a 3D zoom).
    """
    field = rng.standard_normal(tuple(max(2, s // cell + 2) for s in shape)).astype(np.float32)
    for axis, n_out in enumerate(shape):
        field = np.moveaxis(np.tensordot(_linear_upsampler(n_out, field.shape[axis]), field,
                                         axes=(1, axis)), 0, axis)
    return np.ascontiguousarray(field)


def ellipsoid_distance(shape, center, radii):
    """Normalized distance sqrt(sum(((x - c) / r)^2)) on the grid, float32."""
    axes = np.ogrid[tuple(slice(0, s) for s in shape)]
    return np.sqrt(sum(((a.astype(np.float32) - c) / r) ** 2
                       for a, c, r in zip(axes, center, radii)))


def tube(shape, points, radius):
    """Boolean mask of a tube of `radius` voxels along the polyline `points` (k, 3)."""
    centre = np.zeros(shape, bool)
    for a, b in zip(points[:-1], points[1:]):
        steps = int(np.ceil(np.abs(b - a).max())) + 1
        line = np.round(np.linspace(a, b, steps)).astype(int)
        inside = np.all((line >= 0) & (line < np.array(shape)), axis=1)
        centre[tuple(line[inside].T)] = True
    if not centre.any():
        return centre
    return ndimage.distance_transform_edt(~centre) <= radius


def add_distractors(rng, t1c, seg, head, brain, center, size, ventricles, tissue=None):
    """Bright unlabelled structures (see the module docstring), painted where seg == 0
    (and recorded in `tissue`, where given)."""
    free = seg == 0
    if tissue is not None:
        free &= tissue != TISSUES.index("cavity")
    bright = INTENSITY["enhancing"]
    scale = float(size.max()) / 160.0  # sizes in voxels of a 160-voxel head
    axes = np.ogrid[tuple(slice(0, int(n)) for n in size)]
    # falx: a thin sheet on the midline, in the upper part of the brain
    wobble = 1.0 * smooth_noise(rng, t1c.shape, 16)
    falx = (np.abs(axes[0] - center[0] + wobble) < 0.6 + 0.4 * scale) & \
        (axes[2] > center[2] - 0.05 * size[2]) & brain
    # dura: patches of a thin shell under the skull
    dura = (head >= 0.85) & (head < 0.88) & (smooth_noise(rng, t1c.shape, 10) > 0.3)
    # choroid plexus: a small bright blob in each ventricle
    plexus = np.zeros(t1c.shape, bool)
    for v in ventricles:
        idx = np.argwhere(v)
        if len(idx):
            c = idx[rng.integers(len(idx))]
            plexus |= ellipsoid_distance(t1c.shape, c, np.full(3, 1.5 * scale + 0.5)) < 1
    plexus &= np.any(ventricles, axis=0)
    # vessels: a few tortuous tubes through and around the brain
    vessels = np.zeros(t1c.shape, bool)
    flat = np.array([1.0, 1.0, 0.3])  # mostly in the axial plane, as cortical veins run
    for _ in range(rng.integers(6, 11)):
        start = center + rng.uniform(-0.35, 0.35, 3) * size
        direction = rng.normal(size=3) * flat
        points = [start]
        for _ in range(8):
            direction = direction / np.linalg.norm(direction) + rng.normal(scale=0.5, size=3) * flat
            points.append(points[-1] + direction / np.linalg.norm(direction) * 0.05 * size)
        vessels |= tube(t1c.shape, np.array(points), rng.uniform(0.5, 1.3) * scale)
    vessels &= head < 0.93
    for name, structure, level in (("falx", falx, 0.85), ("dura", dura, 0.8),
                                   ("plexus", plexus, 0.95), ("vessel", vessels, 1.0)):
        t1c[structure & free] = bright * level * rng.uniform(0.85, 1.1)
        if tissue is not None:
            tissue[structure & free] = TISSUES.index(name)


def make_case(seed, shape=(240, 240, 155), distractors=True):
    """One synthetic case: (t1c int16, seg uint8), both of `shape` (see the module docstring)."""
    t1c, seg, _, _ = _phantom(seed, shape, distractors)
    return t1c, seg


def make_sequences(seed, shape=(240, 240, 155), distractors=True, modalities=PAPER_CHANNELS,
                   convention="brats2018"):
    """One synthetic case with the sequences `modalities`: ({sequence: int16 volume},
    seg uint8 in `convention`'s labels). Its T1c is `make_case`'s, unless the convention
    carves a resection cavity (brats2024)."""
    modalities = parse_modalities(modalities)
    if convention not in CONVENTION_LAYOUT:
        raise ValueError(f"convention must be one of {sorted(CONVENTION_LAYOUT)}, "
                         f"got {convention!r}")
    own = np.random.default_rng([int(seed), 2])  # the other sequences' stream
    t1c, seg, tissue, head_mask = _phantom(seed, shape, distractors,
                                           cavity_rng=own if convention == "brats2024" else None)
    if set(modalities) - {"t1c"}:
        wmh = (tissue == TISSUES.index("wm")) & (smooth_noise(own, seg.shape, 5) > 2.0)
        tissue[wmh] = TISSUES.index("wmh")  # unlabelled, seen on T2 and FLAIR only
    volumes = {m: t1c if m == "t1c" else render(tissue, CONTRASTS[m], head_mask, own)
               for m in modalities}
    labels = seg.copy()
    if convention != "brats2018":
        labels[seg == 4] = 3  # enhancing tumor is 3 from BraTS 2023 on
        labels[tissue == TISSUES.index("cavity")] = 4  # BraTS 2024 post-treatment
    assert set(np.unique(labels).tolist()) <= set(CONVENTIONS[convention]["labels"])
    return volumes, labels


def render(tissue, contrasts, head_mask, rng):
    """One sequence (int16) from the tissue map: each tissue at its mean intensity in
    `contrasts`, blurred, under a bias field, with noise, at a random scanner scale."""
    table = np.zeros(len(TISSUES), np.float32)
    for name, value in contrasts.items():
        table[TISSUES.index(name)] = value * rng.uniform(0.92, 1.08)
    shape = tissue.shape
    volume = ndimage.gaussian_filter(table[tissue], 0.6) * (1.0 + 0.15 * smooth_noise(rng, shape, 48))
    volume += rng.normal(0.0, 4.0, shape).astype(np.float32)
    volume = np.where(head_mask, np.clip(volume, 1.0, None), 0.0)
    return np.round(volume * rng.uniform(5.0, 9.0)).astype(np.int16)


def _phantom(seed, shape, distractors, cavity_rng=None):
    """(t1c int16, seg uint8 in BraTS 2018 labels, tissue map (`TISSUES` index), head mask);
    with `cavity_rng`, a resection cavity is carved beside the tumor (tissue "cavity",
    label 0 here)."""
    rng = np.random.default_rng(seed)
    extra = np.random.default_rng([int(seed), 1])  # the distractors' own stream
    shape = tuple(int(s) for s in shape)
    size = np.array(shape, dtype=np.float32)
    center = size / 2 + rng.uniform(-0.03, 0.03, 3) * size
    head = ellipsoid_distance(shape, center, size * np.array([0.40, 0.46, 0.44]))
    head = head + 0.03 * smooth_noise(rng, shape, 24)
    brain = head < 0.88
    skull = (head >= 0.93) & (head < 1.0)
    csf = (head >= 0.88) & (head < 0.93)

    t1c = np.zeros(shape, np.float32)
    tissue = np.zeros(shape, np.uint8)
    wm = head + 0.12 * smooth_noise(rng, shape, 8) < 0.62
    t1c[brain] = INTENSITY["gm"]
    t1c[brain & wm] = INTENSITY["wm"]
    t1c[csf] = INTENSITY["csf"]
    t1c[skull] = INTENSITY["skull"]
    tissue[brain] = TISSUES.index("gm")
    tissue[brain & wm] = TISSUES.index("wm")
    tissue[csf] = TISSUES.index("csf")
    tissue[skull] = TISSUES.index("skull")
    ventricles = []
    for side in (-1, 1):  # two ventricles beside the midline
        v_center = center + np.array([side * 0.05, 0.0, 0.05]) * size
        v = ellipsoid_distance(shape, v_center, size * np.array([0.03, 0.12, 0.06])
                               * rng.uniform(0.8, 1.2, 3))
        t1c[v < 1] = INTENSITY["csf"]
        tissue[v < 1] = TISSUES.index("csf")
        ventricles.append(v < 1)

    # Tumor: an irregular blob inside the brain, off the midline.
    radii = rng.uniform(0.06, 0.12, 3) * size
    offset = rng.uniform(0.12, 0.2) * rng.choice([-1, 1])
    t_center = center + np.array([offset, rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)]) * size
    if distractors and extra.random() < NEAR_VENTRICLE_P:
        # beside a ventricle: as far from the midline as the ventricle, its tumor core
        # reaching into it
        t_center = center + np.array([np.sign(offset) * 0.05 + radii[0] / size[0] * 0.5
                                      * np.sign(offset), 0.0, 0.05]) * size
    tumor_d = ellipsoid_distance(shape, t_center, radii) + 0.35 * smooth_noise(rng, shape, 6)
    edema_d = ellipsoid_distance(shape, t_center, radii * 1.9) + 0.3 * smooth_noise(rng, shape, 10)
    necrotic_fraction = rng.uniform(0.3, 0.8)
    seg = np.zeros(shape, np.uint8)
    seg[(edema_d < 1) & brain] = 2
    seg[(tumor_d < 1) & brain] = 4
    seg[(tumor_d < necrotic_fraction) & brain] = 1
    t1c[seg == 2] = INTENSITY["edema"]
    t1c[seg == 4] = INTENSITY["enhancing"] * rng.uniform(0.8, 1.1)
    t1c[seg == 1] = INTENSITY["necrosis"]
    for label, name in ((2, "edema"), (4, "enhancing"), (1, "necrosis")):
        tissue[seg == label] = TISSUES.index(name)
    # Non-enhancing tumor (label 1, close to edema in T1c) replaces part of the
    # rim, so the tumor-core boundary is not everywhere a bright edge.
    non_enhancing = (seg == 4) & (smooth_noise(rng, shape, 12) > rng.uniform(0.3, 1.2))
    seg[non_enhancing] = 1
    t1c[non_enhancing] = INTENSITY["edema"] + rng.uniform(5, 20)
    tissue[non_enhancing] = TISSUES.index("non_enhancing")
    if cavity_rng is not None:
        _carve_cavity(cavity_rng, t1c, seg, tissue, brain, t_center, radii)

    head_mask = head < 1.0
    bias = 1.0 + 0.15 * smooth_noise(rng, shape, 48)
    if distractors:
        add_distractors(extra, t1c, seg, head, brain, center, size, ventricles, tissue)
        scalp = (head >= 1.0) & (head < 1.06)
        t1c[scalp] = INTENSITY["fat"] * extra.uniform(0.85, 1.1)
        tissue[scalp] = TISSUES.index("fat")
        head_mask = head < 1.06
        bias = bias + 0.12 * smooth_noise(extra, shape, 40)  # stronger inhomogeneity
    t1c = ndimage.gaussian_filter(t1c, 0.6) * bias
    t1c += rng.normal(0.0, 4.0, shape).astype(np.float32)
    t1c = np.where(head_mask, np.clip(t1c, 1.0, None), 0.0)
    scale = rng.uniform(5.0, 9.0)  # raw BraTS intensities vary in scale per scanner
    return np.round(t1c * scale).astype(np.int16), seg, tissue, head_mask


def _carve_cavity(rng, t1c, seg, tissue, brain, t_center, radii):
    """A fluid-filled resection cavity beside the tumor (BraTS 2024's label 4): an ellipsoid
    centred on the tumor's edge, where there is no tumor core (edema or brain), painted
    as fluid."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    center = t_center + direction * radii * 1.1
    cavity = (ellipsoid_distance(seg.shape, center, radii * rng.uniform(0.5, 0.7)) < 1) & \
        brain & np.isin(seg, (0, 2))
    seg[cavity] = 0  # in no tumor region; `make_sequences` labels it
    tissue[cavity] = TISSUES.index("cavity")
    t1c[cavity] = INTENSITY["csf"] * 0.9


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
    """Write one case's files in `layout` (`data_prep.brats.LAYOUTS`): `volumes` maps
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
    out_dir, i, seed, shape, distractors, modalities, convention, border = args
    name = case_id(i)
    volumes, seg = make_sequences(np.random.SeedSequence([seed, i]).generate_state(1)[0],
                                  shape, distractors, modalities, convention)
    volumes = {kind: with_border(v, border) for kind, v in volumes.items()}
    seg = with_border(seg, border)
    write_case(out_dir, name, volumes, seg, CONVENTION_LAYOUT[convention])
    return name


def generate(out_dir, num_cases, seed=0, shape=(240, 240, 155), progress=False,
             distractors=True, modalities=PAPER_CHANNELS, convention="brats2018",
             overwrite=False, workers=1, border=0):
    """Write `num_cases` cases named `Synth_XXXX` with the sequences `modalities`, in
    `convention`'s layout and labels; returns their ids. Existing files: `check_targets`,
    for every case before the first is written. Each case is drawn from its own seed
    (`seed`, its number), so `workers` processes write the same files as one. `border`:
    zero voxels added on each in-plane side of a case drawn at `shape` (a head that
    fills less of the slice, as BraTS's do; `shape` 176 x 176 with a border of 32 gives
    240 x 240 slices, about half of them head)."""
    if not isinstance(border, int) or border < 0:
        raise ValueError(f"border must be a whole number of voxels >= 0, got {border!r}")
    modalities = parse_modalities(modalities)
    if convention not in CONVENTION_LAYOUT:
        raise ValueError(f"convention must be one of {sorted(CONVENTION_LAYOUT)}, "
                         f"got {convention!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    check_targets([path for i in range(num_cases) for path in case_files(
        out_dir, case_id(i), (*modalities, "seg"), CONVENTION_LAYOUT[convention])], overwrite)
    jobs = [(out_dir, i, seed, shape, distractors, modalities, convention, border)
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
                       distractors=f.distractors, modalities=f.modalities,
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
    flags.DEFINE_list("modalities", list(PAPER_CHANNELS),
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
