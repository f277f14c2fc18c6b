"""Evaluation: `boundary-aware-evaluate --workdir=DIR [--checkpoint=final|best]`.

Scores the test split of a run (docs/design.md, "Evaluation") three ways:
* per slice (the paper's protocol): Dice, Jaccard, HD and HD95 in mm on the
  prepared test slices, mean and standard deviation over slices, as Table 1;
* per volume (BraTS's protocol, beyond the paper): every axial slice of each
  test case's source volumes (the files of the data manifest's channels,
  checked against their recorded SHA-256) is segmented through the same code
  path as `predict` (`boundary_aware.inference`), and the 3D metrics compare
  the predicted tumor core with the whole label volume at the source
  spacing. This counts the false positives on slices without tumor core
  (`fp_slices`), which the paper's protocol never sees;
* selected slices: the same 3D metrics over each case's prepared slices
  only (the former "per case" score; not BraTS's protocol).
Hausdorff means are dominated by slices where one mask is empty (each adds
the image diagonal), so every summary also has the medians, the means over
items where both masks are non-empty, and the empty-mask counts.

Both checkpoints of a completed run are scored: the one the run's rule names
(`config.eval.checkpoint`, "final" by default; see `boundary_aware.run_directory`)
with every record, the other under `checkpoints` (its summaries, and its slice
and volume records, so that tables can compare under either rule). Writes
`metrics.json` in the workdir (`run_directory.METRICS_FORMAT`).

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from boundary_aware import metrics
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.comparison import mean_std
from boundary_aware.data import DataError, Manifest, load_prepared, region_mask
from boundary_aware.errors import LockedError
from boundary_aware.files import file_sha256
from boundary_aware.inference import keras_predictor, segment_slices, volume_slices
from boundary_aware.metrics import METRIC_NAMES
from boundary_aware.model_files import load_keras_model
from boundary_aware.nifti import load_channels, load_volume
from boundary_aware.run_directory import CHECKPOINTS, RunDirectory, scored_checkpoint

EMPTY_POLICY = ("both empty: Dice = Jaccard = 1, HD = HD95 = 0; exactly one empty: Dice = "
                "Jaccard = 0, HD = HD95 = the image diagonal in mm (373.13 for a 240 x 240 x 155 "
                "volume at 1 mm)")


def summarize(records):
    """Each metric's mean and standard deviation, and the honest-Hausdorff figures.

    For hd and hd95 also: the median, and the mean and count over records
    where both masks are non-empty (`nonempty_mean`, `nonempty_n`). `empty`
    counts the records where both, only the prediction or only the reference
    are empty. Volume records also add up their false-positive slices.
    """
    summary = {"n": len(records),
               "empty": {k: sum(r["empty"] == k for r in records) for k in ("both", "pred", "ref")}}
    nonempty = [r for r in records if r["empty"] == metrics.EMPTY_NONE]
    for name in METRIC_NAMES:
        summary[name] = dict(zip(("mean", "std"), mean_std([r[name] for r in records])))
        if name.startswith("hd"):
            values = [r[name] for r in records]
            summary[name]["median"] = float(np.median(values)) if values else float("nan")
            summary[name]["nonempty_mean"] = mean_std([r[name] for r in nonempty])[0]
            summary[name]["nonempty_n"] = len(nonempty)
    if records and "fp_slices" in records[0]:
        summary["fp_slices"] = int(sum(r["fp_slices"] for r in records))
    return summary


def score(predictions, masks, meta, manifest: Manifest):
    """Per-slice and selected-slices records from binary predictions (N, H, W)."""
    slice_records, by_case = [], {}
    for pred, ref, info in zip(predictions, masks, meta):
        spacing = manifest.slice_spacing(info["case"])
        record = {"case": info["case"], "slice": info["slice"],
                  **metrics.segmentation_metrics(pred, ref, spacing)}
        slice_records.append(record)
        by_case.setdefault(info["case"], []).append((info["slice"], pred, ref))
    case_records = []
    for case_id, items in by_case.items():
        items.sort(key=lambda item: item[0])
        pred = np.stack([p for _, p, _ in items], axis=-1)
        ref = np.stack([r for _, _, r in items], axis=-1)
        spacing = manifest.slice_spacing(case_id) + manifest.spacing(case_id)[2:]
        case_records.append({"case": case_id, "slices": len(items),
                             **metrics.segmentation_metrics(pred, ref, spacing)})
    return slice_records, case_records


def score_volume(pred, ref, spacing):
    """3D metrics of one whole volume (X, Y, Z), and its axial false-positive slices."""
    pred_slices, ref_slices = pred.any(axis=(0, 1)), ref.any(axis=(0, 1))
    return {**metrics.segmentation_metrics(pred, ref, spacing),
            "slices": int(pred.shape[2]), "tumor_slices": int(ref_slices.sum()),
            "pred_slices": int(pred_slices.sum()),
            "fp_slices": int(np.count_nonzero(pred_slices & ~ref_slices))}


def source_file(manifest: Manifest, case_id: str, kind: str) -> Path:
    """Path of a case's source file (a channel or "seg") from the manifest, checked by SHA-256."""
    path, sha256 = manifest.source_file(case_id, kind)
    if not path.is_file():
        raise DataError(f"{path}: source {kind} file of case {case_id} not found (whole-volume "
                        f"scoring reads the volumes the data was prepared from; pass "
                        f"--noper_volume to skip it)")
    if file_sha256(path) != sha256:
        raise DataError(f"{path}: differs from the file the data was prepared from "
                        f"(SHA-256 mismatch)")
    return path


