"""The paper's Figures 2 and 3 from trained Table 1 runs: `make figures`.

    python -m experiments.figures --table_dir=results/table1 --out=results/table1/figures [--seed=0]

Figure 2: a test slice and the outputs of the three attention layers of the
boundary-aware network (mean absolute activation over channels).
Figure 3: input, label, ours, V-Net and U-Net on a few test slices, with the
label's contour (green) and the prediction's contour (red).
The runs drawn are those of one training seed (`--seed`), at the checkpoint
the table scores. Slices are shown as radiology viewers show axial slices
(anterior up, the patient's right on the image's left: `radiological`), and a
figure made from synthetic data says so on the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from boundary_aware.prepared import load_prepared
from boundary_aware.model_files import load_keras_model
from boundary_aware.models.boundary_aware_net import attention_maps
from boundary_aware.run_directory import RunDirectory
from experiments.runner import synthetic_record
from experiments.steps import run_dir


def radiological(slice_lps: np.ndarray) -> np.ndarray:
    """An axial slice (L, P[, ...]) of the package's LPS arrays as a viewer shows it:
    rows run from anterior (top) to posterior, columns from the patient's right (image
    left) to the patient's left; i.e. the first two axes swapped."""
    return np.swapaxes(slice_lps, 0, 1)


def data_label(table_dir) -> str | None:
    """The line a figure carries when its runs were trained on synthetic data (the
    experiment's record of the generated phantom), else None."""
    found = synthetic_record(table_dir)
    if found is None:
        return None
    what = (f"the {found['phantom']} phantom, generator seed {found['seed']}"
            if {"phantom", "seed"} <= set(found) else "a phantom its record does not name")
    return f"SYNTHETIC data ({what}): not BraTS"


def _finish(fig, label, margin):
    """Lay the figure out, leaving `margin` (a fraction of its height) at the bottom for
    the data label where there is one, and write the label there."""
    fig.tight_layout(rect=(0, margin if label else 0, 1, 1))
    if label:
        fig.text(0.5, 0.005, label, ha="center", va="bottom", fontsize=9, color="darkred")


def _load(run):
    """The checkpoint a run's rule scores (final.keras by default), as the table does."""
    return load_keras_model(RunDirectory(run).checkpoint())


def pick_slices(masks, meta, count):
    """The largest-tumor test slice of each case, for up to `count` cases."""
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    picked, cases = [], set()
    for i in np.argsort(-areas, kind="stable"):
        if meta[i]["case"] not in cases:
            picked.append(int(i))
            cases.add(meta[i]["case"])
    return picked[:count]


def figure2(table_dir, images, masks, meta, out, seed=0, label=None):
    import keras
    import matplotlib.pyplot as plt
    model = _load(run_dir(table_dir, "ours", seed))
    probe = keras.Model(model.input, attention_maps(model))
    index = pick_slices(masks, meta, 1)[0]
    maps = probe.predict(images[index:index + 1], verbose=0)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    axes[0].imshow(radiological(images[index, ..., 0]), cmap="gray")
    axes[0].set_title("(a) input")
    for k, (ax, m) in enumerate(zip(axes[1:], maps), start=1):
        ax.imshow(radiological(np.abs(m[0]).mean(axis=-1)), cmap="magma")
        ax.set_title(f"({'bcd'[k - 1]}) attention layer {k}")
    for ax in axes:
        ax.axis("off")
    _finish(fig, label, 0.05)
    fig.savefig(out / "figure2_attention.png", dpi=120)
    plt.close(fig)


def figure3(table_dir, images, masks, meta, out, count=4, seed=0, label=None):
    import matplotlib.pyplot as plt
    columns = [("ours", "(c) Ours"), ("vnet", "(d) V-Net"), ("unet", "(e) U-Net")]
    runs = {name: run_dir(table_dir, name, seed) for name, _ in columns}
    preds = {name: _load(run).predict(images, verbose=0)["seg"] > RunDirectory(run).threshold()
             for name, run in runs.items()}
    rows = pick_slices(masks, meta, count)
    fig, axes = plt.subplots(len(rows), 5, figsize=(12.5, 2.6 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        image, truth = radiological(images[i, ..., 0]), radiological(masks[i, ..., 0])
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 1].imshow(image, cmap="gray")
        axes[r, 1].contour(truth, levels=[0.5], colors="lime", linewidths=1)
        for c, (name, _) in enumerate(columns, start=2):
            pred = radiological(preds[name][i, ..., 0])
            axes[r, c].imshow(image, cmap="gray")
            axes[r, c].contour(truth, levels=[0.5], colors="lime", linewidths=0.8)
            if pred.any():
                axes[r, c].contour(pred, levels=[0.5], colors="red", linewidths=1)
    for c, title in enumerate(["(a) input", "(b) label"] + [t for _, t in columns]):
        axes[0, c].set_title(title)
    for ax in axes.ravel():
        ax.axis("off")
    _finish(fig, label, 0.04)
    fig.savefig(out / "figure3_comparison.png", dpi=120)
    plt.close(fig)


def figures(table_dir, out, seed=0):
    import matplotlib
    matplotlib.use("Agg")
    table_dir, out = Path(table_dir), Path(out)
    from boundary_aware.evaluate import check_trained_on
    run = RunDirectory(run_dir(table_dir, "ours", seed))
    config = run.read_config()
    check_trained_on(run, Path(config["data"]["prepared_dir"]))  # not data prepared again
    images, masks, meta = load_prepared(config["data"]["prepared_dir"], "test")
    out.mkdir(parents=True, exist_ok=True)
    label = data_label(table_dir)
    figure2(table_dir, images, masks, meta, out, seed, label)
    figure3(table_dir, images, masks, meta, out, seed=seed, label=label)
    print(f"wrote {out / 'figure2_attention.png'} and {out / 'figure3_comparison.png'}")


def main(argv):
    from absl import flags
    del argv
    from boundary_aware.cli import exit_on
    from boundary_aware.errors import DataError
    with exit_on(DataError, FileNotFoundError):
        figures(flags.FLAGS.table_dir, flags.FLAGS.out, flags.FLAGS.seed)


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("table_dir", "results/table1", "Output folder of reproduce-table1.")
    flags.DEFINE_string("out", "results/table1/figures", "Where to write the PNG files.")
    flags.DEFINE_integer("seed", 0, "Which training seed's runs to draw.")


def cli() -> None:
    """Console entry point `boundary-aware-figures`."""
    from boundary_aware.cli import run_absl
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
