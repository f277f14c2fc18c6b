"""The paper's Table 1 in one command: `make reproduce-table1`.

    python -m experiments.reproduce_table1 --out=results/table1 [--seeds=0,1,2] [--brats_dir=DIR]
        [--split_file=F] [--profile=demo|paper] [--override=train.epochs=5 ...]

Without --brats_dir it generates synthetic BraTS-like data and runs the demo
profile: those numbers are NOT BraTS numbers, and the table says so. With
--brats_dir it runs the paper profile on that data. Trains the four rows once
per training seed on the same split, evaluates every run (per slice, per
whole volume), and writes OUT/table1.md, .csv, .json (rows over seeds, and
Ours compared with every other row by paired tests) and table1_runs.csv (one
line per run), with the paper's values alongside. A rerun skips complete runs
and resumes interrupted ones.

Reference: Hatamizadeh et al. 2019, Table 1.
"""

from pathlib import Path

from boundary_aware.cli import exit_on
from experiments.runner import (define_experiment_flags, parse_seeds, prepare_data, run_sweep,
                                say)
from experiments.seeded_table import HD_NOTE, load_runs, write_tables
from experiments.table1 import TABLE_ROWS

PAPER = {  # Table 1 of the paper: (mean, std) per slice
    "unet": {"dice": (0.731, 0.230), "jaccard": (0.805, 0.130), "hd": (3.861, 1.342)},
    "vnet": {"dice": (0.769, 0.270), "jaccard": (0.837, 0.140), "hd": (3.667, 1.329)},
    "ours_no_edge": {"dice": (0.768, 0.236), "jaccard": (0.832, 0.136), "hd": (3.443, 1.218)},
    "ours": {"dice": (0.822, 0.176), "jaccard": (0.861, 0.112), "hd": (3.406, 1.196)},
}
JACCARD_NOTE = ("In the paper's Table 1 every Jaccard mean is above its Dice mean. For one "
                "prediction Jaccard = Dice / (2 - Dice) <= Dice, so that column cannot be the "
                "Jaccard index of the same predictions; ours shows Jaccard <= Dice.")


def experiment_notes(synthetic, runs, overrides=()):
    """The notes every seeded table carries: data, checkpoint, metrics policies."""
    checkpoints = sorted({m.get("checkpoint") for seeds in runs.values() for m in seeds.values()})
    notes = ["Paper values are on BraTS 2018 T1c slices; " +
             ("ours here are on SYNTHETIC data and are not comparable to them." if synthetic
              else "ours are on the data named in the title."),
             f"Checkpoint scored: {', '.join(checkpoints)} (the weights after the last epoch; "
             "the paper names no selection rule; see the README).", HD_NOTE,
             "Empty masks: both empty gives Dice = Jaccard = 1 and HD = 0; exactly one empty "
             "gives Dice = Jaccard = 0 and HD = the image diagonal (2D: of the slice; 3D: of the "
             "volume). \"empty preds\": slices where the model predicts nothing, mean per seed "
             "over the test slices.",
             "Whole volume: every axial slice of the source volume is segmented (as `predict` "
             "does) and scored in 3D at the source spacing; \"FP slices\": slices without tumor "
             "core on which the model predicts tumor (per seed, summed over the test volumes)."]
    if overrides:
        notes.append("Config overrides: " + ", ".join(overrides))
    return notes


def reproduce(out, brats_dir=None, split_file=None, profile=None, overrides=(), seeds=(0, 1, 2),
              rows=TABLE_ROWS):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile or ("paper" if brats_dir else "demo")
    synthetic = brats_dir is None
    if synthetic:
        say("no BRATS_DIR given: running the DEMO on SYNTHETIC data; these are NOT BraTS numbers")
    prepared = prepare_data(out, profile, brats_dir, split_file)
    runs = load_runs(run_sweep(out, rows, seeds, profile, prepared, overrides))
    data = "synthetic BraTS-like data (NOT BraTS)" if synthetic else f"BraTS data in {brats_dir}"
    title = f"Table 1 reproduction: {profile} profile on {data}"
    notes = [JACCARD_NOTE] + experiment_notes(synthetic, runs, overrides)
    write_tables(out, "table1", title, runs, notes, paper=PAPER)
    say(f"wrote {out / 'table1.md'}, table1.csv, table1.json, table1_runs.csv")
    print((out / "table1.md").read_text())


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(ValueError):
        seeds = parse_seeds(f.seeds)
    reproduce(f.out, f.brats_dir or None, f.split_file or None, f.profile or None, f.override,
              seeds)


if __name__ == "__main__":
    from absl import app
    define_experiment_flags("results/table1")
    app.run(main)
