"""Losses of Eq. 3-5 against values computed by hand on small arrays."""

import math

import keras
import numpy as np
import pytest

from boundary_aware import losses
from tests.conftest import to_numpy, value_and_grad

pytestmark = pytest.mark.backend
EPS = losses.DICE_EPS


def batch(*rows):
    """(B, H, W, 1) float32 from nested lists of (H, W) images."""
    return np.asarray(rows, dtype="float32")[..., None]


# ---- Dice (Eq. 4) -------------------------------------------------------

def test_dice_perfect_overlap():
    y = batch([[1, 0], [1, 1]])
    # 1 - 2*3 / (3 + 3 + eps)
    assert float(losses.dice_loss(y, y)) == pytest.approx(1 - 6 / (6 + EPS), abs=1e-7)


def test_dice_empty_target_and_prediction_is_one():
    z = batch([[0, 0], [0, 0]])
    assert float(losses.dice_loss(z, z)) == pytest.approx(1.0)


def test_dice_partial_overlap_uses_squared_denominator():
    y = batch([[1, 1], [0, 0]])
    p = batch([[0.5, 1.0], [0.25, 0.0]])
    num = 2 * (0.5 + 1.0)
    den = 2 + (0.25 + 1.0 + 0.0625) + EPS
    assert float(losses.dice_loss(y, p)) == pytest.approx(1 - num / den, abs=1e-6)


def test_dice_sums_over_the_whole_batch():
    y = batch([[1, 0]], [[0, 0]])
    p = batch([[1, 0]], [[1, 0]])
    # one batch-wide ratio, not a mean of per-image ratios: 1 - 2/(1+2)
    assert float(losses.dice_loss(y, p)) == pytest.approx(1 - 2 / (3 + EPS), abs=1e-6)


def test_generalized_dice_hand_computed():
    y = batch([[1, 0], [0, 0]])
    p = batch([[0.5, 0.5], [0.0, 0.0]])
    # foreground: ref 1, pred 1, inter 0.5, w = 1
    # background: ref 3, pred 3, inter 0.5 + 1 + 1 = 2.5, w = 1/9
    num = 2 * (1 * 0.5 + 2.5 / 9)
    den = 1 * 2 + (6 / 9) + EPS
    assert float(losses.generalized_dice_loss(y, p)) == pytest.approx(1 - num / den, abs=1e-6)


def test_generalized_dice_with_absent_foreground_is_finite():
    z = batch([[0, 0], [0, 0]])
    p = batch([[0.5, 0], [0, 0]])
    value = float(losses.generalized_dice_loss(z, p))
    # both weights fall back to the background's 1/16
    num = 2 * (0 + 3.5 / 16)
    den = (0 + 0.5) / 16 + (4 + 3.5) / 16 + EPS
    assert value == pytest.approx(1 - num / den, abs=1e-6)


# ---- edge BCE (Eq. 5) ---------------------------------------------------

def test_edge_bce_hand_computed():
    y = batch([[1, 0], [0, 0]])
    p = batch([[0.8, 0.1], [0.2, 0.0]])
    beta = 3 / 4  # non-edge pixels over all pixels
    eps = losses.PROB_EPS
    terms = [-beta * math.log(0.8), -(1 - beta) * math.log(0.9),
             -(1 - beta) * math.log(0.8), -(1 - beta) * math.log(1 - eps)]
    assert float(losses.edge_bce_loss(y, p)) == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_edge_bce_perfect_prediction_is_near_zero():
    y = batch([[1, 0], [0, 1]])
    assert float(losses.edge_bce_loss(y, y)) == pytest.approx(0.0, abs=1e-6)


def test_edge_bce_is_finite_for_confidently_wrong_predictions():
    y = batch([[1, 0], [0, 1]])
    value = float(losses.edge_bce_loss(y, 1.0 - y))
    # every pixel costs about -log(eps), weighted by beta = 1 - beta = 1/2;
    # 1 - eps is rounded to float32 before the log, as in the loss
    eps = np.float32(losses.PROB_EPS)
    at_zero = -math.log(eps)
    at_one = -math.log(np.float32(1) - np.float32(1 - eps))
    assert math.isfinite(value)
    assert value == pytest.approx(0.5 * (at_zero + at_one) / 2, rel=1e-5)


def _bce_numpy(y, z=None, p=None, reduction="mean", eps=losses.PROB_EPS):
    """Eq. 5 in numpy (float64): from logits z (exact) or from probabilities p (clipped)."""
    y = y.astype(np.float64)
    if z is not None:
        z = z.astype(np.float64)
        log_p, log_not_p = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    else:
        p = np.clip(p.astype(np.float64), np.float32(eps), np.float32(1 - eps))
        log_p, log_not_p = np.log(p), np.log(1 - p)
    beta = (1 - y).mean()
    terms = -(beta * y * log_p + (1 - beta) * (1 - y) * log_not_p)
    if reduction == "sum":
        return terms.reshape(len(y), -1).sum(axis=1).mean()
    return terms.mean() * (20.0 if reduction == "scaled_mean" else 1.0)


