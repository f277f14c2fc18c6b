"""Is one model better than another? Differences with intervals that include seed noise.

Two rows of a table (models, or one model under two settings) are each
trained with several seeds and scored on the same test volumes. Their
difference has two sources of noise: which seeds were drawn (a rerun moves a
row) and which volumes were drawn (another test set moves it). Slices of one
volume are not independent items, so the volume is the unit that is drawn.

`seeded_comparison` treats the scores as a crossed seeds x volumes design
and estimates the variance of the mean difference by its components
(method of moments, as for a two-way random-effects model):

    Var(D) ~ s2(seed means of A) / S_A + s2(seed means of B) / S_B
             + (cluster variance of the seed-averaged differences) / V

with sample variances (ddof = 1). The first two terms are the seed noise of
each row (its runs' means over the test items); the last is the case noise
of the paired differences, with every volume a cluster of its items (one
item per volume for whole-volume scores; its slices for per-slice scores,
the cluster-robust "sandwich" variance of a mean). The interval is
D +- t(0.975, df) sqrt(Var), df from Welch-Satterthwaite over the three
terms (S_A - 1, S_B - 1 and V - 1 degrees of freedom), and the p-value is the
same t test's. The seed-by-volume interaction is counted in both kinds of
term, so the interval errs wide by that share; simulated with known
differences (tests/test_comparison.py) it covers the true difference about
95% of the time with 5 seeds and 40 volumes, where a percentile bootstrap
over 5 seeds covers too rarely.

The Wilcoxon signed-rank test of the seed-averaged per-volume differences
(`p_wilcoxon`) is kept for volumes only, and it holds the seeds fixed: it
says whether these trained models differ, not whether a rerun would. Over
slices it would count dependent items and is not given.

Reference: docs/design.md ("Statistics"); Satterthwaite 1946; Owen 2007
(the pigeonhole bootstrap: crossed designs); Wilcoxon 1945.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
METHOD = ("seeds x volumes variance components (method of moments), Welch-Satterthwaite "
          "t interval; volumes are clusters of their slices")


def mean_std(values) -> tuple[float, float]:
    """(mean, sample standard deviation, ddof = 1) of `values`; the std is nan for fewer
    than two values, and both are nan for none."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return float(values.mean()), std


