"""The test set is luck too: what a population's spread owes to its few test rows (issue 16).

A population's test accuracies vary over seeds for two reasons: seeds differ in how well
they do on the distribution, and a 30-row test set samples it coarsely, so two equally good
seeds can land on different rows. This module separates the two and scores populations on
both draws at once. Pure NumPy: the training side hands over, per seed and test row, the
predicted class (-1 on a tied row) and whether the row counts as correct under the run's
tie rule.

Two accumulators hold everything, both built chunk by chunk of seeds, so a population of
10^6 seeds never needs more than one chunk's temporaries at once:

- `RowCounts` (`row_counts`): per test row, seeds per predicted class, tie included, and
  seeds correct; the rows table and churn come from it exactly;
- `SeedBlocks` (`seed_blocks`): each split's seeds dealt into `BLOCKS` blocks (its i-th seed
  in block i mod `BLOCKS`), per block the seeds, their correct counts per row, and the sums
  of each seed's rows correct and of its square. The test-set variances are exact functions of
  the blocks' totals, and the bootstraps resample blocks: seeds are independent and
  identically distributed, so blocks of them are too, and resampling blocks with
  replacement is the seed bootstrap when every block holds one seed (up to `BLOCKS` seeds)
  and its block version beyond. Distinct per-seed error patterns, the other exact route,
  are not bounded (up to 2^rows); blocks are: `BLOCKS` × (rows + 3) numbers per split.

Where splits vary over seeds (`groups`, a split index per seed), each split has its own test
rows, so everything is computed within each split and pooled with the splits' seed counts as
weights; the splits themselves are held fixed (the interval is for these splits; the
variance report resamples splits). Results are NamedTuples of plain floats, ints, lists and
None (`._asdict()` is JSON-ready); a statistic the data cannot give is None and `reason`
says why.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gophernet_jax.statistics import _BATCH_ELEMENTS, RESAMPLES, ROUNDING, _level_weights, _unpaired_shares

#: Seeds are dealt into this many blocks per split (see the module docstring).
BLOCKS = 1000
#: Seed × row cells per chunk when an accumulator walks a (seeds, rows) array: its int64
#: temporaries (cell keys, class columns, the selected keys) take ~4 MB each.
CHUNK_CELLS = 2**19
#: Bouthillier et al.'s threshold: P(A > B) must be able to exceed it to be a meaningful gain.
GAMMA = 0.75


# ---------------------------------------------------------------------------------------------
# Accumulators


@dataclass(frozen=True)
class RowCounts:
    """Per test row, over seeds: how many predict each class, how many tie, how many are correct.

    Sum two with `+` (chunks of the same population). Leading axis: the split (one without
    `groups`).

    Attributes:
      classes: (splits, rows, C + 1) int64; column k counts seeds predicting class k, the last
        column seeds tied on the row (predicted -1).
      correct: (splits, rows) int64, seeds correct under the run's tie rule.
    """

    classes: np.ndarray
    correct: np.ndarray

    def __add__(self, other: "RowCounts") -> "RowCounts":
        if self.classes.shape != other.classes.shape:
            raise ValueError(f"row counts {self.classes.shape} and {other.classes.shape} do not add")
        return RowCounts(self.classes + other.classes, self.correct + other.correct)

    @property
    def seeds(self) -> np.ndarray:
        """(splits,) int64: seeds counted per split."""
        return self.classes[:, :1, :].sum(axis=(1, 2))  # every seed predicts something on row 0


@dataclass(frozen=True)
class SeedBlocks:
    """Seeds dealt into blocks, per split: the i-th seed of a split in block i mod `blocks`.

    Continue a population chunk by chunk with `seed_blocks(chunk, after=blocks)`; `+` adds
    blocks dealt separately.

    Attributes:
      seeds: (splits, blocks) int64, seeds per block.
      correct: (splits, blocks, rows) int64, seeds correct per row.
      hits: (splits, blocks) int64, Σ k_s over the block's seeds, k_s the rows seed s gets right.
      hits_sq: (splits, blocks) int64, Σ k_s².
    """

    seeds: np.ndarray
    correct: np.ndarray
    hits: np.ndarray
    hits_sq: np.ndarray

    def __add__(self, other: "SeedBlocks") -> "SeedBlocks":
        if self.correct.shape != other.correct.shape:
            raise ValueError(f"seed blocks {self.correct.shape} and {other.correct.shape} do not add")
        return SeedBlocks(*(a + b for a, b in zip(self._fields(), other._fields())))

    def _fields(self) -> tuple[np.ndarray, ...]:
        return self.seeds, self.correct, self.hits, self.hits_sq

    @property
    def rows(self) -> int:
        return self.correct.shape[-1]


def _split_index(groups: np.ndarray | None, seeds: int, splits: int | None) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.zeros(seeds, dtype=np.int64), 1 if splits is None else splits
    groups = np.asarray(groups).astype(np.int64, copy=False)
    if groups.shape != (seeds,):
        raise ValueError(f"groups needs one split index per seed ({seeds}), got shape {groups.shape}")
    if seeds and groups.min() < 0:
        raise ValueError("groups must be split indices 0, 1, ...")
    found = int(groups.max()) + 1 if seeds else 1
    if splits is not None and found > splits:
        raise ValueError(f"groups holds split {found - 1} but splits is {splits}")
    return groups, found if splits is None else splits


def _as_matrix(correct: np.ndarray) -> np.ndarray:
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise ValueError(f"correct must be (seeds, rows), got shape {correct.shape}")
    return correct.astype(bool, copy=False)


def _chunk(rows: int) -> int:
    return max(1, CHUNK_CELLS // max(1, rows))


def row_counts(
    predicted: np.ndarray,
    correct: np.ndarray,
    classes: int,
    *,
    groups: np.ndarray | None = None,
    splits: int | None = None,
) -> RowCounts:
    """Per-row class counts of a population, or of one chunk of its seeds.

    Args:
      predicted: (seeds, rows) int, each seed's predicted class per row, -1 where it ties.
      correct: (seeds, rows) bool, whether the row counts as correct under the run's tie rule
        (the "article" rule can count a tie correct, so this is not `predicted == label`).
      classes: the number of classes C.
      groups: (seeds,) split index per seed, or None when every seed has the same split.
      splits: the number of splits; give it when summing chunks, which may miss a split.

    Returns:
      The `RowCounts`; sum chunks' counts with `+`.
    """
    predicted, correct = np.asarray(predicted), _as_matrix(correct)
    if predicted.shape != correct.shape:
        raise ValueError(f"predicted {predicted.shape} and correct {correct.shape} differ in shape")
    if predicted.size and (predicted.min() < -1 or predicted.max() >= classes):
        raise ValueError(f"predicted classes must lie in -1 (tied) .. {classes - 1}")
    seeds, rows = predicted.shape
    groups, splits = _split_index(groups, seeds, splits)
    counts = np.zeros(splits * rows * (classes + 1), dtype=np.int64)
    hits = np.zeros(splits * rows, dtype=np.int64)
    for start in range(0, seeds, step := _chunk(rows)):
        chunk = slice(start, start + step)
        cell = groups[chunk, None] * rows + np.arange(rows)  # (chunk, rows): the (split, row) cell
        column = predicted[chunk].astype(np.int64) % (classes + 1)  # -1, tied, is the last column
        counts += np.bincount((cell * (classes + 1) + column).ravel(), minlength=counts.size)
        hits += np.bincount(cell[correct[chunk]], minlength=hits.size)
    return RowCounts(counts.reshape(splits, rows, classes + 1), hits.reshape(splits, rows))


def seed_blocks(
    correct: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    splits: int | None = None,
    after: "SeedBlocks | None" = None,
    blocks: int = BLOCKS,
) -> SeedBlocks:
    """The block sums of a population's correct matrix, walked chunk by chunk.

    Seeds are dealt by their rank within their split, in the order given: the i-th seed of
    a split goes to block i mod `blocks`. Up to `blocks` seeds a split, each seed is its own
    block; beyond, the blocks hold equal shares whatever the layout of splits over seeds
    (dealing by population index would give a split laid out with stride 20 only a
    twentieth of the blocks). Two populations whose seeds come in the same order deal them
    alike, as a paired comparison needs.

    Args:
      correct: (seeds, rows) bool, correct under the run's tie rule.
      groups: (seeds,) split index per seed, or None.
      splits: the number of splits; give it when a chunk may miss one.
      after: the blocks of the seeds before this chunk, to continue the deal; None to start.
      blocks: blocks per split (taken from `after` when given).

    Returns:
      The `SeedBlocks` of the seeds so far (`after`'s and this chunk's).
    """
    correct = _as_matrix(correct)
    seeds, rows = correct.shape
    if after is not None:
        splits, blocks = (after.seeds.shape[0] if splits is None else splits), after.seeds.shape[1]
    groups, splits = _split_index(groups, seeds, splits)
    dealt = np.zeros(splits, np.int64) if after is None else after.seeds.sum(axis=1)
    if len(dealt) != splits:
        raise ValueError(f"after holds {len(dealt)} splits, this chunk {splits}")
    cells = splits * blocks
    totals = [np.zeros(cells, dtype=np.int64) for _ in range(3)]
    per_row = np.zeros(cells * rows, dtype=np.int64)
    for start in range(0, seeds, step := _chunk(rows)):
        chunk, split = correct[start : start + step], groups[start : start + step]
        block = split * blocks + (dealt[split] + _rank_within(split)) % blocks
        dealt += np.bincount(split, minlength=splits)
        k = chunk.sum(axis=1, dtype=np.int64)
        for total, weights in zip(totals, (None, k, k * k)):
            total += np.bincount(block, weights, minlength=cells).astype(np.int64)
        per_row += np.bincount((block[:, None] * rows + np.arange(rows))[chunk], minlength=per_row.size)
    seeds_, hits, hits_sq = (t.reshape(splits, blocks) for t in totals)
    found = SeedBlocks(seeds_, per_row.reshape(splits, blocks, rows), hits, hits_sq)
    return found if after is None else after + found


def _rank_within(split: np.ndarray) -> np.ndarray:
    """Each seed's rank among the chunk's seeds of its split, in order."""
    order = np.argsort(split, kind="stable")
    ordered = split[order]
    rank = np.empty_like(split)
    rank[order] = np.arange(split.size) - np.searchsorted(ordered, ordered, "left")
    return rank


# ---------------------------------------------------------------------------------------------
# 1. The rows table


def rows_table(
    counts: RowCounts,
    labels: np.ndarray,
    class_names: list[str] | None = None,
    row_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One line per test row: how the population's seeds do on it.

    Args:
      counts: the population's `row_counts`.
      labels: (rows,) true classes, or (splits, rows) where splits have their own rows.
      class_names: C names, for the `share_NAME` columns and `top_wrong`; "0", "1", ... if None.
      row_ids: (rows,) or (splits, rows) identifiers of the rows; 0, 1, ... if None.

    Returns:
      Columns (name -> array of one entry per row, split by split; `pandas.DataFrame(table)`
      makes it a frame): `split` (only with several splits), `row`, `label`, `correct_share`
      (share of seeds correct), `tied_share` (share tied, predicted -1), `share_NAME` for each
      class (share of seeds predicting it), and `top_wrong`: the class other than the label
      that most seeds predict (the first such class on a tie of counts), None where no seed
      predicts a wrong class (seeds that tie are counted in `tied_share`, not here).
    """
    splits, rows, width = counts.classes.shape
    names = [str(k) for k in range(width - 1)] if class_names is None else [str(n) for n in class_names]
    if len(names) != width - 1:
        raise ValueError(f"{len(names)} class names for {width - 1} classes")
    labels = np.broadcast_to(np.asarray(labels), (splits, rows))
    ids = np.broadcast_to(np.arange(rows) if row_ids is None else np.asarray(row_ids), (splits, rows))
    seeds = np.maximum(counts.seeds, 1)[:, None]  # a split without seeds shows shares of 0
    shares = counts.classes / seeds[..., None]
    wrong = counts.classes[..., :-1].copy()
    np.put_along_axis(wrong, labels[..., None].astype(np.int64), 0, axis=-1)
    top = np.argmax(wrong, axis=-1)
    top_wrong = np.where(wrong.max(axis=-1) > 0, np.asarray(names, dtype=object)[top], None)
    table = {"split": np.repeat(np.arange(splits), rows)} if splits > 1 else {}
    table |= {
        "row": ids.ravel(),
        "label": np.asarray(names, dtype=object)[labels.ravel()],
        "correct_share": (counts.correct / seeds).ravel(),
        "tied_share": shares[..., -1].ravel(),
        **{f"share_{name}": shares[..., k].ravel() for k, name in enumerate(names)},
        "top_wrong": top_wrong.ravel(),
    }
    return table


