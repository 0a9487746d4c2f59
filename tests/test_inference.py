"""Using what was trained: the save/load round trip, predictions of one seed or of the whole
population (API and `python -m gophernet_jax.predict`), the ensemble report, tied rows under
both tie rules, and raw rows scaled as in training."""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from omegaconf import OmegaConf

from conftest import Done, assert_ok, cli, command
from gophernet_jax import (
    Params,
    Sizes,
    TrainedRun,
    best_seed,
    ensemble_report,
    forward,
    init_params,
    load_features,
    load_run,
    predict_ensemble,
    predict_seed,
    train,
    train_population,
)
from gophernet_jax.config import DATA_DIR, Config
from gophernet_jax.dataset import DataError
from gophernet_jax.inference import SeedError, format_ensemble, seed_correct
from gophernet_jax.job import load_data
from gophernet_jax.predict import main as predict_main
from gophernet_jax.splits import Table, load_table, make_split, minmax_fit
from gophernet_jax.store import class_column, inputs_for, run_ties, save_run

SEEDS, EPOCHS = 20, 200
TRAINING = ["+sweep=seeds", f"seeds.count={SEEDS}", f"train.epochs={EPOCHS}"]
TEST_CSV, TRAIN_CSV = DATA_DIR / "test.csv", DATA_DIR / "train.csv"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CLASSES = ("setosa", "virginica", "versicolor")


@jax.jit
def ensemble_outputs(params: Params, x: jax.Array) -> jax.Array:
    """Every seed's outputs, (seeds, rows, classes); `x` is cast to the params' dtype."""
    x = jnp.asarray(x, params.w_hidden.dtype)
    return jax.vmap(forward, in_axes=(0, None))(params, x)


def python(*args: str, cwd: Path) -> Done:
    return command(*args, cwd=cwd)


def predict(*args: str, cwd: Path) -> Done:
    return python("-m", "gophernet_jax.predict", *map(str, args), cwd=cwd)


def cli_main(capsys, *args) -> str:
    assert predict_main([*map(str, args)]) == 0
    return capsys.readouterr().out


def seed_params(params: Params, i: int) -> Params:
    return jax.tree.map(lambda p: p[i], params)


