"""Unit tests of the strict CSV loader: `load_dataset`, `load_split` and `load_features`."""

import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from gophernet_jax import dataset
from gophernet_jax.config import DATA_DIR
from gophernet_jax.dataset import ARTICLE_LABELS, DataError, load_dataset, load_features, load_split

HEADER = "sepal_length,sepal_width,petal_length,petal_width,setosa,virginica,versicolor"
GOOD_ROW = "0.1,0.2,0.3,0.4,1,0,0"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def raised(path: Path, line: int | None = None, **kwargs) -> str:
    """Loads `path`, expecting a DataError; checks the message names the file (and line)."""
    with pytest.raises(DataError) as info:
        load_dataset(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    assert str(path) in message
    if line is not None:
        assert f"{path}:{line}:" in message, message
        # No other line number is claimed.
        assert re.findall(r"\.csv:(\d+)", message) == [str(line)], message
    else:
        assert not re.search(rf"{re.escape(str(path))}:\d", message), message
    return message


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# --- files that cannot be read at all ---------------------------------------------------


def test_missing_file(tmp_path):
    message = raised(tmp_path / "absent.csv")
    assert "no such file" in message


def test_empty_file(tmp_path):
    message = raised(write(tmp_path, ""))
    assert "empty" in message


def test_blank_lines_only_is_empty(tmp_path):
    message = raised(write(tmp_path, "\n\n\n"))
    assert "empty" in message


def test_header_only(tmp_path):
    message = raised(write(tmp_path, HEADER + "\n"))
    assert "no data rows" in message


# --- field counts -----------------------------------------------------------------------


def test_row_with_too_many_fields(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROW, GOOD_ROW, GOOD_ROW + ",0.9", GOOD_ROW))
    message = raised(path, line=4)
    assert "expected 7 fields" in message and "found 8" in message


def test_row_with_too_few_fields(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROW, "0.1,0.2,0.3,1,0,0"))
    message = raised(path, line=3)
    assert "expected 7 fields" in message and "found 6" in message


def test_line_numbers_count_blank_lines(tmp_path):
    # Line 1 header, 2 good, 3 blank, 4 good, 5 bad: the reported line is the file's line.
    path = write(tmp_path, "\n".join([HEADER, GOOD_ROW, "", GOOD_ROW, "0.1,0.2,1,0,0"]) + "\n")
    raised(path, line=5)


# --- cell contents ----------------------------------------------------------------------


def test_non_numeric_cell(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROW, "0.1,abc,0.3,0.4,1,0,0"))
    message = raised(path, line=3)
    assert "sepal_width" in message and "abc" in message and "not a number" in message


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_cell(tmp_path, cell):
    path = write(tmp_path, csv_text(GOOD_ROW, GOOD_ROW, f"0.1,0.2,{cell},0.4,1,0,0"))
    message = raised(path, line=4)
    assert "petal_length" in message and "not finite" in message


def test_non_finite_label_cell(tmp_path):
    path = write(tmp_path, csv_text("0.1,0.2,0.3,0.4,nan,0,1"))
    message = raised(path, line=2)
    assert "setosa" in message and "not finite" in message


@pytest.mark.parametrize("row", ["0.1,,0.3,0.4,1,0,0", "0.1,  ,0.3,0.4,1,0,0"], ids=["empty", "blank"])
def test_empty_cell(tmp_path, row):
    path = write(tmp_path, csv_text(GOOD_ROW, row))
    message = raised(path, line=3)
    assert "sepal_width" in message and "empty" in message


def test_empty_last_cell(tmp_path):
    path = write(tmp_path, csv_text("0.1,0.2,0.3,0.4,1,0,"))
    message = raised(path, line=2)
    assert "versicolor" in message and "empty" in message


# --- labels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    ["1,1,0", "0,0,0", "0.5,0,0", "0.5,0.5,0", "2,0,0", "-1,1,1"],
    ids=["two-ones", "all-zeros", "half", "halves-sum-to-one", "two", "negative"],
)
def test_label_row_not_one_hot(tmp_path, labels):
    path = write(tmp_path, csv_text(GOOD_ROW, GOOD_ROW, f"0.1,0.2,0.3,0.4,{labels}"))
    message = raised(path, line=4)
    assert "not one-hot" in message
    assert labels in message


