"""The boundary-aware network: residual main stream, shape stream, DSPP.

Reference: Hatamizadeh, Terzopoulos, Myronenko, "End-to-End Boundary Aware
Networks for Medical Image Segmentation", MLMI 2019, Sec. 2.1-2.2 and Fig. 1.
Our reading of the places the paper leaves open is docs/design.md, "Architecture".
"""

import keras

from boundary_aware.layers import (AttentionLayer, ChannelProjection,
                                   DilatedSpatialPyramidPooling, ResidualBlock, ResizeLike)
from boundary_aware.models.common import check_input_shape, probability_head

LEVELS = 4  # resolutions 1, 1/2, 1/4, 1/8
FUSIONS = ("area", "bilinear")


def boundary_aware_net(input_shape=(240, 240, 1), base_filters=32, shape_filters=32,
                       dspp_rates=(6, 12, 18), norm="batch", groups=8,
                       residual_gate=False, fusion="area", name="boundary_aware_net"):
    """Build the boundary-aware network; outputs `{"seg": ..., "edge": ...}`.

    Args:
        input_shape: (H, W, 1), H and W divisible by 8.
        base_filters: F; the encoder levels have F, 2F, 4F, 8F channels.
        shape_filters: channels of the shape stream's first map s0 (halved after
            attention layers 1 and 2: 32 -> 16 -> 8).
        dspp_rates: dilation rates of DSPP's 3x3 branches.
        norm, groups: normalization of every block ("batch", "group", "none").
        residual_gate: Gated-SCNN's `s * (alpha + 1)` instead of Eq. 2's product.
        fusion: how the shape stream is reduced to the encoder output's size
            before the concatenation: "area" (the mean of each 8 x 8 block, so
            every boundary pixel reaches DSPP; the default) or "bilinear" (the
            models before this option, which sample ~6% of the pixels).
        name: model name.

    Returns:
        A functional `keras.Model` whose outputs are float32 probabilities:
        `seg`, the tumor-core map, and `edge`, the boundary map, both (B, H, W, 1).

    Reference: Hatamizadeh et al. 2019, Sec. 2.1-2.2.
    """
    input_shape = check_input_shape(input_shape, 2 ** (LEVELS - 1), name)
    if fusion not in FUSIONS:
        raise ValueError(f"{name}: fusion must be one of {FUSIONS}, got {fusion!r}")
    if shape_filters % 4:
        raise ValueError(f"{name}: shape_filters must be divisible by 4, got {shape_filters}")
    f = base_filters
    block = dict(norm=norm, groups=groups)
    inputs = keras.Input(input_shape, name="image")

    # Main stream, encoder: "every resolution level includes two residual blocks".
    x = keras.layers.Conv2D(f, 3, padding="same", name="stem")(inputs)
    encoder = []
    for level in range(LEVELS):
        width = f * 2 ** level
        if level:
            x = keras.layers.Conv2D(width, 3, strides=2, padding="same",
                                    name=f"down{level + 1}")(x)
        x = ResidualBlock(width, **block, name=f"enc{level + 1}_block1")(x)
        x = ResidualBlock(width, **block, name=f"enc{level + 1}_block2")(x)
        encoder.append(x)

    # Shape stream at full resolution: "A 1x1 convolution is applied to each
    # input to the shape stream and the result is fed into an attention layer".
    s = keras.layers.Conv2D(shape_filters, 1, name="shape_in")(encoder[0])
    channels = shape_filters
    for k in (1, 2, 3):
        m = ChannelProjection(name=f"shape_side{k}")(encoder[k])
        m = ResizeLike(name=f"shape_side{k}_resize")([m, s])
        s = AttentionLayer(residual_gate=residual_gate, name=f"attention{k}")([s, m])
        if k < 3:
            # "The outputs of the first two attention layers are fed into
            # connection residual blocks."
            s = ResidualBlock(channels, **block, name=f"connection{k}")(s)
            channels //= 2
            s = keras.layers.Conv2D(channels, 1, name=f"shape_reduce{k}")(s)
    # "the output of the shape stream that is resized to the original image size"
    edge_logits = ChannelProjection(name="edge_logits")(s)
    edge_logits = ResizeLike(name="edge_resize")([edge_logits, inputs])
    edge = keras.layers.Activation("sigmoid", dtype="float32", name="edge")(edge_logits)

    # Fusion: "The output of the last attention layer is concatenated with the
    # output of the encoder in the main stream and fed into a dilated spatial
    # pyramid pooling layer."
    fused = ResizeLike(interpolation=fusion, name="fusion_resize")([s, encoder[-1]])
    x = keras.layers.Concatenate(name="fusion")([encoder[-1], fused])
    x = DilatedSpatialPyramidPooling(f * 2 ** (LEVELS - 1), rates=dspp_rates, **block,
                                     name="dspp")(x)

    # Main stream, decoder: up-step, add the same-resolution skip, one block.
    for level in range(LEVELS - 2, -1, -1):
        width = f * 2 ** level
        x = keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level + 1}")(x)
        x = keras.layers.Add(name=f"skip{level + 1}")([x, encoder[level]])
        x = ResidualBlock(width, **block, name=f"dec{level + 1}_block")(x)
    seg = probability_head(x, "seg")
    return keras.Model(inputs, {"seg": seg, "edge": edge}, name=name)
