"""The CLI's job and the sweep report, run in this process from Hydra's composed config.

The end-to-end tests (marked slow) run the same paths as `python -m gophernet_jax` in a
subprocess; these keep the fast tier (`pytest -m "not slow"`) touching app, callbacks,
sweep, reporting, plots, progress, the benchmark and its hand-written baseline in seconds.
"""

import io
import json

import jax
import numpy as np
import pandas as pd
import pytest

from conftest import assert_bad_setting, run_job, settings_of, strict_json
from gophernet_jax import Sizes, app, bench, callbacks, forward, handwritten, init_params, progress, sweep
from gophernet_jax.config import ConfigError
from gophernet_jax.summary import Summary
from gophernet_jax.training import train_population

SMALL = ["seeds.count=12", "train.epochs=40", "report.curve_every=20"]


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    first = run_job(folder / "lr=0.3", *SMALL, "optimizer.learning_rate=0.3", job_num=0)
    second = run_job(folder / "lr=1", *SMALL, "optimizer.learning_rate=1", job_num=1)
    return folder, first, second


@pytest.mark.slow
def test_a_job_writes_its_files_and_a_strict_summary(two_jobs):
    folder, first, _ = two_jobs
    job = folder / "lr=0.3"
    assert {"results.csv", "summary.json", "curves.csv", "params.npz"} <= {p.name for p in job.iterdir()}
    summary = strict_json(job / "summary.json")
    assert summary == json.loads(json.dumps(first))  # what the job returned is what it wrote
    assert set(summary["phases"]) == {"load", "compile", "train", "score", "write"}
    results = pd.read_csv(job / "results.csv")
    assert len(results) == 12 and results["test_accuracy"].between(0, 1).all()
    assert summary["test_accuracy"]["mean"] == pytest.approx(results["test_accuracy"].mean())
    # The error returned to a search sweeper is 1 − the objective (the mean by default).
    assert app._returned(Summary.from_dict(summary)) == pytest.approx(1 - results["test_accuracy"].mean())


@pytest.mark.slow
def test_the_report_compares_the_two_jobs_seed_by_seed(two_jobs):
    folder, *_ = two_jobs
    table = sweep.report_sweep(folder)
    assert list(table["job"]) == ["lr=0.3", "lr=1"] and table["paired"].all()
    a, b = (pd.read_csv(folder / job / "results.csv")["test_accuracy"].to_numpy() for job in table["job"])
    assert table["difference"][1] == pytest.approx(np.mean(b - a))
    assert (folder / "summary.csv").is_file() and (folder / "accuracy.png").stat().st_size > 0


def test_a_bad_key_is_one_config_error():
    with pytest.raises(ConfigError, match="report.objective"):
        settings_of(*SMALL, "report.objective=best")


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("+train.epoch=5", "config key train.epoch: no such key (did you mean train.epochs?)"),
        ("+optimizer.lr=0.1", "config key optimizer.lr: no such key (did you mean optimizer.learning_rate?)"),
        (
            "+train.learning_rate=1",
            "config key train.learning_rate: no such key (did you mean optimizer.learning_rate?)",
        ),
        ("++foo=1", "config key foo: no such key"),
    ],
)
def test_a_key_the_schema_lacks_is_an_error_not_dropped(override, line):
    # Hydra's `+` adds it (Hydra's own message for `train.epoch=5` suggests `+train.epoch=5`),
    # and OmegaConf.to_object dropped it: the run trained its 5000 epochs without a word.
    with pytest.raises(ConfigError) as error:
        settings_of(override)
    assert str(error.value) == line


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("model=foo", "config group model: no option 'foo' (options: article, mlp)"),
        ("train.epoch=5", "config key train.epoch: no such key (did you mean train.epochs?)"),
        ("optimizer=sgd", "config key optimizer: a section, not a value; set its keys (optimizer.name, "),
        ("sweep=seeds", "Could not override 'sweep'. No match in the defaults list; To append to your "),
        ("model.hidden=[64,", "no viable alternative at input '[64,'; See https://hydra.cc/"),
        ("seeds.grid={split:", "no viable alternative at input '{split:'; See https://hydra.cc/"),
        ("report.baseline=optimizer.learning_rate=0.3", "mismatched input '=' expecting <EOF>; See "),
    ],
)
def test_hydras_composition_errors_become_one_line(override, line):
    with pytest.raises(Exception) as error:  # noqa: PT011 (Hydra's own exception, whichever it is)
        settings_of(override)
    assert not isinstance(error.value, ConfigError)  # Hydra's, before the project's validation
    message = app.composition_error(error.value)
    assert message.startswith(line) and "\n" not in message, message
    if "viable" in line:  # what a shell's split of an unquoted override gives
        assert message.endswith(
            "in a shell, quote an override that holds spaces: 'seeds.grid={split: 2, init: 3}'"
        )
    if "input '='" in line:  # the README's baseline typed without its inner quotes
        hint = "a value that holds '=' is quoted inside the override: \"report.baseline='a=1'\""
        assert message.endswith(hint)
        settings_of("report.baseline='optimizer.learning_rate=0.3'")  # as the README writes it now


