"""Several tumor regions: prepared masks, label maps, edge targets, per-region losses,
models, and the whole path from four sequences to a BraTS label map."""

import json

import nibabel as nib
import numpy as np
import pytest

from boundary_aware.batches import assemble_batch
from boundary_aware.errors import DataError
from boundary_aware.prepared import load_prepared
from boundary_aware.regions import CONVENTIONS, label_map, parse_regions, region_mask
from boundary_aware.inference.options import InferenceOptions
from data_prep import synthetic
from data_prep.prepare_brats import prepare

FOUR = ("t1", "t1c", "t2", "flair")
NESTED_REGIONS = ("wt", "tc", "et")


def quiet(*args, **kwargs):
    pass


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_label_map_turns_nested_regions_back_into_the_conventions_labels(convention):
    labels = CONVENTIONS[convention]["labels"]
    rng = np.random.default_rng(0)
    seg = rng.choice(labels, size=(6, 7, 5)).astype(np.uint8)
    regions = ("et", "wt", "tc")  # any order of the maps
    masks = np.stack([region_mask(seg, convention, r) for r in regions], axis=-1)
    back = label_map(masks, regions, convention)
    for r in NESTED_REGIONS:  # every region comes back exactly
        np.testing.assert_array_equal(region_mask(back, convention, r), region_mask(seg, convention, r))
    cavity = seg == 4 if convention == "brats2024" else np.zeros(seg.shape, bool)
    np.testing.assert_array_equal(back[~cavity], seg[~cavity])  # the cavity is no region: 0
    assert not back[cavity].any()
    et = CONVENTIONS[convention]["regions"]["et"][0]
    assert set(np.unique(back).tolist()) <= {0, 1, 2, et}


def test_one_region_label_maps_and_region_names():
    tc = np.zeros((4, 4, 2, 1), np.uint8)
    tc[1, 1, 0, 0] = 1
    assert label_map(tc, ("tc",), "brats2018").max() == 1  # the paper's mask: TC as 1
    assert label_map(tc, ("et",), "brats2018").max() == 4
    assert label_map(tc, ("et",), "brats2023").max() == 3
    assert parse_regions("wt, tc,et") == ("wt", "tc", "et")
    for bad in ("tc,tc", "ncr", ""):
        with pytest.raises(ValueError, match="distinct tumor regions"):
            parse_regions(bad)


@pytest.fixture(scope="module")
def four_sequence_brats(tmp_path_factory):
    root = tmp_path_factory.mktemp("four") / "brats"
    synthetic.generate(root, 5, seed=4, shape=(48, 48, 24), sequences=FOUR,
                       convention="brats2023")
    return root


def test_prepared_masks_hold_each_region_in_order_around_their_union(four_sequence_brats,
                                                                    tmp_path):
    manifest = prepare(four_sequence_brats, tmp_path / "out", regions=("et", "wt"),
                       sequences=("flair", "t1c"), slices_per_case=3, image_size=32, log=quiet)
    assert manifest.regions == ("et", "wt") and manifest.options["regions"] == ["et", "wt"]
    _, masks, meta = load_prepared(tmp_path / "out", "train")
    assert masks.shape[1:] == (32, 32, 2)
    case = meta[0]["case"]
    seg = np.asarray(nib.load(str(four_sequence_brats / case / f"{case}-seg.nii.gz")).dataobj)
    wt = np.isin(seg, (1, 2, 3))
    area = wt.sum(axis=(0, 1))  # the union (WT) decides the slices: 3 around its largest
    assert int(np.argmax(area)) in [m["slice"] for m in meta if m["case"] == case]
    from boundary_aware.intensity import resize_slices
    for i, m in enumerate(meta):
        if m["case"] != case:
            continue
        for r, labels in enumerate(((3,), (1, 2, 3))):
            want = resize_slices(np.isin(seg[None, :, :, m["slice"]], labels).astype(np.uint8),
                                 32, order=0)[0]
            np.testing.assert_array_equal(masks[i, ..., r], want)
    with pytest.raises(ValueError, match="--regions must name distinct tumor regions"):
        prepare(four_sequence_brats, tmp_path / "bad", regions=("tc", "necrosis"), log=quiet)


