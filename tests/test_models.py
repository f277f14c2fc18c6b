"""Models: the output contract, one training step, learning, .keras round trips."""

import json

import keras
from keras import ops
import numpy as np
import pytest

from boundary_aware import build_model, losses
from boundary_aware.models import MODELS
from boundary_aware.models.boundary_aware_net import attention_maps
from tests.conftest import ROOT, run_python, to_numpy

pytestmark = pytest.mark.backend
TINY = {"ours": dict(base_filters=4, shape_filters=8, dspp_rates=(1, 2, 3)),
        "unet": dict(base_filters=4), "vnet": dict(base_filters=4)}


def fixed_batch(size=32, n=4, seed=0):
    """Bright disks on noise: a learnable toy segmentation batch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size, 1), "float32")
    for i in range(n):
        cy, cx, r = rng.uniform(size * 0.3, size * 0.7, 2).tolist() + [rng.uniform(4, 8)]
        masks[i, ..., 0] = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    images = np.clip(0.3 + 0.5 * masks + 0.05 * rng.standard_normal(masks.shape), 0, 1)
    return images.astype("float32"), masks


def paper_weights(model):
    """Eq. 3's paper weights of the terms whose outputs the model has."""
    outputs = {t.name: t.output for t in losses.TERMS}
    return {k: w for k, w in losses.PAPER_WEIGHTS.items() if outputs[k] in model.output_names}


def compiled(name, input_shape, **kwargs):
    model = build_model(name, input_shape=input_shape, **{**TINY[name], **kwargs})
    loss, _ = losses.compile_losses(model.output_names, paper_weights(model))
    # TensorFlow's XLA compile costs more than these few CPU steps save;
    # JAX always compiles.
    jit = "auto" if keras.backend.backend() == "jax" else False
    model.compile(keras.optimizers.Adam(3e-3), loss=loss, jit_compile=jit)
    return model


