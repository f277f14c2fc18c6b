"""Synthetic BraTS-like cases: NIfTI files in the BraTS 2018 layout.

    python -m data_prep.synthetic --out_dir=DIR --num_cases=N --seed=S [--shape=240,240,155]
        [--nodistractors]

Each case is `<out_dir>/<case>/<case>_t1ce.nii.gz` (int16) and
`<case>_seg.nii.gz` (uint8, labels {0, 1, 2, 4}), 1 mm voxels, BraTS
orientation (LPS, affine diag(-1, -1, 1)). The T1c looks like a head: a
skull and background, grey and white matter, CSF around the brain, two
ventricles, and a tumor with a dark necrotic core (label 1), a bright
enhancing rim (label 4) and hypointense edema (label 2), irregular and
different in every case; a smooth bias field and noise on top. The same seed
gives the same files. It stands in for BraTS (which needs registration) in the
demo and the tests; its numbers are not BraTS numbers.

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

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
# Mean T1c intensities (arbitrary units, like raw BraTS int16 values).
INTENSITY = {"csf": 25.0, "gm": 70.0, "wm": 95.0, "skull": 120.0, "edema": 55.0,
             "necrosis": 30.0, "enhancing": 165.0, "fat": 150.0}
NEAR_VENTRICLE_P = 0.35  # share of cases (with distractors) whose tumor touches a ventricle


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


def add_distractors(rng, t1c, seg, head, brain, center, size, ventricles):
    """Bright unlabelled structures (see the module docstring), painted where seg == 0."""
    free = seg == 0
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
    for structure, level in ((falx, 0.85), (dura, 0.8), (plexus, 0.95), (vessels, 1.0)):
        t1c[structure & free] = bright * level * rng.uniform(0.85, 1.1)


def make_case(seed, shape=(240, 240, 155), distractors=True):
    """One synthetic case: (t1c int16, seg uint8), both of `shape` (see the module docstring)."""
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
    wm = head + 0.12 * smooth_noise(rng, shape, 8) < 0.62
    t1c[brain] = INTENSITY["gm"]
    t1c[brain & wm] = INTENSITY["wm"]
    t1c[csf] = INTENSITY["csf"]
    t1c[skull] = INTENSITY["skull"]
    ventricles = []
    for side in (-1, 1):  # two ventricles beside the midline
        v_center = center + np.array([side * 0.05, 0.0, 0.05]) * size
        v = ellipsoid_distance(shape, v_center, size * np.array([0.03, 0.12, 0.06])
                               * rng.uniform(0.8, 1.2, 3))
        t1c[v < 1] = INTENSITY["csf"]
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
    # Non-enhancing tumor (label 1, close to edema in T1c) replaces part of the
    # rim, so the tumor-core boundary is not everywhere a bright edge.
    non_enhancing = (seg == 4) & (smooth_noise(rng, shape, 12) > rng.uniform(0.3, 1.2))
    seg[non_enhancing] = 1
    t1c[non_enhancing] = INTENSITY["edema"] + rng.uniform(5, 20)

    head_mask = head < 1.0
    bias = 1.0 + 0.15 * smooth_noise(rng, shape, 48)
    if distractors:
        add_distractors(extra, t1c, seg, head, brain, center, size, ventricles)
        scalp = (head >= 1.0) & (head < 1.06)
        t1c[scalp] = INTENSITY["fat"] * extra.uniform(0.85, 1.1)
        head_mask = head < 1.06
        bias = bias + 0.12 * smooth_noise(extra, shape, 40)  # stronger inhomogeneity
    t1c = ndimage.gaussian_filter(t1c, 0.6) * bias
    t1c += rng.normal(0.0, 4.0, shape).astype(np.float32)
    t1c = np.where(head_mask, np.clip(t1c, 1.0, None), 0.0)
    scale = rng.uniform(5.0, 9.0)  # raw BraTS intensities vary in scale per scanner
    return np.round(t1c * scale).astype(np.int16), seg


def write_case(out_dir, case_id, t1c, seg):
    case_dir = Path(out_dir) / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    for array, suffix in ((t1c, "t1ce"), (seg, "seg")):
        img = nib.Nifti1Image(array, BRATS_AFFINE)
        img.header.set_zooms((1.0, 1.0, 1.0))
        img.header.set_xyzt_units("mm")
        nib.save(img, str(case_dir / f"{case_id}_{suffix}.nii.gz"))


def case_id(index: int) -> str:
    """The id of the `index`-th generated case."""
    return f"Synth_{index:04d}"


def generate(out_dir, num_cases, seed=0, shape=(240, 240, 155), progress=False,
             distractors=True):
    """Write `num_cases` cases named `Synth_XXXX`; returns their ids."""
    ids = []
    cases = range(num_cases)
    if progress:
        from tqdm import tqdm
        cases = tqdm(cases, desc="synthetic cases", unit="case", file=sys.stderr)
    for i in cases:
        name = case_id(i)
        t1c, seg = make_case(np.random.SeedSequence([seed, i]).generate_state(1)[0], shape,
                             distractors)
        write_case(out_dir, name, t1c, seg)
        ids.append(name)
    return ids


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    shape = tuple(int(s) for s in f.shape.split(","))
    ids = generate(f.out_dir, f.num_cases, f.seed, shape, progress=True,
                   distractors=f.distractors)
    print(f"{f.out_dir}: wrote {len(ids)} synthetic cases of shape {shape}")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("out_dir", None, "Output folder (BraTS 2018 layout).")
    flags.DEFINE_integer("num_cases", 10, "Number of cases.")
    flags.DEFINE_integer("seed", 0, "Seed: the same seed gives the same files.")
    flags.DEFINE_string("shape", "240,240,155", "Volume shape X,Y,Z.")
    flags.DEFINE_bool("distractors", True, "Add bright unlabelled look-alikes of the tumor rim.")
    flags.mark_flag_as_required("out_dir")


def cli() -> None:
    """Console entry point `boundary-aware-synthetic`."""
    from boundary_aware.cli import run_absl
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
