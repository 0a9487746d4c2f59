"""Scores a search can trust: the tie rule, collapsed networks, a validation part, the
objective a search sweeper reads, and the project's Optuna sweeper: end to end, and with a
launcher that computes instead of training."""

import importlib.util
import json
import math
import re
import sys
import types
from pathlib import Path

import jax
import numpy as np
import optuna
import pandas as pd
import pytest
from hydra.core.utils import JobReturn, JobStatus
from numpy.testing import assert_array_equal
from omegaconf import OmegaConf
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from conftest import Done, assert_one_line_error, cli, composing, settings_of, strict_json
from gophernet_jax.config import DATA_DIR
from gophernet_jax.dataset import DataError, load_split
from gophernet_jax.splits import load_table, make_split, part_counts
from gophernet_jax.training import draw_key

DEAD = ["+sweep=seeds", "seeds.count=20", "train.epochs=200", "optimizer.learning_rate=30"]
SMALL = ["seeds.count=8", "train.epochs=40", "report.curve_every=0"]


def run(tmp: Path, *args: str, folder: str = "run") -> Done:
    multirun = "-m" in args or any(a.startswith("+search=") for a in args)
    return cli(tmp, *args, **{"sweep_dir" if multirun else "run_dir": tmp / folder})


def one_line_error(done: Done, *needles: str) -> str:
    return assert_one_line_error(done, *needles)


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


# --- the objective, searched with the project's Optuna sweeper ----------------------------


