"""Seed slices: `seeds.start`, and a population trained as `seeds.slices` jobs
(`+sweep=slices`) that the sweep report pools into the one job it would have been."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import Done, assert_bad_setting, command, run_job, settings_of
from gophernet_jax import callbacks, sweep
from gophernet_jax.slices import EXACT_FLOATS

SMALL = ["train.epochs=30", "report.curve_every=0"]
#: What differs between two runs of the same population: time, and where it came from.
TIMING = {"phases", "compilations", "cache_hits", "compile_seconds", "training_seconds"}
TIMING |= {"seed_epochs_per_second", "seconds", "job_num", "pooled_from", "chunk"}


def exact(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, **EXACT_FLOATS)


def assert_same_population(pooled: Path, one: Path) -> None:
    """The pooled folder holds the one job's population, seed for seed, bit for bit."""
    assert (pooled / "results.csv").read_bytes() == (one / "results.csv").read_bytes()
    a, b = exact(pooled / "results.csv"), exact(one / "results.csv")
    for column in ("test_accuracy", "final_loss"):
        assert np.array_equal(a[column].to_numpy(), b[column].to_numpy())
    with np.load(pooled / "params.npz") as p, np.load(one / "params.npz") as q:
        assert all(np.array_equal(p[k], q[k]) for k in q.files)
    mine, theirs = (json.loads((f / "summary.json").read_text()) for f in (pooled, one))
    assert {k: v for k, v in mine.items() if k not in TIMING} == {
        k: v for k, v in theirs.items() if k not in TIMING
    }


@pytest.mark.slow
def test_seeds_from_start_are_the_seeds_of_a_population_from_0(tmp_path):
    whole = run_job(tmp_path / "whole", "seeds.count=10", *SMALL)
    part = run_job(tmp_path / "part", "seeds.count=5", "seeds.start=5", *SMALL)
    a, b = exact(tmp_path / "whole" / "results.csv"), exact(tmp_path / "part" / "results.csv")
    assert list(b["seed"]) == [5, 6, 7, 8, 9]  # the absolute index
    pd.testing.assert_frame_equal(a.iloc[5:].reset_index(drop=True), b, check_exact=True)
    with np.load(tmp_path / "whole" / "params.npz") as p, np.load(tmp_path / "part" / "params.npz") as q:
        assert list(q["seed"]) == [5, 6, 7, 8, 9]
        assert all(np.array_equal(p[k][5:], q[k]) for k in ("w_hidden", "b_hidden", "w_out", "b_out"))
    assert whole["pairing"]["init"] != part["pairing"]["init"]  # other seeds: never paired with seed 0..


@pytest.mark.slow
def test_slices_written_in_process_pool_into_the_one_job(tmp_path):
    """The report pools job folders that are slices (here without Hydra's config.yaml, as
    in a copied study: the summary's config says so)."""
    one = tmp_path / "one"
    run_job(one, "seeds.count=10", *SMALL)  # the shapes of the test above: compiled once
    folder = tmp_path / "sweep"
    for j, start in enumerate((0, 5)):
        overrides = ["seeds.count=10", "seeds.slices=2", f"seeds.start={start}", *SMALL]
        run_job(folder / f"seeds.start={start}", *overrides, job_num=j)
    sweep.report_sweep(folder)
    assert_same_population(folder / "pooled", one)
    assert sweep.report_or_status(folder, None, False) == 0


@pytest.mark.slow
@pytest.mark.parametrize("design", [["seeds.grid={split: 2, init: 4}"], ["seeds.splits=2", "seeds.count=8"]])
def test_slices_of_a_grid_pool_into_its_design(tmp_path, design):
    """A grid's slices are runs of its cells; pooled, the design's interval and variance
    components are the one job's."""
    one = tmp_path / "one"
    whole = run_job(one, "data=iris", *design, *SMALL)
    folder = tmp_path / "sweep"
    for start in (0, 4):
        overrides = ["data=iris", *design, "seeds.slices=2", f"seeds.start={start}", *SMALL]
        job = folder / f"seeds.start={start}"
        assert "variance" not in run_job(job, *overrides)  # a slice of a design has no design of its own
        (job / ".hydra").mkdir()
        OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")  # as Hydra quotes them
    sweep.report_sweep(folder)
    assert_same_population(folder / "pooled", one)
    assert whole["variance"] is not None and (folder / "pooled" / "variance.png").is_file()


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["seeds.start=-1"], "seeds.start"),
        (["seeds.start=abc"], "seeds.start"),
        (["seeds.start=1.5"], "seeds.start"),
        (["seeds.start=true"], "seeds.start"),
        (["seeds.count=10", "seeds.slices=3"], "seeds.slices"),
        (["seeds.count=10", "seeds.slices=0"], "seeds.slices"),
        (["seeds.count=10", "seeds.slices=two"], "seeds.slices"),
        (["seeds.count=10", "seeds.slices=2", "seeds.start=3"], "seeds.start"),
        (["seeds.count=10", "seeds.slices=2", "seeds.start=10"], "seeds.start"),
        (["data=iris", "seeds.grid={split: 2, init: 3}", "seeds.start=2"], "seeds.start"),
    ],
)
def test_a_bad_start_or_slices_is_one_line_naming_its_key(overrides, key):
    assert_bad_setting(key, *overrides)


def test_a_slice_of_a_grid_is_a_run_of_its_cells():
    settings = settings_of("data=iris", "seeds.grid={split: 2, init: 3}", "seeds.slices=3", "seeds.start=4")
    assert (settings.seeds.trained(), settings.seeds.start) == (2, 4)  # cells 4 and 5: split 1, init 1 and 2


