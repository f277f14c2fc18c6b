"""Dilated spatial pyramid pooling (DeepLab's ASPP).

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.1 and Fig. 1; Chen et al., "Rethinking
Atrous Convolution for Semantic Image Segmentation" (DeepLabv3), 2017.
"""

import keras
from keras import ops

from boundary_aware.layers.normalization import check_groups, check_norm, make_norm


@keras.saving.register_keras_serializable(package="boundary_aware")
class DilatedSpatialPyramidPooling(keras.layers.Layer):
    """Parallel 1x1, dilated 3x3 and image-pooling branches, then a 1x1 projection.

    Branches (each conv followed by norm and ReLU): one 1x1 conv; one 3x3 conv
    per dilation rate; global average pooling, a 1x1 conv and ReLU broadcast
    back to the input's size. They are concatenated and projected by a 1x1
    conv (norm, ReLU) to `filters` channels.

    Args:
        filters: output channels.
        branch_filters: channels of each branch (default: `filters`).
        rates: dilation rates of the 3x3 branches (default (6, 12, 18)).
        norm, groups: normalization, as in `ResidualBlock`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
        >>> dspp = DilatedSpatialPyramidPooling(64)
        >>> y = dspp(ops.zeros((2, 30, 30, 72)))  # (2, 30, 30, 64)

    Reference: Hatamizadeh et al. 2019, Sec. 2.1; Chen et al. 2017 (ASPP).
    """

    def __init__(self, filters, branch_filters=None, rates=(6, 12, 18), norm="batch",
                 groups=8, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.branch_filters = int(branch_filters or filters)
        self.rates = tuple(int(r) for r in rates)
        self.norm = check_norm(norm)
        self.groups = int(groups)
        b = self.branch_filters
        policy = self.dtype_policy  # sublayers follow the block's (mixed) precision
        self.branch_convs = [keras.layers.Conv2D(b, 1, use_bias=False, name="conv_1x1",
                                                 dtype=policy)]
        self.branch_convs += [
            keras.layers.Conv2D(b, 3, padding="same", dilation_rate=r, use_bias=False,
                                name=f"conv_3x3_rate{r}", dtype=policy)
            for r in self.rates]
        self.branch_norms = [make_norm(norm, groups, name=f"norm_{i}", dtype=self.dtype_policy)
                             for i in range(len(self.branch_convs))]
        self.pool_conv = keras.layers.Conv2D(b, 1, name="pool_conv", dtype=self.dtype_policy)
        self.project = keras.layers.Conv2D(self.filters, 1, use_bias=False, name="project",
                                           dtype=self.dtype_policy)
        self.project_norm = make_norm(norm, groups, name="project_norm", dtype=self.dtype_policy)

    def build(self, input_shape):
        check_groups(self.norm, self.groups, self.branch_filters, self.name)
        check_groups(self.norm, self.groups, self.filters, self.name)
        branch_shape = tuple(input_shape[:-1]) + (self.branch_filters,)
        for conv, norm in zip(self.branch_convs, self.branch_norms):
            conv.build(input_shape)
            norm.build(branch_shape)
        self.pool_conv.build((input_shape[0], 1, 1, input_shape[-1]))
        n_branches = len(self.branch_convs) + 1
        self.project.build(tuple(input_shape[:-1]) + (n_branches * self.branch_filters,))
        self.project_norm.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, x, training=None):
        branches = [ops.relu(norm(conv(x), training=training))
                    for conv, norm in zip(self.branch_convs, self.branch_norms)]
        pooled = ops.relu(self.pool_conv(ops.mean(x, axis=(1, 2), keepdims=True)))
        branches.append(ops.broadcast_to(pooled, ops.shape(branches[0])))
        y = self.project(ops.concatenate(branches, axis=-1))
        return ops.relu(self.project_norm(y, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, branch_filters=self.branch_filters,
                      rates=list(self.rates), norm=self.norm, groups=self.groups)
        return config