def numpy_correct(outputs: np.ndarray, y: np.ndarray, ties: str = "strict") -> np.ndarray:
    """`model.correct` again: the true class's output is the row maximum, and under "strict"
    no other class's output equals it."""
    truth = outputs[np.arange(len(y)), np.argmax(y, axis=1)]
    top = outputs.max(axis=1)
    return (truth == top) & ((outputs == top[:, None]).sum(axis=1) == 1 if ties == "strict" else True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One 20-seed training run of the real CLI, shared by the module; its output folder."""
    where = tmp_path_factory.mktemp("trained")
    proc = python("-m", "gophernet_jax", *TRAINING, f"hydra.run.dir={where / 'run'}", cwd=where)
    assert_ok(proc)
    assert f"ensemble of {SEEDS} seeds: accuracy" in proc.stdout
    return where / "run"


@pytest.fixture(scope="module")
def run(trained) -> TrainedRun:
    return load_run(trained)


@pytest.fixture(scope="module")
def test_set():
    return load_features(TEST_CSV, FEATURES, CLASSES)


@pytest.fixture(scope="module")
def seed_outputs(run, test_set) -> np.ndarray:
    """Every loaded seed's outputs on the test set, one `forward` call per seed."""
    x = jnp.asarray(test_set[0], run.params.w_hidden.dtype)
    return np.stack([np.asarray(forward(seed_params(run.params, i), x)) for i in range(SEEDS)])


# --- the round trip ---------------------------------------------------------------------


@pytest.mark.slow
def test_run_holds_every_seed_and_its_config(run):
    assert run.params.w_hidden.shape == (SEEDS, 4, 3)
    assert run.params.b_out.shape == (SEEDS, 3)
    assert all(p.dtype == np.float32 for p in jax.tree.leaves(run.params))
    assert_array_equal(run.seeds, np.arange(SEEDS))
    assert (run.feature_names, run.class_names) == (FEATURES, CLASSES)
    assert run.config["seeds"]["count"] == SEEDS
    assert run.config["train"]["epochs"] == EPOCHS


@pytest.mark.slow
def test_loaded_accuracies_equal_results_csv(trained, run, test_set):
    results = pd.read_csv(trained / "results.csv")
    x, y = test_set
    # Counts of correct rows: exact whether the file lists float32 accuracies or exact fractions.
    assert_array_equal(seed_correct(run.params, x, y), np.round(results["test_accuracy"] * 30))
    train_x, train_y = load_features(TRAIN_CSV, FEATURES, CLASSES)
    assert_array_equal(seed_correct(run.params, train_x, train_y), np.round(results["train_accuracy"] * 120))
    assert_allclose(results["test_accuracy"], np.asarray(seed_correct(run.params, x, y)) / 30, rtol=1e-7)


@pytest.mark.slow
def test_loaded_run_predicts_as_the_training_process_bit_for_bit(run, article_data, test_set):
    # Retrain in this process from the saved config alone: same seeds, same numbers.
    cfg = run.config
    train_set, article_test = article_data
    population = train_population(
        cfg["seeds"]["base"],
        cfg["seeds"]["count"],
        Sizes(len(run.feature_names), cfg["model"]["hidden"], len(run.class_names)),
        (train_set.x, train_set.y),
        (article_test.x, article_test.y),
        epochs=cfg["train"]["epochs"],
        learning_rate=cfg["optimizer"]["learning_rate"],
        rule=cfg["train"]["rule"],
        optimizer=cfg["optimizer"]["name"],
        dtype=cfg["train"]["dtype"],
        chunk_size=cfg["train"]["chunk_size"],
    )
    for loaded, retrained in zip(jax.tree.leaves(run.params), jax.tree.leaves(population.params)):
        assert_array_equal(loaded, np.asarray(retrained))
    x = test_set[0]
    assert_array_equal(ensemble_outputs(run.params, x), ensemble_outputs(population.params, x))
    for seed in (0, 3, SEEDS - 1):
        want = forward(seed_params(population.params, seed), jnp.asarray(x, jnp.float32))
        assert_array_equal(predict_seed(run, x, seed).mean_output, want)
        assert_array_equal(forward(seed_params(run.params, seed), jnp.asarray(x, jnp.float32)), want)


# --- the API ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_on_the_article_files_has_no_class_column(run):
    # Its labels are the one-hot columns setosa, virginica, versicolor: none holds names.
    assert class_column(run) is None


@pytest.mark.slow
def test_predict_seed_is_the_argmax_of_forward(run, test_set, seed_outputs):
    prediction = predict_seed(run, test_set[0], 3)
    assert_array_equal(prediction.mean_output, seed_outputs[3])
    assert not np.asarray(prediction.tied).any()  # so its class is the argmax on every row
    assert_array_equal(prediction.predicted, np.argmax(seed_outputs[3], axis=1))
    assert_array_equal(prediction.vote, prediction.predicted)
    assert_array_equal(prediction.agreement, np.ones(30, np.float32))
    assert prediction.mean_output.dtype == jnp.float32


@pytest.mark.slow
def test_predict_ensemble_matches_numpy(run, test_set, seed_outputs):
    prediction = predict_ensemble(run, test_set[0])
    mean_output = seed_outputs.astype(np.float64).mean(axis=0)
    assert_allclose(prediction.mean_output, mean_output, rtol=1e-5)
    assert prediction.mean_output.dtype == prediction.agreement.dtype == jnp.float32
    predicted = np.argmax(mean_output, axis=1)
    assert_array_equal(prediction.predicted, predicted)
    own = np.argmax(seed_outputs, axis=2)  # (seeds, rows)
    votes = np.stack([np.sum(own == c, axis=0) for c in range(3)], axis=1)
    assert_array_equal(prediction.vote, np.argmax(votes, axis=1))
    assert_allclose(prediction.agreement, votes[np.arange(30), predicted] / SEEDS, rtol=1e-6)
    assert_allclose(prediction.vote_share.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.slow
def test_ensemble_leaves_out_diverged_seeds(run, test_set):
    x = test_set[0]
    broken = run._replace(params=run.params._replace(w_out=run.params.w_out.copy()))
    broken.params.w_out[5, 0, 0] = np.nan
    rest = np.arange(SEEDS) != 5
    healthy = run._replace(params=jax.tree.map(lambda p: p[rest], run.params), seeds=run.seeds[rest])
    got, want = predict_ensemble(broken, x), predict_ensemble(healthy, x)
    assert np.isfinite(got.mean_output).all()
    assert_array_equal(got.predicted, want.predicted)
    assert_allclose(got.mean_output, want.mean_output, rtol=1e-6)
    assert ensemble_report(broken.params, *test_set)["members"] == SEEDS - 1
    nothing = run._replace(params=jax.tree.map(lambda p: np.full_like(p, np.nan), run.params))
    with pytest.raises(SeedError, match="finite"):
        predict_ensemble(nothing, x)
    # one diverged seed on its own predicts nothing: no class 0 from argmax of NaN
    with pytest.raises(SeedError, match=r"^seed 5 diverged in training \(its parameters are not finite\)"):
        predict_seed(broken, x, 5)
    assert_array_equal(predict_seed(broken, x, 4).predicted, predict_seed(run, x, 4).predicted)


@pytest.mark.slow
def test_best_seed_is_the_most_accurate_and_ties_go_low(trained, run, test_set):
    x, y = load_features(TRAIN_CSV, FEATURES, CLASSES)
    train_acc = pd.read_csv(trained / "results.csv")["train_accuracy"].to_numpy()
    assert best_seed(run, x, y) == int(np.argmax(train_acc))  # argmax: the first of the best
    best, worst = int(np.argmax(train_acc)), int(np.argmin(train_acc))
    assert train_acc[best] > train_acc[worst]
    order = np.array([worst, best, best])
    twins = TrainedRun(jax.tree.map(lambda p: p[order], run.params), np.arange(3), FEATURES, CLASSES, {})
    assert best_seed(twins, x, y) == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [SEEDS, -1])
def test_predict_seed_out_of_range(run, test_set, seed):
    with pytest.raises(SeedError, match=rf"seed {seed} is not in the run: it has seeds 0\.\.{SEEDS - 1}"):
        predict_seed(run, test_set[0], seed)


@pytest.mark.slow
def test_float64_params_predict_in_float64(run, test_set, x64):
    wide = run._replace(params=jax.tree.map(lambda p: p.astype(np.float64), run.params))
    assert predict_ensemble(wide, test_set[0]).mean_output.dtype == jnp.float64
    assert predict_seed(wide, test_set[0], 0).agreement.dtype == jnp.float64


@pytest.mark.slow
def test_float64_params_need_x64(run, test_set):
    wide = run._replace(params=jax.tree.map(lambda p: p.astype(np.float64), run.params))
    assert not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="jax_enable_x64"):
        predict_ensemble(wide, test_set[0])