# ---------------------------------------------------------------------------------------------
# 2. How much of the spread the test rows explain (Jordan, ICLR 2024)


class TestSetVariance(NamedTuple):
    """The seeds' variance of test accuracy, split into test-set sampling and the distribution.

    Attributes:
      rows: n, test rows (per split).
      seeds: seeds in all.
      splits: splits pooled (within-split variances averaged with seed weights).
      observed_variance: variance over seeds of test accuracy (ddof 1; within splits).
      independent_errors_variance: (1/n²)·Σᵢ εᵢ(1 − εᵢ), εᵢ the share of seeds wrong on row i:
        the variance if every seed erred on each row independently, with the row's error rate.
      distribution_variance: Jordan's unbiased estimate of the variance over seeds of the
        accuracy on the whole distribution, n/(n − 1)·[observed − (1/n²)·Σᵢ vᵢ], vᵢ the
        variance over seeds (ddof 1) of the error on row i; it is the mean covariance of two
        distinct rows' errors, and can come out negative (then no seed-to-seed skill is seen).
      distribution_variance_ci95: [low, high], percentile bootstrap over seed blocks.
      distribution_std: sqrt of the estimate, 0 where it is negative.
      distribution_std_ci95: the interval's ends through the same map.
      test_rows_share: 1 − distribution/observed, clipped to [0, 1]: the share of the
        observed variance that the finite test set accounts for.
      summary: one line saying so.
      method: how the interval was made.
      reason: None, or why a statistic is None.
    """

    __test__ = False  # a result, not a test class, wherever pytest meets the name

    rows: int
    seeds: int
    splits: int
    observed_variance: float | None
    independent_errors_variance: float | None
    distribution_variance: float | None
    distribution_variance_ci95: list[float] | None
    distribution_std: float | None
    distribution_std_ci95: list[float] | None
    test_rows_share: float | None
    summary: str
    method: str
    reason: str | None


