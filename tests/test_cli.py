"""End-to-end tests of `python -m gophernet_jax` from a fresh folder: in this process (see
`conftest.command`), and in a process of its own where the test is about the process (the
entry point, a closed pipe, Ctrl-C)."""

import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import conftest
from conftest import Done, assert_ok, strict_json

SUMMARY_KEYS = {"count", "mean", "std", "min", "q05", "median", "q95", "max", "histogram", "mean_ci95"}
RESULT_COLUMNS = ["seed", "train_accuracy", "test_accuracy", "final_loss", "diverged"]
SWEEP = ["+sweep=seeds", "seeds.count=50", "train.epochs=30"]
DATA_HEADER = "sepal_length,sepal_width,petal_length,petal_width,setosa,virginica,versicolor"


def cli(where: Path, *overrides: str, process: bool = False) -> Done:
    """The CLI in `where`, writing its outputs to `where/run` (in this process unless `process`)."""
    return conftest.cli(where, *overrides, process=process)


def assert_one_line_error(run: Done, *needles: str) -> str:
    line = conftest.assert_one_line_error(run, *needles)
    assert not (run.dir / "results.csv").exists()
    assert not (run.dir / "summary.json").exists()
    return line


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory) -> Done:
    return cli(tmp_path_factory.mktemp("sweep"), *SWEEP)


# --- successful runs --------------------------------------------------------------------


@pytest.mark.slow
def test_single_seed_run(tmp_path):
    run = cli(tmp_path, "train.epochs=50", process=True)  # the entry point itself, as a shell runs it
    assert_ok(run)

    lines = [line for line in run.stdout.splitlines() if line.startswith("Accuracy")]
    assert len(lines) == 1, run
    match = re.match(r"^Accuracy = (\d\.\d\d)\b", lines[0])
    assert match, lines[0]
    assert re.search(r"\bseed 0\b", lines[0]), lines[0]
    assert "base seed 0" in lines[0]

    results = run.results()
    assert len(results) == 1
    assert set(RESULT_COLUMNS) <= set(results.columns)
    assert results["seed"].tolist() == [0]
    assert results["diverged"].tolist() == [False]
    assert np.isfinite(results["final_loss"]).all()
    assert match.group(1) == f"{results['test_accuracy'][0]:.2f}"

    summary = run.summary()
    acc = summary["test_accuracy"]
    assert SUMMARY_KEYS <= set(acc)
    assert acc["diverged"] == 0 and summary["diverged"] == 0
    assert acc["count"] == 1
    assert_allclose(acc["mean"], results["test_accuracy"][0], rtol=1e-12)
    assert acc["std"] == 0.0
    assert sum(acc["histogram"].values()) == 1
    assert summary["test_rows"] == 30 and summary["train_rows"] == 120
    assert summary["config"]["train"]["epochs"] == 50


@pytest.mark.slow
def test_seed_sweep(sweep_run):
    run = sweep_run
    assert_ok(run)

    results = run.results()
    assert len(results) == 50
    assert set(RESULT_COLUMNS) <= set(results.columns)
    assert results["seed"].tolist() == list(range(50))
    assert not results["diverged"].any()

    acc_values = results["test_accuracy"]
    summary = run.summary()
    acc = summary["test_accuracy"]
    assert SUMMARY_KEYS <= set(acc)
    assert acc["count"] == 50
    assert_allclose(acc["mean"], acc_values.mean(), rtol=1e-12)
    assert_allclose(acc["std"], acc_values.std(ddof=1), rtol=1e-9)
    assert acc["min"] == acc_values.min()
    assert acc["max"] == acc_values.max()
    assert_allclose(acc["median"], acc_values.median(), rtol=1e-12)
    assert acc["min"] <= acc["q05"] <= acc["median"] <= acc["q95"] <= acc["max"]
    low, high = acc["mean_ci95"]
    assert acc["min"] <= low <= acc["mean"] <= high <= acc["max"]
    assert sum(acc["histogram"].values()) == 50
    expected_histogram = acc_values.round(4).map(lambda v: f"{v:.4f}").value_counts().to_dict()
    assert acc["histogram"] == expected_histogram
    assert summary["diverged"] == 0 and acc["diverged"] == 0
    assert summary["train_accuracy"]["count"] == 50
    assert_allclose(summary["train_accuracy"]["mean"], results["train_accuracy"].mean(), rtol=1e-12)

    # The table: a heading, the spread, and one row per distinct accuracy.
    assert "test accuracy over 50 seeds" in run.stdout
    assert "accuracy  seeds  share" in run.stdout
    assert not re.search(r"^Accuracy = ", run.stdout, re.M)
    for value, count in acc["histogram"].items():
        assert re.search(rf"^\s+{re.escape(value)}\s+{count}\s", run.stdout, re.M), (value, run.stdout)


