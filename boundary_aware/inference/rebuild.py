"""A Keras model rebuilt with the same weights: in another precision, for another slice size.

`rebuild` makes the model again from its own configuration (of a model loaded
in safe mode) and copies the weights; `rebuilt_passes` gives the batched
forward pass at any slice size, rebuilding the model once per size
(`--crop=head` runs a box of the head, whose size changes with the volume).

Reference: Keras 3 (`Model.get_config`, `from_config`, dtype policies);
docs/performance.md ("bfloat16", "The head's box").
"""

from __future__ import annotations

import functools
from typing import Callable

from boundary_aware.inference.predictor import SliceFunction, batched


def rebuild(model, policy: str | None = None, input_size: tuple[int, int] | None = None):
    """The Keras model rebuilt with the same weights, computing under dtype `policy`
    (e.g. "mixed_bfloat16"; None: each layer's own) and taking slices of height and
    width `input_size` (None: the model's; a multiple of its size divisor,
    `size_divisor_of`).

    Every layer takes `policy` but the model's output layers, which our models pin to
    float32 (`models.common`): the outputs stay float32 probabilities and logits.
    """
    import keras
    config = model.get_config()
    pinned = set(model.output_names)
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            if input_size is not None:
                shape = layer["config"]["batch_shape"]
                layer["config"]["batch_shape"] = [shape[0], *input_size, *shape[3:]]
            continue
        dtype = layer["config"].get("dtype")
        if policy and layer["config"].get("name") not in pinned \
                and isinstance(dtype, dict) and "name" in dtype.get("config", {}):
            dtype["config"]["name"] = policy  # e.g. from float32 or mixed_float16
    before = keras.config.dtype_policy()
    if policy:  # for the sublayers a layer builds itself
        keras.config.set_dtype_policy(policy)
    try:
        rebuilt = model.__class__.from_config(config)
    finally:
        keras.config.set_dtype_policy(before)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def size_divisor_of(model) -> int:
    """What a Keras model's input height must be a multiple of: its input height over
    that of its smallest feature map (its total downsampling)."""
    height = model.input_shape[1]
    smallest = min((shape[1] for layer in model.layers
                    for shape in _output_shapes(layer) if len(shape) == 4 and shape[1]),
                   default=height)
    return max(1, height // smallest)


def _output_shapes(layer) -> list:
    output = layer.output
    outputs = output.values() if isinstance(output, dict) else \
        output if isinstance(output, (list, tuple)) else [output]
    return [tuple(t.shape) for t in outputs]


def rebuilt_passes(model, batch_size: int, streams: int = 1, kept: int = 4
                   ) -> Callable[[tuple[int, int]], SliceFunction]:
    """`pass_at((h, w))`: the `batched` forward pass of a Keras model over slices of that
    size (the model `rebuild` for it on first use; the `kept` most recent are kept)."""
    @functools.lru_cache(maxsize=kept)
    def pass_at(size):
        sized = model if tuple(size) == tuple(model.input_shape[1:3]) else \
            rebuild(model, input_size=tuple(size))
        return batched(sized.predict_on_batch, batch_size, streams)
    return lambda size: pass_at(tuple(int(n) for n in size))
