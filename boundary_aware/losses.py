"""Edge-aware losses of Eq. 3-5, and the boundary target of Sec. 2.3.

All arithmetic is float32 whatever the inputs' dtype: sums over a batch of
8 x 240 x 240 pixels overflow float16.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.3, Eq. 3-5; Milletari et al. 2016 (Dice,
ref. [7]); Xie & Tu, "Holistically-Nested Edge Detection", 2015 (class-balanced
cross entropy); Sudre et al. 2017 (generalized Dice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import keras
from keras import ops

from boundary_aware import runtime
from boundary_aware.layers.normalization import replica_means
from boundary_aware.models.registry import logits_name

Tensor = Any  # a backend tensor or a numpy array
Weights = Mapping[str, float]  # {term name: weight} of Eq. 3

DICE_EPS = 1e-5
PROB_EPS = 1e-7
BCE_REDUCTIONS = ("mean", "sum", "scaled_mean")
DEFAULT_BCE_REDUCTION = "mean"
GATED_SCNN_SCALE = 20.0


def bce_scale(reduction: str, image_shape: Sequence[int]) -> float:
    """What a reduction of Eq. 5 multiplies the pixel-mean BCE by: 1 ("mean"), the pixels
    of one image ("sum": summed per image, then averaged over the batch) or Gated-SCNN's
    20 ("scaled_mean"). `edge_bce_loss` computes each; `loss_balance` compares them."""
    scales = {"mean": 1.0, "sum": float(math.prod(image_shape)),
              "scaled_mean": GATED_SCNN_SCALE}
    if reduction not in scales:
        raise ValueError(f"edge BCE reduction must be one of {BCE_REDUCTIONS}, got {reduction!r}")
    return scales[reduction]


def _f32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


# Every term is a statistic of the whole batch. Under a TensorFlow strategy each replica
# holds a part of the batch, so its sums and means are taken over every replica's part
# (`runtime.sum_over_replicas`) and each replica returns its share of the loss (the
# optimizer sums the replicas' gradients): the same loss and gradients as on one device.

def _batch_sum(x):
    """`ops.sum(x)` over the whole batch (every replica's part)."""
    return runtime.sum_over_replicas(ops.sum(x))[0]


def _batch_mean(x):
    """`ops.mean(x)` over the whole batch (every replica's part)."""
    return ops.mean(x) if runtime.replicas() == 1 else replica_means([x])[0]


def replica_share(loss):
    """What one replica's step minimizes of a whole-batch `loss`: loss / replicas."""
    replicas = runtime.replicas()
    return loss if replicas == 1 else loss / float(replicas)


def dice_loss(y_true: Tensor, y_pred: Tensor, eps: float = DICE_EPS) -> Tensor:
    """Soft Dice loss of Eq. 4, summed over the whole batch and all pixels.

    `1 - 2 sum(y p) / (sum(y^2) + sum(p^2) + eps)`. As Eq. 4 is written, a
    batch whose target and prediction are both all-zero gives 1 (and a zero
    gradient).

    Reference: Hatamizadeh et al. 2019, Eq. 4; Milletari et al. 2016.
    """
    y, p = _f32(y_true), _f32(y_pred)
    numerator = 2.0 * _batch_sum(y * p)
    denominator = _batch_sum(ops.square(y)) + _batch_sum(ops.square(p)) + eps
    return 1.0 - numerator / denominator


def generalized_dice_loss(y_true: Tensor, y_pred: Tensor, eps: float = DICE_EPS) -> Tensor:
    """Generalized Dice loss (Sudre et al. 2017) over foreground and background.

    Class weights `w_c = 1 / (sum_n r_cn)^2` over the whole batch; an absent
    class takes the largest weight present (as MONAI does) instead of 1/0.

    Reference: Sudre et al., "Generalised Dice overlap as a deep learning loss
    function for highly unbalanced segmentations", DLMIA 2017; the paper's
    Sec. 2.3 names it.
    """
    y, p = _f32(y_true), _f32(y_pred)
    ref = ops.stack([_batch_sum(y), _batch_sum(1.0 - y)])
    pred = ops.stack([_batch_sum(p), _batch_sum(1.0 - p)])
    inter = ops.stack([_batch_sum(y * p), _batch_sum((1.0 - y) * (1.0 - p))])
    present = ref > 0
    w = ops.where(present, 1.0 / ops.square(ops.maximum(ref, 1.0)), 0.0)
    w = ops.where(present, w, ops.max(w))
    return 1.0 - 2.0 * ops.sum(w * inter) / (ops.sum(w * (ref + pred)) + eps)


def edge_bce_loss(y_true: Tensor, y_pred: Tensor, reduction: str = "mean",
                  from_logits: bool = False, eps: float = PROB_EPS) -> Tensor:
    """Class-balanced binary cross entropy of Eq. 5.

    Edge pixels (y = 1) are weighted by beta = (non-edge pixels) / (all
    pixels), non-edge pixels by 1 - beta; beta is counted over the whole
    batch. (The paper's text swaps the names of y+ and y-; the formula,
    followed here, is HED's.)

    Args:
        y_true: the boundary target, (B, H, W, 1) in {0, 1}.
        y_pred: boundary probabilities, or logits with `from_logits=True`.
            From logits the log-probabilities are exact (`-softplus`), so a
            saturated pixel keeps its gradient; probabilities are clipped to
            [eps, 1 - eps] (finite, but with no gradient beyond the clip).
        reduction: how Eq. 5's pixel terms become one number (docs/design.md,
            "Losses"): "sum" over the pixels of each image (Eq. 5 as printed)
            then the mean over the batch; "mean" over all pixels of the batch
            (the default, `DEFAULT_BCE_REDUCTION`); or "scaled_mean", 20 x the
            mean, Gated-SCNN's edge loss (its `bce2d`, called with a factor of
            20). "mean" and "scaled_mean" deviate from Eq. 5 as printed.

    Reference: Hatamizadeh et al. 2019, Eq. 5; Xie & Tu 2015; Takikawa et al.
    2019 (Gated-SCNN) for the scaled mean.
    """
    bce_scale(reduction, ())  # a ValueError for an unknown reduction, before any work
    y = _f32(y_true)
    if from_logits:
        z = _f32(y_pred)
        log_p, log_not_p = -ops.softplus(-z), -ops.softplus(z)
    else:
        p = ops.clip(_f32(y_pred), eps, 1.0 - eps)
        log_p, log_not_p = ops.log(p), ops.log(1.0 - p)
    beta = _batch_mean(1.0 - y)
    loss = -(beta * y * log_p + (1.0 - beta) * (1.0 - y) * log_not_p)
    if reduction == "sum":  # Eq. 5 as written: the sum over each image's pixels
        return _batch_mean(ops.sum(ops.reshape(loss, (ops.shape(loss)[0], -1)), axis=1))
    return bce_scale(reduction, ()) * _batch_mean(loss)


def edge_target(mask: Tensor, width: int = 2) -> Tensor:
    """Boundary band of a binary mask batch (B, H, W, 1): Sec. 2.3's s_true.

    The "spatial gradient of y_true" as a morphological gradient: a pixel is
    an edge where the mask changes within its neighbourhood. With width=2 (the
    default) that is the 3x3 dilation minus the 3x3 erosion: one pixel on each
    side of the contour. In general the band reaches `width // 2` pixels
    outside and `width - width // 2` pixels inside. The image border is not an
    edge. Returns float32 in {0, 1}.

    Reference: Hatamizadeh et al. 2019, Sec. 2.3; docs/design.md ("Losses").
    """
    width = int(width)
    if width < 1:
        raise ValueError(f"edge width must be >= 1, got {width}")
    m = ops.cast(_f32(mask) > 0.5, "float32")
    if len(m.shape) != 4:
        raise ValueError(f"edge_target expects a (B, H, W, 1) batch, got shape {m.shape}")
    outer, inner = width // 2, width - width // 2
    dilated = m if outer == 0 else ops.max_pool(m, 2 * outer + 1, 1, padding="same")
    eroded = -ops.max_pool(-m, 2 * inner + 1, 1, padding="same")
    return dilated - eroded


@dataclass(frozen=True)
class Term:
    """One weighted term of Eq. 3.

    `output` is the model output it supervises and `target` what it compares
    that output with: "mask" (the region mask) or "edge" (its boundary band,
    `edge_target`). `value(target, probability, logits, options)` gives the
    unweighted term; `logits` is None where the model has no logits output
    for `output` (the term then works from the probabilities). `reduced`:
    Eq. 5's reduction applies, so the term scales with `bce_scale`.
    """

    name: str
    output: str
    target: str
    symbol: str
    value: Callable[..., Tensor]
    reduced: bool = False


@dataclass(frozen=True)
class LossOptions:
    """The settings of the terms beyond their weights (`config.loss`)."""

    generalized_dice: bool = False
    bce_reduction: str = DEFAULT_BCE_REDUCTION


def _seg_dice(target, probability, logits, options):
    dice = generalized_dice_loss if options.generalized_dice else dice_loss
    return dice(target, probability)


def _edge_dice(target, probability, logits, options):
    return dice_loss(target, probability)


def _edge_bce(target, probability, logits, options):
    if logits is None:
        return edge_bce_loss(target, probability, options.bce_reduction)
    return edge_bce_loss(target, logits, options.bce_reduction, from_logits=True)


# Eq. 3, in its order: one entry per term; a new term (a boundary loss, a region
# head) is one more entry, with its weight under `config.loss.weights`.
TERMS = (
    Term("seg_dice", "seg", "mask", "l1 Dice(seg)", _seg_dice),
    Term("edge_dice", "edge", "edge", "l2 Dice(edge)", _edge_dice),
    Term("edge_bce", "edge", "edge", "l3 BCE(edge)", _edge_bce, reduced=True),
)
TERM_NAMES = tuple(t.name for t in TERMS)
PAPER_WEIGHTS = {"seg_dice": 1.0, "edge_dice": 0.5, "edge_bce": 0.1}  # l1, l2, l3 of Sec. 3.2
# Several tumor regions: the boundary-aware network's edge output supervises each region's
# boundary ("per_region", one edge map per region) or the boundary of their union ("union",
# one map, as the paper's one boundary map); one region: the same. "union" was chosen on the
# development phantom: no difference shown, one map instead of R (docs/design.md).
EDGE_TARGETS = ("per_region", "union")
DEFAULT_EDGE_TARGET = "union"


def check_weights(weights: Weights, output_names: Sequence[str] | None = None) -> dict:
    """`weights` as {term: float} in `TERMS` order (missing terms weigh 0); ValueError for
    an unknown term, a negative weight, or a weighted term whose output the model lacks."""
    weights = dict(weights)
    unknown = sorted(set(weights) - set(TERM_NAMES))
    if unknown:
        raise ValueError(f"unknown loss term(s) {unknown}; the terms of Eq. 3 are "
                         f"{list(TERM_NAMES)}")
    checked = {}
    for term in TERMS:
        value = weights.get(term.name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < 0:
            raise ValueError(f"the weight of {term.name} must be a number >= 0, got {value!r}")
        checked[term.name] = float(value)
        if value and output_names is not None and term.output not in output_names:
            raise ValueError(f"{term.name} has weight {value} but the model has no "
                             f"{term.output!r} output (its outputs: {sorted(output_names)})")
    return checked


def loss_terms(y_true: dict, y_pred: dict, weights: Weights = PAPER_WEIGHTS, edge_width: int = 2,
               options: LossOptions = LossOptions()) -> dict:
    """The weighted terms of Eq. 3 as {term name: value}, for the outputs `y_pred` has.

    `y_true` holds "mask" and optionally "edge" (else it is computed with
    `edge_target`); `y_pred` holds the model's probability outputs and,
    where it has them, their logits (`registry.logits_name`), which the BCE
    then reads. Terms of weight 0 are included (as 0 x their value).
    """
    weights = check_weights(weights)
    targets = dict(y_true)
    if "edge" not in targets:
        targets["edge"] = edge_target(y_true["mask"], edge_width)
    return {term.name: weights[term.name] * term.value(
                targets[term.target], y_pred[term.output], y_pred.get(logits_name(term.output)),
                options)
            for term in TERMS if term.output in y_pred}


def _sum(values):
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


@keras.saving.register_keras_serializable(package="boundary_aware")
class OutputLoss(keras.losses.Loss):
    """The weighted Eq. 3 terms of one model output, summed: what `compile` attaches to it.

    An output of several maps (one per tumor region) gets every term on each map, and
    the sum over the maps: the losses sum over regions with Eq. 3's weights.

    With `from_logits` the loss is attached to the output's logits
    (`registry.logits_name`), and the probability terms read their sigmoid;
    otherwise it is attached to the probability output.

    Args:
        output: the model output the terms supervise ("seg", "edge").
        weights: {term name: weight} of that output's terms (`TERMS`).
        from_logits: whether `y_pred` is the output's logits.
        generalized_dice, bce_reduction: `LossOptions`.
    """

    def __init__(self, output, weights, from_logits=False, generalized_dice=False,
                 bce_reduction=DEFAULT_BCE_REDUCTION, name=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name or f"{output}_loss", **kwargs)
        self.output = output
        self.weights = check_weights(weights)
        self.terms = [term for term in TERMS if term.output == output and self.weights[term.name]]
        if not self.terms:
            raise ValueError(f"no weighted term of Eq. 3 supervises {output!r}")
        self.from_logits = bool(from_logits)
        self.options = LossOptions(bool(generalized_dice), bce_reduction)
        bce_scale(bce_reduction, ())  # a ValueError for an unknown reduction, at construction

    def call(self, y_true, y_pred):
        logits = _f32(y_pred) if self.from_logits else None
        probability = ops.sigmoid(logits) if self.from_logits else y_pred
        channels = y_true.shape[-1]
        if not channels or channels == 1:
            return replica_share(self._terms(y_true, probability, logits))
        # several tumor regions: every term on each region's map, summed over regions
        return replica_share(_sum([self._terms(y_true[..., r:r + 1], probability[..., r:r + 1],
                                 None if logits is None else logits[..., r:r + 1])
                     for r in range(channels)]))

    def _terms(self, y_true, probability, logits):
        return _sum([self.weights[term.name] * term.value(y_true, probability, logits,
                                                          self.options)
                     for term in self.terms])

    def get_config(self):
        return {**super().get_config(), "output": self.output,
                "weights": {t.name: self.weights[t.name] for t in self.terms},
                "from_logits": self.from_logits,
                "generalized_dice": self.options.generalized_dice,
                "bce_reduction": self.options.bce_reduction}


def compile_losses(output_names: Sequence[str], weights: Weights = PAPER_WEIGHTS,
                   options: LossOptions = LossOptions()) -> tuple[dict, dict]:
    """`(losses, targets)` for a model with `output_names` under Eq. 3's `weights`.

    `losses` is the loss dict for `model.compile`: one `OutputLoss` per
    supervised output, keyed by the output it reads (its logits where the
    model has them). `targets` maps the same keys to what the data must
    provide there ("mask", or "edge" for its edge band): the keys of the `y`
    dict of every batch. An output without a weighted term gets no loss (the paper's
    "no edge loss" row leaves the shape stream unsupervised).
    """
    weights = check_weights(weights, output_names)
    losses, targets = {}, {}
    for output in dict.fromkeys(t.output for t in TERMS if weights[t.name] > 0):
        terms = [t for t in TERMS if t.output == output]
        kinds = {t.target for t in terms}
        if len(kinds) > 1:
            raise ValueError(f"the terms of {output!r} compare it with different targets "
                             f"{sorted(kinds)}; one output takes one target")
        from_logits = logits_name(output) in output_names
        key = logits_name(output) if from_logits else output
        losses[key] = OutputLoss(output, {t.name: weights[t.name] for t in terms}, from_logits,
                                 options.generalized_dice, options.bce_reduction)
        targets[key] = kinds.pop()
    return losses, targets
