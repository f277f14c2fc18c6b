"""Comparisons over seeds and volumes: hand-computed variance components, a simulation of
their coverage, and the Wilcoxon p-values kept for volumes."""

import numpy as np
import pytest
from scipy import stats

from boundary_aware.comparison import mean_std, seeded_comparison, verdict


def test_sample_standard_deviation():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # ddof = 1: sqrt(2 / 2)
    mean, std = mean_std([4.0])
    assert mean == 4.0 and np.isnan(std)
    assert all(np.isnan(mean_std([])))


def test_variance_components_by_hand():
    # two seeds per row, three volumes
    a = [{"v1": 0.8, "v2": 0.6, "v3": 0.7}, {"v1": 0.9, "v2": 0.5, "v3": 0.9}]
    b = [{"v1": 0.7, "v2": 0.6, "v3": 0.5}, {"v1": 0.6, "v2": 0.4, "v3": 0.5}]
    r = seeded_comparison(a, b)
    # seed means: A (0.7, 0.7667), B (0.6, 0.5); D = 0.73333 - 0.55 = 0.18333
    assert r["mean_diff"] == pytest.approx(0.73333333 - 0.55)
    # seeds_a = var(0.7, 0.76667; ddof 1) / 2 = (0.0666667^2 / 2) / 2
    assert r["variance"]["seeds_a"] == pytest.approx(0.06666667 ** 2 / 2 / 2)
    assert r["variance"]["seeds_b"] == pytest.approx(0.1 ** 2 / 2 / 2)
    # per-volume seed-averaged differences: 0.2, 0.05, 0.3; their variance / 3
    assert r["variance"]["volumes"] == pytest.approx(np.var([0.2, 0.05, 0.3], ddof=1) / 3)
    parts = [r["variance"][k] for k in ("seeds_a", "seeds_b", "volumes")]
    df = sum(parts) ** 2 / (parts[0] ** 2 / 1 + parts[1] ** 2 / 1 + parts[2] ** 2 / 2)
    half = stats.t.ppf(0.975, df) * np.sqrt(sum(parts))
    assert r["df"] == pytest.approx(df) and r["se"] == pytest.approx(np.sqrt(sum(parts)))
    assert r["ci95"] == pytest.approx([r["mean_diff"] - half, r["mean_diff"] + half])
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(r["mean_diff"] / np.sqrt(sum(parts)), df))
    # three positive differences: the exact two-sided Wilcoxon p is 2 / 2^3
    assert r["p_wilcoxon"] == pytest.approx(2 / 8)
    assert r["n"] == r["n_volumes"] == 3 and r["n_seeds"] == [2, 2]


def test_slices_are_clustered_by_volume():
    # two volumes of two slices each; the volume term uses the volumes' summed residuals
    a = [{("v1", 0): 1.0, ("v1", 1): 0.8, ("v2", 0): 0.4, ("v2", 1): 0.6}] * 2
    b = [{k: 0.5 for k in a[0]}] * 2
    cluster = {k: k[0] for k in a[0]}
    r = seeded_comparison(a, b, cluster)
    # differences 0.5, 0.3, -0.1, 0.1; mean 0.2; residual sums per volume 0.4, -0.4
    assert r["mean_diff"] == pytest.approx(0.2)
    assert r["variance"]["volumes"] == pytest.approx(2 / 1 * (0.4 ** 2 + 0.4 ** 2) / 4 ** 2)
    assert r["variance"]["seeds_a"] == 0 and r["n"] == 4 and r["n_volumes"] == 2
    assert r["p_wilcoxon"] is None  # slices are not independent items
    # treated as four independent items the same data would claim a smaller variance
    flat = seeded_comparison(a, b)
    assert flat["variance"]["volumes"] < r["variance"]["volumes"]


def test_degenerate_inputs_give_none_not_a_number():
    one_seed = seeded_comparison([{"v1": 1.0, "v2": 0.5}], [{"v1": 0.5, "v2": 0.5},
                                                            {"v1": 0.4, "v2": 0.5}])
    assert one_seed["mean_diff"] == pytest.approx(0.75 - 0.475) and one_seed["ci95"] == [None, None]
    assert seeded_comparison([{"a": 1.0}], [{"b": 1.0}])["mean_diff"] is None
    same = seeded_comparison([{"v1": 1.0, "v2": 2.0}] * 2, [{"v1": 1.0, "v2": 2.0}] * 2)
    assert same["mean_diff"] == 0 and same["ci95"] == [0, 0] and same["p_value"] is None
    assert verdict(same) == "not shown" and verdict(one_seed) == "not shown"
    assert verdict({"ci95": [0.01, 0.2]}) == "A better"
    assert verdict({"ci95": [0.01, 0.2]}, higher_is_better=False) == "B better"
    assert verdict({"ci95": [-0.3, 0.2]}) == "not shown"


def _simulate(rng, delta, seeds=5, volumes=40, slices=1, seed_sd=0.08, volume_sd=0.12,
              residual_sd=0.06):
    """Scores of two rows: a shared difficulty per volume, a row-specific effect per volume
    (and per slice), a shift per training seed, and noise per (seed, item)."""
    difficulty = rng.normal(0, 0.15, volumes)
    items = [(v, s) for v in range(volumes) for s in range(slices)]
    rows = []
    for shift in (delta, 0.0):
        effect = rng.normal(0, volume_sd, volumes)
        per_slice = rng.normal(0, volume_sd, len(items)) if slices > 1 else np.zeros(len(items))
        base = np.array([difficulty[v] + effect[v] for v, _ in items]) + per_slice
        rows.append([dict(zip(items, shift + rng.normal(0, seed_sd) + base +
                              rng.normal(0, residual_sd, len(items))))
                     for _ in range(seeds)])
    return rows, ({k: k[0] for k in items} if slices > 1 else None)


