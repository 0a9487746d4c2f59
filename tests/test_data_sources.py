"""Raw tables through the CLI and the API: iris and wine, seed sources, the variance grid."""

import json
import logging

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import conftest
from conftest import command, run_job, settings_of
from gophernet_jax import Sizes, forward, train_population
from gophernet_jax.config import DATA_DIR
from gophernet_jax.job import load_data
from gophernet_jax.predict import main as predict_main
from gophernet_jax.splits import load_table, make_split
from gophernet_jax.store import inputs_for, load_run
from gophernet_jax.training import RawSplits, draw_key, seed_indices


def cli(tmp_path, *args, folder="run"):
    return conftest.cli(tmp_path, *args, run_dir=tmp_path / folder)


@pytest.mark.slow
def test_wine_trains_with_13_inputs_and_reports_its_spread(tmp_path):
    done = cli(tmp_path, "data=wine", "seeds.count=12", "train.epochs=200")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("test accuracy over 12 seeds (36 test rows each)")
    run = load_run(tmp_path / "run")
    assert run.params.w_hidden.shape == (12, 13, 3) and run.params.w_out.shape == (12, 3, 3)
    assert run.class_names == ("class_0", "class_1", "class_2")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_rows"] == 142 and summary["test_rows"] == 36
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(results.columns[:4]) == ["seed", "init_seed", "split_seed", "noise_seed"]
    assert (results["split_seed"] == 0).all() and list(results["init_seed"]) == list(range(12))


@pytest.mark.slow
def test_varying_the_split_gives_each_seed_its_own_split(tmp_path):
    args = ["data=iris", "seeds.count=8", "seeds.vary=[split]", "train.epochs=300"]
    run_job(tmp_path / "run", *args)
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(results["split_seed"]) == list(range(8)) and (results["init_seed"] == 0).all()
    assert results["test_accuracy"].nunique() > 1  # the splits differ, so do the scores
    run_job(tmp_path / "again", *args)
    pd.testing.assert_frame_equal(results, pd.read_csv(tmp_path / "again" / "results.csv"))
    run_job(tmp_path / "other", *args, "data.split_seed=1")
    assert not pd.read_csv(tmp_path / "other" / "results.csv")["final_loss"].equals(results["final_loss"])


@pytest.mark.slow
def test_variance_grid_components_add_up_and_name_the_dominant_source(tmp_path):
    done = cli(tmp_path, "+sweep=variance", "seeds.grid={split: 4, init: 10}", "train.epochs=300")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    variance = summary["variance"]
    assert variance["levels"] == {"split": 4, "init": 10}
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(results["split_seed"][:12]) == [0] * 10 + [1] * 2
    grid = results["test_accuracy"].to_numpy().reshape(4, 10)
    effects = variance["effects"]
    parts = [effects[s]["variance"] for s in ("split", "init", "split×init")]
    assert sum(parts) == pytest.approx(np.var(grid, ddof=1), rel=1e-9)
    assert variance["dominant"] == max(effects, key=lambda e: effects[e]["share"])
    assert variance["sentence"] in done.stdout
    assert summary["ensemble"] is None  # seeds were tested on different rows
    image = matplotlib.image.imread(tmp_path / "run" / "variance.png")
    assert image.ndim == 3 and image.std() > 0.01


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, key",
    [
        (["seeds.vary=[split]"], "seeds.vary"),
        (["data=iris", "seeds.vary=[nope]"], "seeds.vary"),
        (["data=iris", "seeds.count=10", "seeds.splits=3"], "seeds.splits"),
        (["data=iris", "data.test_fraction=1.5"], "data.test_fraction"),
        (["data=iris", "data.noise=-1"], "data.noise"),
        (["data=iris", "data.label=petal"], "'petal'"),
        (["data.path=missing.csv", "data.label=x"], "missing.csv"),
    ],
)
def test_bad_raw_data_settings_fail_in_one_line(tmp_path, args, key):
    done = cli(tmp_path, *args, "train.epochs=5")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in done.stderr


@pytest.mark.slow
def test_any_csv_with_one_hot_labels(tmp_path):
    table = load_table(DATA_DIR / "iris.csv", "species")
    frame = pd.DataFrame(table.x, columns=table.feature_names)
    for i, name in enumerate(table.class_names):
        frame[f"is_{name}"] = (table.labels == i).astype(int)
    frame.to_csv(tmp_path / "mine.csv", index=False)
    labels = "[" + ",".join(f"is_{n}" for n in table.class_names) + "]"
    done = cli(tmp_path, "data.path=mine.csv", f"data.label={labels}", "seeds.count=4", "train.epochs=50")
    assert done.returncode == 0, done.stderr
    assert load_run(tmp_path / "run").class_names == tuple(f"is_{n}" for n in table.class_names)


