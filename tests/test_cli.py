"""Console commands: installed for every tool, and each one fails with one line, not a traceback."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from boundary_aware.console import RETRACING, is_notice, started_as_command
from tests.conftest import ROOT

COMMANDS = {
    "boundary-aware-synthetic": "data_prep.synthetic:cli",
    "boundary-aware-prepare": "data_prep.prepare_brats:cli",
    "boundary-aware-train": "boundary_aware.train:cli",
    "boundary-aware-evaluate": "boundary_aware.evaluate:cli",
    "boundary-aware-predict": "boundary_aware.predict:cli",
    "boundary-aware-export": "boundary_aware.export:cli",
    "boundary-aware-table1": "experiments.reproduce_table1:cli",
    "boundary-aware-ablation": "experiments.ablation:cli",
    "boundary-aware-whole-volume": "experiments.whole_volume:cli",
    "boundary-aware-beyond-paper": "experiments.beyond_paper:cli",
    "boundary-aware-figures": "experiments.figures:cli",
    "boundary-aware-loss-balance": "boundary_aware.loss_balance:cli",
    "boundary-aware-model-stats": "boundary_aware.model_stats:main",
}


def test_every_tool_has_a_console_command():
    installed = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")
                 if ep.name.startswith("boundary-aware-")}
    assert {name: ep.value for name, ep in installed.items()} == COMMANDS
    for ep in installed.values():
        assert callable(ep.load())


CASE = "tests/data/brats_samples/BraTS2013_pat0005/BraTS2013_pat0005_t1ce.nii.gz"


def _model_files(folder):
    """Model files a user might be handed: damaged, a pickle renamed, one with a Lambda layer."""
    import pickle
    import zipfile

    import keras
    with zipfile.ZipFile(folder / "corrupt.keras", "w") as archive:  # a zip, but not a model
        archive.writestr("config.json", "{ this is not JSON")
    (folder / "pickle.keras").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    inputs = keras.Input((32, 32, 1))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    keras.Model(inputs, {"seg": outputs}).save(folder / "lambda.keras")


@pytest.mark.parametrize("args, problem", [
    (["boundary-aware-evaluate", "--workdir=/no/such/run"], "/no/such/run: no such run"),
    (["boundary-aware-predict", "--model=/no/such/model.keras", f"--input={CASE}",
      "--output=/tmp/x.nii.gz"], "/no/such/model.keras"),
    (["boundary-aware-predict", "--model=MODELS/corrupt.keras", f"--input={CASE}",
      "--output=/tmp/x.nii.gz"], "corrupt.keras: cannot load this .keras model"),
    (["boundary-aware-predict", "--model=MODELS/pickle.keras", f"--input={CASE}",
      "--output=/tmp/x.nii.gz"], "pickle.keras: not a .keras model"),
    (["boundary-aware-predict", "--model=MODELS/lambda.keras", f"--input={CASE}",
      "--output=/tmp/x.nii.gz"], "lambda.keras: refused: the model holds Python code"),
    (["boundary-aware-predict", "--model=x", "--input=y", "--output=z", "--threshold=abc"],
     "flag --threshold=abc"),
    (["boundary-aware-predict", "--model=x", f"--input={CASE}", "--output=z.nii.gz",
      "--threshold=2"], "--threshold must be between 0 and 1"),
    (["boundary-aware-train", "--config=experiments/table1.py:unet,demo", "--workdir=/tmp/w",
      "--config.train.epochz=3"], "'epochz' Did you mean \"epochs\""),
    (["boundary-aware-train", "--config=experiments/table1.py:unet,demo", "--workdir=NEW",
      "--config.data.prepared_dir=/no/such/data"], "/no/such/data/manifest.json: no prepared"),
    (["boundary-aware-train", "--config=experiments/table1.py:unet,demo", "--workdir=NEW",
      "--config.train.epochs=0"], "train.epochs = 0: must be an integer >= 1"),
    (["boundary-aware-train", "--config=experiments/table1.py:ours,demo", "--workdir=NEW",
      "--config.loss.edge_bce_reduction=meen"],
     "loss.edge_bce_reduction = 'meen': must be one of ('mean', 'sum', 'scaled_mean')"),
    (["boundary-aware-train", "--config=experiments/table1.py:ours,demo", "--workdir=NEW",
      "--config.data.pipeline=tfdata"], "data.pipeline = 'tfdata': must be one of"),
    (["boundary-aware-train", "--config=experiments/table1.py:ours,demo", "--workdir=NEW",
      "--config.data.augment.rotate_p=1.5"], "rotate_p must be in [0, 1], got 1.5"),
    (["boundary-aware-train", "--config=experiments/table1.py:ours,demo", "--workdir=NEW",
      "--config.model.kwargs.fusion=nearest"], "fusion must be one of ('area', 'bilinear')"),
    (["boundary-aware-train", "--config=experiments/table1.py:ours,demo", "--workdir=NEW",
      "--config.eval.checkpoint=worst"], "eval.checkpoint = 'worst': must be one of"),
    (["boundary-aware-train", "--config=experiments/table1.py:unet,demo", "--workdir=NEW",
      "--config.loss.weights.edge_dice=0.5"], "edge_dice has weight 0.5 but the model has no"),
    (["boundary-aware-prepare", "--brats_dir=/no/such/brats", "--out_dir=NEW"],
     "/no/such/brats: not a directory"),
    (["boundary-aware-prepare", "--brats_dir=tests/data/brats_samples", "--out_dir=NEW",
      "--image_size=40"], "unet needs a multiple of 16"),
    (["boundary-aware-export", "--workdir=/no/such/run", "--out=NEW"], "/no/such/run"),
    (["boundary-aware-prepare", "--brats_dir=tests/data/brats_samples", "--out_dir=NEW",
      "--modalities=t1c,dwi"], "--modalities must name distinct MRI sequences"),
    (["boundary-aware-prepare", "--brats_dir=tests/data/brats_samples", "--out_dir=NEW",
      "--regions=tc,ncr"], "--regions must name distinct tumor regions"),
    (["boundary-aware-synthetic", "--out_dir=NEW", "--modalities=t1c,t1c"],
     "must name distinct MRI sequences"),
    (["boundary-aware-train", "--config=experiments/table1.py:ours,demo", "--workdir=NEW",
      "--config.data.regions=ncr"], "data.regions = 'ncr': must name distinct tumor regions"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_an_installed_command_reports_an_expected_error_in_one_line(args, problem, tmp_path):
    """Each expected failure: exit status 1, one `error:` line naming the path, no traceback,
    and nothing created."""
    if any("MODELS" in a for a in args):
        _model_files(tmp_path)
    args = [a.replace("MODELS", str(tmp_path)).replace("NEW", str(tmp_path / "new")) for a in args]
    script = Path(sys.executable).parent / args[0]
    result = subprocess.run([str(script), *args[1:]], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and problem in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if is_notice(line)], result.stderr
    assert not (tmp_path / "new").exists() and not Path("/tmp/x.nii.gz").exists()


def test_which_processes_count_as_commands():
    python = sys.executable
    assert started_as_command([python, "-m", "boundary_aware.predict", "--model=x"])
    assert started_as_command([python, "-u", "-m", "experiments.child", "1", "boundary_aware.eval"])
    assert started_as_command([python, str(Path(python).parent / "boundary-aware-train")])
    assert not started_as_command([python, "-m", "pytest", "-q"])
    assert not started_as_command([python, "my_script.py", "-m", "boundary_aware.train"])
    assert not started_as_command([python, "-c", "import boundary_aware"])


def test_tensorflows_notices_are_told_apart_from_real_messages():
    assert is_notice("WARNING: All log messages before absl::InitializeLog() is called are "
                     "written to STDERR\n")
    assert is_notice("I0000 00:00:1795995235.722117    3723 port.cc:153] oneDNN custom "
                     "operations are on. You may see slightly different numerical results.")
    assert is_notice("To enable the following instructions: AVX2 AVX512F FMA, in other "
                     "operations, rebuild TensorFlow with the appropriate compiler flags.")
    assert not is_notice("E0000 00:00:1795995235.722117    3723 cuda_dnn.cc:8310] Unable to "
                         "register cuDNN factory")
    assert not is_notice("error: /no/such/run: no such run directory")


def test_a_command_started_with_python_m_keeps_tensorflows_notices_off_the_console():
    """With the filter off (BOUNDARY_AWARE_TF_NOTICES=1) the same command shows them: the
    check would see them come back."""
    args = [sys.executable, "-m", "boundary_aware.model_stats", "--models=unet", "--size=32"]
    env = {k: v for k, v in __import__("os").environ.items() if k != "BOUNDARY_AWARE_TF_NOTICES"}
    env["KERAS_BACKEND"] = "tensorflow"
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    loud = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**env, "BOUNDARY_AWARE_TF_NOTICES": "1"})
    assert quiet.returncode == 0 == loud.returncode, quiet.stderr[-2000:]
    assert "unet" in quiet.stdout
    assert quiet.stderr.strip() == "", quiet.stderr
    assert any(is_notice(line) for line in loud.stderr.splitlines()), loud.stderr


def test_the_retracing_warning_stays_off_a_commands_console():
    """Batches through `predict` and then `predict_on_batch` make TensorFlow warn that it
    retraced (evaluation does that); a command's console does not show it, and with the
    filter off it does."""
    import os
    args = [sys.executable, "-m", "experiments.child", str(os.getpid()), "tests.retracing"]
    env = {k: v for k, v in os.environ.items() if k != "BOUNDARY_AWARE_TF_NOTICES"}
    env["KERAS_BACKEND"] = "tensorflow"
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    loud = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**env, "BOUNDARY_AWARE_TF_NOTICES": "1"})
    assert quiet.returncode == 0 == loud.returncode, quiet.stderr[-2000:]
    assert quiet.stderr.strip() == "done", quiet.stderr
    assert RETRACING in loud.stderr
