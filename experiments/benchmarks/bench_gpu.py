"""The GPU run in one command: `make bench-gpu` (runs here too, on CPUs).

    KERAS_BACKEND=jax python -m experiments.benchmarks.bench_gpu [--steps=30]
        [--timeout=150] [--peak_tflops=989.4] [--skip=roofline,predict]

One line per configuration, the card's name first:
1. the PyTorch U-Net reference of anchor_unet.py (bf16) at batch 8 and 32;
2. `make bench-train`'s trimmed grid (`train_speed.TRIMMED`): our U-Net
   against that reference, the boundary-aware network's MFU and bf16 / float32;
3. the roofline of the boundary-aware network's train step (batch 32) as
   XLA compiles it for this device (`roofline.py`);
4. the input pipeline's delivery rate, measured with as many worker
   processes as there are cores, against the fastest training rate of 2.;
5. predict's seconds per 240 x 240 x 155 volume (`predict_speed`, after only);
6. the whole path end to end (`end_to_end`): 8 synthetic cases, prepared, the paper
   profile trained for 10 epochs with its batch-norm statistics recomputed before each
   validation, evaluated, exported, and used by predict with and without flips.
Each part has its own time limit, so a slow part costs only its share; a
summary of the ratios against the speed targets of docs/performance.md ends the output.
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from experiments.steps import run_python


def card_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    import platform
    return f"no NVIDIA GPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=150, help="seconds per configuration")
    parser.add_argument("--peak_tflops", type=float, default=989.4,
                        help="dense bf16 peak for the MFU (H100 SXM data sheet)")
    parser.add_argument("--profile", default="paper", choices=["paper", "demo"])
    parser.add_argument("--skip", default="", help="parts to leave out: reference, train, "
                        "roofline, pipeline, predict, end_to_end")
    parser.add_argument("--anchor", help="anchor_unet.py (default: ../shared/bench, or .whl/)")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    from experiments.benchmarks import train_speed

    start = time.perf_counter()
    print(f"card: {card_name()}; KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}",
          flush=True)
    reference = []
    if "reference" not in skip:
        reference = train_speed.run_reference([8, 32], args.steps, args.timeout, args.anchor)
    rows = []
    if "train" not in skip:
        rows = train_speed.run_grid(train_speed.TRIMMED, args.profile, args.steps,
                                    args.warmup_steps, args.timeout, args.peak_tflops)
    if "roofline" not in skip:
        part("roofline", ["-m", "experiments.benchmarks.roofline", "--models=ours",
                          "--batch_sizes=32"], 2 * args.timeout)
    delivered = None
    if "pipeline" not in skip:
        from experiments.benchmarks.data_speed import delivery_rate
        workers = os.cpu_count() or 1
        try:
            delivered = delivery_rate(workers)
            print(f"pipeline: {delivered:,.0f} augmented 240x240 slices/s delivered by "
                  f"{workers} worker processes (measured)", flush=True)
        except Exception as err:  # a benchmark part fails alone; the others still report
            print(f"pipeline: failed: {type(err).__name__}: {err}", flush=True)
    if "predict" not in skip:
        part("predict", ["-m", "experiments.benchmarks.predict_speed", "--no-before",
                         "--repeats=1"], 3 * args.timeout)
    if "end_to_end" not in skip:  # the paper profile trained, evaluated and used by predict
        with tempfile.TemporaryDirectory() as tmp:
            part("end_to_end", ["-m", "experiments.benchmarks.end_to_end",
                                f"--out={Path(tmp) / 'e2e'}", f"--timeout={2 * args.timeout}"],
                 8 * args.timeout)
    summarize(rows, reference, delivered, args.peak_tflops)
    print(f"bench-gpu: {time.perf_counter() - start:.0f} s in all", flush=True)


def part(name, command, timeout):
    """Run one part as a child process, printing its output; a time-out ends only that part."""
    try:
        out = run_python(command, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name}: timed out after {timeout:.0f} s", flush=True)
        return
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    print("\n".join(f"{name}: {line}" for line in lines) or
          f"{name}: failed: {out.stderr.strip()[-400:]}", flush=True)


def summarize(rows, reference, delivered, peak_tflops):
    """The ratios against the speed targets (docs/performance.md), from what ran."""
    def find(model, batch, precision):
        return next((r for r in rows if (r["model"], r["batch"], r["precision"])
                     == (model, batch, precision)), None)
    for ref in reference:
        ours = find("unet", ref["batch"], "mixed_bfloat16")
        if ours:
            print(f"summary: U-Net bf16 batch {ref['batch']}: {ours['images_per_s']:.1f} imgs/s, "
                  f"{ours['images_per_s'] / ref['images_per_s']:.2f}x the PyTorch reference "
                  f"(target >= 1)", flush=True)
    bf16, fp32 = find("ours", 32, "mixed_bfloat16"), find("ours", 32, "float32")
    if bf16:
        mfu = 3 * bf16["gflop_per_image"] * bf16["images_per_s"] / 1e3 / peak_tflops
        print(f"summary: boundary-aware bf16 batch 32: MFU {100 * mfu:.1f}% of {peak_tflops} "
              f"TFLOP/s (target >= 20%)", flush=True)
    if bf16 and fp32:
        print(f"summary: boundary-aware batch 32: bf16 {bf16['images_per_s'] / fp32['images_per_s']:.2f}x "
              f"float32 (target >= 1.5)", flush=True)
    if rows and delivered:
        fastest = max(rows, key=lambda r: r["images_per_s"])
        print(f"summary: pipeline {delivered / fastest['images_per_s']:.1f}x the fastest training "
              f"rate ({fastest['model']} batch {fastest['batch']} {fastest['precision']}: "
              f"{fastest['images_per_s']:.0f} imgs/s; target >= 1.5)", flush=True)


if __name__ == "__main__":
    main()
