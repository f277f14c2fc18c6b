"""Tables over training seeds: one row per variant, and paired comparisons with Ours.

Every number comes from the runs' `metrics.json` (`boundary_aware.evaluate`).
Per row and metric: the mean ± standard deviation across seeds of each run's
per-slice mean (what changes when a row is rerun), the pooled per-slice mean
± standard deviation (every slice of every seed), and every seed's value;
the honest-Hausdorff figures (median, mean over non-empty pairs, empty
predictions) and the whole-volume figures as means across seeds.

Comparisons: Ours against each other row, per whole volume ("case") and per
slice, for Dice and HD95: `boundary_aware.comparison.seeded_comparison` gives
the mean difference (Ours minus the other row) with a 95% interval and p-value
that count seed noise and case noise (volumes as clusters of their slices).
Standard deviations are sample ones (ddof = 1). With `sensitivity_rows` (the
ablation) the edge-loss conclusion is also given under every Eq. 5 reduction
and both checkpoint rules, with a line saying whether any verdict flips.

Reference: docs/design.md ("Statistics").
"""

import json
import math
from pathlib import Path

from boundary_aware.comparison import METHOD, mean_std, seeded_comparison, verdict
from boundary_aware.files import atomic_write_csv, atomic_write_text
from boundary_aware.losses import DEFAULT_BCE_REDUCTION
from boundary_aware.metrics import METRIC_NAMES
from boundary_aware.run_directory import read_metrics_file
from experiments.table1 import VARIANTS

COMPARED_METRICS = ("dice", "hd95")
ENSEMBLE = "_ensemble"  # a row of one ensemble: the seed runs of the row it is named after
ROW_NAMES = {name: v.label for name, v in VARIANTS.items()}
ROW_NAMES.update({name + ENSEMBLE: f"{v.label}, seed ensemble" for name, v in VARIANTS.items()})
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
             "Whole volume: every axial slice of the source volume that holds head is segmented "
             "(as `predict` does: outside the head never tumor, the run's test-time flips, the "
             "3D clean-up chosen on the validation volumes) and scored in 3D at the source "
             "spacing; \"FP slices\": slices without tumor core on which the model predicts "
             "tumor (per seed, summed over the test volumes). A \"seed ensemble\" row is one "
             "model (the mean probabilities of that row's seed runs); its interval bounds its "
             "seed noise by its members' (docs/design.md, \"Statistics\").",
             "Training sees only slices with tumor (the paper's protocol), so on whole volumes "
             "the differences between rows are mostly false positives on tumor-free slices that "
             "no model trained on; read whole-volume leads with that in mind."]
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


def _records(metrics, level, checkpoint=None):
    """A run's per-item records at `level` ("case": whole volumes, "slice"), of the scored
    checkpoint or of `checkpoint` ("final", "best": `evaluate` scores both)."""
    source = metrics if checkpoint in (None, metrics.get("checkpoint_rule")) else \
        metrics.get("checkpoints", {}).get(checkpoint, {})
    return source.get("slices" if level == "slice" else "volumes") or []


def compare(runs_a, runs_b, level, name, checkpoint=None, a="ours", b=None, b_members=None):
    """One comparison of two rows' runs ({seed: metrics}) at `level` on metric `name`
    (`comparison.seeded_comparison`: seeds and volumes both drawn), or None when the runs
    hold no such records. `b_members`: B is one ensemble of these runs."""
    def per_seed(runs):
        return [{(r["case"], r.get("slice")) if level == "slice" else r["case"]: r[name]
                 for r in _records(m, level, checkpoint)} for m in runs.values()]
    items_a, items_b = per_seed(runs_a), per_seed(runs_b)
    if not any(items_a) or not any(items_b):
        return None  # e.g. no whole-volume scores (evaluate --noper_volume)
    cluster = {k: k[0] for k in items_a[0]} if level == "slice" else None
    result = seeded_comparison(items_a, items_b, cluster,
                               b_members=per_seed(b_members) if b_members else None)
    if level == "slice":
        result["p_wilcoxon"] = None  # slices of one volume are not independent items
    return {"a": a, "b": b, "level": level, "metric": name,
            **({"checkpoint": checkpoint} if checkpoint else {}), **result}


