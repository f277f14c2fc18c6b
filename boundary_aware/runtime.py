"""Where and how training runs: device, precision, distribution, XLA, determinism, verbosity.

Every question of the form "which device, which precision, which strategy"
is answered here and only here. Besides the data pipeline and the exporter,
this is the one module allowed to import TensorFlow, and it does so only
inside the functions that need it, so the package still runs on JAX where
TensorFlow is not installed.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 (mixed-precision training);
docs/performance.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys

import keras

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed (probed without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def has_gpu() -> bool:
    """Whether the current Keras backend sees a GPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch
        return torch.cuda.is_available()
    return False


def resolve_precision(precision: str) -> str:
    """`train.precision` to a Keras dtype policy: "auto" is mixed_float16 on a GPU, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "mixed_float16" if has_gpu() else "float32"
    return precision


def jit_compile_setting(value: str):
    """`train.jit_compile` ("auto", "on", "off") to Keras's `jit_compile` argument."""
    if value not in JIT_COMPILE:
        raise ValueError(f"train.jit_compile must be one of {sorted(JIT_COMPILE)}, got {value!r}")
    return JIT_COMPILE[value]


def distribution_scope():
    """The scope to build the model in: a tf.distribute strategy on TensorFlow
    (MirroredStrategy when several GPUs are visible), Keras's DataParallel
    distribution on JAX with several devices, else nothing."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
        return strategy.scope()
    if backend == "jax":
        import jax
        if len(jax.devices()) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
    return contextlib.nullcontext()


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Keras (Python, numpy, backend); with `deterministic`, TensorFlow's op
    determinism too, so that the same command twice gives the same numbers on CPU."""
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()


def fit_verbosity(setting) -> int:
    """`train.verbose`: "auto" is a progress bar on a terminal, one line per epoch otherwise."""
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 0
    return int(setting)


def uses_tf_data(pipeline: str) -> bool:
    """`data.pipeline` ("auto", "tf", "pydataset"): whether to feed training with tf.data.

    "auto" is tf.data on the TensorFlow backend where TensorFlow is installed,
    the `PyDataset` elsewhere.
    """
    if pipeline not in ("auto", "tf", "pydataset"):
        raise ValueError(f"data.pipeline must be auto, tf or pydataset, got {pipeline!r}")
    if pipeline == "auto":
        return keras.backend.backend() == "tensorflow" and tensorflow_available()
    return pipeline == "tf"
