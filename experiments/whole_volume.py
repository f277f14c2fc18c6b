"""Whole volumes, beyond the paper: what each inference option does, over seeds and volumes.

    make whole-volume [OUT=results/table1] [PHANTOM=...] [SEEDS=0,1,2,3,4] [WORKERS=2]
    boundary-aware-whole-volume --out=DIR [the flags of boundary-aware-table1]

Runs (or reuses, when OUT already holds them: point it at Table 1's folder)
the rows `ours` and `ours_tumor_free` (`data.tumor_free_fraction` = 0.25) over
every seed, then segments every validation and test volume with every run's
scored checkpoint under each setting of `SETTINGS`:

* `full_frame`: every slice, no head mask;
* `head`: only inside the head (every channel non-zero), as `predict` and
  `evaluate` do;
* `head+lr`, `head+lr,ap`: with test-time flips (`inference.flips.tta_flips`);
* each of these `+clean`: the 3D clean-up chosen for that run and setting on
  the validation volumes (`boundary_aware.postprocess`);

and the same for the seed ensemble of each row (the mean of its runs'
probabilities; its clean-up chosen on validation too). The test volumes take
part in no choice. Writes OUT/whole_volume.md and .json: per row and setting
the volume Dice, HD95 and false-positive slices (mean over seeds), the
seconds per volume of each flip setting here, and the comparisons
(`comparison.seeded_comparison`, seeds and volumes both drawn: two settings
of one row are paired by seed, the same runs segmenting the same volumes; an
ensemble's seed noise is bounded by its members'). Synthetic numbers say so.

Reference: docs/reproduction.md ("Whole volumes"); Isensee et al. 2021
(nnU-Net: mirroring, ensembles, post-processing chosen on held-out data).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from boundary_aware.cli import run_absl
from experiments.runner import (DEFAULT_SEEDS, define_experiment_flags, experiment_main,
                                prepare_data, run_sweep)
from experiments.steps import RunError, say
from experiments.table1 import DEFAULT_PHANTOM, PHANTOMS, VARIANTS

ROWS = ("ours", "ours_tumor_free")
FLIP_SETTINGS = {"": "none", "+lr": "lr", "+lr,ap": "lr,ap"}
SETTINGS = (["full_frame"] + [f"head{k}" for k in FLIP_SETTINGS] +
            [f"head{k}+clean" for k in FLIP_SETTINGS])
METRICS = {"dice": True, "hd95": False, "fp_slices": False}  # higher is better?
# (A, B, rows) of the comparisons: A minus B, for each row named
COMPARISONS = (
    ("head", "full_frame", ROWS),
    ("head+lr", "head", ROWS), ("head+lr,ap", "head", ROWS),
    ("head+clean", "head", ROWS), ("head+lr,ap+clean", "head+clean", ROWS),
    ("head+lr,ap+clean", "full_frame", ROWS),  # every default against none of them
)
DEFAULT_SETTING = "head+lr,ap+clean"  # what predict and evaluate do by default


def flip_probabilities(predictor, data, full_frame: bool):
    """{flip: tumor probability (X, Y, Z)} of one model on one `VolumeInput`, each flip
    alone and inside the head; with `full_frame` also "full_frame" (every slice, no head
    mask), and the seconds each flip took."""
    from boundary_aware.inference.flips import FLIPS
    from boundary_aware.inference.volume import segment_slices, segment_volume
    from boundary_aware.intensity import model_slices
    probs, seconds = {}, {}
    for flip in FLIPS:
        start = time.perf_counter()
        probs[flip] = segment_volume(predictor, data, outputs=("seg",), flips=(flip,))["seg"]
        seconds[flip] = time.perf_counter() - start
    if full_frame:
        size = predictor.input_shape[0]
        probs["full_frame"] = segment_slices(predictor, model_slices(data.volume, size),
                                             data.shape[:2], outputs=("seg",))["seg"]
    return probs, seconds


def setting_probabilities(flip_probs) -> dict:
    """{setting without +clean: probability} from `flip_probabilities` (a flip set's mean
    is the mean of its flips)."""
    from boundary_aware.inference.flips import tta_flips
    out = {"full_frame": flip_probs.get("full_frame")}
    for suffix, tta in FLIP_SETTINGS.items():
        out[f"head{suffix}"] = np.mean([flip_probs[f] for f in tta_flips(tta)], axis=0)
    return out


def measure(out: Path, runs: dict, rows: Sequence[str]) -> dict:
    """Every run's and every ensemble's volume records under every setting (module
    docstring): {"records": {row: {member: {setting: {case: {metric: value}}}}},
    "rules": ..., "seconds": {flips: per volume}}."""
    from boundary_aware import postprocess
    from boundary_aware.config import read_run_config
    from boundary_aware.prepared import Manifest
    from boundary_aware.scoring import score_volume
    from boundary_aware.volume_scores import volume_cases
    from boundary_aware.inference.flips import tta_flips
    from boundary_aware.inference.predictor import keras_predictor
    from boundary_aware.inference.volume import VolumeInput
    from boundary_aware.model_files import load_keras_model
    from boundary_aware.run_directory import RunDirectory

    first = RunDirectory(next(iter(runs[rows[0]].values())))
    config = read_run_config(first)
    manifest = Manifest.read(config["data"]["prepared_dir"])
    threshold = config["eval"]["threshold"]
    models = {(row, seed): keras_predictor(load_keras_model(RunDirectory(path).checkpoint()),
                                           config["eval"]["batch_size"],
                                           channels=manifest.channels)
              for row in rows for seed, path in sorted(runs[row].items())}
    base_settings = [s for s in SETTINGS if not s.endswith("+clean")]

    def all_probs(volume, full_frame):
        """{(row, member): {setting: probability}} for one volume; seconds per flip."""
        data = VolumeInput(volume)
        found, seconds = {}, {}
        for row in rows:
            per_seed = []
            for seed in sorted(runs[row]):
                flips, secs = flip_probabilities(models[(row, seed)], data, full_frame)
                for flip, value in secs.items():
                    seconds.setdefault(flip, []).append(value)
                per_seed.append(setting_probabilities(flips))
                found[(row, f"seed{seed}")] = per_seed[-1]
            found[(row, "ensemble")] = {
                k: (np.mean([p[k] for p in per_seed], axis=0) if per_seed[0][k] is not None
                    else None) for k in per_seed[0]}
        return found, seconds

    say("whole volumes: choosing the clean-up of every run and setting on the validation "
        "volumes")
    candidates = {}
    region = manifest.regions[0]  # Table 1's runs: one region, the tumor core
    for _, volume, refs, spacing in volume_cases(manifest, "val"):
        ref = refs[..., 0]
        found, _ = all_probs(volume, full_frame=False)
        for key, probs in found.items():
            for setting in base_settings[1:]:
                candidates.setdefault((*key, setting), []).append(
                    postprocess.candidate_dice(probs[setting] > threshold, ref, spacing))
    rules = {key: postprocess.choose(cases)["rule"] for key, cases in candidates.items()}

    say("whole volumes: scoring every test volume under every setting")
    records, seconds = {}, {}
    for case_id, volume, refs, spacing in volume_cases(manifest, "test"):
        ref = refs[..., 0]
        found, secs = all_probs(volume, full_frame=True)
        for flip, values in secs.items():
            seconds.setdefault(flip, []).extend(values)
        for (row, member), probs in found.items():
            target = records.setdefault(row, {}).setdefault(member, {})
            for setting in SETTINGS:
                base = setting.replace("+clean", "")
                mask = probs[base] > threshold
                if setting.endswith("+clean"):
                    mask = postprocess.apply(mask, rules[(row, member, base)], spacing)
                score = score_volume(mask, ref, spacing, region)
                target.setdefault(setting, {})[case_id] = {m: score[m] for m in METRICS}
    per_flip = {f: float(np.mean(v)) for f, v in seconds.items()}
    flip_seconds = {tta: sum(per_flip[f] for f in tta_flips(tta)) for tta in FLIP_SETTINGS.values()}
    return {"records": records, "seconds_per_volume": flip_seconds,
            "rules": {f"{r}/{m}/{s}": postprocess.label(rule)
                      for (r, m, s), rule in sorted(rules.items())}}


def summarize(found: dict, rows: Sequence[str]) -> tuple[list, list]:
    """(rows of the settings table, comparisons) from `measure`'s records."""
    from boundary_aware.comparison import mean_std, seeded_comparison, verdict
    records = found["records"]
    table = []
    for row in rows:
        seeds = [m for m in members_of(records)[row] if m != "ensemble"]
        for setting in SETTINGS:
            line = {"row": row, "setting": setting}
            for member in (seeds, ["ensemble"]):
                kind = "ensemble" if member == ["ensemble"] else "seeds"
                for metric in METRICS:
                    values = [np.mean([r[metric] for r in records[row][m][setting].values()])
                              for m in member]
                    line[f"{kind}_{metric}"] = mean_std(values)
            table.append(line)

    def items(row, members, setting, metric):
        return [{case: r[metric] for case, r in records[row][m][setting].items()}
                for m in members]

    comps = []

    def add(row_a, a, row_b, b, ensemble_a=False):
        seeds_a = [m for m in members_of(records)[row_a] if m != "ensemble"]
        seeds_b = [m for m in members_of(records)[row_b] if m != "ensemble"]
        for metric, higher in METRICS.items():
            c = seeded_comparison(
                items(row_a, ["ensemble"] if ensemble_a else seeds_a, a, metric),
                items(row_b, seeds_b, b, metric),
                a_members=items(row_a, seeds_a, a, metric) if ensemble_a else None,
                paired=row_a == row_b and not ensemble_a)  # one row's runs, two settings
            comps.append({"a": f"{row_a}{' ensemble' if ensemble_a else ''} {a}",
                          "b": f"{row_b} {b}", "metric": metric, **c,
                          "verdict": verdict(c, higher)})
    for a, b, which in COMPARISONS:
        for row in which:
            if row in rows:
                add(row, a, row, b)
    for setting in ("head+clean", DEFAULT_SETTING):
        add(rows[0], setting, rows[0], setting, ensemble_a=True)
        if len(rows) > 1:
            add(rows[1], setting, rows[0], setting)
    return table, comps


