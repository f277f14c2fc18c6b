"""The boundary-aware network: residual main stream, shape stream, DSPP.

Reference: Hatamizadeh, Terzopoulos, Myronenko, "End-to-End Boundary Aware
Networks for Medical Image Segmentation", MLMI 2019, Sec. 2.1-2.2 and Fig. 1.
Our reading of the places the paper leaves open is docs/design.md, "Architecture".
"""

import keras

from boundary_aware.layers import (AttentionLayer, ChannelProjection,
                                   DilatedSpatialPyramidPooling, ResidualBlock, ResizeLike)
from boundary_aware.layers.normalization import check_norm
from boundary_aware.models.common import (check_positive_integers, probability_head,
                                          projection, sigmoid_with_logits)

LEVELS = 4  # resolutions 1, 1/2, 1/4, 1/8 (the registry's size divisor is 2 ** (LEVELS - 1))
FUSIONS = ("area", "bilinear")


def check_options(base_filters, shape_filters, dspp_rates, norm, groups, residual_gate, fusion,
                  regions=1, edge_maps=1):
    """ValueError naming the first keyword of `boundary_aware_net` whose value cannot build."""
    check_positive_integers(base_filters=base_filters, shape_filters=shape_filters,
                            groups=groups, regions=regions, edge_maps=edge_maps)
    if edge_maps not in (1, regions):
        raise ValueError(f"edge_maps must be 1 (the regions' union) or regions = {regions} (one "
                         f"per region), got {edge_maps}")
    if shape_filters % 4:
        raise ValueError(f"shape_filters must be divisible by 4, got {shape_filters}")
    if not isinstance(dspp_rates, (list, tuple)) or not dspp_rates:
        raise ValueError(f"dspp_rates must be a list of dilation rates, got {dspp_rates!r}")
    check_positive_integers(**{f"dspp_rates[{i}]": r for i, r in enumerate(dspp_rates)})
    check_norm(norm)
    if not isinstance(residual_gate, bool):
        raise ValueError(f"residual_gate must be true or false, got {residual_gate!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")


def boundary_aware_net(input_shape, base_filters, shape_filters, dspp_rates, norm, groups,
                       residual_gate, fusion, regions=1, edge_maps=1, name="boundary_aware_net"):
    """Build the boundary-aware network; outputs `{"seg", "edge", "edge_logits"}`.

    Build it through `boundary_aware.models.build_model("ours", ...)`, which
    holds the defaults (`registry.MODELS["ours"]`) and checks the input size.

    Args:
        input_shape: (H, W, C), H and W divisible by 8.
        base_filters: F; the encoder levels have F, 2F, 4F, 8F channels.
        shape_filters: channels of the shape stream's first map s0 (halved after
            attention layers 1 and 2: 32 -> 16 -> 8).
        dspp_rates: dilation rates of DSPP's 3x3 branches.
        norm, groups: normalization of every block ("batch", "group", "none").
        residual_gate: Gated-SCNN's `s * (alpha + 1)` instead of Eq. 2's product.
        fusion: how the shape stream is reduced to the encoder output's size
            before the concatenation: "area" (the mean of each 8 x 8 block, so
            every boundary pixel reaches DSPP; the default) or "bilinear" (which
            samples about 6% of the pixels).
        regions: maps under `seg`, one sigmoid per tumor region (the paper: 1).
        edge_maps: maps under `edge`: one per region, or 1 for their union.
        name: model name.

    Returns:
        A functional `keras.Model` whose outputs are float32 maps: `seg`
        (B, H, W, regions), the region probabilities (the paper: tumor core);
        `edge` (B, H, W, edge_maps), the boundary probability; and
        `edge_logits`, the boundary maps before their sigmoid (what the edge
        BCE of Eq. 5 reads).

    Reference: Hatamizadeh et al. 2019, Sec. 2.1-2.2.
    """
    check_options(base_filters, shape_filters, dspp_rates, norm, groups, residual_gate, fusion,
                  regions, edge_maps)
    f = base_filters
    block = dict(norm=norm, groups=groups)
    inputs = keras.Input(input_shape, name="image")
    encoder = _encoder(inputs, f, block)
    s = _shape_stream(encoder, shape_filters, residual_gate, block)
    # "the output of the shape stream that is resized to the original image size"
    edge_logits = projection(s, edge_maps, "edge_projection")
    edge_logits = ResizeLike(name="edge_resize")([edge_logits, inputs])
    edge = sigmoid_with_logits(edge_logits, "edge")

    # Fusion: "The output of the last attention layer is concatenated with the
    # output of the encoder in the main stream and fed into a dilated spatial
    # pyramid pooling layer."
    fused = ResizeLike(interpolation=fusion, name="fusion_resize")([s, encoder[-1]])
    x = keras.layers.Concatenate(name="fusion")([encoder[-1], fused])
    x = DilatedSpatialPyramidPooling(f * 2 ** (LEVELS - 1), rates=dspp_rates, **block,
                                     name="dspp")(x)
    x = _decoder(x, encoder, f, block)
    seg = probability_head(x, "seg", regions)
    return keras.Model(inputs, {"seg": seg, **edge}, name=name)


def _encoder(inputs, f, block) -> list:
    """Main stream, encoder: "every resolution level includes two residual blocks"; the
    output of each level, full resolution first."""
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
    return encoder


def _shape_stream(encoder, shape_filters, residual_gate, block):
    """Shape stream at full resolution: "A 1x1 convolution is applied to each input to the
    shape stream and the result is fed into an attention layer"; the last attention
    layer's output."""
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
    return s


def _decoder(x, encoder, f, block):
    """Main stream, decoder: up-step, add the same-resolution skip, one block."""
    for level in range(LEVELS - 2, -1, -1):
        width = f * 2 ** level
        x = keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level + 1}")(x)
        x = keras.layers.Add(name=f"skip{level + 1}")([x, encoder[level]])
        x = ResidualBlock(width, **block, name=f"dec{level + 1}_block")(x)
    return x


def attention_maps(model):
    """The outputs of the network's attention layers 1-3, in the order of the shape stream
    (Fig. 2 of the paper draws them)."""
    layers = [layer for layer in model.layers if isinstance(layer, AttentionLayer)]
    return [layer.output for layer in layers]