def test_seed_indices_follow_the_named_sources():
    assert_array_equal(seed_indices(4)["init"], [0, 1, 2, 3])
    assert_array_equal(seed_indices(4)["split"], [0, 0, 0, 0])
    both = seed_indices(4, ("init", "split"))
    assert_array_equal(both["init"], both["split"])
    grid = seed_indices(6, grid={"split": 2, "init": 3})
    assert_array_equal(grid["split"], [0, 0, 0, 1, 1, 1])
    assert_array_equal(grid["init"], [0, 1, 2, 0, 1, 2])
    assert_array_equal(grid["noise"], [0] * 6)
    three = seed_indices(8, grid={"split": 2, "init": 2, "order": 2})
    cells = set(zip(three["split"], three["init"], three["order"]))
    assert len(cells) == 8  # every combination once: a full factorial design
    assert_array_equal(three["order"], [0, 1] * 4)


def test_population_on_its_own_splits_equals_training_on_each_split(x64):
    """Seed 3 of a split-varying population is seed 3 trained on split 3, to rounding."""
    table = load_table(DATA_DIR / "iris.csv", "species")
    keys = draw_key("split", 5, 3), draw_key("noise", 0, 0)
    split = make_split(table, *keys, dtype="float64")
    raw = RawSplits(table, split_seed=5)
    kw = dict(epochs=5, learning_rate=0.3, dtype="float64")
    shared = train_population(0, 4, Sizes(4, 3, 3), split[:2], split[2:4], **kw)
    own = train_population(0, 4, Sizes(4, 3, 3), None, None, raw=raw, vary=("init", "split"), **kw)
    for a, b in zip(jax.tree.leaves(shared.params), jax.tree.leaves(own.params)):
        assert_allclose(a[3], b[3], rtol=1e-12)
        assert not np.allclose(a[2], b[2])  # seed 2 had another split
    assert float(jnp.abs(shared.test_accuracy[3] - own.test_accuracy[3])) == 0.0


@pytest.mark.slow
def test_predict_scales_raw_rows_as_in_training(tmp_path):
    done = cli(tmp_path, "data=iris", "seeds.count=4", "train.epochs=300")
    assert done.returncode == 0, done.stderr
    table = load_table(DATA_DIR / "iris.csv", "species")
    pd.DataFrame(table.x[:20], columns=table.feature_names).to_csv(tmp_path / "raw.csv", index=False)
    out = tmp_path / "pred.csv"
    predict = ["-m", "gophernet_jax.predict", tmp_path / "run", "raw.csv", "--seed", "2", "--out", out]
    predicted = command(*predict, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    # The run's split 0, scaled by its training rows, independently of the run's files.
    keys = draw_key("split", 0, 0), draw_key("noise", 0, 0)
    train_rows = table.x[np.asarray(make_split(table, *keys).train_idx)]
    low, high = train_rows.min(axis=0), train_rows.max(axis=0)
    run = load_run(tmp_path / "run")
    params = jax.tree.map(lambda a: a[2], run.params)
    x = jnp.asarray((table.x[:20] - low) / (high - low), jnp.float32)
    want = [run.class_names[i] for i in np.argmax(np.asarray(forward(params, x)), axis=1)]
    assert list(pd.read_csv(out)["predicted"]) == want
    assert "warning" not in predicted.stderr
    # The article's test.csv has the same columns, scaled already: scaled again, every row
    # lands far below the training rows' range, and the run says so (and still predicts).
    scaled = command("-m", "gophernet_jax.predict", tmp_path / "run", DATA_DIR / "test.csv", cwd=tmp_path)
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stderr.startswith(f"warning: 30 of 30 rows of {DATA_DIR / 'test.csv'} have a feature ")
    assert scaled.stderr.rstrip().endswith("are these scaled already?")


@pytest.mark.slow
def test_predict_refuses_a_run_whose_seeds_had_different_splits(tmp_path):
    done = cli(tmp_path, "data=iris", "seeds.count=4", "seeds.vary=[split]", "train.epochs=20")
    assert done.returncode == 0, done.stderr
    table = load_table(DATA_DIR / "iris.csv", "species")
    pd.DataFrame(table.x[:5], columns=table.feature_names).to_csv(tmp_path / "raw.csv", index=False)
    refused = command("-m", "gophernet_jax.predict", tmp_path / "run", "raw.csv", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "different splits" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_constant_column_trains_scales_to_zero_and_predicts(tmp_path, capsys, caplog, monkeypatch):
    # Iris with a column `lamp` of 3.0 on every row, between the measurements.
    table = load_table(DATA_DIR / "iris.csv", "species")
    frame = pd.DataFrame(table.x, columns=table.feature_names)
    frame.insert(2, "lamp", 3.0)
    frame["species"] = np.asarray(table.class_names)[table.labels]
    frame.to_csv(tmp_path / "lamp.csv", index=False)
    args = (f"data.path={tmp_path / 'lamp.csv'}", "data.label=species", "seeds.count=4", "train.epochs=20")
    with caplog.at_level(logging.INFO):
        summary = run_job(tmp_path / "run", *args)
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("note:")]
    assert notes == ["note: 1 constant feature column scales to 0: lamp (one value on every row of lamp.csv)"]
    run = load_run(tmp_path / "run")
    assert run.scaling["min"][2] == 3.0 and run.scaling["span"][2] == 1.0
    data = load_data(settings_of(*args))
    assert_array_equal(data.train_set.x[:, 2], 0.0)
    assert_array_equal(data.test_set.x[:, 2], 0.0)
    # predict on the test part's raw rows scales them as training did, and scores them as the run did.
    keys = draw_key("split", 0, 0), draw_key("noise", 0, 0)
    raw = load_table(tmp_path / "lamp.csv", "species")
    test_idx = np.asarray(jax.jit(lambda k, n: make_split(raw, k, n))(*keys).test_idx)
    assert_array_equal(inputs_for(run, raw.x[test_idx]), data.test_set.x)  # bit for bit
    rows = frame.iloc[test_idx].drop(columns="species")
    for c, name in enumerate(raw.class_names):
        rows[name] = (raw.labels[test_idx] == c).astype(int)
    rows.to_csv(tmp_path / "raw_test.csv", index=False)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert predict_main([str(tmp_path / "run"), "raw_test.csv"]) == 0
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("accuracy "))
    assert printed.startswith(f"accuracy {summary['ensemble']['accuracy']['mean_output']:.4f} ")


