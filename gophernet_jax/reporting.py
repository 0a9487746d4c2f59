"""Results files and printed tables: the I/O edge of a run.

pandas is imported where a frame is made, not at start-up.
"""

from typing import Any

import numpy as np

from gophernet_jax.training import Population


def results_frame(population: Population, base: int, start: int = 0) -> "pd.DataFrame":  # noqa: F821
    """One row per seed: its index (from `start`, a slice's first seed), the run's base seed,
    accuracies (validation when there is a validation part), final loss, divergence, tied
    test rows and collapse."""
    import pandas as pd  # only where a frame is made: it costs a fifth of a second at start-up

    count = population.final_loss.shape[0]
    val = {}
    if population.val_accuracy is not None:
        val = {"val_accuracy": np.asarray(population.val_accuracy, dtype=float)}
    return pd.DataFrame(
        {
            "seed": np.arange(start, start + count),
            "base_seed": base,
            "train_accuracy": np.asarray(population.train_accuracy, dtype=float),
            **val,
            "test_accuracy": np.asarray(population.test_accuracy, dtype=float),
            "final_loss": np.asarray(population.final_loss, dtype=float),
            "diverged": np.asarray(population.diverged, dtype=bool),
            "tied_rows": np.asarray(population.tied_rows, dtype=np.int64),
            "collapsed": np.asarray(population.collapsed, dtype=bool),
        }
    )


def curve_quantiles(epochs: np.ndarray, loss: np.ndarray, test_accuracy: np.ndarray) -> "pd.DataFrame":  # noqa: F821
    """Per recorded epoch, the 5%, 50% and 95% quantiles across seeds (axis 0) of each curve."""
    import pandas as pd

    columns = {"epoch": epochs}
    for name, values in (("loss", loss), ("test_accuracy", test_accuracy)):
        q05, median, q95 = np.nanquantile(np.asarray(values, dtype=float), [0.05, 0.5, 0.95], axis=0)
        columns |= {f"{name}_q05": q05, f"{name}_median": median, f"{name}_q95": q95}
    return pd.DataFrame(columns)


_TIES_WORDS = {"strict": "wrong", "article": "right, as in the article"}


def _interval(acc: dict[str, Any]) -> str:
    """The mean's interval, how it was made, and what it is conditional on."""
    if acc["mean_ci95"] is None:
        return f"n/a ({acc['reason']})"
    low, high = acc["mean_ci95"]
    fixed = acc.get("conditional_on") or []
    given = f", given one draw of {' and '.join(fixed)}" if fixed else ""
    return f"[{low:.4f}, {high:.4f}] ({acc['mean_ci95_method']}{given})"


def format_spread(summary: dict[str, Any], rows: int, width: int = 40) -> str:
    """The test-accuracy spread of a population as a readable table, with a bar per value."""
    acc = summary["test_accuracy"]
    lines = [
        f"test accuracy over {acc['count']} seeds ({rows} test rows each)",
        f"  mean {acc['mean']:.4f}  std {acc['std']:.4f}  95% CI of the mean {_interval(acc)}",
        "  min {min:.4f}  q05 {q05:.4f}  median {median:.4f}  q95 {q95:.4f}  max {max:.4f}".format(**acc),
        f"  diverged seeds: {summary['diverged']}  collapsed seeds: {summary['collapsed']}"
        f"  (tie or one class on every test row; ties count as {_TIES_WORDS[summary['ties']]})",
    ]
    if acc.get("best_of_n"):
        best = "  ".join(f"n={n} {v:.4f}" for n, v in acc["best_of_n"].items())
        lines.append(f"  best of n seeds, expected: {best}")
    if acc.get("seeds_needed"):
        resolution = summary["config"]["report"]["resolution"]
        lines.append(f"  seeds for a 95% interval of ±{resolution:g}: {acc['seeds_needed']}")
    lines += ["", "  accuracy  seeds  share"]
    top = max(acc["histogram"].values())
    for value, n in sorted(acc["histogram"].items(), key=lambda kv: float(kv[0]), reverse=True):
        bar = "#" * max(1, round(width * n / top))
        lines.append(f"  {value:>8}  {n:>5}  {n / acc['count']:>5.1%}  {bar}")
    return "\n".join(lines)
