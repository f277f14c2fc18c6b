"""Normalization factory shared by every block.

`norm="batch"` (default) is batch normalization with momentum 0.9 (Keras's,
with its statistics in one pass: `BatchNormalization`); `"group"` is
GroupNormalization (Wu & He, 2018; used by Myronenko [8] for batch-size-1 3D
training); `"none"` is the identity. The choice is a model argument so the
three model families can be compared with the same normalization.

Reference: Ioffe & Szegedy, "Batch Normalization", ICML 2015;
Wu & He, "Group Normalization", ECCV 2018.
"""

import keras
from keras import ops

from boundary_aware import runtime

NORMS = ("batch", "group", "none")


@keras.saving.register_keras_serializable(package="boundary_aware")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's batch normalization, with the batch statistics in one pass over the input.

    Keras computes the batch variance as `mean((x - mean(x))**2)`: two passes
    over every normalized map, which at full resolution is memory traffic
    the convolutions wait on. Here both moments come from one pass,
    `var = mean((x - K)**2) - mean(x - K)**2` with the shift `K` the moving
    mean (no gradient flows through it): the same quantity, and close to the
    batch mean after the first steps, so the subtraction loses no precision.
    Same weights and configuration as `keras.layers.BatchNormalization`; the
    training step moves about 15% fewer bytes per residual block
    (`make roofline`, docs/performance.md).

    Under a TensorFlow strategy with several replicas the sums and counts are
    added across replicas (`runtime.sum_over_replicas`): every replica
    normalizes with the statistics of the whole batch, as one device does
    (docs/design.md, "Beyond one machine").
    """

    def _moments(self, inputs, mask):
        if mask is not None or self.synchronized:
            return super()._moments(inputs, mask)
        shift = ops.stop_gradient(ops.cast(self.moving_mean, inputs.dtype))
        centred = inputs - shift
        if runtime.replicas() > 1:
            mean, variance = _global_moments(centred, self._reduction_axes)
        else:
            mean = ops.mean(centred, axis=self._reduction_axes)
            variance = ops.mean(ops.square(centred), axis=self._reduction_axes) - ops.square(mean)
        return mean + shift, ops.maximum(variance, 0.0)


def _global_moments(centred, axes):
    """Mean and variance of `centred` over `axes` and over every replica's part of the
    batch: every replica normalizes with, and the moving statistics follow, the
    statistics of the whole batch, as on one device."""
    mean, mean_square = replica_means([centred, ops.square(centred)], axes)
    return mean, mean_square - ops.square(mean)


def replica_means(values, axes=None):
    """`ops.mean` of each of `values` (all of one shape) over `axes` (None: every axis) and
    over every replica's part of the batch, where a TensorFlow strategy's replicas each
    hold a part: the sums and the count are added across replicas
    (`runtime.sum_over_replicas`). Batch normalization and the loss terms use it."""
    shape = ops.shape(values[0])
    count = 1
    for axis in range(len(shape)) if axes is None else axes:
        count = count * shape[axis]
    *sums, count = runtime.sum_over_replicas(*[ops.sum(v, axis=axes) for v in values],
                                             ops.cast(count, values[0].dtype))
    return [total / count for total in sums]


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def make_norm(norm, groups=8, name=None, dtype=None):
    """Return a normalization layer for channels-last feature maps.

    `dtype`: the owning layer's dtype policy, so that a sublayer follows it
    (also when a mixed-precision model is loaded under another global policy).
    """
    check_norm(norm)
    if norm == "batch":
        # momentum 0.9 (PyTorch's default): with Keras's 0.99 the moving statistics
        # of a short run still carry the initial (0, 1) and inference is off.
        return BatchNormalization(momentum=0.9, name=name, dtype=dtype)
    if norm == "group":
        return keras.layers.GroupNormalization(groups=groups, name=name, dtype=dtype)
    return keras.layers.Identity(name=name, dtype=dtype)


def check_groups(norm, groups, channels, layer_name):
    """GroupNormalization needs `channels % groups == 0`: fail early and clearly."""
    if norm == "group" and channels % groups:
        raise ValueError(
            f"{layer_name}: group normalization with groups={groups} needs a channel "
            f"count divisible by {groups}, got {channels} channels")