def comparisons(runs, a="ours"):
    """Ours (`a`) against every other variant of `runs` ({variant: {seed: metrics}}); an
    ensemble row's seed noise is bounded by its members' (`seeded_comparison`)."""
    out = []
    for b in runs:
        if b == a:
            continue
        members = runs.get(b[:-len(ENSEMBLE)]) if b.endswith(ENSEMBLE) else None
        for level in ("case", "slice"):
            for name in COMPARED_METRICS:
                found = compare(runs[a], runs[b], level, name, a=a, b=b, b_members=members)
                if found:
                    out.append(found)
    return out


def sensitivity(runs, rows, baseline, checkpoints=("final", "best")):
    """The edge-loss conclusion under each setting: every row of `rows` (Ours under one
    Eq. 5 reduction) against `baseline` (no edge loss), under each checkpoint rule; and,
    per level and metric, whether the verdict (`comparison.verdict`) differs between
    settings. Returns (comparisons, {f"{level} {metric}": sorted verdicts})."""
    found = []
    for row in rows:
        if row not in runs or baseline not in runs:
            continue
        for checkpoint in checkpoints:
            for level in ("case", "slice"):
                for name in COMPARED_METRICS:
                    c = compare(runs[row], runs[baseline], level, name, checkpoint, row, baseline)
                    if c:
                        c["verdict"] = verdict(c, higher_is_better=name == "dice")
                        found.append(c)
    verdicts = {}
    for c in found:
        verdicts.setdefault(f"{_level(c)} {c['metric']}", set()).add(c["verdict"])
    return found, {k: sorted(v) for k, v in verdicts.items()}


def checkpoint_flips(found) -> list[str]:
    """The (row, level, metric) whose verdict differs between the checkpoint rules."""
    by = {}
    for c in found:
        key = f"{ROW_NAMES.get(c['a'], c['a'])}: {_level(c)} {c['metric']}"
        by.setdefault(key, set()).add(c["verdict"])
    return sorted(k for k, v in by.items() if len(v) > 1)


def _level(c):
    return "volume" if c["level"] == "case" else "slice"


def _pm(row, name, digits=3):
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    if mean is None:
        return "—"
    if std is None or math.isnan(std):  # one seed: no spread to give
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value):
    return "—" if value is None else f"{value:.2g}"


def render(title, rows, comps, notes, paper=None):
    """The markdown of a seeded table and its comparison table."""
    paper_columns = ["paper Dice", "paper Jaccard", "paper HD"] if paper else []
    paper = paper or {}
    seeds = sorted({s for r in rows for s in r["seeds"] if isinstance(s, int)})
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
        lines += ["", "## Is Ours better? Differences over seeds and test volumes "
                  "(Ours minus the other row)", "",
                  "Dice: positive favours Ours; HD95 (mm): negative favours Ours. 95% CI: "
                  f"{METHOD} (`boundary_aware.comparison`), so a rerun with other seeds or "
                  "another test set of the same kind is covered, not only these runs. p: the "
                  "same t test. Wilcoxon p (volumes only): the seed-averaged per-volume "
                  "differences, seeds held fixed. A difference whose interval crosses zero is "
                  "\"not shown\".", "",
                  "| Ours vs | level | metric | seeds | volumes | n | mean difference | 95% CI "
                  "| p | Wilcoxon p | reading |",
                  "| --- " * 11 + "|"]
        for c in comps:
            lines.append(_comparison_cells(c, ROW_NAMES.get(c["b"], c["b"]), "Ours"))
    lines += [""] + [f"* {n}" for n in notes] + [""]
    return "\n".join(lines)


def _words(code, a_name):
    """A `comparison.verdict` in words, with A named."""
    return {"A better": f"{a_name} better", "B better": f"{a_name} worse"}.get(code, code)


