"""Batch-norm statistics recomputed at the current weights, before a checkpoint.

A batch-norm layer normalizes with the statistics of its batch while training, and with
its moving averages at inference. The averages follow the weights with a delay (momentum
0.9: about the last ten steps). Early in training the weights move fast, and the
averages describe activations the network no longer produces: measured on Ours (paper
widths, 128 x 128, 30 steps), inference gave validation Dice 0.000 while the same
weights with their statistics recomputed gave 0.875, in float32 and float16 alike.

`recompute(model, images, batches, batch_size, draw)` runs `batches` batches of
unaugmented training slices through the model in training mode and sets every batch-norm
layer's moving mean and variance to the average of its batch statistics over them (each
layer seeing the activations its predecessors produce with their batch statistics, as in
training). Off unless `train.bn_statistics_batches` asks for it.

Reference: Wu & Johnson, "Rethinking 'Batch' in BatchNorm", arXiv 2105.07576, 2021
(Sec. 3, "precise BN"); Ioffe & Szegedy, ICML 2015.
"""

from __future__ import annotations

import keras
import numpy as np


def batch_norm_layers(model) -> list:
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recompute(model, images, batches: int, batch_size: int, draw: tuple[int, ...]) -> int:
    """Set the moving statistics of `model`'s batch-norm layers to their mean batch
    statistics over `batches` batches of `batch_size` rows of `images`, drawn without
    replacement in an order fixed by `draw` (e.g. the run's seed and epoch; fewer batches
    where `images` holds fewer). Returns the number of batches used; weights are not
    changed."""
    layers = batch_norm_layers(model)
    if not layers or batches <= 0 or len(images) == 0:
        return 0
    rows = np.random.default_rng([*map(int, draw), 3]).permutation(len(images))
    groups = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)][:batches]
    momenta = [layer.momentum for layer in layers]
    try:
        for k, group in enumerate(groups):
            for layer in layers:  # moving = (k * moving + this batch) / (k + 1)
                layer.momentum = k / (k + 1)
            model(np.ascontiguousarray(images[np.sort(group)]), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(groups)
