"""Raw tables and their splits: strict reading, stratified splits, scaling, noise, one program."""

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from omegaconf import OmegaConf

from conftest import synthetic_table
from gophernet_jax import dataset, splits
from gophernet_jax.config import CONF_DIR, DATA_DIR
from gophernet_jax.dataset import DataError
from gophernet_jax.runtime import CompileCounter
from gophernet_jax.splits import (
    Table,
    add_noise,
    constant_columns,
    load_table,
    make_split,
    make_splits,
    minmax_scale,
    part_counts,
    split_sizes,
    stratified_parts,
)

HEADER = "a,b,kind"
ROWS = ("1,5,x", "2,6,x", "3,7,y", "4,8,y")


# The split the program makes, composed from its public parts (`part_counts`, then
# `stratified_parts`): the oracle these tests check.
def stratified_split(
    key: jax.Array,
    labels: np.ndarray,
    test_fraction: float,
    *,
    val_fraction: float = 0.0,
    class_names: Sequence[str] | None = None,
) -> tuple[jax.Array, ...]:
    """Row indices of a stratified train/test split (train/validation/test with a
    `val_fraction`), drawn by `key`.

    Class c with n_c rows gets k_c = round(test_fraction · n_c) test rows (half up, and at
    least one row in each part) and, with a `val_fraction`, round(val_fraction · n_c)
    validation rows (at least one), the rest for training (see `part_counts`). Which rows
    go where is a uniform draw within each class: the test rows are the first k_c of the
    class's random order, so the test part does not depend on `val_fraction`. Every index
    array is in ascending row order, so a split is fully described by its membership.

    Args:
      key: a `jax.random` key; may be traced (vmapped).
      labels: (n,) host array of class indices: static, a constant of the program.
      test_fraction: share of each class held out for testing, in (0, 1): static.
      val_fraction: share of each class held out for validation, in [0, 1): static.
      class_names: names for the error message.

    Returns:
      `(train_idx, test_idx)`, or `(train_idx, val_idx, test_idx)` with a `val_fraction`:
      int arrays partitioning range(n).

    Raises:
      DataError: on the host, before tracing, for a class with a single row, or one too
        small to give every part a row.
      ValueError: for a fraction outside its range or labels that are not class indices.

    Example:
      >>> train_idx, test_idx = stratified_split(jax.random.key(0), np.repeat([0, 1, 2], 50), 0.2)
      >>> train_idx.shape, test_idx.shape
      ((120,), (30,))
    """
    test, val = part_counts(labels, test_fraction, val_fraction, class_names=class_names)
    if not val_fraction:
        train_idx, test_idx = stratified_parts(key, labels, [test])
        return train_idx, test_idx
    train_idx, test_idx, val_idx = stratified_parts(key, labels, [test, val])
    return train_idx, val_idx, test_idx


@pytest.fixture(scope="module")
def iris() -> Table:
    return load_table(DATA_DIR / "iris.csv", "species")


@pytest.fixture(scope="module")
def wine() -> Table:
    return load_table(DATA_DIR / "wine.csv", "class")


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "raw.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def raised(path: Path, label, line: int | None) -> str:
    """Loads `path`, expecting a one-line DataError naming the file and (only) `line`."""
    with pytest.raises(DataError) as info:
        load_table(path, label)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    claimed = re.findall(r"\.csv:(\d+)", message)
    assert claimed == ([] if line is None else [str(line)]), message
    return message


def keys(n: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.key(seed), n)


# --- reading ---------------------------------------------------------------------------------


def test_iris_table(iris):
    assert iris.x.shape == (150, 4) and iris.x.dtype == np.float64
    assert iris.feature_names == ("sepal_length", "sepal_width", "petal_length", "petal_width")
    assert iris.class_names == ("setosa", "versicolor", "virginica")
    assert_array_equal(np.bincount(iris.labels), [50, 50, 50])
    assert_allclose(iris.x[0], [5.1, 3.5, 1.4, 0.2])
    assert iris.labels[0] == 0 and iris.labels[-1] == 2


def test_wine_table(wine):
    assert wine.x.shape == (178, 13) and len(wine.feature_names) == 13
    assert wine.class_names == ("class_0", "class_1", "class_2")
    assert_array_equal(np.bincount(wine.labels), [59, 71, 48])
    assert "class" not in wine.feature_names


