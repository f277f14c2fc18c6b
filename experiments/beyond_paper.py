"""Beyond the paper: four sequences in, three BraTS regions out, neighbouring slices as
context, scored as BraTS scores.

    make beyond-paper [OUT=results/beyond_paper] [PHANTOM=...] [SEEDS=0,1,2,3,4] [WORKERS=2]
    boundary-aware-beyond-paper --out=DIR [the flags of boundary-aware-table1]

Trains Ours and U-Net over every seed in two settings (`SETTINGS`): the
paper's (T1c in, tumor core out) and BraTS's (T1, T1c, T2 and FLAIR in, one
sigmoid map each for whole tumor, tumor core and enhancing tumor out:
region-based training), on the same cases and split; and Ours in a third, the
paper's with one neighbouring slice above and below as context (2.5D,
`data.context_slices` = 1). Without --brats_dir the
cases are the synthetic phantom's with all four sequences (its T1c is Table
1's, so the paper setting's runs match Table 1's). Every run is scored by
`evaluate` (whole volumes, the run's flips and clean-up, each region's BraTS
scores: `boundary_aware.brats_scores`), and OUT/beyond_paper.md and .json
give, per region, every row's whole-volume Dice and HD95 and lesion-wise
Dice and HD95 (mean ± standard deviation over seeds), and the differences
(`comparison.seeded_comparison`: seeds and test volumes both drawn, as Table
1's): Ours against U-Net in each setting, each model's four-sequence tumor
core against its T1c-only one, and Ours with context against Ours without.
Synthetic numbers say so.

Reference: Hatamizadeh et al. 2019 (the paper's setting); Isensee et al. 2021
(nnU-Net's region-based BraTS training); the BraTS 2023 lesion-wise metrics.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from boundary_aware.cli import run_absl
from boundary_aware.channels import PAPER_SEQUENCES, parse_sequences
from boundary_aware.regions import PAPER_REGION, parse_regions
from experiments.runner import (DEFAULT_SEEDS, define_experiment_flags, experiment_main,
                                prepare_data, run_sweep)
from experiments.steps import RunError, say
from experiments.table1 import BRATS_DATA, DEFAULT_PHANTOM, PHANTOMS, VARIANTS

# setting: (input sequences, output regions, context slices, prepared folder under OUT)
SETTINGS = {
    "paper": (PAPER_SEQUENCES, (PAPER_REGION,), 0, "prepared"),
    "brats": (parse_sequences(BRATS_DATA["sequences"]), parse_regions(BRATS_DATA["regions"]),
              0, "prepared_brats"),
    "context": (PAPER_SEQUENCES, (PAPER_REGION,), 1, "prepared_context"),
}
ROWS = ("unet", "ours", "unet_brats", "ours_brats", "ours_context")
SCORES = {"dice": True, "hd95": False, "lesion_dice": True, "lesion_hd95": False}  # higher better?
# (A, B, regions): A minus B on each region both rows segment
COMPARISONS = (
    ("ours_brats", "unet_brats", ("wt", "tc", "et")),
    ("ours", "unet", ("tc",)),
    ("ours_brats", "ours", ("tc",)),
    ("unet_brats", "unet", ("tc",)),
    ("ours_brats", "ours_brats_per_region", ("wt", "tc", "et")),  # the edge-target choice
    ("ours_context", "ours", ("tc",)),
)


def setting_of(row: str) -> str:
    """The setting a row trains in: the one whose sequences, regions and context slices its
    data options name."""
    options = VARIANTS[row].data_options
    for name, (sequences, regions, context, _) in SETTINGS.items():
        if (parse_sequences(options.get("sequences", ",".join(PAPER_SEQUENCES))) == sequences
                and parse_regions(options.get("regions", PAPER_REGION)) == regions
                and options.get("context_slices", 0) == context):
            return name
    raise ValueError(f"row {row!r} trains in no setting of {sorted(SETTINGS)}")


def region_values(metrics: dict, region: str, score: str) -> dict:
    """{case: score} of one run's whole-volume records for one region (its BraTS scores)."""
    return {r["case"]: r["regions"][region][score] for r in metrics.get("volumes") or []
            if region in r.get("regions", {})}


def summarize(runs: dict) -> tuple[list, list]:
    """(table rows, comparisons) from {row: {seed: metrics}}."""
    from boundary_aware.comparison import mean_std, seeded_comparison, verdict
    table = []
    for row, seeds in runs.items():
        first = next(iter(seeds.values()))
        for region in first["regions"]:
            line = {"row": row, "label": VARIANTS[row].label, "setting": setting_of(row),
                    "region": region, "seeds": len(seeds)}
            for score in SCORES:
                line[score] = mean_std([np.mean(list(region_values(m, region, score).values()))
                                        for m in seeds.values()])
            table.append(line)
    comps = []
    for a, b, regions in COMPARISONS:
        if a not in runs or b not in runs:
            continue
        for region in regions:
            for score, higher in SCORES.items():
                c = seeded_comparison([region_values(m, region, score) for m in runs[a].values()],
                                      [region_values(m, region, score) for m in runs[b].values()])
                comps.append({"a": a, "b": b, "region": region, "metric": score, **c,
                              "verdict": verdict(c, higher)})
    return table, comps


