"""A model's forward pass over slices, with what it takes and what it gives.

`Predictor` is what every model source becomes (`sources.load_predictor`):
the forward pass over (N, H, W, C) slices and the model's input contract
(slice size, channels in order), the regions of its `seg` maps, the label
conventions of its training data and the clean-up recorded with it. Only the
probability outputs leave a predictor (`registry.probability_outputs`): the
logits some models also output are for their losses.

Reference: docs/design.md ("Whole volumes"); docs/deployment.md.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from boundary_aware.channels import channel_layout, input_channels
from boundary_aware.errors import DataError
from boundary_aware.models.registry import probability_outputs
from boundary_aware.regions import PAPER_REGION

SliceFunction = Callable[[np.ndarray], dict]  # (N, H, W, C) float32 -> {output: (N, H, W, K)}


@dataclass(frozen=True)
class Predictor:
    """A model's forward pass over slices, and what it takes.

    `predict(images)` maps (N, H, W, C) float32 slices to a dict of (N, H, W, K)
    float32 probabilities (`seg`: K = one map per tumor region); `input_shape` is
    (H, W, C); `channels` names the C input channels in order (MRI sequences, and
    their neighbouring slices where it takes context: `sequences`, `context_slices`);
    `regions` names the maps of `seg` in order; `conventions` are the label
    conventions of the data it was trained on (where recorded); `postprocess` is the
    whole-volume clean-up ({region: rule}, `boundary_aware.postprocess`) recorded
    with the model (its run's choice on validation, or its export's card), None if
    none; `model` is the Keras model behind it, where there is one.
    """

    predict: SliceFunction
    input_shape: tuple[int, int, int]
    channels: tuple[str, ...]
    postprocess: dict | None = None
    regions: tuple[str, ...] = (PAPER_REGION,)
    conventions: tuple[str, ...] = ()
    model: Any = None

    def __call__(self, images: np.ndarray) -> dict:
        return self.predict(images)

    @property
    def sequences(self) -> tuple[str, ...]:
        """The MRI sequences it reads from a case, in order (one volume each)."""
        return channel_layout(self.channels)[0]

    @property
    def context_slices(self) -> int:
        """The neighbouring slices on each side it takes as context (0: none)."""
        return channel_layout(self.channels)[1]


def as_list(predictors) -> list[Predictor]:
    """One predictor, or an ensemble's several, as a list."""
    return [predictors] if isinstance(predictors, Predictor) else list(predictors)


def keras_predictor(model, batch_size: int = 16, streams: int = 1,
                    channels: tuple[str, ...] | None = None,
                    regions: tuple[str, ...] = (PAPER_REGION,)) -> Predictor:
    """The `Predictor` of a Keras model (`channels`: default `channels.input_channels`;
    `regions`: the regions of its `seg` maps, in order)."""
    input_shape = tuple(model.input_shape[1:])
    return Predictor(batched(model.predict_on_batch, batch_size, streams), input_shape,
                     tuple(channels) if channels else input_channels(input_shape),
                     regions=tuple(regions), model=model)


def batched(run, batch_size: int, streams: int = 1) -> SliceFunction:
    """`predict(images)` from `run(batch) -> {output: array}`, a model's one forward pass.

    Runs `batch_size` slices per call, `streams` calls at a time (threads;
    `runtime.inference_streams`). The last batch is padded to `batch_size`
    with blank slices whose outputs are dropped, so the model is traced for
    one input shape only; in inference mode every slice's output depends on
    that slice alone.
    """
    def one(batch):
        result = run(batch)
        return {name: np.asarray(result[name]) for name in probability_outputs(result)}

    def predict(images):
        n = len(images)
        if n == 0:
            raise DataError("no slices to segment")
        padded = np.concatenate([images, np.zeros((-n % batch_size,) + images.shape[1:],
                                                  images.dtype)])
        batches = [padded[i:i + batch_size] for i in range(0, len(padded), batch_size)]
        outputs = [one(batches[0])]  # first alone: it traces the function
        if streams > 1 and len(batches) > 1:
            with ThreadPoolExecutor(streams) as pool:
                outputs += list(pool.map(one, batches[1:]))
        else:
            outputs += [one(batch) for batch in batches[1:]]
        return {name: np.concatenate([o[name] for o in outputs])[:n] for name in outputs[0]}
    return predict


def check_ensemble(predictors: Sequence[Predictor], names: Sequence) -> None:
    """DataError unless every predictor has the first one's input contract and regions."""
    first = predictors[0]
    for name, other in zip(names[1:], predictors[1:]):
        if (other.input_shape, other.channels) != (first.input_shape, first.channels):
            raise DataError(f"{names[0]} and {name}: an ensemble's models must take the same "
                            f"input; one takes {first.input_shape} slices of "
                            f"({', '.join(first.channels)}), the other {other.input_shape} "
                            f"of ({', '.join(other.channels)})")
        if other.regions != first.regions:
            raise DataError(f"{names[0]} and {name}: an ensemble's models must segment the "
                            f"same regions; one gives {', '.join(first.regions)}, the other "
                            f"{', '.join(other.regions)}")
