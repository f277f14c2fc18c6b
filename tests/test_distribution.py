"""Data parallel training on a CPU: two virtual JAX devices in one process, two logical
TensorFlow CPUs under MirroredStrategy, and two processes joined through
`keras.distribution.initialize`, give the weights one device gives; a run stopped under
any of them resumes to them, and a killed process stops the other with one line."""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from experiments import steps
from tests.conftest import module_code, run_python, tiny_prepared

pytestmark = pytest.mark.slow  # every test here starts processes

# The tiny Ours both tests train: 12 training slices, 3 batches of 4 per epoch, 3 epochs.
TINY = {"data.image_size": 32, "model.kwargs.base_filters": 4, "model.kwargs.shape_filters": 4,
        "model.kwargs.dspp_rates": (1, 2), "train.batch_size": 4, "train.epochs": 3,
        "eval.tta": "none"}

# Each run's final weights (every variable, statistics included) to RUN/weights.npz.
DUMP = """
for run in {runs!r}:
    model = load_keras_model(run + "/final.keras")
    np.savez(run + "/weights.npz", **{{v.path.replace("/", "|"): np.asarray(v)
                                       for v in model.weights}})
"""

TRAIN = """
import json, os, sys
if os.environ["KERAS_BACKEND"] == "tensorflow" and {devices} > 1:  # before TensorFlow starts
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * {devices})
import keras, numpy as np
from boundary_aware import runtime
from boundary_aware.model_files import load_keras_model
from boundary_aware.train import train
from experiments.table1 import get_config

class Stop(keras.callbacks.Callback):  # a kill after the first epoch's checkpoint
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt

config = get_config("ours,demo")
config.data.prepared_dir = {prepared!r}
for key, value in {tiny!r}.items():
    *parents, last = key.split(".")
    section = config
    for name in parents:
        section = section[name]
    section[last] = value
if {stop!r}:
    try:
        train(config, {workdir!r}, callbacks=[Stop()])
    except KeyboardInterrupt:
        pass
state = train(config, {workdir!r})
with runtime.distribution_scope():
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        devices = tf.distribute.get_strategy().num_replicas_in_sync
    else:
        import jax
        devices = len(jax.devices())
""" + DUMP + """
print("RESULT " + json.dumps({{"devices": devices}}))
"""


def _dump_weights(*runs):
    """DUMP in one child (`_train_in_process`'s child runs it itself)."""
    code = "import numpy as np\nfrom boundary_aware.model_files import load_keras_model\n" + \
        DUMP.format(runs=[str(run) for run in runs])
    result = run_python(code, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]


def _weights(run):
    """{variable path: array} of RUN/weights.npz."""
    found = np.load(run / "weights.npz")
    return {k.replace("|", "/"): found[k] for k in found.files}


def _losses(run):
    return [row["loss"] for row in json.loads((run / "state.json").read_text())["history"]]


