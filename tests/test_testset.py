import itertools
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import gophernet_jax.testset as testset  # the module, not its names: pytest would collect test_set_variance
from gophernet_jax.statistics import bootstrap_mean_interval


def _population(rng, seeds=60, rows=12, classes=3, skill=(8, 2), tie=0.05):
    """Seeds with a latent skill each, errors independent per row given it, some ties."""
    labels = rng.integers(0, classes, rows)
    p = rng.beta(*skill, seeds)
    correct = rng.random((seeds, rows)) < p[:, None]
    wrong = (labels + rng.integers(1, classes, (seeds, rows))) % classes
    predicted = np.where(correct, labels, wrong)
    predicted[~correct & (rng.random((seeds, rows)) < tie)] = -1
    return predicted, correct, labels


# --- accumulators ---------------------------------------------------------------------------


def test_chunks_add_up_to_the_whole(monkeypatch):
    predicted, correct, _ = _population(np.random.default_rng(0), seeds=50)
    groups = np.arange(50) % 3
    whole_counts = testset.row_counts(predicted, correct, 3, groups=groups)
    whole_blocks = testset.seed_blocks(correct, groups=groups, blocks=7)
    parts = [slice(0, 13), slice(13, 40), slice(40, 50)]
    counts = [testset.row_counts(predicted[s], correct[s], 3, groups=groups[s], splits=3) for s in parts]
    summed_blocks = None
    for s in parts:
        summed_blocks = testset.seed_blocks(
            correct[s], groups=groups[s], splits=3, after=summed_blocks, blocks=7
        )
    summed = counts[0] + counts[1] + counts[2]
    assert_array_equal(summed.classes, whole_counts.classes)
    assert_array_equal(summed.correct, whole_counts.correct)
    for a, b in zip(summed_blocks._fields(), whole_blocks._fields()):
        assert_array_equal(a, b)
    monkeypatch.setattr(testset, "CHUNK_CELLS", 4 * 12)  # the internal chunking gives the same sums
    assert_array_equal(testset.row_counts(predicted, correct, 3, groups=groups).classes, whole_counts.classes)
    assert_array_equal(testset.seed_blocks(correct, groups=groups, blocks=7).hits_sq, whole_blocks.hits_sq)


def test_row_counts_and_blocks_hold_what_they_say():
    predicted, correct, _ = _population(np.random.default_rng(1), seeds=30, rows=5)
    counts = testset.row_counts(predicted, correct, 3)
    for k in (-1, 0, 1, 2):
        assert_array_equal(counts.classes[0, :, k if k >= 0 else 3], np.sum(predicted == k, axis=0))
    assert_array_equal(counts.correct[0], correct.sum(axis=0)) and counts.seeds.tolist() == [30]
    blocks = testset.seed_blocks(correct, blocks=4)
    k = correct.sum(axis=1)
    assert_array_equal(blocks.seeds[0], np.bincount(np.arange(30) % 4))
    assert_array_equal(blocks.hits_sq[0], np.bincount(np.arange(30) % 4, k * k))
    assert_array_equal(blocks.correct[0, 1], correct[1::4].sum(axis=0))
    # dealt by rank within the split: a split laid out with stride 3 still fills every block
    strided = testset.seed_blocks(np.ones((24, 2), bool), groups=np.arange(24) % 3, blocks=4)
    assert_array_equal(strided.seeds, np.full((3, 4), 2))
    with pytest.raises(ValueError, match="-1 \\(tied\\) .. 2"):
        testset.row_counts(np.full((2, 2), 3), np.ones((2, 2), bool), 3)
    with pytest.raises(ValueError, match="do not add"):
        counts + testset.row_counts(predicted[:, :4], correct[:, :4], 3)


# --- 1. rows table --------------------------------------------------------------------------


