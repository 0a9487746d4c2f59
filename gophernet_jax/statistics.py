"""Summaries of a seed population's accuracies, and comparisons between populations.

Accuracies are fractions k/rows, so a million seeds take a few dozen distinct values. The
bootstraps use that: resampling seeds with replacement is the same as drawing the counts
per distinct value from a multinomial, so memory grows with resamples × distinct values,
never with resamples × seeds. A population laid out as a grid of random sources (splits ×
initialisations, ...) is resampled by its sources' levels instead, through per-level
weights, without building the resampled grids. Every loop over resamples runs in batches
that keep the temporaries to tens of MB.

Everything returned is JSON-ready: plain floats, ints, lists and None, never NaN. Where a
statistic needs what the data lack (two seeds, finite values), it is None and `reason`
says why. scipy is imported inside the functions that need it: it costs ~0.9 s at import.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUANTILES = {"q05": 0.05, "median": 0.5, "q95": 0.95}
OBJECTIVES = ("mean", "median", "q05", "q25", "min", "iqm")
BEST_OF = (1, 3, 5, 10, 100)
RESAMPLES = 10_000
#: A simultaneous interval's tails each hold at least this many resamples (see `compare`).
TAIL_RESAMPLES = 25
#: A difference of means nearer 0 than this is 0: two resamples of seeds that all score
#: the same value give means summed in another order, which can differ in the last bit
#: (1.1e-16), and an interval from 1.1e-16 up does not exclude 0.
ROUNDING = 1e-12
#: Elements (8 bytes each) that one batch's temporaries hold together, about.
_BATCH_ELEMENTS = 4 * 2**20
_OBJECTIVE_QUANTILES = {"median": 0.5, "q05": 0.05, "q25": 0.25}
Design = Mapping[str, int]


def mean_interval(
    values: np.ndarray, level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float] | None:
    """Student-t interval of the mean, clipped to `bounds`, what a mean can be (an
    accuracy's (0, 1)); with one seed (no spread to estimate) the interval is the value.

    Not clipped to the values' own range: a mean can lie beyond it (19 seeds at 0.9667 and
    one at 0.8333 do not show that other seeds reach 1.0), and that clip cut the interval
    short of its level.

    Args:
      values: one number per seed.
      level: the interval's confidence level.
      bounds: the least and the greatest value a seed can have.

    Returns:
      `(low, high)`, or None when there are no values.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return None
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean
    half = _t_quantile(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return max(mean - half, bounds[0]), min(mean + half, bounds[1])


def _t_quantile(p: float, df: int) -> float:
    """Student's t quantile, `scipy.stats.t.ppf(p, df)`, through `scipy.special` (which
    imports in a third of the time `scipy.stats` takes: a single run's start-up)."""
    from scipy import special

    return float(special.stdtrit(df, p))


def histogram(values: np.ndarray, decimals: int = 4) -> dict[str, int]:
    """Seeds per distinct value, ascending; keys are the values rounded to `decimals`."""
    keys, counts = np.unique(np.round(np.asarray(values, dtype=float), decimals), return_counts=True)
    return {f"{k:.{decimals}f}": int(c) for k, c in zip(keys, counts)}


def seeds_needed(std: float | None, resolution: float, level: float = 0.95) -> int | None:
    """The fewest seeds (at least 2) whose Student-t interval of the mean is ±`resolution` or tighter.

    Solved by bisection from the normal approximation (a t quantile exceeds the normal
    one, so no smaller count can do): a few dozen quantile evaluations, even for 10^12 seeds.

    Args:
      std: the standard deviation of one seed's value (ddof=1).
      resolution: the wanted half-width of the interval.
      level: the interval's confidence level.

    Returns:
      The count; None for a missing or non-finite `std`, and for `std` 0: no spread seen
      gives no count (a sample that happens to agree does not make 2 seeds enough).
    """
    if std is None or not math.isfinite(std):
        return None
    if std < 0 or not resolution > 0:
        raise ValueError(f"seeds_needed needs std >= 0 and resolution > 0, got {std} and {resolution}")
    if std == 0:
        return None
    from scipy import special

    def fits(n: int) -> bool:
        return _t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n) <= resolution

    too_few = max(1, math.floor((special.ndtri(0.5 + level / 2) * std / resolution) ** 2) - 1)
    enough = too_few + 1
    while not fits(enough):
        too_few, enough = enough, 2 * enough
    while enough - too_few > 1:
        middle = (too_few + enough) // 2
        too_few, enough = (too_few, middle) if fits(middle) else (middle, enough)
    return max(enough, 2)


