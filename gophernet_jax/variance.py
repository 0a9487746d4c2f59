"""Where a grid's accuracy variance comes from: the split, the initialisation, or both.

The grid is a crossed two-way design without replication: accuracy `acc[s, j]` of the
network trained from initial weights j on split s, every initialisation used on every
split. Two views of it:

- the grid's own variance, split exactly: SS_total = SS_split + SS_init + SS_interaction,
  each divided by N − 1 so the three parts add up to the sample variance (ddof=1) of the
  N accuracies;
- the two-way random-effects model (method of moments), which estimates the variance a
  new split, a new initialisation and their interaction would each add. The residual
  is the interaction: without replicates it also holds any run-to-run noise, which is
  none when training is deterministic given its seeds.

Intervals come from a two-way bootstrap that resamples split levels and initialisation
levels independently.
"""

from typing import Any

import numpy as np

SOURCES = ("split", "init", "interaction")
#: Shares closer than this are reported as sharing the lead rather than one dominating.
TIE_MARGIN = 0.05
_WORDS = {"split": "the split", "init": "initialisation", "interaction": "their interaction"}


def _sums_of_squares(acc: np.ndarray) -> np.ndarray:
    """SS of split, init and interaction, over the last two axes: shape (..., 3).

    Exactly 0 for a constant grid, where the means' rounding would leave a trace.
    """
    mean = acc.mean(axis=(-2, -1), keepdims=True)
    rows, cols = acc.mean(axis=-1, keepdims=True), acc.mean(axis=-2, keepdims=True)
    splits, inits = acc.shape[-2:]
    ss_split = inits * ((rows - mean) ** 2).sum(axis=(-2, -1))
    ss_init = splits * ((cols - mean) ** 2).sum(axis=(-2, -1))
    ss_inter = ((acc - rows - cols + mean) ** 2).sum(axis=(-2, -1))
    constant = acc.max(axis=(-2, -1)) == acc.min(axis=(-2, -1))
    return np.where(constant[..., None], 0.0, np.stack([ss_split, ss_init, ss_inter], axis=-1))


def _components(ss: np.ndarray, splits: int, inits: int) -> tuple[np.ndarray, np.ndarray]:
    """Random-effects estimates σ² (split, init, interaction), clipped at 0, and the raw ones."""
    ms = ss / np.array([splits - 1, inits - 1, (splits - 1) * (inits - 1)])
    ms_resid = ms[..., 2]
    raw = np.stack([(ms[..., 0] - ms_resid) / inits, (ms[..., 1] - ms_resid) / splits, ms_resid], axis=-1)
    return np.maximum(raw, 0.0), raw


def _shares(parts: np.ndarray) -> np.ndarray:
    """Each part over the parts' sum; NaN where the sum is 0."""
    total = parts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, parts / np.where(total > 0, total, 1.0), np.nan)