def render(title: str, table: list, comps: list, found: dict) -> str:
    """The markdown of OUT/whole_volume.md."""
    from boundary_aware.comparison import METHOD

    def pm(pair, digits):
        mean, std = pair
        return f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" ± {std:.{digits}f}")
    lines = [f"# {title}", "",
             "Whole test volumes, every setting of `experiments/whole_volume.py` (module "
             "docstring). Per seed: the mean over volumes; shown: mean ± standard deviation "
             "over seeds; the ensemble is one model (its members' mean probabilities).", "",
             "| row | setting | volume Dice | volume HD95 (mm) | FP slices per volume | "
             "ensemble Dice | ensemble HD95 | ensemble FP slices |", "| --- " * 8 + "|"]
    for line in table:
        lines.append("| " + " | ".join([
            line["row"], line["setting"], pm(line["seeds_dice"], 3), pm(line["seeds_hd95"], 2),
            pm(line["seeds_fp_slices"], 2), pm(line["ensemble_dice"], 3),
            pm(line["ensemble_hd95"], 2), pm(line["ensemble_fp_slices"], 2)]) + " |")
    lines += ["", "## Differences (A minus B) over seeds and test volumes", "",
              f"95% CI: {METHOD}; two settings of one row are paired by seed (the same "
              "runs), and an ensemble's seed noise is bounded by its members' "
              "(`comparison.seeded_comparison`, `paired`, `a_members`). Dice: higher is better; HD95 and "
              "FP slices: lower is better. An interval that crosses zero is \"not shown\".", "",
              "| A | B | metric | mean difference | 95% CI | p | reading |", "| --- " * 7 + "|"]
    for c in comps:
        digits = 3 if c["metric"] == "dice" else 2
        ci = ("—" if c["ci95"][0] is None else
              f"[{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]")
        p = "—" if c["p_value"] is None else f"{c['p_value']:.2g}"
        reading = {"A better": "A better", "B better": "B better"}.get(c["verdict"], "not shown")
        lines.append(f"| {c['a']} | {c['b']} | {c['metric']} | {c['mean_diff']:.{digits}f} | "
                     f"{ci} | {p} | {reading} |")
    seconds = found["seconds_per_volume"]
    lines += ["", "Seconds per volume and model here (the forward passes and resizing of one "
              "test volume; `make bench-predict` times a 240 x 240 x 155 volume): " +
              ", ".join(f"flips {k}: {v:.3f} s" for k, v in seconds.items()) + ".", "",
              "Clean-up chosen on validation per row / member / setting: " +
              "; ".join(f"{k}: {v}" for k, v in found["rules"].items()) + ".", ""]
    return "\n".join(lines)


