"""Training: poly schedule, SIGKILL mid-epoch and resume, NaN stop, JAX without tf.data."""

import json
import math
import signal

import keras
import numpy as np
import pytest

from boundary_aware.train import TrainingError, poly_learning_rate, train
from experiments.table1 import get_config
from tests.conftest import tiny_prepared, module_code, run_python

# U-Net: the resume logic is the same for every model, and it compiles fastest.
TINY = ["--config.model.kwargs.base_filters=4", "--config.data.image_size=32",
        "--config.train.batch_size=4", "--config.train.epochs=3", "--config.eval.batch_size=8",
        "--config.train.jit_compile=off"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return tiny_prepared(tmp_path_factory.mktemp("train_data"))


def train_command(workdir, prepared, extra=(), kill_at=None):
    """Python code that trains through the command-line entry (optionally killed at EPOCH:BATCH)."""
    args = ["--config=experiments/table1.py:unet,demo", f"--workdir={workdir}",
            f"--config.data.prepared_dir={prepared}", *TINY, *extra]
    if kill_at:
        return module_code("tests.fault_injection", [*args, f"--kill_at={kill_at}"])
    return module_code("boundary_aware.train", args)


def test_poly_learning_rate_is_eq6():
    assert poly_learning_rate(0, 1e-3, 10) == pytest.approx(1e-3)
    assert poly_learning_rate(5, 1e-3, 10) == pytest.approx(1e-3 * 0.5 ** 0.9)
    assert poly_learning_rate(9, 1e-3, 10) == pytest.approx(1e-3 * 0.1 ** 0.9)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_matches_an_uninterrupted_run(tmp_path, prepared):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    result = run_python(train_command(straight, prepared), env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_python(train_command(killed, prepared, kill_at="2:1"),
                        env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == -signal.SIGKILL
    state = json.loads((killed / "state.json").read_text())
    assert state["epoch"] == 1 and not state.get("completed")
    assert not (killed / "final.keras").exists()
    result = run_python(train_command(killed, prepared), env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming after epoch 1" in result.stdout

    a = json.loads((straight / "state.json").read_text())
    b = json.loads((killed / "state.json").read_text())
    lrs = [row["learning_rate"] for row in b["history"]]
    assert lrs == pytest.approx([poly_learning_rate(e, 1e-3, 3) for e in range(3)], rel=1e-6)
    assert [r["learning_rate"] for r in a["history"]] == lrs
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    assert [r["val_dice"] for r in a["history"]] == [r["val_dice"] for r in b["history"]]
    import boundary_aware.layers  # noqa: F401
    wa = keras.saving.load_model(straight / "final.keras").get_weights()
    wb = keras.saving.load_model(killed / "final.keras").get_weights()
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)  # exact on CPU with op determinism
    for name in ("config.json", "history.csv", "best.keras", "last.keras"):
        assert (killed / name).exists()
    assert b["data_manifest_sha256"] and b["package_version"]
    assert (killed / "tensorboard").is_dir()


def test_a_workdir_refuses_another_config_once_it_has_trained(tmp_path, prepared):
    from boundary_aware.prepared import Manifest
    from boundary_aware.run_directory import RunDirectory
    from boundary_aware.train import _start_or_check
    config = get_config("unet,demo")
    config.data.prepared_dir = str(prepared)
    config.data.image_size = 32
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps({"variant": "something else"}))
    (workdir / "state.json").write_text(json.dumps({"epoch": 1}))
    with pytest.raises(TrainingError, match="another config"):
        train(config, workdir)
    # a config left by a start that trained nothing (it failed before its first epoch) is
    # replaced: the corrected command is not refused
    (workdir / "state.json").unlink()
    _start_or_check(RunDirectory(workdir), config, Manifest.read(prepared), prepared)
    assert json.loads((workdir / "config.json").read_text()) == json.loads(config.to_json())


def test_a_run_from_before_a_config_key_existed_still_resumes(tmp_path, prepared):
    """A run whose config.json was written before keys such as `train.bn_statistics_batches`
    existed, or under a key's former name (`data.modalities`), resumes under today's config,
    whose values of them give its old behaviour; a value that changes the behaviour is still
    refused."""
    from boundary_aware.prepared import Manifest
    from boundary_aware.run_directory import RunDirectory
    from boundary_aware.train import _start_or_check
    config = get_config("unet,demo")
    config.data.prepared_dir = str(prepared)
    config.data.image_size = 32
    old = json.loads(config.to_json())
    del old["train"]["bn_statistics_batches"], old["data"]["context_slices"]
    old["data"]["modalities"] = old["data"].pop("sequences")  # the key's former name
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(old))
    (workdir / "state.json").write_text(json.dumps({"epoch": 1}))
    run = RunDirectory(workdir)
    _start_or_check(run, config, Manifest.read(prepared), prepared)
    assert json.loads((workdir / "config.json").read_text()) == old  # kept as it was
    config.train.bn_statistics_batches = 2
    with pytest.raises(TrainingError, match="another config"):
        _start_or_check(run, config, Manifest.read(prepared), prepared)


@pytest.mark.slow
def test_nan_loss_stops_with_an_error_and_keeps_the_backup(tmp_path, prepared):
    config = get_config("unet,demo")
    config.data.prepared_dir = str(prepared)
    config.data.image_size = 32
    config.model.kwargs.base_filters = 4
    config.train.batch_size = 4
    config.train.epochs = 3
    config.train.jit_compile = "off"
    config.train.learning_rate = 1e30  # diverges within a few steps
    with pytest.raises(TrainingError, match=r"loss became (nan|inf)"):
        train(config, tmp_path / "run")
    state = json.loads((tmp_path / "run" / "state.json").read_text()) \
        if (tmp_path / "run" / "state.json").exists() else {"epoch": 0}
    assert not (tmp_path / "run" / "final.keras").exists()
    assert all(math.isfinite(r["loss"]) for r in state.get("history", []))


@pytest.mark.slow
def test_trains_on_jax_without_tensorflow(tmp_path, prepared):
    """TensorFlow made unimportable (as if not installed): the PyDataset path trains."""
    code = train_command(tmp_path / "jax", prepared, ["--config.train.epochs=1"])
    code = "import sys; sys.modules['tensorflow'] = None  # any import of it now fails\n" + code
    result = run_python(code, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "jax" / "state.json").read_text())
    assert state["backend"] == "jax" and state["completed"] and state["epoch"] == 1


