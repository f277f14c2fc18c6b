"""`keras.utils.PyDataset` over prepared slices: the input pipeline without TensorFlow.

Same semantics as `boundary_aware.data_pipeline` (the tf.data pipeline): the
epoch's order comes from `epochs.epoch_order(n, seed, epoch)`, augmentation
parameters from `augment.sample_params`, the edge target is computed from the
(augmented) mask, and both build a batch with `batches.assemble_batch`: with
the same seed they give identical batches.
"""

import threading

import keras
import numpy as np

from boundary_aware.augment import AugmentConfig, sample_params
from boundary_aware.batches import assemble_batch, edge_kind, target_dict, tune_process
from boundary_aware.epochs import EpochClock, epoch_order, num_batches, shard_positions


class SliceDataset(keras.utils.PyDataset):
    """Batches `(image, y)`: float32 images (B, H, W, C) and, under each key of `targets`,
    the float32 mask or its edge band (B, H, W, 1).

    Args:
        images, masks: arrays from `prepared.load_prepared`.
        batch_size: slices per batch.
        targets: {key of y: "mask" or "edge"}, the second value of `losses.compile_losses`
            (the edge band is computed only where a key asks for it).
        seed: seed of the shuffle and of the augmentation.
        shuffle: reshuffle every epoch (training) or keep the order (evaluation).
        augment: an `AugmentConfig` (None: no augmentation).
        edge_width: width of the boundary band.
        drop_remainder: drop the last incomplete batch.
        initial_epoch: the epoch the first pass stands for (for resumed runs).
        sequences: the MRI sequences the channels hold, each drawing one intensity change
            for all its channels (with context slices; None: one per channel).
        shard: `(index, count)`: this process's share of every batch when `count` processes
            train one model (`epochs.shard_positions`); `batch_size` stays the global batch.
        clock: an `EpochClock` among `fit`'s callbacks, which then tells the epoch
            (`initial_epoch` is the clock's); None: every `on_epoch_end` starts the next.
        **kwargs: `keras.utils.PyDataset` arguments (workers, ...).
    """

    def __init__(self, images, masks, batch_size, targets, seed=0, shuffle=True, augment=None,
                 edge_width=2, drop_remainder=False, initial_epoch=0, sequences=None,
                 shard=(0, 1), clock: EpochClock | None = None, **kwargs):
        super().__init__(**kwargs)
        self.images, self.masks = images, masks
        self.positions = shard_positions(len(images), int(batch_size), shard)
        self.batch_size = int(batch_size) // shard[1]
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.augment = augment or AugmentConfig(enabled=False)
        self.edge_width = int(edge_width)
        self.drop_remainder = bool(drop_remainder)
        self.epoch = int(initial_epoch)
        self.sequences = int(sequences or images.shape[-1])
        self.targets = dict(targets)
        self.edge = edge_kind(self.targets)
        self.clock = clock
        self._lock = threading.Lock()  # Keras's workers ask for batches from threads
        self._planned = None
        tune_process()

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """`(order, params)` of the current epoch's slices (this process's share), drawn
        once per epoch."""
        epoch = self.clock.epoch if self.clock is not None else self.epoch
        with self._lock:
            if self._planned is None or self._planned[0] != epoch:
                n = len(self.images)
                order = epoch_order(n, self.seed, epoch) if self.shuffle else np.arange(n)
                params = sample_params(n, self.seed, epoch, self.augment, self.sequences)
                self._planned = (epoch, order[self.positions], params[self.positions])
            return self._planned[1:]

    def __len__(self):
        return num_batches(len(self.positions), self.batch_size, self.drop_remainder)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        order, params = self.plan()
        image, seg, edge = assemble_batch(self.images, self.masks, order[rows],
                                          params[rows], self.edge_width,
                                          self.edge is not None, self.edge == "edge_union")
        return image, target_dict(self.targets, seg, edge)

    def on_epoch_end(self):
        self.epoch += 1
