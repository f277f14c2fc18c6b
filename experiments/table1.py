"""Experiment config for the paper's Table 1 (ml_collections).

    --config=experiments/table1.py:VARIANT[,PROFILE]

Variants (one per table row, plus the finer ablation):
    unet, vnet, ours_no_edge (l2 = l3 = 0: the shape stream is unsupervised),
    ours, ours_no_edge_bce (l3 = 0 only), ours_bilinear_fusion (the shape
    stream reduced bilinearly, not by area, before the fusion).
Profiles:
    paper: 240 x 240, batch 8, Adam lr0 = 1e-3, Eq. 6 poly decay per epoch
           (power 0.9), 100 epochs (the paper does not give the number), the
           widths of docs/design.md;
    demo:  the synthetic BraTS-like data at 96 x 96, narrow models, sized so the
           whole table runs in minutes on 2 CPU cores.
The data each profile prepares (slice size, slices per case, synthetic cases)
is `PROFILE_DATA`.
Every value can be overridden: --config.train.epochs=5, --config.loss.weights.edge_bce=0.
`boundary_aware.config_check` says which keys training reads and what they allow.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

import ml_collections

from boundary_aware.losses import PAPER_WEIGHTS

NO_EDGE = {"edge_dice": 0.0, "edge_bce": 0.0}  # l2 = l3 = 0: no term supervises the edge output
VARIANTS = {  # variant: (model, Eq. 3's weights, model options beyond the profile's)
    "unet": ("unet", {**PAPER_WEIGHTS, **NO_EDGE}, {}),
    "vnet": ("vnet", {**PAPER_WEIGHTS, **NO_EDGE}, {}),
    "ours_no_edge": ("ours", {**PAPER_WEIGHTS, **NO_EDGE}, {}),
    "ours": ("ours", dict(PAPER_WEIGHTS), {}),
    "ours_no_edge_bce": ("ours", {**PAPER_WEIGHTS, "edge_bce": 0.0}, {}),
    "ours_bilinear_fusion": ("ours", dict(PAPER_WEIGHTS), {"fusion": "bilinear"}),
}
TABLE_ROWS = ("unet", "vnet", "ours_no_edge", "ours")
ABLATION_ROWS = ("ours", "ours_no_edge_bce", "ours_no_edge", "ours_bilinear_fusion")

# The data side of each profile: the slice size, the slices kept per case, the
# default prepared folder, and (demo) the synthetic cases generated when no
# BraTS folder is given. The experiment scripts prepare data from these.
PROFILE_DATA = {
    "paper": {"image_size": 240, "slices_per_case": 20, "prepared_dir": "data/prepared",
              "synthetic": None},
    "demo": {"image_size": 96, "slices_per_case": 12, "prepared_dir": "data/demo_prepared",
             "synthetic": {"num_cases": 24, "shape": "160,160,96", "seed": 0}},
}
PROFILES = tuple(PROFILE_DATA)

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
    model_name, weights, options = VARIANTS[variant]
    c = ml_collections.ConfigDict()
    c.variant, c.profile = variant, profile

    c.model = ml_collections.ConfigDict()
    c.model.name = model_name
    c.model.kwargs = dict(MODEL_KWARGS[profile][model_name], norm="batch", **options)

    c.loss = ml_collections.ConfigDict()
    c.loss.weights = ml_collections.ConfigDict(weights)  # {term: weight} of Eq. 3 (losses.TERMS)
    c.loss.generalized_dice = False
    c.loss.edge_width = 2
    c.loss.edge_bce_reduction = "scaled_mean"  # Eq. 5's reduction (losses.BCE_REDUCTIONS)

    c.data = ml_collections.ConfigDict()
    c.data.prepared_dir = PROFILE_DATA[profile]["prepared_dir"]
    c.data.image_size = PROFILE_DATA[profile]["image_size"]
    c.data.augment = ml_collections.ConfigDict(dict(
        enabled=True, flip_lr=True, flip_ap=False, rotate_deg=10.0, rotate_p=0.2, scale=0.1,
        scale_p=0.2, intensity_scale=0.1, intensity_shift=0.1))
    c.data.pipeline = "auto"  # auto (tf.data on the TensorFlow backend, else PyDataset), tf, pydataset

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 100 if profile == "paper" else 12
    c.train.batch_size = 8
    c.train.learning_rate = 1e-3  # alpha_0 of Eq. 6
    c.train.poly_power = 0.9
    c.train.seed = 0
    c.train.precision = "auto"  # auto: mixed_float16 on a GPU, float32 on a CPU
    c.train.jit_compile = "auto"  # auto (Keras decides: XLA where supported), on, off
    c.train.steps_per_execution = 1
    c.train.deterministic = True  # op determinism (TensorFlow), exact resumes on CPU
    c.train.verbose = "auto"  # Keras progress bar on a terminal, one line per epoch otherwise

    c.eval = ml_collections.ConfigDict()
    c.eval.threshold = 0.5
    c.eval.batch_size = 16
    c.eval.checkpoint = "final"  # the scored checkpoint: final, best or last (run_directory)
    return c
