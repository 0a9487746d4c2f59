"""Where a grid's accuracy variance comes from: each random source and their interactions.

The grid is a full factorial design without replication: `acc[i, j, ...]` is the accuracy
of the network trained with level i of the first source (say the split), level j of the
second (say the initialisation), and so on, every combination trained once. Two views of it:

- the grid's own variance, split exactly (ANOVA): every main effect and every interaction
  gets a sum of squares, from the usual inclusion–exclusion of marginal means; each divided
  by N − 1, they add up to the sample variance (ddof=1) of the N accuracies;
- the random-effects model (method of moments for a balanced crossed design), which
  estimates the variance a new level of each source, and of each combination, would add.
  The residual is the highest interaction: without replicates it also holds any run-to-run
  noise, which is none when training is deterministic given its seeds.

Intervals come from a bootstrap that resamples each source's levels independently.
"""

import copy
import math
from collections.abc import Iterator, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from gophernet_jax.statistics import ROUNDING

#: Shares closer than this are reported as sharing the lead rather than one dominating.
TIE_MARGIN = 0.05
#: Bytes the bootstrap's temporaries may take at once: resamples go through in batches that fit.
BATCH_BYTES = 64 * 2**20
# Grid-sized arrays alive at once per resample: the resampled grid, the highest interaction's
# contrast and its square, and the marginal means (at most half a grid each, since L >= 2).
_GRID_COPIES = 5
_WORDS = {"split": "the split", "init": "initialisation", "noise": "the noise", "order": "the data order"}
_WORDS["poke"] = "the poke (one float step of one initial weight)"
_PLURALS = {"split": "splits", "init": "initialisations", "noise": "noise draws", "order": "orders"}
_PLURALS["poke"] = "pokes"

Effect = tuple[int, ...]  # the axes (sources) an effect involves, in source order


def _effects(k: int) -> list[Effect]:
    """Every non-empty subset of k sources: main effects first, then two-way, ..., the k-way."""
    return [effect for size in range(1, k + 1) for effect in combinations(range(k), size)]