def trials_of(storage, name: str) -> list:
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.mark.slow
def test_an_optuna_search_runs_to_the_end_and_reports_its_best_trial(tmp_path):
    done = run(
        tmp_path,
        "-m",
        "hydra/sweeper=gophernet_optuna",
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
    # Each trial keeps its population's statistics, read from its job's summary.json.
    for trial in journal_trials(folder):
        job = strict_json(folder / trial.user_attrs["job"] / "summary.json")
        assert trial.user_attrs["objective"] == job["objective"]["value"] == pytest.approx(1 - trial.value)
        assert trial.user_attrs["val_accuracy_q05"] == job["val_accuracy"]["q05"]
        assert trial.user_attrs["collapsed"] == job["collapsed"]
        assert trial.user_attrs.get("cause") == (job["cause"]["kind"] if "cause" in job else None)


@pytest.mark.slow
def test_a_range_on_the_command_line_replaces_the_presets(tmp_path):
    # The command line's range wins over the preset's (here SGD's 0.003 to 30).
    narrow = "optimizer.learning_rate=tag(log, interval(0.0003, 0.3))"
    done = run(tmp_path, "+search=lr", narrow, "hydra.sweeper.n_trials=3", *SMALL, folder="narrow")
    assert done.returncode == 0, done.stderr
    trials = journal_trials(tmp_path / "narrow", "lr")
    assert len(trials) == 3
    for trial in trials:
        space = trial.distributions["optimizer.learning_rate"]
        assert (space.low, space.high, space.log) == (0.0003, 0.3, True)
        assert 0.0003 <= trial.params["optimizer.learning_rate"] <= 0.3


def test_the_learning_rate_presets_follow_the_optimizer():
    from gophernet_jax.config import LEARNING_RATES, lr_grid, lr_search
    from gophernet_jax.training import OPTIMIZERS

    assert set(LEARNING_RATES) == set(OPTIMIZERS)
    # SGD's are what the presets held before, so the article's searches and sweeps ask the same.
    assert (lr_search("sgd"), lr_grid("sgd")) == ("tag(log, interval(0.003, 30))", "0.03,0.1,0.3,1,3")
    adaptive = ("tag(log, interval(0.0003, 0.3))", "0.001,0.003,0.01,0.03,0.1")
    with composing() as compose:
        for extra, (search, grid) in [
            ([], (lr_search("sgd"), lr_grid("sgd"))),
            (["model=mlp"], adaptive),  # Adam: it trained badly from 1 on (README, Searches)
            (["optimizer.name=lion"], adaptive),
            (["optimizer.name=adagrad"], ("tag(log, interval(0.003, 3))", "0.01,0.03,0.1,0.3,1")),
        ]:
            for preset, want in (("+search=lr", search), ("+search=hidden_lr", search), ("+sweep=lr", grid)):
                cfg = compose(preset, *extra, return_hydra_config=True)
                assert cfg.hydra.sweeper.params["optimizer.learning_rate"] == want, (preset, extra)


@pytest.mark.slow
def test_an_adam_search_searches_adams_rates(tmp_path):
    done = run(tmp_path, "+search=lr", "model=mlp", "hydra.sweeper.n_trials=2", *SMALL, folder="adam")
    assert done.returncode == 0, done.stderr
    for trial in journal_trials(tmp_path / "adam", "lr"):
        space = trial.distributions["optimizer.learning_rate"]
        assert (space.low, space.high, space.log) == (0.0003, 0.3, True)


@pytest.mark.slow
def test_a_search_on_the_test_rows_warns_once_per_trial(tmp_path):
    args = [
        "-m",
        "hydra/sweeper=gophernet_optuna",
        "optimizer.learning_rate=interval(0.01,3)",
        "hydra.sweeper.n_trials=2",
    ]
    done = run(tmp_path, *args, *SMALL)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: report.objective (mean) is taken over the test rows") == 2


@pytest.mark.slow
def test_the_search_preset_continues_its_study_and_a_sqlite_study_asks_the_same_trials(tmp_path):
    args = ["+search=lr", *SMALL]
    first = run(tmp_path, *args, "hydra.sweeper.n_trials=2", folder="journal")
    assert first.returncode == 0, first.stderr
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "journal" / "study.journal")))
    before = trials_of(journal, "lr")
    # The same command with a larger n_trials, into the same folder: the study goes on.
    again = run(tmp_path, *args, "hydra.sweeper.n_trials=3", folder="journal")
    assert again.returncode == 0, again.stderr
    after = trials_of(journal, "lr")
    assert [t.state for t in after] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [(t.params, t.value) for t in after[:2]] == [(t.params, t.value) for t in before]
    summary = pd.read_csv(tmp_path / "journal" / "summary.csv")  # the report covers all three
    assert list(summary["job"]) == [t.user_attrs["job"] for t in after]
    # A study in SQLite, asked in one run, asks the same three trials: the sampler is seeded
    # per trial, so the two runs above ask what one run asks.
    stored = run(tmp_path, *args, "hydra.sweeper.n_trials=3", "hydra.sweeper.storage=sqlite:///study.db")
    assert stored.returncode == 0, stored.stderr
    in_sqlite = trials_of(f"sqlite:///{tmp_path / 'study.db'}", "lr")
    assert [t.params for t in in_sqlite] == [t.params for t in after]
    assert not (tmp_path / "run" / "study.journal").exists()


@pytest.mark.slow
def test_a_failed_trial_reaches_the_sweeper_and_the_search_goes_on(tmp_path):
    args = ["-m", "hydra/sweeper=gophernet_optuna", "hydra.sweeper.sampler.seed=1"]
    args += [
        "model.hidden=choice(0,3)",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.max_failure_rate=1.0",
    ]
    done = run(tmp_path, *args, "data.val_fraction=0.2", *SMALL, folder="search")
    assert done.returncode == 1, done.stderr  # the sweep reports its failed job
    assert "Traceback" not in done.stderr
    trials = journal_trials(tmp_path / "search")
    assert len(trials) == 4  # failed trials count towards n_trials
    states = {t.params["model.hidden"]: t.state for t in trials}
    assert states == {0: optuna.trial.TrialState.FAIL, 3: optuna.trial.TrialState.COMPLETE}, trials
    failed = next(t for t in trials if t.state == optuna.trial.TrialState.FAIL)
    assert "model.hidden" in failed.user_attrs["error"]  # the job's error.json
    summary = pd.read_csv(tmp_path / "search" / "summary.csv")
    assert set(summary["status"]) == {"ok", "failed"}

    stopped = run(tmp_path, *args[:-1], "hydra.sweeper.max_failure_rate=0.0", *SMALL, folder="stopped")
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr
    assert "error: a trial failed" in stopped.stderr and "max_failure_rate=0.0" in stopped.stderr


