"""A run's test rows as results: what every seed does on each row, and what follows.

The statistics are `testset`'s (issue 16); here is the edge of a run: which rows the seeds
were tested on (`RowResults`), `rows.csv`, `rows_correct.npz` (each seed's correct rows, for
the sweep report's intervals over seeds and rows), `summary.json["test_set"]` and the
report's lines.

Where the split varies, every split has its own test rows: rows are counted per split
(`rows.csv` has a `split` column) and the statistics are computed within each split and
pooled with the splits' seed counts. The row of a table is its index in the table (from 0);
the row of the article's file is its line in the file (the header is line 1), and the
reference loader's padding row, which no line holds, is -1.
"""

import io
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

#: Seed × test-row cells a run keeps per-row results for (2 bytes a cell while training ends,
#: 1 bit a cell in rows_correct.npz): 10^6 seeds of 30 rows take 3·10^7.
ROW_CELLS = 2**28
#: Splits a run counts rows for: beyond, rows are not counted (each split would hold few seeds).
ROW_SPLITS = 1000
#: rows.csv's most lines (splits × test rows); beyond, only rows_correct.npz is written (`why_no_table`).
ROW_LINES = 2**21
#: The file of each seed's correct rows, packed bits.
CORRECT_FILE = "rows_correct.npz"
#: The multi-bootstrap's and the test-set variance's resamples in a job's summary.
RESAMPLES = 2000


class RowResults(NamedTuple):
    """Every seed's results on its test rows.

    Attributes:
      predicted: (seeds, rows) int8, the predicted class, -1 where the largest output is tied.
      correct: (seeds, rows) bool, correct under the run's tie rule.
      groups: (seeds,) the split of each seed, or None when every seed has the same test rows.
      labels: (splits, rows) the true class of each split's rows.
      row_ids: (splits, rows) each row's index in the table, or line in the article's file.
      class_names: the classes' names.
    """

    predicted: np.ndarray
    correct: np.ndarray
    groups: np.ndarray | None
    labels: np.ndarray
    row_ids: np.ndarray
    class_names: tuple[str, ...]

    @property
    def splits(self) -> int:
        return self.labels.shape[0]


def split_varies(settings) -> bool:
    return "split" in settings.seeds.varied()


def splits_of(settings) -> int:
    """The splits the seeds are tested on: 1 unless the split varies."""
    if not split_varies(settings):
        return 1
    if settings.seeds.grid:
        return settings.seeds.grid["split"]
    return settings.seeds.trained()


def why_not(settings, test_rows: int) -> str | None:
    """Why a run keeps no per-row results (too many cells or splits), or None when it does."""
    count = settings.seeds.trained()
    if count * test_rows > ROW_CELLS:
        return f"{count} seeds × {test_rows} test rows is more than the {ROW_CELLS} cells kept per row"
    if splits_of(settings) > ROW_SPLITS:
        return (
            f"{splits_of(settings)} splits (one per seed): each split's rows would be counted over "
            f"{count // splits_of(settings)} seed(s); give seeds.grid={{split: S, init: I}}"
        )
    return None


def _split_test_rows(settings, table, splits: int, first: int = 0) -> np.ndarray:
    """(splits, rows) the table rows splits `first`.. test on (the order the program tests them in)."""
    from gophernet_jax.splits import part_counts, stratified_parts
    from gophernet_jax.training import source_keys

    data = settings.data
    keys = source_keys("split", np.uint32(data.split_seed), np.arange(first, first + splits, dtype=np.uint32))
    counts = part_counts(table.labels, data.test_fraction, data.val_fraction, class_names=table.class_names)
    # `make_split`'s test rows, without its features; 64 splits at a time bound the permutations' memory
    rows = jax.jit(
        lambda k: jax.lax.map(lambda key: stratified_parts(key, table.labels, counts)[1], k, batch_size=64)
    )
    return np.asarray(rows(keys))


