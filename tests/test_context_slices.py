"""Neighbouring slices as context (2.5D, `data.context_slices`): the stacking at the
volume's edges, the same input in preparation and at inference, one intensity change per
sequence, and the path from preparation through training to predict."""

import json

import nibabel as nib
import numpy as np
import pytest

from boundary_aware.augment import AugmentConfig, augment_slice, sample_params
from boundary_aware.channels import channel_layout, context_channels, stack_context
from boundary_aware.errors import DataError
from boundary_aware.prepared import load_prepared, Manifest
from boundary_aware.inference.predictor import Predictor
from boundary_aware.inference.volume import segment_volume, VolumeInput
from boundary_aware.inference.options import InferenceOptions
from data_prep import synthetic
from data_prep.prepare_brats import prepare


def quiet(*args, **kwargs):
    pass


def test_channel_names_and_their_layout():
    assert context_channels(("t1c",), 0) == ("t1c",)  # no context: the paper's input
    names = context_channels(("flair", "t1c"), 1)
    assert names == ("flair[z-1]", "t1c[z-1]", "flair", "t1c", "flair[z+1]", "t1c[z+1]")
    assert channel_layout(names) == (("flair", "t1c"), 1)
    assert channel_layout(("t1c",)) == (("t1c",), 0)
    for bad in (("t1c[z-1]", "t1c"), ("t1c[z+1]", "t1c", "t1c[z-1]")):
        with pytest.raises(DataError, match="model.keras: input channels"):
            channel_layout(bad, "model.keras")


def test_stacking_at_the_volumes_edges_by_hand():
    # five slices whose every pixel holds the slice's number (plus 1 so none is 0), two
    # sequences: the second is ten times the first
    values = np.arange(1, 6, dtype=np.float32)
    slices = np.stack([np.broadcast_to(values[:, None, None], (5, 2, 2)),
                       np.broadcast_to(10 * values[:, None, None], (5, 2, 2))], axis=-1)
    got = stack_context(slices, [0, 2, 4], 2)[:, 0, 0, :]
    expected = np.array([  # (z-2, z-1, z, z+1, z+2) x (sequence 1, sequence 2)
        [0, 0, 0, 0, 1, 10, 2, 20, 3, 30],  # the first slice: nothing below it
        [1, 10, 2, 20, 3, 30, 4, 40, 5, 50],
        [3, 30, 4, 40, 5, 50, 0, 0, 0, 0],  # the last: nothing above it
    ], np.float32)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(stack_context(slices, [3, 1], 0), slices[[3, 1]])


def test_one_intensity_change_per_sequence_across_its_context_slices():
    config = AugmentConfig(flip_lr=False, rotate_p=0.0, scale_p=0.0)
    params = sample_params(4, seed=3, epoch=0, config=config, channels=2)
    image = np.full((8, 8, 6), 0.5, np.float32)  # two sequences, one neighbour on each side
    out_image, out_mask = np.empty_like(image), np.empty((8, 8), np.uint8)
    augment_slice(image, np.zeros((8, 8), np.uint8), params[0], None, out_image, out_mask)
    seen = out_image[0, 0]
    for c in range(6):  # channel c is sequence c mod 2
        scale, shift = params[0, 4 + 2 * (c % 2)], params[0, 5 + 2 * (c % 2)]
        assert seen[c] == pytest.approx(np.clip(0.5 * scale + shift, 0, 1), abs=1e-6)
    assert seen[0] != pytest.approx(seen[1])  # the two sequences do differ


def test_inference_stacks_the_neighbours_in_the_order_training_saw():
    """A model that answers with its z+1 channel segments slice z with slice z+1's input;
    the last slice has none above it (0)."""
    size = 4

    def next_slice(images):
        return {"seg": images[..., 2:3]}  # channels (z-1, z, z+1) of one sequence
    model = Predictor(next_slice, (size, size, 3), context_channels(("t1c",), 1))
    assert model.sequences == ("t1c",) and model.context_slices == 1
    volume = np.random.default_rng(0).uniform(1, 2, (size, size, 5, 1)).astype(np.float32)
    own = VolumeInput(volume).slices(size)[..., 0]  # (Z, X, Y): each slice's own input
    got = segment_volume(model, volume, distinct=False)["seg"]
    np.testing.assert_allclose(got[:, :, :4], np.moveaxis(own[1:], 0, 2), atol=1e-6)
    assert not got[:, :, 4].any()