@pytest.mark.slow
def test_no_edge_loss_run_trains_without_the_per_trace_gradient_warning(tmp_path, prepared, capsys):
    """The edge head of "no edge loss" gets no gradient by design: said once, not warned per trace."""
    import warnings

    config = get_config("ours_no_edge,demo")
    config.data.prepared_dir = str(prepared)
    config.data.image_size = 32
    config.model.kwargs.update(base_filters=4, shape_filters=4, dspp_rates=(1, 2, 3))
    config.train.batch_size = 4
    config.train.epochs = 1
    config.train.jit_compile = "off"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = train(config, tmp_path / "run")
    assert state["completed"]
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    assert capsys.readouterr().out.count("the edge head is not trained") == 1


@pytest.mark.slow
def test_a_config_error_is_named_before_anything_is_written_and_the_fix_then_trains(
        tmp_path, prepared):
    from boundary_aware.errors import ConfigError

    def config_with(change=None):
        config = get_config("ours,demo")
        config.data.prepared_dir = str(prepared)
        config.data.image_size = 32
        config.model.kwargs.update(base_filters=4, shape_filters=4, dspp_rates=(1, 2, 3))
        config.train.update(batch_size=4, epochs=1, jit_compile="off")
        if change:
            change(config)
        return config

    bad = [(lambda c: setattr(c.loss, "edge_bce_reduction", "meen"),
            r"loss.edge_bce_reduction = 'meen': must be one of \('mean', 'sum', 'scaled_mean'\)"),
           (lambda c: setattr(c.data, "pipeline", "tfdata"), "data.pipeline = 'tfdata'"),
           (lambda c: setattr(c.data.augment, "rotate_p", 1.5), r"rotate_p must be in \[0, 1\]"),
           (lambda c: setattr(c.model.kwargs, "fusion", "nearest"), "fusion must be one of"),
           (lambda c: setattr(c.model.kwargs, "widht", 3), r"unknown keyword\(s\) \['widht'\]"),
           (lambda c: setattr(c.loss.weights, "edge_bc", 0.1), r"unknown loss term\(s\)"),
           (lambda c: setattr(c.train, "epoch", 5), "train.epoch = 5: unknown setting"),
           (lambda c: setattr(c.eval, "checkpoint", "worst"), "eval.checkpoint = 'worst'")]
    workdir = tmp_path / "run"
    for change, problem in bad:
        with pytest.raises(ConfigError, match=problem):
            train(config_with(change), workdir)
        assert not workdir.exists()
    state = train(config_with(), workdir)  # the corrected config trains in that workdir
    assert state["completed"] and state["epoch"] == 1


