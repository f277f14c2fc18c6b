"""2D U-Net baseline.

Reference: Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI 2015 (ref. [9] of the paper).
"""

import keras

from boundary_aware.layers.normalization import check_norm, make_norm
from boundary_aware.models.common import check_positive_integers, probability_head


def check_options(base_filters, depth, norm, groups, regions=1):
    """ValueError naming the first keyword of `unet` whose value cannot build."""
    check_positive_integers(base_filters=base_filters, depth=depth, groups=groups,
                            regions=regions)
    check_norm(norm)


def _double_conv(x, filters, norm, groups, name):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=norm == "none",
                                name=f"{name}_conv{i}")(x)
        x = make_norm(norm, groups, name=f"{name}_norm{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def unet(input_shape, base_filters, depth, norm, groups, regions=1, name="unet"):
    """Build a 2D U-Net; outputs `{"seg": ...}`.

    Two 3x3 convs per level (each followed by norm and ReLU; the original has
    no normalization, `norm="none"` gives it), `depth` 2x2 max-poolings,
    2x2 transposed-conv up-steps, skip concatenation, a 1x1 conv and a float32
    sigmoid. Convs use "same" padding so the output matches the input size.
    Build it through `boundary_aware.models.build_model("unet", ...)`, which
    holds the defaults (`registry.MODELS["unet"]`) and checks the input size.

    Args:
        input_shape: (H, W, C), H and W divisible by 2**depth.
        base_filters: channels at full resolution (64 in the original).
        depth: number of poolings (4 in the original).
        norm, groups: normalization after each conv.
        regions: output maps under `seg`, one per tumor region (the paper: 1).
        name: model name.

    Reference: Ronneberger et al. 2015.
    """
    check_options(base_filters, depth, norm, groups, regions)
    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _double_conv(x, base_filters * 2 ** level, norm, groups, f"enc{level + 1}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = _double_conv(x, base_filters * 2 ** depth, norm, groups, "bottleneck")
    for level in range(depth - 1, -1, -1):
        width = base_filters * 2 ** level
        x = keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level + 1}")(x)
        x = keras.layers.Concatenate(name=f"skip{level + 1}")([skips[level], x])
        x = _double_conv(x, width, norm, groups, f"dec{level + 1}")
    return keras.Model(inputs, {"seg": probability_head(x, "seg", regions)}, name=name)