def seeded_comparison(a: Sequence[Mapping[Hashable, float]],
                      b: Sequence[Mapping[Hashable, float]],
                      cluster: Mapping[Hashable, Hashable] | None = None,
                      a_members: Sequence[Mapping[Hashable, float]] | None = None,
                      b_members: Sequence[Mapping[Hashable, float]] | None = None,
                      paired: bool = False) -> dict:
    """Mean difference A - B with its 95% interval and p-value over seeds and volumes.

    `a` and `b` hold one {item: score} dict per training seed of each row.
    `cluster` maps every item to its volume (default: every item is its own
    volume). Only items that every seed of both rows scores are used.

    Returns {"mean_diff", "ci95": [low, high], "p_value", "p_wilcoxon", "n",
    "n_volumes", "n_seeds": [S_A, S_B], "df", "se", "variance": {"seeds_a",
    "seeds_b", "volumes"}, "method"}. What cannot be estimated (no common
    item; fewer than two seeds in a row or two volumes: the noise is unknown)
    is None; with no noise at all the interval is the point.

    `a_members` (`b_members`): A (B) is one ensemble (`a` holds one dict) of
    models trained with these seeds (one dict each). A rerun would draw other
    members, so its seed term is bounded by one member's seed variance (the
    mean of exchangeable members varies at most as much as one of them), with
    the members' degrees of freedom: the interval errs wide.

    `paired`: A and B are the same trained runs (seed k of A is seed k of B)
    under two settings that need no training, e.g. two ways of segmenting a
    volume. The seed noise is then that of the per-seed differences, one
    term `s2(seed means of A - B) / S` with S - 1 degrees of freedom
    (reported as `seeds_a`; `seeds_b` is 0), since a rerun moves both arms
    together.
    """
    a, b = list(a), list(b)
    result = {"mean_diff": None, "ci95": [None, None], "p_value": None, "p_wilcoxon": None,
              "n": 0, "n_volumes": 0, "n_seeds": [len(a), len(b)], "df": None, "se": None,
              "variance": None, "method": METHOD}
    if not a or not b:
        return result
    items = sorted(set(a[0]).intersection(*a[1:], *b), key=str)
    if not items:
        return result
    cluster = cluster or {}
    groups = [cluster.get(item, item) for item in items]
    volumes = {g: i for i, g in enumerate(sorted(set(groups), key=str))}
    index = np.array([volumes[g] for g in groups])
    ya = np.array([[seed[i] for i in items] for seed in a], dtype=np.float64)  # (S_A, N)
    yb = np.array([[seed[i] for i in items] for seed in b], dtype=np.float64)
    diff = float(ya.mean() - yb.mean())
    n, n_volumes = len(items), len(volumes)
    result.update(mean_diff=diff, n=n, n_volumes=n_volumes)
    per_item = ya.mean(axis=0) - yb.mean(axis=0)
    if n_volumes == n:  # volumes: independent items
        result["p_wilcoxon"] = _wilcoxon(per_item)
    seeds_of_a, seeds_of_b = (
        np.array([[seed[i] for i in items] for seed in members], dtype=np.float64)
        if members is not None and len(rows) == 1 else y
        for members, rows, y in ((a_members, a, ya), (b_members, b, yb)))
    if paired and len(a) != len(b):
        raise ValueError(f"paired rows need the same seeds, got {len(a)} and {len(b)}")
    if n_volumes == 1 or len(seeds_of_a) < 2 or len(seeds_of_b) < 2:
        return result
    # seed terms: each row's per-seed means over the items, their sample variance / S
    if paired:  # one term: the per-seed differences
        seeds_a = float((ya.mean(axis=1) - yb.mean(axis=1)).var(ddof=1)) / len(a)
        seeds_b = 0.0
    else:
        seeds_a = float(seeds_of_a.mean(axis=1).var(ddof=1)) / len(a)
        seeds_b = float(seeds_of_b.mean(axis=1).var(ddof=1)) / len(b)
    # volume term: the seed-averaged differences, summed per volume around the mean
    residual = per_item - diff
    totals = np.bincount(index, weights=residual, minlength=n_volumes)
    volume_term = float(n_volumes / (n_volumes - 1) * np.sum(totals ** 2) / n ** 2)
    parts = {"seeds_a": seeds_a, "seeds_b": seeds_b, "volumes": volume_term}
    dofs = {"seeds_a": len(seeds_of_a) - 1, "seeds_b": len(seeds_of_b) - 1,
            "volumes": n_volumes - 1}
    result["variance"] = parts
    result.update(_t_interval(diff, parts, dofs))
    return result


def _wilcoxon(per_item: np.ndarray) -> float | None:
    """The two-sided Wilcoxon signed-rank p of per-item differences (None: fewer than two
    items, none non-zero, or no finite p)."""
    if len(per_item) < 2 or not np.any(per_item != 0):
        return None
    p = stats.wilcoxon(per_item, zero_method="wilcox", alternative="two-sided").pvalue
    return float(p) if math.isfinite(p) else None


def _t_interval(diff: float, parts: Mapping[str, float], dofs: Mapping[str, int]) -> dict:
    """{"ci95", "se", and where there is noise "df", "p_value"} of a mean difference whose
    variance is the sum of `parts`, with Welch-Satterthwaite degrees of freedom over the
    terms' own (`dofs`); no noise at all: the interval is the point."""
    variance = sum(parts.values())
    if variance <= 0:
        return {"ci95": [diff, diff], "se": 0.0}
    df = variance ** 2 / sum(parts[k] ** 2 / dofs[k] for k in parts if parts[k])
    se = math.sqrt(variance)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    return {"ci95": [diff - half, diff + half], "se": se, "df": float(df),
            "p_value": float(2 * stats.t.sf(abs(diff) / se, df))}


def verdict(comparison: Mapping, higher_is_better: bool = True) -> str:
    """"A better", "B better" or "not shown" from a comparison's 95% interval: a
    difference is shown only where the whole interval lies on one side of zero."""
    low, high = comparison["ci95"]
    if low is None:
        return "not shown"
    if low > 0 or high < 0:
        a_better = (low > 0) == higher_is_better
        return "A better" if a_better else "B better"
    return "not shown"