def targets(model, masks):
    """The y dict `compile_losses` asks for: the mask, and its edge band where a loss reads it."""
    _, kinds = losses.compile_losses(model.output_names, paper_weights(model))
    arrays = {"mask": masks, "edge": to_numpy(losses.edge_target(masks))}
    return {key: arrays[kind] for key, kind in kinds.items()}


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("ours", input_shape=(100, 100, 1))
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("unet", input_shape=(40, 40, 1))
    with pytest.raises(ValueError, match="norm must be one of"):
        build_model("vnet", input_shape=(32, 32, 1), norm="layer")
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['dpeth'\]"):
        build_model("unet", input_shape=(32, 32, 1), dpeth=3)
    with pytest.raises(ValueError, match="base_filters must be a positive integer"):
        build_model("ours", input_shape=(32, 32, 1), base_filters=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_builds_at_paper_size_with_the_outputs_its_registry_entry_names(name):
    model = build_model(name, input_shape=(240, 240, 1), **TINY[name])
    x = np.random.default_rng(0).random((1, 240, 240, 1)).astype("float32")
    out = model.predict(x, verbose=0)
    assert set(out) == set(MODELS[name].output_names) == set(model.output_names)
    assert set(MODELS[name].outputs) == ({"seg", "edge"} if name == "ours" else {"seg"})
    for key, value in out.items():
        assert value.shape == (1, 240, 240, 1) and value.dtype == np.float32
        if key in MODELS[name].outputs:
            assert value.min() >= 0 and value.max() <= 1
    for head in MODELS[name].logits:  # the probability is the sigmoid of its logits output
        np.testing.assert_allclose(out[head], 1 / (1 + np.exp(-out[f"{head}_logits"])),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_registry_size_divisor_is_the_total_downsampling(name):
    """At the smallest size the registry allows, the deepest map is 1 x 1; half as large
    is refused."""
    divisor = MODELS[name].divisor(TINY[name])
    model = build_model(name, input_shape=(divisor, divisor, 1), **TINY[name])
    sizes = [o.shape[1] for layer in model.layers for o in
             (layer.output if isinstance(layer.output, (list, tuple)) else [layer.output])
             if o is not None and len(o.shape) == 4]
    assert min(sizes) == 1
    with pytest.raises(ValueError, match=f"divisible by {divisor}"):
        build_model(name, input_shape=(divisor // 2, divisor // 2, 1), **TINY[name])


@pytest.mark.slow
def test_models_take_any_number_of_input_channels():
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    for name in sorted(MODELS):
        model = build_model(name, input_shape=(32, 32, 3), **TINY[name])
        out = model.predict(x, verbose=0)
        changed = x.copy()
        changed[..., 2] = 0  # the third channel alone changes the output
        assert not np.allclose(model.predict(changed, verbose=0)["seg"], out["seg"])


def test_attention_maps_are_the_three_attention_layers_in_stream_order():
    model = build_model("ours", input_shape=(32, 32, 1), **TINY["ours"])
    maps = attention_maps(model)
    assert len(maps) == 3
    names = [t._keras_history.operation.name for t in maps]
    assert names == ["attention1", "attention2", "attention3"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_trains_and_lowers_its_loss_on_a_fixed_batch(name):
    images, masks = fixed_batch()
    model = compiled(name, (32, 32, 1))
    y = targets(model, masks)
    history = [model.train_on_batch(images, y, return_dict=True)["loss"] for _ in range(8)]
    assert all(np.isfinite(history))
    assert min(history[-3:]) < history[0] - 0.02, history


@pytest.mark.slow
def test_mixed_float16_outputs_are_float32_and_training_is_finite():
    keras.config.set_dtype_policy("mixed_float16")
    images, masks = fixed_batch(size=16, n=2)
    model = compiled("ours", (16, 16, 1))
    assert model.get_layer("dspp").compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    out = model(images)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())
    logs = model.train_on_batch(images, targets(model, masks), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert all(np.all(np.isfinite(to_numpy(w))) for w in model.trainable_weights)


@pytest.mark.slow
def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    images, _ = fixed_batch(n=2)
    np.save(tmp_path / "x.npy", images)
    expected = {}
    for name in sorted(MODELS):
        model = build_model(name, input_shape=(32, 32, 1), **TINY[name])
        model.save(tmp_path / f"{name}.keras")
        expected[name] = model.predict(images, verbose=0)
    code = f"""
import json, pathlib, numpy as np, keras
import boundary_aware.layers  # registers the custom layers
root = pathlib.Path({str(tmp_path)!r})
x = np.load(root / "x.npy")
for name in {sorted(MODELS)!r}:
    model = keras.saving.load_model(root / f"{{name}}.keras", safe_mode=True)
    out = model.predict(x, verbose=0)
    np.savez(root / f"{{name}}_out.npz", **out)
print(json.dumps(keras.backend.backend()))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == keras.backend.backend()
    for name, out in expected.items():
        loaded = np.load(tmp_path / f"{name}_out.npz")
        assert set(loaded.files) == set(out)
        for key in out:
            np.testing.assert_array_equal(loaded[key], out[key])


@pytest.mark.slow
def test_checkpoint_saved_before_the_area_fusion_loads_and_gives_its_old_outputs():
    """A tiny boundary-aware model saved by the version before the `fusion` option
    (bilinear fusion), with its outputs on a fixed input, as files."""
    import boundary_aware.layers  # noqa: F401
    data = ROOT / "tests" / "data" / "checkpoints"
    model = keras.saving.load_model(data / "ours_before_area_fusion.keras", safe_mode=True,
                                    compile=False)
    saved = np.load(data / "ours_before_area_fusion_io.npz")
    out = model.predict(saved["x"], verbose=0)
    for name in ("seg", "edge"):
        np.testing.assert_allclose(out[name], saved[name], atol=1e-6)
    assert model.get_layer("fusion_resize").interpolation == "bilinear"
    # built today with the old setting, with the same weights: the same outputs
    rebuilt = build_model("ours", input_shape=(32, 32, 1), fusion="bilinear", **TINY["ours"])
    rebuilt.set_weights(model.get_weights())
    out = rebuilt.predict(saved["x"], verbose=0)
    for name in ("seg", "edge"):
        np.testing.assert_allclose(out[name], saved[name], atol=1e-6)
    assert build_model("ours", input_shape=(32, 32, 1), **TINY["ours"]).get_layer(
        "fusion_resize").interpolation == "area"
    with pytest.raises(ValueError, match="fusion"):
        build_model("ours", input_shape=(32, 32, 1), fusion="nearest", **TINY["ours"])


@pytest.mark.slow
def test_mixed_float16_training_step_with_xla_on_tensorflow():
    """The TensorFlow backend's XLA rejected the float16/float32 mix in the gradient of a
    bilinear resize (the GPU default: mixed_float16 and XLA); resizes now run in float32.
    Checked on the resizes Ours makes (`ResizeLike`, bilinear, up to a larger map and down
    to a smaller one, as its shape stream and bilinear fusion do) in a model small enough
    to compile in seconds under XLA."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow/XLA issue")
    from boundary_aware.layers import ResizeLike
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((32, 32, 1))
    full = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    coarse = keras.layers.Conv2D(4, 3, strides=4, padding="same")(full)
    up = ResizeLike()([keras.layers.Conv2D(4, 1)(coarse), full])  # as the shape stream's
    gated = keras.layers.Conv2D(4, 1)(keras.layers.Multiply()([full, up]))  # attention
    down = ResizeLike()([gated, coarse])  # as the bilinear fusion
    fused = keras.layers.Conv2D(4, 3, padding="same")(
        keras.layers.Concatenate()([coarse, down]))
    logits = keras.layers.Conv2D(1, 1)(ResizeLike()([fused, inputs]))
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", dtype="float32")(logits))
    model.compile(keras.optimizers.Adam(1e-3), loss="binary_crossentropy", jit_compile=True)
    images, masks = fixed_batch()
    history = model.fit(images, masks, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("name", ["ours", "unet", "vnet"])
def test_todays_graph_gives_the_outputs_of_the_graph_before_the_memory_bound_changes(name):
    """tests/make_reference_outputs.py saved tiny models, every weight random, and their
    outputs (inference and training mode) with the graph before the one-channel 1x1
    convolutions became channel sums and batch normalization's statistics one pass
    (docs/design.md, "Computing the same thing with fewer bytes"). Same weights, today's
    graph: the same outputs, to float32 rounding."""
    import boundary_aware.layers  # noqa: F401
    from tests.make_reference_outputs import TINY as REFERENCE
    data = ROOT / "tests" / "data" / "checkpoints"
    saved = np.load(data / f"reference_{name}_io.npz")
    old = keras.saving.load_model(data / f"reference_{name}.keras", safe_mode=True,
                                  compile=False)
    model = build_model(name, input_shape=(32, 32, 1), **REFERENCE[name])
    assert [w.shape for w in model.get_weights()] == [w.shape for w in old.get_weights()]
    model.set_weights(old.get_weights())
    projections = [layer.name for layer in model._flatten_layers()
                   if type(layer).__name__ == "ChannelProjection"]
    assert "seg_projection" in projections  # the new graph is the one under test
    if name == "ours":
        assert {"shape_side1", "edge_projection", "gate_conv"} <= set(projections)
    for training in (False, True):
        out = model(saved["x"], training=training)
        for key in old.output_names:
            np.testing.assert_allclose(
                to_numpy(out[key]), saved[f"{key}_{'training' if training else 'inference'}"],
                atol=1e-5, rtol=1e-5, err_msg=f"{name} {key} training={training}")


def test_channel_projection_is_a_one_channel_1x1_convolution_of_the_concatenation():
    from boundary_aware.layers import ChannelProjection
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 6, 6, 5)).astype("float32")
    b = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    conv = keras.layers.Conv2D(1, 1, bias_initializer="random_normal")
    expected = to_numpy(conv(np.concatenate([a, b], -1)))
    by_hand = np.concatenate([a, b], -1) @ to_numpy(conv.kernel)[0, 0] + to_numpy(conv.bias)
    np.testing.assert_allclose(expected, by_hand, atol=1e-5)
    on_list, on_one = ChannelProjection(), ChannelProjection()
    on_list.build([a.shape, b.shape])
    on_one.build(np.concatenate([a, b], -1).shape)
    for layer in (on_list, on_one):
        layer.set_weights(conv.get_weights())
    np.testing.assert_allclose(to_numpy(on_list([a, b])), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(on_one(np.concatenate([a, b], -1))), expected, atol=1e-5)
    # a saved config (Conv2D's keys included) rebuilds it; other filter counts are refused
    clone = ChannelProjection.from_config(on_one.get_config())
    assert clone.filters == 1 and clone.kernel_size == (1, 1)
    with pytest.raises(ValueError, match="filters is 1"):
        ChannelProjection(filters=2)


def test_channel_projection_under_mixed_bfloat16_matches_float32_within_bf16_rounding():
    from boundary_aware.layers import ChannelProjection
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 8, 32)).astype("float32")
    exact = ChannelProjection()
    exact.build(x.shape)
    mixed = ChannelProjection(dtype="mixed_bfloat16")
    mixed.build(x.shape)
    mixed.set_weights(exact.get_weights())
    out = mixed(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(to_numpy(ops.cast(out, "float32")), to_numpy(exact(x)),
                               atol=0.05, rtol=0.02)


def test_one_pass_batch_normalization_equals_keras_batch_normalization():
    """Outputs and moving statistics, in training and inference mode, on maps whose mean
    (3) is larger than their spread, with the shift first 0 then the moving mean."""
    from boundary_aware.layers.normalization import BatchNormalization
    rng = np.random.default_rng(2)
    x = (3 + rng.normal(size=(4, 8, 8, 6)) * rng.uniform(0.5, 2, 6)).astype("float32")
    ours, reference = BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(
        momentum=0.9)
    for layer in (ours, reference):
        layer.build(x.shape)
        layer.set_weights([rng.normal(1, 0.1, 6), rng.normal(0, 0.1, 6), np.zeros(6),
                           np.ones(6)] if layer is ours else ours.get_weights())
    for step in range(3):
        for training in (True, False):
            np.testing.assert_allclose(to_numpy(ours(x + step, training=training)),
                                       to_numpy(reference(x + step, training=training)),
                                       rtol=5e-5, atol=2e-5,
                                       err_msg=f"step {step} training={training}")
    for mine, theirs in zip(ours.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert abs(ours.get_weights()[2].mean() - 0.271 * 4) < 0.5  # the moving mean moved
