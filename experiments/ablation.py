"""Edge-loss ablation over seeds: `make ablation`.

    boundary-aware-ablation --out=results/ablation [--seeds=0,1,2,3,4] [--brats_dir=DIR]
        [--phantom=confirmation|development|plain] ...

Trains `ours`, `ours_no_edge_bce` (l3 = 0), `ours_no_edge` (l2 = l3 = 0),
`ours_bilinear_fusion`, and Ours under Eq. 5's two other reductions
(`ours_bce_sum`, `ours_bce_scaled_mean`; `table1.ABLATION_ROWS`) once per
training seed on the same data and split, and writes the same seeded table
as Table 1 (OUT/ablation.md, .json, .csv, ablation_runs.csv): each row's
mean ± spread across seeds, and Ours compared with each ablated row with
intervals over seeds and volumes, per volume and per slice. Its sensitivity
section gives the edge-loss conclusion (Ours under each reduction against
no edge loss) under both checkpoint rules, and says whether any verdict
flips. Reruns skip complete runs and resume interrupted ones.
"""

from __future__ import annotations

import os
from typing import Sequence

from boundary_aware.cli import run_absl
from experiments.runner import (DEFAULT_SEEDS, define_experiment_flags, experiment_main,
                                seeded_experiment)
from experiments.table1 import ABLATION_ROWS, DEFAULT_PHANTOM, REDUCTION_ROWS


def ablation(out: str | os.PathLike, *, seeds: Sequence[int] = DEFAULT_SEEDS,
             brats_dir: str | None = None, split_file: str | None = None,
             profile: str | None = None, overrides: Sequence[str] = (),
             executor: str = "local", phantom: str = DEFAULT_PHANTOM,
             **executor_options) -> None:
    """The ablation rows over `seeds` into OUT/ablation.* (module docstring); `executor` and
    its options as `experiments.runner.run_sweep`."""
    seeded_experiment(out, "ablation", "Edge-loss ablation", ABLATION_ROWS, seeds, brats_dir,
                      split_file, profile, overrides, executor=executor, phantom=phantom,
                      sensitivity_rows=REDUCTION_ROWS, **executor_options)


def main(argv) -> None:
    experiment_main(ablation)


def define_flags() -> None:
    define_experiment_flags("results/ablation")


def cli() -> None:
    """Console entry point `boundary-aware-ablation`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
