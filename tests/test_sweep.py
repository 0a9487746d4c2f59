"""Hydra multiruns end to end, as a user runs them (in this process, see `conftest.command`)."""

import json
import os
import re
import shutil
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from conftest import Done, cli, command, run_job, strict_json
from gophernet_jax.plots import curves_figure
from gophernet_jax.sweep import collect, report_sweep

SMALL = ["seeds.count=16", "train.epochs=60", "report.curve_every=20"]
REPO = Path(__file__).resolve().parent.parent


def sweep(tmp: Path, *args: str, folder: str = "sweep") -> Done:
    return cli(tmp, *args, *SMALL, sweep_dir=tmp / folder)


@pytest.fixture(scope="module")
def five_rates(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("five")
    done = sweep(tmp, "-m", "optimizer.learning_rate=0.03,0.1,0.3,1,3")
    assert done.returncode == 0, done.stderr
    return tmp / "sweep", done


@pytest.fixture(scope="module")
def two_rates(five_rates, tmp_path_factory) -> Path:
    """A finished sweep `-m optimizer.learning_rate=0.1,0.3`: a job's folder is named by its
    overrides, so it is two of the five-rate sweep's jobs and their report. Tests that run
    more sweeps on it work on a copy."""
    folder = tmp_path_factory.mktemp("two") / "sweep"
    for job in pd.read_csv(five_rates[0] / "summary.csv")["job"]:
        if job.startswith(("optimizer.learning_rate=0.1,", "optimizer.learning_rate=0.3,")):
            shutil.copytree(five_rates[0] / job, folder / job)
    report_sweep(folder)
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    shutil.copytree(folder, tmp_path / "sweep")
    return tmp_path / "sweep"


@pytest.mark.slow
def test_summary_has_one_row_per_job_matching_its_results(five_rates):
    folder, _ = five_rates
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["optimizer.learning_rate"]) == [0.03, 0.1, 0.3, 1, 3]
    assert (summary["status"] == "ok").all() and (summary["seeds"] == 16).all()
    long = pd.read_csv(folder / "results.csv")
    assert len(long) == 5 * 16
    for _, row in summary.iterrows():
        job = pd.read_csv(folder / row["job"] / "results.csv")["test_accuracy"]
        mine = long[long["optimizer.learning_rate"] == row["optimizer.learning_rate"]]["test_accuracy"]
        assert_allclose(mine.to_numpy(), job.to_numpy())
        assert_allclose([row["mean"], row["std"], row["min"], row["median"], row["max"]],
                        [job.mean(), job.std(), job.min(), job.median(), job.max()])  # fmt: skip
        if row["min"] < row["max"]:
            assert row["ci95_low"] <= row["mean"] <= row["ci95_high"]
        else:  # every seed scores the same: no spread, no interval
            assert np.isnan(row["ci95_low"]) and np.isnan(row["ci95_high"])


@pytest.mark.slow
def test_paired_differences_against_the_first_job(five_rates):
    folder, done = five_rates
    summary = pd.read_csv(folder / "summary.csv")
    base = pd.read_csv(folder / summary["job"][0] / "results.csv")["test_accuracy"].to_numpy()
    assert (summary["baseline"] == summary["job"][0]).all() and summary["paired"].all()
    for _, row in summary.iterrows():
        other = pd.read_csv(folder / row["job"] / "results.csv")["test_accuracy"].to_numpy()
        d = other - base
        assert row["difference"] == pytest.approx(d.mean())
        assert row["difference_ci95_low"] <= row["difference"] <= row["difference_ci95_high"]
        shares = [row["p_better"], row["p_tie"], row["p_worse"]]
        assert_allclose(shares, [np.mean(d > 0), np.mean(d == 0), np.mean(d < 0)])
    assert "p_better" in done.stdout and "diff_lo" in done.stdout
    table = done.stdout[done.stdout.index("sweep of 5 jobs") :].splitlines()
    baseline = next(line.split() for line in table if line.split()[:1] == ["0.03"])
    assert baseline[-3:] == ["-", "-", "-"]  # its holds, p_out and verdict: nothing to compare
    assert "None" not in "\n".join(table)  # a missing value prints as "-" whatever its column


