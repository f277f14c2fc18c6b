"""Evaluation: `python -m boundary_aware.evaluate --workdir=DIR [--checkpoint=best]`.

Scores the test split of the run's prepared data (DESIGN.md section 5):
* per slice (the paper's protocol): Dice, Jaccard, HD and HD95 in mm, then
  mean and standard deviation over slices, as in Table 1;
* per case (BraTS's protocol, beyond the paper): the same metrics in 3D on
  the case's prepared slices stacked in order.
The empty-mask policy is `boundary_aware.metrics`'; the number of slices and
cases it applied to is counted. Writes `metrics.json` in the workdir.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

import json
from pathlib import Path

import keras
import numpy as np

import boundary_aware.layers  # noqa: F401  (registers the custom layers for loading)
from boundary_aware import metrics
from boundary_aware.cli import exit_on
from boundary_aware.data import load_prepared, read_manifest
from boundary_aware.files import atomic_write_text

METRIC_NAMES = ("dice", "jaccard", "hd", "hd95")


def slice_spacing(case_record, image_size):
    """In-plane spacing (mm) of a prepared slice: the source spacing times the resize factor."""
    shape, spacing = case_record["shape"], case_record["spacing"]
    return (spacing[0] * shape[0] / image_size, spacing[1] * shape[1] / image_size)


def summarize(records):
    """Mean and standard deviation of each metric, and the empty-mask counts."""
    summary = {"n": len(records),
               "empty": {k: sum(r["empty"] == k for r in records) for k in ("both", "pred", "ref")}}
    for name in METRIC_NAMES:
        values = np.array([r[name] for r in records], dtype=np.float64)
        summary[name] = {"mean": float(values.mean()) if len(values) else float("nan"),
                         "std": float(values.std()) if len(values) else float("nan")}
    return summary


def score(predictions, masks, meta, manifest):
    """Per-slice and per-case records from binary predictions (N, H, W)."""
    image_size = manifest["options"]["image_size"]
    slice_records, by_case = [], {}
    for pred, ref, info in zip(predictions, masks, meta):
        case = manifest["cases"][info["case"]]
        spacing = slice_spacing(case, image_size)
        record = {"case": info["case"], "slice": info["slice"],
                  **metrics.segmentation_metrics(pred, ref, spacing)}
        slice_records.append(record)
        by_case.setdefault(info["case"], []).append((info["slice"], pred, ref))
    case_records = []
    for case_id, items in by_case.items():
        items.sort(key=lambda item: item[0])
        pred = np.stack([p for _, p, _ in items], axis=-1)
        ref = np.stack([r for _, _, r in items], axis=-1)
        spacing = slice_spacing(manifest["cases"][case_id], image_size) + \
            (manifest["cases"][case_id]["spacing"][2],)
        case_records.append({"case": case_id, "slices": len(items),
                             **metrics.segmentation_metrics(pred, ref, spacing)})
    return slice_records, case_records


def evaluate(workdir, checkpoint="best", split="test", threshold=None):
    workdir = Path(workdir)
    config = json.loads((workdir / "config.json").read_text())
    prepared = Path(config["data"]["prepared_dir"])
    manifest = read_manifest(prepared)
    model_path = workdir / f"{checkpoint}.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such checkpoint (train the run first)")
    model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    images, masks, meta = load_prepared(prepared, split)
    threshold = config["eval"]["threshold"] if threshold is None else threshold
    probs = model.predict(images, batch_size=config["eval"]["batch_size"], verbose=0)["seg"]
    predictions = probs[..., 0] > threshold
    slice_records, case_records = score(predictions, masks[..., 0] > 0, meta, manifest)
    result = {
        "variant": config["variant"], "profile": config["profile"],
        "model": config["model"]["name"], "checkpoint": model_path.name, "split": split,
        "threshold": threshold,
        "empty_policy": "both empty: Dice = Jaccard = 1, HD = 0; one empty: Dice = Jaccard = 0, "
                        "HD = image diagonal (mm)",
        "per_slice": summarize(slice_records), "per_case": summarize(case_records),
        "slices": slice_records, "cases": case_records,
    }
    atomic_write_text(workdir / "metrics.json", json.dumps(result, indent=1))
    return result


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(FileNotFoundError):
        result = evaluate(f.workdir, f.checkpoint, f.split, f.threshold)
    s = result["per_slice"]
    print(f"{f.workdir}: {s['n']} slices; Dice {s['dice']['mean']:.3f} ± {s['dice']['std']:.3f}, "
          f"Jaccard {s['jaccard']['mean']:.3f}, HD {s['hd']['mean']:.2f} mm, "
          f"HD95 {s['hd95']['mean']:.2f} mm")


if __name__ == "__main__":
    from absl import app, flags
    flags.DEFINE_string("workdir", None, "A training run directory.")
    flags.DEFINE_enum("checkpoint", "best", ["best", "final", "last"], "Which model to score.")
    flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Which split to score.")
    flags.DEFINE_float("threshold", None, "Probability threshold (default: the config's).")
    flags.mark_flag_as_required("workdir")
    app.run(main)
