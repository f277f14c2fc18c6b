"""Models: the output contract, one training step, learning, .keras round trips."""

import json

import keras
import numpy as np
import pytest

from boundary_aware import build_model, losses
from boundary_aware.models import MODELS
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


def compiled(name, input_shape, **kwargs):
    model = build_model(name, input_shape=input_shape, **{**TINY[name], **kwargs})
    loss, weights = losses.compile_losses(model.output_names)
    # TensorFlow's XLA compile costs more than these few CPU steps save;
    # JAX always compiles.
    jit = "auto" if keras.backend.backend() == "jax" else False
    model.compile(keras.optimizers.Adam(3e-3), loss=loss, loss_weights=weights,
                  jit_compile=jit)
    return model


def targets(model, masks):
    y = {"seg": masks}
    if "edge" in model.output_names:
        y["edge"] = to_numpy(losses.edge_target(masks))
    return y


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet")
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("ours", input_shape=(100, 100, 1))
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("unet", input_shape=(40, 40, 1))
    with pytest.raises(ValueError, match="norm must be one of"):
        build_model("vnet", input_shape=(32, 32, 1), norm="layer")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builds_at_paper_size_with_probability_outputs(name):
    model = build_model(name, **TINY[name])
    x = np.random.default_rng(0).random((1, 240, 240, 1)).astype("float32")
    out = model.predict(x, verbose=0)
    expected = {"seg", "edge"} if name == "ours" else {"seg"}
    assert set(out) == expected
    for value in out.values():
        assert value.shape == (1, 240, 240, 1) and value.dtype == np.float32
        assert value.min() >= 0 and value.max() <= 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_trains_and_lowers_its_loss_on_a_fixed_batch(name):
    images, masks = fixed_batch()
    model = compiled(name, (32, 32, 1))
    y = targets(model, masks)
    history = [model.train_on_batch(images, y, return_dict=True)["loss"] for _ in range(8)]
    assert all(np.isfinite(history))
    assert min(history[-3:]) < history[0] - 0.02, history


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


def test_mixed_float16_training_step_with_xla_on_tensorflow():
    """The TensorFlow backend's XLA rejected the float16/float32 mix in the gradient of a
    bilinear resize (the GPU default: mixed_float16 and XLA); resizes now run in float32."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow/XLA issue")
    keras.config.set_dtype_policy("mixed_float16")
    model = build_model("ours", input_shape=(32, 32, 1), fusion="bilinear", **TINY["ours"])
    loss, weights = losses.compile_losses(model.output_names)
    model.compile(keras.optimizers.Adam(1e-3), loss=loss, loss_weights=weights, jit_compile=True)
    images, masks = fixed_batch()
    edges = to_numpy(losses.edge_target(masks))
    history = model.fit(images, {"seg": masks, "edge": edges}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
