"""Seconds to segment one 240 x 240 x 155 volume, for each model (paper widths), two ways.

    .venv/bin/python -m experiments.benchmarks.predict_speed [--models=ours,unet,vnet]
        [--repeats=2] [--batch_size=2] [--no-plain]

Times `boundary_aware.predict_cases.predict_file` end to end: reading, normalization,
the axial slices through the model in batches, resizing back, thresholding
and writing the NIfTI mask. Volumes: a synthetic case and the two real BraTS
cases of tests/data/brats_samples. Untrained weights with random batch-norm
statistics, the same in both (the time does not depend on them).

"shared" is `predict`'s path: constant slices segmented once
(`inference.volume.distinct_slices`), `runtime.inference_streams()` batches of
`runtime.inference_batch_size()` slices at a time, the cores split between
them. "plain" is the path without either: every slice through
`model.predict` in batches of 16, one at a time, TensorFlow's default
threads. Each runs in its own process
(thread settings are per process).
Each figure is the best of `--repeats` after a warm-up (this machine's speed
varies by up to 1.6x between runs); the masks of both are compared voxel by
voxel. Prints the device Keras runs on.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from experiments.benchmarks.metrics_speed import best_time
from experiments.steps import ROOT, run_python

REAL_CASES = ROOT / "tests" / "data" / "brats_samples"


def volumes(tmp: Path) -> dict[str, Path]:
    """A synthetic case (written under `tmp`) and the real samples, by name."""
    from data_prep import synthetic
    found = {"synthetic": tmp / "synthetic" / "synthetic_t1ce.nii.gz"}
    if not found["synthetic"].is_file():
        synthetic.write_case(tmp, "synthetic", *synthetic.make_case(0))
    found.update({p.parent.name: p for p in sorted(REAL_CASES.glob("*/*_t1ce.nii.gz"))})
    return found


def measure_in_child(module: str, one: dict, env: dict | None = None):
    """(result, None) of `python -m MODULE --one=JSON` (its `measure(**one)`, printed as
    one RESULT line), each in its own process (thread settings are per process); (None,
    the end of its stderr) when it printed none."""
    out = run_python(["-m", module, f"--one={json.dumps(one)}"], check=False,
                     capture_output=True, text=True, env=env)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        return None, out.stderr.strip()[-400:]
    return json.loads(lines[-1][len("RESULT "):]), None


def measure(name: str, way: str, tmp: Path, repeats: int, batch_size: int | None) -> dict:
    """Seconds per volume of one model, segmenting `way` ("shared" or "plain"), in this process."""
    from boundary_aware import runtime
    tmp = Path(tmp)
    streams = runtime.inference_streams() if way == "shared" else 1
    split = runtime.share_cores_between(streams)
    import keras

    from boundary_aware import build_model
    from boundary_aware.channels import PAPER_SEQUENCES
    from boundary_aware.inference.predictor import keras_predictor, Predictor
    from boundary_aware.models.registry import probability_outputs
    from boundary_aware.inference.options import InferenceOptions
    from boundary_aware.predict_cases import predict_file

    keras.utils.set_random_seed(0)
    model = build_model(name, input_shape=(240, 240, len(PAPER_SEQUENCES)))  # paper widths
    rng = np.random.default_rng(0)
    for variable in model.non_trainable_variables:  # batch-norm statistics
        variable.assign(rng.uniform(0.5, 1.5, tuple(variable.shape))
                        if "variance" in variable.path
                        else rng.normal(0, 0.3, tuple(variable.shape)))
    shape = tuple(model.input_shape[1:])
    if way == "shared":
        batch_size = batch_size or runtime.inference_batch_size()
        predictor = keras_predictor(model, batch_size, streams)
    else:
        batch_size = 16

        def predict(images):
            out = model.predict(images, batch_size=16, verbose=0)
            return {key: out[key] for key in probability_outputs(out)}
        predictor = Predictor(predict, shape, PAPER_SEQUENCES)
    predictor(np.zeros((batch_size,) + shape, np.float32))  # warm-up: tracing
    seconds = {}
    for label, path in volumes(tmp).items():
        out = tmp / f"{name}_{label}_{way}.nii.gz"
        seconds[label] = best_time(lambda: predict_file(
            predictor, [path], out, InferenceOptions(tta="none"), overwrite=True,
            distinct=way == "shared"), max(1, repeats))
    return {"seconds": seconds, "batch": batch_size, "streams": streams, "split": split,
            "backend": keras.backend.backend()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ours,unet,vnet")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=None,
                        help="shared's batch (default: runtime.inference_batch_size(), 2 on CPUs)")
    parser.add_argument("--plain", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the plain path (module docstring)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(**json.loads(args.one))), flush=True)
        return
    from boundary_aware.nifti import load_volume
    ways = ["shared", "plain"] if args.plain else ["shared"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = list(volumes(tmp))
        for name in args.models.split(","):
            results = {}
            for way in ways:
                one = dict(name=name, way=way, tmp=str(tmp), repeats=args.repeats,
                           batch_size=args.batch_size)
                found, why = measure_in_child("experiments.benchmarks.predict_speed", one)
                if found is None:
                    print(f"{name} {way}: failed: {why}", flush=True)
                    continue
                results[way] = found
            if "shared" not in results:
                continue
            shared = results["shared"]
            print(f"{name}: {shared['backend']}, {os.cpu_count()} CPU cores; shared: "
                  f"{shared['streams']} stream(s) of batch {shared['batch']}"
                  f"{', cores split' if shared['split'] else ''}; best of {args.repeats}",
                  flush=True)
            for label in names:
                line = f"{name} {label}: shared {shared['seconds'][label]:6.2f} s per volume"
                if "plain" in results:
                    plain = results["plain"]["seconds"][label]
                    same = np.array_equal(
                        load_volume(tmp / f"{name}_{label}_shared.nii.gz", "mask")[0],
                        load_volume(tmp / f"{name}_{label}_plain.nii.gz", "mask")[0])
                    line += (f", plain {plain:6.2f} s ({plain / shared['seconds'][label]:.2f}x"
                             f" faster); masks {'identical' if same else 'DIFFER'}")
                print(line, flush=True)


if __name__ == "__main__":
    main()
