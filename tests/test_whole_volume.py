"""Whole volumes: the head mask, test-time flips, ensembles, the 3D clean-up chosen on
validation, tumor-free training slices, and predict's extra maps and running summary."""

import json

import numpy as np
import pytest

from boundary_aware import postprocess
from boundary_aware.errors import DataError
from boundary_aware.slices import select_tumor_free_slices, with_tumor_free
from boundary_aware.inference.flips import tta_flips
from boundary_aware.inference.head_box import head_box, in_head_box
from boundary_aware.inference.predictor import check_ensemble, Predictor
from boundary_aware.inference.rebuild import rebuilt_passes, size_divisor_of
from boundary_aware.inference.volume import segment_volume, VolumeInput
from boundary_aware.nifti import load_volume
from boundary_aware.inference.options import InferenceOptions
from tests.conftest import ROOT

CASE = ROOT / "tests" / "data" / "brats_samples" / "BraTS2013_pat0005" / "BraTS2013_pat0005_t1ce.nii.gz"


def constant_predictor(value, size=16, calls=None, channels=("t1c",)):
    """A model whose probability is `value` everywhere; `calls` collects the batch sizes."""
    def predict(images):
        if calls is not None:
            calls.append(len(images))
        return {"seg": np.full(images.shape[:3] + (1,), value, np.float32)}
    return Predictor(predict, (size, size, len(channels)), tuple(channels))


def test_background_is_never_tumor_and_headless_slices_are_not_run_on_the_real_sample():
    volume, _, _ = load_volume(CASE, "image")
    head = volume != 0
    headless = int(np.count_nonzero(~head.any(axis=(0, 1))))
    assert headless > 0 and (~head).any()  # the sample has both, or the test says nothing
    calls = []
    prob = segment_volume(constant_predictor(0.9, calls=calls), volume[..., None],
                          distinct=False)["seg"]
    assert sum(calls) == volume.shape[2] - headless  # only slices with head went in
    assert np.all(prob[~head] == 0)  # outside the head: never tumor
    assert np.all(prob[head] > 0.5)  # inside: the model's answer (resized back)


def test_a_volume_without_any_head_is_not_run_and_is_all_zero():
    calls = []
    prob = segment_volume(constant_predictor(0.9, calls=calls), np.zeros((20, 20, 5, 1)),
                          uncertainty=True)
    assert calls == [1]  # one blank slice, to name the outputs
    assert not prob["seg"].any() and not prob["seg_uncertainty"].any()


def position_predictor(size=8):
    """A model that is not flip-symmetric: probability = image x a fixed ramp that rises
    along both slice axes."""
    ramp = np.add.outer(np.arange(size), 2 * np.arange(size)).astype(np.float32) / (3 * size)

    def predict(images):
        return {"seg": images[..., :1] * ramp[None, :, :, None]}
    return Predictor(predict, (size, size, 1), ("t1c",)), ramp


def test_flips_are_undone_exactly():
    predictor, ramp = position_predictor()
    rng = np.random.default_rng(0)
    volume = rng.uniform(1, 2, (8, 8, 3, 1)).astype(np.float32)  # all head, no resizing
    slices = VolumeInput(volume).slices(8)[..., 0]  # (Z, X, Y) normalized input
    got = segment_volume(predictor, volume, flips=tta_flips("lr"), uncertainty=True)
    # by hand: the lr flip runs the mirrored slice through the ramp and mirrors back,
    # which is the input times the mirrored ramp
    lr = slices * ramp[::-1, :]
    expected = (slices * ramp + lr) / 2
    np.testing.assert_allclose(got["seg"], np.moveaxis(expected, 0, 2), atol=1e-6)
    np.testing.assert_allclose(got["seg_uncertainty"], np.moveaxis(np.abs(slices * ramp - lr) / 2,
                                                              0, 2), atol=1e-6)
    every = segment_volume(predictor, volume, flips=tta_flips("lr,ap"))["seg"]
    four = slices * (ramp + ramp[::-1, :] + ramp[:, ::-1] + ramp[::-1, ::-1]) / 4
    np.testing.assert_allclose(every, np.moveaxis(four, 0, 2), atol=1e-6)
    assert tta_flips("none") == ("none",) and tta_flips("lr,ap") == ("none", "lr", "ap", "lr+ap")
    with pytest.raises(DataError, match="--tta"):
        tta_flips("up")