def test_rows_table_against_the_seeds():
    predicted = np.array([[0, 1, -1, 2], [0, 2, -1, 2], [1, 2, 1, 2], [0, 2, 1, 2]])
    labels = np.array([0, 2, 1, 2])
    correct = predicted == labels
    correct[0, 2] = True  # the "article" rule counted seed 0's tie on row 2 correct
    table = testset.rows_table(
        testset.row_counts(predicted, correct, 3), labels, ["a", "b", "c"], [10, 11, 12, 13]
    )
    assert list(table) == [
        "row",
        "label",
        "correct_share",
        "tied_share",
        "share_a",
        "share_b",
        "share_c",
        "top_wrong",
    ]
    assert table["row"].tolist() == [10, 11, 12, 13] and table["label"].tolist() == ["a", "c", "b", "c"]
    assert_allclose(table["correct_share"], [0.75, 0.75, 0.75, 1.0])
    assert_allclose(table["tied_share"], [0, 0, 0.5, 0])
    assert_allclose(table["share_a"], [0.75, 0, 0, 0])
    assert_allclose(table["share_b"], [0.25, 0.25, 0.5, 0])
    # row 2's wrong seeds all tie: no wrong class; row 3 has no wrong seed
    assert table["top_wrong"].tolist() == ["b", "b", None, None]
    frame = pytest.importorskip("pandas").DataFrame(table)
    assert frame.shape == (4, 8)


def test_rows_table_per_split():
    predicted, correct, labels = _population(np.random.default_rng(2), seeds=20, rows=3)
    groups = np.arange(20) % 2
    labels2 = np.stack([labels, (labels + 1) % 3])
    table = testset.rows_table(testset.row_counts(predicted, correct, 3, groups=groups), labels2)
    assert table["split"].tolist() == [0, 0, 0, 1, 1, 1]
    assert_allclose(table["correct_share"][3:], correct[1::2].mean(axis=0))
    assert_allclose(table["share_1"][:3], np.mean(predicted[::2] == 1, axis=0))


# --- 2. test-set variance -------------------------------------------------------------------


def test_variances_match_their_definitions():
    _, correct, _ = _population(np.random.default_rng(3), seeds=40, rows=9)
    found = testset.test_set_variance(correct, resamples=200)
    acc, e, n = correct.mean(axis=1), 1 - correct, correct.shape[1]
    eps = e.mean(axis=0)
    assert found.rows == n and found.seeds == 40 and found.splits == 1 and found.reason is None
    assert_allclose(found.observed_variance, acc.var(ddof=1))
    assert_allclose(found.independent_errors_variance, np.sum(eps * (1 - eps)) / n**2)
    jordan = n / (n - 1) * (acc.var(ddof=1) - np.sum(e.var(axis=0, ddof=1)) / n**2)
    assert_allclose(found.distribution_variance, jordan)
    # the same number as the mean covariance of two distinct rows' errors
    cov = np.cov(e, rowvar=False)
    assert_allclose(jordan, (cov.sum() - np.trace(cov)) / (n * (n - 1)))
    low, high = found.distribution_variance_ci95
    assert low < jordan < high
    assert f"std {np.sqrt(acc.var(ddof=1)):.3f}" in found.summary and f"the {n} test rows" in found.summary


def test_distribution_variance_recovers_a_known_skill_spread():
    # Skill p ~ Beta(24, 6): variance ab/((a+b)^2 (a+b+1)) = 0.005161; given its skill a seed
    # errs on each row independently, so its accuracy on the distribution is p.
    rng = np.random.default_rng(4)
    a, b, seeds, rows = 24.0, 6.0, 3000, 200
    known = a * b / ((a + b) ** 2 * (a + b + 1))
    skill = rng.beta(a, b, seeds)
    correct = rng.random((seeds, rows)) < skill[:, None]
    found = testset.test_set_variance(correct, resamples=1000)
    low, high = found.distribution_variance_ci95
    assert low < known < high, (low, known, high)
    assert found.distribution_variance == pytest.approx(known, rel=0.15)
    assert found.observed_variance == pytest.approx(known + np.mean(skill * (1 - skill)) / rows, rel=0.1)
    # what the test rows add: a seed's binomial noise on 200 rows, E[p(1 - p)]/200 ~ 0.0008 of ~0.006
    independent = np.mean(skill * (1 - skill)) / rows
    assert found.test_rows_share == pytest.approx(independent / found.observed_variance, abs=0.03)