def test_label_column_absent_from_header(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROW))
    message = raised(path, line=1, labels=("setosa", "virginica", "versicolour"))
    assert "versicolour" in message


def test_no_labels_named(tmp_path):
    path = write(tmp_path, csv_text(GOOD_ROW))
    raised(path, labels=())


def test_duplicate_header_column(tmp_path):
    path = write(
        tmp_path, csv_text("0.1,0.2,0.3,0.4,1,0,0", header=HEADER.replace("sepal_width", "sepal_length"))
    )
    message = raised(path, line=1)
    assert "sepal_length" in message


def test_only_label_columns(tmp_path):
    path = write(tmp_path, "a,b\n1,0\n")
    raised(path, line=1, labels=("a", "b"))


# --- train and test headers -------------------------------------------------------------


def split_error(train: Path, test: Path) -> str:
    with pytest.raises(DataError) as info:
        load_split(train, test)
    message = str(info.value)
    assert "\n" not in message
    assert f"{test}:1:" in message
    assert str(train) in message
    return message


def test_split_feature_names_differ(tmp_path):
    train = write(tmp_path, csv_text(GOOD_ROW), "train.csv")
    test = write(
        tmp_path, csv_text(GOOD_ROW, header=HEADER.replace("petal_width", "petal_breadth")), "test.csv"
    )
    message = split_error(train, test)
    assert "petal_breadth" in message


def test_split_feature_order_differs(tmp_path):
    train = write(tmp_path, csv_text(GOOD_ROW), "train.csv")
    swapped = "sepal_width,sepal_length,petal_length,petal_width,setosa,virginica,versicolor"
    test = write(tmp_path, csv_text(GOOD_ROW, header=swapped), "test.csv")
    split_error(train, test)


def test_split_reports_the_bad_file(tmp_path):
    train = write(tmp_path, csv_text(GOOD_ROW), "train.csv")
    test = write(tmp_path, csv_text(GOOD_ROW, "0.1,x,0.3,0.4,1,0,0"), "test.csv")
    with pytest.raises(DataError, match=re.escape(f"{test}:3:")):
        load_split(train, test)
    missing = tmp_path / "nothing.csv"
    with pytest.raises(DataError, match=re.escape(f"{missing}: no such file")):
        load_split(train, missing)


# --- the shipped data and good files ----------------------------------------------------


def assert_one_hot(y: np.ndarray) -> None:
    assert np.isin(y, (0.0, 1.0)).all()
    assert_array_equal(y.sum(axis=1), np.ones(len(y)))


def test_shipped_article_data():
    train, test = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    assert train.x.shape == (120, 4) and train.y.shape == (120, 3)
    assert test.x.shape == (30, 4) and test.y.shape == (30, 3)
    for data in (train, test):
        assert data.feature_names == FEATURES
        assert data.class_names == ("setosa", "virginica", "versicolor") == ARTICLE_LABELS
        assert data.x.dtype == np.float64 and data.y.dtype == np.float64
        assert_one_hot(data.y)
    raw = np.loadtxt(DATA_DIR / "train.csv", delimiter=",", skiprows=1)
    assert_array_equal(train.x, raw[:, :4])
    assert_array_equal(train.y, raw[:, 4:])


def test_shipped_data_with_padding_row():
    plain_train, plain_test = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    train, test = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv", padding_row=True)
    assert train.x.shape == (121, 4) and train.y.shape == (121, 3)
    assert test.x.shape == (31, 4) and test.y.shape == (31, 3)
    for padded, plain in ((train, plain_train), (test, plain_test)):
        assert_array_equal(padded.x[-1], np.zeros(4))
        assert_array_equal(padded.y[-1], np.zeros(3))
        assert_array_equal(padded.x[:-1], plain.x)
        assert_array_equal(padded.y[:-1], plain.y)


