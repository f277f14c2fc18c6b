"""Resize of one feature map to the spatial size of another.

Used by the shape stream (main-stream maps up to full resolution, the edge map
to the input size) and by the fusion (shape-stream output down to the encoder
output's size). Identity when the sizes already agree. Bilinear by default;
"area" averages each block of input pixels (an integer reduction factor per
axis): the anti-aliased reduction of the fusion, which keeps every pixel of a
thin boundary, whereas bilinear 8x downsizing samples about 6% of them.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.1 ("resized to the original image size").
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="boundary_aware")
class ResizeLike(keras.layers.Layer):
    """Called on `[x, reference]`: resize `x` to `reference`'s height and width.

    Args:
        interpolation: "bilinear" (default), "area" (block average; integer
            reduction factors only) or any mode of `keras.ops.image.resize`.
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
        if self.interpolation == "area":
            factors = self._area_factors(size, target)
            return ops.average_pool(x, factors, strides=factors, padding="valid")
        if None in target:
            target = ops.shape(reference)[1:3]
        # resize in float32 and cast back explicitly: TensorFlow's resize returns float32
        # for float16 input, and XLA rejects the implicit mix in the gradient
        y = ops.image.resize(ops.cast(x, "float32"), target, interpolation=self.interpolation)
        return ops.cast(y, x.dtype)

    def _area_factors(self, size, target):
        if None in size or None in target or any(s % t for s, t in zip(size, target)):
            raise ValueError(f"{self.name}: area resize needs static sizes that are integer "
                             f"multiples of the target, got {size} -> {target}")
        return tuple(s // t for s, t in zip(size, target))

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation)
        return config
