"""tf.data input pipeline over prepared slices. This module imports TensorFlow
(with the exporter and `boundary_aware.runtime`, the only ones that do).

Per epoch: the order `epochs.epoch_order(n, seed, epoch)` and the augmentation
parameters `augment.sample_params(...)` are drawn in numpy (so the PyDataset
twin in `boundary_aware.pydataset` draws the very same), then batched; each
batch is gathered, warped, intensity-jittered and given its edge target by
`batches.assemble_batch` (numpy/OpenCV, which releases the GIL while it
warps) in parallel `tf.numpy_function` calls, in order; batches are
prefetched. Yields `(image, y)`: the image (B, H, W, C) and, under each key of
`targets`, the mask or its edge band (B, H, W, 1), all float32.

Reference: Hatamizadeh et al. 2019, Sec. 2.3 (edge target) and 3.2.
"""

import os

import numpy as np
import tensorflow as tf

from boundary_aware.augment import AugmentConfig, param_count, sample_params
from boundary_aware.batches import assemble_batch, edge_kind, target_dict, tune_process
from boundary_aware.epochs import EpochClock, epoch_order, num_batches, shard_positions


def make_dataset(images, masks, batch_size, targets, seed=0, shuffle=True, augment=None,
                 edge_width=2, drop_remainder=False, initial_epoch=0, sequences=None,
                 shard=(0, 1), clock: EpochClock | None = None):
    """A `tf.data.Dataset` of one epoch; every new iteration is the next epoch, or, with
    a `clock` among `fit`'s callbacks, the epoch it tells (`initial_epoch` is then
    the clock's).

    Arguments as `pydataset.SliceDataset`.
    """
    augment = augment or AugmentConfig(enabled=False)
    targets = dict(targets)
    kind = edge_kind(targets)
    with_edge, union = kind is not None, kind == "edge_union"
    n, height, width, channels = images.shape
    draws = int(sequences or channels)  # intensity changes per sample
    regions = masks.shape[-1]
    positions = shard_positions(n, batch_size, shard)
    batch_size //= shard[1]
    rows = len(positions)
    tune_process()
    epoch = [int(initial_epoch)]

    def next_epoch_plan():
        if clock is not None:
            e = clock.epoch
        else:
            e = epoch[0]
            epoch[0] += 1
        order = epoch_order(n, seed, e) if shuffle else np.arange(n)
        params = sample_params(n, seed, e, augment, draws)
        return order[positions].astype(np.int64), params[positions]

    # Called once per new iterator, i.e. per epoch. (A numpy_function here:
    # Dataset.from_generator doubled the pipeline's CPU time.)
    plan = tf.data.Dataset.from_tensors(0).map(lambda _: tuple(tf.numpy_function(
        next_epoch_plan, [], [tf.int64, tf.float32], stateful=True)))

    def batch_arrays(index, params):
        image, seg, edge = assemble_batch(images, masks, index, params, edge_width, with_edge,
                                          union)
        return (image, seg, edge) if with_edge else (image, seg)

    def make_batch(index, params):
        outputs = tf.numpy_function(batch_arrays, [index, params],
                                    [tf.float32] * (3 if with_edge else 2), stateful=False)
        batch = None if not drop_remainder else batch_size
        image = tf.ensure_shape(outputs[0], (batch, height, width, channels))
        seg = tf.ensure_shape(outputs[1], (batch, height, width, regions))
        edge = [tf.ensure_shape(t, (batch, height, width, 1 if union else regions))
                for t in outputs[2:]]
        return image, target_dict(targets, seg, edge[0] if edge else None)

    batches = plan.flat_map(lambda i, p: tf.data.Dataset.from_tensor_slices(
        (tf.ensure_shape(i, (rows,)), tf.ensure_shape(p, (rows, param_count(draws))))))
    batches = batches.batch(batch_size, drop_remainder=drop_remainder)
    batches = batches.map(make_batch, num_parallel_calls=_cores(), deterministic=True)
    count = num_batches(rows, batch_size, drop_remainder)
    batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    # Fixed parallelism, no autotuning: with tf.data's autotuner on, Keras's
    # new iterator at each epoch start stalled for 5-20 s on 2 CPU cores.
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(2).with_options(options)


def _cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
