"""Layers: the computation of Eq. 1-2, DSPP, the residual block, serialization."""

import keras
import numpy as np
import pytest

from boundary_aware.layers import (AttentionLayer, DilatedSpatialPyramidPooling,
                                   ResidualBlock, ResizeLike)
from tests.conftest import to_numpy

pytestmark = pytest.mark.backend


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_attention_layer_computes_eq1_and_eq2():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 5, 5, 3)).astype("float32")
    m = rng.standard_normal((2, 5, 5, 1)).astype("float32")
    layer = AttentionLayer(return_attention=True)
    o, alpha = layer([s, m])
    kernel, bias = (to_numpy(w) for w in layer.gate_conv.weights)
    expected_alpha = sigmoid(np.concatenate([s, m], -1) @ kernel[0, 0] + bias)
    np.testing.assert_allclose(to_numpy(alpha), expected_alpha, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(o), s * expected_alpha, rtol=1e-5, atol=1e-6)
    gated = AttentionLayer(residual_gate=True)
    gated.build([s.shape, m.shape])
    gated.gate_conv.set_weights(layer.gate_conv.get_weights())
    np.testing.assert_allclose(to_numpy(gated([s, m])), s * (expected_alpha + 1),
                               rtol=1e-5, atol=1e-6)


def test_attention_layer_rejects_mismatched_resolutions():
    with pytest.raises(ValueError, match="spatial size"):
        AttentionLayer()([np.zeros((1, 4, 4, 2)), np.zeros((1, 8, 8, 1))])


def test_residual_block_is_identity_plus_branch():
    x = np.random.default_rng(1).standard_normal((1, 6, 6, 8)).astype("float32")
    block = ResidualBlock(8, norm="none")
    block(x)
    for w in block.conv2.weights:
        w.assign(np.zeros(w.shape, "float32"))  # zero branch -> exact identity
    np.testing.assert_allclose(to_numpy(block(x)), x, atol=1e-7)
    with pytest.raises(ValueError, match="identity shortcut needs 16"):
        ResidualBlock(16)(x)
    with pytest.raises(ValueError, match="divisible by 3"):
        ResidualBlock(8, norm="group", groups=3)(x)


def test_dspp_branches_and_shapes():
    x = np.random.default_rng(2).standard_normal((2, 9, 9, 6)).astype("float32")
    dspp = DilatedSpatialPyramidPooling(4, branch_filters=3, rates=(2, 4), norm="none")
    y = to_numpy(dspp(x))
    assert y.shape == (2, 9, 9, 4) and np.all(y >= 0)  # ends with a ReLU
    assert [c.dilation_rate for c in dspp.branch_convs] == [(1, 1), (2, 2), (4, 4)]
    # with the conv branches silenced, only the image-pooling branch is left:
    # its value is broadcast, so the output is spatially constant
    for conv in dspp.branch_convs:
        conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    flat = to_numpy(dspp(x))
    np.testing.assert_allclose(flat, np.broadcast_to(flat[:, :1, :1], flat.shape), atol=1e-6)
    assert np.any(flat[0] != flat[1])  # and it depends on each image's mean


def test_resize_like_is_identity_at_equal_size_and_bilinear_otherwise():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(to_numpy(ResizeLike()([x, np.zeros((1, 4, 4, 3))])), x)
    y = to_numpy(ResizeLike()([x, np.zeros((1, 8, 8, 1))]))
    assert y.shape == (1, 8, 8, 1)
    assert y.min() >= 0 and y.max() <= 15 and abs(y.mean() - 7.5) < 1e-4


def test_area_resize_is_an_explicit_average_pooling():
    x = np.random.default_rng(2).random((2, 24, 16, 3)).astype("float32")
    y = to_numpy(ResizeLike(interpolation="area")([x, np.zeros((2, 3, 4, 1))]))
    want = x.reshape(2, 3, 8, 4, 4, 3).mean(axis=(2, 4))  # 8 x 4 blocks
    np.testing.assert_allclose(y, want, rtol=1e-6)
    pooled = to_numpy(keras.layers.AveragePooling2D((8, 4))(x))
    np.testing.assert_allclose(y, pooled, rtol=1e-6)
    # a one-pixel line survives an 8x area reduction; bilinear sampling can miss it
    line = np.zeros((1, 16, 16, 1), "float32")
    line[0, :, 5] = 1.0
    target = np.zeros((1, 2, 2, 1))
    assert to_numpy(ResizeLike(interpolation="area")([line, target]))[0, :, 0, 0] == \
        pytest.approx([1 / 8, 1 / 8])
    with pytest.raises(ValueError, match="integer"):
        ResizeLike(interpolation="area")([np.zeros((1, 10, 10, 1)), np.zeros((1, 3, 3, 1))])


@pytest.mark.parametrize("layer", [
    AttentionLayer(residual_gate=True),
    DilatedSpatialPyramidPooling(8, branch_filters=4, rates=(1, 2), norm="group", groups=4),
    ResidualBlock(16, kernel_size=5, norm="group", groups=4),
    ResizeLike(interpolation="nearest"),
    ResizeLike(interpolation="area"),
], ids=lambda layer: type(layer).__name__)
def test_layers_round_trip_through_their_config(layer):
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