def members_of(records: dict) -> dict:
    """{row: [member, ...]} of `measure`'s records (the seeds, then "ensemble")."""
    return {row: sorted(found, key=lambda m: (m == "ensemble", m)) for row, found in records.items()}


def write(out: Path, title: str, found: dict, rows: Sequence[str]) -> str:
    """OUT/whole_volume.md and .json from `measure`'s result (or the .json's own records,
    so that a table can be written again without segmenting anything)."""
    from boundary_aware.files import atomic_write_text
    table, comps = summarize(found, rows)
    text = render(title, table, comps, found)
    atomic_write_text(out / "whole_volume.md", text)
    atomic_write_text(out / "whole_volume.json", json.dumps(
        {"title": title, "settings": list(SETTINGS), "table": table, "comparisons": comps,
         "seconds_per_volume": found["seconds_per_volume"], "rules": found["rules"],
         "records": found["records"]}, indent=1))
    return text


def whole_volume(out: str | os.PathLike, *, seeds: Sequence[int] = DEFAULT_SEEDS,
                 brats_dir: str | None = None, split_file: str | None = None,
                 profile: str | None = None, overrides: Sequence[str] = (),
                 executor: str = "local", rows: Sequence[str] = ROWS,
                 phantom: str = DEFAULT_PHANTOM, **executor_options) -> None:
    """The rows over `seeds`, then every setting measured (module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile or ("paper" if brats_dir else "demo")
    if brats_dir is None:
        say("no BRATS_DIR given: whole-volume settings on SYNTHETIC data; NOT BraTS numbers")
    prepared = prepare_data(out, profile, brats_dir, split_file, phantom=phantom,
                            models=[VARIANTS[row].model for row in rows])
    done, failures = run_sweep(out, rows, seeds, profile, prepared, overrides, executor,
                               **executor_options)
    if failures:
        raise RunError(f"{out}: runs failed ({', '.join(sorted(failures))}); rerun to resume")
    runs = {row: {seed: Path(path).parent for seed, path in done[row].items()} for row in rows}
    found = measure(out, runs, rows)
    data = (f"SYNTHETIC BraTS-like data (NOT BraTS), the {phantom} phantom (generator seed "
            f"{PHANTOMS[phantom]['seed']})" if brats_dir is None else f"BraTS data in {brats_dir}")
    text = write(out, f"Whole-volume settings: {profile} profile on {data}", found, rows)
    say(f"wrote {out / 'whole_volume.md'} and whole_volume.json")
    print(text)


def main(argv) -> None:
    experiment_main(whole_volume)


def define_flags() -> None:
    define_experiment_flags("results/table1")


def cli() -> None:
    """Console entry point `boundary-aware-whole-volume`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
