"""Intensity normalization and resizing: how every slice is made ready for a model.

Each sequence of a volume is normalized on its own, per volume: clipped to the
0.5 and 99.5 percentiles of its brain (non-zero) voxels and scaled to [0, 1],
with the background kept at 0. Shared by data preparation, training and
prediction, so a volume is normalized the same way everywhere.

Reference: Hatamizadeh et al. 2019, Sec. 3.1; docs/design.md ("Data protocol").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CLIP_PERCENTILES = (0.5, 99.5)


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


def normalized_slices(volume: np.ndarray, size: int, indices=None):
    """The model's input for the axial slices `indices` (None: every one) of an
    (X, Y, Z, C) volume: each channel normalized on its own over the whole volume,
    resized to `size`, clipped to [0, 1]. Returns ((Z', size, size, C) float32,
    [(lo, hi) per channel])."""
    normalized, ranges = normalize_channels(volume, indices)
    slices = np.stack([resize_slices(np.moveaxis(normalized[..., c], 2, 0), size, order=1)
                       for c in range(normalized.shape[-1])], axis=-1)
    return np.clip(slices, 0, 1).astype(np.float32), ranges


def model_slices(volume: np.ndarray, size: int, indices=None) -> np.ndarray:
    """`normalized_slices` without the ranges: what a model takes, (Z', size, size, C)."""
    return normalized_slices(volume, size, indices)[0]
