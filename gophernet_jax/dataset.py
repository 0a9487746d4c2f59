"""Reading the article's data format: a header, feature columns, one-hot label columns.

Parsing is strict and reports the file and line of the first problem: pandas would
silently shift columns on an extra field or turn a missing cell into NaN. A file is first
read by pandas' C parser (`fast_read`, about 0.2 s for 100,000 rows of 10 features),
which gives up on anything the two readers might take differently; the strict reader
(`_read_rows`, `numbers`: Python per cell, about 3 s for that file) then reads it again,
and it alone decides what is wrong and where.
"""

import codecs
import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: The article's label columns, in its (not alphabetical) order.
ARTICLE_LABELS = ("setosa", "virginica", "versicolor")


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and line."""


class Dataset(NamedTuple):
    """Features `x` (n, features) and one-hot targets `y` (n, classes), float64."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8" writes one) is not part of the
        # first column's name
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader, rows, line = csv.reader(f), [], 1
            for row in reader:  # a quoted cell may span lines: number records by their first
                if row:
                    rows.append((line, row))
                line = reader.line_num + 1
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    if not rows:
        raise DataError(f"{path}: file is empty (expected a header line)")
    return rows


def parse_cell(path: Path, line: int, column: str, text: str) -> float:
    if not text.strip():
        raise DataError(f"{path}:{line}: column {column!r} is empty")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: column {column!r}: {text!r} is not finite")
    return value


def data_line(path: Path, row: int) -> int:
    """The line of `path` where data row `row` (0 the first after the header) starts, as
    the strict reader numbers them (blank lines skipped, a quoted cell may span lines)."""
    return _read_rows(path)[row + 1][0]


def check_range(path: Path, x: np.ndarray, names: Sequence[str], dtype: str, *, spans: bool = False) -> None:
    """A `DataError` naming the first cell of `x` (`path`'s rows, columns `names`) that `dtype`
    cannot hold: cast to it, the value would be ±inf and every seed would diverge on it.
    With `spans`, also a column whose largest value minus its smallest, what min-max
    scaling divides by, is beyond `dtype` in `dtype`'s arithmetic."""
    name = np.dtype(dtype).name
    limit = f"beyond {name}'s range (±{float(np.finfo(dtype).max):.4g})"
    hint = "; train.dtype=float64 holds it" if name != "float64" else ""
    with np.errstate(over="ignore"):
        cast = np.asarray(x, np.float64).astype(dtype)
        span = cast.max(axis=0) - cast.min(axis=0) if spans and len(cast) else np.zeros(cast.shape[1:], dtype)
    beyond = np.argwhere(np.isinf(cast))
    if beyond.size:
        r, c = beyond[0]
        raise DataError(f"{path}:{data_line(path, r)}: column {names[c]!r}: {x[r, c]:g} is {limit}{hint}")
    if (wide := np.flatnonzero(np.isinf(span))).size:
        c = wide[0]
        low, high = int(np.argmin(cast[:, c])), int(np.argmax(cast[:, c]))
        raise DataError(
            f"{path}:{data_line(path, high)}: column {names[c]!r}: from {x[low, c]:g} (line "
            f"{data_line(path, low)}) to {x[high, c]:g} its values span a range {limit}, which "
            f"min-max scaling divides by{hint}"
        )


def numbers(path: Path, header: list[str], records, columns: Sequence[int] | None = None) -> np.ndarray:
    """The cells in `columns` (all by default) of every record, as numbers (rows × columns).

    Each record must have the header's field count; the first bad record or cell raises a
    `DataError` naming its line and column.
    """
    names = [h.strip() for h in header]
    columns = range(len(header)) if columns is None else columns
    values = np.empty((len(records), len(columns)))
    for r, (line, row) in enumerate(records):
        if len(row) != len(header):
            raise DataError(
                f"{path}:{line}: expected {len(header)} fields as in the header, found {len(row)}"
            )
        values[r] = [parse_cell(path, line, names[c], row[c]) for c in columns]
    return values


