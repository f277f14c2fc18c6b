"""2D V-Net baseline.

Reference: Milletari, Navab, Ahmadi, "V-Net: Fully Convolutional Neural
Networks for Volumetric Medical Image Segmentation", 3DV 2016 (ref. [7] of
the paper), here with 2D convolutions.
"""

import keras

from boundary_aware.layers.normalization import check_norm, make_norm
from boundary_aware.models.common import check_positive_integers, probability_head

ENCODER_CONVS = (1, 2, 3, 3)  # convs per stage, as in V-Net; one down-step after each
BOTTOM_CONVS = 3
DECODER_CONVS = (3, 3, 2, 1)  # from the deepest up-stage to full resolution


def check_options(base_filters, norm, groups, regions=1):
    """ValueError naming the first keyword of `vnet` whose value cannot build."""
    check_positive_integers(base_filters=base_filters, groups=groups, regions=regions)
    check_norm(norm)


def _prelu(name):
    # One slope per channel (V-Net's PReLU), shared over the spatial axes.
    return keras.layers.PReLU(shared_axes=[1, 2], name=name)


def _residual_stage(x, residual, filters, n_convs, norm, groups, name):
    """`n_convs` 5x5 convs (norm, PReLU), plus the stage's input (the residual)."""
    for i in range(n_convs):
        x = keras.layers.Conv2D(filters, 5, padding="same", name=f"{name}_conv{i + 1}")(x)
        x = make_norm(norm, groups, name=f"{name}_norm{i + 1}")(x)
        if i < n_convs - 1:
            x = _prelu(f"{name}_prelu{i + 1}")(x)
    x = keras.layers.Add(name=f"{name}_add")([x, residual])
    return _prelu(f"{name}_out")(x)


def vnet(input_shape, base_filters, norm, groups, regions=1, name="vnet"):
    """Build a 2D V-Net; outputs `{"seg": ...}`.

    Residual stages of 1, 2, 3, 3 (encoder), 3 (bottom), 3, 3, 2, 1 (decoder)
    5x5 convs with PReLU; stride-2 2x2 down-convs doubling the channels;
    stride-2 2x2 transposed-conv up-steps halving them; skip concatenation;
    a 1x1 conv and a float32 sigmoid. The first stage adds its input tiled to
    `base_filters` channels, as in V-Net; later stages add their own input.
    Original V-Net has no normalization: `norm="none"` gives it. Build it
    through `boundary_aware.models.build_model("vnet", ...)`, which holds the
    defaults (`registry.MODELS["vnet"]`) and checks the input size.

    Args:
        input_shape: (H, W, C), H and W divisible by 16.
        base_filters: channels of the first stage (16 in the original).
        norm, groups: normalization after each conv.
        regions: output maps under `seg`, one per tumor region (the paper: 1).
        name: model name.

    Reference: Milletari et al. 2016.
    """
    check_options(base_filters, norm, groups, regions)
    inputs = keras.Input(input_shape, name="image")
    f = base_filters
    tiled = keras.layers.Concatenate(name="input_tile")([inputs] * f) \
        if input_shape[-1] == 1 else keras.layers.Conv2D(f, 1, name="input_proj")(inputs)
    x = _residual_stage(inputs, tiled, f, ENCODER_CONVS[0], norm, groups, "enc1")
    skips = [x]
    for level, n_convs in enumerate(ENCODER_CONVS[1:] + (BOTTOM_CONVS,), start=1):
        width = f * 2 ** level
        down = keras.layers.Conv2D(width, 2, strides=2, name=f"down{level + 1}")(x)
        down = _prelu(f"down{level + 1}_prelu")(down)
        stage = "bottom" if level == len(ENCODER_CONVS) else f"enc{level + 1}"
        x = _residual_stage(down, down, width, n_convs, norm, groups, stage)
        if stage != "bottom":
            skips.append(x)
    for level, n_convs in zip(range(len(ENCODER_CONVS) - 1, -1, -1), DECODER_CONVS):
        width = f * 2 ** level
        up = keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level + 1}")(x)
        up = _prelu(f"up{level + 1}_prelu")(up)
        x = keras.layers.Concatenate(name=f"skip{level + 1}")([up, skips[level]])
        # The convs see the concatenation (2x width); the residual added at the
        # end of the stage is the up-conv output, as in V-Net.
        x = _residual_stage(x, up, width, n_convs, norm, groups, f"dec{level + 1}")
    return keras.Model(inputs, {"seg": probability_head(x, "seg", regions)}, name=name)
