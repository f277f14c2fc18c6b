"""Shared steps of the experiment scripts: data, runs (train + evaluate) over seeds."""

import json
import os
import subprocess
import sys
from pathlib import Path

from boundary_aware.checkpoints import checkpoint_path

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / "experiments" / "table1.py"
DEMO_SYNTHETIC = {"num_cases": 24, "shape": "160,160,96", "seed": 0}
PREPARE_OPTIONS = {"demo": {"image_size": 96, "slices_per_case": 12},
                   "paper": {"image_size": 240, "slices_per_case": 20}}
DEFAULT_SEEDS = (0, 1, 2)


def say(message):
    print(f"[boundary-aware] {message}", flush=True)


def _python(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, *args], check=True, env=env, cwd=ROOT)


def prepare_data(out, profile, brats_dir=None, split_file=None):
    """Synthetic cases (no BraTS folder) or the user's BraTS, prepared into OUT/prepared."""
    out = Path(out)
    if brats_dir is None:
        brats_dir = out / "synthetic_brats"
        done = brats_dir / ".complete"
        if not done.exists():
            say(f"generating {DEMO_SYNTHETIC['num_cases']} synthetic BraTS-like cases in {brats_dir} "
                f"(NOT BraTS data)")
            _python(["-m", "data_prep.synthetic", f"--out_dir={brats_dir}",
                     f"--num_cases={DEMO_SYNTHETIC['num_cases']}", f"--seed={DEMO_SYNTHETIC['seed']}",
                     f"--shape={DEMO_SYNTHETIC['shape']}"])
            done.write_text("ok\n")
    prepared = out / "prepared"
    options = PREPARE_OPTIONS[profile]
    args = ["-m", "data_prep.prepare_brats", f"--brats_dir={brats_dir}", f"--out_dir={prepared}",
            f"--image_size={options['image_size']}", f"--slices_per_case={options['slices_per_case']}"]
    if split_file:
        args.append(f"--split_file={Path(split_file).resolve()}")
    _python(args)
    return prepared


def _needs_evaluation(workdir):
    metrics = workdir / "metrics.json"
    if not metrics.exists():
        return True
    scored = checkpoint_path(workdir)
    if scored.exists() and metrics.stat().st_mtime < scored.stat().st_mtime:
        return True
    return "per_volume" not in json.loads(metrics.read_text())  # written by an older version


def run_variant(variant, profile, prepared, workdir, overrides=(), seed=None):
    """Train (resuming if needed) and evaluate one variant; returns its metrics.json path."""
    workdir = Path(workdir)
    args = [f"--config={CONFIG_FILE}:{variant},{profile}", f"--workdir={workdir}",
            f"--config.data.prepared_dir={Path(prepared).resolve()}"]
    if seed is not None:
        args.append(f"--config.train.seed={seed}")
    args += [f"--config.{o}" for o in overrides]
    state = workdir / "state.json"
    if state.exists() and json.loads(state.read_text()).get("completed"):
        say(f"{workdir.name}: training already complete in {workdir}")
    else:
        say(f"{workdir.name}: training in {workdir}")
        _python(["-m", "boundary_aware.train", *args])
    if _needs_evaluation(workdir):
        say(f"{workdir.name}: evaluating")
        _python(["-m", "boundary_aware.evaluate", f"--workdir={workdir}"])
    return workdir / "metrics.json"


def run_dir(out, variant, seed):
    """Where a run (variant, seed) lives: OUT/runs/VARIANT_seedSEED."""
    return Path(out) / "runs" / f"{variant}_seed{seed}"


def run_sweep(out, variants, seeds, profile, prepared, overrides=()):
    """Every variant over every seed, one after another; {variant: {seed: metrics.json}}."""
    return {variant: {seed: run_variant(variant, profile, prepared, run_dir(out, variant, seed),
                                        overrides, seed=seed) for seed in seeds}
            for variant in variants}


def parse_seeds(text):
    """"0,1,2" -> (0, 1, 2); a clear error for anything else."""
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name at least one seed, each once, got {text!r}")
    return seeds


def define_experiment_flags(default_out):
    """The flags shared by reproduce_table1 and ablation."""
    from absl import flags
    flags.DEFINE_string("out", default_out, "Output folder (data, runs, tables).")
    flags.DEFINE_string("brats_dir", None, "BraTS folder; without it: synthetic demo data.")
    flags.DEFINE_string("split_file", None, "JSON split file passed to data preparation.")
    flags.DEFINE_string("profile", None, "demo or paper (default: paper with BRATS_DIR, else demo).")
    flags.DEFINE_string("seeds", ",".join(map(str, DEFAULT_SEEDS)),
                        "Training seeds, comma-separated: every row runs once per seed.")
    flags.DEFINE_multi_string("override", [], "Config override, e.g. train.epochs=5 (repeatable).")
