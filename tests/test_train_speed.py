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


def test_default_grid_is_the_trimmed_one_and_full_is_every_combination():
    from argparse import Namespace

    from experiments.benchmarks.train_speed import FULL, TRIMMED, grid
    unset = dict(models=None, batch_sizes=None, precisions=None, jit=None)
    assert grid(Namespace(full=False, **unset)) == TRIMMED
    # the GPU targets: ours in float32 and bf16 at batch 32, the U-Net in bf16 at 8 and 32
    assert {("ours", 32, "float32", "on"), ("ours", 32, "mixed_bfloat16", "on"),
            ("unet", 8, "mixed_bfloat16", "on"), ("unet", 32, "mixed_bfloat16", "on")} <= set(
                TRIMMED)
    full = grid(Namespace(full=True, **unset))
    assert len(full) == 3 * 2 * 3 * 2 == len(set(full))
    some = grid(Namespace(full=False, **{**unset, "models": "unet", "jit": "on"}))
    assert some == [("unet", b, p, "on") for b in (8, 32) for p in FULL["precisions"].split(",")]


def test_roofline_arithmetic_and_every_layer_of_ours_has_a_part():
    from boundary_aware import build_model
    from experiments.benchmarks.roofline import CARDS, PARTS, part_of, predict_on
    card = CARDS["H100 SXM"]
    # 989.4 TFLOP in bf16 is 1 s of compute; 3.35 TB is 1 s of memory traffic
    r = predict_on(card, "mixed_bfloat16", 989.4e12, 3.35e12 / 2)
    assert r["compute_s"] == pytest.approx(1.0) and r["memory_s"] == pytest.approx(0.5)
    assert r["step_s"] == pytest.approx(1.0) and r["bound"] == "compute"
    r = predict_on(card, "float32", 494.7e12, 3.35e12 * 2)  # float32 runs at the TF32 peak
    assert r["compute_s"] == pytest.approx(1.0) and r["bound"] == "memory"
    model = build_model("ours", input_shape=(32, 32, 1), base_filters=4, shape_filters=8)
    parts = {layer.name: part_of(layer.name) for layer in model.layers}
    assert "other" not in parts.values(), parts
    assert set(parts.values()) == {name for name, _ in PARTS}
    assert parts["attention2"] == parts["connection1"] == "shape stream (full resolution)"
    assert parts["dspp"] == "DSPP" and parts["fusion_resize"] == "fusion"
    assert parts["dec1_block"] == parts["seg"] == "decoder" and parts["enc4_block2"] == "encoder"


def test_gpu_summary_ratios(capsys):
    from experiments.benchmarks.bench_gpu import summarize
    rows = [{"model": "unet", "batch": 8, "precision": "mixed_bfloat16", "images_per_s": 300.0,
             "gflop_per_image": 84.54},
            {"model": "ours", "batch": 32, "precision": "mixed_bfloat16", "images_per_s": 1000.0,
             "gflop_per_image": 32.55},
            {"model": "ours", "batch": 32, "precision": "float32", "images_per_s": 500.0,
             "gflop_per_image": 32.55}]
    summarize(rows, [{"batch": 8, "images_per_s": 200.0}], delivered=3000.0, peak_tflops=989.4)
    out = capsys.readouterr().out
    assert "U-Net bf16 batch 8: 300.0 imgs/s, 1.50x the PyTorch reference" in out
    assert f"MFU {100 * 3 * 32.55 * 1000 / 1e3 / 989.4:.1f}%" in out  # 9.9%
    assert "bf16 2.00x float32" in out and "pipeline 3.0x the fastest training rate" in out
