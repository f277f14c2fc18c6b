"""Every number in the seeded tables comes from the runs' metrics.json."""

import csv
import json

import numpy as np
import pytest

from boundary_aware.config import check_config
from boundary_aware.errors import FormatError
from boundary_aware.losses import DEFAULT_BCE_REDUCTION
from boundary_aware.run_directory import METRICS_FORMAT
from experiments.reproduce_table1 import PAPER
from experiments.runner import parse_seeds
from experiments.steps import run_dir
from experiments.seeded_table import comparisons, load_runs, sensitivity, write_tables
from experiments.table1 import TABLE_ROWS, VARIANTS, get_config

CASES = ("c1", "c2", "c3")


def fake_metrics(path, offset, seed):
    """A metrics.json as evaluate writes it, with known per-slice and per-volume values."""
    rng = np.random.default_rng(seed)
    slices = [{"case": c, "slice": z, "empty": "pred" if (c, z, seed) == ("c1", 0, 1) else "none",
               "dice": offset + 0.01 * z + 0.001 * seed, "jaccard": 0.5, "hd": 2.0 + z,
               "hd95": 1.0 + z + rng.random()} for c in CASES for z in range(4)]
    volumes = [{"case": c, "empty": "none", "dice": offset + 0.02 * i, "jaccard": 0.4,
                "hd": 10.0, "hd95": 5.0 - i + seed, "fp_slices": i + seed}
               for i, c in enumerate(CASES)]

    def summary(records):
        out = {"n": len(records), "empty": {"both": 0, "ref": 0,
                                            "pred": sum(r["empty"] == "pred" for r in records)}}
        for name in ("dice", "jaccard", "hd", "hd95"):
            values = [r[name] for r in records]
            out[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                         "median": float(np.median(values)), "nonempty_mean": float(np.mean(values))}
        if "fp_slices" in records[0]:
            out["fp_slices"] = sum(r["fp_slices"] for r in records)
        return out
    per_slice, per_volume = summary(slices), summary(volumes)
    path.write_text(json.dumps({
        "format_version": METRICS_FORMAT, "checkpoint": "final.keras", "checkpoint_rule": "final", "epoch": 12, "params": 1234,
        "per_slice": per_slice, "per_volume": per_volume, "selected_slices": summary(volumes),
        "slices": slices, "volumes": volumes,
        "checkpoints": {"final": {"epoch": 12, "per_slice": per_slice, "per_volume": per_volume},
                        "best": {"epoch": 4, "per_slice": summary(slices[:3]),
                                 "per_volume": per_volume, "slices": slices[:3],
                                 "volumes": [{**v, "dice": v["dice"] - 0.1} for v in volumes]}}}))
    return path


def test_seeded_table_numbers_come_from_metrics_json(tmp_path):
    files = {row: {seed: fake_metrics(tmp_path / f"{row}_{seed}.json", 0.5 + 0.1 * i, seed)
                   for seed in (0, 1)} for i, row in enumerate(TABLE_ROWS)}
    runs = load_runs(files)
    rows, comps = write_tables(tmp_path, "table1", "Test table", runs, ["a note"], paper=PAPER)
    data = json.loads((tmp_path / "table1.json").read_text())
    table_csv = list(csv.DictReader((tmp_path / "table1.csv").open()))
    runs_csv = list(csv.DictReader((tmp_path / "table1_runs.csv").open()))
    markdown = (tmp_path / "table1.md").read_text()
    assert data["rows"] == rows and data["comparisons"] == comps and len(runs_csv) == 8
    for row, from_csv in zip(data["rows"], table_csv):
        per_seed = [runs[row["variant"]][s] for s in (0, 1)]
        for name in ("dice", "jaccard", "hd", "hd95"):
            means = [m["per_slice"][name]["mean"] for m in per_seed]
            assert row[f"{name}_mean"] == pytest.approx(np.mean(means))
            assert row[f"{name}_std"] == pytest.approx(np.std(means, ddof=1))
            assert row[f"{name}_per_seed"] == means
            pooled = [r[name] for m in per_seed for r in m["slices"]]
            assert row[f"{name}_pooled_mean"] == pytest.approx(np.mean(pooled))
            assert row[f"{name}_pooled_std"] == pytest.approx(np.std(pooled, ddof=1))
            assert float(from_csv[f"{name}_mean"]) == pytest.approx(row[f"{name}_mean"])
        assert row["volume_dice_mean"] == pytest.approx(
            np.mean([m["per_volume"]["dice"]["mean"] for m in per_seed]))
        assert row["volume_hd95_mean"] == pytest.approx(
            np.mean([m["per_volume"]["hd95"]["mean"] for m in per_seed]))
        assert row["fp_slices"] == pytest.approx(np.mean([3, 6]))  # 0+1+2, then 1+2+3
        assert row["empty_pred_slices"] == 0.5 and row["empty_pred_slices_per_seed"] == [0, 1]
        assert row["hd95_median"] == pytest.approx(
            np.mean([m["per_slice"]["hd95"]["median"] for m in per_seed]))
        for key in ("hd_median", "hd_nonempty_mean", "hd95_nonempty_mean", "params"):
            assert key in row
        assert row["checkpoint"] == "final" and row["params"] == 1234 and row["seeds"] == [0, 1]
        assert row["paper_dice_mean"] == PAPER[row["variant"]]["dice"][0]
        assert from_csv["dice_per_seed"] == ";".join(map(str, row["dice_per_seed"]))
        assert f"{row['dice_mean']:.3f} ± {row['dice_std']:.3f}" in markdown
    assert runs_csv[0]["best_epoch"] == "4" and "best_dice_mean" in runs_csv[0]
    assert "Test table" in markdown and "a note" in markdown and "Wilcoxon" in markdown
    assert "variance components" in markdown and "sensitivity" not in data


