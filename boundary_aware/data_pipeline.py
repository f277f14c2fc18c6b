"""tf.data input pipeline over prepared slices, and the TensorFlow side of
training (distribution strategy, op determinism). This module imports
TensorFlow (with the exporter, the only ones that do).

Per epoch: the order `data.epoch_order(n, seed, epoch)` and the augmentation
parameters `augment.sample_params(...)` are drawn in numpy (so the PyDataset
twin in `boundary_aware.pydataset` draws the very same), then batched,
gathered, warped (flips, rotation, scaling: one projective-transform op per
batch), intensity-jittered, and the edge target is computed from the
augmented mask; batches are prefetched. Yields
`(image, {"seg": mask, "edge": edge})`, all float32 (B, H, W, 1).

Reference: Hatamizadeh et al. 2019, Sec. 2.3 (edge target) and 3.2.
"""

import numpy as np
import tensorflow as tf

from boundary_aware.augment import AugmentConfig, inverse_affine, sample_params
from boundary_aware.data import epoch_order


def _box_count(m, radius, outside):
    """Sum of uint8 `m` over (2r+1) x (2r+1) windows, `outside` counted beyond the border.

    Separable shifted sums on uint8: several times faster on CPU than
    tf.nn.max_pool2d or a conv for one channel. Needs (2r+1)^2 <= 255.
    """
    pad = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
    p = tf.pad(m, pad, constant_values=outside)
    n = 2 * radius + 1
    h = m.shape[1] if m.shape[1] is not None else tf.shape(m)[1]
    w = m.shape[2] if m.shape[2] is not None else tf.shape(m)[2]
    rows = tf.add_n([p[:, i:i + h] for i in range(n)])
    return tf.add_n([rows[:, :, i:i + w] for i in range(n)])


def edge_target_tf(masks, width=2):
    """TensorFlow twin of `losses.edge_target` (for use inside tf.data)."""
    if not 1 <= width <= 14:
        raise ValueError(f"edge width must be in [1, 14] here, got {width}")
    m = tf.cast(tf.cast(masks, tf.float32) > 0.5, tf.uint8)
    outer, inner = width // 2, width - width // 2
    dilated = m > 0 if outer == 0 else _box_count(m, outer, 0) > 0
    eroded = _box_count(m, inner, 1) == (2 * inner + 1) ** 2
    return tf.cast(dilated & ~eroded, tf.float32)


def _projective_transforms(params, height, width):
    """tf's 8-number transforms (output (x, y) -> input) from the (row, col) affines."""
    maps = inverse_affine(params, height, width)
    a, b = maps[:, :, :2], maps[:, :, 2]
    zeros = np.zeros(len(params))
    return np.stack([a[:, 1, 1], a[:, 1, 0], b[:, 1], a[:, 0, 1], a[:, 0, 0], b[:, 0],
                     zeros, zeros], axis=-1).astype(np.float32)


def _warp(images, transforms, interpolation):
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation=interpolation, fill_mode="CONSTANT")
    return tf.ensure_shape(warped, images.shape)


def make_dataset(images, masks, batch_size, seed=0, shuffle=True, augment=None, edge_width=2,
                 drop_remainder=False, initial_epoch=0, with_edge=True):
    """A `tf.data.Dataset` of one epoch; every new iteration is the next epoch.

    Arguments as `pydataset.SliceDataset`.
    """
    augment = augment or AugmentConfig(enabled=False)
    n, height, width, _ = images.shape
    epoch = [int(initial_epoch)]

    def epoch_plan():
        e = epoch[0]
        epoch[0] += 1
        order = epoch_order(n, seed, e) if shuffle else np.arange(n)
        params = sample_params(n, seed, e, augment)
        yield (order.astype(np.int64), params,
               _projective_transforms(params, height, width))

    plan = tf.data.Dataset.from_generator(epoch_plan, output_signature=(
        tf.TensorSpec((n,), tf.int64), tf.TensorSpec((n, 6), tf.float32),
        tf.TensorSpec((n, 8), tf.float32)))
    all_images = tf.constant(images, tf.float32)
    all_masks = tf.constant(masks)

    def make_batch(index, params, transforms):
        image = tf.gather(all_images, index)
        mask = tf.cast(tf.gather(all_masks, index), tf.float32)
        if augment.enabled:
            # one warp for both: image and mask stacked as two channels
            warped = _warp(tf.concat([image, mask], axis=-1), transforms, "BILINEAR")
            image, mask = warped[..., :1], tf.cast(warped[..., 1:] > 0.5, tf.float32)
            scale = tf.reshape(params[:, 4], (-1, 1, 1, 1))
            shift = tf.reshape(params[:, 5], (-1, 1, 1, 1))
            image = tf.where(image > 0, tf.clip_by_value(image * scale + shift, 0.0, 1.0), 0.0)
        if not with_edge:
            return image, {"seg": mask}
        return image, {"seg": mask, "edge": edge_target_tf(mask, edge_width)}

    batches = plan.flat_map(lambda i, p, t: tf.data.Dataset.from_tensor_slices((i, p, t)))
    batches = batches.batch(batch_size, drop_remainder=drop_remainder)
    batches = batches.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    count = n // batch_size if drop_remainder else -(-n // batch_size)
    batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    return batches.prefetch(tf.data.AUTOTUNE)


def distribution_strategy():
    """The default strategy on one device; MirroredStrategy when several GPUs are visible."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def enable_determinism():
    """TensorFlow op determinism: the same command twice gives the same numbers on CPU."""
    tf.config.experimental.enable_op_determinism()