def fast_read(path: Path, text: Sequence[str] = ()) -> tuple[list[str], np.ndarray, list[np.ndarray]] | None:
    """The header, every column as numbers (rows × fields, NaN in the `text` columns) and
    the `text` columns' cells, stripped, read by pandas' C parser; or None wherever the
    strict reader must look.

    None for: a file that cannot be read or decoded, a header that is not a plain first
    line (quotes, blank lines before it), a `text` column not in it, no data rows, a blank
    line (the strict reader skips it, so its line numbers count it), a row with another
    field count (pandas would take an extra field in the first row as the index), a
    numeric cell that is empty, not a number or not finite (pandas makes a missing cell
    NaN), an empty `text` cell, and any True or False, which pandas reads as 1 and 0
    where `float` refuses them. Where both readers take a file, they give the same values:
    pandas' default float parsing is correctly rounded, as `float` is.
    """
    import pandas as pd  # here, not at the top: the command starts without pandas

    try:
        data = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # as the strict reader's utf-8-sig
        end = data.find(b"\n")
        first = (data if end < 0 else data[:end]).removesuffix(b"\r").decode()
    except (OSError, UnicodeDecodeError):
        return None
    lowered = data.lower()
    if not first.strip() or '"' in first or "\r" in first or b"true" in lowered or b"false" in lowered:
        return None
    header = next(csv.reader([first]))
    names = [h.strip() for h in header]
    if any(t not in names for t in text):
        return None
    text_idx = [names.index(t) for t in text]
    dtype = {i: str if i in text_idx else np.float64 for i in range(len(header))}
    options = {"header": None, "skiprows": 1, "dtype": dtype, "keep_default_na": False}
    try:
        frame = pd.read_csv(io.BytesIO(data), engine="c", skip_blank_lines=False, **options)
    except (ValueError, OverflowError, pd.errors.ParserError):  # EmptyDataError is a ValueError
        return None
    if frame.shape[1] != len(header) or len(frame) == 0:
        return None
    values = np.full(frame.shape, np.nan)
    numeric = [i for i in range(len(header)) if i not in text_idx]
    for i in numeric:
        values[:, i] = frame[i].to_numpy(np.float64)
    cells = [frame[i].str.strip().to_numpy(object) for i in text_idx]
    if not np.isfinite(values[:, numeric]).all() or any((c == "").any() for c in cells):
        return None
    return header, values, cells


def fast_or_strict(fast, strict):
    """`fast()`, or `strict()` where it returns None or raises a `DataError`: the strict
    reader reproduces any error with its line."""
    try:
        found = fast()
    except DataError:
        found = None
    return strict() if found is None else found


def one_hot_rows(y: np.ndarray) -> np.ndarray:
    """Which rows of `y` are one-hot: every value 0 or 1, one 1."""
    return np.isin(y, (0.0, 1.0)).all(axis=1) & (y.sum(axis=1) == 1.0)


def _check_one_hot(
    path: Path, records, y: np.ndarray, label_idx: Sequence[int], labels: Sequence[str]
) -> None:
    not_one_hot = ~one_hot_rows(y)
    if not_one_hot.any():
        line, row = records[int(np.argmax(not_one_hot))]
        shown = ",".join(row[i].strip() for i in label_idx)
        raise DataError(f"{path}:{line}: labels ({', '.join(labels)}) are not one-hot: {shown}")


def separator_hint(names: Sequence[str]) -> str:
    """For a header read as one column that holds another separator (`a;b;c`): what to
    add to the error about its columns."""
    found = [sep for sep in (";", "\t", "|") if sep in names[0]] if len(names) == 1 else []
    if not found:
        return ""
    return (
        f": the header is one column; is the file separated by {found[0]!r}? Tables here are comma-separated"
    )


def split_header(path: Path, header: list[str], labels: Sequence[str]) -> tuple[list[int], list[int]]:
    names = [h.strip() for h in header]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}:1: duplicate column {duplicates[0]!r} in header")
    missing = [label for label in labels if label not in names]
    if missing:
        raise DataError(
            f"{path}:1: label column {missing[0]!r} not in header ({', '.join(names)}){separator_hint(names)}"
        )
    label_idx = [names.index(label) for label in labels]
    feature_idx = [i for i in range(len(names)) if i not in label_idx]
    if not feature_idx:
        raise DataError(f"{path}:1: no feature columns: every column is a label")
    return feature_idx, label_idx


def labelled_records(path: Path, labels: Sequence[str]):
    """The header, the data records, and the feature and label column indices of a table
    whose label columns are named; a `DataError` for no labels, no header or no rows."""
    if not labels:
        raise DataError(f"{path}: no label column named")
    (_, header), *records = _read_rows(path)
    feature_idx, label_idx = split_header(path, header, labels)
    if not records:
        raise DataError(f"{path}: no data rows after the header")
    return header, records, feature_idx, label_idx


def load_dataset(
    path: str | Path, labels: Sequence[str] = ARTICLE_LABELS, *, padding_row: bool = False
) -> Dataset:
    """Reads a CSV in the article's format.

    Args:
      path: CSV file: a header, then rows of numbers.
      labels: the names of the one-hot label columns, in class order; every other
        column is a feature.
      padding_row: append the all-zero row the reference loader adds (it sizes its
        matrices by the record count including the header).

    Returns:
      `Dataset(x, y, feature_names, class_names)`.

    Raises:
      DataError: naming the file and line, for a missing or empty file, a wrong field
        count, an empty, non-numeric or non-finite cell, or a label row that is not one-hot.
    """
    path = Path(path)
    labels = tuple(labels)

    def fast():
        if not labels or (found := fast_read(path)) is None:
            return None
        header, values, _ = found
        feature_idx, label_idx = split_header(path, header, labels)
        return (header, values, feature_idx, label_idx) if one_hot_rows(values[:, label_idx]).all() else None

    def strict():
        header, records, feature_idx, label_idx = labelled_records(path, labels)
        values = numbers(path, header, records)
        _check_one_hot(path, records, values[:, label_idx], label_idx, labels)
        return header, values, feature_idx, label_idx

    header, values, feature_idx, label_idx = fast_or_strict(fast, strict)
    names = [h.strip() for h in header]
    x, y = values[:, feature_idx], values[:, label_idx]
    if padding_row:
        x, y = np.vstack([x, np.zeros((1, x.shape[1]))]), np.vstack([y, np.zeros((1, y.shape[1]))])
    return Dataset(x, y, tuple(names[i] for i in feature_idx), labels)