@pytest.mark.slow
def test_two_channel_data_trains_with_both_channels(tmp_path, prepared):
    """A prepared set of two channels made by hand (the T1c and a second image): the model
    takes both, and training moves the first convolution's weights of the second one."""
    import shutil

    from boundary_aware.prepared import load_prepared, Manifest, split_paths
    two = tmp_path / "two"
    shutil.copytree(prepared, two)
    for split in ("train", "val", "test"):
        images_path, _ = split_paths(two, split)
        images = np.load(images_path)
        second = np.where(images > 0, 1.0 - images, 0.0).astype(np.float32)
        np.save(images_path, np.concatenate([images, second], axis=-1))
    manifest = Manifest.read(two)
    manifest["channels"] = ["t1c", "flair"]
    from boundary_aware.files import file_sha256
    manifest["arrays"] = {p.name: file_sha256(p) for p in two.glob("*.npy")}  # made by hand
    manifest.write(two)
    images, _, _ = load_prepared(two, "train")
    assert images.shape[-1] == 2
    np.testing.assert_array_equal(images[..., 1], np.where(images[..., 0] > 0,
                                                           1.0 - images[..., 0], 0.0))
    config = get_config("unet,demo")
    config.data.prepared_dir = str(two)
    config.data.image_size = 32
    config.model.kwargs.base_filters = 4
    config.train.update(batch_size=4, epochs=1, jit_compile="off")
    with pytest.raises(TrainingError, match="holds the sequences t1c,flair, the config asks for "
                                            "data.sequences = t1c; prepare the data with"):
        train(config, tmp_path / "refused")  # the paper's T1c alone: another input
    assert not (tmp_path / "refused").exists()
    config.data.sequences = "t1c,flair"

    class FirstKernel(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.before = keras.ops.convert_to_numpy(self.model.get_layer("enc1_conv1").kernel)
    first = FirstKernel()
    state = train(config, tmp_path / "run", callbacks=[first])
    assert state["input_channels"] == ["t1c", "flair"]
    model = keras.saving.load_model(tmp_path / "run" / "final.keras", compile=False)
    assert model.input_shape == (None, 32, 32, 2)
    after = keras.ops.convert_to_numpy(model.get_layer("enc1_conv1").kernel)
    assert first.before.shape[2] == 2
    assert not np.allclose(after[:, :, 1], first.before[:, :, 1])  # the second channel trained


@pytest.mark.parametrize("gpu, capability, policy", [
    (False, None, "float32"),
    (True, (9, 0), "mixed_bfloat16"),  # H100 / H200: bfloat16, no loss scaling
    (True, (8, 0), "mixed_bfloat16"),  # A100
    (True, (7, 5), "mixed_float16"),   # T4: no bfloat16 units
    (True, None, "mixed_float16"),     # a GPU that does not say
])
def test_auto_precision_is_bfloat16_where_the_gpu_has_it(monkeypatch, gpu, capability, policy):
    from boundary_aware import runtime
    monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
    monkeypatch.setattr(runtime, "gpu_compute_capability", lambda: capability)
    assert runtime.resolve_precision("auto") == policy
    assert runtime.resolve_precision("float32") == "float32"  # explicit settings stay


@pytest.mark.slow
def test_recomputed_batch_norm_statistics_are_those_of_the_checkpointed_weights(tmp_path,
                                                                                 prepared):
    """With `train.bn_statistics_batches`, every checkpoint's batch-norm statistics are the
    ones its own weights give on the drawn training batches (recomputing them from the
    saved file changes nothing), and the recorded validation Dice is that checkpoint's.
    Without it, the moving averages lag the weights: recomputing moves them."""
    from boundary_aware.batch_statistics import batch_norm_layers, recompute
    from boundary_aware.checkpointing import mean_slice_dice
    from boundary_aware.prepared import load_prepared
    from boundary_aware.model_files import load_keras_model

    images, _, _ = load_prepared(prepared, "train")
    val_images, val_masks, _ = load_prepared(prepared, "val")
    moved = {}
    for batches in (0, 2):
        config = get_config("unet,demo")
        config.data.prepared_dir = str(prepared)
        config.data.image_size = 32
        config.model.kwargs.base_filters = 4
        config.train.update(batch_size=4, epochs=2, jit_compile="off",
                            bn_statistics_batches=batches)
        state = train(config, tmp_path / f"run{batches}")
        model = load_keras_model(tmp_path / f"run{batches}" / "last.keras")
        saved = [np.asarray(v) for layer in batch_norm_layers(model)
                 for v in (layer.moving_mean, layer.moving_variance)]
        assert mean_slice_dice(model, val_images, val_masks, 8, 0.5) == \
            state["history"][-1]["val_dice"]
        assert recompute(model, images, 2, 4, (config.train.seed, 1)) == 2
        again = [np.asarray(v) for layer in batch_norm_layers(model)
                 for v in (layer.moving_mean, layer.moving_variance)]
        moved[batches] = max(float(np.abs(a - b).max() / (1 + np.abs(a).max()))
                             for a, b in zip(saved, again))
    assert moved[2] < 1e-4 < 1e-2 < moved[0], moved