def test_the_head_box_holds_every_nonzero_pixel_with_its_margin_on_divisor_multiples():
    images = np.zeros((3, 64, 48, 2), np.float32)
    images[0, 20, 30, 1] = 1.0  # rows 20 and 33, columns 30 and 35, on two slices
    images[2, 33, 35, 0] = 0.5
    # 4 / 64 of the slice's longer side: 4 pixels; rows 20-33 widened by 4 -> 16..38, rounded out to multiples of 8 -> 16..40;
    # columns 30-35 -> 26..40 -> 24..40
    assert head_box(images, divisor=8, margin=4 / 64) == ((16, 40), (24, 40))
    assert head_box(images, divisor=8, margin=40 / 64) is None  # the whole slice: no box
    assert head_box(np.zeros_like(images), divisor=8, margin=4 / 64) is None  # nothing held
    images[1, 0, 0, 0] = 1.0
    assert head_box(images, divisor=8, margin=0) == ((0, 40), (0, 40))


def small_field_model(size=32):
    """A Keras model whose output at a pixel reads the input within 5 pixels of it (two
    3 x 3 convolutions, one of stride 2, an upsampling and a 1 x 1 head), biases on, so
    that it marks background too; total downsampling 2."""
    import keras
    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            bias_initializer="ones")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu",
                            bias_initializer="ones")(x)
    x = keras.layers.UpSampling2D(2, interpolation="nearest")(x)
    seg = keras.layers.Conv2D(1, 1, activation="sigmoid", name="seg")(x)
    return keras.Model(inputs, {"seg": seg})


def test_the_head_box_gives_the_whole_slices_result_where_the_models_field_fits_its_margin():
    """Where a model reads no farther than the margin and the box starts on a multiple of
    its downsampling, every pixel of the head gets the whole slice's probability; outside
    the box, 0. (Ours pools over the whole slice, so its crop is not exact: the measured
    difference is in docs/performance.md.)"""
    model = small_field_model()
    assert size_divisor_of(model) == 2
    rng = np.random.default_rng(0)
    images = np.zeros((4, 32, 32, 1), np.float32)
    images[:, 11:19, 14:25] = rng.uniform(0.1, 1, (4, 8, 11, 1))
    sizes = []
    passes = rebuilt_passes(model, batch_size=3)
    run_at = lambda size: sizes.append(size) or passes(size)  # noqa: E731
    cropped = in_head_box(run_at, divisor=2, margin=6 / 32)(images)["seg"]
    whole = model.predict_on_batch(images)["seg"]
    assert sizes == [(22, 24)]  # rows 11-18 -> 5..25 -> 4..26; columns 14-24 -> 8..31 -> 8..32
    assert np.abs(whole - 0.5).max() > 0.01  # a model that does not mark all alike
    # on every pixel of the head (rows 11-18, columns 14-24): the whole slice's result
    np.testing.assert_allclose(cropped[:, 11:19, 14:25], whole[:, 11:19, 14:25], atol=1e-6)
    assert not cropped[:, :4].any() and not cropped[:, 26:].any() and not cropped[:, :, :8].any()
    assert whole[:, :4].min() > 0  # the whole slice marks background that the box leaves 0
    # a margin narrower than the model's field does not give the whole slice's result
    narrow = in_head_box(passes, divisor=2, margin=0)(images)["seg"]
    assert np.abs(narrow[:, 11:19, 14:25] - whole[:, 11:19, 14:25]).max() > 1e-4


def test_an_ensemble_averages_its_members_and_its_uncertainty_is_theirs():
    volume = np.ones((16, 16, 2, 1), np.float32)
    got = segment_volume([constant_predictor(0.2), constant_predictor(0.8)], volume,
                         flips=tta_flips("lr"), uncertainty=True)
    np.testing.assert_allclose(got["seg"], 0.5, atol=1e-6)
    np.testing.assert_allclose(got["seg_uncertainty"], 0.3, atol=1e-6)  # population sd of 0.2, 0.8
    single = segment_volume(constant_predictor(0.2), volume, uncertainty=True)
    assert not single["seg_uncertainty"].any()


def test_an_ensemble_of_different_inputs_is_refused_naming_both():
    with pytest.raises(DataError, match="a.keras and b.keras.*same input"):
        check_ensemble([constant_predictor(0.5, 16), constant_predictor(0.5, 32)],
                       ["a.keras", "b.keras"])
    with pytest.raises(DataError, match="same input"):
        check_ensemble([constant_predictor(0.5), constant_predictor(0.5, channels=("t1",))],
                       ["a", "b"])


