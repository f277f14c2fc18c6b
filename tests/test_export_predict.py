"""SavedModel export (fresh-process reloads) and NIfTI-in / NIfTI-out prediction."""

import gzip
import json
import re
import shutil

import keras
import nibabel as nib
import numpy as np
import pytest

from boundary_aware import build_model
from boundary_aware.errors import DataError
from boundary_aware.predict import predict_path
from tests.conftest import ROOT, run_python

pytest.importorskip("tensorflow")
from boundary_aware.export import ExportError, export_model, export_run  # noqa: E402
from boundary_aware.inference.options import InferenceOptions

CASE = ROOT / "tests" / "data" / "brats_samples" / "BraTS2013_pat0005" / "BraTS2013_pat0005_t1ce.nii.gz"
TINY = dict(base_filters=4, shape_filters=8, dspp_rates=(1, 2, 3))


def fake_run(workdir, precision="float32"):
    """A workdir as training leaves it, with an untrained tiny boundary-aware model."""
    keras.config.set_dtype_policy(precision)
    model = build_model("ours", input_shape=(32, 32, 1), **TINY)
    keras.config.set_dtype_policy("float32")
    workdir.mkdir(parents=True)
    model.save(workdir / "best.keras")
    model.save(workdir / "final.keras")
    (workdir / "config.json").write_text(json.dumps({"model": {"name": "ours"}, "variant": "ours"}))
    (workdir / "state.json").write_text(json.dumps({"epoch": 1, "data_manifest_sha256": "ab" * 32,
                                                    "precision": precision}))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = fake_run(root / "run", precision="mixed_float16")
    card = export_run(root / "run", root / "saved")
    x = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    np.save(root / "x.npy", x)
    expected = model.predict(x, verbose=0)
    np.savez(root / "expected.npz", **expected)
    return root, card, expected


@pytest.mark.slow
def test_model_card_and_existing_output_protection(exported):
    root, card, _ = exported
    on_disk = json.loads((root / "saved" / "model_card.json").read_text())
    assert on_disk == card
    assert card["model"] == "ours" and card["input"]["shape"] == [None, 32, 32, 1]
    assert card["input"]["channels"] == ["t1c"] and set(card["outputs"]) == {"seg", "edge"}
    assert card["data_manifest_sha256"] == "ab" * 32 and card["training_precision"] == "mixed_float16"
    assert "saved_model.pb" in card["files"] and all(len(h) == 64 for h in card["files"].values())
    assert set(card["versions"]) >= {"boundary_aware", "keras", "tensorflow"}
    with pytest.raises(ExportError, match="already exists"):
        export_run(root / "run", root / "saved")
    with pytest.raises(ExportError, match="no such checkpoint"):
        export_run(root / "run", root / "other", checkpoint="last")
    assert not (root / "other").exists()


