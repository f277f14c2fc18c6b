"""Edge-aware losses of Eq. 3-5, and the boundary target of Sec. 2.3.

All arithmetic is float32 whatever the inputs' dtype: sums over a batch of
8 x 240 x 240 pixels overflow float16.

Reference: Hatamizadeh et al., "End-to-End Boundary Aware Networks for Medical
Image Segmentation", 2019, Sec. 2.3, Eq. 3-5; Milletari et al. 2016 (Dice,
ref. [7]); Xie & Tu, "Holistically-Nested Edge Detection", 2015 (class-balanced
cross entropy); Sudre et al. 2017 (generalized Dice).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

Tensor = Any  # a backend tensor or a numpy array
Weights = Sequence[float]  # (lambda1, lambda2, lambda3) of Eq. 3

DICE_EPS = 1e-5
PROB_EPS = 1e-7
PAPER_WEIGHTS = (1.0, 0.5, 0.1)  # (lambda1, lambda2, lambda3) of Sec. 3.2
BCE_REDUCTIONS = ("mean", "sum", "scaled_mean")
GATED_SCNN_SCALE = 20.0
DEFAULT_BCE_REDUCTION = "mean"


def _f32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


def dice_loss(y_true: Tensor, y_pred: Tensor, eps: float = DICE_EPS) -> Tensor:
    """Soft Dice loss of Eq. 4, summed over the whole batch and all pixels.

    `1 - 2 sum(y p) / (sum(y^2) + sum(p^2) + eps)`. As Eq. 4 is written, a
    batch whose target and prediction are both all-zero gives 1 (and a zero
    gradient).

    Reference: Hatamizadeh et al. 2019, Eq. 4; Milletari et al. 2016.
    """
    y, p = _f32(y_true), _f32(y_pred)
    numerator = 2.0 * ops.sum(y * p)
    denominator = ops.sum(ops.square(y)) + ops.sum(ops.square(p)) + eps
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
    ref = ops.stack([ops.sum(y), ops.sum(1.0 - y)])
    pred = ops.stack([ops.sum(p), ops.sum(1.0 - p)])
    inter = ops.stack([ops.sum(y * p), ops.sum((1.0 - y) * (1.0 - p))])
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
            "Losses"; the paper leaves it open): "mean" over all pixels of the batch,
            "sum" over the pixels of each image (Eq. 5 as written) then the mean
            over the batch, or "scaled_mean", 20 x the mean (Gated-SCNN's scale).

    Reference: Hatamizadeh et al. 2019, Eq. 5; Xie & Tu 2015; Takikawa et al.
    2019 (Gated-SCNN) for the scaled mean.
    """
    if reduction not in BCE_REDUCTIONS:
        raise ValueError(f"edge BCE reduction must be one of {BCE_REDUCTIONS}, got {reduction!r}")
    y = _f32(y_true)
    if from_logits:
        z = _f32(y_pred)
        log_p, log_not_p = -ops.softplus(-z), -ops.softplus(z)
    else:
        p = ops.clip(_f32(y_pred), eps, 1.0 - eps)
        log_p, log_not_p = ops.log(p), ops.log(1.0 - p)
    beta = ops.mean(1.0 - y)
    loss = -(beta * y * log_p + (1.0 - beta) * (1.0 - y) * log_not_p)
    if reduction == "sum":
        return ops.mean(ops.sum(ops.reshape(loss, (ops.shape(loss)[0], -1)), axis=1))
    scale = GATED_SCNN_SCALE if reduction == "scaled_mean" else 1.0
    return scale * ops.mean(loss)


def sigmoid_logits(y_pred):
    """The logits behind a sigmoid output, where the backend keeps them, else None.

    Keras's TensorFlow backend records them on the output of a sigmoid
    activation (as it does for its own cross entropies); JAX and PyTorch do
    not, and the loss then works from the clipped probabilities.
    """
    return getattr(y_pred, "_keras_logits", None)


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


def loss_terms(y_true: dict, y_pred: dict, weights: Weights = PAPER_WEIGHTS, edge_width: int = 2,
               bce_reduction=DEFAULT_BCE_REDUCTION):
    """The three weighted terms of Eq. 3, `(l1 Dice(seg), l2 Dice(edge), l3 EdgeBCE(edge))`.

    `y_true` holds "seg" (the mask) and optionally "edge" (else it is computed
    with `edge_target`); `y_pred` holds "seg" and "edge" probabilities (and,
    optionally, "edge_logits", which the BCE then uses).
    """
    l1, l2, l3 = weights
    edge_true = y_true.get("edge")
    if edge_true is None:
        edge_true = edge_target(y_true["seg"], edge_width)
    return (l1 * dice_loss(y_true["seg"], y_pred["seg"]),
            *edge_terms(edge_true, y_pred["edge"], l2, l3, bce_reduction,
                        y_pred.get("edge_logits")))


