"""Training throughput: images per second, step time, FLOPs, model FLOP utilization, memory.

    python -m experiments.benchmarks.train_speed [--full] [--profile=paper]
        [--models=ours,unet,vnet] [--batch_sizes=8,32]
        [--precisions=float32,mixed_float16,mixed_bfloat16] [--jit=on,off]
        [--steps=30] [--warmup_steps=5] [--peak_tflops=798] [--reference]

One line per configuration (model x batch size x precision x XLA). The
default grid is `TRIMMED`, the configurations the GPU targets need (fits one
8-minute run on an H100: the boundary-aware network in float32 and bf16, the
baselines in bf16, batch 8 and 32, XLA on); `--full` runs every combination
of the flags' defaults (3 models x 2 batch sizes x 3 precisions x XLA on and
off), and any of --models, --batch_sizes, --precisions, --jit runs every
combination of what is given (the rest at their full defaults). Each
configuration runs in its own subprocess, so the peak-memory figure is its
own and Keras's global dtype policy does not leak between them. The model is
the one `experiments/table1.py` trains for the profile (paper: 240 x 240,
ours base width 32, U-Net 64, V-Net 16; demo: 96 x 96, narrow) with its
losses and optimizer, fed from in-memory arrays through `model.fit` (the
way the reference in ../shared/bench/anchor_unet.py measures Keras):
a warm-up fit of `warmup_steps` batches (compilation), then a timed fit of
`steps` batches.

Reported: images/s; step time; forward GFLOP per image from the model's
convolutions (`boundary_aware.model_stats`); model FLOP utilization
MFU = 3 x forward FLOPs x images/s / peak (training taken as 3x forward),
only with --peak_tflops; peak device memory (JAX: the device's
peak_bytes_in_use; TensorFlow: get_memory_info's peak; CPU: the process's
peak resident memory). With --reference, the PyTorch U-Net of
../shared/bench/anchor_unet.py runs at the same batch sizes for a ratio on
the same machine (needs torch).

Figures print; nothing here is a test. Run it with KERAS_BACKEND=jax on the
GPU machine.
"""

import argparse
import itertools
import json
import re
import resource
import subprocess
import time
from pathlib import Path

from experiments.steps import ROOT, run_python

# The reference lives outside this repository, in the shared folder checked
# out beside it (../shared/bench); --reference needs it and PyTorch.
ANCHOR = ROOT.parent / "shared" / "bench" / "anchor_unet.py"


# (model, batch, precision, XLA) of the default grid
TRIMMED = [("ours", 32, "mixed_bfloat16", "on"), ("ours", 32, "float32", "on"),
           ("unet", 8, "mixed_bfloat16", "on"), ("unet", 32, "mixed_bfloat16", "on"),
           ("ours", 8, "mixed_bfloat16", "on"), ("vnet", 32, "mixed_bfloat16", "on"),
           ("vnet", 8, "mixed_bfloat16", "on"), ("ours", 8, "float32", "on")]
FULL = {"models": "ours,unet,vnet", "batch_sizes": "8,32",
        "precisions": "float32,mixed_float16,mixed_bfloat16", "jit": "on,off"}


def grid(args) -> list[tuple[str, int, str, str]]:
    """The configurations to run: TRIMMED, or the product of the flags (`--full`: FULL)."""
    given = {key: getattr(args, key) for key in FULL}
    if not args.full and all(value is None for value in given.values()):
        return list(TRIMMED)
    values = {key: (value or FULL[key]).split(",") for key, value in given.items()}
    return [(m, int(b), p, j) for m, b, p, j in itertools.product(
        values["models"], values["batch_sizes"], values["precisions"], values["jit"])]


