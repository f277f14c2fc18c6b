"""Console commands: installed for every tool, and each one fails with one line, not a traceback."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("args", [["boundary-aware-evaluate", "--workdir=/no/such/run"],
                                  ["boundary-aware-predict", "--model=/no/such/model.keras",
                                   "--input=/no/such/scan.nii.gz", "--output=/tmp/x.nii.gz"]])
def test_an_installed_command_reports_an_expected_error_in_one_line(args):
    script = Path(sys.executable).parent / args[0]
    result = subprocess.run([str(script), *args[1:]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "/no/such/" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
