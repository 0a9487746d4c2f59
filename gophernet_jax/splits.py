"""Raw tables and the splits a run makes of them: stratified, noised, min-max scaled.

A raw table (data/iris.csv, data/wine.csv, or any CSV with a class column) is read once
on the host into a `Table`. Everything after that is a pure JAX function of keys: the
split is data, not shape (every split of a table has the same sizes), so
`jax.vmap` over split and noise keys gives a batch of splits in one compiled program.

Three sources of randomness, each with its own key: the split (which rows are for
testing), the noise (measurement noise on the features) and, elsewhere, the initial
weights.
"""

import hashlib
import logging
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gophernet_jax.dataset import (
    DataError,
    fast_or_strict,
    fast_read,
    labelled_records,
    numbers,
    one_hot_rows,
    parse_cell,
    split_header,
)
from gophernet_jax.model import _apart

log = logging.getLogger(__name__)


class Table(NamedTuple):
    """A raw table: features `x` (n, features) float64, `labels` (n,) class indices."""

    x: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]


class Split(NamedTuple):
    """One split of a table: scaled features, one-hot labels and table rows of each part.

    The validation part has 0 rows unless a `val_fraction` was asked for.
    """

    x_train: jax.Array  # (n_train, features)
    y_train: jax.Array  # (n_train, classes)
    x_test: jax.Array  # (n_test, features)
    y_test: jax.Array  # (n_test, classes)
    train_idx: jax.Array  # (n_train,) the table's rows in the training part, ascending
    test_idx: jax.Array  # (n_test,) the table's rows in the test part, ascending
    x_val: jax.Array  # (n_val, features)
    y_val: jax.Array  # (n_val, classes)
    val_idx: jax.Array  # (n_val,) the table's rows in the validation part, ascending


# --- reading ---------------------------------------------------------------------------------


def _class_order(names: set[str]) -> tuple[str, ...]:
    """Sorted class names; numerically when every name is a number (so 2 before 10)."""
    try:
        return tuple(sorted(names, key=lambda n: (float(n), n)))
    except ValueError:
        return tuple(sorted(names))


def _class_column(
    path: Path, column: str, cells: list[tuple[int, str]]
) -> tuple[np.ndarray, tuple[str, ...]]:
    for line, text in cells:
        if not text:
            raise DataError(f"{path}:{line}: column {column!r} is empty")
    names = _class_order({text for _, text in cells})
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[text] for _, text in cells], dtype=np.int64), names


def _one_hot_columns(
    path: Path, columns: tuple[str, ...], cells: list[tuple[int, list[str]]]
) -> tuple[np.ndarray, tuple[str, ...]]:
    labels = np.empty(len(cells), dtype=np.int64)
    for r, (line, row) in enumerate(cells):
        values = np.array([parse_cell(path, line, c, t) for c, t in zip(columns, row)])
        if not (np.isin(values, (0.0, 1.0)).all() and values.sum() == 1.0):
            raise DataError(f"{path}:{line}: labels ({', '.join(columns)}) are not one-hot: {','.join(row)}")
        labels[r] = int(np.argmax(values))
    return labels, columns


