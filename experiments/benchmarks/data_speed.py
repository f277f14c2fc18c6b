"""Data-path speed: preparation time per 240 x 240 x 155 case, and tf.data throughput.

    .venv/bin/python -m experiments.benchmarks.data_speed [--cases=4] [--batch_size=8]

Targets (docs/performance.md): preparation under 0.6 s per case per core (the 285 BraTS
2018 cases in under 3 minutes on 2 cores); tf.data at least 2,000 augmented
240 x 240 slices per second on 2 cores. Prints tf.data with the default
augmentation (flips, rotation and scaling each with p = 0.2, intensity), with
every slice rotated and scaled, and without augmentation, and the PyDataset
(one worker, the loop Keras runs without TensorFlow).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="time per throughput figure")
    args = parser.parse_args(argv)
    from boundary_aware.augment import AugmentConfig
    from boundary_aware.prepared import load_prepared
    from data_prep import synthetic
    from data_prep.prepare_brats import prepare

    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "brats", Path(tmp) / "prepared"
        synthetic.generate(root, args.cases, seed=0)
        start = time.perf_counter()
        prepare(root, out, workers=1, log=lambda *a: None)
        per_case = (time.perf_counter() - start) / args.cases
        print(f"prepare: {per_case:.3f} s per 240x240x155 case on one core "
              f"(projected for 285 cases on {os.cpu_count()} cores: "
              f"{285 * per_case / os.cpu_count() / 60:.1f} min)")
        images, masks, _ = load_prepared(out, "train")

    reps = max(1, 2000 // len(images))
    images, masks = np.concatenate([images] * reps), np.concatenate([masks] * reps)
    settings = {
        "default augmentation": AugmentConfig(),
        "every slice rotated and scaled": AugmentConfig(rotate_p=1.0, scale_p=1.0),
        "no augmentation": AugmentConfig(enabled=False),
    }
    from boundary_aware.pydataset import SliceDataset
    epochs = {}
    try:
        from boundary_aware.data_pipeline import make_dataset
        for name, augment in settings.items():
            dataset = make_dataset(images, masks, args.batch_size, augment=augment)
            epochs[f"tf.data, {name}"] = lambda d=dataset: (x.shape[0] for x, _ in d)
    except ImportError:
        print("tf.data: TensorFlow is not installed")
    pyds = SliceDataset(images, masks, args.batch_size, augment=settings["default augmentation"])
    epochs["PyDataset (one worker), default augmentation"] = lambda: (
        pyds[i][0].shape[0] for i in range(len(pyds)))
    for name, epoch in epochs.items():
        n, seconds, cpu = measure(epoch, args.seconds)
        print(f"{name}: {n / seconds:,.0f} 240x240 slices/s, {cpu / n * 1e3:.2f} ms of CPU "
              f"per slice (batch {args.batch_size}, {os.cpu_count()} cores)")


def delivery_rate(workers: int, seconds: float = 5.0, batch_size: int = 8,
                  size: int = 240) -> float:
    """Augmented slices per second that `workers` processes deliver together (measured).

    Each process builds batches with the PyDataset's code (the default
    augmentation and the edge target, what `train` feeds a JAX or PyTorch-less
    GPU run) from its own in-memory slices for `seconds`; the rates add up.
    """
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as pool:
        rates = pool.map(_one_worker_rate, [(seconds, batch_size, size, seed)
                                            for seed in range(workers)])
        return float(sum(rates))


def _one_worker_rate(job) -> float:
    seconds, batch_size, size, seed = job
    from boundary_aware.augment import AugmentConfig
    from boundary_aware.pydataset import SliceDataset
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([((yy - c[0]) ** 2 + (xx - c[1]) ** 2 < 30 ** 2)
                      for c in rng.uniform(0.3 * size, 0.7 * size, (64, 2))])[..., None]
    masks = masks.astype(np.uint8)  # (N, H, W, 1), as load_prepared gives them
    images = (0.2 + 0.5 * masks + 0.1 * rng.random(masks.shape)).astype(np.float32)
    dataset = SliceDataset(images, masks, batch_size, augment=AugmentConfig())
    n, wall, _ = measure(lambda: (dataset[i][0].shape[0] for i in range(len(dataset))), seconds)
    return n / wall


def measure(epoch, seconds):
    """(slices, wall seconds, CPU seconds) over about `seconds`, after a warm-up."""
    for _ in zip(range(3), epoch()):
        pass
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for size in epoch():
            n += size
            if time.perf_counter() - start > seconds:
                break
    return n, time.perf_counter() - start, time.process_time() - cpu


if __name__ == "__main__":
    main()
