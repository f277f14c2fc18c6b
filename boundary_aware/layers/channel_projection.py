"""A 1x1 convolution to one channel, computed as a weighted sum over channels.

The network's one-channel 1x1 convolutions (the probability heads, the shape
stream's side outputs, the attention gate of Eq. 1) do 2 x C FLOPs per pixel
on a map of C channels: as convolutions they are memory-bound library calls
whose output, bias and activation each cost another pass over memory, and
the attention gate first writes the concatenation `s || m` out. As a
weighted channel sum they are element-wise work that XLA fuses with what
follows (bias, sigmoid, the gate's product) into one pass, and `s || m` is
never built. The weights are those of the `Conv2D` it replaces (same
variables, names and shapes), so models saved before load unchanged; the
sum runs in float32 under mixed precision (a convolution accumulates in
float32 too), so outputs agree within float rounding.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.1-2.2 (the 1x1 convolutions of Fig. 1 and Eq. 1).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="boundary_aware")
class ChannelProjection(keras.layers.Conv2D):
    """`Conv2D(1, 1)` as `sum_c x[..., c] * w[c] + b`, on one map or on several.

    Called on a list of maps `[a, b, ...]` it gives what `Conv2D(1, 1)` gives on
    their concatenation along the channels, without building it.

    Args:
        use_bias, kernel_initializer, ...: as `keras.layers.Conv2D`; the filter
            count and kernel size are 1.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
        >>> head = ChannelProjection(name="seg_projection")
        >>> logits = head(ops.ones((2, 16, 16, 32)))  # (2, 16, 16, 1)

    Reference: Hatamizadeh et al. 2019, Fig. 1 and Eq. 1.
    """

    def __init__(self, **kwargs):
        for key in ("filters", "kernel_size"):  # present in a saved config; fixed to 1
            value = kwargs.pop(key, 1)
            if value not in (1, (1, 1), [1, 1]):
                raise ValueError(f"ChannelProjection: {key} is 1, got {value!r}")
        super().__init__(filters=1, kernel_size=1, **kwargs)
        self.input_spec = None  # one map or a list of maps


    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        super().build(tuple(shapes[0][:-1]) + (sum(s[-1] for s in shapes),))
        self.input_spec = None

    def call(self, inputs):
        maps = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        kernel = ops.cast(ops.reshape(self.kernel, (-1,)), "float32")
        total, start = None, 0
        for x in maps:
            channels = x.shape[-1]
            weights = kernel[start:start + channels]
            start += channels
            part = ops.sum(ops.cast(x, "float32") * weights, axis=-1, keepdims=True)
            total = part if total is None else total + part
        if self.use_bias:
            total = total + ops.cast(self.bias, "float32")
        return ops.cast(total, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(self._shapes(input_shape)[0][:-1]) + (1,)

    @staticmethod
    def _shapes(input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
                input_shape[0], (list, tuple)):
            return [tuple(s) for s in input_shape]
        return [tuple(input_shape)]
