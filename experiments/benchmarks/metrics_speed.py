"""Time our metrics against medpy on a 240 x 240 slice and a 240 x 240 x 155 volume.

Prints one line per case: medpy's time, ours, the speed-up, and the largest
difference of the four values. Targets (docs/performance.md): >= 5x faster than medpy on
a slice, < 0.1 s for a volume.

    .venv/bin/python -m experiments.benchmarks.metrics_speed [--repeats=5]
"""

import argparse
import time

import numpy as np
from scipy import ndimage

from boundary_aware import metrics


def tumor_like(shape, center, radii, seed):
    """An irregular blob: an ellipsoid whose radius is modulated by smooth noise."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    dist = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)))
    wobble = ndimage.gaussian_filter(rng.standard_normal(shape), 4)
    return dist + 2.0 * wobble < 1.0


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from medpy.metric import binary as mb

    volume_ref = tumor_like((240, 240, 155), (120, 110, 80), (25, 30, 20), 0)
    volume_pred = tumor_like((240, 240, 155), (122, 112, 78), (24, 31, 21), 1)
    cases = {
        "slice 240x240 (1 mm)": (volume_pred[:, :, 80], volume_ref[:, :, 80], (1.0, 1.0)),
        "volume 240x240x155 (1 mm)": (volume_pred, volume_ref, (1.0, 1.0, 1.0)),
        "volume 240x240x155 (0.9x0.9x3 mm)": (volume_pred, volume_ref, (0.9, 0.9, 3.0)),
    }
    print(f"{'case':<36} {'medpy s':>9} {'ours s':>9} {'speed-up':>9} {'max |diff|':>11}")
    for name, (pred, ref, spacing) in cases.items():
        def run_medpy():
            return (mb.dc(pred, ref), mb.jc(pred, ref), mb.hd(pred, ref, spacing),
                    mb.hd95(pred, ref, spacing))

        def run_ours():
            m = metrics.segmentation_metrics(pred, ref, spacing)
            return m["dice"], m["jaccard"], m["hd"], m["hd95"]
        diff = max(abs(a - b) for a, b in zip(run_medpy(), run_ours()))
        t_medpy = best_time(run_medpy, max(1, args.repeats // 2))
        t_ours = best_time(run_ours, args.repeats)
        print(f"{name:<36} {t_medpy:>9.4f} {t_ours:>9.4f} {t_medpy / t_ours:>8.1f}x {diff:>11.2e}")


if __name__ == "__main__":
    main()
