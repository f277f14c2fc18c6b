"""The paper's Table 1 in one command: `make reproduce-table1`.

    python -m experiments.reproduce_table1 --out=results/table1 [--brats_dir=DIR]
        [--split_file=F] [--profile=demo|paper] [--override=train.epochs=5 ...]

Without --brats_dir it generates synthetic BraTS-like data and runs the demo
profile: those numbers are NOT BraTS numbers, and the table says so. With
--brats_dir it runs the paper profile on that data. Trains the four rows with
the same split and seed, evaluates them, and writes OUT/table1.md, .csv and
.json with the paper's values alongside. A rerun skips complete rows and
resumes interrupted ones.

Reference: Hatamizadeh et al. 2019, Table 1.
"""

import csv
import io
import json
from pathlib import Path

from boundary_aware.files import atomic_write_text as write_atomic
from experiments.runner import define_experiment_flags, prepare_data, run_variant, say
from experiments.table1 import TABLE_ROWS

ROW_NAMES = {"unet": "U-Net", "vnet": "V-Net", "ours_no_edge": "Ours (no edge loss)",
             "ours": "Ours", "ours_no_edge_bce": "Ours (no edge BCE)"}
PAPER = {  # Table 1 of the paper: (mean, std) per slice
    "unet": {"dice": (0.731, 0.230), "jaccard": (0.805, 0.130), "hd": (3.861, 1.342)},
    "vnet": {"dice": (0.769, 0.270), "jaccard": (0.837, 0.140), "hd": (3.667, 1.329)},
    "ours_no_edge": {"dice": (0.768, 0.236), "jaccard": (0.832, 0.136), "hd": (3.443, 1.218)},
    "ours": {"dice": (0.822, 0.176), "jaccard": (0.861, 0.112), "hd": (3.406, 1.196)},
}
JACCARD_NOTE = ("In the paper's Table 1 every Jaccard mean is above its Dice mean. For one "
                "prediction Jaccard = Dice / (2 - Dice) <= Dice, so that column cannot be the "
                "Jaccard index of the same predictions; ours shows Jaccard <= Dice.")


def table_rows(metrics_files):
    """One dict per row, every number read from that row's metrics.json."""
    rows = []
    for variant, path in metrics_files.items():
        m = json.loads(Path(path).read_text())
        s, c = m["per_slice"], m["per_case"]
        row = {"variant": variant, "model": ROW_NAMES[variant], "slices": s["n"], "cases": c["n"],
               "empty_slices": sum(s["empty"].values())}
        for name in ("dice", "jaccard", "hd", "hd95"):
            row[f"{name}_mean"], row[f"{name}_std"] = s[name]["mean"], s[name]["std"]
            row[f"case_{name}_mean"] = c[name]["mean"]
        for name, (mean, std) in PAPER.get(variant, {}).items():
            row[f"paper_{name}_mean"], row[f"paper_{name}_std"] = mean, std
        rows.append(row)
    return rows


def render(rows, title, notes):
    def pm(row, name, digits=3, prefix=""):
        mean, std = row.get(f"{prefix}{name}_mean"), row.get(f"{prefix}{name}_std")
        return "—" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
    lines = [f"# {title}", "", "Per test slice, mean ± standard deviation (the paper's protocol); "
             "HD and HD95 in mm. Per case: 3D metrics over each case's prepared slices.", "",
             "| Model | Dice | Jaccard | HD | HD95 | per-case Dice | per-case HD95 | slices | cases "
             "| paper Dice | paper Jaccard | paper HD |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {pm(r, 'dice')} | {pm(r, 'jaccard')} | {pm(r, 'hd', 2)} | "
                     f"{pm(r, 'hd95', 2)} | {r['case_dice_mean']:.3f} | {r['case_hd95_mean']:.2f} | "
                     f"{r['slices']} | {r['cases']} | {pm(r, 'dice', prefix='paper_')} | "
                     f"{pm(r, 'jaccard', prefix='paper_')} | {pm(r, 'hd', prefix='paper_')} |")
    lines += [""] + [f"* {n}" for n in notes] + [""]
    return "\n".join(lines)


def write_table(out, rows, title, notes, stem="table1"):
    out = Path(out)
    write_atomic(out / f"{stem}.md", render(rows, title, notes))
    write_atomic(out / f"{stem}.json", json.dumps({"title": title, "notes": notes, "rows": rows},
                                                  indent=1))
    buffer = io.StringIO()
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("variant", "model"), k))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / f"{stem}.csv", buffer.getvalue())


def reproduce(out, brats_dir=None, split_file=None, profile=None, overrides=(), rows=TABLE_ROWS):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile or ("paper" if brats_dir else "demo")
    synthetic = brats_dir is None
    if synthetic:
        say("no BRATS_DIR given: running the DEMO on SYNTHETIC data; these are NOT BraTS numbers")
    prepared = prepare_data(out, profile, brats_dir, split_file)
    metrics_files = {row: run_variant(row, profile, prepared, out / "runs" / row, overrides)
                     for row in rows}
    data = "synthetic BraTS-like data (NOT BraTS)" if synthetic else f"BraTS data in {brats_dir}"
    title = f"Table 1 reproduction: {profile} profile on {data}"
    notes = [JACCARD_NOTE,
             "Paper values are on BraTS 2018 T1c slices; " +
             ("ours here are on synthetic data and are not comparable to them." if synthetic
              else "ours are on the data named in the title."),
             "Empty masks: both empty gives Dice = Jaccard = 1 and HD = 0; exactly one empty gives "
             "Dice = Jaccard = 0 and HD = the image diagonal (counted in empty_slices)."]
    if overrides:
        notes.append("Config overrides: " + ", ".join(overrides))
    write_table(out, table_rows(metrics_files), title, notes)
    say(f"wrote {out / 'table1.md'}, table1.csv, table1.json")
    print((out / "table1.md").read_text())


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    reproduce(f.out, f.brats_dir or None, f.split_file or None, f.profile or None, f.override)


if __name__ == "__main__":
    from absl import app
    define_experiment_flags("results/table1")
    app.run(main)