@pytest.mark.slow
def test_ensemble_report_in_summary(trained, test_set, seed_outputs):
    report = json.loads((trained / "summary.json").read_text())["ensemble"]
    _, y = test_set
    mean_correct = numpy_correct(seed_outputs.astype(np.float64).mean(axis=0), y)
    assert report["members"] == SEEDS and report["rows"] == 30
    assert report["accuracy"]["mean_output"] == mean_correct.sum() / 30
    seed_acc = np.array([numpy_correct(o, y).sum() for o in seed_outputs]) / 30
    assert_allclose(report["single_seed"]["mean"], seed_acc.mean(), rtol=1e-12)
    assert report["single_seed"]["max"] == seed_acc.max()
    standing = report["mean_output_vs_seeds"]
    assert standing["beats"] == np.mean(seed_acc < report["accuracy"]["mean_output"])
    assert standing["beats_or_ties"] == np.mean(seed_acc <= report["accuracy"]["mean_output"])
    ensemble_acc = report["accuracy"]["mean_output"]
    want = 100 * np.mean(seed_acc < ensemble_acc) + 50 * np.mean(seed_acc == ensemble_acc)
    assert_allclose(standing["percentile"], want, rtol=1e-12)
    own = np.argmax(seed_outputs, axis=2)
    agreement = np.mean(own == np.argmax(seed_outputs.mean(axis=0), axis=1), axis=0)
    assert_allclose(report["agreement"]["per_row"], agreement, rtol=1e-12)
    assert report["agreement"]["unanimous_rows"] == int(np.sum(agreement == 1))
    assert report["agreement"]["min"] == agreement.min()


def test_load_features_matches_columns_by_name(tmp_path):
    frame = pd.read_csv(TEST_CSV)
    shuffled = tmp_path / "shuffled.csv"
    order = [FEATURES[3], CLASSES[2], FEATURES[0], CLASSES[0], FEATURES[2], CLASSES[1], FEATURES[1]]
    frame[order].to_csv(shuffled, index=False)
    x, y = load_features(shuffled, FEATURES, CLASSES)
    assert_array_equal(x, frame[list(FEATURES)].to_numpy())
    assert_array_equal(y, frame[list(CLASSES)].to_numpy())
    unlabelled = tmp_path / "unlabelled.csv"
    frame[list(FEATURES)].to_csv(unlabelled, index=False)
    x, y = load_features(unlabelled, FEATURES, CLASSES)
    assert y is None and x.shape == (30, 4)
    partial = tmp_path / "partial.csv"
    frame[[*FEATURES, "setosa"]].to_csv(partial, index=False)
    with pytest.raises(DataError, match=r"label column 'virginica'"):
        load_features(partial, FEATURES, CLASSES)


# --- ties: one rule everywhere a row is scored ------------------------------------------

ROW_A, ROW_B = -1000.0, 1000.0  # the two kinds of row of a designed population


def designed(logits_a, logits_b, dtype=np.float32) -> Params:
    """Seeds (1 feature, 1 hidden unit) whose outputs are sigmoid(logits_a) on rows x = ROW_A
    and sigmoid(logits_b) on rows x = ROW_B: the hidden unit is exactly 0 or 1 there, so
    small integer logits give exactly tied outputs."""
    a, b = np.asarray(logits_a, dtype), np.asarray(logits_b, dtype)  # (seeds, classes)
    seeds = a.shape[0]
    return Params(np.ones((seeds, 1, 1), dtype), np.zeros((seeds, 1), dtype), (b - a)[:, None, :], a)


def designed_run(params: Params, config: dict | None = None) -> TrainedRun:
    return TrainedRun(params, np.arange(params.b_out.shape[0]), ("f",), CLASSES, config or {})


def labelled(kinds: str, labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[ROW_A if kind == "A" else ROW_B] for kind in kinds], np.float32)
    return x, np.eye(3, dtype=np.float32)[labels]


# Three seeds. Row A: seed 0 says class 0, seed 1 class 1, seed 2 ties 0 and 1 (no vote):
# the mean output ties 0 and 1, and so does the vote (1 each). Row B: seeds 0 and 1 say 0,
# seed 2 says 1 firmly enough that the mean output says 1, while the vote says 0.
TRIO = designed([[1, 0, -5], [0, 1, -5], [0, 0, -5]], [[1, 0, -5], [1, 0, -5], [0, 4, -5]])
TRIO_ROWS = labelled("AABB", [0, 2, 0, 1])


