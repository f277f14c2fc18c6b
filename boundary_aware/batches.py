"""One batch of prepared slices, as both input pipelines deliver it.

`data_pipeline` (tf.data, through `tf.numpy_function`) and `pydataset`
(keras.utils.PyDataset) both call `assemble_batch`, so with the same seed they
give identical batches, with or without augmentation. numpy/OpenCV only.

Reference: Hatamizadeh et al. 2019, Sec. 2.3 (the edge target s_true is the
boundary of the augmented mask) and Sec. 3.2.
"""

import ctypes
import functools
import os

import cv2
import numpy as np

from boundary_aware.augment import AugmentConfig, augment_slice, sample_params, warp_matrices
from boundary_aware.edge_targets import edge_band


def assemble_batch(images, masks, index, params, edge_width=2, with_edge=True,
                   edge_union=False):
    """Gather rows `index`, augment them with `params`, add the edge target.

    Works slice by slice into preallocated outputs, so that each slice stays
    in cache from the gather to its edge target.

    Args:
        images, masks: the split's (N, H, W, C) images and (N, H, W, R) masks (one per
            tumor region) from `prepared.load_prepared` (float32 and uint8); every channel
            is carried.
        index: (B,) row numbers.
        params: (B, P) augmentation parameters from `augment.sample_params`.
        edge_width: width of the boundary band.
        with_edge: also return the edge target.
        edge_union: one edge target, the boundary of the regions' union, instead of one
            per region (`loss.edge_target`).

    Returns:
        `(image, seg, edge)` float32 arrays: image (B, H, W, C), seg (B, H, W, R) and
        edge (B, H, W, R), or (B, H, W, 1) with `edge_union` (`edge` is None without
        `with_edge`).
    """
    index, params = np.asarray(index), np.asarray(params)
    regions = masks.shape[-1]
    size = images.shape[1:3]
    image = _aligned_empty((len(index),) + images.shape[1:])
    seg = _aligned_empty((len(index),) + size + (regions,))
    edge = _aligned_empty((len(index),) + size + (1 if edge_union else regions,)) \
        if with_edge else None
    # one region (the paper): a 2D mask, as OpenCV takes it fastest
    mask = np.empty(size + ((regions,) if regions > 1 else ()), np.uint8)
    for k, (row, matrix) in enumerate(zip(index, warp_matrices(params, *size))):
        augment_slice(images[row], masks[row] if regions > 1 else masks[row, ..., 0],
                      params[k], matrix, image[k], mask)
        np.copyto(seg[k] if regions > 1 else seg[k, ..., 0], mask, casting="unsafe")
        if not with_edge:
            continue
        if regions == 1:
            edge_band(mask, edge_width, out=edge[k, ..., 0])
        elif edge_union:
            edge_band(mask.max(axis=-1), edge_width, out=edge[k, ..., 0])
        else:
            for r in range(regions):
                edge_band(np.ascontiguousarray(mask[..., r]), edge_width, out=edge[k, ..., r])
    return image, seg, edge


def edge_kind(targets) -> str | None:
    """What edge target the batches need for `targets` ({key: kind}, `losses.compile_losses`):
    None, "edge" (one per region) or "edge_union" (one for the regions' union)."""
    kinds = set(targets.values()) & {"edge", "edge_union"}
    return kinds.pop() if kinds else None


def target_dict(targets, seg, edge):
    """The `y` dict of a batch: for every key of `targets` ({key: "mask" | "edge" |
    "edge_union"}, from `losses.compile_losses`) the mask or its edge band."""
    arrays = {"mask": seg, "edge": edge, "edge_union": edge}
    return {key: arrays[kind] for key, kind in targets.items()}


def plain_batch(images, masks, rows, edge_width, targets):
    """`(x, y)` of rows `rows` without augmentation: the batch that builds a model's training
    state, and the fixed batch of the benchmarks."""
    rows = np.asarray(rows)
    identity = sample_params(len(rows), 0, 0, AugmentConfig(enabled=False), images.shape[-1])
    kind = edge_kind(targets)
    x, seg, edge = assemble_batch(images, masks, rows, identity, edge_width, kind is not None,
                                  kind == "edge_union")
    return x, target_dict(targets, seg, edge)


def _aligned_empty(shape, alignment=64):
    """An uninitialized float32 array whose data starts on a 64-byte boundary:
    TensorFlow takes such arrays from `tf.numpy_function` without a copy."""
    nbytes = int(np.prod(shape)) * 4
    buffer = np.empty(nbytes + alignment, np.uint8)
    start = -buffer.ctypes.data % alignment
    return buffer[start:start + nbytes].view(np.float32).reshape(shape)


@functools.cache
def tune_process():
    """Process settings that make `assemble_batch` fast in a parallel pipeline.

    * OpenCV uses one thread per call: the pipelines already run batches in
      parallel, and OpenCV's own threads only contend with them.
    * glibc keeps freed memory below 32 MiB in the heap (mallopt
      M_MMAP_THRESHOLD) and returns it to the system only beyond 256 MiB
      (M_TRIM_THRESHOLD), instead of mapping and page-faulting fresh memory
      for every batch: on the 2-core reference machine this cut the pipeline's
      CPU time per slice by about a quarter. Skipped where the C library is
      not glibc, or with BOUNDARY_AWARE_MALLOPT=0.

    Called by both input pipelines; runs once per process.
    """
    cv2.setNumThreads(1)
    if os.environ.get("BOUNDARY_AWARE_MALLOPT", "1") == "0":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 256 << 20)
