"""Seconds to segment one 240 x 240 x 155 volume with Ours at paper widths, per runtime.

    make bench-predict [PREDICT_ARGS="--runtimes=tensorflow,jax,onnxruntime,openvino
                                      --tta=none,lr,ap --repeats=2 --model=FILE.keras"]

The same weights (Ours at the paper's widths, untrained, with random batch-norm
statistics so that the masks are not trivial; or a trained model's, `--model`,
run in float32 whatever it was trained in) run through `predict_file` (reading,
normalization, the slices with head through the model, resizing back,
thresholding, writing) under each runtime, each in its own process:

* `tensorflow`: Keras on the TensorFlow backend, as `predict` runs today;
* `tensorflow-bf16`: the same model computing in bfloat16 (Keras's
  `mixed_bfloat16` policy, float32 weights: `inference.rebuild`, what
  `predict --precision=bfloat16` runs), which TensorFlow's oneDNN kernels
  run in bfloat16 where the CPU has AVX-512 BF16 or AMX;
* `tensorflow-crop`, `tensorflow-bf16-crop`: those two on the head's box
  alone (`predict --crop=head`, `inference.head_box.in_head_box`);
* `jax`: Keras on the JAX backend (XLA on the CPU);
* `onnxruntime`: the model exported by Keras's own ONNX export
  (`model.export(format="onnx")`), run by ONNX Runtime;
* `openvino`: that ONNX file compiled by OpenVINO for the CPU, in float32
  (its bf16 default on CPUs that have it would change the masks);
* `openvino-bf16`: the same in bfloat16 (`INFERENCE_PRECISION_HINT`), where
  the CPU computes in it (AVX-512 BF16 or AMX): faster, and its masks are not
  TensorFlow's voxel for voxel; the comparison says by how much.

Volumes: a synthetic case and the two real BraTS cases of tests/data. Each
figure is the best of `--repeats` after an untimed run of the same volume
(which writes the probabilities compared); every runtime's mask is compared
voxel by voxel with TensorFlow's, and the largest probability difference is
printed. ONNX Runtime and OpenVINO are optional: `pip install
-e ".[bench]"` (never needed by the tests); a runtime that is not installed
is reported and skipped.

Reference: docs/deployment.md ("Speed"); the README's Speed section.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from experiments.benchmarks.metrics_speed import best_time
from experiments.benchmarks.predict_speed import measure_in_child, volumes
from experiments.steps import run_python

RUNTIMES = ("tensorflow", "tensorflow-bf16", "tensorflow-crop", "tensorflow-bf16-crop", "jax",
            "onnxruntime", "openvino", "openvino-bf16")
# Keras runtimes: (backend, predict's --precision, predict's --crop)
KERAS_RUNTIMES = {"tensorflow": ("tensorflow", "float32", "none"),
                  "tensorflow-bf16": ("tensorflow", "bfloat16", "none"),
                  "tensorflow-crop": ("tensorflow", "float32", "head"),
                  "tensorflow-bf16-crop": ("tensorflow", "bfloat16", "head"),
                  "jax": ("jax", "float32", "none")}
SIZE = 240


def paper_model():
    """Ours at paper widths (240 x 240 x 1) with random batch-norm statistics, seeded."""
    import keras

    from boundary_aware import build_model
    keras.utils.set_random_seed(0)
    model = build_model("ours", input_shape=(SIZE, SIZE, 1))  # the paper's widths
    rng = np.random.default_rng(0)
    for variable in model.non_trainable_variables:
        variable.assign(rng.uniform(0.5, 1.5, tuple(variable.shape))
                        if "variance" in variable.path
                        else rng.normal(0, 0.3, tuple(variable.shape)))
    return model


def write_models(tmp: Path, source: str | None = None) -> None:
    """tmp/model.keras and tmp/model.onnx (Keras's ONNX export), the same weights: those
    of `paper_model()`, or of the .keras file `source` (loaded in safe mode) computing in
    float32."""
    if source:
        from boundary_aware.inference.rebuild import rebuild
        from boundary_aware.model_files import load_keras_model
        model = rebuild(load_keras_model(Path(source)), "float32")
        if tuple(model.input_shape[1:]) != (SIZE, SIZE, 1):
            raise SystemExit(f"{source}: takes {model.input_shape[1:]} slices; this "
                             f"benchmark reads {SIZE} x {SIZE} T1c slices")
    else:
        model = paper_model()
    model.predict(np.zeros((1, SIZE, SIZE, 1), np.float32), verbose=0)  # export needs a call
    model.save(tmp / "model.keras")
    try:
        model.export(str(tmp / "model.onnx"), format="onnx", verbose=False)
    except (ImportError, ModuleNotFoundError) as err:
        print(f"no ONNX export ({err}); onnxruntime and openvino are skipped", flush=True)


def onnx_function(path: Path, runtime: str):
    """`run(batch) -> {output: array}` of an ONNX file under ONNX Runtime or OpenVINO (in
    float32, or in bfloat16 for `openvino-bf16`)."""
    if runtime == "onnxruntime":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        names = [o.name for o in session.get_outputs()]
        return lambda batch: dict(zip(names, session.run(names, {name: batch})))
    import openvino as ov
    core = ov.Core()
    precision = "bf16" if runtime == "openvino-bf16" else "f32"
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    outputs = {}
    for o in compiled.outputs:  # each tensor has several names; the ONNX output's is one
        names = sorted(o.get_names(), key=lambda n: (":" in n or "/" in n, len(n)))
        outputs[names[0]] = o

    def run(batch):
        result = request.infer([batch])
        return {name: np.array(result[o]) for name, o in outputs.items()}
    return run


def measure(runtime: str, tmp: str, repeats: int, tta: str, batch_size: int | None,
            names: list | None = None, compare: bool = True) -> dict:
    """Seconds per volume of one runtime (in this process), its masks written under tmp."""
    from boundary_aware import runtime as rt
    from boundary_aware.channels import PAPER_SEQUENCES
    from boundary_aware.inference.options import InferenceOptions
    from boundary_aware.inference.predictor import Predictor, batched
    from boundary_aware.inference.sources import load_predictor
    from boundary_aware.predict_cases import predict_file
    tmp = Path(tmp)
    if runtime in KERAS_RUNTIMES:
        import keras
        batch_size = batch_size or rt.inference_batch_size()
        _, precision, crop = KERAS_RUNTIMES[runtime]
        predictor = load_predictor(tmp / "model.keras", InferenceOptions(
            batch_size=batch_size, precision=precision, crop=crop))
        backend = keras.backend.backend()
    else:
        batch_size = batch_size or 8
        predictor = Predictor(batched(onnx_function(tmp / "model.onnx", runtime), batch_size),
                              (SIZE, SIZE, 1), PAPER_SEQUENCES)
        backend = runtime
    seconds = {}
    for label, path in volumes(tmp).items():
        if names and label not in names:
            continue
        out = tmp / f"{runtime}_{label}_{tta}.nii.gz"
        # untimed first: it traces the model for this volume's slices (and its box), and
        # writes the map the comparison reads
        predict_file(predictor, [path], out,
                     InferenceOptions(tta=tta, save_probabilities=compare), overwrite=True)
        seconds[label] = best_time(lambda: predict_file(
            predictor, [path], out, InferenceOptions(tta=tta), overwrite=True), max(1, repeats))
    return {"seconds": seconds, "batch": batch_size, "backend": backend}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--tta", default="none", help="flip settings, comma-separated "
                        "(none, lr, ap, lr+ap for both): each is timed")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--volumes", default=None, help="only these volumes, comma-separated "
                        "(synthetic, BraTS2013_pat0005, BraTS2013_pat0006)")
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True,
                        help="compare each runtime's masks and probabilities with tensorflow's")
    parser.add_argument("--model", default=None, help="a trained .keras file of Ours at "
                        f"{SIZE} x {SIZE} (T1c) instead of random weights")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(**json.loads(args.one))), flush=True)
        return
    from boundary_aware.nifti import load_volume
    ttas = [t.replace("+", ",") for t in args.tta.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = run_python(["-c", "from pathlib import Path; from experiments.benchmarks."
                          f"predict_runtimes import write_models; write_models(Path('{tmp}'), "
                          f"{args.model!r})"],
                         check=False, capture_output=True, text=True)
        print(out.stdout.strip(), flush=True) if out.stdout.strip() else None
        names = args.volumes.split(",") if args.volumes else None
        labels = [v for v in volumes(tmp) if not names or v in names]
        results = {}
        for runtime in args.runtimes.split(","):
            if runtime not in KERAS_RUNTIMES and not (tmp / "model.onnx").is_file():
                continue
            for tta in ttas:
                one = dict(runtime=runtime, tmp=str(tmp), repeats=args.repeats, tta=tta,
                           batch_size=args.batch_size, names=names, compare=args.compare)
                env = ({"KERAS_BACKEND": KERAS_RUNTIMES[runtime][0]}
                       if runtime in KERAS_RUNTIMES else None)
                found, why = measure_in_child("experiments.benchmarks.predict_runtimes", one,
                                              env)
                if found is None:
                    print(f"{runtime} (tta {tta}): failed or not installed: {why}", flush=True)
                    continue
                results[(runtime, tta)] = found
        print(f"Ours, paper widths, {SIZE} x {SIZE} slices, {os.cpu_count()} CPU cores; seconds "
              f"per volume, best of {args.repeats}; masks and probabilities against "
              f"tensorflow's", flush=True)
        for (runtime, tta), found in results.items():
            for label in labels:
                line = (f"{runtime:13s} tta {tta:6s} {label:18s} "
                        f"{found['seconds'][label]:7.2f} s (batch {found['batch']})")
                ref = tmp / f"tensorflow_{label}_{tta}.nii.gz"
                if runtime != "tensorflow" and args.compare and ref.is_file():
                    mask = load_volume(tmp / f"{runtime}_{label}_{tta}.nii.gz", "mask")[0]
                    ref_mask = load_volume(ref, "mask")[0]
                    prob = load_volume(tmp / f"{runtime}_{label}_{tta}_prob.nii.gz", "image")[0]
                    ref_prob = load_volume(tmp / f"tensorflow_{label}_{tta}_prob.nii.gz",
                                           "image")[0]
                    differ = int(np.count_nonzero(mask != ref_mask))
                    line += (f"; masks {'identical' if differ == 0 else f'differ in {differ} voxels'}"
                             f" of {int(ref_mask.sum())} tumor voxels, largest probability "
                             f"difference {float(np.abs(prob - ref_prob).max()):.1e}")
                print(line, flush=True)


if __name__ == "__main__":
    main()
