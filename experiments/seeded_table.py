"""Tables over training seeds: one row per variant, and paired comparisons with Ours.

Every number comes from the runs' `metrics.json` (`boundary_aware.evaluate`).
Per row and metric: the mean ± standard deviation across seeds of each run's
per-slice mean (what changes when a row is rerun), the pooled per-slice mean
± standard deviation (every slice of every seed), and every seed's value;
the honest-Hausdorff figures (median, mean over non-empty pairs, empty
predictions) and the whole-volume figures as means across seeds.

Comparisons: Ours against each other row, per whole volume ("case") and per
slice, for Dice and HD95: the per-item values are averaged over each row's
seeds first, then `boundary_aware.comparison.paired_comparison` gives the mean
difference (Ours minus the other row), its 95% bootstrap CI and the Wilcoxon
p-value.

Reference: docs/design.md ("Statistics").
"""

import json
from pathlib import Path

from boundary_aware.comparison import average_over_seeds, mean_std, paired_comparison
from boundary_aware.files import atomic_write_csv, atomic_write_text
from boundary_aware.metrics import METRIC_NAMES
from boundary_aware.run_directory import read_metrics_file

COMPARED_METRICS = ("dice", "hd95")
ROW_NAMES = {"unet": "U-Net", "vnet": "V-Net", "ours_no_edge": "Ours (no edge loss)",
             "ours": "Ours", "ours_no_edge_bce": "Ours (no edge BCE)",
             "ours_bilinear_fusion": "Ours (bilinear fusion)"}
HD_NOTE = ("The paper gives no unit and no empty-mask policy for HD; ours is in mm, and a slice "
           "where exactly one mask is empty scores the image diagonal, so HD means are dominated "
           "by empty predictions: see the medians, the means over non-empty pairs and the count "
           "of empty predictions.")


def experiment_notes(synthetic, runs, overrides=()):
    """The notes every seeded table carries: data, checkpoint, metrics policies."""
    checkpoints = sorted({m.get("checkpoint") for seeds in runs.values() for m in seeds.values()})
    notes = ["Paper values are on BraTS 2018 T1c slices; " +
             ("ours here are on SYNTHETIC data and are not comparable to them." if synthetic
              else "ours are on the data named in the title."),
             f"Checkpoint scored: {', '.join(checkpoints)} (the weights after the last epoch; "
             "the paper names no selection rule; see docs/design.md).", HD_NOTE,
             "Empty masks: both empty gives Dice = Jaccard = 1 and HD = 0; exactly one empty "
             "gives Dice = Jaccard = 0 and HD = the image diagonal (2D: of the slice; 3D: of the "
             "volume). \"empty preds\": slices where the model predicts nothing, mean per seed "
             "over the test slices.",
             "Whole volume: every axial slice of the source volume is segmented (as `predict` "
             "does) and scored in 3D at the source spacing; \"FP slices\": slices without tumor "
             "core on which the model predicts tumor (per seed, summed over the test volumes)."]
    if overrides:
        notes.append("Config overrides: " + ", ".join(overrides))
    return notes