def edge_terms(edge_true, edge_pred, dice_weight, bce_weight,
               bce_reduction=DEFAULT_BCE_REDUCTION, logits=None):
    """The shape-stream terms of Eq. 3, `(l2 Dice(edge), l3 EdgeBCE(edge))`.

    The BCE uses `logits` if given, else those the backend kept on the
    sigmoid output (`sigmoid_logits`), else the clipped probabilities.
    """
    if logits is None:
        logits = sigmoid_logits(edge_pred)
    bce = (edge_bce_loss(edge_true, logits, bce_reduction, from_logits=True) if logits is not None
           else edge_bce_loss(edge_true, edge_pred, bce_reduction))
    return dice_weight * dice_loss(edge_true, edge_pred), bce_weight * bce


def boundary_aware_loss(y_true: dict, y_pred: dict, weights: Weights = PAPER_WEIGHTS,
                        edge_width: int = 2,
                        bce_reduction=DEFAULT_BCE_REDUCTION):
    """Total loss of Eq. 3 on dicts of outputs (see `loss_terms`).

    Returns `l1 Dice(seg) + l2 Dice(edge) + l3 EdgeBCE(edge)`.

    Reference: Hatamizadeh et al. 2019, Eq. 3.
    """
    seg, edge_dice, edge_bce = loss_terms(y_true, y_pred, weights, edge_width, bce_reduction)
    return seg + edge_dice + edge_bce


@keras.saving.register_keras_serializable(package="boundary_aware")
class DiceLoss(keras.losses.Loss):
    """Keras wrapper of `dice_loss` (or `generalized_dice_loss`) for `compile`.

    Args:
        generalized: use the generalized Dice of Sudre et al. instead of Eq. 4.
        eps: the epsilon of the denominator.
    """

    def __init__(self, generalized=False, eps=DICE_EPS, name="dice", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.generalized = bool(generalized)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        fn = generalized_dice_loss if self.generalized else dice_loss
        return fn(y_true, y_pred, self.eps)

    def get_config(self):
        return {**super().get_config(), "generalized": self.generalized, "eps": self.eps}


@keras.saving.register_keras_serializable(package="boundary_aware")
class EdgeAwareLoss(keras.losses.Loss):
    """The shape-stream terms of Eq. 3: `l2 Dice(edge) + l3 EdgeBCE(edge)`.

    `y_true` is the boundary target (see `edge_target`).

    Args:
        dice_weight: lambda2 (0.5 in the paper).
        bce_weight: lambda3 (0.1 in the paper).
        bce_reduction: the reduction of Eq. 5 (see `edge_bce_loss`).
    """

    def __init__(self, dice_weight=PAPER_WEIGHTS[1], bce_weight=PAPER_WEIGHTS[2],
                 bce_reduction=DEFAULT_BCE_REDUCTION, name="edge_aware", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        if bce_reduction not in BCE_REDUCTIONS:
            raise ValueError(f"bce_reduction must be one of {BCE_REDUCTIONS}, got {bce_reduction!r}")
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)
        self.bce_reduction = bce_reduction

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras converts y_pred before `call`; keep the sigmoid's logits for the BCE
        self._logits = sigmoid_logits(y_pred)
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._logits = None

    def call(self, y_true, y_pred):
        edge_dice, edge_bce = edge_terms(y_true, y_pred, self.dice_weight, self.bce_weight,
                                         self.bce_reduction, getattr(self, "_logits", None))
        return edge_dice + edge_bce

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight,
                "bce_weight": self.bce_weight, "bce_reduction": self.bce_reduction}


def trains_edge(outputs: Sequence[str], weights: Weights) -> bool:
    """Whether Eq. 3 supervises the edge output: the model has one ("edge" in
    its output names `outputs`) and l2 or l3 of `weights` is non-zero. Where
    it does not, training needs no edge target and the edge head stays at its
    initial weights."""
    return "edge" in outputs and any(float(w) != 0.0 for w in tuple(weights)[1:])


def compile_losses(outputs: Sequence[str], weights: Weights = PAPER_WEIGHTS, generalized: bool = False,
                   bce_reduction=DEFAULT_BCE_REDUCTION):
    """Loss dict for `model.compile` over a model's output names (Eq. 3).

    The "seg" output gets `l1 * Dice`; an "edge" output gets `EdgeAwareLoss`
    with (l2, l3) and the BCE reduction, or no loss at all when both are 0
    (the shape stream is then unsupervised, the paper's "no edge loss" row).
    """
    l1, l2, l3 = weights
    losses = {"seg": DiceLoss(generalized=generalized)}
    loss_weights = {"seg": float(l1)}
    if trains_edge(outputs, weights):
        losses["edge"] = EdgeAwareLoss(l2, l3, bce_reduction)
        loss_weights["edge"] = 1.0
    return losses, loss_weights
