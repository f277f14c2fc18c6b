"""Data parallel training on several devices, on a CPU: two virtual JAX devices give the
weights one device gives, and a run stopped under the distribution resumes exactly."""

import json

import numpy as np

from tests.conftest import run_python, tiny_prepared

TRAIN = """
import json, sys
import jax, keras, numpy as np
from boundary_aware.model_files import load_keras_model
from boundary_aware.train import train
from experiments.table1 import get_config

class Stop(keras.callbacks.Callback):  # a kill after the first epoch's checkpoint
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt

config = get_config("ours,demo")
config.data.update(prepared_dir={prepared!r}, image_size=32)
config.model.kwargs.update(base_filters=4, shape_filters=4, dspp_rates=(1, 2))
config.train.update(batch_size=4, epochs=2)
config.eval.tta = "none"
if {stop!r}:
    try:
        train(config, {workdir!r}, callbacks=[Stop()])
    except KeyboardInterrupt:
        pass
state = train(config, {workdir!r})
weights = load_keras_model({workdir!r} + "/final.keras").get_weights()
np.savez({workdir!r} + "/weights.npz", *weights)
print("RESULT " + json.dumps({{"devices": len(jax.devices()),
                               "losses": [h["loss"] for h in state["history"]]}}))
"""


def _train(prepared, workdir, devices, stop):
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    result = run_python(TRAIN.format(prepared=str(prepared), workdir=str(workdir), stop=stop),
                        env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ")[-1])
    weights = np.load(workdir / "weights.npz")
    return found, [weights[k] for k in weights.files]


def test_two_devices_train_as_one_and_resume_exactly(tmp_path):
    """Keras's DataParallel (chosen by `runtime.distribution_scope` when JAX sees several
    devices) splits each batch of 4 across two devices. The batch-norm statistics and the
    gradients are then sums over the two halves instead of one sum: the same numbers,
    rounded in another order. After ten Adam steps of Ours that moves no weight (the
    batch-norm moving statistics included) by more than 1e-4 of its scale; a real
    difference (per-device statistics, a lost half batch) moves them by 1e-2 or more.
    The run stopped after its first epoch under the two devices resumes to the weights of
    the uninterrupted run on one device within the same bound."""
    prepared = tiny_prepared(tmp_path)
    one, one_weights = _train(prepared, tmp_path / "one", 1, stop=False)
    two, two_weights = _train(prepared, tmp_path / "two", 2, stop=True)
    assert (one["devices"], two["devices"]) == (1, 2)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    assert len(one_weights) == len(two_weights) > 100  # every variable, statistics included
    for a, b in zip(one_weights, two_weights):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(a).max())))