@pytest.mark.slow
def test_each_jobs_likely_cause_is_a_column_of_the_summary(five_rates):
    # Rates 1 and 3 on the article's summed loss collapse every seed of 16: summary.json names
    # the summed loss, and the sweep's table carries it beside the counts; 0.03-0.3 train.
    folder, done = five_rates
    summary = pd.read_csv(folder / "summary.csv")
    for _, row in summary.iterrows():
        cause = strict_json(folder / row["job"] / "summary.json").get("cause")
        assert (row["cause"] if isinstance(row["cause"], str) else None) == (cause and cause["kind"])
    failed = summary["collapsed"] + summary["diverged"] >= summary["seeds"] / 2
    assert list(failed) == [False, False, False, True, True]
    assert list(summary["cause"][failed]) == ["summed_loss", "summed_loss"]
    lines = done.stdout.splitlines()
    header = next(line.split() for line in lines if line.lstrip().startswith("optimizer.learning_rate "))
    assert header[-1] == "verdict" and "cause" in header


@pytest.mark.slow
def test_five_learning_rates_compile_the_training_program_once(five_rates):
    folder, _ = five_rates
    summary = pd.read_csv(folder / "summary.csv")
    # The first job compiles its programs (or loads them from the compilation cache)...
    assert summary["compilations"][0] + summary["cache_hits"][0] >= 1
    # ...and the other four reuse them in memory: nothing compiled, nothing loaded.
    assert list(summary["compilations"][1:]) == [0, 0, 0, 0]
    assert list(summary["cache_hits"][1:]) == [0, 0, 0, 0]


@pytest.mark.slow
def test_plots_are_written_and_open(five_rates):
    folder, _ = five_rates
    for png in [folder / "accuracy.png", folder / "curves.png"]:
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
        assert image.std() > 0.01  # not a blank canvas
    job = pd.read_csv(folder / "summary.csv")["job"][0]
    curves = pd.read_csv(folder / job / "curves.csv")
    assert list(curves["epoch"]) == [0, 20, 40, 60]
    assert (curves["loss_q05"] <= curves["loss_median"]).all()
    assert (curves["loss_median"] <= curves["loss_q95"]).all()
    assert (folder / job / "accuracy.png").is_file() and (folder / job / "curves.png").is_file()


@pytest.mark.slow
def test_a_bad_value_fails_its_job_only_and_a_rerun_skips_finished_jobs(tmp_path):
    first = sweep(tmp_path, "-m", "optimizer.learning_rate=0.1,abc,0.3")
    assert first.returncode != 0
    assert "Traceback" not in first.stderr + first.stdout
    assert "config key optimizer.learning_rate" in first.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(summary["status"]) == ["ok", "failed", "ok"]
    assert "expected a number > 0" in summary["error"][1]
    good = summary[summary["status"] == "ok"]["job"]
    stamps = {job: (tmp_path / "sweep" / job / "summary.json").stat().st_mtime_ns for job in good}

    second = sweep(tmp_path, "-m", "optimizer.learning_rate=0.1,abc,0.3")
    assert second.stdout.count("skipped: this configuration already finished") == 2
    assert stamps == {job: (tmp_path / "sweep" / job / "summary.json").stat().st_mtime_ns for job in good}


@pytest.mark.slow
def test_an_extended_sweep_runs_only_its_new_jobs(two_rates, tmp_path):
    copy_of(two_rates, tmp_path)
    extended = sweep(tmp_path, "-m", "optimizer.learning_rate=0.03,0.1,0.3")
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout.count("skipped") == 2
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert sorted(summary["optimizer.learning_rate"]) == [0.03, 0.1, 0.3]
    assert list(summary["optimizer.learning_rate"])[0] == 0.03  # ordered as the latest sweep


