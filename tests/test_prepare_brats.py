"""BraTS preparation: the real sample cases, layouts, bad inputs, atomic writes."""

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from boundary_aware.errors import DataError
from boundary_aware.prepared import MANIFEST_FORMAT, load_prepared, Manifest
from data_prep import synthetic
from data_prep.prepare_brats import default_split, prepare
from tests.conftest import ROOT, run_python

SAMPLES = ROOT / "tests" / "data" / "brats_samples"
SHAPE = (64, 64, 32)


def quiet(*args, **kwargs):
    pass


def run(src, out, **kwargs):
    return prepare(src, out, log=quiet, **{"slices_per_case": 6, "image_size": 64, **kwargs})


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synthetic.generate(root, 4, seed=5, shape=SHAPE)
    return root


@pytest.fixture
def brats(tmp_path, synth_root):
    """A fresh, writable copy of the synthetic BraTS folder."""
    root = tmp_path / "brats"
    shutil.copytree(synth_root, root)
    return root


def files(case_root, case_id):
    return (case_root / case_id / f"{case_id}_t1ce.nii.gz", case_root / case_id / f"{case_id}_seg.nii.gz")


def save(path, array, affine=synthetic.BRATS_AFFINE):
    nib.save(nib.Nifti1Image(array, affine), str(path))


# ---- the two real cases ---------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "prepared"
    split = tmp_path_factory.mktemp("split") / "split.json"
    split.write_text(json.dumps({"train": ["BraTS2013_pat0005"], "val": [],
                                 "test": ["BraTS2013_pat0006"]}))
    prepare(SAMPLES, out, split_file=split, log=quiet)
    return out


def test_real_cases_slices_range_and_masks(real):
    for split, case_id in (("train", "BraTS2013_pat0005"), ("test", "BraTS2013_pat0006")):
        images, masks, meta = load_prepared(real, split)
        assert images.shape == (20, 240, 240, 1) and images.dtype == np.float32
        assert masks.shape == (20, 240, 240, 1) and masks.dtype == np.uint8
        assert set(np.unique(masks).tolist()) == {0, 1}
        assert images.min() == 0.0 and images.max() == 1.0
        t1c = np.asarray(nib.load(str(SAMPLES / case_id / f"{case_id}_t1ce.nii.gz")).dataobj)
        seg = np.asarray(nib.load(str(SAMPLES / case_id / f"{case_id}_seg.nii.gz")).dataobj)
        tc = np.isin(seg, (1, 4))
        largest = int(np.argmax(tc.sum(axis=(0, 1))))
        slices = [m["slice"] for m in meta]
        assert {m["case"] for m in meta} == {case_id} and largest in slices
        assert slices == sorted(slices) and max(slices) - min(slices) == 19  # contiguous run
        for i, z in enumerate(slices):
            np.testing.assert_array_equal(masks[i, ..., 0], tc[:, :, z])
            assert np.all(images[i, ..., 0][t1c[:, :, z] == 0] == 0)  # background stays 0


def test_manifest_records_everything(real):
    manifest = json.loads((real / "manifest.json").read_text())
    case = manifest["cases"]["BraTS2013_pat0005"]
    assert case["spacing"] == [1.0, 1.0, 1.0] and case["shape"] == [240, 240, 155]
    assert case["normalization"]["hi"][0] > case["normalization"]["lo"][0]  # one per channel
    assert len(case["files"]["t1c"]["sha256"]) == 64 and case["files"]["seg"]["bytes"] > 0
    assert case["files"]["t1c"]["path"] == "BraTS2013_pat0005/BraTS2013_pat0005_t1ce.nii.gz"
    assert manifest["options"]["slices_per_case"] == 20 and manifest["package_version"]
    assert manifest["channels"] == ["t1c"] and manifest["format_version"] == MANIFEST_FORMAT


# ---- layouts, split, determinism, overwrite --------------------------------

