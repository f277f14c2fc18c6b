"""Is one model better than another? Paired statistics over test cases or slices.

Two models scored on the same test items (slices, or whole volumes) give
paired values. What counts is the difference per item: its mean, a 95%
bootstrap confidence interval of that mean (the percentile interval of
`scipy.stats.bootstrap`, seeded, so the same numbers give the same interval),
and the two-sided Wilcoxon signed-rank p-value (`scipy.stats.wilcoxon`: exact
for small samples without ties or zeros, the normal approximation otherwise).
Several training seeds of one row are averaged per item first
(`average_over_seeds`), so the test sees one value per item and row.

A small sample limits what can be shown: with 5 test volumes the smallest
possible two-sided Wilcoxon p-value is 2 / 2^5 = 0.0625.

Reference: docs/design.md ("Statistics"); Wilcoxon 1945; Efron & Tibshirani 1993.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999


def mean_std(values) -> tuple[float, float]:
    """(mean, population standard deviation) of `values`; (nan, nan) for none."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def average_over_seeds(per_seed: list[dict]) -> dict:
    """{item: mean over seeds} from a list of {item: value} dicts, one per seed.

    Only items present in every seed are kept (all seeds score the same test
    set, so this drops nothing in practice).
    """
    if not per_seed:
        return {}
    common = set(per_seed[0]).intersection(*per_seed[1:])
    return {key: float(np.mean([seed[key] for seed in per_seed])) for key in sorted(common)}


def paired_comparison(a: dict, b: dict, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict:
    """Mean difference a - b over the items both dicts score, with its 95% CI and p-value.

    Returns {"mean_diff", "ci95": [low, high], "p_wilcoxon", "n"}. Where the
    statistic is undefined (no common item; every difference zero, or a
    single item, for the p-value) it is None.
    """
    keys = sorted(set(a) & set(b))
    diff = np.array([a[k] - b[k] for k in keys], dtype=np.float64)
    result = {"mean_diff": None, "ci95": [None, None], "p_wilcoxon": None, "n": len(keys)}
    if diff.size == 0:
        return result
    result["mean_diff"] = float(diff.mean())
    result["ci95"] = bootstrap_ci(diff, seed, n_resamples)
    if diff.size >= 2 and np.any(diff != 0):
        p = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue
        result["p_wilcoxon"] = float(p) if math.isfinite(p) else None
    return result


def bootstrap_ci(values, seed: int = 0, n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values` ([low, high])."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1 or np.all(values == values[0]):
        return [float(values[0]), float(values[0])]  # every resample has this mean
    ci = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, method="percentile",
                         n_resamples=n_resamples, random_state=np.random.default_rng(seed),
                         vectorized=True).confidence_interval
    return [float(ci.low), float(ci.high)]