@pytest.mark.slow
def test_baseline_can_be_named(two_rates, tmp_path):
    # The same sweep again with a baseline named: report.baseline changes no result, so
    # both jobs are skipped, and only the comparison changes.
    copy_of(two_rates, tmp_path)
    done = sweep(
        tmp_path, "-m", "optimizer.learning_rate=0.1,0.3", "report.baseline='optimizer.learning_rate=0.3'"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("skipped") == 2
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    base = summary[summary["optimizer.learning_rate"] == 0.3]
    assert (summary["baseline"] == base["job"].iloc[0]).all()
    assert base["difference"].iloc[0] == 0.0


@pytest.mark.slow
def test_different_shapes_are_compared_unpaired(tmp_path):
    for num, hidden in enumerate((3, 5)):
        run_job(tmp_path / "sweep" / f"hidden={hidden}", f"model.hidden={hidden}", *SMALL, job_num=num)
    summary = report_sweep(tmp_path / "sweep")
    assert list(summary["paired"]) == [True, False]
    assert summary["unpaired_because"][1] == "different initial weights"


@pytest.mark.slow
def test_different_data_sets_are_never_paired(tmp_path):
    """iris and wine: other shapes and other test rows, whatever the config keys say."""
    done = sweep(tmp_path, "-m", "data=iris,wine")
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(summary["paired"]) == [True, False]
    assert summary["unpaired_because"][1] == "different initial weights; different test rows"
    assert "different test rows" in done.stdout or "paired" in done.stdout


@pytest.mark.slow
def test_the_same_splits_pair_and_other_splits_do_not(tmp_path):
    args = ["data=iris", "seeds.vary=[init,split]", *SMALL]
    for num, (split, rate) in enumerate([(0, 0.1), (0, 0.3), (1, 0.1), (1, 0.3)]):
        overrides = [f"data.split_seed={split}", f"optimizer.learning_rate={rate}"]
        run_job(tmp_path / "sweep" / f"{num}", *overrides, *args, job_num=num)
    report_sweep(tmp_path / "sweep")
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    summary = summary.set_index(["data.split_seed", "optimizer.learning_rate"])
    assert summary.loc[(0, 0.3), "paired"] and not summary.loc[(1, 0.1), "paired"]
    assert summary.loc[(1, 0.1), "unpaired_because"] == "different test rows"


@pytest.mark.slow
def test_a_newcomers_first_multirun_of_one_seed_per_job_is_reported(tmp_path):
    done = cli(tmp_path, "-m", "model.hidden=3,8", "train.epochs=30", sweep_dir=tmp_path / "one")
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(tmp_path / "one" / "summary.csv")
    assert list(summary["seeds"]) == [1, 1] and (summary["status"] == "ok").all()
    assert summary["difference_ci95_low"].isna().all()  # no interval from one seed...
    assert summary["comparison_note"].notna().all()  # ...and the table says why


@pytest.mark.slow
def test_a_failed_baseline_still_gets_its_summary_and_a_non_zero_exit(tmp_path):
    done = sweep(tmp_path, "-m", "optimizer.learning_rate=abc,0.3")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(summary["status"]) == ["failed", "ok"]
    assert "baseline" in done.stderr


@pytest.mark.slow
def test_a_report_that_fails_says_so_in_one_line_and_exits_non_zero(five_rates):
    folder, _ = five_rates
    broken = folder.parent / "broken"
    shutil.copytree(folder, broken)
    job = pd.read_csv(folder / "summary.csv")["job"][2]
    (broken / job / "curves.csv").write_text("")  # a finished job's file, emptied since
    done = command("-m", "gophernet_jax.sweep", broken, cwd=broken.parent)
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the sweep report failed"), done.stderr
    assert f"{broken / job / 'curves.csv'} is unreadable" in lines[0]


@pytest.mark.slow
def test_a_sweep_resumed_from_a_moved_checkout_skips_its_finished_jobs(five_rates, tmp_path):
    """Data are known by content, and runtime settings and the baseline do not count."""
    folder = tmp_path / "sweep"
    shutil.copytree(five_rates[0], folder)
    for name in ("gophernet_jax", "conf", "data"):
        shutil.copytree(REPO / name, tmp_path / "moved" / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "moved")}
    rerun = ["-m", "gophernet_jax", "-m", "optimizer.learning_rate=0.03,0.1,0.3,1,3", *SMALL]
    rerun += [
        "runtime.progress=false",
        "report.baseline='optimizer.learning_rate=0.3'",
        f"hydra.sweep.dir={folder}",
    ]
    done = command(*rerun, cwd=tmp_path, env=env)  # a process of its own: PYTHONPATH finds the copy
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("skipped: this configuration already finished") == 5
    where = ["-c", "import gophernet_jax; print(gophernet_jax.__file__)"]
    found = command(*where, cwd=tmp_path, env=env).stdout
    assert str(tmp_path / "moved") in found  # the moved copy ran, not this checkout