@pytest.mark.parametrize("name, classes", [("iris", 3), ("wine", 3), ("digits", 10)])
def test_data_options_name_shipped_files(name, classes):
    option = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml"), resolve=False)
    assert option["path"].startswith("shipped:"), option  # portable: no machine path in a config
    table = load_table(DATA_DIR / option["path"].removeprefix("shipped:"), option["label"])
    assert len(table.class_names) == classes and table.x.shape[0] == table.labels.shape[0]


def test_classes_are_numbered_in_sorted_order(tmp_path):
    path = write(tmp_path, "1,5,zeta", "2,6,alpha", "3,7,zeta", "4,8,alpha", "5,1,mid", "6,2,mid")
    table = load_table(path, "kind")
    assert table.class_names == ("alpha", "mid", "zeta")
    assert_array_equal(table.labels, [2, 0, 2, 0, 1, 1])


def test_numeric_class_names_sort_as_numbers(tmp_path):
    table = load_table(write(tmp_path, "1,5,10", "2,6,2", "3,7,10", "4,8,2"), "kind")
    assert table.class_names == ("2", "10")
    assert_array_equal(table.labels, [1, 0, 1, 0])


def test_one_hot_label_columns(tmp_path):
    path = write(tmp_path, "1,5,1,0", "2,6,0,1", "3,7,1,0", "4,8,0,1", header="a,b,cat,dog")
    table = load_table(path, ["cat", "dog"])
    assert table.class_names == ("cat", "dog") and table.feature_names == ("a", "b")
    assert_array_equal(table.labels, [0, 1, 0, 1])


def test_unknown_label_column_lists_the_header(tmp_path):
    path = write(tmp_path, *ROWS)
    message = raised(path, "species", 1)
    assert "'species'" in message and "a, b, kind" in message


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_table_with_another_separator_is_named_as_such(tmp_path, sep):
    path = write(tmp_path, *(row.replace(",", sep) for row in ROWS), header=HEADER.replace(",", sep))
    message = raised(path, "kind", 1)
    assert f"is the file separated by {sep!r}? Tables here are comma-separated" in message
    assert "separated" not in raised(write(tmp_path, *ROWS), "species", 1)  # a comma table: no hint


@pytest.mark.parametrize(
    "bad_row, fragment",
    [
        ("3,abc,y", "column 'b': 'abc' is not a number"),
        ("3,,y", "column 'b' is empty"),
        ("3,inf,y", "column 'b': 'inf' is not finite"),
        ("3,7,", "column 'kind' is empty"),
        ("3,7", "expected 3 fields as in the header, found 2"),
        ("3,7,y,9", "expected 3 fields as in the header, found 4"),
    ],
)
def test_bad_cells_name_file_line_and_column(tmp_path, bad_row, fragment):
    path = write(tmp_path, *ROWS[:2], bad_row, ROWS[3])
    assert fragment in raised(path, "kind", 4)


def test_one_hot_labels_must_be_one_hot(tmp_path):
    path = write(tmp_path, "1,5,1,0", "2,6,1,1", "3,7,0,1", header="a,b,cat,dog")
    assert "not one-hot" in raised(path, ["cat", "dog"], 3)


def test_constant_feature_column_is_read_and_named_once(tmp_path, caplog):
    path = write(tmp_path, "1,5,x", "2,5,x", "3,5,y", "4,5,y")
    with caplog.at_level(logging.INFO, logger="gophernet_jax.splits"):
        table = load_table(path, "kind")
    assert constant_columns(table) == ("b",)
    notes = [r.getMessage() for r in caplog.records]
    assert notes == ["note: 1 constant feature column scales to 0: b (one value on every row of raw.csv)"]


def test_no_notice_without_constant_columns(iris, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="gophernet_jax.splits"):
        load_table(DATA_DIR / "iris.csv", "species")
    assert constant_columns(iris) == () and not caplog.records


def test_digits_table_and_its_constant_pixels(caplog):
    with caplog.at_level(logging.INFO, logger="gophernet_jax.splits"):
        digits = load_table(DATA_DIR / "digits.csv", "digit")
    assert digits.x.shape == (1797, 64) and digits.class_names == tuple(f"d{i}" for i in range(10))
    assert digits.x.min() == 0 and digits.x.max() == 16 and np.all(digits.x == np.round(digits.x))
    assert constant_columns(digits) == ("pixel_0_0", "pixel_4_0", "pixel_4_7")
    assert [r.getMessage() for r in caplog.records] == [
        "note: 3 constant feature columns scale to 0: pixel_0_0, pixel_4_0, pixel_4_7 "
        "(one value on every row of digits.csv)"
    ]