def test_one_seed_that_ties_predicts_no_class_and_scores_by_the_rule():
    run = designed_run(designed([[0, 0, -5]], [[2, 0, -5]]))  # ties 0 and 1 on A; says 0 on B
    x, y = labelled("AAB", [0, 2, 0])
    prediction = predict_seed(run, x, 0)
    assert_array_equal(prediction.predicted, [-1, -1, 0])  # not silently class 0 on the tied rows
    assert_array_equal(prediction.tied, [True, True, False])
    assert_array_equal(prediction.vote, prediction.predicted)
    assert_array_equal(prediction.vote_tied, prediction.tied)
    assert_array_equal(prediction.vote_share, [[0, 0, 0], [0, 0, 0], [1, 0, 0]])
    # Row 0's true class is among the tied; row 1's is not.
    assert int(seed_correct(run.params, x, y)[0]) == 1
    assert int(seed_correct(run.params, x, y, "article")[0]) == 2


def test_ensemble_ties_are_no_class_and_score_by_the_rule():
    x, y = TRIO_ROWS
    prediction = predict_ensemble(designed_run(TRIO), x)
    mean_output = np.asarray(prediction.mean_output)
    assert mean_output[0, 0] == mean_output[0, 1] > mean_output[0, 2]  # the designed tie
    assert_array_equal(prediction.predicted, [-1, -1, 1, 1])
    assert_array_equal(prediction.tied, [True, True, False, False])
    assert_array_equal(prediction.vote, [-1, -1, 0, 0])
    assert_array_equal(prediction.vote_tied, [True, True, False, False])
    third = np.float32(1) / np.float32(3)
    assert_allclose(prediction.vote_share, [[third, third, 0]] * 2 + [[2 * third, third, 0]] * 2, rtol=1e-6)
    # On a tied row, agreement is the share of seeds that tie too (seed 2); on row B, seed 2.
    assert_allclose(prediction.agreement, [third] * 4, rtol=1e-6)

    strict, article = ensemble_report(TRIO, x, y), ensemble_report(TRIO, x, y, ties="article")
    assert strict["ties"] == "strict" and article["ties"] == "article"
    assert strict["tied_rows"] == article["tied_rows"] == {"mean_output": 2, "vote": 2}
    # Mean output correct on rows [-, -, -, B1] strictly; the article's rule adds A0's tie.
    # Vote correct on [-, -, B0, -] strictly; likewise plus A0.
    assert strict["accuracy"] == {"mean_output": 1 / 4, "vote": 1 / 4}
    assert article["accuracy"] == {"mean_output": 2 / 4, "vote": 2 / 4}
    # The single seeds under each rule: seed 2 ties on row A, which only the article counts.
    assert_array_equal(seed_correct(TRIO, x, y), [2, 1, 1])
    assert_array_equal(seed_correct(TRIO, x, y, "article"), [2, 1, 2])
    assert strict["single_seed"]["mean"] == 4 / 12 and article["single_seed"]["mean"] == 5 / 12
    assert strict["mean_output_vs_seeds"]["ties"] == 2 / 3  # 1 row, as seeds 1 and 2
    assert strict["agreement"]["unanimous_rows"] == 0
    assert "ties strict, 2 rows tied (mean output), 2 (vote)" in format_ensemble(strict)


def test_best_seed_follows_the_tie_rule():
    x, y = labelled("AAB", [0, 0, 1])  # seed 2 gets both A rows only by a tie, and B
    run = designed_run(TRIO)
    assert_array_equal(seed_correct(TRIO, x, y), [2, 0, 1])
    assert_array_equal(seed_correct(TRIO, x, y, "article"), [2, 0, 3])
    assert best_seed(run, x, y) == 0
    assert best_seed(run, x, y, ties="article") == 2


@pytest.mark.slow
def test_dead_population_scores_zero_under_the_strict_rule(run, test_set):
    # Output biases so negative that every output underflows to exactly 0: every row of
    # every seed ties, and no seed has anything to say. The article's rule scores it 1.0.
    dead = run.params._replace(b_out=np.full_like(run.params.b_out, -1e4))
    assert (np.asarray(ensemble_outputs(dead, test_set[0])) == 0).all()
    strict = ensemble_report(dead, *test_set)
    assert strict["accuracy"] == {"mean_output": 0.0, "vote": 0.0}
    assert strict["single_seed"]["max"] == 0.0
    assert strict["tied_rows"] == {"mean_output": 30, "vote": 30}
    article = ensemble_report(dead, *test_set, ties="article")
    assert article["accuracy"] == {"mean_output": 1.0, "vote": 1.0}
    assert article["single_seed"]["min"] == 1.0
    prediction = predict_ensemble(run._replace(params=dead), test_set[0])
    assert (np.asarray(prediction.predicted) == -1).all() and (np.asarray(prediction.vote) == -1).all()
    assert (np.asarray(prediction.vote_share) == 0).all()
    assert (np.asarray(prediction.agreement) == 1).all()  # every seed ties, as the mean does


@pytest.mark.slow
def test_unknown_tie_rule_is_refused(run, test_set):
    with pytest.raises(ValueError, match="unknown tie rule 'loose'"):
        ensemble_report(run.params, *test_set, ties="loose")


