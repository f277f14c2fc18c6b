"""The loss-balance diagnostic on a tiny model: shares, reductions, shared weights."""

import numpy as np
import pytest

from boundary_aware import losses
from boundary_aware.loss_balance import loss_balance, measure, render, shares
from boundary_aware.models import build_model
from data_prep import synthetic
from data_prep.prepare_brats import prepare
from experiments.table1 import get_config

pytestmark = pytest.mark.backend
TINY = dict(base_filters=4, shape_filters=8, dspp_rates=(1, 2, 3))


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("balance")
    synthetic.generate(root / "brats", 4, seed=5, shape=(48, 48, 24))
    prepare(root / "brats", root / "prepared", slices_per_case=4, image_size=32,
            log=lambda *a: None)
    c = get_config("ours,demo")
    c.data.prepared_dir, c.data.image_size, c.train.batch_size = str(root / "prepared"), 32, 4
    c.model.kwargs.update(TINY)
    return c


@pytest.mark.slow
def test_shares_of_every_reduction_at_initialization(config):
    report = loss_balance(config, batches=2)
    m = report["models"]["initialization"]
    assert m["shared_tensors"] > 0 and m["shared_parameters"] > 0
    by = m["reductions"]
    for r in losses.BCE_REDUCTIONS:
        assert sum(by[r]["shares"]) == pytest.approx(1.0)
        assert all(n > 0 for n in by[r]["norms"])
    # the reductions differ by constant factors: 20 x the mean, 32 x 32 x the mean
    assert by["scaled_mean"]["norms"][2] == pytest.approx(20 * by["mean"]["norms"][2])
    assert by["sum"]["norms"][2] == pytest.approx(1024 * by["mean"]["norms"][2])
    assert by["sum"]["norms"][:2] == pytest.approx(by["mean"]["norms"][:2])
    assert by["sum"]["shares"][2] > by["scaled_mean"]["shares"][2] > by["mean"]["shares"][2]
    text = render(report)
    assert "l3 BCE(edge)" in text and "scaled_mean" in text and "%" in text


@pytest.mark.slow
def test_norms_are_the_weighted_gradient_norms_on_the_shared_weights(config):
    """Checked against the gradient of the whole loss: with one term weighted 1 and the
    others 0, the norm over the shared weights is that term's norm."""
    model = build_model("ours", input_shape=(32, 32, 1), **TINY)
    rng = np.random.default_rng(0)
    images = rng.random((4, 32, 32, 1)).astype("float32")
    masks = np.zeros((4, 32, 32, 1), np.uint8)
    masks[:, 8:20, 10:24] = 1
    measured = measure(model, images, masks, batch_size=4)
    weighted = shares(measured, losses.PAPER_WEIGHTS, "mean", (32, 32))
    assert weighted["norms"] == pytest.approx(measured["norms"] * np.array([1.0, 0.5, 0.1]))
    assert weighted["values"][0] == pytest.approx(measured["values"][0])
    # the decoder serves only seg, the edge head only edge: neither is shared
    assert not any("dec" in p or "edge_projection" in p for p in measured["shared"])
    assert any("enc1" in p for p in measured["shared"])
    assert any("shape_in" in p for p in measured["shared"])


def test_several_regions_are_refused_with_a_pointer():
    with pytest.raises(ValueError, match="measures the terms of one region's map"):
        loss_balance(get_config("ours_brats,demo"))
