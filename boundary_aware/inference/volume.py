"""A whole volume segmented slice by slice: inside the head, resized back to the volume.

`segment_volume` takes an LPS-ordered (X, Y, Z, S) volume (S: the MRI
sequences) and returns each output's probabilities on the volume's grid:

* only the head: voxels where every channel is 0 (outside the head of a
  skull-stripped scan) get probability 0, and slices without any head are
  not run through a model (`VolumeInput`); a scan with no zero voxel is all
  head;
* each sequence normalized as in training (`intensity.model_slices`), resized
  to the model's size and the probabilities resized back; a model trained
  with neighbouring slices as context gets them stacked as in training
  (`channels.stack_context`);
* constant slices (above and below the head) share one forward pass
  (`distinct_slices`);
* several predictors (an ensemble) and test-time flips are averaged
  (`ensemble.averaged`), with their standard deviation on request.

`predict` (the command), `evaluate` (whole-volume scores) and the benchmarks
all segment volumes through it.

Reference: docs/design.md ("Evaluation", "Whole volumes").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from boundary_aware.channels import stack_context
from boundary_aware.errors import DataError
from boundary_aware.inference.ensemble import UNCERTAINTY, averaged
from boundary_aware.inference.flips import NO_FLIPS
from boundary_aware.inference.predictor import as_list
from boundary_aware.intensity import model_slices


def distinct_slices(slices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(run, source)`: the slices to segment, and for every slice its row among them.

    A constant slice (every pixel of every channel the same value per channel:
    above and below the head) is segmented once per value, and the others of
    that value take its output; every other slice is its own. The model maps
    a slice to its output one slice at a time, so this gives every slice the
    output it would have had, with fewer forward passes (10-20 of BraTS's 155
    slices).
    """
    flat = slices.reshape(len(slices), -1, slices.shape[-1])
    lo, hi = flat.min(axis=1), flat.max(axis=1)  # (Z, C)
    run, source, first = [], np.empty(len(slices), np.int64), {}
    for i in range(len(slices)):
        if np.array_equal(lo[i], hi[i]):
            key = tuple(lo[i].tolist())
            if key in first:
                source[i] = first[key]
                continue
            first[key] = len(run)
        source[i] = len(run)
        run.append(i)
    return np.asarray(run, np.int64), source


class VolumeInput:
    """An LPS-ordered (X, Y, Z, S) volume, made ready once for any number of models.

    `head` (X, Y, Z) is True where any channel is non-zero: BraTS volumes are
    skull-stripped and exactly 0 outside the head, where no tumor can be.
    `rows` are the axial slices that hold any head; only they are run through
    a model, normalized and resized as in training (`slices(size, context)`,
    kept per input size and context). A volume with no zero voxel is all head.
    """

    def __init__(self, volume: np.ndarray):
        self.volume = volume
        self.head = np.any(volume != 0, axis=-1)
        self.rows = np.flatnonzero(self.head.any(axis=(0, 1)))
        self._slices = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volume.shape[:3])

    def slices(self, size: int, context_slices: int = 0) -> np.ndarray:
        """(len(rows), size, size, S(2k+1)): the model input of the slices with head, with
        k = `context_slices` neighbours on each side (`channels.stack_context`; a slice
        without head is all 0 once normalized, as one beyond the volume is)."""
        key = (size, context_slices)
        if key not in self._slices:
            own = model_slices(self.volume[:, :, self.rows], size)
            if context_slices:
                every = np.zeros((self.shape[2],) + own.shape[1:], np.float32)
                every[self.rows] = own
                own = stack_context(every, self.rows, context_slices)
            self._slices[key] = own
        return self._slices[key]


