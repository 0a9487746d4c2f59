import itertools
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import gophernet_jax.statistics as statistics
from conftest import assert_ok, command
from gophernet_jax.statistics import (
    OBJECTIVES,
    best_of_n,
    bootstrap_mean_interval,
    compare,
    histogram,
    mean_interval,
    objective,
    seeds_needed,
    summarize,
)


def _json(result):
    """The result as JSON, refusing NaN and infinities."""
    return json.loads(json.dumps(result, allow_nan=False))


def test_summarize_matches_numpy():
    values = np.array([29, 30, 30, 28, 30, 29, 15]) / 30
    s = summarize(values)
    assert s["count"] == 7 and s["non_finite"] == 0 and s["reason"] is None
    expected = [values.mean(), values.std(ddof=1), values.min(), np.median(values), values.max()]
    assert_allclose([s["mean"], s["std"], s["min"], s["median"], s["max"]], expected)
    assert_allclose([s["q05"], s["q95"]], np.quantile(values, [0.05, 0.95]))
    assert s["histogram"] == {"0.5000": 1, "0.9333": 1, "0.9667": 2, "1.0000": 3}
    assert s["mean_ci95"] == list(mean_interval(values, bounds=(0.0, 1.0)))
    assert s["mean_ci95_method"] == "t over seeds"
    low, high = s["mean_ci95"]
    assert low < s["mean"] < high
    assert s["best_of_n"] == best_of_n(values)
    assert s["seeds_needed"] == seeds_needed(values.std(ddof=1), 0.005)


def test_histogram_counts_every_seed_once():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 31, 1000) / 30
    assert sum(histogram(values).values()) == 1000


def test_mean_interval_stays_inside_its_bounds_not_the_observed_range():
    assert mean_interval(np.ones(50)) == (1.0, 1.0)
    low, high = mean_interval(np.array([1.0] * 98 + [29 / 30] * 2), bounds=(0.0, 1.0))
    assert low < 1.0 and high == 1.0
    # 19 seeds at 0.9667 and one at 0.8333: the mean can lie above 0.9667 (other seeds reach
    # 1.0); the interval clipped to the values' range ended there, short of its level.
    values = np.r_[np.full(19, 29 / 30), 25 / 30]
    t = statistics._t_quantile(0.975, 19) * values.std(ddof=1) / np.sqrt(20)
    assert mean_interval(values, bounds=(0.0, 1.0)) == (values.mean() - t, values.mean() + t)
    assert values.mean() + t > 29 / 30
    assert mean_interval(np.array([0.7])) == (0.7, 0.7)
    assert mean_interval(np.array([])) is None


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
    r = _json(compare(base, other, paired=True))
    assert r["paired"] is True and r["count_baseline"] == r["count_other"] == 5
    assert r["mean_difference"] == pytest.approx(0.02)
    assert (r["p_better"], r["p_tie"], r["p_worse"]) == (0.4, 0.4, 0.2)
    low, high = r["difference_ci95"]
    assert low <= r["mean_difference"] <= high
    assert r["difference_ci95_method"] == "bootstrap over seeds"


def test_paired_comparison_of_equal_populations_is_exactly_zero():
    a = np.random.default_rng(2).integers(25, 31, 100) / 30
    r = compare(a, a, paired=True)
    assert r["difference_ci95"] == [0.0, 0.0] and r["p_tie"] == 1.0
    assert r["difference_ci95_simultaneous"] == [0.0, 0.0] and r["holds"] is False


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


def test_unpaired_shares_are_exact_against_every_pair():
    rng = np.random.default_rng(4)
    a, b = rng.integers(20, 31, 300) / 30, rng.integers(22, 31, 170) / 30
    r = compare(a, b, paired=False)
    diff = b[:, None] - a[None, :]
    expected = [np.mean(diff > 0), np.mean(diff == 0), np.mean(diff < 0)]
    assert_allclose([r["p_better"], r["p_tie"], r["p_worse"]], expected, rtol=1e-12)
    assert (r["count_baseline"], r["count_other"]) == (300, 170)
    assert r["mean_difference"] == pytest.approx(b.mean() - a.mean())


