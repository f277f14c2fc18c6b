"""Bilinear resize of one feature map to the spatial size of another.

Used by the shape stream (main-stream maps up to full resolution, the edge map
to the input size) and by the fusion (shape-stream output down to the encoder
output's size). Identity when the sizes already agree.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.1 ("resized to the original image size").
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="boundary_aware")
class ResizeLike(keras.layers.Layer):
    """Called on `[x, reference]`: resize `x` to `reference`'s height and width.

    Args:
        interpolation: "bilinear" (default) or any mode of `keras.ops.image.resize`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
        >>> y = ResizeLike()([ops.zeros((1, 4, 4, 3)), ops.zeros((1, 16, 16, 1))])
    """

    def __init__(self, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.interpolation = interpolation

    def call(self, inputs):
        x, reference = inputs
        size = tuple(x.shape[1:3])
        target = tuple(reference.shape[1:3])
        if None not in size and size == target:
            return x
        if None in target:
            target = ops.shape(reference)[1:3]
        y = ops.image.resize(x, target, interpolation=self.interpolation)
        return ops.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation)
        return config