def peak_memory_bytes():
    """Peak memory of the accelerator this process used, else its peak RSS."""
    import keras
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax
            device = jax.devices()[0]
            if device.platform != "cpu":
                return int(device.memory_stats()["peak_bytes_in_use"]), device.device_kind
        elif backend == "tensorflow":
            import tensorflow as tf
            gpus = tf.config.list_logical_devices("GPU")
            if gpus:
                return int(tf.config.experimental.get_memory_info(gpus[0].name)["peak"]), "GPU"
    except (KeyError, RuntimeError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "CPU (peak RSS)"


def run_one(model_name, profile, batch_size, precision, jit, steps, warmup_steps, size=None):
    """Measure one configuration in this process; returns a dict (`size`: another slice
    size than the profile's, the widths kept)."""
    import keras
    import numpy as np

    from boundary_aware import train as training
    from boundary_aware.batches import plain_batch
    from boundary_aware.channels import PAPER_SEQUENCES
    from boundary_aware.model_stats import forward_flops
    from experiments.table1 import get_config

    config = get_config(f"{model_name},{profile}")  # ours, unet, vnet: also Table 1 variants
    with config.unlocked():
        config.train.batch_size = batch_size
        config.train.jit_compile = jit
        if size:
            config.data.image_size = size
    channels = len(PAPER_SEQUENCES)
    model = training.build_and_compile(config, precision, channels)
    size = config.data.image_size
    gflop = forward_flops(model) / 1e9
    _, targets = training.loss_setup(config, model.output_names)

    # in-memory batches: smooth random blobs as masks, the image brighter inside
    n = batch_size * max(steps, warmup_steps)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    centres = rng.uniform(0.3, 0.7, (n, 2))
    radii = rng.uniform(0.08, 0.2, n)
    inside = ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2
              < radii[:, None, None] ** 2)
    masks = inside[..., None].astype(np.uint8)
    images = (0.3 + 0.5 * masks + 0.1 * rng.random(masks.shape[:3] + (channels,)))
    x, y = plain_batch(images.astype(np.float32), masks, np.arange(n), config.loss.edge_width,
                       targets)

    batch_ends = []

    class BatchEnds(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batch_ends.append(time.perf_counter())

    def fit(count):
        part = batch_size * count
        batch_ends.clear()
        start = time.perf_counter()
        model.fit(x[:part], {k: v[:part] for k, v in y.items()}, batch_size=batch_size,
                  epochs=1, shuffle=False, verbose=0, callbacks=[BatchEnds()])
        return time.perf_counter() - start

    compile_seconds = fit(warmup_steps)
    seconds = fit(steps)
    # the steps alone, first batch end to last: without fit()'s own start and end
    between = batch_ends[-1] - batch_ends[0] if len(batch_ends) > 1 else float("nan")
    memory, device = peak_memory_bytes()
    return {"model": model_name, "profile": profile, "size": size, "batch": batch_size,
            "precision": precision, "jit": jit, "backend": keras.backend.backend(),
            "device": device, "images_per_s": steps * batch_size / seconds,
            "step_ms": 1e3 * seconds / steps, "warmup_s": compile_seconds,
            "steady_images_per_s": (len(batch_ends) - 1) * batch_size / between,
            "gflop_per_image": gflop, "peak_memory_gib": memory / 2**30}


def describe(row, peak_tflops):
    mfu = ""
    if peak_tflops:
        achieved = 3 * row["gflop_per_image"] * row["images_per_s"] / 1e3
        mfu = f" train_TFLOP/s={achieved:7.1f} MFU={100 * achieved / peak_tflops:5.1f}%"
    return (f"{row['model']:5s} {row['size']}px batch={row['batch']:3d} {row['precision']:15s} "
            f"xla={row['jit']:3s} imgs/s={row['images_per_s']:8.1f} step={row['step_ms']:8.1f}ms "
            f"fwd_GFLOP/img={row['gflop_per_image']:6.2f}{mfu} "
            f"peak_mem={row['peak_memory_gib']:6.2f}GiB ({row['device']}; {row['backend']}; "
            f"warm-up {row['warmup_s']:.0f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper", choices=["paper", "demo"])
    parser.add_argument("--full", action="store_true", help="every combination (FULL)")
    parser.add_argument("--models", help="e.g. ours,unet,vnet")
    parser.add_argument("--batch_sizes", help="e.g. 8,32")
    parser.add_argument("--precisions", help="e.g. float32,mixed_float16,mixed_bfloat16")
    parser.add_argument("--jit", help="XLA settings to try (on, off, auto)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="the card's peak (798 bf16 was measured on the H100 here)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per configuration")
    parser.add_argument("--reference", action="store_true",
                        help="also run the PyTorch U-Net of anchor_unet.py (bf16) at each batch size")
    parser.add_argument("--anchor", help="anchor_unet.py (default: ../shared/bench, or .whl/)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration as JSON
    args = parser.parse_args(argv)

    if args.one:
        print("RESULT " + json.dumps(run_one(**json.loads(args.one))), flush=True)
        return
    configurations = grid(args)
    if args.reference:
        run_reference(sorted({batch for _, batch, _, _ in configurations}), args.steps,
                      args.timeout, args.anchor)
    run_grid(configurations, args.profile, args.steps, args.warmup_steps, args.timeout,
             args.peak_tflops)


def find_anchor(path=None) -> Path:
    """anchor_unet.py: `path`, else ../shared/bench beside the checkout, else .whl/ (the copy
    `make gpu-wheels` puts there, for the GPU machine, where ../shared does not travel)."""
    for candidate in ([Path(path)] if path else [ANCHOR, ROOT / ".whl" / ANCHOR.name]):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path or ANCHOR}: the PyTorch reference anchor_unet.py is not "
                            f"there (nor in .whl/; `make gpu-wheels` copies it)")


def run_reference(batch_sizes, steps, timeout, anchor=None) -> list[dict]:
    """The PyTorch U-Net of anchor_unet.py (bf16) at each batch size; prints and returns rows."""
    rows = []
    for batch in batch_sizes:
        try:
            out = run_python([str(find_anchor(anchor)), "torch", "--precision", "bf16",
                              "--batch", str(batch), "--steps", str(steps)], check=False,
                             capture_output=True, text=True, timeout=timeout)
        except (subprocess.TimeoutExpired, FileNotFoundError) as err:
            print(f"reference batch={batch}: {err}", flush=True)
            continue
        text = out.stdout.strip() or "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f"reference batch={batch}: " + text, flush=True)
        found = re.search(r"imgs/s=\s*([\d.]+)", text)
        if found:
            rows.append({"batch": batch, "images_per_s": float(found.group(1))})
    return rows


def run_grid(configurations, profile, steps, warmup_steps, timeout, peak_tflops) -> list[dict]:
    """Measure every (model, batch, precision, XLA), each in its own process; prints a line
    per configuration and returns the rows."""
    rows = []
    for model_name, batch, precision, jit in configurations:
        one = dict(model_name=model_name, profile=profile, batch_size=batch,
                   precision=precision, jit=jit, steps=steps, warmup_steps=warmup_steps)
        label = f"{model_name} batch={batch} {precision} xla={jit}"
        try:
            out = run_python(["-m", "experiments.benchmarks.train_speed", f"--one={json.dumps(one)}"],
                             check=False, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{label}: timed out after {timeout:.0f} s", flush=True)
            continue
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            print(f"{label}: failed: {out.stderr.strip()[-400:]}", flush=True)
            continue
        row = json.loads(lines[-1][len("RESULT "):])
        rows.append(row)
        print(describe(row, peak_tflops), flush=True)
    return rows


if __name__ == "__main__":
    main()
