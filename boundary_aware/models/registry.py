"""The model registry: one entry per model family, readable without Keras.

An entry (`ModelSpec`) says where the builder is (its module is imported on
the first build, and with it Keras), every keyword the builder takes with its
default, how the input's height and width must divide (a function of those
keywords), and the model's outputs: the probability maps, and which of them
also come as logits under `<name>_logits` (the losses read those:
docs/design.md, "Losses"). Data preparation asks the size divisors here
without loading Keras.

Every family takes `regions`, the number of tumor regions it segments (one
sigmoid map each under `seg`); a family with an edge output also takes
`edge_maps`, its number of boundary maps (one per region, or one for their
union). Training sets both from `data.regions` and `loss.edge_target`.

A new architecture is one builder file in `boundary_aware/models/` (with a
`check_options` function for its keywords) plus one entry in `MODELS`.

Reference: Hatamizadeh et al. 2019 (the boundary-aware network, Sec. 2);
Ronneberger et al. 2015 (U-Net); Milletari et al. 2016 (V-Net).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

LOGITS_SUFFIX = "_logits"


def logits_name(output: str) -> str:
    """The name of an output's logits output (the map before its sigmoid)."""
    return output + LOGITS_SUFFIX


def probability_outputs(names) -> list[str]:
    """The probability maps among a model's output names (the ones inference uses)."""
    return [name for name in names if not name.endswith(LOGITS_SUFFIX)]


@dataclass(frozen=True)
class ModelSpec:
    """One model family (module docstring)."""

    module: str
    builder: str
    defaults: Mapping[str, Any]
    size_divisor: Callable[..., int]
    outputs: tuple[str, ...]
    logits: tuple[str, ...] = field(default=())

    def keywords(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with `overrides` applied; ValueError naming an unknown keyword."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown keyword(s) {unknown}; this model takes "
                             f"{sorted(self.defaults)}")
        return {**self.defaults, **overrides}

    def divisor(self, overrides: Mapping[str, Any] | None = None) -> int:
        """What the input's height and width must be a multiple of (its total downsampling)."""
        return int(self.size_divisor(**self.keywords(overrides)))

    def _function(self, name: str) -> Callable:
        return getattr(importlib.import_module(self.module), name)

    def check(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every keyword known and every value allowed (ValueError naming the keyword);
        returns the keywords. Imports the builder's module (and Keras)."""
        keywords = self.keywords(overrides)
        self._function("check_options")(**keywords)
        return keywords

    def build(self, input_shape, overrides: Mapping[str, Any] | None = None):
        """The `keras.Model` for `input_shape` (H, W, C) and the keywords."""
        keywords = self.check(overrides)
        return self._function(self.builder)(input_shape=tuple(input_shape), **keywords)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Every output of a built model: the probability maps and the logits."""
        return tuple(sorted(self.outputs + tuple(logits_name(o) for o in self.logits)))


def _ours_divisor(**_):
    # four resolution levels (1, 1/2, 1/4, 1/8): boundary_aware_net.LEVELS
    return 8


def _unet_divisor(depth, **_):
    # `depth` 2x2 max-poolings
    return 2 ** int(depth)


def _vnet_divisor(**_):
    # four stride-2 down-convolutions: len(vnet.ENCODER_CONVS)
    return 16


MODELS: dict[str, ModelSpec] = {
    "ours": ModelSpec(
        module="boundary_aware.models.boundary_aware_net", builder="boundary_aware_net",
        defaults=dict(base_filters=32, shape_filters=32, dspp_rates=(6, 12, 18), norm="batch",
                      groups=8, residual_gate=False, fusion="area", regions=1, edge_maps=1),
        size_divisor=_ours_divisor, outputs=("seg", "edge"), logits=("edge",)),
    "unet": ModelSpec(
        module="boundary_aware.models.unet", builder="unet",
        defaults=dict(base_filters=64, depth=4, norm="batch", groups=8, regions=1),
        size_divisor=_unet_divisor, outputs=("seg",)),
    "vnet": ModelSpec(
        module="boundary_aware.models.vnet", builder="vnet",
        defaults=dict(base_filters=16, norm="batch", groups=8, regions=1),
        size_divisor=_vnet_divisor, outputs=("seg",)),
}


def spec(name: str) -> ModelSpec:
    """The registry entry of model `name`; ValueError listing the models otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]
