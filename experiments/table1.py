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
`boundary_aware.config` defines every key training reads: its default, what it allows.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

from typing import NamedTuple

import ml_collections

from boundary_aware.config import default_config
from boundary_aware.losses import PAPER_WEIGHTS
from boundary_aware.models.registry import spec

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
BRATS_DATA = {"sequences": "t1,t1c,t2,flair", "regions": "wt,tc,et"}

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

# What each profile sets beyond the library's defaults: the slice size, the slices kept
# per case, the default prepared folder, the epochs, and (demo) the synthetic cases
# generated when no BraTS folder is given: how many per split, and their volume shape.
# The experiment scripts prepare data from these.
PROFILE_DATA = {
    "paper": {"image_size": 240, "slices_per_case": 20, "prepared_dir": "data/prepared",
              "epochs": 100, "synthetic": None},
    "demo": {"image_size": 64, "slices_per_case": 12, "prepared_dir": "data/demo_prepared",
             "epochs": 12,
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

# The demo profile's narrow widths (the paper profile's are the registry's defaults,
# `boundary_aware.models.registry`); a config records these keywords and the
# normalization, and a model without an entry runs the demo at its paper widths.
DEMO_WIDTHS = {
    "ours": dict(base_filters=8, shape_filters=8, dspp_rates=(2, 4, 6), fusion="area"),
    "unet": dict(base_filters=8),
    "vnet": dict(base_filters=4),
}


def model_keywords(model: str, profile: str, options: dict) -> dict:
    """The model keywords a config of `profile` records for `model`: its widths (the
    demo's narrow ones, else the registry's), its normalization, and the variant's
    `options`."""
    family = spec(model)
    widths = DEMO_WIDTHS.get(model, {})
    keywords = family.keywords(widths if profile == "demo" else {})
    return dict({k: keywords[k] for k in (*widths, "norm")}, **options)


def get_config(arg="ours,demo"):
    """The config of `VARIANT[,PROFILE]` (module docstring): the library's defaults
    (`boundary_aware.config.KEYS`), with what the profile and the variant set."""
    variant, _, profile = arg.partition(",")
    profile = profile or "demo"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    v = VARIANTS[variant]
    c = default_config()
    c.variant, c.profile = variant, profile
    c.model.name = v.model
    c.model.kwargs = model_keywords(v.model, profile, v.model_options)
    c.loss.weights = ml_collections.ConfigDict(v.weights)
    c.loss.update(v.loss_options)
    c.data.prepared_dir = PROFILE_DATA[profile]["prepared_dir"]
    c.data.image_size = PROFILE_DATA[profile]["image_size"]
    c.data.update(v.data_options)
    c.train.epochs = PROFILE_DATA[profile]["epochs"]
    return c