def test_independent_errors_leave_no_distribution_variance():
    rng = np.random.default_rng(5)
    correct = rng.random((4000, 30)) < 0.8  # every seed equally good: all spread is the test set
    found = testset.test_set_variance(correct, resamples=1000)
    low, high = found.distribution_variance_ci95
    assert low < 0 < high
    assert abs(found.distribution_variance) < 0.1 * found.observed_variance
    assert found.observed_variance == pytest.approx(0.16 / 30, rel=0.1)
    assert found.test_rows_share > 0.85 and found.distribution_std_ci95[0] == 0.0


def test_splits_are_pooled_with_seed_weights():
    rng = np.random.default_rng(6)
    c1, c2 = (_population(rng, seeds=s, rows=10, skill=k)[1] for s, k in ((30, (8, 2)), (90, (4, 4))))
    groups = np.repeat([0, 1], [30, 90])
    pooled = testset.test_set_variance(np.concatenate([c1, c2]), groups=groups, resamples=200)
    parts = [testset.test_set_variance(c, resamples=200) for c in (c1, c2)]
    for field in ("observed_variance", "independent_errors_variance", "distribution_variance"):
        assert_allclose(
            getattr(pooled, field), 0.25 * getattr(parts[0], field) + 0.75 * getattr(parts[1], field)
        )
    assert pooled.splits == 2 and "within a split" in pooled.summary
    assert testset.test_set_variance(c1[:1]).reason == "fewer than two seeds in every split"
    few = testset.test_set_variance(c1[:2], resamples=200)  # half the resamples draw one seed twice
    assert few.distribution_variance_ci95[0] <= few.distribution_variance_ci95[1]
    same = testset.test_set_variance(np.tile(c1[:1], (5, 1)), resamples=50)
    assert same.observed_variance == 0 and same.summary.startswith("the seeds' test accuracies do not vary")


def test_block_bootstrap_is_the_seed_bootstrap_for_few_seeds():
    # Up to BLOCKS seeds each seed is its own block: the interval is a plain seed bootstrap.
    rng = np.random.default_rng(7)
    _, correct, _ = _population(rng, seeds=80, rows=8)
    n, resamples = 8, 4000
    draws = []
    for _ in range(resamples):
        c = correct[rng.integers(0, 80, 80)]
        acc, e = c.mean(axis=1), 1 - c
        draws.append(n / (n - 1) * (acc.var(ddof=1) - np.sum(e.var(axis=0, ddof=1)) / n**2))
    found = testset.test_set_variance(correct, resamples=resamples, seed=1)
    assert_allclose(found.distribution_variance_ci95, np.quantile(draws, [0.025, 0.975]), atol=0.0015)


# --- 3. multi-bootstrap ---------------------------------------------------------------------


def test_replicate_means_are_the_mean_over_the_drawn_grid():
    rng = np.random.default_rng(8)
    correct = rng.random((7, 5)) < 0.6
    matrix = testset._nonempty(testset.seed_blocks(correct))[0]
    for _ in range(20):
        s, r = rng.integers(0, 7, 7), rng.integers(0, 5, 5)
        u, w = np.bincount(s, minlength=7)[None], np.bincount(r, minlength=5)[None]
        assert_allclose(testset._replicate_means(matrix, u, w), correct[np.ix_(s, r)].mean())


def _brute_multi(rng, a, b=None, resamples=20_000, paired=True):
    """Percentile interval from drawn grids: seeds and rows indexed, the grid's mean taken."""
    seeds, rows = a.shape
    s, r = rng.integers(0, seeds, (resamples, seeds, 1)), rng.integers(0, rows, (resamples, 1, rows))
    out = a[s, r].mean(axis=(1, 2))
    if b is not None:
        t = s if paired else rng.integers(0, len(b), (resamples, len(b), 1))
        out = b[t, r].mean(axis=(1, 2)) - out
    return np.quantile(out, [0.025, 0.975])


def test_multi_bootstrap_matches_brute_force():
    rng = np.random.default_rng(9)
    a = rng.random((8, 6)) < np.linspace(0.3, 0.9, 6)
    b = a ^ (rng.random((8, 6)) < 0.2)
    found = testset.mean_ci95_seeds_and_rows(a, resamples=20_000, seed=1)
    assert found.estimate == pytest.approx(a.mean())
    assert_allclose(found.ci95, _brute_multi(rng, a), atol=0.025)
    for paired in (True, False):
        diff = testset.difference_ci95_seeds_and_rows(a, b, paired=paired, resamples=20_000, seed=2)
        assert diff.estimate == pytest.approx(b.mean() - a.mean()) and diff.paired is paired
        assert_allclose(diff.ci95, _brute_multi(rng, a, b, paired=paired), atol=0.03)


