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
from boundary_aware.data import edge_band


def assemble_batch(images, masks, index, params, edge_width=2, with_edge=True):
    """Gather rows `index`, augment them with `params`, add the edge target.

    Works slice by slice into preallocated outputs, so that each slice stays
    in cache from the gather to its edge target.

    Args:
        images, masks: the split's (N, H, W, C) images and (N, H, W, 1) masks from
            `data.load_prepared` (float32 and uint8); every channel is carried.
        index: (B,) row numbers.
        params: (B, P) augmentation parameters from `augment.sample_params`.
        edge_width: width of the boundary band.
        with_edge: also return the edge target.

    Returns:
        `(image, seg, edge)` float32 arrays: image (B, H, W, C), seg and edge
        (B, H, W, 1) (`edge` is None without `with_edge`).
    """
    index, params = np.asarray(index), np.asarray(params)
    shape = (len(index),) + images.shape[1:3] + (1,)
    image = _aligned_empty((len(index),) + images.shape[1:])
    seg = _aligned_empty(shape)
    edge = _aligned_empty(shape) if with_edge else None
    mask = np.empty(shape[1:3], np.uint8)
    for k, (row, matrix) in enumerate(zip(index, warp_matrices(params, *shape[1:3]))):
        augment_slice(images[row], masks[row, ..., 0], params[k], matrix, image[k], mask)
        np.copyto(seg[k, ..., 0], mask, casting="unsafe")
        if with_edge:
            edge_band(mask, edge_width, out=edge[k, ..., 0])
    return image, seg, edge


def target_dict(targets, seg, edge):
    """The `y` dict of a batch: for every key of `targets` ({key: "mask" | "edge"}, from
    `losses.compile_losses`) the mask or its edge band."""
    arrays = {"mask": seg, "edge": edge}
    return {key: arrays[kind] for key, kind in targets.items()}


def plain_batch(images, masks, rows, edge_width, targets):
    """`(x, y)` of rows `rows` without augmentation: the batch that builds a model's training
    state, and the fixed batch of the benchmarks."""
    rows = np.asarray(rows)
    identity = sample_params(len(rows), 0, 0, AugmentConfig(enabled=False), images.shape[-1])
    x, seg, edge = assemble_batch(images, masks, rows, identity, edge_width,
                                  "edge" in targets.values())
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
