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


def summarize(values: np.ndarray, level: float = 0.95) -> dict[str, Any]:
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
