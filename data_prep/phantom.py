"""The synthetic phantom: a BraTS-like head, tumor and look-alikes, drawn from a seed.

The T1c looks like a head: a skull and background, grey and white matter, CSF
around the brain, two ventricles, and a tumor with a dark necrotic core
(label 1), a bright enhancing rim (the convention's enhancing label) and
hypointense edema (label 2), irregular and different in every case; a smooth
bias field and noise on top. Every voxel's tissue is recorded, and each other
sequence is rendered from it with its own contrasts (`CONTRASTS`). The
look-alikes of the tumor (distractors) and the other sequences come from
random streams of their own, so a seed gives the same anatomy and T1c with
or without them. `data_prep.synthetic` writes the cases as NIfTI files; the
module docstring there describes the phantom in full.

Reference: docs/data.md ("Synthetic data").
"""

import numpy as np
from scipy import ndimage

from boundary_aware.channels import PAPER_SEQUENCES, parse_sequences
from boundary_aware.regions import CONVENTIONS

# the label conventions a phantom is drawn in, and the file layout each is written in
CONVENTION_LAYOUT = {"brats2018": "brats2018", "brats2023": "brats2023", "brats2024": "brats2023"}
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


def make_sequences(seed, shape=(240, 240, 155), distractors=True, sequences=PAPER_SEQUENCES,
                   convention="brats2018"):
    """One synthetic case with the sequences `sequences`: ({sequence: int16 volume},
    seg uint8 in `convention`'s labels). Its T1c is `make_case`'s, unless the convention
    carves a resection cavity (brats2024)."""
    sequences = parse_sequences(sequences)
    if convention not in CONVENTION_LAYOUT:
        raise ValueError(f"convention must be one of {sorted(CONVENTION_LAYOUT)}, "
                         f"got {convention!r}")
    own = np.random.default_rng([int(seed), 2])  # the other sequences' stream
    t1c, seg, tissue, head_mask = _phantom(seed, shape, distractors,
                                           cavity_rng=own if convention == "brats2024" else None)
    if set(sequences) - {"t1c"}:
        wmh = (tissue == TISSUES.index("wm")) & (smooth_noise(own, seg.shape, 5) > 2.0)
        tissue[wmh] = TISSUES.index("wmh")  # unlabelled, seen on T2 and FLAIR only
    volumes = {m: t1c if m == "t1c" else render(tissue, CONTRASTS[m], head_mask, own)
               for m in sequences}
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
