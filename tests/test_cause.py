"""The report's likely cause: one line, and summary.json's `cause`, when at least half the
seeds collapse or diverge; nothing for a population that trains. In this process
(`conftest.run_job`), on the article's files and small populations."""

import logging

import numpy as np
import pytest

from conftest import run_job, settings_of, strict_json
from gophernet_jax.cause import likely_cause
from gophernet_jax.summary import Summary

FEW = ["+sweep=seeds", "seeds.count=6", "report.curve_every=0"]


def job_lines(tmp_path, caplog, *overrides: str) -> tuple[dict, list[str]]:
    """Runs a job in this process; its summary.json and the report's cause lines."""
    with caplog.at_level(logging.INFO, logger="gophernet_jax.app"):
        document = run_job(tmp_path / "run", *overrides)
    assert strict_json(tmp_path / "run" / "summary.json") == document
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("likely cause")]
    return document, lines


@pytest.mark.slow
def test_dead_networks_name_the_summed_loss_and_a_rate_scaled_to_the_rows(tmp_path, caplog):
    # Learning rate 30 on the article's loss summed over its 120 rows: every seed collapses.
    document, lines = job_lines(tmp_path, caplog, *FEW, "train.epochs=20", "optimizer.learning_rate=30")
    assert document["collapsed"] == 6
    assert document["cause"]["kind"] == "summed_loss" and document["cause"]["seeds"] == 6
    assert len(lines) == 1
    (line,) = lines
    assert "6 of 6 seeds collapsed" in line and "learning rate 30 is on a loss summed over 120 rows" in line
    assert "model=mlp" in line and "optimizer.learning_rate=0.3" in line  # the article's step on 120 rows
    assert Summary.from_dict(document).cause.line == document["cause"]["line"]  # read back, typed


@pytest.mark.slow
def test_divergence_names_the_learning_rate(tmp_path, caplog):
    # 1e38 overflows float32 (tests/test_cli.py): the loss goes non-finite.
    document, lines = job_lines(tmp_path, caplog, *FEW, "train.epochs=20", "optimizer.learning_rate=1e38")
    assert 2 * document["diverged"] >= 6
    assert document["cause"]["kind"] == "divergence"
    (line,) = lines
    assert "diverged" in line and "non-finite" in line and "lower optimizer.learning_rate" in line


@pytest.mark.slow
def test_a_healthy_run_prints_no_cause(tmp_path, caplog):
    document, lines = job_lines(tmp_path, caplog, *FEW, "train.epochs=20")
    assert document["collapsed"] == document["diverged"] == 0
    assert "cause" not in document and lines == []
    assert Summary.from_dict(document).cause is None


@pytest.mark.slow
def test_a_wide_uniform01_layer_is_named_as_saturation(tmp_path, caplog):
    # The article's rate on a mean (mse) rules out the summed loss; 32 units of U[0, 1) weights
    # saturate the outputs' sigmoids.
    overrides = [*FEW, "train.epochs=20", "model.hidden=32", "train.loss=mse"]
    document, lines = job_lines(tmp_path, caplog, *overrides)
    assert document["cause"]["kind"] == "saturation", document["collapsed"]
    (line,) = lines
    assert "model.init=uniform01" in line and "model.init=glorot_uniform" in line and "model=mlp" in line


def counts(seeds: int, failed: int, diverged: int = 0) -> tuple[np.ndarray, np.ndarray]:
    flags = np.arange(seeds) < failed
    return flags & (np.arange(seeds) < diverged), flags & (np.arange(seeds) >= diverged)


@pytest.mark.parametrize(("failed", "named"), [(4, False), (5, True), (10, True)])
def test_a_cause_is_named_from_half_the_seeds_on(failed, named):
    settings = settings_of("optimizer.learning_rate=30")
    cause = likely_cause(settings, 120, 4, *counts(10, failed))
    assert (cause is not None) == named


