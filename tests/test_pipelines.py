"""Input pipelines: tf.data and PyDataset agree; edge targets; augmentation."""

import numpy as np
import pytest

from boundary_aware import losses
from scipy import ndimage

from boundary_aware.augment import (AugmentConfig, augment_slice, inverse_affine, sample_params,
                                    warp_matrices)
from boundary_aware.edge_targets import edge_target_numpy
from boundary_aware.epochs import epoch_order
from boundary_aware.pydataset import SliceDataset
from tests.conftest import ROOT, to_numpy

tf = pytest.importorskip("tensorflow")
from boundary_aware.data_pipeline import make_dataset  # noqa: E402

BOTH = {"seg": "mask", "edge": "edge"}  # the y keys of these tests: the mask and its edge band


def augment_numpy(images, masks, params):
    """`augment_slice` over (B, H, W, C) images and (B, H, W, 1) masks, into new arrays."""
    images = np.ascontiguousarray(images, np.float32)
    masks = np.ascontiguousarray(masks, np.uint8)
    out_img, out_mask = np.empty_like(images), np.empty_like(masks)
    for i, matrix in enumerate(warp_matrices(params, *images.shape[1:3])):
        augment_slice(images[i], masks[i, ..., 0], params[i], matrix, out_img[i],
                      out_mask[i, ..., 0])
    return out_img, out_mask


def toy_slices(n=13, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size, 1), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(10, 22, 2)
        masks[i, ..., 0] = (yy - cy) ** 2 + ((xx - cx) / 1.5) ** 2 < rng.uniform(9, 30)
    head = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 14 ** 2)[None, ..., None]
    images = (head * (0.3 + 0.5 * masks + 0.1 * rng.random(masks.shape))).astype(np.float32)
    return images, masks


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pipeline_edge_target_agrees_with_the_loss_and_with_scipy(width):
    masks = (np.random.default_rng(width).random((3, 20, 24, 1)) > 0.6).astype(np.float32)
    got = edge_target_numpy(masks, width)
    np.testing.assert_array_equal(to_numpy(losses.edge_target(masks, width)), got)
    m = masks > 0.5
    outer, inner = width // 2, width - width // 2
    box = lambda r: (1, 2 * r + 1, 2 * r + 1, 1)  # noqa: E731
    dilated = m if outer == 0 else ndimage.maximum_filter(m, box(outer), mode="constant", cval=0)
    eroded = ndimage.minimum_filter(m, box(inner), mode="constant", cval=1)
    np.testing.assert_array_equal(got, dilated & ~eroded)
    assert got.dtype == np.float32 and got.sum() > 0


def test_without_augmentation_both_pipelines_give_identical_batches():
    images, masks = toy_slices()
    ds = make_dataset(images, masks, 4, BOTH, seed=11)
    py = SliceDataset(images, masks, 4, BOTH, seed=11)
    assert len(py) == 4
    for epoch in range(3):
        batches = list(ds)
        assert len(batches) == len(py)
        for i, (x, y) in enumerate(batches):
            px, py_y = py[i]
            np.testing.assert_array_equal(x.numpy(), px)
            np.testing.assert_array_equal(y["seg"].numpy(), py_y["seg"])
            np.testing.assert_array_equal(y["edge"].numpy(), py_y["edge"])
        order = epoch_order(len(images), 11, epoch)
        np.testing.assert_array_equal(batches[0][0].numpy(), images[order[:4]])
        py.on_epoch_end()


