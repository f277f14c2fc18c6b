"""Seconds to segment one 240 x 240 x 155 volume, for each model (paper widths).

    .venv/bin/python -m experiments.benchmarks.predict_speed [--models=ours,unet,vnet] [--repeats=1]

Times `boundary_aware.predict.predict_file` end to end on a synthetic volume:
reading, normalization, the 155 axial slices through the model in batches,
resizing back, thresholding and writing the NIfTI mask. Untrained weights (the
time does not depend on them). Prints the device Keras runs on.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ours,unet,vnet")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args(argv)
    import keras

    from boundary_aware import build_model
    from boundary_aware.predict import load_predictor, predict_file
    from data_prep import synthetic
    from experiments.table1 import MODEL_KWARGS

    print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic.write_case(tmp, "case", *synthetic.make_case(0))
        volume = tmp / "case" / "case_t1ce.nii.gz"
        for name in args.models.split(","):
            build_model(name, **MODEL_KWARGS["paper"][name]).save(tmp / f"{name}.keras")
            predict, shape = load_predictor(tmp / f"{name}.keras", args.batch_size)
            predict(np.zeros((args.batch_size,) + shape, np.float32))  # warm-up: compile
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                predict_file(predict, shape, volume, tmp / f"{name}.nii.gz", overwrite=True)
                times.append(time.perf_counter() - start)
            print(f"{name}: {min(times):.2f} s per 240x240x155 volume "
                  f"(best of {args.repeats}, batch {args.batch_size})")


if __name__ == "__main__":
    main()