def test_comparisons_count_seed_and_volume_noise(tmp_path):
    runs = load_runs({"ours": {s: fake_metrics(tmp_path / f"o{s}.json", 0.8, s) for s in (0, 1)},
                      "unet": {s: fake_metrics(tmp_path / f"u{s}.json", 0.6, s) for s in (0, 1)}})
    comps = comparisons(runs)
    assert {(c["level"], c["metric"]) for c in comps} == {
        ("case", "dice"), ("case", "hd95"), ("slice", "dice"), ("slice", "hd95")}
    for c in comps:
        assert {"a", "b", "level", "metric", "mean_diff", "ci95", "n", "n_seeds", "method",
                "p_wilcoxon", "p_value"} <= set(c)
        assert (c["a"], c["b"]) == ("ours", "unet") and c["n_seeds"] == [2, 2]
    by = {(c["level"], c["metric"]): c for c in comps}
    assert by["case", "dice"]["n"] == 3 and by["slice", "dice"]["n"] == 12
    assert by["slice", "dice"]["n_volumes"] == 3  # 12 slices of 3 volumes
    assert by["case", "dice"]["mean_diff"] == pytest.approx(0.2)  # every volume 0.2 higher
    assert by["case", "dice"]["ci95"] == pytest.approx([0.2, 0.2])  # and no noise at all
    assert by["slice", "dice"]["mean_diff"] == pytest.approx(0.2)
    # slices of one volume are not independent items: no Wilcoxon p over them
    assert by["slice", "dice"]["p_wilcoxon"] is None
    assert by["case", "hd95"]["mean_diff"] == pytest.approx(0.0)
    # HD95 differs by seed (fake_metrics: + seed), in both rows alike: seed terms > 0
    assert by["case", "hd95"]["variance"]["seeds_a"] > 0


def test_a_seed_ensemble_row_is_one_model_with_its_members_seed_noise(tmp_path):
    runs = load_runs({"ours": {s: fake_metrics(tmp_path / f"o{s}.json", 0.8, s) for s in (0, 1)},
                      "unet": {s: fake_metrics(tmp_path / f"u{s}.json", 0.6, s) for s in (0, 1)},
                      "ours_ensemble": {"ensemble": fake_metrics(tmp_path / "e.json", 0.85, 0)}})
    rows, comps = write_tables(tmp_path, "table1", "Test table", runs, [])
    ensemble = [r for r in rows if r["variant"] == "ours_ensemble"][0]
    assert ensemble["seeds"] == ["ensemble"] and ensemble["model"] == "Ours, seed ensemble"
    by = {(c["b"], c["level"], c["metric"]): c for c in comps}
    c = by["ours_ensemble", "case", "hd95"]
    members = [np.mean([v["hd95"] for v in runs["ours"][s]["volumes"]]) for s in (0, 1)]
    # the ensemble's seed term is one member's seed variance, not zero and not halved
    assert c["n_seeds"] == [2, 1] and c["variance"]["seeds_b"] == pytest.approx(
        np.var(members, ddof=1))
    assert "Training seeds [0, 1]" in (tmp_path / "table1.md").read_text()


