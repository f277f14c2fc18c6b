"""Console commands: installed for every tool, and each one fails with one line, not a traceback."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from boundary_aware.console import RETRACING, is_notice, started_as_command
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test here starts processes

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