def test_a_single_class_is_not_a_classification(tmp_path):
    path = write(tmp_path, "1,5,x", "2,6,x", "3,7,x")
    assert "only one class ('x')" in raised(path, "kind", None)


def test_class_with_one_row_cannot_be_stratified(tmp_path):
    path = write(tmp_path, "1,5,x", "2,6,x", "3,7,lonely", "4,8,y", "5,9,y")
    assert "class 'lonely' has 1 row: too few to stratify" in raised(path, "kind", 4)


def test_a_label_column_of_measurements_is_named_as_such(tmp_path):
    path = write(tmp_path, "1,5,0.5", "2,6,0.5", *(f"{i},7,{i / 4}" for i in range(3, 33)))
    message = raised(path, "kind", 4)
    assert message.endswith(
        "too few to stratify; column 'kind' holds 31 values in 32 rows: is it a class label?"
    )
    few = write(tmp_path, "1,5,x", "2,6,x", "3,7,lonely", "4,8,y", "5,9,y")
    assert raised(few, "kind", 4).endswith("too few to stratify")  # 3 classes in 5 rows: no hint


def test_one_hot_class_without_rows(tmp_path):
    path = write(tmp_path, "1,5,1,0,0", "2,6,0,1,0", "3,7,1,0,0", "4,8,0,1,0", header="a,b,cat,dog,eel")
    assert "class 'eel' has 0 rows: too few to stratify" in raised(path, ["cat", "dog", "eel"], None)


def test_missing_file_and_no_rows(tmp_path):
    assert "no such file" in raised(tmp_path / "absent.csv", "kind", None)
    assert "no data rows" in raised(write(tmp_path), "kind", None)


# --- the fast reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, label", [("iris", "species"), ("wine", "class"), ("digits", "digit")])
def test_the_c_parser_reads_shipped_tables_as_the_strict_reader(name, label, monkeypatch):
    strict = splits._strict_table(DATA_DIR / f"{name}.csv", (label,))
    monkeypatch.setattr(dataset, "_read_rows", None)  # the strict reader is not needed
    fast = load_table(DATA_DIR / f"{name}.csv", label)
    for a, b in zip(fast, strict):
        assert_array_equal(a, b)
    assert fast.labels.dtype == strict.labels.dtype == np.int64 and fast.x.dtype == np.float64


def test_a_large_table_is_read_without_the_strict_reader(tmp_path, monkeypatch):
    path = synthetic_table(tmp_path / "big.csv", 100_000, 10)
    monkeypatch.setattr(dataset, "_read_rows", None)
    table = load_table(path, "class")
    assert table.x.shape == (100_000, 10) and table.class_names == ("c0", "c1", "c2")
    assert_array_equal(table.labels, np.digitize(table.x[:, 0] + table.x[:, 1], [2 / 3, 4 / 3]))


@pytest.mark.parametrize(
    "rows, fragment, line",
    [
        (("1,5,x", "2,True,x", "3,7,y", "4,8,y"), "'True' is not a number", 3),  # pandas: 1.0
        (("1,5,x,9", "2,6,x", "3,7,y", "4,8,y"), "expected 3 fields", 2),  # pandas: an index
        (("1,5,x", "   ", "3,7,y", "4,8,y"), "expected 3 fields as in the header, found 1", 3),
        (("1,5,x", "2,6", "3,7,y", "4,8,y"), "expected 3 fields as in the header, found 2", 3),
        (("1,5,10", "2,6,2", "3,7,10", "4,8,2.0"), "class '2' has 1 row", 3),  # text, not numbers
    ],
)
def test_files_the_c_parser_might_misread_go_to_the_strict_reader(tmp_path, rows, fragment, line):
    assert fragment in raised(write(tmp_path, *rows), "kind", line)


def test_blank_lines_and_quoted_cells_read_as_the_strict_reader(tmp_path):
    path = write(tmp_path, "1,5,x", "", '2,6,"x"', '3,7,"y', '"', "", "4,8,y", "")
    table, strict = load_table(path, "kind"), splits._strict_table(path, ("kind",))
    assert_array_equal(table.x, strict.x)
    assert_array_equal(table.labels, strict.labels)
    assert table.class_names == strict.class_names == ("x", "y")


