"""Evaluation: `boundary-aware-evaluate --workdir=DIR [--checkpoint=final|best] [--tta=lr]`
(an ensemble: `--workdir=DIR1,DIR2,... --out=DIR`).

Scores the test split of a run (docs/design.md, "Evaluation") three ways:
* per slice (the paper's protocol): Dice, Jaccard, HD and HD95 in mm on the
  prepared test slices, mean and standard deviation over slices, as Table 1;
* per volume (BraTS's protocol, beyond the paper): every axial slice of each
  test case's source volumes (the files of the data manifest's channels,
  checked against their recorded SHA-256) is segmented through the same code
  path as `predict` (`boundary_aware.inference`), and the 3D metrics compare
  the predicted tumor core with the whole label volume at the source
  spacing. This counts the false positives on slices without tumor core
  (`fp_slices`), which the paper's protocol never sees. Each volume also gets
  the BraTS scores of its region (`regions`, `boundary_aware.brats_scores`:
  whole-volume Dice and HD95 with the challenge's empty-mask values, and the
  2023 lesion-wise Dice and HD95), summarized per region. As `predict` does,
  only the head is segmented, with the config's test-time flips
  (`eval.tta`), and each checkpoint's mask is cleaned by the 3D rule chosen on
  the validation volumes (`boundary_aware.postprocess`, recorded in
  `postprocess.json`; `eval.postprocess`, `--nopostprocess`);
* selected slices: the same 3D metrics over each case's prepared slices
  only (the former "per case" score; not BraTS's protocol).
Hausdorff means are dominated by slices where one mask is empty (each adds
the image diagonal), so every summary also has the medians, the means over
items where both masks are non-empty, and the empty-mask counts.

Both checkpoints of a completed run are scored: the one the run's rule names
(`config.eval.checkpoint`, "final" by default; see `boundary_aware.run_directory`)
with every record, the other under `checkpoints` (its summaries, and its slice
and volume records, so that tables can compare under either rule). Writes
`metrics.json` in the workdir (`run_directory.METRICS_FORMAT`). An ensemble
of runs (`evaluate_ensemble`) is scored the same way from the mean of its
members' probabilities, into its own folder.

Reference: Hatamizadeh et al. 2019, Sec. 3.2 and Table 1.
"""

from __future__ import annotations

import collections
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from boundary_aware import brats_scores, metrics, postprocess
from boundary_aware.checkpointing import data_fingerprint
from boundary_aware.cli import default_workers, exit_on, run_absl
from boundary_aware.comparison import mean_std
from boundary_aware.data import DataError, Manifest, load_prepared, manifest_path, region_mask
from boundary_aware.errors import LockedError
from boundary_aware.files import atomic_write_text, exclusive_lock, file_sha256
from boundary_aware.inference import (NO_TTA, TTA_CHOICES, VolumeInput, check_ensemble, keras_predictor,
                                     segment_volume, tta_flips, with_map_axis)
from boundary_aware.metrics import METRIC_NAMES
from boundary_aware.model_files import load_keras_model
from boundary_aware.nifti import load_channels, load_volume
from boundary_aware.run_directory import (CHECKPOINTS, METRICS_FORMAT, RunDirectory,
                                          scored_checkpoint)

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
    if records and "regions" in records[0]:
        summary["regions"] = {
            region: {name: dict(zip(("mean", "std"),
                                    mean_std([r["regions"][region][name] for r in records])))
                     for name, value in entry.items() if isinstance(value, (int, float))}
            for region, entry in records[0]["regions"].items()}
    return summary


