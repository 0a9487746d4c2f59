"""The test set in a run (issue 16): rows.csv, summary.json's test_set, the poke source and the
sweep report's decisions, checked against recomputations from the written files alone.

Jobs run in this process (`conftest.run_job`); only the exit-status test starts the CLI.
"""

import json

import jax
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from conftest import assert_bad_setting, assert_one_line_error, cli, run_job, settings_of, strict_json
from gophernet_jax import Sizes, job, sweep, testrows
from gophernet_jax.config import DATA_DIR
from gophernet_jax.summary import Summary
from gophernet_jax.training import initial_params

SMALL = ["seeds.count=24", "train.epochs=80", "report.curve_every=0"]


@pytest.fixture(scope="module")
def two_rates(tmp_path_factory):
    """Two jobs of the article's files whose seeds pair (the learning rate is traced: one compile)."""
    folder = tmp_path_factory.mktemp("rates")
    run_job(folder / "lr=0.3", *SMALL, "optimizer.learning_rate=0.3", job_num=0)
    run_job(folder / "lr=1", *SMALL, "optimizer.learning_rate=1", job_num=1)
    return folder


@pytest.fixture(scope="module")
def split_grid(tmp_path_factory):
    """A crossed design of 3 splits × 5 initialisations of iris: every split its own test rows."""
    folder = tmp_path_factory.mktemp("grid") / "job"
    run_job(folder, "data=iris", "seeds.grid={split: 3, init: 5}", "train.epochs=80", "report.curve_every=0")
    return folder


def _files(folder):
    rows, results = pd.read_csv(folder / "rows.csv"), pd.read_csv(folder / "results.csv")
    return rows, results, strict_json(folder / "summary.json")


def _recomputed(rows: pd.DataFrame, accuracy: np.ndarray) -> dict[str, float]:
    """Jordan's three variances of one split, from rows.csv's correct shares and results.csv."""
    n, seeds = len(rows), len(accuracy)
    eps = 1 - rows["correct_share"].to_numpy()
    observed = np.var(accuracy, ddof=1)
    v = seeds / (seeds - 1) * eps * (1 - eps)  # the variance over seeds (ddof 1) of a 0/1 error
    return {
        "observed_variance": observed,
        "independent_errors_variance": np.sum(eps * (1 - eps)) / n**2,
        "distribution_variance": n / (n - 1) * (observed - np.sum(v) / n**2),
    }


def _churn(rows: pd.DataFrame, seeds: int) -> float:
    shares = rows[[c for c in rows.columns if c.startswith("share_")] + ["tied_share"]].to_numpy()
    agree = np.sum(shares * (seeds * shares - 1), axis=1) / (seeds - 1)
    return float(np.mean(1 - agree))


@pytest.mark.slow
def test_the_test_set_figures_are_those_of_rows_csv_and_results_csv(two_rates):
    rows, results, summary = _files(two_rates / "lr=0.3")
    section, accuracy = summary["test_set"], results["test_accuracy"].to_numpy()
    assert section["rows"] == len(rows) == 30 and section["seeds"] == 24
    for key, value in _recomputed(rows, accuracy).items():
        assert section[key] == pytest.approx(value, rel=1e-9, abs=1e-15), key
    low, high = section["distribution_variance_ci95"]
    assert low <= high
    assert rows["correct_share"].mean() == pytest.approx(accuracy.mean())  # the rows hold the seeds' scores
    shares = rows[[c for c in rows.columns if c.startswith("share_")] + ["tied_share"]].sum(axis=1)
    assert_allclose(shares, 1.0)
    assert section["churn"] == pytest.approx(_churn(rows, 24), rel=1e-12)
    assert section["error_rate"] == pytest.approx(1 - accuracy.mean())


@pytest.mark.slow
def test_rows_are_the_lines_of_the_article_file_and_their_labels(two_rates):
    rows = pd.read_csv(two_rates / "lr=0.3" / "rows.csv")
    assert list(rows["row"]) == list(range(2, 32))  # the header is line 1
    test = pd.read_csv(DATA_DIR / "test.csv")
    classes = ["setosa", "virginica", "versicolor"]
    labels = np.asarray(classes)[np.argmax(test[classes].to_numpy(), axis=1)]
    assert_array_equal(rows["label"], labels[rows["row"] - 2])
    wrong = rows["top_wrong"].dropna()
    assert (wrong != rows.loc[wrong.index, "label"]).all()
    padded = job.load_data(settings_of("data.padding_row=true"))
    assert padded.test_row_ids[-1] == -1 and list(padded.test_row_ids[:-1]) == list(range(2, 32))