def _sums_of_squares(acc: np.ndarray, k: int) -> np.ndarray:
    """SS of every effect of the last k axes (see `_effects`): shape (..., 2**k − 1).

    An effect's contrast is the inclusion–exclusion of the marginal means of its subsets
    (for two sources: rows − mean, and acc − rows − cols + mean). Exactly 0 for a constant
    grid, where the means' rounding would leave a trace.
    """
    grid_axes = tuple(range(-k, 0))
    marginals: dict[Effect, np.ndarray] = {tuple(range(k)): acc}

    def marginal(kept: Effect) -> np.ndarray:
        if kept not in marginals:
            others = tuple(axis - k for axis in range(k) if axis not in kept)
            marginals[kept] = acc.mean(axis=others, keepdims=True)
        return marginals[kept]

    count = math.prod(acc.shape[-k:])
    ss = []
    for effect in _effects(k):
        contrast = marginal(effect)
        for size in range(len(effect) - 1, -1, -1):
            for subset in combinations(effect, size):
                if (len(effect) - size) % 2:
                    contrast = contrast - marginal(subset)
                else:
                    contrast = contrast + marginal(subset)
        cells = math.prod(acc.shape[axis - k] for axis in effect)
        ss.append(count // cells * (contrast**2).sum(axis=grid_axes))
        del contrast
    constant = acc.max(axis=grid_axes) == acc.min(axis=grid_axes)
    return np.where(constant[..., None], 0.0, np.stack(ss, axis=-1))


def _degrees_of_freedom(levels: Sequence[int]) -> list[int]:
    return [math.prod(levels[axis] - 1 for axis in effect) for effect in _effects(len(levels))]


def _components(ss: np.ndarray, levels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Random-effects estimates σ² per effect, clipped at 0, and the raw ones.

    E[MS_E] = Σ_{F ⊇ E} (Π_{s ∉ F} L_s) σ²_F: solved from the residual (the highest
    interaction, σ² = MS) down, each effect with its supersets' raw estimates.
    """
    effects = _effects(len(levels))
    ms = ss / np.array(_degrees_of_freedom(levels))

    def weight(effect: Effect) -> int:
        return math.prod(size for axis, size in enumerate(levels) if axis not in effect)

    raw: list[Any] = [None] * len(effects)
    for i in reversed(range(len(effects))):
        above = 0.0
        for j in range(i + 1, len(effects)):
            if set(effects[i]) < set(effects[j]):
                above = above + weight(effects[j]) * raw[j]
        raw[i] = (ms[..., i] - above) / weight(effects[i])
    raw_array = np.stack(raw, axis=-1)
    return np.maximum(raw_array, 0.0), raw_array


def _shares(parts: np.ndarray) -> np.ndarray:
    """Each part over the parts' sum; NaN where the sum is 0."""
    total = parts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, parts / np.where(total > 0, total, 1.0), np.nan)


def _resampled_grids(acc: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap's grids, a batch of resamples at a time, each source's levels drawn
    with replacement, independently.

    The draws are those of `rng.integers(0, L, (resamples, L))` per source, in source
    order, from one Generator, whatever the batch size: each source gets a copy of the
    Generator where the previous source's draws end, and draws its rows batch by batch.
    """
    rng = np.random.default_rng(seed)
    batch = max(1, BATCH_BYTES // (_GRID_COPIES * acc.itemsize * acc.size))
    batches = [min(batch, resamples - start) for start in range(0, resamples, batch)]
    streams = []
    for axis, size in enumerate(acc.shape):
        streams.append(copy.deepcopy(rng))
        if axis < acc.ndim - 1:
            for rows in batches:
                rng.integers(0, size, (rows, size))
    for rows in batches:
        index = []
        for axis, (stream, size) in enumerate(zip(streams, acc.shape)):
            shape = [rows] + [1] * acc.ndim
            shape[1 + axis] = size
            index.append(stream.integers(0, size, (rows, size)).reshape(shape))
        yield acc[tuple(index)]


def _bootstrap(acc: np.ndarray, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per resample (see `_resampled_grids`): variance parts, their shares, components and
    component shares, each (resamples, effects)."""
    ss = np.empty((resamples, 2**acc.ndim - 1))
    start = 0
    for grids in _resampled_grids(acc, resamples, seed):
        ss[start : start + len(grids)] = _sums_of_squares(grids, acc.ndim)
        start += len(grids)
    components, _ = _components(ss, acc.shape)
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


def _name(effect: Effect, sources: Sequence[str]) -> str:
    return "×".join(sources[axis] for axis in effect)


def _word(name: str) -> str:
    """How the sentence calls an effect: "the split", "the split×init interaction"."""
    return f"the {name} interaction" if "×" in name else _WORDS.get(name, f"the {name}")


def _lead(names: Sequence[str], shares: np.ndarray, samples: np.ndarray, level: float) -> dict[str, Any]:
    """The two largest shares, the difference between them, and its bootstrap interval:
    the difference taken within each resample (`samples`, resamples × effects), so the two
    shares are paired rather than compared by their own intervals."""
    first, second = np.argsort(-shares, kind="stable")[:2]
    difference = float(shares[first] - shares[second])
    paired = samples[:, first] - samples[:, second]
    # Both shares 0 in a resample (a resample that drew one level only) leave rounding, ±1e-29.
    interval = _interval(np.where(np.abs(paired) < ROUNDING, 0.0, paired), level)
    if difference < TIE_MARGIN:
        verdict = "shared"
    elif interval is not None and interval[0] > 0:
        verdict = "dominates"
    else:
        verdict = "unconfirmed"
    return {
        "first": names[first],
        "second": names[second],
        "difference": difference,
        "difference_ci95": interval,
        "verdict": verdict,
    }


def _verdict(lead: dict[str, Any], level: float) -> str:
    """Which effect dominates; the two that share the lead when within `TIE_MARGIN`; or the
    leader whose lead the bootstrap does not confirm (the difference's interval holds 0)."""
    first, second = _word(lead["first"]), _word(lead["second"])
    if lead["verdict"] == "shared":
        return f"{first} and {second} share the lead"
    if lead["verdict"] == "dominates":
        return f"{first} dominates"
    interval = lead["difference_ci95"]
    if interval is None:  # every resampled grid was constant
        return f"{first} leads, though no resample could compare it with {second}"
    low, high = (f"{bound:.0%}" for bound in interval)
    difference = f"the {level:.0%} interval of its share minus {second}'s, [{low}, {high}], holds 0"
    return f"{first} leads, though not clearly ({difference})"


def _said(lead: dict[str, Any]) -> tuple:
    """What a verdict says, numbers aside: the runner-up is named only where the lead is shared."""
    return lead["verdict"], lead["first"], lead["second"] if lead["verdict"] == "shared" else None


def _sentence(
    names: Sequence[str], shares: np.ndarray, leads: dict[str, Any], levels: dict[str, int], level: float
) -> str:
    grid = " × ".join(f"{size} {_PLURALS.get(source, f'{source} levels')}" for source, size in levels.items())
    parts = [f"{_word(name)}{' explains' if i == 0 else ''} {shares[i]:.0%}" for i, name in enumerate(names)]
    listing = ", ".join([f"{parts[0]} of the accuracy variance", *parts[1:-1], f"and {parts[-1]}"])
    lead, estimated = leads["share"], leads["component_share"]
    text = f"On this grid of {grid}, {listing}: {_verdict(lead, level)}"
    if estimated is not None and _said(estimated) != _said(lead):
        text += (
            " (by the random-effects estimates, which discount what noise adds to the means, "
            f"{_verdict(estimated, level)})"
        )
    return text + "."


def _checked(acc: np.ndarray, sources: Sequence[str], level: float) -> tuple[np.ndarray, list[str]]:
    names = [sources] if isinstance(sources, str) else list(sources)
    if len(names) < 2 or len(set(names)) < len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"need at least two distinct source names, got {sources!r}")
    if any("×" in name for name in names):
        raise ValueError(f"source names may not contain ×, which joins them into interactions: {names}")
    acc, sources = np.asarray(acc, dtype=np.float64), names
    if acc.ndim != len(sources) or min(acc.shape) < 2:
        raise ValueError(
            f"need a grid with one axis per source ({' × '.join(sources)}) and at least 2 levels of each, "
            f"got shape {acc.shape}"
        )
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracies must be finite")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return acc, sources


def variance_components(
    acc: np.ndarray,
    sources: Sequence[str] = ("split", "init"),
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Splits a grid's accuracy variance between its sources and their interactions.

    Args:
      acc: the accuracies, one axis per source in the order of `sources`, each with at
        least 2 levels; `acc[i, j, ...]` trained with level i of the first source, j of
        the second, and so on (a full factorial design, one run per cell).
      sources: the names of the axes, e.g. ("split", "init", "order"); at least two.
      level: confidence level of the bootstrap intervals.
      resamples: bootstrap resamples (processed in batches of bounded memory).
      seed: seed of the bootstrap's numpy Generator.

    Returns:
      A JSON-ready dict: `sources` (list), `levels` ({source: levels}), `count`, `mean`,
      `total_variance` (ddof=1); `effects`, per effect (main effects, then two-way, ...,
      named like "split" or "split×init"): `df`, `ss`, `variance` (SS / (N − 1); they add
      up to `total_variance`) with `variance_ci95`, `share` of the total with `share_ci95`,
      the random-effects `component` (σ², clipped at 0) with `component_ci95`,
      `component_share` with `component_share_ci95`, and `clipped` (the raw estimate was
      negative); `residual` (the highest interaction's name), `dominant` (the effect with
      the largest share); `lead` (and `component_lead`, of the random-effects shares, None
      when every component is 0): the two largest shares `first` and `second`, their
      `difference` with its bootstrap interval `difference_ci95` (paired: the difference
      within each resample), and `verdict`: "shared" when the difference is below
      `TIE_MARGIN`, "dominates" when its interval lies above 0, else "unconfirmed";
      `sentence`, which says that verdict; `note`, `level`, `resamples` and `seed`.
      With no variance at all, shares, `dominant` and the leads are None.

    Raises:
      ValueError: for fewer than two sources, a shape that does not match them, an axis
        with fewer than 2 levels, non-finite accuracies or a level outside (0, 1).

    Example:
      >>> report = variance_components(np.array([[0.9, 0.93], [0.97, 1.0]]), resamples=200)
      >>> report["dominant"]
      'split'
    """
    acc, sources = _checked(acc, sources, level)
    names = [_name(effect, sources) for effect in _effects(acc.ndim)]
    ss = _sums_of_squares(acc, acc.ndim)
    components, raw = _components(ss, acc.shape)
    shares, component_shares = _shares(ss), _shares(components)
    boot = _bootstrap(acc, resamples, seed)
    degenerate = bool(np.all(acc == acc.flat[0]))
    dfs = _degrees_of_freedom(acc.shape)

    def maybe(value: float) -> float | None:
        return None if np.isnan(value) else float(value)

    effects = {
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
        for i, name in enumerate(names)
    }
    levels = dict(zip(sources, (int(size) for size in acc.shape)))
    lead = component_lead = None
    if degenerate:
        dominant = None
        sentence = (
            f"All {acc.size} accuracies on this grid are equal ({acc.flat[0]:.4g}): "
            "there is no variance to attribute."
        )
    else:
        dominant = names[int(np.argmax(shares))]
        lead = _lead(names, shares, boot["share"], level)
        if np.isfinite(component_shares).all():
            component_lead = _lead(names, component_shares, boot["component_share"], level)
        sentence = _sentence(names, shares, {"share": lead, "component_share": component_lead}, levels, level)
    return {
        "sources": sources,
        "levels": levels,
        "count": int(acc.size),
        "mean": float(acc.mean()),
        "total_variance": 0.0 if degenerate else float(acc.var(ddof=1)),
        "effects": effects,
        "residual": names[-1],
        "dominant": dominant,
        "lead": lead,
        "component_lead": component_lead,
        "sentence": sentence,
        "note": (
            "Shares split the grid's own variance exactly; the random-effects components estimate "
            "what a new level of each source, or of each combination, adds. Without replicates the "
            f"{names[-1]} interaction also holds run-to-run noise (none when training is deterministic "
            "given its seeds)."
        ),
        "level": level,
        "resamples": resamples,
        "seed": seed,
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _range(interval: list[float] | None, percent: bool, scale: float = 0.0) -> str:
    if interval is None:
        return "—"
    low, high = interval
    return f"[{low:.1%}, {high:.1%}]" if percent else f"[{_g(low, scale)}, {_g(high, scale)}]"


def _g(value: float, scale: float) -> str:
    """`value` to 3 significant digits, and 0 where it is rounding below `scale` (the grid's
    total variance) by a factor of 10¹²: sums of squares of an exact 0 leave 1e-32."""
    return "0" if abs(value) <= 1e-12 * scale else f"{value:.3g}"


def format_variance(report: dict[str, Any]) -> str:
    """A short table of `variance_components`' report: per effect its variance, share, the
    share's interval and the random-effects estimate with its interval; a total; the sentence."""
    width = max(12, 1 + max(len(name) for name in report["effects"]))
    level = f"{report['level']:.0%}"
    interval = f"{level} interval"
    header = f"{'source':<{width}} {'variance':>10} {'share':>7} {interval:>17}   random-effects σ² [{level}]"
    lines = [header, "-" * len(header)]
    scale = report["total_variance"] or 0.0
    for name, effect in report["effects"].items():
        component = f"{_g(effect['component'], scale)} {_range(effect['component_ci95'], False, scale)}" + (
            " (clipped at 0)" if effect["clipped"] else ""
        )
        lines.append(
            f"{name:<{width}} {_g(effect['variance'], scale):>10} {_percent(effect['share']):>7} "
            f"{_range(effect['share_ci95'], True):>17}   {component}"
        )
    lines.append(
        f"{'total':<{width}} {report['total_variance']:>10.3g} {'100%' if report['dominant'] else '—':>7}"
    )
    lines += [report["sentence"], report["note"]]
    return "\n".join(lines)