def blob(shape, corner, size):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(c, c + s) for c, s in zip(corner, size))] = True
    return mask


def test_clean_up_is_chosen_on_validation_and_keeps_a_true_second_lesion():
    shape, spacing = (30, 30, 20), (1.0, 1.0, 2.0)  # anisotropic: sizes are in mm3
    big = blob(shape, (5, 5, 5), (10, 10, 5))  # 500 voxels, 1000 mm3
    island = blob(shape, (25, 25, 15), (2, 2, 2))  # 8 voxels, 16 mm3: a false positive
    second = blob(shape, (20, 2, 2), (4, 4, 2))  # 32 voxels, 64 mm3: a true second lesion
    # validation case A: one lesion and a false island; case B: two true lesions
    case_a = postprocess.candidate_dice(big | island, big, spacing)
    case_b = postprocess.candidate_dice(big | second | island, big | second, spacing)
    assert case_a["largest"] == 1.0 and case_b["largest"] < 1.0  # largest loses the second
    assert case_a["min_size 30 mm3"] == case_b["min_size 30 mm3"] == 1.0
    assert case_b["min_size 100 mm3"] < 1.0  # 64 mm3 < 100 mm3: the second lesion goes
    chosen = postprocess.choose([case_a, case_b])
    assert chosen["rule"] == {"rule": "min_size", "mm3": 30} and chosen["n"] == 2
    # on a new volume: the island goes, the true second lesion stays
    cleaned = postprocess.apply(big | second | island, chosen["rule"], spacing)
    np.testing.assert_array_equal(cleaned, big | second)
    # only case A: keeping the largest is as good and comes first
    assert postprocess.choose([case_a])["rule"] == {"rule": "largest"}
    # nothing to gain: none stays
    clean = postprocess.candidate_dice(big, big, spacing)
    assert postprocess.choose([clean])["rule"] == postprocess.NONE
    assert postprocess.choose([])["rule"] == postprocess.NONE


def test_clean_up_counts_26_connected_voxels_as_one_component():
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner neighbours: one component of 2
    mask[4, 4, 0] = True  # alone
    kept = postprocess.apply(mask, {"rule": "largest"})
    assert kept[1, 1, 1] and kept[2, 2, 2] and not kept[4, 4, 0]
    assert not postprocess.apply(mask, {"rule": "min_size", "mm3": 3}).any()
    with pytest.raises(DataError, match="unknown post-processing rule"):
        postprocess.apply(mask, {"rule": "erode"})


def test_the_clean_up_record_round_trips_and_a_damaged_one_is_named(tmp_path):
    choice = {"tc": {"rule": {"rule": "largest"}, "validation_dice": {}, "n": 4}}
    postprocess.write(tmp_path, {"final": choice, "best": {"tc": {"rule": postprocess.NONE}}},
                      "final", "val", ("none",))
    assert postprocess.read(tmp_path) == {"tc": {"rule": "largest"}}
    assert postprocess.read(tmp_path, "best") == {"tc": postprocess.NONE}
    assert postprocess.read(tmp_path / "elsewhere") is None
    (tmp_path / postprocess.FILE).write_text("{not json")
    with pytest.raises(DataError, match="postprocess.json"):
        postprocess.read(tmp_path)


def test_tumor_free_slices_hold_head_and_no_tumor_spread_evenly():
    mask = np.zeros((4, 4, 12), np.uint8)
    mask[1, 1, 5:8] = 1  # tumor on slices 5-7
    head = np.zeros((4, 4, 12), bool)
    head[:, :, 1:11] = True  # head on slices 1-10
    assert select_tumor_free_slices(mask, head, 10) == [1, 2, 3, 4, 8, 9, 10]
    assert select_tumor_free_slices(mask, head, 3) == [1, 4, 10]


def test_tumor_free_fraction_adds_that_share_of_empty_slices_reproducibly():
    images = np.ones((30, 4, 4, 1), np.float32)
    masks = np.ones((30, 4, 4, 1), np.uint8)
    pool = np.arange(20, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 4, 1))
    got_images, got_masks = with_tumor_free(images, masks, pool, 0.25, seed=3)
    assert len(got_images) == 40  # 10 / 40 = 0.25 without tumor
    assert not got_masks[30:].any() and got_masks[:30].all()
    drawn = got_images[30:, 0, 0, 0]
    assert len(set(drawn)) == 10 and set(drawn) <= set(range(20))  # without replacement
    again, _ = with_tumor_free(images, masks, pool, 0.25, seed=3)
    np.testing.assert_array_equal(again, got_images)
    assert with_tumor_free(images, masks, pool, 0.0, seed=3)[0] is images
    with pytest.raises(DataError, match="asks for 90 tumor-free slices.*holds 20"):
        with_tumor_free(images, masks, pool, 0.75, seed=3)


