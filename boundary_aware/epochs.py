"""Which slices each epoch trains on, in what order, and which share of them each process.

Both input pipelines (`data_pipeline`, tf.data; `pydataset`, a PyDataset)
take an epoch's order from `epoch_order` and learn the epoch from `fit`
(`EpochClock`), so that with the same seed they train on the same batches;
with several processes, each takes its consecutive share of every global
batch (`shard_positions`).

Reference: docs/design.md ("Backends", "Beyond one machine").
"""

from __future__ import annotations

import math

import keras
import numpy as np


def epoch_order(n, seed, epoch):
    """The shuffled sample order of one epoch: the same in every pipeline."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def num_batches(n, batch_size, drop_remainder):
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def shard_positions(n, batch_size, shard):
    """The positions of an epoch's n samples that process `index` of `count` trains on, for
    `shard = (index, count)`: its consecutive share of every global batch of `batch_size`
    (divisible by count), so that the processes' batches put together are the batch one
    process would train on. The last incomplete global batch is left out when several
    processes share the data (each process must give the same number of rows)."""
    index, count = shard
    if count == 1:
        return np.arange(n)
    if batch_size % count:
        raise ValueError(f"a batch of {batch_size} cannot be split across {count} processes")
    full = (n // batch_size) * batch_size
    return np.arange(full).reshape(-1, count, batch_size // count)[:, index].reshape(-1)


class EpochClock(keras.callbacks.Callback):
    """Tells an input pipeline (`make_dataset`, `SliceDataset`), as a callback of `fit`,
    which epoch it is delivering.

    Without it a pipeline counts the passes over it, and `fit` makes passes that are
    not epochs: Keras ends an epoch of a PyDataset before the first one begins, and
    under a tf.distribute strategy it opens a pass of a tf.data dataset to build the
    model from one batch. Counted, either would make training start on the second
    epoch's order and augmentation draws.
    """

    def __init__(self, epoch: int = 0):
        super().__init__()
        self.epoch = int(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)