def _comparison_cells(c, label, a_name, extra=()):
    digits = 3 if c["metric"] == "dice" else 2
    ci = "—" if c["ci95"][0] is None else \
        f"[{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]"
    reading = _words(verdict(c, higher_is_better=c["metric"] == "dice"), a_name)
    seeds = " / ".join(str(s) for s in c["n_seeds"])
    return "| " + " | ".join([label, *extra, _level(c), c["metric"], seeds, str(c["n_volumes"]),
                              str(c["n"]), _num(c["mean_diff"], digits), ci, _p(c["p_value"]),
                              _p(c["p_wilcoxon"]), reading]) + " |"


def render_sensitivity(found, verdicts, rule_flips, baseline):
    """The markdown of `sensitivity`: one line per setting, then whether a conclusion flips."""
    lines = ["", f"## Sensitivity: the edge-loss conclusion under every setting "
             f"(Ours minus {ROW_NAMES.get(baseline, baseline)})", "",
             f"Each Eq. 5 reduction (a row of Ours; \"Ours\" has the default, "
             f"`{DEFAULT_BCE_REDUCTION}`) "
             "under each checkpoint rule (final: the weights after the last epoch; best: the "
             "best validation Dice), intervals as above.", "",
             "| row (Eq. 5 reduction) | checkpoint | level | metric | seeds | volumes | n | mean difference "
             "| 95% CI | p | Wilcoxon p | reading |", "| --- " * 12 + "|"]
    for c in found:
        lines.append(_comparison_cells(c, ROW_NAMES.get(c["a"], c["a"]), "edge loss",
                                       extra=(c["checkpoint"],)))
    verdicts = {k: [_words(x, "edge loss") for x in v] for k, v in verdicts.items()}
    flips = {k: v for k, v in verdicts.items() if len(v) > 1}
    lines.append("")
    if not verdicts:
        lines.append("No setting could be compared.")
    elif flips:
        lines.append("The conclusion FLIPS with the setting for: " + "; ".join(
            f"{k} ({', '.join(v)})" for k, v in sorted(flips.items())) + "; the other "
            "metrics read the same under every setting.")
    else:
        lines.append("No conclusion flips: under every setting the reading is the same (" +
                     "; ".join(f"{k}: {v[0]}" for k, v in sorted(verdicts.items())) + ").")
    if verdicts:
        lines.append("")
        lines.append("Between the checkpoint rules alone: " + (
            "the verdict differs for " + "; ".join(rule_flips) if rule_flips else
            "no verdict differs (every row reads the same under final and best)") + ".")
    return lines


def write_tables(out, stem, title, runs, notes, paper=None, compare_with="ours",
                 sensitivity_rows=(), baseline="ours_no_edge"):
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
    text = render(title, rows, comps, notes, paper)
    document = {"title": title, "notes": notes, "rows": rows, "comparisons": comps,
                "runs": records}
    if sensitivity_rows:
        found, verdicts = sensitivity(runs, sensitivity_rows, baseline)
        rule_flips = checkpoint_flips(found)
        text += "\n".join(render_sensitivity(found, verdicts, rule_flips, baseline)) + "\n"
        document["sensitivity"] = {"baseline": baseline, "comparisons": found,
                                   "verdicts": verdicts,
                                   "flips": sorted(k for k, v in verdicts.items() if len(v) > 1),
                                   "checkpoint_flips": rule_flips}
    atomic_write_text(out / f"{stem}.md", text)
    atomic_write_text(out / f"{stem}.json", json.dumps(document, indent=1))
    atomic_write_csv(out / f"{stem}.csv", rows)
    atomic_write_csv(out / f"{stem}_runs.csv", records)
    return rows, comps


def load_runs(metrics_files):
    """{variant: {seed: metrics dict}} from {variant: {seed: metrics.json path}}, each checked
    to be of the current format (`run_directory.read_metrics_file`)."""
    return {v: {s: read_metrics_file(p) for s, p in files.items()}
            for v, files in metrics_files.items()}