def test_rows_widen_the_interval_and_pairing_shares_both_draws():
    rng = np.random.default_rng(10)
    easy = np.where(np.arange(30) % 2, 0.99, 0.6)  # rows differ: which rows are drawn matters
    correct = rng.random((400, 30)) < rng.beta(18, 2, 400)[:, None] * easy
    both = testset.mean_ci95_seeds_and_rows(correct, resamples=4000)
    seeds_only = bootstrap_mean_interval(correct.mean(axis=1), resamples=4000)
    # the rows' share: sd of the row means over sqrt(30), ~0.034 against ~0.004 from the seeds
    assert both.ci95[1] - both.ci95[0] > 4 * (seeds_only[1] - seeds_only[0])
    assert both.ci95[1] - both.ci95[0] == pytest.approx(
        2 * 1.96 * correct.mean(axis=0).std() / np.sqrt(30), rel=0.2
    )
    same = testset.difference_ci95_seeds_and_rows(correct, correct, paired=True, resamples=500)
    assert same.estimate == 0 and same.ci95 == [0.0, 0.0]
    unpaired = testset.difference_ci95_seeds_and_rows(correct, correct, paired=False, resamples=500)
    assert unpaired.ci95[0] < 0 < unpaired.ci95[1]
    with pytest.raises(ValueError, match="same seeds"):
        testset.difference_ci95_seeds_and_rows(correct, correct[:300], paired=True)


def test_multi_bootstrap_over_splits_pools_with_seed_weights():
    rng = np.random.default_rng(11)
    correct = rng.random((60, 10)) < 0.7
    groups = np.repeat([0, 1], [20, 40])
    found = testset.mean_ci95_seeds_and_rows(correct, groups=groups, resamples=2000)
    assert found.estimate == pytest.approx(correct.mean())
    assert found.ci95[0] < found.estimate < found.ci95[1] and "splits held fixed" in found.method


def test_many_test_rows_are_drawn_by_pattern_with_the_row_by_rows_distribution(monkeypatch):
    # 2400 test rows: one seed per split (12 splits: right or wrong, 2 patterns a split) and 6
    # seeds in one split; drawn by pattern they give the intervals drawing row by row gives.
    # At 1000 resamples the two ways' ends differ by at most 0.03 of the interval's width
    # (0.034 at 3000), a third of what the test allows.
    rng = np.random.default_rng(12)
    hard = rng.random(2400) < 0.1
    one_each = rng.random((12, 2400)) < np.where(hard, 0.4, 0.95)
    grouped = rng.random((6, 2400)) < np.where(hard, 0.3, 0.97)
    other = grouped ^ (rng.random((6, 2400)) < 0.03)
    found = {}
    assert 2400 >= testset.PATTERN_ROWS == 2000
    for mode, threshold in (("pattern", testset.PATTERN_ROWS), ("row", 10**9)):
        monkeypatch.setattr(testset, "PATTERN_ROWS", threshold)
        found[mode] = (
            testset.mean_ci95_seeds_and_rows(one_each, groups=np.arange(12), resamples=1000),
            testset.mean_ci95_seeds_and_rows(grouped, resamples=1000),
            testset.difference_ci95_seeds_and_rows(grouped, other, paired=True, resamples=1000),
        )
    for by_pattern, by_row in zip(*found.values()):
        assert by_pattern.estimate == by_row.estimate
        width = by_row.ci95[1] - by_row.ci95[0]
        assert_allclose(by_pattern.ci95, by_row.ci95, atol=0.1 * width)
        assert "by pattern" in by_pattern.method and "by pattern" not in by_row.method


# --- 4. churn -------------------------------------------------------------------------------


def _brute_churn(predicted):
    pairs = list(itertools.combinations(range(len(predicted)), 2))
    return np.mean([np.mean(predicted[i] != predicted[j]) for i, j in pairs])


