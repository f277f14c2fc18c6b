"""Our U-Net against PyTorch's on this machine's CPU, in the same run.

    make bench-cpu [CPU_ARGS="--sizes=240,64 --batch=8 --steps=3"]

Each measurement runs in its own process, float32, one after another:

1. training images per second at each `--sizes` (batch `--batch`):
   * `pytorch`: the U-Net layout of ../shared/bench/anchor_unet.py (copied
     here as `torch_unet`: that file prints images/s to one decimal, too
     coarse below 1 image/s), trained as it trains it (Adam, binary
     cross-entropy on logits, channels_last): three warm-up steps, then
     `--steps` timed;
   * `ours`: the package's own U-Net at the paper's widths (base 64, the same
     encoder-decoder; `train_speed.run_one` with `model.fit` on in-memory
     batches and Eq. 3's losses), the way `boundary-aware-train` trains it,
     timed from the first timed step's end to the last (the steps alone, as
     PyTorch's loop is timed; the figure with `fit()`'s own start and end,
     which here now and then adds about 2 s, is printed beside it),
     on the TensorFlow backend, the one this package recommends on CPUs
     (tf.data, SavedModel export; JAX was slower here: docs/performance.md);
   * with `--anchor_keras`, also anchor_unet.py's own Keras U-Net (its
     printed figure);
2. seconds to segment one 240 x 240 x 155 volume (BraTS2013_pat0005, its
   slices with head) with that U-Net, untrained weights: PyTorch's forward
   passes (eval mode, no gradients, batch 8, channels_last) against ours:
   the same forward passes through `inference.predictor.keras_predictor`, and
   `predict_file` whole (reading, normalization, resizing back, writing).

It prints every figure and the ratios ours / PyTorch (above 1: ours faster).
PyTorch is the optional `peer` extra (the CPU build on this machine's disk),
never a test dependency. Figures print; nothing here is a test.

Reference: docs/performance.md ("Against PyTorch on this CPU").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.benchmarks.predict_speed import measure_in_child
from experiments.benchmarks.train_speed import find_anchor
from experiments.steps import ROOT, run_python

VOLUME = ROOT / "tests" / "data" / "brats_samples" / "BraTS2013_pat0005" / \
    "BraTS2013_pat0005_t1ce.nii.gz"
BASE = 64  # the paper profile's U-Net width, and anchor_unet.py's default


def anchor_keras_images_per_s(size: int, batch: int, steps: int, timeout: float):
    """(images/s, None) of anchor_unet.py's own Keras U-Net on TensorFlow in its own process,
    or (None, why)."""
    out = run_python([str(find_anchor()), "keras", "--precision", "fp32", "--batch", str(batch),
                      "--steps", str(steps), "--size", str(size), "--base", str(BASE)],
                     check=False, capture_output=True, text=True, timeout=timeout,
                     env={"KERAS_BACKEND": "tensorflow"})
    found = re.search(r"imgs/s=\s*([\d.]+)", out.stdout)
    return (float(found.group(1)), None) if found else (None, out.stderr.strip()[-300:])


def torch_unet(base: int, depth: int = 4):
    """anchor_unet.py's PyTorch U-Net layout, as a module (its own is local to a function)."""
    import torch
    from torch import nn

    def block(ci, co):
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(True),
                             nn.Conv2d(co, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            f = [base * 2 ** i for i in range(depth + 1)]
            self.down = nn.ModuleList([block(1 if i == 0 else f[i - 1], f[i])
                                       for i in range(depth + 1)])
            self.up = nn.ModuleList([nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2)
                                     for i in range(depth)])
            self.dec = nn.ModuleList([block(2 * f[i], f[i]) for i in range(depth)])
            self.head = nn.Conv2d(f[0], 1, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):  # logits
            skips = []
            for i, down in enumerate(self.down):
                x = down(x)
                if i < depth:
                    skips.append(x)
                    x = self.pool(x)
            for i in reversed(range(depth)):
                x = self.dec[i](torch.cat([self.up[i](x), skips[i]], 1))
            return self.head(x)
    return UNet()