@pytest.mark.parametrize("paired", [True, False])
def test_compare_of_a_million_seeds_keeps_memory_small(paired):
    rng = np.random.default_rng(5)
    a, b = rng.integers(20, 31, 1_000_000) / 30, rng.integers(21, 31, 1_000_000) / 30
    tracemalloc.start()
    r = compare(a, b, paired=paired)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MB"  # measured ~17 MB paired, ~10 MB not
    assert r["mean_difference"] == pytest.approx(np.mean(b - a), abs=1e-12)
    low, high = r["difference_ci95"]
    se = np.std(b - a if paired else np.concatenate([a - a.mean(), b - b.mean()]), ddof=1) / 1000
    assert low < r["mean_difference"] < high
    assert high - low == pytest.approx(2 * 1.96 * se * (1 if paired else np.sqrt(2)), rel=0.1)


def test_count_bootstrap_matches_resampling_the_seeds():
    rng = np.random.default_rng(6)
    values = rng.choice(np.arange(24, 31) / 30, size=300, p=[0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.3])
    resamples = 20_000
    plain = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    expected = np.quantile(plain, [0.025, 0.975])
    found = bootstrap_mean_interval(values, resamples=resamples, seed=7)
    spread = values.std() / np.sqrt(values.size)  # the resampled means' exact std
    assert_allclose(found, expected, atol=0.1 * spread)
    assert found[1] - found[0] == pytest.approx(2 * 1.96 * spread, rel=0.05)


def test_level_bootstrap_matches_resampling_the_gathered_grid():
    rng = np.random.default_rng(8)
    grid = rng.normal(size=(8, 1)) + rng.normal(size=(1, 6)) + 0.3 * rng.normal(size=(8, 6))
    resamples = 20_000
    gathered = np.empty(resamples)
    for r in range(resamples):
        rows, cols = rng.integers(0, 8, 8), rng.integers(0, 6, 6)
        gathered[r] = grid[np.ix_(rows, cols)].mean()
    expected = np.quantile(gathered, [0.025, 0.975])
    found = bootstrap_mean_interval(grid.ravel(), resamples=resamples, seed=9, design={"split": 8, "init": 6})
    assert_allclose(found, expected, atol=0.1 * gathered.std())


def test_a_source_with_one_level_is_held_fixed():
    values = np.random.default_rng(10).integers(20, 31, 5 * 4) / 30
    two = summarize(values, design={"split": 5, "init": 4})
    three = summarize(values, design={"split": 5, "order": 1, "init": 4})
    assert three["mean_ci95"] == two["mean_ci95"]
    assert two["mean_ci95_method"] == "bootstrap over the levels of split, init"
    assert three["mean_ci95_method"] == "bootstrap over the levels of split, init (order held fixed)"
    with pytest.raises(ValueError, match="does not lay out 20 seeds"):
        summarize(values, design={"split": 5, "init": 5})


def test_level_bootstrap_covers_a_crossed_design_where_the_t_interval_does_not():
    rng = np.random.default_rng(11)
    design, hits_levels, hits_t, trials = {"split": 12, "init": 12}, 0, 0, 200
    for trial in range(trials):
        grid = rng.normal(size=(12, 1)) + rng.normal(size=(1, 12)) + rng.normal(size=(12, 12))
        low, high = bootstrap_mean_interval(grid.ravel(), resamples=1000, seed=trial, design=design)
        hits_levels += low <= 0 <= high
        low, high = mean_interval(grid.ravel())
        hits_t += low <= 0 <= high
    assert hits_levels / trials > 0.82  # the two-way bootstrap is a little short of 95% with 12 levels
    assert hits_t / trials < 0.65  # seeds sharing levels are not independent


def test_design_is_applied_to_the_paired_differences_and_to_each_unpaired_side():
    rng = np.random.default_rng(12)
    design = {"split": 10, "init": 20}
    a = (rng.normal(size=(10, 1)) + rng.normal(size=(10, 20))).ravel()
    b = a + 0.5 + (rng.normal(size=(10, 1)) + 0.1 * rng.normal(size=(10, 20))).ravel()
    paired = compare(a, b, paired=True, design=design)
    assert_allclose(paired["difference_ci95"], bootstrap_mean_interval(b - a, design=design), rtol=1e-12)
    unpaired = compare(a, b, paired=False, design=design)
    low, high = unpaired["difference_ci95"]
    assert low < b.mean() - a.mean() < high
    # Pairing cancels the baseline's split effects, which unpaired sides both carry.
    assert high - low > 1.3 * np.subtract(*paired["difference_ci95"][::-1])
    assert unpaired["difference_ci95_method"] == "bootstrap over the levels of split, init"


