import numpy as np
import pytest
from numpy.testing import assert_allclose

from gophernet_jax.statistics import bootstrap_mean_interval, compare, histogram, mean_interval, summarize


def test_summarize_matches_numpy():
    values = np.array([29, 30, 30, 28, 30, 29, 15]) / 30
    s = summarize(values)
    assert s["count"] == 7
    expected = [values.mean(), values.std(ddof=1), values.min(), np.median(values), values.max()]
    assert_allclose([s["mean"], s["std"], s["min"], s["median"], s["max"]], expected)
    assert_allclose([s["q05"], s["q95"]], np.quantile(values, [0.05, 0.95]))
    assert s["histogram"] == {"0.5000": 1, "0.9333": 1, "0.9667": 2, "1.0000": 3}
    low, high = s["mean_ci95"]
    assert low < s["mean"] < high


def test_histogram_counts_every_seed_once():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 31, 1000) / 30
    assert sum(histogram(values).values()) == 1000


def test_mean_interval_stays_inside_the_observed_range_and_collapses_on_one_value():
    assert mean_interval(np.ones(50)) == (1.0, 1.0)
    low, high = mean_interval(np.array([1.0] * 98 + [29 / 30] * 2))
    assert low < 1.0 and high == 1.0
    assert mean_interval(np.array([0.7])) == (0.7, 0.7)


def test_t_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):
        low, high = mean_interval(rng.normal(0.5, 0.1, 40))
        hits += low <= 0.5 <= high
    assert 0.91 < hits / 400 < 0.99


def test_paired_comparison_counts_seed_by_seed():
    base = np.array([1.0, 0.9, 0.8, 0.9, 1.0])
    other = np.array([1.0, 1.0, 0.7, 1.0, 1.0])
    r = compare(base, other, paired=True)
    assert r["paired"] is True
    assert r["mean_difference"] == pytest.approx(0.02)
    assert (r["p_better"], r["p_tie"], r["p_worse"]) == (0.4, 0.4, 0.2)
    low, high = r["difference_ci95"]
    assert low <= r["mean_difference"] <= high


def test_paired_comparison_of_equal_populations_is_exactly_zero():
    a = np.random.default_rng(2).integers(25, 31, 100) / 30
    r = compare(a, a, paired=True)
    assert r["difference_ci95"] == [0.0, 0.0] and r["p_tie"] == 1.0


def test_paired_bootstrap_interval_shrinks_with_more_seeds():
    rng = np.random.default_rng(3)
    d_small, d_large = rng.normal(0.01, 0.02, 50), rng.normal(0.01, 0.02, 5000)
    width = [np.subtract(*bootstrap_mean_interval(d)[::-1]) for d in (d_small, d_large)]
    assert width[1] < width[0] / 5


def test_unpaired_comparison_reports_the_chance_a_random_seed_beats_another():
    a, b = np.zeros(10), np.ones(10)
    r = compare(a, b, paired=False)
    assert r["paired"] is False and r["p_better"] == 1.0 and r["mean_difference"] == 1.0
    with pytest.raises(ValueError, match="equal seed counts"):
        compare(np.zeros(3), np.zeros(4), paired=True)
