"""The demo profile's data where its config looks for it: `make demo-data`.

    python -m experiments.demo_data [--out=data/demo]

Generates the synthetic BraTS-like cases of the development phantom (the one
settings are chosen on, `table1.PHANTOMS`; OUT/synthetic_brats; NOT BraTS
data) and prepares them with the demo profile's options (`table1.PROFILE_DATA`)
into the demo profile's `data.prepared_dir` (data/demo_prepared), so that
`boundary-aware-train --config=experiments/table1.py:ours,demo --workdir=DIR`
runs without overrides. Reruns reuse what exists.
"""

from experiments.runner import prepare_data
from experiments.steps import say
from experiments.table1 import PROFILE_DATA, TABLE_ROWS, VARIANTS


def main(argv):
    from absl import flags
    del argv
    prepared = prepare_data(flags.FLAGS.out, "demo", prepared=PROFILE_DATA["demo"]["prepared_dir"],
                            phantom="development",
                            models=[VARIANTS[row].model for row in TABLE_ROWS])
    say(f"demo data ready in {prepared}")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("out", "data/demo", "Where the synthetic cases go.")


if __name__ == "__main__":
    from boundary_aware.cli import run_absl
    run_absl(define_flags, main)
