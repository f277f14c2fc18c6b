"""Pieces shared by the three model families: input checks and output heads."""

import keras

from boundary_aware.layers import ChannelProjection


def check_input_shape(input_shape, divisor, model_name):
    """Validate `(H, W, C)` and return it as a tuple of ints."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise ValueError(f"{model_name}: input_shape must be (height, width, channels) "
                         f"with positive integers, got {input_shape!r}")
    h, w, _ = shape
    if h % divisor or w % divisor:
        raise ValueError(f"{model_name}: height and width must be divisible by {divisor} "
                         f"(the network downsamples {divisor}x), got {h} x {w}")
    return shape


def probability_head(x, name):
    """1x1 conv to one channel (`ChannelProjection`), then a float32 sigmoid named `name`.

    The sigmoid runs in float32 under any mixed-precision policy, so every
    model output is a float32 probability in [0, 1].
    """
    logits = ChannelProjection(name=f"{name}_logits")(x)
    return keras.layers.Activation("sigmoid", dtype="float32", name=name)(logits)
