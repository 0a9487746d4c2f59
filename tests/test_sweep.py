"""Hydra multiruns end to end, in subprocesses, as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

SMALL = ["seeds.count=16", "train.epochs=60", "report.curve_every=20"]


def sweep(tmp: Path, *args: str, folder: str = "sweep") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gophernet_jax", *args, *SMALL, f"hydra.sweep.dir={tmp / folder}"]
    return subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def five_rates(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("five")
    done = sweep(tmp, "-m", "optimizer.learning_rate=0.03,0.1,0.3,1,3")
    assert done.returncode == 0, done.stderr
    return tmp / "sweep", done


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
        assert row["ci95_low"] <= row["mean"] <= row["ci95_high"]


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


def test_five_learning_rates_compile_the_training_program_once(five_rates):
    folder, _ = five_rates
    summary = pd.read_csv(folder / "summary.csv")
    assert summary["compilations"][0] >= 1
    assert list(summary["compilations"][1:]) == [0, 0, 0, 0]


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


def test_an_extended_sweep_runs_only_its_new_jobs(tmp_path):
    assert sweep(tmp_path, "-m", "optimizer.learning_rate=0.1,0.3").returncode == 0
    extended = sweep(tmp_path, "-m", "optimizer.learning_rate=0.03,0.1,0.3")
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout.count("skipped") == 2
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert sorted(summary["optimizer.learning_rate"]) == [0.03, 0.1, 0.3]
    assert list(summary["optimizer.learning_rate"])[0] == 0.03  # ordered as the latest sweep


def test_baseline_can_be_named(tmp_path):
    done = sweep(
        tmp_path, "-m", "optimizer.learning_rate=0.1,0.3", "report.baseline='optimizer.learning_rate=0.3'"
    )
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    base = summary[summary["optimizer.learning_rate"] == 0.3]
    assert (summary["baseline"] == base["job"].iloc[0]).all()
    assert base["difference"].iloc[0] == 0.0


def test_different_shapes_are_compared_unpaired(tmp_path):
    done = sweep(tmp_path, "-m", "model.hidden=3,5")
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(summary["paired"]) == [True, False]


def test_preset_runs_a_multirun_without_dash_m(tmp_path):
    done = sweep(tmp_path, "+sweep=rules")
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert len(summary) == 4
    assert set(zip(summary["train.rule"], summary["data.padding_row"])) == {
        ("article", True), ("article", False), ("autodiff", True), ("autodiff", False)}  # fmt: skip


def test_joblib_launcher_gives_the_basic_launchers_results(tmp_path):
    args = ["-m", "optimizer.learning_rate=0.1,0.3"]
    basic = sweep(tmp_path, *args, folder="basic")
    parallel = sweep(tmp_path, *args, "hydra/launcher=joblib", folder="joblib")
    assert basic.returncode == 0 and parallel.returncode == 0, parallel.stderr
    a, b = (pd.read_csv(tmp_path / f / "results.csv") for f in ("basic", "joblib"))
    columns = ["job", "seed", "train_accuracy", "test_accuracy", "final_loss", "diverged"]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def test_single_run_summary_is_strict_json_with_compile_counts(tmp_path):
    run = [sys.executable, "-m", "gophernet_jax", *SMALL, f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["compilations"] >= 1 and summary["compile_seconds"] > 0
    assert len(summary["config_hash"]) == 16