def volume_cases(manifest: Manifest, split: str):
    """(case id, (X, Y, Z, C) volume of the manifest's channels, region mask, spacing) of
    every case of a split."""
    for case_id in manifest.split(split):
        paths = [source_file(manifest, case_id, c) for c in manifest.channels]
        volume, _, zooms = load_channels(paths, manifest.channels)
        labels, _, _ = load_volume(source_file(manifest, case_id, "seg"), "seg")
        mask = region_mask(labels, manifest.convention(case_id), manifest.region) > 0
        yield case_id, volume, mask, zooms[:3]


def score_volumes(models, manifest, split, threshold, batch_size):
    """{name: whole-volume records} of several models; each source volume is read, and
    resized to each input size, once."""
    predictors = {name: keras_predictor(m, batch_size, channels=manifest.channels)
                  for name, m in models.items()}
    records = {name: [] for name in models}
    for case_id, volume, ref, spacing in volume_cases(manifest, split):
        inputs = {}
        for name, predictor in predictors.items():
            size = predictor.input_shape[0]
            if size not in inputs:
                inputs[size] = volume_slices(volume, size)
            prob = segment_slices(predictor, inputs[size], volume.shape[:2], outputs=("seg",))
            pred = prob["seg"] > threshold
            records[name].append({"case": case_id, **score_volume(pred, ref, spacing)})
    return records


def evaluate(workdir: str | os.PathLike, checkpoint: str | None = None, split: str = "test",
             threshold: float | None = None, per_volume: bool = True) -> dict:
    """Score a run's checkpoints on `split` and write `metrics.json` (module docstring)."""
    run = RunDirectory(workdir)
    if not run.path.is_dir():
        raise DataError(f"{run.path}: no such run directory")
    with run.lock():
        return _evaluate_locked(run, checkpoint, split, threshold, per_volume)


def _evaluate_locked(run: RunDirectory, checkpoint, split, threshold, per_volume) -> dict:
    config = run.read_config()
    prepared = Path(config["data"]["prepared_dir"])
    manifest = Manifest.read(prepared)
    chosen = checkpoint or scored_checkpoint(config)
    model_path = run.checkpoint(chosen)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such checkpoint (train the run to the end "
                                f"first, or pass --checkpoint)")
    images, masks, meta = load_prepared(prepared, split)
    threshold = config["eval"]["threshold"] if threshold is None else threshold
    batch_size = config["eval"]["batch_size"]
    state = run.read_state() or {}
    epochs = {"final": state.get("epoch"), "last": state.get("epoch"),
              "best": state.get("best_epoch")}
    others = [c for c in CHECKPOINTS[:2] if c != chosen and run.checkpoint(c).is_file()]
    models = {name: load_keras_model(run.checkpoint(name)) for name in [chosen] + others}
    volumes = (score_volumes(models, manifest, split, threshold, batch_size) if per_volume
               else dict.fromkeys(models))
    result = {"variant": config["variant"], "profile": config["profile"],
              "model": config["model"]["name"], "checkpoint": model_path.name,
              "checkpoint_rule": chosen, "epoch": epochs[chosen], "split": split,
              "threshold": threshold, "empty_policy": EMPTY_POLICY, "checkpoints": {}}
    for name, model in models.items():
        probs = model.predict(images, batch_size=batch_size, verbose=0)["seg"]
        slices, cases = score(probs[..., 0] > threshold, masks[..., 0] > 0, meta, manifest)
        vols = volumes[name]
        summary = {"epoch": epochs[name], "per_slice": summarize(slices),
                   "per_volume": summarize(vols) if vols is not None else None,
                   "selected_slices": summarize(cases)}
        if name == chosen:
            result.update(params=int(model.count_params()), **{k: v for k, v in summary.items()
                                                                if k != "epoch"},
                          slices=slices, volumes=vols, selected_slices_cases=cases)
        else:  # its records too: comparisons under the other checkpoint rule need them
            summary.update(slices=slices, volumes=vols)
        result["checkpoints"][name] = summary
    try:
        return run.write_metrics(result)
    except OSError as err:  # the old metrics.json, if any, is intact (atomic write)
        raise DataError(f"{run.metrics_path}: cannot write ({err})") from None


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    with exit_on(FileNotFoundError, DataError, LockedError):
        result = evaluate(f.workdir, f.checkpoint, f.split, f.threshold, f.per_volume)
    s, v = result["per_slice"], result["per_volume"]
    print(f"{f.workdir} ({result['checkpoint']}): {s['n']} slices; Dice {s['dice']['mean']:.3f} "
          f"± {s['dice']['std']:.3f}, Jaccard {s['jaccard']['mean']:.3f}, HD {s['hd']['mean']:.2f} "
          f"mm, HD95 {s['hd95']['mean']:.2f} mm")
    if v is not None:
        print(f"  whole volumes: {v['n']} cases; Dice {v['dice']['mean']:.3f}, HD95 "
              f"{v['hd95']['mean']:.2f} mm, {v['fp_slices']} slices with tumor predicted where "
              f"there is none")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("workdir", None, "A training run directory.")
    flags.DEFINE_enum("checkpoint", None, list(CHECKPOINTS),
                      "Which model to score (default: the run's eval.checkpoint rule, 'final').")
    flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Which split to score.")
    flags.DEFINE_float("threshold", None, "Probability threshold (default: the config's).")
    flags.DEFINE_bool("per_volume", True, "Also segment and score the whole source volumes.")
    flags.mark_flag_as_required("workdir")


def cli() -> None:
    """Console entry point `boundary-aware-evaluate`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