# --- stratified split ------------------------------------------------------------------------


def test_same_key_same_split_every_time(iris):
    first = stratified_split(jax.random.key(7), iris.labels, 0.2)
    for _ in range(3):
        again = stratified_split(jax.random.key(7), iris.labels, 0.2)
        assert_array_equal(first[0], again[0])
        assert_array_equal(first[1], again[1])
    other = stratified_split(jax.random.key(8), iris.labels, 0.2)
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("fraction", [0.2, 0.33, 0.5])
def test_splits_are_stratified_partitions_of_fixed_size(wine, fraction):
    counts = np.bincount(wine.labels)
    expected_test = np.clip(np.floor(fraction * counts + 0.5), 1, counts - 1)
    sizes = split_sizes(wine.labels, fraction)
    for key in keys(5):
        train, test = (np.asarray(i) for i in stratified_split(key, wine.labels, fraction))
        assert (len(train), len(test)) == sizes
        assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(wine.labels)))
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # ascending row order
        assert_array_equal(np.bincount(wine.labels[test], minlength=3), expected_test)
        assert_array_equal(np.bincount(wine.labels[train], minlength=3), counts - expected_test)
        # Proportions hold within one row per class in both parts.
        assert np.all(np.abs(np.bincount(wine.labels[test], minlength=3) - fraction * counts) <= 1)


def test_article_sizes(iris, wine):
    assert split_sizes(iris.labels, 0.2) == (120, 30)
    assert split_sizes(wine.labels, 0.2) == (142, 36)  # 12 + 14 + 10 test rows


def test_each_part_keeps_at_least_one_row_per_class():
    labels = np.repeat([0, 1], [3, 4])
    assert split_sizes(labels, 0.01) == (5, 2)
    assert split_sizes(labels, 0.99) == (2, 5)


def test_membership_is_uniform_within_classes(iris):
    test = jax.vmap(lambda k: stratified_split(k, iris.labels, 0.2)[1])(keys(400, seed=3))
    chosen = np.bincount(np.asarray(test).ravel(), minlength=150)
    assert_allclose(chosen / 400, 0.2, atol=0.1)  # binomial sd is 0.02


def test_class_with_one_row_is_an_error_before_tracing():
    with pytest.raises(DataError, match=r"^class 'b' has 1 row: too few to stratify$"):
        stratified_split(jax.random.key(0), np.array([0, 0, 1, 2, 2]), 0.2, class_names=("a", "b", "c"))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, "0.2"])
def test_test_fraction_must_be_in_open_unit_interval(iris, fraction):
    with pytest.raises(ValueError, match="test_fraction must be a number in"):
        split_sizes(iris.labels, fraction)


# --- scaling and noise -----------------------------------------------------------------------