def test_output_folder_check_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        callbacks._make_folder("/proc/nope/run", "hydra.run.dir")
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config key hydra.run.dir:"), lines


def test_the_progress_line_reaches_its_end(article_data):
    stream = io.StringIO()
    (train_set, test_set), sizes = article_data, Sizes(4, 3, 3)
    with progress.Progress(4 * 30, stream=stream):
        population = train_population(
            0, 4, sizes, (train_set.x, train_set.y), (test_set.x, test_set.y), epochs=30,
            learning_rate=0.3, progress=True,
        )  # fmt: skip
        jax.block_until_ready(population)
        jax.effects_barrier()  # every report of the program has reached the line
    assert "100%" in stream.getvalue() and "of 1.2e+02 seed-epochs" in stream.getvalue()
    assert not progress.wanted("auto", io.StringIO())  # not a terminal: no line


def test_the_progress_line_counts_the_users_seeds_and_draws_its_end_once(article_data):
    # 4 seeds train in a chunk of 32 (whole blocks), and 35 epochs report in blocks of 3:
    # the line counted the padding seeds, said 100% at an eighth of the run, and then drew
    # again on every report, past its total.
    stream = io.StringIO()
    (train_set, test_set), sizes = article_data, Sizes(4, 3, 3)
    with progress.Progress(4 * 35, stream=stream):
        population = train_population(
            0, 4, sizes, (train_set.x, train_set.y), (test_set.x, test_set.y), epochs=35,
            learning_rate=0.3, progress=True,
        )  # fmt: skip
        jax.block_until_ready(population)
        jax.effects_barrier()
    lines = [line for line in stream.getvalue().strip().split("\r") if line]
    shares = [int(line.split("]")[1].split("%")[0]) for line in lines]
    assert shares == sorted(shares) and shares.count(100) == 1, lines
    assert " 1.4e+02 of 1.4e+02 seed-epochs" in lines[-1]
    assert all(float(line.split("%")[1].split()[0]) <= 140 for line in lines)


def test_the_benchmarks_numpy_and_jax_timings_run_on_tiny_sizes(article_data):
    train_set, test_set = article_data
    assert bench.time_numpy(3, 2, train_set.x, train_set.y, "article") > 0
    data = tuple(np.asarray(a, np.float32) for a in (train_set.x, train_set.y, test_set.x, test_set.y))
    timing = bench.time_jax(3, 2, data, "autodiff", 500)
    assert timing["run_s"] > 0 and timing["compile_s"] > 0 and timing["program_mb"] > 0


def test_the_handwritten_forward_pass_is_the_packages(article_data):
    """The benchmark's baseline computes what the package computes (its flat layout)."""
    params = init_params(jax.random.key(3), Sizes(4, 3, 3))
    flat = np.concatenate([np.ravel(p) for p in jax.tree.leaves(params)])[:, None]  # (27, 1 seed)
    x = article_data[0].x
    np.testing.assert_allclose(handwritten.forward(flat, x)[..., 0], forward(params, x), rtol=1e-6)


@pytest.mark.slow
def test_a_params_file_without_its_names_is_a_store_error_naming_it(two_jobs, tmp_path):
    import numpy as np

    from gophernet_jax.store import StoreError, load_run

    with np.load(two_jobs[0] / "lr=0.3" / "params.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
    np.savez(tmp_path / "params.npz", **arrays, meta=np.array("{}"))
    with pytest.raises(StoreError, match=f"{tmp_path / 'params.npz'}: not a params file"):
        load_run(tmp_path)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model.activation=swish"], "model.activation"),
        (["model.init=zeros"], "model.init"),
        (["train.loss=hinge"], "train.loss"),
        (["optimizer.schedule=step"], "optimizer.schedule"),
        (["model.hidden=0"], "model.hidden"),
        (["model.hidden=-3"], "model.hidden"),
        (["model.hidden=[]"], "model.hidden"),
        (["model.hidden=[8,0]"], "model.hidden"),
        (["train.rule=article", "model.activation=tanh"], "train.rule"),
        (["train.rule=article", "train.loss=cross_entropy"], "train.rule"),
        (["train.rule=article", "model.hidden=[3,3]"], "train.rule"),
    ],
)
def test_a_bad_network_setting_is_one_line_naming_its_key(overrides, key):
    assert_bad_setting(key, *overrides)