def test_one_seed_gives_values_and_reasons_instead_of_errors():
    s = _json(summarize(np.array([0.7])))
    assert s["mean"] == 0.7 and s["std"] == 0.0 and s["mean_ci95"] is None and s["seeds_needed"] is None
    assert s["reason"] == "one seed: no spread to estimate"
    assert _json(summarize(np.array([0.7]), design={"split": 1, "init": 1}))["mean_ci95"] is None
    r = _json(compare(np.array([0.9]), np.array([1.0]), paired=True))
    assert r["mean_difference"] == pytest.approx(0.1) and r["p_better"] == 1.0
    assert r["difference_ci95"] is None and r["holds"] is None and r["seeds_needed"] is None
    assert r["reason"] == "one seed: no spread to estimate"
    r = _json(compare(np.array([0.9]), np.array([1.0, 0.8]), paired=False))
    assert r["mean_difference"] == pytest.approx(0.0) and r["difference_ci95"] is None
    assert r["reason"] == "baseline: one seed: no spread to estimate"


def test_empty_and_constant_populations_give_values_and_reasons():
    s = _json(summarize(np.array([])))
    assert s["count"] == 0 and s["mean"] is None and s["histogram"] == {} and s["reason"] == "no seeds"
    r = _json(compare(np.ones(5), np.array([]), paired=False))
    assert r["mean_difference"] is None and r["p_better"] is None and r["reason"] == "other: no seeds"
    s = _json(summarize(np.ones(40)))  # [1, 1] and 2 seeds claimed the mean known exactly
    assert s["mean_ci95"] is None and s["seeds_needed"] is None and s["std"] == 0.0
    assert s["reason"] == "all 40 seeds score 1.0000: no spread to estimate an interval from"
    assert _json(summarize(np.r_[np.ones(39), 0.9]))["mean_ci95"] is not None
    # 1000 training accuracies of 59/60: summed, their mean was 4e-16 below the value, std 3e-16
    equal = _json(summarize(np.full(1000, 59 / 60)))
    assert equal["mean"] == equal["min"] == 59 / 60 and equal["std"] == 0.0
    assert best_of_n(np.array([])) == {"1": None, "3": None, "5": None, "10": None, "100": None}
    assert objective(np.array([]), "iqm") is None


def test_non_finite_values_are_counted_and_left_out():
    values = np.array([0.2, np.nan, 0.4, np.inf, 0.3])
    s = _json(summarize(values))
    assert s["count"] == 3 and s["non_finite"] == 2 and s["mean"] == pytest.approx(0.3)
    grid = _json(summarize(values[:4], design={"split": 2, "init": 2}))
    assert grid["mean_ci95"] is None and "holes in the design" in grid["reason"]
    r = _json(compare(values, values[::-1], paired=True))
    assert r["count_baseline"] == 3 and r["non_finite"] == 2  # pairs with a non-finite side are left out
    assert _json(summarize(np.array([np.nan])))["reason"] == "no finite values"


def test_simultaneous_interval_widens_with_the_number_of_comparisons():
    rng = np.random.default_rng(13)
    a, b = rng.integers(24, 31, 400) / 30, rng.integers(25, 31, 400) / 30
    one = compare(a, b, paired=True)
    assert one["difference_ci95_simultaneous"] == one["difference_ci95"] and one["simultaneous_level"] == 0.95
    many = compare(a, b, paired=True, comparisons=20)
    assert many["resamples"] >= 25 / (0.025 / 20)
    assert many["simultaneous_level"] == pytest.approx(1 - 0.05 / 20)
    (low, high), (low_all, high_all) = many["difference_ci95"], many["difference_ci95_simultaneous"]
    assert low_all < low and high < high_all
    assert many["holds"] == (low_all > 0 or high_all < 0)
    assert compare(a, a + 0.05, paired=False, comparisons=20)["holds"] is True
    null = compare(a, rng.permutation(a), paired=True, comparisons=20)
    assert null["holds"] is False and null["difference_ci95_simultaneous"][0] < 0


