"""Evaluation: `boundary-aware-evaluate --workdir=DIR [--checkpoint=final|best] [--tta=lr]`
(an ensemble: `--workdir=DIR1,DIR2,... --out=DIR`).

Scores the test split of a run (docs/design.md, "Evaluation") three ways:
* per slice (the paper's protocol): Dice, Jaccard, HD and HD95 in mm on the
  prepared test slices, mean and standard deviation over slices, as Table 1;
* per volume (BraTS's protocol, beyond the paper): every axial slice of each
  test case's source volumes is segmented through the code path `predict`
  runs, inside the head, with the config's test-time flips (`eval.tta`), and
  cleaned by the 3D rule chosen on the validation volumes (`eval.postprocess`,
  `--nopostprocess`; recorded in `postprocess.json`); the 3D metrics and the
  BraTS scores of each region compare it with the whole label volume
  (`boundary_aware.volume_scores`). Only this protocol sees tumor predicted on
  slices that have none (`fp_slices`);
* selected slices: the same 3D metrics over each case's prepared slices
  only (not BraTS's protocol).
Hausdorff means are dominated by slices where one mask is empty (each adds
the image diagonal), so every summary also has the medians, the means over
items where both masks are non-empty, and the empty-mask counts
(`boundary_aware.scoring`).

Both checkpoints of a completed run are scored: the one the run's rule names
(`config.eval.checkpoint`, "final" by default; see `boundary_aware.run_directory`)
with every record, the other under `checkpoints` (its summaries, and its slice
and volume records, so that tables can compare under either rule). Writes
`metrics.json` in the workdir (`run_directory.METRICS_FORMAT`). An ensemble
of runs (`evaluate_ensemble`) is scored the same way (`score_models`) from the
mean of its members' probabilities, into its own folder.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from boundary_aware import postprocess
from boundary_aware.checkpointing import data_fingerprint
from boundary_aware.cli import exit_on, run_absl
from boundary_aware.config import read_run_config
from boundary_aware.errors import DataError, LockedError
from boundary_aware.files import exclusive_lock
from boundary_aware.inference.flips import TTA_CHOICES
from boundary_aware.inference.options import InferenceOptions
from boundary_aware.inference.predictor import check_ensemble
from boundary_aware.inference.sources import load_predictor
from boundary_aware.prepared import Manifest, load_prepared, manifest_path
from boundary_aware.run_directory import CHECKPOINTS, RunDirectory, scored_checkpoint
from boundary_aware.scoring import (EMPTY_POLICY, brats_summary, slice_records, summarize,
                                    whole_volume_record)
from boundary_aware.volume_scores import score_volumes, whole_volume_rules


def check_trained_on(run: RunDirectory, prepared: Path) -> None:
    """DataError naming the manifest unless `prepared` is the data the run was trained on
    (its SHA-256 in the run's state; runs without the record are not checked): data
    prepared again, with another split, would score training cases as test cases."""
    recorded = (run.read_state() or {}).get("data_manifest_sha256")
    path = manifest_path(prepared)
    if recorded and path.is_file() and data_fingerprint(prepared) != recorded:
        raise DataError(f"{path}: is not the prepared data {run.path} was trained on (the "
                        f"manifest changed since: prepared again, perhaps with another split); "
                        f"evaluate the run on its own data, or train it again")


def slice_scores(predict, prepared, split, threshold, manifest, volumes) -> dict:
    """Per-slice and selected-slices summaries and records of `predict` (slices -> {"seg":
    probabilities}) on the prepared slices, with the whole-volume `volumes` records."""
    images, masks, meta = load_prepared(prepared, split)
    probs = predict(images)["seg"]
    slices, cases = slice_records(probs > threshold, masks > 0, meta, manifest)
    return {"per_slice": summarize(slices),
            "per_volume": summarize(volumes) if volumes is not None else None,
            "selected_slices": summarize(cases), "slices": slices, "volumes": volumes,
            "selected_slices_cases": cases}


def score_models(models: dict, slice_predict: dict, manifest: Manifest, prepared: Path,
                 split: str, options: InferenceOptions, per_volume: bool, folder: Path,
                 default: str) -> tuple[dict, dict]:
    """The one orchestration of a run's checkpoints and of an ensemble: `models` maps each
    name to a predictor or an ensemble's list, `slice_predict` each name to its forward
    pass over the prepared slices. Returns ({name: {region: clean-up rule}} chosen on the
    validation volumes and recorded in FOLDER/postprocess.json (`default`: the folder's
    own name), {name: `slice_scores`, with its whole-volume records where `per_volume`})."""
    options = options if per_volume else replace(options, postprocess=False)
    rules = whole_volume_rules(models, manifest, options, folder, default)
    volumes = (score_volumes(models, manifest, split, options, rules) if per_volume
               else dict.fromkeys(models))
    scores = {name: slice_scores(slice_predict[name], prepared, split, options.threshold,
                                 manifest, volumes[name]) for name in models}
    return rules, scores


def _prepared_data(run: RunDirectory, config: dict) -> tuple[Path, Manifest]:
    """The prepared folder of a run's config and its manifest, checked to be what the run
    was trained on."""
    prepared = Path(config["data"]["prepared_dir"])
    manifest = Manifest.read(prepared)
    check_trained_on(run, prepared)
    return prepared, manifest


def evaluate(workdir: str | os.PathLike, checkpoint: str | None = None, split: str = "test",
             per_volume: bool = True, threshold: float | None = None, tta: str | None = None,
             use_postprocess: bool = True) -> dict:
    """Score a run's checkpoints on `split` and write `metrics.json` (module docstring).

    The run's config gives the inference options (`InferenceOptions.from_run`) unless
    `threshold` or `tta` (`inference.flips.TTA_CHOICES`) say otherwise; with
    `use_postprocess`, each checkpoint's clean-up rule is chosen on the validation
    volumes, written to `postprocess.json` and applied to the whole-volume scores
    (unless the config's `eval.postprocess` is false).
    """
    run = RunDirectory(workdir)
    if not run.path.is_dir():
        raise DataError(f"{run.path}: no such run directory")
    with run.lock():
        config = read_run_config(run)
        options = InferenceOptions.from_run(config, threshold, tta, use_postprocess)
        return _evaluate_locked(run, config, checkpoint, split, per_volume, options)


def _evaluate_locked(run: RunDirectory, config: dict, checkpoint, split, per_volume,
                     options: InferenceOptions) -> dict:
    prepared, manifest = _prepared_data(run, config)
    chosen = checkpoint or scored_checkpoint(config)
    model_path = run.checkpoint(chosen)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such checkpoint (train the run to the end "
                                f"first, or pass --checkpoint)")
    state = run.read_state() or {}
    epochs = {"final": state.get("epoch"), "last": state.get("epoch"),
              "best": state.get("best_epoch")}
    others = [c for c in CHECKPOINTS[:2] if c != chosen and run.checkpoint(c).is_file()]
    predictors = {name: load_predictor(run.checkpoint(name), options)
                  for name in [chosen] + others}
    batch_size = options.batch_size

    def keras_pass(model):
        return lambda x: model.predict(x, batch_size=batch_size, verbose=0)
    rules, scores = score_models(predictors, {n: keras_pass(p.model) for n, p in
                                              predictors.items()},
                                 manifest, prepared, split, options, per_volume, run.path, chosen)
    result = {"variant": config["variant"], "profile": config["profile"],
              "model": config["model"]["name"], "checkpoint": model_path.name,
              "checkpoint_rule": chosen, "epoch": epochs[chosen], "split": split,
              "threshold": options.threshold, "empty_policy": EMPTY_POLICY,
              "regions": list(manifest.regions),
              "whole_volume": whole_volume_record(options.flips, rules.get(chosen)),
              "checkpoints": {}}
    for name, predictor in predictors.items():
        summary = {"epoch": epochs[name], **scores[name]}
        if name == chosen:
            result.update(params=int(predictor.model.count_params()),
                          **{k: v for k, v in summary.items() if k != "epoch"})
            result["brats"] = brats_summary(summary["per_volume"])
            summary = {k: summary[k] for k in ("epoch", "per_slice", "per_volume",
                                               "selected_slices")}
        else:  # its records too: comparisons under the other checkpoint rule need them
            summary.pop("selected_slices_cases")
        result["checkpoints"][name] = summary
    try:
        return run.write_metrics(result)
    except OSError as err:  # the old metrics.json, if any, is intact (atomic write)
        raise DataError(f"{run.metrics_path}: cannot write ({err})") from None


def _ensemble_runs(workdirs, out: Path) -> tuple[list[RunDirectory], list[dict]]:
    """The runs of an ensemble and their configs, checked: at least two, none of them
    `out`, every one a run directory, all trained on the same prepared data."""
    runs = [RunDirectory(w) for w in workdirs]
    if len(runs) < 2:
        raise DataError("an ensemble takes at least two runs")
    if any(out.resolve() == r.path.resolve() for r in runs):
        raise DataError(f"{out}: is one of the ensemble's runs; choose another --out")
    configs = []
    for r in runs:
        if not r.path.is_dir():
            raise DataError(f"{r.path}: no such run directory")
        configs.append(read_run_config(r))
    prepared = [Path(c["data"]["prepared_dir"]).resolve() for c in configs]
    for r, p in zip(runs[1:], prepared[1:]):
        if p != prepared[0]:
            raise DataError(f"{runs[0].path} and {r.path}: an ensemble's runs must be trained "
                            f"on the same prepared data ({prepared[0]} and {p})")
    return runs, configs


def evaluate_ensemble(workdirs, out: str | os.PathLike, split: str = "test",
                      per_volume: bool = True, threshold: float | None = None,
                      tta: str | None = None, use_postprocess: bool = True) -> dict:
    """Score the mean probabilities of several runs (each its scored checkpoint) on the
    data they were trained on, and write OUT/metrics.json (and OUT/postprocess.json).

    The runs must share their prepared data and input; the first run's config gives
    the inference options unless `threshold` or `tta` say otherwise. Per slice: the mean
    of the members' probabilities on the prepared slices (no flips, as for a single
    run); whole volumes: `inference.volume.segment_volume` over every member and flip,
    then the clean-up chosen for the ensemble on the validation volumes.
    """
    out = Path(out)
    runs, configs = _ensemble_runs(workdirs, out)
    prepared, manifest = _prepared_data(runs[0], configs[0])
    for r in runs[1:]:
        check_trained_on(r, prepared)
    options = InferenceOptions.from_run(configs[0], threshold, tta, use_postprocess)
    paths = [r.checkpoint() for r in runs]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such checkpoint (train the run to the end first)")
    members = [load_predictor(p, options) for p in paths]
    check_ensemble(members, [str(r.path) for r in runs])

    def predict(images):
        return {"seg": np.mean([m(images)["seg"] for m in members], axis=0)}
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / ".lock", str(out)):
        rules, scores = score_models({"ensemble": members}, {"ensemble": predict}, manifest,
                                     prepared, split, options, per_volume, out, "ensemble")
        scores = scores["ensemble"]
        result = {"variant": f"{configs[0]['variant']}_ensemble",
                  "profile": configs[0]["profile"], "model": configs[0]["model"]["name"],
                  "members": [str(r.path) for r in runs], "checkpoint": paths[0].name,
                  "checkpoint_rule": scored_checkpoint(configs[0]), "epoch": None,
                  "split": split, "threshold": options.threshold,
                  "empty_policy": EMPTY_POLICY, "regions": list(manifest.regions),
                  "whole_volume": whole_volume_record(options.flips, rules.get("ensemble")),
                  "params": None, **scores, "brats": brats_summary(scores["per_volume"]),
                  "checkpoints": {}}
        return RunDirectory(out).write_metrics(result)


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    workdirs = [w for w in f.workdir.split(",") if w]
    overrides = dict(per_volume=f.per_volume, threshold=f.threshold, tta=f.tta,
                     use_postprocess=f.postprocess)
    with exit_on(FileNotFoundError, DataError, LockedError):
        if len(workdirs) > 1 or f.out:
            if len(workdirs) < 2 or not f.out:
                raise DataError("an ensemble takes several --workdir (comma-separated) and --out")
            if f.checkpoint:
                raise DataError("--checkpoint: an ensemble uses each run's scored checkpoint")
            result = evaluate_ensemble(workdirs, f.out, f.split, **overrides)
        else:
            result = evaluate(f.workdir, f.checkpoint, f.split, **overrides)
    report(result, f.out or f.workdir)


def report(result: dict, where) -> None:
    """The scores of a `metrics.json` on the console, in a few lines."""
    s, v = result["per_slice"], result["per_volume"]
    print(f"{where} ({result['checkpoint']}): {s['n']} slices; Dice {s['dice']['mean']:.3f} "
          f"± {s['dice']['std']:.3f}, Jaccard {s['jaccard']['mean']:.3f}, HD {s['hd']['mean']:.2f} "
          f"mm, HD95 {s['hd95']['mean']:.2f} mm")
    if v is None:
        return
    how = result["whole_volume"]
    rules = how["postprocess"] or {"": postprocess.NONE}
    rule = ", ".join((f"{region}: " if len(rules) > 1 else "") + postprocess.label(chosen)
                     for region, chosen in rules.items())
    mean = " (means over the regions)" if len(result.get("regions") or ()) > 1 else ""
    print(f"  whole volumes: {v['n']} cases{mean}; Dice {v['dice']['mean']:.3f}, HD95 "
          f"{v['hd95']['mean']:.2f} mm, {v['fp_slices']:g} slices with tumor predicted "
          f"where there is none (flips: {', '.join(how['flips'])}; clean-up: {rule})")
    for region, scores in (result.get("brats") or {}).items():
        print(f"  {region.upper()} (BraTS): Dice {scores['dice']:.3f}, HD95 "
              f"{scores['hd95']:.2f} mm; lesion-wise Dice {scores['lesion_dice']:.3f}, "
              f"HD95 {scores['lesion_hd95']:.2f} mm")


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("workdir", None, "A training run directory; several, comma-separated, "
                        "with --out: their ensemble (mean probabilities).")
    flags.DEFINE_string("out", None, "An ensemble's output folder (metrics.json, "
                        "postprocess.json).")
    flags.DEFINE_enum("checkpoint", None, list(CHECKPOINTS),
                      "Which model to score (default: the run's eval.checkpoint rule, 'final').")
    flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Which split to score.")
    flags.DEFINE_float("threshold", None, "Probability threshold (default: the config's).")
    flags.DEFINE_bool("per_volume", True, "Also segment and score the whole source volumes.")
    flags.DEFINE_enum("tta", None, list(TTA_CHOICES), "Whole volumes: test-time mirror axes "
                      "(default: the config's eval.tta).")
    flags.DEFINE_bool("postprocess", True, "Whole volumes: choose the 3D clean-up on the "
                      "validation volumes, record it (postprocess.json) and apply it.")
    flags.mark_flag_as_required("workdir")


def cli() -> None:
    """Console entry point `boundary-aware-evaluate`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
