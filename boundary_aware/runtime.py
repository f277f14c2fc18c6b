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
import os
import re
import sys

import keras

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
PIPELINES = ("auto", "tf", "pydataset")
VERBOSITY = ("auto", 0, 1, 2)


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


def gpu_compute_capability() -> tuple[int, int] | None:
    """The (major, minor) CUDA compute capability of the first GPU the backend sees, None
    where there is none or it is not an NVIDIA GPU."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax
            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            value = getattr(gpus[0], "compute_capability", None) if gpus else None
            return tuple(int(v) for v in str(value).split(".")[:2]) if value else None
        if backend == "tensorflow":
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")
            details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
            value = details.get("compute_capability")
            return tuple(int(v) for v in value[:2]) if value else None
        if backend == "torch":
            import torch
            return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() \
                else None
    except (ValueError, TypeError, IndexError, RuntimeError):
        return None
    return None


def resolve_precision(precision: str) -> str:
    """`train.precision` to a Keras dtype policy. "auto": mixed_bfloat16 on a GPU that
    computes in bfloat16 (compute capability 8.0 on: Ampere, Hopper; no loss scaling, and
    2.16x float32 for Ours on an H200), mixed_float16 on an older GPU, float32 on a CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if not has_gpu():
            return "float32"
        capability = gpu_compute_capability()
        return "mixed_bfloat16" if capability is not None and capability >= (8, 0) \
            else "mixed_float16"
    return precision


def jit_compile_setting(value: str):
    """`train.jit_compile` ("auto", "on", "off") to Keras's `jit_compile` argument."""
    if value not in JIT_COMPILE:
        raise ValueError(f"train.jit_compile must be one of {sorted(JIT_COMPILE)}, got {value!r}")
    return JIT_COMPILE[value]


def distribution_scope():
    """The scope to build the model in: a tf.distribute strategy on TensorFlow
    (MirroredStrategy when several GPUs are visible), Keras's DataParallel
    distribution on JAX with several devices (in this process or across the processes
    `join_processes` joined), else nothing. Each process feeds its own share of every
    batch (`epochs.shard_positions`), so Keras does not shard the input again."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_logical_devices("GPU")
        # several logical CPUs exist only where they were configured (tests, a CPU cluster)
        devices = gpus if len(gpus) > 1 else tf.config.list_logical_devices("CPU")
        strategy = (tf.distribute.MirroredStrategy([d.name for d in devices]) if len(devices) > 1
                    else tf.distribute.get_strategy())
        return strategy.scope()
    if backend == "jax":
        import jax
        if len(jax.devices()) > 1:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(auto_shard_dataset=False))
    return contextlib.nullcontext()


def replicas() -> int:
    """How many replicas of the model compute this step together inside one process:
    the replicas of the TensorFlow strategy whose replica context this runs in, else 1
    (JAX's DataParallel computes one program over every device: its sums are global)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1


def sum_over_replicas(*values):
    """`values`, each summed over the replicas (`replicas()`) of this step; as given when
    there is one. Called from inside a TensorFlow replica context (a model's call)."""
    if replicas() == 1:
        return values
    import tensorflow as tf
    return tuple(tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, list(values)))


class ProcessError(RuntimeError):
    """Several processes cannot train one model as asked (wrong backend or numbers)."""


def join_processes(coordinator: str | None, count: int, index: int) -> None:
    """Make this process number `index` of `count` that train one model together, through
    `keras.distribution.initialize` (JAX's coordination service at `coordinator`,
    "host:port" of process 0). Must run before any computation. Nothing for one process.

    Only on JAX: Keras 3's `fit` under TensorFlow's MultiWorkerMirroredStrategy is
    reported broken (keras-team/keras#20585, tensorflow/tensorflow#72388). On CPUs the
    processes exchange gradients through Gloo."""
    if count <= 1:
        return
    if keras.backend.backend() != "jax":
        raise ProcessError(f"training in {count} processes needs KERAS_BACKEND=jax (TensorFlow's "
                           f"multi-worker strategy is not offered: docs/cluster.md)")
    if not 0 <= index < count:
        raise ProcessError(f"--process_id must be 0 to {count - 1}, got {index}")
    if not coordinator or ":" not in coordinator:
        raise ProcessError(f"--coordinator must be process 0's host:port, got {coordinator!r}")
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(coordinator, count, index)


