"""The synthetic BraTS-like generator: layout, conventions, determinism, appearance."""

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from data_prep import phantom, synthetic

SHAPE = (64, 64, 32)


@pytest.fixture(scope="module")
def case():
    return phantom.make_case(7, SHAPE)


def test_dtypes_labels_and_tumor(case):
    t1c, seg = case
    assert t1c.dtype == np.int16 and seg.dtype == np.uint8 and t1c.shape == seg.shape == SHAPE
    assert set(np.unique(seg).tolist()) == {0, 1, 2, 4}
    assert np.isin(seg, (1, 4)).sum() > 100


def test_looks_like_a_t1c_head(case):
    t1c, seg = case
    assert t1c.min() == 0 and t1c[0, 0, 0] == 0  # background is exactly 0
    head = t1c > 0
    assert 0.2 < head.mean() < 0.8
    mean = {label: t1c[seg == label].mean() for label in (1, 2, 4)}
    brain = t1c[head & (seg == 0)].mean()
    assert mean[4] > 1.3 * brain  # bright enhancing rim
    assert mean[2] < brain  # hypointense edema


def test_same_seed_same_case_and_cases_differ():
    a, b = phantom.make_case(3, SHAPE), phantom.make_case(3, SHAPE)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = phantom.make_case(4, SHAPE)
    assert not np.array_equal(a[1], c[1])


def test_generate_writes_the_brats_2018_layout(tmp_path):
    ids = synthetic.generate(tmp_path, 2, seed=1, shape=SHAPE)
    assert ids == ["Synth_0000", "Synth_0001"]
    img = nib.load(str(tmp_path / "Synth_0001" / "Synth_0001_t1ce.nii.gz"))
    seg = nib.load(str(tmp_path / "Synth_0001" / "Synth_0001_seg.nii.gz"))
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert img.header.get_zooms() == (1.0, 1.0, 1.0)
    assert img.get_data_dtype() == np.int16 and seg.get_data_dtype() == np.uint8
    again = tmp_path / "again"
    synthetic.generate(again, 2, seed=1, shape=SHAPE)
    first = np.asarray(img.dataobj)
    second = np.asarray(nib.load(str(again / "Synth_0001" / "Synth_0001_t1ce.nii.gz")).dataobj)
    np.testing.assert_array_equal(first, second)


def test_distractors_are_deterministic_bright_unlabelled_and_keep_labels_exact():
    shape = (96, 96, 48)
    with_d, again = phantom.make_case(11, shape), phantom.make_case(11, shape)
    assert all(np.array_equal(x, y) for x, y in zip(with_d, again))
    plain = phantom.make_case(11, shape, distractors=False)
    t1c, seg = with_d
    # the same anatomy and labels; distractors only paint unlabelled voxels
    moved = not np.array_equal(seg, plain[1])
    if not moved:
        np.testing.assert_array_equal(seg, plain[1])
    rim = t1c[seg == 4].mean()
    tumor = np.isin(seg, (1, 2, 4))
    far = ndimage.distance_transform_edt(~tumor) > 10
    bright_far = far & (t1c > 0.7 * rim)
    plain_bright_far = far & (plain[0] > 0.7 * plain[0][plain[1] == 4].mean())
    assert bright_far.sum() > 5 * max(plain_bright_far.sum(), 1)  # rim look-alikes far away
    assert not np.any(bright_far & tumor)


def test_some_tumors_touch_a_ventricle():
    """About a third of the cases place the tumor beside a ventricle (its dark CSF)."""
    shape = (64, 64, 32)
    moved = sum(not np.array_equal(phantom.make_case(s, shape)[1],
                                   phantom.make_case(s, shape, distractors=False)[1])
                for s in range(12))
    assert 1 <= moved <= 8