def row_summary(variant, runs):
    """One table row from a variant's runs: {seed: metrics dict}."""
    seeds = sorted(runs)
    per_seed = [runs[s] for s in seeds]
    first = per_seed[0]
    row = {"variant": variant, "model": ROW_NAMES.get(variant, variant), "seeds": seeds,
           "checkpoint": first.get("checkpoint_rule"), "params": first.get("params"),
           "slices": first["per_slice"]["n"]}
    for name in METRIC_NAMES:
        values = [m["per_slice"][name]["mean"] for m in per_seed]
        row[f"{name}_mean"], row[f"{name}_std"] = mean_std(values)
        row[f"{name}_per_seed"] = values
        row[f"{name}_pooled_mean"], row[f"{name}_pooled_std"] = mean_std(
            [r[name] for m in per_seed for r in m["slices"]])
    for name in ("hd", "hd95"):
        row[f"{name}_median"] = mean_std([m["per_slice"][name]["median"] for m in per_seed])[0]
        row[f"{name}_nonempty_mean"] = mean_std(
            [m["per_slice"][name]["nonempty_mean"] for m in per_seed])[0]
    row["empty_pred_slices"] = mean_std([m["per_slice"]["empty"]["pred"] for m in per_seed])[0]
    row["empty_pred_slices_per_seed"] = [m["per_slice"]["empty"]["pred"] for m in per_seed]
    if all(m.get("per_volume") for m in per_seed):
        row["cases"] = first["per_volume"]["n"]
        for name in METRIC_NAMES:
            values = [m["per_volume"][name]["mean"] for m in per_seed]
            row[f"volume_{name}_mean"], row[f"volume_{name}_std"] = mean_std(values)
        row["volume_dice_per_seed"] = [m["per_volume"]["dice"]["mean"] for m in per_seed]
        row["fp_slices"] = mean_std([m["per_volume"]["fp_slices"] for m in per_seed])[0]
        row["fp_slices_per_seed"] = [m["per_volume"]["fp_slices"] for m in per_seed]
    for name in ("dice", "hd95"):
        row[f"selected_{name}_mean"] = mean_std(
            [m["selected_slices"][name]["mean"] for m in per_seed])[0]
    return row


def run_records(variant, runs):
    """One flat record per run (variant, seed): the CSV of every run."""
    records = []
    for seed in sorted(runs):
        m = runs[seed]
        record = {"variant": variant, "seed": seed, "checkpoint": m.get("checkpoint"),
                  "epoch": m.get("epoch")}
        for name in METRIC_NAMES:
            record[f"{name}_mean"] = m["per_slice"][name]["mean"]
            if m.get("per_volume"):
                record[f"volume_{name}_mean"] = m["per_volume"][name]["mean"]
        if m.get("per_volume"):
            record["fp_slices"] = m["per_volume"]["fp_slices"]
        for other, summary in m.get("checkpoints", {}).items():
            if other != m.get("checkpoint_rule"):
                record[f"{other}_epoch"] = summary["epoch"]
                record[f"{other}_dice_mean"] = summary["per_slice"]["dice"]["mean"]
                if summary.get("per_volume"):
                    record[f"{other}_volume_dice_mean"] = summary["per_volume"]["dice"]["mean"]
        records.append(record)
    return records


def _items(metrics, level, name):
    if level == "slice":
        return {f"{r['case']}/{r['slice']}": r[name] for r in metrics["slices"]}
    return {r["case"]: r[name] for r in metrics.get("volumes") or []}


def comparisons(runs, a="ours"):
    """Ours (`a`) against every other variant of `runs` ({variant: {seed: metrics}})."""
    out = []
    for b in runs:
        if b == a:
            continue
        for level in ("case", "slice"):
            for name in COMPARED_METRICS:
                items_a = average_over_seeds([_items(m, level, name) for m in runs[a].values()])
                items_b = average_over_seeds([_items(m, level, name) for m in runs[b].values()])
                if not items_a or not items_b:
                    continue  # e.g. no whole-volume scores (evaluate --noper_volume)
                out.append({"a": a, "b": b, "level": level, "metric": name,
                            **paired_comparison(items_a, items_b)})
    return out


def _pm(row, name, digits=3):
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value):
    return "—" if value is None else f"{value:.2g}"