def test_churn_is_the_average_over_pairs_of_seeds():
    predicted, correct, _ = _population(np.random.default_rng(12), seeds=25, rows=9, tie=0.3)
    assert (predicted == -1).any()  # two tied seeds agree: the tie is a class of its own
    assert testset.churn(testset.row_counts(predicted, correct, 3)) == pytest.approx(_brute_churn(predicted))
    groups = np.repeat([0, 1], [10, 15])
    pooled = testset.churn(testset.row_counts(predicted, correct, 3, groups=groups))
    expected = 0.4 * _brute_churn(predicted[:10]) + 0.6 * _brute_churn(predicted[10:])
    assert pooled == pytest.approx(expected)
    assert testset.churn(testset.row_counts(predicted[:1], correct[:1], 3)) is None
    same = np.tile(predicted[:1], (5, 1))
    assert testset.churn(testset.row_counts(same, same >= 0, 3)) == 0.0


# --- 5. decisions ---------------------------------------------------------------------------


def test_p_outperform_paired_and_unpaired(stats):
    rng = np.random.default_rng(13)
    a, b = rng.integers(25, 31, 200) / 30, rng.integers(24, 31, 200) / 30
    paired = testset.p_outperform(a, b, paired=True)
    assert paired.p_outperform == pytest.approx(np.mean(a > b) + 0.5 * np.mean(a == b))
    unpaired = testset.p_outperform(a, b[:150], paired=False)
    u = stats.mannwhitneyu(a, b[:150]).statistic
    assert unpaired.p_outperform == pytest.approx(u / (200 * 150))
    for found in (paired, unpaired):
        assert found.p_outperform_ci95_low < found.p_outperform < found.p_outperform_ci95_high


def test_unpaired_count_bootstrap_matches_resampling_the_seeds():
    rng = np.random.default_rng(14)
    a, b = rng.integers(26, 31, 120) / 30, rng.integers(25, 31, 80) / 30
    draws = []
    for _ in range(4000):
        x, y = a[rng.integers(0, 120, 120)], b[rng.integers(0, 80, 80)]
        draws.append(np.mean(x[:, None] > y) + 0.5 * np.mean(x[:, None] == y))
    found = testset.p_outperform(a, b, paired=False, resamples=4000, seed=3)
    assert_allclose(
        [found.p_outperform_ci95_low, found.p_outperform_ci95_high],
        np.quantile(draws, [0.025, 0.975]),
        atol=0.01,
    )


def test_verdicts():
    assert testset.verdict(0.45, 0.8) == "not significant"
    assert testset.verdict(0.55, 0.8) == "better"
    assert testset.verdict(0.55, 0.7) == "not meaningful"
    assert testset.verdict(0.1, 0.4) == "worse"
    assert testset.verdict(0.3, 0.45) == "not meaningful"
    assert testset.verdict(0.55, 0.7, gamma=0.6) == "better"
    strong = testset.p_outperform(np.full(50, 1.0), np.full(50, 0.9), paired=True)
    assert strong.verdict == "better" and strong.p_outperform == 1.0
    holes = testset.p_outperform(np.r_[np.full(50, 0.8), np.nan], np.full(51, 0.9), paired=True)
    assert holes.p_outperform == 0.0 and holes.verdict == "worse"


def test_seeds_needed_for_decision():
    assert testset.seeds_needed_for_decision() == 29
    assert testset.seeds_needed_for_decision(gamma=0.6) > 29 * 6
    with pytest.raises(ValueError, match="gamma"):
        testset.seeds_needed_for_decision(gamma=0.5)


# --- 6. corrected resampled t ---------------------------------------------------------------