def test_shuffle_is_seeded_and_changes_per_epoch():
    a, b, c = epoch_order(50, 1, 0), epoch_order(50, 1, 0), epoch_order(50, 1, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and sorted(a) == list(range(50))
    images, masks = toy_slices()
    first = next(iter(make_dataset(images, masks, 4, BOTH, seed=2)))[0].numpy()
    again = next(iter(make_dataset(images, masks, 4, BOTH, seed=2)))[0].numpy()
    np.testing.assert_array_equal(first, again)
    ordered = SliceDataset(images, masks, 5, BOTH, shuffle=False, drop_remainder=True)
    assert len(ordered) == 2
    np.testing.assert_array_equal(ordered[1][0], images[5:10])
    resumed = SliceDataset(images, masks, 4, BOTH, seed=2, initial_epoch=1)
    np.testing.assert_array_equal(resumed[0][0], images[epoch_order(13, 2, 1)[:4]])


def test_augmented_batches_agree_across_pipelines_and_stay_valid():
    images, masks = toy_slices()
    config = AugmentConfig(flip_ap=True, rotate_deg=15, scale=0.15)
    ds = make_dataset(images, masks, 4, BOTH, seed=5, augment=config)
    py = SliceDataset(images, masks, 4, BOTH, seed=5, augment=config)
    changed = 0
    for i, (x, y) in enumerate(ds):
        px, py_y = py[i]
        np.testing.assert_array_equal(x.numpy(), px)
        np.testing.assert_array_equal(y["seg"].numpy(), py_y["seg"])
        np.testing.assert_array_equal(y["edge"].numpy(), py_y["edge"])
        for value in (x.numpy(), px):
            assert value.min() >= 0 and value.max() <= 1
        assert set(np.unique(y["seg"].numpy())) <= {0.0, 1.0}
        np.testing.assert_array_equal(y["edge"].numpy(), edge_target_numpy(y["seg"].numpy()))
        order = epoch_order(13, 5, 0)[i * 4:(i + 1) * 4]
        changed += not np.array_equal(y["seg"].numpy(), masks[order].astype(np.float32))
    assert changed >= 2


def test_augmentation_geometry_by_hand():
    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 1, 3, 0] = 1.0
    mask = image.astype(np.uint8)
    params = sample_params(1, 0, 0, AugmentConfig(enabled=False))
    params[0, 0] = 1  # left-right flip only: reverses the first (right-to-left) axis
    out, out_mask = augment_numpy(image, mask, params)
    assert out[0, 3, 3, 0] == 1.0 and out.sum() == 1.0 and out_mask[0, 3, 3, 0] == 1
    params[0, 0], params[0, 1] = 0, 1  # anterior-posterior flip only: the second axis
    out, _ = augment_numpy(image, mask, params)
    assert out[0, 1, 1, 0] == 1.0 and out.sum() == 1.0
    params[0, 1] = 0
    params[0, 0], params[0, 2] = 0, 90.0  # quarter turn about the centre
    out, _ = augment_numpy(image, mask, params)
    # output (r, c) samples input A (r, c) with A = [[0, -1], [1, 0]] about the
    # centre (2, 2): input (1, 3) lands on output (3, 3)
    assert out[0, 3, 3, 0] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)
    params[0, 2], params[0, 4], params[0, 5] = 0.0, 0.5, 0.1  # intensity only
    out, _ = augment_numpy(image, mask, params)
    assert out[0, 1, 3, 0] == pytest.approx(0.6) and out[0, 0, 0, 0] == 0.0  # background stays 0


@pytest.mark.parametrize("scale,shift", [(1.1, 0.08), (0.9, -0.1), (1.0, 0.1), (1.2, 0.0)])
def test_intensity_jitter_matches_its_formula(scale, shift):
    images, masks = toy_slices(n=2)
    images[0, 5, 5, 0], images[1, 6, 6, 0] = 0.95, 0.02  # exceed 1 / go below 0 after jitter
    params = sample_params(2, 0, 0, AugmentConfig(enabled=False))
    params[:, 4], params[:, 5] = scale, shift
    out, out_mask = augment_numpy(images, masks, params)
    want = np.where(images > 0, np.clip(images * scale + shift, 0, 1), 0)
    np.testing.assert_allclose(out, want, atol=1e-6)
    np.testing.assert_array_equal(out_mask, masks)