@pytest.mark.slow
def test_experiment_phantoms_are_generated_once_and_never_replaced(tmp_path):
    """The experiments' phantoms: the confirmation one has its own generator seed, the
    split is train first, then val, then test, and a folder made otherwise is refused."""
    import json

    from experiments.runner import synthetic_cases
    from experiments.steps import RunError
    from experiments.table1 import PHANTOMS
    assert PHANTOMS["confirmation"]["seed"] != PHANTOMS["development"]["seed"]
    assert PHANTOMS["plain"] == {**PHANTOMS["confirmation"], "distractors": False}
    spec = {"split": {"train": 2, "val": 1, "test": 2}, "shape": "32,32,16"}
    brats, split_file = synthetic_cases(tmp_path, "plain", spec)
    split = json.loads(split_file.read_text())
    assert split == {"train": ["Synth_0000", "Synth_0001"], "val": ["Synth_0002"],
                     "test": ["Synth_0003", "Synth_0004"]}
    record = json.loads((brats / ".complete").read_text())
    assert record == {"phantom": "plain", "seed": 1, "distractors": False, "shape": "32,32,16",
                      "num_cases": 5}
    # the files are the plain phantom's: the generator's own output for that seed
    t1c, _ = phantom.make_case(np.random.SeedSequence([1, 3]).generate_state(1)[0],
                                 (32, 32, 16), distractors=False)
    stored = nib.load(str(brats / "Synth_0003" / "Synth_0003_t1ce.nii.gz")).get_fdata()
    assert np.array_equal(stored, t1c)
    before = sorted(p.name for p in brats.iterdir())
    with pytest.raises(RunError, match="generated otherwise.*another --out"):
        synthetic_cases(tmp_path, "confirmation", spec)
    (brats / ".complete").write_text("ok\n")  # a record that says nothing
    with pytest.raises(RunError, match="with no readable record"):
        synthetic_cases(tmp_path, "plain", spec)
    assert sorted(p.name for p in brats.iterdir()) == before  # nothing replaced
    with pytest.raises(ValueError, match="--phantom must be one of"):
        synthetic_cases(tmp_path / "other", "nope", spec)


FOUR = ("t1", "t1c", "t2", "flair")


def test_four_sequences_keep_the_t1c_and_each_shows_its_own_contrast():
    shape = (64, 64, 40)
    t1c, seg = phantom.make_case(9, shape)
    volumes, labels = phantom.make_sequences(9, shape, sequences=FOUR)
    assert list(volumes) == list(FOUR) and all(v.dtype == np.int16 for v in volumes.values())
    np.testing.assert_array_equal(volumes["t1c"], t1c)  # its own stream: the T1c is unchanged
    np.testing.assert_array_equal(labels, seg)
    head = t1c != 0
    for name, volume in volumes.items():  # one head: background is 0 in every sequence
        np.testing.assert_array_equal(volume != 0, head, err_msg=name)

    def mean(name, where):
        return volumes[name][where].astype(float).mean()
    edema, enhancing, necrosis = labels == 2, labels == 4, labels == 1
    brain = head & (labels == 0)
    # edema bright on FLAIR and T2, dark on T1c; the enhancing rim outshines it on T1c only
    assert mean("flair", edema) > 1.5 * mean("flair", brain)
    assert mean("t2", edema) > 1.3 * mean("t2", brain)
    assert mean("t1c", edema) < mean("t1c", brain)
    assert mean("t1c", enhancing) > 1.5 * mean("t1c", edema)
    assert all(mean(n, enhancing) < mean(n, edema) for n in ("flair", "t2"))
    assert mean("t2", necrosis) > mean("t2", brain) and mean("t1", necrosis) < mean("t1", brain)