def test_the_mlp_preset_is_where_a_user_starts():
    settings = settings_of("model=mlp", "model.hidden=[64,64]")
    assert (settings.model.widths(), settings.model.activation, settings.model.init) == (
        (64, 64), "tanh", "glorot_uniform",
    )  # fmt: skip
    assert (settings.train.loss, settings.optimizer.name) == ("cross_entropy", "adam")
    article = settings_of()
    assert (article.model.hidden, article.train.loss, article.optimizer.learning_rate) == (3, "sse", 0.3)


def test_a_compilation_cache_folder_that_cannot_be_made_is_an_error_and_the_default_a_note(
    tmp_path, monkeypatch, capsys
):
    # JAX warned on every program ("Error reading persistent compilation cache entry") and went on.
    with pytest.raises(ConfigError, match=r"^config key runtime.compilation_cache: cannot use /proc/nope: "):
        settings_of("runtime.compilation_cache=/proc/nope").runtime.usable_cache_folder()
    made = tmp_path / "made" / "cache"
    assert settings_of(f"runtime.compilation_cache={made}").runtime.usable_cache_folder() == str(made)
    assert made.is_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/nope")  # a default that cannot be made: a note, no cache
    default = settings_of().runtime
    assert default.usable_cache_folder() is None and default.usable_cache_folder() is None
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 1 and notes[0].startswith(
        "note: no compilation cache (/proc/nope/gophernet_jax/jax: "
    )


def test_a_runs_plots_name_its_optimizer_and_activation_where_they_are_not_the_articles():
    from gophernet_jax.job import run_label

    assert run_label(settings_of()) == "autodiff, lr 0.3, hidden 3"  # the article's, as before
    assert (
        run_label(settings_of("model=mlp")) == "autodiff, adam lr 0.01, hidden 32, tanh"
    )  # was "autodiff, lr 0.01, hidden 32"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["data.test_fraction=0.5"], "data.test_fraction"),  # the article's files come split
        (["data.noise=0.1"], "data.noise"),
        (["data.split_seed=3"], "data.split_seed"),
        (["data=iris", "data.labels=[a,b]"], "data.labels"),  # the article's files' columns
        (["data.order_seed=4"], "data.order_seed"),  # no mini-batches
        (["optimizer.warmup=0.5"], "optimizer.warmup"),  # no warm-up in a constant schedule
    ],
)
def test_a_setting_the_run_does_not_use_gets_a_note(overrides, key):
    from gophernet_jax.config import unused_settings

    notes = unused_settings(settings_of(*overrides))
    assert len(notes) == 1 and notes[0].startswith(key) and "does not use it" in notes[0], notes


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["data=iris", "data.test_fraction=0.5", "data.noise=0.1", "data.split_seed=3"],
        ["data.split_seed=3", "data.val_fraction=0.2"],  # draws the validation part
        ["data.order_seed=4", "train.batch_size=16"],
        ["optimizer.schedule=warmup_cosine", "optimizer.warmup=0.5"],
        ["+sweep=variance"],
        ["+sweep=variance_order"],
        ["+search=lr"],
        ["model=mlp", "data=digits"],
    ],
)
def test_settings_the_run_uses_get_no_note(overrides):
    from gophernet_jax.config import unused_settings

    assert unused_settings(settings_of(*overrides)) == []


def test_a_sweeps_interrupted_line_counts_its_finished_jobs_in_words(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "summary.json").write_text("{}")
    monkeypatch.setattr(app, "_running", {"output_dir": tmp_path / "c", "multirun": True})
    monkeypatch.chdir(tmp_path)
    assert app._interrupted_line() == (
        "interrupted: job c did not finish and was not kept; 1 finished job is kept in ., and the same "
        "command runs the rest"
    )  # it said "1 finished jobs are kept"
    (tmp_path / "b" / "summary.json").write_text("{}")
    assert "; 2 finished jobs are kept in ." in app._interrupted_line()


def test_a_split_asked_by_seeds_splits_on_the_articles_files_names_seeds_splits():
    assert_bad_setting("seeds.splits", "seeds.splits=2", "seeds.count=4")  # it named seeds.grid