@pytest.mark.parametrize("seed_sd", [0.02, 0.08, 0.2])
def test_interval_covers_a_zero_difference_95_percent_of_the_time(seed_sd):
    # 1000 repetitions with no true difference: a 95% interval covers zero in 950 on
    # average, binomial standard deviation 6.9; 930-975 allows about 3 of them (and the
    # t approximation's small error) while catching an interval that forgets a source
    # of noise (leaving out the seed terms covers about 640 times at seed_sd = 0.08, and a
    # percentile bootstrap over seeds and volumes about 895: see
    # docs/design.md, "Statistics").
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(1000):
        (a, b), cluster = _simulate(rng, 0.0, seed_sd=seed_sd)
        low, high = seeded_comparison(a, b, cluster)["ci95"]
        covered += low <= 0 <= high
    assert 930 <= covered <= 975


def test_slice_level_interval_covers_with_correlated_slices():
    rng = np.random.default_rng(8)
    covered = 0
    for _ in range(300):  # 285 expected, binomial sd 3.8
        (a, b), cluster = _simulate(rng, 0.0, volumes=20, slices=6)
        low, high = seeded_comparison(a, b, cluster)["ci95"]
        covered += low <= 0 <= high
    assert 272 <= covered <= 297


def test_a_real_difference_is_found():
    rng = np.random.default_rng(9)
    found = sum(seeded_comparison(*_simulate(rng, 0.3)[0])["ci95"][0] > 0 for _ in range(200))
    # the standard error is about 0.058 (seed terms 2 x 0.08^2 / 5, volume term
    # (2 x 0.12^2 + 2 x 0.06^2 / 5) / 40): 0.3 is 5 of them, found nearly always
    assert found >= 190


def test_an_ensembles_seed_noise_is_bounded_by_its_members():
    """B is one ensemble of three members: its seed term is the members' seed variance
    (not divided by three), with their two degrees of freedom."""
    a = [{"v1": 0.5, "v2": 0.7}, {"v1": 0.6, "v2": 0.6}]
    members = [{"v1": 0.4, "v2": 0.6}, {"v1": 0.5, "v2": 0.7}, {"v1": 0.6, "v2": 0.8}]
    ensemble = [{"v1": 0.5, "v2": 0.7}]
    got = seeded_comparison(a, ensemble, b_members=members)
    seeds_a = np.var([0.6, 0.6], ddof=1) / 2
    seeds_b = np.var([0.5, 0.6, 0.7], ddof=1) / 1
    per_volume = np.array([0.55 - 0.5, 0.65 - 0.7])
    diff = per_volume.mean()
    volumes = 2 / 1 * np.sum((per_volume - diff) ** 2) / 2 ** 2
    assert got["mean_diff"] == pytest.approx(diff)
    assert got["variance"] == pytest.approx({"seeds_a": seeds_a, "seeds_b": seeds_b,
                                             "volumes": volumes})
    variance = seeds_a + seeds_b + volumes
    df = variance ** 2 / (seeds_b ** 2 / 2 + volumes ** 2 / 1)  # seeds_a is 0
    assert got["df"] == pytest.approx(df)
    # without the members, one ensemble has no seed noise to estimate
    assert seeded_comparison(a, ensemble)["ci95"] == [None, None]


def test_paired_settings_of_the_same_runs_count_the_seed_noise_of_their_difference():
    """Two settings of the same two runs: the second adds 0.1 on every volume of every seed.
    Unpaired, the runs' own seed spread widens the interval; paired, it cancels."""
    a = [{"v1": 0.6, "v2": 0.62}, {"v1": 0.8, "v2": 0.82}]
    b = [{v: x - 0.1 for v, x in seed.items()} for seed in a]
    paired = seeded_comparison(a, b, paired=True)
    assert paired["mean_diff"] == pytest.approx(0.1)
    assert paired["variance"] == pytest.approx({"seeds_a": 0.0, "seeds_b": 0.0, "volumes": 0.0})
    assert paired["ci95"] == pytest.approx([0.1, 0.1])
    unpaired = seeded_comparison(a, b)
    assert unpaired["variance"]["seeds_a"] == pytest.approx(np.var([0.61, 0.81], ddof=1) / 2)
    assert unpaired["ci95"][0] < 0  # the seed spread hides the difference
    # by hand, with noise in the per-seed differences
    b2 = [{"v1": 0.55, "v2": 0.5}, {"v1": 0.65, "v2": 0.72}]
    got = seeded_comparison(a, b2, paired=True)
    seed_diffs = np.array([0.61 - 0.525, 0.81 - 0.685])
    per_volume = np.array([(0.05 + 0.15) / 2, (0.12 + 0.10) / 2])
    volumes = 2 / 1 * np.sum((per_volume - per_volume.mean()) ** 2) / 4
    assert got["variance"] == pytest.approx({"seeds_a": np.var(seed_diffs, ddof=1) / 2,
                                             "seeds_b": 0.0, "volumes": volumes})
    with pytest.raises(ValueError, match="same seeds"):
        seeded_comparison(a, b2[:1], paired=True)
