"""Model families: the boundary-aware net ("ours") and the U-Net and V-Net baselines.

Every family is one entry of `registry.MODELS`. This package imports Keras
only when a model is built, so that the data tools can check an image size
without it.
"""

from __future__ import annotations

from typing import Mapping

from boundary_aware.models.registry import MODELS, ModelSpec, spec


def size_divisor(name: str, **kwargs) -> int:
    """What a model's input height and width must be a multiple of (its total downsampling)."""
    return spec(name).divisor(kwargs)


MAX_IMAGE_SIZE = 1024  # the largest slice side accepted anywhere (BraTS: 240)


def check_image_size(size: int, models: Mapping[str, Mapping] | None = None) -> None:
    """ValueError unless `size` suits every model of `models` ({name: kwargs}; default: all
    of `MODELS` at their default keywords), naming the ones it does not suit."""
    models = models if models is not None else {name: {} for name in MODELS}
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"image size must be a positive integer, got {size!r}")
    if size > MAX_IMAGE_SIZE:
        raise ValueError(f"image size {size} is beyond {MAX_IMAGE_SIZE} pixels, more than a "
                         f"slice of any MRI needs (BraTS: 240) and more than memory holds for "
                         f"training")
    divisors = {name: size_divisor(name, **kwargs) for name, kwargs in models.items()}
    unsuited = {name: d for name, d in divisors.items() if size % d}
    if unsuited:
        needs = ", ".join(f"{name} needs a multiple of {d}" for name, d in unsuited.items())
        raise ValueError(f"image size {size} does not suit every model ({needs})")


def check_input_shape(name: str, input_shape, **kwargs) -> tuple[int, int, int]:
    """`input_shape` as (height, width, channels) of positive ints that suit model `name`."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise ValueError(f"{name}: input_shape must be (height, width, channels) "
                         f"with positive integers, got {input_shape!r}")
    divisor = size_divisor(name, **kwargs)
    if shape[0] % divisor or shape[1] % divisor:
        raise ValueError(f"{name}: height and width must be divisible by {divisor} "
                         f"(the network downsamples {divisor}x), got {shape[0]} x {shape[1]}")
    return shape


def build_model(name: str, input_shape, **kwargs):
    """Return a `keras.Model` of family `name` ("ours", "unet", "vnet") for `input_shape`
    (H, W, C).

    Keyword arguments override the family's defaults (`registry.MODELS[name].defaults`:
    `base_filters`, `norm`, `dspp_rates`, ...). The outputs are a dict of float32 maps:
    probabilities `{"seg", "edge"}` and the edge logits `edge_logits` for "ours",
    `{"seg"}` for the baselines (`registry.ModelSpec.output_names`).

    Example:
        >>> model = build_model("ours", input_shape=(64, 64, 1), base_filters=8)
        >>> sorted(model.output_names)  # doctest: +SKIP
        ['edge', 'edge_logits', 'seg']
    """
    family = spec(name)
    return family.build(check_input_shape(name, input_shape, **kwargs), kwargs)


__all__ = ["MODELS", "ModelSpec", "build_model", "check_image_size", "check_input_shape",
           "size_divisor", "spec"]