@pytest.mark.slow
def test_reload_in_a_fresh_process_matches_keras(exported):
    root, _, expected = exported
    code = f"""
import numpy as np, tensorflow as tf, keras
root = {str(root)!r}
x = np.load(root + "/x.npy")
expected = np.load(root + "/expected.npz")
serve = tf.saved_model.load(root + "/saved").signatures["serve"]
out = serve(images=tf.constant(x))
layer = keras.layers.TFSMLayer(root + "/saved", call_endpoint="serve")
out2 = layer(x)
for name in ("seg", "edge"):
    for got in (out[name], out2[name]):
        assert got.dtype == tf.float32, got.dtype
        np.testing.assert_allclose(np.asarray(got), expected[name], atol=1e-5)
# any batch size
assert serve(images=tf.zeros((5, 32, 32, 1)))["seg"].shape == (5, 32, 32, 1)
print("ok")
"""
    result = run_python(code, env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.slow
def test_deployment_guide_snippet_runs_without_the_package(exported, tmp_path):
    """The deployment guide's SavedModel snippet, with boundary_aware made unimportable."""
    root, _, expected = exported
    readme = (ROOT / "docs" / "deployment.md").read_text()
    snippet = re.search(r"<!-- savedmodel-snippet -->\n```python\n(.*?)```", readme, re.S).group(1)
    snippet = snippet.replace("path/to/export", str(root / "saved"))
    code = ("import sys; sys.modules['boundary_aware'] = None\n"
            f"import numpy as np\nslices = np.load({str(root / 'x.npy')!r})\n" + snippet +
            f"\nnp.testing.assert_allclose(seg, np.load({str(root / 'expected.npz')!r})['seg'], atol=1e-5)"
            "\nprint('ok')\n")
    result = run_python(code, env={"KERAS_BACKEND": "tensorflow", "PYTHONPATH": ""})
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# ---- predict ---------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(exported):
    return exported[0] / "run"


@pytest.mark.slow
def test_predict_real_case_keeps_shape_affine_and_dtype(run_dir, tmp_path):
    out = tmp_path / "mask.nii.gz"
    summary = predict_path(run_dir, CASE, out, options=InferenceOptions(edge_output=True))
    src, mask = nib.load(str(CASE)), nib.load(str(out))
    assert mask.shape == src.shape and np.allclose(mask.affine, src.affine)
    assert mask.get_data_dtype() == np.uint8
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1} and summary["voxels"] == int(values.sum())
    edge = nib.load(str(tmp_path / "mask_edge.nii.gz"))
    assert edge.shape == src.shape and edge.get_data_dtype() == np.float32
    # the SavedModel gives the same mask as the .keras file
    predict_path(run_dir.parent / "saved", CASE, tmp_path / "mask_sm.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "mask_sm.nii.gz")).dataobj), values)


@pytest.mark.slow
def test_bfloat16_computes_in_bfloat16_with_the_same_weights_and_nearly_the_same_mask(
        run_dir, tmp_path):
    """`--precision=bfloat16`: every layer but the float32 outputs computes in bfloat16,
    with the float32 model's weights; the probabilities stay within bfloat16's rounding
    through the network (measured 0.039 at most on the real samples with a trained demo
    model) and the mask within a few percent of its voxels. A SavedModel is refused."""
    from boundary_aware.inference.rebuild import rebuild
    from boundary_aware.model_files import load_keras_model
    model = load_keras_model(run_dir / "final.keras")
    rebuilt = rebuild(model, "mixed_bfloat16")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), rebuilt.get_weights()))
    assert {rebuilt.get_layer(n).compute_dtype for n in model.output_names} == {"float32"}
    inner = [layer.compute_dtype for layer in rebuilt._flatten_layers()
             if isinstance(layer, keras.layers.Conv2D)]
    assert inner and set(inner) == {"bfloat16"}
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    summary = {}
    for precision in ("float32", "bfloat16"):
        summary[precision] = predict_path(run_dir, CASE, tmp_path / f"{precision}.nii.gz",
                                          options=InferenceOptions(tta="none",
                                                                   save_probabilities=True,
                                                                   precision=precision))
    masks = [np.asarray(nib.load(str(tmp_path / f"{p}.nii.gz")).dataobj) > 0
             for p in ("float32", "bfloat16")]
    probs = [np.asarray(nib.load(str(tmp_path / f"{p}_prob.nii.gz")).dataobj)
             for p in ("float32", "bfloat16")]
    assert masks[0].sum() > 0 and not np.array_equal(probs[0], probs[1])
    assert np.abs(probs[0] - probs[1]).max() < 0.1
    assert np.count_nonzero(masks[0] != masks[1]) <= 0.05 * masks[0].sum()
    with pytest.raises(DataError, match="saved: a SavedModel runs in the precision it was"):
        predict_path(run_dir.parent / "saved", CASE, tmp_path / "sm.nii.gz",
                     options=InferenceOptions(precision="bfloat16"))
    assert not (tmp_path / "sm.nii.gz").exists()