def cli(where: Path, *args: str) -> Done:
    """The CLI in `where`: in this process, but for a launcher's sweep, whose workers print
    to the process's own stdout (what a test of their lines must read)."""
    launched = any(a.startswith("hydra/launcher=") for a in args)
    return command("-m", "gophernet_jax", *args, cwd=where, process=launched)


COUNT = ["seeds.count=10", *SMALL]  # slices of 5: the in-process tests' shapes, in the compilation cache


@pytest.fixture(scope="module")
def one_job(tmp_path_factory) -> Path:
    """The population as one CLI run trains it."""
    tmp = tmp_path_factory.mktemp("one")
    done = cli(tmp, *COUNT, f"hydra.run.dir={tmp / 'run'}")
    assert done.returncode == 0, done.stderr
    return tmp / "run"


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("joblib")
    args = ["+sweep=slices", "seeds.slices=2", *COUNT, "hydra/launcher=joblib"]
    args.append(f"hydra.sweep.dir={tmp / 's'}")
    done = cli(tmp, *args)
    assert done.returncode == 0, done.stderr
    assert "Joblib.Parallel(n_jobs=-1,backend=loky" in done.stdout + done.stderr  # its worker processes
    return tmp / "s", args


@pytest.mark.slow
def test_slices_under_joblib_pool_into_the_one_job(joblib_sweep, one_job):
    """joblib's launcher trains the jobs in worker processes of its own: the basic launcher's
    population, seed for seed."""
    folder, _ = joblib_sweep
    assert_same_population(folder / "pooled", one_job)
    assert not (folder / "pooled" / "incomplete.json").exists()
    pooled = json.loads((folder / "pooled" / "summary.json").read_text())
    assert [s["start"] for s in pooled["pooled_from"]] == [0, 5]


@pytest.mark.slow
def test_slices_under_submitit_local_pool_into_the_one_job(tmp_path, one_job):
    """submitit's local launcher (the SLURM launcher's stand-in): the jobs, each in a process
    of its own, give the basic launcher's population seed for seed."""
    args = ["+sweep=slices", "seeds.slices=2", *COUNT, "hydra/launcher=submitit_local"]
    done = cli(tmp_path, *args, "hydra.launcher.timeout_min=5", f"hydra.sweep.dir={tmp_path / 's'}")
    assert done.returncode == 0, done.stderr
    assert_same_population(tmp_path / "s" / "pooled", one_job)
    # The jobs really went through submitit: each left its logs and its pickled result.
    assert len(list((tmp_path / "s" / ".submitit").glob("*/*_result.pkl"))) == 2


@pytest.mark.slow
def test_a_missing_slice_is_named_and_a_rerun_trains_only_it(joblib_sweep, one_job, tmp_path, capsys):
    original, args = joblib_sweep
    folder = shutil.copytree(original, tmp_path / "s")
    lost = next(folder.glob("*seeds.start=5*"))
    shutil.rmtree(lost)
    assert sweep.main([str(folder)]) == 1  # the report again: `python -m gophernet_jax.sweep FOLDER`
    report = capsys.readouterr()
    assert "slice seeds.start=5 (seeds 5..9): missing" in report.err and "Traceback" not in report.err
    assert "INCOMPLETE" in report.out
    incomplete = json.loads((folder / "pooled" / "incomplete.json").read_text())
    assert incomplete["complete"] is False and len(incomplete["missing"]) == 1
    # no population is vouched for: every file of the complete pooling before is gone
    assert {p.name for p in (folder / "pooled").iterdir()} == {"incomplete.json"}

    rerun = cli(tmp_path, *[a for a in args if not a.startswith("hydra.")], f"hydra.sweep.dir={folder}")
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.count("skipped: this configuration already finished") == 1
    assert_same_population(folder / "pooled", one_job)
    assert not (folder / "pooled" / "incomplete.json").exists()


@pytest.mark.slow
def test_a_failed_slice_is_named_and_the_sweep_exits_1(joblib_sweep, tmp_path):
    folder = shutil.copytree(joblib_sweep[0], tmp_path / "s")
    failed = next(folder.glob("*seeds.start=0*"))
    (failed / "summary.json").unlink()
    (failed / "error.json").write_text(json.dumps({"status": "failed", "error": "out of memory"}))
    assert sweep.report_or_status(folder, None, False) == 1
    missing = json.loads((folder / "pooled" / "incomplete.json").read_text())["missing"]
    assert missing == [f"slice seeds.start=0 (seeds 0..4): failed in {failed.name}: out of memory"]


@pytest.mark.parametrize(
    "seeds, key",
    [
        ({"slices": 3}, "seeds.slices"),
        ({"slices": 8}, "seeds.slices"),
        ({"slices": 2, "start": 2}, "seeds.start"),
    ],
)
def test_a_slices_sweep_with_bad_seeds_stops_before_its_jobs(seeds, key, capsys):
    config = OmegaConf.create({"seeds": {"count": 8, **seeds}})
    with pytest.raises(SystemExit) as stop:
        callbacks.SliceCheck().on_multirun_start(config)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: config key {key}"), lines


@pytest.mark.slow
def test_a_slices_sweep_with_bad_slices_exits_2_with_one_line(tmp_path):
    done = cli(
        tmp_path, "+sweep=slices", "seeds.count=8", "seeds.slices=3", f"hydra.sweep.dir={tmp_path / 's'}"
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config key seeds.slices"), lines
    assert not any((tmp_path / "s").glob("*/summary.json"))  # nothing trained


@pytest.mark.slow
def test_a_bad_start_in_one_run_exits_2_with_one_line(tmp_path):
    done = cli(tmp_path, "seeds.start=-1", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config key seeds.start"), lines
