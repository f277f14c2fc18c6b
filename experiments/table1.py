"""Experiment config for the paper's Table 1 (ml_collections).

    --config=experiments/table1.py:VARIANT[,PROFILE]

Variants (one per table row, plus the finer ablation; `VARIANTS`):
    unet, vnet, ours_no_edge (l2 = l3 = 0: the shape stream is unsupervised),
    ours, ours_no_edge_bce (l3 = 0 only), ours_bilinear_fusion (the shape
    stream reduced bilinearly, not by area, before the fusion), ours_bce_sum
    and ours_bce_scaled_mean (Eq. 5 reduced otherwise than the default).
Profiles:
    paper: 240 x 240, batch 8, Adam lr0 = 1e-3, Eq. 6 poly decay per epoch
           (power 0.9), 100 epochs (the paper does not give the number), the
           widths of docs/design.md;
    demo:  synthetic BraTS-like volumes (96 x 96 x 64; 12 training, 4
           validation, 40 test cases) at 64 x 64, narrow models, sized so the
           whole table (4 rows x 5 seeds) trained in under 14 minutes on 2 CPU cores
           (27 minutes with the whole-volume scoring: four flips, the clean-up
           chosen on validation, the seed ensemble).
The data each profile prepares (slice size, slices per case, synthetic cases)
is `PROFILE_DATA`.
Every value can be overridden: --config.train.epochs=5, --config.loss.weights.edge_bce=0.
`boundary_aware.config_check` says which keys training reads and what they allow.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

from typing import NamedTuple

import ml_collections

from boundary_aware.data import PAPER_CHANNELS, PAPER_REGION
from boundary_aware.inference import DEFAULT_TTA
from boundary_aware.losses import DEFAULT_BCE_REDUCTION, DEFAULT_EDGE_TARGET, PAPER_WEIGHTS

NO_EDGE = {"edge_dice": 0.0, "edge_bce": 0.0}  # l2 = l3 = 0: no term supervises the edge output


class Variant(NamedTuple):
    """One table row: its label, model, Eq. 3's weights, and what it sets beyond the
    profile (model keywords; loss options such as Eq. 5's reduction)."""
    label: str
    model: str
    weights: dict
    model_options: dict = {}
    loss_options: dict = {}
    data_options: dict = {}


# The BraTS setting beyond the paper: every sequence as a channel, the three regions as
# sigmoid outputs (region-based training)
BRATS_DATA = {"modalities": "t1,t1c,t2,flair", "regions": "wt,tc,et"}

VARIANTS = {
    "unet": Variant("U-Net", "unet", {**PAPER_WEIGHTS, **NO_EDGE}),
    "vnet": Variant("V-Net", "vnet", {**PAPER_WEIGHTS, **NO_EDGE}),
    "ours_no_edge": Variant("Ours (no edge loss)", "ours", {**PAPER_WEIGHTS, **NO_EDGE}),
    "ours": Variant("Ours", "ours", dict(PAPER_WEIGHTS)),
    "ours_no_edge_bce": Variant("Ours (no edge BCE)", "ours",
                                {**PAPER_WEIGHTS, "edge_bce": 0.0}),
    "ours_bilinear_fusion": Variant("Ours (bilinear fusion)", "ours", dict(PAPER_WEIGHTS),
                                    {"fusion": "bilinear"}),
    # Eq. 5's other reductions (`ours` has the default, `losses.DEFAULT_BCE_REDUCTION`)
    "ours_bce_sum": Variant("Ours (Eq. 5 sum)", "ours", dict(PAPER_WEIGHTS),
                            loss_options={"edge_bce_reduction": "sum"}),
    "ours_bce_scaled_mean": Variant("Ours (Eq. 5 scaled_mean)", "ours", dict(PAPER_WEIGHTS),
                                    loss_options={"edge_bce_reduction": "scaled_mean"}),
    # beyond the paper: tumor-free training slices (data.tumor_free_fraction)
    "ours_tumor_free": Variant("Ours (tumor-free slices)", "ours", dict(PAPER_WEIGHTS),
                               data_options={"tumor_free_fraction": 0.25}),
    # beyond the paper: one neighbouring slice above and below as context (2.5D)
    "ours_context": Variant("Ours (context slices)", "ours", dict(PAPER_WEIGHTS),
                            data_options={"context_slices": 1}),
    # beyond the paper: all four BraTS sequences in, the three BraTS regions out
    "unet_brats": Variant("U-Net (4 sequences, WT/TC/ET)", "unet", {**PAPER_WEIGHTS, **NO_EDGE},
                          data_options=BRATS_DATA),
    "ours_brats": Variant("Ours (4 sequences, WT/TC/ET)", "ours", dict(PAPER_WEIGHTS),
                          data_options=BRATS_DATA),
    # the same with an edge target per region, not one for their union (loss.edge_target)
    "ours_brats_per_region": Variant("Ours (4 sequences, WT/TC/ET, edge per region)", "ours",
                                     dict(PAPER_WEIGHTS),
                                     loss_options={"edge_target": "per_region"},
                                     data_options=BRATS_DATA),
}
TABLE_ROWS = ("unet", "vnet", "ours_no_edge", "ours")
ABLATION_ROWS = ("ours", "ours_no_edge_bce", "ours_no_edge", "ours_bilinear_fusion",
                 "ours_bce_sum", "ours_bce_scaled_mean")
REDUCTION_ROWS = ("ours", "ours_bce_sum", "ours_bce_scaled_mean")  # the sensitivity's settings

# The data side of each profile: the slice size, the slices kept per case, the
# default prepared folder, and (demo) the synthetic cases generated when no
# BraTS folder is given: how many per split, and their volume shape. The
# experiment scripts prepare data from these.
PROFILE_DATA = {
    "paper": {"image_size": 240, "slices_per_case": 20, "prepared_dir": "data/prepared",
              "synthetic": None},
    "demo": {"image_size": 64, "slices_per_case": 12, "prepared_dir": "data/demo_prepared",
             "synthetic": {"split": {"train": 12, "val": 4, "test": 40}, "shape": "96,96,64"}},
}
PROFILES = tuple(PROFILE_DATA)

# The synthetic phantoms (`data_prep.synthetic`): a generator seed, and whether the
# look-alikes of the tumor rim are drawn. Settings are chosen on the development
# phantom only; the tables the README reports are made on the confirmation phantom,
# generated fresh and never used to choose anything; "plain" is the confirmation
# phantom's anatomy without the look-alikes.
PHANTOMS = {
    "development": {"seed": 0, "distractors": True},
    "confirmation": {"seed": 1, "distractors": True},
    "plain": {"seed": 1, "distractors": False},
}
DEFAULT_PHANTOM = "confirmation"

MODEL_KWARGS = {
    "paper": {"ours": dict(base_filters=32, shape_filters=32, dspp_rates=(6, 12, 18),
                           fusion="area"),
              "unet": dict(base_filters=64), "vnet": dict(base_filters=16)},
    "demo": {"ours": dict(base_filters=8, shape_filters=8, dspp_rates=(2, 4, 6), fusion="area"),
             "unet": dict(base_filters=8), "vnet": dict(base_filters=4)},
}


def get_config(arg="ours,demo"):
    variant, _, profile = arg.partition(",")
    profile = profile or "demo"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    v = VARIANTS[variant]
    c = ml_collections.ConfigDict()
    c.variant, c.profile = variant, profile

    c.model = ml_collections.ConfigDict()
    c.model.name = v.model
    c.model.kwargs = dict(MODEL_KWARGS[profile][v.model], norm="batch", **v.model_options)

    c.loss = ml_collections.ConfigDict()
    c.loss.weights = ml_collections.ConfigDict(v.weights)  # {term: weight} of Eq. 3 (losses.TERMS)
    c.loss.generalized_dice = False
    c.loss.edge_width = 2
    c.loss.edge_bce_reduction = DEFAULT_BCE_REDUCTION  # Eq. 5's reduction (losses.BCE_REDUCTIONS)
    # several regions: an edge target per region or one of their union (losses.EDGE_TARGETS)
    c.loss.edge_target = DEFAULT_EDGE_TARGET
    c.loss.update(v.loss_options)

    c.data = ml_collections.ConfigDict()
    c.data.prepared_dir = PROFILE_DATA[profile]["prepared_dir"]
    c.data.image_size = PROFILE_DATA[profile]["image_size"]
    c.data.modalities = ",".join(PAPER_CHANNELS)  # input channels, in order (the paper: T1c)
    c.data.regions = PAPER_REGION  # output maps, one per tumor region (the paper: TC)
    c.data.context_slices = 0  # neighbouring slices on each side as channels (the paper: none)
    c.data.augment = ml_collections.ConfigDict(dict(
        enabled=True, flip_lr=True, flip_ap=False, rotate_deg=10.0, rotate_p=0.2, scale=0.1,
        scale_p=0.2, intensity_scale=0.1, intensity_shift=0.1))
    c.data.pipeline = "auto"  # auto (tf.data on the TensorFlow backend, else PyDataset), tf, pydataset
    c.data.tumor_free_fraction = 0.0  # share of training slices without tumor (the paper: none)
    c.data.update(v.data_options)

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 100 if profile == "paper" else 12
    c.train.batch_size = 8
    c.train.learning_rate = 1e-3  # alpha_0 of Eq. 6
    c.train.poly_power = 0.9
    c.train.seed = 0
    c.train.precision = "auto"  # auto: bf16 on GPUs that have it, else fp16; float32 on a CPU
    c.train.jit_compile = "auto"  # auto (Keras decides: XLA where supported), on, off
    c.train.steps_per_execution = 1
    # batch-norm statistics recomputed at each epoch's end from this many unaugmented
    # training batches (boundary_aware/batch_statistics.py); 0: the moving averages (the paper)
    c.train.bn_statistics_batches = 0
    c.train.deterministic = True  # op determinism (TensorFlow), exact resumes on CPU
    c.train.verbose = "auto"  # Keras progress bar on a terminal, one line per epoch otherwise

    c.eval = ml_collections.ConfigDict()
    c.eval.threshold = 0.5
    c.eval.batch_size = 16
    c.eval.checkpoint = "final"  # the scored checkpoint: final, best or last (run_directory)
    # whole volumes: test-time mirror axes (inference.TTA_CHOICES), and the clean-up chosen
    # on the validation volumes (boundary_aware.postprocess)
    c.eval.tta = DEFAULT_TTA
    c.eval.postprocess = True
    return c