@pytest.mark.slow
def test_float32_run_predicts_with_x64_on(run, test_set, seed_outputs):
    # x arrives as float64 under x64; every function casts it to the params' dtype.
    x, y = np.asarray(test_set[0], np.float64), np.asarray(test_set[1], np.float64)
    narrow = predict_ensemble(run, x.astype(np.float32))
    with jax.enable_x64(True):
        wide_x = predict_ensemble(run, x)
        one = predict_seed(run, x, 3)
        counts = seed_correct(run.params, x, y)
        report = ensemble_report(run.params, x, y)
        best = best_seed(run, x, y)
    assert wide_x.mean_output.dtype == one.mean_output.dtype == jnp.float32
    for got, want in zip(wide_x, narrow):
        assert_array_equal(got, want)
    assert_array_equal(one.mean_output, seed_outputs[3])
    assert_array_equal(counts, seed_correct(run.params, test_set[0], test_set[1]))
    assert report == ensemble_report(run.params, *test_set)
    assert best == best_seed(run, *test_set)


# --- raw rows, scaled as in training ---------------------------------------------------


def stored_scaling(table: Table, split, dtype: str) -> dict:
    """The scaling a raw-table run stores: the minimum and span that `splits.minmax_scale`
    fitted on the training rows, in the run's dtype."""
    low, span = minmax_fit(jnp.asarray(table.x, dtype)[np.asarray(split.train_idx)])
    return {"min": np.asarray(low).tolist(), "span": np.asarray(span).tolist(), "dtype": dtype}


def raw_run(table: Table, scaling: dict | None, dtype: str) -> TrainedRun:
    sizes = Sizes(len(table.feature_names), 3, len(table.class_names))
    params = jax.tree.map(lambda p: p[None], init_params(jax.random.key(0), sizes, jnp.dtype(dtype)))
    config = {"data": {"path": "raw.csv"}}
    return TrainedRun(params, np.arange(1), table.feature_names, table.class_names, config, scaling)


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_inputs_for_scales_raw_rows_bit_for_bit_as_training_did(name):
    # NumPy's float32 division, or float64 arithmetic cast down, differs from XLA's in
    # hundreds of entries of these splits; the test part of each must come back exactly.
    table = load_table(DATA_DIR / f"{name}.csv", "species" if name == "iris" else "class")
    split_of = jax.jit(lambda key: make_split(table, key, test_fraction=0.2))
    for s in range(4):
        split = split_of(jax.random.key(s))
        run = raw_run(table, stored_scaling(table, split, "float32"), "float32")
        scaled = inputs_for(run, table.x[np.asarray(split.test_idx)])
        assert_array_equal(np.asarray(scaled, np.float32), split.x_test)  # as predict casts it
        assert scaled.dtype == np.float32


def test_the_api_scales_a_raw_runs_rows_as_the_cli_does():
    # predict_seed, predict_ensemble and best_seed took the table's raw rows as they were:
    # a wine run's seeds scored 0.33 from Python where the CLI printed 0.99.
    table = load_table(DATA_DIR / "wine.csv", "class")
    split = jax.jit(lambda key: make_split(table, key, test_fraction=0.2))(jax.random.key(0))
    run = raw_run(table, stored_scaling(table, split, "float32"), "float32")
    first = jax.tree.map(lambda p: p[0], run.params)  # and a second seed: the first, trained a little
    trained = train(first, split.x_train, split.y_train, epochs=300, learning_rate=0.01)
    run = run._replace(params=jax.tree.map(lambda *p: jnp.stack(p), first, trained), seeds=np.arange(2))
    raw = table.x[np.asarray(split.test_idx)]
    scaled = inputs_for(run, raw)
    assert not np.allclose(scaled, raw)
    for seed in (0, 1):
        one = jax.tree.map(lambda p, s=seed: p[s], run.params)
        assert_array_equal(predict_seed(run, raw, seed).mean_output, forward(one, jnp.asarray(scaled)))
    assert_array_equal(
        predict_ensemble(run, raw).mean_output, ensemble_outputs(run.params, scaled).mean(axis=0)
    )
    y = np.asarray(split.y_test)
    counts = np.asarray(seed_correct(run.params, scaled, y))
    assert counts[0] != counts[1]  # so the choice below is the scaled rows' choice
    assert best_seed(run, raw, y) == int(np.argmax(counts))


def test_inputs_for_scales_in_float64_for_a_float64_run(x64):
    table = load_table(DATA_DIR / "wine.csv", "class")
    split = jax.jit(lambda key: make_split(table, key, test_fraction=0.2, dtype="float64"))(jax.random.key(1))
    run = raw_run(table, stored_scaling(table, split, "float64"), "float64")
    scaled = inputs_for(run, table.x[np.asarray(split.test_idx)])
    assert scaled.dtype == np.float64
    assert_array_equal(scaled, split.x_test)


def test_inputs_for_a_float64_run_needs_x64():
    table = load_table(DATA_DIR / "iris.csv", "species")
    run = raw_run(table, {"min": [0.0] * 4, "span": [1.0] * 4, "dtype": "float64"}, "float32")
    with pytest.raises(ValueError, match="jax_enable_x64"):
        inputs_for(run, table.x)


