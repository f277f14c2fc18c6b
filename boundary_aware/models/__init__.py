"""Model families: the boundary-aware net ("ours") and the U-Net and V-Net baselines."""

from __future__ import annotations

import keras

from boundary_aware.models import boundary_aware_net as _ours
from boundary_aware.models import vnet as _vnet
from boundary_aware.models.boundary_aware_net import boundary_aware_net
from boundary_aware.models.unet import unet
from boundary_aware.models.vnet import vnet

MODELS = {"ours": boundary_aware_net, "unet": unet, "vnet": vnet}


def size_divisor(name: str, **kwargs) -> int:
    """What a model's input height and width must be a multiple of (its total downsampling)."""
    if name == "ours":
        return 2 ** (_ours.LEVELS - 1)
    if name == "unet":
        return 2 ** int(kwargs.get("depth", 4))
    if name == "vnet":
        return 2 ** len(_vnet.ENCODER_CONVS)
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")


def check_image_size(size: int, models: dict | None = None) -> None:
    """ValueError unless `size` suits every model of `models` ({name: kwargs}; default: all
    three at their default depths), naming the ones it does not suit."""
    models = models if models is not None else {name: {} for name in MODELS}
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"image size must be a positive integer, got {size!r}")
    unsuited = {name: size_divisor(name, **kwargs) for name, kwargs in models.items()
                if size % size_divisor(name, **kwargs)}
    if unsuited:
        needs = ", ".join(f"{name} needs a multiple of {d}" for name, d in unsuited.items())
        raise ValueError(f"image size {size} does not suit every model ({needs})")


def build_model(name: str, input_shape: tuple[int, int, int] = (240, 240, 1),
                **kwargs) -> keras.Model:
    """Return a `keras.Model` for `name` in `"ours"`, `"unet"`, `"vnet"`.

    Keyword arguments go to the family's builder (`base_filters`, `norm`,
    `dspp_rates`, ...). All outputs are float32 probabilities in [0, 1]:
    `{"seg", "edge"}` for "ours", `{"seg"}` for the baselines.

    Example:
        >>> model = build_model("ours", input_shape=(64, 64, 1), base_filters=8)
        >>> sorted(model.output_names)  # doctest: +SKIP
        ['edge', 'seg']
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](input_shape=tuple(input_shape), **kwargs)


__all__ = ["MODELS", "boundary_aware_net", "build_model", "unet", "vnet"]