def test_a_folder_prediction_writes_the_maps_and_a_summary_after_every_case(tmp_path,
                                                                            monkeypatch):
    """Two cases: the first is written with its probability and uncertainty maps; the
    second is stopped mid-way, and summary.json already says what finished."""
    from boundary_aware import predict, predict_cases
    from data_prep import phantom, synthetic
    for name in ("case_a", "case_b"):
        synthetic.write_case(tmp_path / "in", name, *phantom.make_case(0, shape=(24, 24, 6)))
    model = [constant_predictor(0.3), constant_predictor(0.9)]  # mean 0.6: tumor
    monkeypatch.setattr(predict_cases, "load_predictors", lambda *a, **k: model)
    real = predict_cases.predict_file
    seen = []

    def stop_on_the_second(*args, **kwargs):
        seen.append(args[2])
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(predict_cases, "predict_file", stop_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        predict.predict_path("a,b", tmp_path / "in", tmp_path / "out",
                             options=InferenceOptions(save_probabilities=True,
                                                      save_uncertainty=True, tta="lr"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["cases"]) == ["case_a"] and summary["pending"] == ["case_b"]
    assert summary["flips"] == ["none", "lr"] and summary["model"] == "a,b"
    image, _, _ = load_volume(tmp_path / "in" / "case_a" / "case_a_t1ce.nii.gz", "image")
    prob, _, _ = load_volume(tmp_path / "out" / "case_a_tc_prob.nii.gz", "image")
    uncertainty, _, _ = load_volume(tmp_path / "out" / "case_a_tc_uncertainty.nii.gz", "image")
    mask, _, _ = load_volume(tmp_path / "out" / "case_a_tc.nii.gz", "mask")
    head = image != 0
    np.testing.assert_allclose(prob[head], 0.6, atol=1e-6)
    np.testing.assert_allclose(uncertainty[head], 0.3, atol=1e-6)
    assert not prob[~head].any() and np.array_equal(mask > 0, head)
    assert not (tmp_path / "out" / "case_b_tc.nii.gz").exists()


def test_the_whole_volume_experiment_averages_flips_and_compares_settings_over_seeds():
    from experiments.whole_volume import SETTINGS, setting_probabilities, summarize
    flips = {"none": np.full((2, 2, 1), 0.2), "lr": np.full((2, 2, 1), 0.4),
             "ap": np.full((2, 2, 1), 0.6), "lr+ap": np.full((2, 2, 1), 0.8),
             "full_frame": np.full((2, 2, 1), 0.1)}
    got = setting_probabilities(flips)
    assert got["head"].max() == 0.2 and got["head+lr"].max() == pytest.approx(0.3)
    assert got["head+lr,ap"].max() == pytest.approx(0.5) and got["full_frame"].max() == 0.1

    def member(dice):  # every setting scores `dice` + 0.1 for "+clean" on volumes v1, v2
        return {s: {v: {"dice": dice + (0.1 if s.endswith("+clean") else 0) + 0.01 * i,
                        "hd95": 5.0, "fp_slices": 1}
                    for i, v in enumerate(("v1", "v2"))} for s in SETTINGS}
    records = {"ours": {"seed0": member(0.5), "seed1": member(0.7), "ensemble": member(0.65)}}
    table, comps = summarize({"records": records}, ["ours"])
    head = [t for t in table if t["setting"] == "head"][0]
    assert head["seeds_dice"][0] == pytest.approx(0.605)  # mean of 0.505 and 0.705
    assert head["seeds_dice"][1] == pytest.approx(np.std([0.505, 0.705], ddof=1))
    assert head["ensemble_dice"][0] == pytest.approx(0.655)
    clean = [c for c in comps if c["a"] == "ours head+clean" and c["b"] == "ours head"
             and c["metric"] == "dice"][0]
    assert clean["mean_diff"] == pytest.approx(0.1) and clean["verdict"] == "A better"
    ensemble = [c for c in comps if c["a"].startswith("ours ensemble") and c["metric"] == "dice"]
    # one ensemble against two runs: its seed term is the members' seed variance
    assert ensemble and ensemble[0]["variance"]["seeds_a"] == pytest.approx(
        np.var([0.505, 0.705], ddof=1))
