"""boundary-aware: End-to-End Boundary Aware Networks (Hatamizadeh et al., 2019) in Keras 3.

Submodules load on first use, so `boundary_aware.metrics` (numpy/scipy) and
the data tools start without importing Keras. Only `boundary_aware.data_pipeline`
and `boundary_aware.export` import TensorFlow; everything else runs on any
Keras backend.
"""

import importlib

from boundary_aware.version import __version__

_SUBMODULES = ("layers", "losses", "metrics", "models")


def build_model(name, input_shape=(240, 240, 1), **kwargs):
    """See `boundary_aware.models.build_model`."""
    from boundary_aware.models import build_model as _build
    return _build(name, input_shape, **kwargs)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"boundary_aware.{name}")
    raise AttributeError(f"module 'boundary_aware' has no attribute {name!r}")


__all__ = ["__version__", "build_model", *_SUBMODULES]