# --- the sweeper, with a launcher that computes instead of training -------------------------


class FakeLauncher:
    """Runs each trial as `error(params)`, and writes the job folder the app would: summary.json
    (or error.json when `error` raises) under the sweep folder. Counts the jobs it ran."""

    def __init__(self, sweep_dir: Path, error):
        self.sweep_dir, self.error, self.jobs = sweep_dir, error, []

    def launch(self, batch, initial_job_idx):
        returns = []
        for i, overrides in enumerate(batch):
            params = dict(o.split("=", 1) for o in overrides)
            folder = self.sweep_dir / f"job{initial_job_idx + i}"
            folder.mkdir(parents=True, exist_ok=True)
            hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(folder)}}})
            ret = JobReturn(overrides=list(overrides), hydra_cfg=hydra_cfg)
            try:
                value = self.error(params)
            except ValueError as e:
                (folder / "error.json").write_text(json.dumps({"status": "failed", "error": str(e)}))
                ret.status, ret.return_value = JobStatus.FAILED, e
            else:
                summary = {
                    "objective": {"name": "mean", "on": "validation", "value": 1 - value, "error": value},
                    "val_accuracy": {"mean": 1 - value, "q05": 0.5},
                    "test_accuracy": {"mean": 0.9, "std": 0.1, "q05": 0.7, "median": 0.93},
                    "collapsed": 2,
                    "diverged": 0,
                    "seeds": 8,
                    "seconds": 0.5,
                }
                (folder / "summary.json").write_text(json.dumps(summary))
                ret.status, ret.return_value = JobStatus.COMPLETED, value
            self.jobs.append((initial_job_idx + i, list(overrides)))
            returns.append(ret)
        return returns


def squared(params) -> float:
    return (math.log10(float(params["lr"])) + 1) ** 2


def search(sweep_dir: Path, error=squared, arguments=(), **settings) -> FakeLauncher:
    """Runs the sweeper on `sweep_dir` with the fake launcher; returns the launcher."""
    from hydra_plugins.gophernet_optuna_sweeper.gophernet_optuna_sweeper import GophernetOptunaSweeper

    settings = {"params": {"lr": "tag(log, interval(0.001, 10))"}, "sampler": {"seed": 0}} | settings
    sweeper = GophernetOptunaSweeper(**settings)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    sweeper.launcher = FakeLauncher(sweep_dir, error)
    sweeper.sweep(list(arguments))
    return sweeper.launcher


def journal_trials(sweep_dir: Path, name: str = "gophernet") -> list:
    return trials_of(JournalStorage(JournalFileBackend(str(sweep_dir / "study.journal"))), name)


def test_a_second_run_continues_the_journal_study_and_asks_what_one_run_asks(tmp_path):
    search(tmp_path / "a", n_trials=4, n_jobs=2)
    first = journal_trials(tmp_path / "a")
    launcher = search(tmp_path / "a", n_trials=12, n_jobs=2)  # past n_startup_trials: TPE asks
    trials = journal_trials(tmp_path / "a")
    assert len(trials) == 12 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [(t.params, t.value) for t in trials[:4]] == [(t.params, t.value) for t in first]
    assert [job for job, _ in launcher.jobs] == list(range(4, 12))  # job numbers are trial numbers
    # Run again with the same n_trials: nothing to do.
    assert search(tmp_path / "a", n_trials=12, n_jobs=2).jobs == []
    # One run of 12 in the same batches of two asks the same trials as the two runs.
    search(tmp_path / "b", n_trials=12, n_jobs=2)
    assert [t.params for t in journal_trials(tmp_path / "b")] == [t.params for t in trials]
    results = OmegaConf.load(tmp_path / "a" / "optimization_results.yaml")
    best = min(trials, key=lambda t: t.value)
    assert (results.best_trial, results.best_value) == (best.number, best.value)
    assert results.best_job == f"job{best.number}" and results.best_params == best.params
    assert results.trials.counted == 12