def test_minmax_is_fitted_on_the_training_part_only():
    train = jnp.array([[1.0, 10.0, 3.0], [3.0, 30.0, 3.0], [2.0, 20.0, 3.0]])
    test = jnp.array([[0.0, 40.0, 5.0]])
    train_s, test_s = minmax_scale(train, test)
    assert_array_equal(train_s, [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    assert_allclose(test_s, [[-0.5, 1.5, 2.0]])  # outside [0, 1]; constant column divided by 1


def constant_table(column: np.ndarray) -> Table:
    """12 rows of two classes: a varying column `a` and the given column `b`."""
    x = np.stack([np.arange(12.0), column], axis=1)
    return Table(x, np.repeat([0, 1], 6), ("a", "b"), ("x", "y"))


def test_a_constant_column_scales_to_zero_in_every_split():
    table = constant_table(np.full(12, 5.0))
    batch = jax.jit(lambda k: make_splits(table, k, test_fraction=0.25, val_fraction=0.25))(keys(8))
    for part in (batch.x_train, batch.x_test, batch.x_val):
        assert_array_equal(part[..., 1], 0.0)
    assert_array_equal(batch.x_train[..., 0].min(axis=1), 0.0)  # the other column is untouched
    assert_array_equal(batch.x_train[..., 0].max(axis=1), 1.0)


def test_a_column_constant_on_one_splits_training_rows_only():
    # b is 5 except on row 0: splits that hold row 0 out see a constant training column,
    # decided inside the one program that makes every split.
    column = np.full(12, 5.0)
    column[0] = 9.0
    table = constant_table(column)
    batch = jax.jit(lambda k: make_splits(table, k, test_fraction=0.25))(keys(16))
    held_out = np.any(np.asarray(batch.test_idx) == 0, axis=1)
    assert held_out.any() and not held_out.all()
    for s in range(16):
        x_train, x_test = np.asarray(batch.x_train[s]), np.asarray(batch.x_test[s])
        assert np.isfinite(x_train).all() and np.isfinite(x_test).all()
        if held_out[s]:  # span 1: training rows 0, row 0 its distance from 5
            assert_array_equal(x_train[:, 1], 0.0)
            assert_array_equal(x_test[:, 1], np.where(np.asarray(batch.test_idx[s]) == 0, 4.0, 0.0))
        else:
            assert (x_train[:, 1].min(), x_train[:, 1].max()) == (0.0, 1.0)


def test_training_columns_span_exactly_zero_to_one(wine):
    for split in (make_split(wine, k, noise_key=k, noise=0.05) for k in keys(4)):
        assert_array_equal(split.x_train.min(axis=0), 0.0)
        assert_array_equal(split.x_train.max(axis=0), 1.0)


def test_split_scales_with_the_training_rows_statistics(wine):
    key = jax.random.key(5)
    split = make_split(wine, key, test_fraction=0.25)
    train_idx, test_idx = (np.asarray(i) for i in stratified_split(key, wine.labels, 0.25))
    assert_array_equal(split.train_idx, train_idx)
    assert_array_equal(split.test_idx, test_idx)
    raw_train, raw_test = wine.x[train_idx], wine.x[test_idx]
    low, span = raw_train.min(axis=0), np.ptp(raw_train, axis=0)
    assert_allclose(split.x_train, (raw_train - low) / span, atol=1e-6)
    assert_allclose(split.x_test, (raw_test - low) / span, rtol=1e-5, atol=1e-6)
    assert_array_equal(np.argmax(split.y_train, axis=1), wine.labels[train_idx])
    assert_array_equal(np.argmax(split.y_test, axis=1), wine.labels[test_idx])
    assert_array_equal(split.y_test.sum(axis=1), 1.0)


def test_zero_noise_leaves_features_bit_for_bit():
    x = jnp.array([[1.5, -0.0, 0.0], [3.25, 7.0, -2.0]])
    out = add_noise(jax.random.key(0), x, 0.0)
    assert_array_equal(np.asarray(out).view(np.uint32), np.asarray(x).view(np.uint32))
    per_column = add_noise(jax.random.key(0), x, jnp.array([0.0, 0.5, 0.0]))
    assert_array_equal(per_column[:, [0, 2]], x[:, [0, 2]])
    assert not np.array_equal(per_column[:, 1], x[:, 1])


def test_noise_has_the_requested_spread_and_follows_its_key():
    x = jnp.zeros((200, 50)) + 3.0
    noisy = add_noise(jax.random.key(1), x, 0.2)
    delta = np.asarray(noisy - x, dtype=np.float64)
    assert abs(delta.std() - 0.2) < 0.01 and abs(delta.mean()) < 0.01  # 10 000 draws
    assert_array_equal(add_noise(jax.random.key(1), x, 0.2), noisy)
    assert not np.array_equal(add_noise(jax.random.key(2), x, 0.2), noisy)


def test_noise_seed_is_its_own_source(iris):
    split_key = jax.random.key(0)
    clean = make_split(iris, split_key)
    assert_array_equal(make_split(iris, split_key, jax.random.key(1), noise=0.0).x_train, clean.x_train)
    a = make_split(iris, split_key, jax.random.key(1), noise=0.05)
    b = make_split(iris, split_key, jax.random.key(2), noise=0.05)
    assert_array_equal(a.test_idx, b.test_idx)  # the same rows: the split does not move with noise
    assert not np.array_equal(a.x_train, b.x_train)
    assert_array_equal(make_split(iris, split_key, jax.random.key(1), noise=0.05).x_train, a.x_train)


def test_negative_noise_is_refused(iris):
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        make_split(iris, jax.random.key(0), jax.random.key(1), noise=-0.1)


# --- one program -----------------------------------------------------------------------------


def test_vmapped_splits_compile_once_and_match_single_splits(iris):
    batched = jax.jit(
        jax.vmap(lambda s, n, noise: make_split(iris, s, n, test_fraction=0.2, noise=noise), (0, 0, None))
    )
    split_a, noise_a, split_b, noise_b = keys(8, 1), keys(8, 2), keys(8, 3), keys(8, 4)
    noise_1, noise_2 = jnp.asarray(0.05), jnp.asarray(0.1)
    first = jax.block_until_ready(batched(split_a, noise_a, noise_1))
    with CompileCounter() as counter:
        second = jax.block_until_ready(batched(split_b, noise_b, noise_2))
    assert counter.count == 0 and batched._cache_size() == 1
    assert first.x_train.shape == second.x_train.shape == (8, 120, 4)
    assert not np.array_equal(first.test_idx, second.test_idx)
    for i in (0, 5):
        single = make_split(iris, split_b[i], noise_b[i], noise=0.1)
        for name in ("train_idx", "test_idx", "y_train", "y_test"):
            assert_array_equal(getattr(second, name)[i], getattr(single, name))
        assert_allclose(second.x_train[i], single.x_train, rtol=1e-6, atol=1e-6)
        assert_allclose(second.x_test[i], single.x_test, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("noisy", [False, True])
def test_a_split_and_initial_weights_are_one_program_each(tmp_path, noisy):
    """Op by op (before), a split of a table of a new shape compiled 65 small programs and
    he_normal initial weights 20, each also traced, lowered and loaded again in every run."""
    from gophernet_jax.model import Sizes, init_params

    rows = 41 if noisy else 43  # shapes no other test uses: nothing is reused from this process
    table = load_table(synthetic_table(tmp_path / "t.csv", rows, 5), "class")
    keys = jax.random.key(0), jax.random.key(1) if noisy else None
    with CompileCounter() as split:
        jax.block_until_ready(make_split(table, *keys, noise=0.05 if noisy else 0.0))
    with CompileCounter() as weights:
        jax.block_until_ready(init_params(keys[0], Sizes(5, (rows, 7), 3), init="he_normal"))
    assert split.count + split.cache_hits == 1 and weights.count + weights.cache_hits == 1


def test_a_noisy_split_is_the_split_a_run_trains_on_bit_for_bit(wine):
    """`make_split` is one compiled program, as the run's own split is (`first_split`, and each
    seed's inside the population program): noise added op by op (a product, then a sum) rounded
    otherwise than the fused multiply-add of a program, in 246 of wine's training entries."""
    from gophernet_jax.training import RawSplits, draw_key, first_split

    raw = RawSplits(wine, test_fraction=0.2, split_seed=3, noise_seed=2, noise=0.05, val_fraction=0.1)
    run_split = first_split(raw)[0]
    keys = draw_key("split", 3), draw_key("noise", 2)
    split = make_split(wine, *keys, val_fraction=0.1, noise=0.05)
    batch = make_splits(wine, *(k[None] for k in keys), val_fraction=0.1, noise=0.05)
    for name in ("x_train", "x_test", "x_val", "train_idx"):
        assert_array_equal(getattr(split, name), getattr(run_split, name))
        assert_array_equal(getattr(batch, name)[0], getattr(run_split, name))


def test_compile_counter_sees_a_new_shape(iris):
    batched = jax.jit(jax.vmap(lambda s: make_split(iris, s)))
    jax.block_until_ready(batched(keys(8)))
    with CompileCounter() as counter:
        jax.block_until_ready(batched(keys(4)))
    assert counter.count + counter.cache_hits >= 1  # compiled, or loaded from the cache


def test_make_splits_batches(wine):
    batch = make_splits(wine, keys(3), keys(3, 9), test_fraction=0.2, noise=0.02)
    assert batch.x_train.shape == (3, 142, 13) and batch.y_test.shape == (3, 36, 3)
    assert_array_equal(make_splits(wine, keys(3)).test_idx, batch.test_idx)


def test_float64_splits(iris, x64):
    split = make_split(iris, jax.random.key(0), dtype="float64")
    assert split.x_train.dtype == jnp.float64 and split.y_train.dtype == jnp.float64


def test_float64_needs_x64(iris):
    with pytest.raises(ValueError, match="jax_enable_x64"):
        make_split(iris, jax.random.key(0), dtype="float64")
