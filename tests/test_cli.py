"""Console commands: installed for every tool, and each one fails with one line, not a traceback."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

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
      "--config.train.epochs=0"], "train.epochs = 0: must be >= 1"),
    (["boundary-aware-prepare", "--brats_dir=/no/such/brats", "--out_dir=NEW"],
     "/no/such/brats: not a directory"),
    (["boundary-aware-prepare", "--brats_dir=tests/data/brats_samples", "--out_dir=NEW",
      "--image_size=40"], "unet needs a multiple of 16"),
    (["boundary-aware-export", "--workdir=/no/such/run", "--out=NEW"], "/no/such/run"),
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
    assert not (tmp_path / "new").exists() and not Path("/tmp/x.nii.gz").exists()