def test_inputs_for_a_run_saved_without_the_scaling_dtype():
    # Older runs stored float64 minima and spans without a dtype: scaled in the params' dtype.
    table = load_table(DATA_DIR / "iris.csv", "species")
    split = jax.jit(lambda key: make_split(table, key, test_fraction=0.2))(jax.random.key(0))
    low, span = minmax_fit(table.x[np.asarray(split.train_idx)])
    run = raw_run(table, {"min": np.asarray(low).tolist(), "span": np.asarray(span).tolist()}, "float32")
    scaled = inputs_for(run, table.x[np.asarray(split.test_idx)])
    assert scaled.dtype == np.float32
    assert_allclose(scaled, split.x_test, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_predicting_a_raw_runs_test_rows_reproduces_its_accuracies(tmp_path, capsys, monkeypatch):
    proc = python(
        "-m", "gophernet_jax", "data=iris", "seeds.count=20", "train.epochs=50",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert_ok(proc)
    run = load_run(tmp_path / "run")
    assert run.scaling is not None
    # The run's split 0 as the run made it, recovered through the app rather than by
    # re-deriving its keys: its test part, scaled in training, and the raw rows behind it.
    settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), run.config))
    test_set = load_data(settings).test_set
    table = load_table(DATA_DIR / "iris.csv", "species")
    near = (table.x - np.asarray(run.scaling["min"])) / np.asarray(run.scaling["span"])
    distance = np.abs(near[None, :, :] - test_set.x[:, None, :]).max(axis=2)
    rows = np.argmin(distance, axis=1)
    assert distance[np.arange(len(rows)), rows].max() < 1e-5
    assert_array_equal(table.labels[rows], np.argmax(test_set.y, axis=1))
    raw_test = table.x[rows]
    assert_array_equal(inputs_for(run, raw_test), test_set.x)  # bit for bit
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    counts = seed_correct(run.params, inputs_for(run, raw_test), test_set.y, run_ties(run))
    assert_array_equal(counts, np.round(results["test_accuracy"] * len(rows)))
    # The API on the same raw rows, as the table holds them: each seed's accuracy as reported.
    for seed in (0, 7):
        right = np.asarray(predict_seed(run, raw_test, seed).predicted) == table.labels[rows]
        assert right.mean() == pytest.approx(results["test_accuracy"][seed])
    # predict on the raw rows, with labels: the ensemble's accuracy as the run reported it.
    frame = pd.DataFrame(raw_test, columns=table.feature_names)
    for c, name in enumerate(table.class_names):
        frame[name] = (table.labels[rows] == c).astype(int)
    frame.to_csv(tmp_path / "raw_test.csv", index=False)
    monkeypatch.chdir(tmp_path)
    out = cli_main(capsys, tmp_path / "run", "raw_test.csv")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert printed_accuracy(out) == round(summary["ensemble"]["accuracy"]["mean_output"], 4)
    # The same rows labelled as iris.csv labels them, by name in its class column.
    named = pd.DataFrame(raw_test, columns=table.feature_names)
    named.insert(2, "species", np.asarray(table.class_names)[table.labels[rows]])
    named.to_csv(tmp_path / "raw_named.csv", index=False)
    assert class_column(run) == "species"
    assert printed_accuracy(cli_main(capsys, tmp_path / "run", "raw_named.csv")) == printed_accuracy(out)


# --- the CLI ----------------------------------------------------------------------------


def printed_accuracy(stdout: str) -> float:
    match = re.search(r"^accuracy (\d\.\d{4})\b", stdout, re.M)
    assert match, stdout
    return float(match.group(1))


@pytest.mark.slow
def test_cli_ensemble_by_default(trained, run, test_set, seed_outputs, tmp_path):
    proc = predict(trained, TEST_CSV, cwd=tmp_path)
    assert_ok(proc)
    frame = pd.read_csv(tmp_path / "predictions.csv")  # the current folder by default
    assert len(frame) == 30
    means = [f"mean_{c}" for c in CLASSES]
    columns = {"predicted", "tied", "vote", "vote_tied", "agreement", *means, "label", "correct"}
    assert columns <= set(frame.columns)
    assert not frame["tied"].any() and not frame["vote_tied"].any()
    assert f"ensemble of {SEEDS} seeds" in proc.stdout
    prediction = predict_ensemble(run, test_set[0])
    assert frame["predicted"].tolist() == [CLASSES[c] for c in np.asarray(prediction.predicted)]
    assert_allclose(frame["agreement"], prediction.agreement, rtol=1e-6)
    assert_allclose(frame[means], prediction.mean_output, rtol=1e-6)
    y = test_set[1]
    accuracy = numpy_correct(seed_outputs.astype(np.float64).mean(axis=0), y).mean()
    assert printed_accuracy(proc.stdout) == round(accuracy, 4)
    assert "labelled rows; ties strict: " in proc.stdout  # the run has no report.ties: strict
    assert frame["correct"].mean() == accuracy
    assert f"unanimous on {int(np.sum(frame['agreement'] == 1))} of 30 rows" in proc.stdout


