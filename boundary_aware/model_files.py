"""Loading `.keras` model files, the one way the package does it.

A model file from elsewhere is code: Keras's safe mode stays on (a Lambda
layer or another serialized Python function is refused), `.h5` files and
pickles are refused outright, and every failure becomes a `DataError` that
names the file, so command-line tools print one line instead of a traceback.
`check_contract` then refuses a model of another shape (another input size or
layout, no `seg` output), saying what it expected and what it found.

Reference: Keras 3 saving (`keras.saving.load_model`, `safe_mode`);
docs/deployment.md ("What is safe to load").
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from boundary_aware.errors import DataError

REFUSED_SUFFIXES = (".h5", ".hdf5", ".pkl", ".pickle", ".npy", ".npz")


def load_keras_model(path: str | os.PathLike, compile: bool = False):
    """`keras.saving.load_model(path, safe_mode=True)`, with clear errors."""
    import keras

    import boundary_aware.layers  # noqa: F401  (registers the custom layers)
    path = Path(path)
    if path.suffix.lower() in REFUSED_SUFFIXES:
        raise DataError(f"{path}: {path.suffix} models are refused (they can run code, or are "
                        f"legacy); use a .keras file, a training workdir or an exported SavedModel")
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    if path.suffix != ".keras":
        raise DataError(f"{path}: not a .keras file")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .keras model (a .keras file is a zip archive; this one "
                        f"is truncated, damaged or something else renamed)")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as err:  # Keras raises many types for a bad archive
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "safe_mode" in str(err) or "unsafe" in str(err).lower():
            raise DataError(f"{path}: refused: the model holds Python code (for example a Lambda "
                            f"layer), which is not loaded from files of unknown origin") from None
        raise DataError(f"{path}: cannot load this .keras model ({message})") from None


def check_contract(input_shape, outputs: dict, regions, source) -> None:
    """DataError naming `source`, what it expected and what it found, unless a model takes
    (N, H, H, C) slices of a fixed size and channel count and gives a `seg` output of one map
    per region of `regions` (`outputs`: {name: its number of maps, or None})."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d < 1 for d in shape) or \
            shape[0] != shape[1]:
        found = ", ".join("?" if d is None else str(d) for d in shape)
        raise DataError(f"{source}: takes input of shape (N, {found}); a model of this package "
                        f"takes square slices of one fixed size and channel count, (N, H, H, C)")
    if "seg" not in outputs:
        raise DataError(f"{source}: gives the output(s) {', '.join(map(str, outputs)) or 'none'}; "
                        f"a model of this package gives 'seg' (the tumor probabilities, one map "
                        f"per region; and 'edge' for the boundary-aware network)")
    if outputs["seg"] is not None and outputs["seg"] != len(regions):
        raise DataError(f"{source}: its 'seg' output has {outputs['seg']} map(s), but it is "
                        f"recorded as segmenting {len(regions)} region(s) "
                        f"({', '.join(regions)})")