def _tested_rows(population, groups: np.ndarray, splits: int, settings, table, first: int) -> np.ndarray:
    """(splits, rows) the table rows each split is tested on: as the training program
    recorded them for its seeds (`Population.test_rows`), drawn again for a split without a
    seed here (a slice of a grid) or a population that did not record them."""
    if population.test_rows is None:
        return _split_test_rows(settings, table, splits, first)
    tested = np.asarray(population.test_rows)
    found = np.zeros(splits, bool)
    found[groups] = True
    ids = np.empty((splits, tested.shape[1]), np.int64)
    ids[groups] = tested  # every seed of a split tests on the same rows
    if not found.all():
        missing = np.flatnonzero(~found)
        drawn = _split_test_rows(settings, table, int(missing.max()) + 1, first)
        ids[missing] = drawn[missing]
    return ids


def row_results(population, data, settings) -> RowResults | None:
    """The population's per-row results with the rows they are on, or None without them."""
    if population.test_predicted is None:
        return None
    from gophernet_jax.training import seed_indices

    class_names = tuple(data.test_set.class_names)
    groups = None
    if split_varies(settings):
        seeds = settings.seeds
        split = seed_indices(seeds.trained(), seeds.varied(), seeds.grid, seeds.start)["split"]
        # A slice (`seeds.start`) holds some of the population's splits: counted from its first.
        first = 0 if seeds.grid else int(split.min())
        splits = splits_of(settings)
        groups = split.astype(np.int64) - first
        row_ids = _tested_rows(population, groups, splits, settings, data.raw.table, first)
        labels = data.raw.table.labels[row_ids]
    else:
        labels = np.argmax(data.test_set.y, axis=1)[None]
        row_ids = np.asarray(data.test_row_ids)[None]
    return RowResults(
        np.asarray(population.test_predicted),
        np.asarray(population.test_correct, dtype=bool),
        groups,
        labels,
        row_ids,
        class_names,
    )


def _accumulated(rows: RowResults):
    from gophernet_jax.testset import BLOCKS, row_counts, seed_blocks

    options = {"groups": rows.groups, "splits": rows.splits}
    counts = row_counts(rows.predicted, rows.correct, len(rows.class_names), **options)
    # No more blocks than a split has seeds: up to BLOCKS each seed is its own block either
    # way, and the empty blocks (which the statistics skip) would cost blocks × rows cells.
    per_split = (
        np.bincount(rows.groups, minlength=rows.splits) if rows.groups is not None else [len(rows.correct)]
    )
    blocks = int(min(BLOCKS, max(1, *per_split)))
    return counts, seed_blocks(rows.correct, **options, blocks=blocks)


def test_set_section(rows: RowResults) -> tuple[dict[str, Any], dict[str, Any]]:
    """summary.json's `test_set`, and the multi-bootstrap interval of the mean for `test_accuracy`."""
    from gophernet_jax.testset import churn, mean_ci95_seeds_and_rows, split_variances, test_set_variance

    counts, blocks = _accumulated(rows)
    variance = test_set_variance(blocks, resamples=RESAMPLES)
    section = variance._asdict()
    section["churn"] = churn(counts)
    section["error_rate"] = 1 - float(rows.correct.mean()) if rows.correct.size else None
    section["pooled"] = (
        f"within each of the {rows.splits} splits (its own test rows), averaged with seed weights"
        if rows.splits > 1
        else None
    )
    if rows.splits > 1:
        section["per_split"] = split_variances(blocks)
    multi = mean_ci95_seeds_and_rows(blocks, resamples=RESAMPLES)
    interval = {"mean_ci95_seeds_and_rows": multi.ci95, "mean_ci95_seeds_and_rows_method": multi.method}
    return section, interval


test_set_section.__test__ = False  # not a test, wherever pytest meets the name


def rows_frame(rows: RowResults) -> "pd.DataFrame":  # noqa: F821
    """rows.csv as a frame: one line per test row (per split), `testset.rows_table`'s columns."""
    import pandas as pd

    from gophernet_jax.testset import row_counts, rows_table

    counts = row_counts(
        rows.predicted, rows.correct, len(rows.class_names), groups=rows.groups, splits=rows.splits
    )
    return pd.DataFrame(rows_table(counts, rows.labels, list(rows.class_names), rows.row_ids))


