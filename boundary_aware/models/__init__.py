"""Model families: the boundary-aware net ("ours") and the U-Net and V-Net baselines."""

from __future__ import annotations

import keras

from boundary_aware.models.boundary_aware_net import boundary_aware_net
from boundary_aware.models.unet import unet
from boundary_aware.models.vnet import vnet

MODELS = {"ours": boundary_aware_net, "unet": unet, "vnet": vnet}


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
