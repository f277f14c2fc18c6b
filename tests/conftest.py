"""Shared test helpers. The Keras backend comes from KERAS_BACKEND (the Makefile
runs the `backend`-marked tests under both TensorFlow and JAX).

Two tiers: `make test` runs everything; `make test-quick` leaves out the tests
marked `slow` (they start processes or train beyond a few steps) and sets
BOUNDARY_AWARE_QUICK_TESTS=1, under which starting a process fails the test
that tries, so that a test that needs one is marked `slow` rather than
slowing the quick tier down."""

import os
import subprocess
import tempfile
from pathlib import Path

# JAX compiles one small program per weight shape to initialize a model (about 10 s for
# a tiny Ours on 2 cores); a compilation cache shared by this run's processes and its
# children compiles each once. Set before JAX is imported; the compiled code, and so
# every number, is the same with or without it.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(
    Path(tempfile.gettempdir()) / f"boundary-aware-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

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


@pytest.fixture(autouse=True, scope="session")
def _no_processes_in_the_quick_tier():
    if os.environ.get("BOUNDARY_AWARE_QUICK_TESTS") != "1":
        yield
        return

    def refuse(self, args, *rest, **kwargs):
        raise AssertionError(f"a quick-tier test started a process ({args!r}); mark the test "
                             f"@pytest.mark.slow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse)
        yield


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