@pytest.mark.slow
def test_the_packed_correct_rows_are_each_seeds_accuracy(two_rates):
    correct, groups = testrows.load_correct(two_rates / "lr=0.3")
    results = pd.read_csv(two_rates / "lr=0.3" / "results.csv")
    assert correct.shape == (24, 30) and groups is None
    assert_array_equal(correct.sum(axis=1) / 30, results["test_accuracy"])
    rows = pd.read_csv(two_rates / "lr=0.3" / "rows.csv")
    assert_allclose(correct.mean(axis=0), rows["correct_share"])
    assert (two_rates / "lr=0.3" / "rows.png").stat().st_size > 0


@pytest.mark.slow
def test_within_each_split_and_pooled_with_seed_weights(split_grid):
    rows, results, summary = _files(split_grid)
    section = summary["test_set"]
    assert section["splits"] == 3 and section["pooled"] and len(section["per_split"]) == 3
    pooled = {}
    for split, part in rows.groupby("split"):
        accuracy = results.loc[results["split_seed"] == split, "test_accuracy"].to_numpy()
        found = _recomputed(part, accuracy)
        for key, value in found.items():
            assert section["per_split"][split][key] == pytest.approx(value, abs=1e-15), key
            pooled[key] = pooled.get(key, 0.0) + value / 3  # five seeds each: equal weights
    for key, value in pooled.items():
        assert section[key] == pytest.approx(value, abs=1e-15), key
    churns = [_churn(part, 5) for _, part in rows.groupby("split")]
    assert section["churn"] == pytest.approx(np.mean(churns), rel=1e-12)
    # each split's rows are rows of the table, with the table's labels
    table = pd.read_csv(DATA_DIR / "iris.csv")
    assert_array_equal(rows["label"], table["species"].to_numpy()[rows["row"]])


@pytest.mark.slow
def test_the_corrected_interval_over_splits_is_its_formula(split_grid, stats):
    _, results, summary = _files(split_grid)
    corrected = summary["test_accuracy"]["corrected"]
    means = results.groupby("split_seed")["test_accuracy"].mean().to_numpy()
    factor = 1 / 3 + summary["test_rows"] / summary["train_rows"]
    half = stats.t.ppf(0.975, 2) * np.sqrt(factor * np.var(means, ddof=1))
    assert corrected["variance_factor"] == pytest.approx(factor)
    assert_allclose(corrected["ci95"], [means.mean() - half, means.mean() + half], rtol=1e-9)
    assert "Nadeau" in corrected["method"]
    line = testrows.format_corrected(corrected)[0]
    assert f"[{corrected['ci95'][0]:.4f}, {corrected['ci95'][1]:.4f}]" in line and "Nadeau" in line


def test_poke_level_0_is_the_seeds_own_weights_and_level_1_one_float_step_of_one():
    sizes, grid = Sizes(4, 3, 3), {"init": 3, "poke": 3}
    plain = jax.tree.leaves(initial_params(0, 3, sizes))
    poked = jax.tree.leaves(initial_params(0, 9, sizes, grid=grid))
    for init in range(3):
        own = np.concatenate([a[init].ravel() for a in plain])
        for level in range(3):
            found = np.concatenate([a[3 * init + level].ravel() for a in poked])
            moved = np.flatnonzero(found.view(np.uint32) != own.view(np.uint32))
            if level == 0:
                assert moved.size == 0
                continue
            assert moved.size == 1, moved
            step = found[moved[0]]
            assert step in (np.nextafter(own[moved[0]], np.inf), np.nextafter(own[moved[0]], -np.inf))


@pytest.mark.slow
def test_a_poked_population_trains_level_0_as_the_unpoked_seeds_bit_for_bit(two_rates, tmp_path):
    """12 initialisations × 2 pokes against the first 12 seeds of the unpoked job, file to file."""
    run_job(tmp_path, "seeds.grid={init: 12, poke: 2}", *SMALL[1:], "optimizer.learning_rate=0.3")
    poked, plain = (pd.read_csv(folder / "results.csv") for folder in (tmp_path, two_rates / "lr=0.3"))
    assert_array_equal(poked["init_seed"], np.repeat(np.arange(12), 2))
    assert_array_equal(poked["poke_seed"], np.tile([0, 1], 12))
    level0 = poked[poked["poke_seed"] == 0].reset_index(drop=True)
    columns = ["train_accuracy", "test_accuracy", "final_loss"]
    pd.testing.assert_frame_equal(level0[columns], plain[columns].iloc[:12], check_exact=True)
    with np.load(tmp_path / "params.npz") as a, np.load(two_rates / "lr=0.3" / "params.npz") as b:
        arrays = [k for k in a.files if k not in ("meta", "seed")]
        for k in arrays:
            assert_array_equal(a[k][::2], b[k][:12])
    summary = strict_json(tmp_path / "summary.json")
    assert summary["variance"]["sources"] == ["init", "poke"]
    assert summary["pairing"]["init"] != strict_json(two_rates / "lr=0.3" / "summary.json")["pairing"]["init"]