def test_labels_choose_label_columns(tmp_path):
    path = write(tmp_path, "a,b,f1,f2,f3\n0,1,1.5,2.5,3.5\n1,0,4,5,6\n")
    data = load_dataset(path, labels=("a", "b"))
    assert data.feature_names == ("f1", "f2", "f3")
    assert data.class_names == ("a", "b")
    assert_array_equal(data.x, [[1.5, 2.5, 3.5], [4.0, 5.0, 6.0]])
    assert_array_equal(data.y, [[0, 1], [1, 0]])


def test_labels_order_sets_class_order(tmp_path):
    path = write(tmp_path, "f1,a,f2,b\n7,0,8,1\n9,1,10,0\n")
    data = load_dataset(path, labels=("b", "a"))
    assert data.feature_names == ("f1", "f2")
    assert data.class_names == ("b", "a")
    assert_array_equal(data.x, [[7, 8], [9, 10]])
    assert_array_equal(data.y, [[1, 0], [0, 1]])


def test_blank_lines_and_header_spaces_are_tolerated(tmp_path):
    path = write(tmp_path, " f1 , a , b \n\n1,1,0\n\n2,0,1\n")
    data = load_dataset(path, labels=("a", "b"))
    assert data.feature_names == ("f1",)
    assert_array_equal(data.x, [[1], [2]])
    assert_array_equal(data.y, [[1, 0], [0, 1]])


def test_the_c_parser_reads_the_article_files_as_the_strict_reader(monkeypatch):
    strict = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    monkeypatch.setattr(dataset, "_read_rows", None)  # the strict reader is not needed
    fast = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    for a, b in zip(fast, strict):
        assert_array_equal(a.x, b.x)
        assert_array_equal(a.y, b.y)
        assert (a.feature_names, a.class_names) == (b.feature_names, b.class_names)
    x, y = load_features(DATA_DIR / "test.csv", FEATURES[::-1], ARTICLE_LABELS)
    assert_array_equal(x, strict[1].x[:, ::-1])
    assert_array_equal(y, strict[1].y)


@pytest.mark.parametrize("cell", ["True", "false"])
def test_true_and_false_are_not_numbers(tmp_path, cell):
    # pandas' C parser reads them as 1 and 0: the strict reader decides.
    path = write(tmp_path, csv_text(GOOD_ROW, f"0.1,{cell},0.3,0.4,1,0,0"))
    assert f"{cell!r} is not a number" in raised(path, line=3)


# --- rows to classify, labelled by a raw table's class column -----------------------------

WINE_FEATURES = ("alcohol", "proline")
WINE_CLASSES = ("class_0", "class_1", "class_2")


def features_raised(path: Path, label: str | None, line: int) -> str:
    with pytest.raises(DataError) as info:
        load_features(path, WINE_FEATURES, WINE_CLASSES, label)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:{line}: ")
    return message


def test_rows_to_classify_take_their_labels_from_the_tables_class_column(tmp_path):
    # As the table was written: the class by name, between the features, padded by a space.
    named = write(tmp_path, "proline,class,alcohol\n1065,class_2,14.2\n520, class_0 ,13.1\n", "named.csv")
    x, y = load_features(named, WINE_FEATURES, WINE_CLASSES, "class")
    assert_array_equal(x, [[14.2, 1065], [13.1, 520]])
    assert_array_equal(y, [[0, 0, 1], [1, 0, 0]])
    # The same rows with the class columns, one-hot: the same labels.
    onehot = write(tmp_path, "alcohol,proline,class_0,class_1,class_2\n14.2,1065,0,0,1\n13.1,520,1,0,0\n")
    assert_array_equal(load_features(onehot, WINE_FEATURES, WINE_CLASSES, "class")[1], y)
    # Without the column: features only.
    bare = write(tmp_path, "alcohol,proline\n14.2,1065\n", "bare.csv")
    assert load_features(bare, WINE_FEATURES, WINE_CLASSES, "class")[1] is None