@pytest.mark.slow
def test_same_command_gives_identical_results(sweep_run, tmp_path):
    assert_ok(sweep_run)
    again = cli(tmp_path, *SWEEP)
    assert_ok(again)
    first, second = sweep_run.results()[RESULT_COLUMNS], again.results()[RESULT_COLUMNS]
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert sweep_run.summary()["test_accuracy"] == again.summary()["test_accuracy"]


@pytest.mark.slow
def test_padding_row(tmp_path):
    run = cli(tmp_path, "data.padding_row=true", "seeds.count=5", "train.epochs=20")
    assert_ok(run)
    summary = run.summary()
    assert summary["test_rows"] == 31
    assert summary["train_rows"] == 121
    assert "31 test rows" in run.stdout
    acc = run.results()["test_accuracy"].to_numpy()
    assert len(acc) == 5
    assert_allclose(acc * 31, np.round(acc * 31), atol=1e-4)


@pytest.mark.slow
def test_divergence_is_flagged_not_fatal(tmp_path):
    # 1e30 only saturates the sigmoids (finite loss); 1e38 overflows float32 to inf/nan.
    run = cli(
        tmp_path, "optimizer.learning_rate=1e38", "train.dtype=float32", "train.epochs=20", "seeds.count=5"
    )
    assert_ok(run)
    results = run.results()
    assert len(results) == 5
    diverged = results["diverged"]
    assert diverged.dtype == bool
    assert diverged.any()
    assert not np.isfinite(results.loc[diverged, "final_loss"]).any()
    summary = run.summary()
    assert summary["diverged"] == int(diverged.sum())
    assert summary["test_accuracy"]["diverged"] == int(diverged.sum())
    assert f"diverged seeds: {int(diverged.sum())}" in run.stdout


@pytest.mark.slow
def test_article_rule_in_float64(tmp_path):
    run = cli(tmp_path, "train.rule=article", "train.dtype=float64", "seeds.count=3", "train.epochs=10")
    assert_ok(run)
    results = run.results()
    assert results["seed"].tolist() == [0, 1, 2]
    assert not results["diverged"].any()
    assert np.isfinite(results["final_loss"]).all()
    summary = run.summary()
    assert summary["config"]["train"]["rule"] == "article"
    assert summary["config"]["train"]["dtype"] == "float64"
    assert summary["test_accuracy"]["count"] == 3
    assert "test accuracy over 3 seeds" in run.stdout


# --- bad input --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "override",
    [
        "train.epochs=0",
        "model.hidden=0",
        "seeds.count=0",
        "optimizer.learning_rate=0",
        "optimizer.learning_rate=-1",
        "optimizer.learning_rate=abc",
        "train.rule=foo",
        "train.dtype=float16",
    ],
)
def test_bad_config_value(tmp_path, override):
    key, value = override.split("=")
    line = assert_one_line_error(cli(tmp_path, override), key)
    assert value in line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["train.epoch=5"], ["config key train.epoch: no such key", "train.epochs"]),
        (["+train.epoch=5"], ["config key train.epoch: no such key", "train.epochs"]),
        (["optimizer=sgd"], ["config key optimizer: a section", "optimizer.name"]),
        (["+sweep=nope"], ["config group sweep: no option 'nope'", "seeds"]),
        (["-m", "model=mlp,foo"], ["config group model: no option 'foo'"]),
        (["-m", "+train.epoch=5", "optimizer.learning_rate=0.1,0.3"], ["config key train.epoch"]),
    ],
)
def test_a_mistyped_key_or_option_is_one_line_and_status_2(tmp_path, overrides, needles):
    # Hydra printed these on several lines and exited 1, a sweep's status for a failed job;
    # `+train.epoch=5`, the fix Hydra suggested, ran the default 5000 epochs.
    multirun = "-m" in overrides
    done = conftest.cli(tmp_path, *overrides, sweep_dir=tmp_path / "sweep" if multirun else None)
    conftest.assert_one_line_error(done, *needles, status=2)
    folder = tmp_path / ("sweep" if multirun else "run")
    assert not folder.exists() or not [*folder.rglob("*.csv"), *folder.rglob("summary.json")]  # no job ran


