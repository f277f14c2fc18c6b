"""Residual block of the main stream and of the shape stream's connections.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.1 ("every resolution level includes two
residual blocks"); block layout after Myronenko [8] / He et al. (2016):
(norm, ReLU, 3x3 conv) twice, plus the identity.
"""

import keras

from boundary_aware.layers.normalization import check_groups, check_norm, make_norm


@keras.saving.register_keras_serializable(package="boundary_aware")
class ResidualBlock(keras.layers.Layer):
    """Pre-activation residual block: `x + conv(relu(norm(conv(relu(norm(x))))))`.

    The identity shortcut needs the input to have `filters` channels (every
    use in the paper's network does); a mismatch is rejected when the block is
    built.

    Args:
        filters: channels of the input and the output.
        kernel_size: spatial size of both convolutions (default 3).
        norm: "batch", "group" or "none".
        groups: groups for `norm="group"`.
        **kwargs: standard `keras.layers.Layer` arguments (name, dtype, ...).

    Example:
        >>> block = ResidualBlock(32)
        >>> y = block(keras.ops.zeros((2, 16, 16, 32)))  # (2, 16, 16, 32)

    Reference: Hatamizadeh et al. 2019, Sec. 2.1; Myronenko 2019 (ref. [8]).
    """

    def __init__(self, filters, kernel_size=3, norm="batch", groups=8, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.norm = check_norm(norm)
        self.groups = int(groups)
        self.norm1 = make_norm(norm, groups, name="norm1", dtype=self.dtype_policy)
        self.conv1 = keras.layers.Conv2D(
            self.filters, self.kernel_size, padding="same", name="conv1", dtype=self.dtype_policy)
        self.norm2 = make_norm(norm, groups, name="norm2", dtype=self.dtype_policy)
        self.conv2 = keras.layers.Conv2D(
            self.filters, self.kernel_size, padding="same", name="conv2", dtype=self.dtype_policy)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels != self.filters:
            raise ValueError(
                f"{self.name}: the identity shortcut needs {self.filters} input "
                f"channels, got input shape {tuple(input_shape)}")
        check_groups(self.norm, self.groups, channels, self.name)
        self.norm1.build(input_shape)
        self.conv1.build(input_shape)
        self.norm2.build(input_shape)
        self.conv2.build(input_shape)

    def call(self, x, training=None):
        y = self.conv1(keras.ops.relu(self.norm1(x, training=training)))
        y = self.conv2(keras.ops.relu(self.norm2(y, training=training)))
        return x + y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      norm=self.norm, groups=self.groups)
        return config
