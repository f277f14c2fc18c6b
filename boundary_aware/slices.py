"""Which axial slices a case gives to training: tumor slices, and tumor-free ones.

The paper trains on the axial slices that hold the tumor core (Sec. 3.1): at
most a number per case, nearest the slice of largest area. Beyond the paper,
training can add head slices without tumor (`data.tumor_free_fraction`), so
that the model sees what most slices of a whole volume look like.

Reference: Hatamizadeh et al. 2019, Sec. 3.1; docs/design.md ("Data protocol",
"Whole volumes").
"""

from __future__ import annotations

import numpy as np

from boundary_aware.errors import DataError


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


def tumor_free_per_case(slices_per_case):
    """Tumor-free slices kept per case: half the tumor slices (rounded up), enough for a
    `data.tumor_free_fraction` up to 1/3."""
    return -(-slices_per_case // 2)


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