@pytest.mark.parametrize("reduction", losses.BCE_REDUCTIONS)
def test_edge_bce_reductions_against_numpy_from_logits_and_probabilities(reduction):
    rng = np.random.default_rng(4)
    y = (rng.random((3, 8, 8, 1)) > 0.8).astype("float32")
    z = rng.normal(0, 3, y.shape).astype("float32")
    z[0, 0, :4, 0] = [40.0, -40.0, 60.0, -60.0]  # saturated pixels
    y[0, 0, :4, 0] = [0.0, 1.0, 1.0, 0.0]  # two confidently wrong, two confidently right
    p = (1 / (1 + np.exp(-z.astype(np.float64)))).astype("float32")
    from_logits = float(losses.edge_bce_loss(y, z, reduction, from_logits=True))
    from_probs = float(losses.edge_bce_loss(y, p, reduction))
    assert from_logits == pytest.approx(_bce_numpy(y, z=z, reduction=reduction), rel=1e-5)
    assert from_probs == pytest.approx(_bce_numpy(y, p=p, reduction=reduction), rel=1e-5)
    # the clip caps a confidently wrong pixel at -log(eps) ~ 16; the logits do not
    assert from_logits > from_probs


def test_edge_bce_reductions_differ_by_their_scales():
    rng = np.random.default_rng(5)
    y = (rng.random((2, 6, 10, 1)) > 0.7).astype("float32")
    p = rng.random(y.shape).astype("float32")
    mean = float(losses.edge_bce_loss(y, p, "mean"))
    assert float(losses.edge_bce_loss(y, p, "sum")) == pytest.approx(60 * mean, rel=1e-5)
    assert float(losses.edge_bce_loss(y, p, "scaled_mean")) == pytest.approx(20 * mean, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        losses.edge_bce_loss(y, p, "median")
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.OutputLoss("edge", {"edge_bce": 0.1}, bce_reduction="median")
    assert losses.bce_scale("sum", (6, 10)) == 60 and losses.bce_scale("scaled_mean", ()) == 20


def test_edge_bce_from_logits_keeps_the_gradient_of_saturated_pixels():
    y = batch([[1, 0], [0, 0]])
    z = batch([[-30.0, 0.0], [0.0, 0.0]])  # the edge pixel is confidently missed
    _, grad_logits = value_and_grad(lambda t: losses.edge_bce_loss(y, t, from_logits=True), z)
    probs = (1 / (1 + np.exp(-z))).astype("float32")
    _, grad_probs = value_and_grad(lambda t: losses.edge_bce_loss(y, t), probs)
    # d/dz of -beta log sigmoid(z) / 4 at z = -30 is -beta / 4 (beta = 3/4)
    assert grad_logits[0, 0, 0, 0] == pytest.approx(-3 / 16, rel=1e-4)
    assert grad_probs[0, 0, 0, 0] == 0.0  # clipped: no gradient


# ---- edge target --------------------------------------------------------

def test_edge_target_square_band_is_two_pixels_wide():
    m = np.zeros((1, 8, 8, 1), "float32")
    m[0, 2:6, 2:6, 0] = 1
    e = to_numpy(losses.edge_target(m))[0, ..., 0]
    expected = np.zeros((8, 8))
    expected[1:7, 1:7] = 1  # dilation
    expected[3:5, 3:5] = 0  # minus erosion
    np.testing.assert_array_equal(e, expected)


def test_edge_target_width_one_is_the_inner_contour():
    m = np.zeros((1, 6, 6, 1), "float32")
    m[0, 1:5, 1:5, 0] = 1
    e = to_numpy(losses.edge_target(m, width=1))[0, ..., 0]
    expected = m[0, ..., 0].copy()
    expected[2:4, 2:4] = 0
    np.testing.assert_array_equal(e, expected)


def test_edge_target_image_border_is_not_an_edge_and_batch_works():
    m = np.zeros((2, 6, 6, 1), "float32")
    m[0] = 1  # full mask: no contour at all
    m[1, :, :3] = 1  # left half: contour only at columns 2 and 3
    e = to_numpy(losses.edge_target(m))
    assert e[0].sum() == 0
    np.testing.assert_array_equal(np.nonzero(e[1, 0, :, 0])[0], [2, 3])
    assert set(np.unique(e)) <= {0.0, 1.0}


def test_edge_target_rejects_bad_input():
    with pytest.raises(ValueError, match="width"):
        losses.edge_target(np.zeros((1, 4, 4, 1)), width=0)
    with pytest.raises(ValueError, match="B, H, W, 1"):
        losses.edge_target(np.zeros((4, 4)))


# ---- Eq. 3 and the Keras wrappers ----------------------------------------

def test_total_loss_is_the_weighted_sum_of_eq3():
    rng = np.random.default_rng(0)
    y = (rng.random((2, 16, 16, 1)) > 0.6).astype("float32")
    seg = rng.random((2, 16, 16, 1)).astype("float32")
    edge = rng.random((2, 16, 16, 1)).astype("float32")
    e = losses.edge_target(y)
    expected = (1.0 * float(losses.dice_loss(y, seg)) + 0.5 * float(losses.dice_loss(e, edge))
                + 0.1 * float(losses.edge_bce_loss(e, edge)))
    terms = losses.loss_terms({"mask": y}, {"seg": seg, "edge": edge})
    assert sum(float(v) for v in terms.values()) == pytest.approx(expected, rel=1e-6)
    wrapped = (losses.OutputLoss("seg", {"seg_dice": 1.0})(y, seg)
               + losses.OutputLoss("edge", {"edge_dice": 0.5, "edge_bce": 0.1})(e, edge))
    assert float(wrapped) == pytest.approx(expected, rel=1e-6)


def test_the_terms_are_named_and_read_the_logits_where_the_model_has_them():
    rng = np.random.default_rng(3)
    y = (rng.random((2, 16, 16, 1)) > 0.6).astype("float32")
    seg = rng.random((2, 16, 16, 1)).astype("float32")
    z = rng.normal(0, 4, (2, 16, 16, 1)).astype("float32")
    z[0, 0, 0, 0] = -40.0  # saturated: only the logits keep its BCE exact
    edge = (1 / (1 + np.exp(-z.astype(np.float64)))).astype("float32")
    e = to_numpy(losses.edge_target(y))
    terms = losses.loss_terms({"mask": y, "edge": e}, {"seg": seg, "edge": edge, "edge_logits": z})
    assert list(terms) == ["seg_dice", "edge_dice", "edge_bce"] == list(losses.TERM_NAMES)
    assert float(terms["edge_bce"]) == pytest.approx(
        0.1 * float(losses.edge_bce_loss(e, z, from_logits=True)), rel=1e-6)
    from_probabilities = losses.loss_terms({"mask": y, "edge": e}, {"seg": seg, "edge": edge})
    assert float(from_probabilities["edge_bce"]) != pytest.approx(float(terms["edge_bce"]))
    # the compiled loss of the edge output reads its logits: the same three terms, summed
    compiled, targets = losses.compile_losses(["seg", "edge", "edge_logits"])
    assert set(compiled) == {"seg", "edge_logits"}
    assert targets == {"seg": "mask", "edge_logits": "edge"}
    value = float(compiled["edge_logits"](e, z))
    assert value == pytest.approx(float(terms["edge_dice"]) + float(terms["edge_bce"]), rel=1e-5)
    # unit weights: the unweighted terms
    unit = losses.loss_terms({"mask": y}, {"seg": seg}, {"seg_dice": 1.0})
    assert list(unit) == ["seg_dice"]
    assert float(unit["seg_dice"]) == pytest.approx(float(losses.dice_loss(y, seg)))


def test_compile_losses_drops_an_output_without_weighted_terms():
    loss, targets = losses.compile_losses(["seg", "edge"], {"seg_dice": 1.0})
    assert set(loss) == {"seg"} and targets == {"seg": "mask"}
    loss, targets = losses.compile_losses(["seg", "edge"], {"seg_dice": 1.0, "edge_bce": 0.1})
    assert targets == {"seg": "mask", "edge": "edge"}  # no logits output: the probabilities
    assert [t.name for t in loss["edge"].terms] == ["edge_bce"] and not loss["edge"].from_logits


def test_bad_weights_are_named():
    with pytest.raises(ValueError, match=r"unknown loss term\(s\) \['edge_bc'\]"):
        losses.check_weights({"edge_bc": 0.1})
    with pytest.raises(ValueError, match="weight of edge_dice must be a number >= 0"):
        losses.check_weights({"edge_dice": -1})
    with pytest.raises(ValueError, match="has weight 0.5 but the model has no 'edge' output"):
        losses.compile_losses(["seg"], losses.PAPER_WEIGHTS)


def test_loss_wrappers_serialize():
    for loss in (losses.OutputLoss("seg", {"seg_dice": 1.0}, generalized_dice=True),
                 losses.OutputLoss("edge", {"edge_dice": 0.3, "edge_bce": 0.2}, True,
                                   bce_reduction="sum")):
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert restored.get_config() == loss.get_config()


def test_losses_are_float32_with_finite_gradients_on_float16_inputs():
    """A mixed_float16 batch of 8 x 240 x 240: sums would overflow float16."""
    rng = np.random.default_rng(1)
    y = (rng.random((8, 240, 240, 1)) > 0.5).astype("float16")
    p = rng.random((8, 240, 240, 1)).astype("float16")
    p[0, :4, :4] = 0.0
    p[0, 4:8, :4] = 1.0  # exact 0 and 1 predictions
    e = to_numpy(losses.edge_target(y)).astype("float16")
    assert keras.backend.standardize_dtype(losses.dice_loss(y, p).dtype) == "float32"

    def total(pred):
        return (losses.dice_loss(y, pred) + 0.5 * losses.dice_loss(e, pred)
                + 0.1 * losses.edge_bce_loss(e, pred))
    value, grad = value_and_grad(total, p)
    assert np.isfinite(value) and 0 < value < 3
    assert np.all(np.isfinite(grad.astype("float32")))
    assert np.any(grad != 0)
