"""boundary-aware: End-to-End Boundary Aware Networks (Hatamizadeh et al., 2019) in Keras 3.

Submodules load on first use, so `boundary_aware.metrics` (numpy/scipy) and
the data tools start without importing Keras. Only `boundary_aware.data_pipeline`,
`boundary_aware.export` and `boundary_aware.runtime` import TensorFlow;
everything else runs on any Keras backend. A process started as one of the
package's commands keeps TensorFlow's start-up notices off its console
(`boundary_aware.console`).
"""

import importlib

from boundary_aware import console as _console
from boundary_aware.version import __version__

_SUBMODULES = ("layers", "losses", "metrics", "models")

if _console.started_as_command():
    _console.check_backend()
    _console.quiet_tensorflow()


def build_model(name, input_shape, **kwargs):
    """See `boundary_aware.models.build_model`."""
    from boundary_aware.models import build_model as _build
    return _build(name, input_shape, **kwargs)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"boundary_aware.{name}")
    raise AttributeError(f"module 'boundary_aware' has no attribute {name!r}")


__all__ = ["__version__", "build_model", *_SUBMODULES]
