"""Using what was trained: the save/load round trip, predictions of one seed or of the whole
population (API and `python -m gophernet_jax.predict`), and the ensemble report."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from gophernet_jax import (
    Params,
    Sizes,
    TrainedRun,
    best_seed,
    ensemble_report,
    forward,
    load_features,
    load_run,
    predict_ensemble,
    predict_seed,
    train_population,
)
from gophernet_jax.config import DATA_DIR
from gophernet_jax.dataset import DataError
from gophernet_jax.inference import SeedError, ensemble_outputs, seed_correct

SEEDS, EPOCHS = 20, 200
TRAINING = ["+sweep=seeds", f"seeds.count={SEEDS}", f"train.epochs={EPOCHS}"]
TEST_CSV, TRAIN_CSV = DATA_DIR / "test.csv", DATA_DIR / "train.csv"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CLASSES = ("setosa", "virginica", "versicolor")


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def predict(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return python("-m", "gophernet_jax.predict", *map(str, args), cwd=cwd)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc
    assert "Traceback" not in proc.stdout + proc.stderr, proc


def seed_params(params: Params, i: int) -> Params:
    return Params(*(p[i] for p in params))


def numpy_correct(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`model.correct` again: the true class's output is the row maximum (ties count)."""
    return outputs[np.arange(len(y)), np.argmax(y, axis=1)] == outputs.max(axis=1)


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


def test_run_holds_every_seed_and_its_config(run):
    assert run.params.w_hidden.shape == (SEEDS, 4, 3)
    assert run.params.b_out.shape == (SEEDS, 3)
    assert all(p.dtype == np.float32 for p in run.params)
    assert_array_equal(run.seeds, np.arange(SEEDS))
    assert (run.feature_names, run.class_names) == (FEATURES, CLASSES)
    assert run.config["seeds"]["count"] == SEEDS
    assert run.config["train"]["epochs"] == EPOCHS


def test_loaded_accuracies_equal_results_csv(trained, run, test_set):
    results = pd.read_csv(trained / "results.csv")
    x, y = test_set
    # Counts of correct rows: exact whether the file lists float32 accuracies or exact fractions.
    assert_array_equal(seed_correct(run.params, x, y), np.round(results["test_accuracy"] * 30))
    train_x, train_y = load_features(TRAIN_CSV, FEATURES, CLASSES)
    assert_array_equal(seed_correct(run.params, train_x, train_y), np.round(results["train_accuracy"] * 120))
    assert_allclose(results["test_accuracy"], np.asarray(seed_correct(run.params, x, y)) / 30, rtol=1e-7)


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
    for loaded, retrained in zip(run.params, population.params):
        assert_array_equal(loaded, np.asarray(retrained))
    x = test_set[0]
    assert_array_equal(ensemble_outputs(run.params, x), ensemble_outputs(population.params, x))
    for seed in (0, 3, SEEDS - 1):
        want = forward(seed_params(population.params, seed), jnp.asarray(x, jnp.float32))
        assert_array_equal(predict_seed(run, x, seed).mean_output, want)
        assert_array_equal(forward(seed_params(run.params, seed), jnp.asarray(x, jnp.float32)), want)


# --- the API ----------------------------------------------------------------------------


def test_predict_seed_is_the_argmax_of_forward(run, test_set, seed_outputs):
    prediction = predict_seed(run, test_set[0], 3)
    assert_array_equal(prediction.mean_output, seed_outputs[3])
    assert_array_equal(prediction.predicted, np.argmax(seed_outputs[3], axis=1))
    assert_array_equal(prediction.vote, prediction.predicted)
    assert_array_equal(prediction.agreement, np.ones(30, np.float32))
    assert prediction.mean_output.dtype == jnp.float32


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


def test_ensemble_leaves_out_diverged_seeds(run, test_set):
    x = test_set[0]
    broken = run._replace(params=run.params._replace(w_out=run.params.w_out.copy()))
    broken.params.w_out[5, 0, 0] = np.nan
    rest = np.arange(SEEDS) != 5
    healthy = run._replace(params=Params(*(p[rest] for p in run.params)), seeds=run.seeds[rest])
    got, want = predict_ensemble(broken, x), predict_ensemble(healthy, x)
    assert np.isfinite(got.mean_output).all()
    assert_array_equal(got.predicted, want.predicted)
    assert_allclose(got.mean_output, want.mean_output, rtol=1e-6)
    assert ensemble_report(broken.params, *test_set)["members"] == SEEDS - 1
    nothing = run._replace(params=Params(*(np.full_like(p, np.nan) for p in run.params)))
    with pytest.raises(SeedError, match="finite"):
        predict_ensemble(nothing, x)


