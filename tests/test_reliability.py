"""Faults and misuse: killed writes, a full disk, concurrent runs, damaged checkpoints.

After each fault no half-written file sits under a final name, a rerun of
the same command completes, and training's final weights equal those of an
uninterrupted run (CPU runs are deterministic).
"""

import errno
import json
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest

from boundary_aware.errors import LockedError
from boundary_aware.files import exclusive_lock
from boundary_aware.run_directory import METRICS_FORMAT, RunDirectory
from boundary_aware.train import TrainingError, train
from experiments.table1 import get_config
from tests.conftest import tiny_prepared, ROOT, module_code, run_python

pytestmark = pytest.mark.slow  # every test here starts processes

TINY = {"model.kwargs.base_filters": 4, "data.image_size": 32, "train.batch_size": 4,
        "train.epochs": 3, "eval.batch_size": 8, "train.jit_compile": "off"}
TF = {"KERAS_BACKEND": "tensorflow"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return tiny_prepared(tmp_path_factory.mktemp("reliability"))


def args(workdir, prepared):
    return ["--config=experiments/table1.py:unet,demo", f"--workdir={workdir}",
            f"--config.data.prepared_dir={prepared}",
            *[f"--config.{k}={v}" for k, v in TINY.items()]]


def config(prepared):
    c = get_config("unet,demo")
    c.data.prepared_dir = str(prepared)
    for key, value in TINY.items():
        section, *rest = key.split(".")
        target = c[section]
        for part in rest[:-1]:
            target = target[part]
        target[rest[-1]] = value
    return c


def run_train(workdir, prepared, kill=None):
    """Train through the command line in a fresh process; `kill` = (name, n, before|after)."""
    code = module_code("boundary_aware.train", args(workdir, prepared)) if kill is None else \
        module_code("tests.kill_on_write", [*map(str, kill), "boundary_aware.train",
                                            *args(workdir, prepared)])
    return run_python(code, env=TF)


def weights(path):
    import boundary_aware.layers  # noqa: F401
    return keras.saving.load_model(path, compile=False).get_weights()


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(x, y)


def assert_whole_files(run):
    """Every file under its final name is complete: checkpoints open, JSON parses."""
    for path in run.glob("*.keras"):
        assert zipfile.is_zipfile(path), path
        zipfile.ZipFile(path).testzip()
    for path in run.glob("*.json"):
        json.loads(path.read_text())


@pytest.fixture(scope="module")
def straight(prepared, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight") / "run"
    result = run_train(workdir, prepared)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


# ---- SIGKILL around the writes of training ----------------------------------

@pytest.mark.parametrize("kill, says", [
    (("last.keras", 2, "after"), "last.keras does not match state.json"),  # before state.json
    (("state.json", 2, "after"), "resuming after epoch 2"),
    (("final.keras", 1, "before"), "already trained for 3 epochs"),
])
def test_sigkill_around_a_training_write_then_rerun_gives_the_uninterrupted_weights(
        kill, says, straight, prepared, tmp_path):
    workdir = tmp_path / "run"
    result = run_train(workdir, prepared, kill)
    assert result.returncode == -9, result.stderr[-3000:]
    assert_whole_files(workdir)
    result = run_train(workdir, prepared)
    assert result.returncode == 0, result.stderr[-3000:]
    assert says in result.stdout
    assert_same_weights(straight / "final.keras", workdir / "final.keras")
    assert RunDirectory(workdir).is_complete()
    assert not [p.name for p in workdir.iterdir() if p.name.startswith(".")]  # no leftovers


def test_a_damaged_last_checkpoint_falls_back_to_the_kept_one(straight, prepared, tmp_path):
    workdir = tmp_path / "run"
    result = run_train(workdir, prepared, ("state.json", 2, "after"))  # killed after epoch 2
    assert result.returncode == -9
    last = workdir / "last.keras"
    last.write_bytes(last.read_bytes()[:1000])  # a truncated file
    result = run_train(workdir, prepared)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "last.keras is missing or damaged; resuming from previous.keras, the checkpoint of " \
           "epoch 1" in result.stdout
    assert_same_weights(straight / "final.keras", workdir / "final.keras")
    state = RunDirectory(workdir).read_state()
    assert [r["epoch"] for r in state["history"]] == [1, 2, 3]


def test_checkpoints_without_state_are_not_trained_over_unless_told(straight, prepared, tmp_path):
    import shutil
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    (workdir / "state.json").unlink()
    best = (workdir / "best.keras").read_bytes()
    with pytest.raises(TrainingError, match="holds checkpoints but no state.json.*--restart"):
        train(config(prepared), workdir)
    assert (workdir / "best.keras").read_bytes() == best
    state = train(config(prepared), workdir, restart=True)
    assert state["completed"] and state["epoch"] == 3


# ---- a full disk ------------------------------------------------------------

def test_a_full_disk_keeps_the_last_good_epoch_and_the_resume_is_exact(straight, prepared,
                                                                      tmp_path, monkeypatch):
    import boundary_aware.checkpointing as checkpointing
    real = checkpointing.atomic_save_model
    calls = []

    def full_disk(model, path, **kwargs):
        calls.append(path.name)
        if calls.count("last.keras") == 2:  # epoch 2's checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model, path, **kwargs)
    monkeypatch.setattr(checkpointing, "atomic_save_model", full_disk)
    workdir = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"cannot write \(\[Errno 28\] No space left.*last "
                                            r"completed epoch \(1\) are intact"):
        train(config(prepared), workdir)
    monkeypatch.undo()
    assert RunDirectory(workdir).read_state()["epoch"] == 1
    assert_whole_files(workdir)
    train(config(prepared), workdir)  # the disk is fixed
    assert_same_weights(straight / "final.keras", workdir / "final.keras")


def test_a_full_disk_while_writing_metrics_keeps_the_old_ones(straight, tmp_path, monkeypatch):
    import shutil

    from boundary_aware.errors import DataError
    from boundary_aware.evaluate import evaluate
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    RunDirectory(workdir).write_metrics({"old": True})

    def full_disk(self, metrics):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(RunDirectory, "write_metrics", full_disk)
    with pytest.raises(DataError, match="metrics.json: cannot write .*No space left"):
        evaluate(workdir, per_volume=False)
    assert json.loads((workdir / "metrics.json").read_text()) == {"format_version": METRICS_FORMAT,
                                                                   "old": True}


# ---- two at once ------------------------------------------------------------

@pytest.fixture
def holder():
    """Hold a lock from another process: holder(lock_path, what) -> that process's PID."""
    processes = []

    def hold(lock_path, what):
        code = ("import sys, time; from boundary_aware.files import exclusive_lock\n"
                f"with exclusive_lock({str(lock_path)!r}, {what!r}):\n"
                "    print('locked', flush=True); time.sleep(120)\n")
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                   text=True, env={"PYTHONPATH": str(ROOT)})
        assert process.stdout.readline().strip() == "locked"
        processes.append(process)
        return process.pid
    yield hold
    for process in processes:
        process.kill()
        process.wait()