def test_sensitivity_under_both_checkpoint_rules(tmp_path):
    runs = load_runs({
        "ours": {s: fake_metrics(tmp_path / f"o{s}.json", 0.8, s) for s in (0, 1)},
        "ours_bce_sum": {s: fake_metrics(tmp_path / f"s{s}.json", 0.55, s) for s in (0, 1)},
        "ours_no_edge": {s: fake_metrics(tmp_path / f"n{s}.json", 0.6, s) for s in (0, 1)}})
    found, verdicts = sensitivity(runs, ("ours", "ours_bce_sum"), "ours_no_edge")
    by = {(c["a"], c["checkpoint"], c["level"], c["metric"]): c for c in found}
    assert by["ours", "final", "case", "dice"]["mean_diff"] == pytest.approx(0.2)
    # the best checkpoint's own records are used: its volumes are 0.1 lower in every run,
    # so the difference stays; its slices are the first 3 only
    assert by["ours", "best", "case", "dice"]["mean_diff"] == pytest.approx(0.2)
    assert by["ours", "best", "slice", "dice"]["n"] == 3
    assert by["ours", "final", "case", "dice"]["verdict"] == "A better"
    assert by["ours_bce_sum", "final", "case", "dice"]["verdict"] == "B better"
    assert verdicts["volume dice"] == ["A better", "B better"]  # it flips with the reduction
    write_tables(tmp_path, "ablation", "Test", runs, [], sensitivity_rows=("ours", "ours_bce_sum"))
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert "volume dice" in data["sensitivity"]["flips"]
    # the best checkpoint's slices here are 3 of one volume: no interval, so "not shown"
    # where the final one's 12 slices of 3 volumes give a verdict
    assert data["sensitivity"]["checkpoint_flips"] == ["Ours (Eq. 5 sum): slice dice",
                                                       "Ours: slice dice"]
    markdown = (tmp_path / "ablation.md").read_text()
    assert "FLIPS" in markdown and "Ours (Eq. 5 sum)" in markdown
    assert "volume dice (edge loss better, edge loss worse)" in markdown
    assert "Between the checkpoint rules alone: the verdict differs for Ours (Eq. 5" in markdown


def test_seeds_and_run_directories():
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("7") == (7,)
    for bad in ("", "a,b", "1,1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)
    assert run_dir("out", "ours", 2).as_posix() == "out/runs/ours_seed2"


def test_configs_of_every_row_and_profile():
    assert get_config("ours").loss.edge_bce_reduction == DEFAULT_BCE_REDUCTION == "mean"
    assert get_config("ours_bce_sum").loss.edge_bce_reduction == "sum"
    assert get_config("ours_bce_scaled_mean").loss.edge_bce_reduction == "scaled_mean"
    for row in TABLE_ROWS + ("ours_no_edge_bce",):
        for profile in ("paper", "demo"):
            config = get_config(f"{row},{profile}")
            assert config.variant == row and config.profile == profile
            assert config.eval.checkpoint == "final"
    paper = get_config("ours,paper")
    assert (paper.train.batch_size, paper.train.learning_rate, paper.train.poly_power) == (8, 1e-3, 0.9)
    assert paper.data.image_size == 240
    assert paper.loss.weights.to_dict() == {"seg_dice": 1.0, "edge_dice": 0.5, "edge_bce": 0.1}
    assert get_config("ours_no_edge").loss.weights.to_dict() == {
        "seg_dice": 1.0, "edge_dice": 0.0, "edge_bce": 0.0}
    assert get_config("ours_no_edge_bce").loss.weights.to_dict() == {
        "seg_dice": 1.0, "edge_dice": 0.5, "edge_bce": 0.0}
    for variant in VARIANTS:  # every shipped config passes the check training runs first
        for profile in ("paper", "demo"):
            check_config(get_config(f"{variant},{profile}"))
    with pytest.raises(ValueError, match="unknown variant"):
        get_config("resnet")


def test_a_config_is_the_librarys_defaults_with_what_its_profile_and_variant_set():
    """Every key's default lives in `boundary_aware.config`, the paper widths in the model
    registry: the paper profile of Ours adds nothing but the registry's keywords, and the
    demo profile changes only its data, epochs and widths."""
    from boundary_aware.config import default_config
    from boundary_aware.models.registry import spec
    defaults = default_config().to_dict()
    paper = get_config("ours,paper").to_dict()
    widths = spec("ours").keywords()
    demo = get_config("ours,demo").to_dict()
    changed = {f"{section}.{key}" for section, table in demo.items() if isinstance(table, dict)
               for key, value in table.items() if value != defaults[section][key]}
    assert changed == {"data.prepared_dir", "data.image_size", "train.epochs", "model.kwargs"}
    kwargs = paper["model"].pop("kwargs")
    assert kwargs["base_filters"] == 32 and all(kwargs[k] == widths[k] for k in kwargs)
    assert defaults["model"].pop("kwargs") == {}
    assert paper == defaults


def test_the_experiment_entry_points_take_the_same_arguments():
    import inspect

    from experiments.ablation import ablation
    from experiments.reproduce_table1 import reproduce
    table = list(inspect.signature(reproduce).parameters)
    table.remove("rows")
    assert table == list(inspect.signature(ablation).parameters) == [
        "out", "seeds", "brats_dir", "split_file", "profile", "overrides", "executor",
        "phantom", "executor_options"]


def test_a_table_refuses_scores_of_an_older_format(tmp_path):
    path = fake_metrics(tmp_path / "metrics.json", 0.5, 0)
    old = json.loads(path.read_text())
    del old["format_version"]
    path.write_text(json.dumps(old))
    with pytest.raises(FormatError, match="boundary-aware-evaluate --workdir="):
        load_runs({"ours": {0: path}})