def test_warp_matches_scipy_bilinear_and_flips_are_exact():
    """OpenCV's warp (1/32-pixel weights) against scipy's exact bilinear map;
    slices that are only flipped take a shortcut that must give the same."""
    images, masks = toy_slices(n=12, size=48, seed=3)
    images = ndimage.gaussian_filter(images, (0, 1.5, 1.5, 0))  # smooth, so quantization is small
    config = AugmentConfig(flip_ap=True, rotate_deg=20, rotate_p=0.5, scale=0.2, scale_p=0.5,
                           intensity_scale=0, intensity_shift=0)
    params = sample_params(len(images), 4, 0, config)
    flip_only = (params[:, 2] == 0) & (params[:, 3] == 1)
    assert 0 < flip_only.sum() < len(images) and params[flip_only, :2].any()
    out, out_mask = augment_numpy(images, masks, params)
    for i, m in enumerate(inverse_affine(params, 48, 48)):
        # grid-constant: zeros beyond the border take part in the interpolation, as in OpenCV
        want = ndimage.affine_transform(images[i, ..., 0], m[:, :2], m[:, 2], order=1,
                                        mode="grid-constant")
        want_mask = ndimage.affine_transform(masks[i, ..., 0].astype(np.float32), m[:, :2],
                                             m[:, 2], order=1, mode="grid-constant") > 0.5
        if flip_only[i]:
            np.testing.assert_allclose(out[i, ..., 0], want, atol=1e-6)
            np.testing.assert_array_equal(out_mask[i, ..., 0], want_mask)
        else:
            np.testing.assert_allclose(out[i, ..., 0], np.clip(want, 0, 1), atol=0.02)
            assert np.mean(out_mask[i, ..., 0] != want_mask) < 0.01
    assert out.dtype == np.float32 and out_mask.dtype == np.uint8


def test_rotation_and_scaling_happen_with_their_probabilities():
    params = sample_params(20000, 0, 0, AugmentConfig(rotate_p=0.2, scale_p=0.7))
    rotated, scaled = params[:, 2] != 0, params[:, 3] != 1
    assert abs(rotated.mean() - 0.2) < 0.015 and abs(scaled.mean() - 0.7) < 0.015
    assert abs(np.mean(rotated & scaled) - 0.14) < 0.015  # independent
    assert np.abs(params[rotated, 2]).max() <= 10 and np.abs(params[:, 3] - 1).max() <= 0.1
    assert abs(params[:, 0].mean() - 0.5) < 0.015 and not params[:, 1].any()  # flip_ap off
    none = sample_params(100, 0, 0, AugmentConfig(rotate_p=0, scale_p=0))
    assert not none[:, 2].any() and (none[:, 3] == 1).all()


def test_left_right_flip_exchanges_the_hemispheres_of_a_real_scan():
    """BraTS stores volumes LPS: in an axial slice the first axis runs right to left. The brain
    is narrower left-right than front-back, so the flip named left-right must reverse the
    axis along which the brain is narrower, and move the tumor to the other hemisphere."""
    from boundary_aware.intensity import normalization_range, normalize
    from boundary_aware.nifti import load_volume
    case = ROOT / "tests" / "data" / "brats_samples" / "BraTS2013_pat0005"
    volume, _, _ = load_volume(case / "BraTS2013_pat0005_t1ce.nii.gz", "image")
    labels, _, _ = load_volume(case / "BraTS2013_pat0005_seg.nii.gz", "seg")
    z = int(np.argmax((labels > 0).sum(axis=(0, 1))))
    image = normalize(volume, *normalization_range(volume))[:, :, z]
    mask = (labels[:, :, z] > 0).astype(np.uint8)
    brain = image > 0
    extent = [np.ptp(np.flatnonzero(brain.any(axis=1 - a))) for a in (0, 1)]
    assert extent[0] < 0.9 * extent[1]  # narrower along axis 0: left-right
    params = sample_params(1, 0, 0, AugmentConfig(enabled=False))
    params[0, 0] = 1
    out, out_mask = augment_numpy(image[None, ..., None], mask[None, ..., None], params)
    np.testing.assert_array_equal(out[0, ..., 0], image[::-1, :])
    rows = np.flatnonzero(brain.any(axis=1))
    midline = (rows[0] + rows[-1]) / 2
    before = np.argwhere(mask)[:, 0].mean() - midline
    after = np.argwhere(out_mask[0, ..., 0])[:, 0].mean() - (len(image) - 1 - midline)
    assert abs(before) > 5 and np.sign(after) != np.sign(before)  # the other hemisphere