@contextlib.contextmanager
def stop_with_peers(workdir):
    """Where several processes train one model: a failed exchange with the others (one of
    them stopped or was killed) becomes a `ProcessError` saying so; this process then
    stops too (`leave_processes`), and every process's files stay those of the last
    completed epoch, so the same commands resume."""
    try:
        yield
    except Exception as err:
        if process_shard()[1] == 1 or not _lost_contact(err):
            raise
        reason = str(err).strip().splitlines()[0]
        raise ProcessError(f"{workdir}: lost contact with another process of this training "
                           f"({reason}); this process stops too. Every process's run keeps its "
                           f"last completed epoch: start all of them again with the same "
                           f"commands to resume") from None


def _lost_contact(err: Exception) -> bool:
    """Whether `err` is a failed exchange between processes: XLA's runtime error, or a
    collective (Gloo on CPUs, NCCL on GPUs) or the coordination service failing inside
    another error (Keras gathers some values in Python)."""
    return (type(err).__name__ == "JaxRuntimeError"
            or re.search(r"\b(Gloo|NCCL)\b|CoordinationService", str(err)) is not None)


def leave_processes(code, processes: int) -> None:
    """End a process that failed while training with `processes - 1` others now, with exit
    status `code`: JAX's orderly shutdown would wait minutes at a barrier the others never
    reach, then abort. Returns (for the caller's own exit) where the process trains alone,
    without asking JAX (which would start its backends only to say so)."""
    if code and processes > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def process_shard() -> tuple[int, int]:
    """`(index, count)` of this process among those training one model ((0, 1) alone)."""
    if keras.backend.backend() == "jax":
        import jax
        return jax.process_index(), jax.process_count()
    return 0, 1


def gather_from_processes(value: int) -> list[int]:
    """`value` of every process training this model, in process order ([value] alone)."""
    if process_shard()[1] == 1:
        return [int(value)]
    import numpy as np
    from jax.experimental import multihost_utils
    return [int(v) for v in multihost_utils.process_allgather(np.array([value]), tiled=True)]


@contextlib.contextmanager
def without_distribution():
    """Keras's distribution switched off inside: for a model copy that lives on this
    process's devices alone (work each process does whole, such as validation)."""
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


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
    if pipeline not in PIPELINES:
        raise ValueError(f"data.pipeline must be one of {PIPELINES}, got {pipeline!r}")
    if pipeline == "auto":
        return keras.backend.backend() == "tensorflow" and tensorflow_available()
    return pipeline == "tf"


def inference_streams() -> int:
    """How many batches `predict` runs at once: 2 on TensorFlow with 2+ CPU cores, else 1.

    Without a GPU the boundary-aware network's inference is convolution-bound
    (about 180 GFLOP/s on 2 cores, near what one convolution reaches alone);
    two batches at a time, each on half the cores, keep the cores busy
    through the narrow and element-wise operations in between (~10% faster
    on 2 cores, docs/performance.md). JAX's jitted predict is not reentrant,
    and a GPU runs one batch at a time anyway.
    """
    import os
    if keras.backend.backend() != "tensorflow" or has_gpu() or (os.cpu_count() or 1) < 2:
        return 1
    return 2


def share_cores_between(streams: int) -> bool:
    """Give each of `streams` concurrent TensorFlow calls `cores // streams` threads.

    Only possible before TensorFlow runs its first operation; returns whether
    it took effect (later, the calls share TensorFlow's default pool).
    """
    import os
    if keras.backend.backend() != "tensorflow" or streams < 2:
        return False
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(
            max(1, (os.cpu_count() or 1) // streams))
        tf.config.threading.set_inter_op_parallelism_threads(streams)
    except RuntimeError:  # TensorFlow is already initialized
        return False
    return True


def inference_batch_size() -> int:
    """Slices per forward pass of `predict` when none is given: 16 on a GPU, 2 on CPUs.

    On CPUs a larger batch is no faster per slice (the convolutions already
    run near the cores' peak), and the last batch is padded to full size, so
    a small batch wastes the least (docs/performance.md).
    """
    return 16 if has_gpu() else 2