@pytest.mark.slow
def test_cli_one_seed(trained, seed_outputs, test_set, tmp_path):
    out = tmp_path / "seed3" / "p.csv"
    proc = predict(trained, TEST_CSV, "--seed", "3", "--out", out, cwd=tmp_path)
    assert_ok(proc)
    assert not (tmp_path / "predictions.csv").exists()
    frame = pd.read_csv(out)
    assert frame["predicted"].tolist() == [CLASSES[c] for c in np.argmax(seed_outputs[3], axis=1)]
    assert (frame["agreement"] == 1.0).all()
    assert_array_equal(frame[[f"mean_{c}" for c in CLASSES]].to_numpy(np.float32), seed_outputs[3])
    assert printed_accuracy(proc.stdout) == round(numpy_correct(seed_outputs[3], test_set[1]).mean(), 4)


@pytest.mark.slow
def test_cli_best_seed(trained, seed_outputs, tmp_path):
    proc = predict(trained, TEST_CSV, "--best", TRAIN_CSV, "--out", "best.csv", cwd=tmp_path)
    assert_ok(proc)
    best = int(np.argmax(pd.read_csv(trained / "results.csv")["train_accuracy"]))
    assert re.search(rf"^seed {best} of {SEEDS}, the most accurate on ", proc.stdout, re.M), proc.stdout
    frame = pd.read_csv(tmp_path / "best.csv")
    assert frame["predicted"].tolist() == [CLASSES[c] for c in np.argmax(seed_outputs[best], axis=1)]