def test_best_seed_is_the_most_accurate_and_ties_go_low(trained, run, test_set):
    x, y = load_features(TRAIN_CSV, FEATURES, CLASSES)
    train_acc = pd.read_csv(trained / "results.csv")["train_accuracy"].to_numpy()
    assert best_seed(run, x, y) == int(np.argmax(train_acc))  # argmax: the first of the best
    best, worst = int(np.argmax(train_acc)), int(np.argmin(train_acc))
    assert train_acc[best] > train_acc[worst]
    order = np.array([worst, best, best])
    twins = TrainedRun(Params(*(p[order] for p in run.params)), np.arange(3), FEATURES, CLASSES, {})
    assert best_seed(twins, x, y) == 1


@pytest.mark.parametrize("seed", [SEEDS, -1])
def test_predict_seed_out_of_range(run, test_set, seed):
    with pytest.raises(SeedError, match=rf"seed {seed} is not in the run: it has seeds 0\.\.{SEEDS - 1}"):
        predict_seed(run, test_set[0], seed)


def test_float64_params_predict_in_float64(run, test_set, x64):
    wide = run._replace(params=Params(*(p.astype(np.float64) for p in run.params)))
    assert predict_ensemble(wide, test_set[0]).mean_output.dtype == jnp.float64
    assert predict_seed(wide, test_set[0], 0).agreement.dtype == jnp.float64


def test_float64_params_need_x64(run, test_set):
    wide = run._replace(params=Params(*(p.astype(np.float64) for p in run.params)))
    assert not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="jax_enable_x64"):
        predict_ensemble(wide, test_set[0])


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


# --- the CLI ----------------------------------------------------------------------------


def printed_accuracy(stdout: str) -> float:
    match = re.search(r"^accuracy (\d\.\d{4})\b", stdout, re.M)
    assert match, stdout
    return float(match.group(1))


def test_cli_ensemble_by_default(trained, run, test_set, seed_outputs, tmp_path):
    proc = predict(trained, TEST_CSV, cwd=tmp_path)
    assert_ok(proc)
    frame = pd.read_csv(tmp_path / "predictions.csv")  # the current folder by default
    assert len(frame) == 30
    means = [f"mean_{c}" for c in CLASSES]
    assert {"predicted", "vote", "agreement", *means, "label", "correct"} <= set(frame.columns)
    assert f"ensemble of {SEEDS} seeds" in proc.stdout
    prediction = predict_ensemble(run, test_set[0])
    assert frame["predicted"].tolist() == [CLASSES[c] for c in np.asarray(prediction.predicted)]
    assert_allclose(frame["agreement"], prediction.agreement, rtol=1e-6)
    assert_allclose(frame[means], prediction.mean_output, rtol=1e-6)
    y = test_set[1]
    accuracy = numpy_correct(seed_outputs.astype(np.float64).mean(axis=0), y).mean()
    assert printed_accuracy(proc.stdout) == round(accuracy, 4)
    assert frame["correct"].mean() == accuracy
    assert f"unanimous on {int(np.sum(frame['agreement'] == 1))} of 30 rows" in proc.stdout


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


def test_cli_best_seed(trained, seed_outputs, tmp_path):
    proc = predict(trained, TEST_CSV, "--best", TRAIN_CSV, "--out", "best.csv", cwd=tmp_path)
    assert_ok(proc)
    best = int(np.argmax(pd.read_csv(trained / "results.csv")["train_accuracy"]))
    assert re.search(rf"^seed {best} of {SEEDS}, the most accurate on ", proc.stdout, re.M), proc.stdout
    frame = pd.read_csv(tmp_path / "best.csv")
    assert frame["predicted"].tolist() == [CLASSES[c] for c in np.argmax(seed_outputs[best], axis=1)]


# --- bad input --------------------------------------------------------------------------


def _bad_input(tmp_path: Path, trained: Path, case: str) -> tuple[list, str]:
    header = ",".join([*FEATURES, *CLASSES])
    rows = "0.1,0.2,0.3,0.4,1,0,0\n"
    if case == "no such folder":
        return [tmp_path / "nowhere", TEST_CSV], "not a folder"
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