def _check_classes(
    path: Path, labels: np.ndarray, names: tuple[str, ...], lines: list[int], column: str | None = None
) -> None:
    if len(names) < 2:
        raise DataError(f"{path}: only one class ({names[0]!r}): a classifier needs at least 2")
    counts = np.bincount(labels, minlength=len(names))
    for c in np.flatnonzero(counts < 2):
        where = f"{path}:{lines[int(np.argmax(labels == c))]}" if counts[c] else f"{path}"
        many = ""
        if column is not None and len(names) > max(20, len(labels) // 2):  # a measurement, not a class
            many = (
                f"; column {column!r} holds {len(names)} values in {len(labels)} rows: is it a class label?"
            )
        raise DataError(f"{where}: class {names[c]!r} has {_rows(counts[c])}: too few to stratify{many}")


def constant_columns(table: Table) -> tuple[str, ...]:
    """The feature columns with one value on every row of the whole table.

    Computed on the host, for the notice `load_table` logs. A split's training rows can
    hold one value in more columns than these; `minmax_scale` maps such a column to 0 in
    every split, inside the program, whether or not it is named here.
    """
    return tuple(table.feature_names[i] for i in np.flatnonzero(np.ptp(table.x, axis=0) == 0))


def _constant_notice(path: Path, names: tuple[str, ...]) -> str:
    many = len(names) > 1
    count = f"{len(names)} constant feature column{'s' if many else ''} scale{'' if many else 's'}"
    return f"note: {count} to 0: {', '.join(names)} (one value on every row of {path.name})"


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _strict_table(path: Path, columns: tuple[str, ...]) -> Table:
    header, records, feature_idx, label_idx = labelled_records(path, columns)
    names = tuple(h.strip() for h in header)
    x = numbers(path, header, records, feature_idx)
    if len(columns) == 1:
        cells = [(line, row[label_idx[0]].strip()) for line, row in records]
        labels, classes = _class_column(path, columns[0], cells)
    else:
        cells = [(line, [row[i].strip() for i in label_idx]) for line, row in records]
        labels, classes = _one_hot_columns(path, columns, cells)
    _check_classes(
        path, labels, classes, [line for line, _ in records], columns[0] if len(columns) == 1 else None
    )
    return Table(x, labels, tuple(names[i] for i in feature_idx), classes)


def _fast_table(path: Path, columns: tuple[str, ...]) -> Table | None:
    """`_strict_table` by pandas' C parser (`dataset.fast_read`), or None where the
    strict reader must say what is wrong."""
    text = columns if len(columns) == 1 else ()
    if not columns or (found := fast_read(path, text)) is None:
        return None
    header, values, cells = found
    feature_idx, label_idx = split_header(path, header, columns)
    if len(columns) == 1:
        found, rows = np.unique(cells[0].astype(str), return_inverse=True)
        classes = _class_order(set(found.tolist()))
        labels = np.array([classes.index(name) for name in found.tolist()])[rows]  # a loop over classes
    else:
        onehot = values[:, label_idx]
        if not one_hot_rows(onehot).all():
            return None
        labels, classes = np.argmax(onehot, axis=1), columns
    counts = np.bincount(labels, minlength=len(classes))
    if len(classes) < 2 or counts.min() < 2:
        return None
    features = tuple(header[i].strip() for i in feature_idx)
    return Table(values[:, feature_idx], labels.astype(np.int64), features, classes)


def load_table(path: str | Path, label: str | Sequence[str]) -> Table:
    """Reads a raw table: numeric feature columns and a class label.

    Classes are numbered in sorted order of their names (numerically when every name is
    a number), so the numbering does not depend on the order of the rows: iris gives
    setosa, versicolor, virginica. One-hot label columns keep the order given.

    Args:
      path: CSV file: a header, then one row per sample.
      label: the name of the column holding each row's class (text or numbers), or the
        names of one-hot label columns, one per class. Every other column is a feature.

    Returns:
      `Table(x, labels, feature_names, class_names)`.

    Raises:
      DataError: one line naming the file (and line and column where there is one), for
        an unknown label column, a wrong field count, an empty, non-numeric or non-finite
        feature cell, label columns that are not one-hot, fewer than 2 classes or a class
        with fewer than 2 rows (too few to stratify).

    A feature column with one value on every row is not an error: min-max scaling maps it
    to 0, as scikit-learn's `MinMaxScaler` does, and a note naming such columns is logged
    (`constant_columns`).

    Example:
      >>> table = load_table(DATA_DIR / "iris.csv", "species")
      >>> table.x.shape, table.class_names
      ((150, 4), ('setosa', 'versicolor', 'virginica'))
    """
    path = Path(path)
    columns = (label,) if isinstance(label, str) else tuple(label)
    table = fast_or_strict(lambda: _fast_table(path, columns), lambda: _strict_table(path, columns))
    if constant := constant_columns(table):
        log.info(_constant_notice(path, constant))
    return table


# --- splitting -------------------------------------------------------------------------------


def _fraction(name: str, value: float, low_open: bool = True) -> None:
    ok = (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and (0 < value < 1 or (value == 0 and not low_open))
    )
    if not ok:
        raise ValueError(f"{name} must be a number in {'(0' if low_open else '[0'}, 1), got {value!r}")


def _class_counts(labels: np.ndarray, class_names: Sequence[str] | None) -> np.ndarray:
    labels = np.asarray(labels)
    if (
        labels.ndim != 1
        or not np.issubdtype(labels.dtype, np.integer)
        or labels.size == 0
        or labels.min() < 0
    ):
        raise ValueError("labels must be a non-empty 1-D array of class indices >= 0")
    counts = np.bincount(labels)
    for c in np.flatnonzero(counts == 1):
        name = class_names[c] if class_names is not None else int(c)
        raise DataError(f"class {name!r} has 1 row: too few to stratify")
    return counts


def _share(fraction: float, counts: np.ndarray) -> np.ndarray:
    """round(fraction · n_c) per class, half up."""
    return np.floor(fraction * counts + 0.5).astype(np.int64)


def part_counts(
    labels: np.ndarray,
    test_fraction: float,
    val_fraction: float = 0.0,
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Test and validation rows per class of a stratified split of these labels.

    Test: round(test_fraction · n_c), half up, kept within [1, n_c − 1]. Validation (when
    `val_fraction` > 0): round(val_fraction · n_c), at least 1; every class must keep a
    training row, or a `DataError` names the class.
    """
    _fraction("test_fraction", test_fraction)
    _fraction("val_fraction", val_fraction, low_open=False)
    counts = _class_counts(labels, class_names)
    test = np.where(counts > 0, np.clip(_share(test_fraction, counts), 1, np.maximum(counts - 1, 1)), 0)
    if not val_fraction:
        return test, np.zeros_like(test)
    val = np.where(counts > 0, np.maximum(_share(val_fraction, counts), 1), 0)
    for c in np.flatnonzero((counts > 0) & (counts - test - val < 1)):
        name = class_names[c] if class_names is not None else int(c)
        rows = _rows(int(counts[c]))
        raise DataError(f"class {name!r} has {rows}: too few for a training, validation and test row each")
    return test, val


def split_sizes(
    labels: np.ndarray,
    test_fraction: float,
    *,
    val_fraction: float = 0.0,
    class_names: Sequence[str] | None = None,
) -> tuple[int, ...]:
    """(n_train, n_test) of every stratified split of these labels, or (n_train, n_val, n_test)
    with a `val_fraction` (see `stratified_parts`)."""
    test, val = part_counts(labels, test_fraction, val_fraction, class_names=class_names)
    n_test, n_val = int(test.sum()), int(val.sum())
    if not val_fraction:
        return len(labels) - n_test, n_test
    return len(labels) - n_test - n_val, n_val, n_test


def stratified_parts(key: jax.Array, labels: np.ndarray, counts: Sequence[np.ndarray]) -> list[jax.Array]:
    """Row indices of parts drawn class by class: the rest, then one array per entry of `counts`.

    The rows of each class are put in a random order drawn by `key`; part p takes the next
    `counts[p][c]` rows of class c, and what is left over is the rest (the training part).
    The sizes depend only on the labels and `counts`, never on the key, so a vmap over
    keys is one program. Every index array is in ascending row order.
    """
    labels = np.asarray(labels)
    sizes = np.bincount(labels, minlength=len(counts[0]) if counts else 0)
    starts = np.cumsum(sizes) - sizes
    taken = np.zeros_like(sizes)
    positions = []
    for part in counts:
        part = np.asarray(part)
        positions.append(
            np.concatenate([np.arange(s + t, s + t + k) for s, t, k in zip(starts, taken, part)])
        )
        taken = taken + part
    rest = np.concatenate([np.arange(s + t, s + n) for s, t, n in zip(starts, taken, sizes)])
    perm = jax.random.permutation(key, len(labels))
    by_class = perm[jnp.argsort(jnp.asarray(labels)[perm], stable=True)]  # classes in order, shuffled within
    return [jnp.sort(by_class[pos]) for pos in (rest, *positions)]


def minmax_fit(train_x: jax.Array | np.ndarray) -> tuple[jax.Array, jax.Array]:
    """Each column's minimum and span (max − min, or 1 where the column is constant).

    A span of 1 for a constant column (scikit-learn's `MinMaxScaler` does the same) maps
    its training values to 0 and never divides by zero, traced or not: the spans a run
    stores for `predict` (`store.inputs_for`) are these.
    """
    low, high = train_x.min(axis=0), train_x.max(axis=0)
    return low, jnp.where(high > low, high - low, jnp.ones_like(high))


def minmax_scale(
    train_x: jax.Array, *others: jax.Array, keep_division: bool = False
) -> tuple[jax.Array, ...]:
    """Scales each column by the training part's min and max, so training columns span [0, 1].

    The other parts (test, validation) use the training part's min and max and may fall
    outside [0, 1]. A
    column constant in the training part (in this split: the split is traced, so this is
    decided inside the program) is shifted to 0 and divided by 1, not 0: its training
    values become 0, its other values their distance from that constant.
    XLA's CPU float32 division is not correctly rounded (x / x can be 1 − 2⁻²⁴), so the
    training part's maxima are set to 1 and its values clipped to [0, 1] explicitly.

    XLA's algebraic simplifier rewrites `(x - low) / span`, a division by a broadcast, into
    `(x - low) * (1 / span)` in some programs and not in others, and the two round
    otherwise: it did in a population program on one device and not in the same program
    shared out among two (every weight of 9 seeds with splits of their own differed after
    100 epochs). With `keep_division` the span reaches the division through a computation
    of its own (`model._apart`), which the rewrite cannot see through: the division as
    written, in any program. The population program scales its seeds' own splits so; a
    split made once for every seed (`training.first_split`), and `store.inputs_for`, which
    scales new rows bit for bit as it did, keep XLA's choice.

    Returns:
      `(train_scaled, *others_scaled)`, shapes as given.
    """
    low, span = minmax_fit(train_x)
    high = train_x.max(axis=0)
    top = (high > low) & (train_x == high)

    def scaled(x: jax.Array) -> jax.Array:
        divisor = _apart(lambda s: jnp.broadcast_to(s, x.shape), span) if keep_division else span
        return (x - low) / divisor

    train = jnp.clip(jnp.where(top, jnp.ones_like(train_x), scaled(train_x)), 0, 1)
    return (train, *(scaled(x) for x in others))


def add_noise(key: jax.Array, x: jax.Array, scale: jax.Array | float) -> jax.Array:
    """Adds Gaussian noise N(0, scale²) to every entry of `x`.

    Args:
      key: a `jax.random` key.
      x: features (n, features).
      scale: the noise's standard deviation: a scalar or one per column, >= 0; may be
        traced. Where it is 0, `x` comes back bit for bit.

    Returns:
      `x` plus noise, same shape and dtype.
    """
    scale = jnp.asarray(scale, x.dtype)
    return jnp.where(scale == 0, x, x + scale * jax.random.normal(key, x.shape, x.dtype))


class StaticTable:
    """A table and how it is split, as a static argument of `jit`: hashed and compared by
    content, so the same table reuses the compiled program and becomes a constant inside it."""

    def __init__(self, table: Table, test_fraction: float, val_fraction: float, noisy: bool = True) -> None:
        self.table, self.test_fraction, self.val_fraction = table, test_fraction, val_fraction
        # Without noise no seed draws any: `add_noise` at scale 0 gives the table bit for bit,
        # and skipping the draw saves a table-sized temporary per seed.
        self.noisy = noisy
        parts = [table.x.tobytes(), table.labels.tobytes(), repr((table.feature_names, table.class_names))]
        self._digest = hashlib.sha256(b"".join(p if isinstance(p, bytes) else p.encode() for p in parts))
        self._digest.update(repr((test_fraction, val_fraction, noisy)).encode())

    def with_features(self, x: jax.Array) -> Table:
        """The table for a program that takes its features `x` as an argument rather than as a
        constant (lowering and the compilation cache's key then do not serialise them): with
        noise, the table's own, whose columns' ranges scale the noise as constants."""
        return self.table if self.noisy else self.table._replace(x=x)

    def __hash__(self) -> int:
        return hash(self._digest.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StaticTable) and self._digest.hexdigest() == other._digest.hexdigest()


def draw_split(
    table: Table,
    split_key: jax.Array,
    noise_key: jax.Array | None = None,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    noise: jax.Array | float = 0.0,
    dtype: str = "float32",
    keep_division: bool = False,
) -> Split:
    """`make_split`'s computation, for use inside a program (`jit`, `vmap`): arguments and
    result as `make_split`'s, with `table` a constant of the program (`keep_division`: see
    `minmax_scale`)."""
    x = jnp.asarray(table.x, dtype)
    if noise_key is not None:
        x = add_noise(noise_key, x, jnp.asarray(noise, dtype) * jnp.asarray(np.ptp(table.x, axis=0), dtype))
    test, val = part_counts(table.labels, test_fraction, val_fraction, class_names=table.class_names)
    train_idx, test_idx, val_idx = stratified_parts(split_key, table.labels, [test, val])
    y = jax.nn.one_hot(table.labels, len(table.class_names), dtype=dtype)
    x_train, x_test, x_val = minmax_scale(x[train_idx], x[test_idx], x[val_idx], keep_division=keep_division)
    return Split(x_train, y[train_idx], x_test, y[test_idx], train_idx, test_idx, x_val, y[val_idx], val_idx)


def draw_splits(
    table: Table,
    split_keys: jax.Array,
    noise_keys: jax.Array | None = None,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    noise: jax.Array | float = 0.0,
    dtype: str = "float32",
    keep_division: bool = False,
) -> Split:
    """`draw_split` vmapped over the keys: `make_splits`'s computation, for use inside a program."""
    one = partial(
        draw_split,
        table,
        test_fraction=test_fraction,
        val_fraction=val_fraction,
        noise=noise,
        dtype=dtype,
        keep_division=keep_division,
    )
    if noise_keys is None:
        return jax.vmap(lambda k: one(k, None))(split_keys)
    return jax.vmap(one)(split_keys, noise_keys)


@partial(jax.jit, static_argnames=("static", "dtype", "batched"))
def _split_program(x, split_keys, noise_keys, noise, static: StaticTable, dtype: str, batched: bool) -> Split:
    draw = draw_splits if batched else draw_split
    settings = {"test_fraction": static.test_fraction, "val_fraction": static.val_fraction}
    return draw(static.with_features(x), split_keys, noise_keys, noise=noise, dtype=dtype, **settings)


def _compiled_split(table, split_keys, noise_keys, noise, dtype, batched, test_fraction, val_fraction):
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs jax_enable_x64: jax.config.update('jax_enable_x64', True)")
    if isinstance(noise, float | int) and not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    static = StaticTable(table, test_fraction, val_fraction, noisy=noise_keys is not None)
    dtype = jnp.dtype(dtype).name
    return _split_program(np.asarray(table.x, dtype), split_keys, noise_keys, noise, static, dtype, batched)


def make_split(
    table: Table,
    split_key: jax.Array,
    noise_key: jax.Array | None = None,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    noise: jax.Array | float = 0.0,
    dtype: str = "float32",
) -> Split:
    """One split of a table, as a run trains and tests on it: noise, split, then scaling.

    The noise is measurement noise, so it comes first, on the raw values of every row,
    with standard deviation `noise` times each column's range over the whole table (so
    one number suits columns of any unit; 0.05 is about 0.05 after scaling). Drawn for
    the whole table from `noise_key` alone, a noise seed gives the same measurements
    whatever the split. Then the stratified split from `split_key`, then min-max scaling
    fitted on the training part only.

    Compiled as one program per table, settings and shapes (`draw_split` is the same
    computation for use inside a program of one's own); run op by op it would compile
    some sixty small ones.

    Args:
      table: the raw table.
      split_key: key of the split; may be traced (vmapped).
      noise_key: key of the noise; may be traced; None for no noise.
      test_fraction: share of each class held out for testing (static).
      val_fraction: share of each class held out for validation (static; 0: none).
      noise: the noise's standard deviation in units of each column's range; may be traced.
      dtype: "float32" or "float64" (which needs jax_enable_x64).

    Returns:
      `Split(x_train, y_train, x_test, y_test, train_idx, test_idx, x_val, y_val, val_idx)`:
      labels one-hot in class order, and the table rows of each part (ascending) to record
      which split it was. Scaling is fitted on the training part only.

    Example:
      >>> table = load_table(DATA_DIR / "iris.csv", "species")
      >>> keys = jax.random.split(jax.random.key(0), 8)
      >>> batch = jax.vmap(lambda k: make_split(table, k, test_fraction=0.2))(keys)
      >>> batch.x_train.shape
      (8, 120, 4)
    """
    return _compiled_split(table, split_key, noise_key, noise, dtype, False, test_fraction, val_fraction)


def make_splits(
    table: Table,
    split_keys: jax.Array,
    noise_keys: jax.Array | None = None,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    noise: jax.Array | float = 0.0,
    dtype: str = "float32",
) -> Split:
    """A batch of splits, one per key (and noise key): `make_split` vmapped, in one program.

    Returns:
      `Split` whose arrays carry a leading batch axis of len(split_keys).
    """
    return _compiled_split(table, split_keys, noise_keys, noise, dtype, True, test_fraction, val_fraction)
