"""FLOP counting from the layers, checked on models small enough to count by hand."""

import keras
import pytest

from boundary_aware.model_stats import forward_flops
from boundary_aware.layers import ResidualBlock

pytestmark = pytest.mark.backend


def test_flops_of_plain_layers_by_hand():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)             # 8*8*4 * 3*3*2
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)       # 4*4*6 * 3*3*4
    x = keras.layers.Conv2DTranspose(3, 2, strides=2)(x)              # 4*4 * 2*2*3*6
    x = keras.layers.Dense(5)(x)                                      # 8*8 * 3*5
    model = keras.Model(inputs, x)
    macs = 8 * 8 * 4 * 18 + 4 * 4 * 6 * 36 + 4 * 4 * 72 + 8 * 8 * 15
    assert forward_flops(model) == 2 * macs


def test_flops_reach_inside_custom_layers():
    inputs = keras.Input((6, 6, 4))
    model = keras.Model(inputs, ResidualBlock(4, norm="none")(inputs))
    assert forward_flops(model) == 2 * 2 * (6 * 6 * 4 * 3 * 3 * 4)
    # counting leaves the layers' own call methods in place
    assert "call" not in vars(model.layers[1].conv1)