@pytest.mark.slow
def test_the_head_box_runs_the_model_on_the_head_alone_and_a_saved_model_is_refused(
        run_dir, tmp_path):
    """`--crop=head`: the model runs on the box around the head (one per volume), nothing
    outside the head is tumor; a SavedModel, fixed to its slice size, is refused before
    anything is written."""
    from boundary_aware.inference.head_box import head_box
    from boundary_aware.inference.rebuild import size_divisor_of
    from boundary_aware.inference.volume import VolumeInput
    from boundary_aware.model_files import load_keras_model
    src = nib.load(str(CASE))  # the sample in a wider field of view: a box to crop
    data = np.pad(np.asarray(src.dataobj), ((80, 80), (80, 80), (0, 0)))
    case = tmp_path / "wide.nii.gz"
    nib.save(nib.Nifti1Image(data, src.affine), str(case))
    model = load_keras_model(run_dir / "final.keras")
    box = head_box(VolumeInput(data[..., None]).slices(model.input_shape[1]),
                   size_divisor_of(model))
    assert box is not None  # the head leaves the box smaller than the slice
    for crop in ("none", "head"):
        predict_path(run_dir, case, tmp_path / f"{crop}.nii.gz",
                     options=InferenceOptions(tta="none", crop=crop, save_probabilities=True))
    probs = {c: np.asarray(nib.load(str(tmp_path / f"{c}_prob.nii.gz")).dataobj)
             for c in ("none", "head")}
    masks = {c: np.asarray(nib.load(str(tmp_path / f"{c}.nii.gz")).dataobj) > 0
             for c in ("none", "head")}
    head = data != 0
    assert masks["head"].any() and not (masks["head"] & ~head).any()
    assert not np.array_equal(probs["none"], probs["head"])  # the box is not the whole slice
    with pytest.raises(DataError, match="saved: a SavedModel takes the slice size"):
        predict_path(run_dir.parent / "saved", case, tmp_path / "sm.nii.gz",
                     options=InferenceOptions(crop="head"))
    assert not (tmp_path / "sm.nii.gz").exists()
    with pytest.raises(DataError, match="--crop must be one of none, head"):
        predict_path(run_dir, case, tmp_path / "bad.nii.gz",
                     options=InferenceOptions(crop="brain"))


@pytest.mark.slow
def test_predict_in_another_orientation_gives_the_same_mask(run_dir, tmp_path):
    src = nib.load(str(CASE))
    data = np.asarray(src.dataobj)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = data.shape[0] - 1, data.shape[1] - 1
    ras = nib.Nifti1Image(np.flip(data, (0, 1)).copy(), src.affine @ flip)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    nib.save(ras, str(tmp_path / "ras.nii.gz"))
    predict_path(run_dir, CASE, tmp_path / "lps_mask.nii.gz")
    predict_path(run_dir, tmp_path / "ras.nii.gz", tmp_path / "ras_mask.nii.gz")
    lps = np.asarray(nib.load(str(tmp_path / "lps_mask.nii.gz")).dataobj)
    ras_mask = nib.load(str(tmp_path / "ras_mask.nii.gz"))
    assert np.allclose(ras_mask.affine, ras.affine)
    np.testing.assert_array_equal(np.flip(np.asarray(ras_mask.dataobj), (0, 1)), lps)


@pytest.mark.slow
def test_predict_folder_and_no_overwrite(run_dir, tmp_path):
    out = tmp_path / "masks"
    summary = predict_path(run_dir, ROOT / "tests" / "data" / "brats_samples", out)
    assert sorted(summary["cases"]) == ["BraTS2013_pat0005", "BraTS2013_pat0006"]
    assert (out / "BraTS2013_pat0006_tc.nii.gz").is_file() and (out / "summary.json").is_file()
    before = (out / "BraTS2013_pat0005_tc.nii.gz").read_bytes()
    with pytest.raises(DataError, match="already exists; pass --overwrite"):
        predict_path(run_dir, ROOT / "tests" / "data" / "brats_samples", out)
    single = tmp_path / "one.nii.gz"
    single.write_bytes(b"keep me")
    with pytest.raises(DataError, match="one.nii.gz: already exists"):
        predict_path(run_dir, CASE, single)
    assert single.read_bytes() == b"keep me"
    assert (out / "BraTS2013_pat0005_tc.nii.gz").read_bytes() == before


