"""Edge-loss ablation over seeds: `make ablation`.

    python -m experiments.ablation --out=results/ablation [--seeds=0,1,2] [--brats_dir=DIR] ...

Trains `ours`, `ours_no_edge_bce` (l3 = 0) and `ours_no_edge` (l2 = l3 = 0)
once per training seed on the same data and split, and writes the same
seeded table as Table 1 (OUT/ablation.md, .json, .csv, ablation_runs.csv):
each row's mean ± spread across seeds, and Ours compared with each ablated
row by paired tests per volume and per slice, so a reader can tell whether
the edge loss helps beyond seed noise. Reruns skip complete runs and resume
interrupted ones.
"""

from pathlib import Path

from experiments.reproduce_table1 import experiment_notes
from boundary_aware.cli import exit_on
from experiments.runner import (define_experiment_flags, parse_seeds, prepare_data, run_sweep,
                                say)
from experiments.seeded_table import load_runs, write_tables
from experiments.table1 import ABLATION_ROWS


def ablation(out, seeds=(0, 1, 2), brats_dir=None, split_file=None, profile=None, overrides=()):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile or ("paper" if brats_dir else "demo")
    synthetic = brats_dir is None
    if synthetic:
        say("no BRATS_DIR given: ablation on SYNTHETIC data; these are NOT BraTS numbers")
    prepared = prepare_data(out, profile, brats_dir, split_file)
    runs = load_runs(run_sweep(out, ABLATION_ROWS, seeds, profile, prepared, overrides))
    data = "synthetic data (NOT BraTS)" if synthetic else f"BraTS data in {brats_dir}"
    write_tables(out, "ablation", f"Edge-loss ablation: {profile} profile on {data}", runs,
                 experiment_notes(synthetic, runs, overrides))
    say(f"wrote {out / 'ablation.md'}, ablation.csv, ablation.json, ablation_runs.csv")
    print((out / "ablation.md").read_text())


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(ValueError):
        seeds = parse_seeds(f.seeds)
    ablation(f.out, seeds, f.brats_dir or None, f.split_file or None, f.profile or None,
             f.override)


if __name__ == "__main__":
    from absl import app
    define_experiment_flags("results/ablation")
    app.run(main)