def _train_in_process(prepared, workdir, devices, stop, backend="jax"):
    env = {"KERAS_BACKEND": backend,
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    code = TRAIN.format(prepared=str(prepared), workdir=str(workdir), stop=stop, tiny=TINY,
                        devices=devices, runs=[str(workdir)])
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ")[-1])
    return {**found, "resumed": f"{workdir}: resuming after epoch 1" in result.stdout}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny data, and Ours trained on it uninterrupted by one process on one device."""
    root = tmp_path_factory.mktemp("distribution")
    prepared = tiny_prepared(root)
    found = _train_in_process(prepared, root / "one", 1, stop=False)
    assert found["devices"] == 1
    return prepared, _losses(root / "one"), _weights(root / "one")


def assert_weights_close(found, weights):
    """Every weight within what Adam's first steps can move a weight whose gradient is at
    rounding level (a sign step of the learning rate either way, every step: twice the
    schedule's sum), every moving statistic within 3e-2 of its scale. The same numbers
    rounded in another order stay inside (measured: 1.7e-4 in the weights and 5.6e-3 in
    the moving statistics on an Intel CPU with AMX, 5.8e-6 on an AMD EPYC); the losses,
    checked to 1e-5 beside, catch what a real difference does (per-device statistics, a
    lost or repeated half batch)."""
    from boundary_aware.train import poly_learning_rate
    from experiments.table1 import get_config
    train = get_config("ours,demo").train
    assert found.keys() == weights.keys() and len(found) > 100
    steps_per_epoch = 3  # 12 training slices in batches of 4
    bound = 2 * steps_per_epoch * sum(
        poly_learning_rate(epoch, train.learning_rate, TINY["train.epochs"], train.poly_power)
        for epoch in range(TINY["train.epochs"]))
    for name, a in weights.items():
        scale = max(1.0, float(np.abs(a).max()))
        tolerance = 3e-2 * scale if "moving_" in name else bound
        np.testing.assert_allclose(found[name], a, rtol=0, atol=tolerance, err_msg=name)


def assert_same_training(reference, run):
    """Batch-norm statistics and gradients summed over two halves instead of one batch: the
    same numbers, rounded in another order: the losses within 1e-5, the weights as
    `assert_weights_close` says."""
    _, losses, weights = reference
    np.testing.assert_allclose(_losses(run), losses, rtol=1e-5)
    found = _weights(run)
    assert_weights_close(found, weights)
    return found


def test_two_devices_train_as_one_and_resume(reference, tmp_path):
    """Keras's DataParallel (chosen by `runtime.distribution_scope` when JAX sees several
    devices) splits each batch of 4 across two devices. The run stopped after its first
    epoch resumes to the weights of the uninterrupted run on one device."""
    found = _train_in_process(reference[0], tmp_path / "two", 2, stop=True)
    assert found["devices"] == 2 and found["resumed"]
    assert_same_training(reference, tmp_path / "two")


@pytest.fixture(scope="module")
def tensorflow_reference(reference, tmp_path_factory):
    """The same data, and Ours trained on it by TensorFlow on one device."""
    run = tmp_path_factory.mktemp("tensorflow") / "one"
    assert _train_in_process(reference[0], run, 1, stop=False, backend="tensorflow") == \
        {"devices": 1, "resumed": False}
    return _losses(run), _weights(run)


def test_two_tensorflow_devices_train_as_one_and_resume(reference, tensorflow_reference,
                                                         tmp_path):
    """MirroredStrategy over two logical CPUs (`runtime.distribution_scope`) splits each
    batch of 4 in two. Batch normalization's statistics and every loss term are sums over
    both halves (`runtime.sum_over_replicas`), so the run stopped after its first epoch and
    resumed trains what one device trains.

    Tolerance: the halves are computed by other kernels than the whole batch (TensorFlow's
    CPU kernels round differently by batch size), and Adam's first steps are sign steps: a
    weight whose gradient is at rounding level moves by up to the learning rate per step,
    either way. So the losses agree to 2e-4 (measured 5.5e-5), every weight moves apart by
    at most twice the learning rates summed over the steps (1.2e-2; measured 3.4e-3), and a
    moving statistic by at most 3e-2 of its scale (measured 1.1e-2). Per-replica statistics
    (Keras's default) put the losses 7e-4 apart; the first epoch trained on the second's
    batches (Keras reads one batch more under a strategy) moves weights by 0.2."""
    losses, weights = tensorflow_reference
    run = tmp_path / "two"
    assert _train_in_process(reference[0], run, 2, stop=True, backend="tensorflow") == \
        {"devices": 2, "resumed": True}
    np.testing.assert_allclose(_losses(run), losses, rtol=2e-4)
    assert_weights_close(_weights(run), weights)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_processes(prepared, runs, kill_second=None, timeout=300):
    """`boundary-aware-train` as two processes joined on localhost, each with its own
    workdir in `runs`; `kill_second`: the `tests.kill_on_write` spec that kills the
    second. Returns [(exit status, stderr)] per process."""
    coordinator = f"localhost:{_free_port()}"
    overrides = [f"--config.{key}={value}" for key, value in TINY.items()]
    children = []
    for index, run in enumerate(runs):
        argv = ["--config=experiments/table1.py:ours,demo", f"--config.data.prepared_dir={prepared}",
                *overrides, f"--workdir={run}", f"--coordinator={coordinator}",
                "--num_processes=2", f"--process_id={index}"]
        code = module_code("boundary_aware.train", argv) if index == 0 or not kill_second else \
            module_code("tests.kill_on_write", [*kill_second, "boundary_aware.train", *argv])
        children.append(subprocess.Popen(
            [sys.executable, "-c", code], cwd=steps.ROOT, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=steps.python_env({"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"})))
    results = []
    for child in children:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for c in children:
                c.kill()
            raise
        results.append((child.returncode, out + err))
    return results


def test_two_processes_train_as_one_survive_a_kill_and_resume(reference, tmp_path):
    """Two processes (one device each) feed their halves of every batch. The second is
    killed just before it records its second epoch (its `last.keras` of epoch 2 is written,
    its state still says 1); the first, whose epoch 2 is complete, stops at the next
    exchange with one line. The same two commands then resume both from epoch 1 (the first
    steps back to its kept checkpoint) and end with identical weights, those of one
    process training alone."""
    prepared = reference[0]
    runs = [tmp_path / "p0", tmp_path / "p1"]
    (first, said), (second, _) = _train_processes(prepared, runs, ["state.json", "2", "before"])
    assert second == -9
    assert first == 1, said[-3000:]
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost contact with another process" in errors[0], said[-3000:]
    assert "Traceback" not in said
    assert [json.loads((r / "state.json").read_text())["epoch"] for r in runs] == [2, 1]

    results = _train_processes(prepared, runs)
    assert [code for code, _ in results] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    assert "resuming with it from previous.keras" in results[0][1]
    _dump_weights(*runs)
    first_weights = assert_same_training(reference, runs[0])
    for a, b in zip(first_weights, _weights(runs[1])):
        np.testing.assert_array_equal(a, b)  # every process ends with the same weights


def test_several_processes_need_jax(tmp_path):
    """TensorFlow's multi-worker strategy is not offered: one line says so."""
    result = run_python(module_code("boundary_aware.train", [
        "--config=experiments/table1.py:ours,demo", f"--workdir={tmp_path / 'run'}",
        "--coordinator=localhost:1", "--num_processes=2", "--process_id=0"]),
        env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: training in 2 processes needs KERAS_BACKEND=jax (TensorFlow's multi-worker "
        "strategy is not offered: docs/cluster.md)")
    assert not (tmp_path / "run").exists()
