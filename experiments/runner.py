"""The experiment scripts' shared body: the data, every run over seeds, the tables.

`seeded_experiment` prepares the data (`prepare_data`), runs every (variant,
seed) on an executor (`run_sweep`, `experiments.executors`; one run is
`experiments.steps.run_variant`) and writes the seeded tables
(`experiments.seeded_table`). `experiment_main` and `define_experiment_flags`
are the command line of `reproduce_table1` and `ablation`, whose entry points
take the same arguments: `(out, *, seeds, brats_dir, split_file, profile,
overrides, executor, phantom, **executor_options)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from experiments.executors import Job, local_sweep, ray_sweep
from experiments.steps import RunError, run_dir, say, step
from boundary_aware.errors import FormatError
from boundary_aware.files import atomic_write_text
from boundary_aware.run_directory import read_metrics_file
from data_prep.synthetic import case_id
from boundary_aware.channels import PAPER_SEQUENCES
from boundary_aware.regions import PAPER_REGION
from experiments.table1 import DEFAULT_PHANTOM, PHANTOMS, PROFILE_DATA, VARIANTS

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def prepare_data(out, profile: str, brats_dir=None, split_file=None, prepared=None,
                 phantom: str = DEFAULT_PHANTOM, sequences=PAPER_SEQUENCES,
                 regions=(PAPER_REGION,), generated=None, context_slices=0,
                 models=()) -> Path:
    """Synthetic cases (no BraTS folder: `phantom`, one of `table1.PHANTOMS`, at the demo
    profile's size and split, with the MRI sequences `generated`, default `sequences`) or
    the user's BraTS, prepared with the profile's options (`table1.PROFILE_DATA`), the
    input `sequences` (with `context_slices` neighbours on each side) and the tumor
    `regions` into `prepared` (default OUT/prepared), its slice size checked against the
    `models` that will train on it (registry names)."""
    out = Path(out)
    options = PROFILE_DATA[profile]
    if brats_dir is None:
        brats_dir, synthetic_split = synthetic_cases(out, phantom, options["synthetic"] or
                                                     PROFILE_DATA["demo"]["synthetic"],
                                                     generated or sequences)
        split_file = split_file or synthetic_split
    prepared = Path(prepared) if prepared else out / "prepared"
    args = ["-m", "data_prep.prepare_brats", f"--brats_dir={brats_dir}", f"--out_dir={prepared}",
            f"--image_size={options['image_size']}", f"--slices_per_case={options['slices_per_case']}"]
    if tuple(sequences) != PAPER_SEQUENCES:
        args.append(f"--sequences={','.join(sequences)}")
    if tuple(regions) != (PAPER_REGION,):
        args.append(f"--regions={','.join(regions)}")
    if context_slices:
        args.append(f"--context_slices={context_slices}")
    if models:
        args.append(f"--models={','.join(sorted(set(models)))}")
    if split_file:
        args.append(f"--split_file={Path(split_file).resolve()}")
    step(args, f"{prepared}: data preparation")
    return prepared


def synthetic_record(out) -> dict | None:
    """What OUT/synthetic_brats holds, as its `.complete` records it (`synthetic_cases`;
    a record's `modalities` reads as `sequences`): None where nothing was generated, {}
    where the record is not a JSON object (what is there is then not known)."""
    done = Path(out) / "synthetic_brats" / ".complete"
    if not done.exists():
        return None
    try:
        found = json.loads(done.read_text())
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    if "modalities" in found and "sequences" not in found:
        found["sequences"] = found.pop("modalities")
    return found


def synthetic_cases(out: Path, phantom: str, synthetic: dict,
                    sequences=PAPER_SEQUENCES) -> tuple[Path, Path]:
    """Generate the `phantom`'s cases (with the MRI `sequences`) once into
    OUT/synthetic_brats (a record of what was generated in its `.complete`), and their
    split file OUT/split.json: the first cases train, the next validate, the last are
    the test set. A folder generated otherwise (another phantom, size, count or
    sequences) is refused, not replaced."""
    if phantom not in PHANTOMS:
        raise ValueError(f"--phantom must be one of {sorted(PHANTOMS)}, got {phantom!r}")
    spec = PHANTOMS[phantom]
    counts = synthetic["split"]
    record = {"phantom": phantom, **spec, "shape": synthetic["shape"],
              "num_cases": sum(counts.values())}
    if tuple(sequences) != PAPER_SEQUENCES:  # the T1c alone is recorded by no key
        record["sequences"] = list(sequences)
    brats_dir = out / "synthetic_brats"
    done = brats_dir / ".complete"
    found = synthetic_record(out)
    if found is not None:
        if found != record:
            raise RunError(f"{brats_dir}: holds synthetic cases generated otherwise "
                           f"({found or 'with no readable record'}; this run needs {record}); "
                           f"use another --out, or remove that folder")
    else:
        say(f"generating {record['num_cases']} synthetic BraTS-like cases ({phantom} phantom, "
            f"generator seed {spec['seed']}) in {brats_dir} (NOT BraTS data)")
        step(["-m", "data_prep.synthetic", f"--out_dir={brats_dir}",
              f"--num_cases={record['num_cases']}", f"--seed={spec['seed']}",
              f"--shape={synthetic['shape']}", f"--sequences={','.join(sequences)}",
              "--distractors" if spec["distractors"] else "--nodistractors",
              "--overwrite"],  # no .complete: what is there is an interrupted generation
             f"{brats_dir}: generating synthetic data")
        atomic_write_text(done, json.dumps(record) + "\n")
    ids = [case_id(i) for i in range(record["num_cases"])]
    split, start = {}, 0
    for name in ("train", "val", "test"):
        split[name], start = ids[start:start + counts[name]], start + counts[name]
    split_file = out / "split.json"
    atomic_write_text(split_file, json.dumps(split, indent=1) + "\n")
    return brats_dir, split_file


def run_sweep(out, variants, seeds, profile: str, prepared, overrides=(), executor: str = "local",
              **executor_options) -> tuple[dict, dict]:
    """Every variant over every seed, on `executor` ("local": this machine, `workers` runs
    at a time; "ray": Ray tasks, `experiments.executors.ray_sweep` takes the other
    `executor_options`).

    Returns ({variant: {seed: metrics.json}}, {run name: why it failed}); the local
    executor runs `workers` at a time (`executors.local_sweep`; one at a time it stops
    at the first failure with RunError), Ray finishes the other runs.
    """
    jobs = [Job(variant, seed, profile, str(Path(prepared).resolve()),
                str(run_dir(out, variant, seed)), tuple(overrides))
            for variant in variants for seed in seeds]
    workers = executor_options.pop("workers", None)
    if executor == "local":
        results, failures = local_sweep(jobs, workers)
    elif executor == "ray":
        results, failures = ray_sweep(jobs, out, **executor_options)
    else:
        raise ValueError(f"--executor must be local or ray, got {executor!r}")
    table = {}
    for job in jobs:
        if job.name in results:
            table.setdefault(job.variant, {})[job.seed] = Path(results[job.name])
    return table, failures


def seed_ensemble(out, row: str, metrics_files: dict) -> dict:
    """The metrics of one ensemble of a row's seed runs ({seed: metrics.json path}), scored
    into OUT/runs/ROW_ensemble (`evaluate.evaluate_ensemble`, in a child process as the
    runs' own evaluations are); kept when it is newer than every member's scores."""
    folder = Path(out) / "runs" / f"{row}_ensemble"
    members = [Path(metrics_files[s]).parent.resolve() for s in sorted(metrics_files)]
    target = folder / "metrics.json"
    try:
        current = (target.is_file() and read_metrics_file(target).get("members") ==
                   [str(m) for m in members] and all(
                       target.stat().st_mtime >= Path(metrics_files[s]).stat().st_mtime
                       for s in metrics_files))
    except FormatError:
        current = False
    if not current:
        step(["-m", "boundary_aware.evaluate", f"--workdir={','.join(map(str, members))}",
              f"--out={folder}"], f"{folder}: the seed ensemble of {row}")
    return read_metrics_file(target)


def parse_seeds(text: str) -> tuple[int, ...]:
    """"0,1,2" -> (0, 1, 2); a clear error for anything else."""
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name at least one seed, each once, got {text!r}")
    return seeds


def seeded_experiment(out, stem: str, title: str, rows: Sequence[str], seeds: Sequence[int],
                      brats_dir=None, split_file=None, profile: str | None = None,
                      overrides: Sequence[str] = (), notes: Sequence[str] = (),
                      paper: dict | None = None, executor: str = "local",
                      phantom: str = DEFAULT_PHANTOM, sensitivity_rows: Sequence[str] = (),
                      ensemble_rows: Sequence[str] = (), **executor_options) -> None:
    """Prepare the data, run every row over every seed, write OUT/STEM.{md,json,csv} and
    STEM_runs.csv (`seeded_table.write_tables`; `sensitivity_rows`: its sensitivity
    section; `ensemble_rows`: each also as one ensemble of its seed runs, `seed_ensemble`).
    Without `brats_dir`: synthetic demo data, the `phantom`'s.
    Runs that failed are named (with their log) and the table says which rows are
    incomplete; then RunError."""
    from experiments.seeded_table import ENSEMBLE, experiment_notes, load_runs, write_tables
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile or ("paper" if brats_dir else "demo")
    synthetic = brats_dir is None
    if synthetic:
        say(f"no BRATS_DIR given: {title} on SYNTHETIC data; these are NOT BraTS numbers")
    prepared = prepare_data(out, profile, brats_dir, split_file, phantom=phantom,
                            models=[VARIANTS[row].model for row in rows])
    done, failures = run_sweep(out, rows, seeds, profile, prepared, overrides, executor,
                               **executor_options)
    runs = load_runs(done)
    for row in ensemble_rows:
        if len(runs.get(row, {})) >= 2 and not failures:
            runs[row + ENSEMBLE] = {"ensemble": seed_ensemble(out, row, done[row])}
    data = (f"SYNTHETIC BraTS-like data (NOT BraTS), the {phantom} phantom (generator seed "
            f"{PHANTOMS[phantom]['seed']}{'' if PHANTOMS[phantom]['distractors'] else ', no look-alikes'})"
            if synthetic else f"BraTS data in {brats_dir}")
    notes = list(notes) + experiment_notes(synthetic, runs, overrides)
    if failures:
        notes.append("INCOMPLETE: these runs failed and are not in the table: " +
                     ", ".join(sorted(failures)))
    if runs:
        write_tables(out, stem, f"{title}: {profile} profile on {data}", runs, notes, paper=paper,
                     sensitivity_rows=sensitivity_rows)
        say(f"wrote {out / (stem + '.md')}, {stem}.csv, {stem}.json, {stem}_runs.csv")
        print((out / f"{stem}.md").read_text())
    if failures:
        for name, why in sorted(failures.items()):
            say(f"FAILED {name}: {why}")
        raise RunError(f"{out}: {len(failures)} of {len(rows) * len(seeds)} runs failed "
                       f"({', '.join(sorted(failures))}); the table lists the rest")


def experiment_main(experiment) -> None:
    """Run `experiment(out, seeds=..., brats_dir=..., split_file=..., profile=...,
    overrides=..., executor=..., ...)` from the flags of `define_experiment_flags`."""
    from absl import flags

    from boundary_aware.cli import check_workers, exit_on
    f = flags.FLAGS
    with exit_on(ValueError, RunError):
        options = {"workers": check_workers(f.workers) if f.workers else None}
        if f.executor == "ray":
            options = dict(address=f.ray_address, gpus_per_run=f.gpus_per_run,
                           cpus_per_run=f.cpus_per_run)
        experiment(f.out, seeds=parse_seeds(f.seeds), brats_dir=f.brats_dir or None,
                   split_file=f.split_file or None, profile=f.profile or None,
                   overrides=f.override, executor=f.executor, phantom=f.phantom, **options)


def define_experiment_flags(default_out: str) -> None:
    """The flags shared by reproduce_table1 and ablation."""
    from absl import flags
    flags.DEFINE_string("out", default_out, "Output folder (data, runs, tables).")
    flags.DEFINE_string("brats_dir", None, "BraTS folder; without it: synthetic demo data.")
    flags.DEFINE_string("split_file", None, "JSON split file passed to data preparation.")
    flags.DEFINE_string("profile", None, "demo or paper (default: paper with BRATS_DIR, else demo).")
    flags.DEFINE_enum("phantom", DEFAULT_PHANTOM, list(PHANTOMS),
                      "Without --brats_dir, which synthetic phantom: confirmation (the README's "
                      "tables), development (where settings are chosen), plain (the confirmation "
                      "phantom without the look-alikes).")
    flags.DEFINE_string("seeds", ",".join(map(str, DEFAULT_SEEDS)),
                        "Training seeds, comma-separated: every row runs once per seed.")
    flags.DEFINE_multi_string("override", [], "Config override, e.g. train.epochs=5 (repeatable).")
    flags.DEFINE_enum("executor", "local", ["local", "ray"],
                      "local: runs one after another; ray: one Ray task per run.")
    flags.DEFINE_integer("workers", 0, "local: runs at a time (0: 2 on a machine with 2 or "
                         "more cores and no NVIDIA GPU, else 1).")
    flags.DEFINE_string("ray_address", None, "Join this Ray cluster (default: start a local one).")
    flags.DEFINE_float("gpus_per_run", None, "GPUs per Ray task (default: 1 where the cluster "
                       "has GPUs, else 0; 0.5 puts two runs on a card).")
    flags.DEFINE_float("cpus_per_run", 1, "CPUs per Ray task.")