def test_default_split_is_seeded_and_patient_level():
    ids = [f"c{i:03d}" for i in range(50)]
    split = default_split(ids, 0)
    assert [len(split[s]) for s in ("train", "val", "test")] == [35, 5, 10]
    assert sorted(sum(split.values(), [])) == ids
    assert split == default_split(ids, 0) and split != default_split(ids, 1)


def test_same_inputs_give_byte_identical_arrays(brats, tmp_path):
    run(brats, tmp_path / "a", workers=2)
    run(brats, tmp_path / "b", workers=1)
    for name in ("train_images.npy", "train_masks.npy", "test_images.npy", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_rerun_is_a_no_op_and_other_options_need_overwrite(brats, tmp_path):
    out = tmp_path / "out"
    run(brats, out)
    before = (out / "train_images.npy").stat().st_mtime_ns
    run(brats, out)
    assert (out / "train_images.npy").stat().st_mtime_ns == before
    with pytest.raises(DataError, match="other options.*--overwrite"):
        run(brats, out, slices_per_case=3)
    assert json.loads((out / "manifest.json").read_text())["options"]["slices_per_case"] == 6
    run(brats, out, slices_per_case=3, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["options"]["slices_per_case"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brats", "out"]


def test_brats2023_layout_and_extra_modalities(tmp_path, synth_root):
    root = tmp_path / "brats2023"
    for case_id in ("Synth_0000", "Synth_0001", "Synth_0002"):
        t1c, seg = files(synth_root, case_id)
        new_id = case_id.replace("Synth", "BraTS-GLI")
        (root / new_id).mkdir(parents=True)
        shutil.copy(t1c, root / new_id / f"{new_id}-t1c.nii.gz")
        shutil.copy(t1c, root / new_id / f"{new_id}-t2f.nii.gz")  # ignored
        labels = np.asarray(nib.load(str(seg)).dataobj)
        save(root / new_id / f"{new_id}-seg.nii.gz", np.where(labels == 4, 3, labels).astype(np.uint8))
    run(root, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {c["convention"] for c in manifest["cases"].values()} == {"brats2023"}
    original = tmp_path / "orig"
    run(synth_root, original)
    a, b = load_prepared(tmp_path / "out", "train")[1], load_prepared(original, "train")[1]
    assert a.sum() > 0 and a.shape[1:] == b.shape[1:]


def test_other_orientation_gives_the_same_slices(brats, tmp_path):
    """A case stored in RAS (flipped arrays, another affine) is read back in LPS."""
    out_lps = tmp_path / "lps"
    run(brats, out_lps)
    for path in files(brats, "Synth_0000") + files(brats, "Synth_0001"):
        img = nib.load(str(path))
        ras = np.flip(np.asarray(img.dataobj), axis=(0, 1)).copy()
        affine = img.affine @ np.array([[-1, 0, 0, SHAPE[0] - 1], [0, -1, 0, SHAPE[1] - 1],
                                        [0, 0, 1, 0], [0, 0, 0, 1]])
        save(path, ras, affine)
        assert nib.aff2axcodes(nib.load(str(path)).affine) == ("R", "A", "S")
    run(brats, tmp_path / "ras")
    for split in ("train", "val", "test"):
        for x, y in zip(load_prepared(out_lps, split)[:2], load_prepared(tmp_path / "ras", split)[:2]):
            np.testing.assert_array_equal(x, y)


# ---- bad inputs: a clear message naming the file, and nothing written -------

def _break_missing_t1c(brats):
    t1c, _ = files(brats, "Synth_0002")
    t1c.unlink()
    return t1c, "missing T1c"


def _break_missing_seg(brats):
    _, seg = files(brats, "Synth_0002")
    seg.unlink()
    return seg, "missing segmentation"


def _break_truncated_gzip(brats):
    t1c, _ = files(brats, "Synth_0002")
    data = t1c.read_bytes()
    t1c.write_bytes(data[: len(data) // 2])
    return t1c, "truncated or corrupt"


def _break_not_nifti(brats):
    t1c, _ = files(brats, "Synth_0002")
    t1c.write_bytes(gzip.compress(b"this is a text file, not an image\n" * 20))
    return t1c, "not a NIfTI"


def _break_4d(brats):
    t1c, _ = files(brats, "Synth_0002")
    save(t1c, np.zeros(SHAPE + (2,), np.int16))
    return t1c, "expected a 3D volume, got 4D"


def _break_2d(brats):
    t1c, _ = files(brats, "Synth_0002")
    save(t1c, np.zeros(SHAPE[:2], np.int16))
    return t1c, "expected a 3D volume, got 2D"


def _break_shape_mismatch(brats):
    _, seg = files(brats, "Synth_0002")
    save(seg, np.zeros((64, 64, 30), np.uint8))
    return seg, "shape .* differs"


def _break_affine_mismatch(brats):
    _, seg = files(brats, "Synth_0002")
    img = nib.load(str(seg))
    affine = img.affine.copy()
    affine[0, 3] += 5
    save(seg, np.asarray(img.dataobj), affine)
    return seg, "affine differs"


def _break_nan(brats):
    t1c, _ = files(brats, "Synth_0002")
    data = np.asarray(nib.load(str(t1c)).dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    data[11, 10, 10] = np.inf
    save(t1c, data)
    return t1c, "2 NaN or inf voxels"


def _break_labels(brats):
    _, seg = files(brats, "Synth_0002")
    data = np.asarray(nib.load(str(seg)).dataobj).copy()
    data[0, 0, 0] = 3
    save(seg, data)
    return seg, r"label values \[3\] are outside the brats2018 convention"


def _break_absurd_header(brats):
    t1c, _ = files(brats, "Synth_0002")
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), synthetic.BRATS_AFFINE)
    img.header.set_data_shape((20000, 20000, 20000))
    raw = img.header.binaryblock + b"\0" * 4 + np.zeros(64, np.int16).tobytes()
    t1c.write_bytes(gzip.compress(raw))
    return t1c, "implausible"


def _break_empty_core(brats):
    _, seg = files(brats, "Synth_0002")
    data = np.asarray(nib.load(str(seg)).dataobj).copy()
    data[np.isin(data, (1, 4))] = 2
    save(seg, data)
    return seg, "TC region is empty"


def _break_constant_t1c(brats):
    t1c, _ = files(brats, "Synth_0002")
    save(t1c, np.full(SHAPE, 7, np.int16))
    return t1c, "the T1c is constant"


def _break_blank_t1c(brats):
    t1c, _ = files(brats, "Synth_0002")
    save(t1c, np.zeros(SHAPE, np.int16))
    return t1c, "the T1c is constant"


def _header_only(path, shape, dtype):
    """A file of a few hundred bytes whose header claims `shape` voxels of `dtype`."""
    img = nib.Nifti1Image(np.zeros((2, 2, 2), dtype), synthetic.BRATS_AFFINE)
    img.header.set_data_shape(shape)
    path.write_bytes(gzip.compress(img.header.binaryblock + b"\0" * 4))


def _break_complex_header(brats):
    t1c, _ = files(brats, "Synth_0002")
    _header_only(t1c, (512, 512, 512), np.complex128)  # 2 GiB claimed by a tiny file
    return t1c, "voxel type complex128 is not an image"


def _break_huge_float64_header(brats):
    t1c, _ = files(brats, "Synth_0002")
    _header_only(t1c, (512, 512, 300), np.float64)
    return t1c, "needs 600 MiB in memory; the limit is 512 MiB"


BREAKERS = [_break_constant_t1c, _break_blank_t1c, _break_complex_header,
            _break_huge_float64_header, _break_missing_t1c, _break_missing_seg, _break_truncated_gzip, _break_not_nifti,
            _break_4d, _break_2d, _break_shape_mismatch, _break_affine_mismatch, _break_nan,
            _break_labels, _break_absurd_header, _break_empty_core]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__[7:])
def test_bad_input_is_named_and_nothing_is_written(breaker, brats, tmp_path):
    path, problem = breaker(brats)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=problem) as err:
        run(brats, out)
    assert str(path) in str(err.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brats"]  # no temporary left over


def test_skip_mode_leaves_bad_cases_out_and_lists_them(brats, tmp_path):
    path, _ = _break_nan(brats)
    messages = []
    manifest = prepare(brats, tmp_path / "out", slices_per_case=6, image_size=64,
                       on_error="skip", log=messages.append)
    assert list(manifest["skipped"]) == ["Synth_0002"] and str(path) in manifest["skipped"]["Synth_0002"]
    assert any("skipped case Synth_0002" in m for m in messages)
    assert "Synth_0002" not in manifest["cases"]
    assert all(r["case"] != "Synth_0002" for s in manifest["slices"].values() for r in s)


def test_bad_split_file_and_folders(brats, tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["Synth_0000", "nope"], "test": ["Synth_0001"]}))
    with pytest.raises(DataError, match=r"split.json: cases not found .*'nope'"):
        run(brats, tmp_path / "out", split_file=split)
    split.write_text("{not json")
    with pytest.raises(DataError, match="split.json: cannot read"):
        run(brats, tmp_path / "out", split_file=split)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty: no BraTS cases found"):
        run(empty, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_custom_split_file_is_used(brats, tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["Synth_0003"], "val": ["Synth_0001"], "test": ["Synth_0000"]}))
    manifest = run(brats, tmp_path / "out", split_file=split)
    assert manifest["split"] == {"train": ["Synth_0003"], "val": ["Synth_0001"], "test": ["Synth_0000"]}
    assert "Synth_0002" not in manifest["cases"]


# ---- unreadable folders, options, leftovers, what --overwrite may replace ----

def _unreadable(monkeypatch, folder):
    """Make listing `folder` fail as it does without read permission (the tests run as root)."""
    import os
    real = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_case_folder_fails_naming_it_or_is_skipped_and_listed(brats, tmp_path,
                                                                            monkeypatch):
    folder = files(brats, "Synth_0002")[0].parent
    _unreadable(monkeypatch, folder)
    with pytest.raises(DataError, match=f"{folder}: cannot read this folder"):
        run(brats, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    manifest = run(brats, tmp_path / "out", on_error="skip")
    assert "cannot read this folder" in manifest["skipped"][str(folder)]
    assert "Synth_0002" not in manifest["cases"]


@pytest.mark.parametrize("options, problem", [
    (dict(slices_per_case=0), "--slices_per_case must be >= 1"),
    (dict(image_size=40, models=("ours", "unet", "vnet")),
     r"image size 40 does not suit every model \(unet needs a multiple of 16, vnet needs a "
     r"multiple of 16\)"),
    (dict(image_size=36, models=("ours",)), "ours needs a multiple of 8"),
    (dict(models=("resnet",)), r"--models: unknown model\(s\) \['resnet'\]"),
    (dict(workers=0), "--workers must be an integer from 1 to"),
])
def test_bad_options_are_refused_before_any_work(options, problem, brats, tmp_path):
    with pytest.raises(ValueError, match=problem):
        run(brats, tmp_path / "out", **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brats"]


def test_the_image_size_is_checked_against_the_named_models_only(brats, tmp_path):
    """40 x 40 suits Ours (a multiple of 8) but not U-Net or V-Net (16): prepared when no
    model or only Ours is named, so that registering a model changes nothing here."""
    for name, models in (("any", ()), ("ours", ("ours",))):
        run(brats, tmp_path / name, image_size=40, models=models)
        assert Manifest.read(tmp_path / name).image_size == 40


def test_an_output_that_is_a_file_is_refused_before_any_case_is_read(brats, tmp_path, monkeypatch):
    import data_prep.prepare_brats as prep
    monkeypatch.setattr(prep, "discover_cases", lambda *a, **k: pytest.fail("read the cases"))
    out = tmp_path / "out"
    out.write_text("my notes")
    with pytest.raises(DataError, match="out: exists and is not a folder"):
        run(brats, out)
    assert out.read_text() == "my notes"


@pytest.mark.slow
def test_a_killed_runs_hidden_leftovers_are_removed(brats, tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    leftover = tmp_path / f".tmp-{dead}-out"
    (leftover / "junk").mkdir(parents=True)
    (leftover / "junk" / "train_images.npy").write_bytes(b"\0" * 1000)
    run(brats, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brats", "out"]


def test_overwrite_replaces_only_a_prepared_dataset(brats, tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    with pytest.raises(DataError, match="is not a prepared dataset; it is never replaced"):
        run(brats, thesis, overwrite=True)
    (thesis / "manifest.json").write_text('{"some": "other tool"}')
    with pytest.raises(DataError, match="not a manifest of this package"):
        run(brats, thesis, overwrite=True)
    assert (thesis / "thesis.tex").read_text() == "years of work"


def test_overwrite_replaces_our_files_only_and_never_an_input(brats, tmp_path):
    out = tmp_path / "out"
    run(brats, out)
    run(brats, out, slices_per_case=3, overwrite=True)  # only our files: replaced
    (out / "runs").mkdir()
    (out / "runs" / "notes.txt").write_text("kept beside the data")
    with pytest.raises(DataError, match=r"out: a prepared dataset, but also holds files this "
                                        r"package did not write \(runs/notes.txt\)"):
        run(brats, out, slices_per_case=2, overwrite=True)
    assert (out / "runs" / "notes.txt").read_text() == "kept beside the data"
    assert Manifest.read(out).options["slices_per_case"] == 3
    # a file added while the new dataset is written is seen at the swap: nothing replaced
    from boundary_aware.files import atomic_folder
    (out / "runs" / "notes.txt").unlink()
    with pytest.raises(DataError, match="late.txt"):
        with atomic_folder(out, replace=True, ours={"manifest.json"}, what="a dataset") as tmp:
            (tmp / "manifest.json").write_text("{}")
            (out / "late.txt").write_text("written meanwhile")
    assert (out / "late.txt").exists() and (out / "train_images.npy").exists()
    for inside in (brats / "prepared", brats.parent):
        with pytest.raises(DataError, match="apart from every input"):
            run(brats, inside, overwrite=True)
    assert not (brats / "prepared").exists()


def test_a_dataset_of_an_older_format_is_replaced_only_with_overwrite(brats, tmp_path):
    out = tmp_path / "out"
    run(brats, out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["format_version"], manifest["channels"]  # as written before both existed
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"another version of this package \(manifest format 1, "
                                        r"this one writes 2\); pass --overwrite"):
        run(brats, out)
    run(brats, out, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["format_version"] == MANIFEST_FORMAT


@pytest.mark.slow
def test_preparation_starts_without_keras(tmp_path):
    """Checking the image size against every model reads the model registry, not Keras."""
    code = (f"import sys\nfrom data_prep.prepare_brats import prepare\n"
            f"prepare({str(SAMPLES)!r}, {str(tmp_path / 'out')!r}, slices_per_case=2, "
            f"image_size=48, log=lambda *a: None)\n"
            f"print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_second_preparation_into_the_same_folder_refuses(brats, tmp_path):
    from boundary_aware.errors import LockedError
    from boundary_aware.files import exclusive_lock
    out = tmp_path / "out"
    with exclusive_lock(tmp_path / ".out.lock", str(out)):  # as a running preparation holds it
        with pytest.raises(LockedError, match=r"out: in use by PID \d+ on "):
            run(brats, out)
    assert not out.exists()


# ---- four sequences, both layouts, three label conventions -----------------

FOUR = ("t1", "t1c", "t2", "flair")
ORDER = ("flair", "t1c", "t2", "t1")  # any order the user asks for


@pytest.fixture(scope="module")
def four_roots(tmp_path_factory):
    """{convention: a folder of 4 synthetic cases with all four sequences}."""
    roots = {}
    for convention in ("brats2018", "brats2023", "brats2024"):
        root = tmp_path_factory.mktemp(convention)
        synthetic.generate(root, 4, seed=5, shape=SHAPE, sequences=FOUR, convention=convention)
        roots[convention] = root
    return roots


@pytest.mark.slow
@pytest.mark.parametrize("convention", ["brats2018", "brats2023", "brats2024"])
def test_four_sequences_in_either_layout_each_channel_normalized_on_its_own(
        convention, four_roots, tmp_path):
    root = four_roots[convention]
    manifest = run(root, tmp_path / "out", sequences=ORDER)
    assert manifest["channels"] == list(ORDER) and manifest["options"]["sequences"] == list(ORDER)
    assert manifest["conventions"] == [convention]
    assert {c["convention"] for c in manifest["cases"].values()} == {convention}
    images, masks, meta = load_prepared(tmp_path / "out", "train")
    assert images.shape[1:] == (64, 64, 4)
    case_id, z = meta[0]["case"], meta[0]["slice"]
    record = manifest["cases"][case_id]
    layout = synthetic.CONVENTION_LAYOUT[convention]
    from boundary_aware.brats_cases import LAYOUTS
    for c, name in enumerate(ORDER):  # channel c is that sequence, by its own range
        path = root / case_id / f"{case_id}{LAYOUTS[layout][name]}"
        assert record["files"][name]["name"] == path.name
        volume = np.asarray(nib.load(str(path)).dataobj).astype(np.float32)
        brain = volume[volume != 0]
        lo, hi = np.percentile(brain.astype(np.float64), (0.5, 99.5))
        assert (record["normalization"]["lo"][c], record["normalization"]["hi"][c]) == \
            pytest.approx((lo, hi))
        want = np.where(volume[:, :, z] == 0, 0, (np.clip(volume[:, :, z], lo, hi) - lo) / (hi - lo))
        np.testing.assert_allclose(images[0, ..., c], want, atol=1e-6)
    # the region is the tumor core in every convention (the cavity of 2024 is in none)
    seg = np.asarray(nib.load(str(root / case_id / f"{case_id}{LAYOUTS[layout]['seg']}")).dataobj)
    tc = {"brats2018": (1, 4)}.get(convention, (1, 3))
    np.testing.assert_array_equal(masks[0, ..., 0], np.isin(seg[:, :, z], tc))


def test_the_paper_profile_is_t1c_alone_even_with_four_sequences_present(four_roots, tmp_path):
    four = run(four_roots["brats2018"], tmp_path / "four", sequences=("t1c",))
    assert four["channels"] == ["t1c"] and set(four["cases"]["Synth_0000"]["files"]) == {"t1c", "seg"}
    assert load_prepared(tmp_path / "four", "train")[0].shape[-1] == 1


def _copy(root, tmp_path):
    out = tmp_path / "brats"
    shutil.copytree(root, out)
    return out


def test_a_missing_sequence_is_named_and_nothing_is_written(four_roots, tmp_path):
    root = _copy(four_roots["brats2023"], tmp_path)
    missing = root / "Synth_0002" / "Synth_0002-t2f.nii.gz"
    missing.unlink()
    with pytest.raises(DataError, match="missing FLAIR file of case Synth_0002") as err:
        run(root, tmp_path / "out", sequences=FOUR)
    assert str(missing) in str(err.value) and not (tmp_path / "out").exists()
    run(root, tmp_path / "t1c_only", sequences=("t1c",))  # not needed: not asked for


@pytest.mark.parametrize("what", ["shape", "affine"])
def test_sequences_on_other_grids_are_named(what, four_roots, tmp_path):
    root = _copy(four_roots["brats2018"], tmp_path)
    path = root / "Synth_0001" / "Synth_0001_t2.nii.gz"
    data = np.asarray(nib.load(str(path)).dataobj)
    if what == "shape":
        save(path, data[:-2])
    else:
        affine = synthetic.BRATS_AFFINE.copy()
        affine[0, 3] += 5.0
        save(path, data, affine)
    with pytest.raises(DataError, match=f"{what} .*differs from the T1") as err:
        run(root, tmp_path / "out", sequences=FOUR)
    assert str(path) in str(err.value) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("convention, value", [("brats2018", 3), ("brats2023", 5),
                                               ("brats2024", 7)])
def test_a_label_value_outside_the_convention_is_named(convention, value, four_roots, tmp_path):
    root = _copy(four_roots[convention], tmp_path)
    suffix = "_seg.nii.gz" if convention == "brats2018" else "-seg.nii.gz"
    path = root / "Synth_0003" / f"Synth_0003{suffix}"
    data = np.asarray(nib.load(str(path)).dataobj).copy()
    data[0, 0, 0] = value
    save(path, data)
    with pytest.raises(DataError, match=rf"label values \[{value}\] are outside") as err:
        run(root, tmp_path / "out", sequences=FOUR)
    assert str(path) in str(err.value) and not (tmp_path / "out").exists()


def test_unknown_sequences_are_refused_before_any_work(brats, tmp_path):
    for bad in (("t1c", "dwi"), ("t1c", "t1c"), ()):
        with pytest.raises(ValueError, match="--sequences must name distinct MRI sequences"):
            run(brats, tmp_path / "out", sequences=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brats"]


def test_a_manifest_without_sequences_or_under_modalities_reads_as_current(brats, tmp_path):
    """A manifest that names no sequences means the paper's T1c; one that names them
    `modalities` means them: both are the dataset these options prepare."""
    out = tmp_path / "out"
    run(brats, out)
    written = json.loads((out / "manifest.json").read_text())
    for options in ({k: v for k, v in written["options"].items() if k != "sequences"},
                    {**{k: v for k, v in written["options"].items() if k != "sequences"},
                     "modalities": ["t1c"]}):
        (out / "manifest.json").write_text(json.dumps({**written, "options": options}))
        messages = []
        prepare(brats, out, log=messages.append, slices_per_case=6, image_size=64)
        assert "nothing to do" in messages[-1]


def test_discovery_follows_links_inside_the_folder_and_lists_what_it_passes_over(brats,
                                                                                tmp_path):
    import os

    from boundary_aware.brats_cases import discover_cases
    ids = sorted(p.name for p in brats.iterdir() if p.is_dir())
    (brats / "linked").mkdir()
    os.symlink(brats / ids[0], brats / "linked" / ids[0])  # inside: one case, reached twice
    shutil.move(str(brats / ids[1]), str(tmp_path / ids[1]))
    os.symlink(tmp_path / ids[1], brats / "outside")  # a link leading out of the folder
    shutil.move(str(brats / ids[2]), str(brats / "patient_x"))  # files not in their case's name
    os.symlink(tmp_path / "nowhere", brats / "broken")
    skipped = {}
    found = [c.case_id for c in discover_cases(brats, skipped=skipped)]
    assert found == [ids[0], ids[3]]
    assert skipped[str(brats / "outside")] == ("a link to a folder outside the given folder; "
                                               "not followed")
    assert skipped[str(brats / "broken")] == "a broken symbolic link"
    misnamed = [p for p in skipped if "patient_x" in p]
    assert misnamed and all(f"not in a folder named {ids[2]}" in skipped[p] for p in misnamed)
    # a link inside is followed; the case it leads to counts once (walked first through its
    # own folder, the link is then passed over as a folder reached before)
    assert all(why.endswith("reached before; not followed again")
               for path, why in skipped.items() if "linked" in path)
    manifest = run(brats, tmp_path / "out", on_error="skip")
    assert str(brats / "outside") in manifest["skipped"]