def _variances(n_seeds, correct, hits, hits_sq, rows: int) -> tuple[np.ndarray, ...]:
    """(observed, independent, distribution) variances from seed totals; vectorised over resamples.

    n_seeds, hits, hits_sq: (...,); correct: (..., rows), seeds correct per row.
    """
    n = rows
    mean = hits / n_seeds
    observed = (hits_sq - n_seeds * mean**2) / (n_seeds - 1) / n**2
    eps = 1 - correct / n_seeds[..., None]
    bernoulli = np.sum(eps * (1 - eps), axis=-1)
    independent = bernoulli / n**2
    distribution = n / (n - 1) * (observed - n_seeds / (n_seeds - 1) * bernoulli / n**2)
    return observed, independent, distribution


def _nonempty(blocks: SeedBlocks) -> list[np.ndarray]:
    """Per split, a (nonempty blocks, 3 + rows) matrix: seeds, hits, hits², correct per row."""
    found = []
    for g in range(blocks.seeds.shape[0]):
        keep = blocks.seeds[g] > 0
        columns = [blocks.seeds[g, keep, None], blocks.hits[g, keep, None], blocks.hits_sq[g, keep, None]]
        found.append(np.concatenate([*columns, blocks.correct[g, keep]], axis=1).astype(float))
    return found


