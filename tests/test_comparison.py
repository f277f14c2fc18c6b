"""Paired comparisons: Wilcoxon p-values and bootstrap intervals checked by hand."""

import numpy as np
import pytest

from boundary_aware.comparison import average_over_seeds, bootstrap_ci, paired_comparison


def test_wilcoxon_p_values_by_hand():
    # five positive differences: the exact two-sided p is 2 / 2^5
    a = {k: v for k, v in zip("abcde", [1.1, 2.2, 3.3, 4.4, 5.5])}
    b = {k: 0.1 * i for i, k in enumerate("abcde")}  # differences 1.1, 2.1, 3.1, 4.1, 5.1
    result = paired_comparison(a, b)
    assert result["n"] == 5 and result["p_wilcoxon"] == pytest.approx(2 / 32)
    assert result["mean_diff"] == pytest.approx(3.1)
    # differences 1, -2, 3, 4, 5: W- = 2; sign patterns with a rank sum <= 2 are {}, {1}, {2},
    # so the two-sided p is 2 * 3 / 32
    diffs = dict(zip("abcde", [1.0, -2.0, 3.0, 4.0, 5.0]))
    zero = dict.fromkeys("abcde", 0.0)
    assert paired_comparison(diffs, zero)["p_wilcoxon"] == pytest.approx(6 / 32)


def test_bootstrap_interval_by_hand():
    # two values 0 and 1: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles are the extremes
    assert bootstrap_ci([0.0, 1.0]) == [0.0, 1.0]
    assert bootstrap_ci([0.3, 0.3, 0.3]) == [0.3, 0.3]
    assert bootstrap_ci([0.7]) == [0.7, 0.7]
    # a large sample: close to mean +- 1.96 standard errors
    x = np.random.default_rng(1).normal(0.05, 0.1, 400)
    low, high = bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert low == pytest.approx(x.mean() - half, abs=0.002)
    assert high == pytest.approx(x.mean() + half, abs=0.002)
    assert bootstrap_ci(x) == [low, high]  # seeded: the same numbers give the same interval


def test_only_common_items_are_paired_and_degenerate_cases_are_none():
    result = paired_comparison({"a": 1.0, "b": 2.0, "c": 5.0}, {"a": 0.5, "b": 1.0})
    assert result["n"] == 2 and result["mean_diff"] == pytest.approx(0.75)
    assert result["ci95"] == [0.5, 1.0]  # two differences, as in the hand example
    same = paired_comparison({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0})
    assert same["mean_diff"] == 0.0 and same["p_wilcoxon"] is None and same["ci95"] == [0.0, 0.0]
    empty = paired_comparison({"a": 1.0}, {"b": 1.0})
    assert empty == {"mean_diff": None, "ci95": [None, None], "p_wilcoxon": None, "n": 0}


def test_seeds_are_averaged_per_item_first():
    per_seed = [{"x": 1.0, "y": 0.0, "z": 9.0}, {"x": 3.0, "y": 1.0}]
    assert average_over_seeds(per_seed) == {"x": 2.0, "y": 0.5}
    assert average_over_seeds([]) == {}