@pytest.mark.slow
def test_help_says_what_the_tool_does_and_its_commands_compose(tmp_path):
    done = conftest.cli(tmp_path, "--help")
    assert done.returncode == 0 and done.stdout.startswith("gophernet_jax: trains the 4-3-3"), done
    assert "== Configuration groups ==" in done.stdout and "model: article, mlp" in done.stdout
    commands = re.findall(r"^  python -m gophernet_jax ((?!-m ).*?)(?:  +\S.*)?$", done.stdout, re.MULTILINE)
    assert len(commands) == 4, commands  # one seed, +sweep=seeds, a table of your own, a search
    for overrides in commands:
        conftest.settings_of(*overrides.split())  # each composes and validates


@pytest.mark.slow
def test_hydras_full_error_of_the_user_still_gives_the_whole_trace(tmp_path):
    done = conftest.cli(tmp_path, "train.epoch=5", env=os.environ | {"HYDRA_FULL_ERROR": "1"})
    assert done.returncode == 1 and "Traceback" in done.stderr and "ConfigCompositionException" in done.stderr


@pytest.mark.slow
def test_bad_train_data(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{DATA_HEADER}\n0.1,0.2,0.3,0.4,1,0,0\n0.1,oops,0.3,0.4,0,1,0\n")
    line = assert_one_line_error(cli(tmp_path, f"data.train={bad}"), f"{bad}:3:")
    assert "oops" in line


@pytest.mark.slow
def test_missing_test_data(tmp_path):
    missing = tmp_path / "no_such_test.csv"
    assert_one_line_error(cli(tmp_path, f"data.test={missing}"), str(missing))


# --- the edges: a closed pipe, Ctrl-C ---------------------------------------------------


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_ends_nothing_and_prints_no_tracebacks(tmp_path):
    """`... | head -n 3`: the run finishes and writes its files; output after is dropped."""
    command = ["-m", "gophernet_jax", *SWEEP[:2], "train.epochs=20", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = conftest.start(*command, cwd=tmp_path)
    while "test accuracy" not in (line := proc.stdout.readline()) and line:
        pass  # the reader takes the report's first line and goes
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    assert "test accuracy over 50 seeds" in line
    assert "Logging error" not in stderr and "Traceback" not in stderr, stderr
    assert strict_json(tmp_path / "run" / "summary.json")["seeds"] == 50


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_with_one_line_and_no_summary(tmp_path):
    """Long enough (2000 seeds, 20000 epochs: about 20 s of training here) that the signal
    lands while training runs: it is sent once the progress line shows training under way,
    and under half done (a signal racing the run's end could find it finished)."""
    run = [sys.executable, "-m", "gophernet_jax", "seeds.count=2000", "train.epochs=20000"]  # argv for execv
    run += ["runtime.progress=true", f"hydra.run.dir={tmp_path / 'run'}"]
    # pytest-xdist's workers ignore SIGINT, and a child inherits an ignored signal (Python
    # then installs no handler): the CLI starts as from a shell, with SIGINT at its default,
    # set by a small launcher that then becomes the CLI (no preexec_fn in a threaded process).
    default = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    default += "os.execv(sys.argv[1], sys.argv[1:])"
    proc = conftest.start("-c", default, *run, cwd=tmp_path, text=False)
    assert proc.stderr.read(2) == b"\r["  # the progress line: compiled, training
    seen = b""
    while not seen.endswith(b"%"):
        seen += proc.stderr.read(1)
    assert int(seen.split(b"]")[-1].strip()[:-1]) < 50, seen
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    stderr = rest.decode().replace("\r", "\n")
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]
    assert lines == ["interrupted: the run did not finish; nothing of it was kept (run)"], stderr
    assert "Traceback" not in stderr + out.decode()
    assert not (tmp_path / "run" / "summary.json").exists()
    assert not list((tmp_path / "run").glob(".*.tmp"))