def corrected_section(values: np.ndarray, groups: np.ndarray, train_rows: int, test_rows: int, resolution):
    """The Nadeau–Bengio corrected interval of the mean over the splits, and the seeds (or
    splits) a ±resolution interval needs: for `test_accuracy` where the split varies."""
    from gophernet_jax.testset import corrected_interval, seeds_needed_over_splits

    sizes = {"n_train": train_rows, "n_test": test_rows}
    interval = corrected_interval(values, groups=groups, bounds=(0.0, 1.0), **sizes)
    needed = seeds_needed_over_splits(values, groups, resolution=resolution, **sizes)
    return {**interval._asdict(), "seeds_needed": needed._asdict()}


def why_no_table(rows: RowResults) -> str | None:
    """Why rows.csv (and rows.png) are not written though the per-row results are kept: one
    seed per split (each line would be one seed's right or wrong, rows_correct.npz's bit), or
    more lines than `ROW_LINES`; None when they are."""
    splits, test_rows = rows.labels.shape
    if rows.groups is not None and splits > 1 and np.bincount(rows.groups, minlength=splits).max() < 2:
        return "one seed per split: each line would be one seed's result, which rows_correct.npz holds"
    if splits * test_rows > ROW_LINES:
        return f"{splits} split(s) × {test_rows} test rows is more than the {ROW_LINES} lines it holds"
    return None


def write_rows(rows: RowResults, table: "pd.DataFrame | None", output_dir: Path) -> None:  # noqa: F821
    """rows.csv (`table`, `rows_frame`'s; not written when None) and rows_correct.npz (each
    seed's correct rows as packed bits, its predicted classes, and its split: what the slices
    of a population pool)."""
    from gophernet_jax.files import write_bytes, write_csv

    (output_dir / "rows.csv").unlink(missing_ok=True)
    if table is not None:
        write_csv(table, output_dir / "rows.csv")
    buffer = io.BytesIO()
    groups = np.zeros(0, np.int64) if rows.groups is None else rows.groups
    np.savez_compressed(
        buffer,
        correct=np.packbits(rows.correct, axis=1),
        rows=np.int64(rows.correct.shape[1]),
        groups=groups,
        predicted=np.asarray(rows.predicted, np.int8),
    )
    write_bytes(buffer.getvalue(), output_dir / CORRECT_FILE)


def load_rows(job: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """A job's (seeds, rows) bool correct matrix, split per seed (None: one split) and int8
    predicted classes (-1 tied; None in a file written without them), or None when the job
    kept none. Raises OSError or ValueError for an unreadable file."""
    path = Path(job) / CORRECT_FILE
    if not path.is_file():
        return None
    with np.load(path) as found:
        rows = int(found["rows"])
        correct = np.unpackbits(found["correct"], axis=1, count=rows).astype(bool)
        groups = found["groups"]
        predicted = found["predicted"] if "predicted" in found.files else None
    return correct, (groups if groups.size else None), predicted


def load_correct(job: Path) -> tuple[np.ndarray, np.ndarray | None] | None:
    """`load_rows` without the predicted classes: what the sweep report compares."""
    found = load_rows(job)
    return None if found is None else found[:2]


def format_test_set(section: dict[str, Any] | None) -> list[str]:
    """The report's lines on the test rows: how much of the spread they explain, and churn."""
    if section is None:
        return []
    if section.get("reason") and section.get("observed_variance") is None:
        return [f"  test rows: n/a ({section['reason']})"]
    lines = [f"  test rows: {section['summary']}"]
    if section.get("churn") is not None and section.get("error_rate") is not None:
        lines.append(
            f"  churn {section['churn']:.4f} beside the error rate {section['error_rate']:.4f}: two seeds "
            "predict different classes on that share of the rows (about the error rate when the "
            "ensemble is calibrated)"
        )
    return lines


def format_corrected(corrected: dict[str, Any] | None) -> list[str]:
    """The report's line on the mean over splits, corrected for their shared training rows."""
    if not corrected or corrected.get("ci95") is None:
        return []
    low, high = corrected["ci95"]
    needed = corrected["seeds_needed"]
    if needed.get("seeds_per_split"):
        more = f"±{needed['resolution']:g} needs {needed['seeds_per_split']} seeds per split"
    else:
        more = needed.get("reason") or ""
    return [
        f"  over the {corrected['splits']} splits, corrected for their shared training rows "
        f"(Nadeau & Bengio): [{low:.4f}, {high:.4f}]; {more}"
    ]
