"""The beyond-the-paper table: settings of its rows, per-region summaries and comparisons."""

import numpy as np
import pytest

from boundary_aware.comparison import seeded_comparison
from experiments import beyond_paper
from experiments.table1 import get_config


def test_each_row_trains_in_its_setting_and_its_config_says_so():
    assert [beyond_paper.setting_of(r) for r in beyond_paper.ROWS] == \
        ["paper", "paper", "brats", "brats", "context"]
    config = get_config("ours_brats,demo")
    assert (config.data.sequences, config.data.regions) == ("t1,t1c,t2,flair", "wt,tc,et")
    assert get_config("ours_brats,demo").loss.edge_target == "union"  # the measured default
    assert get_config("ours_brats_per_region,demo").loss.edge_target == "per_region"
    paper = get_config("ours,demo")
    assert (paper.data.sequences, paper.data.regions) == ("t1c", "tc")
    assert paper.data.context_slices == 0 and get_config("ours_context,demo").data.context_slices == 1


def fake_run(values: dict) -> dict:
    """A metrics dict whose volume records hold `values` ({region: [dice per case]})."""
    regions = list(values)
    cases = len(next(iter(values.values())))
    volumes = [{"case": f"c{i}", "regions": {
        r: {"dice": values[r][i], "hd95": 10 * (1 - values[r][i]),
            "lesion_dice": values[r][i] / 2, "lesion_hd95": 374 * (1 - values[r][i])}
        for r in regions}} for i in range(cases)]
    return {"regions": regions, "volumes": volumes}


def test_summaries_are_means_over_seeds_of_per_seed_means_and_comparisons_by_region():
    runs = {"ours_brats": {0: fake_run({"wt": [0.9, 0.8, 0.7], "tc": [0.6, 0.5, 0.4],
                                        "et": [0.3, 0.2, 0.1]}),
                           1: fake_run({"wt": [0.8, 0.8, 0.8], "tc": [0.5, 0.5, 0.6],
                                        "et": [0.2, 0.3, 0.1]})},
            "unet_brats": {0: fake_run({"wt": [0.5, 0.4, 0.3], "tc": [0.6, 0.5, 0.4],
                                        "et": [0.3, 0.2, 0.1]}),
                           1: fake_run({"wt": [0.4, 0.4, 0.5], "tc": [0.5, 0.6, 0.5],
                                        "et": [0.1, 0.2, 0.3]})},
            "ours": {0: fake_run({"tc": [0.5, 0.5, 0.5]}), 1: fake_run({"tc": [0.4, 0.5, 0.6]})}}
    table, comps = beyond_paper.summarize(runs)
    wt = next(t for t in table if (t["row"], t["region"]) == ("ours_brats", "wt"))
    assert wt["dice"][0] == pytest.approx(np.mean([0.8, 0.8]))
    assert wt["lesion_dice"][0] == pytest.approx(0.4) and wt["setting"] == "brats"
    tc = next(t for t in table if (t["row"], t["region"]) == ("ours", "tc"))
    assert tc["dice"] == (pytest.approx(0.5), pytest.approx(0.0))
    pairs = {(c["a"], c["b"], c["region"], c["metric"]) for c in comps}
    assert ("ours_brats", "unet_brats", "et", "lesion_dice") in pairs
    assert ("ours_brats", "ours", "tc", "dice") in pairs
    assert not any(c["b"] == "unet" for c in comps)  # a row that did not run: no comparison
    got = next(c for c in comps if (c["a"], c["b"], c["region"], c["metric"]) ==
               ("ours_brats", "unet_brats", "wt", "dice"))
    want = seeded_comparison(
        [{"c0": 0.9, "c1": 0.8, "c2": 0.7}, {"c0": 0.8, "c1": 0.8, "c2": 0.8}],
        [{"c0": 0.5, "c1": 0.4, "c2": 0.3}, {"c0": 0.4, "c1": 0.4, "c2": 0.5}])
    assert got["mean_diff"] == pytest.approx(want["mean_diff"]) == pytest.approx(0.8 - 0.4167,
                                                                                 abs=1e-3)
    assert got["ci95"] == pytest.approx(want["ci95"])
    text = beyond_paper.render("T", table, comps)
    assert "| Ours (4 sequences, WT/TC/ET) | brats | WT | 2 |" in text