@pytest.mark.slow
def test_a_4d_file_of_one_volume_is_that_volume_and_a_scan_without_background_is_named(
        run_dir, tmp_path, capsys):
    """(X, Y, Z, 1), as some converters write one time point, gives the mask of its 3D
    volume, on the same grid; a scan with no background of 0 (not skull-stripped) is
    segmented, with a warning that names it and the reason."""
    src = nib.load(str(CASE))
    data = np.asarray(src.dataobj)
    nib.save(nib.Nifti1Image(data[..., None], src.affine), str(tmp_path / "one.nii.gz"))
    predict_path(run_dir, CASE, tmp_path / "mask3d.nii.gz")
    assert "warning" not in capsys.readouterr().err
    predict_path(run_dir, tmp_path / "one.nii.gz", tmp_path / "mask4d.nii.gz")
    mask = nib.load(str(tmp_path / "mask4d.nii.gz"))
    assert mask.shape == src.shape and np.allclose(mask.affine, src.affine)
    np.testing.assert_array_equal(np.asarray(mask.dataobj),
                                  np.asarray(nib.load(str(tmp_path / "mask3d.nii.gz")).dataobj))
    nib.save(nib.Nifti1Image(data.astype(np.float32) + 100, src.affine),
             str(tmp_path / "offset.nii.gz"))
    predict_path(run_dir, tmp_path / "offset.nii.gz", tmp_path / "offset_mask.nii.gz")
    err = capsys.readouterr().err
    assert "warning: " + str(tmp_path / "offset.nii.gz") + ": 0.0% of its voxels are 0" in err
    assert (tmp_path / "offset_mask.nii.gz").is_file()


def _bad_inputs(tmp_path):
    data = np.asarray(nib.load(str(CASE)).dataobj)
    nan = data[:40, :40, :20].astype(np.float32)
    nan[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 2), np.int16), np.eye(4)), str(tmp_path / "4d.nii.gz"))
    (tmp_path / "text.nii.gz").write_bytes(gzip.compress(b"not an image" * 10))
    raw = CASE.read_bytes()
    (tmp_path / "truncated.nii.gz").write_bytes(raw[: len(raw) // 3])
    return {"missing.nii.gz": "file not found", "text.nii.gz": "not a NIfTI",
            "4d.nii.gz": "expected a 3D volume", "truncated.nii.gz": "truncated or corrupt",
            "nan.nii.gz": "NaN or inf"}


@pytest.mark.slow
def test_predict_rejects_bad_inputs_without_writing(run_dir, tmp_path):
    for name, problem in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out_{name}"
        with pytest.raises(DataError, match=problem) as err:
            predict_path(run_dir, tmp_path / name, out)
        assert name in str(err.value) and not out.exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_unsafe_model_formats_are_refused(tmp_path):
    for name in ("model.h5", "model.pkl"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(DataError, match="refused"):
            predict_path(tmp_path / name, CASE, tmp_path / "out.nii.gz")
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.slow
def test_the_recorded_clean_up_travels_with_the_export(tmp_path):
    from boundary_aware import postprocess
    from boundary_aware.inference.sources import load_predictor
    fake_run(tmp_path / "run")
    rule = {"rule": "min_size", "mm3": 100}
    postprocess.write(tmp_path / "run", {"final": {"tc": {"rule": rule}}}, "final", "val",
                      ("none",))
    card = export_run(tmp_path / "run", tmp_path / "saved")
    assert card["postprocess"] == {"tc": rule}
    assert load_predictor(tmp_path / "saved").postprocess == {"tc": rule}
    assert load_predictor(tmp_path / "run").postprocess == {"tc": rule}
    assert load_predictor(tmp_path / "run" / "best.keras").postprocess is None  # not chosen


@pytest.mark.slow
def test_export_of_a_baseline_has_only_seg(tmp_path):
    model = build_model("unet", input_shape=(32, 32, 1), base_filters=4)
    card = export_model(model, tmp_path / "unet_saved")
    assert set(card["outputs"]) == {"seg"}
    shutil.rmtree(tmp_path / "unet_saved")


# ---- what may be replaced, what may be loaded -------------------------------

@pytest.mark.slow
def test_export_overwrite_replaces_only_an_export(exported, tmp_path):
    root, _, _ = exported
    thesis = tmp_path / "v"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    with pytest.raises(ExportError, match="v: is not an export of this package.*never replaced"):
        export_run(root / "run", thesis, overwrite=True)
    assert (thesis / "thesis.tex").read_text() == "years of work"
    shutil.copytree(root / "saved", tmp_path / "mine")
    card = export_run(root / "run", tmp_path / "mine", overwrite=True)  # its own export: replaced
    assert json.loads((tmp_path / "mine" / "model_card.json").read_text()) == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "v"]  # no lock or temporary left
    # an export that also holds a user's file: refused, naming it, and nothing is replaced
    (tmp_path / "mine" / "notes.md").write_text("how I validated this model")
    (tmp_path / "mine" / "variables" / "mine.txt").write_text("mine too")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "mine").rglob("*"))
    with pytest.raises(DataError, match=r"mine: an export, but also holds files this package did "
                                        r"not write \(notes.md, variables/mine.txt\)"):
        export_run(root / "run", tmp_path / "mine", overwrite=True)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "mine").rglob("*")) == before
    with pytest.raises(DataError, match="the output lies inside the input --workdir"):
        export_run(root / "run", root / "run" / "export")
    assert not (root / "run" / "export").exists()


