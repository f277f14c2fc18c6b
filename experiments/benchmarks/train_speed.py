"""Training throughput: images per second, step time, FLOPs, model FLOP utilization, memory.

    python -m experiments.benchmarks.train_speed [--profile=paper] [--models=ours,unet,vnet]
        [--batch_sizes=8,32] [--precisions=float32,mixed_float16,mixed_bfloat16]
        [--jit=on,off] [--steps=30] [--warmup_steps=5] [--peak_tflops=798] [--reference]

One line per configuration (model x batch size x precision x XLA). Each
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
import resource
import subprocess
import time

from experiments.runner import ROOT, run_python

# The reference lives outside this repository, in the shared folder checked
# out beside it (../shared/bench); --reference needs it and PyTorch.
ANCHOR = ROOT.parent / "shared" / "bench" / "anchor_unet.py"


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


def run_one(model_name, profile, batch_size, precision, jit, steps, warmup_steps):
    """Measure one configuration in this process; returns a dict."""
    import keras
    import numpy as np

    from boundary_aware import train as training
    from boundary_aware.augment import AugmentConfig, sample_params
    from boundary_aware.batches import assemble_batch
    from boundary_aware.model_stats import forward_flops
    from experiments.table1 import get_config

    config = get_config(f"{model_name},{profile}")  # ours, unet, vnet: also Table 1 variants
    with config.unlocked():
        config.train.batch_size = batch_size
        config.train.jit_compile = jit
    model = training.build_and_compile(config, precision)
    size = config.data.image_size
    gflop = forward_flops(model) / 1e9
    with_edge = training.trains_edge(config, model)

    # in-memory batches: smooth random blobs as masks, the image brighter inside
    n = batch_size * max(steps, warmup_steps)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    centres = rng.uniform(0.3, 0.7, (n, 2))
    radii = rng.uniform(0.08, 0.2, n)
    inside = ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2
              < radii[:, None, None] ** 2)
    masks = inside[..., None].astype(np.uint8)
    images = (0.3 + 0.5 * masks + 0.1 * rng.random(masks.shape)).astype(np.float32)
    x, seg, edge = assemble_batch(images, masks, np.arange(n),
                                  sample_params(n, 0, 0, AugmentConfig(enabled=False)),
                                  config.loss.edge_width, with_edge)
    y = {"seg": seg, "edge": edge} if with_edge else {"seg": seg}

    def fit(count):
        part = batch_size * count
        start = time.perf_counter()
        model.fit(x[:part], {k: v[:part] for k, v in y.items()}, batch_size=batch_size,
                  epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - start

    compile_seconds = fit(warmup_steps)
    seconds = fit(steps)
    memory, device = peak_memory_bytes()
    return {"model": model_name, "profile": profile, "size": size, "batch": batch_size,
            "precision": precision, "jit": jit, "backend": keras.backend.backend(),
            "device": device, "images_per_s": steps * batch_size / seconds,
            "step_ms": 1e3 * seconds / steps, "warmup_s": compile_seconds,
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
    parser.add_argument("--models", default="ours,unet,vnet")
    parser.add_argument("--batch_sizes", default="8,32")
    parser.add_argument("--precisions", default="float32,mixed_float16,mixed_bfloat16")
    parser.add_argument("--jit", default="on,off", help="XLA settings to try (on, off, auto)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="the card's peak (798 bf16 was measured on the H100 here)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per configuration")
    parser.add_argument("--reference", action="store_true",
                        help="also run the PyTorch U-Net of anchor_unet.py (bf16) at each batch size")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration as JSON
    args = parser.parse_args(argv)

    if args.one:
        print("RESULT " + json.dumps(run_one(**json.loads(args.one))), flush=True)
        return
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.reference:
        for batch in batch_sizes:
            out = run_python([str(ANCHOR), "torch", "--precision", "bf16", "--batch", str(batch),
                              "--steps", str(args.steps)], check=False, capture_output=True,
                             text=True, timeout=args.timeout)
            print("reference " + (out.stdout.strip() or out.stderr.strip()[-300:]), flush=True)
    grid = itertools.product(args.models.split(","), batch_sizes, args.precisions.split(","),
                             args.jit.split(","))
    for model_name, batch, precision, jit in grid:
        one = dict(model_name=model_name, profile=args.profile, batch_size=batch,
                   precision=precision, jit=jit, steps=args.steps, warmup_steps=args.warmup_steps)
        label = f"{model_name} batch={batch} {precision} xla={jit}"
        try:
            out = run_python(["-m", "experiments.benchmarks.train_speed", f"--one={json.dumps(one)}"],
                             check=False, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{label}: timed out after {args.timeout:.0f} s", flush=True)
            continue
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            print(f"{label}: failed: {out.stderr.strip()[-400:]}", flush=True)
            continue
        print(describe(json.loads(lines[-1][len("RESULT "):]), args.peak_tflops), flush=True)


if __name__ == "__main__":
    main()