@pytest.mark.slow
def test_seeds_with_their_own_splits_train_on_a_column_constant_on_some_of_them(tmp_path):
    # `lamp` is 3.0 except on one row: constant on the training rows of the splits that hold it out.
    table = load_table(DATA_DIR / "iris.csv", "species")
    frame = pd.DataFrame(table.x, columns=table.feature_names)
    frame["lamp"] = np.where(np.arange(len(frame)) == 0, 7.0, 3.0)
    frame["species"] = np.asarray(table.class_names)[table.labels]
    frame.to_csv(tmp_path / "lamp.csv", index=False)
    args = (f"data.path={tmp_path / 'lamp.csv'}", "data.label=species", "seeds.count=8", "train.epochs=20")
    run_job(tmp_path / "run", *args, "seeds.vary=[init,split]")
    raw = load_table(tmp_path / "lamp.csv", "species")
    split_of = jax.jit(lambda k: make_split(raw, k).test_idx)
    held_out = [0 in np.asarray(split_of(draw_key("split", 0, i))) for i in range(8)]
    assert any(held_out) and not all(held_out)
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert results["test_accuracy"].notna().all() and (results["test_accuracy"] > 0).all()
    params = load_run(tmp_path / "run").params
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(params))


def test_a_value_the_runs_dtype_cannot_hold_stops_before_training(tmp_path, x64):
    # 1e39 is inf in float32: every seed would diverge on it, and the curves had nothing to draw.
    from gophernet_jax.dataset import DataError

    lines = (DATA_DIR / "iris.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[10].split(",")
    cells[0] = "1e39"
    (tmp_path / "big.csv").write_text("\n".join([*lines[:10], ",".join(cells), *lines[11:]]) + "\n")
    args = (f"data.path={tmp_path / 'big.csv'}", "data.label=species")
    with pytest.raises(DataError) as error:
        load_data(settings_of(*args))
    assert str(error.value) == (
        f"{tmp_path / 'big.csv'}:11: column {header[0]!r}: 1e+39 is beyond float32's range (±3.403e+38); "
        "train.dtype=float64 holds it"
    )
    assert load_data(settings_of(*args, "train.dtype=float64")).train_set.x.dtype == np.float64
    # the article's files are checked the same way
    train = (DATA_DIR / "train.csv").read_text().splitlines()
    train[3] = "1e39" + train[3][train[3].index(",") :]
    (tmp_path / "train.csv").write_text("\n".join(train) + "\n")
    with pytest.raises(DataError, match=r"train\.csv:4: column 'sepal_length': 1e\+39 is beyond float32's"):
        load_data(settings_of(f"data.train={tmp_path / 'train.csv'}"))


@pytest.mark.slow
def test_a_label_list_of_one_column_is_that_column_and_predict_reads_it(tmp_path, monkeypatch, capsys):
    # `data.label=[species]` trained on the class column by name; predict then refused the
    # same column in the rows to classify ("unknown column 'species'").
    settings = settings_of("data=iris", "data.label=[species]")
    assert settings.data.label == "species"
    run_job(tmp_path / "run", "data=iris", "data.label=[species]", "seeds.count=2", "train.epochs=5")
    monkeypatch.chdir(tmp_path)
    assert predict_main([str(tmp_path / "run"), str(DATA_DIR / "iris.csv")]) == 0
    assert "on 150 labelled rows" in capsys.readouterr().out


@pytest.mark.parametrize(
    "override, key, twice",
    [
        ("data.label=[species,species]", "data.label", "species"),
        ("data.labels=[setosa,virginica,setosa]", "data.labels", "setosa"),
    ],
)
def test_a_column_named_twice_is_one_line_naming_it(override, key, twice):
    # `[species,species]` was read as two one-hot columns: "labels are not one-hot: 0,0".
    from gophernet_jax.config import ConfigError

    data = ["data=iris"] if key == "data.label" else []
    with pytest.raises(ConfigError) as error:
        settings_of(*data, override)
    assert str(error.value) == f"config key {key}: column {twice!r} is named twice"