def test_edge_targets_per_region_or_of_their_union():
    masks = np.zeros((1, 16, 16, 2), np.uint8)
    masks[0, 2:12, 2:12, 0] = 1  # an outer region
    masks[0, 5:8, 5:8, 1] = 1  # an inner one
    images = np.ones((1, 16, 16, 1), np.float32)
    identity = np.array([[0, 0, 0, 1, 1, 0]], np.float32)
    from boundary_aware.edge_targets import edge_band
    _, seg, edge = assemble_batch(images, masks, [0], identity, 2, True)
    np.testing.assert_array_equal(seg[0], masks[0])
    for r in range(2):
        np.testing.assert_array_equal(edge[0, ..., r], edge_band(masks[0, ..., r].copy(), 2))
    _, _, union = assemble_batch(images, masks, [0], identity, 2, True, edge_union=True)
    assert union.shape == (1, 16, 16, 1)
    np.testing.assert_array_equal(union[0, ..., 0], edge_band(masks[0].max(-1), 2))
    # a flip moves every region alike
    flip = identity.copy()
    flip[0, 0] = 1
    _, flipped, _ = assemble_batch(images, masks, [0], flip, 2, False)
    np.testing.assert_array_equal(flipped[0], masks[0, ::-1])


@pytest.mark.backend
def test_the_losses_sum_over_regions_with_the_eq3_weights():
    import keras
    from boundary_aware import losses
    rng = np.random.default_rng(1)
    y = (rng.random((2, 8, 8, 3)) > 0.6).astype(np.float32)
    p = rng.random((2, 8, 8, 3)).astype(np.float32)
    seg = losses.OutputLoss("seg", {"seg_dice": 1.0})
    total = float(keras.ops.convert_to_numpy(seg(y, p)))
    each = [float(losses.dice_loss(y[..., r:r + 1], p[..., r:r + 1])) for r in range(3)]
    assert total == pytest.approx(sum(each), rel=1e-6)
    edge = losses.OutputLoss("edge", {"edge_dice": 0.5, "edge_bce": 0.1}, from_logits=True)
    z = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    want = sum(0.5 * float(losses.dice_loss(y[..., r:r + 1], 1 / (1 + np.exp(-z[..., r:r + 1]))))
               + 0.1 * float(losses.edge_bce_loss(y[..., r:r + 1], z[..., r:r + 1],
                                                   from_logits=True))
               for r in range(3))
    assert float(keras.ops.convert_to_numpy(edge(y, z))) == pytest.approx(want, rel=1e-5)
    one = losses.OutputLoss("seg", {"seg_dice": 1.0})  # one region: Eq. 4 itself
    assert float(keras.ops.convert_to_numpy(one(y[..., :1], p[..., :1]))) == \
        pytest.approx(float(losses.dice_loss(y[..., :1], p[..., :1])))


@pytest.mark.backend
@pytest.mark.parametrize("name, edge_maps", [("ours", 3), ("ours", 1), ("unet", None),
                                             ("vnet", None)])
def test_models_give_one_map_per_region(name, edge_maps):
    from boundary_aware.models import build_model
    small = {"ours": dict(base_filters=4, shape_filters=4, dspp_rates=(1, 2)),
             "unet": dict(base_filters=4), "vnet": dict(base_filters=4)}[name]
    extra = {"edge_maps": edge_maps} if edge_maps else {}
    model = build_model(name, (32, 32, 4), regions=3, **small, **extra)
    out = model(np.zeros((2, 32, 32, 4), np.float32))
    assert tuple(out["seg"].shape) == (2, 32, 32, 3)
    if edge_maps:
        assert tuple(out["edge"].shape) == (2, 32, 32, edge_maps)
    with pytest.raises(ValueError, match="regions must be a positive integer"):
        build_model(name, (32, 32, 4), regions=0, **small)
    if name == "ours":
        with pytest.raises(ValueError, match="edge_maps must be 1"):
            build_model(name, (32, 32, 4), regions=3, edge_maps=2, **small)