def segment_volume(predictors, volume: np.ndarray | VolumeInput, distinct: bool = True,
                   outputs: Sequence[str] | None = None, flips: Sequence[str] = NO_FLIPS,
                   uncertainty: bool = False) -> dict[str, np.ndarray]:
    """Probabilities of every output (or of `outputs`) for an LPS-ordered (X, Y, Z, S)
    volume (or its `VolumeInput`), whose channels are the predictors' sequences, in order:
    (X, Y, Z) for an output of one map (the paper's tumor core), (X, Y, Z, K) for K maps
    (one per region).

    `predictors`: one `Predictor`, or several of one input contract (an ensemble,
    `sources.load_predictors`); the result is the mean over every predictor and every
    flip in `flips` (`flips.tta_flips`), and with `uncertainty` also
    `<output>_uncertainty`, the standard deviation over them (`ensemble.averaged`).
    Outside the head (`VolumeInput`) every probability is 0. With `distinct` (the
    default), constant slices share one forward pass (`distinct_slices`).
    """
    predictors = as_list(predictors)
    data = volume if isinstance(volume, VolumeInput) else VolumeInput(volume)
    sequences = predictors[0].sequences
    if data.volume.ndim != 4 or data.volume.shape[-1] != len(sequences):
        raise DataError(f"the model takes {len(sequences)} sequences "
                        f"({', '.join(sequences)}), got a volume of shape {data.volume.shape}")
    x, y, z = data.shape
    if len(data.rows) == 0:  # no head at all: nothing to segment; one blank slice names
        blank = predictors[0](  # the outputs and their maps
            np.zeros((1,) + tuple(predictors[0].input_shape), np.float32))
        maps = {n: v.shape[-1] for n, v in blank.items() if outputs is None or n in outputs}
        zeros = {n: np.zeros((x, y, z) + ((k,) if k > 1 else ()), np.float32)
                 for n, k in maps.items()}
        return {**zeros,
                **({f"{n}{UNCERTAINTY}": v for n, v in zeros.items()} if uncertainty else {})}
    inside = segment_slices(predictors, data.slices(predictors[0].input_shape[0],
                                                    predictors[0].context_slices), (x, y),
                            distinct, outputs, flips, uncertainty)
    result = {}
    for name, value in inside.items():
        full = np.zeros((x, y, z) + value.shape[3:], np.float32)
        full[:, :, data.rows] = value
        head = data.head if value.ndim == 3 else data.head[..., None]
        result[name] = np.where(head, full, np.float32(0))
    return result


def with_map_axis(prob: np.ndarray) -> np.ndarray:
    """A `segment_volume` map with its last axis of maps kept: (X, Y, Z) -> (X, Y, Z, 1);
    (X, Y, Z, K) as it is."""
    return prob[..., None] if prob.ndim == 3 else prob


def segment_slices(predictors, slices: np.ndarray, shape: tuple[int, int],
                   distinct: bool = True, outputs: Sequence[str] | None = None,
                   flips: Sequence[str] = NO_FLIPS, uncertainty: bool = False
                   ) -> dict[str, np.ndarray]:
    """`segment_volume` from the models' input slices (`intensity.model_slices`); `shape`:
    the volume's (X, Y), to which the probabilities are resized back. No head mask here:
    every slice given is segmented. Returns (X, Y, len(slices)) arrays, with a last axis
    of K for an output of K > 1 maps."""
    predictors = as_list(predictors)
    run, source = (distinct_slices(slices) if distinct
                   else (np.arange(len(slices)), np.arange(len(slices))))
    maps = averaged(predictors, slices[run], outputs, flips, uncertainty)
    x, y = shape
    result = {}
    for name, value in maps.items():
        prob = value[source]  # (Z, size, size) or (Z, size, size, K)
        if prob.shape[1:3] != (x, y):
            channels = [prob] if prob.ndim == 3 else [prob[..., k] for k in range(prob.shape[-1])]
            channels = [_resize_back(c, x, y) for c in channels]
            prob = channels[0] if prob.ndim == 3 else np.stack(channels, axis=-1)
        result[name] = np.clip(np.moveaxis(prob, 0, 2), 0, 1)
    return result


def _resize_back(prob, x, y):
    """(Z, size, size) probabilities resized bilinearly to (Z, x, y)."""
    size = prob.shape[1]
    return ndimage.zoom(prob, (1, x / size, y / size), order=1, grid_mode=True, mode="nearest")