def tied_runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The designed TRIO saved twice, without a tie rule (so strict) and with report.ties
    article, and a labelled file of its rows A, A, B, B."""
    plain, article = tmp_path / "plain", tmp_path / "article"
    for folder, config in ((plain, {}), (article, {"report": {"ties": "article"}})):
        folder.mkdir()
        save_run(folder, designed_run(TRIO, config))
    x, y = TRIO_ROWS
    frame = pd.DataFrame({"f": x[:, 0], **{name: y[:, c].astype(int) for c, name in enumerate(CLASSES)}})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    return plain, article, tmp_path / "rows.csv"


@pytest.mark.slow
def test_cli_writes_tied_rows_and_scores_them_strictly_by_default(tmp_path):
    plain, _, rows = tied_runs(tmp_path)
    proc = predict(plain, rows, cwd=tmp_path)
    assert_ok(proc)
    frame = pd.read_csv(tmp_path / "predictions.csv")
    assert frame["predicted"].tolist() == ["tie", "tie", "virginica", "virginica"]
    assert frame["tied"].tolist() == [True, True, False, False]
    assert frame["vote"].tolist() == ["tie", "tie", "setosa", "setosa"]
    assert frame["vote_tied"].tolist() == [True, True, False, False]
    assert frame["correct"].tolist() == [False, False, False, True]  # row 0's tie is wrong
    assert "tied rows: 2 of 4, 2 (vote), written as 'tie'" in proc.stdout
    assert re.search(r"^accuracy 0\.2500 \(mean output\), 0\.2500 \(vote\) on 4 labelled rows; ties strict",
                     proc.stdout, re.M), proc.stdout  # fmt: skip


def test_cli_follows_the_runs_tie_rule_unless_told(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain, article, rows = tied_runs(tmp_path)
    out = cli_main(capsys, article, rows)  # report.ties=article: a tie with the true class counts
    assert "accuracy 0.5000 (mean output), 0.5000 (vote) on 4 labelled rows; ties article" in out
    assert pd.read_csv("predictions.csv")["correct"].tolist() == [True, False, False, True]
    out = cli_main(capsys, article, rows, "--ties", "strict")
    assert "accuracy 0.2500 (mean output), 0.2500 (vote) on 4 labelled rows; ties strict" in out
    assert pd.read_csv("predictions.csv")["correct"].tolist() == [False, False, False, True]
    out = cli_main(capsys, plain, rows, "--seed", "2", "--ties", "article")  # seed 2 ties on rows A
    frame = pd.read_csv("predictions.csv")
    assert frame["predicted"].tolist() == ["tie", "tie", "virginica", "virginica"]
    assert frame["correct"].tolist() == [True, False, False, True]
    assert "tied rows: 2 of 4, written as 'tie'" in out and "accuracy 0.5000 on 4" in out


def test_cli_best_seed_follows_the_tie_rule(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain, article, rows = tied_runs(tmp_path)
    x, y = labelled("AAB", [0, 0, 1])  # seed 0 is best strictly; seed 2 by the article's rule
    labels = {name: y[:, c].astype(int) for c, name in enumerate(CLASSES)}
    pd.DataFrame({"f": x[:, 0], **labels}).to_csv("validation.csv", index=False)
    out = cli_main(capsys, plain, rows, "--best", "validation.csv")
    assert "seed 0 of 3, the most accurate on validation.csv (0.6667, ties strict)" in out
    out = cli_main(capsys, article, rows, "--best", "validation.csv")
    assert "seed 2 of 3, the most accurate on validation.csv (1.0000, ties article)" in out


@pytest.mark.slow
def test_cli_best_seed_of_a_tanh_softmax_run_scores_it_with_its_own_network(tmp_path, capsys, monkeypatch):
    # The heading's accuracy was the article's sigmoid net's on the chosen seed's weights
    # (0.3989 for a seed that gets 0.99 of wine's rows).
    assert_ok(cli(tmp_path, "data=wine", "model=mlp", "model.hidden=8", "seeds.count=4", "train.epochs=30"))
    monkeypatch.chdir(tmp_path)
    out = cli_main(capsys, tmp_path / "run", DATA_DIR / "wine.csv", "--best", DATA_DIR / "wine.csv")
    chosen = pd.read_csv("predictions.csv")
    heading = re.search(r"^seed (\d) of 4, the most accurate on .* \((\d\.\d{4}), ties strict\)", out, re.M)
    assert heading, out
    assert float(heading[2]) == round(chosen["correct"].mean(), 4) > 0.9
    # And it is the best: no seed predicts more of the rows right.
    for seed in range(4):
        cli_main(capsys, tmp_path / "run", DATA_DIR / "wine.csv", "--seed", seed, "--out", f"seed{seed}.csv")
        assert pd.read_csv(f"seed{seed}.csv")["correct"].sum() <= chosen["correct"].sum()
    # Rows without labels cannot choose: the error names both ways of giving them.
    pd.read_csv(DATA_DIR / "wine.csv").drop(columns="class").to_csv("bare.csv", index=False)
    assert predict_main([str(tmp_path / "run"), "bare.csv", "--best", "bare.csv"]) == 2
    error = capsys.readouterr().err
    columns = "a column 'class' or the class columns (class_0, class_1, class_2)"
    assert error == f"error: bare.csv:1: no labels ({columns}): --best needs them\n"


def test_cli_refuses_an_unknown_tie_rule(tmp_path, capsys):
    plain, _, rows = tied_runs(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        predict_main([str(plain), str(rows), "--ties", "loose"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "invalid choice: 'loose'" in err


# --- bad input --------------------------------------------------------------------------


def _bad_input(tmp_path: Path, trained: Path, case: str) -> tuple[list, str]:
    header = ",".join([*FEATURES, *CLASSES])
    rows = "0.1,0.2,0.3,0.4,1,0,0\n"
    if case == "no such folder":
        return [tmp_path / "nowhere", TEST_CSV], "no such folder"
    if case == "folder without params":
        return [tmp_path, TEST_CSV], "no params.npz"
    if case == "missing feature":
        bad = tmp_path / "missing.csv"
        bad.write_text(header.replace("petal_width,", "") + "\n" + rows.replace("0.4,", ""))
        return [trained, bad], f"{bad}:1: feature column 'petal_width'"
    if case == "unknown column":
        bad = tmp_path / "extra.csv"
        bad.write_text(header + ",colour\n" + rows.strip() + ",3\n")
        return [trained, bad], f"{bad}:1: unknown column 'colour'"
    if case == "best without labels":
        bad = tmp_path / "unlabelled.csv"
        bad.write_text(",".join(FEATURES) + "\n0.1,0.2,0.3,0.4\n")
        return [trained, TEST_CSV, "--best", bad], "--best needs them"
    seed = case.split()[-1]
    return [trained, TEST_CSV, "--seed", seed], f"seed {seed} is not in the run"


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        "no such folder",
        "folder without params",
        "missing feature",
        "unknown column",
        "best without labels",
        f"seed {SEEDS}",
        "seed -1",
    ],
)
def test_cli_bad_input(trained, tmp_path, case):
    args, needle = _bad_input(tmp_path, trained, case)
    proc = predict(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stdout + proc.stderr, proc
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc
    assert needle in lines[0], proc
    assert not (tmp_path / "predictions.csv").exists()


def test_a_sweeps_folder_given_for_a_run_names_one_of_its_jobs(tmp_path):
    from gophernet_jax.store import StoreError

    for job in ("lr=0.1", "lr=0.3"):
        (tmp_path / job).mkdir()
        (tmp_path / job / "params.npz").write_bytes(b"")
    with pytest.raises(StoreError) as error:
        load_run(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: not a run folder (no params.npz); it holds 2 run folders (a sweep's jobs, or runs "
        f"under it): give one, as {tmp_path / 'lr=0.1'}"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match=r"not a run folder \(no params.npz\)$"):  # no jobs: no hint
        load_run(empty)


def test_cli_names_a_file_in_its_outputs_way_and_refuses_a_diverged_seed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain, _, rows = tied_runs(tmp_path)
    Path("afile").write_text("")
    assert predict_main([str(plain), str(rows), "--out", "afile/p.csv"]) == 2
    assert capsys.readouterr().err == "error: cannot write afile/p.csv: afile is a file, not a folder\n"
    broken = tmp_path / "broken"
    broken.mkdir()
    b_out = np.array(TRIO.b_out)
    b_out[1, 0] = np.nan
    save_run(broken, designed_run(TRIO._replace(b_out=b_out)))
    assert predict_main([str(broken), str(rows), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: seed 1 diverged in training (its parameters are not finite)")
    assert err.count("\n") == 1 and not Path("predictions.csv").exists()
    assert predict_main([str(broken), str(rows), "--seed", "0"]) == 0
