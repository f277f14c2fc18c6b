"""The attention layer of the shape stream (Eq. 1-2).

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.2; gating after Takikawa et al.,
"Gated-SCNN", ICCV 2019 (ref. [10]).
"""

import keras
from keras import ops

from boundary_aware.layers.channel_projection import ChannelProjection


@keras.saving.register_keras_serializable(package="boundary_aware")
class AttentionLayer(keras.layers.Layer):
    """`alpha = sigmoid(C1x1(s || m))`, `o = s * alpha` (Eq. 1-2).

    Called on `[s, m]`: `s` is the shape-stream input (B, H, W, C) and `m` the
    main-stream input at the same resolution (B, H, W, Cm). `alpha` is a
    one-channel attention map broadcast over the channels of `s`.

    Args:
        residual_gate: if True, use Gated-SCNN's `o = s * (alpha + 1)` instead
            of the paper's plain product (off by default).
        return_attention: if True, `call` returns `(o, alpha)` (for Figure 2
            style inspection); the models use the default, `o` only.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
        >>> layer = AttentionLayer()
        >>> o = layer([ops.ones((1, 8, 8, 32)), ops.ones((1, 8, 8, 1))])

    Reference: Hatamizadeh et al. 2019, Eq. 1-2.
    """

    def __init__(self, residual_gate=False, return_attention=False, **kwargs):
        super().__init__(**kwargs)
        self.residual_gate = bool(residual_gate)
        self.return_attention = bool(return_attention)
        # the 1x1 convolution of Eq. 1 on s || m, without building s || m
        self.gate_conv = ChannelProjection(name="gate_conv", dtype=self.dtype_policy)

    def build(self, input_shape):
        s_shape, m_shape = input_shape
        if tuple(s_shape[1:3]) != tuple(m_shape[1:3]):
            raise ValueError(
                f"{self.name}: s and m must share their spatial size, got "
                f"{tuple(s_shape)} and {tuple(m_shape)}")
        self.gate_conv.build([tuple(s_shape), tuple(m_shape)])

    def call(self, inputs):
        s, m = inputs
        alpha = ops.sigmoid(self.gate_conv([s, m]))  # Eq. 1: C1x1(s || m)
        o = s * (alpha + 1.0) if self.residual_gate else s * alpha  # Eq. 2
        if self.return_attention:
            return o, alpha
        return o

    def compute_output_shape(self, input_shape):
        s_shape = tuple(input_shape[0])
        if self.return_attention:
            return s_shape, s_shape[:-1] + (1,)
        return s_shape

    def get_config(self):
        config = super().get_config()
        config.update(residual_gate=self.residual_gate,
                      return_attention=self.return_attention)
        return config
