"""The training benchmark's arithmetic (the timings themselves are not tested)."""

import pytest

from experiments.benchmarks.train_speed import describe


def test_mfu_is_three_forward_passes_over_the_peak():
    row = {"model": "ours", "size": 240, "batch": 32, "precision": "mixed_bfloat16",
           "jit": "on", "images_per_s": 1000.0, "step_ms": 32.0, "warmup_s": 40.0,
           "gflop_per_image": 32.55, "peak_memory_gib": 10.0, "device": "H100",
           "backend": "jax"}
    line = describe(row, peak_tflops=798.0)
    achieved = 3 * 32.55 * 1000.0 / 1e3  # TFLOP/s
    assert f"train_TFLOP/s={achieved:7.1f}" in line
    assert f"MFU={100 * achieved / 798.0:5.1f}%" in line
    assert "MFU" not in describe(row, peak_tflops=None)
    assert pytest.approx(achieved / 798.0, rel=1e-3) == 0.1224