@pytest.mark.slow
def test_four_sequences_three_regions_train_score_export_and_predict(four_sequence_brats,
                                                                    tmp_path):
    """The whole path beyond the paper: FLAIR + T1c in, WT/TC/ET out; BraTS scores per region
    in metrics.json; the export's card; predict's label maps in the input's convention."""
    import shutil

    from boundary_aware.evaluate import evaluate
    from boundary_aware.export import export_run
    from boundary_aware.predict import predict_path
    from boundary_aware.train import train
    from experiments.table1 import get_config
    prepare(four_sequence_brats, tmp_path / "prepared", regions=NESTED_REGIONS,
            sequences=("flair", "t1c"), slices_per_case=4, image_size=32, log=quiet)
    config = get_config("ours,demo")
    config.data.update(prepared_dir=str(tmp_path / "prepared"), image_size=32,
                       sequences="flair,t1c", regions="wt,tc,et")
    config.model.kwargs.update(base_filters=4, shape_filters=4, dspp_rates=(1, 2))
    config.train.update(batch_size=4, epochs=1, jit_compile="off")
    config.eval.tta = "none"
    state = train(config, tmp_path / "run")
    assert state["regions"] == list(NESTED_REGIONS) and state["conventions"] == ["brats2023"]
    result = evaluate(tmp_path / "run")
    assert result["regions"] == list(NESTED_REGIONS)
    for region in NESTED_REGIONS:
        assert set(result["brats"][region]) == {"dice", "hd95", "lesion_dice", "lesion_hd95"}
    volume = result["volumes"][0]  # the top level: the mean over the regions
    assert volume["dice"] == pytest.approx(np.mean([volume["regions"][r]["dice"]
                                                    for r in NESTED_REGIONS]))
    assert result["per_slice"]["regions"].keys() == set(NESTED_REGIONS)
    assert set(result["whole_volume"]["postprocess"]) == set(NESTED_REGIONS)

    card = export_run(tmp_path / "run", tmp_path / "export")
    assert card["input"]["channels"] == ["flair", "t1c"]
    assert card["output"]["regions"] == list(NESTED_REGIONS)
    assert card["output"]["conventions"] == ["brats2023"]
    assert card["outputs"]["seg"]["shape"][-1] == 3

    # predict a BraTS folder: one label map per case, in the input's convention
    for model in (tmp_path / "run", tmp_path / "export"):
        out = tmp_path / f"pred_{model.name}"
        summary = predict_path(model, four_sequence_brats, out,
                               options=InferenceOptions(tta="none",
                                                        postprocess=False,
                                                        save_probabilities=True))
        case = sorted(summary["cases"])[0]
        written = np.asarray(nib.load(str(out / f"{case}.nii.gz")).dataobj)
        probs = np.stack([np.asarray(nib.load(str(out / f"{case}_prob_{r}.nii.gz")).dataobj)
                          for r in NESTED_REGIONS], axis=-1)
        np.testing.assert_array_equal(written, label_map(probs > 0.5, NESTED_REGIONS,
                                                         "brats2023"))
        assert set(np.unique(written).tolist()) <= {0, 1, 2, 3}
        assert summary["cases"][case]["convention"] == "brats2023"
    # the same cases in the 2018 layout come back with ET = 4
    old = tmp_path / "brats2018"
    for case_dir in sorted(four_sequence_brats.iterdir()):
        (old / case_dir.name).mkdir(parents=True)
        for kind, suffix in (("flair", "_flair"), ("t1c", "_t1ce")):
            new_suffix = {"flair": "-t2f", "t1c": "-t1c"}[kind]
            shutil.copy(case_dir / f"{case_dir.name}{new_suffix}.nii.gz",
                        old / case_dir.name / f"{case_dir.name}{suffix}.nii.gz")
    summary = predict_path(tmp_path / "run", old, tmp_path / "pred2018",
                           options=InferenceOptions(tta="none", postprocess=False))
    case = sorted(summary["cases"])[0]
    a = np.asarray(nib.load(str(tmp_path / "pred2018" / f"{case}.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(tmp_path / "pred_run" / f"{case}.nii.gz")).dataobj)
    np.testing.assert_array_equal(a, np.where(b == 3, 4, b))
    assert summary["cases"][case]["convention"] == "brats2018"
    # a case without a sequence the model needs is refused, naming the file
    (old / case / f"{case}_flair.nii.gz").unlink()
    with pytest.raises(DataError, match=f"missing FLAIR file of case {case}"):
        predict_path(tmp_path / "run", old, tmp_path / "pred_missing",
                     options=InferenceOptions(tta="none"))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["regions"] == \
        "wt,tc,et"
