"""Every number in the Table 1 files comes from the runs' metrics.json."""

import csv
import json

import pytest

from experiments.reproduce_table1 import PAPER, table_rows, write_table
from experiments.table1 import TABLE_ROWS, get_config


def fake_metrics(path, seed):
    def block(offset):
        return {"n": 10 + seed, "empty": {"both": 1, "pred": seed, "ref": 0},
                **{name: {"mean": offset + seed / 100 + i / 10, "std": 0.01 * (i + 1)}
                   for i, name in enumerate(("dice", "jaccard", "hd", "hd95"))}}
    path.write_text(json.dumps({"per_slice": block(0.5), "per_case": block(0.25)}))
    return path


def test_table_numbers_come_from_metrics_json(tmp_path):
    files = {row: fake_metrics(tmp_path / f"{row}.json", i) for i, row in enumerate(TABLE_ROWS)}
    rows = table_rows(files)
    write_table(tmp_path, rows, "Test table", ["a note"])
    data = json.loads((tmp_path / "table1.json").read_text())
    table_csv = list(csv.DictReader((tmp_path / "table1.csv").open()))
    markdown = (tmp_path / "table1.md").read_text()
    for row, from_json, from_csv in zip(rows, data["rows"], table_csv):
        metrics = json.loads(files[row["variant"]].read_text())
        for name in ("dice", "jaccard", "hd", "hd95"):
            assert from_json[f"{name}_mean"] == metrics["per_slice"][name]["mean"]
            assert from_json[f"{name}_std"] == metrics["per_slice"][name]["std"]
            assert from_json[f"case_{name}_mean"] == metrics["per_case"][name]["mean"]
            assert float(from_csv[f"{name}_mean"]) == pytest.approx(metrics["per_slice"][name]["mean"])
        assert from_json["slices"] == metrics["per_slice"]["n"]
        assert from_json["paper_dice_mean"] == PAPER[row["variant"]]["dice"][0]
        assert f"{metrics['per_slice']['dice']['mean']:.3f} ± " in markdown
    assert "Test table" in markdown and "a note" in markdown


def test_configs_of_every_row_and_profile():
    for row in TABLE_ROWS + ("ours_no_edge_bce",):
        for profile in ("paper", "demo"):
            config = get_config(f"{row},{profile}")
            assert config.variant == row and config.profile == profile
    paper = get_config("ours,paper")
    assert (paper.train.batch_size, paper.train.learning_rate, paper.train.poly_power) == (8, 1e-3, 0.9)
    assert paper.data.image_size == 240 and tuple(paper.loss.weights) == (1.0, 0.5, 0.1)
    assert tuple(get_config("ours_no_edge").loss.weights) == (1.0, 0.0, 0.0)
    assert tuple(get_config("ours_no_edge_bce").loss.weights) == (1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="unknown variant"):
        get_config("resnet")