def test_best_of_n_is_exact_against_every_draw():
    values = np.array([0.8, 0.9, 0.9, 1.0, 0.7])
    found = best_of_n(values, ns=(1, 2, 3))
    for n in (2, 3):
        draws = itertools.product(values, repeat=n)
        assert found[str(n)] == pytest.approx(np.mean([max(d) for d in draws]), rel=1e-12)
    assert found["1"] == float(values.mean())
    halves = best_of_n(np.array([0.0, 1.0]), ns=(1, 3, 10))
    assert halves == pytest.approx({"1": 0.5, "3": 1 - 0.5**3, "10": 1 - 0.5**10})


def test_best_of_n_does_not_decrease_and_stays_inside_the_values():
    values = np.random.default_rng(14).integers(25, 31, 100_000) / 30
    found = best_of_n(values)
    curve = [found[k] for k in ("1", "3", "5", "10", "100")]
    assert curve == sorted(curve) and curve[-1] <= 1.0
    assert list(best_of_n(np.full(1000, 0.1)).values()) == [float(np.full(1000, 0.1).mean())] * 5


def test_seeds_needed_is_the_smallest_count_that_reaches_the_resolution(stats):
    def half_width(n, std):
        return stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)

    for std, resolution in [(0.05, 0.005), (0.3, 0.2), (0.1, 0.0001), (1.0, 10.0)]:
        n = seeds_needed(std, resolution)
        assert half_width(n, std) <= resolution
        assert n == 2 or half_width(n - 1, std) > resolution
    assert seeds_needed(0.0, 0.005) is None  # no spread seen: no count follows
    assert seeds_needed(float("nan"), 0.005) is None and seeds_needed(None, 0.005) is None
    with pytest.raises(ValueError):
        seeds_needed(0.1, 0.0)


def test_seeds_needed_shrinks_as_the_spread_shrinks():
    rng = np.random.default_rng(15)
    wide, narrow = rng.integers(15, 31, 500) / 30, rng.integers(28, 31, 500) / 30
    assert summarize(narrow)["seeds_needed"] < summarize(wide)["seeds_needed"]
    a = rng.integers(24, 31, 500) / 30
    close, far = a + rng.integers(0, 2, 500) / 30, rng.permutation(a)
    paired = [compare(a, b, paired=True)["seeds_needed"] for b in (close, far)]
    assert paired[0] == seeds_needed(np.std(close - a, ddof=1), 0.005) and paired[0] < paired[1]
    unpaired = compare(a, narrow, paired=False)["seeds_needed"]
    assert unpaired == seeds_needed(np.sqrt(a.var(ddof=1) + narrow.var(ddof=1)), 0.005)


def test_objectives_match_numpy(stats):
    values = np.random.default_rng(16).integers(20, 31, 1001) / 30
    expected = {
        "mean": values.mean(),
        "median": np.median(values),
        "q05": np.quantile(values, 0.05),
        "q25": np.quantile(values, 0.25),
        "min": values.min(),
        "iqm": stats.trim_mean(values, 0.25),
    }
    assert set(expected) == set(OBJECTIVES)
    assert_allclose([objective(values, name) for name in OBJECTIVES], [expected[n] for n in OBJECTIVES])
    assert objective(np.arange(1.0, 9.0), "iqm") == 4.5  # the mean of 3, 4, 5, 6
    with pytest.raises(ValueError, match="unknown objective 'best'"):
        objective(values, "best")


@pytest.mark.slow
def test_importing_the_module_does_not_import_scipy():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('statistics_alone', {statistics.__file__!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert not any(name.startswith('scipy') for name in sys.modules), 'scipy imported'\n"
    )
    assert_ok(command("-c", code, cwd=Path.cwd()))


def test_a_difference_that_is_zero_but_for_rounding_does_not_hold():
    """The best resample of a population at 0.8333 once and 0.9667 nine times is nine
    seeds of 0.9667, as is every resample of a population at 0.9667: their means, summed in
    another order, differed by 1.1e-16, so the simultaneous interval started above 0 and
    `holds` said a base seed that only draws other random numbers was significantly better."""
    a, b = np.r_[25 / 30, np.full(9, 29 / 30)], np.full(10, 29 / 30)
    r = compare(a, b, paired=False, comparisons=3)
    assert r["difference_ci95_simultaneous"][0] == 0.0 and r["holds"] is False
    assert compare(a + 0.1, a, paired=False)["holds"]  # a real difference still holds
