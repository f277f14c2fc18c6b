"""The edge target of Eq. 5, computed with OpenCV for the input pipelines.

The boundary band of a mask: its morphological gradient, a band `width`
pixels wide across the contour, computed from the augmented mask on the fly.
The image border is not an edge. `boundary_aware.losses.edge_target` is the
same band in `keras.ops`.

Reference: Hatamizadeh et al. 2019, Eq. 5; docs/design.md ("Losses").
"""

from __future__ import annotations

import cv2
import numpy as np


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
