"""One run of an experiment, as child processes: its training and its evaluation.

The lowest layer of the experiment scripts: the one helper that starts child
Python processes (`run_python`, `run_module`), a step that fails as a
`RunError`, and `run_variant` (train, resuming if needed, then evaluate). The
executors (`experiments.executors`) run it for every (variant, seed);
`experiments.runner` prepares the data and builds the tables above them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from boundary_aware.run_directory import RunDirectory

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / "experiments" / "table1.py"


class RunError(RuntimeError):
    """A step of an experiment (data, training, evaluation) failed; its own messages came first."""


def say(message: str, log=None) -> None:
    """A progress line on the console, or appended to the run's `log` file."""
    line = f"[boundary-aware] {message}"
    if log is None:  # one write, so that lines of runs going at once do not interleave
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    else:
        with open(log, "a") as stream:
            stream.write(line + "\n")


def python_env(extra: dict | None = None) -> dict:
    """The environment for a child Python process that imports this checkout's packages."""
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **(extra or {})}


def run_python(args, check: bool = True, log=None, **kwargs) -> subprocess.CompletedProcess:
    """`python *args` in a child process, from the repository root, with `python_env`;
    with `log`, its output is appended to that file."""
    env = python_env(kwargs.pop("env", None))
    if log is None:
        return subprocess.run([sys.executable, *args], check=check, env=env, cwd=ROOT, **kwargs)
    with open(log, "a") as stream:
        return subprocess.run([sys.executable, *args], check=check, env=env, cwd=ROOT,
                              stdout=stream, stderr=subprocess.STDOUT, **kwargs)


def run_module(module: str, args, log=None) -> subprocess.CompletedProcess:
    """`python -m module *args` as a child that dies with this process (`experiments.child`)."""
    return run_python(["-m", "experiments.child", str(os.getpid()), module, *args], log=log)


def run_variant(variant: str, profile: str, prepared, workdir, overrides=(),
                seed: int | None = None, log=None) -> Path:
    """Train (resuming if needed) and evaluate one variant; returns its metrics.json path.

    With `log`, every message of the run goes to that file instead of the console.
    """
    run = RunDirectory(workdir)
    args = [f"--config={CONFIG_FILE}:{variant},{profile}", f"--workdir={run.path}",
            f"--config.data.prepared_dir={Path(prepared).resolve()}"]
    if seed is not None:
        args.append(f"--config.train.seed={seed}")
    args += [f"--config.{o}" for o in overrides]
    if run.is_complete():
        say(f"{run.path.name}: training already complete in {run.path}", log)
    else:
        say(f"{run.path.name}: training in {run.path}", log)
        step(["-m", "boundary_aware.train", *args], f"{run.path}: training", log)
    if run.needs_evaluation():
        say(f"{run.path.name}: evaluating", log)
        step(["-m", "boundary_aware.evaluate", f"--workdir={run.path}"],
              f"{run.path}: evaluation", log)
    return run.metrics_path


def step(args, what: str, log=None) -> None:
    """`python -m MODULE ARGS` (args = ["-m", MODULE, *ARGS]); RunError if it fails."""
    try:
        run_module(args[1], args[2:], log=log)
    except subprocess.CalledProcessError as err:
        where = f"see {log}" if log else "its messages are above"
        raise RunError(f"{what} failed (exit status {err.returncode}); {where}; rerun the same "
                       f"command to resume") from None


def run_dir(out, variant: str, seed: int) -> Path:
    """Where a run (variant, seed) lives: OUT/runs/VARIANT_seedSEED."""
    return Path(out) / "runs" / f"{variant}_seed{seed}"