def best_of_n(values: np.ndarray, ns: Sequence[int] = BEST_OF) -> dict[str, float | None]:
    """The expected best of n seeds drawn independently from the population.

    Exact over the sorted distinct values v_j with cumulative shares F_j:
    E[max of n] = Σ_j v_j (F_j^n − F_{j−1}^n); n = 1 is the mean. What a "best of 5
    restarts" protocol reports on average, which the mean alone hides.

    Args:
      values: one number per seed; non-finite ones are left out.
      ns: the numbers of draws, each at least 1.

    Returns:
      `{str(n): expectation}`, non-decreasing in n; None per n when no value is finite.
    """
    values = _finite(values)
    if values.size == 0:
        return {str(n): None for n in ns}
    distinct, counts = np.unique(values, return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)]) / values.size
    best, running = {}, -math.inf
    for n in sorted(set(ns)):
        weights = below[1:] ** n - below[:-1] ** n
        # n = 1 is the summary's mean to the bit; rounding must not break the order nor pass the max.
        expected = float(values.mean()) if n == 1 else min(float(distinct @ weights), float(distinct[-1]))
        running = max(running, expected)
        best[str(n)] = running
    return {str(n): best[str(n)] for n in ns}


def objective(values: np.ndarray, name: str) -> float | None:
    """One number for a hyperparameter search to optimise, from a population's values.

    Args:
      values: one number per seed; non-finite ones are left out.
      name: one of `OBJECTIVES`; "iqm" is the interquartile mean (the mean of the middle
        half, `scipy.stats.trim_mean(values, 0.25)`), q05 and q25 are quantiles.

    Returns:
      The statistic, or None when no value is finite.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}: expected one of {', '.join(OBJECTIVES)}")
    values = _finite(values)
    if values.size == 0:
        return None
    if name == "iqm":
        from scipy import stats

        return float(stats.trim_mean(values, 0.25))
    if name in _OBJECTIVE_QUANTILES:
        return float(np.quantile(values, _OBJECTIVE_QUANTILES[name]))
    return float(values.min() if name == "min" else values.mean())


def bootstrap_mean_interval(
    values: np.ndarray,
    level: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
    *,
    design: Design | None = None,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean, seeded.

    Without a design, seeds are resampled with replacement (as counts per distinct
    value). With one, each source's levels are resampled instead (see `summarize`).
    When every value is the same there is nothing to resample: the interval is the value.

    Args:
      values: one number per seed, in the design's C order when there is one.
      level: the interval's confidence level.
      resamples: bootstrap resamples.
      seed: seeds the resampling.
      design: ordered source name -> number of levels, or None for independent seeds.

    Returns:
      `(low, high)`, or None when there are no values.
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2:
        return None if values.size == 0 else (float(values[0]), float(values[0]))
    means = _resampled_means(values, design, resamples, np.random.default_rng(seed))
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def summarize(
    values: np.ndarray,
    level: float = 0.95,
    *,
    design: Design | None = None,
    resolution: float = 0.005,
    resamples: int = RESAMPLES,
    seed: int = 0,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """Spread, counts per value, best-of-n and the mean's interval of one population.

    Without a design, seeds are taken as independent and the mean's interval is the
    Student-t one (`mean_interval`). A population that is a full grid of random sources
    (20 splits × 50 initialisations, ...) shares levels between seeds, which are then
    not independent: with `design` the interval resamples each source's levels
    independently with replacement (a multi-way bootstrap), percentile interval. A
    source with one level was held fixed and is not resampled.

    With one seed, `std` is 0.0 (the spread seen) but nothing needing two seeds is
    estimated: `mean_ci95` and `seeds_needed` are None and `reason` says why. So too where
    every seed scores the same: no spread seen is no interval.

    Args:
      values: one number per seed, in the design's C order when there is one;
        non-finite values are left out of every statistic and counted in `non_finite`.
      level: the confidence level of `mean_ci95`.
      design: ordered source name -> number of levels (values reshape in C order to
        `tuple(design.values())`), or None for independent seeds.
      resolution: the half-width `seeds_needed` aims at.
      resamples: bootstrap resamples (with a design).
      seed: seeds the resampling.
      bounds: what one value can be, which the t interval is clipped to (an accuracy's
        (0, 1) by default; a loss's (0, inf)).

    Returns:
      count (finite values), non_finite, mean, std (ddof=1), min, q05, median, q95, max,
      histogram, mean_ci95 ([low, high] or None), mean_ci95_method, best_of_n
      (`best_of_n`), seeds_needed (for a ±resolution t interval over independent seeds;
      None over a design, where more seeds of one source cannot shrink the others' share),
      resolution, and reason (None, or why a statistic is None).
    """
    raw = np.asarray(values, dtype=float).ravel()
    values = _finite(raw)
    reason = _obstacle(values.size, raw.size - values.size, design)
    if values.size == 0:
        return _empty_summary(raw.size, resolution, reason)
    equal = values.min() == values.max()
    if reason is None and equal:
        # a t interval of zero width, and "2 seeds", would claim the mean is known exactly:
        # 20 seeds at 0.9667 gave [0.9667, 0.9667] where 400 seeds of the same runs gave 0.9546
        reason = f"all {values.size} seeds score {values[0]:.4f}: no spread to estimate an interval from"
    # Equal values: their mean is the value and their std 0 (summed, 1000 seeds at 59/60
    # gave a mean 4e-16 below it and a std of 3e-16).
    std = 0.0 if equal else float(values.std(ddof=1))
    interval = None if reason else _interval_of_mean(values, level, design, resamples, seed, bounds)
    return {
        "count": int(values.size),
        "non_finite": int(raw.size - values.size),
        "mean": float(values[0]) if equal else float(values.mean()),
        "std": std,
        "min": float(values.min()),
        **{name: float(np.quantile(values, q)) for name, q in QUANTILES.items()},
        "max": float(values.max()),
        "histogram": histogram(values),
        "mean_ci95": interval,
        "mean_ci95_method": None if reason else _method(design, "t over seeds"),
        "best_of_n": best_of_n(values),
        # Over a crossed design more seeds of one source cannot shrink what the others
        # contribute: the variance report says which source to add levels of instead.
        "seeds_needed": seeds_needed(std, resolution) if design is None and not reason else None,
        "resolution": resolution,
        "reason": reason,
    }


def compare(
    baseline: np.ndarray,
    other: np.ndarray,
    *,
    paired: bool,
    design: Design | None = None,
    comparisons: int = 1,
    resolution: float = 0.005,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """How `other`'s values differ from `baseline`'s: the mean difference and its intervals.

    Paired (common random numbers: seed i starts from the same weights in both), the
    difference is taken seed by seed; its mean gets a bootstrap interval, and `p_better`,
    `p_tie`, `p_worse` are the shares of seeds that do better, tie and do worse.
    Unpaired, each side is resampled on its own, and the shares are the chances that a
    random seed of `other` beats, ties or loses to a random seed of `baseline`, exact from
    the counts per value. With `design`, seeds are resampled by their sources' levels
    as in `summarize` (the grid of differences when paired, each side's grid when not).

    A sweep makes `comparisons` such intervals at once. `difference_ci95_simultaneous`
    is the Bonferroni interval at level 1 − 0.05/comparisons, from the same resamples:
    all of a sweep's simultaneous intervals hold together with probability ≥ 95%.
    Bonferroni rather than Holm because Holm adjusts tests, not intervals: it gives no
    simultaneous intervals. `holds` is True when that interval excludes 0. So that each
    tail holds `TAIL_RESAMPLES` resamples, `resamples` is raised to
    `TAIL_RESAMPLES / (0.025 / comparisons)` (1000 per comparison) when below it;
    the time taken grows with it.

    `seeds_needed` is the seeds per side for a ±resolution t interval of the mean
    difference: from the std of the paired differences, or, unpaired, from
    sqrt(var_baseline + var_other), the std of the difference of one seed of each side.

    Args:
      baseline: one number per seed.
      other: one number per seed; as many as `baseline` when paired.
      paired: whether seed i of both populations shares its random numbers.
      design: ordered source name -> number of levels of both populations, or None.
      comparisons: how many comparisons the sweep makes, for the simultaneous interval.
      resolution: the half-width `seeds_needed` aims at.
      resamples: bootstrap resamples, at least (see above).
      seed: seeds the resampling.

    Returns:
      paired, count_baseline and count_other (finite seeds compared; pairs when paired),
      non_finite (seeds, or pairs, left out), mean_difference, difference_ci95,
      difference_ci95_simultaneous, simultaneous_level, holds, difference_ci95_method,
      comparisons, resamples (used), p_better, p_tie, p_worse, seeds_needed, resolution,
      reason (None, or why a statistic is None).
    """
    a, b = np.asarray(baseline, dtype=float).ravel(), np.asarray(other, dtype=float).ravel()
    if paired and a.shape != b.shape:
        raise ValueError(f"paired comparison needs equal seed counts, got {a.size} and {b.size}")
    if comparisons < 1:
        raise ValueError(f"comparisons must be at least 1, got {comparisons}")
    resamples = max(resamples, TAIL_RESAMPLES * 40 * comparisons)  # a tail holds 0.025 / comparisons
    bootstrap = {"design": design, "resamples": resamples, "rng": np.random.default_rng(seed)}
    found = _compare_paired(a, b, **bootstrap) if paired else _compare_unpaired(a, b, **bootstrap)
    return {
        "paired": paired,
        **found["counts"],
        "mean_difference": found["mean_difference"],
        **_difference_intervals(found["means"], comparisons),
        "difference_ci95_method": None if found["reason"] else _method(design, "bootstrap over seeds"),
        "comparisons": comparisons,
        "resamples": resamples,
        **found["shares"],
        "seeds_needed": seeds_needed(found["std"], resolution),
        "resolution": resolution,
        "reason": found["reason"],
    }


def _compare_paired(a: np.ndarray, b: np.ndarray, **bootstrap: Any) -> dict[str, Any]:
    d = b - a
    finite = _finite(d)
    reason = _obstacle(finite.size, d.size - finite.size, bootstrap["design"])
    return {
        "counts": _counts(finite.size, finite.size, d.size - finite.size),
        "mean_difference": float(finite.mean()) if finite.size else None,
        "means": None if reason else _resampled_means(finite, **bootstrap),
        "shares": _paired_shares(finite),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "reason": reason,
    }


def _compare_unpaired(a: np.ndarray, b: np.ndarray, **bootstrap: Any) -> dict[str, Any]:
    sides = {"baseline": _finite(a), "other": _finite(b)}
    dropped = {"baseline": a.size - sides["baseline"].size, "other": b.size - sides["other"].size}
    reasons = [_obstacle(v.size, dropped[k], bootstrap["design"]) for k, v in sides.items()]
    reason = "; ".join(f"{k}: {r}" for k, r in zip(sides, reasons) if r) or None
    fa, fb = sides.values()
    both = fa.size > 0 and fb.size > 0
    spread = fa.size > 1 and fb.size > 1
    return {
        "counts": _counts(fa.size, fb.size, sum(dropped.values())),
        "mean_difference": float(fb.mean() - fa.mean()) if both else None,
        "means": None if reason else _resampled_means(fb, **bootstrap) - _resampled_means(fa, **bootstrap),
        "shares": _unpaired_shares(fa, fb) if both else _paired_shares(np.empty(0)),
        "std": math.sqrt(fa.var(ddof=1) + fb.var(ddof=1)) if spread else None,
        "reason": reason,
    }


def _counts(baseline: int, other: int, non_finite: int) -> dict[str, int]:
    return {"count_baseline": int(baseline), "count_other": int(other), "non_finite": int(non_finite)}


def _paired_shares(d: np.ndarray) -> dict[str, float | None]:
    if d.size == 0:
        return {"p_better": None, "p_tie": None, "p_worse": None}
    shares = (np.mean(d > 0), np.mean(d == 0), np.mean(d < 0))
    return {key: float(share) for key, share in zip(("p_better", "p_tie", "p_worse"), shares)}


def _unpaired_shares(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Chances that a random seed of `b` beats, ties, loses to one of `a`: exact, from counts per value."""
    va, ca = np.unique(a, return_counts=True)
    vb, cb = np.unique(b, return_counts=True)
    below = np.concatenate([[0], np.cumsum(ca)])  # seeds of `a` under each distinct value
    under, upto = below[np.searchsorted(va, vb, "left")], below[np.searchsorted(va, vb, "right")]
    pairs = a.size * b.size
    return {
        "p_better": int(cb @ under) / pairs,
        "p_tie": int(cb @ (upto - under)) / pairs,
        "p_worse": int(cb @ (a.size - upto)) / pairs,
    }


def _difference_intervals(means: np.ndarray | None, comparisons: int) -> dict[str, Any]:
    """Per-comparison and Bonferroni-simultaneous percentile intervals from one set of resamples."""
    tail = 0.025 / comparisons
    found = {"simultaneous_level": 1 - 2 * tail}
    if means is None:
        return {"difference_ci95": None, "difference_ci95_simultaneous": None, **found, "holds": None}
    bounds = np.quantile(means, [0.025, 0.975, tail, 1 - tail]).tolist()
    low, high, low_all, high_all = (0.0 if abs(b) < ROUNDING else b for b in bounds)
    return {
        "difference_ci95": [low, high],
        "difference_ci95_simultaneous": [low_all, high_all],
        **found,
        "holds": low_all > 0 or high_all < 0,
    }


def _empty_summary(count: int, resolution: float, reason: str) -> dict[str, Any]:
    nothing = dict.fromkeys(["mean", "std", "min", *QUANTILES, "max"])
    return {
        "count": 0,
        "non_finite": count,
        **nothing,
        "histogram": {},
        "mean_ci95": None,
        "mean_ci95_method": None,
        "best_of_n": best_of_n(np.empty(0)),
        "seeds_needed": None,
        "resolution": resolution,
        "reason": reason,
    }


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


def _obstacle(count: int, non_finite: int, design: Design | None) -> str | None:
    """Why no interval can be estimated from `count` finite seeds, or None."""
    if count == 0:
        return "no finite values" if non_finite else "no seeds"
    if count == 1:
        return "one seed: no spread to estimate"
    if non_finite and design is not None:
        return f"{non_finite} non-finite values leave holes in the design's grid"
    return None


def _method(design: Design | None, independent: str) -> str:
    if design is None:
        return independent
    varied = [name for name, levels in design.items() if levels > 1]
    fixed = [name for name, levels in design.items() if levels == 1]
    held = f" ({', '.join(fixed)} held fixed)" if fixed else ""
    return f"bootstrap over the levels of {', '.join(varied)}{held}"


def _interval_of_mean(
    values: np.ndarray, level: float, design: Design | None, resamples: int, seed: int, bounds
) -> list[float]:
    if design is None:
        return list(mean_interval(values, level, bounds))
    return list(bootstrap_mean_interval(values, level, resamples, seed, design=design))


def _grid_shape(design: Design, count: int) -> tuple[int, ...]:
    """The grid's shape, sources held fixed (one level) left out."""
    levels = [int(n) for n in design.values()]
    if min(levels, default=0) < 1 or math.prod(levels) != count:
        raise ValueError(f"design {dict(design)} does not lay out {count} seeds: it has {math.prod(levels)}")
    return tuple(n for n in levels if n > 1)


def _resampled_means(
    values: np.ndarray, design: Design | None, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """The mean of each of `resamples` bootstrap resamples: of seeds, or of the design's levels."""
    if design is None:
        means = _count_means(values, resamples, rng)
    else:
        means = _level_means(values.reshape(_grid_shape(design, values.size)), resamples, rng)
    return np.clip(means, values.min(), values.max())  # exact in theory; rounding stays inside


def _count_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Seeds resampled with replacement, drawn as multinomial counts per distinct value.

    A multinomial draw costs ~14× a drawn seed per distinct value, so values nearly all
    distinct (a loss, not an accuracy) are resampled seed by seed instead: the same
    distribution, in batches of the same bounded size.
    """
    distinct, counts = np.unique(values, return_counts=True)
    if 16 * distinct.size > values.size:
        return _seed_means(values, resamples, rng)
    shares = counts / values.size
    batch = max(1, _BATCH_ELEMENTS // (2 * distinct.size))
    means = np.empty(resamples)
    for start in range(0, resamples, batch):
        drawn = rng.multinomial(values.size, shares, size=min(batch, resamples - start))
        means[start : start + len(drawn)] = drawn @ distinct / values.size
    return means


def _seed_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    batch = max(1, _BATCH_ELEMENTS // (2 * values.size))
    means = np.empty(resamples)
    for start in range(0, resamples, batch):
        drawn = rng.integers(0, values.size, size=(min(batch, resamples - start), values.size))
        means[start : start + len(drawn)] = values[drawn].mean(axis=1)
    return means


def _level_means(grid: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Each axis's levels resampled independently, with replacement.

    A resampled grid's mean is the grid weighted, along each axis, by its levels'
    multiplicities over the level count: contracted one axis at a time, last first,
    so the resampled grids are never built.
    """
    flat = grid.reshape(-1, grid.shape[-1])
    # Per resample: one column of the first contraction, and ~4 numbers per level drawing weights.
    batch = max(1, _BATCH_ELEMENTS // (flat.shape[0] + 4 * sum(grid.shape)))
    means = np.empty(resamples)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        weights = [_level_weights(levels, size, rng) for levels in grid.shape]
        mean = (flat @ weights[-1].T).reshape(*grid.shape[:-1], size)
        for axis_weights in reversed(weights[:-1]):
            mean = np.einsum("...ir,ri->...r", mean, axis_weights)
        means[start : start + size] = mean
    return means


def _level_weights(levels: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` rows of how often each level is drawn in `levels` draws with replacement, over `levels`.

    Distributed as multinomial(levels, 1/levels), counted with one bincount: ~4× faster than
    `rng.multinomial` for many levels.
    """
    drawn = rng.integers(0, levels, size=(size, levels)) + levels * np.arange(size)[:, None]
    return np.bincount(drawn.ravel(), minlength=size * levels).reshape(size, levels) / levels