def test_a_class_column_holds_the_runs_classes_only_and_labels_come_once(tmp_path):
    path = write(tmp_path, "alcohol,proline,class\n14.2,1065,class_2\n13.1,520,class_9\n")
    message = features_raised(path, "class", line=3)
    assert "column 'class': 'class_9' is not a class of the run (class_0, class_1, class_2)" in message
    both = "alcohol,proline,class,class_0,class_1,class_2\n14.2,1065,class_2,0,0,1\n"
    both = write(tmp_path, both, "both.csv")
    assert "labels twice, in column 'class' and in column 'class_0'" in features_raised(both, "class", line=1)
    # A run on one-hot columns has no class column: the column is unknown, and said so.
    unknown = features_raised(path, None, line=1)
    assert "unknown column 'class'" in unknown and "by name" not in unknown
    assert "or by name in a column 'species'" in features_raised(path, "species", line=1)


def test_rows_to_classify_in_another_separator_are_named_as_such(tmp_path):
    path = write(tmp_path, "proline;class;alcohol\n1065;class_2;14.2\n", "semicolons.csv")
    assert "is the file separated by ';'?" in features_raised(path, "class", 1)


# --- a byte-order mark, and values beyond the training dtype ------------------------------


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, monkeypatch):
    # Excel's "CSV UTF-8" starts the file with one; the first column is still its name.
    from gophernet_jax.splits import load_table

    text = "species,f1,f2\n" + "".join(f"{c},{i},{i % 3}\n" for i, c in enumerate("aabbcc"))
    plain, marked = write(tmp_path, text, "plain.csv"), tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode())
    for readers in ("fast", "strict"):
        if readers == "strict":  # the C parser declines; the strict reader reads it alone
            monkeypatch.setattr(dataset, "fast_read", lambda *a, **k: None)
        table, expected = load_table(marked, "species"), load_table(plain, "species")
        assert table.class_names == expected.class_names == ("a", "b", "c")
        assert table.feature_names == ("f1", "f2")
        assert_array_equal(table.x, expected.x)
        x, y = load_features(marked, ("f2", "f1"), ("a", "b", "c"), "species")
        assert_array_equal(x, expected.x[:, ::-1])
        assert_array_equal(np.argmax(y, axis=1), expected.labels)


def range_raised(path: Path, names, dtype: str, **kwargs) -> str:
    x = load_dataset(path, labels=("a", "b")).x
    with pytest.raises(DataError) as info:
        dataset.check_range(path, x, names, dtype, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_value_beyond_the_dtype_names_its_line_and_column(tmp_path):
    # 1e39 is a finite float64 but inf as float32: every seed would diverge on it.
    path = write(tmp_path, "f1,f2,a,b\n1,2,1,0\n\n3,-1e39,0,1\n5,6,1,0\n")
    names = ("f1", "f2")
    message = range_raised(path, names, "float32")
    assert message == (
        f"{path}:4: column 'f2': -1e+39 is beyond float32's range (±3.403e+38); train.dtype=float64 holds it"
    )
    x = load_dataset(path, labels=("a", "b")).x
    dataset.check_range(path, x, names, "float64")  # float64 holds it
    dataset.check_range(path, np.array([[3.4028234e38, 1.0]]), names, "float32")  # the largest float32


def test_a_column_whose_span_the_dtype_cannot_hold_is_named_with_both_ends(tmp_path):
    # Each value fits float32, their difference does not: min-max scaling would divide by inf.
    path = write(tmp_path, "f1,f2,a,b\n1,3e38,1,0\n2,0,0,1\n3,-2e38,1,0\n")
    x = load_dataset(path, labels=("a", "b")).x
    dataset.check_range(path, x, ("f1", "f2"), "float32")  # only the spans are too wide
    message = range_raised(path, ("f1", "f2"), "float32", spans=True)
    assert message.startswith(f"{path}:2: column 'f2': from -2e+38 (line 4) to 3e+38 its values span")
    assert message.endswith("which min-max scaling divides by; train.dtype=float64 holds it")
    dataset.check_range(path, x, ("f1", "f2"), "float64", spans=True)
