"""The whole path on one machine, each step timed: synthetic cases, prepare, train,
evaluate, export, predict.

    python -m experiments.benchmarks.end_to_end --out=DIR [--profile=paper --cases=8
        --epochs=10 --bn_statistics_batches=4]

Written for the first minutes on a GPU machine (`make bench-gpu` runs it as its
`end_to_end` part): does the paper profile train there until its validation Dice rises,
and do evaluation and prediction finish? Every step is the package's own command in a
child process under its own time limit; a step that fails or runs out of time is
reported and the steps that need it are skipped. Export needs TensorFlow (a SavedModel):
where TensorFlow is missing it is reported as such and predict reads the run instead.
Export runs on TensorFlow whatever the backend of the rest (the run loads on either).
Prints one line per step (seconds and what it gave) and the validation Dice of every
epoch. The data are synthetic (NOT BraTS): the scores say only that the path works.

Reference: docs/performance.md ("The GPU run").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

from boundary_aware.cli import default_workers
from boundary_aware.runtime import tensorflow_available
from experiments.steps import run_python


LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|INFO:tensorflow:)")  # logs


def step(name: str, module: str, args, timeout: float, env=None) -> bool:
    """Run `python -m module *args` within `timeout` s; print its time and its last line
    (log lines of absl and XLA left out)."""
    start = time.perf_counter()
    try:
        out = run_python(["-m", module, *args], check=False, capture_output=True, text=True,
                         timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"{name}: timed out after {timeout:.0f} s", flush=True)
        return False
    seconds = time.perf_counter() - start
    said = [[line for line in text.splitlines() if line.strip() and not LOG_LINE.match(line)]
            for text in ((out.stdout, out.stderr) if out.returncode == 0 else (out.stderr,))]
    last = next((lines[-1] for lines in said if lines), "")
    status = "done" if out.returncode == 0 else f"failed (exit {out.returncode})"
    print(f"{name}: {status} in {seconds:.1f} s; {last[:300]}", flush=True)
    return out.returncode == 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a new folder for every file it makes")
    parser.add_argument("--profile", default="paper", choices=["paper", "demo"])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", default="240,240,155", help="synthetic volume X,Y,Z")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--bn_statistics_batches", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per step")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        parser.error(f"--out={out}: exists; give a new folder")
    brats, prepared, run, export = (out / n for n in ("brats", "prepared", "run", "export"))
    size = 240 if args.profile == "paper" else 64
    workers = default_workers()
    print(f"end to end: profile {args.profile}, {args.cases} synthetic cases of {args.shape}, "
          f"{args.epochs} epochs, {workers} workers", flush=True)
    ok = step("synthetic", "data_prep.synthetic", [
        f"--out_dir={brats}", f"--num_cases={args.cases}", f"--shape={args.shape}",
        f"--workers={workers}"], args.timeout)
    ok = ok and step("prepare", "data_prep.prepare_brats", [
        f"--brats_dir={brats}", f"--out_dir={prepared}", f"--image_size={size}",
        f"--workers={workers}"], args.timeout)
    ok = ok and step("train", "boundary_aware.train", [
        f"--config=experiments/table1.py:ours,{args.profile}", f"--workdir={run}",
        f"--config.data.prepared_dir={prepared}", f"--config.train.epochs={args.epochs}",
        f"--config.train.bn_statistics_batches={args.bn_statistics_batches}"], args.timeout)
    state = run / "state.json"
    if state.is_file():
        history = json.loads(state.read_text())["history"]
        print("validation Dice per epoch: " + ", ".join(f"{h['val_dice']:.3f}" for h in history)
              + "; training loss: " + ", ".join(f"{h['loss']:.3f}" for h in history), flush=True)
    if not ok:
        return
    step("evaluate", "boundary_aware.evaluate", [f"--workdir={run}"], args.timeout)
    model = run
    if tensorflow_available():
        if step("export", "boundary_aware.export", [f"--workdir={run}", f"--out={export}"],
                args.timeout, env={"KERAS_BACKEND": "tensorflow"}):
            model = export
    else:
        print("export: skipped (a SavedModel needs TensorFlow, which this machine lacks); "
              "predict reads the run", flush=True)
    case = sorted(p for p in brats.iterdir() if p.is_dir())[-1]
    t1c = next(case.glob("*t1ce.nii.gz"), None) or next(case.glob("*t1c.nii.gz"))
    for tta in ("none", "lr,ap"):
        step(f"predict (--tta={tta})", "boundary_aware.predict", [
            f"--model={model}", f"--input={t1c}", f"--output={out / f'mask_{tta}.nii.gz'}",
            f"--tta={tta}"], args.timeout)


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    main()