@pytest.mark.slow
def test_job_files_hold_no_machine_paths(five_rates):
    folder, _ = five_rates
    job = folder / pd.read_csv(folder / "summary.csv")["job"][0]
    for path in (job / "summary.json", job / ".hydra" / "config.yaml", job / "app.log"):
        text = path.read_text()
        assert str(REPO) not in text and str(folder) not in text, path
    with np.load(job / "params.npz") as params:
        assert str(REPO) not in str(params["meta"])
    summary = strict_json(job / "summary.json")
    assert summary["config"]["data"]["train"] == "shipped:train.csv"


def test_committed_studies_hold_no_machine_paths():
    pattern = re.compile(r"(?<![\w.:])/(?:[\w.+-]+/)+(?:data|conf|sweeps)/")
    for path in (REPO / "sweeps").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".yaml", ".csv", ".log"}:
            assert not pattern.search(path.read_text()), path


@pytest.mark.slow
def test_preset_runs_a_multirun_without_dash_m(tmp_path):
    done = sweep(tmp_path, "+sweep=lr")
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(summary["optimizer.learning_rate"]) == [0.03, 0.1, 0.3, 1, 3]
    assert (summary["seeds"] == 16).all()  # the command line's seeds.count overrides the preset's


@pytest.mark.slow
def test_single_run_summary_is_strict_json_with_compile_counts(tmp_path):
    # A process of its own: this process's programs are compiled already, and its cache is on.
    done = cli(tmp_path, *SMALL, "runtime.compilation_cache=false", process=True)
    assert done.returncode == 0, done.stderr
    summary = strict_json(tmp_path / "run" / "summary.json")
    assert summary["compilations"] >= 1 and summary["compile_seconds"] > 0
    assert summary["cache_hits"] == 0
    assert len(summary["config_hash"]) == 16
    phases = summary["phases"]
    assert set(phases) == {"load", "compile", "train", "score", "write"} and min(phases.values()) >= 0
    assert sum(phases.values()) <= summary["seconds"] + 1e-6
    log = (tmp_path / "run" / "app.log").read_text()  # the report is logged, not only printed
    assert "test accuracy over 16 seeds" in log and "results in run" in log


