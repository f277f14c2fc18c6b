"""The synthetic BraTS-like generator: layout, conventions, determinism, appearance."""

import nibabel as nib
import numpy as np
import pytest

from data_prep import synthetic

SHAPE = (64, 64, 32)


@pytest.fixture(scope="module")
def case():
    return synthetic.make_case(7, SHAPE)


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
    a, b = synthetic.make_case(3, SHAPE), synthetic.make_case(3, SHAPE)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = synthetic.make_case(4, SHAPE)
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
