"""Batch-norm statistics recomputed at the current weights (`boundary_aware.batch_statistics`),
checked by hand: the moving mean and variance become the average of the batch statistics
of the drawn batches, each layer seeing its predecessors normalized by their batch
statistics; nothing else changes."""

import keras
import numpy as np
import pytest

from boundary_aware.batch_statistics import batch_norm_layers, recompute
from boundary_aware.layers.normalization import make_norm

pytestmark = pytest.mark.backend  # eager training-mode calls update the statistics on every backend


def two_norm_model():
    x = keras.Input((8, 8, 2))
    a = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(x)
    a = make_norm("batch", name="norm_a")(a)
    b = keras.layers.Conv2D(4, 1, name="conv_b")(keras.layers.ReLU()(a))
    b = make_norm("batch", name="norm_b")(b)
    return keras.Model(x, b)


def moments(values):
    return values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2))


def test_moving_statistics_become_the_mean_batch_statistics():
    keras.utils.set_random_seed(1)
    model = two_norm_model()
    images = np.random.default_rng(0).normal(2.0, 3.0, (10, 8, 8, 2)).astype("float32")
    weights = [w.copy() for w in model.get_weights() if w.ndim > 1]  # the kernels
    used = recompute(model, images, batches=2, batch_size=4, draw=(7, 0))
    assert used == 2
    rows = np.random.default_rng([7, 0, 3]).permutation(10)
    groups = [np.sort(rows[:4]), np.sort(rows[4:8])]

    # by hand, in numpy: conv_a, its batch statistics, normalize, ReLU, conv_b, its statistics
    kernel_a, bias_a = model.get_layer("conv_a").get_weights()
    kernel_b, bias_b = model.get_layer("conv_b").get_weights()
    gamma_a, beta_a = model.get_layer("norm_a").get_weights()[:2]
    eps = model.get_layer("norm_a").epsilon
    conv_a = keras.Model(model.input, model.get_layer("conv_a").output)
    stats_a, stats_b = [], []
    for group in groups:
        a = np.asarray(conv_a(images[group]))
        mean, var = moments(a)
        stats_a.append((mean, var))
        a = np.maximum((a - mean) / np.sqrt(var + eps) * gamma_a + beta_a, 0)
        b = np.einsum("nhwc,cd->nhwd", a, kernel_b[0, 0]) + bias_b
        stats_b.append(moments(b))
    for name, stats in (("norm_a", stats_a), ("norm_b", stats_b)):
        layer = model.get_layer(name)
        np.testing.assert_allclose(np.asarray(layer.moving_mean),
                                   np.mean([m for m, _ in stats], axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(layer.moving_variance),
                                   np.mean([v for _, v in stats], axis=0), rtol=1e-4, atol=1e-5)
        assert layer.momentum == 0.9  # restored
    np.testing.assert_array_equal(kernel_a, model.get_layer("conv_a").get_weights()[0])
    for before, after in zip(weights, [w for w in model.get_weights() if w.ndim > 1]):
        np.testing.assert_array_equal(before, after)


def test_nothing_to_do_without_batch_norm_or_batches():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert batch_norm_layers(model) == []
    assert recompute(model, np.zeros((3, 4), "float32"), 2, 2, (0, 0)) == 0
    model = two_norm_model()
    before = model.get_weights()
    assert recompute(model, np.ones((3, 8, 8, 2), "float32"), 0, 2, (0, 0)) == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