@pytest.mark.slow
def test_a_truncated_summary_is_an_unfinished_job_that_runs_again(two_rates, tmp_path):
    folder = copy_of(two_rates, tmp_path)
    job = next(folder.glob("optimizer.learning_rate=0.3,*"))
    text = (job / "summary.json").read_text()
    (job / "summary.json").write_text(text[: len(text) // 2])  # as a full disk leaves it
    table = report_sweep(folder)  # the report stands, and says which file
    assert list(table["status"]) == ["ok", "incomplete"]
    assert table["error"][1].startswith(f"{job / 'summary.json'} is unreadable (")
    done = sweep(tmp_path, "-m", "optimizer.learning_rate=0.1,0.3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("skipped: this configuration already finished") == 1
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, done.stderr
    assert notes[0].startswith(f"note: {job.relative_to(tmp_path) / 'summary.json'} is unreadable (")
    assert notes[0].endswith("); running the job again")
    assert strict_json(job / "summary.json")["seeds"] == 16
    assert list(pd.read_csv(folder / "summary.csv")["status"]) == ["ok", "ok"]


@pytest.mark.slow
@pytest.mark.parametrize("cut", ["missing", "short"])
def test_a_finished_jobs_missing_or_short_results_run_again(two_rates, tmp_path, cut):
    # The report stopped on it (exit 3), and a resume skipped the job, so nothing mended it.
    folder = copy_of(two_rates, tmp_path)
    job = next(folder.glob("optimizer.learning_rate=0.3,*"))
    results = job / "results.csv"
    if cut == "missing":
        results.unlink()
        why = f"{results} is unreadable ("
    else:
        results.write_text("".join(results.read_text().splitlines(keepends=True)[:11]))
        why = f"{results} holds 10 seeds where the job trained 16"
    table = report_sweep(folder)
    assert list(table["status"]) == ["ok", "incomplete"]
    error = table["error"][1]
    assert error.startswith(why) and error.endswith(": the sweep run again trains it again")
    done = sweep(tmp_path, "-m", "optimizer.learning_rate=0.1,0.3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("skipped: this configuration already finished") == 1
    assert len(pd.read_csv(results)) == 16
    assert list(pd.read_csv(folder / "summary.csv")["status"]) == ["ok", "ok"]


def test_a_sweep_over_the_loss_plots_each_loss_on_an_axis_of_its_own(tmp_path):
    """The design study trains `sse` (½·Σ over 120 rows, in the tens) beside `cross_entropy`
    (a mean, in the hundredths): each gets a panel named for it, holding its own jobs only.
    Two of its jobs, one of each loss, read as the report reads them."""
    for loss in ("sse", "cross_entropy"):
        job = f"+sweep=design,loss={loss},model.activation=sigmoid,model.init=uniform01"
        shutil.copytree(REPO / "sweeps" / "reference-design" / job, tmp_path / job)
    curves = list(collect(tmp_path)[2]["curves"].values())
    assert sorted(loss for _, _, loss in curves) == ["cross_entropy", "sse"]
    frames, losses = {label: frame for label, frame, _ in curves}, {label: loss for label, _, loss in curves}
    figure = curves_figure(frames, losses)
    *loss_axes, accuracy_axis = figure.axes
    names = {
        "training loss (½·Σ squared error)": "sse",
        "training loss (cross-entropy, mean over rows)": "cross_entropy",
    }
    assert sorted(ax.get_ylabel() for ax in loss_axes) == sorted(names)
    for ax in loss_axes:
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == [f"loss={names[ax.get_ylabel()]}"]  # the swept key names each job
    assert accuracy_axis.get_ylabel() == "test accuracy" and len(accuracy_axis.get_lines()) == 2
    matplotlib.pyplot.close(figure)


def test_past_four_curves_the_legend_goes_under_the_panels():
    frame = pd.DataFrame({"epoch": [0, 10], "test_accuracy_median": [0.5, 0.9], "loss_median": [3.0, 1.0]})
    frame = frame.assign(loss_q05=frame.loss_median, loss_q95=frame.loss_median)
    frame = frame.assign(
        test_accuracy_q05=frame.test_accuracy_median, test_accuracy_q95=frame.test_accuracy_median
    )
    for count, inside in ((4, True), (5, False)):
        labels = [f"job {i}" for i in range(count)]
        figure = curves_figure(dict.fromkeys(labels, frame), dict.fromkeys(labels, "sse"))
        accuracy_axis = figure.axes[-1]
        assert (accuracy_axis.get_legend() is not None) == inside and len(figure.legends) == (not inside)
        shown = (accuracy_axis.get_legend() if inside else figure.legends[0]).get_texts()
        assert [text.get_text() for text in shown] == labels
        matplotlib.pyplot.close(figure)


def test_a_loss_within_a_decade_keeps_its_axis_name_on_the_figure():
    """A mean loss from 0.4 to 0.03: matplotlib's own tick labels (4×10⁻¹) were wider than the
    figure's margin and pushed the axis's name off the canvas."""
    loss, accuracy = np.geomspace(0.4, 0.03, 5), np.linspace(0.4, 1.0, 5)
    frame = pd.DataFrame({"epoch": np.arange(0, 201, 50), "loss_median": loss, "loss_q05": 0.9 * loss})
    frame = frame.assign(loss_q95=1.1 * loss, test_accuracy_median=accuracy)
    frame = frame.assign(test_accuracy_q05=accuracy - 0.05, test_accuracy_q95=accuracy)
    figure = curves_figure({"one job": frame}, {"one job": "mse"})
    figure.canvas.draw()
    assert figure.axes[0].yaxis.label.get_window_extent().x0 >= 0
    assert "0.1" in [label.get_text() for label in figure.axes[0].get_yticklabels()]
    matplotlib.pyplot.close(figure)


def test_curves_with_no_finite_loss_still_draw():
    """Every seed diverged from its first epoch: a log axis of nothing finite stopped the
    figure (matplotlib: "Data cannot be log-scaled"), and with it the run's report."""
    frame = pd.DataFrame({"epoch": [0, 50, 100], "test_accuracy_median": [0.0] * 3})
    frame = frame.assign(**dict.fromkeys(["loss_q05", "loss_median", "loss_q95"], np.nan))
    frame = frame.assign(test_accuracy_q05=0.0, test_accuracy_q95=0.0)
    figure = curves_figure({"one job": frame}, {"one job": "sse"})
    figure.canvas.draw()
    loss_axis = figure.axes[0]
    assert loss_axis.get_yscale() == "linear"
    assert [t.get_text() for t in loss_axis.texts] == ["no finite loss to draw"]
    matplotlib.pyplot.close(figure)
    finite = frame.assign(loss_median=[2.0, 1.0, np.nan])  # one finite value is a log axis again
    figure = curves_figure({"one job": finite}, {"one job": "sse"})
    assert figure.axes[0].get_yscale() == "log" and not figure.axes[0].texts
    matplotlib.pyplot.close(figure)


@pytest.mark.slow
@pytest.mark.parametrize("study", ["reference-rules", "reference-design"])
def test_a_committed_studys_report_is_what_the_report_writes_from_its_jobs(tmp_path, study):
    """The committed report is current: written again from the committed jobs (no training),
    every column and row is the same, numbers to 1e-12 (NumPy's sums may round otherwise on
    another CPU), the rest exactly."""
    copy = tmp_path / study
    shutil.copytree(REPO / "sweeps" / study, copy)
    done = command("-m", "gophernet_jax.sweep", copy, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    committed = pd.read_csv(REPO / "sweeps" / study / "summary.csv")
    written = pd.read_csv(copy / "summary.csv")
    assert list(written.columns) == list(committed.columns)
    assert len(written) == len(committed) and "cause" in written.columns
    for column in committed.columns:
        if pd.api.types.is_float_dtype(committed[column]) and pd.api.types.is_float_dtype(written[column]):
            assert_allclose(written[column], committed[column], rtol=1e-12, atol=0, err_msg=column)
        else:
            assert written[column].equals(committed[column]), column


def test_a_folder_without_sweep_jobs_is_one_line_and_status_2(tmp_path, capsys):
    from gophernet_jax import sweep

    run = tmp_path / "run"  # what a single run leaves: its files, and Hydra's .hydra/ beside them
    (run / ".hydra").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, hint in ((run, "a single run's folder"), (empty, "no job of a sweep")):
        assert sweep.main([str(folder)]) == 2  # was 3: "the sweep report failed: KeyError: 'status'"
        lines = capsys.readouterr().err.strip().splitlines()
        assert (
            len(lines) == 1
            and lines[0].startswith(f"error: {folder}: no job of a sweep")
            and hint in lines[0]
        )
        assert not (folder / "summary.csv").exists()  # nothing written


def test_the_plots_name_a_swept_number_to_4_digits():
    from gophernet_jax.sweep import _short

    # A search's trial: optimizer.learning_rate=0.24933911076384513 filled a legend.
    assert [_short(v) for v in ("0.24933911076384513", "0.3", "1000", "1e-05", "3.0")] == [
        "0.2493", "0.3", "1000", "1e-05", "3",
    ]  # fmt: skip
    assert [_short(v) for v in ("sse", "False", "[64,64]", "tanh")] == ["sse", "False", "[64,64]", "tanh"]


@pytest.mark.slow
def test_the_plots_name_jobs_shortly_unless_that_would_merge_two(tmp_path):
    small = ["seeds.count=4", "train.epochs=5", "report.curve_every=5"]
    named = {  # 0.300001 and 0.300002 would both read 0.3: they keep every digit
        ("0.123456", "0.5"): ["optimizer.learning_rate=0.1235", "optimizer.learning_rate=0.5"],
        ("0.300001", "0.300002"): ["optimizer.learning_rate=0.300001", "optimizer.learning_rate=0.300002"],
    }
    for k, (rates, want) in enumerate(named.items()):
        for j, rate in enumerate(rates):
            run_job(tmp_path / str(k) / f"lr={rate}", f"optimizer.learning_rate={rate}", *small, job_num=j)
        _, _, extras = collect(tmp_path / str(k))
        assert sorted(label for label, _ in extras["accuracies"].values()) == want
        assert sorted(label for label, *_ in extras["curves"].values()) == want


def test_a_baseline_is_one_job_named_by_folder_or_swept_values():
    # report.baseline=3 stopped the report with "TypeError: argument of type 'int' is not
    # iterable" (exit 3), 'model.hidden=[8,8]' with a ValueError, a key not swept matched no
    # job without saying why, 0.30 did not name the job of 0.3, and a value that several
    # jobs share silently picked the first.
    from gophernet_jax.sweep import ReportError, _pick_baseline

    jobs = ["lr=0.1,hidden=[4,4]", "lr=0.3,hidden=[4,4]", "lr=0.3,hidden=[8,8]"]
    summary = pd.DataFrame({
        "optimizer.learning_rate": [0.1, 0.3, 0.3], "model.hidden": ["[4,4]", "[4,4]", "[8,8]"],
        "trial": [0, 1, 2], "job": jobs, "status": ["ok", "ok", "ok"],
    })  # fmt: skip

    def picked(baseline):
        return _pick_baseline(summary, summary, baseline, search=False)["job"]

    assert picked(None) == jobs[0]
    assert picked(jobs[2]) == jobs[2]
    assert picked("model.hidden=[8,8]") == jobs[2]
    assert picked("optimizer.learning_rate=0.30,model.hidden=[4,4]") == jobs[1]
    for baseline, message in [
        (3, "'3' is neither a job's folder name nor key=value pairs of the swept keys"),
        (
            "train.epochs=200",
            "train.epochs is not a swept key of this sweep (optimizer.learning_rate, model.hidden)",
        ),
        (
            "optimizer.learning_rate=0.3",
            f"'optimizer.learning_rate=0.3' matches 2 jobs ({jobs[1]}, {jobs[2]})",
        ),
        ("optimizer.learning_rate=1", "no job matches 'optimizer.learning_rate=1'"),
    ]:
        with pytest.raises(ReportError) as error:
            picked(baseline)
        assert str(error.value).startswith(f"config key report.baseline: {message}")


@pytest.mark.slow
def test_a_comparison_across_tie_rules_or_of_collapsed_seeds_under_the_articles_says_so(tmp_path, capsys):
    # At learning rate 30 every seed collapses; under report.ties=article its ties with the
    # true class count correct, so the sweep judged the dead networks "better", no word said.
    sweep_dir = tmp_path / "sweep"
    common = ("seeds.count=4", "train.epochs=20", "optimizer.learning_rate=30")
    for number, ties in enumerate(("strict", "article")):
        run_job(sweep_dir / f"ties={ties}", *common, f"report.ties={ties}", job_num=number)
    table = report_sweep(sweep_dir)
    assert list(table["collapsed"]) == [4, 4]
    note = table.set_index("job")["comparison_note"]["ties=article"]
    assert note == (
        "report.ties article against the baseline's strict: tied rows count otherwise; this job: 4 of 4 "
        "seeds collapsed, their tied rows counted correct by report.ties=article"
    )
    assert f"note: ties=article: {note}" in capsys.readouterr().out


def test_a_search_folder_reported_again_is_reported_as_a_search(tmp_path, monkeypatch):
    # Without --search its baseline became trial 0, summary.json said "search": false and
    # search.png stayed as the search left it.
    from gophernet_jax import sweep as sweep_module

    asked = []
    monkeypatch.setattr(sweep_module, "report_or_status", lambda _, baseline, search: asked.append(search))
    for name, search in [("study.journal", True), ("optimization_results.yaml", True), ("other.txt", False)]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_text("")
        sweep_module.main([str(folder)])
        assert asked.pop() is search, name
    (tmp_path / "other.txt" / "summary.json").write_text('{"jobs": [], "search": true}')
    sweep_module.main([str(tmp_path / "other.txt")])
    sweep_module.main([str(tmp_path / "study.journal"), "--no-search"])
    assert asked == [True, False]


@pytest.mark.slow
def test_a_search_trials_interrupted_job_is_a_note_not_a_failure(two_rates, tmp_path, capsys):
    # Nothing runs an interrupted trial again, so its folder made every later report exit 1.
    from gophernet_jax.sweep import report_or_status

    folder = copy_of(two_rates, tmp_path)
    job = folder / "optimizer.learning_rate=23.4"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- optimizer.learning_rate=23.4\n")
    (job / "error.json").write_text(json.dumps({"status": "interrupted", "error": "trial 2, interrupted"}))
    assert report_or_status(folder, None, False) == 0
    assert "note: job optimizer.learning_rate=23.4: trial 2, interrupted" in capsys.readouterr().err
    assert list(pd.read_csv(folder / "summary.csv")["status"]) == ["ok", "ok", "interrupted"]
    (job / "error.json").write_text(json.dumps({"status": "failed", "error": "out of memory"}))
    assert report_or_status(folder, None, False) == 1  # a failed job still fails the sweep


def test_a_sweep_folder_that_is_not_there_is_named_so(tmp_path, capsys):
    from gophernet_jax import sweep as sweep_module

    assert sweep_module.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'}: no such folder\n"  # "not a folder"
    (tmp_path / "file").write_text("")
    assert sweep_module.main([str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'file'}: not a folder\n"