def torch_train(size: int, batch: int, steps: int) -> dict:
    """images/s of `torch_unet` trained as anchor_unet.py trains it, float32."""
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = torch_unet(BASE).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, size, size).to(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimizer.step()
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return {"images_per_s": steps * batch / (time.perf_counter() - start)}


def measure(kind: str, size: int = 240, batch: int = 8, steps: int = 3) -> dict:
    """One measurement in this process (see the module docstring): "ours_train", or
    "torch_volume" / "ours_volume" (seconds for one volume)."""
    if kind == "ours_train":
        from experiments.benchmarks.train_speed import run_one
        return run_one("unet", "paper", batch, "float32", "on", steps, 3, size=size)
    if kind == "torch_train":
        return torch_train(size, batch, steps)
    from boundary_aware.inference.volume import VolumeInput
    from boundary_aware.nifti import load_volume
    volume = load_volume(VOLUME, "image")[0][..., None]
    data = VolumeInput(volume)
    slices = data.slices(240)  # (Z_head, 240, 240, 1), normalized as predict does
    if kind == "torch_volume":
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        model = torch_unet(BASE).eval().to(memory_format=torch.channels_last)
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(slices, -1, 1)))

        def run():
            with torch.no_grad():
                for i in range(0, len(x), batch):
                    torch.sigmoid(model(x[i:i + batch].contiguous(
                        memory_format=torch.channels_last)))
        run()  # warm-up
        start = time.perf_counter()
        run()
        return {"forward_s": time.perf_counter() - start, "slices": len(slices)}
    import keras

    from boundary_aware import build_model, runtime
    from boundary_aware.inference.predictor import keras_predictor
    from boundary_aware.inference.options import InferenceOptions
    from boundary_aware.predict_cases import predict_file
    streams = runtime.inference_streams()
    runtime.share_cores_between(streams)
    keras.utils.set_random_seed(0)
    model = build_model("unet", (240, 240, 1), base_filters=BASE)
    predictor = keras_predictor(model, runtime.inference_batch_size(), streams)
    predictor(slices[:2])  # warm-up: tracing
    start = time.perf_counter()
    predictor(slices)
    forward = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        predict_file(predictor, [VOLUME], Path(tmp) / "mask.nii.gz", InferenceOptions(tta="none"))
        whole = time.perf_counter() - start
    return {"forward_s": forward, "predict_s": whole, "slices": len(slices),
            "batch": runtime.inference_batch_size(), "backend": keras.backend.backend()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="240,64", help="training slice sizes")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    parser.add_argument("--anchor_keras", action="store_true",
                        help="also anchor_unet.py's own Keras U-Net (figures to one decimal)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(**json.loads(args.one))), flush=True)
        return
    tf_env = {"KERAS_BACKEND": "tensorflow"}
    print(f"U-Net (base {BASE}, depth 4), float32, {os.cpu_count()} CPU cores "
          f"({_cpu_name()})", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        found = {}
        for name, kind, env in (("pytorch", "torch_train", None),
                                ("ours", "ours_train", tf_env)):
            result, why = measure_in_child("experiments.benchmarks.cpu_peer", dict(
                kind=kind, size=size, batch=args.batch, steps=args.steps), env)
            found[name] = (result["images_per_s"] if result else None, why)
            if result and name == "ours":  # the steps alone, as PyTorch's loop times them
                whole_fit = result["images_per_s"]
                found[name] = (result["steady_images_per_s"], why)
        if args.anchor_keras:
            found["keras (anchor)"] = anchor_keras_images_per_s(size, args.batch, args.steps,
                                                                args.timeout)
        torch_ips = found["pytorch"][0]
        print(f"train {size}x{size} batch {args.batch}: " + ", ".join(
            f"{name} {_fmt(*value)} img/s" for name, value in found.items()) + "; " + ", ".join(
            f"{name} / pytorch {_ratio(value[0], torch_ips)}" for name, value in found.items()
            if name != "pytorch") + (f" (ours with fit()'s own start and end: "
                                     f"{whole_fit:.2f} img/s)" if found["ours"][0] else ""),
              flush=True)
    torch_v, why = measure_in_child("experiments.benchmarks.cpu_peer",
                                    dict(kind="torch_volume", batch=args.batch))
    ours_v, why_o = measure_in_child("experiments.benchmarks.cpu_peer",
                                     dict(kind="ours_volume", batch=args.batch), tf_env)
    if torch_v and ours_v:
        print(f"segment one 240x240x155 volume ({ours_v['slices']} slices with head): pytorch "
              f"forward {torch_v['forward_s']:.1f} s (batch {args.batch}), ours forward "
              f"{ours_v['forward_s']:.1f} s (batch {ours_v['batch']}), ours predict whole "
              f"{ours_v['predict_s']:.1f} s; pytorch / ours forward "
              f"{torch_v['forward_s'] / ours_v['forward_s']:.2f}x", flush=True)
    else:
        print(f"volume: failed: {why or why_o}", flush=True)


def _fmt(value, why):
    return f"{value:.2f}" if value is not None else f"failed ({why})"


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
