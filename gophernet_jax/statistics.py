"""Summaries of a seed population's accuracies: spread, counts per value, interval of the mean."""

from typing import Any

import numpy as np
from scipy import stats

QUANTILES = {"q05": 0.05, "median": 0.5, "q95": 0.95}


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean, clipped to the values' range.

    Accuracy is bounded and discrete; the clip keeps the interval inside what an
    accuracy can be, and with one seed (no spread to estimate) the interval is the value.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean
    half = stats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return max(mean - half, float(values.min())), min(mean + half, float(values.max()))


def histogram(values: np.ndarray, decimals: int = 4) -> dict[str, int]:
    """Seeds per distinct value, ascending; keys are the values rounded to `decimals`."""
    keys, counts = np.unique(np.round(np.asarray(values, dtype=float), decimals), return_counts=True)
    return {f"{k:.{decimals}f}": int(c) for k, c in zip(keys, counts)}


def summarize(
    values: np.ndarray, level: float = 0.95, design=None, resolution=0.005
) -> dict[str, Any]:  # TEMPORARY
    """count, mean, std (ddof=1), min, q05, median, q95, max, histogram and the mean's interval."""
    values = np.asarray(values, dtype=float)
    low, high = mean_interval(values, level)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min": float(values.min()),
        **{name: float(np.quantile(values, q)) for name, q in QUANTILES.items()},
        "max": float(values.max()),
        "histogram": histogram(values),
        "mean_ci95": [low, high],
    }


def bootstrap_mean_interval(
    values: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean (scipy.stats.bootstrap), seeded.

    When every value is the same there is nothing to resample: the interval is the value.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2 or np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=level,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def compare(baseline: np.ndarray, other: np.ndarray, *, paired: bool, seed: int = 0) -> dict[str, Any]:
    """How `other`'s accuracies differ from `baseline`'s.

    Paired (common random numbers: seed i starts from the same weights in both), the
    difference is taken seed by seed: its mean with a bootstrap 95% interval, and the
    shares of seeds that do better, tie and do worse. Unpaired (different shapes, so
    different initial weights), the mean difference gets a bootstrap interval from
    resampling each side, and `p_better` is the chance that a random seed of `other`
    beats a random seed of `baseline` (ties counted half).
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired comparison needs equal seed counts, got {a.size} and {b.size}")
        d = b - a
        low, high = bootstrap_mean_interval(d, seed=seed)
        return {
            "paired": True,
            "mean_difference": float(d.mean()),
            "difference_ci95": [low, high],
            "p_better": float(np.mean(d > 0)),
            "p_tie": float(np.mean(d == 0)),
            "p_worse": float(np.mean(d < 0)),
        }
    result = stats.bootstrap(
        (b, a),
        lambda u, v, axis=-1: np.mean(u, axis=axis) - np.mean(v, axis=axis),
        confidence_level=0.95,
        n_resamples=10_000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    u = stats.mannwhitneyu(b, a, alternative="two-sided").statistic / (a.size * b.size)
    return {
        "paired": False,
        "mean_difference": float(b.mean() - a.mean()),
        "difference_ci95": [float(result.confidence_interval.low), float(result.confidence_interval.high)],
        "p_better": float(u),
        "p_tie": None,
        "p_worse": None,
    }


# TEMPORARY (replaced by the stats branch): the objective statistics of a search.
OBJECTIVES = ("mean", "median", "q05", "q25", "min", "iqm")


def objective(values: np.ndarray, name: str) -> float:
    values = np.sort(np.asarray(values, dtype=float))
    if name == "iqm":
        return float(stats.trim_mean(values, 0.25))
    return float(
        {"mean": np.mean, "median": np.median, "min": np.min}.get(
            name, lambda v: np.quantile(v, {"q05": 0.05, "q25": 0.25}[name])
        )(values)
    )