def test_old_augmentation_names_are_refused_clearly():
    with pytest.raises(ValueError, match="the second axis's flip is flip_ap"):
        AugmentConfig.from_dict({"flip_ud": True})


def test_augmentation_settings_out_of_range_are_named():
    for settings, problem in (({"rotate_p": 1.5}, "rotate_p must be in"),
                              ({"scale": 1.0}, r"scale must be in \[0, 1\)"),
                              ({"flip_lr": "yes"}, "flip_lr must be true or false"),
                              ({"shear": 0.1}, r"unknown augmentation settings \['shear'\]")):
        with pytest.raises(ValueError, match=problem):
            AugmentConfig.from_dict(settings)


# ---- more than one channel -----------------------------------------------------

def two_channel_slices(n=9, size=32, seed=7):
    """Channel 0: the toy slices; channel 1: a different image (a gradient inside the head)."""
    images, masks = toy_slices(n, size, seed)
    ramp = np.linspace(0.2, 0.9, size, dtype=np.float32)[None, :, None, None]
    second = np.where(images > 0, ramp, 0).astype(np.float32)
    return np.concatenate([images, second], axis=-1), masks


def test_augmentation_moves_every_channel_with_the_same_transform():
    images, masks = two_channel_slices()
    config = AugmentConfig(flip_ap=True, rotate_deg=20, rotate_p=0.5, scale=0.2, scale_p=0.5)
    params = sample_params(len(images), 3, 0, config, channels=2)
    assert params.shape == (len(images), 8)
    both, both_mask = augment_numpy(images, masks, params)
    assert both.shape == images.shape
    for c in range(2):  # each channel alone: the shared geometry and its own intensity change
        own = np.concatenate([params[:, :4], params[:, 4 + 2 * c:6 + 2 * c]], axis=1)
        alone, alone_mask = augment_numpy(images[..., c:c + 1], masks, own)
        np.testing.assert_array_equal(both[..., c:c + 1], alone)
        np.testing.assert_array_equal(both_mask, alone_mask)
    assert not np.array_equal(both[..., 0], both[..., 1])
    flipped = sample_params(1, 0, 0, AugmentConfig(enabled=False), channels=2)
    flipped[0, 0] = 1  # left-right flip of both channels
    out, _ = augment_numpy(images[:1], masks[:1], flipped)
    np.testing.assert_array_equal(out[0], images[0, ::-1])


def test_both_pipelines_carry_every_channel():
    images, masks = two_channel_slices()
    ds = make_dataset(images, masks, 4, BOTH, seed=1)
    py = SliceDataset(images, masks, 4, {"seg": "mask"}, seed=1)
    order = epoch_order(len(images), 1, 0)
    for i, (x, y) in enumerate(ds):
        assert x.shape[-1] == 2 and set(y) == {"seg", "edge"}
        np.testing.assert_array_equal(x.numpy(), images[order[i * 4:(i + 1) * 4]])
        px, py_y = py[i]
        np.testing.assert_array_equal(px, x.numpy())
        assert set(py_y) == {"seg"}  # no edge band where no key asks for it