@pytest.fixture(scope="module")
def context_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("context")
    synthetic.generate(root / "brats", 4, seed=5, shape=(48, 48, 24))
    for k in (0, 1):
        prepare(root / "brats", root / f"prepared{k}", slices_per_case=4, image_size=32,
                context_slices=k, log=quiet)
    return root


def test_prepared_context_is_the_plain_slices_and_what_inference_builds(context_data):
    plain, _, meta = load_prepared(context_data / "prepared0", "train")
    stacked, masks, meta1 = load_prepared(context_data / "prepared1", "train")
    manifest = Manifest.read(context_data / "prepared1")
    assert manifest.channels == ("t1c[z-1]", "t1c", "t1c[z+1]")
    assert manifest.sequences == ("t1c",) and manifest.context_slices == 1
    assert meta == meta1
    np.testing.assert_array_equal(stacked[..., 1:2], plain)  # the slice itself: unchanged
    # every prepared slice equals what predict gives the same slice of the volume
    case = meta[0]["case"]
    path, _ = manifest.source_file(case, "t1c")
    volume = np.asarray(nib.load(str(path)).dataobj, np.float32)[..., None]
    data = VolumeInput(volume)
    at_inference = data.slices(32, 1)
    for row, record in enumerate(meta):
        if record["case"] == case:
            np.testing.assert_allclose(
                stacked[row], at_inference[list(data.rows).index(record["slice"])], atol=1e-6)


@pytest.mark.slow
def test_training_refuses_data_of_another_context_and_the_path_runs(context_data, tmp_path,
                                                                    capsys):
    from boundary_aware.errors import ConfigError
    from boundary_aware.evaluate import evaluate
    from boundary_aware.export import export_run
    from boundary_aware.predict import predict_path
    from boundary_aware.train import TrainingError, train
    from experiments.table1 import get_config
    config = get_config("ours_context,demo")
    assert config.data.context_slices == 1 and get_config("ours,demo").data.context_slices == 0
    config.data.update(prepared_dir=str(context_data / "prepared0"), image_size=32)
    config.model.kwargs.update(base_filters=4, shape_filters=4, dspp_rates=(1, 2))
    config.train.update(batch_size=4, epochs=1, jit_compile="off")
    config.eval.tta = "none"
    with pytest.raises(TrainingError, match="--context_slices=1"):
        train(config, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    config.data.context_slices = 99
    with pytest.raises(ConfigError, match="data.context_slices"):
        train(config, tmp_path / "refused")
    config.data.update(prepared_dir=str(context_data / "prepared1"), context_slices=1)
    state = train(config, tmp_path / "run")
    assert state["input_channels"] == ["t1c[z-1]", "t1c", "t1c[z+1]"]
    assert "no edge loss" not in capsys.readouterr().out  # Ours' edge head is trained
    assert evaluate(tmp_path / "run")["volumes"]
    card = export_run(tmp_path / "run", tmp_path / "export")
    assert card["input"]["channels"] == ["t1c[z-1]", "t1c", "t1c[z+1]"]
    # predict reads one volume per sequence and stacks the neighbours itself; the run
    # and its export agree
    masks = []
    for model in (tmp_path / "run", tmp_path / "export"):
        out = tmp_path / f"pred_{model.name}"
        summary = predict_path(model, context_data / "brats", out,
                               options=InferenceOptions(tta="none",
                                                        postprocess=False,
                                                        save_probabilities=True))
        case = sorted(summary["cases"])[0]
        masks.append(np.asarray(nib.load(str(out / f"{case}_tc_prob.nii.gz")).dataobj))
        assert json.loads((out / "summary.json").read_text())["pending"] == []
    np.testing.assert_allclose(masks[0], masks[1], atol=1e-5)