def test_a_second_training_in_the_same_workdir_refuses_naming_the_first(straight, prepared,
                                                                       tmp_path, holder):
    workdir = tmp_path / "run"
    workdir.mkdir()
    pid = holder(RunDirectory(workdir).lock_path, str(workdir))
    result = run_python(module_code("boundary_aware.train", args(workdir, prepared)), env=TF)
    assert result.returncode == 1
    assert f"error: {workdir}: in use by PID {pid} on " in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == [".lock"]  # the holder's, nothing else


def test_evaluation_and_training_exclude_each_other(straight, prepared, tmp_path):
    import shutil

    from boundary_aware.evaluate import evaluate
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    with RunDirectory(workdir).lock():
        with pytest.raises(LockedError, match=f"PID {__import__('os').getpid()}"):
            evaluate(workdir, per_volume=False)
        with pytest.raises(LockedError):
            train(config(prepared), workdir)
    assert not RunDirectory(workdir).lock_path.exists()  # released and removed


def test_a_killed_holder_releases_its_lock(tmp_path):
    code = ("import os, signal; from boundary_aware.files import exclusive_lock\n"
            f"with exclusive_lock({str(tmp_path / 'x.lock')!r}, 'x'):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    assert run_python(code).returncode == -9
    assert (tmp_path / "x.lock").exists()  # left behind, but not held
    start = time.time()
    with exclusive_lock(tmp_path / "x.lock", "x"):
        pass
    assert time.time() - start < 5 and not (tmp_path / "x.lock").exists()


# ---- SIGKILL around the final rename of preparation, export and predict ------

def tool_args(tool, prepared, straight, out):
    brats = prepared.parent / "brats"
    case = ROOT / "tests" / "data" / "brats_samples" / "BraTS2013_pat0005" / \
        "BraTS2013_pat0005_t1ce.nii.gz"
    return {"prepare": ("data_prep.prepare_brats", [f"--brats_dir={brats}", f"--out_dir={out}",
                                                    "--image_size=32", "--slices_per_case=4",
                                                    "--workers=1"]),
            "export": ("boundary_aware.export", [f"--workdir={straight}", f"--out={out}"]),
            "predict": ("boundary_aware.predict", [f"--model={straight}", f"--input={case}",
                                                   f"--output={out}"])}[tool]


@pytest.mark.parametrize("tool, name", [("prepare", "out"), ("export", "out"),
                                        ("predict", "out.nii.gz")])
@pytest.mark.parametrize("when", ["before", "after"])
def test_sigkill_around_the_final_rename_leaves_no_partial_output(tool, name, when, prepared,
                                                                  straight, tmp_path):
    out = tmp_path / name
    module, tool_argv = tool_args(tool, prepared, straight, out)
    killed = run_python(module_code("tests.kill_on_write", [name, "1", when, module, *tool_argv]),
                        env=TF)
    assert killed.returncode == -9, killed.stderr[-3000:]
    if when == "before":
        assert not out.exists()  # the complete result waits under its hidden temporary name
    else:
        assert out.exists()
    again = run_python(module_code(module, tool_argv), env=TF)
    if when == "after" and tool != "prepare":  # the output is there: refused without --overwrite
        assert again.returncode == 1 and "already exists" in again.stderr
    else:
        assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # leftovers removed
    if tool == "prepare":
        assert json.loads((out / "manifest.json").read_text())["options"]["image_size"] == 32
    elif tool == "export":
        assert (out / "saved_model.pb").is_file() and (out / "model_card.json").is_file()
    else:
        import nibabel as nib
        assert nib.load(str(out)).get_fdata().shape == (240, 240, 155)