@pytest.mark.slow
def test_the_sweep_report_decides_every_comparison(two_rates):
    table = sweep.report_sweep(two_rates)
    assert list(table["job"]) == ["lr=0.3", "lr=1"] and table["paired"].all()
    other = table.iloc[1]
    a, b = (pd.read_csv(two_rates / j / "results.csv")["test_accuracy"].to_numpy() for j in table["job"])
    assert other["p_outperform"] == pytest.approx(np.mean((b > a) + 0.5 * (b == a)))
    low, high = other["p_outperform_ci95_low"], other["p_outperform_ci95_high"]
    assert low <= other["p_outperform"] <= high
    from gophernet_jax.testset import verdict

    assert other["verdict"] == verdict(low, high, 0.75)
    assert other["seeds_needed_for_decision"] == 29  # Noether at α = β = 0.05, γ = 0.75
    rows_low, rows_high = (
        other["difference_ci95_seeds_and_rows_low"],
        other["difference_ci95_seeds_and_rows_high"],
    )
    assert rows_low <= other["difference"] <= rows_high
    # over seeds and rows is wider than over seeds alone: the rows are drawn too
    assert rows_high - rows_low >= other["difference_ci95_high"] - other["difference_ci95_low"]
    assert table.iloc[0]["verdict"] is None  # the baseline beside itself
    document = json.loads((two_rates / "summary.json").read_text())
    assert document["jobs"][1]["verdict"] == other["verdict"]


@pytest.mark.slow
def test_the_verdicts_gamma_is_a_report_key(two_rates, capsys):
    assert sweep.report_or_status(two_rates, None, False, gamma=1.5) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config key report.gamma:"), lines
    table = sweep.report_sweep(two_rates, gamma=0.6)  # a smaller gain to detect needs more seeds
    assert table.iloc[1]["seeds_needed_for_decision"] > 29


@pytest.mark.slow
def test_the_report_prints_the_interval_asked_for(two_rates):
    summary = Summary.from_json(two_rates / "lr=0.3" / "summary.json")
    population = None  # many seeds: the report reads the summary alone
    shown = job.format_report(population, summary, 0, "seeds_and_rows")
    assert "multi-bootstrap" in shown and "t over seeds" not in shown
    assert "t over seeds" in job.format_report(population, summary, 0)
    low, high = summary.test_accuracy["mean_ci95_seeds_and_rows"]
    assert low <= summary.test_accuracy["mean"] <= high
    lines = testrows.format_test_set(summary.test_set)
    assert "test rows account for" in lines[0] and lines[1].startswith("  churn")


@pytest.mark.parametrize(
    "override, key",
    [
        ("report.interval=rows", "report.interval"),
        ("report.gamma=0.5", "report.gamma"),
        ("report.gamma=1", "report.gamma"),
        ("seeds.grid={init: 20, poke: 1}", "seeds.grid.poke"),
    ],
)
def test_a_bad_test_set_setting_is_one_line_naming_its_key(override, key):
    assert_bad_setting(key, override)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, key",
    [("report.interval=rows", "report.interval"), ("report.gamma=2", "report.gamma")]
    + [("seeds.grid={init: 3, poke: 1}", "seeds.grid.poke")],
)
def test_the_cli_stops_on_a_bad_test_set_setting_with_exit_2(tmp_path, override, key):
    line = assert_one_line_error(cli(tmp_path, override), status=2)
    assert line.startswith(f"error: config key {key}"), line


@pytest.mark.slow
def test_the_decisions_stand_beside_a_failed_job(two_rates, tmp_path):
    import shutil

    folder = tmp_path / "sweep"
    shutil.copytree(two_rates, folder)
    failed = folder / "lr=abc"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text("- optimizer.learning_rate=abc\n")
    (failed / "error.json").write_text(
        json.dumps({"status": "failed", "error": "config key optimizer.learning_rate"})
    )
    table = sweep.report_sweep(folder)
    assert list(table["status"]) == ["ok", "ok", "failed"]
    assert table.iloc[1]["verdict"] is not None and table.iloc[2]["verdict"] is None