def load_split(
    train: str | Path, test: str | Path, labels: Sequence[str] = ARTICLE_LABELS, *, padding_row: bool = False
) -> tuple[Dataset, Dataset]:
    """Reads a training and a test file, which must have the same header."""
    train_set = load_dataset(train, labels, padding_row=padding_row)
    test_set = load_dataset(test, labels, padding_row=padding_row)
    if (train_set.feature_names, train_set.class_names) != (test_set.feature_names, test_set.class_names):
        raise DataError(
            f"{test}:1: header differs from {train}'s: features {', '.join(test_set.feature_names)} "
            f"against {', '.join(train_set.feature_names)}"
        )
    return train_set, test_set


def load_features(
    path: str | Path, feature_names: Sequence[str], class_names: Sequence[str], label: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads rows for a trained network to classify: its features by name, labels if given.

    Columns may come in any order. Every feature must be there. Labels, when the file has
    them, are the class columns (one-hot, all of them or none) or, for a run trained on a
    raw table, that table's class column `label` (`data.label`), holding each row's class
    by name as the table did. Any other column is an error, since a misspelt feature name
    would otherwise pass unnoticed.

    Returns:
      `(x, y)`: features (n, len(feature_names)) in `feature_names` order, and one-hot
      labels (n, len(class_names)) in class order, or None when the file has no labels.

    Raises:
      DataError: naming the file and line, and the column where one is at fault.
    """
    path = Path(path)
    found = fast_read(path)
    if found is not None:
        header, values, _ = found
        names = [h.strip() for h in header]
        ok = len(set(names)) == len(names) and set(names) <= {*feature_names, *class_names}
        ok = ok and set(feature_names) <= set(names)
        labels = [n for n in class_names if n in names]
        if ok and len(labels) in (0, len(class_names)):
            x = values[:, [names.index(n) for n in feature_names]]
            y = values[:, [names.index(n) for n in class_names]] if labels else None
            if y is None or one_hot_rows(y).all():
                return x, y
    (_, header), *records = _read_rows(path)
    names = [h.strip() for h in header]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}:1: duplicate column {duplicates[0]!r} in header")
    column = label if label in names and label not in feature_names else None
    unknown = [n for n in names if n not in (*feature_names, *class_names) and n != column]
    if unknown:
        classes = f"its classes {', '.join(class_names)}"
        classes += f" (one-hot, or by name in a column {label!r})" if label is not None else ""
        raise DataError(
            f"{path}:1: unknown column {unknown[0]!r}: the run's features are {', '.join(feature_names)}"
            f" and {classes}{separator_hint(names)}"
        )
    missing = [n for n in feature_names if n not in names]
    if missing:
        raise DataError(f"{path}:1: feature column {missing[0]!r} not in header ({', '.join(names)})")
    labels = [n for n in class_names if n in names]
    if column is not None and labels:
        raise DataError(f"{path}:1: labels twice, in column {column!r} and in column {labels[0]!r}: give one")
    if labels and len(labels) < len(class_names):
        absent = next(n for n in class_names if n not in names)
        raise DataError(f"{path}:1: label column {absent!r} not in header: give every class column or none")
    if not records:
        raise DataError(f"{path}: no data rows after the header")
    numeric = [i for i, n in enumerate(names) if n != column]
    values = numbers(path, header, records, numeric)
    at = {names[i]: k for k, i in enumerate(numeric)}
    x = values[:, [at[n] for n in feature_names]]
    if column is not None:
        return x, _named_classes(path, records, names.index(column), column, class_names)
    if not labels:
        return x, None
    y = values[:, [at[n] for n in class_names]]
    _check_one_hot(path, records, y, [names.index(n) for n in class_names], class_names)
    return x, y


def _named_classes(path: Path, records, index: int, column: str, class_names: Sequence[str]) -> np.ndarray:
    """One-hot labels (rows × classes) from a column of class names, each cell stripped as a
    raw table's class column is read (`splits.load_table`)."""
    y = np.zeros((len(records), len(class_names)))
    for r, (line, row) in enumerate(records):
        cell = row[index].strip()
        if cell not in class_names:
            known = ", ".join(class_names)
            raise DataError(f"{path}:{line}: column {column!r}: {cell!r} is not a class of the run ({known})")
        y[r, list(class_names).index(cell)] = 1.0
    return y