def merge_regions(regions, per: dict) -> dict:
    """One record from the records `per` ({region: record}) of the same item: for one region
    (the paper) its record; for several, the mean of every metric over the regions
    (`empty`: theirs where they agree, else "none"), with each region's own record under
    `regions` (a record that carries `regions`, as `score_volume`'s, gives that entry)."""
    if len(regions) == 1:
        return per[regions[0]]
    first = per[regions[0]]
    record = {k: float(np.mean([per[r][k] for r in regions])) for k, v in first.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
    states = {per[r]["empty"] for r in regions}
    record["empty"] = states.pop() if len(states) == 1 else metrics.EMPTY_NONE
    record["regions"] = {r: per[r]["regions"][r] if "regions" in per[r] else
                         {k: v for k, v in per[r].items() if k != "empty"} for r in regions}
    return record


def region_metrics(pred, ref, spacing, regions) -> dict:
    """`merge_regions` of the segmentation metrics of (..., R) masks of `regions`."""
    return merge_regions(regions, {r: metrics.segmentation_metrics(pred[..., i], ref[..., i],
                                                                   spacing)
                                   for i, r in enumerate(regions)})


def score(predictions, masks, meta, manifest: Manifest):
    """Per-slice and selected-slices records from binary predictions (N, H, W, R), one map
    per region of the manifest (`merge_regions`)."""
    regions = manifest.regions
    slice_records, by_case = [], {}
    for pred, ref, info in zip(predictions, masks, meta):
        spacing = manifest.slice_spacing(info["case"])
        record = {"case": info["case"], "slice": info["slice"],
                  **region_metrics(pred, ref, spacing, regions)}
        slice_records.append(record)
        by_case.setdefault(info["case"], []).append((info["slice"], pred, ref))
    case_records = []
    for case_id, items in by_case.items():
        items.sort(key=lambda item: item[0])
        pred = np.stack([p for _, p, _ in items], axis=-2)  # (H, W, Z, R)
        ref = np.stack([r for _, _, r in items], axis=-2)
        spacing = manifest.slice_spacing(case_id) + manifest.spacing(case_id)[2:]
        case_records.append({"case": case_id, "slices": len(items),
                             **region_metrics(pred, ref, spacing, regions)})
    return slice_records, case_records


def score_volume(pred, ref, spacing, region):
    """3D metrics of one whole volume (X, Y, Z) of `region`, its axial false-positive slices,
    and its BraTS scores (`regions`: {region: `brats_scores.region_scores`})."""
    pred_slices, ref_slices = pred.any(axis=(0, 1)), ref.any(axis=(0, 1))
    return {**metrics.segmentation_metrics(pred, ref, spacing),
            "slices": int(pred.shape[2]), "tumor_slices": int(ref_slices.sum()),
            "pred_slices": int(pred_slices.sum()),
            "fp_slices": int(np.count_nonzero(pred_slices & ~ref_slices)),
            "regions": {region: brats_scores.region_scores(pred, ref, spacing)}}


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
    """(case id, (X, Y, Z, S) volume of the manifest's sequences, (X, Y, Z, R) bool masks of
    its regions, spacing) of every case of a split."""
    for case_id in manifest.split(split):
        paths = [source_file(manifest, case_id, c) for c in manifest.sequences]
        volume, _, zooms = load_channels(paths, manifest.sequences)
        labels, _, _ = load_volume(source_file(manifest, case_id, "seg"), "seg")
        masks = np.stack([region_mask(labels, manifest.convention(case_id), r) > 0
                          for r in manifest.regions], axis=-1)
        yield case_id, volume, masks, zooms[:3]


def volume_probabilities(predictors, manifest, split, flips=NO_TTA):
    """(case id, {name: region probabilities (X, Y, Z, R)}, region masks (X, Y, Z, R),
    spacing) of every case of a split, for `predictors` ({name: a Predictor or an
    ensemble's list}); each source volume is read, and resized to each input size, once
    (`inference.VolumeInput`)."""
    for case_id, volume, ref, spacing in volume_cases(manifest, split):
        data = VolumeInput(volume)
        probs = {name: segment_volume(p, data, outputs=("seg",), flips=flips)["seg"]
                 for name, p in predictors.items()}
        yield case_id, {n: with_map_axis(p) for n, p in probs.items()}, ref, spacing


def scored_in_order(jobs, score, workers: int | None = None):
    """`score(*job)` of every job, in the jobs' order, on `workers` threads (default: one per
    core) while the `jobs` iterator (which reads volumes and predicts) makes the next ones.
    The scores (NumPy and SciPy, which release the GIL) then use the cores a single thread
    leaves idle; at most twice `workers` jobs wait, to bound the memory they hold."""
    workers = workers or default_workers()
    with ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for job in jobs:
            pending.append(pool.submit(score, *job))
            while len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def choose_postprocessing(predictors, manifest, threshold, flips=NO_TTA, split="val"):
    """{name: {region: postprocess.choose(...)}}: each predictor's clean-up rule per region,
    chosen on the whole volumes of `split` (the validation split; never the scored one)."""
    per_case = {name: {r: [] for r in manifest.regions} for name in predictors}
    jobs = ((name, region, prob[..., i] > threshold, ref[..., i], spacing)
            for _, probs, ref, spacing in volume_probabilities(predictors, manifest, split, flips)
            for name, prob in probs.items() for i, region in enumerate(manifest.regions))

    def candidates(name, region, pred, ref, spacing):
        return name, region, postprocess.candidate_dice(pred, ref, spacing)

    for name, region, dice in scored_in_order(jobs, candidates):
        per_case[name][region].append(dice)
    return {name: {region: postprocess.choose(cases) for region, cases in regions.items()}
            for name, regions in per_case.items()}


def score_volumes(predictors, manifest, split, threshold, flips=NO_TTA, rules=None):
    """{name: whole-volume records} of several predictors ({name: Predictor or list}), each
    region's mask cleaned by its `rules[name]` ({region: rule}; none where absent); the
    volumes are scored on the cores while the next are predicted (`scored_in_order`)."""
    rules = rules or {}
    records = {name: [] for name in predictors}

    def score(name, case_id, prob, ref, spacing):
        pred = np.stack([postprocess.apply(prob[..., i] > threshold,
                                           (rules.get(name) or {}).get(r, postprocess.NONE),
                                           spacing)
                         for i, r in enumerate(manifest.regions)], axis=-1)
        return name, {"case": case_id, **volume_record(pred, ref, spacing, manifest.regions)}

    jobs = ((name, case_id, prob, ref, spacing)
            for case_id, probs, ref, spacing in volume_probabilities(predictors, manifest, split,
                                                                     flips)
            for name, prob in probs.items())
    for name, record in scored_in_order(jobs, score):
        records[name].append(record)
    return records


def volume_record(pred, ref, spacing, regions):
    """The whole-volume record of (X, Y, Z, R) masks of `regions`: `merge_regions` of each
    region's `score_volume`."""
    return merge_regions(regions, {r: score_volume(pred[..., i], ref[..., i], spacing, r)
                                   for i, r in enumerate(regions)})


def evaluate(workdir: str | os.PathLike, checkpoint: str | None = None, split: str = "test",
             threshold: float | None = None, per_volume: bool = True, tta: str | None = None,
             use_postprocess: bool = True) -> dict:
    """Score a run's checkpoints on `split` and write `metrics.json` (module docstring).

    `tta`: the test-time flips of the whole-volume scores (`inference.tta_flips`;
    None: the config's `eval.tta`). With `use_postprocess`, each checkpoint's clean-up
    rule is chosen on the validation volumes, written to `postprocess.json` and applied
    to the whole-volume scores (unless the config's `eval.postprocess` is false).
    """
    run = RunDirectory(workdir)
    if not run.path.is_dir():
        raise DataError(f"{run.path}: no such run directory")
    with run.lock():
        return _evaluate_locked(run, checkpoint, split, threshold, per_volume, tta,
                                use_postprocess)


def whole_volume_settings(config, threshold, tta):
    """(threshold, flips) from the arguments, else the run's config (`eval.tta`: runs
    from before it existed had no flips)."""
    threshold = config["eval"]["threshold"] if threshold is None else threshold
    if not 0 < threshold < 1:
        raise DataError(f"--threshold must be between 0 and 1, got {threshold}")
    return threshold, tta_flips(config["eval"].get("tta", "none") if tta is None else tta)


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


def _evaluate_locked(run: RunDirectory, checkpoint, split, threshold, per_volume, tta,
                     use_postprocess) -> dict:
    config = run.read_config()
    prepared = Path(config["data"]["prepared_dir"])
    manifest = Manifest.read(prepared)
    check_trained_on(run, prepared)
    chosen = checkpoint or scored_checkpoint(config)
    model_path = run.checkpoint(chosen)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such checkpoint (train the run to the end "
                                f"first, or pass --checkpoint)")
    threshold, flips = whole_volume_settings(config, threshold, tta)
    use_postprocess = use_postprocess and config["eval"].get("postprocess", True)
    batch_size = config["eval"]["batch_size"]
    state = run.read_state() or {}
    epochs = {"final": state.get("epoch"), "last": state.get("epoch"),
              "best": state.get("best_epoch")}
    others = [c for c in CHECKPOINTS[:2] if c != chosen and run.checkpoint(c).is_file()]
    models = {name: load_keras_model(run.checkpoint(name)) for name in [chosen] + others}
    predictors = {name: keras_predictor(m, batch_size, channels=manifest.channels,
                                        regions=manifest.regions)
                  for name, m in models.items()}
    rules = whole_volume_rules(predictors, manifest, threshold, flips, per_volume,
                               use_postprocess, run.path, chosen)
    volumes = (score_volumes(predictors, manifest, split, threshold, flips, rules)
               if per_volume else dict.fromkeys(models))
    result = {"variant": config["variant"], "profile": config["profile"],
              "model": config["model"]["name"], "checkpoint": model_path.name,
              "checkpoint_rule": chosen, "epoch": epochs[chosen], "split": split,
              "threshold": threshold, "empty_policy": EMPTY_POLICY,
              "regions": list(manifest.regions),
              "whole_volume": whole_volume_record(flips, rules.get(chosen)), "checkpoints": {}}
    for name, model in models.items():
        summary = {"epoch": epochs[name],
                   **slice_scores(lambda x: model.predict(x, batch_size=batch_size, verbose=0),
                                  prepared, split, threshold, manifest, volumes[name])}
        if name == chosen:
            result.update(params=int(model.count_params()), **{k: v for k, v in summary.items()
                                                                if k != "epoch"})
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


def whole_volume_rules(predictors, manifest, threshold, flips, per_volume, use_postprocess,
                       folder, default):
    """{name: {region: rule}}: the clean-up chosen on the validation volumes (written to
    FOLDER/postprocess.json), or {} without whole-volume scores or post-processing."""
    if not (per_volume and use_postprocess):
        return {}
    choices = choose_postprocessing(predictors, manifest, threshold, flips)
    postprocess.write(folder, choices, default, "val", flips)
    return {name: {region: c["rule"] for region, c in regions.items()}
            for name, regions in choices.items()}


def brats_summary(per_volume) -> dict | None:
    """{region: {dice, hd95, lesion_dice, lesion_hd95}}: the BraTS scores' means over the
    volumes (None without whole-volume scores)."""
    if not per_volume or "regions" not in per_volume:
        return None
    return {region: {name: scores[name]["mean"] for name in brats_scores.SCORE_NAMES}
            for region, scores in per_volume["regions"].items()}


def whole_volume_record(flips, rules):
    """How the whole volumes were segmented: the flips and the clean-up rule per region."""
    return {"flips": list(flips), "postprocess": rules or None}


def slice_scores(predict, prepared, split, threshold, manifest, volumes) -> dict:
    """Per-slice and selected-slices summaries and records of `predict` (slices -> {"seg":
    probabilities}) on the prepared slices, with the whole-volume `volumes` records."""
    images, masks, meta = load_prepared(prepared, split)
    probs = predict(images)["seg"]
    slices, cases = score(probs > threshold, masks > 0, meta, manifest)
    return {"per_slice": summarize(slices),
            "per_volume": summarize(volumes) if volumes is not None else None,
            "selected_slices": summarize(cases), "slices": slices, "volumes": volumes,
            "selected_slices_cases": cases}


def evaluate_ensemble(workdirs, out: str | os.PathLike, split: str = "test",
                      threshold: float | None = None, per_volume: bool = True,
                      tta: str | None = None, use_postprocess: bool = True) -> dict:
    """Score the mean probabilities of several runs (each its scored checkpoint) on the
    data they were trained on, and write OUT/metrics.json (and OUT/postprocess.json).

    The runs must share their prepared data and input; the first run's config gives
    the threshold and flips unless given. Per slice: the mean of the members'
    probabilities on the prepared slices (no flips, as for a single run); whole volumes:
    `inference.segment_volume` over every member and flip, then the clean-up chosen for
    the ensemble on the validation volumes.
    """
    runs = [RunDirectory(w) for w in workdirs]
    if len(runs) < 2:
        raise DataError("an ensemble takes at least two runs")
    out = Path(out)
    if any(out.resolve() == r.path.resolve() for r in runs):
        raise DataError(f"{out}: is one of the ensemble's runs; choose another --out")
    configs = []
    for r in runs:
        if not r.path.is_dir():
            raise DataError(f"{r.path}: no such run directory")
        configs.append(r.read_config())
    prepared = [Path(c["data"]["prepared_dir"]).resolve() for c in configs]
    for r, p in zip(runs[1:], prepared[1:]):
        if p != prepared[0]:
            raise DataError(f"{runs[0].path} and {r.path}: an ensemble's runs must be trained "
                            f"on the same prepared data ({prepared[0]} and {p})")
    manifest = Manifest.read(prepared[0])
    for r in runs:
        check_trained_on(r, prepared[0])
    threshold, flips = whole_volume_settings(configs[0], threshold, tta)
    batch_size = configs[0]["eval"]["batch_size"]
    paths = [r.checkpoint() for r in runs]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such checkpoint (train the run to the end first)")
    members = [keras_predictor(load_keras_model(p), batch_size, channels=manifest.channels,
                               regions=manifest.regions)
               for p in paths]
    check_ensemble(members, [str(r.path) for r in runs])
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / ".lock", str(out)):
        rules = whole_volume_rules({"ensemble": members}, manifest, threshold, flips,
                                   per_volume, use_postprocess, out, "ensemble")
        volumes = (score_volumes({"ensemble": members}, manifest, split, threshold, flips,
                                 rules)["ensemble"] if per_volume else None)

        def predict(images):
            return {"seg": np.mean([m(images)["seg"] for m in members], axis=0)}
        scores = slice_scores(predict, prepared[0], split, threshold, manifest, volumes)
        rule = scored_checkpoint(configs[0])
        result = {"variant": f"{configs[0]['variant']}_ensemble",
                  "profile": configs[0]["profile"], "model": configs[0]["model"]["name"],
                  "members": [str(r.path) for r in runs], "checkpoint": paths[0].name,
                  "checkpoint_rule": rule, "epoch": None, "split": split,
                  "threshold": threshold, "empty_policy": EMPTY_POLICY,
                  "regions": list(manifest.regions),
                  "whole_volume": whole_volume_record(flips, rules.get("ensemble")),
                  "params": None, **scores, "brats": brats_summary(scores["per_volume"]),
                  "checkpoints": {}}
        stamped = {"format_version": METRICS_FORMAT, **result}
        atomic_write_text(out / "metrics.json", json.dumps(stamped, indent=1))
    return stamped


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    workdirs = [w for w in f.workdir.split(",") if w]
    with exit_on(FileNotFoundError, DataError, LockedError):
        if len(workdirs) > 1 or f.out:
            if len(workdirs) < 2 or not f.out:
                raise DataError("an ensemble takes several --workdir (comma-separated) and --out")
            if f.checkpoint:
                raise DataError("--checkpoint: an ensemble uses each run's scored checkpoint")
            result = evaluate_ensemble(workdirs, f.out, f.split, f.threshold, f.per_volume,
                                       f.tta, f.postprocess)
        else:
            result = evaluate(f.workdir, f.checkpoint, f.split, f.threshold, f.per_volume,
                              f.tta, f.postprocess)
    s, v = result["per_slice"], result["per_volume"]
    where = f.out or f.workdir
    print(f"{where} ({result['checkpoint']}): {s['n']} slices; Dice {s['dice']['mean']:.3f} "
          f"± {s['dice']['std']:.3f}, Jaccard {s['jaccard']['mean']:.3f}, HD {s['hd']['mean']:.2f} "
          f"mm, HD95 {s['hd95']['mean']:.2f} mm")
    if v is not None:
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