def test_trials_an_interrupted_run_left_running_are_failed_at_the_next_start_and_not_counted(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(study_name="gophernet", storage=storage)
    lr = optuna.distributions.FloatDistribution(0.001, 10, log=True)
    left = study.ask({"lr": lr})  # a trial that a killed run never told: RUNNING in the journal
    study.tell(study.ask({"lr": lr}), 0.5)
    # the folder its job left, with no summary.json: a report listed it as still to finish
    folder = tmp_path / "lr=interrupted"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- lr={left.params['lr']}\n")
    launcher = search(tmp_path, n_trials=3)
    trials = journal_trials(tmp_path)
    states = [t.state for t in trials]
    assert states[:2] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    # Trial 0 does not count: two more trials make the three asked for.
    assert len(launcher.jobs) == 2 and states[2:] == [optuna.trial.TrialState.COMPLETE] * 2
    assert optuna.load_study(study_name="gophernet", storage=storage).user_attrs["interrupted_trials"] == [0]
    from gophernet_jax.sweep import _job_row

    row = _job_row(folder)
    assert row == {
        "status": "interrupted",
        "error": "trial 0, interrupted before it finished: marked failed, not counted towards n_trials",
    }


def test_the_sampler_is_seeded_and_its_settings_are_written(tmp_path):
    from hydra_plugins.gophernet_optuna_sweeper._search import make_sampler

    for folder, seed in (("a", 0), ("b", 0), ("c", 1)):
        search(tmp_path / folder, n_trials=4, sampler={"seed": seed, "n_startup_trials": 2})
    a, b, c = ([t.params["lr"] for t in journal_trials(tmp_path / f)] for f in "abc")
    assert a == b and len(set(a)) == 4 and not set(a) & set(c)
    expected = {
        "name": "tpe", "seed": 0, "n_startup_trials": 2, "n_ei_candidates": 24,
        "multivariate": True, "group": False, "constant_liar": True,
    }  # fmt: skip
    written = json.loads((tmp_path / "a" / "sampler.json").read_text())
    assert written["sampler"] == expected and written["optuna"] == optuna.__version__
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "a" / "study.journal")))
    assert optuna.load_study(study_name="gophernet", storage=journal).user_attrs["sampler"] == expected
    # The settings reach Optuna as written, whatever the installed version's defaults.
    sampler = make_sampler(expected, 0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert (sampler._multivariate, sampler._constant_liar, sampler._n_startup_trials) == (True, True, 2)
    random = make_sampler({"name": "random", "seed": 0}, 0)
    assert isinstance(random, optuna.samplers.RandomSampler)


def test_each_trial_keeps_its_populations_statistics(tmp_path):
    search(tmp_path, n_trials=2)
    for trial in journal_trials(tmp_path):
        assert trial.user_attrs == {
            "job": f"job{trial.number}",
            "objective": pytest.approx(1 - trial.value),
            "objective_name": "mean",
            "objective_on": "validation",
            "val_accuracy_mean": pytest.approx(1 - trial.value),
            "val_accuracy_q05": 0.5,
            "test_accuracy_mean": 0.9,
            "test_accuracy_std": 0.1,
            "test_accuracy_q05": 0.7,
            "collapsed": 2,
            "diverged": 0,
            "seeds": 8,
            "seconds": 0.5,
        }


def test_a_sqlite_url_is_an_rdb_storage_and_is_continued(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    search(tmp_path / "one", n_trials=2, storage=url, study_name="lr")
    search(tmp_path / "two", n_trials=3, storage=url, study_name="lr")
    trials = trials_of(url, "lr")
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert not (tmp_path / "one" / "study.journal").exists()
    assert OmegaConf.load(tmp_path / "two" / "optimization_results.yaml").storage == url


def test_failed_trials_count_and_too_many_stop_the_search(tmp_path, capsys):
    def fails_above_one(params):
        if float(params["lr"]) > 1:
            raise ValueError("error: a trial failed: lr above 1")
        return squared(params)

    launcher = search(tmp_path / "on", fails_above_one, n_trials=6, max_failure_rate=1.0)
    trials = journal_trials(tmp_path / "on")
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(launcher.jobs) == len(trials) == 6 and failed  # failed trials are counted
    assert all(t.params["lr"] > 1 and t.user_attrs["error"].endswith("lr above 1") for t in failed)
    with pytest.raises(SystemExit) as stopped:
        search(tmp_path / "off", fails_above_one, n_trials=6, arguments=["lr=choice(5)"])
    assert stopped.value.code == 1
    assert re.fullmatch(
        r"error: .*lr above 1 \(the search stops: 1 of 1 trials.*\)\n", capsys.readouterr().err
    )
    assert OmegaConf.load(tmp_path / "off" / "optimization_results.yaml").trials.failed == 1


def test_the_search_space_in_hydras_sweep_syntax():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.gophernet_optuna_sweeper._search import search_space

    params = {"a": "choice(0,3)", "b": "int(interval(2, 16))", "c": "tag(log, interval(0.003, 30))"}
    params |= {"d": "range(1,10,3)", "e": "interval(0.01,3)", "f": "choice(x,'y z')", "g": "5"}
    space = search_space(params, ["+search=lr", "g=6", "seeds.count=20", "d=range(0,4)"])
    assert space.distributions == {
        "a": CategoricalDistribution([0, 3]),
        "b": IntDistribution(2, 16),
        "c": FloatDistribution(0.003, 30.0, log=True),
        "d": IntDistribution(0, 3),  # the command line wins; range's stop is excluded, as in Hydra
        "e": FloatDistribution(0.01, 3.0),
        "f": CategoricalDistribution(["x", "y z"]),
    }
    assert space.fixed == ["g=6", "+search=lr", "seeds.count=20"]


def test_a_trials_overrides_read_back_as_its_parameters():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.gophernet_optuna_sweeper._search import SearchSpace, trial_overrides

    params = {"a": "y z", "b": True, "c": 1e-05, "d": None, "e": "it's"}
    trial = types.SimpleNamespace(params=params)
    lines = trial_overrides(trial, SearchSpace(dict.fromkeys(params), ["x=1"]))
    parsed = OverridesParser.create().parse_overrides(lines)
    assert {o.get_key_element(): o.value() for o in parsed} == {**params, "x": 1}


def test_a_missing_optuna_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.delitem(sys.modules, "hydra_plugins.gophernet_optuna_sweeper._search")
    with pytest.raises(SystemExit) as stopped:
        search(tmp_path, n_trials=1)
    assert stopped.value.code == 2
    line = "error: hydra/sweeper=gophernet_optuna needs Optuna (optuna is not installed): "
    assert capsys.readouterr().err == line + "pip install 'gophernet-jax[search]'\n"


def test_a_bad_setting_is_one_line_naming_its_key(tmp_path, capsys):
    for settings, key in (
        ({"direction": "up"}, "hydra.sweeper.direction"),
        ({"sampler": {"name": "grid"}}, "name"),
    ):
        with pytest.raises(SystemExit) as stopped:
            search(tmp_path, n_trials=1, **settings)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: config key hydra.sweeper.") and key in err and err.count("\n") == 1


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
def test_validation_and_test_fractions_that_leave_no_training_rows(tmp_path):
    line = one_line_error(run(tmp_path, "data=iris", "data.val_fraction=0.5", "data.test_fraction=0.5"))
    assert "data.val_fraction" in line and "no training rows" in line


@pytest.mark.slow
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


# --- plugins of extras that are not installed -----------------------------------------------


def test_a_plugin_of_a_missing_extra_is_named_with_its_extra(capsys):
    from hydra_plugins.gophernet_optuna_sweeper import missing_extras

    installed = {"hydra_plugins.hydra_joblib_launcher"}
    absent = missing_extras.missing(lambda module: object() if module in installed else None)
    assert absent == [
        ("hydra/launcher", "submitit_local", "slurm"),
        ("hydra/launcher", "submitit_slurm", "slurm"),
        ("hydra/sweeper", "optuna", "legacy-optuna"),
    ]
    with pytest.raises(SystemExit) as stopped:
        missing_extras.MissingLauncher(group="hydra/launcher", option="submitit_slurm", extra="slurm")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: hydra/launcher=submitit_slurm needs the slurm extra: pip install 'gophernet-jax[slurm]'\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None,
    reason="the legacy-optuna extra is installed",
)
def test_hydras_legacy_optuna_sweeper_without_its_extra_is_one_line(tmp_path):
    done = run(tmp_path, "-m", "hydra/sweeper=optuna", "optimizer.learning_rate=interval(0.01,3)")
    assert done.returncode == 2
    one_line_error(
        done, "hydra/sweeper=optuna needs the legacy-optuna extra", "hydra/sweeper=gophernet_optuna"
    )


@pytest.mark.parametrize("preset", ["lr", "hidden_lr", "decay"])
def test_each_search_preset_searches_settings_that_validate_on_a_validation_part(preset):
    """Every `+search=` preset: the project's sweeper, its own study, a validation part to
    score on, and a search space whose every point is a valid setting (its bounds checked)."""
    from hydra_plugins.gophernet_optuna_sweeper._search import search_space

    with composing() as compose:
        cfg = compose(f"+search={preset}", return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("GophernetOptunaSweeper") and sweeper.study_name == preset
    assert cfg.data.val_fraction > 0
    space = search_space(dict(sweeper.params), [])
    assert space.distributions, preset
    for key, dist in space.distributions.items():
        for value in (dist.low, dist.high):
            settings_of(f"+search={preset}", f"{key}={value}")  # raises if not valid
    if preset == "decay":
        ((key, dist),) = space.distributions.items()
        assert key == "optimizer.weight_decay" and dist.log and (dist.low, dist.high) == (1e-4, 0.1)


def test_a_study_resumed_with_other_fixed_settings_is_refused(tmp_path, capsys):
    # 5 trials of 20 seeds, then a run with seeds.count=30 added trials of 30 seeds to the
    # same study, reported the best of them beside trials it does not compare with.
    search(tmp_path, n_trials=2, arguments=["seeds.count=20", "+search=lr"])
    with pytest.raises(SystemExit) as stop:
        search(tmp_path, n_trials=3, arguments=["seeds.count=30", "+search=lr"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"error: study 'gophernet' in {tmp_path / 'study.journal'} ran its trials with seeds.count=20, "
        "where this run gives seeds.count=30: trials of other settings do not compare;"
    )
    assert len(journal_trials(tmp_path)) == 2  # nothing was asked
    search(tmp_path, n_trials=3, arguments=["+search=lr", "seeds.count=20"])  # the same settings go on
    assert len(journal_trials(tmp_path)) == 3


def test_settings_that_change_no_result_may_differ_when_a_study_goes_on():
    from hydra_plugins.gophernet_optuna_sweeper._search import SearchSpace, check_fixed
    from hydra_plugins.gophernet_optuna_sweeper.gophernet_optuna_sweeper import SearchError

    study, ignored = optuna.create_study(study_name="s"), ["runtime.progress"]
    check_fixed(study, SearchSpace({}, ["seeds.count=20", "runtime.progress=false"]), ignored, "mem")
    assert study.user_attrs["fixed_overrides"] == ["seeds.count=20"]
    check_fixed(study, SearchSpace({}, ["seeds.count=20", "runtime.progress=true"]), ignored, "mem")
    with pytest.raises(SearchError, match="ran its trials with seeds.count=20, where this run gives none"):
        check_fixed(study, SearchSpace({}, []), ignored, "mem")