@pytest.mark.parametrize("convention, layout, labels", [
    ("brats2018", ("_t1", "_t1ce", "_t2", "_flair", "_seg"), {0, 1, 2, 4}),
    ("brats2023", ("-t1n", "-t1c", "-t2w", "-t2f", "-seg"), {0, 1, 2, 3}),
    ("brats2024", ("-t1n", "-t1c", "-t2w", "-t2f", "-seg"), {0, 1, 2, 3, 4}),
])
def test_generate_writes_each_layout_and_label_convention(tmp_path, convention, layout, labels):
    shape = (64, 64, 40)
    synthetic.generate(tmp_path, 1, seed=2, shape=shape, sequences=FOUR, convention=convention)
    case = tmp_path / "Synth_0000"
    assert sorted(p.name for p in case.iterdir()) == sorted(f"Synth_0000{s}.nii.gz" for s in layout)
    seg = np.asarray(nib.load(str(case / f"Synth_0000{layout[-1]}.nii.gz")).dataobj)
    assert set(np.unique(seg).tolist()) == labels
    reference = phantom.make_sequences(np.random.SeedSequence([2, 0]).generate_state(1)[0],
                                         shape, sequences=("t1c",))[1]
    if convention == "brats2024":  # the cavity (4) lies outside the tumor core, in no region
        assert not np.isin(reference[seg == 4], (1, 4)).any()
        assert np.array_equal(np.isin(seg, (1, 3)), np.isin(reference, (1, 4)))
    else:
        assert np.array_equal(seg != 0, reference != 0)


def test_existing_cases_are_replaced_only_with_overwrite_and_only_our_own(tmp_path):
    from boundary_aware.errors import DataError
    shape = (32, 32, 16)
    synthetic.generate(tmp_path, 2, seed=1, shape=shape)
    t1c = tmp_path / "Synth_0001" / "Synth_0001_t1ce.nii.gz"
    before = t1c.read_bytes()
    (tmp_path / "Synth_0001" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="Synth_0000_t1ce.nii.gz: already exists; pass --overwrite"):
        synthetic.generate(tmp_path, 2, seed=2, shape=shape)
    assert t1c.read_bytes() == before  # checked before anything was written
    synthetic.generate(tmp_path, 2, seed=2, shape=shape, overwrite=True)
    assert t1c.read_bytes() != before
    assert (tmp_path / "Synth_0001" / "notes.txt").read_text() == "mine"  # not ours: kept
    # a file of another origin under a case's name: never replaced
    foreign = tmp_path / "Synth_0000" / "Synth_0000_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), str(foreign))
    kept = foreign.read_bytes()
    with pytest.raises(DataError, match="is not a synthetic case file of this package"):
        synthetic.generate(tmp_path, 2, seed=3, shape=shape, overwrite=True)
    assert foreign.read_bytes() == kept and t1c.exists()


def test_several_workers_write_the_same_cases_as_one(tmp_path):
    kwargs = dict(seed=2, shape=(48, 48, 24), sequences=("t1c", "flair"))
    one = synthetic.generate(tmp_path / "one", 3, workers=1, **kwargs)
    two = synthetic.generate(tmp_path / "two", 3, workers=2, **kwargs)
    assert one == two == [synthetic.case_id(i) for i in range(3)]
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.nii.gz"))
    assert files == sorted(p.relative_to(tmp_path / "two")
                           for p in (tmp_path / "two").rglob("*.nii.gz"))
    for name in files:
        a, b = nib.load(str(tmp_path / "one" / name)), nib.load(str(tmp_path / "two" / name))
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        assert a.header == b.header


def test_a_border_adds_zero_voxels_around_the_same_case(tmp_path):
    kwargs = dict(seed=5, shape=(40, 40, 12))
    synthetic.generate(tmp_path / "plain", 1, **kwargs)
    synthetic.generate(tmp_path / "wide", 1, border=4, **kwargs)
    for suffix in ("_t1ce.nii.gz", "_seg.nii.gz"):
        plain = np.asarray(nib.load(str(tmp_path / "plain" / "Synth_0000" /
                                        f"Synth_0000{suffix}")).dataobj)
        wide = np.asarray(nib.load(str(tmp_path / "wide" / "Synth_0000" /
                                       f"Synth_0000{suffix}")).dataobj)
        assert wide.shape == (48, 48, 12) and wide.dtype == plain.dtype
        np.testing.assert_array_equal(wide[4:44, 4:44], plain)
        inner = np.zeros(wide.shape, bool)
        inner[4:44, 4:44] = True
        assert not wide[~inner].any()
    with pytest.raises(ValueError, match="border must be"):
        synthetic.generate(tmp_path / "bad", 1, border=-1, **kwargs)