def test_a_mini_batch_sums_over_its_rows_and_a_mean_loss_is_not_blamed():
    batched = settings_of("optimizer.learning_rate=3", "train.batch_size=50")
    cause = likely_cause(batched, 80_000, 10, *counts(4, 4))
    assert cause.kind == "summed_loss" and "the 50 rows of a batch (train.batch_size)" in cause.line
    mean = settings_of("model=mlp", "optimizer.learning_rate=3")
    cause = likely_cause(mean, 80_000, 10, *counts(4, 4))
    assert cause.kind == "unknown" and "model=mlp" not in cause.line
    assert "optimizer.learning_rate" in cause.line


def test_a_synthetic_tables_defaults_name_the_rows():
    # The 100 000-row table of issue 18: 80 000 training rows, learning rate 0.3 on their sum.
    cause = likely_cause(settings_of(), 80_000, 10, *counts(50, 50))
    assert cause.kind == "summed_loss"
    assert "the learning rate 0.3 is on a loss summed over 80000 rows" in cause.line
    assert "optimizer.learning_rate=0.00045" in cause.line


def test_rows_png_of_many_test_rows_draws_areas(tmp_path):
    # A table's 20 000 test rows (docs/scale.md) took 90 s as a bar per row; areas past 2000.
    import pandas as pd

    from gophernet_jax.plots import plot_rows

    rows = 5000
    share = np.random.default_rng(0).random(rows)
    table = pd.DataFrame(
        {
            "row": np.arange(rows),
            "label": np.array(["a", "b"])[np.arange(rows) % 2],
            "correct_share": share,
            "tied_share": 0.0,
            "share_a": share,
            "share_b": 1 - share,
        }
    )
    plot_rows(table, tmp_path / "rows.png", 50)
    assert (tmp_path / "rows.png").stat().st_size > 0


def rows_table(correct: np.ndarray, classes: int):
    """A rows.csv frame: row r of class r % classes, right on `correct[r]` of the seeds, the
    rest predicting the next class."""
    import pandas as pd

    rows = len(correct)
    label = np.arange(rows) % classes
    table = pd.DataFrame({"row": np.arange(rows), "label": [f"c{k}" for k in label]})
    table["correct_share"], table["tied_share"] = correct, 0.0
    for k in range(classes):
        table[f"share_c{k}"] = np.where(label == k, correct, 0.0) + np.where(
            (label + 1) % classes == k, 1 - correct, 0.0
        )
    return table


def test_rows_png_past_80_rows_leaves_out_the_rows_every_seed_gets_right_and_no_class_is_grey():
    from matplotlib.colors import to_rgba

    from gophernet_jax.plots import rows_figure

    correct = np.ones(300)
    correct[[5, 50, 150, 250]] = [0.5, 0.25, 0.0, 0.75]
    fig = rows_figure(rows_table(correct, 10), 16)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["150 c0", "50 c0", "5 c5", "250 c0"]  # hardest first, named as at 30 rows
    assert "the 296 rows every seed gets right are left out" in ax.get_title(loc="left")
    handles, names = ax.get_legend_handles_labels()
    tied = to_rgba(handles[names.index("tied")].patches[0].get_facecolor())
    assert len(names) == 12  # 10 classes, tied, correct
    class_colours = [
        to_rgba(handles[names.index(f"predicted c{k}")].patches[0].get_facecolor()) for k in range(10)
    ]
    assert len(set(class_colours)) == 10 and tied not in class_colours  # d7 was C7, the tie's grey
    few = rows_figure(rows_table(np.ones(30), 3), 16).axes[0]  # 30 rows: all of them, as before
    assert len(few.get_xticklabels()) == 30 and "left out" not in few.get_title(loc="left")
    everything = rows_figure(rows_table(np.ones(100), 3), 16).axes[0]
    assert [t.get_text() for t in everything.texts] == ["every seed gets every test row right"]


def test_divergence_suggests_a_scaled_rate_only_when_it_is_lower():
    diverged = np.ones(4, bool), np.zeros(4, bool)
    high = likely_cause(settings_of("optimizer.learning_rate=1e38"), 120, 4, *diverged)
    assert high.kind == "divergence" and "e.g. optimizer.learning_rate=0.3" in high.line
    low = likely_cause(settings_of("optimizer.learning_rate=0.1"), 120, 4, *diverged)
    assert low.kind == "divergence" and "e.g." not in low.line
