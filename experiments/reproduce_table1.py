"""The paper's Table 1 in one command: `make reproduce-table1`.

    boundary-aware-table1 --out=results/table1 [--seeds=0,1,2,3,4] [--brats_dir=DIR]
        [--split_file=F] [--profile=demo|paper] [--override=train.epochs=5 ...]
        [--phantom=confirmation|development|plain]
        [--executor=local|ray] [--ray_address=HOST:PORT] [--gpus_per_run=1] [--cpus_per_run=1]

Without --brats_dir it generates synthetic BraTS-like data (the confirmation
phantom unless --phantom says otherwise; `table1.PHANTOMS`) and runs the demo
profile: those numbers are NOT BraTS numbers, and the table says so. With
--brats_dir it runs the paper profile on that data. Trains the four rows once
per training seed on the same split, evaluates every run (per slice, per
whole volume), and writes OUT/table1.md, .csv, .json (rows over seeds, a row for the seed
ensemble of Ours (its members' mean probabilities: `evaluate --workdir=A,B,...
--out=...`), and Ours compared with every other row, intervals over seeds and
volumes) and table1_runs.csv (one line per run), with the paper's values
alongside. A rerun skips complete runs
and resumes interrupted ones.

Reference: Hatamizadeh et al. 2019, Table 1.
"""

from __future__ import annotations

import os
from typing import Sequence

from boundary_aware.cli import run_absl
from experiments.runner import (DEFAULT_SEEDS, define_experiment_flags, experiment_main,
                                seeded_experiment)
from experiments.table1 import DEFAULT_PHANTOM, TABLE_ROWS

PAPER = {  # Table 1 of the paper: (mean, std) per slice
    "unet": {"dice": (0.731, 0.230), "jaccard": (0.805, 0.130), "hd": (3.861, 1.342)},
    "vnet": {"dice": (0.769, 0.270), "jaccard": (0.837, 0.140), "hd": (3.667, 1.329)},
    "ours_no_edge": {"dice": (0.768, 0.236), "jaccard": (0.832, 0.136), "hd": (3.443, 1.218)},
    "ours": {"dice": (0.822, 0.176), "jaccard": (0.861, 0.112), "hd": (3.406, 1.196)},
}
JACCARD_NOTE = ("In the paper's Table 1 every Jaccard mean is above its Dice mean. For one "
                "prediction Jaccard = Dice / (2 - Dice) <= Dice, so under the same aggregation "
                "that column cannot be the Jaccard index of the same predictions; ours shows "
                "Jaccard <= Dice. Were the paper's Dice and Jaccard headers swapped, all four "
                "rows would be consistent, and the paper's Dice for Ours would be 0.861, not "
                "0.822.")


def reproduce(out: str | os.PathLike, *, seeds: Sequence[int] = DEFAULT_SEEDS,
              brats_dir: str | None = None, split_file: str | None = None,
              profile: str | None = None, overrides: Sequence[str] = (),
              executor: str = "local", rows: Sequence[str] = TABLE_ROWS,
              phantom: str = DEFAULT_PHANTOM, **executor_options) -> None:
    """Table 1's rows over `seeds` into OUT/table1.* (module docstring); `executor` and
    its options as `experiments.runner.run_sweep`."""
    seeded_experiment(out, "table1", "Table 1 reproduction", rows, seeds, brats_dir, split_file,
                      profile, overrides, notes=[JACCARD_NOTE], paper=PAPER, executor=executor,
                      phantom=phantom, ensemble_rows=("ours",), **executor_options)


def main(argv) -> None:
    experiment_main(reproduce)


def define_flags() -> None:
    define_experiment_flags("results/table1")


def cli() -> None:
    """Console entry point `boundary-aware-table1`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