def _bootstrap(acc: np.ndarray, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per resample (split levels and init levels drawn with replacement, independently):
    variance parts, their shares, components and component shares, each (resamples, 3)."""
    rng = np.random.default_rng(seed)
    splits, inits = acc.shape
    rows = rng.integers(0, splits, (resamples, splits))
    cols = rng.integers(0, inits, (resamples, inits))
    grids = acc[rows[:, :, None], cols[:, None, :]]
    ss = _sums_of_squares(grids)
    components, _ = _components(ss, splits, inits)
    return {
        "variance": ss / (acc.size - 1),
        "share": _shares(ss),
        "component": components,
        "component_share": _shares(components),
    }


def _interval(samples: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of the finite samples; None when there are none."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def _verdict(shares: np.ndarray) -> str:
    """Which source dominates, or the two that share the lead when within `TIE_MARGIN`."""
    first, second = np.argsort(-shares, kind="stable")[:2]
    if shares[first] - shares[second] < TIE_MARGIN:
        return f"{_WORDS[SOURCES[first]]} and {_WORDS[SOURCES[second]]} share the lead"
    return f"{_WORDS[SOURCES[first]]} dominates"


def _sentence(shares: np.ndarray, component_shares: np.ndarray, splits: int, inits: int) -> str:
    parts = [f"{_WORDS[s]}{' explains' if i == 0 else ''} {shares[i]:.0%}" for i, s in enumerate(SOURCES)]
    text = (
        f"On this grid of {splits} splits × {inits} initialisations, {parts[0]} of the accuracy variance, "
        f"{parts[1]}, and {parts[2]}: {_verdict(shares)}"
    )
    estimated = _verdict(component_shares) if np.isfinite(component_shares).all() else None
    if estimated is not None and estimated != _verdict(shares):
        text += (
            f" (by the random-effects estimates, which discount what noise adds to the means, {estimated})"
        )
    return text + "."


def variance_components(
    acc: np.ndarray, *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Splits a grid's accuracy variance between the split, the initialisation and both.

    Args:
      acc: (splits, inits) accuracies; `acc[s, j]` trained from initial weights j on
        split s. At least 2 of each.
      level: confidence level of the bootstrap intervals.
      resamples: bootstrap resamples.
      seed: seed of the bootstrap's numpy Generator.

    Returns:
      A JSON-ready dict: `splits`, `inits`, `count`, `mean`, `total_variance` (ddof=1);
      `sources`, per source (split, init, interaction): `df`, `ss`, `variance`
      (SS / (N − 1); the three add up to `total_variance`), `share` of the total with
      `share_ci95`, `variance_ci95`, the random-effects `component` (σ², clipped at 0)
      with `component_ci95`, `component_share`, and `clipped` (the raw estimate was
      negative); `dominant` (the source with the largest share), `sentence` (which says "share the
      lead" when the top two shares are within `TIE_MARGIN`) and `note`.
      With no variance at all, shares and `dominant` are None.

    Example:
      >>> report = variance_components(np.array([[0.9, 0.93], [0.97, 1.0]]), resamples=200)
      >>> report["dominant"]
      'split'
    """
    acc = np.asarray(acc, dtype=np.float64)
    if acc.ndim != 2 or min(acc.shape) < 2:
        raise ValueError(f"need a (splits, inits) grid with at least 2 of each, got shape {acc.shape}")
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracies must be finite")
    splits, inits = acc.shape
    ss = _sums_of_squares(acc)
    components, raw = _components(ss, splits, inits)
    shares, component_shares = _shares(ss), _shares(components)
    boot = _bootstrap(acc, resamples, seed)
    degenerate = bool(np.all(acc == acc.flat[0]))
    total = 0.0 if degenerate else float(acc.var(ddof=1))
    dfs = (splits - 1, inits - 1, (splits - 1) * (inits - 1))

    def maybe(value: float) -> float | None:
        return None if np.isnan(value) else float(value)

    sources = {
        name: {
            "df": dfs[i],
            "ss": float(ss[i]),
            "variance": float(ss[i] / (acc.size - 1)),
            "variance_ci95": _interval(boot["variance"][:, i], level),
            "share": maybe(shares[i]),
            "share_ci95": None if degenerate else _interval(boot["share"][:, i], level),
            "component": float(components[i]),
            "component_ci95": _interval(boot["component"][:, i], level),
            "component_share": maybe(component_shares[i]),
            "component_share_ci95": None if degenerate else _interval(boot["component_share"][:, i], level),
            "clipped": bool(raw[i] < 0),
        }
        for i, name in enumerate(SOURCES)
    }
    if degenerate:
        dominant = None
        sentence = (
            f"All {acc.size} accuracies on this grid are equal ({acc.flat[0]:.4g}): "
            "there is no variance to attribute."
        )
    else:
        dominant = SOURCES[int(np.argmax(shares))]
        sentence = _sentence(shares, component_shares, splits, inits)
    return {
        "splits": splits,
        "inits": inits,
        "count": int(acc.size),
        "mean": float(acc.mean()),
        "total_variance": total,
        "sources": sources,
        "dominant": dominant,
        "sentence": sentence,
        "note": (
            "Shares split the grid's own variance exactly; the random-effects components estimate "
            "what a new split or initialisation adds. Without replicates the interaction also holds "
            "run-to-run noise (none when training is deterministic given its seeds)."
        ),
        "level": level,
        "resamples": resamples,
        "seed": seed,
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _range(interval: list[float] | None, percent: bool) -> str:
    if interval is None:
        return "—"
    low, high = interval
    return f"[{low:.1%}, {high:.1%}]" if percent else f"[{low:.3g}, {high:.3g}]"


def format_variance(report: dict[str, Any]) -> str:
    """A short table of `variance_components`' report: per source its variance, share,
    the share's interval and the random-effects estimate with its interval, then the sentence."""
    level = f"{report['level']:.0%}"
    interval = f"{level} interval"
    header = f"{'source':<12} {'variance':>10} {'share':>7} {interval:>17}   random-effects σ² [{level}]"
    lines = [header, "-" * len(header)]
    for name in SOURCES:
        s = report["sources"][name]
        component = f"{s['component']:.3g} {_range(s['component_ci95'], False)}" + (
            " (clipped at 0)" if s["clipped"] else ""
        )
        lines.append(
            f"{name:<12} {s['variance']:>10.3g} {_percent(s['share']):>7} "
            f"{_range(s['share_ci95'], True):>17}   {component}"
        )
    lines.append(
        f"{'total':<12} {report['total_variance']:>10.3g} {'100%' if report['dominant'] else '—':>7}"
    )
    lines += [report["sentence"], report["note"]]
    return "\n".join(lines)