@pytest.mark.slow
def test_two_predicts_of_one_output_exclude_each_other(run_dir, tmp_path):
    from boundary_aware.errors import LockedError
    from boundary_aware.files import exclusive_lock
    out = tmp_path / "mask.nii.gz"
    with exclusive_lock(tmp_path / ".mask.nii.gz.lock", "another predict"):
        with pytest.raises(LockedError, match="in use by PID"):
            predict_path(run_dir, CASE, out, options=InferenceOptions(tta="none"))
    assert not out.exists()
    with exclusive_lock(tmp_path / ".masks.lock", "another predict"):
        with pytest.raises(LockedError, match="in use by PID"):
            predict_path(run_dir, CASE.parent.parent, tmp_path / "masks",
                         options=InferenceOptions(tta="none"))
    assert not (tmp_path / "masks").exists()
    predict_path(run_dir, CASE, out, options=InferenceOptions(tta="none"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]  # the lock is gone


def test_a_second_export_into_the_same_place_refuses(exported, tmp_path):
    from boundary_aware.errors import LockedError
    from boundary_aware.files import exclusive_lock
    root, _, _ = exported
    with exclusive_lock(tmp_path / ".out.lock", "another export"):
        with pytest.raises(LockedError, match="in use by PID"):
            export_run(root / "run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_our_exports_pass_the_operation_check(tmp_path):
    from boundary_aware.export import check_saved_model
    for name, kwargs, precision in [("ours", dict(base_filters=8, shape_filters=32, norm="group"),
                                     "mixed_float16"),
                                    ("unet", dict(base_filters=8, norm="none"), "mixed_bfloat16"),
                                    ("vnet", dict(base_filters=8), "float32")]:
        keras.config.set_dtype_policy(precision)
        model = build_model(name, input_shape=(32, 32, 1), **kwargs)
        keras.config.set_dtype_policy("float32")
        export_model(model, tmp_path / name)
        check_saved_model(tmp_path / name)  # raises on any operation outside the allow-list


def _evil_saved_model(folder, victim):
    """A SavedModel whose `serve` also writes a file: what a stranger's model could do."""
    code = f"""
import tensorflow as tf
class Evil(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec((None, 32, 32, 1), tf.float32, name="images")])
    def serve(self, images):
        tf.io.write_file({str(victim)!r}, "written by a model")
        return {{"seg": tf.sigmoid(images)}}
evil = Evil()
tf.saved_model.save(evil, {str(folder)!r}, signatures={{"serve": evil.serve}})
"""
    result = run_python(code, env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_a_savedmodel_with_foreign_operations_is_refused_unless_trusted(tmp_path):
    victim = tmp_path / "outside" / "pwned.txt"
    victim.parent.mkdir()
    _evil_saved_model(tmp_path / "evil", victim)
    with pytest.raises(DataError, match=r"evil: refused: .*\(WriteFile in .*--trust_model"):
        predict_path(tmp_path / "evil", CASE, tmp_path / "mask.nii.gz")
    assert not victim.exists() and not (tmp_path / "mask.nii.gz").exists()
    predict_path(tmp_path / "evil", CASE, tmp_path / "mask.nii.gz",
                 options=InferenceOptions(trust_model=True))
    assert victim.read_text() == "written by a model"  # what trusting a model means


@pytest.mark.slow
def test_a_savedmodel_says_which_slice_size_it_expects(exported):
    from boundary_aware.export import load_saved_model
    root, _, _ = exported
    serve, shape = load_saved_model(root / "saved")
    assert shape == (32, 32, 1)
    with pytest.raises(DataError, match=r"expects slices of shape \(N, 32, 32, 1\).*got \(2, 96, 96, 1\)"):
        serve(np.zeros((2, 96, 96, 1), np.float32))
    import tensorflow as tf  # the signature itself, for users without the package
    raw = tf.saved_model.load(str(root / "saved")).signatures["serve"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected shape \[\?,32,32,1\]"):
        raw(images=tf.zeros((1, 96, 96, 1)))


@pytest.mark.slow
def test_predict_overwrite_replaces_only_its_own_masks(run_dir, tmp_path):
    out = tmp_path / "mask.nii.gz"
    shutil.copy(CASE, out)  # somebody's scan where the mask would go
    with pytest.raises(DataError, match="mask.nii.gz: is not a mask written by this package"):
        predict_path(run_dir, CASE, out, overwrite=True)
    assert out.read_bytes() == CASE.read_bytes()
    out.unlink()
    predict_path(run_dir, CASE, out)
    first = nib.load(str(out)).get_fdata()
    predict_path(run_dir, CASE, out, overwrite=True)  # its own output: replaced
    np.testing.assert_array_equal(nib.load(str(out)).get_fdata(), first)
    copy = tmp_path / "scan.nii.gz"
    shutil.copy(CASE, copy)
    with pytest.raises(DataError, match="scan.nii.gz: is the input"):
        predict_path(run_dir, copy, copy, overwrite=True)
    summary = tmp_path / "masks" / "summary.json"
    summary.parent.mkdir()
    summary.write_text('{"my": "results"}')
    with pytest.raises(DataError, match="summary.json: is not a summary written by this package"):
        predict_path(run_dir, ROOT / "tests" / "data" / "brats_samples", summary.parent,
                     overwrite=True)
    assert summary.read_text() == '{"my": "results"}'


def test_distinct_slices_runs_each_constant_value_once():
    from boundary_aware.inference.volume import distinct_slices
    slices = np.zeros((6, 4, 4, 1), np.float32)
    slices[1, 0, 0] = 0.5  # content
    slices[3] = 0.25  # constant, another value
    slices[5] = 0.25
    run, source = distinct_slices(slices)
    assert run.tolist() == [0, 1, 3]  # the first blank, the content, the first 0.25
    assert source.tolist() == [0, 1, 0, 2, 0, 2]
    np.testing.assert_array_equal(slices[run][source], slices)


@pytest.mark.slow
@pytest.mark.parametrize("streams", [1, 2])
def test_predict_with_shared_blank_slices_and_streams_equals_every_slice_through_the_model(
        streams):
    """On a real BraTS volume (17 slices without head), with a model whose batch-norm
    statistics are random: the probabilities of `segment_volume` (constant slices run once,
    padded last batch, `streams` batches at a time) equal those of every slice with head
    through `model.predict`."""
    from boundary_aware.inference.predictor import keras_predictor, Predictor
    from boundary_aware.inference.volume import segment_volume
    from boundary_aware.nifti import load_volume
    keras.utils.set_random_seed(1)
    model = build_model("ours", input_shape=(32, 32, 1), **TINY)
    rng = np.random.default_rng(1)
    for variable in model.non_trainable_variables:
        variable.assign(rng.uniform(0.5, 1.5, tuple(variable.shape)) if "variance" in variable.path
                        else rng.normal(0, 0.3, tuple(variable.shape)))
    volume, _, _ = load_volume(CASE, "image")
    calls = []

    def every_slice(images):
        calls.append(len(images))
        out = model.predict(images, batch_size=16, verbose=0)
        return {"seg": out["seg"], "edge": out["edge"]}
    expected = segment_volume(Predictor(every_slice, (32, 32, 1), ("t1c",)), volume[..., None],
                              distinct=False)
    got = segment_volume(keras_predictor(model, batch_size=5, streams=streams),
                         volume[..., None])
    assert calls == [155 - 17] and set(got) == {"seg", "edge"}  # the logits stay inside
    for name in ("seg", "edge"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6)
        assert np.array_equal(got[name] > 0.5, expected[name] > 0.5)
    assert 0.01 < (got["seg"] > 0.5).mean() < 0.99  # a mask with both classes


# ---- a model of more than one channel ---------------------------------------

@pytest.mark.slow
def test_a_two_channel_model_predicts_from_one_file_per_channel_and_from_a_folder(tmp_path):
    """A run whose state records two channels (T1c, FLAIR): predict takes the files in that
    order, finds both in a BraTS folder, and refuses the wrong number of files."""
    keras.utils.set_random_seed(2)
    model = build_model("unet", input_shape=(32, 32, 2), base_filters=4)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "final.keras")
    (run / "config.json").write_text(json.dumps({"model": {"name": "unet"}, "variant": "unet"}))
    (run / "state.json").write_text(json.dumps({"epoch": 1, "input_channels": ["t1c", "flair"]}))
    case = tmp_path / "brats" / "Case_1"
    case.mkdir(parents=True)
    shutil.copy(CASE, case / "Case_1_t1ce.nii.gz")
    source = nib.load(str(CASE))
    flair = np.asarray(source.dataobj)[::-1].copy()  # another image on the same grid
    nib.save(nib.Nifti1Image(flair, source.affine, source.header),
             str(case / "Case_1_flair.nii.gz"))
    files = f"{case / 'Case_1_t1ce.nii.gz'},{case / 'Case_1_flair.nii.gz'}"
    one = predict_path(run, files, tmp_path / "one.nii.gz")
    folder = predict_path(run, tmp_path / "brats", tmp_path / "masks")
    assert list(folder["cases"]) == ["Case_1"] and not folder["errors"]
    def mask(path):
        return np.asarray(nib.load(str(path)).dataobj)
    np.testing.assert_array_equal(mask(tmp_path / "one.nii.gz"),
                                  mask(tmp_path / "masks" / "Case_1_tc.nii.gz"))
    assert one["input"] == files
    from boundary_aware.inference.sources import load_predictor
    from boundary_aware.inference.volume import segment_volume
    predictor = load_predictor(run)
    assert predictor.channels == ("t1c", "flair") and predictor.input_shape == (32, 32, 2)
    volume = np.stack([np.asarray(source.dataobj), flair], axis=-1)  # LPS already
    probs = segment_volume(predictor, volume)["seg"]
    swapped = segment_volume(predictor, volume[..., ::-1])["seg"]
    assert not np.allclose(probs, swapped)  # the order is the model's, and it matters
    with pytest.raises(DataError, match=r"takes 2 volumes \(t1c, flair\), got 1"):
        predict_path(run, case / "Case_1_t1ce.nii.gz", tmp_path / "wrong.nii.gz")
    (case / "Case_1_flair.nii.gz").unlink()
    with pytest.raises(DataError, match="Case_1_flair.nii.gz: missing FLAIR file of case Case_1"):
        predict_path(run, tmp_path / "brats", tmp_path / "masks2")
    assert not (tmp_path / "wrong.nii.gz").exists()


@pytest.mark.slow
def test_a_checkpoint_saved_before_the_logits_output_still_predicts_and_exports(tmp_path):
    """tests/data/checkpoints/reference_ours.keras was saved by an older graph: outputs `seg`
    and `edge` only, no record of its channels. It loads, is taken to be T1c, predicts a
    volume and exports."""
    from boundary_aware.inference.sources import load_predictor
    old = ROOT / "tests" / "data" / "checkpoints" / "reference_ours.keras"
    predictor = load_predictor(old)
    assert predictor.channels == ("t1c",) and predictor.input_shape == (32, 32, 1)
    summary = predict_path(old, CASE, tmp_path / "mask.nii.gz",
                           options=InferenceOptions(edge_output=True))
    assert (tmp_path / "mask_edge.nii.gz").is_file() and summary["slices_with_tumor"] >= 0
    model = keras.saving.load_model(old, compile=False)
    card = export_model(model, tmp_path / "saved")
    assert set(card["outputs"]) == {"seg", "edge"} and card["input"]["channels"] == ["t1c"]


@pytest.mark.slow
def test_export_on_another_backend_is_one_line(tmp_path):
    """The serving function is TensorFlow code: exporting with Keras on JAX is refused in one
    line that says what to do, before anything is read or written."""
    from tests.conftest import module_code
    result = run_python(module_code("boundary_aware.export", [
        f"--workdir={tmp_path / 'run'}", f"--out={tmp_path / 'export'}"]),
        env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'export'}: a SavedModel is exported on the TensorFlow backend, and "
        f"Keras runs on jax; rerun with KERAS_BACKEND=tensorflow (runs trained on any backend "
        f"export the same)")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