def render(title, rows, comps, notes, paper=None):
    """The markdown of a seeded table and its comparison table."""
    paper_columns = ["paper Dice", "paper Jaccard", "paper HD"] if paper else []
    paper = paper or {}
    seeds = sorted({s for r in rows for s in r["seeds"]})
    lines = [f"# {title}", "",
             f"Training seeds {seeds}. Per-slice columns (the paper's protocol): mean ± standard "
             "deviation across seeds of each run's per-slice mean; \"pooled\" is the mean ± std "
             "over every test slice of every seed. Whole-volume columns (BraTS's protocol): 3D "
             "metrics of every axial slice of each test volume, mean across seeds. HD in mm.", "",
             "| " + " | ".join(["Model", "params", "Dice", "Dice pooled", "Jaccard", "HD", "HD95",
                                "HD95 median", "HD95 non-empty", "empty preds", "volume Dice",
                                "volume HD95", "FP slices"] + paper_columns) + " |",
             "| --- " * (13 + len(paper_columns)) + "|"]
    for r in rows:
        p = paper.get(r["variant"], {})
        paper_cells = [f"{p[k][0]:.3f} ± {p[k][1]:.3f}" if k in p else "—"
                       for k in ("dice", "jaccard", "hd")] if paper_columns else []
        cells = [r["model"], f"{r['params']:,}" if r.get("params") else "—", _pm(r, "dice"),
                 _pm(r, "dice_pooled"), _pm(r, "jaccard"), _pm(r, "hd", 2), _pm(r, "hd95", 2),
                 _num(r["hd95_median"], 2), _num(r["hd95_nonempty_mean"], 2),
                 f"{r['empty_pred_slices']:.1f} / {r['slices']}", _pm(r, "volume_dice"),
                 _pm(r, "volume_hd95", 2), _num(r.get("fp_slices"), 1), *paper_cells]
        lines.append("| " + " | ".join(cells) + " |")
    if comps:
        lines += ["", "## Is Ours better? Paired differences (Ours minus the other row)", "",
                  "Per item (whole volume or slice) the seeds of each row are averaged first. "
                  "Dice: positive favours Ours; HD95 (mm): negative favours Ours. 95% CI: "
                  "percentile bootstrap of the mean difference; p: two-sided Wilcoxon "
                  "signed-rank.", "",
                  "| Ours vs | level | metric | n | mean difference | 95% CI | Wilcoxon p |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in comps:
            digits = 3 if c["metric"] == "dice" else 2
            ci = "—" if c["ci95"][0] is None else \
                f"[{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]"
            level = "volume" if c["level"] == "case" else "slice"
            lines.append(f"| {ROW_NAMES.get(c['b'], c['b'])} | {level} | {c['metric']} | {c['n']} "
                         f"| {_num(c['mean_diff'], digits)} | {ci} | {_p(c['p_wilcoxon'])} |")
    lines += [""] + [f"* {n}" for n in notes] + [""]
    return "\n".join(lines)


def write_tables(out, stem, title, runs, notes, paper=None, compare_with="ours"):
    """Write OUT/STEM.md, .json, .csv (one line per row) and STEM_runs.csv (one per run).

    `runs` is {variant: {seed: metrics dict}}; returns (rows, comparisons).
    """
    out = Path(out)
    rows = [row_summary(v, r) for v, r in runs.items()]
    for row in rows:
        for name, (mean, std) in (paper or {}).get(row["variant"], {}).items():
            row[f"paper_{name}_mean"], row[f"paper_{name}_std"] = mean, std
    comps = comparisons(runs, compare_with) if compare_with in runs else []
    records = [rec for v, r in runs.items() for rec in run_records(v, r)]
    atomic_write_text(out / f"{stem}.md", render(title, rows, comps, notes, paper))
    atomic_write_text(out / f"{stem}.json", json.dumps(
        {"title": title, "notes": notes, "rows": rows, "comparisons": comps, "runs": records},
        indent=1))
    atomic_write_csv(out / f"{stem}.csv", rows)
    atomic_write_csv(out / f"{stem}_runs.csv", records)
    return rows, comps


def load_runs(metrics_files):
    """{variant: {seed: metrics dict}} from {variant: {seed: metrics.json path}}, each checked
    to be of the current format (`run_directory.read_metrics_file`)."""
    return {v: {s: read_metrics_file(p) for s, p in files.items()}
            for v, files in metrics_files.items()}
