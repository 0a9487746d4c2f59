"""Scores a search can trust: the tie rule, collapsed networks, a validation part, the
objective a search sweeper reads, and Hydra's Optuna sweeper end to end."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optuna
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from omegaconf import OmegaConf

from conftest import strict_json
from gophernet_jax.config import DATA_DIR
from gophernet_jax.dataset import DataError, load_split
from gophernet_jax.splits import load_table, make_split, part_counts
from gophernet_jax.training import draw_key

DEAD = ["+sweep=seeds", "seeds.count=20", "train.epochs=200", "optimizer.learning_rate=30"]
SMALL = ["seeds.count=8", "train.epochs=40", "report.curve_every=0"]


def run(tmp: Path, *args: str, folder: str = "run") -> subprocess.CompletedProcess:
    where = (
        "hydra.sweep.dir" if "-m" in args or any(a.startswith("+search=") for a in args) else "hydra.run.dir"
    )
    command = [sys.executable, "-m", "gophernet_jax", *args, f"{where}={tmp / folder}"]
    return subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=600)


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- ties and collapsed networks ------------------------------------------------------------


@pytest.fixture(scope="module")
def dead(tmp_path_factory) -> dict[str, Path]:
    """Learning rate 30: every output underflows to 0.0, so every test row is a three-way tie."""
    tmp = tmp_path_factory.mktemp("dead")
    folders = {}
    for rule in ("strict", "article"):
        done = run(tmp, *DEAD, f"report.ties={rule}", folder=rule)
        assert done.returncode == 0, done.stderr
        folders[rule] = (tmp / rule, done)
    return folders


@pytest.mark.slow
def test_dead_networks_score_zero_and_are_counted_as_collapsed(dead):
    folder, done = dead["strict"]
    results = pd.read_csv(folder / "results.csv")
    assert (results["test_accuracy"] == 0.0).all()
    assert (results["tied_rows"] == 30).all() and results["collapsed"].all()
    summary = strict_json(folder / "summary.json")
    assert summary["collapsed"] == 20 and summary["ties"] == "strict"
    assert summary["test_accuracy"]["max"] == 0.0
    assert "collapsed seeds: 20" in done.stdout
    ensemble = summary["ensemble"]["accuracy"]
    assert ensemble["mean_output"] == 0.0 and ensemble["vote"] == 0.0


@pytest.mark.slow
def test_the_articles_tie_rule_still_gives_the_articles_numbers(dead):
    folder, done = dead["article"]
    results = pd.read_csv(folder / "results.csv")
    assert (results["test_accuracy"] == 1.0).all()  # the reference program's count of these ties
    assert results["collapsed"].all()  # collapse does not depend on the tie rule
    assert "collapsed seeds: 20" in done.stdout and "ties count as right" in done.stdout


# --- a validation part ----------------------------------------------------------------------


@pytest.mark.slow
def test_train_validation_and_test_rows_are_disjoint_and_add_up_to_the_table():
    table = load_table(DATA_DIR / "iris.csv", "species")
    split = make_split(table, draw_key("split", 4), test_fraction=0.2, val_fraction=0.2)
    parts = [np.asarray(a) for a in (split.train_idx, split.val_idx, split.test_idx)]
    assert [len(p) for p in parts] == [90, 30, 30]
    assert_array_equal(np.sort(np.concatenate(parts)), np.arange(150))
    for part in parts:  # stratified: every class in every part, in proportion
        assert_array_equal(np.bincount(table.labels[part]), [len(part) // 3] * 3)
    # The test part does not depend on the validation fraction.
    without = make_split(table, draw_key("split", 4), test_fraction=0.2)
    assert_array_equal(without.test_idx, split.test_idx)
    # Scaling is fitted on the training part only: validation rows use its minimum and span.
    train_x = table.x[parts[0]]
    low, span = train_x.min(axis=0), np.ptp(train_x, axis=0)
    np.testing.assert_allclose(split.x_val, (table.x[parts[1]] - low) / span, rtol=1e-5, atol=1e-6)


def test_a_class_too_small_for_three_parts_is_named():
    labels = np.array([0] * 10 + [1] * 2)
    with pytest.raises(DataError, match="class 'b' has 2 rows: too few for a training, validation and test"):
        part_counts(labels, 0.2, 0.2, class_names=("a", "b"))


@pytest.mark.slow
def test_validation_on_iris_and_on_the_articles_files(tmp_path):
    for args, folder in ((["data=iris"], "iris"), ([], "article")):
        done = run(tmp_path, *args, "data.val_fraction=0.2", *SMALL, folder=folder)
        assert done.returncode == 0, done.stderr
        summary = strict_json(tmp_path / folder / "summary.json")
        assert (summary["train_rows"], summary["val_rows"], summary["test_rows"]) == (90, 30, 30)
        assert summary["objective"]["on"] == "validation" and summary["val_accuracy"]["count"] == 8
        results = pd.read_csv(tmp_path / folder / "results.csv")
        assert_array_equal(results["val_accuracy"] * 30, np.round(results["val_accuracy"] * 30))
        assert summary["objective"]["value"] == pytest.approx(results["val_accuracy"].mean())
    # The article's validation rows come from train.csv, none from test.csv.
    train_set, test_set = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    assert summary["test_rows"] == len(test_set.x) and summary["train_rows"] + 30 == len(train_set.x)


@pytest.mark.slow
def test_each_seeds_validation_part_follows_its_split(tmp_path):
    done = run(tmp_path, "data=iris", "data.val_fraction=0.2", "seeds.vary=[init,split]", *SMALL)
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(results["split_seed"]) == list(range(8))
    table = load_table(DATA_DIR / "iris.csv", "species")
    val_parts = {
        tuple(np.asarray(make_split(table, draw_key("split", 0, s), val_fraction=0.2).val_idx))
        for s in range(8)
    }
    assert len(val_parts) == 8


# --- the objective --------------------------------------------------------------------------


@pytest.mark.slow
def test_an_optuna_search_runs_to_the_end_and_reports_its_best_trial(tmp_path):
    done = run(
        tmp_path,
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.sampler.seed=0",
        "optimizer.learning_rate=interval(0.01,3)",
        "hydra.sweeper.n_trials=4",
        "data.val_fraction=0.2",
        "report.objective=q05",
        *SMALL,
        folder="search",
    )
    assert done.returncode == 0, done.stderr
    assert "tuning on the test set" not in done.stderr  # it tunes on the validation part
    folder = tmp_path / "search"
    best_value = OmegaConf.load(folder / "optimization_results.yaml").best_value
    summary = pd.read_csv(folder / "summary.csv")
    assert len(summary) == 4 and (summary["status"] == "ok").all()
    # The sweeper minimises 1 - q05 of validation accuracy: its best is the best trial's.
    for _, row in summary.iterrows():
        val = pd.read_csv(folder / row["job"] / "results.csv")["val_accuracy"]
        assert row["objective"] == pytest.approx(np.quantile(val, 0.05))
    assert best_value == pytest.approx(1 - summary["objective"].max())
    report = strict_json(folder / "summary.json")
    assert report["search"] and report["best"]["objective"] == pytest.approx(summary["objective"].max())
    assert (summary["baseline"] == report["best"]["job"]).all()  # each trial compared with the best
    assert (folder / "search.png").is_file()


@pytest.mark.slow
def test_a_search_on_the_test_rows_warns_once_per_trial(tmp_path):
    args = [
        "-m",
        "hydra/sweeper=optuna",
        "optimizer.learning_rate=interval(0.01,3)",
        "hydra.sweeper.n_trials=2",
    ]
    done = run(tmp_path, *args, *SMALL)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: report.objective (mean) is taken over the test rows") == 2


@pytest.mark.slow
def test_the_search_preset_asks_the_same_trials_again_and_resumes_a_sqlite_study(tmp_path):
    args = ["+search=lr", "hydra.sweeper.n_trials=2", *SMALL]
    study = ["hydra.sweeper.storage=sqlite:///study.db", "hydra.sweeper.study_name=lr"]
    # A run in memory and a run into a new SQLite study ask the same trials (a seeded sampler)...
    first, second = run(tmp_path, *args, folder="first"), run(tmp_path, *args, *study, folder="stored")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    rates = [
        pd.read_csv(tmp_path / f / "summary.csv")["optimizer.learning_rate"] for f in ("first", "stored")
    ]
    assert list(rates[0]) == list(rates[1]) and rates[0].nunique() == 2
    # ...and a second run on that study adds its trials to it.
    done = run(tmp_path, *args, *study, folder="stored")
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="lr", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


@pytest.mark.slow
def test_a_failed_trial_reaches_the_sweeper_and_the_search_goes_on(tmp_path):
    study = ["hydra.sweeper.storage=sqlite:///study.db", "hydra.sweeper.study_name=f"]
    args = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=1", "model.hidden=choice(0,3)"]
    args += ["hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=1", "hydra.sweeper.max_failure_rate=1.0"]
    done = run(tmp_path, *args, *study, "data.val_fraction=0.2", *SMALL, folder="search")
    assert done.returncode == 1, done.stderr  # the sweep reports its failed job
    assert "Traceback" not in done.stderr
    trials = optuna.load_study(study_name="f", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    states = {t.params["model.hidden"]: t.state for t in trials}
    assert states == {0: optuna.trial.TrialState.FAIL, 3: optuna.trial.TrialState.COMPLETE}, trials
    summary = pd.read_csv(tmp_path / "search" / "summary.csv")
    assert set(summary["status"]) == {"ok", "failed"}

    stopped = run(tmp_path, *args[:-1], "hydra.sweeper.max_failure_rate=0.0", *SMALL, folder="stopped")
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr
    assert "error: a trial failed" in stopped.stderr


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("report.objective=best", "report.objective"),
        ("report.ties=lenient", "report.ties"),
        ("data.val_fraction=1.5", "data.val_fraction"),
    ],
)
def test_bad_report_and_validation_settings_name_their_key(tmp_path, override, key):
    one_line_error(run(tmp_path, override), key)


def test_validation_and_test_fractions_that_leave_no_training_rows(tmp_path):
    line = one_line_error(run(tmp_path, "data=iris", "data.val_fraction=0.5", "data.test_fraction=0.5"))
    assert "data.val_fraction" in line and "no training rows" in line


def test_a_class_too_small_for_a_validation_row_is_named(tmp_path):
    rows = ["a,b,kind"] + [f"{i},{i % 3},big" for i in range(12)] + ["1,2,small", "2,1,small"]
    (tmp_path / "tiny.csv").write_text("\n".join(rows) + "\n")
    line = one_line_error(run(tmp_path, "data.path=tiny.csv", "data.label=kind", "data.val_fraction=0.2"))
    assert "class 'small'" in line


def test_the_single_network_api_keeps_its_default_tie_rule():
    from gophernet_jax import Sizes, accuracy, init_params

    params = init_params(jax.random.key(0), Sizes(4, 3, 3))
    dead = params._replace(b_out=params.b_out - 1e4)  # every output underflows to 0
    x, y = np.eye(4, dtype=np.float32)[:3], np.eye(3, dtype=np.float32)
    assert float(accuracy(dead, x, y)) == 0.0
    assert float(accuracy(dead, x, y, ties="article")) == 1.0