def test_intensity_changes_are_drawn_per_channel_and_the_first_as_before():
    config = AugmentConfig()
    one = sample_params(500, 7, 2, config)
    four = sample_params(500, 7, 2, config, channels=4)
    np.testing.assert_array_equal(four[:, :6], one)  # the first channel's draws: one channel's
    scales, shifts = four[:, 4::2], four[:, 5::2]
    assert np.abs(scales - 1).max() <= 0.1 and np.abs(shifts).max() <= 0.1
    for c in range(1, 4):  # independent draws: the channels do not move together
        assert abs(np.corrcoef(scales[:, 0], scales[:, c])[0, 1]) < 0.2
        assert not np.array_equal(shifts[:, 0], shifts[:, c])
    identity = sample_params(3, 0, 0, AugmentConfig(enabled=False), channels=3)
    np.testing.assert_array_equal(identity[:, 4:], np.tile([1.0, 0.0], (3, 3)))


def test_process_shards_put_together_are_the_global_batches():
    """Two processes training one model each take their half of every global batch of 4
    (`epochs.shard_positions`), augmentation included, in both pipelines; the last
    incomplete global batch (13 = 3 x 4 + 1) is left out, so both give the same count."""
    images, masks = toy_slices()
    config = AugmentConfig(flip_ap=True, rotate_deg=15, scale=0.15)
    whole = SliceDataset(images, masks, 4, BOTH, seed=5, augment=config, initial_epoch=1)
    halves = [SliceDataset(images, masks, 4, BOTH, seed=5, augment=config, initial_epoch=1,
                           shard=(i, 2)) for i in range(2)]
    tf_halves = [list(make_dataset(images, masks, 4, BOTH, seed=5, augment=config,
                                   initial_epoch=1, shard=(i, 2))) for i in range(2)]
    assert [len(h) for h in halves] == [len(h) for h in tf_halves] == [3, 3]
    for b in range(3):
        x = np.concatenate([h[b][0] for h in halves])
        np.testing.assert_array_equal(x, whole[b][0])
        for key in BOTH:
            np.testing.assert_array_equal(np.concatenate([h[b][1][key] for h in halves]),
                                          whole[b][1][key])
        for half, tf_half in zip(halves, tf_halves):
            np.testing.assert_array_equal(tf_half[b][0].numpy(), half[b][0])
    with pytest.raises(ValueError, match="a batch of 5 cannot be split across 2 processes"):
        SliceDataset(images, masks, 5, BOTH, shard=(0, 2))


@pytest.mark.parametrize("pipeline", ["tf.data", "pydataset"])
def test_fit_trains_each_epoch_on_that_epochs_batches(pipeline, monkeypatch):
    """Keras's `fit` makes passes that are not epochs (it ends a PyDataset's epoch before
    the first begins; under a tf.distribute strategy it opens a tf.data pass to build
    the model). With the `EpochClock` among the callbacks, epoch e is drawn with
    `epoch_order(..., e)` whatever the passes, also when `fit` resumes at epoch 1; counted
    passes put the PyDataset one epoch ahead."""
    import keras

    import boundary_aware.data_pipeline as data_pipeline
    import boundary_aware.pydataset as pydataset
    from boundary_aware.epochs import EpochClock
    module = data_pipeline if pipeline == "tf.data" else pydataset
    drawn = []

    def recorded(n, seed, epoch):
        drawn.append(epoch)
        return epoch_order(n, seed, epoch)
    monkeypatch.setattr(module, "epoch_order", recorded)
    images, masks = toy_slices(n=8)
    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, {"seg": keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)})
    model.compile("sgd", loss={"seg": "mse"})

    def fit(first, epochs, clock):
        del drawn[:]
        make = make_dataset if pipeline == "tf.data" else SliceDataset
        data = make(images, masks, 4, {"seg": "mask"}, seed=3, initial_epoch=first, clock=clock)
        model.fit(data, epochs=epochs, initial_epoch=first, verbose=0, shuffle=False,
                  callbacks=[clock] if clock else [])
        return sorted(set(drawn))

    assert fit(0, 2, EpochClock(0)) == [0, 1]
    assert fit(1, 3, EpochClock(1)) == [1, 2]
    if pipeline == "pydataset":  # what the clock is for: counted, epochs 0-1 draw up to 2
        assert max(fit(0, 2, None)) == 2