def _resampled_totals(matrix: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` resamples of the blocks' column totals, blocks drawn with replacement."""
    weights = _level_weights(len(matrix), size, rng) * len(matrix)  # multiplicities
    return weights @ matrix


def _batch(per_resample: int, resamples: int) -> int:
    """Resamples per batch, `per_resample` the elements each holds while its batch is alive."""
    return max(1, min(resamples, _BATCH_ELEMENTS // max(1, per_resample)))


def test_set_variance(
    blocks: SeedBlocks | np.ndarray,
    *,
    groups: np.ndarray | None = None,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> TestSetVariance:
    """How much of a population's spread in test accuracy its test rows explain.

    Jordan (ICLR 2024, "On the Variance of Neural Network Training with respect to Test
    Sets and Distributions"): were seeds' errors independent across rows given each row's
    error rate, the spread would be `independent_errors_variance`; the excess is seeds that
    are better or worse on the whole distribution, `distribution_variance`. Its interval
    resamples seeds (by blocks, see the module docstring) and holds the test rows fixed: it
    is the uncertainty from having finitely many seeds (a resample that draws one seed of a
    split has no variance and is left out). Over splits, each split's three
    variances are computed on its own seeds and rows and averaged with seed weights.

    Args:
      blocks: the population's `seed_blocks`, or its (seeds, rows) bool correct matrix.
      groups: with a matrix, the split index per seed (None: one split).
      level: the interval's confidence level.
      resamples: bootstrap resamples (memory is batched; time ~ resamples × blocks × rows).
      seed: seeds the resampling.

    Returns:
      The `TestSetVariance`.
    """
    if not isinstance(blocks, SeedBlocks):
        blocks = seed_blocks(blocks, groups=groups)
    rows, per_split = blocks.rows, blocks.seeds.sum(axis=1)
    used = per_split >= 2
    seeds, splits = int(per_split.sum()), int(np.count_nonzero(per_split))
    method = f"percentile bootstrap over seeds (in blocks beyond {_dealt(blocks)}), test rows fixed"
    reason = "fewer than two seeds in every split" if not used.any() else None
    reason = reason or ("one test row: no pair of rows to separate" if rows < 2 else None)
    if reason:
        return TestSetVariance(rows, seeds, splits, *[None] * 7, "", method, reason)
    weights = per_split[used] / per_split[used].sum()
    matrices = [m for m, u in zip(_nonempty(blocks), used) if u]
    per_split_parts = np.array([_split_variances(m.sum(axis=0), rows) for m in matrices])  # (splits, 3)
    observed, independent, distribution = (float(p) for p in weights @ per_split_parts)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    # per resample: its block weights as `_level_weights` draws them (~4 numbers a block) and its totals
    batch = _batch(4 * max(len(m) for m in matrices) + rows + 3, resamples)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample of one seed has no variance
            parts = [_split_variances(_resampled_totals(m, size, rng), rows)[2] for m in matrices]
        draws[start : start + size] = sum(w * p for w, p in zip(weights, parts))
    ci = np.quantile(draws[np.isfinite(draws)], [0.5 - level / 2, 0.5 + level / 2]).tolist()
    std, std_ci = math.sqrt(max(distribution, 0.0)), [math.sqrt(max(c, 0.0)) for c in ci]
    share = min(1.0, max(0.0, 1 - distribution / observed)) if observed > 0 else None
    summary = _summary_line(observed, rows, share, std, std_ci, splits)
    return TestSetVariance(
        rows=rows,
        seeds=seeds,
        splits=splits,
        observed_variance=observed,
        independent_errors_variance=independent,
        distribution_variance=distribution,
        distribution_variance_ci95=ci,
        distribution_std=std,
        distribution_std_ci95=std_ci,
        test_rows_share=share,
        summary=summary,
        method=method,
        reason=None,
    )


def _split_variances(totals: np.ndarray, rows: int) -> tuple[np.ndarray, ...]:
    return _variances(totals[..., 0], totals[..., 3:], totals[..., 1], totals[..., 2], rows)


def split_variances(blocks: SeedBlocks) -> list[dict[str, float | int | None]]:
    """Each split's own (observed, independent-errors, distribution) variances, the parts
    `test_set_variance` pools with seed weights; None for a split of fewer than two seeds.

    Returns:
      One dict per split: `split`, `seeds`, `observed_variance`, `independent_errors_variance`,
      `distribution_variance`.
    """
    found = []
    for g, seeds in enumerate(blocks.seeds.sum(axis=1).tolist()):
        parts: list[float | None] = [None] * 3
        if seeds >= 2 and blocks.rows >= 2:
            totals = np.concatenate(
                [[seeds, blocks.hits[g].sum(), blocks.hits_sq[g].sum()], blocks.correct[g].sum(axis=0)]
            ).astype(float)
            parts = [float(v) for v in _split_variances(totals, blocks.rows)]
        names = ("observed_variance", "independent_errors_variance", "distribution_variance")
        found.append({"split": g, "seeds": int(seeds), **dict(zip(names, parts))})
    return found


def _summary_line(observed: float, rows: int, share: float | None, std: float, ci: list[float], splits: int):
    where = " within a split" if splits > 1 else ""
    spread = (
        f"the seeds' test accuracies{where} do not vary"
        if share is None
        else f"of the variance over seeds{where} (std {math.sqrt(observed):.3f}), the {rows} test rows "
        f"account for {share:.0%}"
    )
    return (
        f"{spread}; on new rows from the same distribution the std would be {std:.3f} "
        f"[{ci[0]:.3f}, {ci[1]:.3f}]"
    )


test_set_variance.__test__ = False  # a statistic, not a test, wherever pytest meets the name


# ---------------------------------------------------------------------------------------------
# 3. Seeds and test rows resampled together (Sellam et al. 2021, the MultiBERTs multi-bootstrap)


class MultiBootstrap(NamedTuple):
    """A mean accuracy (or a difference of two) with an interval over both seeds and test rows.

    Attributes:
      estimate: the mean over seeds and rows of correct (pooled over splits with seed
        weights); for a difference, other's minus baseline's.
      ci95: [low, high], percentile interval of the multi-bootstrap.
      paired: for a difference, whether both sides shared the seed draw; None for a mean.
      resamples: bootstrap resamples.
      method: how each resample was drawn.
      reason: None, or why `estimate` and `ci95` are None.
    """

    estimate: float | None
    ci95: list[float] | None
    paired: bool | None
    resamples: int
    method: str
    reason: str | None


def _as_blocks(correct: SeedBlocks | np.ndarray, groups: np.ndarray | None) -> SeedBlocks:
    return correct if isinstance(correct, SeedBlocks) else seed_blocks(correct, groups=groups)


def _replicate_means(matrix: np.ndarray, seed_weights: np.ndarray, row_weights: np.ndarray) -> np.ndarray:
    """Mean of correct over drawn seeds × drawn rows, for given multiplicities.

    With u the seed (block) multiplicities and w the row ones, the mean over the drawn
    seeds and rows is Σ_r w_r Σ_b u_b C_br / (Σ_r w_r · Σ_b u_b m_b), C_br the block's
    seeds correct on row r and m_b its seeds: one product per resample, never the drawn grid.

    Args:
      matrix: (blocks, 3 + rows) from `_nonempty`.
      seed_weights: (resamples, blocks) multiplicities.
      row_weights: (resamples, rows) multiplicities.
    """
    totals = seed_weights @ matrix
    return np.sum(row_weights * totals[:, 3:], axis=1) / (row_weights.sum(axis=1) * totals[:, 0])


#: From this many test rows on, the multi-bootstrap draws the rows by pattern (`_row_patterns`).
PATTERN_ROWS = 2000


def _row_patterns(matrices: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The sides' matrices of one split with their rows merged by pattern, and each pattern's
    row count.

    Rows whose column of correct counts is the same in every block of every side (for one
    seed per split: right or wrong) add the same to every resample's totals. Drawing the rows
    with replacement then draws each pattern multinomial(rows, its share) times: the same
    distribution of the resampled mean, at a cost of patterns, not rows, per resample.
    """
    stacked = np.concatenate([m[:, 3:] for m in matrices], axis=0)
    if len(stacked) == 1:  # one block (one seed per split): unique values, 10× faster than by axis
        values, counts = np.unique(stacked[0], return_counts=True)
        patterns = values[:, None]
    else:
        patterns, counts = np.unique(stacked.T, axis=0, return_counts=True)
    merged, start = [], 0
    for m in matrices:
        merged.append(np.concatenate([m[:, :3], patterns[:, start : start + len(m)].T], axis=1))
        start += len(m)
    return merged, counts


def _multi_draws(sides: list[SeedBlocks], paired: bool, resamples: int, rng: np.random.Generator):
    """(sides, resamples) pooled multi-bootstrap means: rows drawn once per split and shared by
    the sides; seeds drawn once and shared when `paired`, per side otherwise. From
    `PATTERN_ROWS` test rows on, rows are drawn by pattern (`_row_patterns`)."""
    rows, splits = sides[0].rows, sides[0].seeds.shape[0]
    matrices = [_nonempty(side) for side in sides]
    weights = [side.seeds.sum(axis=1) / side.seeds.sum() for side in sides]
    counts = None
    if rows >= PATTERN_ROWS:
        merged = [_row_patterns([m[g] for m in matrices]) for g in range(splits)]
        matrices = [[merged[g][0][i] for g in range(splits)] for i in range(len(sides))]
        counts = [c for _, c in merged]
    columns = rows if counts is None else max(len(c) for c in counts)
    draws = np.zeros((len(sides), resamples))
    # per resample and side: block weights (~4 numbers a block), row weights (~4 a row), totals
    # (sized for BLOCKS blocks at least: the draws, batch by batch, then do not depend on how
    # many blocks the seeds were dealt into when every seed has a block of its own)
    batch = _batch(len(sides) * (4 * max(BLOCKS, sides[0].seeds.shape[1]) + 5 * columns + 3), resamples)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        for g in range(splits):
            if not any(w[g] for w in weights):
                continue
            if counts is None:
                row_weights = _level_weights(rows, size, rng)
            else:
                row_weights = rng.multinomial(rows, counts[g] / rows, size=size) / rows
            shared = _level_weights(len(matrices[0][g]), size, rng) if paired else None
            for i, (side, w) in enumerate(zip(matrices, weights)):
                if w[g] == 0:
                    continue
                seed_weights = shared if paired else _level_weights(len(side[g]), size, rng)
                draws[i, start : start + size] += w[g] * _replicate_means(side[g], seed_weights, row_weights)
    return draws


def _dealt(blocks: SeedBlocks) -> int:
    """The block count a method names: the blocks' own, or `BLOCKS` while every seed is a
    block of its own (fewer blocks than `BLOCKS` then deal the seeds as `BLOCKS` would)."""
    return blocks.seeds.shape[1] if (blocks.seeds > 1).any() else max(BLOCKS, blocks.seeds.shape[1])


def _multi_method(paired: bool | None, blocks: int, test_rows: int) -> str:
    seeds = {None: "seeds", True: "one seed draw for both sides", False: "seeds drawn per side"}[paired]
    rows = "test rows (one draw for both sides)" if paired is not None else "test rows"
    if test_rows >= PATTERN_ROWS:
        rows += " (by pattern: multinomial counts of the rows alike in every seed)"
    return (
        f"multi-bootstrap: {seeds} and {rows} drawn with replacement within each split (seeds in "
        f"blocks beyond {blocks} per split), splits held fixed and pooled with seed weights"
    )


def _estimate(side: SeedBlocks) -> float:
    per_split = side.correct.sum(axis=(1, 2)) / np.maximum(side.seeds.sum(axis=1) * side.rows, 1)
    return float(side.seeds.sum(axis=1) @ per_split / side.seeds.sum())


def _multi_obstacle(side: SeedBlocks) -> str | None:
    if side.seeds.sum() == 0 or side.rows == 0:
        return "no seeds or no rows"
    return None


def mean_ci95_seeds_and_rows(
    correct: SeedBlocks | np.ndarray,
    *,
    groups: np.ndarray | None = None,
    level: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> MultiBootstrap:
    """The mean accuracy with an interval that counts both the seeds and the test rows as drawn.

    Each resample draws the seeds with replacement and, independently, the test rows with
    replacement, and takes the mean of correct over the drawn seeds × rows (Sellam et al.
    2021, "The MultiBERTs", the multi-bootstrap). Seeds are drawn by their blocks (each seed
    its own block up to `BLOCKS` per split), so memory is resamples-batch × blocks, never
    seeds; over splits each split's seeds and rows are drawn within it.

    Args:
      correct: (seeds, rows) bool correct matrix, or its `seed_blocks`.
      groups: with a matrix, the split index per seed (None: one split).
      level: the interval's confidence level.
      resamples: bootstrap resamples.
      seed: seeds the resampling.

    Returns:
      The `MultiBootstrap` (paired None).
    """
    side = _as_blocks(correct, groups)
    reason = _multi_obstacle(side)
    if reason:
        return MultiBootstrap(
            None, None, None, resamples, _multi_method(None, _dealt(side), side.rows), reason
        )
    draws = _multi_draws([side], False, resamples, np.random.default_rng(seed))[0]
    estimate = _estimate(side)
    ci = _snapped(np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2]), estimate, (0.0, 1.0))
    return MultiBootstrap(estimate, ci, None, resamples, _multi_method(None, _dealt(side), side.rows), None)


def _snapped(bounds: np.ndarray, estimate: float, limits: tuple[float, float]) -> list[float]:
    """An interval's bounds within `limits` (what the statistic can be), and a bound within
    `ROUNDING` of the estimate or of 0 set to it: every seed right on every row gave
    [0.9999999999999998, 1.0000000000000002], means of 1.0 summed in another order."""
    snapped = []
    for bound in np.clip(bounds, *limits).tolist():
        near = [v for v in (estimate, 0.0) if abs(bound - v) < ROUNDING]
        snapped.append(near[0] if near else bound)
    return snapped


def difference_ci95_seeds_and_rows(
    correct_a: SeedBlocks | np.ndarray,
    correct_b: SeedBlocks | np.ndarray,
    *,
    paired: bool = True,
    groups: np.ndarray | None = None,
    level: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> MultiBootstrap:
    """B's mean accuracy minus A's, with a multi-bootstrap interval over seeds and test rows.

    Both populations are scored on the same test rows, so each resample's row draw is shared.
    Paired (seed s of both starts from the same random numbers), the seed draw is shared too;
    unpaired, each side's seeds are drawn on their own.

    Args:
      correct_a: the baseline's (seeds, rows) bool correct matrix, or its `seed_blocks`.
      correct_b: the other's, on the same rows (and splits); as many seeds when paired.
      paired: whether seed s of A and of B share their random numbers.
      groups: with matrices, the split index per seed, the same for both.
      level: the interval's confidence level.
      resamples: bootstrap resamples.
      seed: seeds the resampling.

    Returns:
      The `MultiBootstrap` of the difference.
    """
    a, b = _as_blocks(correct_a, groups), _as_blocks(correct_b, groups)
    if a.correct.shape != b.correct.shape:
        raise ValueError(
            f"A and B need the same splits, blocks and rows: {a.correct.shape}, {b.correct.shape}"
        )
    if paired and not np.array_equal(a.seeds, b.seeds):
        raise ValueError("a paired comparison needs the same seeds (per split) on both sides")
    reason = _multi_obstacle(a) or _multi_obstacle(b)
    if reason:
        return MultiBootstrap(None, None, paired, resamples, _multi_method(paired, _dealt(a), a.rows), reason)
    draws = _multi_draws([a, b], paired, resamples, np.random.default_rng(seed))
    estimate = _estimate(b) - _estimate(a)
    ci = _snapped(np.quantile(draws[1] - draws[0], [0.5 - level / 2, 0.5 + level / 2]), estimate, (-1.0, 1.0))
    return MultiBootstrap(estimate, ci, paired, resamples, _multi_method(paired, _dealt(a), a.rows), None)


# ---------------------------------------------------------------------------------------------
# 4. Churn


def churn(counts: RowCounts) -> float | None:
    """The share of test rows on which two distinct random seeds predict different classes.

    Exact from the per-row counts n_rk of R seeds: two distinct seeds agree on row r with
    chance Σ_k n_rk (n_rk − 1) / (R (R − 1)), i.e. Σ_k p_rk (R p_rk − 1)/(R − 1), so
    churn = mean over rows of [1 − that]. A tie (predicted -1) is a class of its own: two
    seeds that both tie on a row agree there, whichever classes they tie between. Over
    splits, each split's churn (pairs within the split, on its rows) is averaged with seed
    weights.

    Args:
      counts: the population's `row_counts`.

    Returns:
      The churn, or None when no split has two seeds.
    """
    seeds = counts.seeds.astype(float)
    used = seeds >= 2
    if not used.any() or counts.classes.shape[1] == 0:
        return None
    n = counts.classes[used].astype(float)
    r = seeds[used, None]
    agree = np.sum(n * (n - 1), axis=-1) / (r * (r - 1))  # (splits, rows)
    per_split = 1 - agree.mean(axis=1)
    return float(seeds[used] @ per_split / seeds[used].sum())


# ---------------------------------------------------------------------------------------------
# 5. Decisions (Bouthillier et al., MLSys 2021, "Accounting for Variance in ML Benchmarks")


class Outperform(NamedTuple):
    """P(A > B) + ½·P(A = B) with its interval and the decision it supports.

    Attributes:
      p_outperform: the chance that a seed of A scores above one of B, ties counting half;
        paired, seed s of A against seed s of B; unpaired, every seed of A against every one
        of B (the Mann–Whitney U/(n_a n_b)).
      p_outperform_ci95_low, p_outperform_ci95_high: percentile bootstrap interval (seeds
        resampled; paired as pairs, unpaired each side on its own, as counts per value).
      verdict: "better", "worse", "not significant" or "not meaningful" (see `verdict`).
      gamma: the threshold the verdict used.
      paired: as given.
      reason: None, or why the statistics are None.
    """

    p_outperform: float | None
    p_outperform_ci95_low: float | None
    p_outperform_ci95_high: float | None
    verdict: str | None
    gamma: float
    paired: bool
    reason: str | None


def verdict(low: float, high: float, gamma: float = GAMMA) -> str:
    """Bouthillier et al.'s decision from an interval of P(A > B).

    "not significant" when the interval holds 0.5 (low <= 0.5 <= high); above 0.5, "better"
    when its upper end exceeds `gamma` (A can be meaningfully better) and "not meaningful"
    otherwise (significant, but too small a gain to matter); below 0.5, symmetrically,
    "worse" when its lower end is under 1 − gamma, else "not meaningful".
    """
    if low <= 0.5 <= high:
        return "not significant"
    if low > 0.5:
        return "better" if high > gamma else "not meaningful"
    return "worse" if low < 1 - gamma else "not meaningful"


def p_outperform(
    a: np.ndarray,
    b: np.ndarray,
    *,
    paired: bool,
    gamma: float = GAMMA,
    level: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Outperform:
    """How often A beats B, with a bootstrap interval and Bouthillier et al.'s verdict.

    Memory is bounded by counts per distinct value: paired, a pair scores 1, ½ or 0, three
    values; unpaired, each side is drawn as multinomial counts over its distinct values
    (accuracies take few), and P is read off the cumulative counts.

    Args:
      a, b: one number per seed (accuracies); as many when paired. Non-finite values are
        left out (with their pair, when paired).
      paired: whether seed s of A and of B share their random numbers.
      gamma: the meaningful-gain threshold of the verdict.
      level: the interval's confidence level.
      resamples: bootstrap resamples.
      seed: seeds the resampling.

    Returns:
      The `Outperform`.
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if paired and a.shape != b.shape:
        raise ValueError(f"a paired comparison needs equal seed counts, got {a.size} and {b.size}")
    if paired:
        a, b = (side[np.isfinite(a) & np.isfinite(b)] for side in (a, b))
    else:
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return Outperform(None, None, None, None, gamma, paired, "no seeds")
    rng = np.random.default_rng(seed)
    if paired:
        scores = (a > b) + 0.5 * (a == b)
        point, draws = float(scores.mean()), _paired_draws(scores, resamples, rng)
    else:
        shares = _unpaired_shares(b, a)  # p_better: the chance that a seed of A beats one of B
        point, draws = shares["p_better"] + 0.5 * shares["p_tie"], _unpaired_draws(a, b, resamples, rng)
    low, high = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2]).tolist()
    return Outperform(point, low, high, verdict(low, high, gamma), gamma, paired, None)


def _count_draws(values: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Distinct values and `resamples` rows of multinomial counts over them (a seed resample)."""
    distinct, counts = np.unique(values, return_counts=True)
    return distinct, rng.multinomial(values.size, counts / values.size, size=resamples)


def _paired_draws(scores: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    draws = np.empty(resamples)
    for start in range(0, resamples, batch := _batch(3, resamples)):
        distinct, drawn = _count_draws(scores, min(batch, resamples - start), rng)
        draws[start : start + len(drawn)] = drawn @ distinct / scores.size
    return draws


def _unpaired_draws(a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """P(A > B) + ½ P(A = B) per resample: with B's counts per distinct value v_j and A's
    cumulative counts below and at v_j, Σ_j n_b(v_j) [n_a(< v_j) + ½ n_a(= v_j)] / (n_a n_b)."""
    va, vb = np.unique(a), np.unique(b)
    under, upto = np.searchsorted(va, vb, "left"), np.searchsorted(va, vb, "right")
    draws = np.empty(resamples)
    batch = _batch(4 * (va.size + vb.size), resamples)  # counts, their cumulative sums, the gathers
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        ca, cb = _count_draws(a, size, rng)[1], _count_draws(b, size, rng)[1]
        below = np.concatenate([np.zeros((size, 1), dtype=np.int64), np.cumsum(ca, axis=1)], axis=1)
        # A's seeds above each of B's values: all minus those at or below it, and half of those at it.
        above = a.size - below[:, upto] + 0.5 * (below[:, upto] - below[:, under])
        draws[start : start + size] = np.sum(cb * above, axis=1) / (a.size * b.size)
    return draws


def seeds_needed_for_decision(alpha: float = 0.05, beta: float = 0.05, gamma: float = GAMMA) -> int:
    """Seeds per side for the test of P(A > B) = ½ to detect P(A > B) = `gamma`.

    Noether (1987), as Bouthillier et al. use it: N ≥ (z_{1−α} + z_{1−β})² / (6 (γ − ½)²),
    one-sided normal quantiles; 29 at α = β = 0.05, γ = 0.75.

    Args:
      alpha: the test's false-positive rate.
      beta: its false-negative rate at P(A > B) = gamma.
      gamma: the P(A > B) to detect, above ½.

    Returns:
      The smallest whole N.
    """
    if not (0 < alpha < 1 and 0 < beta < 1 and 0.5 < gamma < 1):
        raise ValueError(f"needs 0 < alpha, beta < 1 and 0.5 < gamma < 1, got {alpha}, {beta}, {gamma}")
    from scipy import special

    z = special.ndtri(1 - alpha) + special.ndtri(1 - beta)
    return math.ceil(z**2 / (6 * (gamma - 0.5) ** 2))


# ---------------------------------------------------------------------------------------------
# 6. Over resampled splits (Nadeau & Bengio 2003, the corrected resampled t)


class CorrectedInterval(NamedTuple):
    """The mean over J random train/test splits with the corrected resampled t interval.

    Splits drawn from one data set share most of their training rows, so their results are
    correlated and the plain t interval (variance S²/J) is too narrow; Nadeau & Bengio
    (2003) multiply S² by 1/J + n_test/n_train instead.

    Attributes:
      mean: the mean over splits of each split's mean.
      ci95: [low, high], mean ± t_{J−1} · sqrt((1/J + n_test/n_train) · S²), S² the
        variance (ddof 1) of the split means.
      plain_ci95: the uncorrected t interval (variance factor 1/J), for comparison.
      splits: J.
      variance_factor: 1/J + n_test/n_train.
      method: the label to print with it.
      reason: None, or why the intervals are None.
    """

    mean: float | None
    ci95: list[float] | None
    plain_ci95: list[float] | None
    splits: int
    variance_factor: float | None
    method: str
    reason: str | None


def _split_means(values: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Per split: the mean, the seeds, and the variance over its seeds (ddof 1; NaN for one seed)."""
    values = np.asarray(values, dtype=float).ravel()
    if groups is None:
        return values, np.ones(values.size), np.full(values.size, np.nan)
    groups = np.asarray(groups).ravel()
    if groups.shape != values.shape:
        raise ValueError(f"groups needs one split per value ({values.size}), got {groups.size}")
    _, index, seeds = np.unique(groups, return_inverse=True, return_counts=True)
    means = np.bincount(index, values) / seeds
    squares = np.bincount(index, (values - means[index]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return means, seeds.astype(float), np.where(seeds > 1, squares / (seeds - 1), np.nan)


def _check_sizes(n_train: int, n_test: int) -> None:
    if not (n_train > 0 and n_test > 0):
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")


def corrected_interval(
    values: np.ndarray,
    *,
    n_train: int,
    n_test: int,
    groups: np.ndarray | None = None,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> CorrectedInterval:
    """The corrected resampled t interval of the mean over random train/test splits.

    Args:
      values: one number per split, or one per seed with `groups`.
      n_train: training rows per split.
      n_test: test rows per split.
      groups: (seeds,) split index per value; each split is reduced to its mean first.
      level: the interval's confidence level.
      bounds: what the mean can be (an accuracy's [0, 1]): both intervals are clipped to
        it. A t interval is symmetric, and over few splits near a bound it passes it.

    Returns:
      The `CorrectedInterval`.
    """
    from gophernet_jax.statistics import _t_quantile

    _check_sizes(n_train, n_test)
    means = _split_means(values, groups)[0]
    splits = int(means.size)
    method = "corrected resampled t (Nadeau & Bengio 2003): variance × (1/J + n_test/n_train), J splits"
    if splits < 2:
        reason = "no splits" if splits == 0 else "one split: no spread over splits to estimate"
        return CorrectedInterval(
            float(means[0]) if splits else None, None, None, splits, None, method, reason
        )
    mean, var, t = float(means.mean()), float(means.var(ddof=1)), _t_quantile(0.5 + level / 2, splits - 1)
    factor = 1 / splits + n_test / n_train
    low, high = bounds if bounds is not None else (-math.inf, math.inf)
    ci, plain = (
        [max(mean - t * math.sqrt(f * var), low), min(mean + t * math.sqrt(f * var), high)]
        for f in (factor, 1 / splits)
    )
    return CorrectedInterval(mean, ci, plain, splits, factor, method, None)


class SplitsAndSeeds(NamedTuple):
    """Seeds per split for a ±resolution corrected interval, or why none can give one.

    With J splits of R seeds each, the mean's variance is modelled as
    (1/J + n_test/n_train)·σ²_split + σ²_seed/(J·R): the split term, with the Nadeau–Bengio
    correction, does not shrink with seeds; the seed term (independent inits) does.

    Attributes:
      seeds_per_split: the fewest R at the current J, None when no R reaches the resolution.
      splits: J, the splits the data have.
      splits_needed: the fewest J for which enough seeds reach it (J itself when R does),
        None when none does: n_test/n_train·σ²_split alone is too wide, whatever J.
      split_variance: σ²_split, the variance of split means less the seeds' share (≥ 0).
      seed_variance: σ²_seed, the pooled variance over seeds within a split.
      half_width_floor: the half-width with infinitely many seeds at J splits.
      resolution: the half-width aimed at.
      reason: None, or what stops it.
    """

    seeds_per_split: int | None
    splits: int
    splits_needed: int | None
    split_variance: float | None
    seed_variance: float | None
    half_width_floor: float | None
    resolution: float
    reason: str | None


def seeds_needed_over_splits(
    values: np.ndarray,
    groups: np.ndarray,
    *,
    n_train: int,
    n_test: int,
    resolution: float = 0.005,
    level: float = 0.95,
) -> SplitsAndSeeds:
    """How many seeds per split make the corrected interval ±`resolution`, or why no number can.

    σ²_seed is pooled over splits (ddof 1 each); σ²_split is the variance of the split means
    less σ²_seed/R̃, R̃ the harmonic mean of the seeds per split (method of moments).

    Args:
      values: one number per seed.
      groups: (seeds,) split index per seed; at least two splits, one with two seeds.
      n_train: training rows per split.
      n_test: test rows per split.
      resolution: the half-width aimed at.
      level: the interval's confidence level.

    Returns:
      The `SplitsAndSeeds`.
    """
    from gophernet_jax.statistics import _t_quantile

    _check_sizes(n_train, n_test)
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    means, seeds, within = _split_means(values, groups)
    splits, spread = int(means.size), np.isfinite(within)
    if splits < 2 or not spread.any():
        reason = "needs two splits and a split with two seeds"
        return SplitsAndSeeds(None, splits, None, None, None, None, resolution, reason)
    seed_var = float(np.sum((seeds[spread] - 1) * within[spread]) / np.sum(seeds[spread] - 1))
    split_var = max(0.0, float(means.var(ddof=1) - seed_var / (splits / np.sum(1 / seeds))))
    rho = n_test / n_train

    def room(j: int) -> float:  # variance left for the seed term at j splits
        return (resolution / _t_quantile(0.5 + level / 2, j - 1)) ** 2 - (1 / j + rho) * split_var

    floor = _t_quantile(0.5 + level / 2, splits - 1) * math.sqrt((1 / splits + rho) * split_var)
    found = dict(splits=splits, split_variance=split_var, seed_variance=seed_var, half_width_floor=floor)
    if room(splits) > 0:
        r = max(1, math.ceil(seed_var / (splits * room(splits))))
        return SplitsAndSeeds(r, splits_needed=splits, resolution=resolution, reason=None, **found)
    from scipy import special

    if (resolution / special.ndtri(0.5 + level / 2)) ** 2 <= rho * split_var:  # room as J -> infinity
        reason = (
            f"the split term alone is ±{floor:.4f} at {splits} splits, and n_test/n_train = {rho:.3g} keeps "
            f"it above ±{resolution} with any number of splits: no number of seeds or splits reaches it"
        )
        return SplitsAndSeeds(None, splits_needed=None, resolution=resolution, reason=reason, **found)
    too_few, enough = splits, 2 * splits  # room grows with J: bisect for the fewest splits with room
    while room(enough) <= 0:
        too_few, enough = enough, 2 * enough
    while enough - too_few > 1:
        middle = (too_few + enough) // 2
        too_few, enough = (too_few, middle) if room(middle) > 0 else (middle, enough)
    fewest = enough
    reason = (
        f"the split term alone is ±{floor:.4f} at {splits} splits, wider than ±{resolution}: no number "
        f"of seeds reaches it; {fewest} splits or more can"
    )
    return SplitsAndSeeds(None, splits_needed=fewest, resolution=resolution, reason=reason, **found)