def test_corrected_interval(stats):
    rng = np.random.default_rng(15)
    means = rng.normal(0.9, 0.02, 10)
    found = testset.corrected_interval(means, n_train=120, n_test=30)
    t = stats.t.ppf(0.975, 9)
    half = t * np.sqrt((1 / 10 + 30 / 120) * means.var(ddof=1))
    assert_allclose(found.ci95, [means.mean() - half, means.mean() + half])
    assert_allclose(found.plain_ci95, stats.t.interval(0.95, 9, means.mean(), stats.sem(means)))
    assert found.variance_factor == pytest.approx(0.35) and "Nadeau & Bengio" in found.method
    seeds = np.repeat(means, 5) + rng.normal(0, 0.01, 50)
    by_seed = testset.corrected_interval(seeds, groups=np.repeat(np.arange(10), 5), n_train=120, n_test=30)
    assert by_seed.mean == pytest.approx(seeds.mean()) and by_seed.splits == 10
    assert testset.corrected_interval(means[:1], n_train=120, n_test=30).ci95 is None


def test_the_corrected_interval_of_an_accuracy_stays_in_0_1():
    # 5 splits of wine (36 test rows, 142 training rows) near 1: the t interval passes 1.
    means = np.array([1.0, 0.9722, 1.0, 0.9167, 0.9722])
    free = testset.corrected_interval(means, n_train=142, n_test=36)
    assert free.ci95[1] > 1  # what the report printed: [0.91, 1.03]
    bounded = testset.corrected_interval(means, n_train=142, n_test=36, bounds=(0.0, 1.0))
    assert bounded.ci95 == [free.ci95[0], 1.0] and bounded.plain_ci95[1] <= 1.0
    assert bounded.mean == free.mean


def test_seeds_needed_over_splits(stats):
    rng = np.random.default_rng(16)
    groups = np.repeat(np.arange(20), 10)
    split = np.repeat(rng.normal(0, 0.004, 20), 10)
    values = 0.9 + split + rng.normal(0, 0.05, 200)
    found = testset.seeds_needed_over_splits(values, groups, n_train=1000, n_test=10, resolution=0.01)
    assert found.reason is None and found.splits_needed == 20

    def half(r):
        t = stats.t.ppf(0.975, 19)
        return t * np.sqrt((1 / 20 + 0.01) * found.split_variance + found.seed_variance / (20 * r))

    assert half(found.seeds_per_split) <= 0.01 < half(found.seeds_per_split - 1)
    more = testset.seeds_needed_over_splits(values, groups, n_train=1000, n_test=10, resolution=0.003)
    assert more.seeds_per_split is None and more.splits_needed > 20 and "splits or more" in more.reason
    assert more.half_width_floor > 0.003
    never = testset.seeds_needed_over_splits(values, groups, n_train=40, n_test=10, resolution=0.002)
    assert never.splits_needed is None and "no number of seeds or splits" in never.reason


# --- memory at scale ------------------------------------------------------------------------


def test_a_million_seeds_stay_bounded():
    rng = np.random.default_rng(17)
    correct = rng.random((10**6, 30), dtype=np.float32) < 0.9
    predicted = np.where(correct, 0, 1).astype(np.int8)
    tracemalloc.start()
    counts = testset.row_counts(predicted, correct, 3)
    variance = testset.test_set_variance(correct, resamples=500)
    multi = testset.mean_ci95_seeds_and_rows(testset.seed_blocks(correct), resamples=500)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MB"  # measured ~31 MB
    assert counts.seeds.tolist() == [10**6] and testset.churn(counts) == pytest.approx(0.18, abs=0.002)
    assert variance.distribution_variance_ci95[0] < 0 < variance.distribution_variance_ci95[1]
    assert multi.ci95[0] < 0.9 < multi.ci95[1]


def test_a_population_right_on_every_row_gets_the_interval_of_what_it_scores():
    # every seed right on every row: the resamples' means, summed in other orders, gave
    # [0.9999999999999998, 1.0000000000000002], an accuracy above 1
    right = testset.mean_ci95_seeds_and_rows(np.ones((1000, 30), bool), resamples=500)
    assert right.estimate == 1.0 and right.ci95 == [1.0, 1.0]
    wrong = testset.mean_ci95_seeds_and_rows(np.zeros((40, 30), bool), resamples=500)
    assert wrong.estimate == 0.0 and wrong.ci95 == [0.0, 0.0]
    rng = np.random.default_rng(3)
    some = testset.mean_ci95_seeds_and_rows(rng.random((200, 30)) < 0.9, resamples=500)
    assert 0 < some.ci95[0] < some.estimate < some.ci95[1] < 1  # a spread keeps its bounds
