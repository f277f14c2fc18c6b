"""Shared test helpers. The Keras backend comes from KERAS_BACKEND (the Makefile
runs the `backend`-marked tests under both TensorFlow and JAX)."""

from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def value_and_grad(fn, x):
    """`(fn(x), d fn / d x)` as numpy, for whichever backend Keras runs on."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return np.asarray(y), np.asarray(tape.gradient(y, x))
    if backend == "jax":
        import jax
        y, g = jax.value_and_grad(fn)(x)
        return np.asarray(y), np.asarray(g)
    if backend == "torch":
        import torch
        x = torch.tensor(x, requires_grad=True)
        y = fn(x)
        y.backward()
        return y.detach().cpu().numpy(), x.grad.cpu().numpy()
    raise NotImplementedError(backend)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def run_python(code, env=None, timeout=300):
    """Run `code` in a fresh interpreter (same backend unless env overrides)."""
    from experiments import steps
    return steps.run_python(["-c", code], check=False, env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                             **(env or {})},
                             capture_output=True, text=True, timeout=timeout)


def tiny_prepared(root):
    """Five synthetic cases of 48 x 48 x 24 voxels, prepared at 32 x 32 (4 slices per case)
    in ROOT/prepared; the sources stay in ROOT/brats. Returns the prepared folder."""
    from data_prep import synthetic
    from data_prep.prepare_brats import prepare
    synthetic.generate(root / "brats", 5, seed=3, shape=(48, 48, 24))
    prepare(root / "brats", root / "prepared", slices_per_case=4, image_size=32, log=lambda *a: None)
    return root / "prepared"


def module_code(module, args):
    """Python code that runs `python -m module *args` (for `run_python`, which can prepend code)."""
    return f"import runpy, sys\nsys.argv = [{module!r}, *{list(args)!r}]\n" \
           f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
