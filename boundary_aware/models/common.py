"""Output heads shared by the three model families."""

import keras

from boundary_aware.layers import ChannelProjection
from boundary_aware.models.registry import logits_name


def check_positive_integers(**values):
    """ValueError naming the first keyword whose value is not a positive integer."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def projection(x, channels, name):
    """1x1 convolution of `x` to `channels` maps, named `name`: a `ChannelProjection` for
    one (the paper's single region), a `Conv2D` for several (one per tumor region)."""
    if channels == 1:
        return ChannelProjection(name=name)(x)
    return keras.layers.Conv2D(channels, 1, name=name)(x)


def probability_head(x, name, channels=1):
    """1x1 conv to `channels` maps (`projection` named `<name>_projection`; one per tumor
    region), then a float32 sigmoid named `name`: independent sigmoids, so regions may
    overlap (region-based training, as nnU-Net does for BraTS).

    The sigmoid runs in float32 under any mixed-precision policy, so every
    model output is a float32 probability in [0, 1].
    """
    logits = projection(x, channels, f"{name}_projection")
    return keras.layers.Activation("sigmoid", dtype="float32", name=name)(logits)


def sigmoid_with_logits(logits, name):
    """`{name: sigmoid(logits), name_logits: logits}`, both float32.

    For an output whose loss needs its logits (the edge BCE of Eq. 5): the
    logits are a model output of their own (`registry.logits_name`), cast to
    float32 by a layer of that name (a functional model's output names are
    its output layers' names), and the probability is their sigmoid.
    """
    logits = keras.layers.Activation("linear", dtype="float32", name=logits_name(name))(logits)
    probability = keras.layers.Activation("sigmoid", dtype="float32", name=name)(logits)
    return {name: probability, logits_name(name): logits}
