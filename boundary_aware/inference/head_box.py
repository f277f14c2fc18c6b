"""The forward pass run on the box around the head alone (`--crop=head`).

A skull-stripped volume is 0 outside the head, and the head fills about half
of a BraTS slice. One box per volume holds every slice's head plus a margin,
its ends rounded out to the model's size divisor, and the model runs on the
box only; every probability outside it is 0, as outside the head. Faster,
and not the whole slice's result for a model that pools over the whole slice
(Ours' DSPP image pooling), so it is off by default.

Reference: docs/performance.md ("The head's box").
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from boundary_aware.inference.predictor import SliceFunction

# What is kept around the head on each side under --crop=head, as a share of the slice's
# side (slices are the whole field of view at the model's size, so the same share at
# any size), before the box's ends are rounded out to the model's size divisor; chosen
# by Dice on development phantoms among 1/32, 1/16 and 1/8 (docs/performance.md, "The
# head's box")
HEAD_BOX_MARGIN = 1 / 32


def head_box(images: np.ndarray, divisor: int, margin: float = HEAD_BOX_MARGIN):
    """The rows and columns of (N, H, W, C) slices that hold all their non-zero pixels,
    `margin` x max(H, W) pixels (rounded up) wider on each side and their ends rounded
    out to multiples of `divisor` (H and W are): ((r0, r1), (c0, c1)), or None where
    that is the whole slice or no pixel is non-zero."""
    spans = []
    margin = int(np.ceil(margin * max(images.shape[1:3])))
    for axis, n in ((1, images.shape[1]), (2, images.shape[2])):
        other = tuple(a for a in range(images.ndim) if a != axis)
        held = np.flatnonzero(np.any(images != 0, axis=other))
        if held.size == 0:
            return None
        start = max(0, held[0] - margin) // divisor * divisor
        stop = min(n, -(-(held[-1] + 1 + margin) // divisor) * divisor)
        spans.append((int(start), int(stop)))
    if spans == [(0, images.shape[1]), (0, images.shape[2])]:
        return None
    return tuple(spans)


def in_head_box(pass_at: Callable[[tuple[int, int]], SliceFunction], divisor: int,
                margin: float = HEAD_BOX_MARGIN) -> SliceFunction:
    """A forward pass over slices that runs the model only on the box of them that holds
    every non-zero pixel (`head_box`: one box for every slice of a call, which
    `volume.segment_volume` makes one volume); every probability outside it is 0, as
    outside the head. `pass_at((h, w))`: the forward pass for slices of that size
    (`rebuild.rebuilt_passes`)."""
    def predict(images):
        box = head_box(images, divisor, margin)
        if box is None:
            return pass_at(images.shape[1:3])(images)
        (r0, r1), (c0, c1) = box
        inside = pass_at((r1 - r0, c1 - c0))(images[:, r0:r1, c0:c1])
        result = {}
        for name, value in inside.items():
            full = np.zeros(images.shape[:3] + value.shape[3:], value.dtype)
            full[:, r0:r1, c0:c1] = value
            result[name] = full
        return result
    return predict