def render(title: str, table: list, comps: list) -> str:
    """The markdown of OUT/beyond_paper.md."""
    from boundary_aware.comparison import METHOD

    def pm(pair, digits):
        mean, std = pair
        return f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" ± {std:.{digits}f}")
    lines = [f"# {title}", "",
             "Whole test volumes, each run's flips and clean-up (`evaluate`); per region the "
             "BraTS scores (`boundary_aware.brats_scores`): whole-volume Dice and HD95, and the "
             "BraTS 2023 lesion-wise Dice and HD95. Per seed: the mean over volumes; shown: mean "
             "± standard deviation over seeds.", "",
             "| row | setting | region | seeds | Dice | HD95 (mm) | lesion-wise Dice | "
             "lesion-wise HD95 (mm) |", "| --- " * 8 + "|"]
    for line in table:
        lines.append("| " + " | ".join([
            line["label"], line["setting"], line["region"].upper(), str(line["seeds"]),
            pm(line["dice"], 3), pm(line["hd95"], 2), pm(line["lesion_dice"], 3),
            pm(line["lesion_hd95"], 2)]) + " |")
    lines += ["", "## Differences (A minus B) over seeds and test volumes", "",
              f"95% CI: {METHOD}. Dice: higher is better; HD95: lower is better. An interval "
              "that crosses zero is \"not shown\".", "",
              "| A | B | region | metric | mean difference | 95% CI | p | reading |",
              "| --- " * 8 + "|"]
    for c in comps:
        digits = 3 if "dice" in c["metric"] else 2
        ci = ("—" if c["ci95"][0] is None else
              f"[{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]")
        p = "—" if c["p_value"] is None else f"{c['p_value']:.2g}"
        lines.append(f"| {VARIANTS[c['a']].label} | {VARIANTS[c['b']].label} | "
                     f"{c['region'].upper()} | {c['metric']} | {c['mean_diff']:.{digits}f} | "
                     f"{ci} | {p} | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def write(out: Path, title: str, runs: dict) -> str:
    """OUT/beyond_paper.md and .json from {row: {seed: metrics}}."""
    from boundary_aware.files import atomic_write_text
    table, comps = summarize(runs)
    text = render(title, table, comps)
    atomic_write_text(out / "beyond_paper.md", text)
    atomic_write_text(out / "beyond_paper.json", json.dumps(
        {"title": title, "table": table, "comparisons": comps,
         "runs": {row: {str(s): m.get("brats") for s, m in seeds.items()}
                  for row, seeds in runs.items()}}, indent=1))
    return text


def beyond_paper(out: str | os.PathLike, *, seeds: Sequence[int] = DEFAULT_SEEDS,
                 brats_dir: str | None = None, split_file: str | None = None,
                 profile: str | None = None, overrides: Sequence[str] = (),
                 executor: str = "local", rows: Sequence[str] = ROWS,
                 phantom: str = DEFAULT_PHANTOM, **executor_options) -> str:
    """The rows over `seeds` in their settings, then the table (module docstring)."""
    from experiments.seeded_table import load_runs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile or ("paper" if brats_dir else "demo")
    if brats_dir is None:
        say("no BRATS_DIR given: the beyond-the-paper table on SYNTHETIC data; NOT BraTS numbers")
    four = SETTINGS["brats"][0]
    done, failures = {}, {}
    for setting, (sequences, regions, context, folder) in SETTINGS.items():
        these = [row for row in rows if setting_of(row) == setting]
        if not these:
            continue
        prepared = prepare_data(out, profile, brats_dir, split_file, out / folder, phantom,
                                sequences, regions, generated=four, context_slices=context,
                                models=[VARIANTS[row].model for row in these])
        found, failed = run_sweep(out, these, seeds, profile, prepared, overrides, executor,
                                  **executor_options)
        done.update(found)
        failures.update(failed)
    if failures:
        raise RunError(f"{out}: runs failed ({', '.join(sorted(failures))}); rerun to resume")
    data = (f"SYNTHETIC BraTS-like data with four sequences (NOT BraTS), the {phantom} phantom "
            f"(generator seed {PHANTOMS[phantom]['seed']})" if brats_dir is None
            else f"BraTS data in {brats_dir}")
    text = write(out, f"Beyond the paper, four sequences and three regions: {profile} profile "
                      f"on {data}", load_runs(done))
    say(f"wrote {out / 'beyond_paper.md'} and beyond_paper.json")
    print(text)
    return text


def main(argv) -> None:
    experiment_main(beyond_paper)


def define_flags() -> None:
    define_experiment_flags("results/beyond_paper")


def cli() -> None:
    """Console entry point `boundary-aware-beyond-paper`."""
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
